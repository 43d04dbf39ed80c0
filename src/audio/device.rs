//! Audio devices through cpal: listing, choosing, and running output and input streams.
//!
//! The only file that imports cpal (and ALSA). It converts between the device's sample
//! format and the engine's f32, and turns device timestamps and errors into our own
//! types. The data callbacks it builds call the mixer or the capture processor and
//! nothing else: they never allocate, lock, block, log or panic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use super::capture::InputProcessor;
use super::mixer::{CallbackTiming, Mixer};
use super::stats::EngineStats;
use crate::domain::AudioFormat;

/// Samples converted per step when the device format is not f32.
const SCRATCH_SAMPLES: usize = 8192;
/// How long to wait for a backend to open a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// Which device to use: the default one, an index from [`list_devices`], or a
/// case-insensitive substring of its name or id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The host's default device.
    #[default]
    Default,
    /// The device at this index of [`list_devices`].
    Index(usize),
    /// The first device whose name or id contains this text.
    Name(String),
}

impl DeviceSpec {
    /// Parses the CLI form: digits are an index, anything else a name.
    pub fn parse(s: &str) -> DeviceSpec {
        match s.trim().parse::<usize>() {
            Ok(i) => DeviceSpec::Index(i),
            Err(_) if s.trim().is_empty() || s.trim() == "default" => DeviceSpec::Default,
            Err(_) => DeviceSpec::Name(s.trim().to_string()),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Default => f.write_str("default"),
            DeviceSpec::Index(i) => write!(f, "#{i}"),
            DeviceSpec::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// Errors from devices, named by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No device matches the spec.
    #[error("no {direction} device matches {spec} (see `jhack devices`)")]
    NotFound {
        /// "output" or "input".
        direction: &'static str,
        /// What was asked for.
        spec: DeviceSpec,
    },
    /// The device exists but could not be opened or configured.
    #[error("{device}: {reason}")]
    Open {
        /// Device name.
        device: String,
        /// Why.
        reason: String,
    },
}

/// One device as `jhack devices` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeviceInfo {
    /// Position in the list, usable as `--output-device N`.
    pub index: usize,
    /// Audio host (e.g. ALSA).
    pub host: String,
    /// Human-readable name.
    pub name: String,
    /// The backend's id for it (e.g. an ALSA PCM name).
    pub id: String,
    /// Input channels of its default input config (0: no input).
    pub input_channels: u16,
    /// Output channels of its default output config (0: no output).
    pub output_channels: u16,
    /// Default sample rate, if it could be read.
    pub default_rate: Option<u32>,
    /// Whether it is the host's default input.
    pub default_input: bool,
    /// Whether it is the host's default output.
    pub default_output: bool,
}

/// What an open stream actually runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// Host name.
    pub host: String,
    /// Device name.
    pub device: String,
    /// Rate and channels.
    pub format: AudioFormat,
    /// The device's sample format (e.g. "f32", "i16").
    pub sample_format: String,
    /// Period size requested.
    pub requested_period: u32,
    /// Period size the backend reports (None: backend default, unknown).
    pub period_frames: Option<u32>,
}

impl StreamInfo {
    /// The period as a duration, when known.
    pub fn period_latency(&self) -> Option<Duration> {
        self.period_frames.map(|p| {
            Duration::from_secs_f64(f64::from(p) / f64::from(self.format.sample_rate.max(1)))
        })
    }
}

/// Problems a running stream reports, collected for the supervisor.
#[derive(Debug, Default)]
pub struct StreamHealth {
    failed: AtomicBool,
    realtime_denied: AtomicBool,
    messages: Mutex<Vec<String>>,
}

impl StreamHealth {
    /// Whether the stream reported that it is gone and must be rebuilt.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Whether the system refused real-time priority for the audio thread (reported once).
    pub fn take_realtime_denied(&self) -> bool {
        self.realtime_denied.swap(false, Ordering::AcqRel)
    }

    /// Error messages reported since the last call.
    pub fn take_messages(&self) -> Vec<String> {
        self.messages
            .lock()
            .map(|mut m| std::mem::take(&mut *m))
            .unwrap_or_default()
    }

    fn report(&self, err: cpal::Error, stats: &EngineStats) {
        use cpal::ErrorKind as K;
        match err.kind() {
            K::Xrun => {
                stats.xruns.fetch_add(1, Ordering::Relaxed);
                return;
            }
            K::RealtimeDenied => {
                // Audio still plays, at normal priority; worth a note, not a warning.
                self.realtime_denied.store(true, Ordering::Release);
                return;
            }
            K::DeviceNotAvailable | K::StreamInvalidated | K::HostUnavailable => {
                self.failed.store(true, Ordering::Release);
            }
            _ => {
                stats.device_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The error callback is not the data path; a short lock here is fine.
        if let Ok(mut m) = self.messages.lock()
            && m.len() < 16
        {
            m.push(err.to_string());
        }
    }
}

/// A processor that is handed back through a channel when the stream callback that
/// owns it is dropped, so it survives stream rebuilds.
struct ReturnOnDrop<T> {
    inner: Option<Box<T>>,
    tx: mpsc::Sender<Box<T>>,
}

impl<T> Drop for ReturnOnDrop<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let _ = self.tx.send(inner);
        }
    }
}

/// A running cpal stream (output or input).
pub struct RunningStream {
    stream: cpal::Stream,
    /// What it runs with.
    pub info: StreamInfo,
    /// Its reported problems.
    pub health: Arc<StreamHealth>,
}

impl RunningStream {
    /// Stops the stream; its processor comes back through the channel given at open.
    pub fn close(self) {
        let _ = self.stream.pause();
        drop(self.stream);
    }
}

/// Stops ALSA from printing its own diagnostics on stderr (they would corrupt the
/// TUI and clutter the CLI); jhack reports device problems itself.
pub fn silence_backend_diagnostics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        unsafe extern "C" fn quiet(
            _file: *const std::ffi::c_char,
            _line: std::ffi::c_int,
            _function: *const std::ffi::c_char,
            _err: std::ffi::c_int,
            _fmt: *const std::ffi::c_char,
        ) {
        }
        // SAFETY: ALSA calls the handler with these five fixed arguments followed by
        // varargs. Under the C calling conventions of the platforms ALSA runs on, a
        // callee that declares only the fixed arguments and ignores the rest is sound.
        unsafe {
            let handler: alsa_sys::snd_lib_error_handler_t = Some(std::mem::transmute::<
                unsafe extern "C" fn(
                    *const std::ffi::c_char,
                    std::ffi::c_int,
                    *const std::ffi::c_char,
                    std::ffi::c_int,
                    *const std::ffi::c_char,
                ),
                unsafe extern "C" fn(
                    *const std::ffi::c_char,
                    std::ffi::c_int,
                    *const std::ffi::c_char,
                    std::ffi::c_int,
                    *const std::ffi::c_char,
                    ...
                ),
            >(quiet));
            alsa_sys::snd_lib_error_set_handler(handler);
        }
    });
}

fn all_devices() -> Vec<(cpal::HostId, cpal::Device)> {
    silence_backend_diagnostics();
    let mut out = Vec::new();
    for host_id in cpal::available_hosts() {
        let Ok(host) = cpal::host_from_id(host_id) else {
            continue;
        };
        if let Ok(devices) = host.devices() {
            out.extend(devices.map(|d| (host_id, d)));
        }
    }
    out
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| "unknown device".into())
}

fn device_id(d: &cpal::Device) -> String {
    d.id().map(|id| id.id().to_string()).unwrap_or_default()
}

/// Every device of every available host, with channels and default rate.
pub fn list_devices() -> Vec<DeviceInfo> {
    let default_host = cpal::default_host();
    let default_out = default_host.default_output_device().map(|d| device_id(&d));
    let default_in = default_host.default_input_device().map(|d| device_id(&d));
    all_devices()
        .into_iter()
        .enumerate()
        .map(|(index, (host, d))| {
            let out_cfg = d
                .supports_output()
                .then(|| d.default_output_config().ok())
                .flatten();
            let in_cfg = d
                .supports_input()
                .then(|| d.default_input_config().ok())
                .flatten();
            let id = device_id(&d);
            let is_default_host = host == default_host.id();
            DeviceInfo {
                index,
                host: host.name().to_string(),
                name: device_name(&d),
                output_channels: out_cfg.as_ref().map_or(0, |c| c.channels()),
                input_channels: in_cfg.as_ref().map_or(0, |c| c.channels()),
                default_rate: out_cfg
                    .as_ref()
                    .or(in_cfg.as_ref())
                    .map(|c| c.sample_rate()),
                default_output: is_default_host && default_out.as_deref() == Some(id.as_str()),
                default_input: is_default_host && default_in.as_deref() == Some(id.as_str()),
                id,
            }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Output,
    Input,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Output => "output",
            Direction::Input => "input",
        }
    }
}

fn find_device(
    spec: &DeviceSpec,
    dir: Direction,
) -> Result<(cpal::HostId, cpal::Device), DeviceError> {
    let supports = |d: &cpal::Device| match dir {
        Direction::Output => d.supports_output(),
        Direction::Input => d.supports_input(),
    };
    let not_found = || DeviceError::NotFound {
        direction: dir.name(),
        spec: spec.clone(),
    };
    match spec {
        DeviceSpec::Default => {
            silence_backend_diagnostics();
            let host = cpal::default_host();
            let d = match dir {
                Direction::Output => host.default_output_device(),
                Direction::Input => host.default_input_device(),
            };
            d.map(|d| (host.id(), d)).ok_or_else(not_found)
        }
        DeviceSpec::Index(i) => all_devices()
            .into_iter()
            .nth(*i)
            .filter(|(_, d)| supports(d))
            .ok_or_else(not_found),
        DeviceSpec::Name(n) => {
            let n = n.to_lowercase();
            all_devices()
                .into_iter()
                .filter(|(_, d)| supports(d))
                .find(|(_, d)| {
                    device_name(d).to_lowercase().contains(&n)
                        || device_id(d).to_lowercase().contains(&n)
                })
                .ok_or_else(not_found)
        }
    }
}

/// Picks the stream config: the device's default (native rate), or `want` when the
/// device supports it (used when rebuilding, so the engine's format is kept).
fn choose_config(
    device: &cpal::Device,
    dir: Direction,
    want: Option<AudioFormat>,
) -> Result<cpal::SupportedStreamConfig, DeviceError> {
    let open_err = |e: cpal::Error| DeviceError::Open {
        device: device_name(device),
        reason: e.to_string(),
    };
    let default = match dir {
        Direction::Output => device.default_output_config(),
        Direction::Input => device.default_input_config(),
    }
    .map_err(open_err)?;
    let Some(want) = want else { return Ok(default) };
    if default.sample_rate() == want.sample_rate && default.channels() == want.channels {
        return Ok(default);
    }
    let ranges: Vec<cpal::SupportedStreamConfigRange> = match dir {
        Direction::Output => device.supported_output_configs().map(|r| r.collect()),
        Direction::Input => device.supported_input_configs().map(|r| r.collect()),
    }
    .map_err(open_err)?;
    ranges
        .into_iter()
        .filter(|r| r.channels() == want.channels)
        .filter_map(|r| r.try_with_sample_rate(want.sample_rate))
        .max_by_key(|c| c.sample_format() == default.sample_format())
        .ok_or_else(|| DeviceError::Open {
            device: device_name(device),
            reason: format!(
                "cannot run at {} Hz with {} channels",
                want.sample_rate, want.channels
            ),
        })
}

fn buffer_sizes(cfg: &cpal::SupportedStreamConfig, requested: u32) -> Vec<cpal::BufferSize> {
    let fixed = match cfg.buffer_size() {
        cpal::SupportedBufferSize::Range { min, max } => requested.clamp(*min, (*max).max(*min)),
        cpal::SupportedBufferSize::Unknown => requested,
    };
    vec![cpal::BufferSize::Fixed(fixed), cpal::BufferSize::Default]
}

fn output_latency(info: &cpal::OutputCallbackInfo) -> Option<Duration> {
    let ts = info.timestamp();
    ts.playback.checked_duration_since(ts.callback)
}

fn output_callback_f32(
    mut holder: ReturnOnDrop<Mixer>,
) -> impl FnMut(&mut [f32], &cpal::OutputCallbackInfo) + Send + 'static {
    move |data: &mut [f32], info: &cpal::OutputCallbackInfo| {
        let timing = CallbackTiming {
            now: Instant::now(),
            output_latency: output_latency(info),
        };
        if let Some(mixer) = holder.inner.as_mut() {
            mixer.render(data, timing);
        }
    }
}

fn output_callback_converting<T>(
    mut holder: ReturnOnDrop<Mixer>,
) -> impl FnMut(&mut [T], &cpal::OutputCallbackInfo) + Send + 'static
where
    T: SizedSample + FromSample<f32>,
{
    let mut scratch = vec![0.0f32; SCRATCH_SAMPLES].into_boxed_slice();
    move |data: &mut [T], info: &cpal::OutputCallbackInfo| {
        let timing = CallbackTiming {
            now: Instant::now(),
            output_latency: output_latency(info),
        };
        let Some(mixer) = holder.inner.as_mut() else {
            return;
        };
        let channels = usize::from(mixer.format().channels.max(1));
        let step = SCRATCH_SAMPLES / channels * channels;
        for out in data.chunks_mut(step) {
            let tmp = &mut scratch[..out.len()];
            mixer.render(tmp, timing);
            for (o, s) in out.iter_mut().zip(tmp.iter()) {
                *o = T::from_sample(*s);
            }
        }
    }
}

fn input_callback<T>(
    mut holder: ReturnOnDrop<InputProcessor>,
) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static
where
    T: SizedSample,
    f32: FromSample<T>,
{
    let mut scratch = vec![0.0f32; SCRATCH_SAMPLES].into_boxed_slice();
    move |data: &[T], _info: &cpal::InputCallbackInfo| {
        let Some(processor) = holder.inner.as_mut() else {
            return;
        };
        let channels = processor.channels();
        let step = SCRATCH_SAMPLES / channels * channels;
        for chunk in data.chunks(step) {
            let tmp = &mut scratch[..chunk.len()];
            for (o, s) in tmp.iter_mut().zip(chunk) {
                *o = s.to_sample::<f32>();
            }
            processor.process(tmp);
        }
    }
}

/// The device and config an output stream would use, decided before the mixer exists
/// (the mixer must know the rate and channels).
pub struct OutputPlan {
    host: cpal::HostId,
    device: cpal::Device,
    config: cpal::SupportedStreamConfig,
    requested: u32,
}

impl OutputPlan {
    /// Finds the device for `spec` and its native config (or `want`, when given and
    /// supported).
    pub fn new(
        spec: &DeviceSpec,
        requested_period: u32,
        want: Option<AudioFormat>,
    ) -> Result<Self, DeviceError> {
        let (host, device) = find_device(spec, Direction::Output)?;
        let config = choose_config(&device, Direction::Output, want)?;
        Ok(Self {
            host,
            device,
            config,
            requested: requested_period,
        })
    }

    /// The rate and channels the stream will run at.
    pub fn format(&self) -> AudioFormat {
        AudioFormat::new(self.config.sample_rate(), self.config.channels())
    }

    /// The device's name.
    pub fn device_name(&self) -> String {
        device_name(&self.device)
    }

    /// Builds and starts the stream around `mixer`. When the stream is closed (or the
    /// build fails) the mixer comes back through `back`.
    pub fn start(
        self,
        mixer: Box<Mixer>,
        back: &mpsc::Sender<Box<Mixer>>,
        back_rx: &mpsc::Receiver<Box<Mixer>>,
        stats: &Arc<EngineStats>,
    ) -> Result<RunningStream, (DeviceError, Box<Mixer>)> {
        let mut mixer = mixer;
        let mut last_err = String::new();
        for buffer_size in buffer_sizes(&self.config, self.requested) {
            let health = Arc::new(StreamHealth::default());
            let holder = ReturnOnDrop {
                inner: Some(mixer),
                tx: back.clone(),
            };
            let config = cpal::StreamConfig {
                channels: self.config.channels(),
                sample_rate: self.config.sample_rate(),
                buffer_size,
            };
            let (h, s) = (health.clone(), stats.clone());
            let on_error = move |e: cpal::Error| h.report(e, &s);
            let built = match self.config.sample_format() {
                SampleFormat::F32 => self.device.build_output_stream(
                    config,
                    output_callback_f32(holder),
                    on_error,
                    Some(OPEN_TIMEOUT),
                ),
                SampleFormat::I16 => {
                    build_converting::<i16>(&self.device, config, holder, on_error)
                }
                SampleFormat::I32 => {
                    build_converting::<i32>(&self.device, config, holder, on_error)
                }
                SampleFormat::U16 => {
                    build_converting::<u16>(&self.device, config, holder, on_error)
                }
                SampleFormat::U8 => build_converting::<u8>(&self.device, config, holder, on_error),
                SampleFormat::I8 => build_converting::<i8>(&self.device, config, holder, on_error),
                SampleFormat::F64 => {
                    build_converting::<f64>(&self.device, config, holder, on_error)
                }
                SampleFormat::U32 => {
                    build_converting::<u32>(&self.device, config, holder, on_error)
                }
                other => {
                    drop(holder);
                    Err(cpal::Error::with_message(
                        cpal::ErrorKind::UnsupportedConfig,
                        format!("sample format {other} is not supported"),
                    ))
                }
            };
            match built.and_then(|stream| stream.play().map(|_| stream)) {
                Ok(stream) => {
                    let period_frames = match buffer_size {
                        cpal::BufferSize::Fixed(n) => Some(stream.buffer_size().unwrap_or(n)),
                        cpal::BufferSize::Default => stream.buffer_size().ok(),
                    };
                    let info = StreamInfo {
                        host: self.host.name().to_string(),
                        device: device_name(&self.device),
                        format: self.format(),
                        sample_format: self.config.sample_format().to_string(),
                        requested_period: self.requested,
                        period_frames,
                    };
                    return Ok(RunningStream {
                        stream,
                        info,
                        health,
                    });
                }
                Err(e) => {
                    last_err = e.to_string();
                    match back_rx.recv_timeout(OPEN_TIMEOUT) {
                        Ok(m) => mixer = m,
                        Err(_) => unreachable_mixer_lost(),
                    }
                }
            }
        }
        Err((
            DeviceError::Open {
                device: device_name(&self.device),
                reason: last_err,
            },
            mixer,
        ))
    }
}

/// cpal drops a failed stream's callback before returning the error, which hands
/// the mixer back; if that ever failed to happen, nothing sensible can continue.
#[cold]
fn unreachable_mixer_lost() -> ! {
    // An invariant of cpal's API (the callback is owned by the failed build and
    // dropped with it); reaching this is a bug, reported loudly.
    panic!("audio backend kept the mixer after a failed stream build")
}

fn build_converting<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    holder: ReturnOnDrop<Mixer>,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    device.build_output_stream(
        config,
        output_callback_converting::<T>(holder),
        on_error,
        Some(OPEN_TIMEOUT),
    )
}

fn build_input<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    holder: ReturnOnDrop<InputProcessor>,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    device.build_input_stream(
        config,
        input_callback::<T>(holder),
        on_error,
        Some(OPEN_TIMEOUT),
    )
}

/// The device and config an input stream would use.
pub struct InputPlan {
    host: cpal::HostId,
    device: cpal::Device,
    config: cpal::SupportedStreamConfig,
    requested: u32,
}

impl InputPlan {
    /// Finds the input device for `spec` and its native config (or `want`).
    pub fn new(
        spec: &DeviceSpec,
        requested_period: u32,
        want: Option<AudioFormat>,
    ) -> Result<Self, DeviceError> {
        let (host, device) = find_device(spec, Direction::Input)?;
        let config = choose_config(&device, Direction::Input, want)?;
        Ok(Self {
            host,
            device,
            config,
            requested: requested_period,
        })
    }

    /// The rate and channels the stream will capture.
    pub fn format(&self) -> AudioFormat {
        AudioFormat::new(self.config.sample_rate(), self.config.channels())
    }

    /// Builds and starts the capture stream around `processor`, which comes back
    /// through `back` when the stream closes or the build fails.
    pub fn start(
        self,
        processor: Box<InputProcessor>,
        back: &mpsc::Sender<Box<InputProcessor>>,
        back_rx: &mpsc::Receiver<Box<InputProcessor>>,
        stats: &Arc<EngineStats>,
    ) -> Result<RunningStream, (DeviceError, Box<InputProcessor>)> {
        let mut processor = processor;
        let mut last_err = String::new();
        for buffer_size in buffer_sizes(&self.config, self.requested) {
            let health = Arc::new(StreamHealth::default());
            let holder = ReturnOnDrop {
                inner: Some(processor),
                tx: back.clone(),
            };
            let config = cpal::StreamConfig {
                channels: self.config.channels(),
                sample_rate: self.config.sample_rate(),
                buffer_size,
            };
            let (h, s) = (health.clone(), stats.clone());
            let on_error = move |e: cpal::Error| h.report(e, &s);
            let built = match self.config.sample_format() {
                SampleFormat::F32 => build_input::<f32>(&self.device, config, holder, on_error),
                SampleFormat::I16 => build_input::<i16>(&self.device, config, holder, on_error),
                SampleFormat::I32 => build_input::<i32>(&self.device, config, holder, on_error),
                SampleFormat::U16 => build_input::<u16>(&self.device, config, holder, on_error),
                SampleFormat::U8 => build_input::<u8>(&self.device, config, holder, on_error),
                SampleFormat::I8 => build_input::<i8>(&self.device, config, holder, on_error),
                SampleFormat::F64 => build_input::<f64>(&self.device, config, holder, on_error),
                SampleFormat::U32 => build_input::<u32>(&self.device, config, holder, on_error),
                other => {
                    drop(holder);
                    Err(cpal::Error::with_message(
                        cpal::ErrorKind::UnsupportedConfig,
                        format!("sample format {other} is not supported"),
                    ))
                }
            };
            match built.and_then(|stream| stream.play().map(|_| stream)) {
                Ok(stream) => {
                    let period_frames = stream.buffer_size().ok();
                    let info = StreamInfo {
                        host: self.host.name().to_string(),
                        device: device_name(&self.device),
                        format: self.format(),
                        sample_format: self.config.sample_format().to_string(),
                        requested_period: self.requested,
                        period_frames,
                    };
                    return Ok(RunningStream {
                        stream,
                        info,
                        health,
                    });
                }
                Err(e) => {
                    last_err = e.to_string();
                    match back_rx.recv_timeout(OPEN_TIMEOUT) {
                        Ok(p) => processor = p,
                        Err(_) => unreachable_mixer_lost(),
                    }
                }
            }
        }
        Err((
            DeviceError::Open {
                device: device_name(&self.device),
                reason: last_err,
            },
            processor,
        ))
    }
}
