//! What a command knows before it starts: the home, the configuration laid over the
//! defaults (command-line options win), and the library, opened on demand.
//!
//! Opening the library takes the home lock; the first open of a new library imports
//! the starter pack and binds it to keys 1–9.

use std::path::Path;

use super::args::GlobalArgs;
use super::error::{CliError, chain};
use crate::audio::{DeviceSpec, EngineConfig};
use crate::config::Config;
use crate::home::Home;
use crate::library::{Library, LibraryError};

/// The home and configuration of this run.
pub struct Context {
    /// Where state lives.
    pub home: Home,
    /// The configuration in effect.
    pub config: Config,
}

impl Context {
    /// Resolves the home and reads its config file (missing: the defaults).
    pub fn load(g: &GlobalArgs) -> Result<Context, CliError> {
        let home = Home::resolve(g.home.as_deref()).map_err(|e| CliError::failure(chain(&e)))?;
        let config = Config::load(&home.config_file()).map_err(|e| CliError::input(chain(&e)))?;
        Ok(Context { home, config })
    }

    /// The engine settings: command-line options over the config file.
    pub fn engine_config(&self, g: &GlobalArgs) -> EngineConfig {
        let a = &self.config.audio;
        let spec =
            |cli: &Option<String>, cfg: &str| DeviceSpec::parse(cli.as_deref().unwrap_or(cfg));
        EngineConfig {
            output: spec(&g.output_device, &a.output_device),
            input: spec(&g.input_device, &a.input_device),
            period_frames: g.buffer.unwrap_or(a.buffer_frames),
            voice_capacity: g.voices.map_or(a.voices, |v| v as usize),
            no_audio: g.no_audio,
            null_speed: g.null_speed,
            ..EngineConfig::default()
        }
    }

    /// Opens the library (taking the home lock). A new library gets the starter pack
    /// (again, after a first run that was cut short: sounds already there are kept).
    /// How a node of this home runs: its trust store, partial transfers and rate
    /// limits from the home and its configuration.
    pub fn node_config(
        &self,
        listen: Option<std::net::SocketAddr>,
        dial: bool,
    ) -> crate::net::NodeConfig {
        let net = &self.config.net;
        crate::net::NodeConfig {
            listen,
            name: net.display_name(),
            trust_file: self.home.trust_file(),
            partial_dir: self.home.data_dir().join("partial"),
            dial,
            triggers_per_second: net.triggers_per_second,
            trigger_burst: net.trigger_burst,
        }
    }

    pub fn open_library(&self) -> Result<Library, CliError> {
        self.home
            .create()
            .map_err(|e| CliError::failure(chain(&e)))?;
        let lib = Library::open(&self.home.library_dir(), &self.home.lock_file())
            .map_err(library_error)?;
        if lib.was_created() {
            match crate::app::starter::import_starter_pack(&lib) {
                Ok(n) => {
                    tracing::info!(
                        "new library in {}: added {n} starter sounds, keys 1-9",
                        lib.dir().display()
                    );
                    if let Err(e) = lib.finish_setup() {
                        tracing::warn!("the library's setup could not be recorded: {}", chain(&e));
                    }
                }
                Err(e) => tracing::warn!("the starter sounds could not be added: {}", chain(&e)),
            }
        }
        Ok(lib)
    }
}

/// Where a command's library work goes: the library itself, or the running jhack
/// that owns the home (through its control socket).
pub enum Owner {
    /// This process holds the library.
    Here(Box<Library>),
    /// Another process does; requests go to its socket.
    Running(std::path::PathBuf),
}

impl Context {
    /// The library, or — when another jhack holds the home and listens on its
    /// control socket — that process. A holder without a socket is the lock error.
    pub fn library_or_owner(&self) -> Result<Owner, CliError> {
        match self.open_library() {
            Ok(lib) => Ok(Owner::Here(Box::new(lib))),
            Err(e) => {
                let socket = self.home.socket_path();
                let ping = crate::app::control::Request::Ping;
                match crate::app::control::request(&socket, &ping, ping.suggested_timeout()) {
                    Ok(crate::app::control::Response::Pong { .. }) => Ok(Owner::Running(socket)),
                    _ => Err(e),
                }
            }
        }
    }
}

/// Sends `req` to the owner at `socket`; an error reply becomes the command's error.
pub fn ask_owner(
    socket: &Path,
    req: &crate::app::control::Request,
) -> Result<crate::app::control::Response, CliError> {
    use crate::app::control::Response;
    match crate::app::control::request(socket, req, req.suggested_timeout()) {
        Ok(Response::Error { message, status }) => Err(CliError {
            status: if status == 2 { 2 } else { 1 },
            message,
        }),
        Ok(r) => Ok(r),
        Err(e) => Err(CliError::failure(chain(&e))),
    }
}

/// A library failure as a command's error: bad names and keys are bad input (2),
/// everything else (the lock held, the disk, the database) a failure (1).
pub fn library_error(e: LibraryError) -> CliError {
    use crate::library::StoreError as S;
    match &e {
        LibraryError::Invalid(_)
        | LibraryError::Store(S::NameTaken(_) | S::KeyTaken { .. } | S::Missing(_)) => {
            CliError::input(chain(&e))
        }
        _ => CliError::failure(chain(&e)),
    }
}

/// Whether a target that is neither a file nor a library sound was meant as a file
/// (it has a directory part or an extension), so "no such file" is the right error.
pub fn looks_like_path(target: &Path) -> bool {
    target.components().count() > 1 || target.extension().is_some()
}
