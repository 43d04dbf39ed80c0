//! The command-line front end: parses arguments, sets up logging, runs one command and
//! turns its outcome into an exit status and at most one `jhack: error:` line.
//!
//! Commands here only validate input and call into `app` and the subsystems; they
//! hold no audio logic of their own.

pub mod args;
mod devices;
pub mod error;
mod play;
mod record;
mod session;
mod tone;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use error::CliError;

/// Runs the program with the process's arguments; returns the exit status.
pub fn main() -> ExitCode {
    crate::media::guard::install_quiet_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let status = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(status);
        }
    };
    session::init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jhack: error: {}", e.message);
            ExitCode::from(e.status)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let g = &cli.global;
    match cli.command {
        None => {
            use clap::CommandFactory;
            Cli::command().print_help().map_err(CliError::failure)?;
            Ok(())
        }
        Some(Command::Devices { json }) => devices::run(json),
        Some(Command::Play(args)) => play::run(g, &args),
        Some(Command::Tone {
            freq,
            duration,
            amplitude,
        }) => tone::run(g, freq, duration, amplitude),
        Some(Command::Record {
            file,
            duration,
            channels,
        }) => record::run(g, &file, duration, channels),
        Some(Command::Wire { duration }) => wire::run(g, duration),
    }
}
