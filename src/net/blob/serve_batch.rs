//! Serving a batch of small blobs on one stream a peer opened: one framed
//! [`FetchBatchRequest`](crate::proto::FetchBatchRequest), then each blob in the
//! request's order answered with a framed [`FetchReply`] and, when it is `Ready`,
//! its bytes whole; then the end of the stream.
//!
//! A library's thousand small files cost a thousand streams, tasks and trips to the
//! blocking pool one by one; a batch costs one of each per batch. Each blob is
//! checked as a lone fetch is (permission, read policy), and a refusal of one does
//! not end the batch. One reader on the blocking pool reads the files in order, a
//! few ahead of the stream. A batch's blob is not hashed here: its receiver hashes
//! the whole against its id before keeping a byte, and asks for one that fails
//! again alone — a lone fetch, which checks the blob here and says so when it is
//! damaged.
//!
//! Must never: read a file on a network thread, hold more than a few blobs of the
//! batch in memory, or send a blob larger than [`BATCH_BLOB_MAX`].

use std::sync::Arc;

use super::BATCH_BLOB_MAX;
use super::serve::{
    BLOB_PRIORITY, LookedWhole, Lookup, Pace, Sent, access, look_whole, read_request, refuse,
    refuse_denied, reply,
};
use crate::domain::SoundId;
use crate::net::events::NetEvent;
use crate::net::link::Link;
use crate::net::shared::Shared;
use crate::proto::{self, FetchReply, GROUP_LEN, Refusal};

/// Blobs read ahead of the stream.
const READ_AHEAD: usize = 3;

pub(crate) async fn serve_batch_stream(
    shared: Arc<Shared>,
    link: Arc<Link>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let Some(request) = read_request(
        &link,
        &mut send,
        &mut recv,
        proto::decode_fetch_batch_request,
    )
    .await
    else {
        return;
    };
    let _transfer = link.transfer();
    let _ = send.set_priority(BLOB_PRIORITY);
    // What may be sent is decided here, where the trust store is; the reading and
    // the read policy on one trip to the blocking pool for the batch.
    let mut lookups = Vec::with_capacity(request.ids.len());
    for id in &request.ids {
        lookups.push((
            *id,
            access(&shared, &link, id).map(|p| Lookup::new(&shared, *id, p)),
        ));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for (id, l) in lookups {
            let looked = l.map(|l| look_whole(l, BATCH_BLOB_MAX));
            if tx.blocking_send((id, looked)).is_err() {
                return;
            }
        }
    });
    let mut served = 0;
    while let Some((id, looked)) = rx.recv().await {
        let sent = match looked {
            Ok(looked) => answer_whole(&shared, &link, &mut send, &id, looked).await,
            // No read permission: every blob of the batch is refused, in order.
            Err(m) => refuse(&mut send, Refusal::NotAllowed, m).await,
        };
        match sent {
            Ok(Sent::Bytes(bytes)) => {
                served += 1;
                shared.tell_served(NetEvent::Served {
                    name: link.name.clone(),
                    id,
                    bytes,
                });
            }
            Ok(Sent::Refused(m)) => {
                tracing::info!("sending {} to {} stopped: {m}", id.short(), link.name);
            }
            Err(e) => {
                tracing::info!("a batch to {} stopped after {served} blobs: {e}", link.name);
                drop(rx);
                let _ = reader.await;
                return;
            }
        }
    }
    let _ = send.finish();
    let _ = reader.await;
}

/// Answers one blob of a batch: its reply and its bytes whole, or a refusal.
async fn answer_whole(
    shared: &Arc<Shared>,
    link: &Link,
    send: &mut quinn::SendStream,
    id: &SoundId,
    looked: LookedWhole,
) -> Result<Sent, String> {
    let bytes = match looked {
        LookedWhole::Bytes(b) => b,
        LookedWhole::Denied(d) => return refuse_denied(shared, link, send, id, d).await,
        LookedWhole::TooLarge(size) => {
            let m = format!(
                "{} is too large to send in a batch ({size} bytes)",
                id.short()
            );
            return refuse(send, Refusal::TooLarge, m).await;
        }
        LookedWhole::Failed(e) => return refuse(send, Refusal::Unavailable, e).await,
    };
    reply(
        send,
        &FetchReply::Ready {
            size: bytes.len() as u64,
            group_len: GROUP_LEN,
        },
    )
    .await?;
    let mut pace = Pace::new(shared);
    pace.send(shared, send, 0, bytes).await?;
    Ok(Sent::Bytes(pace.sent))
}
