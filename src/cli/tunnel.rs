//! `jhack tunnel --listen ADDR -- COMMAND…` (on the laptop) and `jhack tunnel-end`
//! (its far end, on the server): peer datagrams carried over an SSH connection when
//! only SSH gets through (see `net::tunnel`). The laptop's `peers.toml` gives the
//! server's address as ADDR; the command is the SSH line that runs `jhack
//! tunnel-end` on the server, which relays to the server's own UDP port.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};

use super::args::GlobalArgs;
use super::context::Context;
use super::error::CliError;

/// The laptop's end: listens on `listen`, runs `command`, relays until it ends.
pub fn run(listen: &str, command: &[String]) -> Result<(), CliError> {
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| CliError::input(format!("--listen {listen}: {e}")))?;
    let Some((program, args)) = command.split_first() else {
        return Err(CliError::input(
            "name the command that reaches the server, e.g. jhack tunnel --listen 127.0.0.1:7356 -- ssh server jhack tunnel-end",
        ));
    };
    let socket = UdpSocket::bind(listen)
        .map_err(|e| CliError::failure(format!("cannot listen on {listen}: {e}")))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::failure(format!("{program}: {e}")))?;
    let (Some(input), Some(output)) = (child.stdout.take(), child.stdin.take()) else {
        return Err(CliError::failure("the command's pipes did not open"));
    };
    eprintln!("jhack: tunnel: peers reach the far end through {listen} (Ctrl-C stops)");
    let relayed = crate::net::tunnel::relay(socket, None, input, output);
    let _ = child.kill();
    let status = child.wait().ok();
    match relayed {
        Ok(()) => Err(CliError::failure(format!(
            "the tunnel's command ended ({})",
            status.map_or_else(|| "no status".into(), |s| s.to_string())
        ))),
        Err(e) => Err(CliError::failure(format!("the tunnel broke: {e}"))),
    }
}

/// The server's end: relays stdin/stdout to this home's UDP port (or `to`).
pub fn end(g: &GlobalArgs, to: Option<&str>) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let to: SocketAddr = match to {
        Some(a) => a
            .parse()
            .map_err(|e| CliError::input(format!("--to {a}: {e}")))?,
        None => {
            let mut a = ctx.config.net.listen_addr().map_err(CliError::input)?;
            // Listening on every address: reach it on loopback.
            if a.ip().is_unspecified() {
                a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            a
        }
    };
    let socket = UdpSocket::bind("127.0.0.1:0")
        .map_err(|e| CliError::failure(format!("cannot open a UDP socket: {e}")))?;
    crate::net::tunnel::relay(socket, Some(to), std::io::stdin(), std::io::stdout())
        .map_err(|e| CliError::failure(format!("the tunnel broke: {e}")))
}
