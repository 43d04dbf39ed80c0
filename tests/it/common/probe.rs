//! Mouth-to-ear with one clock: a 2-channel null sink `probe` whose left input is the
//! virtual microphone's feed and whose right input is the virtual speaker, recorded as
//! one stream, so the delay between a click on the left and the same click on the
//! right is measured on a single clock (two recordings started apart would skew it).

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running probe recording.
pub struct Probe {
    child: Child,
    reader: Option<std::thread::JoinHandle<Vec<u8>>>,
}

fn pactl(args: &[&str]) -> String {
    let o = Command::new("pactl").args(args).output().expect("pactl");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn link(out: &str, inp: &str) {
    // Linking twice is refused harmlessly; the first link stays.
    let _ = Command::new("pw-link")
        .args([out, inp])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Probe {
    /// Makes (once) and links the probe sink, then records it.
    pub fn start() -> Probe {
        if !pactl(&["list", "short", "sinks"]).contains("probe") {
            pactl(&[
                "load-module",
                "module-null-sink",
                "sink_name=probe",
                "rate=48000",
                "channels=2",
                "channel_map=front-left,front-right",
            ]);
            std::thread::sleep(Duration::from_millis(300));
        }
        link("test_mic_feed:monitor_MONO", "probe:playback_FL");
        link("test_speaker:monitor_FL", "probe:playback_FR");
        let mut child = Command::new("parec")
            .args([
                "--device=probe.monitor",
                "--channels=2",
                "--rate=48000",
                "--format=float32le",
                "--raw",
                "--latency-msec=20",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec");
        let mut out = child.stdout.take().expect("parec stdout");
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        std::thread::sleep(Duration::from_millis(300));
        Probe {
            child,
            reader: Some(reader),
        }
    }

    /// Stops; returns (microphone feed, speaker) at 48 kHz.
    pub fn stop(mut self) -> (Vec<f32>, Vec<f32>) {
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let bytes = self
            .reader
            .take()
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default();
        let s = super::f32le(&bytes);
        (super::channel(&s, 2, 0), super::channel(&s, 2, 1))
    }
}

/// A WAV of `n` clicks `every` seconds apart after a second of silence: each a 3 ms
/// burst of a 2 kHz tone, loud enough to find and short enough to time.
pub fn click_train(path: &Path, n: usize, every: f64) {
    let rate = 48_000usize;
    let len = rate + (n as f64 * every * rate as f64) as usize + rate;
    let mut s = vec![0.0f32; len];
    for k in 0..n {
        let at = rate + (k as f64 * every * rate as f64) as usize;
        for i in 0..144 {
            let env = (std::f32::consts::PI * i as f32 / 144.0).sin();
            s[at + i] =
                0.7 * env * (2.0 * std::f32::consts::PI * 2000.0 * i as f32 / 48_000.0).sin();
        }
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48_000,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for x in s {
        w.write_sample(x).expect("sample");
    }
    w.finalize().expect("wav");
}

/// The delay (ms) of each click of `mic` in `spk`: for each onset on the left, the
/// lag in 0..500 ms that best correlates a 10 ms window of it with the right; `None`
/// for a click not found (a dropout or a loss), with the correlation too weak.
pub fn click_delays(mic: &[f32], spk: &[f32]) -> Vec<Option<f64>> {
    let mut out = Vec::new();
    let mut i = 0;
    let win = 480;
    let max_lag = 48 * 500;
    while i + win < mic.len() {
        if mic[i].abs() < 0.05 {
            i += 1;
            continue;
        }
        let start = i.saturating_sub(48);
        let a = &mic[start..(start + win).min(mic.len())];
        let ea: f32 = a.iter().map(|x| x * x).sum();
        let mut best = (0.0f32, 0usize);
        for lag in 0..max_lag {
            let Some(b) = spk.get(start + lag..start + lag + a.len()) else {
                break;
            };
            let c: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            if c > best.0 {
                best = (c, lag);
            }
        }
        let b = &spk[(start + best.1).min(spk.len())..(start + best.1 + a.len()).min(spk.len())];
        let eb: f32 = b.iter().map(|x| x * x).sum();
        let r = best.0 / (ea * eb).sqrt().max(1e-9);
        out.push((r > 0.5).then_some(best.1 as f64 / 48.0));
        i += 48 * 100; // past this click (clicks are further apart than the longest lag)
    }
    out
}

/// The `q` quantile of the found delays.
pub fn quantile(d: &[Option<f64>], q: f64) -> f64 {
    let mut v: Vec<f64> = d.iter().flatten().copied().collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}
