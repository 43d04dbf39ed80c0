//! What a feature sends with: datagrams and feature messages to connected peers, from
//! any thread, without the [`Node`](super::Node) itself. A feature's handlers are made
//! before the node starts; the one that must answer or forward (the voice relay)
//! gets an outbox once it runs.
//!
//! Never blocks and never queues: a datagram goes to QUIC at once or fails.

use std::sync::Arc;

use super::node::NetError;
use super::peer_id::PeerId;
use super::shared::Shared;

/// A cheap, cloneable handle for sending to peers. See the module documentation.
#[derive(Clone)]
pub struct Outbox {
    pub(super) shared: Arc<Shared>,
}

impl Outbox {
    /// A peer's name as trusted here (its short id otherwise).
    pub fn name_of(&self, id: &PeerId) -> String {
        self.shared
            .trusted(id)
            .map_or_else(|| id.short(), |p| p.name)
    }

    /// Sends one datagram of `kind` to `peer` at once (no queue of ours; QUIC keeps a
    /// few and drops the oldest when the path is congested, so nothing stale is sent
    /// late). Cheap and non-blocking: callable from any thread.
    pub fn send_datagram(&self, peer: &PeerId, kind: u8, payload: &[u8]) -> Result<(), NetError> {
        self.send_datagram_parts(peer, kind, &[payload])
    }

    /// [`Outbox::send_datagram`] of the concatenation of `parts` (one copy, into the
    /// datagram itself).
    pub fn send_datagram_parts(
        &self,
        peer: &PeerId,
        kind: u8,
        parts: &[&[u8]],
    ) -> Result<(), NetError> {
        let fail = |reason: String| NetError::Datagram {
            name: self.name_of(peer),
            reason,
        };
        let Some(link) = self.shared.link(peer) else {
            return Err(fail("not connected".into()));
        };
        let len = parts.iter().map(|p| p.len()).sum::<usize>();
        let mut d = bytes::BytesMut::with_capacity(len + 1);
        d.extend_from_slice(&[kind]);
        for p in parts {
            d.extend_from_slice(p);
        }
        link.conn
            .send_datagram(d.freeze())
            .map_err(|e| fail(e.to_string()))
    }

    /// The largest datagram payload `peer`'s path takes now (kind byte excluded).
    pub fn max_datagram(&self, peer: &PeerId) -> Option<usize> {
        let link = self.shared.link(peer)?;
        let path = link.conn.max_datagram_size()?;
        Some(
            path.min(super::transport::DATAGRAM_QUEUE_BYTES / 2)
                .saturating_sub(1),
        )
    }

    /// Sends a feature message of `kind` to `peer`.
    pub fn send_feature(&self, peer: &PeerId, kind: u16, body: Vec<u8>) -> Result<(), NetError> {
        let Some(link) = self.shared.link(peer) else {
            return Err(NetError::Offline {
                name: self.name_of(peer),
                reason: "not connected".into(),
            });
        };
        link.send(crate::proto::Message::Feature { kind, body });
        Ok(())
    }

    /// Whether `peer` is connected and speaks `feature`.
    pub fn speaks(&self, peer: &PeerId, feature: &str) -> bool {
        self.shared.link(peer).is_some_and(|l| l.speaks(feature))
    }
}
