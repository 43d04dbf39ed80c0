//! Our triggers on peers: sending them (dialling peers not connected yet and waiting a
//! moment for them), and turning their answers into lines and into the answer of the
//! control request that asked.

use std::sync::mpsc::Sender;
use std::time::Instant;

use super::{CONNECT_WAIT, PeerHub, Pending, Sent, Waiting};
use crate::app::control::Response;
use crate::domain::{SoundMeta, chain};
use crate::net::PeerId;
use crate::proto::{PlayOutcome, SoundOffer};

impl PeerHub {
    /// Triggers `meta` on each of `peers` at `gain_db`; returns a line per peer that
    /// could not be asked (offline).
    pub fn trigger(&mut self, meta: &SoundMeta, peers: &[PeerId], gain_db: f32) -> Vec<String> {
        self.trigger_for(meta, peers, gain_db, None)
    }

    pub(super) fn trigger_for(
        &mut self,
        meta: &SoundMeta,
        peers: &[PeerId],
        gain_db: f32,
        request: Option<usize>,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for p in peers {
            match self.node.trigger(p, offer_of(meta), gain_db) {
                Ok(t) => {
                    let peer = self.node.name_of(p);
                    self.sent.insert(
                        t,
                        Sent {
                            peer_id: *p,
                            peer,
                            sound: meta.name.clone(),
                            request,
                        },
                    );
                }
                Err(e) => failed.push(chain(&e)),
            }
        }
        failed
    }

    /// Plays `meta` on the named peers and answers `reply` once each has started or
    /// refused (a control request: `jhack play SOUND --peer P` with a jhack running).
    pub fn play_on(
        &mut self,
        meta: &SoundMeta,
        names: &[String],
        gain_db: f32,
        reply: Sender<Response>,
    ) {
        let mut ids = Vec::new();
        for n in names {
            match self.node.find(n) {
                Ok(p) => ids.push(p.id),
                Err(e) => {
                    let _ = reply.send(Response::bad_input(chain(&e)));
                    return;
                }
            }
        }
        // Peers not connected yet are dialled now; the play waits for them a moment.
        let online = self.online();
        let offline: Vec<PeerId> = ids
            .iter()
            .filter(|i| !online.contains(i))
            .copied()
            .collect();
        if let Some(no_addr) = offline.iter().find(|i| !self.node.dial_now(i)) {
            let _ = reply.send(Response::bad_input(format!(
                "{} is offline, and no address is known to dial it",
                self.node.name_of(no_addr)
            )));
            return;
        }
        self.pending.push(Pending {
            meta: meta.clone(),
            ids,
            gain_db,
            reply,
            deadline: Instant::now() + CONNECT_WAIT,
        });
        self.run_pending();
    }

    /// Sends the plays whose peers are all connected; fails those still waiting
    /// past their deadline.
    pub(super) fn run_pending(&mut self) {
        let online = self.online();
        let now = Instant::now();
        let (ready, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.ids.iter().all(|i| online.contains(i)) || now >= p.deadline);
        self.pending = waiting;
        for p in ready {
            let missing: Vec<String> = p
                .ids
                .iter()
                .filter(|i| !online.contains(i))
                .map(|i| {
                    let why = self
                        .node
                        .last_error(i)
                        .unwrap_or_else(|| "no answer".into());
                    format!("{} is offline: {why}", self.node.name_of(i))
                })
                .collect();
            if !missing.is_empty() {
                let _ = p.reply.send(Response::bad_input(missing.join("; ")));
                continue;
            }
            self.send_play(&p.meta, &p.ids, p.gain_db, p.reply);
        }
    }

    pub(super) fn send_play(
        &mut self,
        meta: &SoundMeta,
        ids: &[PeerId],
        gain_db: f32,
        reply: Sender<Response>,
    ) {
        let request = self.next_request;
        self.next_request += 1;
        let before = self.sent.len();
        let failed = self.trigger_for(meta, ids, gain_db, Some(request));
        if !failed.is_empty() {
            // A peer that went offline meanwhile: the request fails (the ones asked
            // still play).
            for (_, s) in self.sent.iter_mut() {
                if s.request == Some(request) {
                    s.request = None;
                }
            }
            let _ = reply.send(Response::bad_input(failed.join("; ")));
            return;
        }
        self.waiting.insert(
            request,
            Waiting {
                reply,
                left: self.sent.len() - before,
                lines: Vec::new(),
                refused: false,
            },
        );
    }

    pub(super) fn on_result(
        &mut self,
        trigger: u64,
        outcome: PlayOutcome,
        notice: &mut dyn FnMut(String),
    ) {
        let Some(s) = self.sent.remove(&trigger) else {
            return;
        };
        let (line, refused) = match &outcome {
            PlayOutcome::Started { cached, .. } => (
                format!(
                    "\"{}\" playing on {}{}",
                    s.sound,
                    s.peer,
                    if *cached { "" } else { " (sent to it)" }
                ),
                false,
            ),
            PlayOutcome::Refused { message, .. } => (
                format!("{} refused \"{}\": {message}", s.peer, s.sound),
                true,
            ),
            PlayOutcome::Failed { message } => (
                format!("\"{}\" failed on {}: {message}", s.sound, s.peer),
                true,
            ),
        };
        notice(line.clone());
        let Some(r) = s.request else {
            return;
        };
        let Some(w) = self.waiting.get_mut(&r) else {
            return;
        };
        w.lines.push(line);
        w.refused |= refused;
        w.left = w.left.saturating_sub(1);
        if w.left == 0
            && let Some(w) = self.waiting.remove(&r)
        {
            let text = w.lines.join("; ");
            let _ = w.reply.send(if w.refused {
                // A refusal (or a failure there) is the request's answer: status 2.
                Response::bad_input(text)
            } else {
                Response::Ok { message: text }
            });
        }
    }
}

/// What a peer needs to know of one of our sounds to play (or fetch) it.
pub fn offer_of(m: &SoundMeta) -> SoundOffer {
    SoundOffer {
        id: m.id,
        size: m.size,
        name: m.name.clone(),
        format: m.format.clone(),
        frames: m.frames,
        sample_rate: m.sample_rate,
        channels: m.channels,
        loudness_lufs: m.loudness_lufs,
    }
}
