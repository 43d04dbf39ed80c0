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
    match (req, hub) {
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
        (Request::Sync { peer }, Some(hub)) => hub.sync_now(&peer, reply),
        (Request::Play { target, gain_db }, Some(hub))
            if gain_db.is_finite()
                && gain_db <= 40.0
                && find(instance, &target).is_ok_and(|m| !instance.library().has_file(&m.id)) =>
        {
            // A remote sound: it streams from a mirror while its file arrives.
            let r = find(instance, &target)
                .map_err(|e| chain(&e))
                .and_then(|m| {
                    hub.play_here(instance, &m.id, gain_db, std::time::Instant::now())
                        .map(|()| m)
                });
            let _ = reply.send(match r {
                Ok(m) => {
                    notice(format!(
                        "played \"{}\" by a command (fetching its file)",
                        m.name
                    ));
                    Response::Ok {
                        message: format!("playing {} (its file is arriving from a mirror)", m.name),
                    }
                }
                Err(e) => Response::failure(e),
            });
        }
        (req, hub) => {
            let _ = reply.send(answer(instance, req, notice));
            if let Some(hub) = hub {
                hub.library_changed();
            }
        }
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
        Request::Peers | Request::PlayOn { .. } | Request::Sync { .. } => {
            Response::failure("this jhack is not on the network")
        }
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
            not_here: instance
                .sounds()
                .iter()
                .filter(|m| !instance.library().has_file(&m.id))
                .map(|m| m.id)
                .collect(),
            pinned: instance.pinned().iter().copied().collect(),
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
            if !gain_db.is_finite() || gain_db > 40.0 {
                return Response::bad_input(format!("gain {gain_db} dB is out of range"));
            }
            match find(instance, &target) {
                Ok(m) => match instance.play(&m.id, gain_db) {
                    Ok(_) => {
                        notice(format!("played \"{}\" by a command", m.name));
                        Response::Ok {
                            message: format!("playing {}", m.name),
                        }
                    }
                    Err(e) => error(&e),
                },
                Err(e) => error(&e),
            }
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
    );
    if bad_input {
        Response::bad_input(chain(e))
    } else {
        Response::failure(chain(e))
    }
}
