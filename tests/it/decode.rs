//! The media decoder against ffmpeg, the oracle: fixtures are generated at test time
//! (a 440 Hz tone on the left, a 100 Hz to 10 kHz chirp on the right) in every format
//! jhack decodes, and our PCM is compared with `ffmpeg -f f32le` of the same file:
//! length (exact for PCM and FLAC; within the codec's priming/padding for lossy ones)
//! and SNR after aligning by cross-correlation. Also: corrupt packets in the middle
//! are skipped, surround downmixes, and every kind of bad file is a clear error.
//!
//! Run with `--nocapture` to see the figures. Without ffmpeg the comparisons are
//! counted as skipped (and the test script fails).

use crate::common;
use crate::common::wav_header;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use jhack::domain::AudioFormat;
use jhack::media::{Converter, Decoder, MediaError, decode_file};

const RATE: u32 = 44_100;
const SECONDS: f64 = 3.0;

/// Left: 440 Hz at -6 dBFS. Right: a linear chirp from 100 Hz to 10 kHz at -8 dBFS.
const SIGNAL: &str =
    "aevalsrc=exprs='0.5*sin(2*PI*440*t)|0.4*sin(2*PI*(100*t+1650*t*t))':s=44100:d=3";

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "jhack-decode-{name}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// True (after printing why) when ffmpeg is missing and the test must be skipped.
fn skip_without_ffmpeg(test: &str) -> bool {
    if have("ffmpeg") {
        return false;
    }
    common::skip(test, "ffmpeg is not installed (apt-get install ffmpeg)");
    true
}

/// Runs ffmpeg quietly with `args`; panics with its stderr on failure.
fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The test signal as 32-bit float WAV.
fn master(dir: &Scratch) -> PathBuf {
    let p = dir.path("master.wav");
    if !p.exists() {
        ffmpeg(&["-f", "lavfi", "-i", SIGNAL, "-c:a", "pcm_f32le", s(&p)]);
    }
    p
}

/// Encodes the master signal with extra ffmpeg output arguments.
fn encode(dir: &Scratch, name: &str, args: &[&str]) -> PathBuf {
    let m = master(dir);
    let p = dir.path(name);
    let mut all = vec!["-i", s(&m)];
    all.extend_from_slice(args);
    all.push(s(&p));
    ffmpeg(&all);
    p
}

/// ffmpeg's decode of `path` as interleaved f32 with `channels` at `rate`.
fn ffmpeg_pcm(path: &Path, channels: u16, rate: u32) -> Vec<f32> {
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-i",
            s(path),
            "-f",
            "f32le",
            "-ac",
        ])
        .arg(channels.to_string())
        .arg("-ar")
        .arg(rate.to_string())
        .arg("-")
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg decode {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Decodes with our streaming decoder, block by block.
fn ours(path: &Path) -> (Vec<f32>, jhack::media::SourceInfo, u64) {
    let mut d = Decoder::open(path).unwrap_or_else(|e| panic!("{e}"));
    let info = d.info().clone();
    let mut v = Vec::new();
    while d.next_block(&mut v).unwrap_or_else(|e| panic!("{e}")) > 0 {}
    (v, info, d.skipped_packets())
}

/// Signal-to-noise ratio in dB of `test` against `reference` (same length).
fn snr(reference: &[f32], test: &[f32]) -> f64 {
    let n = reference.len().min(test.len());
    let (mut sig, mut err) = (0.0f64, 0.0f64);
    for (r, t) in reference[..n].iter().zip(&test[..n]) {
        sig += f64::from(*r) * f64::from(*r);
        err += (f64::from(*r) - f64::from(*t)).powi(2);
    }
    if err == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (sig / err).log10()
    }
}

/// The lag (in frames) of `b` relative to `a` that best aligns channel `c` of both,
/// within ±`max`: `b[i + lag]` matches `a[i]`. Use a channel with a non-periodic signal
/// (the chirp), or the lag is ambiguous.
fn best_lag(a: &[f32], b: &[f32], ch: usize, c: usize, max: i64) -> i64 {
    let frames_a = a.len() / ch;
    let frames_b = b.len() / ch;
    let start = (max as usize).max(frames_a / 3);
    let len = 16_384.min(frames_a.saturating_sub(start + max as usize));
    let mut best = (0i64, f64::MIN);
    for lag in -max..=max {
        let mut acc = 0.0f64;
        for i in start..start + len {
            let j = i as i64 + lag;
            if j < 0 || j as usize >= frames_b {
                continue;
            }
            acc += f64::from(a[i * ch + c]) * f64::from(b[j as usize * ch + c]);
        }
        if acc > best.1 {
            best = (lag, acc);
        }
    }
    best.0
}

/// SNR of `b` against `a` after shifting `b` by `lag` frames, over their overlap.
fn snr_aligned(a: &[f32], b: &[f32], ch: usize, lag: i64) -> f64 {
    let (a, b) = if lag >= 0 {
        (a, &b[(lag as usize * ch).min(b.len())..])
    } else {
        (&a[(-lag) as usize * ch..], b)
    };
    let n = a.len().min(b.len());
    snr(&a[..n], &b[..n])
}

struct Case<'a> {
    name: &'a str,
    file: &'a str,
    args: &'a [&'a str],
    codec: &'a str,
    container: &'a str,
    /// Lossless: exact length, bit-exact or > 90 dB. Lossy: > 30 dB after alignment.
    lossless: bool,
}

/// Encodes, decodes with both, compares and prints the figures.
fn compare(case: &Case<'_>) {
    if skip_without_ffmpeg(case.name) {
        return;
    }
    let dir = Scratch::new(case.name);
    let f = encode(&dir, case.file, case.args);
    let (ours, info, skipped) = ours(&f);
    assert_eq!(info.codec, case.codec, "{}", case.name);
    assert_eq!(info.container, case.container, "{}", case.name);
    assert_eq!(
        skipped, 0,
        "{}: no packet of a clean file may be skipped",
        case.name
    );
    let ch = info.format.channels;
    assert_eq!(ch, 2, "{}", case.name);
    let rate = info.format.sample_rate;
    let theirs = ffmpeg_pcm(&f, ch, rate);
    let (n_ours, n_theirs) = (ours.len() / 2, theirs.len() / 2);
    let diff = n_ours as i64 - n_theirs as i64;
    if case.lossless {
        let snr = snr(&theirs, &ours);
        eprintln!(
            "{:<10} {:>5} Hz  ours {n_ours} frames, ffmpeg {n_theirs} ({diff:+}), header {:?}; SNR {snr:.1} dB",
            case.name, rate, info.frames
        );
        assert_eq!(n_ours, n_theirs, "{}: lengths differ", case.name);
        if let Some(n) = info.frames {
            assert_eq!(n, n_ours as u64, "{}: the header's frame count", case.name);
        }
        assert!(snr > 90.0, "{}: SNR {snr:.1} dB", case.name);
    } else {
        let lag = best_lag(&theirs, &ours, 2, 1, 4096);
        let snr_l = snr_aligned(&theirs, &ours, 2, lag);
        let snr_r = snr_aligned(&theirs[1..], &ours[1..], 2, lag);
        eprintln!(
            "{:<10} {:>5} Hz  ours {n_ours} frames, ffmpeg {n_theirs} ({diff:+}), header {:?}; lag {lag}; SNR L {snr_l:.1} dB, R {snr_r:.1} dB",
            case.name, rate, info.frames
        );
        // Lossy codecs: priming and padding are at most a few thousand frames.
        assert!(
            diff.abs() <= 3000,
            "{}: length differs by {diff} frames",
            case.name
        );
        assert!(lag.abs() <= 3000, "{}: lag {lag}", case.name);
        assert!(
            snr_l > 30.0 && snr_r > 30.0,
            "{}: SNR {snr_l:.1} / {snr_r:.1} dB",
            case.name
        );
        let expected = (SECONDS * f64::from(rate)) as i64;
        assert!(
            (n_ours as i64 - expected).abs() <= 3000,
            "{}: {n_ours} frames, expected about {expected}",
            case.name
        );
    }
}

#[test]
fn wav_u8() {
    compare(&Case {
        name: "wav-u8",
        file: "u8.wav",
        args: &["-c:a", "pcm_u8"],
        codec: "pcm_u8",
        container: "wav",
        lossless: true,
    });
}

#[test]
fn wav_s16() {
    compare(&Case {
        name: "wav-s16",
        file: "s16.wav",
        args: &["-c:a", "pcm_s16le"],
        codec: "pcm_s16le",
        container: "wav",
        lossless: true,
    });
}

#[test]
fn wav_s24() {
    compare(&Case {
        name: "wav-s24",
        file: "s24.wav",
        args: &["-c:a", "pcm_s24le"],
        codec: "pcm_s24le",
        container: "wav",
        lossless: true,
    });
}

#[test]
fn wav_s32() {
    compare(&Case {
        name: "wav-s32",
        file: "s32.wav",
        args: &["-c:a", "pcm_s32le"],
        codec: "pcm_s32le",
        container: "wav",
        lossless: true,
    });
}

#[test]
fn wav_f32() {
    compare(&Case {
        name: "wav-f32",
        file: "f32.wav",
        args: &["-c:a", "pcm_f32le"],
        codec: "pcm_f32le",
        container: "wav",
        lossless: true,
    });
}

#[test]
fn flac() {
    compare(&Case {
        name: "flac",
        file: "a.flac",
        args: &["-c:a", "flac"],
        codec: "flac",
        container: "flac",
        lossless: true,
    });
}

#[test]
fn flac_24_bit() {
    compare(&Case {
        name: "flac-s24",
        file: "a24.flac",
        args: &[
            "-c:a",
            "flac",
            "-sample_fmt",
            "s32",
            "-bits_per_raw_sample",
            "24",
        ],
        codec: "flac",
        container: "flac",
        lossless: true,
    });
}

#[test]
fn aiff() {
    compare(&Case {
        name: "aiff",
        file: "a.aiff",
        args: &["-c:a", "pcm_s16be"],
        codec: "pcm_s16be",
        container: "aiff",
        lossless: true,
    });
}

#[test]
fn alac_m4a() {
    compare(&Case {
        name: "alac",
        file: "alac.m4a",
        args: &["-c:a", "alac"],
        codec: "alac",
        container: "mp4",
        lossless: true,
    });
}

#[test]
fn ogg_vorbis() {
    compare(&Case {
        name: "vorbis",
        file: "a.ogg",
        args: &["-c:a", "libvorbis", "-q:a", "6"],
        codec: "vorbis",
        container: "ogg",
        lossless: false,
    });
}

#[test]
fn mp3_with_id3() {
    compare(&Case {
        name: "mp3",
        file: "a.mp3",
        args: &[
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            "-metadata",
            "title=x",
            "-id3v2_version",
            "3",
        ],
        codec: "mp3",
        container: "mp3",
        lossless: false,
    });
}

#[test]
fn m4a_aac() {
    compare(&Case {
        name: "aac-m4a",
        file: "a.m4a",
        args: &["-c:a", "aac", "-b:a", "192k"],
        codec: "aac",
        container: "mp4",
        lossless: false,
    });
}

#[test]
fn adts_aac() {
    compare(&Case {
        name: "aac-adts",
        file: "a.aac",
        args: &["-c:a", "aac", "-b:a", "192k"],
        codec: "aac",
        container: "adts",
        lossless: false,
    });
}

#[test]
fn ogg_opus() {
    compare(&Case {
        name: "opus",
        file: "a.opus",
        args: &["-c:a", "libopus", "-b:a", "160k"],
        codec: "opus",
        container: "ogg",
        lossless: false,
    });
}

#[test]
fn webm_opus() {
    compare(&Case {
        name: "opus-webm",
        file: "a.webm",
        args: &["-c:a", "libopus", "-b:a", "160k"],
        codec: "opus",
        container: "mkv",
        lossless: false,
    });
}

#[test]
fn other_containers_and_codecs() {
    // The rest of what symphonia 0.6 decodes with "all": CAF, Matroska, MP2, ADPCM,
    // A-law, big-endian PCM in MOV-style MP4.
    let cases = [
        Case {
            name: "caf-s16",
            file: "a.caf",
            args: &["-c:a", "pcm_s16le"],
            codec: "pcm_s16le",
            container: "caf",
            lossless: true,
        },
        Case {
            name: "mka-flac",
            file: "a.mka",
            args: &["-c:a", "flac"],
            codec: "flac",
            container: "mkv",
            lossless: true,
        },
        Case {
            name: "mka-vorbis",
            file: "v.mka",
            args: &["-c:a", "libvorbis"],
            codec: "vorbis",
            container: "mkv",
            lossless: false,
        },
        Case {
            name: "opus-mp4",
            file: "o.mp4",
            args: &["-c:a", "libopus", "-b:a", "160k"],
            codec: "opus",
            container: "mp4",
            lossless: false,
        },
        Case {
            name: "mp2",
            file: "a.mp2",
            args: &["-c:a", "mp2", "-b:a", "256k"],
            codec: "mp2",
            container: "mp2",
            lossless: false,
        },
        Case {
            name: "adpcm-ms",
            file: "ms.wav",
            args: &["-c:a", "adpcm_ms"],
            codec: "adpcm_ms",
            container: "wav",
            lossless: false,
        },
        Case {
            name: "adpcm-ima",
            file: "ima.wav",
            args: &["-c:a", "adpcm_ima_wav"],
            codec: "adpcm_ima_wav",
            container: "wav",
            lossless: false,
        },
        Case {
            name: "alaw",
            file: "alaw.wav",
            args: &["-c:a", "pcm_alaw"],
            codec: "pcm_alaw",
            container: "wav",
            lossless: true,
        },
    ];
    for case in &cases {
        compare(case);
    }
}

#[test]
fn decode_file_converts_to_the_target() {
    if skip_without_ffmpeg("decode_file_converts_to_the_target") {
        return;
    }
    let dir = Scratch::new("target");
    let f = encode(&dir, "a.flac", &["-c:a", "flac"]);
    let native = decode_file(&f, None).unwrap();
    assert_eq!(native.format, AudioFormat::new(RATE, 2));
    assert_eq!(native.frames(), (SECONDS * f64::from(RATE)) as usize);
    let to = AudioFormat::new(48_000, 2);
    let d = decode_file(&f, Some(to)).unwrap();
    assert_eq!(d.format, to);
    assert_eq!(d.info.format, AudioFormat::new(RATE, 2));
    assert_eq!(d.frames(), 144_000, "round(132300 * 48000 / 44100)");
    // Same as streaming through a Converter in small pieces.
    let mut c = Converter::new(native.format, to).unwrap();
    let mut streamed = Vec::new();
    for piece in native.samples.chunks(2 * 1000) {
        c.process(piece, &mut streamed);
    }
    c.finish(&mut streamed);
    assert_eq!(streamed.len(), d.samples.len());
    assert!(snr(&d.samples, &streamed) > 120.0);
    // Against ffmpeg's own resampler (swr): the same signal, within its lower quality.
    let theirs = ffmpeg_pcm(&f, 2, 48_000);
    let lag = best_lag(&theirs, &d.samples, 2, 1, 64);
    let snr_l = snr_aligned(&theirs, &d.samples, 2, lag);
    eprintln!(
        "flac 44.1k -> 48k: ours {} frames, ffmpeg {}; lag {lag}; SNR vs swr {snr_l:.1} dB",
        d.frames(),
        theirs.len() / 2
    );
    assert_eq!(lag, 0);
    assert!(snr_l > 40.0, "{snr_l}");
    // Mono target: the two channels averaged.
    let m = decode_file(&f, Some(AudioFormat::new(RATE, 1))).unwrap();
    assert_eq!(m.samples.len(), native.frames());
    assert!((m.samples[1000] - 0.5 * (native.samples[2000] + native.samples[2001])).abs() < 1e-6);
}

/// A six-channel file with a different tone on each channel.
fn surround(dir: &Scratch, name: &str, codec: &[&str]) -> PathBuf {
    let p = dir.path(name);
    let src = "aevalsrc=exprs='0.3*sin(2*PI*300*t)|0.3*sin(2*PI*500*t)|0.3*sin(2*PI*700*t)|0.3*sin(2*PI*60*t)|0.3*sin(2*PI*1100*t)|0.3*sin(2*PI*1300*t)':s=48000:d=2:c=5.1";
    let mut args = vec!["-f", "lavfi", "-i", src];
    args.extend_from_slice(codec);
    args.push(s(&p));
    ffmpeg(&args);
    p
}

#[test]
fn five_one_flac_and_wav_downmix_like_ffmpeg() {
    if skip_without_ffmpeg("five_one_downmix") {
        return;
    }
    let dir = Scratch::new("surround");
    for (name, codec) in [
        ("51.flac", &["-c:a", "flac"][..]),
        ("51.wav", &["-c:a", "pcm_s16le"][..]),
    ] {
        let f = surround(&dir, name, codec);
        let native = decode_file(&f, None).unwrap();
        assert_eq!(native.format.channels, 6);
        // Channel order is WAVE order, as ffmpeg's 5.1: FL FR FC LFE BL BR.
        let theirs6 = ffmpeg_pcm(&f, 6, 48_000);
        let snr6 = snr(&theirs6, &native.samples);
        let st = decode_file(&f, Some(AudioFormat::new(48_000, 2))).unwrap();
        let theirs = ffmpeg_pcm(&f, 2, 48_000);
        assert_eq!(st.samples.len(), theirs.len());
        // ffmpeg's float downmix is L + 0.707 C + 0.707 Ls, unnormalised; ours is the same
        // scaled by 1 / (1 + 2 * 0.707) so that it can never clip.
        let gain = 1.0 / (1.0 + std::f32::consts::SQRT_2);
        let scaled: Vec<f32> = theirs.iter().map(|s| s * gain).collect();
        let snr2 = snr(&scaled, &st.samples);
        eprintln!(
            "{name}: 6 ch vs ffmpeg {snr6:.1} dB; stereo downmix vs ffmpeg -ac 2 (x{gain:.4}): {snr2:.1} dB"
        );
        assert!(snr6 > 90.0);
        assert!(snr2 > 90.0, "{snr2}");
        // The LFE (60 Hz) is dropped; nothing clips.
        assert!(st.samples.iter().all(|s| s.abs() <= 1.0));
        // And resampled at the same time: length exact.
        let st44 = decode_file(&f, Some(AudioFormat::new(44_100, 2))).unwrap();
        assert_eq!(st44.frames(), 88_200);
    }
}

#[test]
fn five_one_opus_is_reordered_to_wave_order() {
    if skip_without_ffmpeg("five_one_opus") {
        return;
    }
    let dir = Scratch::new("opus51");
    let f = surround(
        &dir,
        "51.opus",
        &["-c:a", "libopus", "-b:a", "384k", "-mapping_family", "1"],
    );
    let (ours, info, _) = ours(&f);
    assert_eq!(info.format, AudioFormat::new(48_000, 6));
    let theirs = ffmpeg_pcm(&f, 6, 48_000);
    let mono = |v: &[f32]| {
        v.chunks_exact(6)
            .map(|f| f.iter().sum::<f32>())
            .collect::<Vec<f32>>()
    };
    let lag = best_lag(&mono(&theirs), &mono(&ours), 1, 0, 1000);
    let mut worst = f64::INFINITY;
    for c in 0..6 {
        let a: Vec<f32> = theirs.iter().skip(c).step_by(6).copied().collect();
        let b: Vec<f32> = ours.iter().skip(c).step_by(6).copied().collect();
        worst = worst.min(snr_aligned(&a, &b, 1, lag));
    }
    eprintln!(
        "opus 5.1: ours {} frames, ffmpeg {}; lag {lag}; worst channel SNR {worst:.1} dB",
        ours.len() / 6,
        theirs.len() / 6
    );
    assert_eq!(ours.len(), theirs.len());
    assert_eq!(lag, 0);
    assert!(worst > 30.0, "{worst}");
}

/// Overwrites 2 KiB at the middle of a copy of `f` with garbage.
fn corrupt_middle(f: &Path, out: &Path) -> usize {
    let mut bytes = std::fs::read(f).unwrap();
    let mid = bytes.len() / 2;
    let mut x = 0x9e37_79b9u32;
    for b in &mut bytes[mid..mid + 2048] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(out, bytes).unwrap();
    mid
}

#[test]
fn a_corrupt_flac_frame_is_skipped_and_the_rest_is_intact() {
    if skip_without_ffmpeg("corrupt_flac") {
        return;
    }
    let dir = Scratch::new("corrupt-flac");
    let good = encode(&dir, "good.flac", &["-c:a", "flac"]);
    let bad = dir.path("bad.flac");
    corrupt_middle(&good, &bad);
    let (clean, _, _) = ours(&good);
    let (dec, info, skipped) = ours(&bad);
    let lost = (clean.len() - dec.len()) / 2;
    eprintln!(
        "corrupt flac: {skipped} packets skipped, {lost} of {} frames lost",
        clean.len() / 2
    );
    assert!(skipped >= 1);
    assert!(lost > 0 && lost < 3 * 4608, "{lost}");
    assert_eq!(info.frames, Some(clean.len() as u64 / 2));
    // Bit-exact before the damage and after it (shifted by what was lost).
    let head = dec.iter().zip(&clean).take_while(|(a, b)| a == b).count() / 2;
    let tail = dec
        .iter()
        .rev()
        .zip(clean.iter().rev())
        .take_while(|(a, b)| a == b)
        .count()
        / 2;
    eprintln!("corrupt flac: {head} frames intact before, {tail} after");
    assert!(
        head + tail + lost >= clean.len() / 2 - 1,
        "head {head} + tail {tail} + lost {lost}"
    );
    assert!(head > clean.len() / 2 / 3 && tail > clean.len() / 2 / 3);
}

#[test]
fn a_corrupt_mp3_stretch_is_skipped_and_the_rest_is_intact() {
    if skip_without_ffmpeg("corrupt_mp3") {
        return;
    }
    let dir = Scratch::new("corrupt-mp3");
    let good = encode(
        &dir,
        "good.mp3",
        &[
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            "-metadata",
            "title=x",
            "-id3v2_version",
            "3",
        ],
    );
    let bad = dir.path("bad.mp3");
    corrupt_middle(&good, &bad);
    let (clean, _, _) = ours(&good);
    let (dec, _, skipped) = ours(&bad);
    let lost = clean.len() as i64 / 2 - dec.len() as i64 / 2;
    // Before the damage: identical. After: the same audio, shifted by what was lost.
    let head = dec.iter().zip(&clean).take_while(|(a, b)| a == b).count() / 2;
    // The last third, aligned (the chirp channel makes the lag unambiguous).
    let tail_clean = &clean[clean.len() * 2 / 3..];
    let tail_dec = &dec[(clean.len() * 2 / 3).saturating_sub(lost.max(0) as usize * 2)..];
    let lag = best_lag(tail_clean, tail_dec, 2, 1, 4000);
    let tail_snr = snr_aligned(tail_clean, tail_dec, 2, lag);
    eprintln!(
        "corrupt mp3: {skipped} packets skipped, {lost} of {} frames lost; {head} frames identical before; last third SNR {tail_snr:.1} dB (residual lag {lag})",
        clean.len() / 2
    );
    assert!(lost > 0 && lost < 20 * 1152, "{lost}");
    assert!(head > clean.len() / 2 / 3, "{head}");
    assert!(tail_snr > 60.0, "{tail_snr}");
}

// ---- Bad input: every case is an error with a clear reason, never a panic or a hang.

fn open_err(p: &Path) -> MediaError {
    match Decoder::open(p) {
        Ok(d) => panic!("{} opened: {:?}", p.display(), d.info()),
        Err(e) => {
            // decode_file must agree.
            assert!(decode_file(p, None).is_err());
            e
        }
    }
}

fn assert_reason(p: &Path, e: &MediaError, wants: &[&str]) {
    let line = e.to_string();
    eprintln!("{line}");
    assert!(line.starts_with(&format!("{}: ", p.display())), "{line}");
    assert!(
        wants.iter().any(|w| e.reason().contains(w)),
        "{line}: wanted one of {wants:?}"
    );
    assert_eq!(e.path(), p);
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn missing_directory_empty_and_fifo() {
    let dir = Scratch::new("bad-paths");
    let p = dir.path("nope.wav");
    assert_reason(&p, &open_err(&p), &["no such file"]);
    let d = dir.path("dir.wav");
    std::fs::create_dir(&d).unwrap();
    assert_reason(&d, &open_err(&d), &["is a directory"]);
    let e = dir.write("empty.wav", b"");
    assert_reason(&e, &open_err(&e), &["empty file"]);
    let fifo = dir.path("fifo.wav");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        // Opening a FIFO for reading would block until a writer appears: refused up front.
        assert_reason(&fifo, &open_err(&fifo), &["not a regular file"]);
    }
}

#[test]
fn a_file_over_the_size_cap() {
    let dir = Scratch::new("huge");
    let p = dir.path("huge.wav");
    let f = std::fs::File::create(&p).unwrap();
    // Sparse: no disk space is used.
    f.set_len(jhack::media::guard::MAX_FILE_BYTES + 1).unwrap();
    assert_reason(
        &p,
        &open_err(&p),
        &["file too large (2.0 GiB, limit 2 GiB)"],
    );
}

#[test]
fn truncated_files() {
    if skip_without_ffmpeg("truncated_files") {
        return;
    }
    let dir = Scratch::new("truncated");
    let flac = encode(&dir, "a.flac", &["-c:a", "flac"]);
    let wav = encode(&dir, "a.wav", &["-c:a", "pcm_s16le"]);
    let mp3 = encode(&dir, "a.mp3", &["-c:a", "libmp3lame"]);
    let bytes = std::fs::read(&flac).unwrap();
    let head = dir.write("head.flac", &bytes[..60]);
    assert_reason(&head, &open_err(&head), &["truncated file"]);
    // Cut at half: the header promises more than the file holds.
    let half = dir.write("half.flac", &bytes[..bytes.len() / 2]);
    let e = decode_file(&half, None).unwrap_err();
    assert_reason(&half, &e, &["truncated file (stream ends after"]);
    let wbytes = std::fs::read(&wav).unwrap();
    let whalf = dir.write("half.wav", &wbytes[..wbytes.len() / 2]);
    assert_reason(
        &whalf,
        &open_err(&whalf),
        &["truncated file (header claims 516.8 KiB of audio, file has 258.4 KiB)"],
    );
    for (name, src) in [("cut.flac", &flac), ("cut.wav", &wav), ("cut.mp3", &mp3)] {
        let b = std::fs::read(src).unwrap();
        for cut in [4, 12, 30, 44, 100, 1000, 5000, b.len() * 2 / 3] {
            let p = dir.write(name, &b[..cut.min(b.len())]);
            // A cut lossy file may open (its first frames are fine); decoding it all fails.
            let e = decode_file(&p, None).unwrap_err();
            assert_reason(
                &p,
                &e,
                &[
                    "truncated",
                    "not an audio file",
                    "invalid header",
                    "no audio",
                    "unsupported",
                ],
            );
        }
    }
}

#[test]
fn random_bytes_and_text_are_not_audio() {
    let dir = Scratch::new("garbage");
    for seed in 1..=8u64 {
        for ext in ["wav", "bin", "mp3", "flac", "ogg", "m4a", "aac"] {
            let p = dir.write(&format!("random{seed}.{ext}"), &noise(64 * 1024, seed));
            let e = open_err(&p);
            assert_reason(
                &p,
                &e,
                &["not an audio file", "invalid header", "unsupported"],
            );
        }
    }
    let text = "This is not music.\n".repeat(500);
    let p = dir.write("song.mp3", text.as_bytes());
    assert_reason(&p, &open_err(&p), &["not an audio file"]);
}

#[test]
fn lying_wav_headers() {
    let dir = Scratch::new("wav-headers");
    let mut b = wav_header(2, 48_000, 16, u32::MAX - 100);
    b.extend(std::iter::repeat_n(0u8, 4000));
    let p = dir.write("huge.wav", &b);
    assert_reason(
        &p,
        &open_err(&p),
        &["truncated file (header claims 4.0 GiB of audio, file has 3.9 KiB)"],
    );

    let mut b = wav_header(0, 48_000, 16, 4000);
    b.extend(std::iter::repeat_n(0u8, 4000));
    let p = dir.write("zero.wav", &b);
    assert_reason(&p, &open_err(&p), &["invalid header: 0 channels"]);

    let mut b = wav_header(255, 48_000, 16, 255 * 2 * 100);
    b.extend(std::iter::repeat_n(0u8, 255 * 2 * 100));
    let p = dir.write("many.wav", &b);
    assert_reason(&p, &open_err(&p), &["unsupported: 255 channels (limit 32)"]);

    let mut b = wav_header(2, 0, 16, 4000);
    b.extend(std::iter::repeat_n(0u8, 4000));
    let p = dir.write("norate.wav", &b);
    assert_reason(&p, &open_err(&p), &["invalid header: sample rate 0 Hz"]);

    let mut b = wav_header(2, 48_000, 16, 0);
    b.extend(std::iter::repeat_n(0u8, 4000));
    let p = dir.write("nodata.wav", &b);
    assert_reason(&p, &open_err(&p), &["no audio"]);

    // A valid tiny WAV still opens: the checks do not reject good files.
    let mut b = wav_header(1, 8_000, 16, 200);
    b.extend(std::iter::repeat_n(0u8, 200));
    let p = dir.write("tiny.wav", &b);
    let d = decode_file(&p, None).unwrap();
    assert_eq!((d.format, d.frames()), (AudioFormat::new(8_000, 1), 100));
}

#[test]
fn an_image_renamed_flac() {
    if skip_without_ffmpeg("an_image_renamed_flac") {
        return;
    }
    let dir = Scratch::new("png");
    let png = dir.path("pic.png");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=64x64:rate=1",
        "-frames:v",
        "1",
        s(&png),
    ]);
    let renamed = dir.path("pic.flac");
    std::fs::rename(&png, &renamed).unwrap();
    assert_reason(&renamed, &open_err(&renamed), &["not an audio file"]);
}

#[test]
fn unsupported_codecs_are_named() {
    if skip_without_ffmpeg("unsupported_codecs") {
        return;
    }
    let dir = Scratch::new("unsupported");
    let g726 = dir.path("g726.wav");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1:sample_rate=8000",
        "-c:a",
        "g726",
        "-b:a",
        "32k",
        s(&g726),
    ]);
    assert_reason(&g726, &open_err(&g726), &["unsupported codec: g726"]);
    let ac3 = dir.path("a.mka");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-c:a",
        "ac3",
        s(&ac3),
    ]);
    assert_reason(&ac3, &open_err(&ac3), &["unsupported codec: ac3"]);
    // A video-only file has no audio track.
    let video = dir.path("v.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=32x32:rate=5:duration=1",
        "-c:v",
        "ffv1",
        s(&video),
    ]);
    let e = open_err(&video);
    assert_reason(&video, &e, &["no audio", "unsupported codec"]);
}

#[test]
fn mutated_files_never_panic_or_hang() {
    if skip_without_ffmpeg("mutated_files") {
        return;
    }
    jhack::media::guard::install_quiet_panic_hook();
    let dir = Scratch::new("mutated");
    let short = "aevalsrc=exprs='0.5*sin(2*PI*440*t)|0.4*sin(2*PI*(100*t+3000*t*t))':s=44100:d=0.5";
    let formats: &[(&str, &[&str])] = &[
        ("a.wav", &["-c:a", "pcm_s16le"]),
        ("a.flac", &["-c:a", "flac"]),
        ("a.mp3", &["-c:a", "libmp3lame"]),
        ("a.ogg", &["-c:a", "libvorbis"]),
        ("a.m4a", &["-c:a", "aac"]),
        ("a.opus", &["-c:a", "libopus"]),
        ("a.aac", &["-c:a", "aac"]),
    ];
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for (file, codec) in formats {
        let src = dir.path(file);
        let mut args = vec!["-f", "lavfi", "-i", short];
        args.extend_from_slice(codec);
        args.push(s(&src));
        ffmpeg(&args);
        let clean = std::fs::read(&src).unwrap();
        for seed in 0..60u64 {
            let mut b = clean.clone();
            let r = noise(80, seed + 1000);
            // Flip 1 to 16 bytes anywhere (headers included), sometimes cut the file too.
            for i in 0..(1 + r[0] as usize % 16) {
                let at = (u32::from_le_bytes([r[4 * i + 1], r[4 * i + 2], r[4 * i + 3], 0])
                    as usize)
                    % b.len();
                b[at] ^= r[4 * i + 4] | 1;
            }
            if seed % 5 == 0 {
                let cut = b.len() * (20 + r[60] as usize % 80) / 100;
                b.truncate(cut.max(1));
            }
            let p = dir.write(&format!("m{seed}-{file}"), &b);
            let t = std::time::Instant::now();
            let key = match decode_file(&p, None) {
                Ok(d) => format!(
                    "{file}: ok ({})",
                    if d.frames() > 0 { "audio" } else { "empty" }
                ),
                Err(e) => format!(
                    "{file}: {}",
                    e.reason().split(" (").next().unwrap_or_default()
                ),
            };
            assert!(
                t.elapsed() < std::time::Duration::from_secs(10),
                "{}: took {:?}",
                p.display(),
                t.elapsed()
            );
            *outcomes.entry(key).or_default() += 1;
            let _ = std::fs::remove_file(&p);
        }
    }
    for (k, n) in &outcomes {
        eprintln!("{n:>3}  {k}");
    }
}
