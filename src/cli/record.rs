//! `jhack record [FILE] [--import NAME]`: the input device to a WAV file, until the
//! duration or Ctrl-C; with `--import` (or without FILE) the recording then goes into
//! the library. Without FILE the recording is written under the home's
//! `recordings/` folder first and removed once it is safely imported, so a crash or
//! a failed import never loses it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::args::GlobalArgs;
use super::context::Context;
use super::error::{CliError, chain};
use super::session::{interrupt_flag, seconds, start_engine_with, wait_until};
use crate::app::import::{ImportOptions, Imported, import_file};
use crate::app::recorder::Recorder;

pub fn run(
    g: &GlobalArgs,
    file: Option<&Path>,
    import: Option<&str>,
    duration: Option<f64>,
    channels: Option<u16>,
) -> Result<(), CliError> {
    let duration = duration.map(|d| seconds("duration", d)).transpose()?;
    let ctx = Context::load(g)?;
    let into_library = file.is_none() || import.is_some();
    // Take the library first: a busy home fails before anything is recorded.
    let lib = into_library.then(|| ctx.open_library()).transpose()?;
    let stamp = timestamp(std::time::SystemTime::now());
    let path: PathBuf = match file {
        Some(f) => f.to_path_buf(),
        None => {
            let dir = ctx.home.data_dir().join("recordings");
            std::fs::create_dir_all(&dir)
                .map_err(|e| CliError::failure(format!("{}: {e}", dir.display())))?;
            dir.join(format!("recording-{stamp}.wav"))
        }
    };
    let interrupted = interrupt_flag();
    let engine = start_engine_with(g, &ctx)?;
    let rec = Recorder::start(&engine, &path, channels, duration)?;
    let tty = std::io::stderr().is_terminal();
    if tty {
        let f = rec.format();
        eprintln!(
            "recording {} ({} Hz, {} ch) — Ctrl-C to stop",
            path.display(),
            f.sample_rate,
            f.channels
        );
    }
    let deadline = duration.map(|d| Instant::now() + d + std::time::Duration::from_secs(5));
    wait_until(&interrupted, deadline, || rec.is_finished());
    let report = rec.finish()?;
    let stats = engine.stats();
    drop(engine);
    if stats.input_losses > 0 {
        tracing::warn!(
            "the input device lost {:.0} ms of input in {} places; silence stands in for it, so the recording keeps time",
            stats.lost_frames_filled() as f64 * 1000.0
                / f64::from(report.format.sample_rate.max(1)),
            stats.input_losses
        );
    }
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
    let Some(lib) = lib else {
        return Ok(());
    };
    let opts = ImportOptions {
        name: Some(import.map_or_else(|| format!("recording-{stamp}"), str::to_string)),
        tags: vec!["recording".into()],
        ..ImportOptions::default()
    };
    let m = match import_file(&lib, &path, &opts) {
        Ok(Imported::New(m) | Imported::AlreadyPresent(m)) => m,
        Err(e) => {
            return Err(CliError::failure(format!(
                "the recording is kept in {}, but could not be imported: {}",
                path.display(),
                chain(&e)
            )));
        }
    };
    outln!("imported {} ({})", m.name, m.id.short());
    if file.is_none()
        && let Err(e) = std::fs::remove_file(&path)
    {
        tracing::warn!("{}: {e}", path.display());
    }
    Ok(())
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_119_505);
        assert_eq!(timestamp(t), "20261201-100505");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
