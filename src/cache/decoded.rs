//! The decoded-sound cache for playback: samples already decoded and resampled
//! for the engine, kept under a memory budget so a trigger only has to enqueue them.
//!
//! - Entries are `Arc<[f32]>`, weighed by their size in bytes.
//! - When an insert would exceed the budget, the least recently used unpinned
//!   entries are evicted first. Pinned entries (sounds bound to keys) are never
//!   evicted: a pinned insert always succeeds, even past the budget (reported by
//!   [`CacheStats::over_budget`]), while an unpinned one that cannot fit beside the
//!   pinned ones is refused with [`DoesNotFit`].
//! - Every operation is O(log n): a hash map for entries, an ordered map of last
//!   uses for the unpinned ones. No operation scans the whole cache.
//!
//! It is a plain structure (`&mut self`, no lock inside): the owner wraps it in a
//! `Mutex` if several threads share it. The audio thread never touches it; it only
//! holds the `Arc`s it was handed, so evicting an entry never frees samples that a
//! voice is still playing (the last `Arc` to go frees them, off the audio thread
//! as the engine's rules require).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

/// Decoded sounds by key, under a memory budget. See the module documentation.
#[derive(Debug)]
pub struct DecodedCache<K> {
    entries: HashMap<K, Entry>,
    /// Unpinned keys by the tick of their last use, oldest first.
    by_use: BTreeMap<u64, K>,
    next_tick: u64,
    bytes: usize,
    pinned_bytes: usize,
    budget: usize,
    hits: u64,
    misses: u64,
    evictions: u64,
    refused: u64,
}

#[derive(Debug)]
struct Entry {
    samples: Arc<[f32]>,
    bytes: usize,
    pinned: bool,
    /// Last use; the key into `by_use` while unpinned.
    tick: u64,
}

/// A snapshot of the cache's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Entries held.
    pub entries: usize,
    /// Of which pinned.
    pub pinned_entries: usize,
    /// Bytes held.
    pub bytes: usize,
    /// Of which pinned.
    pub pinned_bytes: usize,
    /// The memory budget, bytes.
    pub budget: usize,
    /// `get`s that found their key.
    pub hits: u64,
    /// `get`s that did not.
    pub misses: u64,
    /// Entries evicted to make room.
    pub evictions: u64,
    /// Unpinned inserts refused because they could not fit beside the pinned entries.
    pub refused: u64,
}

impl CacheStats {
    /// Whether the pinned entries alone hold more than the budget.
    pub fn over_budget(&self) -> bool {
        self.bytes > self.budget
    }
}

/// An unpinned insert refused: even with every unpinned entry evicted, it would
/// not fit beside the pinned ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a decoded sound of {size} bytes does not fit the cache: \
     {available} of its {budget} bytes are not taken by pinned sounds"
)]
pub struct DoesNotFit {
    /// The sound's size, bytes.
    pub size: usize,
    /// The budget left beside the pinned entries, bytes.
    pub available: usize,
    /// The whole budget, bytes.
    pub budget: usize,
}

impl<K: Eq + Hash + Clone> DecodedCache<K> {
    /// An empty cache holding at most `budget` bytes of unpinned samples.
    pub fn new(budget: usize) -> Self {
        Self {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            next_tick: 0,
            bytes: 0,
            pinned_bytes: 0,
            budget,
            hits: 0,
            misses: 0,
            evictions: 0,
            refused: 0,
        }
    }

    /// The samples for `key`, marking them as just used; counts a hit or a miss.
    pub fn get(&mut self, key: &K) -> Option<Arc<[f32]>> {
        let tick = self.tick();
        let Some(entry) = self.entries.get_mut(key) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        if !entry.pinned {
            self.by_use.remove(&entry.tick);
            self.by_use.insert(tick, key.clone());
        }
        entry.tick = tick;
        Some(Arc::clone(&entry.samples))
    }

    /// The samples for `key`, without counting or marking a use.
    pub fn peek(&self, key: &K) -> Option<&Arc<[f32]>> {
        self.entries.get(key).map(|e| &e.samples)
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &K) -> bool {
        self.entries.contains_key(key)
    }

    /// Whether `key` is held and pinned.
    pub fn is_pinned(&self, key: &K) -> bool {
        self.entries.get(key).is_some_and(|e| e.pinned)
    }

    /// Adds (or replaces) an entry, as the most recently used one, evicting least
    /// recently used unpinned entries as needed. Returns the evicted keys, oldest
    /// first. A replaced entry keeps its pin.
    ///
    /// Refused, leaving the cache unchanged, when the samples cannot fit beside the
    /// pinned entries; the caller can still play them (keep a clone of the `Arc`).
    pub fn insert(&mut self, key: K, samples: Arc<[f32]>) -> Result<Vec<K>, DoesNotFit> {
        let size = size_of_samples(&samples);
        let pinned = self.is_pinned(&key);
        // Beside the pinned entries, which stay whatever happens. When they alone
        // exceed the budget nothing unpinned fits, not even an empty sound.
        if !pinned && self.pinned_bytes.saturating_add(size) > self.budget {
            self.refused += 1;
            return Err(DoesNotFit {
                size,
                available: self.budget.saturating_sub(self.pinned_bytes),
                budget: self.budget,
            });
        }
        Ok(self.put(key, samples, size, pinned))
    }

    /// Adds (or replaces) a pinned entry. Always succeeds: unpinned entries are
    /// evicted as needed, and if the pinned ones alone exceed the budget the cache
    /// stays over budget. Returns the evicted keys, oldest first.
    pub fn insert_pinned(&mut self, key: K, samples: Arc<[f32]>) -> Vec<K> {
        let size = size_of_samples(&samples);
        self.put(key, samples, size, true)
    }

    /// Pins a held entry so it is never evicted. Returns whether `key` is held.
    pub fn pin(&mut self, key: &K) -> bool {
        let Some(entry) = self.entries.get_mut(key) else {
            return false;
        };
        if !entry.pinned {
            entry.pinned = true;
            self.by_use.remove(&entry.tick);
            self.pinned_bytes += entry.bytes;
        }
        true
    }

    /// Makes a pinned entry evictable again, as the most recently used one, then
    /// evicts what no longer fits (possibly that entry itself, if the cache was over
    /// budget). Returns the evicted keys, oldest first.
    pub fn unpin(&mut self, key: &K) -> Vec<K> {
        let tick = self.tick();
        if let Some(entry) = self.entries.get_mut(key)
            && entry.pinned
        {
            entry.pinned = false;
            entry.tick = tick;
            self.by_use.insert(tick, key.clone());
            self.pinned_bytes -= entry.bytes;
        }
        self.evict_until_fits(0)
    }

    /// Removes an entry (not counted as an eviction), pinned or not.
    pub fn remove(&mut self, key: &K) -> Option<Arc<[f32]>> {
        let entry = self.entries.remove(key)?;
        self.bytes -= entry.bytes;
        if entry.pinned {
            self.pinned_bytes -= entry.bytes;
        } else {
            self.by_use.remove(&entry.tick);
        }
        Some(entry.samples)
    }

    /// Changes the budget, evicting what no longer fits. Returns the evicted keys,
    /// oldest first.
    pub fn set_budget(&mut self, budget: usize) -> Vec<K> {
        self.budget = budget;
        self.evict_until_fits(0)
    }

    /// The memory budget, bytes.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.entries.len(),
            pinned_entries: self.entries.len() - self.by_use.len(),
            bytes: self.bytes,
            pinned_bytes: self.pinned_bytes,
            budget: self.budget,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            refused: self.refused,
        }
    }

    fn put(&mut self, key: K, samples: Arc<[f32]>, size: usize, pinned: bool) -> Vec<K> {
        self.remove(&key);
        let evicted = self.evict_until_fits(size);
        let tick = self.tick();
        if !pinned {
            self.by_use.insert(tick, key.clone());
        } else {
            self.pinned_bytes += size;
        }
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                samples,
                bytes: size,
                pinned,
                tick,
            },
        );
        evicted
    }

    /// Evicts least recently used unpinned entries until `incoming` more bytes fit
    /// the budget, or none is left.
    fn evict_until_fits(&mut self, incoming: usize) -> Vec<K> {
        let mut evicted = Vec::new();
        while self.bytes.saturating_add(incoming) > self.budget {
            let Some((_, key)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&key) {
                self.bytes -= entry.bytes;
            }
            self.evictions += 1;
            evicted.push(key);
        }
        evicted
    }

    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }
}

fn size_of_samples(samples: &[f32]) -> usize {
    std::mem::size_of_val(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples: `4 * n` bytes.
    fn sound(n: usize) -> Arc<[f32]> {
        vec![0.25; n].into()
    }

    /// Checks the bookkeeping against the entries, and the budget rule.
    fn check<K: Eq + Hash + Clone + std::fmt::Debug>(c: &DecodedCache<K>) {
        let bytes: usize = c.entries.values().map(|e| e.bytes).sum();
        let pinned: usize = c
            .entries
            .values()
            .filter(|e| e.pinned)
            .map(|e| e.bytes)
            .sum();
        assert_eq!(c.bytes, bytes);
        assert_eq!(c.pinned_bytes, pinned);
        let unpinned = c.entries.values().filter(|e| !e.pinned).count();
        assert_eq!(c.by_use.len(), unpinned);
        for (tick, key) in &c.by_use {
            let e = &c.entries[key];
            assert!(!e.pinned && e.tick == *tick, "{key:?}");
        }
        for e in c.entries.values() {
            assert_eq!(e.bytes, 4 * e.samples.len());
        }
        assert!(
            c.bytes <= c.budget || c.by_use.is_empty(),
            "over budget with unpinned entries: {:?}",
            c.stats()
        );
    }

    #[test]
    fn least_recently_used_goes_first() {
        let mut c = DecodedCache::new(40);
        assert_eq!(c.insert("a", sound(3)), Ok(vec![]));
        assert_eq!(c.insert("b", sound(3)), Ok(vec![]));
        assert_eq!(c.insert("c", sound(3)), Ok(vec![]));
        check(&c);
        // Touch "a": "b" is now the oldest.
        assert!(c.get(&"a").is_some());
        assert_eq!(c.insert("d", sound(3)), Ok(vec!["b"]));
        check(&c);
        // Needs two evictions, oldest first: "c" then "a".
        assert_eq!(c.insert("e", sound(7)), Ok(vec!["c", "a"]));
        check(&c);
        assert!(c.contains(&"d") && c.contains(&"e"));
        assert_eq!(c.stats().evictions, 3);
        assert_eq!(c.stats().bytes, 40);
        // peek neither counts nor refreshes: "d" stays the oldest.
        assert!(c.peek(&"d").is_some());
        assert_eq!(c.insert("f", sound(1)), Ok(vec!["d"]));
        assert_eq!(c.stats().hits, 1);
    }

    #[test]
    fn hits_and_misses_are_counted() {
        let mut c = DecodedCache::new(100);
        c.insert(1u32, sound(2)).expect("fits");
        assert!(c.get(&1).is_some());
        assert!(c.get(&1).is_some());
        assert!(c.get(&2).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.entries, s.bytes), (2, 1, 1, 8));
    }

    #[test]
    fn get_returns_the_same_samples() {
        let mut c = DecodedCache::new(100);
        let s = sound(5);
        c.insert("x", Arc::clone(&s)).expect("fits");
        let got = c.get(&"x").expect("held");
        assert!(Arc::ptr_eq(&got, &s));
    }

    #[test]
    fn pinned_entries_are_never_evicted() {
        let mut c = DecodedCache::new(40);
        c.insert("p", sound(5)).expect("fits");
        assert!(c.pin(&"p"));
        assert!(!c.pin(&"absent"));
        c.insert("a", sound(5)).expect("fits");
        // Only "a" can go, although "p" is older.
        assert_eq!(c.insert("b", sound(5)), Ok(vec!["a"]));
        check(&c);
        assert!(c.is_pinned(&"p") && !c.is_pinned(&"b"));
        let s = c.stats();
        assert_eq!((s.pinned_entries, s.pinned_bytes), (1, 20));
    }

    #[test]
    fn unpinned_insert_that_cannot_fit_beside_pinned_is_refused() {
        let mut c = DecodedCache::new(40);
        c.insert_pinned("p", sound(8));
        c.insert("a", sound(2)).expect("fits");
        let err = c
            .insert("big", sound(3))
            .expect_err("12 bytes > 8 available");
        assert_eq!(
            err,
            DoesNotFit {
                size: 12,
                available: 8,
                budget: 40
            }
        );
        // Refusal changed nothing, not even "a".
        assert!(c.contains(&"a") && !c.contains(&"big"));
        assert_eq!(c.stats().refused, 1);
        assert_eq!(c.stats().evictions, 0);
        check(&c);
        // Larger than the whole budget.
        assert!(c.insert("huge", sound(11)).is_err());
        assert!(err.to_string().contains("12 bytes"));
    }

    #[test]
    fn pinned_inserts_succeed_over_budget() {
        let mut c = DecodedCache::new(40);
        c.insert("a", sound(4)).expect("fits");
        c.insert("b", sound(4)).expect("fits");
        // "a" is enough to make room for "p"; "q" takes "b" and is still over.
        assert_eq!(c.insert_pinned("p", sound(6)), vec!["a"]);
        assert_eq!(c.insert_pinned("q", sound(6)), vec!["b"]);
        let s = c.stats();
        assert!(s.over_budget());
        assert_eq!((s.bytes, s.pinned_bytes, s.budget), (48, 48, 40));
        check(&c);
        // Nothing unpinned fits now, not even an empty sound.
        assert!(c.insert("c", sound(1)).is_err());
        assert!(c.insert("empty", sound(0)).is_err());
        check(&c);
        // Unpinning brings the budget back: "q" itself is evicted.
        assert_eq!(c.unpin(&"q"), vec!["q"]);
        assert!(!c.stats().over_budget());
        check(&c);
    }

    #[test]
    fn unpinned_entry_becomes_most_recent() {
        let mut c = DecodedCache::new(48);
        c.insert_pinned("p", sound(4));
        c.insert("a", sound(4)).expect("fits");
        assert_eq!(c.unpin(&"p"), Vec::<&str>::new());
        // "a" is older than the just unpinned "p".
        assert_eq!(c.insert("b", sound(4)), Ok(vec![]));
        assert_eq!(c.insert("c", sound(4)), Ok(vec!["a"]));
        check(&c);
    }

    #[test]
    fn replacing_keeps_the_pin_and_the_accounting() {
        let mut c = DecodedCache::new(40);
        c.insert_pinned("p", sound(2));
        assert_eq!(c.insert("p", sound(12)), Ok(vec![]));
        assert!(c.is_pinned(&"p"));
        assert_eq!(c.stats().bytes, 48);
        check(&c);
        c.insert("a", sound(4)).expect_err("pinned take everything");
        c.insert_pinned("p", sound(3));
        c.insert("a", sound(4)).expect("fits");
        // Replacing an unpinned entry with a larger one may evict others but never
        // counts the old copy twice.
        c.insert("b", sound(3)).expect("fits");
        assert_eq!(c.insert("a", sound(6)), Ok(vec!["b"]));
        assert_eq!(c.stats().bytes, 36);
        check(&c);
    }

    #[test]
    fn remove_and_shrink() {
        let mut c = DecodedCache::new(100);
        c.insert("a", sound(5)).expect("fits");
        c.insert("b", sound(5)).expect("fits");
        c.insert_pinned("p", sound(5));
        assert_eq!(c.remove(&"p").map(|s| s.len()), Some(5));
        assert_eq!(c.remove(&"p"), None);
        check(&c);
        assert_eq!(c.set_budget(20), vec!["a"]);
        assert_eq!(c.budget(), 20);
        assert_eq!(c.len(), 1);
        assert_eq!(c.stats().evictions, 1);
        check(&c);
        assert_eq!(c.set_budget(0), vec!["b"]);
        assert!(c.is_empty());
    }

    /// splitmix64: a small deterministic generator for the randomized tests.
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

    #[test]
    fn random_operations_keep_the_invariants() {
        for seed in 0..20 {
            let mut rng = Rng(seed);
            let mut c = DecodedCache::new(400);
            // A model of the recency order of the unpinned keys, oldest first.
            let mut order: Vec<u8> = Vec::new();
            for _ in 0..2_000 {
                let key = rng.below(24) as u8;
                match rng.below(9) {
                    0..=2 => {
                        let n = rng.below(40) as usize;
                        let pinned = c.is_pinned(&key);
                        match c.insert(key, sound(n)) {
                            Ok(evicted) => {
                                // A replaced entry leaves first; evictions are then
                                // the oldest of the model, in order.
                                order.retain(|k| *k != key);
                                assert_eq!(&order[..evicted.len()], &evicted[..]);
                                order.retain(|k| !evicted.contains(k));
                                if !pinned {
                                    order.push(key);
                                }
                            }
                            Err(e) => {
                                assert!(!pinned);
                                assert!(e.size > e.available || e.available == 0);
                            }
                        }
                    }
                    3 => {
                        let n = rng.below(30) as usize;
                        let evicted = c.insert_pinned(key, sound(n));
                        order.retain(|k| *k != key && !evicted.contains(k));
                    }
                    4..=5 => {
                        if c.get(&key).is_some() && !c.is_pinned(&key) {
                            order.retain(|k| *k != key);
                            order.push(key);
                        }
                    }
                    6 => {
                        if c.pin(&key) {
                            order.retain(|k| *k != key);
                        }
                    }
                    7 => {
                        if c.is_pinned(&key) {
                            order.push(key);
                        }
                        let evicted = c.unpin(&key);
                        assert_eq!(&order[..evicted.len()], &evicted[..]);
                        order.drain(..evicted.len());
                    }
                    _ => {
                        if rng.below(4) == 0 {
                            let budget = rng.below(600) as usize;
                            let evicted = c.set_budget(budget);
                            assert_eq!(&order[..evicted.len()], &evicted[..]);
                            order.drain(..evicted.len());
                        } else if c.remove(&key).is_some() {
                            order.retain(|k| *k != key);
                        }
                    }
                }
                check(&c);
                let model: Vec<u8> = c.by_use.values().copied().collect();
                assert_eq!(model, order, "seed {seed}");
            }
            let s = c.stats();
            assert_eq!(s.entries, c.len());
        }
    }
}
