//! `jhack` / `jhack tui`: the interactive screen, owning the home (its library, its
//! control socket) until it quits.

use std::io::IsTerminal;

use super::args::GlobalArgs;
use super::context::Context;
use super::error::CliError;
use crate::app::instance::Instance;
use crate::tui::{self, RunOptions};

pub fn run(g: &GlobalArgs, stats_file: Option<std::path::PathBuf>) -> Result<(), CliError> {
    let started = std::time::Instant::now();
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Err(CliError::input(
            "the interface needs a terminal; for scripts use the commands (jhack --help)",
        ));
    }
    let ctx = Context::load(g)?;
    let lib = ctx.open_library()?;
    let instance = Instance::start(
        ctx.config.clone(),
        ctx.engine_config(g),
        lib,
        ctx.home.data_dir().join("recordings"),
    )
    .map_err(|e| CliError::failure(crate::domain::chain(&e)))?;
    let opts = RunOptions {
        log_file: ctx.home.data_dir().join("jhack.log"),
        socket: Some(ctx.home.socket_path()),
        stats_file,
        started: Some(started),
        net: Some((
            ctx.home.clone(),
            crate::app::peers::HubOptions {
                listen: Some(ctx.config.net.listen_addr().map_err(CliError::input)?),
                dial: ctx.config.net.connect,
                any_port_if_busy: true,
                voice: crate::app::peers::VoiceRole::push_to_talk(),
                sync: true,
            },
        )),
    };
    tui::run(instance, &opts).map_err(CliError::failure)
}
