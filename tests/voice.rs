//! The intercom end to end: two real `jhack talk` processes on 127.0.0.1 with
//! separate homes. A tone fed to the (virtual) microphone of one comes out of the
//! other's speaker; a peer without `voice` refuses clearly.

mod common;

use std::time::Duration;

use common::peers::*;
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
