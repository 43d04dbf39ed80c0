//! Shared helpers for the integration tests: running the real binary with a private
//! home, the virtual audio stack (speaker monitor capture, microphone feed), fixtures
//! made with sox/ffmpeg, and raw-float parsing.
#![allow(dead_code)]

pub mod health;
pub mod peers;
pub mod probe;
#[allow(dead_code)] // the relay offers more than the tests use
pub mod relay;
pub mod screen;
pub mod stack;
pub mod stalls;
pub mod syncthing;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const RATE: u32 = 48_000;

/// The jhack binary, with a private home and quiet logs.
pub fn jhack(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jhack"));
    c.arg("--home")
        .arg(home)
        .env_remove("JHACK_LOG")
        .stdin(Stdio::null());
    c
}

/// Runs a command to completion with a timeout; panics (test failure) on timeout.
/// Its output is drained while it runs (a long listing must not fill the pipe).
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    use std::io::Read;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out after {timeout:?}: stdout {} stderr {}",
                String::from_utf8_lossy(&out.join().unwrap_or_default()),
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Says that `test` (or a part of it) did not run, and why, and appends the line to
/// the file named by `JHACK_SKIP_LOG` (the test script counts them: a skip is never a
/// pass, and where everything the README installs is present, it is a failure).
pub fn skip(test: &str, why: &str) {
    let line = format!("skipped {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("JHACK_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Runs a real-device measurement up to four times, a second apart: a shared
/// machine's neighbour can make the sound server (or `paplay`/`parec`) miss a
/// deadline, which is not a fault of jhack's (jhack's own counters show no xrun then);
/// a fault of jhack's fails every attempt. The last failure is the test's.
pub fn retried(what: &str, mut attempt: impl FnMut()) {
    const ATTEMPTS: u32 = 4;
    for n in 1..=ATTEMPTS {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut attempt)) {
            Ok(()) => {
                if n > 1 {
                    eprintln!("{what}: passed at attempt {n}");
                }
                return;
            }
            Err(e) if n == ATTEMPTS => std::panic::resume_unwind(e),
            Err(_) => {
                eprintln!("{what}: attempt {n} failed; once more");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

static AUDIO: Mutex<()> = Mutex::new(());

/// The virtual audio stack, held exclusively (tests share one speaker). `None` (with
/// a message) when the stack is not running.
pub fn audio_stack(test: &str) -> Option<MutexGuard<'static, ()>> {
    if std::env::var("JHACK_TEST_AUDIO").as_deref() != Ok("1") || !have("parec") {
        skip(
            test,
            "virtual audio stack not running (start it with scripts/audio-stack/start.sh)",
        );
        return None;
    }
    Some(AUDIO.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The virtual audio stack, held exclusively, for a test that feeds the virtual
/// microphone: as [`audio_stack`], with the microphone first shown to carry sound
/// (see [`health::ensure_mic`]).
pub fn mic_stack(test: &str) -> Option<MutexGuard<'static, ()>> {
    let guard = audio_stack(test)?;
    health::ensure_mic(test);
    Some(guard)
}

/// Raw bytes captured, and for each read its arrival time (µs) and the bytes so far.
type Capture = (Vec<u8>, Vec<(u128, usize)>);

/// Captures what the virtual speaker plays, as interleaved stereo f32.
pub struct Monitor {
    child: Child,
    reader: Option<std::thread::JoinHandle<Capture>>,
    pub started: Instant,
}

impl Monitor {
    pub fn start() -> Monitor {
        Monitor::record(Command::new("parec"), "test_speaker.monitor")
    }

    /// Captures another PulseAudio source (e.g. `test_mic_feed.monitor`: what the
    /// virtual microphone hears).
    pub fn start_device(device: &str) -> Monitor {
        Monitor::record(Command::new("parec"), device)
    }

    /// Captures what a private stack's virtual speaker plays.
    pub fn start_on(stack: &stack::PrivateStack) -> Monitor {
        let mut cmd = Command::new("parec");
        stack.apply(&mut cmd);
        Monitor::record(cmd, "test_speaker.monitor")
    }

    fn record(mut cmd: Command, device: &str) -> Monitor {
        let mut child = cmd
            .arg(format!("--device={device}"))
            .args([
                "--channels=2",
                "--rate=48000",
                "--format=float32le",
                "--raw",
            ])
            .args(["--latency-msec=5", "--process-time-msec=2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec");
        let mut out = child.stdout.take().expect("parec stdout");
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut arrivals = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                arrivals.push((unix_us(), buf.len()));
            }
            (buf, arrivals)
        });
        // Give the recorder a moment to connect before anything plays.
        std::thread::sleep(Duration::from_millis(300));
        Monitor {
            child,
            reader: Some(reader),
            started: Instant::now(),
        }
    }

    /// Stops capturing and returns interleaved stereo samples.
    pub fn stop(self) -> Vec<f32> {
        self.stop_timed().0
    }

    /// Stops capturing; returns interleaved stereo samples and, for each read from the
    /// recorder, the wall-clock arrival time (µs since the epoch) and the bytes read so far.
    pub fn stop_timed(mut self) -> (Vec<f32>, Vec<(u128, usize)>) {
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (bytes, arrivals) = self
            .reader
            .take()
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default();
        (f32le(&bytes), arrivals)
    }
}

/// Wall-clock now, µs since the Unix epoch.
pub fn unix_us() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

pub fn f32le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One channel of an interleaved signal.
pub fn channel(samples: &[f32], channels: usize, c: usize) -> Vec<f32> {
    samples.iter().skip(c).step_by(channels).copied().collect()
}

/// Plays a file into the virtual microphone.
pub fn feed_mic(file: &Path) -> Child {
    Command::new("paplay")
        .arg("--device=test_mic_feed")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("paplay")
}

/// `secs` of mono pink noise at −20 dBFS in `dir/noise.wav` (a spectrogram of it
/// changes every cell of every row: the worst case for a terminal).
pub fn pink_noise(dir: &Path, secs: u32) -> PathBuf {
    let noise = dir.join("noise.wav");
    sh(&format!(
        "sox -n -r 48000 -c 1 -b 16 {} synth {secs} pinknoise gain -20",
        noise.display()
    ));
    noise
}

/// A JSON file one of the programs wrote (figures at exit).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a shell command that must succeed (fixture generation).
pub fn sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A sine WAV made with sox.
pub fn sine_wav(
    dir: &Path,
    name: &str,
    freq: u32,
    secs: f64,
    gain_db: f64,
    rate: u32,
    channels: u32,
) -> PathBuf {
    let p = dir.join(name);
    sh(&format!(
        "sox -n -r {rate} -c {channels} -b 16 {} synth {secs} sine {freq} gain {gain_db}",
        p.display()
    ));
    p
}

/// Decodes any file to mono or stereo f32 at 48 kHz with ffmpeg.
pub fn ffmpeg_decode(path: &Path, channels: u32) -> Vec<f32> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-f",
            "f32le",
            "-ac",
            &channels.to_string(),
            "-ar",
            "48000",
            "-",
        ])
        .output()
        .expect("ffmpeg");
    assert!(
        o.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    f32le(&o.stdout)
}

/// Reads a WAV written by jhack (32-bit float) with hound.
pub fn read_wav(path: &Path) -> (hound::WavSpec, Vec<f32>) {
    let mut r = hound::WavReader::open(path).expect("open wav");
    let spec = r.spec();
    let s = match spec.sample_format {
        hound::SampleFormat::Float => r.samples::<f32>().map(|s| s.expect("sample")).collect(),
        hound::SampleFormat::Int => {
            let scale = (1i64 << (spec.bits_per_sample - 1)) as f32;
            r.samples::<i32>()
                .map(|s| s.expect("sample") as f32 / scale)
                .collect()
        }
    };
    (spec, s)
}

pub fn peak(s: &[f32]) -> f32 {
    s.iter().fold(0.0f32, |m, x| m.max(x.abs()))
}

pub fn rms(s: &[f32]) -> f32 {
    (s.iter().map(|x| f64::from(*x) * f64::from(*x)).sum::<f64>() / s.len().max(1) as f64).sqrt()
        as f32
}

pub fn db(x: f32) -> f32 {
    20.0 * x.max(1e-9).log10()
}

/// When the first sample at or above `threshold` (either channel of a stereo
/// capture) reached the monitor, µs since the epoch: the read that delivered it, less
/// the frames after it in that read.
pub fn onset_unix_us(captured: &[f32], arrivals: &[(u128, usize)], threshold: f32) -> Option<f64> {
    use jhack::dsp::analysis::onset;
    let left = channel(captured, 2, 0);
    let right = channel(captured, 2, 1);
    let frame = match (onset(&left, threshold), onset(&right, threshold)) {
        (Some(l), Some(r)) => l.min(r),
        (l, r) => l.or(r)?,
    };
    let byte = (frame + 1) * 8;
    let &(read_us, read_end) = arrivals.iter().find(|(_, end)| *end >= byte)?;
    let back_us = ((read_end - byte) / 8) as f64 * 1e6 / 48_000.0;
    Some(read_us as f64 - back_us)
}

/// A canonical 44-byte PCM WAV header; any values, even nonsense ones (for the tests
/// of bad input), are written as given.
pub fn wav_header(channels: u16, rate: u32, bits: u16, data_len: u32) -> Vec<u8> {
    let block = channels.wrapping_mul(bits / 8);
    let mut h = Vec::new();
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&data_len.saturating_add(36).to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.wrapping_mul(u32::from(block)).to_le_bytes());
    h.extend_from_slice(&block.to_le_bytes());
    h.extend_from_slice(&bits.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_len.to_le_bytes());
    h
}

/// Before a timing measurement: the dirty pages earlier tests left (hundreds of MB
/// from the transfer tests) are written out now, not by the kernel's writeback in
/// the middle of the measurement.
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(std::time::Duration::from_millis(200));
}
