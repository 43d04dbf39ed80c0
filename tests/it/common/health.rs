//! The shared virtual audio stack's own health, checked before a test that feeds the
//! virtual microphone: a short tone played into `test_mic_feed` must be heard on
//! `test_mic`. When it is not, the stack's state (daemons, devices, streams, stray
//! processes, the daemons' last log lines) is printed and the stack restarted in
//! place, loudly: a sound server that stopped carrying sound is the machine's fault,
//! not the program's, yet it must be visible in the log of the run that saw it.
//!
//! Must never: pass a test whose microphone is silent (a stack that stays broken
//! after its restart fails the test with the report), or touch any stack but the
//! one named by `JHACK_AUDIO_DIR`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::stack::script;
use super::{Monitor, channel, feed_mic, peak, sine_wav};

/// Whether a tone fed to the virtual microphone is heard there; `Err` says what was
/// heard instead.
pub fn mic_carries_sound() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tone = sine_wav(dir.path(), "probe.wav", 1000, 0.4, -12.0, 48_000, 1);
    let mon = Monitor::start_device("test_mic");
    let mut feed = feed_mic(&tone);
    let fed = feed.wait().map_err(|e| format!("paplay: {e}"))?;
    let heard = mon.stop();
    let p = peak(&channel(&heard, 2, 0));
    if !fed.success() {
        return Err(format!("paplay into test_mic_feed failed ({fed})"));
    }
    if p < 0.05 {
        return Err(format!(
            "{} ms recorded from test_mic, peak {p:.4}",
            heard.len() / 96
        ));
    }
    Ok(())
}

fn stack_dir() -> Option<PathBuf> {
    std::env::var_os("JHACK_AUDIO_DIR").map(PathBuf::from)
}

fn output_of(program: &str, args: &[&str]) -> String {
    match Command::new("timeout")
        .arg("5")
        .arg(program)
        .args(args)
        .output()
    {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => format!("{program}: {e}\n"),
    }
}

/// The stack as it is now: what a person would look at first.
pub fn report() -> String {
    let mut r = String::new();
    for what in [
        "sinks",
        "sources",
        "sink-inputs",
        "source-outputs",
        "modules",
    ] {
        r += &format!("-- pactl list short {what}\n");
        // A module's line carries its whole argument text: its first line is enough.
        for l in output_of("pactl", &["list", "short", what])
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        {
            r += &format!("{}\n", l.chars().take(150).collect::<String>());
        }
    }
    r += "-- pactl info\n";
    r += &output_of("pactl", &["info"]);
    r += "-- processes\n";
    r += &output_of(
        "ps",
        &["-eo", "pid,ppid,stat,etime,pcpu,args", "--sort=-pcpu"],
    )
    .lines()
    .take(25)
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    if let Some(dir) = stack_dir() {
        for d in ["pipewire", "wireplumber", "pipewire-pulse"] {
            let log = dir.join("logs").join(format!("{d}.log"));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            r += &format!("-- {} (last 15 of {} lines)\n", log.display(), lines.len());
            for l in &lines[lines.len().saturating_sub(15)..] {
                r += l;
                r += "\n";
            }
        }
    }
    r
}

/// Stops the shared stack and starts it again in the same directory (the
/// environment the tests run with stays valid: it names that directory).
pub fn restart() -> Result<(), String> {
    let dir = stack_dir().ok_or("JHACK_AUDIO_DIR is not set")?;
    let _ = Command::new(script("stop.sh"))
        .env("JHACK_AUDIO_DIR", &dir)
        .output();
    let o = Command::new(script("start.sh"))
        .env("JHACK_AUDIO_DIR", &dir)
        .output()
        .map_err(|e| format!("start.sh: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "start.sh failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    // WirePlumber links new streams a moment after the devices appear.
    std::thread::sleep(Duration::from_millis(300));
    Ok(())
}

/// Makes sure the virtual microphone carries sound before `test` relies on it:
/// checked, and when silent, reported and the stack restarted once.
pub fn ensure_mic(test: &str) {
    let Err(why) = mic_carries_sound() else {
        return;
    };
    eprintln!(
        "NOTE: {test}: the virtual microphone carries no sound ({why}); the audio stack as it is:\n{}",
        report()
    );
    if let Err(e) = restart() {
        panic!("{test}: restarting the audio stack failed: {e}");
    }
    match mic_carries_sound() {
        Ok(()) => eprintln!(
            "NOTE: {test}: the audio stack was restarted; its microphone carries sound again"
        ),
        Err(why) => panic!(
            "{test}: the virtual microphone carries no sound even after restarting the stack ({why}):\n{}",
            report()
        ),
    }
}
