//! Loudness normalisation heard on the virtual speaker: two library sounds of the same
//! tone at very different levels play at the same level, and switching normalisation
//! off in the config file plays them as they are.

use crate::common;

use std::time::Duration;

use common::*;
use jhack::dsp::analysis::{goertzel_amplitude, onset};

/// Plays library sound `name` and returns the level (dBFS) of its 1 kHz tone as heard.
fn heard_level(home: &std::path::Path, name: &str) -> f32 {
    let mon = Monitor::start();
    let mut cmd = jhack(home);
    cmd.args(["play", name]);
    let o = run(cmd, Duration::from_secs(20));
    assert!(o.status.success(), "play {name}: {}", stderr(&o));
    let captured = mon.stop();
    let left = channel(&captured, 2, 0);
    let start = onset(&left, 0.005).unwrap_or_else(|| panic!("{name} was not heard"));
    let body = &left[start + 4800..start + 4800 + 48_000];
    db(goertzel_amplitude(body, RATE, 1000.0))
}

fn import(home: &std::path::Path, file: &std::path::Path, name: &str) {
    let mut cmd = jhack(home);
    cmd.arg("import").arg(file).args(["--name", name]);
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.status.success(), "import: {}", stderr(&o));
}

#[test]
fn normalisation_plays_a_loud_and_a_quiet_tone_at_one_level() {
    let Some(_audio) = audio_stack("normalisation_plays_a_loud_and_a_quiet_tone_at_one_level")
    else {
        return;
    };
    retried(
        "normalisation_plays_a_loud_and_a_quiet_tone_at_one_level",
        || {
            let h = tempfile::tempdir().expect("tempdir");
            let loud = sine_wav(h.path(), "loud.wav", 1000, 2.0, -6.0, 48_000, 1);
            let quiet = sine_wav(h.path(), "quiet.wav", 1000, 2.0, -20.0, 48_000, 1);
            import(h.path(), &loud, "loud");
            import(h.path(), &quiet, "quiet");
            let (a, b) = (
                heard_level(h.path(), "loud"),
                heard_level(h.path(), "quiet"),
            );
            assert!((a - b).abs() < 1.0, "loud {a:.2} dB, quiet {b:.2} dB");
            // The default target (-16 LUFS) for a 1 kHz dual-mono tone is about -16 dBFS.
            assert!((a - -16.0).abs() < 1.5, "level {a:.2} dB, target -16 LUFS");

            std::fs::write(
                h.path().join("config.toml"),
                "[playback]\nnormalize = false\n",
            )
            .expect("config");
            let (a, b) = (
                heard_level(h.path(), "loud"),
                heard_level(h.path(), "quiet"),
            );
            assert!((a - -6.0).abs() < 0.5, "unnormalised loud {a:.2} dB");
            assert!((b - -20.0).abs() < 0.5, "unnormalised quiet {b:.2} dB");
        },
    );
}
