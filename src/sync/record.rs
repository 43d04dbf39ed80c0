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
//! Pure data; never panics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::hlc::{Device, Stamp};
use crate::domain::SoundId;

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

    /// Whether a device other than `me` holds the file.
    pub fn held_elsewhere(&self, me: Device) -> bool {
        self.holders.iter().any(|(d, f)| *d != me && f.value)
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
        for (device, f) in &other.holders {
            match self.holders.get_mut(device) {
                Some(mine) => changed |= mine.merge(f),
                None => {
                    self.holders.insert(*device, f.clone());
                    changed = true;
                }
            }
        }
        changed
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
