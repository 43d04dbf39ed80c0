//! The monitor: input routed to the output with as little delay as the periods allow.
//!
//! When the input runs at the output's rate (one sound server, or one clock), the
//! capture processor writes frames already in the output's channel layout into a ring
//! that the output voice reads directly: input callback → ring → output callback, no
//! thread in between to be scheduled late. Otherwise a worker converts the rate. In
//! both cases the voice bounds its own queue (skipping the oldest audio when the two
//! clocks drift apart), so the delay never grows. This module never touches samples
//! on the audio thread itself; it only wires rings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audio::{
    BLOCK_FRAMES, Engine, InputTap, LostInput, PlayOptions, TapGuard, VoiceId, VoiceOutcome,
    VoiceSource,
};
use crate::media::Converter;

use super::player::PlayError;

const POLL: Duration = Duration::from_millis(1);
/// Seconds of audio the direct ring can hold (it is never allowed to fill up).
const RING_SECONDS: f64 = 0.5;

/// A running monitor.
pub struct Wire {
    /// The output voice.
    pub id: VoiceId,
    /// Whether input goes straight to the output (no worker, no rate conversion).
    pub direct: bool,
    done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    tap: Option<TapGuard>,
    thread: Option<JoinHandle<()>>,
}

/// The queue bounds of a monitor voice, in samples.
struct Margins {
    refill: usize,
    max_fill: usize,
}

fn margins(engine: &Engine) -> Margins {
    let ch = usize::from(engine.format().channels.max(1));
    let info = engine.info();
    let period = info.output.period_frames.unwrap_or(256) as usize;
    let in_period = info
        .input
        .as_ref()
        .and_then(|i| i.period_frames)
        .map_or(period, |p| p as usize);
    let margin = if info.same_cycle() {
        // Both callbacks run inside the server's graph cycle, the capture (downstream
        // of the microphone) before the playback: a cycle's input is in the ring when
        // that cycle's output reads it, so one input period is all the ring needs. A
        // cycle that runs them the other way round (measured while a client joins the
        // microphone's graph upstream) starves the voice for that period; it refills.
        in_period
    } else {
        // Jitter margin: one period of each device plus a mixer block, so an input
        // callback always lands before the output needs it, whichever of the two the
        // server runs first in a cycle (on a stack whose input and output are two
        // drivers, the voice then waits for a third input period: trimming that block
        // starved the monitor under load).
        in_period + period + BLOCK_FRAMES
    };
    // The queue may grow two periods past the margin (clock drift, scheduling) before
    // the excess is skipped.
    Margins {
        refill: margin * ch,
        max_fill: (margin + 2 * in_period.max(period)) * ch,
    }
}

impl Wire {
    /// Starts monitoring the engine's input on its output.
    pub fn start(engine: &Engine) -> Result<Wire, PlayError> {
        let out = engine.format();
        let same_rate = engine.input_format()?.sample_rate == out.sample_rate;
        let m = margins(engine);
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        if same_rate {
            let (ring, guard) = engine
                .open_input_as(RING_SECONDS, Some(out.channels), LostInput::Nothing)?
                .into_parts();
            let source = VoiceSource::Stream {
                ring,
                done: done.clone(),
                refill: m.refill,
                max_fill: m.max_fill,
            };
            let id = engine.play(source, PlayOptions::default())?;
            return Ok(Wire {
                id,
                direct: true,
                done,
                stop,
                tap: Some(guard),
                thread: None,
            });
        }
        let tap = engine.open_input_as(RING_SECONDS, None, LostInput::Nothing)?;
        let mut converter = Converter::low_latency(tap.format, out)?;
        let (tx, rx) = rtrb::RingBuffer::<f32>::new(m.max_fill * 4);
        let source = VoiceSource::Stream {
            ring: rx,
            done: done.clone(),
            refill: m.refill,
            max_fill: m.max_fill,
        };
        let id = engine.play(source, PlayOptions::default())?;
        let stop_w = stop.clone();
        let thread = std::thread::Builder::new()
            .name("jhack-wire".into())
            .spawn(move || convert_loop(tap, &mut converter, tx, &stop_w))
            .map_err(PlayError::Thread)?;
        Ok(Wire {
            id,
            direct: false,
            done,
            stop,
            tap: None,
            thread: Some(thread),
        })
    }

    /// Stops the monitor and waits (briefly) for its voice to drain; returns what
    /// became of the voice (`skipped_samples` tells how much drift correction cost).
    pub fn stop(mut self, engine: &Engine) -> Option<VoiceOutcome> {
        self.finish();
        engine.wait_ended(self.id, Duration::from_secs(2))
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.tap = None; // detached: nothing more is captured into the ring
        self.done.store(true, Ordering::Release);
    }
}

/// The converting path's worker: tap → converter → voice ring. A full voice ring
/// loses the newest block (the voice is then far past its bound and skipping anyway).
fn convert_loop(
    mut tap: InputTap,
    converter: &mut Converter,
    mut tx: rtrb::Producer<f32>,
    stop: &AtomicBool,
) {
    let mut input = Vec::with_capacity(1 << 14);
    let mut output = Vec::with_capacity(1 << 15);
    while !stop.load(Ordering::Acquire) {
        input.clear();
        if tap.drain_into(&mut input) == 0 {
            std::thread::sleep(POLL);
            continue;
        }
        output.clear();
        converter.process(&input, &mut output);
        if tx.slots() >= output.len()
            && let Ok(chunk) = tx.write_chunk_uninit(output.len())
        {
            chunk.fill_from_iter(output.iter().copied());
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.finish();
    }
}
