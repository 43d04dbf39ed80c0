//! Simulated sender, network and sound card for the jitter buffer's tests. The sender
//! emits datagrams at its own clock (with drift, DTX, redundant copies, restarts), the
//! network delays, drops, reorders and duplicates them, and a sound card pulls frames
//! at its own drifting clock, each pull advancing the card's time by the frame's
//! duration × the returned ratio. Payloads encode who sent what, so a run checks what
//! was played: in order, never twice, counts consistent.
//!
//! Must never: read a clock, use unseeded randomness (a scenario and its seed give the
//! same run every time), or do I/O beyond what a test prints.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::voice::jitter::{
    Action, Incoming, JitterBuffer, JitterConfig, JitterStats, PushOutcome,
};

/// Sample rate of the simulation.
pub const RATE: u32 = 48_000;
/// First byte of a payload the simulated sender made.
const GENUINE: u8 = 0xA5;
/// First byte of a hostile payload.
const HOSTILE: u8 = 0x66;
/// Receiver time at which the simulation starts (µs).
const T0_US: f64 = 1_000_000.0;

/// Extra network delay of a datagram.
#[derive(Debug, Clone, Copy)]
pub enum Jitter {
    /// None: every datagram takes the base delay.
    None,
    /// Uniform in `0..=max_us`.
    Uniform {
        /// Largest extra delay (µs).
        max_us: f64,
    },
    /// Pareto: `scale × (U^(−1/shape) − 1)`, capped.
    Pareto {
        /// Scale (µs).
        scale_us: f64,
        /// Shape (tail index; smaller is heavier).
        shape: f64,
        /// Largest extra delay (µs).
        cap_us: f64,
    },
}

/// Which datagrams the network drops.
#[derive(Debug, Clone, Copy)]
pub enum Loss {
    /// None.
    None,
    /// Each with this probability.
    Random(f64),
    /// Bursts of three, each burst starting with this probability.
    Bursts3(f64),
    /// Gilbert–Elliott: a good and a bad state.
    Gilbert {
        /// Probability per datagram of going bad.
        to_bad: f64,
        /// Probability per datagram of going good again.
        to_good: f64,
        /// Loss probability in the bad state.
        loss_in_bad: f64,
    },
}

/// The network between sender and receiver.
#[derive(Debug, Clone)]
pub struct Network {
    /// Base one-way delay (µs).
    pub base_us: f64,
    /// Jitter models, each from a send time (s) on; the last one started applies.
    pub jitter: Vec<(f64, Jitter)>,
    /// Loss model.
    pub loss: Loss,
    /// Probability that a datagram is held back by 1..=`reorder_frames` frames.
    pub reorder: f64,
    /// Most frames a reordered datagram is held back.
    pub reorder_frames: u32,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Send-time intervals (s) in which everything is dropped.
    pub outages: Vec<(f64, f64)>,
}

/// Talk spurts and silences (the sender sends nothing in silence).
#[derive(Debug, Clone, Copy)]
pub struct Dtx {
    /// Range of talk spurt lengths (s).
    pub talk_s: (f64, f64),
    /// Range of silence lengths (s).
    pub silence_s: (f64, f64),
}

/// The sender stops at `at_s` for `gap_s`, then starts again (with a new stream id if
/// `new_stream`).
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// When it stops (s).
    pub at_s: f64,
    /// For how long (s).
    pub gap_s: f64,
    /// Whether it comes back as a new stream.
    pub new_stream: bool,
}

/// Everything a run depends on.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The buffer's configuration (its frame length is the sender's).
    pub cfg: JitterConfig,
    /// Length of the run (s).
    pub seconds: f64,
    /// Sender's clock error (ppm; positive runs fast).
    pub sender_ppm: f64,
    /// Sound card's clock error (ppm; positive runs fast).
    pub card_ppm: f64,
    /// The network.
    pub net: Network,
    /// Redundant copies of previous frames per datagram (0, 1 or 2).
    pub redundancy: u32,
    /// DTX, if any.
    pub dtx: Option<Dtx>,
    /// Sender restarts.
    pub restarts: Vec<Restart>,
    /// Intervals (s) in which the sound card does not pull.
    pub stalls: Vec<(f64, f64)>,
    /// Probability per datagram of a hostile packet alongside it.
    pub hostile: f64,
    /// Frames the sound card pulls at once, at the same time (its callback period).
    pub batch: u32,
    /// Whether to keep the depth of every pull.
    pub record_depth: bool,
    /// Seed of everything random.
    pub seed: u64,
}

impl Scenario {
    /// A clean run: 20 ms base delay, no jitter, no loss, no drift.
    pub fn new(frame_samples: u32, seconds: f64, seed: u64) -> Self {
        Self {
            cfg: JitterConfig {
                frame_samples,
                ..JitterConfig::default()
            },
            seconds,
            sender_ppm: 0.0,
            card_ppm: 0.0,
            net: Network {
                base_us: 20_000.0,
                jitter: vec![(0.0, Jitter::None)],
                loss: Loss::None,
                reorder: 0.0,
                reorder_frames: 1,
                duplicate: 0.0,
                outages: Vec::new(),
            },
            redundancy: 0,
            dtx: None,
            restarts: Vec::new(),
            stalls: Vec::new(),
            hostile: 0.0,
            batch: 1,
            record_depth: true,
            seed,
        }
    }

    /// The same with uniform jitter up to `max_us` from the start.
    pub fn with_jitter(mut self, max_us: f64) -> Self {
        self.net.jitter = vec![(0.0, Jitter::Uniform { max_us })];
        self
    }
}

/// Depth and target at one pull.
#[derive(Debug, Clone, Copy)]
pub struct DepthSample {
    /// Time (s since the start).
    pub t_s: f64,
    /// Depth (µs).
    pub depth_us: f64,
    /// Target (µs).
    pub target_us: f64,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    /// The buffer's statistics at the end.
    pub stats: JitterStats,
    /// Pulls in all.
    pub pulls: u64,
    /// Pulls answered with `Idle`.
    pub idle_pulls: u64,
    /// Pulls answered with `Decode`, `DecodeFec`, `Conceal` and `Silence`.
    pub decode: u64,
    /// See `decode`.
    pub fec: u64,
    /// See `decode`.
    pub conceal: u64,
    /// See `decode`.
    pub silence: u64,
    /// Genuine frames played (decoded or repaired).
    pub played: u64,
    /// Genuine frames sent between the first and the last played of each stream but
    /// never played.
    pub unrecovered: u64,
    /// Frames sent between the first and the last played of each stream.
    pub expected: u64,
    /// Datagrams sent.
    pub sent: u64,
    /// Datagrams the network dropped (loss and outages).
    pub dropped: u64,
    /// Datagrams the network held back (reordered).
    pub reordered: u64,
    /// Datagrams the network delivered twice.
    pub duplicated: u64,
    /// Silences (DTX or restarts) the sender made.
    pub silences: u64,
    /// For each restart and each outage: seconds from the first datagram sent after it
    /// to the first of its frames played (`None` if never).
    pub recovery_s: Vec<Option<f64>>,
    /// Depth at each playing pull (if recorded).
    pub depth: Vec<DepthSample>,
    /// Most frames buffered at once.
    pub max_buffered: usize,
    /// Everything that broke an invariant (empty when all is well).
    pub violations: Vec<String>,
}

impl Report {
    /// Late primary frames, % of those received.
    pub fn late_pct(&self) -> f64 {
        percent(self.stats.late, self.stats.received)
    }

    /// Frames never played, % of those expected.
    pub fn unrecovered_pct(&self) -> f64 {
        percent(self.unrecovered, self.expected)
    }

    /// Mean, 95th percentile and maximum depth (ms) between `from_s` and `to_s`.
    pub fn depth_ms(&self, from_s: f64, to_s: f64) -> (f64, f64, f64) {
        let mut depths: Vec<f64> = self
            .window(from_s, to_s)
            .map(|s| s.depth_us / 1000.0)
            .collect();
        if depths.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        depths.sort_by(f64::total_cmp);
        let mean = depths.iter().sum::<f64>() / depths.len() as f64;
        let p95 = depths[(depths.len() * 95 / 100).min(depths.len() - 1)];
        (mean, p95, depths[depths.len() - 1])
    }

    /// Mean target (ms) between `from_s` and `to_s`.
    pub fn target_ms(&self, from_s: f64, to_s: f64) -> f64 {
        let (sum, n) = self
            .window(from_s, to_s)
            .fold((0.0, 0), |(sum, n), s| (sum + s.target_us, n + 1));
        sum / f64::from(n) / 1000.0
    }

    /// Largest |depth − target| (ms) between `from_s` and `to_s`.
    pub fn max_error_ms(&self, from_s: f64, to_s: f64) -> f64 {
        self.window(from_s, to_s)
            .map(|s| (s.depth_us - s.target_us).abs() / 1000.0)
            .fold(0.0, f64::max)
    }

    /// The first time after `from_s` from which the depth stays within `tolerance_ms`
    /// of `value_ms` until the end.
    pub fn settled_at(&self, from_s: f64, value_ms: f64, tolerance_ms: f64) -> Option<f64> {
        let mut settled = None;
        for s in self.window(from_s, f64::INFINITY) {
            let inside = (s.depth_us / 1000.0 - value_ms).abs() <= tolerance_ms;
            settled = match (inside, settled) {
                (true, None) => Some(s.t_s),
                (true, at) => at,
                (false, _) => None,
            };
        }
        settled
    }

    fn window(&self, from_s: f64, to_s: f64) -> impl Iterator<Item = &DepthSample> {
        self.depth
            .iter()
            .filter(move |s| s.t_s >= from_s && s.t_s < to_s)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

/// What a payload says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag {
    stream: u32,
    seq: u64,
    samples: u32,
    sent_us: u64,
}

fn encode(tag: Tag) -> Bytes {
    let mut bytes = Vec::with_capacity(25);
    bytes.push(GENUINE);
    bytes.extend_from_slice(&tag.stream.to_le_bytes());
    bytes.extend_from_slice(&tag.seq.to_le_bytes());
    bytes.extend_from_slice(&tag.samples.to_le_bytes());
    bytes.extend_from_slice(&tag.sent_us.to_le_bytes());
    Bytes::from(bytes)
}

/// The tag of a genuine payload; `None` for a hostile one; `Err` for anything else.
fn decode(payload: &[u8]) -> Result<Option<Tag>, String> {
    match payload.first() {
        Some(&HOSTILE) => Ok(None),
        Some(&GENUINE) if payload.len() == 25 => {
            let field =
                |range: std::ops::Range<usize>| payload.get(range).unwrap_or_default().to_vec();
            let u32_at =
                |at: usize| u32::from_le_bytes(field(at..at + 4).try_into().unwrap_or_default());
            let u64_at =
                |at: usize| u64::from_le_bytes(field(at..at + 8).try_into().unwrap_or_default());
            Ok(Some(Tag {
                stream: u32_at(1),
                seq: u64_at(5),
                samples: u32_at(13),
                sent_us: u64_at(17),
            }))
        }
        _ => Err(format!("payload of {} bytes made by nobody", payload.len())),
    }
}

/// A datagram in flight.
#[derive(Debug)]
struct Pending {
    at: u64,
    serial: u64,
    parts: Vec<Incoming>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.serial) == (other.at, other.serial)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.serial).cmp(&(other.at, other.serial))
    }
}

/// The sender: frame clock, stream, seq, DTX and restarts.
struct Sender {
    frame_samples: u32,
    step_us: f64,
    frame: u64,
    stream: u32,
    seq: u64,
    ts_base: u64,
    base_frame: u64,
    recent: VecDeque<Incoming>,
    talking: bool,
    state_until_s: f64,
    restart: usize,
    resumes: Vec<f64>,
    silences: u64,
}

impl Sender {
    fn new(s: &Scenario, rng: &mut StdRng) -> Self {
        let frame_samples = s.cfg.frame_samples;
        let step_us =
            f64::from(frame_samples) * 1e6 / f64::from(RATE) / (1.0 + s.sender_ppm * 1e-6);
        Self {
            frame_samples,
            step_us,
            frame: 0,
            stream: rng.r#gen(),
            seq: rng.gen_range(0..1u64 << 40),
            ts_base: rng.gen_range(0..1u64 << 32),
            base_frame: 0,
            recent: VecDeque::new(),
            talking: true,
            state_until_s: s
                .dtx
                .map_or(f64::INFINITY, |d| rng.gen_range(d.talk_s.0..=d.talk_s.1)),
            restart: 0,
            resumes: Vec::new(),
            silences: 0,
        }
    }

    /// True time (µs) at which the current frame is complete and sent.
    fn next_send_us(&self) -> f64 {
        T0_US + (self.frame + 1) as f64 * self.step_us
    }

    /// Makes the current frame's datagram, if it is sent; moves to the next frame.
    fn emit(&mut self, s: &Scenario, rng: &mut StdRng) -> Option<Vec<Incoming>> {
        let now_us = self.next_send_us();
        let t_s = (now_us - T0_US) / 1e6;
        let frame = self.frame;
        self.frame += 1;
        if self.in_restart_gap(s, t_s, rng) || !self.dtx_talking(s, t_s, rng) {
            return None;
        }
        let primary = Incoming {
            stream: self.stream,
            seq: self.seq,
            ts: self.ts_base + (frame - self.base_frame) * u64::from(self.frame_samples),
            samples: self.frame_samples,
            payload: encode(Tag {
                stream: self.stream,
                seq: self.seq,
                samples: self.frame_samples,
                sent_us: now_us as u64,
            }),
            primary: true,
        };
        self.seq += 1;
        let mut parts = vec![primary.clone()];
        parts.extend(self.recent.iter().rev().map(|copy| Incoming {
            primary: false,
            ..copy.clone()
        }));
        self.recent.push_back(primary);
        while self.recent.len() > s.redundancy as usize {
            self.recent.pop_front();
        }
        Some(parts)
    }

    /// Whether the sender is stopped for a restart; starts the new stream on resuming.
    fn in_restart_gap(&mut self, s: &Scenario, t_s: f64, rng: &mut StdRng) -> bool {
        let Some(restart) = s.restarts.get(self.restart) else {
            return false;
        };
        if t_s < restart.at_s {
            return false;
        }
        if t_s < restart.at_s + restart.gap_s {
            return true;
        }
        self.restart += 1;
        self.silences += 1;
        self.resumes.push(t_s);
        self.recent.clear();
        if restart.new_stream {
            self.stream = rng.r#gen();
            self.seq = rng.gen_range(0..1u64 << 40);
            self.ts_base = rng.gen_range(0..1u64 << 32);
            self.base_frame = self.frame - 1;
        }
        false
    }

    fn dtx_talking(&mut self, s: &Scenario, t_s: f64, rng: &mut StdRng) -> bool {
        let Some(dtx) = s.dtx else { return true };
        if t_s >= self.state_until_s {
            self.talking = !self.talking;
            let (lo, hi) = if self.talking {
                dtx.talk_s
            } else {
                dtx.silence_s
            };
            self.state_until_s = t_s + rng.gen_range(lo..=hi);
            self.silences += u64::from(!self.talking);
        }
        self.talking
    }
}

/// The network's state (loss bursts, Gilbert–Elliott state).
#[derive(Default)]
struct Wire {
    burst_left: u32,
    bad: bool,
}

impl Wire {
    fn drops(&mut self, net: &Network, t_s: f64, rng: &mut StdRng) -> bool {
        if net
            .outages
            .iter()
            .any(|&(from, to)| t_s >= from && t_s < to)
        {
            return true;
        }
        match net.loss {
            Loss::None => false,
            Loss::Random(p) => rng.gen_bool(p.clamp(0.0, 1.0)),
            Loss::Bursts3(p) => {
                if self.burst_left > 0 {
                    self.burst_left -= 1;
                    true
                } else if rng.gen_bool(p.clamp(0.0, 1.0)) {
                    self.burst_left = 2;
                    true
                } else {
                    false
                }
            }
            Loss::Gilbert {
                to_bad,
                to_good,
                loss_in_bad,
            } => {
                let flip = if self.bad { to_good } else { to_bad };
                if rng.gen_bool(flip.clamp(0.0, 1.0)) {
                    self.bad = !self.bad;
                }
                self.bad && rng.gen_bool(loss_in_bad.clamp(0.0, 1.0))
            }
        }
    }

    fn delay_us(net: &Network, t_s: f64, rng: &mut StdRng) -> f64 {
        let model = net
            .jitter
            .iter()
            .rev()
            .find(|(from, _)| t_s >= *from)
            .map_or(Jitter::None, |j| j.1);
        let extra = match model {
            Jitter::None => 0.0,
            Jitter::Uniform { max_us } => rng.gen_range(0.0..=max_us.max(0.0)),
            Jitter::Pareto {
                scale_us,
                shape,
                cap_us,
            } => {
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                (scale_us * (u.powf(-1.0 / shape) - 1.0)).min(cap_us)
            }
        };
        net.base_us + extra
    }
}

/// Checks the plays against what was sent.
#[derive(Default)]
struct Audit {
    epoch: u64,
    last: Option<(u64, Tag)>,
    ranges: HashMap<(u64, u32), (u64, u64, u64)>,
    resumes: Vec<f64>,
    recovery: Vec<Option<f64>>,
}

impl Audit {
    fn played(&mut self, tag: Tag, samples: u32, now_s: f64, report: &mut Report) {
        report.played += 1;
        if samples != tag.samples {
            report.violations.push(format!(
                "played {samples} samples of a {}-sample frame",
                tag.samples
            ));
        }
        if let Some((epoch, last)) = self.last
            && epoch == self.epoch
            && last.stream == tag.stream
            && tag.seq <= last.seq
        {
            report
                .violations
                .push(format!("seq {} played after {}", tag.seq, last.seq));
        }
        self.last = Some((self.epoch, tag));
        let range = self
            .ranges
            .entry((self.epoch, tag.stream))
            .or_insert((tag.seq, tag.seq, 0));
        range.0 = range.0.min(tag.seq);
        range.1 = range.1.max(tag.seq);
        range.2 += 1;
        let sent_s = (tag.sent_us as f64 - T0_US) / 1e6;
        for (resume, recovery) in self.resumes.iter().zip(self.recovery.iter_mut()) {
            if recovery.is_none() && sent_s >= *resume - 1e-9 {
                *recovery = Some(now_s - resume);
            }
        }
    }

    fn finish(&self, report: &mut Report) {
        for &(first, last, count) in self.ranges.values() {
            let expected = last - first + 1;
            report.expected += expected;
            report.unrecovered += expected.saturating_sub(count);
        }
        report.recovery_s.clone_from(&self.recovery);
    }
}

/// A hostile packet: absurd seq, ts, length, payload or stream.
fn hostile(rng: &mut StdRng, stream: u32, seq: u64, ts: u64) -> Incoming {
    let near = |rng: &mut StdRng, value: u64, spread: u64| match rng.gen_range(0..6) {
        0 => rng.r#gen(),
        1 => 0,
        2 => u64::MAX,
        3 => value.saturating_sub(rng.gen_range(0..=spread)),
        _ => value.saturating_add(rng.gen_range(0..=spread)),
    };
    let len = [0, 1, 25, 1500, 1501, 4000][rng.gen_range(0..6)];
    let mut payload = vec![0u8; len];
    if let Some(first) = payload.first_mut() {
        *first = HOSTILE;
    }
    Incoming {
        stream: if rng.gen_bool(0.2) {
            rng.r#gen()
        } else {
            stream
        },
        seq: near(rng, seq, 300),
        ts: near(rng, ts, 200_000),
        samples: [0, 1, 120, 240, 480, 960, 1920, 2880, 5000, u32::MAX][rng.gen_range(0..10)],
        payload: Bytes::from(payload),
        primary: rng.r#gen(),
    }
}

/// Runs a scenario and reports what was played.
pub fn run(s: &Scenario) -> Report {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut jb = JitterBuffer::new(s.cfg.clone());
    let mut sender = Sender::new(s, &mut rng);
    let mut wire = Wire::default();
    let mut audit = Audit::default();
    let mut report = Report::default();
    let mut queue: BinaryHeap<Reverse<Pending>> = BinaryHeap::new();
    let mut serial = 0u64;
    let frame_us = s.cfg.frame_us();
    let end_us = T0_US + s.seconds * 1e6;
    let mut next_pull = T0_US + rng.gen_range(0.0..frame_us);
    let max_stretch = jb.config().max_stretch;
    for &(_, to) in &s.net.outages {
        audit.resumes.push(to);
        audit.recovery.push(None);
    }
    loop {
        let send_at = sender.next_send_us();
        let arrival_at = queue.peek().map_or(f64::INFINITY, |p| p.0.at as f64);
        let now = send_at.min(arrival_at).min(next_pull);
        if now > end_us {
            break;
        }
        if arrival_at <= next_pull && arrival_at <= send_at {
            let Some(Reverse(datagram)) = queue.pop() else {
                break;
            };
            deliver(&mut jb, &mut audit, datagram);
        } else if send_at <= next_pull {
            let Some(parts) = sender.emit(s, &mut rng) else {
                continue;
            };
            report.sent += 1;
            let t_s = (send_at - T0_US) / 1e6;
            if s.hostile > 0.0 && rng.gen_bool(s.hostile) {
                let last = &parts[0];
                let junk = vec![hostile(&mut rng, last.stream, last.seq, last.ts)];
                let at = (send_at + rng.gen_range(0.0..50_000.0)) as u64;
                queue.push(Reverse(Pending {
                    at,
                    serial,
                    parts: junk,
                }));
                serial += 1;
            }
            if wire.drops(&s.net, t_s, &mut rng) {
                report.dropped += 1;
                continue;
            }
            let mut arrival = send_at + Wire::delay_us(&s.net, t_s, &mut rng);
            if s.net.reorder > 0.0 && rng.gen_bool(s.net.reorder) {
                report.reordered += 1;
                arrival += f64::from(rng.gen_range(1..=s.net.reorder_frames.max(1))) * frame_us;
            }
            if s.net.duplicate > 0.0 && rng.gen_bool(s.net.duplicate) {
                report.duplicated += 1;
                let at = (arrival + rng.gen_range(0.0..2_000.0)) as u64;
                queue.push(Reverse(Pending {
                    at,
                    serial,
                    parts: parts.clone(),
                }));
                serial += 1;
            }
            queue.push(Reverse(Pending {
                at: arrival as u64,
                serial,
                parts,
            }));
            serial += 1;
        } else {
            let mut interval = 0.0;
            for _ in 0..s.batch.max(1) {
                interval += pull_once(
                    &mut jb,
                    &mut audit,
                    &mut report,
                    next_pull,
                    max_stretch,
                    s.record_depth,
                );
            }
            next_pull += interval / (1.0 + s.card_ppm * 1e-6);
            if let Some(&(_, to)) = s.stalls.iter().find(|&&(from, to)| {
                let t_s = (next_pull - T0_US) / 1e6;
                t_s >= from && t_s < to
            }) {
                next_pull = T0_US + to * 1e6;
            }
        }
        while audit.resumes.len() < sender.resumes.len() + s.net.outages.len() {
            let resume = sender.resumes[audit.resumes.len() - s.net.outages.len()];
            audit.resumes.push(resume);
            audit.recovery.push(None);
        }
    }
    report.stats = jb.stats();
    report.silences = sender.silences;
    audit.finish(&mut report);
    let mismatches = check_counts(&report);
    report.violations.extend(mismatches);
    report
}

/// Pushes a datagram's parts; a new stream starts a new audit epoch.
fn deliver(jb: &mut JitterBuffer, audit: &mut Audit, datagram: Pending) {
    for part in datagram.parts {
        if jb.push(datagram.at, part) == PushOutcome::NewStream {
            audit.epoch += 1;
        }
    }
}

/// One pull at `at_us`: checks and records what it returned; returns the card time
/// it lasts (µs, before the card's drift).
fn pull_once(
    jb: &mut JitterBuffer,
    audit: &mut Audit,
    report: &mut Report,
    at_us: f64,
    max_stretch: f64,
    record_depth: bool,
) -> f64 {
    let now = at_us as u64;
    let now_s = (at_us - T0_US) / 1e6;
    let pull = jb.pull(now);
    report.pulls += 1;
    report.max_buffered = report.max_buffered.max(jb.buffered());
    if jb.buffered() > jb.capacity() {
        report.violations.push(format!(
            "{} frames buffered, capacity {}",
            jb.buffered(),
            jb.capacity()
        ));
    }
    if !(pull.ratio.is_finite() && (pull.ratio - 1.0).abs() <= max_stretch + 1e-12) {
        report.violations.push(format!("ratio {}", pull.ratio));
    }
    let nominal = jb.config().frame_samples;
    let stats = jb.stats();
    let (lo, hi) = (
        jb.config().min_target_us as f64,
        jb.config().max_target_us as f64,
    );
    if !(stats.target_us >= lo && stats.target_us <= hi && stats.depth_us.is_finite()) {
        report.violations.push(format!(
            "target {} depth {}",
            stats.target_us, stats.depth_us
        ));
    }
    let samples = match &pull.action {
        Action::Decode { payload, samples } | Action::DecodeFec { payload, samples } => {
            if payload.is_empty() || payload.len() > crate::voice::jitter::MAX_PAYLOAD {
                report
                    .violations
                    .push(format!("played a payload of {} bytes", payload.len()));
            }
            let fec = matches!(pull.action, Action::DecodeFec { .. });
            if fec {
                report.fec += 1
            } else {
                report.decode += 1
            }
            match decode(payload) {
                Ok(Some(mut tag)) => {
                    tag.seq = tag.seq.saturating_sub(u64::from(fec));
                    audit.played(tag, *samples, now_s, report);
                }
                Ok(None) => {}
                Err(e) => report.violations.push(e),
            }
            *samples
        }
        Action::Conceal { samples, .. } => {
            report.conceal += 1;
            *samples
        }
        Action::Silence { samples } => {
            report.silence += 1;
            *samples
        }
        Action::Idle => {
            report.idle_pulls += 1;
            nominal
        }
    };
    if record_depth && pull.action != Action::Idle {
        report.depth.push(DepthSample {
            t_s: now_s,
            depth_us: stats.depth_us,
            target_us: stats.target_us,
        });
    }
    f64::from(samples) * 1e6 / f64::from(RATE) * pull.ratio
}

/// The buffer's counters agree with what the card saw.
fn check_counts(report: &Report) -> Vec<String> {
    let s = &report.stats;
    let mut violations = Vec::new();
    let playing = report.pulls - report.idle_pulls;
    let accounted =
        s.decoded + s.repaired_redundancy + s.repaired_fec + s.concealed + s.silence_frames;
    if accounted != playing {
        violations.push(format!(
            "{accounted} frames accounted for, {playing} pulls while playing"
        ));
    }
    if s.decoded + s.repaired_redundancy != report.decode || s.repaired_fec != report.fec {
        violations.push("decode counts disagree".to_string());
    }
    if s.concealed != report.conceal || s.silence_frames != report.silence {
        violations.push("conceal/silence counts disagree".to_string());
    }
    if s.rejected != s.rejected_by.iter().sum::<u64>() {
        violations.push("rejections by reason do not add up".to_string());
    }
    violations
}

/// A random scenario of `seconds` for the property test: random frame length,
/// profile, impairments, drift, DTX, restarts, stalls and hostile packets.
pub fn random_scenario(seed: u64, seconds: f64) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let frame = [120, 240, 480, 960][rng.gen_range(0..4)];
    let mut s = Scenario::new(frame, seconds, seed);
    s.record_depth = false;
    s.cfg.repair_frames = rng.gen_range(0..=2);
    s.cfg.fec = rng.r#gen();
    s.cfg.max_conceal = rng.gen_range(0..=4);
    s.cfg.max_target_us = rng.gen_range(20_000..=600_000);
    s.redundancy = rng.gen_range(0..=2);
    s.sender_ppm = rng.gen_range(-2000.0..=2000.0);
    s.card_ppm = rng.gen_range(-2000.0..=2000.0);
    s.net.base_us = rng.gen_range(0.0..=200_000.0);
    s.net.jitter = vec![(
        0.0,
        match rng.gen_range(0..3) {
            0 => Jitter::None,
            1 => Jitter::Uniform {
                max_us: rng.gen_range(0.0..=80_000.0),
            },
            _ => Jitter::Pareto {
                scale_us: rng.gen_range(100.0..=5_000.0),
                shape: 1.5,
                cap_us: 1_000_000.0,
            },
        },
    )];
    s.net.loss = match rng.gen_range(0..4) {
        0 => Loss::None,
        1 => Loss::Random(rng.gen_range(0.0..=0.4)),
        2 => Loss::Bursts3(rng.gen_range(0.0..=0.1)),
        _ => Loss::Gilbert {
            to_bad: 0.02,
            to_good: 0.2,
            loss_in_bad: 0.7,
        },
    };
    s.net.reorder = rng.gen_range(0.0..=0.1);
    s.net.reorder_frames = rng.gen_range(1..=5);
    s.net.duplicate = rng.gen_range(0.0..=0.1);
    if rng.gen_bool(0.2) {
        let at = rng.gen_range(0.0..seconds);
        s.net.outages.push((at, at + rng.gen_range(0.0..=2.5)));
    }
    if rng.gen_bool(0.3) {
        s.dtx = Some(Dtx {
            talk_s: (0.1, 1.0),
            silence_s: (0.05, 1.5),
        });
    }
    if rng.gen_bool(0.2) {
        let at = rng.gen_range(0.0..seconds);
        s.restarts.push(Restart {
            at_s: at,
            gap_s: rng.gen_range(0.0..=1.5),
            new_stream: rng.r#gen(),
        });
    }
    if rng.gen_bool(0.1) {
        let at = rng.gen_range(0.0..seconds);
        s.stalls.push((at, at + rng.gen_range(0.0..=2.0)));
    }
    if rng.gen_bool(0.5) {
        s.hostile = rng.gen_range(0.0..=0.2);
    }
    s.batch = rng.gen_range(1..=4);
    s
}
