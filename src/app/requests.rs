//! What the owner of a home does with each control-socket request: play, stop,
//! import and list through its running instance. Shared by the interface and the
//! headless server, so both answer alike.

use super::control::{Call, Request, Response};
use super::import::ImportOptions;
use super::instance::{Instance, InstanceError};
use super::peers::PeerHub;
use crate::domain::chain;

/// Answers one call: at once, or — for plays on peers — once the peers answered.
pub fn dispatch(
    instance: &mut Instance,
    hub: Option<&mut PeerHub>,
    call: Call,
    notice: &mut dyn FnMut(String),
) {
    let (req, reply) = call;
    let engine = instance.engine_shared();
    let mut hub = hub;
    route(instance, req, reply, hub.as_deref_mut(), notice);
    // A switch through the socket moved the engine: the call (and a screen
    // attached here) follow it.
    if let Some(hub) = hub
        && !std::sync::Arc::ptr_eq(&engine, &instance.engine_shared())
    {
        hub.engine_changed(instance, notice);
    }
}

fn route(
    instance: &mut Instance,
    req: Request,
    reply: std::sync::mpsc::Sender<Response>,
    hub: Option<&mut PeerHub>,
    notice: &mut dyn FnMut(String),
) {
    match (req, hub) {
        (Request::Talk { down }, Some(hub)) => {
            let _ = reply.send(match hub.call() {
                Some(call) => {
                    call.press(down);
                    notice(format!(
                        "microphone {} by a command",
                        if down { "open" } else { "closed" }
                    ));
                    Response::Ok {
                        message: if down { "talking" } else { "microphone closed" }.into(),
                    }
                }
                None => Response::failure(
                    "no call here: this jhack relays voice (run `jhack serve --call` to talk from it)",
                ),
            });
        }
        (Request::Engine, Some(hub)) => {
            let talking = hub.call().is_some_and(|c| c.pressed());
            let _ = reply.send(engine_answer(instance, talking));
        }
        (Request::Peers, Some(hub)) => {
            let _ = reply.send(Response::Peers { peers: hub.peers() });
        }
        (
            Request::PlayOn {
                target,
                peers,
                local,
                gain_db,
            },
            Some(hub),
        ) => {
            let meta = match find(instance, &target) {
                Ok(m) => m,
                Err(e) => {
                    let _ = reply.send(error(&e));
                    return;
                }
            };
            if local && let Err(e) = instance.play(&meta.id, gain_db) {
                let _ = reply.send(error(&e));
                return;
            }
            notice(format!(
                "played \"{}\" on {} by a command",
                meta.name,
                peers.join(", ")
            ));
            hub.play_on(&meta, &peers, gain_db, reply);
        }
        (Request::Sync { peer, all }, Some(hub)) => hub.sync_now(&peer, all, reply),
        (Request::Browse { peer }, Some(hub)) => hub.browse_now(&peer, reply),
        (Request::Copy { target, name }, Some(hub)) => match find(instance, &target) {
            // A shared sound whose file is elsewhere: copied once it arrives.
            Ok(m) if instance.remote().contains(&m.id) && instance.shared_by(&m.id).is_some() => {
                hub.copy_when_here(instance, &m, name, reply);
            }
            Ok(_) => {
                let _ = reply.send(answer(instance, Request::Copy { target, name }, notice));
            }
            Err(e) => {
                let _ = reply.send(error(&e));
            }
        },
        (Request::Play { target, gain_db }, Some(hub)) => {
            // A remote sound streams from a mirror while its file arrives.
            let r = play_command(instance, &target, gain_db, notice, |i, m| {
                if i.remote().contains(&m.id) {
                    hub.play_here(i, &m.id, gain_db, std::time::Instant::now())
                        .map(|()| " (its file is arriving)")
                        .map_err(|e| Box::new(Response::failure(e)))
                } else {
                    i.play(&m.id, gain_db)
                        .map(|_| "")
                        .map_err(|e| Box::new(error(&e)))
                }
            });
            let _ = reply.send(r);
        }
        (req, hub) => {
            let _ = reply.send(answer(instance, req, notice));
            if let Some(hub) = hub {
                hub.library_changed();
            }
        }
    }
}

/// The engine's answer: what it runs on, the devices, the recording.
fn engine_answer(instance: &Instance, talking: bool) -> Response {
    Response::Engine {
        info: instance.status().info,
        devices: instance.devices(),
        recording_ms: instance.recording_for().map(|d| d.as_millis() as u64),
        talking,
    }
}

/// A key first ("1" is the sound on key 1), then a name or an id prefix.
fn find(instance: &Instance, target: &str) -> Result<crate::domain::SoundMeta, InstanceError> {
    match instance.sound_for_key(target) {
        Some(m) => Ok(m.clone()),
        None => instance.resolve(target),
    }
}

/// Answers one request; `notice` receives a line for the owner's log (or message
/// line) when the request changed something.
pub fn answer(instance: &mut Instance, req: Request, notice: &mut dyn FnMut(String)) -> Response {
    match req {
        Request::Peers | Request::PlayOn { .. } | Request::Sync { .. } | Request::Browse { .. } => {
            Response::failure("this jhack is not on the network")
        }
        Request::Talk { .. } => Response::failure("no call here: this jhack is not on the network"),
        Request::Engine => engine_answer(instance, false),
        Request::Switch { output, input } => {
            if output.is_none() && input.is_none() {
                return Response::bad_input("switch: name an output or an input device");
            }
            let spec = |s: &Option<String>| s.as_deref().map(crate::audio::DeviceSpec::parse);
            match instance.switch_device(spec(&output), spec(&input)) {
                Ok(()) => {
                    let info = instance.status().info;
                    let now = match &info.input {
                        Some(i) if input.is_some() => {
                            format!("now on {} and {}", info.output.device, i.device)
                        }
                        _ => format!("now on {}", info.output.device),
                    };
                    notice(format!("{now} by a command"));
                    Response::Ok { message: now }
                }
                Err(e) => error(&e),
            }
        }
        Request::RecordStart => match instance.start_recording() {
            Ok(()) => {
                notice("recording by a command".into());
                Response::Ok {
                    message: "recording".into(),
                }
            }
            Err(e) => error(&e),
        },
        Request::RecordStop => match instance.stop_recording() {
            Ok(path) => Response::Recorded {
                take: path.and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())),
            },
            Err(e) => error(&e),
        },
        Request::RecordSave { take, name } => {
            let name = name.trim();
            if name.is_empty() {
                return Response::bad_input("a recording needs a name");
            }
            match instance
                .take_path(&take)
                .and_then(|p| instance.save_recording(&p, name))
            {
                Ok(m) => {
                    notice(format!("saved a recording as \"{}\" by a command", m.name));
                    Response::Sound { sound: m }
                }
                Err(e) => error(&e),
            }
        }
        Request::RecordDiscard { take } => match instance.take_path(&take) {
            Ok(p) => {
                let _ = std::fs::remove_file(p);
                Response::Ok {
                    message: "recording discarded".into(),
                }
            }
            Err(e) => error(&e),
        },
        Request::Edit {
            target,
            name,
            key,
            no_key,
            gain_db,
            tags,
            untags,
        } => {
            let change = crate::library::Edit {
                name,
                key: if no_key { Some(None) } else { key.map(Some) },
                gain_db,
                add_tags: tags,
                remove_tags: untags,
            };
            match find(instance, &target).and_then(|m| instance.edit(&m.id, &change)) {
                Ok(m) => {
                    notice(format!("edited \"{}\" by a command", m.name));
                    Response::Sound { sound: m }
                }
                Err(e) => error(&e),
            }
        }
        Request::Remove { target } => match find(instance, &target) {
            Ok(m) => match instance.remove(&m.id) {
                Ok(_) => {
                    notice(format!("removed \"{}\" by a command", m.name));
                    Response::Ok {
                        message: format!("removed {} ({})", m.name, m.id.short()),
                    }
                }
                Err(e) => error(&e),
            },
            Err(e) => error(&e),
        },
        Request::Ping => Response::Pong {
            pid: std::process::id(),
        },
        Request::Stop => {
            instance.stop_all();
            notice("stopped by a command".into());
            Response::Ok {
                message: "stopped".into(),
            }
        }
        Request::List => Response::Sounds {
            sounds: instance.sounds().to_vec(),
            not_here: instance.remote().iter().copied().collect(),
            pinned: instance.pinned().iter().copied().collect(),
            owners: instance.owners(),
        },
        Request::Copy { target, name } => match find(instance, &target)
            .and_then(|m| instance.copy_shared(&m.id, name.as_deref()))
        {
            Ok(m) => {
                notice(format!(
                    "copied \"{}\" into this library by a command",
                    m.name
                ));
                Response::Sound { sound: m }
            }
            Err(e) => error(&e),
        },
        Request::Pin { target, on } => match find(instance, &target) {
            Ok(m) => match instance.set_pin(&m.id, on) {
                Ok(()) => {
                    notice(format!(
                        "{} \"{}\" by a command",
                        if on { "pinned" } else { "unpinned" },
                        m.name
                    ));
                    Response::Ok {
                        message: pin_message(&m.name, on, instance.library().has_file(&m.id)),
                    }
                }
                Err(e) => error(&e),
            },
            Err(e) => error(&e),
        },
        Request::Play { target, gain_db } => {
            play_command(instance, &target, gain_db, notice, |i, m| {
                i.play(&m.id, gain_db)
                    .map(|_| "")
                    .map_err(|e| Box::new(error(&e)))
            })
        }
        Request::Import {
            paths,
            name,
            tags,
            key,
            gain_db,
        } => {
            let opts = ImportOptions {
                name,
                tags,
                key,
                gain_db,
            };
            match instance.import(&paths, &opts) {
                Ok(s) => {
                    if s.imported > 0 {
                        notice(format!("imported {} sounds by a command", s.imported));
                    }
                    Response::Imported {
                        imported: s.imported,
                        already_present: s.already_present,
                        failed: s.failed,
                    }
                }
                Err(e) => error(&e),
            }
        }
    }
}

/// A play asked for by a command: the gain checked, the sound found, `play` starts
/// it (giving what to add to the answer), and the owner's log told.
fn play_command(
    instance: &mut Instance,
    target: &str,
    gain_db: f32,
    notice: &mut dyn FnMut(String),
    play: impl FnOnce(&mut Instance, &crate::domain::SoundMeta) -> Result<&'static str, Box<Response>>,
) -> Response {
    if !gain_db.is_finite() || gain_db > 40.0 {
        return Response::bad_input(format!("gain {gain_db} dB is out of range"));
    }
    let m = match find(instance, target) {
        Ok(m) => m,
        Err(e) => return error(&e),
    };
    match play(instance, &m) {
        Ok(how) => {
            notice(format!("played \"{}\" by a command{how}", m.name));
            Response::Ok {
                message: format!("playing {}{how}", m.name),
            }
        }
        Err(r) => *r,
    }
}

/// What `jhack pin` / `jhack unpin` says.
pub fn pin_message(name: &str, on: bool, here: bool) -> String {
    match (on, here) {
        (true, true) => format!("pinned {name}: its file stays here"),
        (true, false) => format!(
            "pinned {name}: its file is fetched from a mirror while a screen or `jhack serve` runs here"
        ),
        (false, _) => format!("unpinned {name}: its file may be evicted (unless bound to a key)"),
    }
}

fn error(e: &InstanceError) -> Response {
    let bad_input = matches!(
        e,
        InstanceError::Lookup { .. }
            | InstanceError::Unplayable { .. }
            | InstanceError::KeyTaken { .. }
            | InstanceError::NotOurs { .. }
    );
    if bad_input {
        Response::bad_input(chain(e))
    } else {
        Response::failure(chain(e))
    }
}
