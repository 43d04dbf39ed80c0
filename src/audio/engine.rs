//! The engine handle: the control side of the audio engine.
//!
//! It builds the mixer, starts the supervisor, and turns calls (play, stop, gain,
//! open input) into ring messages. A janitor thread drains finished voices and events
//! from the mixer, drops them here (never on the audio thread) and wakes waiters.
//! Nothing here runs on the audio thread; locks here are never contended by it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::capture::{InputProcessor, LostInput, MAX_TAPS, TapCommand, TapSink};
use super::command::{Command, Event, Returned};
use super::device::{DeviceError, DeviceSpec, StreamPlan};
use super::mixer::{Mixer, MixerParams, MixerRings};
use super::stats::{EngineStats, StatsSnapshot};
use super::supervisor::{EngineInfo, Supervisor, SupervisorMsg, SupervisorSetup};
use super::voice::{EndReason, Voice, VoiceId, VoiceSource};
use crate::domain::{Amplitude, AudioFormat};
use crate::guard::lock;

/// Default voice capacity.
pub const DEFAULT_VOICES: usize = 128;
/// Default requested period in frames.
pub const DEFAULT_PERIOD: u32 = 256;
/// Fade applied when stopping a voice.
pub const STOP_FADE: Duration = Duration::from_millis(8);
const COMMAND_CAPACITY: usize = 1024;
const EVENT_CAPACITY: usize = 1024;
const TAP_COMMAND_CAPACITY: usize = 16;
/// Callbacks to see before the engine counts as running steadily.
const STEADY_CALLBACKS: u64 = 8;
const STEADY_TIMEOUT: Duration = Duration::from_secs(1);
const JANITOR_TICK: Duration = Duration::from_millis(2);
/// How long the janitor naps when no voice is in flight (a play wakes it at once).
const JANITOR_IDLE: Duration = Duration::from_millis(50);
/// Mix tap ring length in seconds.
const MIX_TAP_SECONDS: f64 = 0.5;
/// Ended voices remembered for `wait` before the oldest are forgotten.
const MAX_REMEMBERED: usize = 4096;

/// How to start an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Output device.
    pub output: DeviceSpec,
    /// Input device (opened on demand).
    pub input: DeviceSpec,
    /// Requested period (frames).
    pub period_frames: u32,
    /// Voice slots.
    pub voice_capacity: usize,
    /// Use the silent null backend.
    pub no_audio: bool,
    /// Format of the null backend when no device decides it.
    pub null_format: AudioFormat,
    /// Speed of the null backend's clock relative to real time (tests only).
    pub null_speed: f64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            output: DeviceSpec::Default,
            input: DeviceSpec::Default,
            period_frames: DEFAULT_PERIOD,
            voice_capacity: DEFAULT_VOICES,
            no_audio: false,
            null_format: AudioFormat::new(48_000, 2),
            null_speed: 1.0,
        }
    }
}

/// Engine failures, by what the caller can do about them.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The chosen device is missing or unusable.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// Too many voices are queued or playing; try again when some end.
    #[error("too many sounds in flight ({0}); wait for some to end")]
    Busy(usize),
    /// Too many input taps are open.
    #[error("too many input consumers (at most {MAX_TAPS})")]
    TooManyTaps,
    /// The engine is shutting down.
    #[error("audio engine stopped")]
    Stopped,
    /// A thread of the engine could not be started.
    #[error("cannot start an audio thread")]
    Thread(#[source] std::io::Error),
}

/// What became of a voice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceOutcome {
    /// Why it ended.
    pub reason: EndReason,
    /// Frames it rendered.
    pub frames_played: u64,
    /// Blocks in which its stream ran dry.
    pub starved_blocks: u32,
    /// Samples a live stream skipped to keep its delay bounded.
    pub skipped_samples: u64,
    /// Play command → callback that started it.
    pub trigger_to_callback: Option<Duration>,
}

/// A voice's state as the control side knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VoiceState {
    /// Sent, not yet started.
    Queued,
    /// Started; the latency of its start.
    Playing {
        /// Play command → callback that started it.
        trigger_to_callback: Duration,
    },
    /// Ended.
    Ended(VoiceOutcome),
}

/// Options for one play.
#[derive(Debug, Clone, Copy)]
pub struct PlayOptions {
    /// Linear gain.
    pub gain: Amplitude,
    /// Absolute engine frame to start at (sample-accurate), if any.
    pub start_frame: Option<u64>,
    /// When the play was asked for (a key press), if earlier than this call: the
    /// trigger latency is measured from it. `None`: now.
    pub trigger: Option<std::time::Instant>,
}

impl Default for PlayOptions {
    fn default() -> Self {
        Self {
            gain: Amplitude::ONE,
            start_frame: None,
            trigger: None,
        }
    }
}

/// Samples captured from the input device, as a ring to read from.
pub struct InputTap {
    /// Interleaved f32 at `format`.
    pub ring: rtrb::Consumer<f32>,
    /// The capture format.
    pub format: AudioFormat,
    /// Samples this tap lost because its ring was full.
    pub dropped: Arc<AtomicU64>,
    attached: Option<TapGuard>,
}

impl InputTap {
    /// Appends every whole frame waiting in the ring to `out` (a worker's read; never
    /// called on the audio thread). Returns how many samples it appended.
    pub fn drain_into(&mut self, out: &mut Vec<f32>) -> usize {
        let ch = usize::from(self.format.channels.max(1));
        let avail = self.ring.slots() / ch * ch;
        match self.ring.read_chunk(avail) {
            Ok(chunk) => {
                let (a, b) = chunk.as_slices();
                out.extend_from_slice(a);
                out.extend_from_slice(b);
                chunk.commit_all();
                avail
            }
            Err(_) => 0,
        }
    }

    /// Frames of silence the capture processor has put in its taps so far for input
    /// the device lost, less those taken back (see [`super::gaps`]).
    pub fn filled_frames(&self) -> u64 {
        self.attached
            .as_ref()
            .map_or(0, |g| g.shared.stats.snapshot().lost_frames_filled())
    }

    /// Splits the tap into its ring and the guard that keeps it attached, for a ring
    /// that is to be read elsewhere (a voice): the tap stays fed while the guard lives.
    pub fn into_parts(mut self) -> (rtrb::Consumer<f32>, TapGuard) {
        let (_, empty) = rtrb::RingBuffer::new(0);
        let ring = std::mem::replace(&mut self.ring, empty);
        let guard = self.attached.take();
        // The guard is always present until here: only this method takes it.
        (
            ring,
            guard.expect("an input tap holds its guard until split"),
        )
    }
}

impl Drop for InputTap {
    // Having a Drop impl makes closures capture the whole tap, never only its ring:
    // a closure that moved just `tap.ring` would silently detach the tap.
    fn drop(&mut self) {
        drop(self.attached.take());
    }
}

/// Detaches its tap from the capture processor when dropped.
pub struct TapGuard {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        self.shared.send_tap(TapCommand::Detach(self.id));
        self.shared.open_taps.fetch_sub(1, Ordering::AcqRel);
    }
}

struct VoiceBook {
    states: HashMap<VoiceId, VoiceState>,
    ended_order: std::collections::VecDeque<VoiceId>,
}

struct Shared {
    commands: Mutex<rtrb::Producer<Command>>,
    tap_commands: Mutex<Option<rtrb::Producer<TapCommand>>>,
    stats: Arc<EngineStats>,
    params: Arc<MixerParams>,
    format: AudioFormat,
    fade_frames: u32,
    next_id: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: usize,
    book: Mutex<VoiceBook>,
    changed: Condvar,
    running: AtomicBool,
    open_taps: AtomicUsize,
}

impl Shared {
    fn send(&self, cmd: Command) -> Result<(), Command> {
        lock(&self.commands)
            .push(cmd)
            .map_err(|rtrb::PushError::Full(c)| c)
    }

    fn send_tap(&self, cmd: TapCommand) {
        if let Some(p) = lock(&self.tap_commands).as_mut() {
            let _ = p.push(cmd);
        }
    }
}

/// The audio engine. Dropping it stops the streams.
pub struct Engine {
    shared: Arc<Shared>,
    info: Arc<Mutex<EngineInfo>>,
    input_spec: DeviceSpec,
    supervisor_tx: mpsc::Sender<SupervisorMsg>,
    supervisor: Option<JoinHandle<()>>,
    janitor: Option<JoinHandle<()>>,
    mix_tap: Mutex<Option<rtrb::Consumer<f32>>>,
    tap_returns: Arc<Mutex<Option<rtrb::Consumer<Box<TapSink>>>>>,
    next_tap: AtomicU64,
}

impl Engine {
    /// Opens the output (or the null backend) and starts the engine.
    ///
    /// An explicitly chosen device that does not exist is an error; when the default
    /// device cannot be used, the engine says so once and runs on the null backend.
    pub fn start(config: EngineConfig) -> Result<Engine, EngineError> {
        let plan = if config.no_audio {
            None
        } else {
            match StreamPlan::output(&config.output, config.period_frames, None) {
                Ok(p) => Some(p),
                Err(e) if config.output != DeviceSpec::Default => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(
                        "no usable audio output ({e}); playing on the silent null backend"
                    );
                    None
                }
            }
        };
        let format = plan.as_ref().map_or(config.null_format, |p| p.format());
        let voice_capacity = config.voice_capacity.max(1);
        let max_in_flight = voice_capacity + COMMAND_CAPACITY;
        let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(COMMAND_CAPACITY);
        let (ret_tx, ret_rx) = rtrb::RingBuffer::new(max_in_flight);
        let (ev_tx, ev_rx) = rtrb::RingBuffer::new(EVENT_CAPACITY);
        let tap_len = (f64::from(format.sample_rate) * MIX_TAP_SECONDS) as usize
            * usize::from(format.channels);
        let (mix_tx, mix_rx) = rtrb::RingBuffer::new(tap_len.max(1024));
        let stats = Arc::new(EngineStats::default());
        let params = Arc::new(MixerParams::default());
        let rings = MixerRings {
            commands: cmd_rx,
            returns: ret_tx,
            events: ev_tx,
            tap: Some(mix_tx),
        };
        let mixer = Box::new(Mixer::new(
            format,
            voice_capacity,
            max_in_flight,
            rings,
            params.clone(),
            stats.clone(),
        ));
        let fade_frames = (STOP_FADE.as_secs_f64() * f64::from(format.sample_rate)) as u32;
        let shared = Arc::new(Shared {
            commands: Mutex::new(cmd_tx),
            tap_commands: Mutex::new(None),
            stats: stats.clone(),
            params,
            format,
            fade_frames,
            next_id: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            max_in_flight,
            book: Mutex::new(VoiceBook {
                states: HashMap::new(),
                ended_order: Default::default(),
            }),
            changed: Condvar::new(),
            running: AtomicBool::new(true),
            open_taps: AtomicUsize::new(0),
        });
        let (sup_tx, sup_rx) = mpsc::channel();
        let setup = SupervisorSetup {
            spec: config.output.clone(),
            period: config.period_frames,
            no_audio: config.no_audio,
            null_speed: config.null_speed,
            stats,
        };
        let (supervisor, info) =
            Supervisor::spawn(setup, plan, mixer, sup_rx).map_err(EngineError::Thread)?;
        let tap_returns = Arc::new(Mutex::new(None));
        let janitor = spawn_janitor(shared.clone(), ret_rx, ev_rx, tap_returns.clone())
            .map_err(EngineError::Thread)?;
        let engine = Engine {
            shared,
            info,
            input_spec: config.input,
            supervisor_tx: sup_tx,
            supervisor: Some(supervisor),
            janitor: Some(janitor),
            mix_tap: Mutex::new(Some(mix_rx)),
            tap_returns,
            next_tap: AtomicU64::new(1),
        };
        engine.wait_steady();
        Ok(engine)
    }

    /// Waits until the output has called back a few times: devices (and sound
    /// servers) are irregular just after a stream starts, and a play sent then would
    /// wait longer than a period.
    fn wait_steady(&self) {
        let deadline = Instant::now() + STEADY_TIMEOUT;
        while self.shared.stats.callbacks.load(Ordering::Relaxed) < STEADY_CALLBACKS
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The rate and channels of the mix (and of every voice source).
    pub fn format(&self) -> AudioFormat {
        self.shared.format
    }

    /// What the engine runs on now.
    pub fn info(&self) -> EngineInfo {
        lock(&self.info).clone()
    }

    /// Live figures.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    /// When the most recent streamed-voice starvations began, in `CLOCK_MONOTONIC`
    /// milliseconds, oldest first.
    pub fn starvation_times(&self) -> Vec<f64> {
        self.shared.stats.starvations.recent_ms()
    }

    /// The shared live counters (for meters that poll without copying).
    pub fn stats_handle(&self) -> Arc<EngineStats> {
        self.shared.stats.clone()
    }

    /// Frames between a voice's start and its first sample at the output
    /// (the limiter's look-ahead).
    pub fn mix_latency_frames(&self) -> usize {
        super::mixer::BLOCK_FRAMES
    }

    /// Plays `source` (interleaved, already in [`Engine::format`]).
    pub fn play(&self, source: VoiceSource, opts: PlayOptions) -> Result<VoiceId, EngineError> {
        let sh = &self.shared;
        if !sh.running.load(Ordering::Acquire) {
            return Err(EngineError::Stopped);
        }
        if sh.in_flight.fetch_add(1, Ordering::AcqRel) >= sh.max_in_flight {
            sh.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Busy(sh.max_in_flight));
        }
        let id = VoiceId(sh.next_id.fetch_add(1, Ordering::Relaxed));
        let mut voice = Voice::new(id, source, opts.gain.0.max(0.0));
        if let Some(f) = opts.start_frame {
            voice = voice.start_at(f);
        }
        if let Some(t) = opts.trigger {
            voice = voice.triggered_at(t);
        }
        lock(&sh.book).states.insert(id, VoiceState::Queued);
        if sh.send(Command::Play(Box::new(voice))).is_err() {
            lock(&sh.book).states.remove(&id);
            sh.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::Busy(COMMAND_CAPACITY));
        }
        if let Some(j) = &self.janitor {
            j.thread().unpark();
        }
        Ok(id)
    }

    /// Plays a whole in-memory sound.
    pub fn play_buffer(
        &self,
        samples: Arc<[f32]>,
        gain: Amplitude,
    ) -> Result<VoiceId, EngineError> {
        self.play(
            VoiceSource::Buffer(samples),
            PlayOptions {
                gain,
                ..PlayOptions::default()
            },
        )
    }

    /// Fades a voice out and ends it.
    pub fn stop(&self, id: VoiceId) {
        let _ = self.shared.send(Command::Stop {
            id,
            fade_frames: self.shared.fade_frames,
        });
    }

    /// Fades every voice out.
    pub fn stop_all(&self) {
        let _ = self.shared.send(Command::StopAll {
            fade_frames: self.shared.fade_frames,
        });
    }

    /// Changes a playing voice's gain (smoothed).
    pub fn set_gain(&self, id: VoiceId, gain: Amplitude) {
        let _ = self.shared.send(Command::SetGain { id, gain: gain.0 });
    }

    /// Sets the master gain (smoothed).
    pub fn set_master_gain(&self, gain: Amplitude) {
        self.shared.params.master_gain.store(gain.0.max(0.0));
    }

    /// The state of a voice, if the engine still remembers it.
    pub fn state(&self, id: VoiceId) -> Option<VoiceState> {
        lock(&self.shared.book).states.get(&id).copied()
    }

    /// Waits until the voice has started (or ended), up to `timeout`.
    pub fn wait_started(&self, id: VoiceId, timeout: Duration) -> Option<VoiceState> {
        self.wait_until(id, timeout, |s| !matches!(s, VoiceState::Queued))
    }

    /// Waits until the voice ends, up to `timeout`.
    pub fn wait_ended(&self, id: VoiceId, timeout: Duration) -> Option<VoiceOutcome> {
        match self.wait_until(id, timeout, |s| matches!(s, VoiceState::Ended(_)))? {
            VoiceState::Ended(o) => Some(o),
            _ => None,
        }
    }

    fn wait_until(
        &self,
        id: VoiceId,
        timeout: Duration,
        done: impl Fn(&VoiceState) -> bool,
    ) -> Option<VoiceState> {
        let deadline = Instant::now() + timeout;
        let mut book = lock(&self.shared.book);
        loop {
            let state = *book.states.get(&id)?;
            if done(&state) {
                return Some(state);
            }
            let now = Instant::now();
            if now >= deadline {
                return Some(state);
            }
            book = self
                .shared
                .changed
                .wait_timeout(book, deadline - now)
                .map_or_else(|e| e.into_inner().0, |r| r.0);
        }
    }

    /// Takes the ring that receives the mix (after the limiter); only one taker.
    pub fn take_mix_tap(&self) -> Option<rtrb::Consumer<f32>> {
        lock(&self.mix_tap).take()
    }

    /// Opens the input device (once, on first call) and attaches a new tap whose ring
    /// holds `seconds` of audio in the device's own channel layout.
    /// Input the device lost comes as silence of its length (the tap keeps the
    /// device's time).
    pub fn open_input(&self, seconds: f64) -> Result<InputTap, EngineError> {
        self.open_input_as(seconds, None, LostInput::Silence)
    }

    /// Like [`Engine::open_input`], with the capture processor mapping each frame to
    /// `channels` channels (mono spread to all, many averaged to mono, otherwise the
    /// first ones), so a consumer at the output's layout needs no worker; and with
    /// `lost` saying what the tap gets where the device lost input.
    pub fn open_input_as(
        &self,
        seconds: f64,
        channels: Option<u16>,
        lost: LostInput,
    ) -> Result<InputTap, EngineError> {
        let device = self.ensure_input()?;
        let format = AudioFormat {
            channels: channels.unwrap_or(device.channels).max(1),
            ..device
        };
        let len = (f64::from(format.sample_rate) * seconds.max(0.05)) as usize
            * usize::from(format.channels);
        let (tx, rx) = rtrb::RingBuffer::new(len);
        let id = self.next_tap.fetch_add(1, Ordering::Relaxed);
        if self.shared.open_taps.fetch_add(1, Ordering::AcqRel) >= MAX_TAPS {
            self.shared.open_taps.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::TooManyTaps);
        }
        let dropped = Arc::new(AtomicU64::new(0));
        self.shared.send_tap(TapCommand::Attach(Box::new(TapSink {
            id,
            ring: tx,
            channels: usize::from(format.channels),
            dropped: dropped.clone(),
            lost,
        })));
        Ok(InputTap {
            ring: rx,
            format,
            dropped,
            attached: Some(TapGuard {
                id,
                shared: self.shared.clone(),
            }),
        })
    }

    /// The input device's format (the device is opened on the first call).
    pub fn input_format(&self) -> Result<AudioFormat, EngineError> {
        self.ensure_input()
    }

    fn ensure_input(&self) -> Result<AudioFormat, EngineError> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let shared = self.shared.clone();
        let returns = self.tap_returns.clone();
        let make = Box::new(move |format: AudioFormat| {
            let (cmd_tx, cmd_rx) = rtrb::RingBuffer::new(TAP_COMMAND_CAPACITY);
            let (ret_tx, ret_rx) = rtrb::RingBuffer::new(TAP_COMMAND_CAPACITY + MAX_TAPS);
            *lock(&shared.tap_commands) = Some(cmd_tx);
            *lock(&returns) = Some(ret_rx);
            Box::new(InputProcessor::new(
                format.channels,
                format.sample_rate,
                cmd_rx,
                ret_tx,
                shared.stats.clone(),
            ))
        });
        self.supervisor_tx
            .send(SupervisorMsg::OpenInput {
                spec: self.input_spec.clone(),
                make,
                reply: reply_tx,
            })
            .map_err(|_| EngineError::Stopped)?;
        Ok(reply_rx.recv().map_err(|_| EngineError::Stopped)??)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.running.store(false, Ordering::Release);
        let _ = self.supervisor_tx.send(SupervisorMsg::Shutdown);
        if let Some(s) = self.supervisor.take() {
            let _ = s.join();
        }
        if let Some(j) = self.janitor.take() {
            j.thread().unpark();
            let _ = j.join();
        }
    }
}

fn spawn_janitor(
    shared: Arc<Shared>,
    mut returns: rtrb::Consumer<Returned>,
    mut events: rtrb::Consumer<Event>,
    tap_returns: Arc<Mutex<Option<rtrb::Consumer<Box<TapSink>>>>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("jhack-janitor".into())
        .spawn(move || {
            loop {
                let running = shared.running.load(Ordering::Acquire);
                let mut changed = false;
                while let Ok(ev) = events.pop() {
                    let Event::Started {
                        id,
                        trigger_to_callback_ns,
                        ..
                    } = ev;
                    let mut book = lock(&shared.book);
                    if let Some(s @ VoiceState::Queued) = book.states.get_mut(&id) {
                        *s = VoiceState::Playing {
                            trigger_to_callback: Duration::from_nanos(trigger_to_callback_ns),
                        };
                        changed = true;
                    }
                }
                while let Ok(Returned { voice, reason }) = returns.pop() {
                    shared.in_flight.fetch_sub(1, Ordering::AcqRel);
                    let mut book = lock(&shared.book);
                    let started = match book.states.get(&voice.id()) {
                        Some(VoiceState::Playing {
                            trigger_to_callback,
                        }) => Some(*trigger_to_callback),
                        _ => None,
                    };
                    let outcome = VoiceOutcome {
                        reason,
                        frames_played: voice.frames_played(),
                        starved_blocks: voice.starved_blocks(),
                        skipped_samples: voice.skipped_samples(),
                        trigger_to_callback: started,
                    };
                    book.states.insert(voice.id(), VoiceState::Ended(outcome));
                    book.ended_order.push_back(voice.id());
                    while book.ended_order.len() > MAX_REMEMBERED {
                        if let Some(old) = book.ended_order.pop_front() {
                            book.states.remove(&old);
                        }
                    }
                    drop(book);
                    drop(voice); // freed here, never on the audio thread
                    changed = true;
                }
                if let Some(r) = lock(&tap_returns).as_mut() {
                    while let Ok(tap) = r.pop() {
                        drop(tap);
                    }
                }
                if changed {
                    shared.changed.notify_all();
                }
                if !running {
                    break;
                }
                if shared.in_flight.load(Ordering::Acquire) > 0 {
                    std::thread::sleep(JANITOR_TICK);
                } else {
                    std::thread::park_timeout(JANITOR_IDLE);
                }
            }
        })
}
