//! `jhack edit SOUND ...` and `jhack rm SOUND`: changing and removing library sounds,
//! here or through the running jhack that owns the home (changes replicate to its
//! mirrors either way).

use super::args::{EditArgs, GlobalArgs};
use super::context::{Context, Owner, ask_owner, library_error};
use super::error::CliError;
use crate::app::control::{Request, Response};
use crate::domain::SoundMeta;
use crate::library::{Edit, Library, LookupError};

/// The sound of ours `target` names, or the command's error (one shared with us
/// is refused: it is not ours to change).
pub fn find(lib: &Library, target: &str) -> Result<SoundMeta, CliError> {
    match find_any(lib, target)? {
        (m, None) => Ok(m),
        (m, Some(owner)) => Err(CliError::input(
            crate::app::instance::InstanceError::NotOurs {
                name: m.name,
                owner,
            }
            .to_string(),
        )),
    }
}

/// The sound `target` names, ours or shared with us (then with whose it is).
fn find_any(lib: &Library, target: &str) -> Result<(SoundMeta, Option<String>), CliError> {
    match lib.resolve(target) {
        Ok(m) => Ok((m, None)),
        Err(LookupError::Library(e)) => Err(library_error(e)),
        Err(e) => match lib.find_shared(target).map_err(library_error)? {
            Some((m, by)) => Ok((m, Some(by.owner_name))),
            None => Err(CliError::input(format!("{target}: {e}"))),
        },
    }
}

/// `jhack copy SOUND [--name N]`: a sound someone shares with us becomes ours, here
/// or through the running jhack that owns the home (which fetches its file first
/// when it is not here).
pub fn copy(g: &GlobalArgs, target: &str, name: Option<&str>) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let m = match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let (sound, owner) = find_any(&lib, target)?;
            if owner.is_none() {
                return Err(CliError::input(format!(
                    "{} is already in this library",
                    sound.name
                )));
            }
            lib.copy_shared(&sound.id, name)
                .map_err(|e| prefixed(&sound.name, library_error(e)))?
        }
        Owner::Running(socket) => {
            let req = Request::Copy {
                target: target.to_string(),
                name: name.map(str::to_string),
            };
            match ask_owner(&socket, &req)? {
                Response::Sound { sound } => sound,
                other => return Err(CliError::failure(format!("unexpected reply: {other:?}"))),
            }
        }
    };
    outln!("copied into this library as {} ({})", m.name, m.id.short());
    Ok(())
}

pub fn edit(g: &GlobalArgs, args: &EditArgs) -> Result<(), CliError> {
    let change = Edit {
        name: args.name.clone(),
        key: if args.no_key {
            Some(None)
        } else {
            args.key.clone().map(Some)
        },
        gain_db: args.gain,
        add_tags: args.tags.clone(),
        remove_tags: args.untags.clone(),
    };
    if change == Edit::default() {
        return Err(CliError::input(
            "nothing to change: give --name, --key, --no-key, --gain, --tag or --untag",
        ));
    }
    let ctx = Context::load(g)?;
    let m = match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let sound = find(&lib, &args.sound)?;
            lib.edit(&sound.id, &change)
                .map_err(|e| prefixed(&sound.name, library_error(e)))?
        }
        Owner::Running(socket) => {
            let req = Request::Edit {
                target: args.sound.clone(),
                name: args.name.clone(),
                key: args.key.clone(),
                no_key: args.no_key,
                gain_db: args.gain,
                tags: args.tags.clone(),
                untags: args.untags.clone(),
            };
            match ask_owner(&socket, &req)? {
                Response::Sound { sound } => sound,
                other => return Err(CliError::failure(format!("unexpected reply: {other:?}"))),
            }
        }
    };
    outln!(
        "{} ({}): key {}, gain {:+.1} dB, tags {}",
        m.name,
        m.id.short(),
        m.key.as_deref().unwrap_or("-"),
        m.gain_db,
        if m.tags.is_empty() {
            "-".to_string()
        } else {
            m.tags.join(",")
        }
    );
    Ok(())
}

pub fn rm(g: &GlobalArgs, target: &str) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let sound = find(&lib, target)?;
            lib.remove(&sound.id)
                .map_err(|e| prefixed(&sound.name, library_error(e)))?;
            outln!("removed {} ({})", sound.name, sound.id.short());
        }
        Owner::Running(socket) => {
            let req = Request::Remove {
                target: target.to_string(),
            };
            if let Response::Ok { message } = ask_owner(&socket, &req)? {
                outln!("{message}");
            }
        }
    }
    Ok(())
}

fn prefixed(name: &str, mut e: CliError) -> CliError {
    e.message = format!("{name}: {}", e.message);
    e
}

/// `jhack pin SOUND` / `jhack unpin SOUND`: keep a sound's file on this machine (or
/// let it go), here or through the running jhack that owns the home.
pub fn pin(g: &GlobalArgs, target: &str, on: bool) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let (sound, _) = find_any(&lib, target)?;
            lib.set_pin(&sound.id, on)
                .map_err(|e| prefixed(&sound.name, library_error(e)))?;
            outln!(
                "{}",
                crate::app::requests::pin_message(&sound.name, on, lib.has_file(&sound.id))
            );
        }
        Owner::Running(socket) => {
            let req = Request::Pin {
                target: target.to_string(),
                on,
            };
            if let Response::Ok { message } = ask_owner(&socket, &req)? {
                outln!("{message}");
            }
        }
    }
    Ok(())
}
