//! `jhack record FILE`: the input device to a WAV file, until the duration or Ctrl-C.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use super::args::GlobalArgs;
use super::error::CliError;
use super::session::{interrupt_flag, seconds, start_engine, wait_until};
use crate::app::recorder::Recorder;

pub fn run(
    g: &GlobalArgs,
    file: &Path,
    duration: Option<f64>,
    channels: Option<u16>,
) -> Result<(), CliError> {
    let duration = duration.map(|d| seconds("duration", d)).transpose()?;
    let interrupted = interrupt_flag();
    let engine = start_engine(g)?;
    let rec = Recorder::start(&engine, file, channels, duration)?;
    let tty = std::io::stderr().is_terminal();
    if tty {
        let f = rec.format();
        eprintln!(
            "recording {} ({} Hz, {} ch) — Ctrl-C to stop",
            file.display(),
            f.sample_rate,
            f.channels
        );
    }
    let deadline = duration.map(|d| Instant::now() + d + std::time::Duration::from_secs(5));
    wait_until(&interrupted, deadline, || rec.is_finished());
    let report = rec.finish()?;
    if tty {
        let secs = report.frames as f64 / f64::from(report.format.sample_rate.max(1));
        eprintln!("wrote {} ({secs:.1} s)", report.path.display());
    }
    if report.dropped > 0 {
        tracing::warn!(
            "{} input samples were lost (the disk was too slow)",
            report.dropped
        );
    }
    Ok(())
}
