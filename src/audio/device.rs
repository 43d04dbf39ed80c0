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
/// The name of cpal's PipeWire host, as [`StreamInfo::host`] carries it.
pub const PIPEWIRE_HOST: &str = "PipeWire";
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// Whether every callback carries exactly one period: PipeWire's own protocol
    /// runs them on the graph cycle, one quantum each.
    pub fn exact_periods(&self) -> bool {
        self.host == PIPEWIRE_HOST
    }

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

/// Every device of every available host, the preferred host's first (so a name finds
/// its device there), without the stand-ins PipeWire's host lists for "the default"
/// when the real default devices are known (see [`real_default`]).
fn all_devices() -> Vec<(cpal::HostId, cpal::Device)> {
    silence_backend_diagnostics();
    all_devices_from(preferred_host())
}

/// [`all_devices`], `preferred` being [`preferred_host`] already opened (and the
/// backends' diagnostics already silenced).
fn all_devices_from(preferred: cpal::Host) -> Vec<(cpal::HostId, cpal::Device)> {
    let first = preferred.id();
    let others = cpal::available_hosts()
        .into_iter()
        .filter(|h| *h != first)
        .filter_map(|h| cpal::host_from_id(h).ok());
    let mut out = Vec::new();
    for host in std::iter::once(preferred).chain(others) {
        let host_id = host.id();
        let hide_stand_ins =
            host_id == cpal::HostId::PipeWire && real_default(&host, Direction::Output).is_some();
        if let Ok(devices) = host.devices() {
            out.extend(
                devices
                    .filter(|d| !(hide_stand_ins && is_stand_in(d)))
                    .map(|d| (host_id, d)),
            );
        }
    }
    out
}

/// cpal's PipeWire host lists three stand-ins that follow the default sink or source,
/// always as two channels: a mono microphone opened through one is upmixed (and a
/// level lost on the way back down), so jhack opens the real node instead.
const PIPEWIRE_STAND_INS: [&str; 3] = ["sink_default", "input_default", "output_default"];

fn is_stand_in(d: &cpal::Device) -> bool {
    d.id().is_ok_and(|id| {
        id.host() == cpal::HostId::PipeWire && PIPEWIRE_STAND_INS.contains(&id.id())
    })
}

/// The host's default device for `dir`, as the real device. For PipeWire, whose host
/// names only stand-ins, the default node is the one the server's pulse protocol
/// names (`pactl info`'s default sink and source: the same `default.audio.*` setting),
/// found among PipeWire's nodes by name; `None` when that cannot be read.
fn real_default(host: &cpal::Host, dir: Direction) -> Option<cpal::Device> {
    let pick = |h: &cpal::Host| match dir {
        Direction::Output => h.default_output_device(),
        Direction::Input => h.default_input_device(),
    };
    if host.id() != cpal::HostId::PipeWire {
        return pick(host);
    }
    let pulse = cpal::host_from_id(cpal::HostId::PulseAudio).ok()?;
    let name = device_id(&pick(&pulse)?);
    host.devices().ok()?.find(|d| {
        device_id(d) == name
            && match dir {
                Direction::Output => d.supports_output(),
                Direction::Input => d.supports_input(),
            }
    })
}

/// The default device for `dir`: the real one where it can be found, else the host's.
fn default_device(host: &cpal::Host, dir: Direction) -> Option<cpal::Device> {
    real_default(host, dir).or_else(|| match dir {
        Direction::Output => host.default_output_device(),
        Direction::Input => host.default_input_device(),
    })
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| "unknown device".into())
}

fn device_id(d: &cpal::Device) -> String {
    d.id().map(|id| id.id().to_string()).unwrap_or_default()
}

/// The host whose defaults `default` means, in this order:
/// - PipeWire's own protocol, when its server runs: a stream's callback then runs on
///   the server's graph cycle (cpal's PipeWire host with `RT_PROCESS`, vendor/cpal), so
///   capture and playback of one cycle meet without a quantum queued in between;
/// - a PulseAudio-protocol server (PulseAudio itself, or PipeWire's pulse server): its
///   client waits on the server's socket, where the ALSA route through PipeWire's
///   plugin makes cpal's ALSA thread busy-wait between periods;
/// - else the platform's default (ALSA).
///
/// `JHACK_PULSE=1` skips PipeWire's own protocol, `JHACK_ALSA=1` both servers.
fn preferred_host() -> cpal::Host {
    #[cfg(target_os = "linux")]
    {
        let usable = |id: cpal::HostId| {
            if !cpal::available_hosts().contains(&id) {
                return None;
            }
            cpal::host_from_id(id)
                .ok()
                .filter(|host| host.default_output_device().is_some())
        };
        let alsa_only = std::env::var_os("JHACK_ALSA").is_some();
        if !alsa_only
            && std::env::var_os("JHACK_PULSE").is_none()
            && let Some(host) = usable(cpal::HostId::PipeWire)
        {
            return host;
        }
        if !alsa_only && let Some(host) = usable(cpal::HostId::PulseAudio) {
            return host;
        }
    }
    cpal::default_host()
}

/// Every device of every available host, with channels and default rate.
pub fn list_devices() -> Vec<DeviceInfo> {
    silence_backend_diagnostics();
    let default_host = preferred_host();
    let default_id = default_host.id();
    let default_out = default_device(&default_host, Direction::Output).map(|d| device_id(&d));
    let default_in = default_device(&default_host, Direction::Input).map(|d| device_id(&d));
    all_devices_from(default_host)
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
            let is_default_host = host == default_id;
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
            let host = preferred_host();
            default_device(&host, dir)
                .map(|d| (host.id(), d))
                .ok_or_else(not_found)
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
    if let Some(processor) = holder.inner.as_mut() {
        processor.new_stream();
    }
    move |data: &[T], info: &cpal::InputCallbackInfo| {
        let Some(processor) = holder.inner.as_mut() else {
            return;
        };
        let channels = processor.channels();
        let step = SCRATCH_SAMPLES / channels * channels;
        if let Ok(at) = u64::try_from(info.timestamp().capture.as_nanos()) {
            processor.captured(at, data.len() / channels);
        }
        for chunk in data.chunks(step) {
            let tmp = &mut scratch[..chunk.len()];
            for (o, s) in tmp.iter_mut().zip(chunk) {
                *o = s.to_sample::<f32>();
            }
            processor.process(tmp);
        }
    }
}

type OnError = Box<dyn FnMut(cpal::Error) + Send + 'static>;

/// Builds a stream of one direction around a processor of type `P`.
type BuildStream<P> = fn(
    &cpal::Device,
    cpal::StreamConfig,
    SampleFormat,
    ReturnOnDrop<P>,
    OnError,
) -> Result<cpal::Stream, cpal::Error>;

/// Builds a converting output stream for device sample type `T`.
fn output_converting<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    holder: ReturnOnDrop<Mixer>,
    on_error: OnError,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    let callback = output_callback_converting::<T>(holder);
    device.build_output_stream(config, callback, on_error, Some(OPEN_TIMEOUT))
}

/// Builds an input stream for device sample type `T`.
fn input_typed<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    holder: ReturnOnDrop<InputProcessor>,
    on_error: OnError,
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

fn unsupported_format(format: SampleFormat) -> cpal::Error {
    cpal::Error::with_message(
        cpal::ErrorKind::UnsupportedConfig,
        format!("sample format {format} is not supported"),
    )
}

fn build_output(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    holder: ReturnOnDrop<Mixer>,
    on_error: OnError,
) -> Result<cpal::Stream, cpal::Error> {
    let d = device;
    match format {
        SampleFormat::F32 => {
            let callback = output_callback_f32(holder);
            d.build_output_stream(config, callback, on_error, Some(OPEN_TIMEOUT))
        }
        SampleFormat::I16 => output_converting::<i16>(d, config, holder, on_error),
        SampleFormat::I32 => output_converting::<i32>(d, config, holder, on_error),
        SampleFormat::U16 => output_converting::<u16>(d, config, holder, on_error),
        SampleFormat::U8 => output_converting::<u8>(d, config, holder, on_error),
        SampleFormat::I8 => output_converting::<i8>(d, config, holder, on_error),
        SampleFormat::F64 => output_converting::<f64>(d, config, holder, on_error),
        SampleFormat::U32 => output_converting::<u32>(d, config, holder, on_error),
        other => Err(unsupported_format(other)),
    }
}

fn build_input(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    format: SampleFormat,
    holder: ReturnOnDrop<InputProcessor>,
    on_error: OnError,
) -> Result<cpal::Stream, cpal::Error> {
    let d = device;
    match format {
        SampleFormat::F32 => input_typed::<f32>(d, config, holder, on_error),
        SampleFormat::I16 => input_typed::<i16>(d, config, holder, on_error),
        SampleFormat::I32 => input_typed::<i32>(d, config, holder, on_error),
        SampleFormat::U16 => input_typed::<u16>(d, config, holder, on_error),
        SampleFormat::U8 => input_typed::<u8>(d, config, holder, on_error),
        SampleFormat::I8 => input_typed::<i8>(d, config, holder, on_error),
        SampleFormat::F64 => input_typed::<f64>(d, config, holder, on_error),
        SampleFormat::U32 => input_typed::<u32>(d, config, holder, on_error),
        other => Err(unsupported_format(other)),
    }
}

/// The device and config a stream would use, decided before its processor exists
/// (the mixer must know the rate and channels it renders).
pub struct StreamPlan {
    host: cpal::HostId,
    device: cpal::Device,
    config: cpal::SupportedStreamConfig,
    requested: u32,
}

impl StreamPlan {
    /// Finds the output device for `spec` and its native config (or `want`, when
    /// given and supported: used when rebuilding, so the engine's format is kept).
    pub fn output(
        spec: &DeviceSpec,
        requested_period: u32,
        want: Option<AudioFormat>,
    ) -> Result<Self, DeviceError> {
        Self::new(spec, Direction::Output, requested_period, want)
    }

    /// Finds the input device for `spec` and its native config (or `want`).
    pub fn input(
        spec: &DeviceSpec,
        requested_period: u32,
        want: Option<AudioFormat>,
    ) -> Result<Self, DeviceError> {
        Self::new(spec, Direction::Input, requested_period, want)
    }

    fn new(
        spec: &DeviceSpec,
        dir: Direction,
        requested: u32,
        want: Option<AudioFormat>,
    ) -> Result<Self, DeviceError> {
        let (host, device) = find_device(spec, dir)?;
        let config = choose_config(&device, dir, want)?;
        Ok(Self {
            host,
            device,
            config,
            requested,
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

    /// Builds and starts an output stream around `mixer`. When the stream is closed
    /// (or the build fails) the mixer comes back through `back`; on an error it is
    /// returned, or `None` when the backend has not handed it back yet (it then
    /// arrives on `back_rx` later, if ever).
    pub fn start_output(
        self,
        mixer: Box<Mixer>,
        back: &mpsc::Sender<Box<Mixer>>,
        back_rx: &mpsc::Receiver<Box<Mixer>>,
        stats: &Arc<EngineStats>,
    ) -> Result<RunningStream, (DeviceError, Option<Box<Mixer>>)> {
        self.start(mixer, back, back_rx, stats, build_output)
    }

    /// Builds and starts a capture stream around `processor`, which comes back
    /// through `back` when the stream closes or the build fails.
    pub fn start_input(
        self,
        processor: Box<InputProcessor>,
        back: &mpsc::Sender<Box<InputProcessor>>,
        back_rx: &mpsc::Receiver<Box<InputProcessor>>,
        stats: &Arc<EngineStats>,
    ) -> Result<RunningStream, (DeviceError, Option<Box<InputProcessor>>)> {
        self.start(processor, back, back_rx, stats, build_input)
    }

    /// Tries the requested fixed period, then the backend's default.
    fn start<P>(
        self,
        processor: Box<P>,
        back: &mpsc::Sender<Box<P>>,
        back_rx: &mpsc::Receiver<Box<P>>,
        stats: &Arc<EngineStats>,
        build: BuildStream<P>,
    ) -> Result<RunningStream, (DeviceError, Option<Box<P>>)> {
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
            let on_error: OnError = Box::new(move |e: cpal::Error| h.report(e, &s));
            let built = build(
                &self.device,
                config,
                self.config.sample_format(),
                holder,
                on_error,
            );
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
                    // The failed build dropped its callback, which handed the processor
                    // back; wait for it (a build that timed out may hand it back late).
                    match back_rx.recv_timeout(OPEN_TIMEOUT * 2) {
                        Ok(p) => processor = p,
                        Err(_) => {
                            // cpal owns a failed build's callback and drops it with the
                            // stream; one that has not yet is reported, not trusted.
                            let err = DeviceError::Open {
                                device: device_name(&self.device),
                                reason: format!(
                                    "{last_err}; the backend has not released the stream"
                                ),
                            };
                            return Err((err, None));
                        }
                    }
                }
            }
        }
        let err = DeviceError::Open {
            device: device_name(&self.device),
            reason: last_err,
        };
        Err((err, Some(processor)))
    }
}
