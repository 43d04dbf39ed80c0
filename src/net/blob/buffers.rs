//! Batch buffers reused between blob fetches.
//!
//! A fetch reads the network into two buffers of up to a megabyte (one is verified
//! and written on the blocking pool while the other fills). Fresh ones for every
//! sound meant the kernel faulting in and zeroing two new allocations per sound of a
//! library, which showed as most of a whole-library fetch's system time. Fetches take
//! them from here and give them back when done. It never holds more than [`KEEP`]
//! buffers, and its lock is held only for a push or a pop.

use std::sync::Mutex;

/// Buffers kept for reuse: two for each of a whole-library fetch's sixteen
/// transfers at once (more are dropped)...
const KEEP: usize = 32;
/// ...and at most this many bytes of them.
const KEEP_BYTES: usize = 16 << 20;

/// A free list of buffers.
struct Pool {
    free: Mutex<Vec<Vec<u8>>>,
}

static POOL: Pool = Pool::new();

/// A buffer of `len` bytes. A reused one still holds an earlier sound's bytes: the
/// caller uses only what it reads into it.
pub(super) fn take(len: usize) -> Vec<u8> {
    POOL.take(len)
}

/// An empty buffer with room for `cap` bytes, from the pool when it has one.
pub(super) fn take_empty(cap: usize) -> Vec<u8> {
    POOL.take_empty(cap)
}

/// Gives a buffer back for a later fetch.
pub(super) fn give(b: Vec<u8>) {
    POOL.give(b)
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            free: Mutex::new(Vec::new()),
        }
    }

    fn take(&self, len: usize) -> Vec<u8> {
        match self.reuse(len) {
            Some(mut b) => {
                b.resize(len, 0);
                b
            }
            None => vec![0u8; len],
        }
    }

    /// An empty buffer with room for `cap` bytes (nothing zeroed: it is filled by
    /// appending).
    fn take_empty(&self, cap: usize) -> Vec<u8> {
        match self.reuse(cap) {
            Some(mut b) => {
                b.clear();
                b
            }
            None => Vec::with_capacity(cap),
        }
    }

    /// The smallest kept buffer with room for `cap` bytes: a small blob does not take
    /// the large buffer the next large one needs.
    fn reuse(&self, cap: usize) -> Option<Vec<u8>> {
        let mut free = self.free.lock().ok()?;
        let i = free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= cap)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i)?;
        Some(free.swap_remove(i))
    }

    /// When [`KEEP`] are kept already, the smallest of them and `b` is dropped; `b`
    /// is dropped when it would take the pool over [`KEEP_BYTES`].
    fn give(&self, b: Vec<u8>) {
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        let kept: usize = free.iter().map(Vec::capacity).sum();
        if free.len() < KEEP {
            if kept + b.capacity() <= KEEP_BYTES {
                free.push(b);
            }
        } else if let Some(smallest) = free.iter_mut().min_by_key(|k| k.capacity())
            && smallest.capacity() < b.capacity()
            && kept - smallest.capacity() + b.capacity() <= KEEP_BYTES
        {
            *smallest = b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_given_back_is_taken_again_at_the_asked_length() {
        let pool = Pool::new();
        let mut b = pool.take(1 << 20);
        assert_eq!(b.len(), 1 << 20);
        b[0] = 7;
        let at = b.as_ptr();
        pool.give(b);
        let again = pool.take(4096);
        assert_eq!(again.len(), 4096);
        assert_eq!(again.as_ptr(), at, "the same memory");
        assert_eq!(again[0], 7, "not zeroed again");
        // Nothing kept is big enough: a new one.
        let bigger = pool.take(2 << 20);
        assert_eq!(bigger.len(), 2 << 20);
        assert_ne!(bigger.as_ptr(), at);
    }

    #[test]
    fn the_smallest_buffer_that_fits_is_taken_and_an_empty_one_is_not_zeroed() {
        let pool = Pool::new();
        let big = pool.take(1 << 20);
        let small = pool.take(64 << 10);
        let (big_at, small_at) = (big.as_ptr(), small.as_ptr());
        pool.give(big);
        pool.give(small);
        let b = pool.take_empty(10_000);
        assert!(b.is_empty());
        assert_eq!(
            b.as_ptr(),
            small_at,
            "the small one fits: the big one stays"
        );
        let c = pool.take_empty(100_000);
        assert_eq!(c.as_ptr(), big_at);
        assert!(c.capacity() >= 100_000);
    }

    #[test]
    fn it_keeps_the_largest_few() {
        let pool = Pool::new();
        for k in 1..=KEEP + 4 {
            pool.give(Vec::with_capacity(k * 1000));
        }
        let mut kept: Vec<usize> = pool
            .free
            .lock()
            .expect("lock")
            .iter()
            .map(|b| b.capacity())
            .collect();
        kept.sort_unstable();
        assert_eq!(kept.len(), KEEP);
        assert!(kept[0] >= 5000, "{kept:?}");
    }

    #[test]
    fn it_never_keeps_more_than_its_bytes() {
        let pool = Pool::new();
        for _ in 0..KEEP + 8 {
            pool.give(Vec::with_capacity(1 << 20));
        }
        pool.give(Vec::with_capacity(3 << 20));
        let kept: usize = pool
            .free
            .lock()
            .expect("lock")
            .iter()
            .map(Vec::capacity)
            .sum();
        assert!(kept <= KEEP_BYTES, "{kept} bytes kept");
        assert!(kept >= KEEP_BYTES - (1 << 20), "{kept} bytes kept");
    }
}
