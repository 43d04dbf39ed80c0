//! Following another person's shared sounds: ask the owner from our view's cursor,
//! keep the answer, and ask again — at once while more follows or a full pass runs,
//! otherwise the owner holds the ask until what it offers us changes (a long poll).
//! One follower per connected peer that `peers.toml` marks `sync = "subscribe"`; it
//! ends when the peer goes or the service stops (the manager starts it again). Also
//! a one-off look at what a peer offers ([`browse`]), kept nowhere.
//!
//! Must never: take what the owner sent without the bounds checks
//! (`sync::share::decode`), write into our own records, or spin: a failed exchange
//! waits before the next.

use std::time::{Duration, Instant};

use super::puller::{ASK_TIMEOUT, FEATURES_WITHIN, Failure, keep_asking};
use super::server::{ANSWER_NOW, MAY_HOLD};
use super::{SHARE_FEATURE, Shared, SyncNews};
use crate::library::Taken;
use crate::net::{NetError, Node, PeerId, SyncRelation};
use crate::proto::StreamKind;
use crate::sync::share::{self, Offered, ShareMsg};
use crate::sync::wire::MAX_MESSAGE;

/// Why we would not follow `peer` now (`None`: we would).
pub(super) fn why_not(node: &Node, peer: &PeerId) -> Option<String> {
    let t = node.trusted(peer)?;
    if t.sync != Some(SyncRelation::Subscribe) {
        return Some(format!(
            "{} is not subscribed to (jhack peer add … --sync subscribe)",
            t.name
        ));
    }
    if !node.speaks(peer, SHARE_FEATURE) {
        return Some(format!("{} does not speak sharing", t.name));
    }
    None
}

/// One ask to the owner; its answer, decoded within bounds.
fn ask(
    node: &Node,
    peer: &PeerId,
    name: &str,
    msg: &ShareMsg,
    mode: u8,
) -> Result<ShareMsg, Failure> {
    let mut body = vec![mode];
    body.extend(share::encode(msg));
    let answer = node
        .request(peer, StreamKind::SHARE, &body, MAX_MESSAGE, ASK_TIMEOUT)
        .map_err(|e| Failure {
            refused: matches!(e, NetError::Refused { .. }),
            why: e.to_string(),
        })?;
    match share::decode(&answer) {
        Ok(m @ ShareMsg::Offer { .. }) => Ok(m),
        Ok(_) => Err(Failure::other(format!(
            "{name} answered an ask with an ask"
        ))),
        Err(e) => Err(Failure::other(format!("{name} sent {e}"))),
    }
}

/// What one exchange did.
struct Step {
    again: bool,
    changed: bool,
}

fn exchange(shared: &Shared, node: &Node, peer: &PeerId, name: &str) -> Result<Step, Failure> {
    let owner = *peer.as_bytes();
    let question = shared.lib.offer_ask(&owner).map_err(Failure::other)?;
    let answer = ask(node, peer, name, &question, MAY_HOLD)?;
    let theirs = match &answer {
        ShareMsg::Offer { fingerprint, .. } => *fingerprint,
        _ => [0; 32],
    };
    let change = match shared.lib.offer_take(&owner, name, answer) {
        Ok(Taken::Changed(c)) => c,
        Ok(Taken::Refused(e)) => return Err(Failure::other(format!("{name} sent {e}"))),
        Err(e) => return Err(Failure::other(format!("keeping {name}'s offer: {e}"))),
    };
    let ours = shared
        .lib
        .offer_fingerprint(&owner)
        .map_err(Failure::other)?;
    let in_sync = !change.again && ours == theirs;
    let (added, removed) = (change.upserts.len(), change.removed.len());
    shared.update(peer, name, |s| {
        s.pulled += (added + removed) as u64;
        s.in_sync = in_sync;
        s.last_error = None;
    });
    if change.changed() {
        (shared.news)(SyncNews {
            peer: name.to_string(),
            changed: added,
            removed,
            notes: Vec::new(),
        });
    }
    Ok(Step {
        again: change.again,
        changed: change.changed(),
    })
}

/// Keeps following `peer` while it is connected and the service runs.
pub(super) fn live(shared: &Shared, node: &Node, peer: &PeerId) {
    keep_asking(shared, node, peer, "sounds shared by", why_not, |name| {
        exchange(shared, node, peer, name).map(|step| !step.again && !step.changed)
    });
}

/// What `peer` offers us now, whole (for `jhack list --peer`), within `within`.
pub fn browse(
    node: &Node,
    peer: &PeerId,
    within: std::time::Duration,
) -> Result<Vec<Offered>, String> {
    let told = Instant::now() + FEATURES_WITHIN;
    while !node.speaks(peer, SHARE_FEATURE) && Instant::now() < told {
        std::thread::sleep(Duration::from_millis(20));
    }
    let name = node.name_of(peer);
    if !node.speaks(peer, SHARE_FEATURE) {
        return Err(format!("{name} does not speak sharing"));
    }
    let deadline = Instant::now() + within;
    // A full pass from the start: the whole offer, paged in id order.
    let mut after = None;
    let mut sounds: Vec<Offered> = Vec::new();
    loop {
        if Instant::now() > deadline {
            return Err(format!(
                "{name} did not list its offer within {} s",
                within.as_secs()
            ));
        }
        let question = ShareMsg::Ask {
            since: 0,
            full: Some(after),
            fingerprint: [0; 32],
        };
        let answer = ask(node, peer, &name, &question, ANSWER_NOW).map_err(|e| e.why)?;
        let ShareMsg::Offer {
            sounds: page,
            more,
            full: true,
            ..
        } = answer
        else {
            return Err(format!("{name} did not answer with its offer"));
        };
        let in_order = page.iter().try_fold(after, |prev, s| {
            (prev.is_none_or(|p| s.id > p)).then_some(Some(s.id))
        });
        let Some(last) = in_order else {
            return Err(format!("{name} listed its offer out of order"));
        };
        if sounds.len() + page.len() > share::MAX_VIEW {
            return Err(format!(
                "{name} offers more than {} sounds",
                share::MAX_VIEW
            ));
        }
        sounds.extend(page);
        if !more || last == after {
            break;
        }
        after = last;
    }
    Ok(sounds)
}
