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
    /// Blocks in which a streamed voice had too little data.
    pub stream_starved: AtomicU64,
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
            stream_starved: self.stream_starved.load(r),
        }
    }
}
