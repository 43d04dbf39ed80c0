//! The jitter buffer's store: the frames waiting to be played, sorted by
//! timestamp, never overlapping, bounded. Plain data; never allocates after `new`.

use std::collections::VecDeque;

use bytes::Bytes;

/// Where a buffered frame came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Primary,
    Redundant,
}

/// A buffered frame.
#[derive(Debug, Clone)]
pub(super) struct Frame {
    pub(super) seq: u64,
    pub(super) ts: u64,
    pub(super) samples: u32,
    pub(super) payload: Bytes,
    pub(super) source: Source,
}

impl Frame {
    pub(super) fn end(&self) -> u64 {
        self.ts.saturating_add(u64::from(self.samples))
    }
}

/// What [`Store::insert`] did.
pub(super) enum Stored {
    Inserted { evicted: bool },
    SameTs(usize),
    Overlap,
    Full,
}

/// Buffered frames, sorted by ts, never overlapping, at most `cap` of them.
#[derive(Debug)]
pub(super) struct Store {
    pub(super) frames: VecDeque<Frame>,
    pub(super) cap: usize,
}

impl Store {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            frames: VecDeque::with_capacity(cap),
            cap,
        }
    }

    pub(super) fn insert(&mut self, frame: Frame) -> Stored {
        let at = match self.frames.binary_search_by_key(&frame.ts, |f| f.ts) {
            Ok(index) => return Stored::SameTs(index),
            Err(at) => at,
        };
        let clashes_before = at > 0 && self.frames.get(at - 1).is_some_and(|f| f.end() > frame.ts);
        let clashes_after = self.frames.get(at).is_some_and(|f| f.ts < frame.end());
        if clashes_before || clashes_after {
            return Stored::Overlap;
        }
        let mut at = at;
        let evicted = self.frames.len() >= self.cap;
        if evicted {
            if at == 0 {
                return Stored::Full;
            }
            self.frames.pop_front();
            at -= 1;
        }
        self.frames.insert(at, frame);
        Stored::Inserted { evicted }
    }

    pub(super) fn front(&self) -> Option<&Frame> {
        self.frames.front()
    }

    /// Drops the frames starting before `ts`; returns how many.
    pub(super) fn drop_before(&mut self, ts: u64) -> u64 {
        let mut dropped = 0;
        while self.frames.front().is_some_and(|f| f.ts < ts) {
            self.frames.pop_front();
            dropped += 1;
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: u64, samples: u32) -> Frame {
        Frame {
            seq: ts,
            ts,
            samples,
            payload: Bytes::from_static(b"x"),
            source: Source::Primary,
        }
    }

    #[test]
    fn the_store_keeps_frames_sorted_apart_and_bounded() {
        let mut store = Store::new(3);
        assert!(matches!(
            store.insert(frame(960, 480)),
            Stored::Inserted { evicted: false }
        ));
        assert!(matches!(
            store.insert(frame(0, 480)),
            Stored::Inserted { evicted: false }
        ));
        assert!(matches!(store.insert(frame(960, 480)), Stored::SameTs(1)));
        assert!(matches!(store.insert(frame(240, 480)), Stored::Overlap));
        assert!(matches!(store.insert(frame(1200, 240)), Stored::Overlap));
        assert!(matches!(
            store.insert(frame(480, 480)),
            Stored::Inserted { evicted: false }
        ));
        assert!(matches!(
            store.insert(frame(1440, 480)),
            Stored::Inserted { evicted: true }
        ));
        let order: Vec<u64> = store.frames.iter().map(|f| f.ts).collect();
        assert_eq!(order, [480, 960, 1440]);
        assert!(matches!(store.insert(frame(0, 480)), Stored::Full));
        assert_eq!(store.drop_before(1000), 2);
    }
}
