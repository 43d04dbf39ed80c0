//! The command-line front end: parses arguments, sets up logging, runs one command and
//! turns its outcome into an exit status and at most one `jhack: error:` line.
//!
//! Commands here only validate input and call into `app` and the subsystems; they
//! hold no audio logic of their own.

#[macro_use]
mod out;
pub mod args;
mod check;
mod context;
mod devices;
mod edit;
pub mod error;
mod import;
mod list;
mod peer;
mod play;
mod play_remote;
mod record;
mod serve;
mod session;
mod sync;
mod talk;
mod tone;
mod tui;
mod tunnel;
mod wire;

use clap::Parser;

use args::{Cli, Command};
use error::CliError;

/// Runs the program with the process's arguments; returns the exit status. Every
/// command has closed what it opened (the library, the node, the terminal) when this
/// returns.
pub fn main() -> u8 {
    crate::media::guard::install_quiet_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let status = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return status;
        }
    };
    session::init_logging();
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            // An empty message: the command has already reported each failure.
            if !e.message.is_empty() {
                eprintln!("jhack: error: {}", e.message);
            }
            e.status
        }
    }
}

/// `jhack stop`: through the running jhack's control socket.
fn stop(g: &args::GlobalArgs) -> Result<(), CliError> {
    let ctx = context::Context::load(g)?;
    let socket = ctx.home.socket_path();
    let req = crate::app::control::Request::Stop;
    use crate::app::control::{ControlError, Response};
    match crate::app::control::request(&socket, &req, req.suggested_timeout()) {
        Ok(Response::Error { message, status }) => Err(CliError { status, message }),
        Ok(_) => Ok(()),
        Err(ControlError::NoServer { .. }) => Err(CliError::failure(format!(
            "no jhack is running on {}",
            ctx.home.data_dir().display()
        ))),
        Err(e) => Err(CliError::failure(error::chain(&e))),
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    match cli.command {
        None => tui::run(g, None),
        Some(Command::Tui { stats_file }) => tui::run(g, stats_file),
        Some(Command::Devices { json }) => devices::run(json),
        Some(Command::Play(args)) => play::run(g, &args),
        Some(Command::Tone {
            freq,
            duration,
            amplitude,
        }) => tone::run(g, freq, duration, amplitude),
        Some(Command::Record {
            file,
            import,
            duration,
            channels,
        }) => record::run(g, file.as_deref(), import.as_deref(), duration, channels),
        Some(Command::Wire { duration }) => wire::run(g, duration),
        Some(Command::Import(args)) => import::run(g, &args),
        Some(Command::List { json, peer }) => list::run(g, json, peer.as_deref()),
        Some(Command::Copy { sound, name }) => edit::copy(g, &sound, name.as_deref()),
        Some(Command::Share { tag, with }) => peer::share(g, &tag, &with, true),
        Some(Command::Unshare { tag, with }) => peer::share(g, &tag, &with, false),
        Some(Command::Edit(args)) => edit::edit(g, &args),
        Some(Command::Rm { sound }) => edit::rm(g, &sound),
        Some(Command::Pin { sound }) => edit::pin(g, &sound, true),
        Some(Command::Unpin { sound }) => edit::pin(g, &sound, false),
        Some(Command::Check) => check::run(g),
        Some(Command::Stop) => stop(g),
        Some(Command::Id) => peer::id(g),
        Some(Command::Peer(c)) => peer::run(g, c),
        Some(Command::Serve { listen, call }) => serve::run(g, listen.as_deref(), call),
        Some(Command::Talk(args)) => talk::run(g, &args),
        Some(Command::Tunnel { listen, command }) => tunnel::run(&listen, &command),
        Some(Command::TunnelEnd { to }) => tunnel::end(g, to.as_deref()),
        Some(Command::Sync { peer, all, json }) => sync::run(g, &peer, all, json),
    }
}
