//! Serving a blob to a peer on a stream it opened: one framed [`FetchRequest`], one
//! framed [`FetchReply`], then raw bytes — the blob's 64 KiB group hashes (when it
//! has more than one group) and its data from the group asked for to the end.
//!
//! A peer may fetch a sound when it has the `read` permission (narrowed by the
//! node's read policy: the app lets a mirror fetch anything, anyone else what is
//! shared with it), or when we offered it that sound in a trigger. We never serve a blob that no longer hashes to its id:
//! the receiver would refuse it anyway, and ours needs `jhack check`.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::tree::{self, BlobTree, GROUP_LEN};
use crate::domain::SoundId;
use crate::net::events::NetEvent;
use crate::net::framed::{read_one_frame, write_frame};
use crate::net::link::Link;
use crate::net::shared::{Shared, lock};
use crate::proto::{self, FetchReply, FetchRequest, Refusal};

/// How long a peer has to send its request after opening a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from the file per step.
const READ_STEP: usize = 1 << 20;
/// The send priority of a blob stream: below the default (0) of every other stream.
pub(super) const BLOB_PRIORITY: i32 = -1;
/// Trees kept for blobs served recently.
const TREES_KEPT: usize = 32;

/// Whether the corruption hook has fired (once per process).
static CORRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) async fn serve_stream(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let Some(request) =
        read_request(&link, &mut send, &mut recv, proto::decode_fetch_request).await
    else {
        return;
    };
    let _transfer = link.transfer();
    // A blob's bytes yield to every other stream of the connection (the records of
    // a sync, control messages, the engine's): a library's files arriving in bulk
    // never hold up the records that say which files to fetch next.
    let _ = send.set_priority(BLOB_PRIORITY);
    match serve(&shared, &link, &mut send, &request).await {
        Ok(Sent::Bytes(bytes)) => {
            let _ = send.finish();
            shared.tell_served(NetEvent::Served {
                name: link.name.clone(),
                id: request.id,
                bytes,
            });
        }
        Ok(Sent::Refused(e)) | Err(e) => tracing::info!(
            "sending {} to {} stopped: {e}",
            request.id.short(),
            link.name
        ),
    }
}

/// The request a blob stream starts with, decoded by `decode`. `None` when it did
/// not come in time (the stream is reset) or was malformed (the connection is
/// closed, saying why once).
pub(super) async fn read_request<T>(
    link: &Link,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    decode: fn(&[u8]) -> Result<T, proto::ProtoError>,
) -> Option<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, read_one_frame(recv)).await {
        Ok(Ok(frame)) => match decode(&frame) {
            Ok(r) => Some(r),
            Err(e) => {
                refuse_malformed(link, &e.to_string());
                None
            }
        },
        Ok(Err(e)) => {
            refuse_malformed(link, &e);
            None
        }
        Err(_) => {
            let _ = send.reset(quinn::VarInt::from_u32(1));
            None
        }
    }
}

fn refuse_malformed(link: &Link, e: &str) {
    tracing::warn!(
        "closing the connection to {}: malformed blob request: {e}",
        link.name
    );
    link.conn.close(
        quinn::VarInt::from_u32(crate::net::link::code::PROTOCOL),
        b"malformed request",
    );
}

pub(super) async fn reply(send: &mut quinn::SendStream, r: &FetchReply) -> Result<(), String> {
    let bytes = proto::encode(r).map_err(|e| e.to_string())?;
    write_frame(send, &bytes).await
}

/// What answering one blob came to (a failure to write is an `Err` beside it).
pub(super) enum Sent {
    /// The blob went: its data bytes.
    Bytes(u64),
    /// It was refused, in these words (the refusal went to the peer).
    Refused(String),
}

pub(super) async fn refuse(
    send: &mut quinn::SendStream,
    reason: Refusal,
    message: String,
) -> Result<Sent, String> {
    reply(
        send,
        &FetchReply::Refused {
            reason,
            message: message.clone(),
        },
    )
    .await?;
    Ok(Sent::Refused(message))
}

/// Sends the blob; returns the data bytes sent, or the refusal.
async fn serve(
    shared: &Arc<Shared>,
    link: &Arc<Link>,
    send: &mut quinn::SendStream,
    request: &FetchRequest,
) -> Result<Sent, String> {
    let id = request.id;
    // The read policy (which may wait on the library) and, for a small blob, the
    // read and the hashing run in one trip to the blocking pool: never on a network
    // thread, and one hand-off per blob rather than two.
    let policy = match access(shared, link, &id) {
        Ok(p) => p,
        Err(m) => return refuse(send, Refusal::NotAllowed, m).await,
    };
    let lookup = lookup(shared, id, policy);
    let looked = tokio::task::spawn_blocking(move || look(lookup))
        .await
        .unwrap_or(Looked::Denied(Denied::NotShared));
    answer(shared, link, send, &id, request.from_group, looked).await
}

/// Whether `link`'s peer may fetch `id` here, as far as the task can tell: `Err`
/// with the refusal's words when it may fetch nothing (no `read`); else the read
/// policy still to check on the blocking pool (`None`: none, or the sound was
/// offered to it in a trigger).
pub(super) fn access(shared: &Shared, link: &Link, id: &SoundId) -> Result<Policy, String> {
    if link.was_offered(id) {
        return Ok(None);
    }
    let Some(t) = shared.trusted(&link.id).filter(|t| t.allow.read) else {
        return Err(format!(
            "{} may not fetch sounds from {} (no read permission)",
            link.name, shared.name
        ));
    };
    let p = lock(&shared.read_policy).clone();
    Ok(p.map(|p| (p, t)))
}

/// A read policy still to check, with the peer it is checked for.
pub(super) type Policy = Option<(crate::net::node::ReadPolicy, crate::net::TrustedPeer)>;

/// What the blocking pool needs to look a blob up: found on the task, where the
/// locks are.
pub(super) struct Lookup {
    id: SoundId,
    policy: Policy,
    path: Option<std::path::PathBuf>,
    known: Option<Arc<BlobTree>>,
}

/// Why a blob is not sent, found before its file is read.
pub(super) enum Denied {
    /// The read policy does not let this peer have it.
    NotShared,
    /// The blob is not in this library.
    NotHere,
}

impl Lookup {
    /// What to look up for `id`: its file, without its cached tree (a batch sends
    /// no tree).
    pub(super) fn new(shared: &Shared, id: SoundId, policy: Policy) -> Lookup {
        Lookup {
            id,
            policy,
            path: (shared.blobs)(&id),
            known: None,
        }
    }

    /// The blob's file, when the read policy (if any) lets the peer have it and it
    /// is here.
    fn file(&self) -> Result<&std::path::Path, Denied> {
        if !self.policy.as_ref().is_none_or(|(p, t)| p(t, &self.id)) {
            return Err(Denied::NotShared);
        }
        self.path.as_deref().ok_or(Denied::NotHere)
    }
}

/// The blob's file and its cached tree, for [`look`].
pub(super) fn lookup(shared: &Shared, id: SoundId, policy: Policy) -> Lookup {
    let known = lock(&shared.trees)
        .get(&id)
        .and_then(|c| c.get())
        .and_then(|r| r.as_ref().ok())
        .cloned();
    Lookup {
        known,
        ..Lookup::new(shared, id, policy)
    }
}

/// Checks the read policy and reads the blob whole when it is small enough. On the
/// blocking pool.
pub(super) fn look(l: Lookup) -> Looked {
    match l.file() {
        Err(d) => Looked::Denied(d),
        Ok(path) => {
            let read = read_whole(path, l.known.clone());
            Looked::Read(path.to_path_buf(), read)
        }
    }
}

/// What the blocking trip of a batch's blob found: the blob read whole and not
/// hashed (the receiver of a whole blob verifies it against its id; a blob damaged
/// here fails there and is asked for again alone, which checks it here first).
pub(super) enum LookedWhole {
    /// It may not or cannot be sent.
    Denied(Denied),
    /// Its bytes.
    Bytes(bytes::Bytes),
    /// Larger than a batch carries: its size.
    TooLarge(u64),
    /// It could not be read: why.
    Failed(String),
}

/// Checks the read policy and reads the blob whole, up to `max` bytes, without
/// hashing it. On the blocking pool.
pub(super) fn look_whole(l: Lookup, max: u64) -> LookedWhole {
    match l.file().map(|path| read_up_to(path, max)) {
        Err(d) => LookedWhole::Denied(d),
        Ok(Ok(Ok(bytes))) => LookedWhole::Bytes(bytes::Bytes::from(bytes)),
        Ok(Ok(Err(size))) => LookedWhole::TooLarge(size),
        Ok(Err(e)) => LookedWhole::Failed(e),
    }
}

/// Reads the file at `path` whole when it has at most `max` bytes (`Err` with its
/// size when it has more); the outer `Err` says why it could not be read.
fn read_up_to(path: &std::path::Path, max: u64) -> Result<Result<Vec<u8>, u64>, String> {
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(failed)?;
    let size = file.metadata().map_err(failed)?.len();
    if size > max {
        return Ok(Err(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes).map_err(failed)?;
    Ok(Ok(bytes))
}

/// Refuses a blob that may not or cannot be sent, in words that say which.
pub(super) async fn refuse_denied(
    shared: &Shared,
    link: &Link,
    send: &mut quinn::SendStream,
    id: &SoundId,
    denied: Denied,
) -> Result<Sent, String> {
    match denied {
        Denied::NotShared => {
            let m = format!(
                "{} does not share {} with {}",
                shared.name,
                id.short(),
                link.name
            );
            refuse(send, Refusal::NotAllowed, m).await
        }
        Denied::NotHere => {
            let m = format!("{} is not here", id.short());
            refuse(send, Refusal::Unavailable, m).await
        }
    }
}

/// Answers one looked-up blob on `send`: its reply, its hashes and its bytes from
/// group `from_group` — or a refusal. A large blob (not read whole) is streamed
/// from its file.
async fn answer(
    shared: &Arc<Shared>,
    link: &Link,
    send: &mut quinn::SendStream,
    id: &SoundId,
    from_group: u64,
    looked: Looked,
) -> Result<Sent, String> {
    let (path, read) = match looked {
        Looked::Denied(d) => return refuse_denied(shared, link, send, id, d).await,
        Looked::Read(path, r) => (path, r),
    };
    // A small blob was read whole, hashed from memory, and is sent from the same
    // bytes; a large one is hashed first, then streamed from the file by a reader
    // thread.
    let (tree, whole) = match read {
        Ok(Some((tree, bytes))) => match checked(shared, id, tree) {
            Ok(tree) => (tree, Some(bytes)),
            Err(e) => return refuse(send, Refusal::Unavailable, e).await,
        },
        Ok(None) => match tree_for(shared, id, &path).await {
            Ok(t) => (t, None),
            Err(e) => return refuse(send, Refusal::Unavailable, e).await,
        },
        Err(e) => return refuse(send, Refusal::Unavailable, e).await,
    };
    let groups = tree::group_count(tree.size);
    if from_group > groups {
        return refuse(
            send,
            Refusal::Other,
            format!("group {from_group} is past the end"),
        )
        .await;
    }
    reply(
        send,
        &FetchReply::Ready {
            size: tree.size,
            group_len: proto::GROUP_LEN,
        },
    )
    .await?;
    let mut cvs = Vec::with_capacity(tree.cvs.len() * 32);
    for cv in &tree.cvs {
        cvs.extend_from_slice(cv);
    }
    send.write_all(&cvs).await.map_err(|e| e.to_string())?;
    let sent = match whole {
        Some(bytes) => {
            let start = (from_group * GROUP_LEN).min(tree.size) as usize;
            let mut pace = Pace::new(shared);
            pace.send(shared, send, start as u64, bytes.slice(start..))
                .await?;
            pace.sent
        }
        None => send_data(shared, send, path, from_group, tree.size).await?,
    };
    Ok(Sent::Bytes(sent))
}

/// Blobs up to this size are read whole (see [`read_whole`]).
const READ_WHOLE_UP_TO: u64 = 4 << 20;

/// What the blocking trip of a request found.
pub(super) enum Looked {
    /// It may not or cannot be sent.
    Denied(Denied),
    /// Its file, and the blob read whole with its tree (`None` when it is too large
    /// for that).
    Read(
        std::path::PathBuf,
        Result<Option<(Arc<BlobTree>, bytes::Bytes)>, String>,
    ),
}

/// Reads a blob of at most [`READ_WHOLE_UP_TO`] bytes whole and takes its tree from
/// `known` (the cache) or hashes it from memory: one read of the file, not one to
/// hash and another to send. `Ok(None)` for a larger blob. On the blocking pool.
fn read_whole(
    path: &std::path::Path,
    known: Option<Arc<BlobTree>>,
) -> Result<Option<(Arc<BlobTree>, bytes::Bytes)>, String> {
    let Ok(bytes) = read_up_to(path, READ_WHOLE_UP_TO)? else {
        return Ok(None);
    };
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let tree = match known {
        Some(t) if t.size == bytes.len() as u64 => t,
        _ => Arc::new(tree::tree_of_bytes(&bytes).map_err(failed)?),
    };
    Ok(Some((tree, bytes::Bytes::from(bytes))))
}

/// The tree of a blob read whole, when it still hashes to its id (then kept in the
/// cache for the next asker); the refusal's words when it does not.
fn checked(shared: &Shared, id: &SoundId, tree: Arc<BlobTree>) -> Result<Arc<BlobTree>, String> {
    if tree.id != id.0 {
        lock(&shared.trees).remove(id);
        return Err(damaged(id));
    }
    let _ = tree_cell(shared, id).set(Ok(tree.clone()));
    Ok(tree)
}

/// Says (once in the log, and in the refusal's words) that the blob of `id` here
/// no longer hashes to its id.
fn damaged(id: &SoundId) -> String {
    tracing::warn!(
        "the blob of {} no longer matches its id: not sent (run `jhack check`)",
        id.short()
    );
    format!("{} is damaged here", id.short())
}

/// The cache cell of a blob's tree (made when missing; the oldest is dropped beyond
/// [`TREES_KEPT`]).
fn tree_cell(shared: &Shared, id: &SoundId) -> Arc<super::TreeCell> {
    let mut trees = lock(&shared.trees);
    if !trees.contains_key(id)
        && trees.len() >= TREES_KEPT
        && let Some(k) = trees.keys().next().copied()
    {
        trees.remove(&k);
    }
    trees.entry(*id).or_default().clone()
}

/// The tree of the blob at `path`, from the cache or hashed now (off the reactor).
pub(crate) async fn tree_for(
    shared: &Arc<Shared>,
    id: &SoundId,
    path: &std::path::Path,
) -> Result<Arc<BlobTree>, String> {
    // One computation per blob, whoever asks first (a trigger, then the fetch).
    let cell = tree_cell(shared, id);
    let p = path.to_path_buf();
    let id = *id;
    let result = cell
        .get_or_init(|| async move {
            let hashed = tokio::task::spawn_blocking(move || {
                std::fs::File::open(&p)
                    .and_then(|f| tree::tree_of(std::io::BufReader::with_capacity(1 << 20, f)))
                    .map_err(|e| format!("{}: {e}", p.display()))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match hashed {
                Ok(t) if t.id == id.0 => Ok(Arc::new(t)),
                Ok(_) => Err(damaged(&id)),
                Err(e) => Err(e),
            }
        })
        .await
        .clone();
    if result.is_err() {
        lock(&shared.trees).remove(&id);
    }
    result
}

/// Streams the blob's bytes from group `from` to the end. A reader thread reads
/// ahead (a few MiB) while the stream sends, and each piece goes to QUIC without a
/// copy.
async fn send_data(
    shared: &Arc<Shared>,
    send: &mut quinn::SendStream,
    path: std::path::PathBuf,
    from: u64,
    size: u64,
) -> Result<u64, String> {
    let start = (from * GROUP_LEN).min(size);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<(u64, bytes::Bytes), String>>(4);
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::Seek;
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return drop(tx.blocking_send(Err(e.to_string()))),
        };
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
            return drop(tx.blocking_send(Err(e.to_string())));
        }
        let mut offset = start;
        while offset < size {
            let want = READ_STEP.min((size - offset) as usize);
            let mut buf = vec![0u8; want];
            let piece = file
                .read_exact(&mut buf)
                .map(|()| (offset, bytes::Bytes::from(buf)))
                .map_err(|e| e.to_string());
            let failed = piece.is_err();
            if tx.blocking_send(piece).is_err() || failed {
                return;
            }
            offset += want as u64;
        }
    });
    let mut pace = Pace::new(shared);
    while let Some(piece) = rx.recv().await {
        let (offset, data) = piece?;
        pace.send(shared, send, offset, data).await?;
    }
    let _ = reader.await;
    Ok(pace.sent)
}

/// Sends pieces of a blob, at the test hook's rate when one is set (and with the
/// corruption hook applied); counts the bytes sent.
pub(super) struct Pace {
    began: Instant,
    rate: Option<u64>,
    pub(super) sent: u64,
}

impl Pace {
    pub(super) fn new(shared: &Shared) -> Pace {
        Pace {
            began: Instant::now(),
            rate: shared.hooks.send_bytes_per_sec,
            sent: 0,
        }
    }

    /// Sends `data`, the blob's bytes from `offset`, without a copy.
    pub(super) async fn send(
        &mut self,
        shared: &Shared,
        send: &mut quinn::SendStream,
        offset: u64,
        mut data: bytes::Bytes,
    ) -> Result<(), String> {
        if shared.hooks.corrupt_group.is_some() {
            let mut v = data.to_vec();
            corrupt_if_asked(shared, offset, &mut v);
            data = bytes::Bytes::from(v);
        }
        let Some(r) = self.rate else {
            self.sent += data.len() as u64;
            return send.write_chunk(data).await.map_err(|e| e.to_string());
        };
        let step = (r / 20).clamp(1024, READ_STEP as u64) as usize;
        while !data.is_empty() {
            let piece = data.split_to(step.min(data.len()));
            self.sent += piece.len() as u64;
            send.write_chunk(piece).await.map_err(|e| e.to_string())?;
            let due = Duration::from_secs_f64(self.sent as f64 / r as f64);
            if let Some(wait) = due.checked_sub(self.began.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        Ok(())
    }
}

/// The test hook: flips one byte of the chosen group, the first time it is sent.
fn corrupt_if_asked(shared: &Shared, offset: u64, buf: &mut [u8]) {
    let Some(g) = shared.hooks.corrupt_group else {
        return;
    };
    let at = g * GROUP_LEN + 100;
    let end = offset + buf.len() as u64;
    if (offset..end).contains(&at) && !CORRUPTED.swap(true, Ordering::Relaxed) {
        let i = (at - offset) as usize;
        if let Some(b) = buf.get_mut(i) {
            *b ^= 0x5a;
        }
    }
}
