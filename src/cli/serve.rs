//! `jhack serve [--listen ADDR]`: a headless peer. It owns the home like the screen
//! does (library, control socket), listens for its trusted peers and keeps
//! connections to those with addresses, plays what they trigger (on the null backend
//! when there is no sound device, so a machine without a sound card can still hold a
//! library), and writes what happens to stderr, one line each, until it is stopped.
//! With `--call` it takes part in calls with its own microphone and speaker (the
//! machine a person sits at, driven by a screen attached over SSH) instead of
//! relaying voice between its peers.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use super::args::GlobalArgs;
use super::context::Context;
use super::error::{CliError, chain};
use super::session::interrupt_flag;
use crate::app::control::Call;
use crate::app::instance::Instance;
use crate::app::peers::{HubEvent, HubOptions, PeerHub, poster};

enum Event {
    Hub(HubEvent),
    Control(Call),
}

pub fn run(g: &GlobalArgs, listen: Option<&str>, call: bool) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let listen = match listen {
        Some(a) => a.parse().map_err(|_| {
            CliError::input(format!(
                "--listen: \"{a}\" is not an address and port, e.g. 0.0.0.0:7355"
            ))
        })?,
        None => ctx.config.net.listen_addr().map_err(CliError::input)?,
    };
    let interrupted = interrupt_flag();
    let lib = ctx.open_library()?;
    let mut engine_cfg = ctx.engine_config(g);
    let recordings = ctx.home.data_dir().join("recordings");
    let mut instance = match Instance::start(
        ctx.config.clone(),
        engine_cfg.clone(),
        lib,
        recordings.clone(),
    ) {
        Ok(i) => i,
        Err(e) => {
            // No usable device: serve on the silent backend rather than not at all.
            eprintln!(
                "jhack: no audio device ({}); serving on the silent null backend",
                chain(&e)
            );
            engine_cfg.no_audio = true;
            let lib = ctx.open_library()?;
            Instance::start(ctx.config.clone(), engine_cfg, lib, recordings)
                .map_err(|e| CliError::failure(chain(&e)))?
        }
    };
    let (tx, rx) = mpsc::channel::<Event>();
    let _control =
        crate::app::control::bind_forwarding(&ctx.home.socket_path(), tx.clone(), Event::Control)
            .map_err(CliError::failure)?;
    let post = poster(tx.clone(), Event::Hub);
    let opts = HubOptions {
        listen: Some(listen),
        dial: ctx.config.net.connect,
        any_port_if_busy: false,
        voice: if call {
            crate::app::peers::VoiceRole::push_to_talk()
        } else {
            crate::app::peers::VoiceRole::Relay
        },
        sync: true,
    };
    let mut hub = PeerHub::start(&ctx.home, &instance, opts, post).map_err(CliError::failure)?;
    let addr = hub
        .node()
        .local_addr()
        .map_or_else(|| listen.to_string(), |a| a.to_string());
    eprintln!(
        "jhack: serving as {} on {addr} (UDP); Ctrl-C stops",
        hub.node().id()
    );
    let mut notice = |n: String| eprintln!("jhack: {n}");
    while !interrupted.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Event::Hub(e)) => hub.handle(&mut instance, e, &mut notice),
            Ok(Event::Control(call)) => {
                crate::app::requests::dispatch(&mut instance, Some(&mut hub), call, &mut notice)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        instance.poll();
        hub.poll(&instance, &mut notice);
    }
    eprintln!("jhack: stopping");
    drop(hub);
    Ok(())
}
