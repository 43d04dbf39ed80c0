//! The monitor: input routed to the output with as little delay as the periods allow.
//!
//! A worker thread moves captured audio through a converter (rate and channels) into a
//! streamed voice. The two devices' clocks drift; the worker keeps the voice's queue
//! near its target by dropping the excess, so the delay never grows.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audio::{BLOCK_FRAMES, Engine, PlayOptions, VoiceId, VoiceSource};
use crate::media::Converter;

use super::player::PlayError;

const POLL: Duration = Duration::from_millis(1);

/// A running monitor.
pub struct Wire {
    /// The output voice.
    pub id: VoiceId,
    stop: Arc<AtomicBool>,
    /// Samples dropped to keep the delay bounded.
    pub trimmed: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Wire {
    /// Starts monitoring the engine's input on its output.
    pub fn start(engine: &Engine) -> Result<Wire, PlayError> {
        let mut tap = engine.open_input(0.5)?;
        let out_fmt = engine.format();
        let mut converter = Converter::low_latency(tap.format, out_fmt)?;
        let ch = usize::from(out_fmt.channels.max(1));
        let info = engine.info();
        let period = info.output.period_frames.unwrap_or(256) as usize;
        let in_period = info
            .input
            .and_then(|i| i.period_frames)
            .map_or(period, |p| p as usize);
        // Jitter margin: one period of each device plus a mixer block, so an input
        // callback always lands before the output needs it. The queue may grow two
        // periods past that (clock drift, scheduling) before the excess is dropped.
        let margin = in_period + period + BLOCK_FRAMES;
        let refill = margin * ch;
        let max_fill = (margin + 2 * in_period.max(period)) * ch;
        let ring_len = max_fill * 2;
        let (mut tx, rx) = rtrb::RingBuffer::<f32>::new(ring_len);
        let done = Arc::new(AtomicBool::new(false));
        let source = VoiceSource::Stream {
            ring: rx,
            done: done.clone(),
            refill,
        };
        let id = engine.play(source, PlayOptions::default())?;
        let stop = Arc::new(AtomicBool::new(false));
        let trimmed = Arc::new(AtomicU64::new(0));
        let (stop_w, trimmed_w) = (stop.clone(), trimmed.clone());
        let in_ch = usize::from(tap.format.channels.max(1));
        let thread = std::thread::Builder::new()
            .name("jhack-wire".into())
            .spawn(move || {
                let mut input = Vec::with_capacity(1 << 14);
                let mut output = Vec::with_capacity(1 << 15);
                while !stop_w.load(Ordering::Acquire) {
                    input.clear();
                    let avail = tap.ring.slots() / in_ch * in_ch;
                    if let Ok(chunk) = tap.ring.read_chunk(avail) {
                        let (a, b) = chunk.as_slices();
                        input.extend_from_slice(a);
                        input.extend_from_slice(b);
                        chunk.commit_all();
                    }
                    if input.is_empty() {
                        std::thread::sleep(POLL);
                        continue;
                    }
                    output.clear();
                    converter.process(&input, &mut output);
                    let fill = ring_len - tx.slots();
                    let room = max_fill.saturating_sub(fill) / ch * ch;
                    let n = output.len().min(room);
                    if n < output.len() {
                        trimmed_w.fetch_add((output.len() - n) as u64, Ordering::Relaxed);
                    }
                    // Keep the newest audio: the excess is the oldest part of this block.
                    let start = output.len() - n;
                    if let Ok(chunk) = tx.write_chunk_uninit(n) {
                        chunk.fill_from_iter(output[start..].iter().copied());
                    }
                }
                done.store(true, Ordering::Release);
            })
            .map_err(PlayError::Thread)?;
        Ok(Wire {
            id,
            stop,
            trimmed,
            thread: Some(thread),
        })
    }

    /// Stops the monitor; the voice ends once its queue drains.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
