//! Range-based set reconciliation (after negentropy and iroh-docs), for repairing a
//! divergence between two replicas whose change logs say they are caught up but
//! whose fingerprints differ. Sound ids are BLAKE3 hashes, spread evenly, so the id
//! space is cut by a 16-ary trie on their hex digits: a node is a prefix of digits,
//! and its fingerprint is the XOR of the hashes of the records under it.
//!
//! Each message carries nodes: for a node whose fingerprints differ, the side with
//! more than [`LEAF`] records under it sends the fingerprints and counts of its 16
//! children; the side with few sends the records' ids and hashes. Given those, the
//! other side knows exactly which records differ: it sends its own versions of them
//! and asks for the other's. With 100,000 records and a few differences this ends in
//! three round trips of a few KB. Stateless on both sides: every message says all
//! that is needed to answer it.
//!
//! Pure; never panics on anything a peer sends (the bounds are checked in `wire`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::SoundId;

/// Children of a node.
pub const FANOUT: usize = 16;
/// A node with at most this many records is sent as its records' ids and hashes.
pub const LEAF: usize = 32;
/// Deepest prefix, in hex digits (records under it are listed whatever their count).
pub const MAX_DEPTH: usize = 24;
/// Bytes of an id that name it in a reconciliation (96 bits: collisions among a
/// library's ids are out of reach, and a collision costs only an extra record sent).
pub const ID_PREFIX: usize = 12;
/// Bytes of a fingerprint or a record hash sent.
pub const HASH_BYTES: usize = 8;

/// An id as named in a reconciliation.
pub type IdPrefix = [u8; ID_PREFIX];
/// A shortened hash.
pub type Short = [u8; HASH_BYTES];

/// One node of the trie as one side sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Node {
    /// Its 16 children: how many records under each, and their fingerprint.
    Children {
        /// The node's hex digits (each 0..16).
        prefix: Vec<u8>,
        /// Count and fingerprint of each child, in digit order.
        children: Vec<(u32, Short)>,
    },
    /// The records under it: each id (its first bytes) and hash.
    Items {
        /// The node's hex digits.
        prefix: Vec<u8>,
        /// Each record's id prefix and shortened hash, in id order.
        items: Vec<(IdPrefix, Short)>,
    },
}

/// The hex digit `i` of an id.
fn digit(id: &SoundId, i: usize) -> u8 {
    let b = id.0[i / 2];
    if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 0x0f
    }
}

/// Whether `id` lies under `prefix`.
fn under(id: &SoundId, prefix: &[u8]) -> bool {
    prefix.iter().enumerate().all(|(i, d)| digit(id, i) == *d)
}

/// The first id under `prefix`.
fn low(prefix: &[u8]) -> SoundId {
    let mut b = [0u8; 32];
    for (i, d) in prefix.iter().enumerate() {
        if i.is_multiple_of(2) {
            b[i / 2] |= d << 4;
        } else {
            b[i / 2] |= d & 0x0f;
        }
    }
    SoundId(b)
}

/// The records' hashes under `prefix`, in id order.
fn range<'a>(
    hashes: &'a BTreeMap<SoundId, [u8; 32]>,
    prefix: &'a [u8],
) -> impl Iterator<Item = (&'a SoundId, &'a [u8; 32])> + 'a {
    hashes
        .range(low(prefix)..)
        .take_while(move |(id, _)| under(id, prefix))
}

fn short(h: &[u8; 32]) -> Short {
    let mut s = [0u8; HASH_BYTES];
    s.copy_from_slice(&h[..HASH_BYTES]);
    s
}

/// The id prefix of `id`.
pub fn id_prefix(id: &SoundId) -> IdPrefix {
    let mut p = [0u8; ID_PREFIX];
    p.copy_from_slice(&id.0[..ID_PREFIX]);
    p
}

/// Count and fingerprint of each child of `prefix`.
pub fn children(hashes: &BTreeMap<SoundId, [u8; 32]>, prefix: &[u8]) -> Vec<(u32, Short)> {
    let mut out = vec![(0u32, [0u8; HASH_BYTES]); FANOUT];
    let depth = prefix.len();
    for (id, h) in range(hashes, prefix) {
        let c = &mut out[usize::from(digit(id, depth))];
        c.0 += 1;
        for (x, y) in c.1.iter_mut().zip(h) {
            *x ^= y;
        }
    }
    out
}

/// The records' ids and hashes under `prefix`.
pub fn items(hashes: &BTreeMap<SoundId, [u8; 32]>, prefix: &[u8]) -> Vec<(IdPrefix, Short)> {
    range(hashes, prefix)
        .map(|(id, h)| (id_prefix(id), short(h)))
        .collect()
}

/// How a side describes `prefix` to the other: its children, or — when it holds few
/// records there, or the trie is as deep as it goes — the records themselves.
pub fn describe(hashes: &BTreeMap<SoundId, [u8; 32]>, prefix: Vec<u8>) -> Node {
    let count = range(hashes, &prefix).take(LEAF + 1).count();
    if count <= LEAF || prefix.len() >= MAX_DEPTH {
        let items = items(hashes, &prefix);
        Node::Items { prefix, items }
    } else {
        let children = children(hashes, &prefix);
        Node::Children { prefix, children }
    }
}

/// What answering the other side's nodes calls for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Step {
    /// Nodes to send back (where the two still differ).
    pub nodes: Vec<Node>,
    /// Our records the other side lacks or holds otherwise (by full id).
    pub give: Vec<SoundId>,
    /// The other side's records we lack or hold otherwise.
    pub want: Vec<IdPrefix>,
}

/// Compares the other side's `nodes` with ours.
pub fn answer(hashes: &BTreeMap<SoundId, [u8; 32]>, nodes: &[Node]) -> Step {
    let mut step = Step::default();
    for node in nodes {
        match node {
            Node::Children {
                prefix,
                children: theirs,
            } => {
                let mine = children(hashes, prefix);
                for (d, (m, t)) in mine.iter().zip(theirs).enumerate() {
                    if m != t {
                        let mut child = prefix.clone();
                        child.push(d as u8);
                        step.nodes.push(describe(hashes, child));
                    }
                }
            }
            Node::Items {
                prefix,
                items: theirs,
            } => {
                let theirs: BTreeMap<IdPrefix, Short> = theirs.iter().copied().collect();
                let mut seen = 0;
                for (id, h) in range(hashes, prefix) {
                    let p = id_prefix(id);
                    match theirs.get(&p) {
                        Some(t) if *t == short(h) => seen += 1,
                        Some(_) => {
                            seen += 1;
                            step.give.push(*id);
                            step.want.push(p);
                        }
                        None => step.give.push(*id),
                    }
                }
                if seen < theirs.len() {
                    let mine: std::collections::BTreeSet<IdPrefix> =
                        range(hashes, prefix).map(|(id, _)| id_prefix(id)).collect();
                    step.want
                        .extend(theirs.keys().filter(|p| !mine.contains(*p)).copied());
                }
            }
        }
    }
    step
}

/// The ids in `hashes` named by `prefix`.
pub fn named(hashes: &BTreeMap<SoundId, [u8; 32]>, prefix: &IdPrefix) -> Vec<SoundId> {
    let mut lo = [0u8; 32];
    lo[..ID_PREFIX].copy_from_slice(prefix);
    hashes
        .range(SoundId(lo)..)
        .take_while(|(id, _)| id.0[..ID_PREFIX] == prefix[..])
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_set(n: usize, rng: &mut impl Rng) -> BTreeMap<SoundId, [u8; 32]> {
        (0..n)
            .map(|_| (SoundId(rng.r#gen()), rng.r#gen()))
            .collect()
    }

    /// Runs the exchange between two plain sets, applying what each gives the
    /// other (the other's version wins here: enough to check the discovery).
    fn reconcile(
        a: &mut BTreeMap<SoundId, [u8; 32]>,
        b: &mut BTreeMap<SoundId, [u8; 32]>,
    ) -> (usize, usize) {
        let mut nodes = vec![describe(a, Vec::new())];
        let mut bytes = 0;
        let mut messages = 0;
        let mut from_a = true;
        loop {
            messages += 1;
            bytes += postcard::to_allocvec(&nodes).map_or(0, |v| v.len());
            let (me, other) = if from_a {
                (&mut *b, &mut *a)
            } else {
                (&mut *a, &mut *b)
            };
            let step = answer(me, &nodes);
            // Records travel both ways: copy the differing ones across (union).
            for id in &step.give {
                if let Some(h) = me.get(id).copied() {
                    other.insert(*id, h);
                    bytes += 200;
                }
            }
            for p in &step.want {
                for id in named(other, p) {
                    if let Some(h) = other.get(&id).copied() {
                        me.insert(id, h);
                        bytes += 200;
                    }
                }
            }
            if step.nodes.is_empty() {
                return (messages, bytes);
            }
            nodes = step.nodes;
            from_a = !from_a;
        }
    }

    #[test]
    fn a_few_differences_among_many_are_found_in_three_round_trips() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut a = random_set(100_000, &mut rng);
        let mut b = a.clone();
        // Ten differences: changed on either side, present on one side only.
        let ids: Vec<SoundId> = a.keys().copied().take(4).collect();
        for id in &ids {
            a.insert(*id, rng.r#gen());
        }
        for _ in 0..3 {
            a.insert(SoundId(rng.r#gen()), rng.r#gen());
            b.insert(SoundId(rng.r#gen()), rng.r#gen());
        }
        let (messages, bytes) = reconcile(&mut a, &mut b);
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        // The changed four now carry the same hash (the union keeps the last copy).
        assert!(messages <= 6, "{messages} messages");
        assert!(bytes <= 16_000, "{bytes} bytes");
        eprintln!("100,000 records, 10 differences: {messages} messages, {bytes} bytes");
    }

    #[test]
    fn random_divergences_are_always_found() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for _ in 0..300 {
            let n = rng.gen_range(0..3000);
            let mut a = random_set(n, &mut rng);
            let mut b: BTreeMap<SoundId, [u8; 32]> = a
                .iter()
                .filter(|_| rng.gen_bool(0.97))
                .map(|(k, v)| (*k, *v))
                .collect();
            for _ in 0..rng.gen_range(0..50) {
                b.insert(SoundId(rng.r#gen()), rng.r#gen());
            }
            reconcile(&mut a, &mut b);
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        }
    }

    #[test]
    fn ids_and_prefixes_agree() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let set = random_set(5000, &mut rng);
        for (id, _) in set.iter().take(200) {
            let p: Vec<u8> = (0..5).map(|i| digit(id, i)).collect();
            assert!(under(id, &p));
            assert!(range(&set, &p).any(|(x, _)| x == id));
            assert_eq!(named(&set, &id_prefix(id)), vec![*id]);
        }
        let total: u32 = children(&set, &[]).iter().map(|c| c.0).sum();
        assert_eq!(total, 5000);
    }
}
