//! Fetching a batch of small blobs on one stream (feature `blob-batch/1`): a
//! library's files arriving in the background, each verified whole against its id
//! (the group hashes, as a lone fetch verifies) before it is written and published.
//! A blob the batch could not bring — refused, damaged in transit, cut off with the
//! stream, or answered out of protocol — is fetched again on its own, with the lone
//! fetch's retries, repairs and error words.
//!
//! Must never: publish a byte that was not verified, write a file on a network
//! thread, or hold more than two blobs of a batch in memory.

use std::sync::Arc;

use super::buffers;
use super::fetch::{Checked, Fetch, FetchError, check_and_write, open_rw, report, run};
use super::tree::{self, Verifier};
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

/// A blob read whole, being verified and written on the blocking pool.
type Pending = (tokio::task::JoinHandle<Result<Checked, FetchError>>, usize);

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
            Next::Data(v, buf) => {
                settle(shared, link, fetches, pending.take(), &mut alone).await;
                let (file, path) = (lock(&f.created).take(), f.path().to_path_buf());
                let groups = v.groups();
                pending = Some((
                    tokio::task::spawn_blocking(move || {
                        let file = match file {
                            Some(file) => file,
                            None => open_rw(&path).map_err(|e| {
                                FetchError::Disk(format!("{}: {e}", path.display()))
                            })?,
                        };
                        check_and_write(&v, &file, &path, buf, 0, groups)
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
    /// Its tree and its bytes, unverified.
    Data(Verifier, Vec<u8>),
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
    let mut cv_bytes = vec![0u8; (tree::cv_count(size) * 32) as usize];
    if recv.read_exact(&mut cv_bytes).await.is_err() {
        return Next::Broken;
    }
    let cvs: Vec<tree::Cv> = cv_bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect();
    let Ok(v) = Verifier::new(f.id().0, size, cvs) else {
        return Next::Broken;
    };
    let mut buf = buffers::take(size as usize);
    if recv.read_exact(&mut buf).await.is_err() {
        buffers::give(buf);
        return Next::Broken;
    }
    Next::Data(v, buf)
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
        Ok(Ok(checked)) => {
            let whole = checked.bad.is_none() && checked.good as u64 == f.size();
            buffers::give(checked.buf);
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
        Ok(Err(e)) => report(shared, link, f, Err(e), false),
        Err(e) => report(
            shared,
            link,
            f,
            Err(FetchError::Worker(e.to_string())),
            false,
        ),
    }
}
