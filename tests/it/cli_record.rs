//! `jhack record` always leaves a valid file: ended by the duration, by Ctrl-C, or by
//! SIGKILL mid-write (the header is kept current as the file grows). Runs on the null
//! backend's silent microphone, so it needs no sound server.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

fn signal(pid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[test]
fn duration_gives_an_exact_length() {
    let h = tempfile::tempdir().unwrap();
    let out = h.path().join("d.wav");
    let mut cmd = jhack(h.path());
    cmd.arg("record")
        .arg(&out)
        .args(["--duration", "1.5", "--channels", "2", "--no-audio"]);
    let o = run(cmd, Duration::from_secs(20));
    assert!(o.status.success(), "{}", stderr(&o));
    let (spec, samples) = read_wav(&out);
    assert_eq!((spec.channels, spec.sample_rate), (2, 48_000));
    assert_eq!(samples.len(), 2 * 72_000);
}

#[test]
fn ctrl_c_ends_the_recording_with_a_valid_file() {
    let h = tempfile::tempdir().unwrap();
    let out = h.path().join("c.wav");
    let mut cmd = jhack(h.path());
    cmd.arg("record")
        .arg(&out)
        .arg("--no-audio")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), "INT");
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "status {:?}: {}", o.status, stderr(&o));
    let (spec, samples) = read_wav(&out);
    let secs = samples.len() as f64 / f64::from(spec.channels) / f64::from(spec.sample_rate);
    assert!((0.8..2.0).contains(&secs), "recorded {secs} s");
}

#[test]
fn sigkill_mid_recording_leaves_a_readable_file() {
    let h = tempfile::tempdir().unwrap();
    let out = h.path().join("k.wav");
    let mut cmd = jhack(h.path());
    cmd.arg("record")
        .arg(&out)
        .arg("--no-audio")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(3300));
    child.kill().unwrap();
    child.wait().unwrap();
    // Every reader must accept it: hound, and ffprobe when present.
    let (spec, samples) = read_wav(&out);
    let secs = samples.len() as f64 / f64::from(spec.channels) / f64::from(spec.sample_rate);
    assert!(secs >= 1.9, "only {secs} s readable after SIGKILL at 3.3 s");
    if have("ffprobe") {
        let o = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-show_format"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ffprobe rejects the file: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn an_unwritable_destination_is_one_clear_error() {
    let h = tempfile::tempdir().unwrap();
    let out = h.path().join("no/such/dir/x.wav");
    let mut cmd = jhack(h.path());
    cmd.arg("record")
        .arg(&out)
        .args(["--duration", "1", "--no-audio"]);
    let o = run(cmd, Duration::from_secs(20));
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("jhack: error: {}: ", out.display())),
        "{err}"
    );
}
