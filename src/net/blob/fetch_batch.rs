//! Fetching a batch of small blobs on one stream (feature `blob-batch/2`): a
//! library's files arriving in the background, each hashed whole and compared with
//! its id before it is written and published. The bytes are kept as QUIC hands
//! them over (no copy into a buffer of ours), hashed in order and written with one
//! vectored write. A blob the batch could not bring — refused, damaged in transit,
//! cut off with the stream, or answered out of protocol — is fetched again on its
//! own, with the lone fetch's retries, repairs and error words.
//!
//! Must never: publish a byte that was not verified, write a file on a network
//! thread, or hold more than two blobs of a batch in memory.

use std::sync::Arc;

use bytes::Bytes;

use super::fetch::{Fetch, FetchError, open_rw, report, run};
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
/// matched its id (and was written), and its index in the batch.
type Pending = (tokio::task::JoinHandle<Result<bool, FetchError>>, usize);

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
            Next::Data(chunks) => {
                settle(shared, link, fetches, pending.take(), &mut alone).await;
                let (file, path, id) = (lock(&f.created).take(), f.path().to_path_buf(), f.id());
                pending = Some((
                    tokio::task::spawn_blocking(move || {
                        if !hashes_to(&chunks, &id.0) {
                            return Ok(false);
                        }
                        let disk = |e: std::io::Error| {
                            FetchError::Disk(format!("{}: {e}", path.display()))
                        };
                        let file = match file {
                            Some(file) => file,
                            None => open_rw(&path).map_err(disk)?,
                        };
                        write_all_at(&file, &chunks, 0).map_err(disk)?;
                        Ok(true)
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
    /// Its bytes, unverified, as QUIC handed them over.
    Data(Vec<Bytes>),
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
    let mut chunks = Vec::new();
    let mut left = size as usize;
    while left > 0 {
        match recv.read_chunk(left, true).await {
            Ok(Some(c)) => {
                left -= c.bytes.len();
                chunks.push(c.bytes);
            }
            Ok(None) | Err(_) => return Next::Broken,
        }
    }
    Next::Data(chunks)
}

/// Whether `chunks`, in order, hash to `id` (a blob's id is the BLAKE3 hash of its
/// whole file).
fn hashes_to(chunks: &[Bytes], id: &[u8; 32]) -> bool {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c);
    }
    h.finalize().as_bytes() == id
}

/// Writes `chunks`, in order, at `offset` of `file`: vectored writes of up to
/// `IOV_MAX` pieces each, again for whatever a write left.
fn write_all_at(file: &std::fs::File, chunks: &[Bytes], offset: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    /// The POSIX minimum of `IOV_MAX` (Linux allows 1,024).
    const IOV_MAX: usize = 1024;
    let (mut i, mut skip, mut at) = (0usize, 0usize, offset);
    while i < chunks.len() {
        let iov: Vec<libc::iovec> = chunks[i..(i + IOV_MAX).min(chunks.len())]
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let c = if k == 0 { &c[skip..] } else { &c[..] };
                libc::iovec {
                    iov_base: c.as_ptr() as *mut libc::c_void,
                    iov_len: c.len(),
                }
            })
            .collect();
        let Ok(pos) = libc::off_t::try_from(at) else {
            return Err(std::io::Error::other("offset past the file size limit"));
        };
        // SAFETY: every iovec points into a chunk that outlives the call, with its
        // length; the descriptor is the open file's; the count is at most IOV_MAX.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), iov.len() as i32, pos) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let mut n = n as usize;
        at += n as u64;
        // Past what was written: whole chunks, then into the next one.
        while n > 0 && i < chunks.len() {
            let rest = chunks[i].len() - skip;
            if n >= rest {
                n -= rest;
                i += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
    Ok(())
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
        Ok(Ok(whole)) => {
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
