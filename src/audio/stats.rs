//! Counters and gauges the audio thread publishes with relaxed atomics, read by anyone.
//!
//! Writing any of these from the callback is a single atomic store or add: no locks,
//! no allocation.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// An f32 stored in an `AtomicU32` (latest value wins).
#[derive(Debug, Default)]
pub struct AtomicF32(AtomicU32);

impl AtomicF32 {
    /// A new cell holding `v`.
    pub fn new(v: f32) -> Self {
        Self(AtomicU32::new(v.to_bits()))
    }
    /// Reads the value.
    pub fn load(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
    /// Writes the value.
    pub fn store(&self, v: f32) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// Live figures of one engine, shared between the audio thread(s) and the rest.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// Output callbacks run.
    pub callbacks: AtomicU64,
    /// Frames rendered by the mixer (the engine clock).
    pub frames: AtomicU64,
    /// Frames in the most recent output callback.
    pub period_frames: AtomicU32,
    /// Underruns/overruns reported by the device, plus callbacks that came late.
    pub xruns: AtomicU64,
    /// Non-xrun errors reported by the device.
    pub device_errors: AtomicU64,
    /// Voices playing now.
    pub voices_active: AtomicU32,
    /// Plays refused because every voice slot was taken.
    pub voices_refused: AtomicU64,
    /// Last play command → start in callback, nanoseconds.
    pub last_trigger_ns: AtomicU64,
    /// Largest play command → start in callback seen, nanoseconds.
    pub max_trigger_ns: AtomicU64,
    /// Callback → predicted playback instant from the device timestamps, nanoseconds.
    pub output_latency_ns: AtomicU64,
    /// Time spent in the last callback as a fraction of its period, in per mille.
    pub load_permille: AtomicU32,
    /// Output peak level of the last callback (linear).
    pub out_peak: AtomicF32,
    /// Output RMS level of the last callback (linear).
    pub out_rms: AtomicF32,
    /// Lowest limiter gain in the last callback (1 = not limiting).
    pub limiter_gain: AtomicF32,
    /// Input peak level of the last input callback (linear).
    pub in_peak: AtomicF32,
    /// Input RMS level of the last input callback (linear).
    pub in_rms: AtomicF32,
    /// Input callbacks run.
    pub input_callbacks: AtomicU64,
    /// Input samples dropped because a tap's ring was full.
    pub input_dropped: AtomicU64,
    /// Times the input device lost input (see [`super::gaps`]).
    pub input_losses: AtomicU64,
    /// Frames of silence put in the taps for the input the device lost.
    pub input_filled: AtomicU64,
    /// Frames of those fills taken back (dropped from later input), since what they
    /// stood for came after all.
    pub input_taken_back: AtomicU64,
    /// Blocks in which a streamed voice had too little data.
    pub stream_starved: AtomicU64,
    /// When recent starvations began (see [`Starvations::note`]).
    pub starvations: Starvations,
}

/// How many starvation times are kept.
pub const STARVATION_TIMES: usize = 32;

/// The `CLOCK_MONOTONIC` times at which the most recent starvations began, so that a
/// dropout can be lined up with what the machine did at that moment (a stalled CPU,
/// a client joining the graph). Blocks starved less than [`STARVATION_GAP_NS`] apart
/// are one starvation.
#[derive(Debug, Default)]
pub struct Starvations {
    /// Starvations begun so far; the latest is in slot `(count - 1) % STARVATION_TIMES`.
    count: AtomicU64,
    /// When each began, nanoseconds of `CLOCK_MONOTONIC`.
    began_ns: [AtomicU64; STARVATION_TIMES],
    /// When the latest starved block was seen.
    last_ns: AtomicU64,
}

/// Starved blocks closer together than this belong to one starvation.
pub const STARVATION_GAP_NS: u64 = 20_000_000;

/// `CLOCK_MONOTONIC` now, in nanoseconds: a vDSO read, safe on the audio thread.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill; CLOCK_MONOTONIC always
    // exists on Linux, and a failure leaves zeros.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

impl Starvations {
    /// Notes a starved block at `now_ns` (one writer: the audio thread).
    pub fn note(&self, now_ns: u64) {
        let last = self.last_ns.swap(now_ns, Ordering::Relaxed);
        if last == 0 || now_ns.saturating_sub(last) >= STARVATION_GAP_NS {
            let n = self.count.load(Ordering::Relaxed);
            self.began_ns[(n % STARVATION_TIMES as u64) as usize].store(now_ns, Ordering::Relaxed);
            self.count.store(n + 1, Ordering::Release);
        }
    }

    /// Starvations begun so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// When the most recent (up to [`STARVATION_TIMES`]) began, oldest first, in
    /// `CLOCK_MONOTONIC` milliseconds.
    pub fn recent_ms(&self) -> Vec<f64> {
        let n = self.count();
        let first = n.saturating_sub(STARVATION_TIMES as u64);
        (first..n)
            .map(|i| {
                let ns =
                    self.began_ns[(i % STARVATION_TIMES as u64) as usize].load(Ordering::Relaxed);
                ns as f64 / 1e6
            })
            .collect()
    }
}

/// A plain copy of [`EngineStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Output callbacks run.
    pub callbacks: u64,
    /// Frames rendered.
    pub frames: u64,
    /// Frames in the most recent callback.
    pub period_frames: u32,
    /// Xruns.
    pub xruns: u64,
    /// Device errors other than xruns.
    pub device_errors: u64,
    /// Voices playing.
    pub voices_active: u32,
    /// Refused plays.
    pub voices_refused: u64,
    /// Last trigger → callback, ms.
    pub last_trigger_ms: f64,
    /// Worst trigger → callback, ms.
    pub max_trigger_ms: f64,
    /// Predicted output latency, ms.
    pub output_latency_ms: f64,
    /// Callback load, 0..1.
    pub load: f32,
    /// Output peak (linear).
    pub out_peak: f32,
    /// Output RMS (linear).
    pub out_rms: f32,
    /// Lowest limiter gain in the last callback.
    pub limiter_gain: f32,
    /// Input peak (linear).
    pub in_peak: f32,
    /// Input RMS (linear).
    pub in_rms: f32,
    /// Input callbacks run.
    pub input_callbacks: u64,
    /// Input samples dropped.
    pub input_dropped: u64,
    /// Times the input device lost input.
    pub input_losses: u64,
    /// Frames of silence filled in for it.
    pub input_filled: u64,
    /// Frames of those fills taken back.
    pub input_taken_back: u64,
    /// Starved stream blocks.
    pub stream_starved: u64,
}

impl EngineStats {
    /// Copies every figure.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = Ordering::Relaxed;
        let ms = |ns: u64| ns as f64 / 1e6;
        StatsSnapshot {
            callbacks: self.callbacks.load(r),
            frames: self.frames.load(r),
            period_frames: self.period_frames.load(r),
            xruns: self.xruns.load(r),
            device_errors: self.device_errors.load(r),
            voices_active: self.voices_active.load(r),
            voices_refused: self.voices_refused.load(r),
            last_trigger_ms: ms(self.last_trigger_ns.load(r)),
            max_trigger_ms: ms(self.max_trigger_ns.load(r)),
            output_latency_ms: ms(self.output_latency_ns.load(r)),
            load: self.load_permille.load(r) as f32 / 1000.0,
            out_peak: self.out_peak.load(),
            out_rms: self.out_rms.load(),
            limiter_gain: self.limiter_gain.load(),
            in_peak: self.in_peak.load(),
            in_rms: self.in_rms.load(),
            input_callbacks: self.input_callbacks.load(r),
            input_dropped: self.input_dropped.load(r),
            input_losses: self.input_losses.load(r),
            input_filled: self.input_filled.load(r),
            input_taken_back: self.input_taken_back.load(r),
            stream_starved: self.stream_starved.load(r),
        }
    }
}

impl StatsSnapshot {
    /// Frames of silence standing for input the device lost: those filled in, less
    /// those taken back.
    pub fn lost_frames_filled(&self) -> u64 {
        self.input_filled.saturating_sub(self.input_taken_back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn starved_blocks_close_together_are_one_starvation() {
        let s = Starvations::default();
        // Eight blocks of one period (0.67 ms apart), then another period 25 ms later.
        for i in 0..8 {
            s.note(1_000 * MS + i * MS * 2 / 3);
        }
        s.note(1_030 * MS);
        assert_eq!(s.count(), 2);
        assert_eq!(s.recent_ms(), vec![1_000.0, 1_030.0]);
    }

    #[test]
    fn only_the_most_recent_starvations_are_kept_oldest_first() {
        let s = Starvations::default();
        let n = STARVATION_TIMES as u64 + 5;
        for i in 0..n {
            s.note((i + 1) * 100 * MS);
        }
        assert_eq!(s.count(), n);
        let recent = s.recent_ms();
        assert_eq!(recent.len(), STARVATION_TIMES);
        assert_eq!(recent.first().copied(), Some(600.0));
        assert_eq!(recent.last().copied(), Some(n as f64 * 100.0));
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_ns() >= a + 2 * MS);
    }
}
