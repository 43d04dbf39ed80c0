//! `jhack play FILE...`: plays files to the end, one after another or mixed, and can
//! report the engine's latency figures.

use std::time::{Duration, Instant};

use super::args::{GlobalArgs, PlayArgs};
use super::error::CliError;
use super::session::{drain, interrupt_flag, start_engine, wait_until};
use crate::app::player::{self, OpenedFile, PlayingFile};
use crate::audio::{Engine, VoiceState};
use crate::domain::Decibels;

/// Figures printed by `--stats`.
#[derive(Debug, serde::Serialize)]
struct PlayStats {
    /// Wall-clock time of the first play command, µs since the Unix epoch (for
    /// end-to-end measurements against an external recorder).
    trigger_unix_us: Option<u128>,
    trigger_to_callback_ms: Option<f64>,
    max_trigger_to_callback_ms: Option<f64>,
    output_latency_ms: f64,
    period_frames: u32,
    period_ms: f64,
    sample_rate: u32,
    channels: u16,
    xruns: u64,
    starved_blocks: u64,
    host: String,
    device: String,
    null_backend: bool,
}

pub fn run(g: &GlobalArgs, args: &PlayArgs) -> Result<(), CliError> {
    if !args.gain.is_finite() || args.gain > 40.0 {
        return Err(CliError::input(format!(
            "--gain: {} dB is out of range (at most +40 dB)",
            args.gain
        )));
    }
    let interrupted = interrupt_flag();
    let engine = start_engine(g)?;
    let fmt = engine.format();
    let files = args
        .files
        .iter()
        .map(|p| OpenedFile::open(p, fmt))
        .collect::<Result<Vec<_>, _>>()?;
    let gain = Decibels(args.gain).to_amplitude();
    let mut latencies = Vec::new();
    let mut late_error = None;
    let mut was_interrupted = false;
    let mut first_trigger = None;
    let mut finish = |engine: &Engine, playing: PlayingFile, latencies: &mut Vec<Duration>| {
        if let Some(VoiceState::Ended(o)) = engine.state(playing.id)
            && let Some(l) = o.trigger_to_callback
        {
            latencies.push(l);
        }
        if let Err(e) = playing.finish() {
            late_error.get_or_insert(e);
        }
    };
    if args.mix {
        let start = engine.stats().frames + 2 * engine.format().sample_rate as u64 / 100;
        let mut playing = Vec::new();
        for f in files {
            playing.push(player::play(&engine, f, gain, Some(start))?);
            first_trigger.get_or_insert_with(std::time::SystemTime::now);
        }
        was_interrupted = wait_all(&engine, &playing, &interrupted);
        for p in playing {
            finish(&engine, p, &mut latencies);
        }
    } else {
        for f in files {
            let p = player::play(&engine, f, gain, None)?;
            first_trigger.get_or_insert_with(std::time::SystemTime::now);
            was_interrupted = wait_all(&engine, std::slice::from_ref(&p), &interrupted);
            finish(&engine, p, &mut latencies);
            if was_interrupted {
                break;
            }
        }
    }
    drain(&engine);
    if args.stats {
        print_stats(&engine, &latencies, first_trigger);
    }
    if was_interrupted {
        return Err(CliError {
            status: 130,
            message: "interrupted".into(),
        });
    }
    match late_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Waits for every voice to end; on interrupt, fades them out. Returns whether interrupted.
fn wait_all(
    engine: &Engine,
    playing: &[PlayingFile],
    interrupted: &std::sync::atomic::AtomicBool,
) -> bool {
    let ended = || {
        playing
            .iter()
            .all(|p| matches!(engine.state(p.id), Some(VoiceState::Ended(_)) | None))
    };
    if wait_until(interrupted, None, ended) {
        engine.stop_all();
        let never = std::sync::atomic::AtomicBool::new(false);
        wait_until(
            &never,
            Some(Instant::now() + Duration::from_millis(200)),
            ended,
        );
        return true;
    }
    false
}

fn print_stats(engine: &Engine, latencies: &[Duration], trigger: Option<std::time::SystemTime>) {
    let s = engine.stats();
    let info = engine.info();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let period = info.output.period_frames.unwrap_or(s.period_frames);
    let unix_us = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_micros())
    };
    let stats = PlayStats {
        trigger_unix_us: trigger.and_then(unix_us),
        trigger_to_callback_ms: latencies.first().map(ms),
        max_trigger_to_callback_ms: latencies.iter().max().map(ms),
        output_latency_ms: s.output_latency_ms,
        period_frames: period,
        period_ms: f64::from(period) * 1000.0 / f64::from(info.output.format.sample_rate.max(1)),
        sample_rate: info.output.format.sample_rate,
        channels: info.output.format.channels,
        xruns: s.xruns,
        starved_blocks: s.stream_starved,
        host: info.output.host.clone(),
        device: info.output.device.clone(),
        null_backend: info.output_is_null(),
    };
    if let Ok(line) = serde_json::to_string(&stats) {
        println!("{line}");
    }
}
