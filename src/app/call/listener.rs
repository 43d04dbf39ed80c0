//! The listener's thread: datagrams from the voice inbox → per talking peer, a
//! depacketizer, a jitter buffer, an Opus decoder and a stretcher → the ring of that
//! peer's live voice in the mixer, kept topped up to about one output period. The
//! ring is what the audio callback reads; everything else happens here. Once a
//! second each talker gets a report (loss, lateness, depth).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Inbound;
use super::talker;
use crate::audio::{BLOCK_FRAMES, Engine, PlayOptions, VoiceId, VoiceSource};
use crate::domain::{Amplitude, Decibels};
use crate::media::map_channels;
use crate::media::stretch::Stretcher;
use crate::net::{Node, PeerId};
use crate::proto::feature_kind;
use crate::voice::codec::{RATE, VoiceDecoder};
use crate::voice::jitter::{Action, JitterBuffer, JitterConfig, JitterStats, PushOutcome};
use crate::voice::packet::Depacketizer;
use crate::voice::report::Report;

/// Seconds of audio a peer's ring can hold (it is kept near one period).
const RING_SECONDS: f64 = 0.25;
/// How often talkers hear from us.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// How long the listener waits for a datagram while voice arrives.
const ACTIVE_WAIT: Duration = Duration::from_micros(250);
/// Without a datagram for this long the call is quiet (the rings have run out
/// long since: DTX sends at least one packet every 400 ms while a talker is on)…
const QUIET_AFTER: Duration = Duration::from_secs(2);
/// …and the listener waits this long (a datagram wakes it at once).
const QUIET_WAIT: Duration = Duration::from_millis(50);
/// How often the call's owner sees new figures (a screen's talking indicator).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);
/// How long before the next output callback the ring is topped up (µs): this
/// thread's wake-up granularity and a decode, with room to spare.
const LEAD_US: u64 = 1_500;

/// One talking peer as the call shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ListenerStats {
    /// The peer's id.
    pub id: String,
    /// The peer's name (and the relay it is heard through).
    pub name: String,
    /// Whether it talks now (a frame decoded within the last quarter second).
    pub talking: bool,
    /// Its level, dBFS (last frame).
    pub level_db: f32,
    /// The jitter buffer's depth, ms.
    pub depth_ms: f64,
    /// Its target, ms.
    pub target_ms: f64,
    /// Frames decoded.
    pub decoded: u64,
    /// Frames late, lost, concealed, repaired.
    pub late: u64,
    /// Datagrams lost.
    pub lost: u64,
    /// Frames concealed.
    pub concealed: u64,
    /// Frames repaired by a copy or FEC.
    pub repaired: u64,
    /// Datagrams refused as malformed, or frames as implausible (absurd sequence
    /// numbers or timestamps).
    pub malformed: u64,
    /// The ring to the mixer, ms (what the output adds before its own latency).
    pub ring_ms: f64,
    /// The round trip to it, ms.
    pub rtt_ms: Option<f64>,
    /// Datagrams lost, % of those due.
    pub loss_percent: f64,
    /// Frames concealed, % of those played.
    pub concealed_percent: f64,
    /// The estimated mouth-to-ear delay, ms: the talker's framing, half the round
    /// trip, the jitter buffer, the ring and our output (not the talker's capture).
    pub mouth_to_ear_ms: Option<f64>,
}

/// What the listener shares with the call's owner.
pub(crate) struct Shared {
    cfg: JitterConfig,
    volumes: Mutex<HashMap<PeerId, Option<f32>>>,
    stats: Mutex<HashMap<PeerId, (ListenerStats, JitterStats)>>,
}

impl Shared {
    pub(crate) fn new(cfg: JitterConfig) -> Shared {
        Shared {
            cfg,
            volumes: Mutex::new(HashMap::new()),
            stats: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn set_volume(&self, peer: PeerId, db: Option<f32>) {
        crate::guard::lock(&self.volumes).insert(peer, db);
    }

    fn volume(&self, peer: &PeerId) -> Amplitude {
        match crate::guard::lock(&self.volumes).get(peer) {
            Some(None) => Amplitude(0.0),
            Some(Some(db)) => Decibels(*db).to_amplitude(),
            None => Amplitude::ONE,
        }
    }

    pub(crate) fn stats(&self) -> Vec<ListenerStats> {
        crate::guard::lock(&self.stats)
            .values()
            .map(|(l, _)| l.clone())
            .collect()
    }

    pub(crate) fn jitter(&self) -> HashMap<PeerId, JitterStats> {
        crate::guard::lock(&self.stats)
            .iter()
            .map(|(k, (_, j))| (*k, *j))
            .collect()
    }
}

/// One talking peer's playout.
struct Playout {
    name: String,
    depack: Depacketizer,
    jb: JitterBuffer,
    dec: VoiceDecoder,
    stretch: Stretcher,
    voice: VoiceId,
    ring: rtrb::Producer<f32>,
    out_ch: usize,
    pcm: Vec<f32>,
    stretched: Vec<f32>,
    mapped: Vec<f32>,
    stream: Option<u32>,
    malformed: u64,
    rejected: u64,
    level_db: f32,
    last_sound: Option<Instant>,
    reported: JitterStats,
    gain: Amplitude,
}

impl Playout {
    fn new(engine: &Engine, name: String, cfg: &JitterConfig) -> Result<Playout, String> {
        let out = engine.format();
        let out_ch = usize::from(out.channels.max(1));
        let cap = (f64::from(out.sample_rate) * RING_SECONDS) as usize * out_ch;
        let (ring, consumer) = rtrb::RingBuffer::<f32>::new(cap);
        let source = VoiceSource::Stream {
            ring: consumer,
            done: Arc::new(AtomicBool::new(false)),
            refill: 0,
            max_fill: 0,
        };
        let voice = engine
            .play(source, PlayOptions::default())
            .map_err(|e| crate::domain::chain(&e))?;
        Ok(Playout {
            name,
            depack: Depacketizer::default(),
            jb: JitterBuffer::new(cfg.clone()),
            dec: VoiceDecoder::new(1).map_err(|e| e.to_string())?,
            stretch: Stretcher::new(RATE, out.sample_rate, 1)?,
            voice,
            ring,
            out_ch,
            pcm: vec![0.0; 5760],
            stretched: Vec::with_capacity(8192),
            mapped: Vec::with_capacity(16384),
            stream: None,
            malformed: 0,
            rejected: 0,
            level_db: -120.0,
            last_sound: None,
            reported: JitterStats::default(),
            gain: Amplitude::ONE,
        })
    }

    /// Frames queued in the ring towards the mixer.
    fn queued_frames(&self) -> usize {
        (self.ring.buffer().capacity() - self.ring.slots()) / self.out_ch
    }

    /// Pulls frames until the ring holds `target` output frames (or the buffer is idle).
    fn top_up(&mut self, now_us: u64, target: usize) {
        for _ in 0..16 {
            if self.queued_frames() >= target {
                return;
            }
            // The buffer decides now, with what has arrived by now: the ring's fill is
            // a delay after the decision, not time for packets to arrive in.
            let pull = self.jb.pull(now_us);
            if pull.stream != self.stream {
                self.stream = pull.stream;
                let _ = self.dec.reset();
            }
            let samples = match &pull.action {
                Action::Idle => return,
                Action::Decode { payload, samples } => {
                    self.decode(Some(payload), false, *samples, false)
                }
                Action::DecodeFec { payload, samples } => {
                    self.decode(Some(payload), true, *samples, false)
                }
                Action::Conceal { samples, fade_out } => {
                    self.decode(None, false, *samples, *fade_out)
                }
                Action::Silence { samples } => {
                    let n = (*samples as usize).min(self.pcm.len());
                    self.pcm[..n].fill(0.0);
                    n
                }
            };
            if matches!(pull.action, Action::Decode { .. }) {
                self.level_db = crate::voice::gate::level_db(&self.pcm[..samples]);
                if self.level_db > -60.0 {
                    self.last_sound = Some(Instant::now());
                }
            }
            self.stretched.clear();
            self.stretch
                .process(&self.pcm[..samples], pull.ratio, &mut self.stretched);
            self.mapped.clear();
            map_channels(&self.stretched, 1, self.out_ch as u16, &mut self.mapped);
            let n = self.mapped.len().min(self.ring.slots());
            if let Ok(chunk) = self.ring.write_chunk_uninit(n) {
                chunk.fill_from_iter(self.mapped[..n].iter().copied());
            }
        }
    }

    fn decode(&mut self, packet: Option<&[u8]>, fec: bool, samples: u32, fade: bool) -> usize {
        let n = (samples as usize).min(self.pcm.len());
        let out = &mut self.pcm[..n];
        let r = match packet {
            Some(p) => self.dec.decode(p, fec, out),
            None => self.dec.conceal(out),
        };
        match r {
            Ok(got) if got == n => {}
            _ => out.fill(0.0),
        }
        if fade {
            let len = out.len().max(1) as f32;
            for (i, s) in out.iter_mut().enumerate() {
                *s *= 1.0 - i as f32 / len;
            }
        }
        n
    }
}

/// Runs until `stop`.
pub(crate) fn run(
    engine: &Engine,
    node: &Node,
    rx: Receiver<Inbound>,
    stop: &AtomicBool,
    shared: &Shared,
    talker: &talker::Shared,
) -> Receiver<Inbound> {
    let start = Instant::now();
    let rate = engine.format().sample_rate;
    let output = engine.info().output;
    let period = output.period_frames.unwrap_or(256) as usize;
    let period_us = (period as u64 * 1_000_000) / u64::from(rate.max(1));
    // Just in time: the output callback takes a period at once, so the ring must hold
    // a period when it comes, and no more — everything queued beyond that is delay.
    // Where callbacks can be a little longer than the period (the PulseAudio route's),
    // a mixer block more. The callbacks are counted by the engine: this thread learns
    // their rhythm and tops the ring up shortly before the next one.
    let target = if output.exact_periods() {
        period
    } else {
        period + BLOCK_FRAMES
    };
    let stats = engine.stats_handle();
    let mut callbacks = stats.callbacks.load(Ordering::Relaxed);
    let mut last_callback = Instant::now();
    let mut peers: HashMap<PeerId, Playout> = HashMap::new();
    let mut last_report = Instant::now();
    let mut last_publish = Instant::now();
    let mut last_datagram: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        // Awake every 250 µs while voice arrives (the ring is topped up just in
        // time); with nobody talking for a while, asleep until a datagram comes.
        let quiet = last_datagram.is_none_or(|t| t.elapsed() > QUIET_AFTER);
        let wait = if quiet { QUIET_WAIT } else { ACTIVE_WAIT };
        match rx.recv_timeout(wait) {
            Ok(m) => {
                if matches!(m, Inbound::Datagram { .. }) {
                    last_datagram = Some(Instant::now());
                }
                handle(engine, node, shared, talker, &mut peers, m, start)
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        while let Ok(m) = rx.try_recv() {
            if matches!(m, Inbound::Datagram { .. }) {
                last_datagram = Some(Instant::now());
            }
            handle(engine, node, shared, talker, &mut peers, m, start);
        }
        let c = stats.callbacks.load(Ordering::Relaxed);
        if c != callbacks {
            callbacks = c;
            last_callback = Instant::now();
        }
        let since = last_callback.elapsed().as_micros() as u64;
        // Due when the next callback is less than LEAD away (or overdue).
        let due = since + LEAD_US >= period_us;
        let now_us = start.elapsed().as_micros() as u64;
        for (id, p) in peers.iter_mut() {
            let gain = shared.volume(id);
            if gain != p.gain {
                engine.set_gain(p.voice, gain);
                p.gain = gain;
            }
            if due || p.queued_frames() < BLOCK_FRAMES {
                p.top_up(now_us, target);
            }
        }
        if last_publish.elapsed() >= PUBLISH_EVERY {
            last_publish = Instant::now();
            let send = last_report.elapsed() >= REPORT_EVERY;
            if send {
                last_report = last_publish;
            }
            // What the output adds after the ring: its buffering and the device's.
            let output_ms = engine.stats().output_latency_ms;
            publish(node, shared, &mut peers, rate, send, output_ms);
        }
    }
    for p in peers.values() {
        engine.stop(p.voice);
    }
    rx
}

fn handle(
    engine: &Engine,
    node: &Node,
    shared: &Shared,
    talker: &talker::Shared,
    peers: &mut HashMap<PeerId, Playout>,
    m: Inbound,
    start: Instant,
) {
    match m {
        Inbound::Datagram {
            talker: peer,
            via,
            packet: bytes,
            at,
        } => {
            let p = match peers.entry(peer) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let name = match via {
                        Some(relay) => {
                            format!("{} via {}", node.name_of(&peer), node.name_of(&relay))
                        }
                        None => node.name_of(&peer),
                    };
                    match Playout::new(engine, name, &shared.cfg) {
                        Ok(p) => {
                            tracing::info!("{} is talking", p.name);
                            v.insert(p)
                        }
                        Err(e) => {
                            return tracing::warn!(
                                "cannot play {}'s voice: {e}",
                                node.name_of(&peer)
                            );
                        }
                    }
                }
            };
            let at_us = at.saturating_duration_since(start).as_micros() as u64;
            match p.depack.frames(&bytes) {
                Ok(frames) => {
                    for f in frames {
                        let (seq, ts, primary) = (f.seq, f.ts, f.primary);
                        let outcome = p.jb.push(at_us, f);
                        if let PushOutcome::Rejected(why) = outcome {
                            p.rejected += 1;
                            if p.rejected == 1 {
                                tracing::warn!(
                                    "voice from {} rejected: {} (counted from now on, not logged)",
                                    p.name,
                                    why.as_str()
                                );
                            }
                        } else if primary && !matches!(outcome, PushOutcome::Accepted) {
                            tracing::debug!(
                                "{}: frame {seq} (ts {ts}) at {at_us} µs: {outcome:?}",
                                p.name
                            );
                        }
                    }
                }
                Err(e) => {
                    p.malformed += 1;
                    if p.malformed == 1 {
                        tracing::warn!("a voice datagram from {} was dropped: {e}", p.name);
                    }
                }
            }
        }
        Inbound::Report(peer, r) => {
            tracing::debug!(
                "{} hears us with {:.1} % loss, {:.1} ms deep",
                node.name_of(&peer),
                r.loss_percent(),
                f64::from(r.depth_us) / 1000.0
            );
            talker.reported_loss(r.loss_permille);
        }
        Inbound::Note(peer, n) => tracing::info!(
            "{} {} the call",
            node.name_of(&peer),
            if n.joined { "joined" } else { "left" }
        ),
    }
}

/// Publishes each peer's figures and (`send`) tells each talker what we heard since
/// the last report.
fn publish(
    node: &Node,
    shared: &Shared,
    peers: &mut HashMap<PeerId, Playout>,
    rate: u32,
    send: bool,
    output_ms: f64,
) {
    let mut all = crate::guard::lock(&shared.stats);
    for (id, p) in peers.iter_mut() {
        let j = p.jb.stats();
        if send {
            report(node, id, p, &j);
        }
        let rtt_ms = node.rtt(id).map(|r| r.as_secs_f64() * 1000.0);
        let ring_ms = p.queued_frames() as f64 * 1000.0 / f64::from(rate.max(1));
        let l = ListenerStats {
            id: id.to_string(),
            name: p.name.clone(),
            talking: p
                .last_sound
                .is_some_and(|t| t.elapsed() < Duration::from_millis(250)),
            level_db: p.level_db,
            depth_ms: j.depth_us / 1000.0,
            target_ms: j.target_us / 1000.0,
            decoded: j.decoded,
            late: j.late,
            lost: j.lost,
            concealed: j.concealed,
            repaired: j.repaired_redundancy + j.repaired_fec,
            malformed: p.malformed + p.rejected,
            ring_ms,
            rtt_ms,
            loss_percent: percent(j.lost, j.received + j.lost),
            concealed_percent: percent(j.concealed, j.decoded + j.concealed),
            // Framing at the talker, half the round trip, our buffer, the ring and
            // the output: what is known here of the way from their mouth to our ear
            // (their capture buffering is not).
            mouth_to_ear_ms: rtt_ms.map(|rtt| {
                f64::from(shared.cfg.frame_samples) * 1000.0 / f64::from(RATE)
                    + rtt / 2.0
                    + j.depth_us / 1000.0
                    + ring_ms
                    + output_ms
            }),
        };
        all.insert(*id, (l, j));
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Tells a talker what we heard of it since the last report.
fn report(node: &Node, id: &PeerId, p: &mut Playout, j: &JitterStats) {
    let d = |a: u64, b: u64| a.saturating_sub(b);
    let frames = d(j.received, p.reported.received) + d(j.lost, p.reported.lost);
    let per_mille = |n: u64| {
        (n * 1000)
            .checked_div(frames)
            .map_or(0, |v| v.min(1000) as u16)
    };
    if let Some(stream) = p.stream {
        let r = Report {
            stream,
            loss_permille: per_mille(d(j.lost, p.reported.lost)),
            late_permille: per_mille(d(j.late, p.reported.late)),
            concealed_permille: per_mille(d(j.concealed, p.reported.concealed)),
            depth_us: j.depth_us.clamp(0.0, f64::from(u32::MAX)) as u32,
            target_us: j.target_us.clamp(0.0, f64::from(u32::MAX)) as u32,
        };
        let _ = node.send_feature(id, feature_kind::VOICE_REPORT, r.encode());
    }
    tracing::debug!("{}: {j:?}, ring {} frames", p.name, p.queued_frames());
    p.reported = *j;
}
