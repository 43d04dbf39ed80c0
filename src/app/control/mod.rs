//! The control socket: how other `jhack` invocations act through the one process that
//! owns a home (the interactive TUI, or a headless server).
//!
//! The owner binds a Unix socket in the home (mode 0600) with [`ControlServer`], and
//! answers each [`Request`] it receives on a channel; other invocations, refused the
//! home lock, send theirs with [`request`]. The socket is private to the user: this
//! module must never make it reachable by anyone else, never trust what arrives on it
//! (every request is size-capped, time-limited and validated, and a bad one costs only
//! its own connection), and never act on a request itself: it only carries requests
//! to the owner and replies back.
//!
//! # Protocol
//!
//! Newline-delimited JSON over a stream socket. Each line is one object with a version
//! field `"v"` ([`VERSION`]) and a `"type"`:
//!
//! ```text
//! {"v":1,"type":"play","target":"airhorn","gain_db":-3.0}
//! {"v":1,"type":"stop"}
//! {"v":1,"type":"import","paths":["/abs/a.wav"],"name":null,"tags":["fx"],"key":"a","gain_db":0.0}
//! {"v":1,"type":"list"}
//! {"v":1,"type":"ping"}
//! ```
//!
//! and each reply is one line, in the same envelope:
//!
//! ```text
//! {"v":1,"type":"ok","message":"playing airhorn"}
//! {"v":1,"type":"sounds","sounds":[{ ...SoundMeta... }]}
//! {"v":1,"type":"imported","imported":1,"already_present":0,"failed":["/abs/b.txt: not audio"]}
//! {"v":1,"type":"error","message":"no sound named foo","status":2}
//! {"v":1,"type":"pong","pid":4242}
//! ```
//!
//! A connection may carry several requests, one after another: the server answers
//! each before it reads the next, and closes when the client closes its side. (The
//! [`request`] client sends one and half-closes.) A request line is at most
//! [`MAX_REQUEST_LINE`] bytes; its final newline may be left out if the client then
//! closes its writing side. Fields with defaults (`gain_db`, `name`, `tags`, `key`)
//! may be omitted; unknown fields are refused. Paths in `import` must be absolute:
//! the client resolves them against its own working directory before sending.
//!
//! A request the server itself cannot accept (malformed JSON, an unknown type or
//! field, a wrong or missing version, an over-long line, an invalid value, or no
//! complete line within the read timeout) gets an `error` reply and the connection
//! is closed. Replies from the owner, errors included, keep the connection open.
//! In `error`, `status` is the exit status the client should end with: 2 for bad
//! input, 1 for other failures.

mod client;
mod protocol;
mod server;

#[cfg(test)]
mod tests;

pub use client::{ControlError, request};
pub use protocol::{MAX_REQUEST_LINE, MAX_RESPONSE_LINE, Request, Response, VERSION};
pub use server::{Call, ControlServer, Limits};

/// Binds the control socket at `path` and forwards every call into the owner's own
/// event queue as `wrap(call)`, from a thread of its own (it ends with the queue).
pub fn bind_forwarding<E: Send + 'static>(
    path: &std::path::Path,
    events: std::sync::mpsc::Sender<E>,
    wrap: fn(Call) -> E,
) -> Result<ControlServer, String> {
    let (tx, rx) = std::sync::mpsc::channel::<Call>();
    let server = ControlServer::bind(path, tx).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::Builder::new()
        .name("jhack-control".into())
        .spawn(move || {
            for call in rx {
                if events.send(wrap(call)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("control thread: {e}"))?;
    Ok(server)
}
