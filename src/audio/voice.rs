//! A playing sound on the audio thread: its samples, position, gain and fade state.
//!
//! A `Voice` is built on a control thread, sent boxed to the mixer through a ring,
//! rendered there, and sent back boxed to be dropped on a control thread. Rendering
//! never allocates, frees, locks or blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Identifies one playing voice for the life of an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VoiceId(pub u64);

/// Where a voice's samples come from. Samples are interleaved, already at the engine's
/// sample rate and channel count.
pub enum VoiceSource {
    /// A whole sound held in memory, shared (never freed on the audio thread).
    Buffer(Arc<[f32]>),
    /// Samples streamed by a worker thread through a ring; `done` is set by the
    /// producer once it has pushed the last sample.
    Stream {
        /// The consumer end of the worker's ring.
        ring: rtrb::Consumer<f32>,
        /// Set once the producer will push nothing more.
        done: Arc<AtomicBool>,
        /// Jitter margin: after running dry (and before the first sample), stay
        /// silent until this many samples are queued. 0 resumes at once.
        refill: usize,
        /// Bound on the queue for live sources whose clock drifts from the output's:
        /// when more than this many samples are queued, the oldest are skipped down
        /// to `refill`, so the delay never grows. 0 never skips (files).
        max_fill: usize,
    },
}

/// Why a voice came back from the mixer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// It played to its end.
    Finished,
    /// It was stopped (and faded out).
    Stopped,
    /// The mixer had no free voice slot.
    Refused,
}

/// How a stop fades: the number of frames to reach silence.
#[derive(Debug, Clone, Copy)]
struct Fade {
    remaining: u32,
    total: u32,
}

/// One sound being played.
pub struct Voice {
    pub(crate) id: VoiceId,
    source: VoiceSource,
    /// Read position in samples (interleaved) for buffer sources.
    pos: usize,
    gain: f32,
    target_gain: f32,
    fade: Option<Fade>,
    /// Engine frame at which to start, for sample-accurate scheduling.
    pub(crate) start_frame: Option<u64>,
    pub(crate) trigger: Instant,
    pub(crate) started: bool,
    /// Frames rendered so far.
    pub(crate) frames_played: u64,
    /// Blocks in which a stream source had fewer samples than needed.
    pub(crate) starved_blocks: u32,
    /// A stream source is waiting for its jitter margin to fill.
    refilling: bool,
    /// Samples a live stream skipped to keep its delay bounded.
    pub(crate) skipped: u64,
}

impl Voice {
    /// A voice for `source` at linear `gain`, triggered now.
    pub fn new(id: VoiceId, mut source: VoiceSource, gain: f32) -> Self {
        // A bound below the margin would make the skip below it underflow: the bound
        // is at least the margin, checked here, off the audio thread.
        if let VoiceSource::Stream {
            refill, max_fill, ..
        } = &mut source
            && *max_fill > 0
        {
            *max_fill = (*max_fill).max(*refill);
        }
        let refilling = matches!(&source, VoiceSource::Stream { refill, .. } if *refill > 0);
        Self {
            id,
            source,
            pos: 0,
            gain,
            target_gain: gain,
            fade: None,
            start_frame: None,
            trigger: Instant::now(),
            started: false,
            frames_played: 0,
            starved_blocks: 0,
            refilling,
            skipped: 0,
        }
    }

    /// Schedules the first sample at an absolute engine frame.
    pub fn start_at(mut self, frame: u64) -> Self {
        self.start_frame = Some(frame);
        self
    }

    /// Measures the trigger latency from `at` (when the play was asked for) instead
    /// of from the voice's creation.
    pub fn triggered_at(mut self, at: Instant) -> Self {
        self.trigger = self.trigger.min(at);
        self
    }

    /// This voice's id.
    pub fn id(&self) -> VoiceId {
        self.id
    }

    /// Frames this voice has rendered.
    pub fn frames_played(&self) -> u64 {
        self.frames_played
    }

    /// Blocks in which the stream feeding this voice ran dry.
    pub fn starved_blocks(&self) -> u32 {
        self.starved_blocks
    }

    /// Samples a live stream skipped to keep its delay bounded.
    pub fn skipped_samples(&self) -> u64 {
        self.skipped
    }

    /// When the play command was issued.
    pub fn trigger(&self) -> Instant {
        self.trigger
    }

    pub(crate) fn set_gain(&mut self, gain: f32) {
        self.target_gain = gain.max(0.0);
    }

    /// Starts a fade to silence over `frames` frames; an ongoing shorter fade is kept.
    pub(crate) fn stop(&mut self, frames: u32) {
        let frames = frames.max(1);
        match self.fade {
            Some(f) if f.remaining <= frames => {}
            _ => {
                self.fade = Some(Fade {
                    remaining: frames,
                    total: frames,
                })
            }
        }
    }

    /// Whether a stop has been requested.
    pub(crate) fn is_stopping(&self) -> bool {
        self.fade.is_some()
    }

    /// Adds this voice into `out` (interleaved, `channels` wide) from frame `offset`.
    /// Returns `true` when the voice has ended (source exhausted or fade complete).
    pub(crate) fn render_into(&mut self, out: &mut [f32], channels: usize, offset: usize) -> bool {
        let frames = out.len() / channels;
        if offset >= frames {
            return false;
        }
        let out = &mut out[offset * channels..];
        let frames = frames - offset;
        let g0 = self.gain;
        let g_step = (self.target_gain - g0) / frames as f32;
        let steady = self.fade.is_none() && self.target_gain == g0;
        let mut fade = self.fade;
        let mut frame_gain = |f: usize| -> f32 {
            let mut g = g0 + g_step * (f + 1) as f32;
            if let Some(fd) = fade.as_mut() {
                if fd.remaining == 0 {
                    return 0.0;
                }
                g *= fd.remaining as f32 / fd.total as f32;
                fd.remaining -= 1;
            }
            g
        };
        let (rendered, exhausted) = match &mut self.source {
            VoiceSource::Buffer(data) => {
                let available = (data.len() - self.pos.min(data.len())) / channels;
                let n = available.min(frames);
                let src = &data[self.pos..self.pos + n * channels];
                if steady {
                    // Constant gain, no fade: a plain multiply-add the compiler vectorises.
                    for (o, s) in out.iter_mut().zip(src) {
                        *o += s * g0;
                    }
                } else {
                    for (f, (o, s)) in out
                        .chunks_exact_mut(channels)
                        .zip(src.chunks_exact(channels))
                        .enumerate()
                    {
                        let g = frame_gain(f);
                        for (o, s) in o.iter_mut().zip(s) {
                            *o += s * g;
                        }
                    }
                }
                self.pos += n * channels;
                (n, n < frames || self.pos >= data.len())
            }
            VoiceSource::Stream {
                ring,
                done,
                refill,
                max_fill,
            } => {
                // Read whole frames only; check `done` before reading so a final push is not missed.
                let finished = done.load(Ordering::Acquire);
                let want = frames * channels;
                let mut have = ring.slots() / channels * channels;
                if *max_fill > 0 && have > *max_fill {
                    // Drift or a burst: drop the oldest audio down to the margin.
                    // `have > max_fill >= refill` (see `Voice::new`); `want` may still
                    // exceed `have`, so the difference saturates rather than wraps.
                    let skip = have.saturating_sub((*refill).max(want)) / channels * channels;
                    if let Ok(chunk) = ring.read_chunk(skip) {
                        chunk.commit_all();
                        have -= skip;
                        self.skipped += skip as u64;
                    }
                }
                if self.refilling {
                    if have >= *refill || finished {
                        self.refilling = false;
                    } else {
                        have = 0;
                    }
                }
                let take = have.min(want);
                if let Ok(chunk) = ring.read_chunk(take) {
                    let (a, b) = chunk.as_slices();
                    let mut f = 0usize;
                    let mut ch = 0usize;
                    let mut g = 0.0f32;
                    for (o, s) in out[..take].iter_mut().zip(a.iter().chain(b.iter())) {
                        if ch == 0 {
                            g = frame_gain(f);
                        }
                        *o += s * g;
                        ch += 1;
                        if ch == channels {
                            ch = 0;
                            f += 1;
                        }
                    }
                    chunk.commit_all();
                }
                let rendered = take / channels;
                let mut exhausted = false;
                if rendered < frames {
                    if finished && ring.is_empty() {
                        exhausted = true;
                    } else if self.frames_played > 0 || rendered > 0 {
                        // Running dry after it began (waiting for the first samples is
                        // not starving).
                        self.starved_blocks = self.starved_blocks.saturating_add(1);
                        self.refilling = *refill > 0;
                    } else {
                        self.refilling = *refill > 0;
                    }
                }
                (rendered, exhausted)
            }
        };
        self.gain = if rendered == frames {
            self.target_gain
        } else {
            g0 + g_step * rendered as f32
        };
        if let Some(fd) = self.fade.as_mut() {
            let used = rendered as u32;
            fd.remaining = fd.remaining.saturating_sub(used);
        }
        self.frames_played += rendered as u64;
        exhausted || self.fade.is_some_and(|f| f.remaining == 0)
    }
}
