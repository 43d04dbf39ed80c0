//! Serving a batch of small blobs on one stream a peer opened: one framed
//! [`FetchBatchRequest`], then each blob in the request's order answered as a blob
//! stream answers one (a framed [`FetchReply`](crate::proto::FetchReply), its group
//! hashes, its bytes), then the end of the stream.
//!
//! A library's thousand small files cost a thousand streams, tasks and trips to the
//! blocking pool one by one; a batch costs one of each per batch. Each blob is
//! checked as a lone fetch is (permission, read policy, its id), and a refusal of
//! one does not end the batch. One reader on the blocking pool reads the files in
//! order, a few ahead of the stream.
//!
//! Must never: read a file on a network thread, hold more than a few blobs of the
//! batch in memory, or send a blob that no longer hashes to its id.

use std::sync::Arc;

use super::serve::{BLOB_PRIORITY, Sent, access, answer, look, lookup, read_request, refuse};
use crate::net::events::NetEvent;
use crate::net::link::Link;
use crate::net::shared::Shared;
use crate::proto::{self, Refusal};

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
    // What may be sent is decided here, where the trust store is; the reading, the
    // read policy and the hashing on one trip to the blocking pool for the batch.
    let mut lookups = Vec::with_capacity(request.ids.len());
    for id in &request.ids {
        lookups.push((
            *id,
            access(&shared, &link, id).map(|p| lookup(&shared, *id, p)),
        ));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for (id, l) in lookups {
            let looked = l.map(look);
            if tx.blocking_send((id, looked)).is_err() {
                return;
            }
        }
    });
    let mut served = 0;
    while let Some((id, looked)) = rx.recv().await {
        let sent = match looked {
            Ok(looked) => answer(&shared, &link, &mut send, &id, 0, looked, true).await,
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
