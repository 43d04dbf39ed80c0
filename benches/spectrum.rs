//! Spectrum analysis cost, as CPU time per second of 48 kHz stereo audio: the stereo
//! to mono downmix plus a 2048-point analyser at several frame rates, with and without
//! mapping every frame to display bands; then a running `SpectrumWorker` fed in real
//! time, its thread's CPU time read from /proc (Linux only). Medians of several runs;
//! the machines are shared, so compare the figures within one run.
//! `cargo bench --bench spectrum`; about ten seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jhack::app::spectrum::{SpectrumConfig, SpectrumSource, SpectrumWorker};
use jhack::dsp::{LogBands, SpectrumAnalyser};

const RATE: u32 = 48_000;
const FFT: usize = 2048;
const SECONDS: usize = 20;
const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn signal() -> Vec<f32> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..RATE as usize * SECONDS)
        .flat_map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let s = 0.3 * (i as f32 * 2.0 * std::f32::consts::PI * 440.0 / RATE as f32).sin();
            [s + 0.1 * n, s - 0.1 * n]
        })
        .collect()
}

/// CPU per second of audio: downmix in 480-frame pieces, analyse, and map each frame
/// to `bands` bands when given.
fn analysis(stereo: &[f32], hop: usize, bands: Option<&LogBands>) -> Duration {
    let runs = (0..RUNS)
        .map(|_| {
            let mut a = SpectrumAnalyser::new(RATE, FFT);
            a.set_hop(hop);
            let mut mono = vec![0.0f32; 480];
            let mut out = vec![0.0f32; bands.map_or(0, LogBands::bands)];
            let start = Instant::now();
            for piece in stereo.chunks(2 * 480) {
                let n = piece.len() / 2;
                for (m, f) in mono.iter_mut().zip(piece.chunks_exact(2)) {
                    *m = (f[0] + f[1]) * 0.5;
                }
                a.push_with(&mono[..n], |db| {
                    if let Some(b) = bands {
                        b.map(db, &mut out);
                        std::hint::black_box(&out);
                    }
                });
            }
            std::hint::black_box(a.frame());
            start.elapsed() / SECONDS as u32
        })
        .collect();
    median(runs)
}

/// CPU time of the named thread of this process, from /proc: the scheduler's run time
/// (ns) where the kernel keeps it, else utime + stime (10 ms ticks).
fn thread_cpu(name: &str) -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            return Some(Duration::from_nanos(ns));
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // After the parenthesised name: utime and stime are the 12th and 13th fields.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        return Some(Duration::from_secs_f64(ticks / 100.0));
    }
    None
}

/// The worker's own CPU share while fed 48 kHz stereo in real time for `secs`.
fn worker(frame_rate: f32, secs: u64) -> Option<f64> {
    let (mut tx, rx) = rtrb::RingBuffer::new(RATE as usize * 2);
    let config = SpectrumConfig {
        frame_rate,
        ..SpectrumConfig::default()
    };
    let w = SpectrumWorker::start(config, Some(SpectrumSource::new(rx, 2, RATE))).ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_feed = stop.clone();
    // Like an audio callback: 256 frames every 5.33 ms.
    let feed = std::thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop_feed.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * f64::from(RATE)) as u64;
            while sent + 256 <= due {
                if let Ok(mut c) = tx.write_chunk(512) {
                    let (a, b) = c.as_mut_slices();
                    a.fill(0.1);
                    b.fill(0.1);
                    c.commit_all();
                }
                sent += 256;
            }
            std::thread::sleep(Duration::from_micros(5333));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = thread_cpu("jhack-spectrum");
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let after = thread_cpu("jhack-spectrum");
    let wall = t.elapsed();
    let frames = w.next_seq();
    stop.store(true, Ordering::Relaxed);
    let _ = feed.join();
    drop(w);
    let used = after? - before?;
    println!(
        "worker at {frame_rate:>2} fps: {:>5.2} % of a core over {secs} s ({:.1} ms CPU, {frames} frames)",
        100.0 * used.as_secs_f64() / wall.as_secs_f64(),
        used.as_secs_f64() * 1e3
    );
    Some(used.as_secs_f64() / wall.as_secs_f64())
}

fn main() {
    let stereo = signal();
    let pct = |d: Duration| 100.0 * d.as_secs_f64();
    println!(
        "{SECONDS} s of 48 kHz stereo, {FFT}-point FFT; CPU per second of audio, median of {RUNS}"
    );
    let bands = LogBands::new(200, 20.0, 20_000.0, RATE, FFT);
    for (label, hop) in [
        ("30 fps (hop 1600)", 1600),
        ("40 fps (hop 1200)", 1200),
        ("47 fps (hop 1024)", 1024),
    ] {
        let plain = analysis(&stereo, hop, None);
        let mapped = analysis(&stereo, hop, Some(&bands));
        println!(
            "{label:<18} analysis {:>6.1} µs/s ({:.3} %)   + 200 bands {:>6.1} µs/s ({:.3} %)",
            plain.as_secs_f64() * 1e6,
            pct(plain),
            mapped.as_secs_f64() * 1e6,
            pct(mapped)
        );
    }
    if worker(30.0, 4).is_none() || worker(40.0, 4).is_none() {
        println!("worker: thread CPU time not readable here (needs Linux /proc)");
    }
}
