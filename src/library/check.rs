//! `jhack check`: every blob re-hashed against its id, every record read back, and the
//! name and key indexes compared with the records. Reports; repairs nothing.

use std::collections::{HashMap, HashSet};

use super::LibraryError;
use super::blobs::{BlobState, BlobStore};
use super::store::MetaStore;
use crate::domain::SoundId;

/// One thing wrong with the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A listed sound has no blob.
    MissingBlob {
        /// The sound's name.
        name: String,
        /// Its id.
        id: SoundId,
    },
    /// A listed sound's blob does not hash to its id.
    CorruptBlob {
        /// The sound's name.
        name: String,
        /// Its id.
        id: SoundId,
    },
    /// A blob's size differs from its record.
    SizeMismatch {
        /// The sound's name.
        name: String,
        /// Recorded size.
        recorded: u64,
        /// Actual size.
        actual: u64,
    },
    /// A record that cannot be read.
    DamagedRecord {
        /// Its key.
        key: String,
    },
    /// An index entry that points nowhere, or disagrees with the record.
    BadIndex {
        /// "name" or "key".
        index: &'static str,
        /// The entry.
        entry: String,
    },
    /// The sync records disagree with the listing (or cannot be read).
    Sync(String),
    /// A record whose name or key has no index entry.
    Unindexed {
        /// The sound's name.
        name: String,
        /// What is missing.
        what: &'static str,
    },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::MissingBlob { name, id } => {
                write!(f, "{name} ({}): the sound's file is missing", id.short())
            }
            Problem::CorruptBlob { name, id } => write!(
                f,
                "{name} ({}): the sound's file does not match its id (corrupt)",
                id.short()
            ),
            Problem::SizeMismatch {
                name,
                recorded,
                actual,
            } => write!(
                f,
                "{name}: recorded size {recorded} bytes, file is {actual} bytes"
            ),
            Problem::DamagedRecord { key } => write!(f, "record {key}: damaged, cannot be read"),
            Problem::BadIndex { index, entry } => {
                write!(
                    f,
                    "{index} index entry {entry:?} points to no matching sound"
                )
            }
            Problem::Sync(what) => write!(f, "{what}"),
            Problem::Unindexed { name, what } => write!(f, "{name}: its {what} is not indexed"),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Sounds whose blob and record are sound.
    pub sounds_ok: usize,
    /// Bytes verified.
    pub bytes: u64,
    /// Everything wrong.
    pub problems: Vec<Problem>,
    /// Blobs no record names (left by an interrupted import; harmless, adopted when
    /// the file is imported again).
    pub unlisted_blobs: usize,
    /// Remote sounds: listed, their files on other machines.
    pub remote: usize,
    /// Files of sounds others share with us, kept here and verified.
    pub shared_here: usize,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(super) fn run(store: &MetaStore, blobs: &BlobStore) -> Result<CheckReport, LibraryError> {
    let io = |source| LibraryError::Io {
        path: blobs.dir().to_path_buf(),
        source,
    };
    let mut report = CheckReport::default();
    let (records, damaged) = store.all()?;
    for d in damaged {
        report.problems.push(Problem::DamagedRecord { key: d.key });
    }
    let mut by_id = HashMap::with_capacity(records.len());
    for m in &records {
        by_id.insert(m.id, m);
        let ok_before = report.problems.len();
        match blobs.verify(&m.id).map_err(io)? {
            BlobState::Intact(size) => {
                report.bytes += size;
                if size != m.size {
                    report.problems.push(Problem::SizeMismatch {
                        name: m.name.clone(),
                        recorded: m.size,
                        actual: size,
                    });
                }
            }
            BlobState::Missing if m.origin == crate::domain::Origin::Remote => {
                report.remote += 1;
                continue;
            }
            BlobState::Missing => report.problems.push(Problem::MissingBlob {
                name: m.name.clone(),
                id: m.id,
            }),
            BlobState::Corrupt { .. } => report.problems.push(Problem::CorruptBlob {
                name: m.name.clone(),
                id: m.id,
            }),
        }
        if report.problems.len() == ok_before {
            report.sounds_ok += 1;
        }
    }
    let idx = store.indexes()?;
    let mut named = HashSet::new();
    for (name, id) in &idx.names {
        match id.and_then(|id| by_id.get(&id)) {
            Some(m) if m.name == *name => {
                named.insert(m.id);
            }
            _ => report.problems.push(Problem::BadIndex {
                index: "name",
                entry: name.clone(),
            }),
        }
    }
    let mut keyed = HashSet::new();
    for (key, id) in &idx.keys {
        match id.and_then(|id| by_id.get(&id)) {
            Some(m) if m.key.as_deref() == Some(key.as_str()) => {
                keyed.insert(m.id);
            }
            _ => report.problems.push(Problem::BadIndex {
                index: "key",
                entry: key.clone(),
            }),
        }
    }
    for m in &records {
        if !named.contains(&m.id) {
            report.problems.push(Problem::Unindexed {
                name: m.name.clone(),
                what: "name",
            });
        }
        if m.key.is_some() && !keyed.contains(&m.id) {
            report.problems.push(Problem::Unindexed {
                name: m.name.clone(),
                what: "key",
            });
        }
    }
    report.unlisted_blobs = blobs
        .ids()
        .map_err(io)?
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .count();
    Ok(report)
}
