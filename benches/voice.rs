//! What one call costs the CPU, per second of speech-like audio at 48 kHz mono: the
//! talker's Opus encoding and packetising, and the listener's depacketising, jitter
//! buffer, Opus decoding and stretching — everything but the network and the sound
//! card. Low delay at 2.5, 5, 10 and 20 ms frames, and robust at 10 ms. Medians of
//! several runs, as a percentage of one core; the machines are shared, so compare the
//! figures within one run. `cargo bench --bench voice`; about ten seconds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use jhack::media::stretch::Stretcher;
use jhack::voice::codec::{CodecConfig, MAX_PACKET, Profile, VoiceDecoder, VoiceEncoder};
use jhack::voice::jitter::{Action, JitterBuffer, JitterConfig};
use jhack::voice::packet::{Depacketizer, Packetizer};

const RATE: usize = 48_000;
const SECONDS: usize = 10;
const RUNS: usize = 5;

/// Speech-like: a voiced tone with a wandering pitch and noise, in 300 ms syllables.
fn signal() -> Vec<f32> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut phase = 0.0f32;
    (0..RATE * SECONDS)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let t = i as f32 / RATE as f32;
            let f = 140.0 + 40.0 * (t * 3.0).sin();
            phase += 2.0 * std::f32::consts::PI * f / RATE as f32;
            let env = (t * std::f32::consts::PI / 0.3).sin().abs();
            env * (0.3 * phase.sin() + 0.1 * (3.0 * phase).sin() + 0.05 * n)
        })
        .collect()
}

/// CPU time of one pass (seconds of audio → duration).
fn one_call(pcm: &[f32], profile: Profile, frame: u32) -> Duration {
    let mut cfg = CodecConfig::new(profile);
    cfg.frame_samples = frame;
    let mut enc = VoiceEncoder::new(cfg).expect("encoder");
    let mut dec = VoiceDecoder::new(1).expect("decoder");
    let copies = if profile == Profile::LowDelay { 1 } else { 0 };
    let mut pz = Packetizer::new(1, copies, frame, false);
    let mut depack = Depacketizer::default();
    let mut jb = JitterBuffer::new(JitterConfig {
        frame_samples: frame,
        fec: profile == Profile::Robust,
        ..JitterConfig::default()
    });
    let mut stretch = Stretcher::new(48_000, 48_000, 1).expect("stretcher");
    let mut packet = [0u8; MAX_PACKET];
    let mut out = vec![0.0f32; 5760];
    let mut stretched = Vec::with_capacity(8192);
    let frame_us = u64::from(frame) * 1_000_000 / RATE as u64;
    let t0 = Instant::now();
    for (n, f) in pcm.chunks_exact(frame as usize).enumerate() {
        let now = n as u64 * frame_us + 3_000;
        let len = enc.encode(f, &mut packet).expect("encode");
        if let Some(d) = pz.packet(n as u64 * u64::from(frame), &packet[..len], 1200) {
            for i in depack.frames(&Bytes::from(d)).expect("parse") {
                let _ = jb.push(now, i);
            }
        }
        let pull = jb.pull(now);
        let samples = match pull.action {
            Action::Decode { payload, samples } => dec
                .decode(&payload, false, &mut out[..samples as usize])
                .expect("decode"),
            Action::DecodeFec { payload, samples } => dec
                .decode(&payload, true, &mut out[..samples as usize])
                .expect("fec"),
            Action::Conceal { samples, .. } => {
                dec.conceal(&mut out[..samples as usize]).expect("plc")
            }
            Action::Silence { samples } => samples as usize,
            Action::Idle => 0,
        };
        stretched.clear();
        stretch.process(&out[..samples], pull.ratio, &mut stretched);
    }
    t0.elapsed()
}

fn main() {
    let pcm = signal();
    println!(
        "one call, encode + packetise + jitter buffer + decode + stretch, per second of audio:"
    );
    for (profile, ms) in [
        (Profile::LowDelay, 2.5),
        (Profile::LowDelay, 5.0),
        (Profile::LowDelay, 10.0),
        (Profile::LowDelay, 20.0),
        (Profile::Robust, 10.0),
    ] {
        let frame = CodecConfig::frame_for_ms(ms).expect("frame");
        let mut runs: Vec<Duration> = (0..RUNS).map(|_| one_call(&pcm, profile, frame)).collect();
        runs.sort();
        let median = runs[RUNS / 2];
        let percent = median.as_secs_f64() / SECONDS as f64 * 100.0;
        println!(
            "  {:9} {ms:4} ms frames: {percent:.2} % of one core (median of {RUNS}; runs {:.1?})",
            profile.name(),
            runs
        );
    }
}
