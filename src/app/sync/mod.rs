//! Library sync between my machines, live: the library's replica
//! ([`crate::library::Library::sync_handle`]) exchanged with every connected peer that
//! `peers.toml` marks `sync = "mirror"`.
//!
//! Both sides pull. We answer a peer's ask ([`server`]) at once when we have changes
//! for it, and otherwise hold it (a long poll) until something changes here, so an
//! edit, import or delete appears on the other machine within a round trip. For each
//! mirror that is connected, speaks sync and may write here, a puller ([`puller`])
//! asks for its changes and merges them. A peer needs `read` here to pull from us
//! (the node refuses it otherwise, and tells it so); we merge a peer's changes only
//! when it has `write` here.
//!
//! Must never: run on the network threads (asks arrive through a queue), or touch
//! the library other than through its replica methods.

mod puller;
mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::guard::lock;
use crate::library::Library;
use crate::net::{Feature, Node, PeerId, Permission, SyncRelation};
use crate::proto::StreamKind;
use crate::sync::hlc::Device;

/// The feature's name and version, told to peers.
pub const FEATURE: &str = "sync/1";

/// What a sync brought, for the owner's loop (reload the list, tell the person).
#[derive(Debug, Clone)]
pub struct SyncNews {
    /// The peer's name.
    pub peer: String,
    /// Sounds added or changed here.
    pub changed: usize,
    /// Sounds deleted here.
    pub removed: usize,
    /// Conflicts resolved and changes refused, in words.
    pub notes: Vec<String>,
}

/// Where news goes (called from sync threads).
pub type NewsSink = Arc<dyn Fn(SyncNews) + Send + Sync>;

/// How sync with one peer stands.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PeerSync {
    /// The peer's name.
    pub peer: String,
    /// Its library and ours were last seen equal.
    pub in_sync: bool,
    /// Records merged from it since we started.
    pub pulled: u64,
    /// Records it took from us since we started.
    pub sent: u64,
    /// Why the last exchange failed, if it did.
    pub last_error: Option<String>,
}

/// The device number a peer's cursor is kept under.
pub fn device_of(id: &PeerId) -> Device {
    let b = id.as_bytes();
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    Device(u64::from_be_bytes(x))
}

/// State shared by the server, the pullers and the manager.
pub(crate) struct Shared {
    pub(crate) lib: Arc<Library>,
    pub(crate) status: Mutex<HashMap<PeerId, PeerSync>>,
    pub(crate) news: NewsSink,
    pub(crate) stop: AtomicBool,
}

impl Shared {
    pub(crate) fn update(&self, peer: &PeerId, name: &str, f: impl FnOnce(&mut PeerSync)) {
        let mut all = lock(&self.status);
        let s = all.entry(*peer).or_default();
        s.peer = name.to_string();
        f(s);
    }
}

/// Library sync for one home. See the module documentation.
pub struct SyncService {
    shared: Arc<Shared>,
    server: server::Server,
    manager: Option<std::thread::JoinHandle<()>>,
}

impl SyncService {
    /// The service for `lib` and the feature to start the node with; pullers start
    /// with [`SyncService::attach`].
    pub fn new(lib: Arc<Library>, news: NewsSink) -> Result<(SyncService, Feature), String> {
        let shared = Arc::new(Shared {
            lib,
            status: Mutex::new(HashMap::new()),
            news,
            stop: AtomicBool::new(false),
        });
        let (server, handler) = server::Server::start(shared.clone())?;
        let feature = Feature {
            name: FEATURE,
            permission: Permission::Read,
            datagrams: Vec::new(),
            messages: Vec::new(),
            requests: vec![(StreamKind::SYNC, handler)],
        };
        Ok((
            SyncService {
                shared,
                server,
                manager: None,
            },
            feature,
        ))
    }

    /// Keeps every connected mirror in sync through `node`, from now until dropped.
    pub fn attach(&mut self, node: Arc<Node>) -> Result<(), String> {
        let shared = self.shared.clone();
        let t = std::thread::Builder::new()
            .name("jhack-sync".into())
            .spawn(move || manage(&shared, &node))
            .map_err(|e| format!("cannot start the sync thread: {e}"))?;
        self.manager = Some(t);
        Ok(())
    }

    /// One peer's standing.
    pub fn status_of(&self, peer: &PeerId) -> Option<PeerSync> {
        lock(&self.shared.status).get(peer).cloned()
    }

    /// A handle for one-off syncs from other threads.
    pub fn handle(&self) -> SyncHandle {
        SyncHandle {
            shared: self.shared.clone(),
        }
    }
}

/// Runs one-off syncs beside the service (see [`SyncService::handle`]).
#[derive(Clone)]
pub struct SyncHandle {
    shared: Arc<Shared>,
}

impl SyncHandle {
    /// Pulls from `peer` until caught up and the two libraries match, or `within`
    /// passes (for `jhack sync`): `Ok` with the standing, or why not.
    pub fn sync_once(
        &self,
        node: &Node,
        peer: &PeerId,
        within: Duration,
        progress: &dyn Fn(&PeerSync),
    ) -> Result<PeerSync, String> {
        puller::until_in_sync(&self.shared, node, peer, within, progress)
    }
}

impl Drop for SyncService {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.server.stop();
        if let Some(t) = self.manager.take() {
            let _ = t.join();
        }
    }
}

/// Why we would not pull from `peer` now (`None`: we would).
pub(crate) fn why_not(node: &Node, peer: &PeerId) -> Option<String> {
    let t = node.trusted(peer)?;
    if !t.sync.is_some_and(SyncRelation::is_mirror) {
        return Some(format!(
            "{} is not a mirror of this library (sync = \"mirror\" in peers.toml, or jhack peer add … --sync mirror)",
            t.name
        ));
    }
    if !t.allow.write {
        return Some(format!(
            "{} may not write to this library: allow it read,write to mirror it",
            t.name
        ));
    }
    if !node.speaks(peer, FEATURE) {
        return Some(format!("{} does not speak library sync", t.name));
    }
    None
}

/// Starts a puller for each connected mirror, and again when one ends.
fn manage(shared: &Arc<Shared>, node: &Arc<Node>) {
    let mut running: HashMap<PeerId, std::thread::JoinHandle<()>> = HashMap::new();
    let mut told: HashMap<PeerId, String> = HashMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        running.retain(|_, t| !t.is_finished());
        for peer in node.connected() {
            if running.contains_key(&peer) {
                continue;
            }
            let Some(t) = node.trusted(&peer) else {
                continue;
            };
            if t.sync.is_none() {
                continue;
            }
            if let Some(why) = why_not(node, &peer) {
                if told.get(&peer) != Some(&why) {
                    tracing::warn!("sync: {why}");
                    shared.update(&peer, &t.name, |s| s.last_error = Some(why.clone()));
                    told.insert(peer, why);
                }
                continue;
            }
            told.remove(&peer);
            let (shared, node) = (shared.clone(), node.clone());
            let spawned = std::thread::Builder::new()
                .name("jhack-sync-pull".into())
                .spawn(move || puller::live(&shared, &node, &peer));
            match spawned {
                Ok(t) => {
                    running.insert(peer, t);
                }
                Err(e) => tracing::warn!("sync: cannot start a puller: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // Pullers see the stop after their current ask (a long poll ends within
    // `server::LONG_POLL`); they are not waited for.
}
