//! The intercom's adaptive jitter buffer: a sans-IO state machine. Datagrams go in
//! through [`JitterBuffer::push`] with the receiver's time, and the output side asks
//! [`JitterBuffer::pull`] for each next frame, getting back what to do with it (decode
//! a packet, decode another packet's FEC, conceal, play silence, or nothing) and by
//! how much to time-stretch it.
//!
//! Must never: do I/O, read a clock (time is passed in as `now_us`, microseconds of the
//! receiver's monotonic clock), spawn threads, allocate after [`JitterBuffer::new`]
//! (every buffer is sized there and bounded; a pull at most clones a refcounted
//! payload), grow without bound, or panic on any input (hostile packets are rejected
//! and counted by reason).
//!
//! # How the depth is chosen
//! - **Lateness, not loss, sets the target.** Each primary packet's delay is measured
//!   against the fastest packets of the stream, corrected for the skew between the
//!   sender's sample clock and ours (see [`super::lateness`]). The target depth is a
//!   high percentile of that relative delay over a window of recent packets, plus a
//!   small margin, clamped to `[min_target_us, max_target_us]`. A lost packet adds
//!   nothing to the statistics; a late one does (so the buffer adapts to it); a
//!   redundant copy never does (it arrives a frame late by construction).
//! - **The repair horizon is a fixed, conditional wait.** A redundant copy (or the
//!   Opus in-band FEC) of frame N arrives with datagram N+1, one frame later (N+2 for
//!   the second copy). Waiting for it costs `repair_frames` frames of latency on
//!   every frame and only pays off when frames are lost. So the horizon is added to
//!   the target only while the loss rate over the window exceeds
//!   `repair_loss_threshold` (off again below half of it): a clean network pays no
//!   repair wait; a lossy one pays exactly `repair_frames` frames, the same at 5 % as
//!   at 20 % loss — the wait never ratchets up with the loss.
//!
//! # How the depth is held
//! The depth `B(now)` is how far the next ts to play lags behind what the fastest path
//! has delivered by now; a packet is on time iff its relative delay ≤ B. At each pull
//! the error `B − target` is corrected:
//! - shallower than the target by more than the margin (late packets just raised the
//!   target, so packets below the percentile are being lost): grow at once, by
//!   inserting a concealment (a silence, in a silence) of the deficit, rounded up to
//!   Opus's 2.5 ms grain and at most a frame, without advancing the playout position
//!   (counted in `inserted_to_grow`);
//! - otherwise a PI controller sets the stretch `ratio` (±`max_stretch`): quick to
//!   deepen, slow to shrink, and its integral learns the drift between the sender's
//!   clock and the sound card's (±0.1 % leaves well under 1 ms of error);
//! - deeper than the target by more than a frame plus a hysteresis while the output
//!   would be silence anyway: whole silent frames are dropped, one per pull (counted
//!   in `dropped_to_shrink`). A frame of speech is never dropped to shrink.
//!
//! The ratio and the dropping act on the shallowest recent depth (an envelope that
//! follows a fall at once and rises at most 10 ms per second), so an output that
//! pulls several frames at the same `now_us` is held with the last of them at the
//! target. The loss rate that switches the repair horizon counts primary datagrams
//! that never arrived, but no more than 8 in a row: a longer run is an outage, which
//! no redundancy repairs.
//!
//! # Playout
//! Pulls return [`Action::Idle`] until a stream's first frame is due within a frame;
//! the pull that starts playout returns a lead-in [`Action::Silence`], shorter than
//! a frame, so that the first frame plays exactly at its arrival + target (when the
//! first pull after the arrival is already past that, playout starts at once, up to
//! a pull period deeper, and the ratio drains the excess). A missing frame is
//! decoded from the next packet's FEC when that is here (fec profile); else it is
//! silence if the seqs around it are contiguous (DTX); else it is concealed, at most
//! `max_conceal` in a row, the last fading out, then silence. After `idle_after_us`
//! with nothing received and nothing buffered the buffer goes idle, and restarts the
//! same way when packets return. A new stream id resets the stream's state (the
//! counters are kept). A stalled output (depth beyond `max_target_us` + 250 ms)
//! skips ahead to the target, counting the frames skipped in `dropped_overflow`.
//!
//! # The consumer's side
//! - `now_us` is when the output needs the frame. A consumer that pulls a callback's
//!   worth of frames at once may pass the callback's time for all of them (the depth
//!   then includes the callback period), or better, that time plus the duration
//!   already pulled in the callback (exact).
//! - [`Action::Decode`]: `decode(payload, fec = false)`; [`Action::DecodeFec`]:
//!   `decode(payload, fec = true)` into `samples` samples (the same payload is then
//!   decoded normally at the next pull); [`Action::Conceal`]: `decode` with no packet
//!   (Opus PLC) for `samples`, fading to silence over it when `fade_out`;
//!   [`Action::Silence`]: `samples` of silence (or comfort noise); [`Action::Idle`]:
//!   nothing is playing, output silence for the output's own period.
//! - Resample what the action produced by [`Pull::ratio`] (output length = samples ×
//!   ratio, carrying the fraction over), then play it.
//! - When [`Pull::stream`] changes, a new talk session starts: reset the decoder.
//!
//! # Layout
//! This file is the state machine; `store` holds the waiting frames, `seq` which
//! sequence numbers arrived or were lost (and the loss rate), `control` the stretch
//! controller.

use bytes::Bytes;

use crate::voice::lateness::Lateness;
use control::Control;
use seq::{SeqStatus, SeqTracker};
use store::{Frame, Source, Store, Stored};

mod control;
mod seq;
mod store;

/// Largest payload accepted (bytes): one datagram's worth.
pub const MAX_PAYLOAD: usize = 1500;

/// Opus frame lengths at 48 kHz (2.5, 5, 10, 20, 40 and 60 ms); other rates scale.
const FRAME_SIZES_48K: [u32; 6] = [120, 240, 480, 960, 1920, 2880];
/// Sample rates Opus decodes at.
const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// A ts more than this ahead of the fastest path is absurd (µs).
const MAX_AHEAD_US: f64 = 3_000_000.0;
/// A ts lagging more than this is absurd (µs), not merely late.
const MAX_BEHIND_US: f64 = 3_000_000.0;
/// Consecutive rejections (for stream, seq or ts) after which the packets are taken
/// to be right and the buffer wrong: it restarts the stream on them.
const RESYNC_AFTER: u32 = 16;
/// Stream ids remembered as ended: their stragglers are rejected.
const RETIRED_STREAMS: usize = 4;
/// Seqs remembered for duplicate detection.
const SEQ_MEMORY: u64 = 128;
/// A seq not seen by the time one this far above it arrived is lost.
const SEQ_LAG: u64 = 64;
/// Losses in a row beyond this many are an outage: redundancy cannot repair them, so
/// they do not count toward the loss rate that switches the repair horizon on.
const OUTAGE_RUN: u64 = 8;
/// Seqs the loss rate must have seen before it can switch the repair horizon on.
const MIN_LOSS_SEQS: usize = 100;
/// Silent frames are dropped only while the depth exceeds the target by a frame plus
/// this (µs).
const SHRINK_HYSTERESIS_US: f64 = 1_000.0;
/// While the window spans less than this (µs), a new stream keeps at least the
/// previous stream's target (same peer, same network).
const WARMUP_US: f64 = 2_000_000.0;
/// Frames buffered beyond the largest target, as time (µs).
const STORE_SLACK_US: f64 = 300_000.0;
/// Depth beyond `max_target_us` + this (µs) means the output stalled: skip ahead.
const OVERFLOW_SLACK_US: f64 = 250_000.0;
/// Bounds on the frames buffered.
const MIN_STORE: usize = 16;
const MAX_STORE: usize = 4096;
/// Bounds on the window of the statistics (packets).
const MIN_WINDOW: usize = 64;
const MAX_WINDOW: usize = 16_384;
/// Proportional gain of the stretch controller when too deep (per second of depth
/// error): shrinking is slow, 10 ms excess asks for the full ±0.5 %.
const KP_SHRINK: f64 = 0.5;
/// Proportional gain when too shallow: packets are being lost, so 1 ms of deficit
/// already asks for +0.4 % (growing faster than that is the insertion's job).
const KP_GROW: f64 = 4.0;
/// Integral gain (per second² of depth error): `KP_SHRINK²/8`, well damped; it
/// learns the drift between the sender's clock and the sound card's.
const KI: f64 = KP_SHRINK * KP_SHRINK / 8.0;
/// The integral runs only within this much of the target (µs), so transients do
/// not wind it up.
const INTEGRAL_BAND_US: f64 = 5_000.0;
/// Smallest deficit (µs) that grows the buffer at once, whatever the margin.
const MIN_GROW_THRESHOLD_US: f64 = 500.0;
/// How fast the controlled error may rise (µs per second). The controller acts on
/// the shallowest recent depth: it follows a fall at once and a rise at this rate,
/// so an output that pulls several frames at the same time (a sawtooth of depths)
/// is held with its last pull, not its average, at the target.
const ENVELOPE_RISE_US_PER_S: f64 = 10_000.0;

/// Configuration of a [`JitterBuffer`]. Out-of-range values are clamped by
/// [`JitterConfig::sanitized`] (which [`JitterBuffer::new`] applies).
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// Sample rate of ts and frame lengths (Hz; an Opus rate, 48000).
    pub sample_rate: u32,
    /// Nominal frame length (samples): an Opus frame length, 120 (2.5 ms) to 2880
    /// (60 ms) at 48 kHz. Concealment and silence are produced in frames of this
    /// length; frames of other Opus lengths are accepted too.
    pub frame_samples: u32,
    /// Percentile of relative delay the target covers (0.5..=1.0, e.g. 0.97).
    pub percentile: f64,
    /// Window of the statistics (µs of packets at the nominal frame rate; silences do
    /// not age it).
    pub window_us: u64,
    /// Added to the percentile (µs).
    pub margin_us: u64,
    /// Smallest target depth (µs).
    pub min_target_us: u64,
    /// Largest target depth (µs).
    pub max_target_us: u64,
    /// Largest time-stretch either way (0.005 = ±0.5 %).
    pub max_stretch: f64,
    /// How many later datagrams can repair a lost frame (redundant copies or Opus
    /// in-band FEC): 0, 1 or 2. It is the repair horizon, in frames, waited for while
    /// the loss rate exceeds `repair_loss_threshold`.
    pub repair_frames: u32,
    /// Robust profile: a frame's FEC is in the next frame's payload, so a missing frame
    /// whose successor is here is decoded from the successor ([`Action::DecodeFec`]).
    pub fec: bool,
    /// Consecutive frames concealed before falling back to silence.
    pub max_conceal: u32,
    /// Loss rate over the window above which the repair horizon is waited for.
    pub repair_loss_threshold: f64,
    /// Nothing received and nothing buffered for this long (µs): go idle.
    pub idle_after_us: u64,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            sample_rate: 48_000,
            frame_samples: 480,
            percentile: 0.97,
            window_us: 10_000_000,
            margin_us: 1_000,
            min_target_us: 0,
            max_target_us: 400_000,
            max_stretch: 0.005,
            repair_frames: 1,
            fec: false,
            max_conceal: 3,
            repair_loss_threshold: 0.01,
            idle_after_us: 1_000_000,
        }
    }
}

impl JitterConfig {
    /// This configuration with every field brought into its valid range: an unknown
    /// rate becomes 48000, an unknown frame length 10 ms, a non-finite number its
    /// default.
    pub fn sanitized(mut self) -> Self {
        let default = Self::default();
        if !OPUS_RATES.contains(&self.sample_rate) {
            self.sample_rate = default.sample_rate;
        }
        if !frame_sizes(self.sample_rate).contains(&self.frame_samples) {
            self.frame_samples = self.sample_rate / 100;
        }
        self.percentile = finite_or(self.percentile, default.percentile).clamp(0.5, 1.0);
        self.window_us = self.window_us.clamp(1_000_000, 120_000_000);
        self.margin_us = self.margin_us.min(100_000);
        self.max_target_us = self.max_target_us.clamp(10_000, 2_000_000);
        self.min_target_us = self.min_target_us.min(self.max_target_us);
        self.max_stretch = finite_or(self.max_stretch, default.max_stretch).clamp(0.0, 0.05);
        self.repair_frames = self.repair_frames.min(2);
        self.max_conceal = self.max_conceal.min(50);
        self.repair_loss_threshold =
            finite_or(self.repair_loss_threshold, default.repair_loss_threshold).clamp(0.0, 1.0);
        self.idle_after_us = self.idle_after_us.clamp(100_000, 60_000_000);
        self
    }

    /// Nominal frame duration (µs).
    pub fn frame_us(&self) -> f64 {
        f64::from(self.frame_samples) * 1e6 / f64::from(self.sample_rate.max(1))
    }
}

/// One frame out of a datagram, as the packet parser hands it over.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// Talk session id: a new one resets the buffer.
    pub stream: u32,
    /// Datagram counter (unwrapped): +1 per frame sent, not advancing in DTX silence.
    pub seq: u64,
    /// Sender capture time of the frame's first sample (unwrapped, in samples);
    /// advances across frames not sent.
    pub ts: u64,
    /// Frame length (samples).
    pub samples: u32,
    /// The Opus packet.
    pub payload: Bytes,
    /// False for a redundant copy of an earlier frame carried by a later datagram.
    pub primary: bool,
}

/// Why a packet was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    /// No payload bytes.
    EmptyPayload,
    /// More than [`MAX_PAYLOAD`] bytes.
    OversizedPayload,
    /// A frame length Opus does not have.
    BadFrameSize,
    /// ts more than a few seconds ahead of what the stream can have sent by now.
    TsAhead,
    /// ts more than a few seconds behind: not late, absurd.
    TsBehind,
    /// seq and ts disagree with the stream (a seq step needs at least a 2.5 ms ts step).
    SeqTsMismatch,
    /// A straggler from a stream that has ended.
    OldStream,
    /// Overlaps a buffered frame at another ts.
    Overlap,
    /// The buffer is full of newer frames.
    BufferFull,
}

impl Reject {
    /// Number of reasons (the length of [`JitterStats::rejected_by`]).
    pub const COUNT: usize = 9;
    /// Every reason, in the order of [`JitterStats::rejected_by`].
    pub const ALL: [Reject; Reject::COUNT] = [
        Reject::EmptyPayload,
        Reject::OversizedPayload,
        Reject::BadFrameSize,
        Reject::TsAhead,
        Reject::TsBehind,
        Reject::SeqTsMismatch,
        Reject::OldStream,
        Reject::Overlap,
        Reject::BufferFull,
    ];

    /// The reason in words.
    pub fn as_str(self) -> &'static str {
        match self {
            Reject::EmptyPayload => "empty payload",
            Reject::OversizedPayload => "payload too large",
            Reject::BadFrameSize => "not an Opus frame length",
            Reject::TsAhead => "ts too far ahead",
            Reject::TsBehind => "ts too far behind",
            Reject::SeqTsMismatch => "seq does not match ts",
            Reject::OldStream => "packet of an ended stream",
            Reject::Overlap => "overlaps a buffered frame",
            Reject::BufferFull => "buffer full",
        }
    }

    /// Position in [`JitterStats::rejected_by`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Buffered.
    Accepted,
    /// A redundant copy filled a hole.
    Repaired,
    /// Already held or played (or a redundant copy of such a frame).
    Duplicate,
    /// Its playout time has passed: not used (a primary still feeds the statistics).
    Late,
    /// Absurd or unusable, for this reason.
    Rejected(Reject),
    /// The first packet of a new stream: the buffer was reset and the packet buffered.
    NewStream,
}

/// What to play next, and how to stretch it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    /// What to play.
    pub action: Action,
    /// Resampling ratio for this frame: output length = decoded length × ratio
    /// (> 1.0 stretches it, so the buffer gets deeper). Within 1 ± `max_stretch`.
    pub ratio: f64,
    /// The stream this frame belongs to (`None` when idle). When it changes, a new
    /// talk session starts: reset the decoder before decoding.
    pub stream: Option<u32>,
}

/// What the output plays for one frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Decode this packet (fec = false).
    Decode {
        /// The Opus packet.
        payload: Bytes,
        /// Its frame length.
        samples: u32,
    },
    /// The frame is missing but its FEC is in the next frame's packet: decode this
    /// packet with fec = true (it is decoded again, normally, on the next pull).
    DecodeFec {
        /// The next frame's Opus packet.
        payload: Bytes,
        /// Length of the frame to recover.
        samples: u32,
    },
    /// Packet loss concealment (decode with no packet) for one frame.
    Conceal {
        /// Frame length.
        samples: u32,
        /// The last concealment in a row: fade to silence over this frame.
        fade_out: bool,
    },
    /// Silence (or comfort noise) for one frame: the sender is in DTX, or the
    /// concealment has faded out. The lead-in before a stream's first frame is shorter.
    Silence {
        /// Frame length.
        samples: u32,
    },
    /// No stream is playing: nothing to play.
    Idle,
}

/// Counters (in frames) and current figures of a [`JitterBuffer`]. The counters run
/// across streams until [`JitterBuffer::reset`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Primary frames received (first copies, late ones included).
    pub received: u64,
    /// Primary frames received again.
    pub duplicates: u64,
    /// Primary frames that arrived after their playout time.
    pub late: u64,
    /// Datagrams that never arrived (neither they nor a copy) and were not repaired by FEC.
    pub lost: u64,
    /// Frames decoded from their primary packet.
    pub decoded: u64,
    /// Frames decoded from a redundant copy.
    pub repaired_redundancy: u64,
    /// Frames decoded from the next frame's FEC.
    pub repaired_fec: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Frames of silence.
    pub silence_frames: u64,
    /// Silent frames skipped to make the buffer shallower.
    pub dropped_to_shrink: u64,
    /// Frames (concealed or silent) inserted to make the buffer deeper.
    pub inserted_to_grow: u64,
    /// Frames thrown away because the buffer overflowed (the output stalled).
    pub dropped_overflow: u64,
    /// Packets rejected.
    pub rejected: u64,
    /// Packets rejected, by [`Reject::index`].
    pub rejected_by: [u64; Reject::COUNT],
    /// Streams started.
    pub new_streams: u64,
    /// Current target depth (µs).
    pub target_us: f64,
    /// Depth at the last pull (µs).
    pub depth_us: f64,
    /// Ratio of the last pull.
    pub ratio: f64,
    /// How much faster the sender's sample clock runs than ours (ppm, estimated).
    pub skew_ppm: f64,
    /// Loss rate of primary datagrams over the window (0..=1), counting no more than
    /// 8 losses in a row (a longer run is an outage).
    pub loss_rate: f64,
    /// Frames buffered now.
    pub buffered: u32,
}

/// The last frame played from data.
#[derive(Debug, Clone, Copy)]
struct Played {
    seq: u64,
    end_ts: u64,
}

/// Playout state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing to play.
    Idle,
    /// Frames buffered, waiting for the target depth.
    Buffering,
    /// Playing.
    Playing,
}

/// What a missing frame is played as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    Conceal,
    Silence,
}

/// The adaptive jitter buffer (see the module documentation).
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    stream: Option<u32>,
    retired: [Option<u32>; RETIRED_STREAMS],
    retired_next: usize,
    lateness: Lateness,
    seqs: SeqTracker,
    store: Store,
    phase: Phase,
    /// The next ts to play; kept through idle as the floor below which packets are late.
    next_ts: Option<u64>,
    last_played: Option<Played>,
    conceal_run: u32,
    /// The last thing played was silence (or nothing yet): growing inserts silence.
    in_silence: bool,
    last_arrival_us: u64,
    control: Control,
    repair_on: bool,
    prior_target_us: f64,
    bad_run: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer for `cfg` (sanitized), with all its memory allocated.
    pub fn new(cfg: JitterConfig) -> Self {
        let cfg = cfg.sanitized();
        let frame_us = cfg.frame_us();
        let window =
            ((cfg.window_us as f64 / frame_us).ceil() as usize).clamp(MIN_WINDOW, MAX_WINDOW);
        let horizon_us = f64::from(cfg.repair_frames) * frame_us;
        let store = (((cfg.max_target_us as f64 + horizon_us + STORE_SLACK_US) / frame_us).ceil()
            as usize)
            .clamp(MIN_STORE, MAX_STORE);
        Self {
            lateness: Lateness::new(cfg.sample_rate, cfg.percentile, window),
            seqs: SeqTracker::new(window),
            store: Store::new(store),
            stream: None,
            retired: [None; RETIRED_STREAMS],
            retired_next: 0,
            phase: Phase::Idle,
            next_ts: None,
            last_played: None,
            conceal_run: 0,
            in_silence: true,
            last_arrival_us: 0,
            control: Control::default(),
            repair_on: false,
            prior_target_us: 0.0,
            bad_run: 0,
            stats: JitterStats {
                ratio: 1.0,
                ..JitterStats::default()
            },
            cfg,
        }
    }

    /// The configuration in force (sanitized).
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// Frames buffered now.
    pub fn buffered(&self) -> usize {
        self.store.frames.len()
    }

    /// Most frames ever buffered.
    pub fn capacity(&self) -> usize {
        self.store.cap
    }

    /// Whether a stream is playing (pulls return something other than [`Action::Idle`]).
    pub fn is_playing(&self) -> bool {
        self.phase == Phase::Playing
    }

    /// Counters and current figures.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            lost: self.seqs.lost,
            loss_rate: self.seqs.window.rate_or_zero(),
            skew_ppm: -self.lateness.skew() * 1e6,
            buffered: u32::try_from(self.store.frames.len()).unwrap_or(u32::MAX),
            target_us: self.target_us(),
            ..self.stats
        }
    }

    /// Forgets everything: stream, statistics, controller and counters.
    pub fn reset(&mut self) {
        self.clear_stream();
        self.stream = None;
        self.retired = [None; RETIRED_STREAMS];
        self.phase = Phase::Idle;
        self.control = Control::default();
        self.prior_target_us = 0.0;
        self.last_arrival_us = 0;
        self.seqs.lost = 0;
        self.stats = JitterStats {
            ratio: 1.0,
            ..JitterStats::default()
        };
    }

    /// Takes in one frame of a datagram that arrived at `now_us`.
    pub fn push(&mut self, now_us: u64, incoming: Incoming) -> PushOutcome {
        if let Some(reason) = self.shape_problem(&incoming) {
            return self.reject(reason);
        }
        let mut new_stream = false;
        if self.stream != Some(incoming.stream) {
            if self.is_retired(incoming.stream) && !self.resync_due() {
                return self.reject_for_stream(Reject::OldStream);
            }
            self.start_stream(incoming.stream);
            new_stream = true;
        } else if let Some(reason) = self.consistency_problem(now_us, &incoming) {
            if !self.resync_due() {
                return self.reject_for_stream(reason);
            }
            self.start_stream(incoming.stream);
            new_stream = true;
        }
        self.bad_run = 0;
        let outcome = self.admit(now_us, incoming);
        if new_stream {
            PushOutcome::NewStream
        } else {
            outcome
        }
    }

    /// Says what to play next at `now_us`, the time the output needs it.
    pub fn pull(&mut self, now_us: u64) -> Pull {
        if self.phase == Phase::Playing && self.absent_too_long(now_us) {
            self.go_idle();
        }
        if self.phase == Phase::Buffering
            && let Some(lead_in) = self.try_start(now_us)
        {
            self.stats.ratio = 1.0;
            return Pull {
                action: lead_in,
                ratio: 1.0,
                stream: self.stream,
            };
        }
        if self.phase != Phase::Playing {
            self.stats.ratio = 1.0;
            return Pull {
                action: Action::Idle,
                ratio: 1.0,
                stream: None,
            };
        }
        self.play(now_us)
    }

    // --- push ---

    /// Checks that need no state: payload and frame length.
    fn shape_problem(&self, incoming: &Incoming) -> Option<Reject> {
        if incoming.payload.is_empty() {
            Some(Reject::EmptyPayload)
        } else if incoming.payload.len() > MAX_PAYLOAD {
            Some(Reject::OversizedPayload)
        } else if !frame_sizes(self.cfg.sample_rate).contains(&incoming.samples) {
            Some(Reject::BadFrameSize)
        } else {
            None
        }
    }

    /// Checks against the stream: ts against the time, seq against ts.
    fn consistency_problem(&self, now_us: u64, incoming: &Incoming) -> Option<Reject> {
        if let Some(lag) = self.lateness.lag_us(now_us, incoming.ts) {
            if lag < -MAX_AHEAD_US {
                return Some(Reject::TsAhead);
            }
            if lag > MAX_BEHIND_US {
                return Some(Reject::TsBehind);
            }
        }
        let min_step = u64::from(frame_sizes(self.cfg.sample_rate)[0]);
        (!self.seqs.consistent(incoming.seq, incoming.ts, min_step))
            .then_some(Reject::SeqTsMismatch)
    }

    fn reject(&mut self, reason: Reject) -> PushOutcome {
        self.stats.rejected += 1;
        if let Some(count) = self.stats.rejected_by.get_mut(reason.index()) {
            *count += 1;
        }
        PushOutcome::Rejected(reason)
    }

    /// A rejection that, repeated [`RESYNC_AFTER`] times in a row, restarts the stream.
    fn reject_for_stream(&mut self, reason: Reject) -> PushOutcome {
        self.bad_run = self.bad_run.saturating_add(1);
        self.reject(reason)
    }

    fn resync_due(&self) -> bool {
        self.bad_run + 1 >= RESYNC_AFTER
    }

    fn is_retired(&self, stream: u32) -> bool {
        self.retired.contains(&Some(stream))
    }

    /// Starts a new stream: the previous one is retired, its target remembered.
    fn start_stream(&mut self, stream: u32) {
        if let Some(old) = self.stream {
            self.prior_target_us = self.target_us();
            self.retired[self.retired_next] = Some(old);
            self.retired_next = (self.retired_next + 1) % RETIRED_STREAMS;
        }
        for slot in &mut self.retired {
            if *slot == Some(stream) {
                *slot = None;
            }
        }
        self.clear_stream();
        self.stream = Some(stream);
        self.phase = Phase::Buffering;
        self.stats.new_streams += 1;
    }

    /// Clears the per-stream state (not the counters, nor the controller's integral,
    /// which tracks the sound card).
    fn clear_stream(&mut self) {
        self.lateness.reset();
        self.seqs.reset();
        self.store.frames.clear();
        self.next_ts = None;
        self.last_played = None;
        self.conceal_run = 0;
        self.in_silence = true;
        self.repair_on = false;
        self.bad_run = 0;
        self.control.pause();
    }

    /// Buffers a plausible frame of the current stream.
    fn admit(&mut self, now_us: u64, incoming: Incoming) -> PushOutcome {
        match (incoming.primary, self.seqs.status(incoming.seq)) {
            (true, SeqStatus::PrimarySeen) => {
                self.stats.duplicates += 1;
                return PushOutcome::Duplicate;
            }
            (false, SeqStatus::PrimarySeen | SeqStatus::CopySeen) => return PushOutcome::Duplicate,
            _ => {}
        }
        let (seq, ts, primary) = (incoming.seq, incoming.ts, incoming.primary);
        if self.next_ts.is_some_and(|next| ts < next) {
            self.note_arrival(now_us, seq, ts, primary);
            if primary {
                self.stats.late += 1;
            }
            return PushOutcome::Late;
        }
        let frame = Frame {
            seq,
            ts,
            samples: incoming.samples,
            payload: incoming.payload,
            source: if primary {
                Source::Primary
            } else {
                Source::Redundant
            },
        };
        let outcome = match self.store.insert(frame) {
            Stored::Inserted { evicted } => {
                self.stats.dropped_overflow += u64::from(evicted);
                if primary {
                    PushOutcome::Accepted
                } else {
                    PushOutcome::Repaired
                }
            }
            Stored::SameTs(index) => self.same_ts(index, primary),
            Stored::Overlap => return self.reject(Reject::Overlap),
            Stored::Full => return self.reject(Reject::BufferFull),
        };
        if outcome == PushOutcome::Duplicate {
            return outcome;
        }
        self.note_arrival(now_us, seq, ts, primary);
        if self.phase == Phase::Idle {
            self.phase = Phase::Buffering;
        }
        outcome
    }

    /// A frame at the ts of a buffered one: a primary replaces a copy's origin (the
    /// copy just came first); anything else is a duplicate.
    fn same_ts(&mut self, index: usize, primary: bool) -> PushOutcome {
        let Some(held) = self.store.frames.get_mut(index) else {
            return PushOutcome::Duplicate;
        };
        if primary && held.source == Source::Redundant {
            held.source = Source::Primary;
            return PushOutcome::Accepted;
        }
        if primary {
            self.stats.duplicates += 1;
        }
        PushOutcome::Duplicate
    }

    /// Bookkeeping of a frame that arrived (buffered or late) and was not seen before
    /// as a primary: seqs, loss rate, lateness statistics.
    fn note_arrival(&mut self, now_us: u64, seq: u64, ts: u64, primary: bool) {
        self.seqs.mark(seq, ts, primary);
        self.last_arrival_us = self.last_arrival_us.max(now_us);
        if primary {
            self.stats.received += 1;
            self.lateness.observe(now_us, ts);
        }
        self.update_repair_horizon();
    }

    /// Switches the repair horizon on above the loss threshold, off below half of it.
    fn update_repair_horizon(&mut self) {
        let Some(rate) = self.seqs.window.rate() else {
            return;
        };
        let threshold = self.cfg.repair_loss_threshold;
        if rate > threshold {
            self.repair_on = true;
        } else if rate < threshold / 2.0 {
            self.repair_on = false;
        }
    }

    // --- pull ---

    /// The target depth (µs).
    fn target_us(&self) -> f64 {
        let mut target = self.lateness.spread_us() + self.cfg.margin_us as f64;
        if self.repair_on {
            target += f64::from(self.cfg.repair_frames) * self.cfg.frame_us();
        }
        if self.lateness.span_us() < WARMUP_US {
            target = target.max(self.prior_target_us);
        }
        target.clamp(self.cfg.min_target_us as f64, self.cfg.max_target_us as f64)
    }

    /// A deficit larger than the margin means packets below the percentile are being
    /// lost: grow at once. Smaller errors are left to the ratio.
    fn grow_threshold_us(&self) -> f64 {
        (self.cfg.margin_us as f64).max(MIN_GROW_THRESHOLD_US)
    }

    fn absent_too_long(&self, now_us: u64) -> bool {
        self.store.frames.is_empty()
            && now_us.saturating_sub(self.last_arrival_us) >= self.cfg.idle_after_us
    }

    fn go_idle(&mut self) {
        self.phase = Phase::Idle;
        self.conceal_run = 0;
        self.in_silence = true;
        self.control.pause();
    }

    /// Starts playout when the first buffered frame is due within a frame: it will
    /// lag the fastest path by the target when it plays. Returns the lead-in silence
    /// (shorter than a frame) that makes it so, if any.
    fn try_start(&mut self, now_us: u64) -> Option<Action> {
        let first = self.store.front()?;
        let lead_us = self.target_us() - self.lateness.lag_us(now_us, first.ts)?;
        if lead_us >= self.cfg.frame_us() {
            return None;
        }
        self.next_ts = Some(first.ts);
        self.phase = Phase::Playing;
        self.conceal_run = 0;
        let samples = (lead_us * f64::from(self.cfg.sample_rate) / 1e6).round();
        if samples < 1.0 {
            return None;
        }
        self.stats.silence_frames += 1;
        self.in_silence = true;
        Some(Action::Silence {
            samples: (samples as u32).min(self.cfg.frame_samples),
        })
    }

    fn play(&mut self, now_us: u64) -> Pull {
        let target = self.target_us();
        let mut err = self.depth_us(now_us) - target;
        if err > self.cfg.max_target_us as f64 + OVERFLOW_SLACK_US {
            self.skip_ahead(now_us, target);
            err = self.depth_us(now_us) - target;
        }
        let dropped = self.next_ts.map_or(0, |next| self.store.drop_before(next));
        self.stats.dropped_overflow += dropped;
        let steer = self.control.update(now_us, err, self.cfg.max_stretch);
        let action = if err < -self.grow_threshold_us() {
            self.grow(-err)
        } else {
            self.advance(steer.envelope_us)
        };
        self.stats.depth_us = err + target;
        self.stats.ratio = steer.ratio;
        Pull {
            action,
            ratio: steer.ratio,
            stream: self.stream,
        }
    }

    fn depth_us(&self, now_us: u64) -> f64 {
        self.next_ts
            .and_then(|next| self.lateness.lag_us(now_us, next))
            .unwrap_or(0.0)
    }

    /// The output stalled: jump (on the frame grid) to the target depth.
    fn skip_ahead(&mut self, now_us: u64, target: f64) {
        let (Some(next), Some(to)) = (self.next_ts, self.lateness.ts_at_lag(now_us, target)) else {
            return;
        };
        let frame = u64::from(self.cfg.frame_samples);
        let Some(distance) = to.checked_sub(next) else {
            return;
        };
        let to = next.saturating_add(distance / frame * frame);
        self.stats.dropped_overflow += self.store.drop_before(to);
        self.next_ts = Some(to);
    }

    /// Makes the buffer `deficit_us` deeper, rounded up to Opus's 2.5 ms grain and at
    /// most a frame: plays something without advancing. In a silence it inserts
    /// silence; in speech, a concealment. (A whole frame for a deficit of a
    /// millisecond or two would leave the buffer deeper than it needs until it
    /// shrinks back, slowly, which a listener hears as delay.)
    fn grow(&mut self, deficit_us: f64) -> Action {
        self.stats.inserted_to_grow += 1;
        let grain = self.cfg.sample_rate / 400;
        let want = (deficit_us * f64::from(self.cfg.sample_rate) / 1e6 / f64::from(grain)).ceil();
        let samples = (want.max(1.0) as u32)
            .saturating_mul(grain)
            .min(self.cfg.frame_samples);
        let next = self.next_ts.unwrap_or(0);
        let gap = match self.store.front() {
            _ if self.in_silence => Gap::Silence,
            Some(front) if front.ts == next => Gap::Conceal,
            _ => self.gap_kind(next),
        };
        self.emit_gap(gap, samples)
    }

    /// Plays the frame at the playout position, or fills its absence; `err` is the
    /// controlled depth error, which decides whether a silent frame may be dropped.
    fn advance(&mut self, err: f64) -> Action {
        let mut may_drop = true;
        loop {
            let next = self.next_ts.unwrap_or(0);
            if self.store.front().is_some_and(|f| f.ts == next) {
                return self.decode_front();
            }
            if self.fec_available(next) {
                return self.decode_fec();
            }
            let length = self.gap_length(next);
            let gap = self.gap_kind(next);
            let silent = gap == Gap::Silence || self.conceal_run >= self.cfg.max_conceal;
            let frame_us = self.cfg.frame_us();
            if may_drop && silent && err >= frame_us + SHRINK_HYSTERESIS_US {
                self.next_ts = Some(next.saturating_add(u64::from(length)));
                self.stats.dropped_to_shrink += 1;
                may_drop = false;
                continue;
            }
            self.next_ts = Some(next.saturating_add(u64::from(length)));
            return self.emit_gap(gap, length);
        }
    }

    fn decode_front(&mut self) -> Action {
        let Some(frame) = self.store.frames.pop_front() else {
            return Action::Idle;
        };
        self.next_ts = Some(frame.end());
        self.last_played = Some(Played {
            seq: frame.seq,
            end_ts: frame.end(),
        });
        self.conceal_run = 0;
        self.in_silence = false;
        match frame.source {
            Source::Primary => self.stats.decoded += 1,
            Source::Redundant => self.stats.repaired_redundancy += 1,
        }
        Action::Decode {
            payload: frame.payload,
            samples: frame.samples,
        }
    }

    /// Whether the frame at `next` is missing and the next frame, right after it, is
    /// here with its FEC (fec profile), and a datagram is missing before it.
    fn fec_available(&self, next: u64) -> bool {
        let Some(front) = self.store.front() else {
            return false;
        };
        self.cfg.fec
            && front.ts.checked_sub(u64::from(front.samples)) == Some(next)
            && self.missing_before(front) > 0
    }

    fn decode_fec(&mut self) -> Action {
        let Some(front) = self.store.front() else {
            return Action::Idle;
        };
        let (payload, samples, seq, ts) =
            (front.payload.clone(), front.samples, front.seq, front.ts);
        let repaired = seq.saturating_sub(1);
        self.seqs.mark_repaired(repaired);
        self.next_ts = Some(ts);
        self.last_played = Some(Played {
            seq: repaired,
            end_ts: ts,
        });
        self.conceal_run = 0;
        self.in_silence = false;
        self.stats.repaired_fec += 1;
        Action::DecodeFec { payload, samples }
    }

    /// Datagrams missing between the last frame played and `frame`.
    fn missing_before(&self, frame: &Frame) -> u64 {
        match self.last_played {
            Some(last) => frame.seq.saturating_sub(last.seq.saturating_add(1)),
            None => 1,
        }
    }

    /// Length of the gap frame at `next`: a nominal frame, cut short by a frame that
    /// starts sooner.
    fn gap_length(&self, next: u64) -> u32 {
        let nominal = self.cfg.frame_samples;
        match self.store.front() {
            Some(front) => u32::try_from(front.ts.saturating_sub(next))
                .map_or(nominal, |gap| gap.clamp(1, nominal)),
            None => nominal,
        }
    }

    /// Whether the missing frame at `next` was lost (conceal) or never sent (silence).
    /// Contiguous seqs across the gap mean DTX. With `m` datagrams missing, the first
    /// `m` frames after the last one played are taken as the lost ones. With nothing
    /// received after the gap yet, it may be loss: conceal (then silence).
    fn gap_kind(&self, next: u64) -> Gap {
        let (Some(last), Some(front)) = (self.last_played, self.store.front()) else {
            return Gap::Conceal;
        };
        let missing = self.missing_before(front);
        if missing == 0 {
            return Gap::Silence;
        }
        let index = next.saturating_sub(last.end_ts) / u64::from(self.cfg.frame_samples.max(1));
        if index < missing {
            Gap::Conceal
        } else {
            Gap::Silence
        }
    }

    /// Conceals (up to `max_conceal` in a row, the last fading out) or plays silence.
    fn emit_gap(&mut self, gap: Gap, samples: u32) -> Action {
        if gap == Gap::Conceal && self.conceal_run < self.cfg.max_conceal {
            self.conceal_run += 1;
            self.in_silence = false;
            self.stats.concealed += 1;
            return Action::Conceal {
                samples,
                fade_out: self.conceal_run == self.cfg.max_conceal,
            };
        }
        self.stats.silence_frames += 1;
        self.in_silence = true;
        Action::Silence { samples }
    }
}

/// The Opus frame lengths at `sample_rate`.
fn frame_sizes(sample_rate: u32) -> [u32; 6] {
    let scale = |samples: u32| samples / 120 * (sample_rate / 400);
    FRAME_SIZES_48K.map(scale)
}

fn finite_or(value: f64, default: f64) -> f64 {
    if value.is_finite() { value } else { default }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_scale_with_the_rate() {
        assert_eq!(frame_sizes(48_000), FRAME_SIZES_48K);
        assert_eq!(frame_sizes(8_000), [20, 40, 80, 160, 320, 480]);
        assert_eq!(frame_sizes(12_000), [30, 60, 120, 240, 480, 720]);
    }
}
