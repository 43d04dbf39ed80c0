//! The disk budget of sounds that came from elsewhere (fetched from peers): which of
//! them to delete, least recently used first and pinned never, and whether a new one
//! may be accepted.
//!
//! Pure policy with no I/O and no clock: the library lists its remote sounds as
//! [`DiskEntry`]s (sounds imported here are never listed: they are not cached,
//! they are the user's), asks, and applies the answer. Pinned entries (sounds
//! bound to keys) count towards the budget but are never chosen; when they alone
//! exceed it, every unpinned entry goes and the cache stays over budget.
//!
//! Each question costs O(n log n) in the number of entries (one sort), which is
//! nothing beside the deletions it decides.

/// One remote sound as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskEntry<I> {
    /// The sound's id.
    pub id: I,
    /// Its size on disk, bytes.
    pub size_bytes: u64,
    /// When it was last played or fetched, milliseconds on any clock (only the
    /// order matters).
    pub last_used_ms: u64,
    /// Whether it is bound to a key (never evicted).
    pub pinned: bool,
}

/// The disk budget for remote sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskBudget {
    budget_bytes: u64,
}

/// How much of the budget a set of entries takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskUsage {
    /// All entries, bytes.
    pub bytes: u64,
    /// Pinned entries, bytes.
    pub pinned_bytes: u64,
    /// The budget, bytes.
    pub budget_bytes: u64,
}

impl DiskUsage {
    /// Whether the entries exceed the budget.
    pub fn over_budget(&self) -> bool {
        self.bytes > self.budget_bytes
    }

    /// The most a new unpinned sound may take (after evicting every unpinned one).
    pub fn available(&self) -> u64 {
        self.budget_bytes.saturating_sub(self.pinned_bytes)
    }

    /// Whether a new unpinned sound of `size_bytes` fits beside the pinned entries.
    /// When those alone exceed the budget nothing does, not even an empty sound.
    pub fn fits(&self, size_bytes: u64) -> bool {
        self.pinned_bytes.saturating_add(size_bytes) <= self.budget_bytes
    }
}

/// A new unpinned sound refused: it cannot fit beside the pinned ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a remote sound of {size} bytes does not fit the cache: \
     {available} of its {budget} bytes are not taken by pinned sounds"
)]
pub struct NoRoom {
    /// The sound's size, bytes.
    pub size: u64,
    /// The budget left beside the pinned entries, bytes.
    pub available: u64,
    /// The whole budget, bytes.
    pub budget: u64,
}

impl DiskBudget {
    /// A budget of `budget_bytes`.
    pub const fn new(budget_bytes: u64) -> Self {
        Self { budget_bytes }
    }

    /// The budget, bytes.
    pub const fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// How much of the budget `entries` take.
    pub fn usage<I>(&self, entries: &[DiskEntry<I>]) -> DiskUsage {
        let mut usage = DiskUsage {
            budget_bytes: self.budget_bytes,
            ..DiskUsage::default()
        };
        for e in entries {
            usage.bytes = usage.bytes.saturating_add(e.size_bytes);
            if e.pinned {
                usage.pinned_bytes = usage.pinned_bytes.saturating_add(e.size_bytes);
            }
        }
        usage
    }

    /// Whether a new unpinned sound of `size_bytes` can be accepted, evicting
    /// unpinned entries as needed (see [`DiskBudget::admit`]).
    pub fn fits<I>(&self, entries: &[DiskEntry<I>], size_bytes: u64) -> bool {
        self.usage(entries).fits(size_bytes)
    }

    /// The entries to delete so that `entries` fit the budget (after the budget
    /// shrank, or at start-up): least recently used unpinned first, only as many as
    /// needed, in the order to delete them.
    pub fn evictions<I: Clone>(&self, entries: &[DiskEntry<I>]) -> Vec<I> {
        self.evict_for(entries, 0)
    }

    /// Room for a new unpinned sound of `size_bytes`: the entries to delete first,
    /// in order, after which it fits; or [`NoRoom`] if it cannot fit beside the
    /// pinned entries (then delete nothing). `entries` must not include the new
    /// sound.
    pub fn admit<I: Clone>(
        &self,
        entries: &[DiskEntry<I>],
        size_bytes: u64,
    ) -> Result<Vec<I>, NoRoom> {
        let usage = self.usage(entries);
        if !usage.fits(size_bytes) {
            return Err(NoRoom {
                size: size_bytes,
                available: usage.available(),
                budget: self.budget_bytes,
            });
        }
        Ok(self.evict_for(entries, size_bytes))
    }

    /// Room for a new pinned sound of `size_bytes`: always accepted; the entries to
    /// delete first, in order (as many unpinned as needed, possibly all of them).
    pub fn admit_pinned<I: Clone>(&self, entries: &[DiskEntry<I>], size_bytes: u64) -> Vec<I> {
        self.evict_for(entries, size_bytes)
    }

    /// Least recently used unpinned entries, oldest first, until `incoming` more
    /// bytes fit or none is left. Ties keep the order of `entries`.
    fn evict_for<I: Clone>(&self, entries: &[DiskEntry<I>], incoming: u64) -> Vec<I> {
        let mut bytes = self.usage(entries).bytes;
        if bytes.saturating_add(incoming) <= self.budget_bytes {
            return Vec::new();
        }
        let mut candidates: Vec<&DiskEntry<I>> = entries.iter().filter(|e| !e.pinned).collect();
        candidates.sort_by_key(|e| e.last_used_ms);
        let mut evicted = Vec::new();
        for e in candidates {
            if bytes.saturating_add(incoming) <= self.budget_bytes {
                break;
            }
            bytes -= e.size_bytes;
            evicted.push(e.id.clone());
        }
        evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u32, size: u64, last_used: u64, pinned: bool) -> DiskEntry<u32> {
        DiskEntry {
            id,
            size_bytes: size,
            last_used_ms: last_used,
            pinned,
        }
    }

    #[test]
    fn within_budget_nothing_goes() {
        let b = DiskBudget::new(100);
        let entries = [entry(1, 50, 10, false), entry(2, 50, 5, false)];
        assert!(b.evictions(&entries).is_empty());
        assert!(b.evictions::<u32>(&[]).is_empty());
        assert_eq!(b.admit(&entries, 0), Ok(vec![]));
        assert_eq!(b.budget_bytes(), 100);
    }

    #[test]
    fn least_recently_used_go_first_and_only_as_many_as_needed() {
        let b = DiskBudget::new(100);
        let entries = [
            entry(1, 30, 300, false),
            entry(2, 30, 100, false),
            entry(3, 30, 200, false),
            entry(4, 30, 400, false),
        ];
        // 120 bytes: one eviction, the oldest.
        assert_eq!(b.evictions(&entries), vec![2]);
        // Room for 50 more: 120 + 50 - 100 = 70 bytes to free, three entries.
        assert_eq!(b.admit(&entries, 50), Ok(vec![2, 3, 1]));
        assert!(b.fits(&entries, 100));
        assert!(!b.fits(&entries, 101));
    }

    #[test]
    fn pinned_entries_are_never_chosen_but_count() {
        let b = DiskBudget::new(100);
        let entries = [
            entry(1, 60, 1, true),
            entry(2, 20, 5, false),
            entry(3, 20, 3, false),
        ];
        assert!(b.evictions(&entries).is_empty());
        assert_eq!(b.admit(&entries, 20), Ok(vec![3]));
        assert_eq!(b.admit(&entries, 40), Ok(vec![3, 2]));
        assert!(b.fits(&entries, 40));
        assert!(!b.fits(&entries, 41));
        assert_eq!(
            b.admit(&entries, 41),
            Err(NoRoom {
                size: 41,
                available: 40,
                budget: 100
            })
        );
        let u = b.usage(&entries);
        assert_eq!((u.bytes, u.pinned_bytes, u.available()), (100, 60, 40));
        assert!(!u.over_budget());
    }

    #[test]
    fn pinned_alone_over_budget() {
        let b = DiskBudget::new(100);
        let entries = [
            entry(1, 80, 1, true),
            entry(2, 40, 2, true),
            entry(3, 10, 0, false),
        ];
        assert_eq!(b.evictions(&entries), vec![3]);
        assert!(!b.fits(&entries, 1));
        assert!(!b.fits(&entries, 0));
        assert!(b.usage(&entries).over_budget());
        // A pinned newcomer is always accepted.
        assert_eq!(b.admit_pinned(&entries, 50), vec![3]);
        assert_eq!(b.admit_pinned(&entries[..2], 50), Vec::<u32>::new());
    }

    #[test]
    fn ties_keep_the_listed_order() {
        let b = DiskBudget::new(10);
        let entries = [
            entry(7, 10, 5, false),
            entry(8, 10, 5, false),
            entry(9, 10, 5, false),
        ];
        assert_eq!(b.evictions(&entries), vec![7, 8]);
    }

    #[test]
    fn a_zero_budget_keeps_only_pinned() {
        let b = DiskBudget::new(0);
        let entries = [entry(1, 10, 5, false), entry(2, 10, 1, true)];
        assert_eq!(b.evictions(&entries), vec![1]);
        assert!(!b.fits(&entries, 0));
        assert!(b.admit(&entries, 0).is_err());
        assert!(b.fits(&entries[..1], 0));
        assert_eq!(b.admit(&entries[..1], 0), Ok(vec![1]));
    }

    #[test]
    fn no_room_names_the_sizes() {
        let e = NoRoom {
            size: 5,
            available: 3,
            budget: 9,
        };
        assert_eq!(
            e.to_string(),
            "a remote sound of 5 bytes does not fit the cache: 3 of its 9 bytes are not \
             taken by pinned sounds"
        );
    }

    /// splitmix64: a small deterministic generator.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Applies `evicted` to `entries`, checking that it only names unpinned
    /// entries, the least recently used ones, and no more than needed for
    /// `incoming` bytes.
    fn apply(b: &DiskBudget, entries: &mut Vec<DiskEntry<u32>>, evicted: &[u32], incoming: u64) {
        let gone: Vec<DiskEntry<u32>> = entries
            .iter()
            .filter(|e| evicted.contains(&e.id))
            .cloned()
            .collect();
        assert_eq!(
            gone.len(),
            evicted.len(),
            "evicted ids are distinct and present"
        );
        assert!(gone.iter().all(|e| !e.pinned), "a pinned entry was evicted");
        entries.retain(|e| !evicted.contains(&e.id));
        // Least recently used: every kept unpinned entry is at least as recent.
        let newest_gone = gone.iter().map(|e| e.last_used_ms).max();
        if let Some(newest_gone) = newest_gone {
            for e in entries.iter().filter(|e| !e.pinned) {
                assert!(e.last_used_ms >= newest_gone);
            }
            // Minimal: without the last eviction, it would not fit.
            let last = evicted
                .last()
                .and_then(|id| gone.iter().find(|e| e.id == *id));
            let last = last.map_or(0, |e| e.size_bytes);
            let u = b.usage(entries);
            assert!(u.bytes + last + incoming > b.budget_bytes());
        }
    }

    /// The budget rule: within budget, unless only pinned entries are left.
    fn check(b: &DiskBudget, entries: &[DiskEntry<u32>]) {
        let u = b.usage(entries);
        let unpinned = u.bytes - u.pinned_bytes;
        assert!(
            u.bytes <= b.budget_bytes() || unpinned == 0,
            "{u:?} with {unpinned} unpinned bytes"
        );
    }

    #[test]
    fn random_operations_keep_the_budget() {
        for seed in 0..50 {
            let mut rng = Rng(seed);
            let mut b = DiskBudget::new(1_000);
            let mut entries: Vec<DiskEntry<u32>> = Vec::new();
            let mut now = 0u64;
            let mut next_id = 0u32;
            for _ in 0..1_000 {
                now += rng.below(3);
                match rng.below(8) {
                    // A new remote sound arrives.
                    0..=2 => {
                        let size = rng.below(400);
                        let fits = b.fits(&entries, size);
                        match b.admit(&entries, size) {
                            Ok(evicted) => {
                                assert!(fits);
                                apply(&b, &mut entries, &evicted, size);
                                next_id += 1;
                                entries.push(entry(next_id, size, now, false));
                            }
                            Err(no) => {
                                assert!(!fits);
                                assert!(no.size > no.available || no.available == 0);
                            }
                        }
                    }
                    // A remote sound bound to a key arrives.
                    3 => {
                        let size = rng.below(300);
                        let evicted = b.admit_pinned(&entries, size);
                        apply(&b, &mut entries, &evicted, size);
                        next_id += 1;
                        entries.push(entry(next_id, size, now, true));
                    }
                    // One is played.
                    4 => {
                        if !entries.is_empty() {
                            let i = rng.below(entries.len() as u64) as usize;
                            entries[i].last_used_ms = now;
                        }
                    }
                    // One is bound or unbound; unbinding may free what must go.
                    5 => {
                        if !entries.is_empty() {
                            let i = rng.below(entries.len() as u64) as usize;
                            entries[i].pinned = !entries[i].pinned;
                            let evicted = b.evictions(&entries);
                            apply(&b, &mut entries, &evicted, 0);
                        }
                    }
                    // The user changes the budget.
                    6 => {
                        b = DiskBudget::new(rng.below(2_000));
                        let evicted = b.evictions(&entries);
                        apply(&b, &mut entries, &evicted, 0);
                    }
                    // One is deleted by hand.
                    _ => {
                        if !entries.is_empty() {
                            let i = rng.below(entries.len() as u64) as usize;
                            entries.swap_remove(i);
                        }
                    }
                }
                check(&b, &entries);
            }
        }
    }
}
