//! A sound's replicated record and how two copies of it merge. Every field that a
//! person can change (name, key, gain, each tag, deleted-or-not) carries the stamp of
//! the change that set it, and merging keeps, field by field, the value with the
//! later stamp ([`super::hlc::Stamp`]'s total order). That makes a merge commutative,
//! associative and idempotent: replicas that have seen the same changes hold the
//! same record, whatever the order and however often the changes arrived.
//!
//! What the bytes decide (length, rate, channels, format, size, loudness) cannot
//! differ between honest replicas of one id; if it does, the smaller encoding is kept
//! on every replica so they still agree.
//!
//! A delete is an ordinary field (`deleted`), and a later import of the same bytes an
//! ordinary later change to it. A deleted record (a tombstone) keeps only its stamps'
//! worth of data and is never dropped: a replica may come back after any time with
//! the sound still live, and only the tombstone's later stamp tells it the sound was
//! deleted since.
//!
//! The holders of a file are bounded: a record keeps the [`MAX_HOLDERS`] most recently
//! stamped holder entries and drops the rest. Keeping the k greatest of a union under
//! a total order is itself commutative, associative and idempotent, so replicas
//! still agree; an entry dropped can never come back through an older copy (anything
//! older is below the same cut); and a holder forgotten only makes eviction more
//! careful, never less (a file is dropped only where another holder is known). A
//! device that still holds the file says so again with a new stamp when it next
//! keeps it.
//!
//! Pure data; never panics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hlc::{Device, Stamp};
use crate::domain::SoundId;

/// Most devices one record names as holding its file (the most recently stamped).
pub const MAX_HOLDERS: usize = 64;

/// A value and the stamp of the change that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field<T> {
    /// The value.
    pub value: T,
    /// When it was set, and by whom.
    pub at: Stamp,
}

impl<T: Clone + Serialize> Field<T> {
    /// A value set at `at`.
    pub fn new(value: T, at: Stamp) -> Field<T> {
        Field { value, at }
    }

    /// Keeps the later of the two; on equal stamps (only a faulty peer makes two
    /// values with one stamp) the smaller encoding, so every replica agrees.
    /// Returns whether this changed.
    pub fn merge(&mut self, other: &Field<T>) -> bool {
        let take = match other.at.cmp(&self.at) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => encoding(&other.value) < encoding(&self.value),
        };
        if take {
            *self = other.clone();
        }
        take
    }
}

fn encoding<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).unwrap_or_default()
}

/// What a sound's bytes decide: the same on every honest replica.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// Length in frames at `sample_rate`.
    pub frames: u64,
    /// Native sample rate.
    pub sample_rate: u32,
    /// Native channels.
    pub channels: u16,
    /// Container and codec.
    pub format: String,
    /// Blob size in bytes.
    pub size: u64,
    /// Integrated loudness, LUFS.
    pub loudness_lufs: Option<f32>,
}

/// One sound's replicated record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The sound (the BLAKE3 hash of its bytes).
    pub id: SoundId,
    /// What its bytes decide.
    pub facts: Facts,
    /// Its name (unique among live records once names are resolved).
    pub name: Field<String>,
    /// Its hotkey (unique among live records once keys are resolved).
    pub key: Field<Option<String>>,
    /// Its gain, dB.
    pub gain_db: Field<f32>,
    /// Each tag ever given, and whether it is on now.
    pub tags: BTreeMap<String, Field<bool>>,
    /// Whether it is deleted.
    pub deleted: Field<bool>,
    /// Which devices hold its file, each set by that device (git-annex's location
    /// log): a file is dropped only where another device still holds it.
    pub holders: BTreeMap<Device, Field<bool>>,
}

impl Record {
    /// A new live record for sound `id`, every field set at `at`.
    pub fn new(id: SoundId, facts: Facts, name: &str, at: Stamp) -> Record {
        Record {
            id,
            facts,
            name: Field::new(name.to_string(), at),
            key: Field::new(None, at),
            gain_db: Field::new(0.0, at),
            tags: BTreeMap::new(),
            deleted: Field::new(false, at),
            holders: BTreeMap::new(),
        }
    }

    /// Whether it is live (not deleted).
    pub fn live(&self) -> bool {
        !self.deleted.value
    }

    /// The tags that are on, sorted.
    pub fn tags_on(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, f)| f.value)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The latest stamp in it.
    pub fn latest(&self) -> Stamp {
        let mut s = self
            .name
            .at
            .max(self.key.at)
            .max(self.gain_db.at)
            .max(self.deleted.at);
        for f in self.tags.values().chain(self.holders.values()) {
            s = s.max(f.at);
        }
        s
    }

    /// Whether `device` says it holds the file.
    pub fn held_by(&self, device: Device) -> bool {
        self.holders.get(&device).is_some_and(|f| f.value)
    }

    /// Whether one of `devices` says it holds the file.
    pub fn held_by_any(&self, devices: &std::collections::HashSet<Device>) -> bool {
        self.holders
            .iter()
            .any(|(d, f)| f.value && devices.contains(d))
    }

    /// Every stamp in it, for checking them against our clock.
    pub fn stamps(&self) -> impl Iterator<Item = Stamp> + '_ {
        [self.name.at, self.key.at, self.gain_db.at, self.deleted.at]
            .into_iter()
            .chain(self.tags.values().map(|f| f.at))
            .chain(self.holders.values().map(|f| f.at))
    }

    /// Merges `other` (a copy of the same sound) in; returns whether anything changed.
    /// A record of another sound is ignored.
    pub fn merge(&mut self, other: &Record) -> bool {
        if other.id != self.id {
            return false;
        }
        let mut changed = false;
        if other.facts != self.facts && encoding(&other.facts) < encoding(&self.facts) {
            self.facts = other.facts.clone();
            changed = true;
        }
        changed |= self.name.merge(&other.name);
        changed |= self.key.merge(&other.key);
        changed |= self.gain_db.merge(&other.gain_db);
        changed |= self.deleted.merge(&other.deleted);
        for (tag, f) in &other.tags {
            match self.tags.get_mut(tag) {
                Some(mine) => changed |= mine.merge(f),
                None => {
                    self.tags.insert(tag.clone(), f.clone());
                    changed = true;
                }
            }
        }
        // Only a union that may pass the bound is compared after the cut.
        let before = (other.holders.keys().any(|d| !self.holders.contains_key(d))
            && self.holders.len() + other.holders.len() > MAX_HOLDERS)
            .then(|| self.holders.clone());
        let mut holders_changed = false;
        for (device, f) in &other.holders {
            match self.holders.get_mut(device) {
                Some(mine) => holders_changed |= mine.merge(f),
                None => {
                    self.holders.insert(*device, f.clone());
                    holders_changed = true;
                }
            }
        }
        if self.prune_holders() {
            // What came in may all have fallen below the cut again.
            holders_changed = before.is_none_or(|b| self.holders != b);
        }
        changed || holders_changed
    }

    /// Keeps the [`MAX_HOLDERS`] most recently stamped holder entries; whether any
    /// went.
    pub fn prune_holders(&mut self) -> bool {
        if self.holders.len() <= MAX_HOLDERS {
            return false;
        }
        let mut by_age: Vec<(Stamp, Device)> =
            self.holders.iter().map(|(d, f)| (f.at, *d)).collect();
        by_age.sort_unstable();
        let over = by_age.len() - MAX_HOLDERS;
        for (_, d) in &by_age[..over] {
            self.holders.remove(d);
        }
        true
    }

    /// Its canonical encoding (what its fingerprint hashes).
    pub fn encode(&self) -> Vec<u8> {
        encoding(self)
    }

    /// The BLAKE3 hash of its canonical encoding.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(wall_ms: u64, device: u64) -> Stamp {
        Stamp {
            wall_ms,
            counter: 0,
            device: Device(device),
        }
    }

    fn facts() -> Facts {
        Facts {
            frames: 48_000,
            sample_rate: 48_000,
            channels: 1,
            format: "wav/pcm_s16le".into(),
            size: 96_044,
            loudness_lufs: Some(-20.0),
        }
    }

    #[test]
    fn fields_merge_by_stamp_in_any_order() {
        let id = SoundId([7; 32]);
        let base = Record::new(id, facts(), "horn", at(1, 1));
        let mut a = base.clone();
        a.name = Field::new("airhorn".into(), at(5, 1));
        a.tags.insert("loud".into(), Field::new(true, at(5, 1)));
        let mut b = base.clone();
        b.name = Field::new("fog horn".into(), at(6, 2));
        b.key = Field::new(Some("h".into()), at(4, 2));
        b.tags.insert("loud".into(), Field::new(false, at(3, 2)));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.name.value, "fog horn");
        assert_eq!(ab.key.value.as_deref(), Some("h"));
        assert_eq!(ab.tags_on(), vec!["loud".to_string()]);
        assert!(!ab.clone().merge(&a), "idempotent");
    }

    #[test]
    fn holders_keep_the_most_recent_and_converge_in_any_order() {
        use rand::seq::SliceRandom;
        use rand::{Rng, SeedableRng};
        let id = SoundId([9; 32]);
        let base = Record::new(id, facts(), "bell", at(1, 1));
        for seed in 0..200u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            // 150 devices each say (some twice) whether they hold the file, as
            // separate one-entry copies that reach three replicas in different orders
            // and groupings.
            let mut copies = Vec::new();
            for d in 0..150u64 {
                for _ in 0..rng.gen_range(1..=2) {
                    let mut c = base.clone();
                    let when = rng.gen_range(2..10_000);
                    c.holders
                        .insert(Device(d), Field::new(rng.gen_bool(0.8), at(when, d)));
                    copies.push(c);
                }
            }
            let mut replicas = vec![base.clone(), base.clone(), base.clone()];
            for r in &mut replicas {
                copies.shuffle(&mut rng);
                // Some copies are merged into each other first (a peer's merged view).
                for chunk in copies.chunks(rng.gen_range(1..8)) {
                    let mut m = chunk[0].clone();
                    for c in &chunk[1..] {
                        m.merge(c);
                    }
                    r.merge(&m);
                    assert!(r.holders.len() <= MAX_HOLDERS);
                }
            }
            assert_eq!(replicas[0], replicas[1], "seed {seed}");
            assert_eq!(replicas[1], replicas[2], "seed {seed}");
            // The kept entries are the newest stamps of all.
            let mut newest: Vec<(Stamp, Device)> = Vec::new();
            let mut latest: BTreeMap<Device, Field<bool>> = BTreeMap::new();
            for c in &copies {
                for (d, f) in &c.holders {
                    match latest.get_mut(d) {
                        Some(m) => {
                            m.merge(f);
                        }
                        None => {
                            latest.insert(*d, f.clone());
                        }
                    }
                }
            }
            newest.extend(latest.iter().map(|(d, f)| (f.at, *d)));
            newest.sort_unstable();
            let cut = newest[newest.len() - MAX_HOLDERS].0;
            assert!(
                replicas[0].holders.values().all(|f| f.at >= cut),
                "seed {seed}"
            );
            assert_eq!(replicas[0].holders.len(), MAX_HOLDERS);
            // An entry older than the cut changes nothing and is not a change.
            let mut old = base.clone();
            old.holders
                .insert(Device(999), Field::new(true, at(1, 999)));
            let mut r = replicas[0].clone();
            assert!(
                !r.merge(&old),
                "seed {seed}: an entry below the cut is no change"
            );
            assert_eq!(r, replicas[0]);
            // A device that keeps the file again, stamped now, is among them.
            let mut again = base.clone();
            again
                .holders
                .insert(Device(0), Field::new(true, at(20_000, 0)));
            assert!(r.merge(&again));
            assert!(r.holders[&Device(0)].value && r.holders.len() == MAX_HOLDERS);
        }
    }

    #[test]
    fn equal_stamps_with_different_values_still_agree() {
        let id = SoundId([1; 32]);
        let mut a = Record::new(id, facts(), "x", at(1, 1));
        let mut b = Record::new(id, facts(), "y", at(1, 1));
        let (a0, b0) = (a.clone(), b.clone());
        a.merge(&b0);
        b.merge(&a0);
        assert_eq!(a, b);
    }

    #[test]
    fn a_delete_is_a_field_and_a_later_import_revives() {
        let id = SoundId([2; 32]);
        let mut a = Record::new(id, facts(), "x", at(1, 1));
        let mut gone = a.clone();
        gone.deleted = Field::new(true, at(2, 2));
        a.merge(&gone);
        assert!(!a.live());
        let mut back = a.clone();
        back.deleted = Field::new(false, at(3, 1));
        a.merge(&back);
        assert!(a.live());
        let mut other = Record::new(SoundId([3; 32]), facts(), "z", at(9, 9));
        let before = other.clone();
        assert!(!other.merge(&a), "another sound's record is ignored");
        assert_eq!(other, before);
    }
}
