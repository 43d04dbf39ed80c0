//! A node: this installation on the network. It owns a small tokio runtime and one
//! QUIC endpoint (listening, and dialling from the same port so that peers see our
//! listen address), accepts only trusted peers, keeps one connection per peer
//! (dialling the trusted peers that have addresses, with backoff), and offers a
//! blocking API to the application: trigger a sound on a peer, fetch a blob, list
//! peers. What peers ask of us arrives as [`NetEvent`]s through the sink given at
//! start.
//!
//! The node never touches the library or the engine: it reads blobs through the
//! lookup it is given, writes fetched ones only under its partial directory, and
//! leaves playing and keeping them to the application.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::blob::{self, Fetch};
use super::events::{NetEvent, PeerStatus, ms};
use super::identity::Identity;
use super::link;
use super::peer_id::PeerId;
use super::router::{Feature, RouteClash, Router};
use super::shared::{DialState, Shared, TrustView, lock};
use super::tls;
use super::trust::{TrustStore, TrustedPeer};
use crate::domain::SoundId;
use crate::proto::{Message, PlayRequest, SoundOffer};

/// Where the application receives network events (called from network threads).
pub type EventSink = Arc<dyn Fn(NetEvent) + Send + Sync>;

/// A sink that sends every event into `tx` (for a thread that waits on the receiver).
pub fn channel_sink(tx: std::sync::mpsc::Sender<NetEvent>) -> EventSink {
    let tx = Mutex::new(tx);
    Arc::new(move |e| {
        let _ = lock(&tx).send(e);
    })
}

/// How the node finds the blob of a sound it may serve (`None`: not here).
pub type BlobLookup = Arc<dyn Fn(&SoundId) -> Option<PathBuf> + Send + Sync>;

/// Which sounds a trusted peer with `read` may fetch (see [`Node::set_read_policy`]).
pub type ReadPolicy = Arc<dyn Fn(&TrustedPeer, &SoundId) -> bool + Send + Sync>;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Listen here (`None`: an ephemeral port, for one-off commands).
    pub listen: Option<SocketAddr>,
    /// Our name, told to peers.
    pub name: String,
    /// The trust store file.
    pub trust_file: PathBuf,
    /// Where fetched blobs are assembled.
    pub partial_dir: PathBuf,
    /// Whether to keep connections to the trusted peers that have addresses.
    pub dial: bool,
    /// Remote triggers one peer may send per second, on average.
    pub triggers_per_second: f64,
    /// And at once.
    pub trigger_burst: u32,
}

/// A network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} (UDP): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not start.
    #[error("cannot start the network threads: {0}")]
    Runtime(#[source] std::io::Error),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// No trusted peer matches.
    #[error(transparent)]
    Trust(#[from] super::trust::TrustError),
    /// The peer is not connected.
    #[error("{name} is offline: {reason}")]
    Offline {
        /// The peer's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Two features claimed the same kind (a programming error, caught at start).
    #[error(transparent)]
    Route(#[from] RouteClash),
    /// A peer refused a request (it says why in a notice).
    #[error("{name} refused (it does not offer this, or not to us)")]
    Refused {
        /// The peer's name.
        name: String,
    },
    /// A request was not answered.
    #[error("{name}: {reason}")]
    Request {
        /// The peer's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A datagram could not be sent.
    #[error("cannot send a datagram to {name}: {reason}")]
    Datagram {
        /// The peer's name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// This installation on the network. See the module documentation.
pub struct Node {
    rt: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

impl Node {
    /// Binds the endpoint and starts accepting (and, with `cfg.dial`, dialling), with
    /// the node's own features only (blob transfer).
    pub fn start(
        me: Identity,
        cfg: NodeConfig,
        blobs: BlobLookup,
        events: EventSink,
    ) -> Result<Node, NetError> {
        Node::start_with(me, cfg, blobs, events, Vec::new())
    }

    /// [`Node::start`] with more features plugged in (their datagrams and messages
    /// are routed to them; see [`Feature`]).
    pub fn start_with(
        me: Identity,
        cfg: NodeConfig,
        blobs: BlobLookup,
        events: EventSink,
        features: Vec<Feature>,
    ) -> Result<Node, NetError> {
        let mut router = Router::default();
        blob::register(&mut router)?;
        for f in features {
            router.add(f)?;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("jhack-net")
            .enable_all()
            .build()
            .map_err(NetError::Runtime)?;
        let trust_store = TrustStore::load(&cfg.trust_file)?;
        let trust = Arc::new(Mutex::new(TrustView {
            stamp: TrustView::stamp(&cfg.trust_file),
            store: trust_store,
            checked: Some(Instant::now()),
        }));
        let me = Arc::new(me);
        // The endpoint's own configuration; each incoming connection gets one of its
        // own with a slot for its refusal (see `accept_loop`).
        let gate = server_gate(trust.clone(), Arc::new(Mutex::new(None)));
        let server = tls::server_config(&me, gate)?;
        let freed = blob::remove_stale(&cfg.partial_dir, blob::STALE_AFTER);
        if freed > 0 {
            tracing::info!(
                "removed {} KB of transfers untouched for a week",
                freed / 1000
            );
        }
        let endpoint = {
            let _guard = rt.enter();
            bind(cfg.listen, server)?
        };
        let shared = Arc::new(Shared {
            me,
            name: cfg.name.clone(),
            session: session_nonce(),
            trust,
            links: Mutex::new(HashMap::new()),
            events,
            blobs,
            fetches: Mutex::new(Default::default()),
            partial_dir: cfg.partial_dir.clone(),
            endpoint,
            triggers_per_second: cfg.triggers_per_second,
            trigger_burst: cfg.trigger_burst,
            hooks: super::hooks::TestHooks::from_env(),
            trees: Mutex::new(HashMap::new()),
            next_trigger: AtomicU64::new(1),
            dials: Mutex::new(HashMap::new()),
            router,
            read_policy: Mutex::new(None),
            served: Mutex::new(Vec::new()),
        });
        if cfg.listen.is_some() {
            rt.spawn(accept_loop(shared.clone()));
        }
        if cfg.dial {
            rt.spawn(dial_loop(shared.clone()));
        }
        Ok(Node {
            rt: Some(rt),
            shared,
        })
    }

    /// Our peer id.
    pub fn id(&self) -> PeerId {
        self.shared.me.id
    }

    /// Where we listen (or the ephemeral port we dial from).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.endpoint.local_addr().ok()
    }

    /// The trusted peer `query` names (name or id prefix).
    pub fn find(&self, query: &str) -> Result<TrustedPeer, NetError> {
        Ok(self.shared.trust().store().find(query)?.clone())
    }

    /// Narrows what `read` lets a peer fetch: a sound is served to a peer with
    /// `read` only when `policy` says so (sounds we offered it in a trigger are
    /// served anyway). Without a policy, `read` reaches every blob here.
    pub fn set_read_policy(&self, policy: ReadPolicy) {
        *super::shared::lock(&self.shared.read_policy) = Some(policy);
    }

    /// The trust store's entry of `id` (`None`: not trusted).
    pub fn trusted(&self, id: &PeerId) -> Option<TrustedPeer> {
        self.shared.trusted(id)
    }

    /// The trusted name of `id` (its short id when it is not trusted).
    pub fn name_of(&self, id: &PeerId) -> String {
        self.shared
            .trusted(id)
            .map_or_else(|| id.short(), |p| p.name)
    }

    /// Every trusted peer with its connection state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let peers = self.shared.trust().store().peers().to_vec();
        peers
            .into_iter()
            .map(|p| {
                let link = self.shared.link(&p.id);
                PeerStatus {
                    name: p.name.clone(),
                    id: p.id.to_string(),
                    address: p.address.clone(),
                    allow: p.allow.to_string(),
                    online: link.is_some(),
                    rtt_ms: link.as_ref().and_then(|l| l.rtt()).map(ms),
                    transfers: link.as_ref().map_or(0, |l| l.transfers()),
                    datagrams_dropped: link.as_ref().map_or(0, |l| l.datagrams_dropped()),
                    protocol: link.as_ref().map(|l| l.version),
                    last_error: if link.is_some() {
                        None
                    } else {
                        self.last_error(&p.id)
                    },
                    sync: p.sync.map(|r| r.name().to_string()),
                    sync_state: None,
                    shares: p.shares.clone(),
                    remote: link.as_ref().map(|l| l.conn.remote_address().to_string()),
                    speakers: p.speakers,
                }
            })
            .collect()
    }

    /// Connects to `peer` now unless connected, waiting up to `timeout`.
    pub fn connect(&self, peer: &TrustedPeer, timeout: Duration) -> Result<(), NetError> {
        if self.shared.link(&peer.id).is_some() {
            return Ok(());
        }
        let offline = |reason: String| NetError::Offline {
            name: peer.name.clone(),
            reason,
        };
        let Some(addr) = peer.address.clone() else {
            return Err(offline(
                "no address is known for it (add one with `jhack peer add ID ADDR`)".into(),
            ));
        };
        let rt = self.runtime();
        let shared = self.shared.clone();
        let id = peer.id;
        let result = rt.block_on(async move {
            tokio::time::timeout(timeout, link::dial(shared, id, &addr))
                .await
                .unwrap_or_else(|_| Err(format!("no answer from {addr}")))
        });
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                // Our dial loop (or the peer dialling us) may have won the race: one
                // connection is kept and ours was closed as the duplicate. The winner
                // registers within moments of that.
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until {
                    if self.shared.link(&peer.id).is_some() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(offline(e))
            }
        }
    }

    /// Dials `peer` now (in the background) unless it is connected; false when there
    /// is no address to dial. The connection, when it comes, is a [`NetEvent::PeerUp`].
    pub fn dial_now(&self, peer: &PeerId) -> bool {
        if self.shared.link(peer).is_some() {
            return true;
        }
        let Some(addr) = self.shared.trusted(peer).and_then(|p| p.address) else {
            return false;
        };
        let shared = self.shared.clone();
        let id = *peer;
        self.runtime().spawn(async move {
            let _ =
                tokio::time::timeout(Duration::from_secs(10), link::dial(shared, id, &addr)).await;
        });
        true
    }

    /// Why the last dial to `peer` failed, if it did.
    pub fn last_error(&self, peer: &PeerId) -> Option<String> {
        lock(&self.shared.dials)
            .get(peer)
            .and_then(|d| d.last_error.clone())
    }

    /// Asks `peer` to play `sound` at `gain_db`; the answer arrives as
    /// [`NetEvent::TriggerResult`] with the returned trigger number. The peer may fetch
    /// the sound from us meanwhile.
    pub fn trigger(&self, peer: &PeerId, sound: SoundOffer, gain_db: f32) -> Result<u64, NetError> {
        let Some(link) = self.shared.link(peer) else {
            return Err(NetError::Offline {
                name: self.name_of(peer),
                reason: "not connected".into(),
            });
        };
        let trigger = self.shared.next_trigger.fetch_add(1, Ordering::Relaxed);
        link.offer(sound.id);
        // A peer that lacks the sound asks for its group hashes next: have them ready.
        if let Some(path) = (self.shared.blobs)(&sound.id) {
            let shared = self.shared.clone();
            let id = sound.id;
            self.runtime().spawn(async move {
                let _ = blob::tree_for(&shared, &id, &path).await;
            });
        }
        link.send(Message::Play(PlayRequest {
            trigger,
            sound,
            gain_db,
        }));
        Ok(trigger)
    }

    /// Fetches `sound` from `peer` (or joins the fetch already running); the blob
    /// arrives verified under the partial directory, readable while it grows.
    pub fn fetch(&self, peer: &PeerId, sound: &SoundOffer) -> Result<Arc<Fetch>, NetError> {
        self.start_fetch(peer, sound, false)
    }

    /// [`Node::fetch`] for a file nobody waits to play yet (a library's files
    /// arriving in the background): it arrives in whole batches, with fewer
    /// hand-offs, until a reader waits on it.
    pub fn fetch_in_background(
        &self,
        peer: &PeerId,
        sound: &SoundOffer,
    ) -> Result<Arc<Fetch>, NetError> {
        self.start_fetch(peer, sound, true)
    }

    /// Fetches small sounds nobody waits to play yet (a library's files arriving in
    /// the background) from `peer`: when it speaks `blob-batch/2`, those not being
    /// fetched already come on one stream, each verified whole before it is
    /// published; otherwise each alone, as [`Node::fetch_in_background`]. Each
    /// sound is at most [`blob::BATCH_BLOB_MAX`] bytes (a larger one is fetched
    /// alone, whatever this is asked). The fetches, in order.
    pub fn fetch_batch_in_background(
        &self,
        peer: &PeerId,
        sounds: &[SoundOffer],
    ) -> Result<Vec<Arc<Fetch>>, NetError> {
        let link = self.fetch_link(peer)?;
        let batched = |s: &SoundOffer| s.size > 0 && s.size <= blob::BATCH_BLOB_MAX;
        if !self.speaks(peer, blob::BATCH_FEATURE) {
            return sounds
                .iter()
                .map(|s| self.start_fetch(peer, s, true))
                .collect();
        }
        let mut all = Vec::with_capacity(sounds.len());
        let mut batch = Vec::new();
        let mut alone = Vec::new();
        {
            let mut fetches = lock(&self.shared.fetches);
            for s in sounds {
                let (f, new) = self.join_or_register(&mut fetches, s, true);
                if new && batched(s) {
                    batch.push(f.clone());
                } else if new {
                    alone.push(f.clone());
                }
                all.push(f);
            }
        }
        let rt = self.runtime();
        for f in alone {
            rt.spawn(blob::run_fetch(self.shared.clone(), link.clone(), f));
        }
        if !batch.is_empty() {
            rt.spawn(blob::run_batch(self.shared.clone(), link, batch));
        }
        Ok(all)
    }

    fn start_fetch(
        &self,
        peer: &PeerId,
        sound: &SoundOffer,
        background: bool,
    ) -> Result<Arc<Fetch>, NetError> {
        let link = self.fetch_link(peer)?;
        let (f, new) = self.join_or_register(&mut lock(&self.shared.fetches), sound, background);
        if new {
            self.runtime()
                .spawn(blob::run_fetch(self.shared.clone(), link, f.clone()));
        }
        Ok(f)
    }

    /// The live link to fetch from `peer`.
    fn fetch_link(&self, peer: &PeerId) -> Result<Arc<super::link::Link>, NetError> {
        self.shared.link(peer).ok_or_else(|| NetError::Offline {
            name: self.name_of(peer),
            reason: "not connected".into(),
        })
    }

    /// The running fetch of `sound` to join, or a new one registered (not started):
    /// `true` when new. The partial file exists before this returns, so readers can
    /// open it at once.
    fn join_or_register(
        &self,
        fetches: &mut blob::Fetches,
        sound: &SoundOffer,
        background: bool,
    ) -> (Arc<Fetch>, bool) {
        if let Some(f) = fetches.joinable(&sound.id) {
            return (f, false);
        }
        let f = Arc::new(Fetch::new(&self.shared.partial_dir, sound.id, sound.size));
        if background {
            f.in_background();
        }
        f.create_file();
        fetches.insert(f.clone());
        (f, true)
    }

    /// Asks `peer` on a new stream of a feature's request `kind` and waits (this
    /// thread, never a network one) for the answer, at most `max_answer` bytes,
    /// within `timeout`. See [`super::request`].
    pub fn request(
        &self,
        peer: &PeerId,
        kind: crate::proto::StreamKind,
        body: &[u8],
        max_answer: usize,
        timeout: Duration,
    ) -> Result<Vec<u8>, NetError> {
        let name = self.name_of(peer);
        let Some(link) = self.shared.link(peer) else {
            return Err(NetError::Offline {
                name,
                reason: "not connected".into(),
            });
        };
        let asked = self.runtime().block_on(async {
            tokio::time::timeout(timeout, super::request::ask(&link, kind, body, max_answer)).await
        });
        match asked {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(super::request::AskError::Refused)) => Err(NetError::Refused { name }),
            Ok(Err(super::request::AskError::Failed(reason))) => {
                Err(NetError::Request { name, reason })
            }
            Err(_) => Err(NetError::Request {
                name,
                reason: format!("no answer within {} s", timeout.as_secs()),
            }),
        }
    }

    /// A handle for sending datagrams and feature messages from any thread.
    pub fn outbox(&self) -> super::Outbox {
        super::Outbox {
            shared: self.shared.clone(),
        }
    }

    /// See [`Outbox::send_datagram`](super::Outbox::send_datagram).
    pub fn send_datagram(&self, peer: &PeerId, kind: u8, payload: &[u8]) -> Result<(), NetError> {
        self.outbox().send_datagram(peer, kind, payload)
    }

    /// See [`Outbox::max_datagram`](super::Outbox::max_datagram).
    pub fn max_datagram(&self, peer: &PeerId) -> Option<usize> {
        self.outbox().max_datagram(peer)
    }

    /// See [`Outbox::send_feature`](super::Outbox::send_feature).
    pub fn send_feature(&self, peer: &PeerId, kind: u16, body: Vec<u8>) -> Result<(), NetError> {
        self.outbox().send_feature(peer, kind, body)
    }

    /// Whether `peer` is connected and speaks `feature`.
    pub fn speaks(&self, peer: &PeerId, feature: &str) -> bool {
        self.shared.link(peer).is_some_and(|l| l.speaks(feature))
    }

    /// The connected peers' ids.
    pub fn connected(&self) -> Vec<PeerId> {
        lock(&self.shared.links)
            .values()
            .filter(|l| l.conn.close_reason().is_none())
            .map(|l| l.id)
            .collect()
    }

    /// The last measured round trip to `peer`.
    pub fn rtt(&self, peer: &PeerId) -> Option<Duration> {
        self.shared.link(peer).and_then(|l| l.rtt())
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        // Present from start until drop.
        self.rt
            .as_ref()
            .unwrap_or_else(|| unreachable!("runtime gone"))
    }

    /// Says goodbye to every peer and stops the network threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let links: Vec<_> = lock(&self.shared.links).drain().map(|(_, l)| l).collect();
        for l in &links {
            let s = l.conn.stats();
            tracing::debug!(
                "leaving {}: path MTU {} bytes, {} packets sent and {} received, {} lost, round trip {:.2} ms",
                l.name,
                s.path.current_mtu,
                s.path.sent_packets,
                s.frame_rx.stream,
                s.path.lost_packets,
                s.path.rtt.as_secs_f64() * 1e3
            );
            l.send(Message::Bye);
        }
        if let Some(rt) = self.rt.take() {
            let endpoint = self.shared.endpoint.clone();
            rt.block_on(async move {
                // Close at once: the close says goodbye too (a peer reads it as one
                // when it overtakes the goodbye message), so nothing waits for the
                // goodbyes to be written or read. The close frames leave with the
                // connection drivers' next poll on the runtime's workers,
                // microseconds later; a millisecond covers a busy machine's wake-up.
                // The draining period after them (three probe timeouts, ~80 ms even
                // on loopback) is not waited for: this process leaves, so it has no
                // late packets to absorb.
                tokio::task::yield_now().await;
                endpoint.close(quinn::VarInt::from_u32(link::code::BYE), link::LEAVING);
                tokio::time::sleep(Duration::from_millis(1)).await;
            });
            rt.shutdown_timeout(Duration::from_millis(200));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn session_nonce() -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut h = blake3::Hasher::new();
    h.update(&t.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let b = h.finalize();
    let mut n = [0u8; 8];
    n.copy_from_slice(&b.as_bytes()[..8]);
    u64::from_le_bytes(n)
}

/// Binds the endpoint: the given address, or an ephemeral port on all interfaces.
fn bind(
    listen: Option<SocketAddr>,
    server: quinn::ServerConfig,
) -> Result<quinn::Endpoint, NetError> {
    let addrs: Vec<SocketAddr> = match listen {
        Some(a) => vec![a],
        None => vec![
            SocketAddr::from(([0u16; 8], 0)),
            SocketAddr::from(([0u8; 4], 0)),
        ],
    };
    let mut last = None;
    for addr in addrs {
        let made = super::transport::endpoint(addr, Some(server.clone()));
        match made {
            Ok(e) => return Ok(e),
            Err(source) => last = Some(NetError::Bind { addr, source }),
        }
    }
    Err(last.unwrap_or_else(|| unreachable!("at least one address")))
}

async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let addr = incoming.remote_address();
            // This connection's own gate and slot: a refusal is reported with the
            // address it came from, never another handshake's.
            let slot: RefusedSlot = Arc::new(Mutex::new(None));
            let gate = server_gate(shared.trust.clone(), slot.clone());
            let connecting = match tls::server_config(&shared.me, gate) {
                Ok(cfg) => incoming.accept_with(Arc::new(cfg)),
                Err(e) => {
                    tracing::warn!("a handshake from {addr}: {e}; using the shared gate");
                    incoming.accept()
                }
            };
            let refused = || lock(&slot).take();
            match connecting {
                Ok(c) => match c.await {
                    Ok(conn) => link::accepted(shared, conn).await,
                    Err(e) => report_refusal(&shared, addr, &e.to_string(), refused()),
                },
                Err(e) => report_refusal(&shared, addr, &e.to_string(), refused()),
            }
        });
    }
}

/// Where one incoming handshake's gate leaves the id it refused, and why.
type RefusedSlot = Arc<Mutex<Option<(PeerId, String)>>>;

/// The handshake gate: a client certificate is accepted when its id is trusted now
/// (the trust file is re-read when it changed); a refusal is left in `slot`.
fn server_gate(trust: Arc<Mutex<TrustView>>, slot: RefusedSlot) -> tls::Gate {
    Arc::new(move |id: &PeerId| {
        let mut t = lock(&trust);
        t.refresh();
        if t.store().by_id(id).is_some() {
            return Ok(());
        }
        let why = format!("unknown peer {id}");
        *lock(&slot) = Some((*id, why.clone()));
        Err(why)
    })
}

/// Reports a failed incoming handshake, with the id the gate refused when it was that.
fn report_refusal(
    shared: &Shared,
    addr: SocketAddr,
    error: &str,
    refused: Option<(PeerId, String)>,
) {
    let Some((id, why)) = refused else {
        tracing::info!("a handshake from {addr} failed: {error}");
        return;
    };
    let addr_text = addr.to_string();
    let impostor = shared
        .trust()
        .store()
        .impostor_of(&id, Some(&addr_text))
        .map(|p| p.name.clone());
    let reason = match impostor {
        Some(name) => format!(
            "refused {id} from {addr}: it uses the address of the trusted peer \"{name}\" with another key"
        ),
        None => format!("refused {why} from {addr}; to trust it: jhack peer add {id} {addr}"),
    };
    tracing::warn!("{reason}");
    shared.emit(NetEvent::Refused {
        id: Some(id),
        addr: Some(addr),
        reason,
    });
}

/// Keeps a connection to every trusted peer with an address, retrying with backoff.
async fn dial_loop(shared: Arc<Shared>) {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);
    loop {
        let peers: Vec<TrustedPeer> = shared.trust().store().peers().to_vec();
        let now = Instant::now();
        for p in peers {
            let Some(addr) = p.address.clone() else {
                continue;
            };
            if p.id == shared.me.id || shared.link(&p.id).is_some() {
                continue;
            }
            {
                let mut dials = lock(&shared.dials);
                let d = dials.entry(p.id).or_insert(DialState {
                    next: now,
                    backoff: FIRST,
                    last_error: None,
                    busy: false,
                });
                if d.busy || d.next > now {
                    continue;
                }
                d.busy = true;
            }
            let shared = shared.clone();
            tokio::spawn(async move {
                let r = tokio::time::timeout(
                    Duration::from_secs(10),
                    link::dial(shared.clone(), p.id, &addr),
                )
                .await
                .unwrap_or_else(|_| Err(format!("no answer from {addr}")));
                let mut dials = lock(&shared.dials);
                if let Some(d) = dials.get_mut(&p.id) {
                    d.busy = false;
                    match r {
                        Ok(_) => {
                            d.backoff = FIRST;
                            d.last_error = None;
                        }
                        Err(e) => {
                            if d.last_error.as_deref() != Some(e.as_str()) {
                                tracing::info!("cannot reach {} at {addr}: {e}", p.name);
                            }
                            d.next = Instant::now() + d.backoff;
                            d.backoff = (d.backoff * 2).min(MAX);
                            d.last_error = Some(e);
                        }
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
