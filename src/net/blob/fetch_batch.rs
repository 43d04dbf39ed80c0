//! Fetching a batch of small blobs on one stream (feature `blob-batch/2`): a
//! library's files arriving in the background, each read into one buffer, hashed
//! whole and compared with its id before it is written and published. (Hashing
//! QUIC's pieces as they come, without the copy, was slower: BLAKE3 hashes a
//! megabyte in one call several chunks at a time, and a packet's few kilobytes at a
//! time it cannot — 3x the hashing time, measured.) A blob the batch could not
//! bring — refused, damaged in transit, cut off with the stream, or answered out of
//! protocol — is fetched again on its own, with the lone fetch's retries, repairs
//! and error words.
//!
//! Must never: publish a byte that was not verified, write a file on a network
//! thread, or hold more than two blobs of a batch in memory.

use std::sync::Arc;

use super::fetch::{Fetch, FetchError, open_rw, report, run};
use super::{buffers, direct};
use crate::net::framed::{read_one_frame, write_frame};
use crate::net::link::Link;
use crate::net::shared::{Shared, lock};
use crate::proto::{self, FetchBatchRequest, FetchReply, StreamKind};

/// Largest blob a batch asks for: a larger one is fetched alone, a group at a time
/// (it may be resumed, and may be played while it arrives).
pub const BATCH_BLOB_MAX: u64 = 1 << 20;

/// Fetches `fetches` (each at most [`BATCH_BLOB_MAX`] bytes, none empty) from `link`
/// on one stream; what the batch could not bring is fetched alone.
pub(crate) async fn run_batch(shared: Arc<Shared>, link: Arc<Link>, fetches: Vec<Arc<Fetch>>) {
    let _transfer = link.transfer();
    let alone = fetch_batch(&shared, &link, &fetches).await;
    for f in alone {
        tokio::spawn(run(shared.clone(), link.clone(), f));
    }
}

/// A blob read whole, being verified and written on the blocking pool: whether it
/// matched its id (and was written), with its buffer to hand back; and its index
/// in the batch.
type Pending = (
    tokio::task::JoinHandle<(Result<bool, FetchError>, Vec<u8>)>,
    usize,
);

/// The batch's stream; returns the fetches to run alone.
async fn fetch_batch(shared: &Shared, link: &Link, fetches: &[Arc<Fetch>]) -> Vec<Arc<Fetch>> {
    let request = FetchBatchRequest {
        ids: fetches.iter().map(|f| f.id()).collect(),
    };
    let Ok(request) = proto::encode(&request) else {
        return fetches.to_vec();
    };
    let Ok((mut send, mut recv)) = link.conn.open_bi().await else {
        return fetches.to_vec();
    };
    if send
        .write_all(&StreamKind::BLOB_BATCH.to_bytes())
        .await
        .is_err()
        || write_frame(&mut send, &request).await.is_err()
    {
        return fetches.to_vec();
    }
    let _ = send.finish();
    let mut alone = Vec::new();
    // One blob is verified and written while the next is read.
    let mut pending: Option<Pending> = None;
    for (i, f) in fetches.iter().enumerate() {
        match next_blob(&mut recv, f).await {
            Next::Data(buf, start) => {
                settle(shared, link, fetches, pending.take(), &mut alone).await;
                let (file, path, id) = (lock(&f.created).take(), f.path().to_path_buf(), f.id());
                pending = Some((
                    tokio::task::spawn_blocking(move || {
                        let kept = check_and_keep(&buf[start..], &id.0, file, &path);
                        (kept, buf)
                    }),
                    i,
                ));
            }
            Next::Refused(message) => {
                report(shared, link, f, Err(FetchError::Peer(message)), false)
            }
            Next::Broken => {
                settle(shared, link, fetches, pending.take(), &mut alone).await;
                let _ = recv.stop(quinn::VarInt::from_u32(0));
                alone.extend(fetches[i..].iter().cloned());
                return alone;
            }
        }
    }
    settle(shared, link, fetches, pending.take(), &mut alone).await;
    alone
}

/// What the stream brought for one blob.
enum Next {
    /// A buffer holding its bytes, unverified, from the offset given (where they
    /// start on a block boundary, for [`direct::write_blob`]).
    Data(Vec<u8>, usize),
    /// The peer refused it (the batch goes on).
    Refused(String),
    /// The stream broke or went out of step: the rest are fetched alone.
    Broken,
}

async fn next_blob(recv: &mut quinn::RecvStream, f: &Fetch) -> Next {
    let Ok(frame) = read_one_frame(recv).await else {
        return Next::Broken;
    };
    let size = match proto::decode_fetch_reply(&frame) {
        Ok(FetchReply::Ready { size, .. }) if size == f.size() && size <= BATCH_BLOB_MAX => size,
        Ok(FetchReply::Refused { message, .. }) => return Next::Refused(message),
        // Another size than announced, or a frame out of protocol: the lone fetch
        // asks again and says what is wrong.
        _ => return Next::Broken,
    };
    // Appended as QUIC hands the pieces over, from a block boundary on: one copy,
    // nothing zeroed first but the few bytes before the boundary.
    let size = size as usize;
    let mut buf = buffers::take_empty(size + direct::ALIGN);
    let start = direct::aligned_start(&buf);
    buf.resize(start, 0);
    let end = start + size;
    while buf.len() < end {
        match recv.read_chunk(end - buf.len(), true).await {
            Ok(Some(c)) => buf.extend_from_slice(&c.bytes),
            Ok(None) | Err(_) => {
                buffers::give(buf);
                return Next::Broken;
            }
        }
    }
    Next::Data(buf, start)
}

/// Writes `buf` as the blob's file when it hashes to `id` (a blob's id is the
/// BLAKE3 hash of its whole file), past the page cache where it can
/// ([`direct`]); whether it did. On the blocking pool.
fn check_and_keep(
    buf: &[u8],
    id: &[u8; 32],
    file: Option<std::fs::File>,
    path: &std::path::Path,
) -> Result<bool, FetchError> {
    if blake3::hash(buf).as_bytes() != id {
        return Ok(false);
    }
    let disk = |e: std::io::Error| FetchError::Disk(format!("{}: {e}", path.display()));
    let file = match file {
        Some(file) => file,
        None => open_rw(path).map_err(disk)?,
    };
    direct::write_blob(&file, buf).map_err(disk)?;
    Ok(true)
}

/// Waits for the blob being verified and written, and publishes it; a blob that
/// did not verify is fetched again alone.
async fn settle(
    shared: &Shared,
    link: &Link,
    fetches: &[Arc<Fetch>],
    pending: Option<Pending>,
    alone: &mut Vec<Arc<Fetch>>,
) {
    let Some((handle, i)) = pending else {
        return;
    };
    let Some(f) = fetches.get(i) else {
        return;
    };
    match handle.await {
        Ok((kept, buf)) => {
            buffers::give(buf);
            settled(shared, link, f, kept, alone);
        }
        Err(e) => report(
            shared,
            link,
            f,
            Err(FetchError::Worker(e.to_string())),
            false,
        ),
    }
}

/// Publishes a blob that was verified and written, or has it fetched again alone.
fn settled(
    shared: &Shared,
    link: &Link,
    f: &Arc<Fetch>,
    kept: Result<bool, FetchError>,
    alone: &mut Vec<Arc<Fetch>>,
) {
    match kept {
        Ok(whole) => {
            if whole {
                let size = f.size();
                f.update(|s| {
                    s.verified = size;
                    s.stats.received += size;
                });
                report(shared, link, f, Ok(()), false);
            } else {
                tracing::warn!(
                    "{} from {} failed verification in a batch: fetched again alone",
                    f.id().short(),
                    link.name
                );
                alone.push(f.clone());
            }
        }
        Err(e) => report(shared, link, f, Err(e), false),
    }
}
