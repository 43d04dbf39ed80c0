//! A voice relay for `jhack serve`: people behind NAT meet at a server, which
//! forwards each voice datagram to every other member of the group at once. It
//! forwards rather than mixes: a mix would need a jitter buffer, a decode and an
//! encode per listener (at least a frame more delay and the server's CPU per member);
//! forwarding adds one hop and no buffering, and each listener's own jitter buffer
//! deals with each talker separately.
//!
//! A member is a peer allowed to talk here (`voice`) that joined (a call note), or
//! whose voice arrived; it leaves with its note or when it cannot be reached. A
//! forwarded datagram carries the talker's id ([`datagram_kind::VOICE_RELAYED`]), so
//! listeners keep one playout per talker and name it "via" this server.
//!
//! Runs on the network thread: never blocks and never decodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::FEATURE;
use crate::net::{DatagramHandler, Feature, MessageHandler, Outbox, PeerId, Permission};
use crate::proto::{datagram_kind, feature_kind};
use crate::voice::report::CallNote;

/// Most members one relay keeps (each forwarded datagram goes to all the others).
pub const MAX_MEMBERS: usize = 32;

/// See the module documentation.
#[derive(Default)]
pub struct VoiceRelay {
    members: Mutex<HashMap<PeerId, String>>,
    out: OnceLock<Outbox>,
    forwarded: AtomicU64,
    failed: AtomicU64,
}

/// What a relay did, for its owner's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Members now, by name.
    pub members: Vec<String>,
    /// Datagrams forwarded (one per listener).
    pub forwarded: u64,
    /// Datagrams that could not be forwarded.
    pub failed: u64,
}

impl VoiceRelay {
    /// A relay with no members, not yet attached to a node.
    pub fn new() -> Arc<VoiceRelay> {
        Arc::new(VoiceRelay::default())
    }

    /// Where forwarded datagrams go out; until then voice is dropped.
    pub fn attach(&self, out: Outbox) {
        let _ = self.out.set(out);
    }

    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<PeerId, String>> {
        crate::guard::lock(&self.members)
    }

    fn join(&self, peer: &PeerId) -> bool {
        let mut m = self.members();
        if m.contains_key(peer) {
            return false;
        }
        if m.len() >= MAX_MEMBERS {
            tracing::warn!("voice relay: full ({MAX_MEMBERS} members); one more refused");
            return false;
        }
        let name = self
            .out
            .get()
            .map_or_else(|| peer.short(), |o| o.name_of(peer));
        tracing::info!("voice relay: {name} joined");
        m.insert(*peer, name);
        true
    }

    /// `peer` is gone (hung up, offline): it is no longer forwarded to.
    pub fn leave(&self, peer: &PeerId, why: &str) {
        if let Some(name) = self.members().remove(peer) {
            tracing::info!("voice relay: {name} left ({why})");
        }
    }

    /// Forwards a talker's datagram to every other member. Sending never blocks, so
    /// it runs under the members' lock; nothing is allocated unless a member has
    /// gone (it is dropped once the lock is released).
    fn forward(&self, from: &PeerId, packet: &[u8]) {
        let Some(out) = self.out.get() else {
            return;
        };
        self.join(from);
        let mut gone: Vec<(PeerId, String)> = Vec::new();
        for to in self.members().keys().filter(|p| *p != from) {
            match out.send_datagram_parts(
                to,
                datagram_kind::VOICE_RELAYED,
                &[from.as_bytes(), packet],
            ) {
                Ok(()) => {
                    self.forwarded.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    if out.max_datagram(to).is_none() {
                        gone.push((*to, e.to_string()));
                    }
                }
            }
        }
        for (to, why) in gone {
            self.leave(&to, &why);
        }
    }

    /// The feature to plug into the node: talkers need `voice` here.
    pub fn feature(self: &Arc<Self>) -> Feature {
        let me = self.clone();
        let datagram: DatagramHandler = Arc::new(move |peer, bytes, _| me.forward(peer, &bytes));
        let me = self.clone();
        let note: MessageHandler = Arc::new(move |peer, body| match CallNote::decode(body) {
            Some(n) if n.joined => {
                me.join(peer);
            }
            Some(_) => me.leave(peer, "hung up"),
            None => {}
        });
        // Listeners' reports name the talker's stream; through a relay they go to the
        // relay, which has no use for them.
        let report: MessageHandler = Arc::new(|_, _| {});
        Feature {
            name: FEATURE,
            permission: Permission::Voice,
            datagrams: vec![(datagram_kind::VOICE, datagram)],
            messages: vec![
                (feature_kind::VOICE_REPORT, report),
                (feature_kind::VOICE_CALL, note),
            ],
            requests: vec![],
        }
    }

    /// Its figures now.
    pub fn stats(&self) -> RelayStats {
        let mut members: Vec<String> = self.members().values().cloned().collect();
        members.sort();
        RelayStats {
            members,
            forwarded: self.forwarded.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// A relayed datagram's talker and packet; `None` when it is too short.
pub fn unwrap_relayed(bytes: &[u8]) -> Option<(PeerId, &[u8])> {
    if bytes.len() < 20 {
        return None;
    }
    let (id, packet) = bytes.split_at(20);
    let id = PeerId::from_bytes(id.try_into().ok()?)?;
    Some((id, packet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_datagrams_name_their_talker_and_short_ones_are_refused() {
        let id = PeerId::from_public_key(b"someone");
        let mut d = id.as_bytes().to_vec();
        d.extend_from_slice(&[1, 2, 3]);
        let (who, packet) = unwrap_relayed(&d).expect("a relayed datagram");
        assert_eq!(who, id);
        assert_eq!(packet, &[1, 2, 3]);
        assert!(unwrap_relayed(&d[..19]).is_none());
        assert!(unwrap_relayed(&[]).is_none());
    }

    #[test]
    fn members_join_by_note_or_voice_and_leave_by_note() {
        let r = VoiceRelay::new();
        let a = PeerId::from_public_key(b"a");
        let b = PeerId::from_public_key(b"b");
        assert!(r.join(&a));
        assert!(!r.join(&a), "once");
        // Unattached: voice is dropped, nobody joins through it.
        r.forward(&b, &[0; 8]);
        assert_eq!(r.stats().members.len(), 1);
        r.leave(&a, "test");
        assert!(r.stats().members.is_empty());
        for i in 0..MAX_MEMBERS + 3 {
            r.join(&PeerId::from_public_key(format!("p{i}").as_bytes()));
        }
        assert_eq!(r.stats().members.len(), MAX_MEMBERS);
    }
}
