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

pub mod files;
pub mod follower;
mod puller;
mod server;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use crate::guard::lock;
use crate::library::Library;
use crate::net::{Feature, Node, PeerId, Permission, ReadPolicy, SyncRelation, TrustedPeer};
use crate::proto::StreamKind;
use crate::sync::hlc::Device;
use puller::Until;

/// What fetching every file did: its standing, and the first failure.
pub type FetchedAll = (files::FilesProgress, Option<String>);

/// The feature's name and version, told to peers.
pub const FEATURE: &str = "sync/1";
/// Sharing's name and version.
pub const SHARE_FEATURE: &str = "share/1";
/// Telling a mirror this library's device number: whose word that it holds a file
/// counts when a file might be dropped (see [`puller::learn_device`]).
pub const DEVICE_FEATURE: &str = "sync-device/1";

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
    /// The node, once bound (weak: the node holds our handlers).
    pub(crate) node: OnceLock<Weak<Node>>,
}

impl Shared {
    pub(crate) fn update(&self, peer: &PeerId, name: &str, f: impl FnOnce(&mut PeerSync)) {
        let mut all = lock(&self.status);
        let s = all.entry(*peer).or_default();
        s.peer = name.to_string();
        f(s);
    }

    /// Tells the owner what a merge from `name` changed here (nothing when it
    /// changed nothing): its screen or serve lists the sounds anew.
    pub(crate) fn tell(&self, name: &str, merged: &crate::library::Merged) {
        let mut notes = merged.fixes.clone();
        notes.extend(
            merged
                .refused
                .iter()
                .map(|r| format!("refused from {name}: {r}")),
        );
        if !merged.changed.is_empty() || !merged.removed.is_empty() || !notes.is_empty() {
            (self.news)(SyncNews {
                peer: name.to_string(),
                changed: merged.changed.len(),
                removed: merged.removed.len(),
                notes,
            });
        }
    }

    /// The name `peer` is trusted under (its short id when the node is gone).
    pub(crate) fn name_of(&self, peer: &PeerId) -> String {
        self.node
            .get()
            .and_then(Weak::upgrade)
            .map_or_else(|| peer.short(), |n| n.name_of(peer))
    }

    /// Counts records or sounds a peer took from us.
    pub(crate) fn count_sent(&self, peer: &PeerId, count: usize) {
        let name = peer.short();
        let mut all = lock(&self.status);
        let s = all.entry(*peer).or_default();
        if s.peer.is_empty() {
            s.peer = name;
        }
        s.sent += count as u64;
    }

    /// The tags we share with `peer` now (none when it is not trusted or may not read).
    pub(crate) fn shares_of(&self, peer: &PeerId) -> BTreeSet<String> {
        self.node
            .get()
            .and_then(Weak::upgrade)
            .and_then(|n| n.trusted(peer))
            .filter(|t| t.allow.read)
            .map(|t| t.shares.into_iter().collect())
            .unwrap_or_default()
    }
}

/// What `read` reaches in this library: everything for a mirror, and for anyone
/// else the live sounds carrying a tag shared with it.
pub fn read_policy(lib: Arc<Library>) -> ReadPolicy {
    Arc::new(move |t: &TrustedPeer, id| {
        if t.sync.is_some_and(SyncRelation::is_mirror) {
            return true;
        }
        let tags: BTreeSet<String> = t.shares.iter().cloned().collect();
        lib.is_offered(&tags, id)
    })
}

/// Library sync for one home. See the module documentation.
pub struct SyncService {
    shared: Arc<Shared>,
    server: server::Server,
    manager: Option<std::thread::JoinHandle<()>>,
}

impl SyncService {
    /// The service for `lib` and the features to start the node with (sync with
    /// mirrors, sharing with others); bind it to the node with [`SyncService::bind`],
    /// and pullers start with [`SyncService::attach`].
    pub fn new(lib: Arc<Library>, news: NewsSink) -> Result<(SyncService, Vec<Feature>), String> {
        let shared = Arc::new(Shared {
            lib,
            status: Mutex::new(HashMap::new()),
            news,
            stop: AtomicBool::new(false),
            node: OnceLock::new(),
        });
        // Read once here: the answer must not wait on the library's lock on a
        // network thread.
        let device = shared
            .lib
            .sync_device()
            .map_err(|e| crate::domain::chain(&e))?;
        let (server, sync, share) = server::Server::start(shared.clone())?;
        let tell_device: crate::net::request::RequestHandler =
            Arc::new(move |_peer: &PeerId, _body: Vec<u8>, reply| {
                let _ = reply.send(device.0.to_be_bytes().to_vec());
            });
        let feature = |name, kind, handler| Feature {
            name,
            permission: Permission::Read,
            datagrams: Vec::new(),
            messages: Vec::new(),
            requests: vec![(kind, handler)],
        };
        Ok((
            SyncService {
                shared,
                server,
                manager: None,
            },
            vec![
                feature(FEATURE, StreamKind::SYNC, sync),
                feature(SHARE_FEATURE, StreamKind::SHARE, share),
                feature(DEVICE_FEATURE, StreamKind::SYNC_DEVICE, tell_device),
            ],
        ))
    }

    /// Answers peers through `node`: what we share with whom comes from its trust
    /// store, and its blobs are served by [`read_policy`].
    pub fn bind(&self, node: &Arc<Node>) {
        let _ = self.shared.node.set(Arc::downgrade(node));
        node.set_read_policy(read_policy(self.shared.lib.clone()));
    }

    /// Keeps every connected mirror in sync and every subscription followed through
    /// `node`, from now until dropped.
    pub fn attach(&mut self, node: Arc<Node>) -> Result<(), String> {
        self.bind(&node);
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
        puller::until_in_sync(&self.shared, node, peer, within, Until::InSync, progress)
    }

    /// One sync to completion and every file with it (`jhack sync --all`): the files
    /// start to flow with the first records merged, on a thread of their own, rather
    /// than after the last. The records' result, and the files'.
    ///
    /// The records are pulled until every one the peer has is here; the files end
    /// once those are fetched. Only then is the sync taken to matching libraries:
    /// keeping the files changes this library (it holds them now), and the peer
    /// takes those changes last. Waiting for matching libraries while the files
    /// still arrived meant asking again and again as each batch was kept, with the
    /// wait between asks grown long by the end (the last files then waited on it).
    pub fn sync_and_fetch_all(
        &self,
        node: &Node,
        peer: &PeerId,
        within: Duration,
        progress: &dyn Fn(&PeerSync),
        files_progress: &(dyn Fn(&files::FilesProgress) + Sync),
    ) -> (Result<PeerSync, String>, Result<FetchedAll, String>) {
        let arriving = AtomicBool::new(true);
        std::thread::scope(|scope| {
            let files = std::thread::Builder::new()
                .name("jhack-sync-files".into())
                .spawn_scoped(scope, || {
                    self.fetch_files(node, peer, files_progress, Some(&arriving))
                });
            let t0 = std::time::Instant::now();
            let records =
                puller::until_in_sync(&self.shared, node, peer, within, Until::CaughtUp, progress);
            arriving.store(false, Ordering::Release);
            tracing::debug!(
                "sync: every record here after {:.1} ms (files still flowing)",
                t0.elapsed().as_secs_f64() * 1e3
            );
            let files = match files {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err("the fetching thread failed".into())),
                Err(e) => Err(format!("no thread for fetching: {e}")),
            };
            tracing::debug!(
                "sync: files kept after {:.1} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
            let left = within.saturating_sub(t0.elapsed());
            let records = records.and_then(|_| self.sync_once(node, peer, left, progress));
            tracing::debug!(
                "sync: libraries match after {:.1} ms",
                t0.elapsed().as_secs_f64() * 1e3
            );
            (records, files)
        })
    }

    /// Fetches from `peer` every file this library lists and does not hold, and
    /// keeps them for good; then tells the owner's loop.
    fn fetch_files(
        &self,
        node: &Node,
        peer: &PeerId,
        progress: &dyn Fn(&files::FilesProgress),
        arriving: Option<&AtomicBool>,
    ) -> Result<FetchedAll, String> {
        let r = files::fetch_all(&self.shared.lib, node, peer, progress, arriving);
        if let Ok((p, _)) = &r
            && p.done_files > 0
        {
            (self.shared.news)(SyncNews {
                peer: node.name_of(peer),
                changed: 0,
                removed: 0,
                notes: vec![format!(
                    "fetched {} files ({} bytes)",
                    p.done_files, p.done_bytes
                )],
            });
        }
        r
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
            let Some(relation) = t.sync else {
                continue;
            };
            let follow = relation == SyncRelation::Subscribe;
            let why = if follow {
                follower::why_not(node, &peer)
            } else {
                why_not(node, &peer)
            };
            if let Some(why) = why {
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
                .spawn(move || {
                    if follow {
                        follower::live(&shared, &node, &peer);
                    } else {
                        puller::live(&shared, &node, &peer);
                    }
                });
            match spawned {
                Ok(t) => {
                    running.insert(peer, t);
                }
                Err(e) => tracing::warn!("sync: cannot start a puller: {e}"),
            }
        }
        forget_unsubscribed(shared, node);
        forget_unmirrored(shared, node);
        std::thread::sleep(Duration::from_millis(200));
    }
    // Pullers see the stop after their current ask (a long poll ends within
    // `server::LONG_POLL`); they are not waited for.
}

/// Forgets the device numbers of peers that are no longer mirrors (removed from
/// `peers.toml`, or their relation changed): their word that they hold a file no
/// longer keeps one here from being dropped.
fn forget_unmirrored(shared: &Shared, node: &Node) {
    let Ok(peers) = shared.lib.mirror_device_peers() else {
        return;
    };
    for bytes in peers {
        let id = PeerId::from_bytes(bytes);
        let mirror = id.as_ref().is_some_and(|id| {
            node.trusted(id)
                .is_some_and(|t| t.sync.is_some_and(SyncRelation::is_mirror))
        });
        if mirror {
            continue;
        }
        if let Ok(true) = shared.lib.forget_mirror_device(&bytes) {
            tracing::info!(
                "sync: {} is no longer a mirror: its word that it holds a file no longer keeps one here",
                id.map_or_else(|| "a peer".to_string(), |id| id.to_string())
            );
        }
    }
}

/// Drops the views of owners we no longer subscribe to (the relation was changed or
/// the peer removed from `peers.toml`).
fn forget_unsubscribed(shared: &Shared, node: &Node) {
    let Ok(owners) = shared.lib.offer_owners() else {
        return;
    };
    for owner in owners {
        let Some(id) = PeerId::from_bytes(owner) else {
            continue;
        };
        let subscribed = node
            .trusted(&id)
            .is_some_and(|t| t.sync == Some(SyncRelation::Subscribe));
        if subscribed {
            continue;
        }
        match shared.lib.offer_forget(&owner) {
            Ok(true) => (shared.news)(SyncNews {
                peer: node.name_of(&id),
                changed: 0,
                removed: 0,
                notes: vec![format!(
                    "no longer subscribed to {}: its shared sounds are gone from this list",
                    node.name_of(&id)
                )],
            }),
            Ok(false) => {}
            Err(e) => tracing::warn!("sync: forgetting a view: {e}"),
        }
    }
}
