//! Answering peers' sync asks (a mirror's) and share asks (a subscriber's), on a
//! thread of its own: an ask with changes to send is answered at once; one that
//! would get nothing is held (a long poll) until the library changes or a deadline
//! passes — long when the two libraries match, short when they differ (the asker
//! may be ahead of us, and its replica needs two caught-up answers to tell a
//! divergence from a lag). A held share ask is answered again as soon as what we
//! share with that peer changes (`peers.toml`, looked at every second).
//!
//! A request is one byte of mode ([`MAY_HOLD`] or [`ANSWER_NOW`]) and the sync (or
//! share) message.
//!
//! Must never: answer from a network thread, or hold more asks than peers could
//! reasonably make (at most [`MAX_PARKED`]; beyond that, asks are answered at once).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use super::{Shared, device_of};
use crate::guard::lock;
use crate::net::PeerId;
use crate::net::request::RequestHandler;
use crate::sync::replica::Msg;
use crate::sync::share::{self, ShareMsg};
use crate::sync::wire;

/// Longest an ask is held when the libraries match.
pub const LONG_POLL: Duration = Duration::from_secs(20);
/// Longest an ask is held when they differ.
const SHORT_POLL: Duration = Duration::from_secs(1);
/// How often held share asks look at what is shared again.
const TICK: Duration = Duration::from_secs(1);
/// Most asks held at once.
const MAX_PARKED: usize = 256;
/// Request mode: the ask may be held until there is something to send.
pub const MAY_HOLD: u8 = 0;
/// Request mode: answer at once, even with nothing (a one-off sync).
pub const ANSWER_NOW: u8 = 1;

type Reply = tokio::sync::oneshot::Sender<Vec<u8>>;

/// Which feature a request came for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sync,
    Share,
}

enum In {
    Ask {
        kind: Kind,
        peer: PeerId,
        body: Vec<u8>,
        reply: Reply,
    },
    Changed,
    Stop,
}

/// A held ask: a mirror's, or a subscriber's with the tags shared with it then.
enum Asked {
    Sync(Msg),
    Share(ShareMsg, BTreeSet<String>),
}

struct Parked {
    peer: PeerId,
    ask: Asked,
    reply: Reply,
    until: Instant,
}

/// The answering thread's handle.
pub(super) struct Server {
    tx: std::sync::Mutex<Sender<In>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts the thread; returns it with the request handlers for the node (sync,
    /// share).
    pub(super) fn start(
        shared: Arc<Shared>,
    ) -> Result<(Server, RequestHandler, RequestHandler), String> {
        let (tx, rx) = channel::<In>();
        {
            let tx = std::sync::Mutex::new(tx.clone());
            shared.lib.on_sync_change(Box::new(move || {
                let _ = lock(&tx).send(In::Changed);
            }));
        }
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("jhack-sync-serve".into())
                .spawn(move || run(&shared, &rx))
                .map_err(|e| format!("cannot start the sync thread: {e}"))?
        };
        let handler = |kind: Kind| -> RequestHandler {
            let tx = std::sync::Mutex::new(tx.clone());
            Arc::new(move |peer: &PeerId, body, reply| {
                let _ = lock(&tx).send(In::Ask {
                    kind,
                    peer: *peer,
                    body,
                    reply,
                });
            })
        };
        let (sync, share) = (handler(Kind::Sync), handler(Kind::Share));
        Ok((
            Server {
                tx: std::sync::Mutex::new(tx),
                thread: Some(thread),
            },
            sync,
            share,
        ))
    }

    pub(super) fn stop(&mut self) {
        let _ = lock(&self.tx).send(In::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, rx: &Receiver<In>) {
    let mut parked: Vec<Parked> = Vec::new();
    loop {
        // At least every second: held share asks look at the shares again.
        let wait = parked
            .iter()
            .map(|p| p.until.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(TICK)
            .min(TICK);
        match rx.recv_timeout(wait) {
            Ok(In::Ask {
                kind,
                peer,
                body,
                reply,
            }) => {
                let Some((&mode, rest)) = body.split_first() else {
                    tracing::warn!("sync: {peer} sent an empty ask; dropped");
                    continue;
                };
                let ask = match kind {
                    Kind::Sync => match wire::decode(rest) {
                        Ok(ask @ (Msg::Ask { .. } | Msg::Reconcile { answer: false, .. })) => {
                            Asked::Sync(ask)
                        }
                        Ok(Msg::Changes { .. } | Msg::Reconcile { answer: true, .. }) => {
                            tracing::warn!(
                                "sync: {peer} sent changes where an ask belongs; dropped"
                            );
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!("sync: {peer}: {e}; dropped");
                            continue;
                        }
                    },
                    Kind::Share => match share::decode(rest) {
                        Ok(ask @ ShareMsg::Ask { .. }) => Asked::Share(ask, BTreeSet::new()),
                        Ok(_) => {
                            tracing::warn!(
                                "share: {peer} sent an offer where an ask belongs; dropped"
                            );
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!("share: {peer}: {e}; dropped");
                            continue;
                        }
                    },
                };
                let now = mode == ANSWER_NOW || parked.len() >= MAX_PARKED;
                if let Some(p) = answer(shared, peer, ask, reply, now) {
                    parked.push(p);
                }
            }
            Ok(In::Changed) => {
                for p in std::mem::take(&mut parked) {
                    if let Some(p) = answer(shared, p.peer, p.ask, p.reply, false) {
                        parked.push(p);
                    }
                }
            }
            Ok(In::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let (due, held): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut parked)
            .into_iter()
            .partition(|p| p.until <= now);
        for p in due {
            let _ = answer(shared, p.peer, p.ask, p.reply, true);
        }
        // A held share ask whose shares changed is answered again.
        for p in held {
            let moved = match &p.ask {
                Asked::Share(_, tags) => shared.shares_of(&p.peer) != *tags,
                Asked::Sync(_) => false,
            };
            if !moved {
                parked.push(p);
            } else if let Some(p) = answer(shared, p.peer, p.ask, p.reply, false) {
                parked.push(p);
            }
        }
        parked.retain(|p| !p.reply.is_closed());
    }
}

/// Answers a held or new ask of either kind (see [`answer_sync`], [`answer_share`]).
fn answer(shared: &Shared, peer: PeerId, ask: Asked, reply: Reply, now: bool) -> Option<Parked> {
    match ask {
        Asked::Sync(ask) => answer_sync(shared, peer, ask, reply, now),
        Asked::Share(ask, _) => answer_share(shared, peer, ask, reply, now),
    }
}

/// Answers a subscriber's ask from what we share with it now, or gives it back to
/// be held when nothing changed for it (unless `now`).
fn answer_share(
    shared: &Shared,
    peer: PeerId,
    ask: ShareMsg,
    reply: Reply,
    now: bool,
) -> Option<Parked> {
    let tags = shared.shares_of(&peer);
    let theirs = match &ask {
        ShareMsg::Ask { fingerprint, .. } => *fingerprint,
        _ => return None,
    };
    let msg = match shared.lib.share_answer(&tags, &ask) {
        Ok(m) => m?,
        Err(e) => {
            tracing::warn!("share: answering {peer}: {e}");
            return None;
        }
    };
    let (count, full, ours) = match &msg {
        ShareMsg::Offer {
            sounds,
            full,
            fingerprint,
            ..
        } => (sounds.len(), *full, *fingerprint),
        _ => return None,
    };
    if count == 0 && !full && ours == theirs && !now {
        return Some(Parked {
            peer,
            ask: Asked::Share(ask, tags),
            reply,
            until: Instant::now() + LONG_POLL,
        });
    }
    if reply.send(share::encode(&msg)).is_ok() && count > 0 {
        shared.count_sent(&peer, count);
    }
    None
}

/// Answers a mirror's `ask`, or gives it back to be held when there is nothing to
/// send yet (unless `now`).
fn answer_sync(shared: &Shared, peer: PeerId, ask: Msg, reply: Reply, now: bool) -> Option<Parked> {
    // An ask may be held (by the fingerprint it carries); a step of a reconciliation
    // is answered at once.
    let theirs = match &ask {
        Msg::Ask { fingerprint, .. } => Some(*fingerprint),
        Msg::Reconcile { answer: false, .. } => None,
        Msg::Changes { .. } | Msg::Reconcile { .. } => return None,
    };
    let out = match shared.lib.sync_handle(device_of(&peer), ask.clone()) {
        Ok(m) => {
            // A step of a reconciliation brings the asker's records: the owner
            // hears of them as it does of a puller's.
            shared.tell(&shared.name_of(&peer), &m);
            m.reply
        }
        Err(e) => {
            tracing::warn!("sync: answering {peer}: {e}");
            return None;
        }
    };
    let msg = out?;
    let count = msg.records().len();
    // Held only when nothing at all came after the asker's cursor: an answer that
    // passes over records the asker gave us (echoes) still moves its cursor, and
    // tells it at once whether we now agree.
    if let (
        Some(theirs),
        Msg::Changes {
            fingerprint,
            since,
            upto,
            ..
        },
    ) = (theirs, &msg)
        && count == 0
        && upto <= since
        && !now
    {
        let hold = if *fingerprint == theirs {
            LONG_POLL
        } else {
            SHORT_POLL
        };
        return Some(Parked {
            peer,
            ask: Asked::Sync(ask),
            reply,
            until: Instant::now() + hold,
        });
    }
    if reply.send(wire::encode(&msg)).is_ok() && count > 0 {
        shared.count_sent(&peer, count);
    }
    None
}
