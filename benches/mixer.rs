//! Mixer cost: 256 simultaneous voices at 48 kHz stereo in 256-frame periods, as CPU
//! time per second of audio, beside a plain copy of the same output buffer measured in
//! the same run. Prints medians of several runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jhack::audio::command::Command;
use jhack::audio::mixer::{CallbackTiming, Mixer, MixerParams, MixerRings};
use jhack::audio::stats::EngineStats;
use jhack::audio::voice::Voice;
use jhack::audio::{VoiceId, VoiceSource};
use jhack::domain::AudioFormat;

const RATE: u32 = 48_000;
const CHANNELS: usize = 2;
const PERIOD: usize = 256;
const VOICES: usize = 256;
const SECONDS: usize = 5;
const RUNS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mixer_run(sound: &Arc<[f32]>) -> Duration {
    let (mut cmd, cmd_rx) = rtrb::RingBuffer::new(1024);
    let (ret_tx, _ret) = rtrb::RingBuffer::new(2048);
    let (ev_tx, _ev) = rtrb::RingBuffer::new(1024);
    let rings = MixerRings {
        commands: cmd_rx,
        returns: ret_tx,
        events: ev_tx,
        tap: None,
    };
    let stats = Arc::new(EngineStats::default());
    let mut mixer = Mixer::new(
        AudioFormat::new(RATE, CHANNELS as u16),
        VOICES,
        2048,
        rings,
        Arc::new(MixerParams::default()),
        stats,
    );
    for i in 0..VOICES {
        let v = Voice::new(VoiceId(i as u64), VoiceSource::Buffer(sound.clone()), 0.01);
        assert!(cmd.push(Command::Play(Box::new(v))).is_ok());
    }
    let mut out = vec![0.0f32; PERIOD * CHANNELS];
    let periods = SECONDS * RATE as usize / PERIOD;
    let start = Instant::now();
    for _ in 0..periods {
        mixer.render(&mut out, CallbackTiming::now());
        std::hint::black_box(&out);
    }
    start.elapsed() / SECONDS as u32
}

fn copy_run(sound: &Arc<[f32]>) -> Duration {
    let mut out = vec![0.0f32; PERIOD * CHANNELS];
    let periods = SECONDS * RATE as usize / PERIOD;
    let start = Instant::now();
    for p in 0..periods {
        let off = (p * PERIOD * CHANNELS) % (sound.len() - out.len());
        out.copy_from_slice(&sound[off..off + PERIOD * CHANNELS]);
        std::hint::black_box(&out);
    }
    start.elapsed() / SECONDS as u32
}

fn main() {
    // Each voice is 6 s long so all 256 play for the whole measured 5 s.
    let sound: Arc<[f32]> = (0..RATE as usize * 6 * CHANNELS)
        .map(|i| ((i / CHANNELS) as f32 * 0.0571).sin() * 0.5)
        .collect::<Vec<_>>()
        .into();
    let mut mix = Vec::new();
    let mut copy = Vec::new();
    for _ in 0..RUNS {
        mix.push(mixer_run(&sound));
        copy.push(copy_run(&sound));
    }
    let (m, c) = (median(mix), median(copy));
    let pct = m.as_secs_f64() * 100.0;
    println!(
        "mixer: {VOICES} voices, {RATE} Hz stereo, {PERIOD}-frame periods, median of {RUNS} runs"
    );
    println!(
        "  mixer      {:>8.3} ms CPU per s of audio = {pct:.2} % of one core",
        m.as_secs_f64() * 1e3
    );
    println!(
        "  plain copy {:>8.3} ms CPU per s of audio = {:.3} % of one core",
        c.as_secs_f64() * 1e3,
        c.as_secs_f64() * 100.0
    );
    println!(
        "  ratio mixer/copy: {:.0}x; per voice: {:.2} us per s of audio",
        m.as_secs_f64() / c.as_secs_f64().max(1e-12),
        m.as_secs_f64() * 1e6 / VOICES as f64
    );
    println!(
        "  target <= 5 % of one core: {}",
        if pct <= 5.0 { "met" } else { "NOT met" }
    );
}
