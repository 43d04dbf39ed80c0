//! The supervisor: a control thread that owns the output and input streams, rebuilds
//! them when a device reports it is gone or stops calling back, and falls back to
//! the null backend (then retries the device) so the engine never stops.
//!
//! Device error messages are logged here, never treated as fatal. It never touches
//! the processors while a stream runs: they move between streams only when handed back.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::InputProcessor;
use super::device::{DeviceError, DeviceSpec, RunningStream, StreamInfo, StreamPlan};
use super::mixer::Mixer;
use super::null::{NullClock, NullStream};
use super::stats::EngineStats;
use crate::domain::AudioFormat;

const TICK: Duration = Duration::from_millis(100);
/// A device stream that has not called back for this long is considered stalled.
const STALL: Duration = Duration::from_secs(2);
/// How often to try the device again while on the null backend after a loss.
const RETRY: Duration = Duration::from_secs(2);

/// What the engine currently runs on.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EngineInfo {
    /// The output stream.
    pub output: StreamInfo,
    /// The input stream, once one is open.
    pub input: Option<StreamInfo>,
}

impl EngineInfo {
    /// Whether the output is the silent null backend.
    pub fn output_is_null(&self) -> bool {
        self.output.host == super::null::NULL_HOST
    }

    /// Whether the input and output callbacks both run inside one server's graph
    /// cycle (PipeWire's own protocol), the input's before the output's: a cycle's
    /// capture can be played in the same cycle.
    pub fn same_cycle(&self) -> bool {
        self.output.exact_periods() && self.input.as_ref().is_some_and(StreamInfo::exact_periods)
    }
}

/// Requests to the supervisor.
pub enum SupervisorMsg {
    /// Open the input stream (once), then reply with its format.
    OpenInput {
        /// Device to use.
        spec: DeviceSpec,
        /// The capture processor (format must match what the plan gives).
        make: Box<dyn FnOnce(AudioFormat) -> Box<InputProcessor> + Send>,
        /// Where to answer.
        reply: mpsc::Sender<Result<AudioFormat, DeviceError>>,
    },
    /// Stop everything and exit.
    Shutdown,
}

enum Output {
    Device(RunningStream),
    Null(NullStream<Mixer>),
}

enum Input {
    Device(RunningStream),
    Null(NullStream<InputProcessor>),
}

/// The supervisor's state; runs on its own thread.
pub struct Supervisor {
    spec: DeviceSpec,
    period: u32,
    no_audio: bool,
    null_clock: NullClock,
    format: AudioFormat,
    stats: Arc<EngineStats>,
    info: Arc<Mutex<EngineInfo>>,
    output: Option<Output>,
    mixer_tx: mpsc::Sender<Box<Mixer>>,
    mixer_rx: mpsc::Receiver<Box<Mixer>>,
    input: Option<Input>,
    input_spec: DeviceSpec,
    input_format: Option<AudioFormat>,
    input_tx: mpsc::Sender<Box<InputProcessor>>,
    input_rx: mpsc::Receiver<Box<InputProcessor>>,
    last_callbacks: (u64, Instant),
    last_input_callbacks: (u64, Instant),
    next_retry: Option<Instant>,
    seen_output: HashSet<String>,
    seen_input: HashSet<String>,
}

/// Errors within one tick that mean a stream is broken rather than glitching.
const ERROR_BURST: usize = 8;

/// Logs each distinct device message once per stream; returns whether so many came in
/// one tick that the stream should be considered broken.
fn report_messages(
    seen: &mut HashSet<String>,
    direction: &str,
    device: &str,
    messages: Vec<String>,
) -> bool {
    let burst = messages.len() >= ERROR_BURST;
    for m in messages {
        if seen.len() < 64 && seen.insert(m.clone()) {
            tracing::warn!("audio {direction} {device}: {m}");
        }
    }
    burst
}

/// Parameters for starting the supervisor.
pub struct SupervisorSetup {
    /// Output device.
    pub spec: DeviceSpec,
    /// Requested period.
    pub period: u32,
    /// Force the null backend.
    pub no_audio: bool,
    /// Null backend speed relative to real time.
    pub null_speed: f64,
    /// Shared figures.
    pub stats: Arc<EngineStats>,
}

impl Supervisor {
    /// Starts the output on `plan` (or the null backend when `plan` is `None` or fails)
    /// and spawns the supervising thread. Returns the initial info.
    pub fn spawn(
        setup: SupervisorSetup,
        plan: Option<StreamPlan>,
        mixer: Box<Mixer>,
        rx: mpsc::Receiver<SupervisorMsg>,
    ) -> std::io::Result<(JoinHandle<()>, Arc<Mutex<EngineInfo>>)> {
        let (mixer_tx, mixer_rx) = mpsc::channel();
        let (input_tx, input_rx) = mpsc::channel();
        let format = mixer.format();
        let mut sup = Supervisor {
            spec: setup.spec,
            period: setup.period,
            no_audio: setup.no_audio,
            null_clock: NullClock {
                period: setup.period,
                speed: setup.null_speed,
            },
            format,
            stats: setup.stats,
            info: Arc::new(Mutex::new(EngineInfo {
                output: super::null::null_info(format, setup.period, "silent null output"),
                input: None,
            })),
            output: None,
            mixer_tx,
            mixer_rx,
            input: None,
            input_spec: DeviceSpec::Default,
            input_format: None,
            input_tx,
            input_rx,
            last_callbacks: (0, Instant::now()),
            last_input_callbacks: (0, Instant::now()),
            next_retry: None,
            seen_output: HashSet::new(),
            seen_input: HashSet::new(),
        };
        match plan {
            Some(plan) => sup.start_output(plan, mixer),
            None => sup.start_null_output(mixer),
        }
        let info = sup.info.clone();
        let handle = std::thread::Builder::new()
            .name("jhack-supervisor".into())
            .spawn(move || sup.run(rx))?;
        Ok((handle, info))
    }

    fn start_output(&mut self, plan: StreamPlan, mixer: Box<Mixer>) {
        match plan.start_output(mixer, &self.mixer_tx, &self.mixer_rx, &self.stats) {
            Ok(stream) => {
                self.seen_output.clear();
                let i = &stream.info;
                tracing::info!(
                    "audio output: {} ({}), {} Hz, {} ch, {}, period {} frames{}",
                    i.device,
                    i.host,
                    i.format.sample_rate,
                    i.format.channels,
                    i.sample_format,
                    i.period_frames
                        .map_or("default".to_string(), |p| p.to_string()),
                    i.period_latency().map_or(String::new(), |d| format!(
                        " ({:.2} ms)",
                        d.as_secs_f64() * 1e3
                    )),
                );
                self.set_output_info(stream.info.clone());
                self.output = Some(Output::Device(stream));
                self.next_retry = None;
            }
            Err((e, Some(mixer))) => {
                tracing::warn!("audio output {e}; playing on the silent null backend");
                self.start_null_output(mixer);
                self.next_retry = Some(Instant::now() + RETRY);
            }
            Err((e, None)) => {
                // Silent until the backend hands the mixer back (`recover_output`).
                tracing::error!("audio output {e}; silent until it lets go");
                self.output = None;
            }
        }
        self.last_callbacks = (self.stats.callbacks.load(Ordering::Relaxed), Instant::now());
    }

    fn start_null_output(&mut self, mixer: Box<Mixer>) {
        let null = NullStream::start_output(mixer, self.null_clock, self.stats.clone());
        self.set_output_info(null.info.clone());
        self.output = Some(Output::Null(null));
    }

    fn set_output_info(&self, info: StreamInfo) {
        if let Ok(mut i) = self.info.lock() {
            i.output = info;
        }
    }

    fn take_mixer(&mut self) -> Option<Box<Mixer>> {
        match self.output.take()? {
            Output::Device(s) => {
                s.close();
                self.mixer_rx.recv_timeout(Duration::from_secs(10)).ok()
            }
            Output::Null(n) => n.close(),
        }
    }

    fn run(mut self, rx: mpsc::Receiver<SupervisorMsg>) {
        loop {
            match rx.recv_timeout(TICK) {
                Ok(SupervisorMsg::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Ok(SupervisorMsg::OpenInput { spec, make, reply }) => {
                    let _ = reply.send(self.open_input(spec, make));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            self.check_output();
            self.check_input();
        }
        self.take_mixer();
        self.close_input();
    }

    fn check_output(&mut self) {
        let now = Instant::now();
        let callbacks = self.stats.callbacks.load(Ordering::Relaxed);
        if callbacks != self.last_callbacks.0 {
            self.last_callbacks = (callbacks, now);
        }
        let reason = match &self.output {
            Some(Output::Device(s)) => {
                let burst = report_messages(
                    &mut self.seen_output,
                    "output",
                    &s.info.device,
                    s.health.take_messages(),
                );
                if s.health.take_realtime_denied() {
                    tracing::info!("real-time priority was refused; audio runs at normal priority");
                }
                if s.health.failed() {
                    Some("the device reported it is gone")
                } else if burst {
                    Some("the device keeps failing")
                } else if now.duration_since(self.last_callbacks.1) > STALL {
                    Some("the device stopped calling back")
                } else {
                    None
                }
            }
            Some(Output::Null(_)) => {
                if self.next_retry.is_some_and(|t| now >= t) && !self.no_audio {
                    self.next_retry = Some(now + RETRY);
                    if let Ok(plan) = StreamPlan::output(&self.spec, self.period, Some(self.format))
                        && let Some(mixer) = self.take_mixer()
                    {
                        tracing::info!("audio output {} is back", plan.device_name());
                        self.start_output(plan, mixer);
                    }
                }
                None
            }
            None => {
                self.recover_output();
                None
            }
        };
        if let Some(reason) = reason {
            tracing::warn!("audio output lost ({reason}); reopening");
            let Some(mixer) = self.take_mixer() else {
                tracing::error!(
                    "audio output: the backend kept the mixer; silent until it lets go"
                );
                return;
            };
            match StreamPlan::output(&self.spec, self.period, Some(self.format)) {
                Ok(plan) => self.start_output(plan, mixer),
                Err(e) => {
                    tracing::warn!(
                        "audio output {e}; playing on the silent null backend until it returns"
                    );
                    self.start_null_output(mixer);
                    self.next_retry = Some(Instant::now() + RETRY);
                }
            }
        }
    }

    /// Without an output (the backend kept the mixer, or a close timed out): the
    /// mixer, when it comes back, plays on the null backend and the device is retried.
    fn recover_output(&mut self) {
        if let Ok(mixer) = self.mixer_rx.try_recv() {
            tracing::info!("audio output: the backend let go of the mixer; retrying the device");
            self.start_null_output(mixer);
            self.next_retry = Some(Instant::now());
        }
    }

    fn open_input(
        &mut self,
        spec: DeviceSpec,
        make: Box<dyn FnOnce(AudioFormat) -> Box<InputProcessor> + Send>,
    ) -> Result<AudioFormat, DeviceError> {
        if let Some(f) = self.input_format {
            return Ok(f);
        }
        self.input_spec = spec;
        let silent = AudioFormat::new(self.format.sample_rate, 1);
        let format = if self.no_audio {
            self.start_null_input(make(silent), silent);
            silent
        } else {
            let plan = match StreamPlan::input(&self.input_spec, self.period, None) {
                Err(e) if self.input_spec != DeviceSpec::Default => return Err(e),
                plan => plan,
            };
            let format = plan.as_ref().map_or(silent, |p| p.format());
            self.start_input(plan, make(format), format);
            format
        };
        self.input_format = Some(format);
        Ok(format)
    }

    /// Starts capture on `plan`, or on the null backend (with a warning) when there is
    /// no usable device.
    fn start_input(
        &mut self,
        plan: Result<StreamPlan, DeviceError>,
        processor: Box<InputProcessor>,
        format: AudioFormat,
    ) {
        let started = match plan {
            Ok(plan) => plan.start_input(processor, &self.input_tx, &self.input_rx, &self.stats),
            Err(e) => Err((e, Some(processor))),
        };
        match started {
            Ok(stream) => self.set_input(Input::Device(stream)),
            Err((e, Some(p))) => {
                tracing::warn!("audio input {e}; capturing silence from the null backend");
                self.start_null_input(p, format);
            }
            Err((e, None)) => {
                // Silent until the backend hands the processor back (`check_input`).
                tracing::error!("audio input {e}; silent until it lets go");
                self.input = None;
            }
        }
    }

    fn start_null_input(&mut self, processor: Box<InputProcessor>, format: AudioFormat) {
        let null = NullStream::start_input(processor, format, self.null_clock, self.stats.clone());
        self.set_input(Input::Null(null));
    }

    fn set_input(&mut self, input: Input) {
        let info = match &input {
            Input::Device(s) => s.info.clone(),
            Input::Null(n) => n.info.clone(),
        };
        if let Ok(mut i) = self.info.lock() {
            i.input = Some(info);
        }
        self.input = Some(input);
        self.seen_input.clear();
        self.last_input_callbacks = (
            self.stats.input_callbacks.load(Ordering::Relaxed),
            Instant::now(),
        );
    }

    fn take_input_processor(&mut self) -> Option<Box<InputProcessor>> {
        match self.input.take()? {
            Input::Device(s) => {
                s.close();
                self.input_rx.recv_timeout(Duration::from_secs(10)).ok()
            }
            Input::Null(n) => n.close(),
        }
    }

    fn close_input(&mut self) {
        drop(self.take_input_processor());
    }

    fn check_input(&mut self) {
        if self.input.is_none()
            && let Some(format) = self.input_format
            && let Ok(p) = self.input_rx.try_recv()
        {
            tracing::info!("audio input: the backend let go of the capture; reopening");
            let plan = StreamPlan::input(&self.input_spec, self.period, Some(format));
            self.start_input(plan, p, format);
            return;
        }
        let Some(Input::Device(s)) = &self.input else {
            return;
        };
        let now = Instant::now();
        let callbacks = self.stats.input_callbacks.load(Ordering::Relaxed);
        if callbacks != self.last_input_callbacks.0 {
            self.last_input_callbacks = (callbacks, now);
        }
        let burst = report_messages(
            &mut self.seen_input,
            "input",
            &s.info.device,
            s.health.take_messages(),
        );
        let lost =
            burst || s.health.failed() || now.duration_since(self.last_input_callbacks.1) > STALL;
        if !lost {
            return;
        }
        tracing::warn!("audio input lost; reopening");
        let Some(processor) = self.take_input_processor() else {
            return;
        };
        let format = self
            .input_format
            .unwrap_or(AudioFormat::new(self.format.sample_rate, 1));
        let plan = StreamPlan::input(&self.input_spec, self.period, Some(format));
        self.start_input(plan, processor, format);
    }
}
