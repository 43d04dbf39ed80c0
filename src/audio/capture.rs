//! The capture processor: runs inside the input callback and copies what the device
//! captured into every attached tap ring.
//!
//! Taps are attached and detached through a command ring and handed back through a
//! return ring, so the callback never allocates or frees. A tap whose ring is full
//! loses that block (counted), never blocks the callback. Input the device lost (see
//! [`super::gaps`]) is filled with silence in the taps that ask for it, and a fill
//! that proved premature is taken back from what follows, so that their sample count
//! keeps the device's time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::gaps::GapDetector;
use super::stats::EngineStats;
use crate::dsp::LevelMeter;

/// Most taps one input stream feeds at once.
pub const MAX_TAPS: usize = 8;

/// One consumer's ring, as seen by the callback.
pub struct TapSink {
    /// Identifies the tap for detaching.
    pub id: u64,
    /// Where captured samples go.
    pub ring: rtrb::Producer<f32>,
    /// Channels per frame in `ring`; the processor maps the device's frames to it.
    pub channels: usize,
    /// Samples dropped because the ring was full.
    pub dropped: Arc<AtomicU64>,
    /// What the tap gets where the device lost input.
    pub lost: LostInput,
}

/// What a tap gets where the device lost input (see [`super::gaps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostInput {
    /// Silence as long as what was lost: the tap's sample count keeps the device's
    /// time (a recording's length, a call's packet timestamps).
    Silence,
    /// Nothing: the tap has only what arrived. For a monitor clocked by the output,
    /// which already starved when the input went missing: silence after it would
    /// only make it deeper, to be skipped again.
    Nothing,
}

/// Control side → capture processor.
pub enum TapCommand {
    /// Start feeding a tap.
    Attach(Box<TapSink>),
    /// Stop feeding a tap; it comes back through the return ring.
    Detach(u64),
}

/// The capture processor.
pub struct InputProcessor {
    channels: usize,
    taps: [Option<Box<TapSink>>; MAX_TAPS],
    commands: rtrb::Consumer<TapCommand>,
    returns: rtrb::Producer<Box<TapSink>>,
    meter: LevelMeter,
    stats: Arc<EngineStats>,
    gaps: GapDetector,
    /// Frames still to drop from what follows, in the taps that keep time: a fill
    /// taken back (see [`super::gaps`]).
    to_drop: usize,
}

impl InputProcessor {
    /// A processor for `channels` interleaved channels at `rate` frames a second.
    pub fn new(
        channels: u16,
        rate: u32,
        commands: rtrb::Consumer<TapCommand>,
        returns: rtrb::Producer<Box<TapSink>>,
        stats: Arc<EngineStats>,
    ) -> Self {
        Self {
            channels: usize::from(channels.max(1)),
            taps: Default::default(),
            commands,
            returns,
            meter: LevelMeter::default(),
            stats,
            gaps: GapDetector::new(rate),
            to_drop: 0,
        }
    }

    /// A new stream feeds the processor: its capture times start a new timeline.
    pub fn new_stream(&mut self) {
        self.gaps.reset();
        self.to_drop = 0;
    }

    /// Interleaved channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// A block of `frames` frames is about to be handed over, captured at
    /// `captured_ns` (the device's stamp, on any clock the stream keeps to): fills
    /// the taps with silence for what the device lost before it. Called before the
    /// block's [`Self::process`] by a stream that stamps its blocks.
    pub fn captured(&mut self, captured_ns: u64, frames: usize) {
        let c = self.gaps.observe(captured_ns, frames);
        if c.fill > 0 {
            self.fill(c.fill as usize);
        }
        if c.drop > 0 {
            self.stats
                .input_taken_back
                .fetch_add(c.drop, Ordering::Relaxed);
            self.to_drop = self.to_drop.saturating_add(c.drop as usize);
        }
    }

    /// Handles one captured block (interleaved f32).
    pub fn process(&mut self, input: &[f32]) {
        while let Ok(cmd) = self.commands.pop() {
            match cmd {
                TapCommand::Attach(tap) => {
                    if let Some(slot) = self.taps.iter_mut().find(|t| t.is_none()) {
                        *slot = Some(tap);
                    } else {
                        // No slot: hand it straight back (the control side reports it).
                        let _ = self.returns.push(tap);
                    }
                }
                TapCommand::Detach(id) => {
                    if let Some(slot) = self
                        .taps
                        .iter_mut()
                        .find(|t| t.as_ref().is_some_and(|t| t.id == id))
                        && let Some(tap) = slot.take()
                    {
                        let _ = self.returns.push(tap);
                    }
                }
            }
        }
        let in_ch = self.channels;
        let frames = input.len() / in_ch;
        let dropped = self.to_drop.min(frames);
        self.to_drop -= dropped;
        for tap in self.taps.iter_mut().flatten() {
            let out_ch = tap.channels.max(1);
            let input = match tap.lost {
                LostInput::Silence => &input[dropped * in_ch..],
                LostInput::Nothing => input,
            };
            let n = input.len() / in_ch * out_ch;
            if out_ch == in_ch {
                tap.write(n, input.iter().copied(), &self.stats);
            } else {
                tap.write(n, remap(input, in_ch, out_ch), &self.stats);
            }
        }
        self.meter.add(input);
        let (peak, rms) = self.meter.take();
        self.stats.in_peak.store(peak);
        self.stats.in_rms.store(rms);
        self.stats.input_callbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Puts `frames` frames of silence in every tap, where the device lost input.
    fn fill(&mut self, frames: usize) {
        self.stats.input_losses.fetch_add(1, Ordering::Relaxed);
        self.stats
            .input_filled
            .fetch_add(frames as u64, Ordering::Relaxed);
        for tap in self.taps.iter_mut().flatten() {
            if tap.lost == LostInput::Silence {
                let n = frames * tap.channels.max(1);
                tap.write(n, std::iter::repeat(0.0), &self.stats);
            }
        }
    }
}

impl TapSink {
    /// Writes `n` samples from `samples` when they all fit; otherwise none, counted
    /// as dropped.
    fn write(&mut self, n: usize, samples: impl Iterator<Item = f32>, stats: &EngineStats) {
        if self.ring.slots() >= n
            && let Ok(chunk) = self.ring.write_chunk_uninit(n)
        {
            chunk.fill_from_iter(samples);
        } else {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            stats.input_dropped.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Interleaved `input` (`in_ch` wide) as `out_ch`-wide frames: a mono source is spread
/// to every channel, a mono destination is the average, otherwise the first channels
/// are kept and missing ones are silent. An iterator, so nothing is allocated.
fn remap(input: &[f32], in_ch: usize, out_ch: usize) -> impl Iterator<Item = f32> + '_ {
    let inv = 1.0 / in_ch as f32;
    input.chunks_exact(in_ch).flat_map(move |frame| {
        (0..out_ch).map(move |c| {
            if in_ch == 1 {
                frame[0]
            } else if out_ch == 1 {
                frame.iter().sum::<f32>() * inv
            } else {
                frame.get(c).copied().unwrap_or(0.0)
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::remap;

    #[test]
    fn remap_spreads_mono_averages_to_mono_and_keeps_the_first_channels() {
        let mono = [0.5, -0.25];
        assert_eq!(
            remap(&mono, 1, 2).collect::<Vec<_>>(),
            [0.5, 0.5, -0.25, -0.25]
        );
        let stereo = [1.0, 0.0, 0.5, 0.5];
        assert_eq!(remap(&stereo, 2, 1).collect::<Vec<_>>(), [0.5, 0.5]);
        let quad = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(remap(&quad, 4, 2).collect::<Vec<_>>(), [1.0, 2.0]);
        assert_eq!(
            remap(&stereo[..2], 2, 3).collect::<Vec<_>>(),
            [1.0, 0.0, 0.0]
        );
    }
}
