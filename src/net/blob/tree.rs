//! Verified streaming of content-addressed blobs.
//!
//! A sound's id is the BLAKE3 hash of its whole file. When a sound comes over the network, every
//! piece of it is checked against that id *before* it is played or stored, so a peer can never
//! make us play or keep bytes that are not the sound it named.
//!
//! The file is split into aligned groups of [`GROUP_LEN`] (64 KiB) bytes. Each group is a
//! complete subtree of BLAKE3's own tree, so its chaining value (CV) can be computed from the
//! group alone. The sender first sends the CVs of all groups; the receiver merges them following
//! BLAKE3's tree rule and accepts the list only if the root equals the id ([`Verifier::new`]).
//! After that, each group is accepted only if its CV equals the listed one ([`Verifier::verify`]).
//! A 64 KiB group has a 32-byte CV, so the CV list is 1/2048 of the blob (32 KiB for a 64 MiB
//! sound), while a group is small enough to verify and play as soon as it arrives.
//!
//! A blob of at most [`GROUP_LEN`] bytes has no interior nodes: its CV list is empty, and its
//! single group verifies by comparing its whole BLAKE3 hash with the id.
//!
//! This module does no I/O beyond the reader it is given, never accepts a group it has not
//! verified, and never panics on any input: lengths, counts and indices from the network are
//! untrusted and give a [`TreeError`] when they do not fit.

use std::io::{self, Read};

use blake3::Hasher;
use blake3::hazmat::{self, HasherExt, Mode};

/// Bytes in one group: a power-of-two multiple of [`blake3::CHUNK_LEN`], so every group is a
/// complete subtree of the BLAKE3 tree (only the last group of a blob may be shorter).
pub const GROUP_LEN: u64 = 64 * 1024;

/// [`GROUP_LEN`] as a buffer length.
const GROUP_BYTES: usize = GROUP_LEN as usize;

const _: () = assert!(
    GROUP_LEN.is_power_of_two() && GROUP_LEN >= blake3::CHUNK_LEN as u64,
    "a group must be a power-of-two number of BLAKE3 chunks",
);

/// A BLAKE3 chaining value: the non-root hash of a group or of an interior node.
pub type Cv = [u8; 32];

/// What [`group_cv`] returns for data that cannot be a group (empty or longer than
/// [`GROUP_LEN`]). [`Verifier::verify`] checks lengths first and never compares against it.
const NO_CV: Cv = [0; 32];

/// Why a CV list or a group was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// The CV list does not hash to the sound's id.
    #[error("the chunk hashes do not match the sound's id")]
    BadTree,
    /// The CV list has the wrong number of entries for the blob's size.
    #[error("expected {want} chunk hashes for the sound's size, got {got}")]
    BadCount {
        /// CVs received.
        got: u64,
        /// CVs a blob of that size has ([`cv_count`]).
        want: u64,
    },
    /// The group's bytes do not match its CV (or, for a small blob, the id).
    #[error("chunk {index} does not match the sound's id")]
    BadGroup {
        /// Index of the group.
        index: u64,
    },
    /// The group has the wrong number of bytes.
    #[error("chunk {index} is {got} bytes long, expected {want}")]
    BadLength {
        /// Index of the group.
        index: u64,
        /// Bytes received.
        got: u64,
        /// Bytes group `index` has ([`group_len`]).
        want: u64,
    },
    /// The group index is past the end of the blob.
    #[error("chunk {index} is out of range: the sound has {groups} chunks")]
    OutOfRange {
        /// Index of the group.
        index: u64,
        /// Groups in the blob ([`group_count`]).
        groups: u64,
    },
}

/// Groups in a blob of `size` bytes: `ceil(size / GROUP_LEN)`, at least 1 (an empty blob is one
/// empty group).
pub fn group_count(size: u64) -> u64 {
    size.div_ceil(GROUP_LEN).max(1)
}

/// Length of group `index` of a blob of `size` bytes: [`GROUP_LEN`] except for the last group,
/// which holds the rest. 0 when `index` is out of range.
pub fn group_len(size: u64, index: u64) -> u64 {
    let groups = group_count(size);
    if index >= groups {
        0
    } else if index + 1 < groups {
        GROUP_LEN
    } else {
        // `index * GROUP_LEN <= size` because `index < groups`.
        size - index * GROUP_LEN
    }
}

/// How many CVs a blob of `size` bytes sends: 0 when `size <= GROUP_LEN` (the id alone checks
/// the single group), else [`group_count`]`(size)`.
pub fn cv_count(size: u64) -> u64 {
    if size <= GROUP_LEN {
        0
    } else {
        group_count(size)
    }
}

/// The non-root chaining value of group `index` holding `data`.
///
/// `data` must be a whole group: 1 to [`GROUP_LEN`] bytes (fewer only for a blob's last group).
/// Anything else (empty data, which BLAKE3 gives no chaining value, data longer than a group, or
/// an index whose offset does not fit in a `u64`) returns an all-zero placeholder instead of
/// panicking; [`Verifier::verify`] checks lengths and indices before it gets here.
pub fn group_cv(index: u64, data: &[u8]) -> Cv {
    let Some(offset) = index.checked_mul(GROUP_LEN) else {
        return NO_CV;
    };
    if data.is_empty() || data.len() > GROUP_BYTES {
        return NO_CV;
    }
    let mut hasher = Hasher::new();
    // The offset is a multiple of GROUP_LEN, hence of CHUNK_LEN, and a subtree starting there
    // may hold GROUP_LEN bytes, so neither of the hasher's checks can fire.
    hasher.set_input_offset(offset);
    hasher.update(data);
    hasher.finalize_non_root()
}

/// A whole blob's size, CV list and id, as a sender announces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobTree {
    /// Bytes in the blob.
    pub size: u64,
    /// The CV of every group, in order; empty when `size <= GROUP_LEN`.
    pub cvs: Vec<Cv>,
    /// The blob's BLAKE3 hash: the sound's id.
    pub id: [u8; 32],
}

/// One pass over a whole blob: its size, its CV list (empty when the size is at most
/// [`GROUP_LEN`]) and its BLAKE3 hash (the id).
///
/// Reads in [`GROUP_LEN`] pieces; each byte is hashed once (the id is merged from the CVs), and
/// memory is O(number of groups). Errors are the reader's, plus `InvalidData` for a blob of
/// 2^64 bytes or more.
pub fn tree_of(mut reader: impl Read) -> io::Result<BlobTree> {
    let mut buf = vec![0u8; GROUP_BYTES];
    let n = read_full(&mut reader, &mut buf)?;
    let mut first = Hasher::new();
    first.update(buf.get(..n).unwrap_or_default());
    if n < GROUP_BYTES {
        return Ok(BlobTree {
            size: n as u64,
            cvs: Vec::new(),
            id: *first.finalize().as_bytes(),
        });
    }
    // The first group is full, so the hasher has input: its non-root CV is well defined. It is
    // only used if another group follows.
    let first_cv = first.finalize_non_root();
    let mut cvs: Vec<Cv> = Vec::new();
    let mut size = GROUP_LEN;
    loop {
        let n = read_full(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        size = size
            .checked_add(n as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "blob too large"))?;
        if cvs.is_empty() {
            cvs.push(first_cv);
        }
        let index = cvs.len() as u64;
        cvs.push(group_cv(index, buf.get(..n).unwrap_or_default()));
        if n < GROUP_BYTES {
            break;
        }
    }
    let id = if cvs.is_empty() {
        *first.finalize().as_bytes()
    } else {
        root_of(size, &cvs).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "blob tree has the wrong shape")
        })?
    };
    Ok(BlobTree { size, cvs, id })
}

/// [`tree_of`] for a blob already in memory: hashed where it lies, group by group,
/// without copying it through a reader's buffer.
pub fn tree_of_bytes(data: &[u8]) -> io::Result<BlobTree> {
    let size = data.len() as u64;
    if size <= GROUP_LEN {
        return Ok(BlobTree {
            size,
            cvs: Vec::new(),
            id: *blake3::hash(data).as_bytes(),
        });
    }
    let cvs: Vec<Cv> = data
        .chunks(GROUP_BYTES)
        .enumerate()
        .map(|(i, group)| group_cv(i as u64, group))
        .collect();
    let id = root_of(size, &cvs).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "blob tree has the wrong shape")
    })?;
    Ok(BlobTree { size, cvs, id })
}

/// The root that a CV list hashes to for a blob of `size` bytes (`size > GROUP_LEN`).
///
/// `None` when the count is not [`cv_count`]`(size)`, and for `size <= GROUP_LEN` (such a blob
/// has no CV list; its id is the hash of its single group).
pub fn root_of(size: u64, cvs: &[Cv]) -> Option<[u8; 32]> {
    if size <= GROUP_LEN || cvs.len() as u64 != group_count(size) {
        return None;
    }
    let (left, right) = children(size, cvs)?;
    Some(*hazmat::merge_subtrees_root(&left, &right, Mode::Hash).as_bytes())
}

/// The CVs of the two children of a node over `len > GROUP_LEN` bytes whose groups have `cvs`.
fn children(len: u64, cvs: &[Cv]) -> Option<(Cv, Cv)> {
    let left_len = left_len(len);
    // `left_len` is a power of two at least GROUP_LEN, so it is a whole number of groups.
    let left_groups = usize::try_from(left_len / GROUP_LEN).ok()?;
    let (left, right) = cvs.split_at_checked(left_groups)?;
    Some((
        subtree_cv(left_len, left)?,
        subtree_cv(len - left_len, right)?,
    ))
}

/// The non-root CV of a subtree over `len` bytes starting on a group boundary, from its groups'
/// CVs. Recursion depth is at most 48 (2^64 bytes over 2^16-byte groups).
fn subtree_cv(len: u64, cvs: &[Cv]) -> Option<Cv> {
    if len <= GROUP_LEN {
        return match cvs {
            [cv] => Some(*cv),
            _ => None,
        };
    }
    let (left, right) = children(len, cvs)?;
    Some(hazmat::merge_subtrees_non_root(&left, &right, Mode::Hash))
}

/// Bytes in the left child of a node over `len > GROUP_LEN` bytes: the largest power of two
/// strictly less than `len` ([`hazmat::left_subtree_len`], which would overflow at `u64::MAX`).
fn left_len(len: u64) -> u64 {
    if len > 1 << 63 {
        1 << 63
    } else {
        hazmat::left_subtree_len(len)
    }
}

/// Fills `buf` from `reader` until it is full or the reader ends; returns the bytes read.
/// Retries interrupted reads.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest) {
            Ok(0) => break,
            // A reader claiming more than it was given is clamped rather than trusted.
            Ok(n) => filled = filled.saturating_add(n).min(buf.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Checks the groups of one blob as they arrive, against a CV list already checked against the
/// blob's id.
#[derive(Debug, Clone)]
pub struct Verifier {
    id: [u8; 32],
    size: u64,
    cvs: Vec<Cv>,
}

impl Verifier {
    /// Accepts `cvs` only when they hash to `id` for a blob of `size` bytes.
    ///
    /// [`TreeError::BadCount`] when there are not [`cv_count`]`(size)` of them (so an absurd
    /// size costs nothing), [`TreeError::BadTree`] when they do not merge to `id`. For a blob of
    /// at most [`GROUP_LEN`] bytes the list must be empty and the id is checked against the
    /// group itself. Costs one merge per group.
    ///
    /// The CVs fix every group's bytes, and `size` fixes every group's length, so a wrong `size`
    /// with the same number of groups is caught at the last group (as [`TreeError::BadLength`]
    /// or [`TreeError::BadGroup`]).
    pub fn new(id: [u8; 32], size: u64, cvs: Vec<Cv>) -> Result<Verifier, TreeError> {
        let want = cv_count(size);
        let got = cvs.len() as u64;
        if got != want {
            return Err(TreeError::BadCount { got, want });
        }
        if want > 0 && root_of(size, &cvs) != Some(id) {
            return Err(TreeError::BadTree);
        }
        Ok(Verifier { id, size, cvs })
    }

    /// The blob's id: its BLAKE3 hash.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// Bytes in the blob.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Groups in the blob ([`group_count`]).
    pub fn groups(&self) -> u64 {
        group_count(self.size)
    }

    /// Length of group `index` ([`group_len`]; 0 when out of range).
    pub fn group_len(&self, index: u64) -> u64 {
        group_len(self.size, index)
    }

    /// The accepted CV list (empty for a blob of at most [`GROUP_LEN`] bytes).
    pub fn cvs(&self) -> &[Cv] {
        &self.cvs
    }

    /// Ok when `data` is exactly group `index` of the blob: [`TreeError::OutOfRange`] for an
    /// index past the end, [`TreeError::BadLength`] for the wrong number of bytes,
    /// [`TreeError::BadGroup`] for the wrong bytes. Does not allocate.
    pub fn verify(&self, index: u64, data: &[u8]) -> Result<(), TreeError> {
        let groups = self.groups();
        if index >= groups {
            return Err(TreeError::OutOfRange { index, groups });
        }
        let want = self.group_len(index);
        let got = data.len() as u64;
        if got != want {
            return Err(TreeError::BadLength { index, got, want });
        }
        let ok = if self.cvs.is_empty() {
            // A single group is the whole blob: its root hash is the id. `Hash` compares in
            // constant time.
            blake3::hash(data) == blake3::Hash::from_bytes(self.id)
        } else {
            usize::try_from(index)
                .ok()
                .and_then(|i| self.cvs.get(i))
                .is_some_and(|cv| *cv == group_cv(index, data))
        };
        if ok {
            Ok(())
        } else {
            Err(TreeError::BadGroup { index })
        }
    }

    /// How many leading groups of the partial file `reader` verify, stopping at the first short
    /// or bad group; returns `(groups verified, bytes verified)`. Bytes past the blob's end are
    /// not read. Used to resume a transfer after a crash; errors are the reader's.
    pub fn verified_prefix(&self, mut reader: impl Read) -> io::Result<(u64, u64)> {
        let groups = self.groups();
        let mut buf = vec![0u8; self.size.min(GROUP_LEN) as usize];
        let mut bytes = 0;
        for index in 0..groups {
            let want = self.group_len(index) as usize;
            let Some(piece) = buf.get_mut(..want) else {
                return Ok((index, bytes));
            };
            let got = read_full(&mut reader, piece)?;
            if got < want || self.verify(index, piece).is_err() {
                return Ok((index, bytes));
            }
            bytes += want as u64;
        }
        Ok((groups, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = GROUP_LEN;
    const GU: usize = GROUP_BYTES;

    /// Deterministic pseudo-random numbers (xorshift64).
    struct XorShift(u64);

    impl XorShift {
        fn new(seed: u64) -> XorShift {
            XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = XorShift::new(seed);
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn sizes() -> Vec<usize> {
        let mut sizes = vec![
            0,
            1,
            1023,
            1024,
            1025,
            65535,
            65536,
            65537,
            131072,
            131073,
            3 * 65536 + 17,
            7 * 65536,
            1_000_003,
        ];
        let mut rng = XorShift::new(42);
        for _ in 0..4 {
            sizes.push(rng.below(3_000_000) as usize);
        }
        sizes
    }

    fn group(data: &[u8], index: u64) -> &[u8] {
        let start = (index * G) as usize;
        let end = start + group_len(data.len() as u64, index) as usize;
        &data[start..end]
    }

    fn verifier(data: &[u8]) -> Verifier {
        let tree = tree_of(data).unwrap();
        Verifier::new(tree.id, tree.size, tree.cvs).unwrap()
    }

    /// A reader that hands out a few bytes at a time and is sometimes interrupted.
    struct Drip<'a> {
        data: &'a [u8],
        rng: XorShift,
    }

    impl Read for Drip<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.rng.below(4) == 0 {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = buf
                .len()
                .min(self.data.len())
                .min(1 + self.rng.below(5000) as usize);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn counts_and_lengths() {
        assert_eq!(group_count(0), 1);
        assert_eq!(group_count(1), 1);
        assert_eq!(group_count(G), 1);
        assert_eq!(group_count(G + 1), 2);
        assert_eq!(group_count(u64::MAX), 1 << 48);
        assert_eq!(group_len(0, 0), 0);
        assert_eq!(group_len(0, 1), 0);
        assert_eq!(group_len(G, 0), G);
        assert_eq!(group_len(G + 1, 0), G);
        assert_eq!(group_len(G + 1, 1), 1);
        assert_eq!(group_len(G + 1, 2), 0);
        assert_eq!(group_len(3 * G, 2), G);
        assert_eq!(group_len(u64::MAX, (1 << 48) - 1), G - 1);
        assert_eq!(group_len(u64::MAX, u64::MAX), 0);
        assert_eq!(cv_count(0), 0);
        assert_eq!(cv_count(G), 0);
        assert_eq!(cv_count(G + 1), 2);
        assert_eq!(cv_count(7 * G), 7);
    }

    #[test]
    fn left_len_is_blake3s_split() {
        let mut rng = XorShift::new(7);
        for len in (G + 1..20 * G).step_by(997).chain((0..1000).map(|_| {
            let len = rng.next() >> rng.below(48);
            len.clamp(G + 1, u64::MAX - 1)
        })) {
            assert_eq!(left_len(len), hazmat::left_subtree_len(len), "{len}");
            assert_eq!(left_len(len) % G, 0);
        }
        assert_eq!(left_len(u64::MAX), 1 << 63);
        assert_eq!(left_len((1 << 63) + 1), 1 << 63);
        assert_eq!(left_len(1 << 63), 1 << 62);
    }

    #[test]
    fn tree_of_matches_blake3() {
        for (seed, size) in sizes().into_iter().enumerate() {
            let data = bytes(size, seed as u64);
            let id = *blake3::hash(&data).as_bytes();
            let tree = tree_of(&data[..]).unwrap();
            assert_eq!(
                tree_of_bytes(&data).unwrap(),
                tree,
                "in memory, {size} bytes"
            );
            assert_eq!(tree.size, size as u64);
            assert_eq!(tree.id, id, "id of {size} bytes");
            assert_eq!(tree.cvs.len() as u64, cv_count(size as u64));
            if size as u64 > G {
                assert_eq!(root_of(size as u64, &tree.cvs), Some(id), "root of {size}");
                for (i, cv) in tree.cvs.iter().enumerate() {
                    assert_eq!(*cv, group_cv(i as u64, group(&data, i as u64)));
                }
            } else {
                assert_eq!(root_of(size as u64, &tree.cvs), None);
            }
            // The same blob read in odd pieces, with interruptions.
            let drip = Drip {
                data: &data,
                rng: XorShift::new(seed as u64 + 100),
            };
            assert_eq!(tree_of(drip).unwrap(), tree);
        }
    }

    #[test]
    fn every_group_verifies_and_a_flipped_bit_does_not() {
        let mut rng = XorShift::new(3);
        for (seed, size) in sizes().into_iter().enumerate() {
            let mut data = bytes(size, seed as u64);
            let v = verifier(&data);
            assert_eq!(v.id(), blake3::hash(&data).as_bytes());
            assert_eq!(v.size(), size as u64);
            assert_eq!(v.groups(), group_count(size as u64));
            for index in 0..v.groups() {
                assert_eq!(v.verify(index, group(&data, index)), Ok(()));
                let len = v.group_len(index);
                if len == 0 {
                    continue;
                }
                let at = (index * G + rng.below(len)) as usize;
                let bit = 1 << rng.below(8);
                data[at] ^= bit;
                assert_eq!(
                    v.verify(index, group(&data, index)),
                    Err(TreeError::BadGroup { index })
                );
                data[at] ^= bit;
            }
            assert_eq!(
                v.verify(v.groups(), &[]),
                Err(TreeError::OutOfRange {
                    index: v.groups(),
                    groups: v.groups()
                })
            );
        }
    }

    #[test]
    fn a_group_at_the_wrong_index_is_refused() {
        let mut data = bytes(5 * GU, 9);
        // Two identical groups: same bytes, different offsets, different CVs.
        data.copy_within(0..GU, GU);
        let v = verifier(&data);
        assert_ne!(v.cvs()[0], v.cvs()[1]);
        assert_eq!(v.verify(0, group(&data, 0)), Ok(()));
        assert_eq!(v.verify(1, group(&data, 0)), Ok(()));
        assert_eq!(
            v.verify(2, group(&data, 3)),
            Err(TreeError::BadGroup { index: 2 })
        );
        assert_eq!(
            v.verify(4, group(&data, 0)),
            Err(TreeError::BadGroup { index: 4 })
        );
    }

    #[test]
    fn bad_cv_lists_are_refused() {
        for size in [G as usize + 1, 2 * GU, 3 * GU + 17, 7 * GU, 1_000_003] {
            let data = bytes(size, size as u64);
            let tree = tree_of(&data[..]).unwrap();
            let size = size as u64;
            let n = tree.cvs.len() as u64;
            assert!(Verifier::new(tree.id, size, tree.cvs.clone()).is_ok());

            let mut wrong_id = tree.id;
            wrong_id[31] ^= 1;
            assert_eq!(
                Verifier::new(wrong_id, size, tree.cvs.clone()).err(),
                Some(TreeError::BadTree)
            );
            for i in 0..tree.cvs.len() {
                let mut cvs = tree.cvs.clone();
                cvs[i][i % 32] ^= 0x40;
                assert_eq!(
                    Verifier::new(tree.id, size, cvs).err(),
                    Some(TreeError::BadTree)
                );
            }
            let mut swapped = tree.cvs.clone();
            swapped.swap(0, tree.cvs.len() - 1);
            assert_eq!(
                Verifier::new(tree.id, size, swapped).err(),
                Some(TreeError::BadTree)
            );
            let mut rotated = tree.cvs.clone();
            rotated.rotate_left(1);
            assert_eq!(
                Verifier::new(tree.id, size, rotated).err(),
                Some(TreeError::BadTree)
            );
            let mut truncated = tree.cvs.clone();
            truncated.pop();
            assert_eq!(
                Verifier::new(tree.id, size, truncated.clone()).err(),
                Some(TreeError::BadCount {
                    got: n - 1,
                    want: n
                })
            );
            assert_eq!(root_of(size, &truncated), None);
            let mut longer = tree.cvs.clone();
            longer.push(tree.cvs[0]);
            assert_eq!(
                Verifier::new(tree.id, size, longer).err(),
                Some(TreeError::BadCount {
                    got: n + 1,
                    want: n
                })
            );
            assert_eq!(
                Verifier::new(tree.id, size, Vec::new()).err(),
                Some(TreeError::BadCount { got: 0, want: n })
            );
            // A size with a different group count.
            assert_eq!(
                Verifier::new(tree.id, size + G, tree.cvs.clone()).err(),
                Some(TreeError::BadCount {
                    got: n,
                    want: n + 1
                })
            );
        }
    }

    #[test]
    fn absurd_inputs_are_errors() {
        let id = *blake3::hash(b"x").as_bytes();
        assert_eq!(
            Verifier::new(id, u64::MAX, Vec::new()).err(),
            Some(TreeError::BadCount {
                got: 0,
                want: 1 << 48
            })
        );
        assert_eq!(
            Verifier::new(id, 1, vec![[0; 32]]).err(),
            Some(TreeError::BadCount { got: 1, want: 0 })
        );
        assert_eq!(
            Verifier::new(id, 3 * G, vec![[0; 32]; 3]).err(),
            Some(TreeError::BadTree)
        );
        assert_eq!(root_of(u64::MAX, &[]), None);
        assert_eq!(root_of(0, &[]), None);
        assert_eq!(root_of(G, &[[0; 32]]), None);
        // No panics for data that cannot be a group.
        assert_eq!(group_cv(0, &[]), NO_CV);
        assert_eq!(group_cv(3, &[]), NO_CV);
        assert_eq!(group_cv(1, &vec![0; GU + 1]), NO_CV);
        assert_eq!(group_cv(u64::MAX, b"x"), NO_CV);
        assert_ne!(group_cv(u64::MAX / G, &vec![1; GU]), NO_CV);
        assert_ne!(group_cv(1, &vec![1; GU]), NO_CV);

        let v = verifier(b"x");
        assert_eq!(
            v.verify(u64::MAX, b"x"),
            Err(TreeError::OutOfRange {
                index: u64::MAX,
                groups: 1
            })
        );
    }

    #[test]
    fn a_wrong_size_fails_at_the_last_group() {
        let size = 3 * GU + 17;
        let data = bytes(size, 5);
        let tree = tree_of(&data[..]).unwrap();
        // Same group count, so the list still merges to the id, but the last group cannot match.
        for wrong in [size as u64 + 1, size as u64 - 16, 4 * G] {
            let v = Verifier::new(tree.id, wrong, tree.cvs.clone()).unwrap();
            assert_eq!(v.verify(0, group(&data, 0)), Ok(()));
            assert_eq!(
                v.verify(3, group(&data, 3)),
                Err(TreeError::BadLength {
                    index: 3,
                    got: 17,
                    want: wrong - 3 * G
                })
            );
            assert_eq!(v.verified_prefix(&data[..]).unwrap(), (3, 3 * G));
        }
    }

    #[test]
    fn wrong_group_lengths_are_refused() {
        let size = 3 * GU + 17;
        let data = bytes(size, 11);
        let v = verifier(&data);
        assert_eq!(
            v.verify(0, &data[..GU - 1]),
            Err(TreeError::BadLength {
                index: 0,
                got: G - 1,
                want: G
            })
        );
        assert_eq!(
            v.verify(1, &data[GU..3 * GU]),
            Err(TreeError::BadLength {
                index: 1,
                got: 2 * G,
                want: G
            })
        );
        assert_eq!(
            v.verify(3, &data[3 * GU..]),
            Ok(()),
            "the last group is short"
        );
        assert_eq!(
            v.verify(3, &data[3 * GU - 1..]),
            Err(TreeError::BadLength {
                index: 3,
                got: 18,
                want: 17
            })
        );
        assert_eq!(
            v.verify(3, &[]),
            Err(TreeError::BadLength {
                index: 3,
                got: 0,
                want: 17
            })
        );
        let small = verifier(&data[..100]);
        assert_eq!(
            small.verify(0, &data[..99]),
            Err(TreeError::BadLength {
                index: 0,
                got: 99,
                want: 100
            })
        );
    }

    #[test]
    fn verified_prefix_of_partial_files() {
        let size = 7 * GU + 123;
        let mut data = bytes(size, 13);
        let v = verifier(&data);
        let groups = v.groups();
        assert_eq!(groups, 8);
        assert_eq!(v.verified_prefix(&data[..]).unwrap(), (groups, size as u64));
        // Trailing bytes past the blob are ignored.
        let mut longer = data.clone();
        longer.extend_from_slice(b"junk");
        assert_eq!(
            v.verified_prefix(&longer[..]).unwrap(),
            (groups, size as u64)
        );
        assert_eq!(v.verified_prefix(&[][..]).unwrap(), (0, 0));
        // Truncated mid-group and on a group boundary.
        assert_eq!(
            v.verified_prefix(&data[..3 * GU + 500]).unwrap(),
            (3, 3 * G)
        );
        assert_eq!(v.verified_prefix(&data[..3 * GU]).unwrap(), (3, 3 * G));
        assert_eq!(v.verified_prefix(&data[..GU - 1]).unwrap(), (0, 0));
        assert_eq!(v.verified_prefix(&data[..size - 1]).unwrap(), (7, 7 * G));
        // In odd pieces.
        let drip = Drip {
            data: &data[..5 * GU + 1],
            rng: XorShift::new(1),
        };
        assert_eq!(v.verified_prefix(drip).unwrap(), (5, 5 * G));
        // A corrupted group in the middle stops the prefix there, even with good groups after.
        data[4 * GU + 77] ^= 0x10;
        assert_eq!(v.verified_prefix(&data[..]).unwrap(), (4, 4 * G));
        data[4 * GU + 77] ^= 0x10;
        data[0] ^= 1;
        assert_eq!(v.verified_prefix(&data[..]).unwrap(), (0, 0));
        data[0] ^= 1;
        data[size - 1] ^= 1;
        assert_eq!(v.verified_prefix(&data[..]).unwrap(), (7, 7 * G));

        // A reader error is passed on.
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk gone"))
            }
        }
        assert!(v.verified_prefix(Broken).is_err());
        assert!(tree_of(Broken).is_err());
    }

    #[test]
    fn small_blobs_verify_by_whole_hash() {
        for (seed, size) in [0, 1, 1023, 1024, 1025, 4096, 65535, 65536]
            .into_iter()
            .enumerate()
        {
            let mut data = bytes(size, 50 + seed as u64);
            let tree = tree_of(&data[..]).unwrap();
            assert!(tree.cvs.is_empty());
            assert_eq!(tree.id, *blake3::hash(&data).as_bytes());
            let v = Verifier::new(tree.id, size as u64, Vec::new()).unwrap();
            assert_eq!(v.groups(), 1);
            assert!(v.cvs().is_empty());
            assert_eq!(v.verify(0, &data), Ok(()));
            assert_eq!(v.verified_prefix(&data[..]).unwrap(), (1, size as u64));
            if size == 0 {
                continue;
            }
            assert_eq!(v.verified_prefix(&data[..size - 1]).unwrap(), (0, 0));
            for at in [0, size / 2, size - 1] {
                data[at] ^= 0x80;
                assert_eq!(v.verify(0, &data), Err(TreeError::BadGroup { index: 0 }));
                assert_eq!(v.verified_prefix(&data[..]).unwrap(), (0, 0));
                data[at] ^= 0x80;
            }
            // A CV list for a small blob is refused, even its own group's CV.
            assert_eq!(
                Verifier::new(tree.id, size as u64, vec![group_cv(0, &data)]).err(),
                Some(TreeError::BadCount { got: 1, want: 0 })
            );
            let mut wrong = tree.id;
            wrong[0] ^= 1;
            let v = Verifier::new(wrong, size as u64, Vec::new()).unwrap();
            assert_eq!(v.verify(0, &data), Err(TreeError::BadGroup { index: 0 }));
        }
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            TreeError::BadTree.to_string(),
            "the chunk hashes do not match the sound's id"
        );
        assert_eq!(
            TreeError::BadGroup { index: 3 }.to_string(),
            "chunk 3 does not match the sound's id"
        );
    }

    #[test]
    fn throughput() {
        let size = 64 << 20;
        let data = bytes(size, 99);
        let start = std::time::Instant::now();
        let tree = tree_of(&data[..]).unwrap();
        let hashed = start.elapsed();
        let v = Verifier::new(tree.id, tree.size, tree.cvs).unwrap();
        let checked = std::time::Instant::now();
        for (index, piece) in data.chunks(GU).enumerate() {
            assert_eq!(v.verify(index as u64, piece), Ok(()));
        }
        let verified = checked.elapsed();
        let plain = std::time::Instant::now();
        assert_eq!(blake3::hash(&data).as_bytes(), v.id());
        let plain = plain.elapsed();
        let mb = size as f64 / 1e6;
        eprintln!(
            "tree_of: {:.0} MB/s, verify: {:.0} MB/s, blake3::hash: {:.0} MB/s ({} MiB, {} groups)",
            mb / hashed.as_secs_f64(),
            mb / verified.as_secs_f64(),
            mb / plain.as_secs_f64(),
            size >> 20,
            v.groups()
        );
    }
}
