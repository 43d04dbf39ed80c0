//! The talker's thread: the engine's input tap → 48 kHz at the call's channels →
//! frames → gate → Opus → one datagram per frame to every peer of the call, sent the
//! moment it is encoded (no queue of ours: a frame is never sent late).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{CallSettings, CallStats};
use crate::audio::InputTap;
use crate::domain::AudioFormat;
use crate::media::Converter;
use crate::net::{Node, PeerId};
use crate::proto::datagram_kind;
use crate::voice::codec::{MAX_PACKET, RATE, VoiceEncoder};
use crate::voice::gate::{Gate, TalkMode, level_db};
use crate::voice::packet::Packetizer;

/// How long the thread sleeps when the tap is empty and the microphone may be open:
/// well under a capture period, so a frame is sent as soon as it is complete.
const OPEN_NAP: Duration = Duration::from_micros(500);
/// And while the talk key is up: nothing is sent, the tap is only kept drained.
const CLOSED_NAP: Duration = Duration::from_millis(20);

/// What the talker shares with the call's owner.
pub(crate) struct Shared {
    gate: Mutex<Gate>,
    peers: Mutex<Vec<PeerId>>,
    open: AtomicBool,
    captured: AtomicU64,
    sent: AtomicU64,
    errors: AtomicU64,
    loss_permille: AtomicU64,
}

impl Shared {
    pub(crate) fn new(mode: TalkMode) -> Shared {
        Shared {
            gate: Mutex::new(Gate::new(mode)),
            peers: Mutex::new(Vec::new()),
            open: AtomicBool::new(false),
            captured: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            loss_permille: AtomicU64::new(0),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        crate::guard::lock(&self.gate)
    }

    /// Replaces the peers our voice goes to; returns the old ones.
    pub(crate) fn set_peers(&self, peers: Vec<PeerId>) -> Vec<PeerId> {
        std::mem::replace(&mut *crate::guard::lock(&self.peers), peers)
    }

    fn peers_into(&self, out: &mut Vec<PeerId>) {
        out.clear();
        out.extend_from_slice(&crate::guard::lock(&self.peers));
    }

    /// Whether the last frame was sent (the gate was open).
    pub(crate) fn transmitting(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Push to talk with the key up: nothing can go out now.
    fn closed(&self) -> bool {
        let g = self.gate();
        g.mode() == TalkMode::PushToTalk && !g.pressed()
    }

    pub(crate) fn pressed(&self) -> bool {
        self.gate().pressed()
    }

    pub(crate) fn press(&self, down: bool) {
        self.gate().press(down);
    }

    pub(crate) fn toggle(&self) {
        self.gate().toggle();
    }

    /// A listener reported this much loss (per mille): the robust profile's FEC
    /// follows the worst listener.
    pub(crate) fn reported_loss(&self, permille: u16) {
        self.loss_permille
            .store(u64::from(permille), Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CallStats {
        CallStats {
            frames_captured: self.captured.load(Ordering::Relaxed),
            datagrams_sent: self.sent.load(Ordering::Relaxed),
            send_errors: self.errors.load(Ordering::Relaxed),
            reported_loss_percent: self.loss_permille.load(Ordering::Relaxed) as f64 / 10.0,
            peers: Vec::new(),
        }
    }
}

/// Runs until `stop`.
pub(crate) fn run(
    mut tap: InputTap,
    node: &Node,
    settings: &CallSettings,
    stream: u32,
    stop: &AtomicBool,
    shared: &Shared,
) {
    let cfg = settings.codec;
    let ch = usize::from(cfg.channels);
    let frame = cfg.frame_samples as usize;
    let mut enc = match VoiceEncoder::new(cfg) {
        Ok(e) => e,
        Err(e) => return tracing::error!("the voice encoder: {e}"),
    };
    let to = AudioFormat {
        sample_rate: RATE,
        channels: cfg.channels,
    };
    let mut conv = match Converter::low_latency(tap.format, to) {
        Ok(c) => c,
        Err(e) => return tracing::error!("the microphone's format: {e}"),
    };
    let mut pz = Packetizer::new(stream, settings.copies, cfg.frame_samples, ch == 2);
    let in_ch = usize::from(tap.format.channels.max(1));
    let mut input = Vec::with_capacity(1 << 14);
    let mut pcm: Vec<f32> = Vec::with_capacity(1 << 15);
    let mut packet = [0u8; MAX_PACKET];
    let mut ts: u64 = 0;
    let start = Instant::now();
    let mut last_loss = u64::MAX;
    let (mut lag_min, mut lag_max) = (i64::MAX, i64::MIN);
    let mut received: u64 = 0;
    let mut peers: Vec<PeerId> = Vec::new();
    let in_rate = u64::from(tap.format.sample_rate.max(1));
    // Input frames drained with the talk key up, not yet counted into `ts`.
    let mut idle_in: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        input.clear();
        if shared.closed() {
            // The talk key is up: nothing can go out. The tap is kept drained (no
            // stale audio when the key goes down) and the clock keeps time in whole
            // frames, at a walk: nothing is converted or encoded.
            if pcm.is_empty() && idle_in == 0 {
                let _ = pz.packet(ts, &[], 0); // a gap: no copies across it
            }
            pcm.clear();
            idle_in += (tap.drain_into(&mut input) / in_ch) as u64;
            let frames = idle_in * u64::from(RATE) / in_rate / frame as u64;
            ts += frames * frame as u64;
            idle_in -= frames * frame as u64 * in_rate / u64::from(RATE);
            std::thread::sleep(CLOSED_NAP);
            continue;
        }
        idle_in = 0;
        if tap.drain_into(&mut input) == 0 {
            // Just after each capture callback: a frame goes out once complete.
            std::thread::sleep(OPEN_NAP);
            continue;
        }
        received += (input.len() / in_ch) as u64;
        conv.process(&input, &mut pcm);
        let mut used = 0;
        while pcm.len() - used >= frame * ch {
            let f = &pcm[used..used + frame * ch];
            used += frame * ch;
            shared.captured.fetch_add(1, Ordering::Relaxed);
            let now_us = start.elapsed().as_micros() as u64;
            let open = shared.gate().transmit(level_db(f), now_us);
            shared.open.store(open, Ordering::Relaxed);
            let loss = shared.loss_permille.load(Ordering::Relaxed);
            if loss != last_loss {
                let _ = enc.set_expected_loss(loss as f64 / 10.0);
                last_loss = loss;
            }
            let this_ts = ts;
            ts += frame as u64;
            let lag = now_us as i64 - (this_ts * 1_000_000 / u64::from(RATE)) as i64;
            lag_min = lag_min.min(lag);
            lag_max = lag_max.max(lag);
            if this_ts.is_multiple_of(100 * frame as u64) {
                tracing::debug!(
                    "capture: frames encoded {:.1}–{:.1} ms after their first sample was due (last second); tap dropped {}; device lost {} frames (filled); {received} frames in at {} Hz, {} out",
                    lag_min as f64 / 1000.0,
                    lag_max as f64 / 1000.0,
                    tap.dropped.load(Ordering::Relaxed),
                    tap.filled_frames(),
                    tap.format.sample_rate,
                    this_ts
                );
                lag_min = i64::MAX;
                lag_max = i64::MIN;
            }
            if !open {
                let _ = pz.packet(this_ts, &[], 0); // a gap: no copies across it
                continue;
            }
            let len = match enc.encode(f, &mut packet) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("encoding a voice frame failed: {e}");
                    continue;
                }
            };
            shared.peers_into(&mut peers);
            let max = peers
                .iter()
                .filter_map(|p| node.max_datagram(p))
                .min()
                .unwrap_or(1100);
            let Some(d) = pz.packet(this_ts, &packet[..len], max) else {
                continue;
            };
            for p in &peers {
                match node.send_datagram(p, datagram_kind::VOICE, &d) {
                    Ok(()) => shared.sent.fetch_add(1, Ordering::Relaxed),
                    Err(_) => shared.errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
        pcm.drain(..used);
    }
}
