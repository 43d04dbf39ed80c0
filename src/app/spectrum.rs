//! The live spectrum behind a spectrogram: a worker thread reads a ring of interleaved
//! samples (the engine's mix tap or an input tap), downmixes it to mono, runs a
//! [`SpectrumAnalyser`] at a bounded frame rate and keeps the latest frames for a UI to
//! take.
//!
//! The worker only reads rings the engine fills, so it can never block or slow the
//! audio thread; it sleeps when there is nothing to read, never spins, and holds its
//! locks only to copy samples out of the ring or a frame into the history. Frames are
//! dBFS per linear FFT bin (see [`crate::dsp::spectrum`] for the calibration); mapping
//! them to display bands is left to the UI with [`crate::dsp::LogBands`], so a resize
//! or a new frequency range can remap the whole history at once and the worker never
//! needs to hear about either.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audio::{InputTap, TapGuard};
use crate::dsp::SpectrumAnalyser;
use crate::guard::lock;

/// The default FFT size: 23 Hz bins and 43 ms windows at 48 kHz.
pub const DEFAULT_FFT_SIZE: usize = 2048;
/// The default number of frames per second of audio.
pub const DEFAULT_FRAME_RATE: f32 = 30.0;
/// The highest frame rate accepted; higher requests are lowered to it.
pub const MAX_FRAME_RATE: f32 = 40.0;
/// The lowest frame rate accepted; lower requests are raised to it.
pub const MIN_FRAME_RATE: f32 = 1.0;
/// The default number of frames kept.
pub const DEFAULT_HISTORY: usize = 256;

/// How often the worker looks at its ring when it has a source.
const POLL: Duration = Duration::from_millis(10);
/// How long the worker sleeps without a source (a new one wakes it at once).
const IDLE: Duration = Duration::from_millis(250);
/// Frames (per channel) read from the ring at a time.
const CHUNK_FRAMES: usize = 4096;
/// The most channels a source may have; more are read as this many.
const MAX_CHANNELS: usize = 64;

/// What the worker analyses: a ring of interleaved samples, its channel count and
/// sample rate, and for an input tap the guard that keeps it attached.
pub struct SpectrumSource {
    ring: rtrb::Consumer<f32>,
    channels: usize,
    sample_rate: u32,
    guard: Option<TapGuard>,
}

impl std::fmt::Debug for SpectrumSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrumSource")
            .field("channels", &self.channels)
            .field("sample_rate", &self.sample_rate)
            .field("input_tap", &self.guard.is_some())
            .finish_non_exhaustive()
    }
}

impl SpectrumSource {
    /// A ring of interleaved frames of `channels` samples (at least 1) at
    /// `sample_rate`, such as [`crate::audio::Engine::take_mix_tap`] with the engine's
    /// [`crate::audio::Engine::format`].
    pub fn new(ring: rtrb::Consumer<f32>, channels: u16, sample_rate: u32) -> Self {
        Self {
            ring,
            channels: usize::from(channels).clamp(1, MAX_CHANNELS),
            sample_rate: sample_rate.max(1),
            guard: None,
        }
    }

    /// An input tap, kept attached for as long as this source lives.
    pub fn from_input(tap: InputTap) -> Self {
        let format = tap.format;
        let (ring, guard) = tap.into_parts();
        Self {
            guard: Some(guard),
            ..Self::new(ring, format.channels, format.sample_rate)
        }
    }

    /// Channels per frame.
    pub fn channels(&self) -> u16 {
        self.channels as u16
    }

    /// Frames per second.
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// The ring back, and the input tap's guard if it is one (dropping the guard
    /// detaches the tap).
    pub fn into_parts(self) -> (rtrb::Consumer<f32>, Option<TapGuard>) {
        (self.ring, self.guard)
    }

    /// Discards what the ring holds, in whole frames, so analysis starts from now.
    fn skip_stale(&mut self) {
        let n = self.ring.slots() / self.channels * self.channels;
        if let Ok(chunk) = self.ring.read_chunk(n) {
            chunk.commit_all();
        }
    }
}

/// How the worker analyses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpectrumConfig {
    /// FFT points (see [`crate::dsp::spectrum::effective_fft_size`]).
    pub fft_size: usize,
    /// Frames per second of audio, within [`MIN_FRAME_RATE`]..=[`MAX_FRAME_RATE`].
    pub frame_rate: f32,
    /// Frames kept for the UI (at least 1).
    pub history: usize,
}

impl Default for SpectrumConfig {
    fn default() -> Self {
        Self {
            fft_size: DEFAULT_FFT_SIZE,
            frame_rate: DEFAULT_FRAME_RATE,
            history: DEFAULT_HISTORY,
        }
    }
}

/// One analysed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectrumFrame {
    /// Position in the stream of frames: consecutive frames have consecutive numbers.
    pub seq: u64,
    /// The source's sample rate; with `fft_size` what a [`crate::dsp::LogBands`] needs.
    pub sample_rate: u32,
    /// The FFT size.
    pub fft_size: usize,
    /// dBFS per bin (`fft_size / 2 + 1` of them, bin `k` at `k · sample_rate /
    /// fft_size` Hz), within [`crate::dsp::spectrum::FLOOR_DB`]..=
    /// [`crate::dsp::spectrum::MAX_DB`].
    pub db: Arc<[f32]>,
}

struct Slot {
    source: Option<SpectrumSource>,
    /// Counts source changes, so the worker notices one.
    generation: u64,
}

struct History {
    frames: VecDeque<SpectrumFrame>,
    capacity: usize,
    next_seq: u64,
}

impl History {
    fn publish(&mut self, sample_rate: u32, fft_size: usize, db: &[f32]) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let old = if self.frames.len() >= self.capacity {
            self.frames.pop_front()
        } else {
            None
        };
        // Reuse the oldest frame's buffer unless the UI still holds it.
        let db = match old {
            Some(mut f) if f.db.len() == db.len() => match Arc::get_mut(&mut f.db) {
                Some(buf) => {
                    buf.copy_from_slice(db);
                    f.db
                }
                None => Arc::from(db),
            },
            _ => Arc::from(db),
        };
        self.frames.push_back(SpectrumFrame {
            seq,
            sample_rate,
            fft_size,
            db,
        });
    }
}

struct Shared {
    slot: Mutex<Slot>,
    history: Mutex<History>,
    /// The requested frame rate, as f32 bits.
    frame_rate: AtomicU32,
    stop: AtomicBool,
}

/// A running spectrum worker; dropping it stops the thread and waits for it.
pub struct SpectrumWorker {
    shared: Arc<Shared>,
    fft_size: usize,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SpectrumWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpectrumWorker")
            .field("fft_size", &self.fft_size)
            .field("frame_rate", &self.frame_rate())
            .finish_non_exhaustive()
    }
}

fn clamp_rate(fps: f32) -> f32 {
    if fps.is_finite() {
        fps.clamp(MIN_FRAME_RATE, MAX_FRAME_RATE)
    } else {
        DEFAULT_FRAME_RATE
    }
}

impl SpectrumWorker {
    /// Starts the worker on `source` (or none yet: it then sleeps until one is set).
    pub fn start(
        config: SpectrumConfig,
        source: Option<SpectrumSource>,
    ) -> std::io::Result<SpectrumWorker> {
        let fft_size = crate::dsp::spectrum::effective_fft_size(config.fft_size);
        let capacity = config.history.max(1);
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                source: source.map(|mut s| {
                    s.skip_stale();
                    s
                }),
                generation: 0,
            }),
            history: Mutex::new(History {
                frames: VecDeque::with_capacity(capacity),
                capacity,
                next_seq: 0,
            }),
            frame_rate: AtomicU32::new(clamp_rate(config.frame_rate).to_bits()),
            stop: AtomicBool::new(false),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("jhack-spectrum".into())
            .spawn(move || run(&worker, fft_size))?;
        Ok(SpectrumWorker {
            shared,
            fft_size,
            thread: Some(thread),
        })
    }

    /// Analyses `source` from now on (what its ring holds already is skipped), or
    /// nothing; returns the previous source, so a mix tap can be switched back to.
    /// The analysis restarts from silence.
    pub fn set_source(&self, source: Option<SpectrumSource>) -> Option<SpectrumSource> {
        let old = {
            let mut slot = lock(&self.shared.slot);
            slot.generation += 1;
            std::mem::replace(
                &mut slot.source,
                source.map(|mut s| {
                    s.skip_stale();
                    s
                }),
            )
        };
        self.wake();
        old
    }

    /// Sets the frames per second of audio (clamped to
    /// [`MIN_FRAME_RATE`]..=[`MAX_FRAME_RATE`]); takes effect within a poll.
    pub fn set_frame_rate(&self, frames_per_second: f32) {
        self.shared
            .frame_rate
            .store(clamp_rate(frames_per_second).to_bits(), Ordering::Relaxed);
    }

    /// The requested frames per second (the hop is this rounded to whole samples).
    pub fn frame_rate(&self) -> f32 {
        f32::from_bits(self.shared.frame_rate.load(Ordering::Relaxed))
    }

    /// The FFT size in use.
    pub fn fft_size(&self) -> usize {
        self.fft_size
    }

    /// The current source's channels and sample rate, if there is one.
    pub fn source_format(&self) -> Option<(u16, u32)> {
        lock(&self.shared.slot)
            .source
            .as_ref()
            .map(|s| (s.channels(), s.sample_rate()))
    }

    /// Appends to `out` the kept frames numbered `seq` or later, oldest first, and
    /// returns the number to ask from next time. Frames older than the history are
    /// gone (the first one appended then has a larger number than `seq`). Only clones
    /// `Arc`s under the lock, so it never holds up the worker.
    pub fn frames_since(&self, seq: u64, out: &mut Vec<SpectrumFrame>) -> u64 {
        let h = lock(&self.shared.history);
        let first = h.frames.front().map_or(h.next_seq, |f| f.seq);
        let skip = seq.saturating_sub(first).min(h.frames.len() as u64) as usize;
        out.extend(h.frames.range(skip..).cloned());
        h.next_seq
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<SpectrumFrame> {
        lock(&self.shared.history).frames.back().cloned()
    }

    /// The number the next frame will have.
    pub fn next_seq(&self) -> u64 {
        lock(&self.shared.history).next_seq
    }

    fn wake(&self) {
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for SpectrumWorker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, fft_size: usize) {
    let mut analyser: Option<SpectrumAnalyser> = None;
    let mut generation = u64::MAX;
    let mut rate_bits = 0u32;
    let mut interleaved = vec![0.0f32; CHUNK_FRAMES * MAX_CHANNELS];
    let mut mono = vec![0.0f32; CHUNK_FRAMES];
    while !shared.stop.load(Ordering::Acquire) {
        let (frames, channels, sample_rate) = {
            let mut slot = lock(&shared.slot);
            if slot.generation != generation {
                generation = slot.generation;
                analyser = None;
            }
            match slot.source.as_mut() {
                None => (None, 1, 0),
                Some(src) => {
                    let ch = src.channels;
                    let n = (src.ring.slots() / ch).min(CHUNK_FRAMES) * ch;
                    let frames = src.ring.read_chunk(n).ok().map(|chunk| {
                        let (a, b) = chunk.as_slices();
                        interleaved[..a.len()].copy_from_slice(a);
                        interleaved[a.len()..a.len() + b.len()].copy_from_slice(b);
                        chunk.commit_all();
                        n / ch
                    });
                    (frames, ch, src.sample_rate)
                }
            }
        };
        let Some(frames) = frames else {
            std::thread::park_timeout(IDLE);
            continue;
        };
        let bits = shared.frame_rate.load(Ordering::Relaxed);
        let a = analyser.get_or_insert_with(|| {
            rate_bits = 0;
            SpectrumAnalyser::new(sample_rate, fft_size)
        });
        if bits != rate_bits {
            rate_bits = bits;
            a.set_frame_rate(f32::from_bits(bits));
        }
        for (m, frame) in mono[..frames]
            .iter_mut()
            .zip(interleaved.chunks_exact(channels))
        {
            *m = frame.iter().sum::<f32>() / channels as f32;
        }
        a.push_with(&mono[..frames], |db| {
            lock(&shared.history).publish(sample_rate, fft_size, db);
        });
        if frames < CHUNK_FRAMES {
            std::thread::park_timeout(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::LogBands;
    use std::time::Instant;

    /// Feeds `ring` with a sine of `freq` in `channels` channels at `rate`, in 10 ms
    /// blocks at about real time, until `stop`.
    fn feeder(
        mut ring: rtrb::Producer<f32>,
        freq: f32,
        channels: usize,
        rate: u32,
        stop: Arc<AtomicBool>,
    ) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let mut i = 0u64;
            let block = rate as usize / 100;
            while !stop.load(Ordering::Relaxed) {
                if ring.slots() >= block * channels {
                    for _ in 0..block {
                        let t = i as f64 / f64::from(rate);
                        let s = 0.5 * (2.0 * std::f64::consts::PI * f64::from(freq) * t).sin();
                        for _ in 0..channels {
                            let _ = ring.push(s as f32);
                        }
                        i += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    }

    /// Waits up to 5 s for `n` frames from `seq` on that satisfy `ok`.
    fn wait_frames(
        w: &SpectrumWorker,
        mut seq: u64,
        n: usize,
        ok: impl Fn(&SpectrumFrame) -> bool,
    ) -> Vec<SpectrumFrame> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = Vec::new();
        while Instant::now() < deadline {
            let mut fresh = Vec::new();
            seq = w.frames_since(seq, &mut fresh);
            got.extend(fresh.into_iter().filter(&ok));
            if got.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        got
    }

    fn peak_band(frame: &SpectrumFrame, bands: &LogBands) -> (usize, f32) {
        let mut out = vec![0.0; bands.bands()];
        bands.map(&frame.db, &mut out);
        let i = (0..out.len())
            .max_by(|&a, &b| out[a].total_cmp(&out[b]))
            .unwrap_or(0);
        (i, out[i])
    }

    #[test]
    fn a_sine_shows_in_its_band_and_drop_joins() {
        let (tx, rx) = rtrb::RingBuffer::new(48_000);
        let stop = Arc::new(AtomicBool::new(false));
        let feed = feeder(tx, 2000.0, 2, 48_000, stop.clone());
        let w = SpectrumWorker::start(
            SpectrumConfig::default(),
            Some(SpectrumSource::new(rx, 2, 48_000)),
        )
        .unwrap();
        assert_eq!(w.source_format(), Some((2, 48_000)));
        // Skip the first frames: the window starts from silence.
        let frames = wait_frames(&w, 3, 10, |_| true);
        assert_eq!(frames.len(), 10);
        assert!(frames.windows(2).all(|p| p[1].seq == p[0].seq + 1));
        let bands = LogBands::new(64, 20.0, 20_000.0, 48_000, DEFAULT_FFT_SIZE);
        for f in &frames {
            assert_eq!(
                (f.sample_rate, f.fft_size, f.db.len()),
                (48_000, 2048, 1025)
            );
            let (band, level) = peak_band(f, &bands);
            assert_eq!(band, bands.band_of(2000.0).unwrap());
            assert!((level + 6.02).abs() < 1.0, "{level}");
        }
        let latest = w.latest().unwrap();
        assert!(latest.seq + 1 >= w.next_seq());
        stop.store(true, Ordering::Relaxed);
        feed.join().unwrap();

        // Dropping joins the thread: the ring's consumer is gone when drop returns.
        let (tx, rx) = rtrb::RingBuffer::<f32>::new(1024);
        let w2 = SpectrumWorker::start(
            SpectrumConfig::default(),
            Some(SpectrumSource::new(rx, 1, 48_000)),
        )
        .unwrap();
        drop(w);
        let t = Instant::now();
        drop(w2);
        assert!(tx.is_abandoned());
        assert!(t.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn switching_sources_hands_back_the_old_one() {
        let (tx_a, rx_a) = rtrb::RingBuffer::new(48_000);
        let (tx_b, rx_b) = rtrb::RingBuffer::new(44_100);
        let stop = Arc::new(AtomicBool::new(false));
        let feeds = [
            feeder(tx_a, 2000.0, 2, 48_000, stop.clone()),
            feeder(tx_b, 5000.0, 1, 44_100, stop.clone()),
        ];
        let config = SpectrumConfig {
            frame_rate: 1000.0,
            history: 8,
            ..SpectrumConfig::default()
        };
        let w = SpectrumWorker::start(config, None).unwrap();
        assert_eq!(w.frame_rate(), MAX_FRAME_RATE);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(w.next_seq(), 0, "no source, no frames");
        assert!(
            w.set_source(Some(SpectrumSource::new(rx_a, 2, 48_000)))
                .is_none()
        );
        // Frames arrive in batches: at least the three waited for.
        assert!(wait_frames(&w, 0, 3, |f| f.sample_rate == 48_000).len() >= 3);
        let old = w.set_source(Some(SpectrumSource::new(rx_b, 1, 44_100)));
        assert_eq!(
            old.map(|s| (s.channels(), s.sample_rate())),
            Some((2, 48_000))
        );
        let seq = w.next_seq();
        let frames = wait_frames(&w, seq, 6, |f| f.sample_rate == 44_100);
        // Frames arrive in batches: at least the six waited for.
        assert!(frames.len() >= 6, "{} frames", frames.len());
        let bands = LogBands::new(64, 20.0, 20_000.0, 44_100, DEFAULT_FFT_SIZE);
        let (band, _) = peak_band(&frames[5], &bands);
        assert_eq!(band, bands.band_of(5000.0).unwrap());
        // Only the last `history` frames are kept.
        std::thread::sleep(Duration::from_millis(400));
        let mut all = Vec::new();
        let next = w.frames_since(0, &mut all);
        assert_eq!(all.len(), 8);
        assert_eq!(next, all[7].seq + 1);
        // Asking from beyond the end gives nothing.
        let mut none = Vec::new();
        w.frames_since(u64::MAX, &mut none);
        assert!(none.is_empty());
        assert!(w.set_source(None).is_some());
        assert_eq!(w.source_format(), None);
        stop.store(true, Ordering::Relaxed);
        for f in feeds {
            f.join().unwrap();
        }
    }

    #[test]
    fn the_history_reuses_buffers_the_ui_let_go() {
        let mut h = History {
            frames: VecDeque::new(),
            capacity: 2,
            next_seq: 0,
        };
        h.publish(48_000, 16, &[1.0; 9]);
        h.publish(48_000, 16, &[2.0; 9]);
        let first = Arc::as_ptr(&h.frames[0].db);
        h.publish(48_000, 16, &[3.0; 9]);
        assert_eq!(Arc::as_ptr(&h.frames[1].db), first);
        assert_eq!(h.frames[1].db[0], 3.0);
        let held = h.frames[0].clone();
        h.publish(48_000, 16, &[4.0; 9]);
        assert_eq!(held.db[0], 2.0);
        assert_eq!(h.frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [2, 3]);
    }
}
