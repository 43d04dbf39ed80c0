//! Finds the input a capture device lost: a sans-IO state machine fed each input
//! block's capture time and length, answering how many frames went missing just
//! before it (or, for a fill that proved premature, how many to take back).
//!
//! A capture stream that misses a graph cycle (a sound server's client, or the
//! device, not scheduled in time) delivers fewer frames than time passed: the
//! device's clock moved on, the lost frames are never delivered. Every consumer that
//! counts time in samples (the intercom's packet timestamps, a recording's length, a
//! wire's depth) then runs slow by what was lost; on a loaded machine that was 5–30 %
//! of the input, which a listener's jitter buffer cannot tell from a sender clock
//! running that much slow. The capture processor fills what this finds with silence,
//! so that the input's sample count keeps the device's time: a loss is a short gap,
//! not a drift.
//!
//! How a loss is told from what is not one:
//! - The drift `d` is how far a block's capture time is past where the frames
//!   delivered so far (and the silence already filled) put it. A loss raises `d` by
//!   its length at once, and for good.
//! - A block stamped late and the next stamped early (a buffer that waited a cycle
//!   and came with the next one, as PipeWire hands them over) raises `d` for one
//!   block only: a rise counts once it has held for [`HOLD`] blocks, and what is
//!   filled is the smallest rise among them.
//! - The slow walk of a device's clock against the system's (±0.1 %) and the jitter
//!   of the stamps are followed by a baseline that moves a 32nd of the way each
//!   block; a rise is measured from it and must exceed half a block (at least
//!   [`MIN_RISE_NS`]).
//! - A buffer the server held back for longer than the hold and then delivered after
//!   all was filled as if lost; its late arrival then lowers the drift below the
//!   baseline, and a fall that holds as long takes that fill back: as many frames,
//!   never more than were filled and not yet taken back, are dropped from the blocks
//!   that follow. The count stays on the device's time either way.
//! - A jump of more than [`MAX_GAP_NS`] either way is a new timeline (the stream was
//!   reopened, or stalled for that long): it is not filled; counting starts again.
//!
//! Must never: read a clock (the time comes in), allocate, fill silence for a rise
//! that did not hold, or drop more than it filled.

/// Blocks a rise must hold before it is a loss.
pub const HOLD: u32 = 3;

/// The smallest rise counted as a loss: stamps jitter by about a millisecond on a
/// busy machine.
pub const MIN_RISE_NS: f64 = 2_000_000.0;

/// A jump larger than this is a new timeline, not a loss to fill.
pub const MAX_GAP_NS: f64 = 1_000_000_000.0;

/// How much of the distance to the drift the baseline moves each block.
const FOLLOW: f64 = 1.0 / 32.0;

/// A run of blocks past the threshold on one side of the baseline.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    /// Blocks in the run.
    blocks: u32,
    /// The smallest excess among them, ns.
    least: f64,
}

impl Held {
    /// Counts a block `excess` past the threshold; the run's smallest excess once the
    /// run has lasted [`HOLD`] blocks (the run then starts over).
    fn note(&mut self, excess: f64) -> Option<f64> {
        self.least = if self.blocks == 0 {
            excess
        } else {
            self.least.min(excess)
        };
        self.blocks += 1;
        (self.blocks >= HOLD).then(|| std::mem::take(self).least)
    }
}

/// The detector of one input stream. See the module documentation.
#[derive(Debug, Clone)]
pub struct GapDetector {
    /// Frames a second.
    rate: u64,
    /// Capture time of the first block of the timeline, ns.
    origin: Option<u64>,
    /// Frames since `origin`: delivered, plus filled, less taken back.
    frames: u64,
    /// Where the drift rests, ns.
    baseline: f64,
    /// Blocks above the baseline.
    rise: Held,
    /// Blocks below it, while some fill can still be taken back.
    fall: Held,
    /// Frames filled and not taken back.
    credit: u64,
    /// The count of frames up to which that credit holds: a fill is taken back
    /// within a second or not at all (a later fall is the stamps' latency changing).
    credit_until: u64,
}

/// What the capture processor does before a block (see [`GapDetector::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Correction {
    /// Frames of silence to put before the block: input the device lost.
    pub fill: u64,
    /// Frames to drop from the start of what follows: a fill taken back, since what
    /// it stood for came after all.
    pub drop: u64,
}

impl GapDetector {
    /// A detector for a stream of `rate` frames a second.
    pub fn new(rate: u32) -> GapDetector {
        GapDetector {
            rate: u64::from(rate.max(1)),
            origin: None,
            frames: 0,
            baseline: 0.0,
            rise: Held::default(),
            fall: Held::default(),
            credit: 0,
            credit_until: 0,
        }
    }

    /// Forgets the timeline (a new stream starts).
    pub fn reset(&mut self) {
        *self = GapDetector {
            rate: self.rate,
            ..GapDetector::new(1)
        };
    }

    fn ns_per_frame(&self) -> f64 {
        1e9 / self.rate as f64
    }

    /// A block of `frames` frames captured at `at_ns` (any monotonic clock, the same
    /// for every block): what to fill before it, or drop after it.
    pub fn observe(&mut self, at_ns: u64, frames: usize) -> Correction {
        let ns = self.ns_per_frame();
        let step = self.origin.map_or(f64::INFINITY, |origin| {
            let drift = at_ns as f64 - (origin as f64 + self.frames as f64 * ns);
            drift - self.baseline
        });
        if step.abs() > MAX_GAP_NS {
            // The first block, or a new timeline.
            self.reset();
            self.origin = Some(at_ns);
            self.frames = frames as u64;
            return Correction::default();
        }
        let threshold = (frames as f64 * ns / 2.0).max(MIN_RISE_NS);
        if self.frames > self.credit_until {
            self.credit = 0;
        }
        let mut out = Correction::default();
        if step > threshold {
            self.fall = Held::default();
            if let Some(least) = self.rise.note(step) {
                out.fill = (least / ns).round() as u64;
                self.credit = self.credit.saturating_add(out.fill);
                self.credit_until = self.frames + self.rate;
            }
        } else if -step > threshold && self.credit > 0 {
            self.rise = Held::default();
            if let Some(least) = self.fall.note(-step) {
                out.drop = ((least / ns).round() as u64).min(self.credit);
                self.credit -= out.drop;
            }
        } else {
            self.rise = Held::default();
            self.fall = Held::default();
            self.baseline += step * FOLLOW;
        }
        self.frames = (self.frames + out.fill + frames as u64).saturating_sub(out.drop);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 48_000;
    const NS: f64 = 1e9 / 48_000.0;

    /// A capture stream as a device and a sound server deliver it.
    struct Sim {
        rng: u64,
        /// Device clock against ours: 1.0 exact, 1.001 a device 0.1 % fast.
        speed: f64,
        /// Stamp jitter, ± ns.
        jitter: f64,
        /// Chance a block is lost (per block).
        loss: f64,
        /// Chance a run of blocks begins that each come a cycle late (stamped with
        /// the next cycle), 1 to 40 of them, the run ending with two blocks in one
        /// cycle: a buffer the server held back and delivered after all.
        late: f64,
        period: usize,
    }

    /// What a simulated stream lost, and what the detector did about it.
    #[derive(Debug, Default)]
    struct Outcome {
        lost: u64,
        filled: u64,
        dropped: u64,
        corrections: u32,
    }

    impl Sim {
        fn next(&mut self) -> f64 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Runs `blocks` device periods.
        fn run(&mut self, blocks: usize) -> Outcome {
            let mut d = GapDetector::new(RATE);
            let mut o = Outcome::default();
            let mut behind = 0usize;
            let period_ns = self.period as f64 * NS / self.speed;
            for b in 0..blocks {
                let t = 5e9 + b as f64 * period_ns;
                if b > 0 && behind == 0 && self.next() < self.late {
                    behind = 1 + (self.next() * 40.0) as usize;
                }
                let late = if behind > 0 {
                    behind -= 1;
                    period_ns
                } else {
                    0.0
                };
                if b > 0 && self.next() < self.loss {
                    o.lost += self.period as u64;
                    continue;
                }
                let jitter = (self.next() * 2.0 - 1.0) * self.jitter;
                let c = d.observe((t + late + jitter) as u64, self.period);
                o.filled += c.fill;
                o.dropped += c.drop;
                o.corrections += u32::from(c.fill > 0) + u32::from(c.drop > 0);
            }
            o
        }
    }

    #[test]
    fn a_clean_stream_is_never_filled() {
        let mut d = GapDetector::new(RATE);
        for b in 0..100_000u64 {
            let at = 1_000_000 + (b as f64 * 256.0 * NS) as u64;
            assert_eq!(d.observe(at, 256), Correction::default(), "block {b}");
        }
    }

    /// The stamp of 256-frame block `b` of a stream that starts at 7 ns.
    fn at(b: u64) -> u64 {
        (b as f64 * 256.0 * NS) as u64 + 7
    }

    /// A detector that has seen blocks 0-9 on time.
    fn after_ten_blocks() -> GapDetector {
        let mut d = GapDetector::new(RATE);
        for b in 0..10 {
            assert_eq!(d.observe(at(b), 256), Correction::default());
        }
        d
    }

    #[test]
    fn one_lost_period_is_filled_once_after_it_held() {
        let mut d = after_ten_blocks();
        // Block 10 never arrives.
        assert_eq!(d.observe(at(11), 256).fill, 0);
        assert_eq!(d.observe(at(12), 256).fill, 0);
        assert_eq!(d.observe(at(13), 256).fill, 256);
        for b in 14..1000 {
            assert_eq!(d.observe(at(b), 256), Correction::default(), "block {b}");
        }
    }

    #[test]
    fn a_buffer_stamped_with_the_next_cycle_is_not_a_loss() {
        let mut d = after_ten_blocks();
        // Block 10 waited a cycle and came with block 11, both stamped as 11.
        assert_eq!(d.observe(at(11), 256), Correction::default());
        assert_eq!(d.observe(at(11), 256), Correction::default());
        for b in 12..1000 {
            assert_eq!(d.observe(at(b), 256), Correction::default(), "block {b}");
        }
    }

    #[test]
    fn a_buffer_held_back_past_the_hold_is_filled_then_taken_back() {
        let mut d = after_ten_blocks();
        // From block 10 on, every block comes a cycle late (stamped with the next
        // cycle) for 40 cycles; then two come in one cycle, and all is on time again.
        let late = (10..50).map(|b| at(b + 1));
        let on_time = (50..1000).map(at);
        let (filled, dropped) = late.chain(on_time).fold((0, 0), |(fill, drop), t| {
            let c = d.observe(t, 256);
            (fill + c.fill, drop + c.drop)
        });
        assert_eq!((filled, dropped), (256, 256));
    }

    #[test]
    fn a_reopened_stream_starts_a_new_timeline() {
        let mut d = GapDetector::new(RATE);
        for b in 0..100u64 {
            d.observe(900_000_000_000 + b * 5_333_333, 256);
        }
        // Stamps from another origin: no fill, and the new stream is followed.
        for b in 0..100u64 {
            assert_eq!(d.observe(1_000_000 + b * 5_333_333, 256).fill, 0);
        }
        assert_eq!(d.observe(1_000_000 + 101 * 5_333_333, 256).fill, 0);
        assert_eq!(d.observe(1_000_000 + 102 * 5_333_333, 256).fill, 0);
        assert_eq!(d.observe(1_000_000 + 103 * 5_333_333, 256).fill, 256);
    }

    /// Thousands of seeded streams: what is filled, less what is taken back, is what
    /// was lost, within a little per correction; and a stream that lost nothing and
    /// came on time is never touched — whatever the jitter, the clock skew, the late
    /// runs and the period.
    #[test]
    fn simulated_streams_fill_what_was_lost_and_only_that() {
        let mut cases = 0;
        let mut late_runs_taken_back = 0;
        for seed in 1..=2_000u64 {
            let mut s = Sim {
                rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
                speed: 1.0,
                jitter: 0.0,
                loss: 0.0,
                late: 0.0,
                period: 256,
            };
            s.period = [128, 256, 480, 1024][(s.next() * 4.0) as usize % 4];
            s.speed = 1.0 + (s.next() * 2.0 - 1.0) * 0.001;
            s.jitter = s.next() * 800_000.0;
            s.late = if s.next() < 0.5 { s.next() * 0.01 } else { 0.0 };
            s.loss = if s.next() < 0.7 { s.next() * 0.03 } else { 0.0 };
            let o = s.run(3_000);
            cases += 1;
            if o.lost == 0 && s.late == 0.0 {
                assert_eq!((o.filled, o.dropped), (0, 0), "seed {seed}: {o:?}");
                continue;
            }
            if o.dropped > 0 {
                late_runs_taken_back += 1;
            }
            let net = o.filled as f64 - o.dropped as f64;
            let err = (net - o.lost as f64).abs();
            // Each correction may be off by the jitter (rounded to frames) and by how
            // far the baseline trails a skewed clock (the skew over 1/FOLLOW blocks);
            // a loss in the last blocks, or a late run still going at the end, is not
            // settled yet.
            let trail = (s.speed - 1.0).abs() * s.period as f64 / FOLLOW;
            let per = s.jitter / NS + trail + 2.0;
            let slack = f64::from(o.corrections) * per + ((HOLD as usize + 1) * s.period) as f64;
            assert!(
                err <= slack,
                "seed {seed}: {o:?} (period {}, jitter {:.0} µs, late {:.4})",
                s.period,
                s.jitter / 1e3,
                s.late
            );
        }
        assert_eq!(cases, 2_000);
        assert!(late_runs_taken_back > 100, "{late_runs_taken_back}");
    }
}
