//! Requests: a feature's question and its answer on a stream of their own. The asker
//! opens a stream of the feature's kind, writes the request and finishes; the
//! feature's [`RequestHandler`] gets the bytes and answers whenever it is ready (at
//! once, or later — a long poll), through a one-shot sender, from any thread; the
//! answer goes back and the stream ends. One stream per request, so a slow answer
//! never holds up anything else on the connection.
//!
//! Never blocks a network thread: the handler must return at once, and the wait for
//! its answer is an await with a deadline.

use std::sync::Arc;
use std::time::Duration;

use super::link::Link;
use super::peer_id::PeerId;
use super::router::StreamHandler;
use super::shared::Shared;
use crate::proto::StreamKind;

/// Largest request accepted, in bytes.
pub const MAX_REQUEST: usize = 1 << 20;

/// Longest a handler may take to answer (a long poll answers well within it).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Reset code for a request that was not answered.
const UNANSWERED: u32 = 3;

/// Why an ask failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AskError {
    /// The peer refused the stream (it does not serve the kind, or we may not use
    /// it there; the peer tells us which in a notice).
    Refused,
    /// Anything else: the connection, a timeout, a dropped answer.
    Failed(String),
}

/// Answers one request: the asker, the request's bytes, and where to send the
/// answer (dropping it unanswered resets the asker's stream).
pub type RequestHandler =
    Arc<dyn Fn(&PeerId, Vec<u8>, tokio::sync::oneshot::Sender<Vec<u8>>) + Send + Sync>;

/// The stream handler that serves a feature's requests with `handler`.
pub(crate) fn serve(handler: RequestHandler) -> StreamHandler {
    Arc::new(
        move |_shared: Arc<Shared>, link: Arc<Link>, mut send, mut recv| {
            let handler = handler.clone();
            Box::pin(async move {
                let body = match recv.read_to_end(MAX_REQUEST).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!("a request from {} ended: {e}", link.name);
                        let _ = send.reset(quinn::VarInt::from_u32(UNANSWERED));
                        return;
                    }
                };
                let (tx, rx) = tokio::sync::oneshot::channel();
                handler(&link.id, body, tx);
                match tokio::time::timeout(ANSWER_WITHIN, rx).await {
                    Ok(Ok(answer)) => {
                        if send.write_all(&answer).await.is_ok() {
                            let _ = send.finish();
                            // Let the answer leave before the stream is dropped.
                            let _ = send.stopped().await;
                        }
                    }
                    _ => {
                        let _ = send.reset(quinn::VarInt::from_u32(UNANSWERED));
                    }
                }
            })
        },
    )
}

/// Asks `link` on a new stream of `kind`; the answer, at most `max_answer` bytes.
pub(crate) async fn ask(
    link: &Link,
    kind: StreamKind,
    body: &[u8],
    max_answer: usize,
) -> Result<Vec<u8>, AskError> {
    let failed = |e: &dyn std::fmt::Display| AskError::Failed(e.to_string());
    let (mut send, mut recv) = link.conn.open_bi().await.map_err(|e| failed(&e))?;
    send.write_all(&kind.to_bytes())
        .await
        .map_err(|e| failed(&e))?;
    send.write_all(body).await.map_err(|e| failed(&e))?;
    send.finish().map_err(|e| failed(&e))?;
    recv.read_to_end(max_answer).await.map_err(|e| match e {
        quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))
            if code == quinn::VarInt::from_u32(super::link::UNKNOWN_STREAM) =>
        {
            AskError::Refused
        }
        quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)) => {
            AskError::Failed("the peer did not answer".into())
        }
        quinn::ReadToEndError::TooLong => AskError::Failed(format!(
            "an answer over {max_answer} bytes, more than it may send (refused)"
        )),
        e => failed(&e),
    })
}
