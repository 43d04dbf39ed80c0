//! `jhack list [--json]`: the library as a table (or JSON), sorted by name, then the
//! sounds others share with us (as `owner/name`). `jhack list --peer P [--json]`:
//! what a peer shares with us now, asked of it (through the running jhack that owns
//! the home when there is one), kept nowhere.

use std::io::Write;

use super::args::GlobalArgs;
use super::context::{Context, Owner, ask_owner, library_error};
use super::error::CliError;
use crate::app::control::{Request, Response};
use std::collections::{HashMap, HashSet};

use crate::domain::{Origin, SoundId, SoundMeta};

#[derive(serde::Serialize)]
struct Row<'a> {
    id: String,
    name: &'a str,
    key: Option<&'a str>,
    duration_s: f64,
    frames: u64,
    sample_rate: u32,
    channels: u16,
    format: &'a str,
    size: u64,
    tags: &'a [String],
    gain_db: f32,
    loudness_lufs: Option<f32>,
    added_ms: u64,
    last_played_ms: Option<u64>,
    origin: &'static str,
    /// "here" (the file is on this machine) or "remote" (listed, the file elsewhere).
    file: &'static str,
    /// Its file is kept here (bound to a key, or pinned by hand).
    pinned: bool,
    /// Whose it is, when someone shares it with us (it is not ours to edit).
    owner: Option<&'a str>,
}

pub fn run(g: &GlobalArgs, json: bool, peer: Option<&str>) -> Result<(), CliError> {
    if let Some(peer) = peer {
        return offer(g, peer, json);
    }
    let ctx = Context::load(g)?;
    let (sounds, not_here, pins, owners) = match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let (sounds, by) = lib.list_with_shared().map_err(library_error)?;
            let not_here = sounds
                .iter()
                .filter(|m| !lib.has_file(&m.id))
                .map(|m| m.id)
                .collect();
            let pins: Vec<SoundId> = lib.pins().map_err(library_error)?.into_iter().collect();
            let owners = by.into_iter().map(|(id, b)| (id, b.owner_name)).collect();
            (sounds, not_here, pins, owners)
        }
        Owner::Running(socket) => match ask_owner(&socket, &Request::List)? {
            Response::Sounds {
                sounds,
                not_here,
                pinned,
                owners,
            } => (sounds, not_here, pinned, owners),
            other => return Err(CliError::failure(format!("unexpected reply: {other:?}"))),
        },
    };
    let owners: HashMap<SoundId, String> = owners.into_iter().collect();
    let not_here: HashSet<SoundId> = not_here.into_iter().collect();
    // Sounds bound to keys are pinned too.
    let pinned: HashSet<SoundId> = pins
        .into_iter()
        .chain(sounds.iter().filter(|m| m.key.is_some()).map(|m| m.id))
        .collect();
    let files = Files {
        not_here: &not_here,
        pinned: &pinned,
        owners: &owners,
    };
    print(|out| {
        if json {
            write_json(out, &sounds, &files)
        } else {
            write_table(out, &sounds, &files)
        }
    })
}

/// Writes to stdout through `f`; a closed pipe (`jhack list | head`) is not an error.
fn print(
    f: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match f(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`jhack list | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("stdout: {e}"))),
    }
}

/// Where each sound's file is, which are pinned, and whose the shared ones are.
struct Files<'a> {
    not_here: &'a HashSet<SoundId>,
    pinned: &'a HashSet<SoundId>,
    owners: &'a HashMap<SoundId, String>,
}

impl Files<'_> {
    fn file(&self, id: &SoundId) -> &'static str {
        if self.not_here.contains(id) {
            "remote"
        } else {
            "here"
        }
    }
}

fn write_json(
    out: &mut impl Write,
    sounds: &[SoundMeta],
    files: &Files<'_>,
) -> std::io::Result<()> {
    let rows: Vec<Row<'_>> = sounds
        .iter()
        .map(|m| Row {
            id: m.id.to_hex(),
            name: &m.name,
            key: m.key.as_deref(),
            duration_s: m.duration_secs(),
            frames: m.frames,
            sample_rate: m.sample_rate,
            channels: m.channels,
            format: &m.format,
            size: m.size,
            tags: &m.tags,
            gain_db: m.gain_db,
            loudness_lufs: m.loudness_lufs,
            added_ms: m.added_ms,
            last_played_ms: m.last_played_ms,
            origin: match m.origin {
                Origin::Local => "local",
                Origin::Remote => "remote",
            },
            file: files.file(&m.id),
            pinned: files.pinned.contains(&m.id),
            owner: files.owners.get(&m.id).map(String::as_str),
        })
        .collect();
    serde_json::to_writer(&mut *out, &rows)?;
    writeln!(out)
}

/// Bytes in B, KB, MB or GB (decimal).
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} KB", b / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", b / 1e6),
        _ => format!("{:.2} GB", b / 1e9),
    }
}

fn write_table(
    out: &mut impl Write,
    sounds: &[SoundMeta],
    files: &Files<'_>,
) -> std::io::Result<()> {
    if sounds.is_empty() {
        return writeln!(
            out,
            "the library is empty: add sounds with `jhack import PATH...`"
        );
    }
    let name_w = sounds
        .iter()
        .map(|m| m.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    let fmt_w = sounds
        .iter()
        .map(|m| m.format.len())
        .max()
        .unwrap_or(6)
        .clamp(6, 20);
    writeln!(
        out,
        "{:<12}  {:<name_w$}  {:<6}  {:>8}  {:<fmt_w$}  {:>8}  {:>6}  {:>10}  {:<6}  TAGS",
        "ID", "NAME", "KEY", "DURATION", "FORMAT", "SIZE", "GAIN", "LOUDNESS", "FILE"
    )?;
    for m in sounds {
        let name: String = m.name.chars().take(40).collect();
        let loud = m
            .loudness_lufs
            .map_or_else(|| "-".to_string(), |l| format!("{l:.1} LUFS"));
        writeln!(
            out,
            "{:<12}  {:<name_w$}  {:<6}  {:>8}  {:<fmt_w$}  {:>8}  {:>+6.1}  {:>10}  {:<6}  {}",
            m.id.short(),
            name,
            m.key.as_deref().unwrap_or("-"),
            m.duration_text(),
            m.format,
            size(m.size),
            m.gain_db,
            loud,
            match (files.file(&m.id), files.pinned.contains(&m.id)) {
                ("here", true) => "pinned",
                ("here", false) => "here",
                (_, true) => "pin…",
                _ => "remote",
            },
            m.tags.join(",")
        )?;
    }
    Ok(())
}

/// One offered sound, as `jhack list --peer --json` prints it.
#[derive(serde::Serialize)]
struct OfferRow<'a> {
    id: String,
    name: &'a str,
    tags: &'a [String],
    duration_s: f64,
    size: u64,
    format: &'a str,
    gain_db: f32,
}

/// `jhack list --peer P`: what `peer` shares with us now.
fn offer(g: &GlobalArgs, peer: &str, json: bool) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let (name, sounds) = match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let lib = std::sync::Arc::new(*lib);
            let super::sync::OwnNode {
                service,
                node,
                peer: found,
                denied,
            } = super::sync::own_node(&ctx, &lib, peer)?;
            let r = crate::app::sync::follower::browse(
                &node,
                &found.id,
                std::time::Duration::from_secs(30),
            );
            drop(service);
            let sounds = r.map_err(|e| {
                CliError::failure(format!(
                    "{}: {}",
                    found.name,
                    super::sync::with_notice(&denied, e)
                ))
            })?;
            (found.name, sounds)
        }
        Owner::Running(socket) => match ask_owner(
            &socket,
            &Request::Browse {
                peer: peer.to_string(),
            },
        )? {
            Response::Offer { peer, sounds } => (peer, sounds),
            other => return Err(CliError::failure(format!("unexpected reply: {other:?}"))),
        },
    };
    print(|out| {
        if json {
            let rows: Vec<OfferRow<'_>> = sounds
                .iter()
                .map(|s| OfferRow {
                    id: s.id.to_hex(),
                    name: &s.name,
                    tags: &s.tags,
                    duration_s: s.facts.frames as f64 / f64::from(s.facts.sample_rate.max(1)),
                    size: s.facts.size,
                    format: &s.facts.format,
                    gain_db: s.gain_db,
                })
                .collect();
            serde_json::to_writer(&mut *out, &rows)?;
            return writeln!(out);
        }
        if sounds.is_empty() {
            return writeln!(out, "{name} shares nothing with you");
        }
        let name_w = sounds
            .iter()
            .map(|s| s.name.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 40);
        writeln!(
            out,
            "{:<12}  {:<name_w$}  {:>8}  {:>8}  TAGS",
            "ID", "NAME", "DURATION", "SIZE"
        )?;
        for s in &sounds {
            let secs = s.facts.frames as f64 / f64::from(s.facts.sample_rate.max(1));
            writeln!(
                out,
                "{:<12}  {:<name_w$}  {:>7.1}s  {:>8}  {}",
                s.id.short(),
                s.name.chars().take(40).collect::<String>(),
                secs,
                size(s.facts.size),
                s.tags.join(",")
            )?;
        }
        writeln!(
            out,
            "{} sounds shared by {name} (subscribe with: jhack peer add {name} --sync subscribe)",
            sounds.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(615_000), "615 KB");
        assert_eq!(size(12_345_678), "12.3 MB");
    }
}
