//! The instance's peers: the network node wired to the instance. It answers peers'
//! triggers (from the library when the sound is here; otherwise fetching it from the
//! peer, playing as it arrives and keeping it), sends our triggers, and turns what
//! happens into lines for the owner's log or message line.
//!
//! Everything here runs on the owner's thread, one event at a time; the only work
//! done elsewhere is opening a sound that is still arriving (its reads wait for the
//! network), on a short-lived thread that hands back a prepared voice.
//!
//! By job: [`start`] brings the node up for a home; [`outgoing`] sends our triggers
//! and answers the requests waiting on them; [`incoming`] plays what peers trigger
//! here (from the library, or fetched while it plays); [`keep`] keeps a fetched
//! sound; this file routes events and reports first audio.

mod engine;
mod incoming;
mod keep;
mod outgoing;
mod remote;
mod served;
mod sharing;
mod start;
mod voice;

pub use outgoing::offer_of;
pub use voice::VoiceRole;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::control::Response;
use super::instance::Instance;
use super::player::Prepared;
use crate::domain::{SoundId, SoundMeta, chain};
use crate::net::{Fetch, NetEvent, Node, PeerId, PeerStatus, Reply};
use crate::proto::{PlayOutcome, SoundOffer};
use incoming::micros;

/// What the owner's loop hands to [`PeerHub::handle`].
pub enum HubEvent {
    /// Something from the network.
    Net(NetEvent),
    /// A sound arriving from a peer is ready to start (or failed to open).
    Ready {
        /// The sound.
        id: SoundId,
        /// Its name, as the peer offered it.
        sound: String,
        /// The peer's name.
        from: String,
        /// The peer's answer handle (`None`: a play of ours, of a remote sound).
        reply: Option<Reply>,
        /// Gain to play at, dB.
        gain_db: f32,
        /// When the trigger arrived.
        received: Instant,
        /// The prepared voice.
        result: Result<Prepared, String>,
    },
    /// Library sync merged a peer's changes here.
    Synced(crate::app::sync::SyncNews),
    /// A screen attached to this engine asks something of it.
    EngineAsk(crate::app::attach::host::EngineAsk),
    /// The engine this screen is attached to sent a frame or an answer (the loop
    /// looks at them).
    EngineFrame,
}

/// How the hub's threads reach the owner's loop.
pub type Poster = Arc<dyn Fn(HubEvent) + Send + Sync>;

/// A poster that puts each event into the owner's queue as `wrap(event)`.
pub fn poster<E: Send + 'static>(events: Sender<E>, wrap: fn(HubEvent) -> E) -> Poster {
    let events = std::sync::Mutex::new(events);
    Arc::new(move |e| {
        let _ = crate::guard::lock(&events).send(wrap(e));
    })
}

/// A fetch in progress and what to keep when it is done.
struct Arriving {
    fetch: Arc<Fetch>,
    offer: SoundOffer,
    from: String,
    peer: PeerId,
}

/// One of our triggers awaiting its answer.
struct Sent {
    peer_id: PeerId,
    peer: String,
    sound: String,
    request: Option<usize>,
}

/// How long a play on peers waits for an offline peer to connect.
const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A play on peers waiting for some of them to connect.
struct Pending {
    meta: SoundMeta,
    ids: Vec<PeerId>,
    gain_db: f32,
    reply: Sender<Response>,
    deadline: Instant,
}

/// A control request waiting for the answers of several peers.
struct Waiting {
    reply: Sender<Response>,
    left: usize,
    lines: Vec<String>,
    refused: bool,
}

/// A peer's play that started here, until its first audio is reported.
struct Started {
    voice: crate::audio::VoiceId,
    sound: String,
    from: String,
    cached: bool,
}

/// The node and what is in flight. See the module documentation.
pub struct PeerHub {
    started: Vec<Started>,
    node: Arc<Node>,
    voice: voice::Voice,
    sync: Option<crate::app::sync::SyncService>,
    /// When keyed remote sounds were last looked for.
    pins_checked: Option<Instant>,
    /// Mirrors a remote sound's file could not be fetched from, by sound.
    misses: HashMap<SoundId, Vec<PeerId>>,
    post: Poster,
    arriving: HashMap<SoundId, Arriving>,
    /// Copies of shared sounds waiting for their files, answered once kept.
    copies: Vec<sharing::PendingCopy>,
    /// Files this machine keeps that are not here yet: how many, and their bytes.
    to_fetch: (usize, u64),
    /// Blobs peers fetched from us, told per burst.
    served: served::Served,
    sent: HashMap<u64, Sent>,
    waiting: HashMap<usize, Waiting>,
    pending: Vec<Pending>,
    next_request: usize,
    notes: Vec<String>,
    log: super::activity::ActivityLog,
    /// This engine, for screens attached to it.
    engine_host: Option<crate::app::attach::host::EngineHost>,
    /// Frames of the engine this screen is attached to.
    engine_view: Arc<crate::app::attach::view::ViewInbox>,
}

/// How the hub is started.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Listen address (`None`: an ephemeral port, no dialling: one-off commands).
    pub listen: Option<std::net::SocketAddr>,
    /// Keep connections to trusted peers with addresses.
    pub dial: bool,
    /// When the listen address is in use, listen on any free port instead of failing.
    pub any_port_if_busy: bool,
    /// What to do with voice.
    pub voice: VoiceRole,
    /// Keep the library in sync with the peers marked as mirrors.
    pub sync: bool,
}

impl PeerHub {
    /// What the start had to say (a listen address in use).
    pub fn start_notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    /// The node (id, address, peers).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Every trusted peer and its state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut peers = self.node.peers();
        if let Some(sync) = &self.sync {
            for p in peers.iter_mut().filter(|p| p.sync.is_some()) {
                let Some(s) = p.id.parse().ok().and_then(|id| sync.status_of(&id)) else {
                    continue;
                };
                let state = match (&s.last_error, s.in_sync) {
                    (Some(e), _) => e.clone(),
                    (None, true) => "in sync".into(),
                    (None, false) => "syncing".into(),
                };
                // Files still to come (pinned, bound to keys, or all of them).
                p.sync_state = Some(match self.to_fetch {
                    (0, _) => state,
                    (n, bytes) => {
                        format!("{state}, {n} files ({:.1} MB) to fetch", bytes as f64 / 1e6)
                    }
                });
            }
        }
        peers
    }

    /// Blob transfers in progress towards us.
    pub fn arriving(&self) -> usize {
        self.arriving.len()
    }

    /// The ids of the peers that are connected now.
    pub fn online(&self) -> Vec<PeerId> {
        self.node
            .peers()
            .into_iter()
            .filter(|p| p.online)
            .filter_map(|p| p.id.parse().ok())
            .collect()
    }

    /// Reports, once each, when the sounds peers played here reached the speaker:
    /// the engine's time from the trigger's arrival to the callback that started it.
    pub fn poll(&mut self, instance: &Instance, notice: &mut dyn FnMut(String)) {
        use crate::audio::VoiceState;
        if !self.pending.is_empty() {
            self.run_pending();
        }
        self.fetch_pinned(instance);
        self.poll_voice();
        let log = &mut self.log;
        let mut notice = |n: String| {
            log.write(&n);
            notice(n);
        };
        for line in self.served.ended(Instant::now()) {
            notice(line);
        }
        self.started.retain(|s| {
            let latency = match instance.engine().state(s.voice) {
                Some(VoiceState::Playing {
                    trigger_to_callback,
                }) => Some(trigger_to_callback),
                Some(VoiceState::Ended(o)) => o.trigger_to_callback,
                Some(VoiceState::Queued) => return true,
                None => None,
            };
            if let Some(l) = latency {
                notice(format!(
                    "first audio of \"{}\" from {}: {:.2} ms after its trigger arrived ({})",
                    s.sound,
                    s.from,
                    l.as_secs_f64() * 1000.0,
                    if s.cached {
                        "cached"
                    } else {
                        "fetched while playing"
                    }
                ));
            }
            false
        });
    }

    /// Acts on one event; `notice` receives lines for the log.
    pub fn handle(
        &mut self,
        instance: &mut Instance,
        event: HubEvent,
        notice: &mut dyn FnMut(String),
    ) {
        let mut lines = Vec::new();
        self.handle_quietly(instance, event, &mut |n| lines.push(n));
        for n in lines {
            self.log.write(&n);
            notice(n);
        }
    }

    /// Syncs with `peer` now, on a thread of its own; `reply` gets the standing once
    /// the two libraries match, or why they do not.
    pub fn sync_now(&mut self, peer: &str, all: bool, reply: std::sync::mpsc::Sender<Response>) {
        let Some(sync) = &self.sync else {
            let _ = reply.send(Response::failure("library sync is off here"));
            return;
        };
        let found = match self.node.find(peer) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Response::bad_input(chain(&e)));
                return;
            }
        };
        let (handle, node) = (sync.handle(), self.node.clone());
        let spawned = std::thread::Builder::new()
            .name("jhack-sync-now".into())
            .spawn(move || {
                let r = match node.connect(&found, std::time::Duration::from_secs(10)) {
                    Err(e) => Response::failure(chain(&e)),
                    Ok(()) if all => match handle.sync_and_fetch_all(
                        &node,
                        &found.id,
                        std::time::Duration::from_secs(60),
                        &|_| {},
                        &|_| {},
                    ) {
                        (Ok(status), Ok((files, _))) => Response::Synced {
                            status,
                            files: Some(files),
                        },
                        (Err(e), _) | (_, Err(e)) => Response::failure(e),
                    },
                    Ok(()) => match handle.sync_once(
                        &node,
                        &found.id,
                        std::time::Duration::from_secs(60),
                        &|_| {},
                    ) {
                        Ok(status) => Response::Synced {
                            status,
                            files: None,
                        },
                        Err(e) => Response::failure(e),
                    },
                };
                let _ = reply.send(r);
            });
        if let Err(e) = spawned {
            tracing::warn!("sync: cannot start a thread: {e}");
        }
    }

    fn handle_quietly(
        &mut self,
        instance: &mut Instance,
        event: HubEvent,
        notice: &mut dyn FnMut(String),
    ) {
        match event {
            HubEvent::Net(e) => self.on_net(instance, e, notice),
            HubEvent::Ready {
                id,
                sound,
                from,
                reply,
                gain_db,
                received,
                result,
            } => {
                let outcome = match result.and_then(|p| {
                    instance
                        .play_prepared(id, p, gain_db, received)
                        .map_err(|e| chain(&e))
                }) {
                    Ok(voice) => {
                        // Not from `arriving`: a small sound may be complete and
                        // kept before it is ready to start.
                        self.started.push(Started {
                            voice,
                            sound,
                            from,
                            cached: false,
                        });
                        PlayOutcome::Started {
                            cached: false,
                            latency_us: micros(received),
                        }
                    }
                    Err(e) => {
                        notice(format!("a sound from a peer could not be played: {e}"));
                        PlayOutcome::Failed { message: e }
                    }
                };
                if let Some(reply) = reply {
                    reply.send(outcome);
                }
            }
            HubEvent::EngineAsk(ask) => {
                tracing::info!(
                    "{} asks this engine: {:?}",
                    self.node.name_of(&ask.peer),
                    ask.request
                );
                let (tx, rx) = std::sync::mpsc::channel();
                let request = ask.request.clone();
                crate::app::requests::dispatch(instance, Some(self), (request, tx), notice);
                ask.answer_from(rx);
            }
            HubEvent::EngineFrame => {}
            HubEvent::Synced(news) => {
                self.library_changed();
                if let Err(e) = instance.reload() {
                    notice(format!("the library could not be re-read: {}", chain(&e)));
                }
                if news.changed + news.removed > 0 {
                    tracing::info!(
                        "sync with {}: {} sounds changed, {} deleted",
                        news.peer,
                        news.changed,
                        news.removed
                    );
                }
                for n in news.notes {
                    notice(format!("sync with {}: {n}", news.peer));
                }
            }
        }
    }

    fn on_net(&mut self, instance: &mut Instance, e: NetEvent, notice: &mut dyn FnMut(String)) {
        match e {
            NetEvent::PeerUp { name, addr, .. } => {
                notice(format!("{name} is online ({addr})"));
                self.run_pending();
            }
            NetEvent::PeerDown { id, name, reason } => {
                notice(format!("{name} went offline: {reason}"));
                self.voice_peer_down(&id);
                if let Some(h) = &self.engine_host {
                    h.peer_down(&id);
                }
                // Its unanswered triggers will not be answered.
                let lost: Vec<u64> = self
                    .sent
                    .iter()
                    .filter(|(_, s)| s.peer_id == id)
                    .map(|(t, _)| *t)
                    .collect();
                for t in lost {
                    let message = format!("{name} went offline: {reason}");
                    self.on_result(t, PlayOutcome::Failed { message }, notice);
                }
            }
            NetEvent::Refused { reason, .. } => notice(reason),
            NetEvent::PlayRefused {
                name,
                sound,
                reason,
            } => notice(format!("refused \"{sound}\" from {name}: {reason}")),
            NetEvent::Served { name, id, bytes } => {
                self.served.add(&name, id, bytes, Instant::now());
            }
            NetEvent::Problem(p) => notice(p),
            NetEvent::Features { .. } | NetEvent::PeerFetched { .. } => {}
            // A peer that takes no voice from us refuses our call's join note as soon
            // as we connect; that is news only once we talk to it.
            NetEvent::Denied {
                name,
                message,
                feature,
                ..
            } if feature == crate::app::call::FEATURE && !self.talking() => {
                tracing::info!("{name} takes no voice from us: {message}");
            }
            NetEvent::Denied { name, message, .. } => notice(format!("{name} refused: {message}")),
            NetEvent::Play(p) => self.on_play(instance, p, notice),
            NetEvent::TriggerResult {
                trigger, outcome, ..
            } => self.on_result(trigger, outcome, notice),
            NetEvent::FetchDone { id, result } => self.on_fetched(instance, id, result, notice),
        }
    }
}
