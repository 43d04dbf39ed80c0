//! Bad input through the real binary: every case ends with exactly one line
//! `jhack: error: <path>: <reason>` on stderr and exit status 2 — never a panic,
//! a backtrace or a hang.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write fixture");
    p
}

/// A deterministic pseudo-random byte string.
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn assert_bad(home: &Path, file: &Path, reason_has: &[&str]) {
    let mut cmd = jhack(home);
    cmd.arg("play").arg(file).arg("--no-audio");
    let o = run(cmd, Duration::from_secs(20));
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}: status {:?}, stderr {err}",
        file.display(),
        o.status
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{}: want one line, got {err:?}",
        file.display()
    );
    let prefix = format!("jhack: error: {}: ", file.display());
    assert!(
        lines[0].starts_with(&prefix),
        "{:?} does not start with {prefix:?}",
        lines[0]
    );
    let reason = lines[0][prefix.len()..].to_lowercase();
    assert!(
        reason_has.iter().any(|r| reason.contains(r)),
        "{}: reason {reason:?} mentions none of {reason_has:?}",
        file.display()
    );
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
}

#[test]
fn missing_path() {
    let h = tempfile::tempdir().unwrap();
    assert_bad(
        h.path(),
        &h.path().join("nope.wav"),
        &["no such file", "not found"],
    );
}

#[test]
fn a_directory() {
    let h = tempfile::tempdir().unwrap();
    let d = h.path().join("dir.wav");
    std::fs::create_dir(&d).unwrap();
    assert_bad(h.path(), &d, &["directory"]);
}

#[test]
fn an_empty_file() {
    let h = tempfile::tempdir().unwrap();
    assert_bad(h.path(), &write(h.path(), "empty.wav", b""), &["empty"]);
}

#[test]
fn a_truncated_file() {
    let h = tempfile::tempdir().unwrap();
    let f = sine_wav(h.path(), "full.flac", 440, 1.0, -6.0, 48_000, 2);
    let bytes = std::fs::read(&f).unwrap();
    let t = write(h.path(), "truncated.flac", &bytes[..60]);
    assert_bad(
        h.path(),
        &t,
        &[
            "truncated",
            "not an audio file",
            "unsupported",
            "invalid",
            "no audio",
        ],
    );
}

#[test]
fn random_bytes() {
    let h = tempfile::tempdir().unwrap();
    assert_bad(
        h.path(),
        &write(h.path(), "random.wav", &noise(64 * 1024, 7)),
        &["not an audio file", "invalid", "unsupported"],
    );
    assert_bad(
        h.path(),
        &write(h.path(), "random.bin", &noise(64 * 1024, 11)),
        &["not an audio file", "invalid", "unsupported"],
    );
}

#[test]
fn a_text_file_named_mp3() {
    let h = tempfile::tempdir().unwrap();
    let text = "This is not music.\n".repeat(500);
    assert_bad(
        h.path(),
        &write(h.path(), "song.mp3", text.as_bytes()),
        &["not an audio file", "invalid", "unsupported", "no audio"],
    );
}

#[test]
fn a_wav_claiming_4_gib() {
    let h = tempfile::tempdir().unwrap();
    let mut bytes = wav_header(2, 48_000, 16, u32::MAX - 100);
    bytes.extend(std::iter::repeat_n(0u8, 4000));
    assert_bad(
        h.path(),
        &write(h.path(), "huge.wav", &bytes),
        &["truncated", "invalid", "claims", "too large", "no audio"],
    );
}

#[test]
fn a_wav_with_zero_channels() {
    let h = tempfile::tempdir().unwrap();
    let mut bytes = wav_header(0, 48_000, 16, 4000);
    bytes.extend(std::iter::repeat_n(0u8, 4000));
    assert_bad(
        h.path(),
        &write(h.path(), "zero.wav", &bytes),
        &["channel", "invalid"],
    );
}

#[test]
fn a_wav_with_255_channels() {
    let h = tempfile::tempdir().unwrap();
    let mut bytes = wav_header(255, 48_000, 16, 255 * 2 * 100);
    bytes.extend(std::iter::repeat_n(0u8, 255 * 2 * 100));
    assert_bad(
        h.path(),
        &write(h.path(), "many.wav", &bytes),
        &["channel", "invalid", "unsupported"],
    );
}

#[test]
fn an_image_renamed_flac() {
    let h = tempfile::tempdir().unwrap();
    let png = h.path().join("pic.png");
    if have("ffmpeg") {
        sh(&format!(
            "ffmpeg -v error -f lavfi -i testsrc=size=64x64:rate=1 -frames:v 1 {}",
            png.display()
        ));
    } else {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend(noise(2000, 3));
        std::fs::write(&png, b).unwrap();
    }
    let renamed = h.path().join("pic.flac");
    std::fs::rename(&png, &renamed).unwrap();
    assert_bad(
        h.path(),
        &renamed,
        &["not an audio file", "invalid", "unsupported"],
    );
}

#[test]
fn an_unsupported_codec() {
    let h = tempfile::tempdir().unwrap();
    if !have("ffmpeg") {
        skip("an_unsupported_codec", "ffmpeg missing");
        return;
    }
    // G.726 ADPCM in a WAV container: a real audio file in a codec jhack does not decode.
    let f = h.path().join("g726.wav");
    sh(&format!(
        "ffmpeg -v error -f lavfi -i sine=frequency=440:duration=1:sample_rate=8000 -c:a g726 -b:a 32k {}",
        f.display()
    ));
    assert_bad(h.path(), &f, &["unsupported"]);
}

#[test]
fn one_bad_file_among_good_ones_stops_before_playing() {
    let h = tempfile::tempdir().unwrap();
    let good = sine_wav(h.path(), "good.wav", 440, 0.2, -6.0, 48_000, 2);
    let bad = write(h.path(), "bad.ogg", &noise(5000, 5));
    let mut cmd = jhack(h.path());
    cmd.arg("play").arg(&good).arg(&bad).arg("--no-audio");
    let o = run(cmd, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with(&format!("jhack: error: {}: ", bad.display())));
}

#[test]
fn bad_usage_exits_2() {
    let h = tempfile::tempdir().unwrap();
    for args in [
        &["play"][..],
        &["tone", "--amplitude", "3"],
        &["frobnicate"],
        &["tone", "--duration", "-1"],
    ] {
        let mut cmd = jhack(h.path());
        cmd.args(args).arg("--no-audio");
        let o = run(cmd, Duration::from_secs(20));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unknown_output_device_is_bad_input() {
    let h = tempfile::tempdir().unwrap();
    let mut cmd = jhack(h.path());
    cmd.args([
        "tone",
        "--duration",
        "0.1",
        "--output-device",
        "no-such-device-xyz",
    ]);
    let o = run(cmd, Duration::from_secs(20));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("jhack: error: no output device matches"),
        "{err}"
    );
}
