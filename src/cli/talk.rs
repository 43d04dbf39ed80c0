//! `jhack talk P [P…]`: the intercom without a screen (a server with a microphone, or
//! a script). It owns the home like `serve`, listens and keeps connections to its
//! trusted peers, sends our voice to the peers named and plays whoever is allowed to
//! talk to us, both ways at once, until Ctrl-C or `--duration`. A peer that refuses
//! our voice is named with the reason; `--stats` prints the call's figures at exit.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use super::args::{GlobalArgs, TalkArgs};
use super::context::Context;
use super::error::{CliError, chain};
use super::session::interrupt_flag;
use crate::app::call::{Call, CallSettings, VoiceInbox};
use crate::net::{Identity, NetEvent, Node, PeerId};
use crate::voice::codec::{CodecConfig, Profile};
use crate::voice::gate::TalkMode;

/// How long the peers have to come online before the call starts anyway.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

fn settings(args: &TalkArgs) -> Result<CallSettings, CliError> {
    let profile = match args.profile.as_str() {
        "low-delay" => Profile::LowDelay,
        "robust" => Profile::Robust,
        p => {
            return Err(CliError::input(format!(
                "--profile: \"{p}\" is neither low-delay nor robust"
            )));
        }
    };
    let frame = CodecConfig::frame_for_ms(args.frame).ok_or_else(|| {
        CliError::input(format!(
            "--frame: {} ms is not one of 2.5, 5, 10, 20",
            args.frame
        ))
    })?;
    let mode = if args.ptt {
        TalkMode::PushToTalk
    } else if args.vad {
        TalkMode::Activity {
            threshold_db: args.vad_threshold,
            hang_ms: 300,
        }
    } else {
        TalkMode::Open
    };
    let mut s = CallSettings::new(profile, frame, mode);
    if let Some(c) = args.copies {
        if c > 2 {
            return Err(CliError::input("--copies: at most 2"));
        }
        s.copies = c;
    }
    s.talk = !args.listen_only;
    Ok(s)
}

pub fn run(g: &GlobalArgs, args: &TalkArgs) -> Result<(), CliError> {
    let settings = settings(args)?;
    let ctx = Context::load(g)?;
    let listen = match &args.listen {
        Some(a) => a.parse().map_err(|_| {
            CliError::input(format!(
                "--listen: \"{a}\" is not an address and port, e.g. 0.0.0.0:7355"
            ))
        })?,
        None => ctx.config.net.listen_addr().map_err(CliError::input)?,
    };
    // Owning the library is owning the home: no screen or serve listens meanwhile.
    let lib = ctx.open_library()?;
    let mut engine_cfg = ctx.engine_config(g);
    if g.buffer.is_none() {
        engine_cfg.period_frames =
            call_period(settings.codec.frame_samples, engine_cfg.period_frames);
    }
    let period = engine_cfg.period_frames;
    let engine = Arc::new(crate::audio::engine::Engine::start(engine_cfg)?);
    let interrupted = interrupt_flag();
    let (tx, rx) = mpsc::channel::<NetEvent>();
    let sink = crate::net::channel_sink(tx);
    let me = Identity::load_or_create(&ctx.home.identity_dir())
        .map_err(|e| CliError::failure(chain(&e)))?;
    let cfg = ctx.node_config(Some(listen), true);
    let inbox = VoiceInbox::new();
    let node = Arc::new(
        Node::start_with(
            me,
            cfg,
            Arc::new(lib.blob_locator()),
            sink,
            vec![inbox.feature()],
        )
        .map_err(|e| CliError::failure(chain(&e)))?,
    );
    let mut peers: Vec<(PeerId, String)> = Vec::new();
    for q in &args.peers {
        let p = node.find(q).map_err(|e| CliError::input(chain(&e)))?;
        peers.push((p.id, p.name));
    }
    // Wait for the peers (they may be dialling us, or we them).
    let deadline = Instant::now() + CONNECT_WAIT;
    while Instant::now() < deadline
        && !interrupted.load(Ordering::Relaxed)
        && !peers
            .iter()
            .all(|(id, _)| node.speaks(id, crate::app::call::FEATURE))
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    for (id, name) in &peers {
        if !node.speaks(id, crate::app::call::FEATURE) {
            let why = node
                .last_error(id)
                .unwrap_or_else(|| "not connected yet".into());
            eprintln!("jhack: {name} is not reachable yet ({why}); talking once it is");
        }
    }
    let ids: Vec<PeerId> = peers.iter().map(|(id, _)| *id).collect();
    let call = Call::start(engine.clone(), node.clone(), &inbox, ids, settings.clone())
        .map_err(CliError::failure)?;
    eprintln!(
        "jhack: talking with {} ({}, {} ms frames, {period}-frame periods{}); Ctrl-C stops",
        peers
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        settings.codec.profile.name(),
        f64::from(settings.codec.frame_samples) / 48.0,
        if settings.talk {
            ""
        } else {
            ", listening only"
        }
    );
    if args.ptt {
        spawn_latch(call.toggler());
    }
    let end = args
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d.max(0.0)));
    let mut refused = Vec::new();
    while !interrupted.load(Ordering::Relaxed) && end.is_none_or(|e| Instant::now() < e) {
        match rx.recv_timeout(Duration::from_millis(50)) {
            // Listening only, a refusal is of our note that we joined: we still
            // hear whoever may talk to us.
            Ok(NetEvent::Denied { name, message, .. }) if !settings.talk => {
                eprintln!("jhack: {name} takes no voice from us ({message}); listening on");
            }
            Ok(NetEvent::Denied { name, message, .. }) => {
                eprintln!("jhack: error: {name} refused our voice: {message}");
                if !refused.contains(&name) {
                    refused.push(name);
                }
                if refused.len() == peers.len() {
                    break;
                }
            }
            Ok(NetEvent::PeerUp { name, .. }) => eprintln!("jhack: {name} is online"),
            Ok(NetEvent::PeerDown { name, reason, .. }) => {
                eprintln!("jhack: {name} went offline: {reason}")
            }
            Ok(NetEvent::Refused { reason, .. }) => eprintln!("jhack: {reason}"),
            _ => {}
        }
    }
    let stats = call.stats();
    call.stop();
    if args.stats {
        let text = serde_json::to_string(&stats).map_err(|e| CliError::failure(e.to_string()))?;
        outln!("{text}");
    }
    if let Ok(n) = Arc::try_unwrap(node) {
        n.shutdown();
    }
    if !refused.is_empty() && refused.len() == peers.len() {
        return Err(CliError::input(format!(
            "{} refused our voice (no voice permission there)",
            refused.join(", ")
        )));
    }
    Ok(())
}

/// Enter on stdin toggles the microphone.
fn spawn_latch(toggle: impl Fn() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("jhack-ptt".into())
        .spawn(move || {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                toggle();
                line.clear();
            }
        });
}

/// Frames of this many samples (5 ms at 48 kHz) or fewer get short device periods.
const SHORT_FRAME: u32 = 240;
/// The device period a call with short frames asks for: 128 frames, 2.7 ms at 48 kHz.
const SHORT_PERIOD: u32 = 128;

/// The device period for a call with `frame_samples`-sample frames, where `configured`
/// would be asked for otherwise (`--buffer` overrides both). A frame is complete only
/// with the capture period that holds its last sample: with 256-frame periods a 5 ms
/// frame waits up to 5.3 ms for it, as long again as the frame, so a call that chose
/// short frames for their delay asks for periods no longer than about half of one.
fn call_period(frame_samples: u32, configured: u32) -> u32 {
    if frame_samples <= SHORT_FRAME {
        configured.min(SHORT_PERIOD)
    } else {
        configured
    }
}

#[cfg(test)]
mod period_tests {
    use super::*;

    #[test]
    fn short_frames_ask_for_short_periods_and_never_longer_ones() {
        assert_eq!(
            call_period(480, 256),
            256,
            "10 ms frames keep the configured period"
        );
        assert_eq!(call_period(960, 512), 512);
        assert_eq!(call_period(240, 256), 128, "5 ms frames: 2.7 ms periods");
        assert_eq!(call_period(120, 1024), 128);
        assert_eq!(
            call_period(240, 64),
            64,
            "a shorter configured period stays"
        );
    }
}
