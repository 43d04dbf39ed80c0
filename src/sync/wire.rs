//! Sync messages on the wire: postcard on a sync request stream, decoded only within
//! bounds. A record is refused when any of its texts is too long or it carries too
//! many tags; a message when it is too large or carries more records than a batch.
//! A peer can therefore never make us hold more than one bounded batch per message,
//! however large the library it claims (a "manifest of a million entries" arrives as
//! batches, each checked as it comes).
//!
//! Pure; never panics on any bytes.

use super::reconcile::{self, Node};
use super::record::Record;
use super::replica::{BATCH, Msg};

/// Longest name, key, tag or format, in bytes.
pub const MAX_TEXT: usize = 256;
/// Most tags one record may carry (on or off).
pub const MAX_TAGS: usize = 64;
/// Most devices one record may name as holding its file on the wire: a record keeps
/// [`super::record::MAX_HOLDERS`] (the most recent) once merged; more is taken from a
/// peer that keeps more, within this bound.
pub const MAX_HOLDERS: usize = 4 * super::record::MAX_HOLDERS;
/// Largest encoded message.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Too many bytes.
    #[error("a sync message of {0} bytes, over the 4 MiB limit")]
    TooLarge(usize),
    /// Not a message of this version.
    #[error("a malformed sync message: {0}")]
    Malformed(String),
    /// More records than a batch.
    #[error("a sync message with {0} records, more than one batch")]
    TooManyRecords(usize),
    /// A record out of bounds.
    #[error("a sync record out of bounds: {0}")]
    BadRecord(String),
}

/// The message's encoding.
pub fn encode(m: &Msg) -> Vec<u8> {
    postcard::to_allocvec(m).unwrap_or_default()
}

/// A message from a peer's bytes, within bounds.
pub fn decode(bytes: &[u8]) -> Result<Msg, WireError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let m: Msg = match postcard::take_from_bytes::<Msg>(bytes) {
        Ok((m, [])) => m,
        Ok(_) => return Err(WireError::Malformed("trailing bytes".into())),
        Err(e) => return Err(WireError::Malformed(e.to_string())),
    };
    let records = m.records();
    if records.len() > BATCH {
        return Err(WireError::TooManyRecords(records.len()));
    }
    for r in records {
        check(r)?;
    }
    if let Msg::Reconcile { nodes, want, .. } = &m {
        check_nodes(nodes)?;
        if want.len() > 4 * BATCH {
            return Err(WireError::Malformed(format!(
                "{} records wanted",
                want.len()
            )));
        }
    }
    Ok(m)
}

/// Most trie nodes in one reconciliation message.
pub const MAX_NODES: usize = 4096;

/// Reconciliation nodes within bounds: digits below 16, no deeper than the trie,
/// sixteen children each, short item lists.
fn check_nodes(nodes: &[Node]) -> Result<(), WireError> {
    let bad = |what: &str| {
        Err(WireError::Malformed(format!(
            "a reconciliation with {what}"
        )))
    };
    if nodes.len() > MAX_NODES {
        return bad("too many nodes");
    }
    for n in nodes {
        let prefix = match n {
            Node::Children { prefix, children } => {
                if children.len() != reconcile::FANOUT {
                    return bad("a node without sixteen children");
                }
                prefix
            }
            Node::Items { prefix, items } => {
                if items.len() > 4 * reconcile::LEAF {
                    return bad("a node listing too many records");
                }
                prefix
            }
        };
        if prefix.len() > reconcile::MAX_DEPTH || prefix.iter().any(|d| *d >= 16) {
            return bad("a node out of the trie");
        }
    }
    Ok(())
}

/// A record within bounds, with finite numbers.
pub fn check(r: &Record) -> Result<(), WireError> {
    let bad = |what: String| Err(WireError::BadRecord(what));
    if r.name.value.is_empty() || r.name.value.len() > MAX_TEXT {
        return bad(format!("a name of {} bytes", r.name.value.len()));
    }
    if r.key
        .value
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_TEXT)
    {
        return bad("a key out of bounds".into());
    }
    if r.facts.format.len() > MAX_TEXT {
        return bad("a format text out of bounds".into());
    }
    if r.tags.len() > MAX_TAGS {
        return bad(format!("{} tags (at most {MAX_TAGS})", r.tags.len()));
    }
    if r.holders.len() > MAX_HOLDERS {
        return bad(format!(
            "{} holders (at most {MAX_HOLDERS})",
            r.holders.len()
        ));
    }
    if r.tags.keys().any(|t| t.is_empty() || t.len() > MAX_TEXT) {
        return bad("a tag out of bounds".into());
    }
    if !r.gain_db.value.is_finite() || r.facts.loudness_lufs.is_some_and(|l| !l.is_finite()) {
        return bad("a number that is not finite".into());
    }
    if r.facts.sample_rate == 0 || r.facts.channels == 0 {
        return bad("no rate or no channels".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::hlc::{Device, Stamp};
    use super::super::record::{Facts, Field};
    use super::*;
    use crate::domain::SoundId;
    use rand::{Rng, SeedableRng};

    fn rec(i: u32) -> Record {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_le_bytes());
        let facts = Facts {
            frames: 100,
            sample_rate: 48_000,
            channels: 2,
            format: "flac".into(),
            size: 1000,
            loudness_lufs: Some(-18.0),
        };
        let at = Stamp {
            wall_ms: 1,
            counter: 0,
            device: Device(1),
        };
        Record::new(SoundId(id), facts, &format!("s{i}"), at)
    }

    fn changes(records: Vec<Record>) -> Msg {
        Msg::Changes {
            since: 0,
            upto: 1,
            records,
            more: false,
            fingerprint: [0; 32],
        }
    }

    #[test]
    fn messages_round_trip_and_bounds_are_enforced() {
        let m = changes((0..10).map(rec).collect());
        assert_eq!(decode(&encode(&m)), Ok(m));
        let many = changes((0..BATCH as u32 + 1).map(rec).collect());
        assert_eq!(
            decode(&encode(&many)),
            Err(WireError::TooManyRecords(BATCH + 1))
        );
        let mut long = rec(1);
        long.name.value = "x".repeat(MAX_TEXT + 1);
        assert!(matches!(
            decode(&encode(&changes(vec![long]))),
            Err(WireError::BadRecord(_))
        ));
        let mut tags = rec(2);
        for t in 0..=MAX_TAGS {
            tags.tags
                .insert(format!("t{t}"), Field::new(true, tags.name.at));
        }
        assert!(matches!(
            decode(&encode(&changes(vec![tags]))),
            Err(WireError::BadRecord(_))
        ));
        // Holders: a peer keeping more than we do is taken (and cut on merging), up
        // to the wire's bound.
        let holders = |n: u64| {
            let mut r = rec(5);
            for d in 0..n {
                r.holders.insert(Device(d), Field::new(true, r.name.at));
            }
            r
        };
        let more = changes(vec![holders(super::super::record::MAX_HOLDERS as u64 + 1)]);
        assert_eq!(decode(&encode(&more)), Ok(more));
        assert!(matches!(
            decode(&encode(&changes(vec![holders(MAX_HOLDERS as u64 + 1)]))),
            Err(WireError::BadRecord(_))
        ));
        let mut nan = rec(3);
        nan.gain_db.value = f32::NAN;
        assert!(matches!(
            decode(&encode(&changes(vec![nan]))),
            Err(WireError::BadRecord(_))
        ));
        assert!(matches!(
            decode(&vec![0u8; MAX_MESSAGE + 1]),
            Err(WireError::TooLarge(_))
        ));
        let mut trailing = encode(&changes(vec![rec(4)]));
        trailing.push(0);
        assert!(matches!(decode(&trailing), Err(WireError::Malformed(_))));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = encode(&changes((0..20).map(rec).collect()));
        for _ in 0..20_000 {
            let mut b = if rng.gen_bool(0.5) {
                good.clone()
            } else {
                (0..rng.gen_range(0..300)).map(|_| rng.r#gen()).collect()
            };
            for _ in 0..rng.gen_range(0..8) {
                if b.is_empty() {
                    break;
                }
                let i = rng.gen_range(0..b.len());
                b[i] = rng.r#gen();
            }
            if rng.gen_bool(0.2) {
                let n = rng.gen_range(0..=b.len());
                b.truncate(n);
            }
            // Whatever it decodes to is within bounds.
            if let Ok(Msg::Changes { records, .. }) = decode(&b) {
                assert!(records.len() <= BATCH);
                for r in &records {
                    assert!(check(r).is_ok());
                }
            }
        }
    }
}
