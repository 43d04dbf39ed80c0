//! The engine survives its sound server being killed and restarted under a running
//! stream. It breaks a (private) sound server on purpose, and on these 2-core hosts
//! the real-device tests that ran right after it failed now and then even though it
//! never touches their stack; so it runs last: libtest runs tests in name order
//! (`--test-threads=1`), and this module's name sorts after every other.

use std::time::Duration;

use crate::common;
use common::*;
use jhack::dsp::analysis::{dominant_frequency, onset};

fn home() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn output_survives_the_sound_server_restarting() {
    let test = "output_survives_the_sound_server_restarting";
    // The shared stack is held only so that no other test's sound runs meanwhile (two
    // sound servers on two cores); the one killed here is this test's own.
    let Some(_audio) = audio_stack(test) else {
        return;
    };
    let stack = match common::stack::PrivateStack::start("restart") {
        Ok(s) => s,
        Err(e) => panic!("{test}: a private audio stack would not start: {e}"),
    };
    let h = home();
    let mut cmd = jhack(h.path());
    stack.apply(&mut cmd);
    cmd.args(["tone", "700", "--duration", "7", "--amplitude", "0.4"])
        .env("JHACK_LOG", "info");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Kill the sound server under the running stream.
    for d in ["pipewire-pulse", "wireplumber", "pipewire"] {
        let pidfile = stack.dir().join("pids").join(format!("{d}.pid"));
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let _ = std::process::Command::new("kill")
                .arg("-9")
                .arg(pid.trim())
                .status();
        }
    }
    std::thread::sleep(Duration::from_millis(700));
    stack.restart();
    // jhack retries the device every 2 s; the tone must come back on the new server.
    let mon = Monitor::start_on(&stack);
    let out = child.wait_with_output().unwrap();
    let captured = mon.stop();
    drop(stack);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "tone failed after the server restart: {err}"
    );
    assert!(
        err.contains("audio output lost"),
        "the loss was not reported: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let left = channel(&captured, 2, 0);
    let start = onset(&left, 0.05).expect("the tone did not come back after the restart");
    let body = &left[start..(start + 9600).min(left.len())];
    let f = dominant_frequency(body, RATE, 200.0, 4000.0);
    assert!((f - 700.0).abs() <= 3.0, "heard {f} Hz after the restart");
}
