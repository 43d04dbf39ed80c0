//! The jitter buffer's sequence bookkeeping: which seqs arrived (duplicates, late
//! copies), which are lost, and the loss rate over a window, where an outage counts
//! only for its first few seqs. Plain data; never allocates after `new`.

use std::collections::VecDeque;

use super::{MIN_LOSS_SEQS, OUTAGE_RUN, SEQ_LAG, SEQ_MEMORY};

/// Losses over the last `cap` seqs (the first [`OUTAGE_RUN`] of a run of losses).
#[derive(Debug)]
pub(super) struct LossWindow {
    pub(super) flags: VecDeque<bool>,
    pub(super) cap: usize,
    pub(super) lost: usize,
    pub(super) run: u64,
}

impl LossWindow {
    pub(super) fn new(cap: usize) -> Self {
        Self {
            flags: VecDeque::with_capacity(cap),
            cap,
            lost: 0,
            run: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.flags.clear();
        self.lost = 0;
        self.run = 0;
    }

    /// Records `times` seqs in a row, lost or not.
    pub(super) fn push(&mut self, lost: bool, times: u64) {
        let counted = if lost {
            times.min(OUTAGE_RUN.saturating_sub(self.run))
        } else {
            0
        };
        self.run = if lost {
            self.run.saturating_add(times)
        } else {
            0
        };
        self.push_flags(true, counted);
        self.push_flags(false, times - counted);
    }

    pub(super) fn push_flags(&mut self, lost: bool, times: u64) {
        let times = usize::try_from(times).unwrap_or(usize::MAX).min(self.cap);
        for _ in 0..times {
            if self.flags.len() == self.cap && self.flags.pop_front() == Some(true) {
                self.lost -= 1;
            }
            self.flags.push_back(lost);
            self.lost += usize::from(lost);
        }
    }

    /// Loss rate, once enough seqs were judged.
    pub(super) fn rate(&self) -> Option<f64> {
        (self.flags.len() >= MIN_LOSS_SEQS).then(|| self.lost as f64 / self.flags.len() as f64)
    }

    pub(super) fn rate_or_zero(&self) -> f64 {
        if self.flags.is_empty() {
            0.0
        } else {
            self.lost as f64 / self.flags.len() as f64
        }
    }
}

/// The highest seq seen, with its ts.
#[derive(Debug, Clone, Copy)]
pub(super) struct Top {
    pub(super) seq: u64,
    pub(super) ts: u64,
}

/// What is known of a seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SeqStatus {
    /// Not seen (or newer than anything seen).
    Fresh,
    /// Seen only as a redundant copy (or repaired by FEC).
    CopySeen,
    /// Seen as a primary.
    PrimarySeen,
    /// Too old to know.
    Forgotten,
}

/// Which seqs arrived, for duplicates, loss counting and the loss rate.
#[derive(Debug)]
pub(super) struct SeqTracker {
    pub(super) top: Option<Top>,
    pub(super) first: u64,
    pub(super) any: u128,
    pub(super) primary: u128,
    pub(super) window: LossWindow,
    pub(super) lost: u64,
}

impl SeqTracker {
    pub(super) fn new(window: usize) -> Self {
        Self {
            top: None,
            first: 0,
            any: 0,
            primary: 0,
            window: LossWindow::new(window),
            lost: 0,
        }
    }

    /// Forgets the stream (the lost total is kept: it is a counter).
    pub(super) fn reset(&mut self) {
        self.top = None;
        self.any = 0;
        self.primary = 0;
        self.window.clear();
    }

    pub(super) fn bit(&self, seq: u64) -> Option<u128> {
        let top = self.top?;
        let back = top.seq.checked_sub(seq)?;
        (back < SEQ_MEMORY).then(|| 1u128 << back)
    }

    pub(super) fn status(&self, seq: u64) -> SeqStatus {
        match self.top {
            None => SeqStatus::Fresh,
            Some(top) if seq > top.seq => SeqStatus::Fresh,
            Some(_) => match self.bit(seq) {
                None => SeqStatus::Forgotten,
                Some(bit) if self.primary & bit != 0 => SeqStatus::PrimarySeen,
                Some(bit) if self.any & bit != 0 => SeqStatus::CopySeen,
                Some(_) => SeqStatus::Fresh,
            },
        }
    }

    /// Whether `seq` at `ts` is consistent with the highest seq seen: each seq step
    /// needs a ts step of at least `min_step` samples.
    pub(super) fn consistent(&self, seq: u64, ts: u64, min_step: u64) -> bool {
        let Some(top) = self.top else { return true };
        if seq >= top.seq {
            let need = (seq - top.seq).saturating_mul(min_step);
            ts.checked_sub(top.ts).is_some_and(|step| step >= need)
                && (seq > top.seq || ts == top.ts)
        } else {
            let need = (top.seq - seq).saturating_mul(min_step);
            top.ts.checked_sub(ts).is_some_and(|step| step >= need)
        }
    }

    /// Records that `seq` arrived (as a primary or not).
    pub(super) fn mark(&mut self, seq: u64, ts: u64, primary: bool) {
        let Some(top) = self.top else {
            self.top = Some(Top { seq, ts });
            self.first = seq;
            self.any = 1;
            self.primary = u128::from(primary);
            return;
        };
        if seq > top.seq {
            self.advance(top.seq, seq);
            self.top = Some(Top { seq, ts });
        }
        self.set(seq, primary);
    }

    /// Records that `seq` was repaired (by FEC): not lost.
    pub(super) fn mark_repaired(&mut self, seq: u64) {
        self.set(seq, false);
    }

    pub(super) fn set(&mut self, seq: u64, primary: bool) {
        let (Some(top), Some(bit)) = (self.top, self.bit(seq)) else {
            return;
        };
        if self.any & bit == 0 && top.seq - seq >= SEQ_LAG && seq >= self.first {
            self.lost = self.lost.saturating_sub(1); // judged lost, then arrived late
        }
        self.any |= bit;
        if primary {
            self.primary |= bit;
        }
    }

    /// Moves the top from `old` to `new`, judging the seqs that fall `SEQ_LAG` behind.
    pub(super) fn advance(&mut self, old: u64, new: u64) {
        let lo = old.saturating_sub(SEQ_LAG - 1).max(self.first);
        if let Some(hi) = new.checked_sub(SEQ_LAG).filter(|&hi| hi >= lo) {
            for seq in lo..=hi.min(old) {
                let bit = 1u128 << (old - seq);
                self.window.push(self.primary & bit == 0, 1);
                self.lost += u64::from(self.any & bit == 0);
            }
            if hi > old {
                self.window.push(true, hi - old);
                self.lost = self.lost.saturating_add(hi - old);
            }
        }
        let shift = new - old;
        self.any = self
            .any
            .checked_shl(shift.try_into().unwrap_or(u32::MAX))
            .unwrap_or(0);
        self.primary = self
            .primary
            .checked_shl(shift.try_into().unwrap_or(u32::MAX))
            .unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_is_lost_once_it_falls_behind_and_found_if_it_comes_late() {
        let mut seqs = SeqTracker::new(1000);
        for seq in (0..200).filter(|s| s % 10 != 5) {
            seqs.mark(seq, seq * 480, true);
        }
        // Seqs 5, 15, …, 135 are 64 or more behind 199: judged lost.
        assert_eq!(seqs.lost, 14);
        assert_eq!(seqs.status(125), SeqStatus::Fresh);
        seqs.mark(125, 125 * 480, false); // a late copy: found after all
        assert_eq!((seqs.lost, seqs.status(125)), (13, SeqStatus::CopySeen));
        assert_eq!(seqs.status(199), SeqStatus::PrimarySeen);
        assert_eq!(seqs.status(10), SeqStatus::Forgotten);
        // The loss rate counts primaries: the late copy does not undo its loss.
        let rate = seqs.window.rate().unwrap_or(0.0);
        assert!((rate - 14.0 / 136.0).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn an_outage_counts_toward_the_loss_rate_only_up_to_a_short_run() {
        let mut window = LossWindow::new(1000);
        window.push(false, 200);
        window.push(true, 300);
        window.push(false, 100);
        assert_eq!(window.lost, OUTAGE_RUN as usize);
        window.push(true, 2);
        window.push(false, 1);
        window.push(true, 1);
        assert_eq!(window.lost, OUTAGE_RUN as usize + 3);
    }

    #[test]
    fn seq_and_ts_must_agree() {
        let mut seqs = SeqTracker::new(100);
        seqs.mark(10, 4_800, true);
        assert!(seqs.consistent(11, 5_280, 120));
        assert!(seqs.consistent(12, 5_280, 120)); // 2 seqs over 480 samples: 2.5 ms each
        assert!(seqs.consistent(14, 5_280, 120)); // 4 steps of 2.5 ms in 10 ms
        assert!(!seqs.consistent(15, 5_280, 120));
        assert!(!seqs.consistent(10, 4_900, 120)); // same seq, other ts
        assert!(seqs.consistent(9, 4_320, 120));
        assert!(!seqs.consistent(9, 4_800, 120)); // older seq, not older ts
        assert!(!seqs.consistent(u64::MAX, u64::MAX, 120));
    }
}
