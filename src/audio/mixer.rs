//! The mixer: the processor that runs inside the output callback.
//!
//! It owns a fixed array of voice slots, a block buffer and the limiter, all
//! allocated in `new`. `render` mixes in fixed blocks of [`BLOCK_FRAMES`] whatever the
//! callback size, takes commands from a ring at each block, and hands finished voices
//! back through another ring. It never allocates, frees, locks, blocks, logs or panics.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::command::{Command, Event, Returned};
use super::stats::{AtomicF32, EngineStats};
use super::voice::{EndReason, Voice};
use crate::domain::AudioFormat;
use crate::dsp::{LevelMeter, Limiter};

/// Frames mixed per internal block (0.67 ms at 48 kHz).
pub const BLOCK_FRAMES: usize = 32;
/// Limiter ceiling: -0.3 dBFS.
pub const CEILING: f32 = 0.966;
const LIMITER_RELEASE_S: f32 = 0.08;

/// Parameters shared with the control side, latest value wins.
#[derive(Debug)]
pub struct MixerParams {
    /// Master gain, linear.
    pub master_gain: AtomicF32,
}

impl Default for MixerParams {
    fn default() -> Self {
        Self {
            master_gain: AtomicF32::new(1.0),
        }
    }
}

/// The mixer's ends of the rings that connect it to the control side.
pub struct MixerRings {
    /// Commands in.
    pub commands: rtrb::Consumer<Command>,
    /// Finished voices out (capacity must cover every voice that can be in flight).
    pub returns: rtrb::Producer<Returned>,
    /// Events out (dropped when full).
    pub events: rtrb::Producer<Event>,
    /// The mix, after the limiter, for meters and spectrograms (dropped when full).
    pub tap: Option<rtrb::Producer<f32>>,
}

/// Timing of one output callback.
#[derive(Debug, Clone, Copy)]
pub struct CallbackTiming {
    /// When the callback started.
    pub now: Instant,
    /// Time from the callback to the predicted playback of its first frame.
    pub output_latency: Option<Duration>,
}

impl CallbackTiming {
    /// Timing for a callback starting now with no latency information.
    pub fn now() -> Self {
        Self {
            now: Instant::now(),
            output_latency: None,
        }
    }
}

/// The real-time mixer.
pub struct Mixer {
    format: AudioFormat,
    channels: usize,
    rings: MixerRings,
    voices: Box<[Option<Box<Voice>>]>,
    pending_returns: Vec<Returned>,
    block: Box<[f32]>,
    block_pos: usize,
    limiter: Limiter,
    master: f32,
    frame: u64,
    callback_now: Instant,
    active: u32,
    meter: LevelMeter,
    params: Arc<MixerParams>,
    stats: Arc<EngineStats>,
}

impl Mixer {
    /// A mixer for `format` with `voice_capacity` slots. `max_in_flight` bounds the
    /// voices the control side may have sent and not yet received back.
    pub fn new(
        format: AudioFormat,
        voice_capacity: usize,
        max_in_flight: usize,
        rings: MixerRings,
        params: Arc<MixerParams>,
        stats: Arc<EngineStats>,
    ) -> Self {
        let channels = usize::from(format.channels.max(1));
        let block = vec![0.0; BLOCK_FRAMES * channels].into_boxed_slice();
        Self {
            format,
            channels,
            rings,
            voices: (0..voice_capacity).map(|_| None).collect(),
            pending_returns: Vec::with_capacity(max_in_flight),
            block_pos: block.len(),
            block,
            limiter: Limiter::new(
                channels,
                BLOCK_FRAMES,
                format.sample_rate,
                CEILING,
                LIMITER_RELEASE_S,
            ),
            master: params.master_gain.load(),
            frame: 0,
            callback_now: Instant::now(),
            active: 0,
            meter: LevelMeter::default(),
            params,
            stats,
        }
    }

    /// The format the mixer renders.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Frames between a voice's scheduled start and its first sample in the output
    /// (the limiter's look-ahead).
    pub fn latency_frames(&self) -> usize {
        self.limiter.latency_frames()
    }

    /// Fills `out` (interleaved, the mixer's channel count) with the next frames.
    pub fn render(&mut self, out: &mut [f32], timing: CallbackTiming) {
        let started = Instant::now();
        self.callback_now = timing.now;
        let st = &self.stats;
        st.callbacks.fetch_add(1, Ordering::Relaxed);
        st.period_frames
            .store((out.len() / self.channels) as u32, Ordering::Relaxed);
        if let Some(lat) = timing.output_latency {
            st.output_latency_ns
                .store(lat.as_nanos() as u64, Ordering::Relaxed);
        }
        let mut written = 0;
        while written < out.len() {
            if self.block_pos == self.block.len() {
                self.mix_block();
                self.block_pos = 0;
            }
            let n = (self.block.len() - self.block_pos).min(out.len() - written);
            out[written..written + n]
                .copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
            self.block_pos += n;
            written += n;
        }
        self.publish(out, started);
    }

    fn publish(&mut self, out: &[f32], started: Instant) {
        self.meter.add(out);
        let (peak, rms) = self.meter.take();
        let st = &self.stats;
        st.out_peak.store(peak);
        st.out_rms.store(rms);
        st.limiter_gain.store(self.limiter.take_min_gain());
        st.voices_active.store(self.active, Ordering::Relaxed);
        st.frames.store(self.frame, Ordering::Relaxed);
        if let Some(tap) = self.rings.tap.as_mut()
            && tap.slots() >= out.len()
            && let Ok(chunk) = tap.write_chunk_uninit(out.len())
        {
            chunk.fill_from_iter(out.iter().copied());
        }
        let period = out.len() as f64 / self.channels as f64 / f64::from(self.format.sample_rate);
        if period > 0.0 {
            let load = started.elapsed().as_secs_f64() / period;
            st.load_permille
                .store((load * 1000.0) as u32, Ordering::Relaxed);
        }
    }

    fn mix_block(&mut self) {
        self.flush_pending_returns();
        while let Ok(cmd) = self.rings.commands.pop() {
            self.apply(cmd);
        }
        self.block.fill(0.0);
        let block_end = self.frame + BLOCK_FRAMES as u64;
        for i in 0..self.voices.len() {
            let Some(voice) = self.voices[i].as_mut() else {
                continue;
            };
            let offset = match voice.start_frame {
                Some(f) if f >= block_end => continue,
                Some(f) => f.saturating_sub(self.frame) as usize,
                None => 0,
            };
            if !voice.started {
                voice.started = true;
                let ns = self
                    .callback_now
                    .saturating_duration_since(voice.trigger)
                    .as_nanos() as u64;
                self.stats.last_trigger_ns.store(ns, Ordering::Relaxed);
                self.stats.max_trigger_ns.fetch_max(ns, Ordering::Relaxed);
                let _ = self.rings.events.push(Event::Started {
                    id: voice.id,
                    trigger_to_callback_ns: ns,
                    frame: self.frame + offset as u64,
                });
            }
            let starved = voice.starved_blocks;
            let ended = voice.render_into(&mut self.block, self.channels, offset);
            if voice.starved_blocks != starved {
                self.stats.stream_starved.fetch_add(1, Ordering::Relaxed);
                self.stats.starvations.note(super::stats::monotonic_ns());
            }
            if ended && let Some(v) = self.voices[i].take() {
                self.active = self.active.saturating_sub(1);
                let reason = if v.is_stopping() {
                    EndReason::Stopped
                } else {
                    EndReason::Finished
                };
                self.give_back(v, reason);
            }
        }
        let target = self.params.master_gain.load().max(0.0);
        let (g0, step) = (self.master, (target - self.master) / BLOCK_FRAMES as f32);
        if g0 != 1.0 || target != 1.0 {
            for (f, frame) in self.block.chunks_exact_mut(self.channels).enumerate() {
                let g = g0 + step * (f + 1) as f32;
                frame.iter_mut().for_each(|s| *s *= g);
            }
        }
        self.master = target;
        self.limiter.process(&mut self.block);
        self.frame = block_end;
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Play(voice) => match self.voices.iter_mut().find(|v| v.is_none()) {
                Some(slot) => {
                    *slot = Some(voice);
                    self.active += 1;
                }
                None => {
                    self.stats.voices_refused.fetch_add(1, Ordering::Relaxed);
                    self.give_back(voice, EndReason::Refused);
                }
            },
            Command::Stop { id, fade_frames } => {
                if let Some(v) = self.voices.iter_mut().flatten().find(|v| v.id == id) {
                    v.stop(fade_frames);
                }
            }
            Command::StopAll { fade_frames } => {
                self.voices
                    .iter_mut()
                    .flatten()
                    .for_each(|v| v.stop(fade_frames));
            }
            Command::SetGain { id, gain } => {
                if let Some(v) = self.voices.iter_mut().flatten().find(|v| v.id == id) {
                    v.set_gain(gain);
                }
            }
        }
    }

    fn give_back(&mut self, voice: Box<Voice>, reason: EndReason) {
        let returned = Returned { voice, reason };
        if let Err(rtrb::PushError::Full(r)) = self.rings.returns.push(returned) {
            if self.pending_returns.len() < self.pending_returns.capacity() {
                self.pending_returns.push(r);
            } else {
                // Unreachable while the control side keeps its in-flight bound; leaking
                // is the only option that neither frees nor allocates here.
                std::mem::forget(r);
            }
        }
    }

    fn flush_pending_returns(&mut self) {
        while let Some(r) = self.pending_returns.pop() {
            if let Err(rtrb::PushError::Full(r)) = self.rings.returns.push(r) {
                self.pending_returns.push(r);
                break;
            }
        }
    }
}
