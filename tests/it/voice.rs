//! The intercom end to end: two real `jhack talk` processes on 127.0.0.1 with
//! separate homes. A tone fed to the (virtual) microphone of one comes out of the
//! other's speaker; a peer without `voice` refuses clearly.

use crate::common;
use crate::common::relay;

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
    let Some(_audio) = mic_stack(test) else {
        return;
    };
    common::retried(test, || {
        let h = tempfile::tempdir().expect("tempdir");
        let tone = tone_wav(h.path(), 3);
        let (a, b) = voice_pair();
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
        let heard = hear_fed(&tone);
        let left = channel(&heard, 2, 0);
        let a_out = talker.wait_exit(Duration::from_secs(20));
        let b_out = listener.wait_exit(Duration::from_secs(20));
        eprintln!("A: {}\nB: {}", talker.stderr(), listener.stderr());
        assert!(a_out.is_some_and(|s| s.success()), "A's talk failed");
        assert!(b_out.is_some_and(|s| s.success()), "B's talk failed");
        assert_tone(&left, "B's speaker");
    });
}

/// A 1 kHz sine at -6 dBFS of `secs` seconds, mono, 48 kHz.
fn tone_wav(dir: &std::path::Path, secs: u32) -> std::path::PathBuf {
    let tone = dir.join("tone.wav");
    sh(&format!(
        "sox -n -r 48000 -c 1 -b 16 {} synth {secs} sine 1000 gain -6",
        tone.display()
    ));
    tone
}

/// A and B, each trusting the other (at its address) to talk.
fn voice_pair() -> (Peer, Peer) {
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    a.trust(&b, "bee", "voice", true);
    b.trust(&a, "ay", "voice", true);
    (a, b)
}

/// Half a second after a call is up: the speaker's monitor while `tone` is fed to
/// the microphone (4 s).
fn hear_fed(tone: &std::path::Path) -> Vec<f32> {
    std::thread::sleep(Duration::from_millis(500));
    let monitor = Monitor::start();
    let mut mic = feed_mic(tone);
    std::thread::sleep(Duration::from_secs(4));
    let _ = mic.kill();
    let _ = mic.wait();
    monitor.stop()
}

/// The 1 kHz tone fed for 3 s, 10 ms at a time: present for most of it, without
/// gaps once it began, at about the level it was fed (-6 dBFS, a peak of 0.5), and
/// clean.
fn assert_tone(left: &[f32], place: &str) {
    let w = tone_windows(left);
    let on = 0.05;
    let first = w.iter().position(|&x| x > on).unwrap_or(w.len());
    let last = w.iter().rposition(|&x| x > on).unwrap_or(0);
    let span = if last > first {
        &w[first..=last]
    } else {
        &[][..]
    };
    let gaps = span.iter().filter(|&&x| x < on).count();
    let mut levels: Vec<f32> = span.to_vec();
    levels.sort_by(f32::total_cmp);
    let level = levels.get(levels.len() / 2).copied().unwrap_or(0.0);
    // Distortion, judged like the gaps: in all but the worst 5 % of windows (a
    // busy machine's clicks are counted as gaps, not as a distorted call; a host
    // stalling a CPU dozens of times a second made over 2 % of them).
    let mut others: Vec<f32> = left
        .chunks(480)
        .skip(first)
        .take(span.len())
        .map(|c| goertzel_amplitude(c, 48_000, 1700.0))
        .collect();
    others.sort_by(f32::total_cmp);
    let other = others
        .get((others.len() * 95 / 100).min(others.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0);
    eprintln!(
        "1 kHz on {place}: {} ms of tone, median level {level:.3} (10 ms windows), {gaps} windows under {on}; 1.7 kHz {other:.4} (95th percentile)",
        span.len() * 10
    );
    assert!(
        span.len() >= 250,
        "the tone was not heard through the call ({} ms)",
        span.len() * 10
    );
    assert!(gaps <= span.len() / 20, "{gaps} gaps in the tone");
    assert!(level > 0.1, "the tone came out at {level}");
    assert!(other < level / 10.0, "the tone came out distorted");
}

#[test]
fn a_server_without_a_sound_card_relays_a_group() {
    let test = "a_server_without_a_sound_card_relays_a_group";
    let Some(_audio) = mic_stack(test) else {
        return;
    };
    common::retried(test, || {
        let h = tempfile::tempdir().expect("tempdir");
        let tone = tone_wav(h.path(), 3);
        // A and B know only the server, which lets both talk; neither can reach the
        // other directly (neither listens where the other would look).
        let (a, b, s) = (Peer::new("A"), Peer::new("B"), Peer::new("S"));
        s.trust(&a, "ay", "voice", false);
        s.trust(&b, "bee", "voice", false);
        a.trust(&s, "srv", "voice", true);
        b.trust(&s, "srv", "voice", true);
        let mut server = s.serve(false, &[("JHACK_LOG", "info")]);
        let mut listener = Proc::start(
            "B (talk)",
            talk(
                &b,
                &["srv", "--listen-only", "--duration", "10", "--stats"],
                true,
            ),
        );
        listener.wait_for("talking with srv", Duration::from_secs(15));
        server.wait_for("voice relay: bee joined", Duration::from_secs(10));
        let mut talker = Proc::start(
            "A (talk)",
            talk(&a, &["srv", "--open", "--duration", "7", "--stats"], true),
        );
        talker.wait_for("talking with srv", Duration::from_secs(15));
        server.wait_for("voice relay: ay joined", Duration::from_secs(10));
        let heard = hear_fed(&tone);
        let a_out = talker.wait_exit(Duration::from_secs(20));
        let b_out = listener.wait_exit(Duration::from_secs(20));
        let s_err = server.stop();
        eprintln!(
            "A: {}\nB: {}\nS: {s_err}",
            talker.stderr(),
            listener.stderr()
        );
        assert!(a_out.is_some_and(|s| s.success()), "A's talk failed");
        assert!(b_out.is_some_and(|s| s.success()), "B's talk failed");
        // B names the talker by the relay it came through.
        assert!(
            listener.stderr().contains(" via srv is talking"),
            "B did not hear A through the relay: {}",
            listener.stderr()
        );
        assert!(s_err.contains("voice relay: ay left"), "{s_err}");
        assert_tone(&channel(&heard, 2, 0), "B's speaker, through the relay");
    });
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

/// Links or (`-d`) unlinks two ports of the graph.
fn pw_link(args: &[&str]) {
    let _ = std::process::Command::new("pw-link")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// The starved mixer blocks `jhack wire` reported on leaving (its debug summary).
fn starved_blocks(log: &str) -> u64 {
    log.lines()
        .find_map(|l| l.split("starved blocks ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("jhack wire gave no summary:\n{log}"))
}

/// One measured configuration: its name and every click's delay over the rounds.
struct Measured {
    name: String,
    delays: Vec<Option<f64>>,
    round_medians: Vec<f64>,
    round_p95s: Vec<f64>,
}

impl Measured {
    fn new(name: &str) -> Measured {
        Measured {
            name: name.into(),
            delays: Vec::new(),
            round_medians: Vec::new(),
            round_p95s: Vec::new(),
        }
    }

    fn add(&mut self, d: Vec<Option<f64>>) {
        self.round_medians.push(quantile(&d, 0.5));
        self.round_p95s.push(quantile(&d, 0.95));
        self.delays.extend(d);
    }

    fn median(&self) -> f64 {
        quantile(&self.delays, 0.5)
    }

    fn line(&self) -> String {
        format!(
            "{}: {} (round medians {:.1?}, p95s {:.1?})",
            self.name,
            summary(&self.delays),
            self.round_medians,
            self.round_p95s
        )
    }
}

/// `jhack talk` from a to b with `frame` ms frames (and, given, both sides asking the
/// devices for `period`-frame periods), measured once.
fn call_round(
    a: &Peer,
    b: &Peer,
    clicks: &std::path::Path,
    frame: &str,
    period: Option<&str>,
) -> Vec<Option<f64>> {
    let period: Vec<&str> = period.map(|p| vec!["--buffer", p]).unwrap_or_default();
    let listen = ["ay", "--listen-only", "--frame", frame, "--duration", "30"];
    let speak = ["bee", "--open", "--frame", frame, "--duration", "30"];
    let mut listener = Proc::start("B (talk)", talk(b, &[&listen[..], &period].concat(), true));
    let mut talker = Proc::start("A (talk)", talk(a, &[&speak[..], &period].concat(), true));
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
    let Some(_audio) = mic_stack(test) else {
        return;
    };
    if !have("pw-link") {
        skip(test, "pw-link missing");
        return;
    }
    common::settle();
    let h = tempfile::tempdir().expect("tempdir");
    let clicks = h.path().join("clicks.wav");
    click_train(&clicks, 10, 0.6);
    let (a, b) = voice_pair();
    let wire_home = tempfile::tempdir().expect("tempdir");
    let mut server = Measured::new("the server alone: microphone linked to speaker");
    let mut floor = Measured::new("jhack wire (the floor)");
    let mut starved = 0u64;
    let mut gst = Measured::new("GStreamer, low-delay Opus, 10 ms frames");
    let mut ten = Measured::new("jhack talk, low delay, 10 ms frames");
    // A call with 5 ms frames asks the devices for 128-frame (2.7 ms) periods (a frame
    // waits for the capture period that completes it): its floor is `jhack wire` at
    // the same period. The same call held at 256-frame periods is measured beside it.
    let mut five = Measured::new("jhack talk, low delay, 5 ms frames (128-frame periods)");
    let mut floor_small = Measured::new("jhack wire --buffer 128 (the floor at 128 frames)");
    let mut five_long =
        Measured::new("jhack talk --buffer 256, low delay, 5 ms frames (256-frame periods)");
    let have_gst = have("gst-launch-1.0");
    // Each process starts at a random phase between the microphone's clock and the
    // speaker's (two drivers on the virtual stack): rounds in turns, all clicks pooled.
    let rounds = if measuring() { 5 } else { 2 };
    for _ in 0..rounds {
        // What the graph itself costs between these two points (its monitors, the
        // remapped microphone): the same clicks through a direct link, no client.
        pw_link(&["test_mic:capture_MONO", "test_speaker:playback_FL"]);
        server.add(clicks_through(&clicks, || {}));
        pw_link(&["-d", "test_mic:capture_MONO", "test_speaker:playback_FL"]);
        let mut wire = jhack(wire_home.path());
        wire.args(["wire", "--duration", "12"])
            .env("JHACK_LOG", "debug");
        let wire = Proc::start("wire", wire);
        std::thread::sleep(Duration::from_millis(1500));
        floor.add(clicks_through(&clicks, || {}));
        starved += starved_blocks(&wire.stop());
        if let Some((mut tx, mut rx)) = gstreamer_call() {
            std::thread::sleep(Duration::from_millis(1500));
            gst.add(clicks_through(&clicks, || {}));
            for c in [&mut tx, &mut rx] {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        ten.add(call_round(&a, &b, &clicks, "10", None));
        five.add(call_round(&a, &b, &clicks, "5", None));
        five_long.add(call_round(&a, &b, &clicks, "5", Some("256")));
        let mut wire = jhack(wire_home.path());
        wire.args(["wire", "--duration", "12", "--buffer", "128"])
            .env("JHACK_LOG", "debug");
        let wire = Proc::start("wire --buffer 128", wire);
        std::thread::sleep(Duration::from_millis(1500));
        floor_small.add(clicks_through(&clicks, || {}));
        let _ = wire.stop();
    }
    eprintln!("mouth to ear, one clock, 256-frame periods, {rounds} rounds in turns:");
    for m in [&server, &floor, &gst, &ten, &five, &floor_small, &five_long] {
        if m.delays.is_empty() {
            eprintln!("  {}: skipped (gst-launch-1.0 missing)", m.name);
        } else {
            eprintln!("  {}", m.line());
        }
    }
    let clicks_per_round = 10;
    // A click not found is one the probe could not match (glitched on the way). With
    // JHACK_MEASURE=1 one per round may go; otherwise half, since a busy host's
    // virtual devices glitch now and then (the floor and GStreamer lose clicks too;
    // a host stalling a CPU dozens of times a second cost 7 and 10 of 20); a broken
    // call loses them all.
    let may_lose = if measuring() {
        rounds
    } else {
        clicks_per_round * rounds / 2
    };
    for m in [&floor, &ten, &five, &floor_small, &five_long] {
        let found = m.delays.iter().flatten().count();
        assert!(
            found + may_lose >= clicks_per_round * rounds,
            "{}: clicks lost ({})",
            m.name,
            m.line()
        );
    }
    let floor_p50 = floor.median();
    // The floor's targets (README): median ≤ 3 quanta (16 ms at 256 frames), p95 ≤ 4,
    // no dropout (starved mixer block) in the rounds' 12 s each. Without
    // JHACK_MEASURE=1, a guard at twice the targets.
    let quantum = 256.0 / 48.0;
    let floor_p95 = quantile(&floor.delays, 0.95);
    eprintln!("  jhack wire: {starved} starved blocks in {rounds} rounds of 12 s");
    // A starved block is a dropout; on a busy machine the feed and the probe (both
    // clients of the same server) glitch too, so only JHACK_MEASURE=1 asserts none.
    let (scale, may_starve) = if measuring() {
        (1.0, 0)
    } else {
        (2.0, u64::MAX)
    };
    assert!(
        floor_p50 <= 3.0 * quantum * scale && floor_p95 <= 4.0 * quantum * scale,
        "{} (targets: median {:.1} ms, p95 {:.1} ms)",
        floor.line(),
        3.0 * quantum * scale,
        4.0 * quantum * scale
    );
    assert!(starved <= may_starve, "jhack wire starved {starved} times");
    let small_p50 = floor_small.median();
    // The 5 ms call against its own period's floor (stricter than against the
    // 256-frame floor, which it also meets); at 256-frame periods the same call is
    // only reported (and guarded): frame, capture period and look-ahead alone take
    // 12.8 ms of its 13 ms there.
    for (m, floor_p50, target, asserted) in [
        (&ten, floor_p50, 20.0, true),
        (&five, small_p50, 13.0, true),
        (&five_long, floor_p50, 13.0, false),
    ] {
        // Targets (README): p95 within the floor + 20 ms (10 ms frames), + 13 ms (5 ms).
        // With JHACK_MEASURE=1 the median round must meet it (each run starts at a
        // random phase between the two devices' clocks).
        let mut p95s = m.round_p95s.clone();
        p95s.sort_by(f64::total_cmp);
        // Without JHACK_MEASURE the suite only guards against a broken or grossly
        // slow call: on a busy host the virtual microphone has been measured 1–2 %
        // slow against wall time, and the adaptive buffer follows that drift by
        // tens of ms (README, "A drifting microphone"), which says nothing of the code.
        let (p95, bound) = if measuring() && asserted {
            (p95s[p95s.len() / 2], target)
        } else {
            (p95s[0], 120.0)
        };
        eprintln!(
            "  {}: median round's p95 {:.1} ms, floor {floor_p50:.1} + {target} ms = {:.1} ms{}",
            m.name,
            p95s[p95s.len() / 2],
            floor_p50 + target,
            if asserted { "" } else { " (reported)" }
        );
        assert!(
            p95 <= floor_p50 + bound,
            "{}: p95 {p95:.1} ms against the floor's median {floor_p50:.1} ms (bound + {bound} ms)",
            m.line()
        );
    }
    if have_gst {
        let ratio = ten.median() / gst.median();
        eprintln!("  jhack / GStreamer at 10 ms frames, medians: {ratio:.2}");
        let bound = if measuring() { 1.0 } else { 3.0 };
        assert!(
            ratio < bound,
            "jhack's median is {ratio:.2} x GStreamer's (bound {bound})"
        );
    } else {
        skip(test, "the GStreamer comparison: gst-launch-1.0 missing");
    }
}

/// The floor in steady state: `jhack wire` alone for a minute (with `JHACK_MEASURE=1`;
/// 10 s otherwise), nothing joining the graph meanwhile, and no dropout that the
/// machine did not cause. A probe thread per CPU (real-time, like the audio threads)
/// notes each moment a CPU was taken away for over 2 ms; on a virtual machine its host
/// does that now and then, and every audio thread on that CPU, the sound server's
/// included, stalls with it. A starvation beginning in or just after such a stall is
/// the machine's; any other is jhack's, and fails the measured run. (A client joining
/// upstream of the microphone re-sorts the graph and can cost one period: the
/// mouth-to-ear test's feed does that every round, and counts those apart.) Without
/// `JHACK_MEASURE` a guard: a broken hand-off starves every block, ~1,900 in 10 s,
/// where the guard allows 20, and for each starvation a stall of the machine
/// explains, the periods the stall lasted and two more.
#[test]
fn the_floor_runs_a_minute_without_a_dropout() {
    let test = "the_floor_runs_a_minute_without_a_dropout";
    let Some(_audio) = mic_stack(test) else {
        return;
    };
    common::settle();
    let home = tempfile::tempdir().expect("tempdir");
    let secs = if measuring() { 60 } else { 10 };
    let mut wire = jhack(home.path());
    wire.args(["wire", "--duration", &secs.to_string()])
        .env("JHACK_LOG", "debug");
    let probe = common::stalls::StallProbe::start();
    let realtime = probe.realtime;
    let mut wire = Proc::start("wire", wire);
    assert!(
        wire.wait_exit(Duration::from_secs(secs + 30)).is_some(),
        "jhack wire --duration {secs} did not end"
    );
    let stalls = probe.stop();
    let log = wire.stop();
    let starved = starved_blocks(&log);
    let began = starvation_times(&log);
    // The stalled callback may have begun up to a period before the missed wake; the
    // output notices the missing input within two periods of the CPU's return.
    let (before, after) = (6.0, 12.0);
    let period_ms = 256.0 / 48.0;
    // The starvations a stall of the machine explains: the longest such stall of each.
    let theirs: Vec<f64> = began
        .iter()
        .filter_map(|&t| {
            stalls
                .iter()
                .filter(|s| common::stalls::explains(s, t, before, after))
                .map(|s| s.ms())
                .reduce(f64::max)
        })
        .collect();
    let ours = began.len() - theirs.len();
    let longest = stalls.iter().map(|s| s.ms()).fold(0.0, f64::max);
    let over_a_period = stalls.iter().filter(|s| s.ms() > period_ms).count();
    eprintln!(
        "jhack wire alone for {secs} s: {starved} starved blocks in {} starvations, {} \
         of them during a stall of the machine; the machine stalled a CPU {} times \
         (longest {longest:.1} ms, {over_a_period} over a period){}",
        began.len(),
        theirs.len(),
        stalls.len(),
        if realtime {
            ""
        } else {
            "; the probe ran without real-time priority"
        }
    );
    if measuring() {
        assert_eq!(
            ours, 0,
            "jhack wire dropped out {ours} times with no stall of the machine to explain it \
             (starvations at {began:?} ms, stalls {stalls:?})"
        );
    } else {
        // A starvation the machine explains may cost the periods its stall lasted
        // and two more (8 blocks a period): a host that takes a CPU away for 27 ms
        // takes five periods with it.
        let allowed: u64 = theirs
            .iter()
            .map(|ms| 8 * ((ms / period_ms).ceil() as u64 + 2))
            .sum();
        let bound = 20 + allowed;
        assert!(
            starved <= bound,
            "jhack wire starved {starved} blocks in {secs} s (bound {bound})"
        );
    }
}

/// When each starvation began (`CLOCK_MONOTONIC` ms), from `jhack wire`'s debug log.
fn starvation_times(log: &str) -> Vec<f64> {
    log.lines()
        .find_map(|l| l.split("starvations began at ").nth(1))
        .map(|rest| {
            rest.trim_end_matches(" ms")
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `cmd` with its stdout and stderr collected; returns (child, stdout, stderr).
fn spawn_collecting(
    mut cmd: std::process::Command,
) -> (
    std::process::Child,
    std::thread::JoinHandle<String>,
    std::thread::JoinHandle<String>,
) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    (child, o, e)
}

/// The 1 kHz amplitude of each 10 ms window of `s`.
fn tone_windows(s: &[f32]) -> Vec<f32> {
    s.chunks(480)
        .map(|c| goertzel_amplitude(c, 48_000, 1000.0))
        .collect()
}

#[test]
fn voice_survives_loss_jitter_and_an_outage_through_a_relay() {
    let test = "voice_survives_loss_jitter_and_an_outage_through_a_relay";
    let Some(_audio) = mic_stack(test) else {
        return;
    };
    let h = tempfile::tempdir().expect("tempdir");
    let tone = tone_wav(h.path(), 16);
    let (a, b) = (Peer::new("A"), Peer::new("B"));
    let lossy = relay::Impairment {
        loss: 0.05,
        jitter_ms: 20.0,
        ..relay::Impairment::clean()
    };
    let r = relay::Relay::start(b.addr().parse().expect("addr"), 7, lossy).expect("relay");
    // A reaches B only through the relay; B does not dial A (no address), so the one
    // connection crosses the relay both ways.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jhack"))
        .args(["--home"])
        .arg(a.home())
        .args([
            "peer",
            "add",
            &b.id,
            &r.addr().to_string(),
            "--name",
            "bee",
            "--allow",
            "voice",
        ])
        .output()
        .expect("peer add");
    assert!(out.status.success());
    b.trust(&a, "ay", "voice", false);
    let (mut lc, lout, lerr) = spawn_collecting(talk(
        &b,
        &["ay", "--listen-only", "--duration", "24", "--stats"],
        true,
    ));
    let (mut tc, _tout, terr) =
        spawn_collecting(talk(&a, &["bee", "--open", "--duration", "22"], true));
    std::thread::sleep(Duration::from_secs(3));
    let monitor = Monitor::start();
    let t0 = std::time::Instant::now();
    let mut mic = feed_mic(&tone);
    // 0–8 s: 5 % loss and 20 ms of jitter both ways; 8–10 s: nothing passes; then clean.
    std::thread::sleep(Duration::from_secs(8));
    let outage_at = t0.elapsed().as_secs_f64();
    r.set(relay::Impairment {
        loss: 1.0,
        ..relay::Impairment::clean()
    });
    std::thread::sleep(Duration::from_secs(2));
    let clean_at = t0.elapsed().as_secs_f64();
    r.set(relay::Impairment::clean());
    let _ = mic.wait();
    let heard = monitor.stop();
    let _ = tc.wait();
    let _ = lc.wait();
    let (stats, lerr, terr) = (
        lout.join().unwrap_or_default(),
        lerr.join().unwrap_or_default(),
        terr.join().unwrap_or_default(),
    );
    let w = tone_windows(&channel(&heard, 2, 0));
    let on = 0.05;
    let first = w.iter().position(|&x| x > on).unwrap_or(w.len());
    // Window index of a time since t0 (the capture began at about t0).
    let at = |secs: f64| ((secs * 100.0) as usize).min(w.len());
    assert!(
        first + 50 < at(outage_at - 0.3),
        "the tone was not heard on B's speaker before the outage (first at window {first} of {})",
        w.len()
    );
    let lossy_span = &w[(first + 50).min(w.len())..at(outage_at - 0.3)];
    let gaps = lossy_span.iter().filter(|&&x| x < on / 4.0).count();
    // Back: the first window after the outage from which the tone runs unbroken for
    // half a second. QUIC's probe timer backs off during an outage (datagrams share
    // its congestion control), so the path reopens up to a probe period after the
    // relay does; the jitter buffer itself restarts within a frame or two.
    let from = at(clean_at);
    let back = (from..w.len().saturating_sub(50))
        .find(|&i| w[i..i + 50].iter().all(|&x| x > on / 4.0))
        .map(|i| (i - from) as f64 / 100.0);
    let after = &w[at(clean_at + 3.0)..at(clean_at + 5.0)];
    let after_gaps = after.iter().filter(|&&x| x < on / 4.0).count();
    eprintln!("B: {lerr}\nA: {terr}\nB's figures: {stats}");
    eprintln!(
        "through the relay (5 % loss, 20 ms jitter): {gaps} silent 10 ms windows of {} ({:.2} %); after a 2 s outage the voice was back in {back:.2?} s, and 3–5 s later {after_gaps} silent windows of {}; relay {:?}",
        lossy_span.len(),
        100.0 * gaps as f64 / lossy_span.len().max(1) as f64,
        after.len(),
        r.stats()
    );
    assert!(lossy_span.len() > 500, "the tone was hardly heard: {first}");
    // Guards with headroom (the targets: <= 1 % late, <= 0.5 % unrecovered).
    assert!(
        (gaps as f64) <= 0.03 * lossy_span.len() as f64,
        "{gaps} silent windows under loss and jitter"
    );
    // QUIC's probe timeout doubles through the outage, so the first probe after the
    // relay reopens may come up to about the outage's length (2 s) later: a guard at
    // twice that worst case (measured: 0.4–1.3 s; 3.5 s once on a host stalling a CPU
    // dozens of times a second).
    assert!(
        back.is_some_and(|b| b <= 4.0),
        "voice did not come back within 4 s of the outage: {back:?}"
    );
    assert!(
        (after_gaps as f64) <= 0.03 * after.len() as f64,
        "voice broke up again after the outage: {after_gaps} silent windows of {}",
        after.len()
    );
    let s: serde_json::Value = serde_json::from_str(stats.trim()).expect("B's --stats");
    let p = &s["peers"][0];
    let decoded = p["decoded"].as_f64().unwrap_or(0.0);
    let late = p["late"].as_f64().unwrap_or(0.0);
    assert!(decoded > 1000.0, "{s}");
    assert!(late <= 0.03 * decoded, "{late} late of {decoded}");
}

/// A raw QUIC peer: says hello on the control stream and returns the connection.
async fn raw_peer(
    me: &jhack::net::Identity,
    to: jhack::net::PeerId,
    addr: std::net::SocketAddr,
) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).expect("endpoint");
    let config = jhack::net::client_config(me, to).expect("client config");
    let conn = endpoint
        .connect_with(config, addr, "jhack")
        .expect("connect")
        .await
        .expect("handshake");
    let (mut send, mut recv) = conn.open_bi().await.expect("control stream");
    let hello = jhack::proto::Hello::new("jhack-test 0", "raw", 9);
    let mut frame = Vec::new();
    jhack::proto::encode_frame(&jhack::proto::encode(&hello).unwrap(), &mut frame).unwrap();
    send.write_all(&frame).await.expect("hello");
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.expect("their hello");
    let mut theirs = vec![0u8; u32::from_be_bytes(len) as usize];
    recv.read_exact(&mut theirs).await.expect("their hello");
    // Keep reading their control stream so it never blocks.
    tokio::spawn(async move {
        let mut sink = [0u8; 4096];
        while let Ok(Some(_)) = recv.read(&mut sink).await {}
    });
    (endpoint, conn, send)
}

#[test]
fn hostile_voice_datagrams_are_dropped_and_the_call_goes_on() {
    let test = "hostile_voice_datagrams_are_dropped_and_the_call_goes_on";
    let Some(_audio) = mic_stack(test) else {
        return;
    };
    let h = tempfile::tempdir().expect("tempdir");
    let tone = tone_wav(h.path(), 6);
    let (a, b) = voice_pair();
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let me = jhack::net::Identity::load_or_create(&raw_dir.path().join("identity")).expect("id");
    let my_id = me.id.to_string();
    ok(
        &b.jhack(&["peer", "add", &my_id, "--name", "raw", "--allow", "voice"]),
        "peer add raw",
    );
    let mut listener = Proc::start(
        "B (talk)",
        talk(&b, &["ay", "--listen-only", "--duration", "14"], true),
    );
    let mut talker = Proc::start(
        "A (talk)",
        talk(&a, &["bee", "--open", "--duration", "13"], true),
    );
    talker.wait_for("talking with bee", Duration::from_secs(15));
    listener.wait_for("talking with ay", Duration::from_secs(15));
    let monitor = Monitor::start();
    let mut mic = feed_mic(&tone);
    let b_id: jhack::net::PeerId = b.id.parse().expect("B's id");
    let addr: std::net::SocketAddr = b.addr().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let sent = rt.block_on(async {
        let (endpoint, conn, _control) = raw_peer(&me, b_id, addr).await;
        let voice = jhack::proto::datagram_kind::VOICE;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut sent = 0;
        // Garbage, truncated and oversized voice datagrams.
        for i in 0..300 {
            let n = (next() % 1100) as usize;
            let mut d: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            d.insert(0, voice);
            if i % 3 == 0 && d.len() > 2 {
                d[1] = 1; // the right version, garbage after it
            }
            if conn.send_datagram(d.into()).is_ok() {
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Well-formed packets with absurd sequence numbers and timestamps.
        for i in 0..200u32 {
            let mut pz = jhack::voice::packet::Packetizer::new(77 + i % 3, 0, 480, false);
            let d = pz
                .packet(next(), &[0xfc, 0xff, 0xfe], 1200)
                .expect("packet");
            let mut v = vec![voice];
            v.extend_from_slice(&d);
            let _ = conn.send_datagram(v.into());
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        // A flood: several times the rate limit, for a second and a half (paced, so
        // that the kernel's socket buffer does not drop it before jhack sees it).
        let flood = std::time::Instant::now();
        while flood.elapsed() < Duration::from_millis(1500) {
            for _ in 0..8 {
                let _ = conn.send_datagram(vec![voice, 1, 0, 0, 0, 0, 0].into());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(conn.close_reason().is_none(), "B closed the connection");
        conn.close(0u32.into(), b"done");
        endpoint.wait_idle().await;
        sent
    });
    let _ = mic.wait();
    let heard = monitor.stop();
    let b_log = listener.stop();
    let _ = talker.stop();
    let w = tone_windows(&channel(&heard, 2, 0));
    let on = 0.05;
    let first = w.iter().position(|&x| x > on).unwrap_or(w.len());
    let span = &w[(first + 20).min(w.len())..(first + 500).min(w.len())];
    let gaps = span.iter().filter(|&&x| x < on / 4.0).count();
    eprintln!("{sent} garbage datagrams sent; B: {b_log}");
    eprintln!(
        "A's tone on B's speaker meanwhile: {gaps} silent 10 ms windows of {}",
        span.len()
    );
    assert!(span.len() >= 400, "A's voice was not heard");
    assert!(gaps <= 10, "A's voice broke up while raw sent garbage");
    let lines = |needle: &str| b_log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("a voice datagram from raw was dropped"), 1, "{b_log}");
    assert_eq!(lines("raw sends more than"), 1, "{b_log}");
    assert_eq!(lines("voice from raw rejected"), 1, "{b_log}");
    assert!(!b_log.contains("panicked"), "{b_log}");
}
