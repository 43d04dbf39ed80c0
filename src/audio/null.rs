//! The silent null backend: a thread that runs the mixer (or the capture processor)
//! paced by the clock, as a device would, and discards the output (or captures
//! silence).
//!
//! Used with `--no-audio` and whenever no device can be opened, so that playback
//! timing, waiting and everything above the engine keep working. Its loop allocates
//! nothing after start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::InputProcessor;
use super::device::StreamInfo;
use super::mixer::{CallbackTiming, Mixer};
use super::stats::EngineStats;
use crate::domain::AudioFormat;

/// Host name the null backend reports.
pub const NULL_HOST: &str = "null";

/// A clock-paced loop that owns a processor until closed.
pub struct NullStream<P> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Box<P>>>,
    /// What it runs with.
    pub info: StreamInfo,
}

/// How the null backend's clock runs: its period, and a speed factor (1.0 is real
/// time; tests run long files faster).
#[derive(Debug, Clone, Copy)]
pub struct NullClock {
    /// Frames per period.
    pub period: u32,
    /// Speed relative to real time.
    pub speed: f64,
}

/// The stream description of a null stream.
pub fn null_info(format: AudioFormat, period: u32, device: &str) -> StreamInfo {
    StreamInfo {
        host: NULL_HOST.into(),
        device: device.into(),
        format,
        sample_format: "f32".into(),
        requested_period: period,
        period_frames: Some(period),
    }
}

fn spawn_paced<P: Send + 'static>(
    name: &str,
    mut processor: Box<P>,
    format: AudioFormat,
    clock: NullClock,
    stats: Arc<EngineStats>,
    mut step: impl FnMut(&mut P, &mut [f32], Instant) + Send + 'static,
) -> (Arc<AtomicBool>, Option<JoinHandle<Box<P>>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let NullClock { period, speed } = clock;
    let samples = period as usize * usize::from(format.channels.max(1));
    let period_d = Duration::from_secs_f64(
        f64::from(period) / f64::from(format.sample_rate.max(1)) / speed.clamp(0.01, 1000.0),
    );
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut buf = vec![0.0f32; samples];
            let mut deadline = Instant::now();
            while !flag.load(Ordering::Acquire) {
                let now = Instant::now();
                step(&mut processor, &mut buf, now);
                deadline += period_d;
                let after = Instant::now();
                if after > deadline + period_d {
                    // Fell more than a period behind (machine stalled): count it and
                    // resynchronise instead of bursting to catch up.
                    stats.xruns.fetch_add(1, Ordering::Relaxed);
                    deadline = after;
                } else if deadline > after {
                    std::thread::sleep(deadline - after);
                }
            }
            processor
        })
        .ok();
    (stop, thread)
}

impl NullStream<Mixer> {
    /// Runs `mixer` on the clock, one period of `period` frames at a time.
    pub fn start_output(mixer: Box<Mixer>, clock: NullClock, stats: Arc<EngineStats>) -> Self {
        let period = clock.period;
        let format = mixer.format();
        let latency =
            Duration::from_secs_f64(f64::from(period) / f64::from(format.sample_rate.max(1)));
        let (stop, thread) = spawn_paced(
            "jhack-null-out",
            mixer,
            format,
            clock,
            stats,
            move |m, buf, now| {
                m.render(
                    buf,
                    CallbackTiming {
                        now,
                        output_latency: Some(latency),
                    },
                );
            },
        );
        Self {
            stop,
            thread,
            info: null_info(format, period, "silent null output"),
        }
    }
}

impl NullStream<InputProcessor> {
    /// Feeds `processor` silence on the clock, as a silent microphone.
    pub fn start_input(
        processor: Box<InputProcessor>,
        format: AudioFormat,
        clock: NullClock,
        stats: Arc<EngineStats>,
    ) -> Self {
        let period = clock.period;
        let (stop, thread) = spawn_paced(
            "jhack-null-in",
            processor,
            format,
            clock,
            stats,
            |p, buf, _| {
                buf.fill(0.0);
                p.process(buf);
            },
        );
        Self {
            stop,
            thread,
            info: null_info(format, period, "silent null input"),
        }
    }
}

impl<P> NullStream<P> {
    /// Stops the loop and returns the processor.
    pub fn close(mut self) -> Option<Box<P>> {
        self.stop.store(true, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl<P> Drop for NullStream<P> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
