//! `jhack play TARGET... --peer P [--peer Q] [--local]`: plays library sounds (or
//! files, imported first so that peers can fetch them by their id) on peers. Through the running jhack when there is one (it holds the connections);
//! otherwise this process connects itself, triggers, serves the blob to a peer that
//! lacks it, and returns once every peer has started or refused — staying until each
//! peer it sent a sound to says it holds the whole of it (or gave up, or went away),
//! so a peer playing as the sound arrives is never cut off.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::args::{GlobalArgs, PlayArgs};
use super::context::{Context, Owner, ask_owner, library_error};
use super::error::{CliError, chain};
use super::session::{drain, interrupt_flag, start_engine_with, wait_until};
use crate::app::control::{Request, Response};
use crate::app::peers::offer_of;
use crate::audio::VoiceState;
use crate::domain::{Decibels, SoundMeta};
use crate::net::{Identity, NetEvent, Node, TrustedPeer};
use crate::proto::PlayOutcome;

/// How long peers have to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long peers have to answer a trigger (a fetch may come first).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(g: &GlobalArgs, args: &PlayArgs) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let names: Vec<String> = args
        .targets
        .iter()
        .map(|t| t.to_string_lossy().into_owned())
        .collect();
    match ctx.library_or_owner()? {
        Owner::Running(socket) => {
            for (raw, mut target) in args.targets.iter().zip(names) {
                if raw.is_file() {
                    target = import_through(&socket, raw)?;
                }
                let req = Request::PlayOn {
                    target,
                    peers: args.peers.clone(),
                    local: args.local,
                    gain_db: args.gain,
                };
                if let Response::Ok { message } = ask_owner(&socket, &req)? {
                    eprintln!("jhack: {message}");
                }
            }
            Ok(())
        }
        Owner::Here(lib) => {
            let mut sounds = Vec::new();
            for (raw, n) in args.targets.iter().zip(&names) {
                if raw.is_file() {
                    sounds.push(import_here(&lib, raw)?);
                    continue;
                }
                let m = lib.resolve(n).map_err(|e| match e {
                    crate::library::LookupError::Library(e) => library_error(e),
                    e => CliError::input(format!("{n}: {e} (with --peer, name library sounds)")),
                })?;
                sounds.push(m);
            }
            let locate = Arc::new(lib.blob_locator());
            let (tx, rx) = mpsc::channel::<NetEvent>();
            let sink = crate::net::channel_sink(tx);
            let me = Identity::load_or_create(&ctx.home.identity_dir())
                .map_err(|e| CliError::failure(chain(&e)))?;
            let cfg = ctx.node_config(None, false);
            let node =
                Node::start(me, cfg, locate, sink).map_err(|e| CliError::failure(chain(&e)))?;
            let peers = connect_all(&node, &args.peers)?;
            let mut sent = Vec::new();
            let result = trigger_and_wait(&node, &rx, &peers, &sounds, args.gain, &mut sent);
            if result.is_ok() && args.local {
                play_here(g, &ctx, &lib, &sounds, args.gain)?;
            }
            wait_until_held(&node, &rx, sent);
            node.shutdown();
            result
        }
    }
}

/// Imports a file into this process's library (peers fetch sounds by id).
fn import_here(
    lib: &crate::library::Library,
    path: &std::path::Path,
) -> Result<SoundMeta, CliError> {
    use crate::app::import::{ImportOptions, Imported, import_file};
    match import_file(lib, path, &ImportOptions::default()) {
        Ok(Imported::New(m)) => {
            eprintln!(
                "jhack: imported {} as \"{}\" to send it",
                path.display(),
                m.name
            );
            Ok(m)
        }
        Ok(Imported::AlreadyPresent(m)) => Ok(m),
        Err(e) => Err(CliError::input(chain(&e))),
    }
}

/// Imports a file through the running jhack; returns its id, as a play target.
fn import_through(socket: &std::path::Path, path: &std::path::Path) -> Result<String, CliError> {
    let abs = std::fs::canonicalize(path)
        .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let id = std::fs::File::open(&abs)
        .and_then(|f| blake3::Hasher::new().update_reader(f).map(|h| h.finalize()))
        .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let req = Request::Import {
        paths: vec![abs],
        name: None,
        tags: Vec::new(),
        key: None,
        gain_db: 0.0,
    };
    if let Response::Imported { failed, .. } = ask_owner(socket, &req)?
        && let Some(f) = failed.first()
    {
        return Err(CliError::input(f.clone()));
    }
    Ok(id.to_hex().to_string())
}

fn connect_all(node: &Node, queries: &[String]) -> Result<Vec<TrustedPeer>, CliError> {
    let mut peers = Vec::new();
    for q in queries {
        let p = node.find(q).map_err(|e| CliError::input(chain(&e)))?;
        node.connect(&p, CONNECT_TIMEOUT)
            .map_err(|e| CliError::input(chain(&e)))?;
        peers.push(p);
    }
    Ok(peers)
}

/// A sound a peer started fetching from us: (peer, sound, name of the sound).
type Sending = (crate::net::PeerId, crate::domain::SoundId, String);

/// Triggers every sound on every peer and waits for their answers; `sending` gets
/// the (peer, sound) pairs the peer is fetching from us, and fetches already
/// finished are remembered in it too (as the answer may come after them).
fn trigger_and_wait(
    node: &Node,
    rx: &mpsc::Receiver<NetEvent>,
    peers: &[TrustedPeer],
    sounds: &[SoundMeta],
    gain: f32,
    sending: &mut Vec<(Sending, Option<Option<String>>)>,
) -> Result<(), CliError> {
    let mut waiting: HashMap<u64, (String, String, crate::net::PeerId, SoundMeta)> = HashMap::new();
    let mut done_early: Vec<(crate::net::PeerId, crate::domain::SoundId, Option<String>)> =
        Vec::new();
    for m in sounds {
        for p in peers {
            let t = node
                .trigger(&p.id, offer_of(m), gain)
                .map_err(|e| CliError::input(chain(&e)))?;
            waiting.insert(t, (p.name.clone(), m.name.clone(), p.id, m.clone()));
        }
    }
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    let mut refused = Vec::new();
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match rx.recv_timeout(left) {
            Ok(e) => e,
            Err(_) => {
                let who: Vec<String> = waiting.values().map(|(p, ..)| p.clone()).collect();
                return Err(CliError::failure(format!(
                    "no answer from {} in {} s",
                    who.join(", "),
                    ANSWER_TIMEOUT.as_secs()
                )));
            }
        };
        match event {
            NetEvent::TriggerResult {
                trigger, outcome, ..
            } => {
                let Some((peer, sound, peer_id, meta)) = waiting.remove(&trigger) else {
                    continue;
                };
                match outcome {
                    PlayOutcome::Started { cached, .. } => {
                        eprintln!(
                            "jhack: \"{sound}\" playing on {peer}{}",
                            if cached { "" } else { " (sent to it)" }
                        );
                        if !cached {
                            let early = done_early
                                .iter()
                                .find(|(p, s, _)| *p == peer_id && *s == meta.id)
                                .map(|(.., e)| e.clone());
                            sending.push(((peer_id, meta.id, meta.name.clone()), early));
                        }
                    }
                    PlayOutcome::Refused { message, .. } => {
                        refused.push(format!("{peer} refused \"{sound}\": {message}"))
                    }
                    PlayOutcome::Failed { message } => {
                        refused.push(format!("\"{sound}\" failed on {peer}: {message}"))
                    }
                }
            }
            NetEvent::PeerFetched { id, sound, error } => done_early.push((id, sound, error)),
            NetEvent::PeerDown { name, reason, .. } => {
                let lost: Vec<u64> = waiting
                    .iter()
                    .filter(|(_, (p, ..))| *p == name)
                    .map(|(t, _)| *t)
                    .collect();
                for t in lost {
                    waiting.remove(&t);
                    refused.push(format!("{name} went offline: {reason}"));
                }
            }
            _ => {}
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(CliError::input(refused.join("; ")))
    }
}

/// How long a peer's fetch may go without progress before this command leaves.
const STALLED_AFTER: Duration = Duration::from_secs(30);

/// Stays until every peer fetching a sound from us says it holds all of it (or gave
/// up), or goes offline, or its transfer stalls — never while bytes still move.
fn wait_until_held(
    node: &Node,
    rx: &mpsc::Receiver<NetEvent>,
    mut sending: Vec<(Sending, Option<Option<String>>)>,
) {
    let report = |(peer, _, name): &Sending, error: &Option<String>| match error {
        None => eprintln!(
            "jhack: {} holds \"{name}\" (every byte verified)",
            node.name_of(peer)
        ),
        Some(e) => eprintln!(
            "jhack: {} gave up fetching \"{name}\": {e}",
            node.name_of(peer)
        ),
    };
    sending.retain(|(s, done)| match done {
        Some(e) => {
            report(s, e);
            false
        }
        None => true,
    });
    let mut progress = Instant::now();
    while !sending.is_empty() {
        let busy = node.peers().iter().any(|p| p.transfers > 0);
        if busy {
            progress = Instant::now();
        } else if progress.elapsed() > STALLED_AFTER {
            for ((peer, _, name), _) in &sending {
                eprintln!(
                    "jhack: {} has not finished fetching \"{name}\" and nothing moved for {} s: leaving",
                    node.name_of(peer),
                    STALLED_AFTER.as_secs()
                );
            }
            return;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(NetEvent::PeerFetched { id, sound, error }) => {
                if let Some(i) = sending
                    .iter()
                    .position(|((p, s, _), _)| *p == id && *s == sound)
                {
                    let (s, _) = sending.remove(i);
                    report(&s, &error);
                }
            }
            Ok(NetEvent::PeerDown { id, name, reason }) => {
                sending.retain(|((p, _, sound), _)| {
                    if *p == id {
                        eprintln!(
                            "jhack: {name} went offline before it held \"{sound}\": {reason}"
                        );
                    }
                    *p != id
                });
            }
            _ => {}
        }
    }
}

fn play_here(
    g: &GlobalArgs,
    ctx: &Context,
    lib: &crate::library::Library,
    sounds: &[SoundMeta],
    gain: f32,
) -> Result<(), CliError> {
    let engine = start_engine_with(g, ctx)?;
    let interrupted = interrupt_flag();
    for m in sounds {
        let file = crate::app::player::OpenedFile::open(&lib.blob_path(&m.id), engine.format())
            .map_err(|e| CliError::input(format!("{}: {}", m.name, e.reason())))?;
        let db = gain + ctx.config.playback.normalization_gain(m.loudness_lufs).0 + m.gain_db;
        let playing = crate::app::player::play(&engine, file, Decibels(db).to_amplitude(), None)?;
        wait_until(&interrupted, None, || {
            matches!(engine.state(playing.id), Some(VoiceState::Ended(_)) | None)
        });
        let _ = playing.finish();
    }
    drain(&engine);
    Ok(())
}
