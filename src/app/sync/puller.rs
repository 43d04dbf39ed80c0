//! Pulling a peer's changes: ask from our cursor, merge the answer, and ask again —
//! at once while it has more, otherwise the peer holds the ask until it changes (a
//! long poll). One puller per connected mirror; it ends when the peer goes or the
//! service stops (the manager starts it again).
//!
//! Must never: merge what the peer sent without the library's bounds checks
//! (`sync::wire::decode`), or spin: a failed exchange waits before the next.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::server::{ANSWER_NOW, MAY_HOLD};
use super::{PeerSync, Shared, device_of, why_not};
use crate::guard::lock;
use crate::net::{NetError, Node, PeerId};
use crate::proto::StreamKind;
use crate::sync::replica::Msg;
use crate::sync::wire;

/// How long an ask may go unanswered (the peer holds it up to its long poll).
pub(super) const ASK_TIMEOUT: Duration = Duration::from_secs(40);
/// How long a new connection's features may take to arrive.
pub(super) const FEATURES_WITHIN: Duration = Duration::from_secs(3);
/// The wait after a failed exchange.
const BACKOFF: Duration = Duration::from_secs(2);
/// An answer with nothing new that came back faster than this was not held.
const QUICK_ANSWER: Duration = Duration::from_millis(200);
/// The wait after a refusal.
const REFUSED_BACKOFF: Duration = Duration::from_secs(30);

/// Why an exchange failed.
pub(super) struct Failure {
    /// The peer refused us (no use asking again soon).
    pub(super) refused: bool,
    pub(super) why: String,
}

impl Failure {
    pub(super) fn other(e: impl std::fmt::Display) -> Failure {
        Failure {
            refused: false,
            why: e.to_string(),
        }
    }
}

/// What one exchange did.
struct Step {
    /// The peer has more for us right now.
    more: bool,
    /// Records that changed here.
    changed: usize,
    /// The cursor moved: the peer sent changes it had not sent before.
    moved: bool,
    /// Its fingerprint equals ours after the merge.
    in_sync: bool,
}

/// The answer to the next ask, asked for while the last answer merged: an answer
/// that says more follows ends at a sequence number of the peer's, and the next ask
/// starts there whatever the merge does, so the peer's work on it and the round trip
/// overlap ours. Used only when the next ask does start there.
#[derive(Default)]
pub(super) struct Ahead(Option<(u64, Result<Vec<u8>, NetError>)>);

/// Sends `ask` and waits for the answer.
fn ask_peer(node: &Node, peer: &PeerId, ask: &Msg, mode: u8) -> Result<Vec<u8>, NetError> {
    let mut body = vec![mode];
    body.extend(wire::encode(ask));
    node.request(
        peer,
        StreamKind::SYNC,
        &body,
        wire::MAX_MESSAGE,
        ASK_TIMEOUT,
    )
}

/// One ask and its merge (the ask answered ahead when it was).
fn exchange(
    shared: &Shared,
    node: &Node,
    peer: &PeerId,
    name: &str,
    mode: u8,
    ahead: &mut Ahead,
) -> Result<Step, Failure> {
    let dev = device_of(peer);
    let before = shared.lib.sync_cursor(dev).map_err(Failure::other)?;
    let ask = shared.lib.sync_ask(dev).map_err(Failure::other)?;
    let asked = Instant::now();
    let answer = match (ahead.0.take(), &ask) {
        (Some((from, answer)), Msg::Ask { since, .. }) if from == *since => answer,
        _ => ask_peer(node, peer, &ask, mode),
    }
    .map_err(|e| Failure {
        refused: matches!(e, NetError::Refused { .. }),
        why: e.to_string(),
    })?;
    // A reconciliation step carries records of ours the peer asked for: it has them.
    if let Msg::Reconcile { records, .. } = &ask
        && !records.is_empty()
    {
        shared.count_sent(peer, records.len());
    }
    let msg = wire::decode(&answer).map_err(|e| Failure::other(format!("{name} sent {e}")))?;
    let (count, theirs, more) = match &msg {
        Msg::Changes {
            records,
            fingerprint,
            more,
            ..
        } => (records.len(), *fingerprint, *more),
        // A step of a reconciliation: more follows while we have a next step.
        Msg::Reconcile {
            answer: true,
            records,
            ..
        } => (records.len(), [0; 32], true),
        Msg::Ask { .. } | Msg::Reconcile { .. } => {
            return Err(Failure::other(format!(
                "{name} answered an ask with an ask"
            )));
        }
    };
    let answered = asked.elapsed();
    // Where the next ask starts, when more follows (our fingerprint only matters to
    // an answer with nothing in it, which this one cannot be).
    let next = match (&msg, &ask) {
        (
            Msg::Changes {
                more: true, upto, ..
            },
            Msg::Ask { fingerprint, .. },
        ) => Some((*upto, *fingerprint)),
        _ => None,
    };
    let merged = std::thread::scope(|scope| {
        let next = next.map(|(since, fingerprint)| {
            scope.spawn(move || {
                let ask = Msg::Ask { since, fingerprint };
                (since, ask_peer(node, peer, &ask, mode))
            })
        });
        let merged = shared.lib.sync_handle(dev, msg);
        if let Some(Ok(answer)) = next.map(std::thread::ScopedJoinHandle::join) {
            ahead.0 = Some(answer);
        }
        merged
    })
    .map_err(|e| Failure::other(format!("merging {name}'s changes: {e}")))?;
    tracing::debug!(
        "sync: {name} answered {count} records in {:.1} ms, merged in {:.1} ms",
        answered.as_secs_f64() * 1e3,
        (asked.elapsed() - answered).as_secs_f64() * 1e3
    );
    let ours = shared.lib.sync_fingerprint().map_err(Failure::other)?;
    // After a reconciliation step, ask again at once (its next step, or the ask
    // that compares fingerprints once it is over).
    let in_sync = !more && ours == theirs;
    shared.update(peer, name, |s| {
        s.pulled += count as u64;
        s.in_sync = in_sync;
        s.last_error = None;
    });
    let changed = merged.changed.len() + merged.removed.len();
    shared.tell(name, &merged);
    let moved = shared.lib.sync_cursor(dev).map_err(Failure::other)? != before;
    Ok(Step {
        more,
        changed,
        moved,
        in_sync,
    })
}

/// How long a mirror may take to tell its device number.
const DEVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the mirror `peer` which device number its library stamps its changes with,
/// and keeps it: from then on its word that it holds a file counts when a file here
/// might be dropped (the disk budget for remote sounds never drops the last copy).
/// A peer that does not say (an older one, or a failure) is simply not counted:
/// files are kept, never lost.
pub(super) fn learn_device(shared: &Shared, node: &Node, peer: &PeerId) {
    if !node.speaks(peer, super::DEVICE_FEATURE) {
        return;
    }
    let name = node.name_of(peer);
    match node.request(peer, StreamKind::SYNC_DEVICE, &[], 8, DEVICE_TIMEOUT) {
        Ok(answer) => match <[u8; 8]>::try_from(answer.as_slice()) {
            Ok(b) => {
                let device = crate::sync::hlc::Device(u64::from_be_bytes(b));
                if let Err(e) = shared.lib.set_mirror_device(peer.as_bytes(), device) {
                    tracing::warn!("sync: keeping {name}'s device number: {e}");
                }
            }
            Err(_) => tracing::warn!(
                "sync: {name} told its device number in {} bytes, not 8 (not counted)",
                answer.len()
            ),
        },
        Err(e) => tracing::info!("sync: {name} did not tell its device number: {e}"),
    }
}

/// Keeps pulling from `peer` while it is connected and the service runs.
pub(super) fn live(shared: &Shared, node: &Node, peer: &PeerId) {
    learn_device(shared, node, peer);
    let mut ahead = Ahead::default();
    keep_asking(shared, node, peer, "sync with", why_not, |name| {
        exchange(shared, node, peer, name, MAY_HOLD, &mut ahead)
            .map(|step| !step.more && step.changed == 0 && !step.moved)
    });
}

/// Asks `peer` again and again while it is connected, the service runs and `why_not`
/// has nothing against it. `ask` does one exchange and says whether it brought
/// nothing (nothing new, nothing more, no cursor moved).
///
/// An honest peer holds an ask until it has something new for us: two quick answers
/// in a row that bring nothing (an old or faulty peer, or one replaying the same
/// records) are not followed by a third at once. A failure waits before the next ask;
/// a refusal, which stands until the peer's trust store changes, waits longer.
pub(super) fn keep_asking(
    shared: &Shared,
    node: &Node,
    peer: &PeerId,
    what: &str,
    why_not: fn(&Node, &PeerId) -> Option<String>,
    mut ask: impl FnMut(&str) -> Result<bool, Failure>,
) {
    let name = node.name_of(peer);
    let mut idle = 0;
    while !shared.stop.load(Ordering::Relaxed) && node.connected().contains(peer) {
        if why_not(node, peer).is_some() {
            return;
        }
        let asked = Instant::now();
        match ask(&name) {
            Ok(true) if asked.elapsed() < QUICK_ANSWER => {
                idle += 1;
                if idle >= 2 {
                    idle = 0;
                    std::thread::sleep(BACKOFF);
                }
            }
            Ok(_) => idle = 0,
            Err(e) => {
                tracing::info!("{what} {name}: {}", e.why);
                shared.update(peer, &name, |s| {
                    s.in_sync = false;
                    s.last_error = Some(e.why);
                });
                std::thread::sleep(if e.refused { REFUSED_BACKOFF } else { BACKOFF });
            }
        }
    }
}

/// How far a one-off pull goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// Every record the peer has now is here (it may not have taken ours yet).
    CaughtUp,
    /// Caught up, and the two libraries match: the peer took ours too.
    InSync,
}

/// Pulls until caught up (with matching libraries, for [`Until::InSync`]), or
/// `within` passes.
pub(super) fn until_in_sync(
    shared: &Shared,
    node: &Node,
    peer: &PeerId,
    within: Duration,
    until: Until,
    progress: &dyn Fn(&PeerSync),
) -> Result<PeerSync, String> {
    let deadline = Instant::now() + within;
    // Its features arrive just after the connection is made.
    let told = Instant::now() + FEATURES_WITHIN;
    while !node.speaks(peer, super::FEATURE) && Instant::now() < told {
        std::thread::sleep(Duration::from_millis(2));
    }
    if let Some(why) = why_not(node, peer) {
        return Err(why);
    }
    learn_device(shared, node, peer);
    let name = node.name_of(peer);
    let mut last_error = None;
    // The wait before asking again while the peer has not taken ours: short at
    // first (its own puller is on the way; on loopback it merges within a
    // millisecond or two), then doubling, so a peer that never takes ours is not
    // asked a hundred times a second.
    let mut wait = Duration::from_millis(1);
    let mut caught_up = false;
    let mut ahead = Ahead::default();
    while Instant::now() < deadline {
        match exchange(shared, node, peer, &name, ANSWER_NOW, &mut ahead) {
            Ok(step) => {
                if let Some(s) = lock(&shared.status).get(peer) {
                    progress(s);
                }
                if step.in_sync || (until == Until::CaughtUp && !step.more) {
                    caught_up = true;
                    break;
                }
                if !step.more {
                    // Caught up, yet different: the peer has not taken ours yet.
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
            }
            Err(e) if e.refused => return Err(e.why),
            Err(e) => {
                last_error = Some(e.why);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    let status = lock(&shared.status).get(peer).cloned().unwrap_or_default();
    if status.in_sync || caught_up {
        Ok(status)
    } else {
        Err(match last_error {
            Some(e) => e,
            None => format!(
                "{name} has not taken this library's changes within {} s (is this machine a mirror in its peers.toml, with read,write?)",
                within.as_secs()
            ),
        })
    }
}
