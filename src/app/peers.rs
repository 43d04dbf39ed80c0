//! The instance's peers: the network node wired to the instance. It answers peers'
//! triggers (from the library when the sound is here; otherwise fetching it from the
//! peer, playing as it arrives and keeping it), sends our triggers, and turns what
//! happens into lines for the owner's log or message line.
//!
//! Everything here runs on the owner's thread, one event at a time; the only work
//! done elsewhere is opening a sound that is still arriving (its reads wait for the
//! network), on a short-lived thread that hands back a prepared voice.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::control::Response;
use super::growing::GrowingFile;
use super::instance::Instance;
use super::player::{self, OpenedFile, Prepared};
use crate::domain::{Origin, SoundId, SoundMeta, chain};
use crate::home::Home;
use crate::library::NewSound;
use crate::net::{
    EventSink, Fetch, Identity, NetEvent, Node, NodeConfig, PeerId, PeerStatus, Reply,
};
use crate::proto::{PlayOutcome, Refusal, SoundOffer};

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
        /// The peer's answer handle.
        reply: Reply,
        /// Gain to play at, dB.
        gain_db: f32,
        /// When the trigger arrived.
        received: Instant,
        /// The prepared voice.
        result: Result<Prepared, String>,
    },
}

/// How the hub's threads reach the owner's loop.
pub type Poster = Arc<dyn Fn(HubEvent) + Send + Sync>;

/// A poster that puts each event into the owner's queue as `wrap(event)`.
pub fn poster<E: Send + 'static>(events: Sender<E>, wrap: fn(HubEvent) -> E) -> Poster {
    let events = std::sync::Mutex::new(events);
    Arc::new(move |e| {
        let _ = events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(wrap(e));
    })
}

/// A fetch in progress and what to keep when it is done.
struct Arriving {
    fetch: Arc<Fetch>,
    offer: SoundOffer,
    from: String,
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
    node: Node,
    post: Poster,
    arriving: HashMap<SoundId, Arriving>,
    sent: HashMap<u64, Sent>,
    waiting: HashMap<usize, Waiting>,
    pending: Vec<Pending>,
    next_request: usize,
    notes: Vec<String>,
    log: super::activity::ActivityLog,
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
}

impl PeerHub {
    /// Starts the node for `instance`'s home.
    pub fn start(
        home: &Home,
        instance: &Instance,
        opts: HubOptions,
        post: Poster,
    ) -> Result<PeerHub, String> {
        let net = &instance.config().net;
        let sink: EventSink = {
            let post = post.clone();
            Arc::new(move |e| post(HubEvent::Net(e)))
        };
        let mut notes = Vec::new();
        let mut node = None;
        for (i, listen) in listen_candidates(opts.listen, opts.any_port_if_busy)
            .into_iter()
            .enumerate()
        {
            let identity = Identity::load_or_create(&home.identity_dir()).map_err(|e| chain(&e))?;
            let cfg = NodeConfig {
                listen,
                name: net.display_name(),
                trust_file: home.trust_file(),
                partial_dir: home.data_dir().join("partial"),
                dial: opts.dial,
                triggers_per_second: net.triggers_per_second,
                trigger_burst: net.trigger_burst,
            };
            let blobs = Arc::new(instance.library().blob_locator());
            match Node::start(identity, cfg, blobs, sink.clone()) {
                Ok(n) => {
                    if i > 0
                        && let (Some(want), Some(got)) = (opts.listen, n.local_addr())
                        && got.port() != want.port()
                    {
                        notes.push(format!(
                            "net.listen {want} is in use (another jhack?): listening on {got} instead, where peers will not look"
                        ));
                    }
                    node = Some(n);
                    break;
                }
                Err(e @ crate::net::NetError::Bind { .. }) => {
                    tracing::info!("{}", chain(&e));
                    notes.push(chain(&e));
                }
                Err(e) => return Err(chain(&e)),
            }
        }
        let Some(node) = node else {
            return Err(notes.join("; "));
        };
        notes.retain(|n| !n.starts_with("cannot listen"));
        Ok(PeerHub {
            started: Vec::new(),
            node,
            post,
            arriving: HashMap::new(),
            sent: HashMap::new(),
            waiting: HashMap::new(),
            pending: Vec::new(),
            next_request: 0,
            notes,
            log: super::activity::ActivityLog::open(&home.data_dir().join("peers.log")),
        })
    }

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
        self.node.peers()
    }

    /// Blob transfers in progress towards us.
    pub fn arriving(&self) -> usize {
        self.arriving.len()
    }

    /// Triggers `meta` on each of `peers` at `gain_db`; returns a line per peer that
    /// could not be asked (offline).
    pub fn trigger(&mut self, meta: &SoundMeta, peers: &[PeerId], gain_db: f32) -> Vec<String> {
        self.trigger_for(meta, peers, gain_db, None)
    }

    fn trigger_for(
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

    /// The ids of the peers that are connected now.
    pub fn online(&self) -> Vec<PeerId> {
        self.node
            .peers()
            .into_iter()
            .filter(|p| p.online)
            .filter_map(|p| p.id.parse().ok())
            .collect()
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
    fn run_pending(&mut self) {
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

    fn send_play(
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

    /// Reports, once each, when the sounds peers played here reached the speaker:
    /// the engine's time from the trigger's arrival to the callback that started it.
    pub fn poll(&mut self, instance: &Instance, notice: &mut dyn FnMut(String)) {
        use crate::audio::VoiceState;
        if !self.pending.is_empty() {
            self.run_pending();
        }
        let log = &mut self.log;
        let mut notice = |n: String| {
            log.write(&n);
            notice(n);
        };
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
                reply.send(outcome);
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
            NetEvent::Served { name, id, bytes } => notice(format!(
                "sent {} to {name} ({} KB)",
                id.short(),
                bytes / 1000
            )),
            NetEvent::Problem(p) => notice(p),
            NetEvent::Features { .. } | NetEvent::PeerFetched { .. } => {}
            NetEvent::Denied { name, message, .. } => notice(format!("{name} refused: {message}")),
            NetEvent::Play(p) => self.on_play(instance, p, notice),
            NetEvent::TriggerResult {
                trigger, outcome, ..
            } => self.on_result(trigger, outcome, notice),
            NetEvent::FetchDone { id, result } => self.on_fetched(instance, id, result, notice),
        }
    }

    fn on_play(
        &mut self,
        instance: &mut Instance,
        p: crate::net::InboundPlay,
        notice: &mut dyn FnMut(String),
    ) {
        let from = p.from;
        let from_name = p.from_name.clone();
        let received = p.received;
        let (req, reply) = p.into_parts();
        let offer = req.sound;
        if instance.has_sound(&offer.id) {
            let extra = instance.capped_remote_db(req.gain_db);
            let outcome = match instance.play_triggered(&offer.id, extra, received) {
                Ok(voice) => {
                    notice(format!("{from_name} played \"{}\" here", offer.name));
                    self.started.push(Started {
                        voice,
                        sound: offer.name.clone(),
                        from: from_name.clone(),
                        cached: true,
                    });
                    PlayOutcome::Started {
                        cached: true,
                        latency_us: micros(received),
                    }
                }
                Err(e) => PlayOutcome::Failed { message: chain(&e) },
            };
            reply.send(outcome);
            return;
        }
        let budget = instance.config().cache.remote_bytes();
        if offer.size > budget {
            reply.send(PlayOutcome::Refused {
                reason: Refusal::TooLarge,
                message: format!(
                    "\"{}\" ({} MB) is larger than this jhack's cache for remote sounds",
                    offer.name,
                    offer.size / 1_000_000
                ),
            });
            return;
        }
        let fetch = match self.arriving.get(&offer.id) {
            Some(a) => a.fetch.clone(),
            None => match self.node.fetch(&from, &offer) {
                Ok(f) => {
                    notice(format!(
                        "{from_name} played \"{}\" here: fetching it ({} KB)",
                        offer.name,
                        offer.size / 1000
                    ));
                    self.arriving.insert(
                        offer.id,
                        Arriving {
                            fetch: f.clone(),
                            offer: offer.clone(),
                            from: from_name.clone(),
                        },
                    );
                    f
                }
                Err(e) => {
                    reply.send(PlayOutcome::Failed { message: chain(&e) });
                    return;
                }
            },
        };
        let gain_db = instance.remote_gain_db(offer.loudness_lufs, req.gain_db);
        let format = instance.engine().format();
        let post = self.post.clone();
        let name = hint_name(&offer);
        let size = offer.size;
        let id = offer.id;
        let sound = offer.name.clone();
        let kept = instance.library().blob_path(&id);
        let spawned = std::thread::Builder::new()
            .name("jhack-arriving".into())
            .spawn(move || {
                let opened = match GrowingFile::open(fetch.clone()) {
                    Ok(g) => OpenedFile::open_arriving(g, size, Path::new(&name), format)
                        .map_err(|e| e.reason()),
                    // A small sound may have arrived whole and been kept (its partial
                    // file moved into the library) before this thread opened it.
                    Err(_) if fetch.result() == Some(Ok(())) && kept.is_file() => {
                        OpenedFile::open(&kept, format).map_err(|e| e.reason())
                    }
                    Err(e) => Err(e.to_string()),
                };
                let result = opened.and_then(|f| player::prepare(format, f).map_err(|e| chain(&e)));
                post(HubEvent::Ready {
                    id,
                    sound,
                    from: from_name,
                    reply,
                    gain_db,
                    received,
                    result,
                });
            });
        if let Err(e) = spawned {
            notice(format!("cannot start a thread for a remote sound: {e}"));
        }
    }

    fn on_result(&mut self, trigger: u64, outcome: PlayOutcome, notice: &mut dyn FnMut(String)) {
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

    fn on_fetched(
        &mut self,
        instance: &mut Instance,
        id: SoundId,
        result: Result<(), String>,
        notice: &mut dyn FnMut(String),
    ) {
        let Some(a) = self.arriving.remove(&id) else {
            return;
        };
        if let Err(e) = result {
            notice(format!(
                "\"{}\" from {} did not arrive: {e}",
                a.offer.name, a.from
            ));
            return;
        }
        let new = NewSound {
            name: a.offer.name.clone(),
            tags: vec!["remote".into()],
            key: None,
            gain_db: 0.0,
            frames: a.offer.frames,
            sample_rate: a.offer.sample_rate,
            channels: a.offer.channels,
            format: a.offer.format.clone(),
            loudness_lufs: a.offer.loudness_lufs,
            origin: Origin::Remote,
        };
        match instance.keep_remote(a.fetch.path(), new) {
            Ok(m) if m.id == id => {
                a.fetch.discard_files();
                notice(format!(
                    "kept \"{}\" from {} ({} KB, every byte verified)",
                    m.name,
                    a.from,
                    a.offer.size / 1000
                ));
            }
            Ok(m) => notice(format!(
                "\"{}\" from {} was stored under another id ({}): the library disagrees with the transfer",
                m.name,
                a.from,
                m.id.short()
            )),
            Err(e) => notice(format!(
                "\"{}\" from {} could not be kept: {}",
                a.offer.name,
                a.from,
                chain(&e)
            )),
        }
    }
}

/// The addresses to try listening on: the one asked for, the same port on IPv4 when
/// it was IPv6's any-address (a machine without IPv6), then any free port.
fn listen_candidates(
    want: Option<std::net::SocketAddr>,
    any_port: bool,
) -> Vec<Option<std::net::SocketAddr>> {
    use std::net::{Ipv4Addr, SocketAddr};
    let Some(want) = want else {
        return vec![None];
    };
    let mut c = vec![Some(want)];
    if want.ip().is_unspecified() && want.is_ipv6() {
        c.push(Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, want.port()))));
    }
    if any_port {
        let mut any = want;
        any.set_port(0);
        c.push(Some(any));
    }
    c
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

/// A file name whose extension hints the container ("flac", "ogg/vorbis" → "ogg").
fn hint_name(offer: &SoundOffer) -> String {
    let ext: String = offer
        .format
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    if ext.is_empty() {
        offer.id.short()
    } else {
        format!("{}.{ext}", offer.id.short())
    }
}

fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}
