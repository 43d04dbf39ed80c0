//! Delay statistics of the intercom's jitter buffer: how late each packet arrives
//! compared with the fastest packets of its stream, corrected for the drift between
//! the sender's sample clock and the receiver's clock, and a high percentile of that
//! lateness over a window of recent packets.
//!
//! The model (as in WebRTC's NetEQ): a packet whose first sample was captured at
//! sender time `s` (its ts, in µs since the stream's first packet) and that arrived at
//! receiver time `t` (µs since that packet's arrival) has the delay `d = t − s`. The
//! fastest path is a line under all delays, `a + b·t`: `b` is the clock skew,
//! estimated by least squares over per-second minima of `d` (so a ±0.1 % drift does
//! not bias the statistics by window × drift), and `a` the lowest `d − b·t` in the
//! window (the moving minimum). A packet's relative delay is `d − (a + b·t)` ≥ 0, and
//! the same formula gives the buffer's depth: how far a ts is behind what the fastest
//! path had delivered by a given time ([`Lateness::lag_us`]).
//!
//! The window counts packets, not wall time: it holds the last `capacity` samples, so
//! a silence (DTX) does not make it forget the network's jitter. The skew is fitted
//! over the last minute: a step in the network's base delay biases it for that
//! minute (by at most step / minute, e.g. 20 ms → 0.03 %).
//!
//! Must never: do I/O, read a clock, spawn threads, allocate after construction (all
//! buffers are sized in [`Lateness::new`]), or panic on any input (non-finite values
//! are ignored; the skew is clamped to ±[`MAX_SKEW`]).

use std::collections::VecDeque;

/// Width of one bucket of the skew estimate (µs of receiver time).
const BUCKET_US: f64 = 1_000_000.0;
/// Per-second minima kept for the skew regression (one minute).
const SKEW_BUCKETS: usize = 60;
/// Minima needed before the skew is estimated at all.
const MIN_SKEW_BUCKETS: usize = 4;
/// Time the minima must span before the skew is estimated (µs).
const MIN_SKEW_SPAN_US: f64 = 3_000_000.0;
/// Largest skew believed (2 %: far beyond a bad sound card, but virtual and
/// resampled devices have been seen to run 1–2 % off); beyond is clamped.
pub const MAX_SKEW: f64 = 0.02;
/// The percentile is recomputed at least every this many samples (and at once when a
/// sample lands above it, so the target can grow without delay).
const RECOMPUTE_EVERY: u32 = 8;

/// One observation: receiver time and delay, both µs relative to the stream's origin.
#[derive(Debug, Clone, Copy)]
struct Point {
    t: f64,
    d: f64,
}

/// The first packet of the stream: every time is measured from it.
#[derive(Debug, Clone, Copy)]
struct Origin {
    arrival_us: u64,
    ts: u64,
}

/// Lateness statistics of one stream (see the module documentation).
#[derive(Debug, Clone)]
pub struct Lateness {
    rate: f64,
    percentile: f64,
    capacity: usize,
    origin: Option<Origin>,
    points: VecDeque<Point>,
    scratch: Vec<f64>,
    minima: VecDeque<Point>,
    open: Option<(i64, Point)>,
    skew: f64,
    floor: f64,
    level: f64,
    fresh: u32,
}

impl Lateness {
    /// Statistics for ts counted at `sample_rate` (Hz), reporting the `percentile`
    /// (0.5..=1.0) of relative delay over the last `capacity` packets (at least 1).
    pub fn new(sample_rate: u32, percentile: f64, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let percentile = if percentile.is_finite() {
            percentile.clamp(0.5, 1.0)
        } else {
            0.97
        };
        Self {
            rate: f64::from(sample_rate.max(1)),
            percentile,
            capacity,
            origin: None,
            points: VecDeque::with_capacity(capacity),
            scratch: Vec::with_capacity(capacity),
            minima: VecDeque::with_capacity(SKEW_BUCKETS),
            open: None,
            skew: 0.0,
            floor: 0.0,
            level: 0.0,
            fresh: 0,
        }
    }

    /// Forgets everything (a new stream), keeping the buffers.
    pub fn reset(&mut self) {
        self.origin = None;
        self.points.clear();
        self.minima.clear();
        self.open = None;
        self.skew = 0.0;
        self.floor = 0.0;
        self.level = 0.0;
        self.fresh = 0;
    }

    /// Records that the packet whose first sample is `ts` arrived at `arrival_us`.
    /// Only first copies of primary packets belong here: redundant copies arrive a
    /// frame late by construction, and duplicates say nothing new.
    pub fn observe(&mut self, arrival_us: u64, ts: u64) {
        let origin = *self.origin.get_or_insert(Origin { arrival_us, ts });
        let t = signed_diff(arrival_us, origin.arrival_us);
        let d = t - signed_diff(ts, origin.ts) * 1e6 / self.rate;
        if !t.is_finite() || !d.is_finite() {
            return;
        }
        let point = Point { t, d };
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
        self.track_minimum(point);
        let v = d - self.skew * t;
        if self.points.len() == 1 {
            self.floor = v;
            self.level = v;
            return;
        }
        self.floor = self.floor.min(v);
        self.fresh += 1;
        if v > self.level || self.fresh >= RECOMPUTE_EVERY {
            self.recompute();
        }
    }

    /// The configured percentile of relative delay over the window (µs, ≥ 0); 0
    /// before any packet.
    pub fn spread_us(&self) -> f64 {
        (self.level - self.floor).max(0.0)
    }

    /// How far `ts` is behind what the fastest path had delivered by `at_us` (µs of
    /// sender time). For a packet arriving at `at_us` this is its relative delay; for
    /// the next ts to play at `at_us` it is the buffer's depth. Negative when `ts` is
    /// ahead of the fastest path. `None` before the first packet.
    pub fn lag_us(&self, at_us: u64, ts: u64) -> Option<f64> {
        let origin = self.origin?;
        let t = signed_diff(at_us, origin.arrival_us);
        let s = signed_diff(ts, origin.ts) * 1e6 / self.rate;
        Some(t * (1.0 - self.skew) - self.floor - s)
    }

    /// The ts that lags `lag_us` behind the fastest path at `at_us` (the inverse of
    /// [`Self::lag_us`]), clamped to the u64 range. `None` before the first packet.
    pub fn ts_at_lag(&self, at_us: u64, lag_us: f64) -> Option<u64> {
        let origin = self.origin?;
        let t = signed_diff(at_us, origin.arrival_us);
        let s = t * (1.0 - self.skew) - self.floor - lag_us;
        let ts = origin.ts as f64 + s * self.rate / 1e6;
        // `as` saturates: NaN gives 0, out-of-range values the nearest bound.
        ts.is_finite().then_some(ts as u64)
    }

    /// Estimated skew: the slope of the fastest path's delay per µs of receiver time.
    /// Negative when the sender's clock runs fast (its ts gain on the receiver's).
    pub fn skew(&self) -> f64 {
        self.skew
    }

    /// Receiver time spanned by the samples in the window (µs).
    pub fn span_us(&self) -> f64 {
        match (self.points.front(), self.points.back()) {
            (Some(first), Some(last)) => last.t - first.t,
            _ => 0.0,
        }
    }

    /// Samples in the window.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether no packet has been observed since the last reset.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Most samples the window holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Folds a point into the per-second minima; closing a bucket re-estimates the skew.
    fn track_minimum(&mut self, point: Point) {
        let index = (point.t / BUCKET_US).floor() as i64;
        match self.open {
            Some((open, min)) if open == index => {
                if point.d < min.d {
                    self.open = Some((open, point));
                }
            }
            Some((open, min)) if index > open => {
                self.open = Some((index, point));
                self.close_bucket(min);
            }
            Some(_) => {} // a time before the open bucket: ignored
            None => self.open = Some((index, point)),
        }
    }

    fn close_bucket(&mut self, min: Point) {
        if self.minima.len() == SKEW_BUCKETS {
            self.minima.pop_front();
        }
        self.minima.push_back(min);
        if let Some(slope) = fit_slope(&self.minima) {
            self.skew = slope.clamp(-MAX_SKEW, MAX_SKEW);
            self.recompute();
        }
    }

    /// Recomputes the floor (moving minimum) and the percentile level of the
    /// skew-corrected delays in the window. O(window); no allocation.
    fn recompute(&mut self) {
        self.fresh = 0;
        self.scratch.clear();
        let skew = self.skew;
        self.scratch
            .extend(self.points.iter().map(|p| p.d - skew * p.t));
        let Some(floor) = self.scratch.iter().copied().reduce(f64::min) else {
            return;
        };
        let rank = percentile_rank(self.scratch.len(), self.percentile);
        let (_, level, _) = self.scratch.select_nth_unstable_by(rank, f64::total_cmp);
        self.level = *level;
        self.floor = floor;
    }
}

/// Index of the `percentile` in `n` sorted values (nearest rank); `n` ≥ 1.
fn percentile_rank(n: usize, percentile: f64) -> usize {
    let rank = (percentile * n as f64).ceil() as usize;
    rank.saturating_sub(1).min(n.saturating_sub(1))
}

/// Least-squares slope of delay against time, once the points are enough and span
/// enough time to mean something.
fn fit_slope(points: &VecDeque<Point>) -> Option<f64> {
    let (first, last) = (points.front()?, points.back()?);
    if points.len() < MIN_SKEW_BUCKETS || last.t - first.t < MIN_SKEW_SPAN_US {
        return None;
    }
    let n = points.len() as f64;
    let mean_t = points.iter().map(|p| p.t).sum::<f64>() / n;
    let mean_d = points.iter().map(|p| p.d).sum::<f64>() / n;
    let (sxx, sxy) = points.iter().fold((0.0, 0.0), |(sxx, sxy), p| {
        let dt = p.t - mean_t;
        (sxx + dt * dt, sxy + dt * (p.d - mean_d))
    });
    let slope = sxy / sxx;
    (sxx > 0.0 && slope.is_finite()).then_some(slope)
}

/// `a − b` as f64, exact for differences below 2^53.
fn signed_diff(a: u64, b: u64) -> f64 {
    (i128::from(a) - i128::from(b)) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const RATE: u32 = 48_000;

    /// Feeds `seconds` of 10 ms packets from a sender whose clock runs `ppm` fast,
    /// with uniform jitter up to `jitter_us`, and returns the statistics.
    fn feed(ppm: f64, jitter_us: f64, seconds: u64, seed: u64) -> Lateness {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut stats = Lateness::new(RATE, 0.97, 1000);
        for k in 0..seconds * 100 {
            let sent_us = k as f64 * 10_000.0 / (1.0 + ppm * 1e-6);
            let arrival = sent_us + 20_000.0 + rng.gen_range(0.0..=jitter_us);
            stats.observe(arrival as u64, 1_000_000 + k * 480);
        }
        stats
    }

    #[test]
    fn fastest_packets_have_no_lag() {
        let mut stats = Lateness::new(RATE, 0.97, 100);
        for k in 0..50u64 {
            stats.observe(5_000 + k * 10_000, k * 480);
        }
        assert!(stats.spread_us().abs() < 1.0);
        let lag = stats
            .lag_us(5_000 + 49 * 10_000, 49 * 480)
            .unwrap_or(f64::NAN);
        assert!(lag.abs() < 1.0, "lag {lag}");
        // Half a frame later, the fastest path has delivered 5 ms more.
        let later = stats
            .lag_us(5_000 + 49 * 10_000 + 5_000, 49 * 480)
            .unwrap_or(f64::NAN);
        assert!((later - 5_000.0).abs() < 1.0, "lag {later}");
    }

    #[test]
    fn percentile_of_known_delays() {
        let mut stats = Lateness::new(RATE, 0.9, 100);
        // Delays 0, 1, …, 99 ms (shuffled by a stride), one frame apart.
        for k in 0..100u64 {
            let extra = (k * 37 % 100) * 1000;
            stats.observe(k * 10_000 + extra, k * 480);
        }
        // The 90th percentile of 0..=99 ms by nearest rank is 89 ms (within a ms: the
        // percentile is refreshed every few samples).
        assert!(
            (stats.spread_us() - 89_000.0).abs() <= 1_000.0,
            "{}",
            stats.spread_us()
        );
    }

    #[test]
    fn skew_is_estimated_both_ways() {
        for ppm in [1000.0, -1000.0, 300.0] {
            let stats = feed(ppm, 20_000.0, 60, 7);
            let estimated = -stats.skew() * 1e6;
            assert!(
                (estimated - ppm).abs() < 30.0,
                "{ppm} ppm estimated as {estimated}"
            );
            // Without the correction the spread would be 20 ms + 10 s × drift.
            assert!(stats.spread_us() < 20_500.0, "{ppm}: {}", stats.spread_us());
        }
    }

    #[test]
    fn window_forgets_and_memory_is_bounded() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut stats = Lateness::new(RATE, 0.97, 500);
        for k in 0..3000u64 {
            let jitter = if k < 1000 {
                rng.gen_range(0.0..30_000.0)
            } else {
                0.0
            };
            stats.observe((k as f64 * 10_000.0 + jitter) as u64, k * 480);
            assert!(stats.len() <= 500);
        }
        assert!(stats.spread_us() < 100.0, "{}", stats.spread_us());
    }

    #[test]
    fn absurd_input_does_not_panic() {
        let mut stats = Lateness::new(0, f64::NAN, 0);
        for (t, ts) in [
            (0, u64::MAX),
            (u64::MAX, 0),
            (5, 5),
            (0, 0),
            (u64::MAX, u64::MAX),
        ] {
            stats.observe(t, ts);
            let _ = stats.lag_us(t, ts);
            let _ = stats.ts_at_lag(t, f64::MAX);
        }
        assert!(stats.len() <= 1);
    }
}
