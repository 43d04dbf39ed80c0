//! Names and keys stay unique after every merge. When two live records claim one
//! name (or one key), the record whose claim is older (the earlier stamp on that
//! field; the smaller id if they are equal) keeps it, and each other one is renamed
//! `name~<first hex digits of its id>` (enough digits to be free), or unbound. The
//! rule depends only on the merged records, so every replica picks the same winner
//! and the same new name: the fix, written as an ordinary change by whichever
//! replicas notice it first, carries the same value everywhere and cannot ping-pong.
//!
//! Pure: records in, fixes out.

use std::collections::{BTreeMap, HashSet};

use super::record::Record;
use crate::domain::SoundId;

/// What a merge left to be fixed, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// `id` lost its name `from` to `winner` and is now called `to`.
    Rename {
        /// The sound renamed.
        id: SoundId,
        /// The name it lost.
        from: String,
        /// Its new name.
        to: String,
        /// The sound that kept the name.
        winner: SoundId,
    },
    /// `id` lost its key to `winner` and has none now.
    Unbind {
        /// The sound unbound.
        id: SoundId,
        /// The key it lost.
        key: String,
        /// The sound that kept the key.
        winner: SoundId,
    },
}

impl Fix {
    /// The sound the fix changes.
    pub fn id(&self) -> SoundId {
        match self {
            Fix::Rename { id, .. } | Fix::Unbind { id, .. } => *id,
        }
    }
}

/// The fixes that make names and keys unique among the live records.
pub fn conflicts(records: &BTreeMap<SoundId, Record>) -> Vec<Fix> {
    let live: Vec<&Record> = records.values().filter(|r| r.live()).collect();
    let mut by_name: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &live {
        by_name.entry(r.name.value.as_str()).or_default().push(r);
        if let Some(k) = &r.key.value {
            by_key.entry(k.as_str()).or_default().push(r);
        }
    }
    let mut taken: HashSet<String> = live.iter().map(|r| r.name.value.clone()).collect();
    let mut fixes = Vec::new();
    for (_, claims) in by_name.into_iter().filter(|(_, v)| v.len() > 1) {
        fixes.extend(name_fixes(claims, &mut |n| !taken.insert(n.to_string())));
    }
    for (_, claims) in by_key.into_iter().filter(|(_, v)| v.len() > 1) {
        fixes.extend(key_fixes(claims));
    }
    fixes
}

/// The renames for live records that all claim one name: the oldest claim keeps
/// it. `take(name)` reserves a candidate name and says whether it was already taken.
pub fn name_fixes(mut claims: Vec<&Record>, take: &mut dyn FnMut(&str) -> bool) -> Vec<Fix> {
    if claims.len() < 2 {
        return Vec::new();
    }
    claims.sort_by(|a, b| a.name.at.cmp(&b.name.at).then(a.id.cmp(&b.id)));
    let winner = claims[0].id;
    let name = claims[0].name.value.clone();
    claims[1..]
        .iter()
        .map(|r| Fix::Rename {
            id: r.id,
            from: name.clone(),
            to: free_name(&name, &r.id, take),
            winner,
        })
        .collect()
}

/// The unbindings for live records that all claim one key: the oldest claim keeps it.
pub fn key_fixes(mut claims: Vec<&Record>) -> Vec<Fix> {
    if claims.len() < 2 {
        return Vec::new();
    }
    claims.sort_by(|a, b| a.key.at.cmp(&b.key.at).then(a.id.cmp(&b.id)));
    let winner = claims[0].id;
    let key = claims[0].key.value.clone().unwrap_or_default();
    claims[1..]
        .iter()
        .map(|r| Fix::Unbind {
            id: r.id,
            key: key.clone(),
            winner,
        })
        .collect()
}

/// `name~` and as many of the id's hex digits (at least 6) as make it free.
fn free_name(name: &str, id: &SoundId, take: &mut dyn FnMut(&str) -> bool) -> String {
    let hex = id.to_hex();
    for n in 6..hex.len() {
        let candidate = format!("{name}~{}", &hex[..n]);
        if !take(&candidate) {
            return candidate;
        }
    }
    let whole = format!("{name}~{hex}");
    take(&whole);
    whole
}

#[cfg(test)]
mod tests {
    use super::super::hlc::{Device, Stamp};
    use super::super::record::{Facts, Field};
    use super::*;

    fn at(wall_ms: u64) -> Stamp {
        Stamp {
            wall_ms,
            counter: 0,
            device: Device(1),
        }
    }

    fn rec(b: u8, name: &str, claimed: u64) -> Record {
        let facts = Facts {
            frames: 1,
            sample_rate: 48_000,
            channels: 1,
            format: "wav".into(),
            size: 1,
            loudness_lufs: None,
        };
        Record::new(SoundId([b; 32]), facts, name, at(claimed))
    }

    #[test]
    fn the_older_claim_keeps_a_name_and_the_other_gets_a_free_one() {
        let mut m = BTreeMap::new();
        for r in [
            rec(1, "horn", 5),
            rec(2, "horn", 3),
            rec(3, "horn~030303", 1),
        ] {
            m.insert(r.id, r);
        }
        let fixes = conflicts(&m);
        assert_eq!(fixes.len(), 1, "{fixes:?}");
        match &fixes[0] {
            Fix::Rename { id, to, winner, .. } => {
                assert_eq!(*id, SoundId([1; 32]));
                assert_eq!(*winner, SoundId([2; 32]));
                assert_eq!(to, "horn~010101");
            }
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn deleted_records_claim_nothing_and_keys_are_unbound() {
        let mut m = BTreeMap::new();
        let mut a = rec(1, "a", 1);
        a.key = Field::new(Some("z".into()), at(9));
        let mut b = rec(2, "b", 1);
        b.key = Field::new(Some("z".into()), at(4));
        let mut c = rec(3, "a", 0);
        c.deleted = Field::new(true, at(2));
        for r in [a, b, c] {
            m.insert(r.id, r);
        }
        let fixes = conflicts(&m);
        assert_eq!(
            fixes,
            vec![Fix::Unbind {
                id: SoundId([1; 32]),
                key: "z".into(),
                winner: SoundId([2; 32]),
            }]
        );
    }
}
