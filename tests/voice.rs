//! The intercom end to end: two real `jhack talk` processes on 127.0.0.1 with
//! separate homes. A tone fed to the (virtual) microphone of one comes out of the
//! other's speaker; a peer without `voice` refuses clearly.

mod common;
#[path = "common/relay.rs"]
#[allow(dead_code)] // the relay offers more than these tests use
mod relay;

use std::time::Duration;

use common::peers::*;
use common::probe::{Probe, click_delays, click_train, quantile};
use common::*;
use jhack::dsp::analysis::goertzel_amplitude;

fn talk(p: &Peer, args: &[&str], audio: bool) -> std::process::Command {
    let mut c = jhack(p.home());
    if !audio {
        c.arg("--no-audio");
    }
    c.arg("talk")
        .args(args)
        .arg("--listen")
        .arg(p.addr())
        .env("JHACK_LOG", "info");
    c
}

#[test]
fn a_tone_on_one_microphone_is_heard_on_the_other_speaker() {
    let test = "a_tone_on_one_microphone_is_heard_on_the_other_speaker";
    let Some(_audio) = audio_stack(test) else {
        return;
    };
    let h = tempfile::tempdir().expect("tempdir");
    let tone = h.path().join("tone.wav");
    sh(&format!(
        "sox -n -r 48000 -c 1 -b 16 {} synth 3 sine 1000 gain -6",
        tone.display()
    ));
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.trust(&b, "bee", "voice", true);
    b.trust(&a, "ay", "voice", true);
    let mut listener = Proc::start(
        "B (talk)",
        talk(
            &b,
            &["ay", "--listen-only", "--duration", "9", "--stats"],
            true,
        ),
    );
    let mut talker = Proc::start(
        "A (talk)",
        talk(&a, &["bee", "--open", "--duration", "8", "--stats"], true),
    );
    talker.wait_for("talking with bee", Duration::from_secs(15));
    listener.wait_for("talking with ay", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(500));
    let monitor = Monitor::start();
    let mut mic = feed_mic(&tone);
    std::thread::sleep(Duration::from_secs(4));
    let _ = mic.kill();
    let _ = mic.wait();
    let heard = monitor.stop();
    let left = channel(&heard, 2, 0);
    let a_out = talker.wait_exit(Duration::from_secs(20));
    let b_out = listener.wait_exit(Duration::from_secs(20));
    eprintln!("A: {}\nB: {}", talker.stderr(), listener.stderr());
    assert!(a_out.is_some_and(|s| s.success()), "A's talk failed");
    assert!(b_out.is_some_and(|s| s.success()), "B's talk failed");
    // The loudest second of the capture holds the tone.
    let best = left
        .chunks(48_000)
        .map(|c| goertzel_amplitude(c, 48_000, 1000.0))
        .fold(0.0f32, f32::max);
    let other = left
        .chunks(48_000)
        .map(|c| goertzel_amplitude(c, 48_000, 1700.0))
        .fold(0.0f32, f32::max);
    eprintln!("1 kHz on B's speaker: amplitude {best:.3} (1.7 kHz: {other:.4})");
    assert!(
        best > 0.1,
        "the tone was not heard through the call: {best}"
    );
    assert!(other < best / 10.0, "the tone came out distorted");
}

#[test]
fn a_peer_without_voice_permission_refuses_clearly() {
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.trust(&b, "bee", "play", true);
    b.trust(&a, "ay", "play", true);
    let listener = Proc::start(
        "B (talk)",
        talk(&b, &["ay", "--listen-only", "--duration", "15"], false),
    );
    let o = run(
        talk(&a, &["bee", "--open", "--duration", "10"], false),
        Duration::from_secs(30),
    );
    let err = stderr(&o);
    eprintln!("{err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bee refused our voice") && err.contains("no voice permission"),
        "{err}"
    );
    let b_err = listener.stop();
    assert!(
        b_err.contains("refused"),
        "B says nothing of the refusal: {b_err}"
    );
}

/// Clicks fed to the microphone, timed on the speaker with one clock while `during`
/// runs; returns each click's delay (ms).
fn clicks_through(clicks: &std::path::Path, during: impl FnOnce()) -> Vec<Option<f64>> {
    let probe = Probe::start();
    let mut mic = feed_mic(clicks);
    during();
    let _ = mic.wait();
    let (left, right) = probe.stop();
    click_delays(&left, &right)
}

fn summary(d: &[Option<f64>]) -> String {
    let found = d.iter().flatten().count();
    format!(
        "median {:.1} ms, p95 {:.1} ms ({found}/{} clicks)",
        quantile(d, 0.5),
        quantile(d, 0.95),
        d.len()
    )
}

/// Whether the measured targets themselves are asserted (`JHACK_MEASURE=1`, for the
/// README's figures on a quiet machine); otherwise only regression guards with
/// headroom are, so that a busy machine does not fail the suite.
fn measuring() -> bool {
    std::env::var_os("JHACK_MEASURE").is_some_and(|v| v == "1")
}

/// GStreamer's hand-tuned low-delay Opus pipeline between the same virtual devices
/// (TESTING.md): its sender and receiver, on a free UDP port.
fn gstreamer_call() -> Option<(std::process::Child, std::process::Child)> {
    if !have("gst-launch-1.0") {
        return None;
    }
    let port = free_port().to_string();
    let spawn = |desc: String| {
        std::process::Command::new("gst-launch-1.0")
            .arg("-q")
            .args(desc.split_whitespace())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("gst-launch-1.0")
    };
    let receiver = spawn(format!(
        "udpsrc address=127.0.0.1 port={port} caps=application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96 \
         ! rtpjitterbuffer latency=20 do-lost=true ! rtpopusdepay ! opusdec plc=true ! audioconvert \
         ! audioresample ! pulsesink device=test_speaker buffer-time=20000 latency-time=5000 processing-deadline=0"
    ));
    let sender = spawn(format!(
        "pulsesrc device=test_mic buffer-time=10000 latency-time=2500 ! audioconvert ! audioresample \
         ! audio/x-raw,rate=48000,channels=1 ! opusenc audio-type=restricted-lowdelay frame-size=10 \
         bitrate=64000 bitrate-type=cbr ! rtpopuspay pt=96 ! udpsink host=127.0.0.1 port={port} sync=false async=false"
    ));
    Some((sender, receiver))
}

/// One measured configuration: its name and every click's delay over the rounds.
struct Measured {
    name: String,
    delays: Vec<Option<f64>>,
    round_medians: Vec<f64>,
}

impl Measured {
    fn new(name: &str) -> Measured {
        Measured {
            name: name.into(),
            delays: Vec::new(),
            round_medians: Vec::new(),
        }
    }

    fn add(&mut self, d: Vec<Option<f64>>) {
        self.round_medians.push(quantile(&d, 0.5));
        self.delays.extend(d);
    }

    fn median(&self) -> f64 {
        quantile(&self.delays, 0.5)
    }

    fn p95(&self) -> f64 {
        quantile(&self.delays, 0.95)
    }

    fn line(&self) -> String {
        format!(
            "{}: {} (round medians {:.1?})",
            self.name,
            summary(&self.delays),
            self.round_medians
        )
    }
}

/// `jhack talk` from a to b with `frame` ms frames, measured once.
fn call_round(a: &Peer, b: &Peer, clicks: &std::path::Path, frame: &str) -> Vec<Option<f64>> {
    let mut listener = Proc::start(
        "B (talk)",
        talk(
            b,
            &["ay", "--listen-only", "--frame", frame, "--duration", "30"],
            true,
        ),
    );
    let mut talker = Proc::start(
        "A (talk)",
        talk(
            a,
            &["bee", "--open", "--frame", frame, "--duration", "30"],
            true,
        ),
    );
    talker.wait_for("talking with bee", Duration::from_secs(15));
    listener.wait_for("talking with ay", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(1500));
    let d = clicks_through(clicks, || {});
    let _ = talker.stop();
    let _ = listener.stop();
    d
}

#[test]
fn mouth_to_ear_through_a_call_is_the_wire_floor_plus_the_frame() {
    let test = "mouth_to_ear_through_a_call_is_the_wire_floor_plus_the_frame";
    let Some(_audio) = audio_stack(test) else {
        return;
    };
    if !have("pw-link") {
        eprintln!("skipped {test}: pw-link missing");
        return;
    }
    let h = tempfile::tempdir().expect("tempdir");
    let clicks = h.path().join("clicks.wav");
    click_train(&clicks, 10, 0.6);
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.trust(&b, "bee", "voice", true);
    b.trust(&a, "ay", "voice", true);
    let wire_home = tempfile::tempdir().expect("tempdir");
    let mut floor = Measured::new("jhack wire (the floor)");
    let mut gst = Measured::new("GStreamer, low-delay Opus, 10 ms frames");
    let mut ten = Measured::new("jhack talk, low delay, 10 ms frames");
    let mut five = Measured::new("jhack talk, low delay, 5 ms frames");
    let have_gst = have("gst-launch-1.0");
    // Each process starts at a random phase between the microphone's clock and the
    // speaker's (two drivers on the virtual stack): rounds in turns, all clicks pooled.
    let rounds = if measuring() { 5 } else { 2 };
    for _ in 0..rounds {
        let mut wire = jhack(wire_home.path());
        wire.args(["wire", "--duration", "12"]);
        let wire = Proc::start("wire", wire);
        std::thread::sleep(Duration::from_millis(1500));
        floor.add(clicks_through(&clicks, || {}));
        let _ = wire.stop();
        if let Some((mut tx, mut rx)) = gstreamer_call() {
            std::thread::sleep(Duration::from_millis(1500));
            gst.add(clicks_through(&clicks, || {}));
            for c in [&mut tx, &mut rx] {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        ten.add(call_round(&a, &b, &clicks, "10"));
        five.add(call_round(&a, &b, &clicks, "5"));
    }
    eprintln!("mouth to ear, one clock, 256-frame periods, {rounds} rounds in turns:");
    for m in [&floor, &gst, &ten, &five] {
        if m.delays.is_empty() {
            eprintln!("  {}: skipped (gst-launch-1.0 missing)", m.name);
        } else {
            eprintln!("  {}", m.line());
        }
    }
    let clicks_per_round = 10;
    for m in [&floor, &ten, &five] {
        let found = m.delays.iter().flatten().count();
        assert!(
            found + rounds >= clicks_per_round * rounds,
            "{}: clicks lost ({})",
            m.name,
            m.line()
        );
    }
    let floor_p50 = floor.median();
    for (m, target) in [(&ten, 20.0), (&five, 13.0)] {
        // Targets (README): p95 within the floor + 20 ms (10 ms frames), + 13 ms (5 ms);
        // asserted with JHACK_MEASURE=1, otherwise guarded with headroom.
        let bound = if measuring() { target } else { 2.0 * target };
        assert!(
            m.p95() <= floor_p50 + bound,
            "{} against the floor's median {floor_p50:.1} ms (bound + {bound} ms)",
            m.line()
        );
    }
    if have_gst {
        let ratio = ten.median() / gst.median();
        eprintln!("  jhack / GStreamer at 10 ms frames, medians: {ratio:.2}");
        let bound = if measuring() { 1.0 } else { 1.5 };
        assert!(
            ratio < bound,
            "jhack's median is {ratio:.2} x GStreamer's (bound {bound})"
        );
    } else {
        eprintln!("skipped the GStreamer comparison of {test}: gst-launch-1.0 missing");
    }
}
