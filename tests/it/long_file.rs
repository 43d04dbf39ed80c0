//! A 20-minute FLAC streams through the decoder thread in bounded memory: peak RSS of
//! the playing process stays under 150 MB (the decoded file alone would be ~460 MB).
//! The null backend's clock runs fast so the test takes seconds, not 20 minutes.

use crate::common;

use std::time::{Duration, Instant};

use common::*;

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn twenty_minute_flac_plays_in_bounded_memory() {
    if !have("sox") {
        skip("twenty_minute_flac_plays_in_bounded_memory", "sox missing");
        return;
    }
    let h = tempfile::tempdir().unwrap();
    let f = h.path().join("long.flac");
    sh(&format!(
        "sox -n -r 48000 -c 2 -b 16 {} synth 1200 sine 300-3000 synth 1200 sine amod 0.5 gain -6",
        f.display()
    ));
    let mut cmd = jhack(h.path());
    cmd.arg("play")
        .arg(&f)
        .args(["--no-audio", "--null-speed", "100"]);
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let start = Instant::now();
    let mut peak = 0u64;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if let Some(r) = rss_kib(pid) {
            peak = peak.max(r);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "20 min at 100x took more than 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed().as_secs_f64();
    assert!(status.success(), "play failed");
    eprintln!(
        "20-minute FLAC: played in {took:.1} s at 100x, peak RSS {:.1} MB",
        peak as f64 / 1024.0
    );
    assert!(
        took > 10.0,
        "finished too fast ({took:.1} s): not all of it was played"
    );
    assert!(peak > 0 && peak < 150 * 1024, "peak RSS {} KiB", peak);
}
