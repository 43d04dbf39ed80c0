//! State shared by a node's tasks: who we are, whom we trust (re-read when the file
//! changes), the live links, the feature router, the running fetches and the
//! cached group hashes of served blobs.
//!
//! Plain state and small accessors; no task is spawned and no socket is touched here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::blob::TreeCell;
use super::events::NetEvent;
use super::identity::Identity;
use super::link::Link;
use super::node::{BlobLookup, EventSink};
use super::peer_id::PeerId;
use super::router::Router;
use super::trust::{TrustStore, TrustedPeer};
use crate::domain::SoundId;

/// What is known of the trust store file, reloaded when it changes on disk.
pub(crate) struct TrustView {
    pub(crate) store: TrustStore,
    pub(crate) stamp: Option<(SystemTime, u64)>,
    pub(crate) checked: Option<Instant>,
}

/// How often the trust file is looked at outside handshakes.
const TRUST_CHECK: Duration = Duration::from_millis(500);

impl TrustView {
    pub(crate) fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(path).ok()?;
        Some((m.modified().ok()?, m.len()))
    }

    /// [`TrustView::refresh`] at most every [`TRUST_CHECK`].
    pub(crate) fn refresh_if_due(&mut self) {
        if self.checked.is_some_and(|t| t.elapsed() < TRUST_CHECK) {
            return;
        }
        self.refresh();
    }

    /// Re-reads the file when it changed; a file that no longer parses keeps the last
    /// good contents (and says so).
    pub(crate) fn refresh(&mut self) {
        self.checked = Some(Instant::now());
        let now = Self::stamp(self.store.path());
        if now == self.stamp {
            return;
        }
        self.stamp = now;
        match TrustStore::load(self.store.path()) {
            Ok(s) => self.store = s,
            Err(e) => tracing::warn!(
                "the trust store could not be read again, keeping the last good one: {}",
                crate::domain::chain(&e)
            ),
        }
    }

    /// The store.
    pub(crate) fn store(&self) -> &TrustStore {
        &self.store
    }
}

/// Why a dial to a peer last failed, and when to try again.
#[derive(Debug, Clone)]
pub(crate) struct DialState {
    pub(crate) next: Instant,
    pub(crate) backoff: Duration,
    pub(crate) last_error: Option<String>,
    pub(crate) busy: bool,
}

/// State shared by the node's tasks.
pub(crate) struct Shared {
    pub(crate) me: Arc<Identity>,
    pub(crate) name: String,
    pub(crate) session: u64,
    pub(crate) trust: Arc<Mutex<TrustView>>,
    pub(crate) links: Mutex<HashMap<PeerId, Arc<Link>>>,
    pub(crate) events: EventSink,
    pub(crate) blobs: BlobLookup,
    pub(crate) fetches: Mutex<super::blob::Fetches>,
    pub(crate) partial_dir: PathBuf,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) triggers_per_second: f64,
    pub(crate) trigger_burst: u32,
    pub(crate) hooks: super::hooks::TestHooks,
    /// Group hashes of blobs served recently (computed once, whoever asks first).
    pub(crate) trees: Mutex<HashMap<SoundId, Arc<TreeCell>>>,
    pub(crate) next_trigger: AtomicU64,
    pub(crate) dials: Mutex<HashMap<PeerId, DialState>>,
    /// Where what peers send goes: streams, datagrams and messages by kind.
    pub(crate) router: Router,
    /// Which sounds `read` reaches (`None`: all).
    pub(crate) read_policy: Mutex<Option<super::node::ReadPolicy>>,
    /// Blobs served and not yet told (see [`Shared::tell_served`]).
    pub(crate) served: Mutex<Vec<NetEvent>>,
}

/// How long news of blobs served is held to be told together.
const SERVED_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

pub(crate) use crate::guard::lock;

impl Shared {
    /// The trust store, refreshed from disk when it changed (looked at no more than
    /// every half second; a handshake always looks).
    pub(crate) fn trust(&self) -> MutexGuard<'_, TrustView> {
        let mut t = lock(&self.trust);
        t.refresh_if_due();
        t
    }

    /// The trusted entry of `id`.
    pub(crate) fn trusted(&self, id: &PeerId) -> Option<TrustedPeer> {
        self.trust().store().by_id(id).cloned()
    }

    /// The live link to `id`.
    pub(crate) fn link(&self, id: &PeerId) -> Option<Arc<Link>> {
        lock(&self.links)
            .get(id)
            .filter(|l| l.conn.close_reason().is_none())
            .cloned()
    }

    pub(crate) fn emit(&self, e: NetEvent) {
        (self.events)(e);
    }

    /// Tells of a blob served ([`NetEvent::Served`]), with the others served within
    /// [`SERVED_EVERY`]: a peer fetching a library's thousand files wakes whoever
    /// listens a few times, not a thousand. Needs the node's runtime.
    pub(crate) fn tell_served(self: &Arc<Self>, e: NetEvent) {
        let first = {
            let mut pending = lock(&self.served);
            pending.push(e);
            pending.len() == 1
        };
        if first {
            let shared = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(SERVED_EVERY).await;
                let told = std::mem::take(&mut *lock(&shared.served));
                for e in told {
                    shared.emit(e);
                }
            });
        }
    }
}
