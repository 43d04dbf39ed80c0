//! Fetching a blob from a peer, verified as it arrives. Each 64 KiB group is checked
//! against the sound's id (see [`super::tree`]) before it is written to the partial
//! file, so the partial file only ever holds a verified prefix (plus, after a crash
//! mid-write, a torn last group that the next attempt re-verifies and drops). A group
//! that fails verification is discarded and asked for again; an interrupted transfer
//! — a dropped stream, or this process killed — resumes from the verified prefix.
//!
//! Readers wait on a [`Fetch`] for bytes to be verified ([`Fetch::wait_for`]), so a
//! sound can play while it arrives. The fetch never installs anything into the
//! library: that is the application's, once it is complete.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::buffers;
use super::tree::{self, GROUP_LEN, TreeError, Verifier};
use crate::domain::SoundId;
use crate::net::events::NetEvent;
use crate::net::framed::{read_one_frame, write_frame};
use crate::net::link::Link;
use crate::net::shared::{Shared, lock};
use crate::proto::{self, FetchReply, FetchRequest, StreamKind};

/// Attempts after an interrupted stream before the fetch fails.
const MAX_ATTEMPTS: u32 = 5;
/// Blobs from this size on keep their group hashes on disk, so that a transfer cut
/// short (this process killed) resumes from its verified prefix.
const SAVE_TREE_FROM: u64 = 4 << 20;
/// Whether a blob of `size` bytes keeps its group hashes on disk while it arrives.
pub(super) fn keeps_tree(size: u64) -> bool {
    size >= SAVE_TREE_FROM
}

/// Times one group may fail verification before the peer is given up on.
const MAX_REPAIRS: u32 = 3;

/// What a fetch did (for logs and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Verified bytes found on disk from an earlier attempt.
    pub resumed_from: u64,
    /// Data bytes received over the network.
    pub received: u64,
    /// Groups that failed verification and were fetched again.
    pub repaired: u32,
}

/// Why a fetch failed. Its words are what a person reads; the kind says whose fault
/// it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// A file here could not be read or written (a full disk, permissions).
    #[error("{0}")]
    Disk(String),
    /// The peer refused, answered out of protocol, or kept sending bad data.
    #[error("{0}")]
    Peer(String),
    /// The connection or the stream broke.
    #[error("{0}")]
    Connection(String),
    /// Nothing arrived for this many seconds.
    #[error("no data for {0} s")]
    Stalled(u64),
    /// A worker of the blocking pool failed.
    #[error("a transfer worker failed: {0}")]
    Worker(String),
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) verified: u64,
    pub(super) finished: Option<Result<(), FetchError>>,
    pub(super) stats: FetchStats,
}

/// One blob being fetched.
#[derive(Debug)]
pub struct Fetch {
    id: SoundId,
    size: u64,
    path: PathBuf,
    tree_path: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
    /// The partial file as [`Fetch::create_file`] opened it, handed to the transfer
    /// (one open per blob, not two).
    pub(super) created: Mutex<Option<std::fs::File>>,
    /// Someone waits to play it: bytes are published a group at a time at first, so
    /// playing starts after one group. A fetch nobody waits on (a library's files
    /// arriving in the background) reads whole batches: one trip to the blocking
    /// pool for a small sound instead of one per doubling step.
    urgent: AtomicBool,
}

impl Fetch {
    pub(crate) fn new(dir: &Path, id: SoundId, size: u64) -> Fetch {
        let hex = id.to_hex();
        Fetch {
            id,
            size,
            path: dir.join(format!("{hex}.part")),
            tree_path: dir.join(format!("{hex}.tree")),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            created: Mutex::new(None),
            urgent: AtomicBool::new(true),
        }
    }

    /// Marks a fetch nobody waits on yet (see its `urgent` field); a reader that
    /// waits on it later makes it urgent again from its next read.
    pub(crate) fn in_background(&self) {
        self.urgent.store(false, Ordering::Relaxed);
    }

    fn is_urgent(&self) -> bool {
        self.urgent.load(Ordering::Relaxed)
    }

    /// The sound.
    pub fn id(&self) -> SoundId {
        self.id
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The partial file (complete once the fetch succeeded).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes verified so far (a prefix of the blob).
    pub fn verified(&self) -> u64 {
        lock(&self.state).verified
    }

    /// Whether it ended (either way).
    pub fn is_finished(&self) -> bool {
        lock(&self.state).finished.is_some()
    }

    /// How it ended, if it did.
    pub fn result(&self) -> Option<Result<(), FetchError>> {
        lock(&self.state).finished.clone()
    }

    /// What it did so far.
    pub fn stats(&self) -> FetchStats {
        lock(&self.state).stats
    }

    /// Waits until at least `end` bytes (or the whole blob) are verified; returns the
    /// verified length. `Err` when the fetch failed or nothing came for `timeout`.
    pub fn wait_for(&self, end: u64, timeout: Duration) -> Result<u64, FetchError> {
        let end = end.min(self.size);
        self.urgent.store(true, Ordering::Relaxed);
        let mut st = lock(&self.state);
        let mut last = st.verified;
        let mut since = Instant::now();
        loop {
            if st.verified >= end {
                return Ok(st.verified);
            }
            if let Some(Err(e)) = &st.finished {
                return Err(e.clone());
            }
            if st.verified != last {
                last = st.verified;
                since = Instant::now();
            }
            let left = timeout.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(FetchError::Stalled(timeout.as_secs()));
            }
            st = self
                .changed
                .wait_timeout(st, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits for the end of the fetch.
    pub fn wait_done(&self, timeout: Duration) -> Option<Result<(), FetchError>> {
        let st = lock(&self.state);
        let (st, _) = self
            .changed
            .wait_timeout_while(st, timeout, |s| s.finished.is_none())
            .unwrap_or_else(|e| e.into_inner());
        st.finished.clone()
    }

    /// Creates the partial file (and its directory) if it is not there yet, and keeps
    /// it open for the transfer; errors surface when the fetch opens it. Called on
    /// the caller's thread, never a network one.
    ///
    /// A small blob is never resumed (see [`keeps_tree`]), so what an earlier
    /// attempt left of it is cut off here; a new, empty file is not truncated at
    /// all (ext4 writes a file truncated to nothing back to disk when it is closed,
    /// one small write per sound of a library, instead of with the batch's sync).
    pub(crate) fn create_file(&self) {
        let Ok(file) = open_rw(&self.path) else {
            return;
        };
        if !keeps_tree(self.size)
            && file.metadata().is_ok_and(|m| m.len() > 0)
            && file.set_len(0).is_err()
        {
            return;
        }
        *lock(&self.created) = Some(file);
    }

    /// Removes the partial file and its group hashes (after the blob was kept).
    pub fn discard_files(&self) {
        let _ = std::fs::remove_file(&self.path);
        if keeps_tree(self.size) {
            let _ = std::fs::remove_file(&self.tree_path);
        }
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut lock(&self.state));
        self.changed.notify_all();
    }
}

/// The running fetches, by sound: joined by a second request for the same sound, and
/// forgotten once over with their file gone (kept in a library, or discarded), so a
/// node that fetches a hundred thousand files does not hold them all.
#[derive(Debug, Default)]
pub(crate) struct Fetches {
    map: std::collections::HashMap<SoundId, Arc<Fetch>>,
    /// The size at which those over are next looked for.
    sweep_at: usize,
}

/// Fetches held before the first sweep (and at least this many between two).
const SWEEP_FROM: usize = 1024;

impl Fetches {
    /// The fetch of `id` to join: one running, or one finished whose verified file is
    /// still where it was written (not yet taken into a library: starting over would
    /// cut that file short under whoever is about to keep it).
    pub(crate) fn joinable(&self, id: &SoundId) -> Option<Arc<Fetch>> {
        self.map
            .get(id)
            .filter(|f| {
                !f.is_finished() || (matches!(f.result(), Some(Ok(()))) && f.path.is_file())
            })
            .cloned()
    }

    /// Registers a new fetch; now and then forgets those that are over.
    pub(crate) fn insert(&mut self, f: Arc<Fetch>) {
        self.map.insert(f.id, f);
        if self.map.len() >= self.sweep_at.max(SWEEP_FROM) {
            self.map.retain(|_, f| !f.is_finished() || f.path.is_file());
            self.sweep_at = (2 * self.map.len()).max(SWEEP_FROM);
        }
    }

    /// How many are held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Partial transfers untouched for this long are given up and removed.
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Removes the partial files (and their group hashes) in `dir` that no transfer has
/// touched for `STALE_AFTER`; returns how many bytes that freed.
pub(crate) fn remove_stale(dir: &Path, older_than: Duration) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut freed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let temp = e.file_name().to_string_lossy().contains(".tmp-");
        let ours = temp || path.extension().is_some_and(|x| x == "part" || x == "tree");
        let Ok(meta) = e.metadata() else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        if ours && meta.is_file() && age >= older_than && std::fs::remove_file(&path).is_ok() {
            freed += meta.len();
        }
    }
    freed
}

/// Runs a fetch to its end and reports it.
pub(crate) async fn run(shared: Arc<Shared>, link: Arc<Link>, fetch: Arc<Fetch>) {
    let _transfer = link.transfer();
    let result = fetch_all(&link, &fetch).await;
    report(&shared, &link, &fetch, result, true);
}

/// Ends a fetch: logs how it went, publishes the result, tells the peer when
/// `tell_peer` (it may be a one-off command waiting for it), and emits
/// [`NetEvent::FetchDone`].
pub(super) fn report(
    shared: &Shared,
    link: &Link,
    fetch: &Fetch,
    result: Result<(), FetchError>,
    tell_peer: bool,
) {
    match &result {
        Ok(()) => {
            let s = fetch.stats();
            tracing::info!(
                "fetched {} from {}: {} bytes verified ({} resumed from disk, {} received, {} groups repaired)",
                fetch.id.short(),
                link.name,
                fetch.size,
                s.resumed_from,
                s.received,
                s.repaired
            );
        }
        Err(e) => tracing::warn!(
            "fetching {} from {} failed: {e}",
            fetch.id.short(),
            link.name
        ),
    }
    fetch.update(|s| s.finished = Some(result.clone()));
    if tell_peer {
        tell_fetched(link, fetch, &result);
    }
    shared.emit(NetEvent::FetchDone {
        id: fetch.id,
        result,
    });
}

/// Tells the peer a fetch of its sound ended (the server may be a one-off command
/// waiting for this before it leaves).
fn tell_fetched(link: &Link, fetch: &Fetch, result: &Result<(), FetchError>) {
    link.send(crate::proto::Message::Fetched {
        id: fetch.id,
        error: result.as_ref().err().map(|e| {
            // Within the message's text limit, cut at a character boundary.
            let e = e.to_string();
            let mut end = e.len().min(crate::proto::MAX_TEXT / 2);
            while !e.is_char_boundary(end) {
                end -= 1;
            }
            e[..end].to_string()
        }),
    });
}

/// What one attempt ended with.
enum Attempt {
    /// Everything is verified.
    Done,
    /// Group `n` failed verification: ask again from there.
    Corrupt(u64),
    /// The stream broke; try again.
    Broken(FetchError),
}

/// Runs `f` on the blocking pool: file writes, fsyncs and hashing never run on the
/// network workers, so a voice datagram never waits behind a transfer.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FetchError> + Send + 'static,
) -> Result<T, FetchError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| FetchError::Worker(e.to_string()))?
}

/// `path` opened to read and write, created (with its directory) when missing.
pub(super) fn open_rw(path: &Path) -> std::io::Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            open()
        }
        r => r,
    }
}

/// The partial file opened, and what of it is verified (off the reactor).
fn open_partial(fetch: &Fetch) -> Result<(std::fs::File, Option<Arc<Verifier>>), FetchError> {
    let disk =
        |path: &Path, e: std::io::Error| FetchError::Disk(format!("{}: {e}", path.display()));
    let created = lock(&fetch.created).take();
    let file = match created {
        Some(f) => f,
        None => open_rw(&fetch.path).map_err(|e| disk(&fetch.path, e))?,
    };
    // Only a large blob ever keeps its group hashes (see `attempt`).
    let verifier = keeps_tree(fetch.size).then(|| load_tree(fetch)).flatten();
    let verified = match &verifier {
        Some(v) => {
            let (_, bytes) = v
                .verified_prefix(std::io::BufReader::new(&file))
                .map_err(|e| disk(&fetch.path, e))?;
            bytes
        }
        // Nothing on disk can be checked without the group hashes: start over.
        None => 0,
    };
    file.set_len(verified).map_err(|e| disk(&fetch.path, e))?;
    fetch.update(|s| {
        s.verified = verified;
        s.stats.resumed_from = verified;
    });
    Ok((file, verifier.map(Arc::new)))
}

async fn fetch_all(link: &Arc<Link>, fetch: &Arc<Fetch>) -> Result<(), FetchError> {
    // A small blob's partial file, made empty by `create_file`, needs no trip to the
    // blocking pool: nothing of it is resumed.
    let created = (!keeps_tree(fetch.size))
        .then(|| lock(&fetch.created).take())
        .flatten();
    let (file, mut verifier) = match created {
        Some(file) => (file, None),
        None => {
            let f = fetch.clone();
            blocking(move || open_partial(&f)).await?
        }
    };
    let file = Arc::new(file);
    if fetch.verified() > 0 {
        tracing::info!(
            "resuming {} from {}: {} bytes already verified",
            fetch.id.short(),
            link.name,
            fetch.verified()
        );
    }
    let mut attempts = 0;
    let mut repairs = 0;
    loop {
        let from = fetch.verified() / GROUP_LEN;
        if verifier.is_some() && fetch.verified() >= fetch.size {
            break;
        }
        match attempt(link, fetch, &file, &mut verifier, from).await? {
            Attempt::Done => break,
            Attempt::Corrupt(g) => {
                repairs += 1;
                fetch.update(|s| s.stats.repaired += 1);
                tracing::warn!(
                    "group {g} of {} from {} failed verification: discarded, asking again",
                    fetch.id.short(),
                    link.name
                );
                if repairs > MAX_REPAIRS {
                    return Err(FetchError::Peer(format!(
                        "{} keeps sending data that does not match the sound's id",
                        link.name
                    )));
                }
            }
            Attempt::Broken(e) => {
                attempts += 1;
                if attempts >= MAX_ATTEMPTS || link.conn.close_reason().is_some() {
                    return Err(e);
                }
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
            }
        }
    }
    // Not fsynced here: whoever keeps the file makes it durable (a copy into the
    // library is fsynced; a batch taken whole is synced at once), and a partial file
    // cut short by a crash is verified again, group by group, before it is resumed.
    drop(file);
    Ok(())
}

/// The group hashes saved by an earlier attempt, when they still check out.
fn load_tree(fetch: &Fetch) -> Option<Verifier> {
    let bytes = std::fs::read(&fetch.tree_path).ok()?;
    let cvs: Vec<tree::Cv> = bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect();
    Verifier::new(fetch.id.0, fetch.size, cvs).ok()
}

fn save_tree(fetch: &Fetch, v: &Verifier) -> std::io::Result<()> {
    let bytes: Vec<u8> = v.cvs().iter().flatten().copied().collect();
    crate::net::files::write_private(&fetch.tree_path, &bytes).map_err(|(_, e)| e)
}

/// What checking one batch of received groups found.
pub(super) struct Checked {
    /// The batch buffer, handed back for the next read.
    pub(super) buf: Vec<u8>,
    /// Bytes from the batch's start that verified and were written.
    pub(super) good: usize,
    /// The first group that failed verification.
    pub(super) bad: Option<u64>,
}

/// Verifies groups `first..last` held at the start of `buf` and writes the verified
/// prefix of them at `offset` (on the blocking pool). The buffer is handed back
/// whole (its tail is not cut off, so the next batch need not zero it again).
pub(super) fn check_and_write(
    v: &Verifier,
    file: &std::fs::File,
    path: &Path,
    buf: Vec<u8>,
    first: u64,
    last: u64,
) -> Result<Checked, FetchError> {
    let mut good = 0usize;
    let mut bad = None;
    for i in first..last {
        let at = ((i - first) * GROUP_LEN) as usize;
        let glen = v.group_len(i) as usize;
        let Some(data) = buf.get(at..at + glen) else {
            return Err(FetchError::Worker("a batch shorter than its groups".into()));
        };
        match v.verify(i, data) {
            Ok(()) => good = at + glen,
            Err(TreeError::BadGroup { index } | TreeError::BadLength { index, .. }) => {
                bad = Some(index);
                break;
            }
            Err(e) => return Err(FetchError::Peer(e.to_string())),
        }
    }
    if good > 0 {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&buf[..good], first * GROUP_LEN)
            .map_err(|e| FetchError::Disk(format!("{}: {e}", path.display())))?;
    }
    Ok(Checked { buf, good, bad })
}

async fn attempt(
    link: &Arc<Link>,
    fetch: &Arc<Fetch>,
    file: &Arc<std::fs::File>,
    verifier: &mut Option<Arc<Verifier>>,
    from: u64,
) -> Result<Attempt, FetchError> {
    let broken = |e: String| Ok(Attempt::Broken(FetchError::Connection(e)));
    let (mut send, mut recv) = match link.conn.open_bi().await {
        Ok(s) => s,
        Err(e) => return broken(e.to_string()),
    };
    let request = proto::encode(&FetchRequest {
        id: fetch.id,
        from_group: from,
    })
    .map_err(|e| FetchError::Worker(e.to_string()))?;
    if let Err(e) = send.write_all(&StreamKind::BLOB.to_bytes()).await {
        return broken(e.to_string());
    }
    if let Err(e) = write_frame(&mut send, &request).await {
        return broken(e);
    }
    let _ = send.finish();
    let frame = match read_one_frame(&mut recv).await {
        Ok(f) => f,
        Err(e) => return broken(e),
    };
    let size = match proto::decode_fetch_reply(&frame)
        .map_err(|e| FetchError::Peer(format!("{}: {e}", link.name)))?
    {
        FetchReply::Ready { size, .. } => size,
        FetchReply::Refused { message, .. } => return Err(FetchError::Peer(message)),
    };
    if size != fetch.size {
        return Err(FetchError::Peer(format!(
            "{} has {size} bytes of it, {} were announced",
            link.name, fetch.size
        )));
    }
    let mut cv_bytes = vec![0u8; (tree::cv_count(size) * 32) as usize];
    if let Err(e) = recv.read_exact(&mut cv_bytes).await {
        return broken(e.to_string());
    }
    let cvs: Vec<tree::Cv> = cv_bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect();
    let v = Verifier::new(fetch.id.0, size, cvs)
        .map_err(|e| FetchError::Peer(format!("{}: {e}", link.name)))?;
    let v = match verifier {
        Some(v) => v.clone(),
        // A small blob is not worth resuming from disk: its hashes are kept only
        // for a large one.
        None if !keeps_tree(size) => {
            let v = Arc::new(v);
            *verifier = Some(v.clone());
            v
        }
        None => {
            let v = Arc::new(v);
            let (f, saved) = (fetch.clone(), v.clone());
            blocking(move || {
                save_tree(&f, &saved)
                    .map_err(|e| FetchError::Disk(format!("{}: {e}", f.tree_path.display())))
            })
            .await?;
            *verifier = Some(v.clone());
            v
        }
    };
    // Up to BATCH groups are read at once, then verified and the verified ones
    // written with one call on the blocking pool: the stream's pace, not the disk's,
    // sets the speed. When someone waits to play the sound, the first read is one
    // group (it starts playing from that), then the batch doubles.
    const BATCH: u64 = 16;
    // Two buffers: while one batch is verified and written on the blocking pool, the
    // next is read from the network into the other. A batch is started only once the
    // one before it is settled, so the file only ever grows by verified groups, in
    // order.
    // No larger than what is left to come: a small sound does not zero a megabyte.
    let left = v.size().saturating_sub(from * GROUP_LEN).max(1);
    let cap = (GROUP_LEN * BATCH).min(left) as usize;
    let mut buf = buffers::take(cap);
    let mut spare: Option<Vec<u8>> = Some(buffers::take(cap));
    let mut inflight: Option<(tokio::task::JoinHandle<Result<Checked, FetchError>>, u64)> = None;
    let groups = v.groups();
    let mut g = from;
    let mut urgent = fetch.is_urgent();
    let mut batch = if urgent { 1 } else { BATCH };
    // Settles the batch in flight: its verified part is published; a bad group ends
    // the attempt (the stream is stopped and the group asked for again).
    macro_rules! settle {
        () => {
            if let Some((handle, offset)) = inflight.take() {
                let checked = handle
                    .await
                    .map_err(|e| FetchError::Worker(e.to_string()))??;
                if checked.good > 0 {
                    let end = offset + checked.good as u64;
                    let good = checked.good as u64;
                    fetch.update(|s| {
                        s.verified = end;
                        s.stats.received += good;
                    });
                }
                if let Some(index) = checked.bad {
                    let _ = recv.stop(quinn::VarInt::from_u32(0));
                    return Ok(Attempt::Corrupt(index));
                }
                spare = Some(checked.buf);
            }
        };
    }
    while g < groups {
        let first = g;
        if !urgent && fetch.is_urgent() {
            // A reader came: from here on, its bytes come soon.
            urgent = true;
            batch = 1;
        }
        let last = (g + batch).min(groups);
        batch = (batch * 2).min(BATCH);
        let offset = first * GROUP_LEN;
        let len = ((last - 1) * GROUP_LEN + v.group_len(last - 1) - offset) as usize;
        if let Err(e) = recv.read_exact(&mut buf[..len]).await {
            return broken(e.to_string());
        }
        settle!();
        let (v, file, path) = (v.clone(), file.clone(), fetch.path.clone());
        let data = std::mem::replace(&mut buf, spare.take().unwrap_or_else(|| buffers::take(cap)));
        inflight = Some((
            tokio::task::spawn_blocking(move || {
                check_and_write(&v, &file, &path, data, first, last)
            }),
            offset,
        ));
        g = last;
    }
    settle!();
    // Both buffers go back for the next fetch.
    buffers::give(buf);
    if let Some(s) = spare {
        buffers::give(s);
    }
    Ok(Attempt::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_over_with_their_file_gone_are_forgotten_and_the_rest_joined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fetches = Fetches::default();
        let fetch = |i: u32| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            Arc::new(Fetch::new(dir.path(), SoundId(id), 10))
        };
        // 3,000 fetches: every third still running, every third finished with its
        // file still here (not kept yet), every third finished and kept elsewhere.
        let mut all = Vec::new();
        for i in 0..3000u32 {
            let f = fetch(i);
            match i % 3 {
                0 => {}
                1 => {
                    f.create_file();
                    f.update(|s| s.finished = Some(Ok(())));
                }
                _ => f.update(|s| s.finished = Some(Ok(()))),
            }
            fetches.insert(f.clone());
            all.push(f);
        }
        assert!(fetches.len() < 3000, "swept: {}", fetches.len());
        for (i, f) in all.iter().enumerate() {
            let joined = fetches.joinable(&f.id);
            match i % 3 {
                0 | 1 => assert!(joined.is_some(), "fetch {i} is joined"),
                _ => assert!(joined.is_none(), "fetch {i} starts over"),
            }
        }
        // A failed fetch is never joined, even with a file left.
        let failed = fetch(9999);
        failed.create_file();
        failed.update(|s| s.finished = Some(Err(FetchError::Stalled(1))));
        fetches.insert(failed.clone());
        assert!(fetches.joinable(&failed.id).is_none());
    }

    #[test]
    fn only_old_partial_files_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["a.part", "a.tree", "keep.txt"] {
            std::fs::write(dir.path().join(name), b"12345").expect("write");
        }
        // Nothing is old yet.
        assert_eq!(remove_stale(dir.path(), Duration::from_secs(3600)), 0);
        // Everything of ours is, with a zero age limit; other files stay.
        assert_eq!(remove_stale(dir.path(), Duration::ZERO), 10);
        assert!(dir.path().join("keep.txt").exists());
        assert!(!dir.path().join("a.part").exists());
        assert_eq!(remove_stale(&dir.path().join("missing"), Duration::ZERO), 0);
    }
}
