//! Recording: a worker thread drains an input tap into a WAV (RF64 past 4 GiB) file.
//!
//! The file is written only here, never in the audio callback. Its header is kept
//! current as it grows, so the file is valid whenever the recording ends — by the
//! duration, by a stop request, or by a crash.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::audio::{Engine, EngineError};
use crate::domain::AudioFormat;
use crate::media::map_channels;
use crate::media::wav::{WavError, WavWriter};

const POLL: Duration = Duration::from_millis(10);

/// Why a recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The input could not be opened.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The file could not be written.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// The writer thread could not start.
    #[error("cannot start the recorder thread")]
    Thread(#[source] std::io::Error),
}

/// The result of a finished recording.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordReport {
    /// The file written.
    pub path: PathBuf,
    /// Format of the file.
    pub format: AudioFormat,
    /// Frames written.
    pub frames: u64,
    /// Input samples lost because the writer fell behind.
    pub dropped: u64,
}

/// A recording in progress.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    format: AudioFormat,
    thread: Option<JoinHandle<Result<RecordReport, RecordError>>>,
}

impl Recorder {
    /// Starts recording the input into `path` with `channels` channels (the device's
    /// own count when `None`), for `duration` or until stopped.
    pub fn start(
        engine: &Engine,
        path: &Path,
        channels: Option<u16>,
        duration: Option<Duration>,
    ) -> Result<Recorder, RecordError> {
        let mut tap = engine.open_input(2.0)?;
        let in_ch = tap.format.channels.max(1);
        let out_ch = channels.unwrap_or(in_ch).max(1);
        let format = AudioFormat::new(tap.format.sample_rate, out_ch);
        let mut writer = WavWriter::create(path, format.sample_rate, out_ch)?;
        let limit =
            duration.map(|d| (d.as_secs_f64() * f64::from(format.sample_rate)).round() as u64);
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(AtomicU64::new(0));
        let (stop_w, frames_w) = (stop.clone(), frames.clone());
        let path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("jhack-record".into())
            .spawn(move || {
                let mut input = Vec::with_capacity(1 << 16);
                let mut mapped = Vec::with_capacity(1 << 16);
                let mut written = 0u64;
                loop {
                    let stopping = stop_w.load(Ordering::Acquire);
                    input.clear();
                    let avail = tap.ring.slots() / usize::from(in_ch) * usize::from(in_ch);
                    if let Ok(chunk) = tap.ring.read_chunk(avail) {
                        let (a, b) = chunk.as_slices();
                        input.extend_from_slice(a);
                        input.extend_from_slice(b);
                        chunk.commit_all();
                    }
                    mapped.clear();
                    map_channels(&input, in_ch, out_ch, &mut mapped);
                    let mut n = mapped.len() / usize::from(out_ch);
                    if let Some(limit) = limit {
                        n = n.min((limit - written) as usize);
                    }
                    writer.write(&mapped[..n * usize::from(out_ch)])?;
                    written += n as u64;
                    frames_w.store(written, Ordering::Relaxed);
                    if stopping || limit.is_some_and(|l| written >= l) {
                        break;
                    }
                    std::thread::sleep(POLL);
                }
                let frames = writer.finalize()?;
                Ok(RecordReport {
                    path,
                    format,
                    frames,
                    dropped: tap.dropped.load(Ordering::Relaxed),
                })
            })
            .map_err(RecordError::Thread)?;
        Ok(Recorder {
            stop,
            frames,
            format,
            thread: Some(thread),
        })
    }

    /// The file's format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Whether the recording has ended (duration reached or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Ends the recording (what is captured so far is kept) and waits for the file.
    pub fn finish(mut self) -> Result<RecordReport, RecordError> {
        self.stop.store(true, Ordering::Release);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            _ => Err(RecordError::Thread(std::io::Error::other(
                "recorder thread ended abnormally",
            ))),
        }
    }
}
