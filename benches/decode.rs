//! Decoding speed per format, as a multiple of real time: a 30 s, 44.1 kHz stereo test
//! signal is encoded with ffmpeg into each format, then decoded with `decode_file`
//! (native format), and decoded and converted to 48 kHz stereo (what preloading a sound
//! for the engine does). Best of three runs each; the machines are shared, so compare
//! the figures within one run. `cargo bench --bench decode`; under a minute.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jhack::domain::AudioFormat;
use jhack::media::{Converter, decode_file};

const SECONDS: f64 = 30.0;
const RUNS: usize = 3;

fn ffmpeg(args: &[&str]) -> bool {
    Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The fastest of `RUNS` runs of `f`.
fn best(mut f: impl FnMut()) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn realtime(d: Duration) -> f64 {
    SECONDS / d.as_secs_f64().max(1e-9)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("jhack-bench-decode-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        eprintln!("cannot create {}", dir.display());
        return;
    }
    let master = dir.join("master.wav");
    let src = "aevalsrc=exprs='0.5*sin(2*PI*440*t)|0.4*sin(2*PI*(100*t+165*t*t))':s=44100:d=30";
    if !ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        src,
        "-c:a",
        "pcm_f32le",
        master.to_str().unwrap_or_default(),
    ]) {
        println!("decode bench skipped: ffmpeg is not installed");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let formats: &[(&str, &str, &[&str])] = &[
        ("wav s16", "s16.wav", &["-c:a", "pcm_s16le"]),
        ("wav f32", "f32.wav", &["-c:a", "pcm_f32le"]),
        ("flac", "a.flac", &["-c:a", "flac"]),
        ("mp3 192k", "a.mp3", &["-c:a", "libmp3lame", "-b:a", "192k"]),
        ("vorbis q6", "a.ogg", &["-c:a", "libvorbis", "-q:a", "6"]),
        ("aac 192k", "a.m4a", &["-c:a", "aac", "-b:a", "192k"]),
        ("opus 160k", "a.opus", &["-c:a", "libopus", "-b:a", "160k"]),
    ];
    let target = AudioFormat::new(48_000, 2);
    println!("30 s of 44.1 kHz stereo per file; best of {RUNS}; x = times real time");
    println!(
        "{:<10} {:>10} {:>16} {:>22}",
        "format", "size", "decode", "decode + to 48k stereo"
    );
    for (name, file, args) in formats {
        let path: PathBuf = dir.join(file);
        let mut all = vec!["-i", master.to_str().unwrap_or_default()];
        all.extend_from_slice(args);
        all.push(path.to_str().unwrap_or_default());
        if !ffmpeg(&all) {
            println!("{name:<10} (ffmpeg cannot encode it here)");
            continue;
        }
        let size = std::fs::metadata(&path).map_or(0, |m| m.len());
        let native = measure(&path, None);
        let converted = measure(&path, Some(target));
        match (native, converted) {
            (Ok(a), Ok(b)) => println!(
                "{name:<10} {:>7} KiB {:>9.0}x {:>4} ms {:>14.0}x {:>4} ms",
                size / 1024,
                realtime(a),
                a.as_millis(),
                realtime(b),
                b.as_millis()
            ),
            (Err(e), _) | (_, Err(e)) => println!("{name:<10} failed: {e}"),
        }
    }
    // The converter alone, on decoded audio (44.1 kHz stereo to 48 kHz stereo).
    if let Ok(d) = decode_file(&dir.join("f32.wav"), None) {
        let t = best(|| {
            let mut c = Converter::new(d.format, target).expect("valid formats");
            let mut out = Vec::with_capacity(48_000 * 2 * 31);
            for piece in d.samples.chunks(2 * 4096) {
                c.process(piece, &mut out);
            }
            c.finish(&mut out);
            std::hint::black_box(out);
        });
        println!(
            "{:<10} {:>10} {:>9.0}x {:>4} ms",
            "resample",
            "",
            realtime(t),
            t.as_millis()
        );
        let t = best(|| {
            let mut c = Converter::new(AudioFormat::new(48_000, 6), target).expect("valid formats");
            let six = vec![0.1f32; 48_000 * 6 * 30];
            let mut out = Vec::with_capacity(48_000 * 2 * 30);
            c.process(&six, &mut out);
            c.finish(&mut out);
            std::hint::black_box(out);
        });
        println!(
            "{:<10} {:>10} {:>9.0}x {:>4} ms",
            "5.1>stereo",
            "",
            realtime(t),
            t.as_millis()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn measure(path: &Path, target: Option<AudioFormat>) -> Result<Duration, String> {
    // Warm the page cache and check it decodes.
    let d = decode_file(path, target).map_err(|e| e.to_string())?;
    std::hint::black_box(d);
    Ok(best(|| {
        let d = decode_file(path, target);
        std::hint::black_box(d.map(|d| d.samples.len()).unwrap_or_default());
    }))
}
