//! `jhack play FILE...`: plays files to the end, one after another or mixed, and can
//! report the engine's latency figures.

use std::time::{Duration, Instant};

use super::args::{GlobalArgs, PlayArgs};
use super::context::{Context, Owner, ask_owner, library_error, looks_like_path};
use super::error::CliError;
use super::session::{drain, interrupt_flag, start_engine_with, wait_until};
use crate::app::control::{Request, Response};
use crate::app::player::{self, OpenedFile, PlayingFile};
use crate::audio::{Engine, VoiceState};
use crate::domain::Decibels;
use crate::library::{Library, LookupError};

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
    if !args.peers.is_empty() {
        return super::play_remote::run(g, args);
    }
    let ctx = Context::load(g)?;
    let Resolved {
        here: targets,
        lib,
        through,
    } = resolve_targets(&ctx, &args.targets)?;
    if let Some((socket, names)) = &through {
        for name in names {
            let req = Request::Play {
                target: name.clone(),
                gain_db: args.gain,
            };
            if let Response::Ok { message } = ask_owner(socket, &req)? {
                eprintln!("jhack: {message} (in the running jhack)");
            }
        }
        if targets.is_empty() {
            return Ok(());
        }
    }
    let interrupted = interrupt_flag();
    let engine = start_engine_with(g, &ctx)?;
    let fmt = engine.format();
    let mut files = Vec::with_capacity(targets.len());
    for t in &targets {
        let opened = OpenedFile::open(&t.path, fmt).map_err(|e| match &t.sound {
            Some(m) => CliError::input(format!("{}: {}", m.name, e.reason())),
            None => e.into(),
        })?;
        let db = args.gain + t.gain_db;
        files.push((opened, Decibels(db).to_amplitude()));
    }
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
        for (f, gain) in files {
            playing.push(player::play(&engine, f, gain, Some(start))?);
            first_trigger.get_or_insert_with(std::time::SystemTime::now);
        }
        was_interrupted = wait_all(&engine, &playing, &interrupted);
        for p in playing {
            finish(&engine, p, &mut latencies);
        }
    } else {
        for (f, gain) in files {
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
    if let Some(lib) = &lib {
        for t in &targets {
            if let Some(m) = &t.sound {
                let _ = lib.mark_played(&m.id);
            }
        }
    }
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
        outln!("{line}");
    }
}

/// One thing to play: a file, or a library sound's blob with its gains.
struct Target {
    path: std::path::PathBuf,
    /// Loudness normalisation plus the sound's own gain, dB (0 for files).
    gain_db: f32,
    /// The library record, for library sounds.
    sound: Option<crate::domain::SoundMeta>,
}

/// Where the targets go: this process's files and library sounds, plus the sounds
/// that the running jhack owning the home is asked to play.
struct Resolved {
    here: Vec<Target>,
    lib: Option<Library>,
    /// (socket, names) when another jhack owns the library.
    through: Option<(std::path::PathBuf, Vec<String>)>,
}

/// Files as they are; anything else is looked up in the library, which is opened
/// (once) only then — or, when a running jhack owns it, left to that process.
fn resolve_targets(ctx: &Context, raw: &[std::path::PathBuf]) -> Result<Resolved, CliError> {
    let mut owner: Option<Owner> = None;
    let mut r = Resolved {
        here: Vec::with_capacity(raw.len()),
        lib: None,
        through: None,
    };
    for p in raw {
        if p.exists() {
            r.here.push(Target {
                path: p.clone(),
                gain_db: 0.0,
                sound: None,
            });
            continue;
        }
        let Some(name) = p.to_str() else {
            return Err(CliError::input(format!("{}: no such file", p.display())));
        };
        let o = match &mut owner {
            Some(o) => o,
            None => owner.insert(ctx.library_or_owner()?),
        };
        let l = match o {
            Owner::Here(l) => l,
            Owner::Running(socket) => {
                r.through
                    .get_or_insert_with(|| (socket.clone(), Vec::new()))
                    .1
                    .push(name.to_string());
                continue;
            }
        };
        match l.resolve(name) {
            Ok(m) if !l.has_file(&m.id) => {
                return Err(CliError::input(format!(
                    "{}: its file is on another machine (a remote sound); it plays from a running screen or `jhack serve`, which fetch it from a mirror",
                    m.name
                )));
            }
            Ok(m) => {
                let norm = ctx.config.playback.normalization_gain(m.loudness_lufs);
                r.here.push(Target {
                    path: l.blob_path(&m.id),
                    gain_db: norm.0 + m.gain_db,
                    sound: Some(m),
                });
            }
            Err(LookupError::NotFound) if looks_like_path(p) => {
                return Err(CliError::input(format!("{}: no such file", p.display())));
            }
            Err(LookupError::Library(e)) => return Err(library_error(e)),
            Err(e) => return Err(CliError::input(format!("{name}: {e}"))),
        }
    }
    if let Some(Owner::Here(l)) = owner {
        r.lib = Some(*l);
    }
    Ok(r)
}
