//! Sharing part of a library with another person, as plain state machines: the owner
//! offers the sounds that carry any of the tags it shares with a peer ([`answer`]);
//! the subscriber keeps a read-only copy of that offer (a [`View`]) and follows its
//! changes. The owner decides everything: the subscriber never merges, it takes the
//! owner's latest version of each offered sound.
//!
//! Exchange, pulled by the subscriber: `Ask { since }` is answered with the offered
//! sounds changed after the owner's sequence number `since`, in batches, each with
//! the sequence number it last changed at (so an old answer arriving late can never
//! undo a newer one). A deleted sound that still carries a shared tag travels as a
//! removal. A sound that leaves the offer (a tag taken off, a share withdrawn) is not
//! sent at all — telling the subscriber about a sound it may no longer see would
//! itself say too much — so each answer carries the offer's fingerprint, and a
//! subscriber whose view differs once caught up starts a *full pass*: the whole
//! offer in id order, paged, which then replaces its view. Reconnecting with nothing
//! changed is one ask and one empty answer.
//!
//! Never does I/O, never reads a clock, never panics on anything a peer sends; a
//! view holds at most [`MAX_VIEW`] sounds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::record::{Facts, Record};
use super::replica::{BATCH, Replica, xor};
use super::wire::{MAX_MESSAGE, MAX_TAGS, MAX_TEXT};
use crate::domain::SoundId;

/// Most sounds one owner may offer a subscriber.
pub const MAX_VIEW: usize = 200_000;

/// One offered sound as the subscriber sees it: what a person can use of it, none of
/// the owner's own bookkeeping (keys, which devices hold it, stamps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offered {
    /// The sound.
    pub id: SoundId,
    /// The owner's sequence number of its latest change.
    pub seq: u64,
    /// What its bytes decide.
    pub facts: Facts,
    /// Its name in the owner's library.
    pub name: String,
    /// Its gain there, dB.
    pub gain_db: f32,
    /// Its tags there (on), sorted.
    pub tags: Vec<String>,
    /// Deleted there (a removal from the offer).
    pub deleted: bool,
}

impl Offered {
    /// The projection of `r`, last changed at `seq`.
    pub fn of(r: &Record, seq: u64) -> Offered {
        Offered {
            id: r.id,
            seq,
            facts: r.facts.clone(),
            name: r.name.value.clone(),
            gain_db: r.gain_db.value,
            tags: r.tags_on(),
            deleted: !r.live(),
        }
    }

    /// The BLAKE3 hash of its encoding (what the offer's fingerprint XORs).
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&postcard::to_allocvec(self).unwrap_or_default()).as_bytes()
    }

    /// Within the same bounds as a record.
    fn check(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > MAX_TEXT {
            return Err(format!("a name of {} bytes", self.name.len()));
        }
        if self.tags.len() > MAX_TAGS
            || self.tags.iter().any(|t| t.is_empty() || t.len() > MAX_TEXT)
        {
            return Err("tags out of bounds".into());
        }
        if self.facts.format.len() > MAX_TEXT {
            return Err("a format text out of bounds".into());
        }
        if !self.gain_db.is_finite() || self.facts.loudness_lufs.is_some_and(|l| !l.is_finite()) {
            return Err("a number that is not finite".into());
        }
        if self.facts.sample_rate == 0 || self.facts.channels == 0 {
            return Err("no rate or no channels".into());
        }
        Ok(())
    }
}

/// What a subscriber and an owner say to each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShareMsg {
    /// Subscriber: send me the offer's changes after your sequence number `since`
    /// (or, in a full pass, the offered sounds after `after` in id order).
    Ask {
        /// The last of your sequence numbers my view reflects.
        since: u64,
        /// A full pass, continuing after this id (`None`: from the start).
        full: Option<Option<SoundId>>,
        /// My view's fingerprint.
        fingerprint: [u8; 32],
    },
    /// Owner: the offered sounds asked for.
    Offer {
        /// The `since` asked for (0 when it was beyond the owner's log).
        since: u64,
        /// The owner's sequence number these reflect.
        upto: u64,
        /// The sounds, each as it is now.
        sounds: Vec<Offered>,
        /// In a full pass, the last id sent when more follow; otherwise whether more
        /// changes follow (ask again from `upto`).
        more: bool,
        /// Whether this answers a full pass.
        full: bool,
        /// The whole offer's fingerprint.
        fingerprint: [u8; 32],
    },
    /// Owner: nothing is offered to you, and why.
    Refused {
        /// The reason, in words (at most [`MAX_TEXT`] bytes).
        reason: String,
    },
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Not a message of this version, or out of bounds.
    #[error("a malformed share message: {0}")]
    Malformed(String),
    /// More sounds than a subscriber keeps from one owner.
    #[error("an offer of more than {MAX_VIEW} sounds")]
    TooMany,
}

/// The message's encoding.
pub fn encode(m: &ShareMsg) -> Vec<u8> {
    postcard::to_allocvec(m).unwrap_or_default()
}

/// A message from a peer's bytes, within bounds.
pub fn decode(bytes: &[u8]) -> Result<ShareMsg, ShareError> {
    let bad = |why: String| Err(ShareError::Malformed(why));
    if bytes.len() > MAX_MESSAGE {
        return bad(format!("{} bytes, over the 4 MiB limit", bytes.len()));
    }
    let m = match postcard::take_from_bytes::<ShareMsg>(bytes) {
        Ok((m, [])) => m,
        Ok(_) => return bad("trailing bytes".into()),
        Err(e) => return bad(e.to_string()),
    };
    if let ShareMsg::Refused { reason } = &m
        && reason.len() > MAX_TEXT
    {
        return bad("a refusal too long".into());
    }
    if let ShareMsg::Offer { sounds, .. } = &m {
        if sounds.len() > BATCH {
            return bad(format!("{} sounds, more than one batch", sounds.len()));
        }
        for s in sounds {
            s.check().map_err(ShareError::Malformed)?;
        }
    }
    Ok(m)
}

/// Whether `r` carries any of `tags` (on), live or deleted.
pub fn offered(r: &Record, tags: &BTreeSet<String>) -> bool {
    r.tags.iter().any(|(t, f)| f.value && tags.contains(t))
}

/// The fingerprint of what `replica` offers under `tags`: its live sounds that carry
/// any of them.
pub fn fingerprint(replica: &Replica, tags: &BTreeSet<String>) -> [u8; 32] {
    let mut fp = [0u8; 32];
    if tags.is_empty() {
        return fp;
    }
    for r in replica.records().values() {
        if r.live() && offered(r, tags) {
            xor(
                &mut fp,
                &Offered::of(r, replica.seq_of(&r.id).unwrap_or(0)).hash(),
            );
        }
    }
    fp
}

/// The owner's answer to `ask` from what `replica` offers under `tags`. `None` for a
/// message that is not an ask.
pub fn answer(replica: &Replica, tags: &BTreeSet<String>, ask: &ShareMsg) -> Option<ShareMsg> {
    let ShareMsg::Ask { since, full, .. } = ask else {
        return None;
    };
    let fingerprint = fingerprint(replica, tags);
    let seq_of = |r: &Record| replica.seq_of(&r.id).unwrap_or(0);
    let mut sounds = Vec::new();
    let mut more = false;
    if let Some(after) = full {
        let from = match after {
            Some(id) => std::ops::Bound::Excluded(*id),
            None => std::ops::Bound::Unbounded,
        };
        for r in replica
            .records()
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, r)| r)
            .filter(|r| r.live() && offered(r, tags))
        {
            if sounds.len() == BATCH {
                more = true;
                break;
            }
            sounds.push(Offered::of(r, seq_of(r)));
        }
        return Some(ShareMsg::Offer {
            since: *since,
            upto: replica.seq(),
            sounds,
            more,
            full: true,
            fingerprint,
        });
    }
    let since = if *since > replica.seq() { 0 } else { *since };
    let mut upto = since;
    for (seq, r) in replica.log_after(since) {
        if offered(r, tags) {
            if sounds.len() == BATCH {
                more = true;
                break;
            }
            sounds.push(Offered::of(r, seq));
        }
        upto = seq;
    }
    if !more {
        upto = replica.seq().max(since);
    }
    Some(ShareMsg::Offer {
        since,
        upto,
        sounds,
        more,
        full: false,
        fingerprint,
    })
}

/// A full pass under way: where it started and what it has brought so far.
#[derive(Debug, Clone, PartialEq)]
struct Pass {
    start: u64,
    after: Option<SoundId>,
    got: BTreeMap<SoundId, Offered>,
}

/// What one answer changed in a view: what a store must write (in one transaction)
/// so that a view restored from it is this one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewChange {
    /// Sounds added or changed.
    pub upserts: Vec<Offered>,
    /// Sounds gone from the offer.
    pub removed: Vec<SoundId>,
    /// The cursor to keep, when it moved.
    pub cursor: Option<u64>,
    /// Ask again at once (more follows, or a full pass starts or goes on).
    pub again: bool,
}

impl ViewChange {
    /// Whether the view's sounds changed.
    pub fn changed(&self) -> bool {
        !self.upserts.is_empty() || !self.removed.is_empty()
    }
}

/// A subscriber's copy of one owner's offer. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    sounds: BTreeMap<SoundId, Offered>,
    cursor: u64,
    fingerprint: [u8; 32],
    pass: Option<Pass>,
}

impl View {
    /// A view as a store kept it.
    pub fn restore(sounds: impl IntoIterator<Item = Offered>, cursor: u64) -> View {
        let mut v = View {
            cursor,
            ..View::default()
        };
        for s in sounds {
            v.put(s);
        }
        v
    }

    /// The offered sounds held.
    pub fn sounds(&self) -> &BTreeMap<SoundId, Offered> {
        &self.sounds
    }

    /// The last of the owner's sequence numbers this view reflects.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The view's fingerprint.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// Whether a full pass is under way.
    pub fn in_full_pass(&self) -> bool {
        self.pass.is_some()
    }

    fn put(&mut self, s: Offered) {
        if let Some(old) = self.sounds.remove(&s.id) {
            xor(&mut self.fingerprint, &old.hash());
        }
        xor(&mut self.fingerprint, &s.hash());
        self.sounds.insert(s.id, s);
    }

    fn take(&mut self, id: &SoundId) -> bool {
        match self.sounds.remove(id) {
            Some(old) => {
                xor(&mut self.fingerprint, &old.hash());
                true
            }
            None => false,
        }
    }

    /// What to send the owner next.
    pub fn ask(&self) -> ShareMsg {
        ShareMsg::Ask {
            since: self.cursor,
            full: self.pass.as_ref().map(|p| p.after),
            fingerprint: self.fingerprint,
        }
    }

    /// Handles the owner's answer. A message that does not answer the current ask
    /// (a late duplicate, a page of an abandoned pass) changes nothing that a newer
    /// one said: per sound, only a later sequence number wins. A refused answer
    /// changes no sound (a full pass under way is abandoned).
    pub fn handle(&mut self, msg: ShareMsg) -> Result<ViewChange, ShareError> {
        let ShareMsg::Offer {
            since,
            upto,
            sounds,
            more,
            full,
            fingerprint,
        } = msg
        else {
            return Ok(ViewChange::default());
        };
        let mut out = ViewChange::default();
        if full {
            return self.on_page(upto, sounds, more, fingerprint);
        }
        if self.pass.is_some() {
            return Ok(out);
        }
        // Refused whole, before anything is taken.
        let new = sounds
            .iter()
            .filter(|s| !s.deleted && !self.sounds.contains_key(&s.id))
            .count();
        if self.sounds.len() + new > MAX_VIEW {
            return Err(ShareError::TooMany);
        }
        for s in sounds {
            let newer = self.sounds.get(&s.id).is_none_or(|old| s.seq > old.seq);
            if !newer {
                continue;
            }
            if s.deleted {
                if self.take(&s.id) {
                    out.removed.push(s.id);
                }
            } else {
                out.upserts.push(s.clone());
                self.put(s);
            }
        }
        // Only an answer that continues from our cursor (or restarts from 0) moves it.
        let current = since == self.cursor || since == 0;
        if current && upto != self.cursor {
            self.cursor = upto;
            out.cursor = Some(upto);
        }
        if more {
            out.again = current;
        } else if current && fingerprint != self.fingerprint {
            // Caught up, yet different: a sound left the offer (or we missed one).
            self.pass = Some(Pass {
                start: upto,
                after: None,
                got: BTreeMap::new(),
            });
            out.again = true;
        }
        Ok(out)
    }

    fn on_page(
        &mut self,
        upto: u64,
        sounds: Vec<Offered>,
        more: bool,
        fingerprint: [u8; 32],
    ) -> Result<ViewChange, ShareError> {
        let mut out = ViewChange::default();
        let Some(pass) = self.pass.as_mut() else {
            return Ok(out);
        };
        // A page is taken only in order: each id after the last one taken.
        if sounds
            .first()
            .is_some_and(|s| pass.after.is_some_and(|a| s.id <= a))
            || sounds.windows(2).any(|w| w[0].id >= w[1].id)
        {
            return Ok(out);
        }
        if pass.after.is_none() && pass.got.is_empty() {
            pass.start = upto;
        }
        if pass.got.len() + sounds.len() > MAX_VIEW {
            self.pass = None;
            return Err(ShareError::TooMany);
        }
        if let Some(last) = sounds.last() {
            pass.after = Some(last.id);
        }
        for s in sounds {
            pass.got.insert(s.id, s);
        }
        if more {
            out.again = true;
            return Ok(out);
        }
        let Some(pass) = self.pass.take() else {
            return Ok(out);
        };
        let gone: Vec<SoundId> = self
            .sounds
            .keys()
            .filter(|id| !pass.got.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.take(&id);
            out.removed.push(id);
        }
        for (id, s) in pass.got {
            if self.sounds.get(&id) != Some(&s) {
                out.upserts.push(s.clone());
                self.put(s);
            }
        }
        self.cursor = pass.start;
        out.cursor = Some(pass.start);
        // Changes made while the pass ran follow from its start; a view still unlike
        // the owner's then will start another pass.
        out.again = fingerprint != self.fingerprint;
        Ok(out)
    }
}

#[cfg(test)]
#[path = "share_tests.rs"]
mod tests;
