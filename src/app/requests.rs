//! What the owner of a home does with each control-socket request: play, stop,
//! import and list through its running instance. Shared by the interface and the
//! headless server, so both answer alike.

use super::control::{Request, Response};
use super::import::ImportOptions;
use super::instance::{Instance, InstanceError};
use crate::domain::chain;

/// Answers one request; `notice` receives a line for the owner's log (or message
/// line) when the request changed something.
pub fn answer(instance: &mut Instance, req: Request, notice: &mut dyn FnMut(String)) -> Response {
    match req {
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
        },
        Request::Play { target, gain_db } => {
            if !gain_db.is_finite() || gain_db > 40.0 {
                return Response::bad_input(format!("gain {gain_db} dB is out of range"));
            }
            // A key first ("1" is the sound on key 1), then a name or an id prefix.
            let found = match instance.sound_for_key(&target) {
                Some(m) => Ok(m.clone()),
                None => instance.resolve(&target),
            };
            match found {
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
