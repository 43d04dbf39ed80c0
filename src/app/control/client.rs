//! The client side: one request to the owning process, one reply.

use std::io::{self, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{LineError, MAX_RESPONSE_LINE, Request, Response, decode, encode, read_line};

/// Why a request got no reply.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Nothing listens at the socket (it is missing, or stale): no process owns the
    /// home, or the one that does has no control socket. The caller reports the home
    /// lock's own error instead.
    #[error("{}: no jhack is listening", path.display())]
    NoServer {
        /// The socket.
        path: PathBuf,
    },
    /// The socket could not be used.
    #[error("{}: control socket", path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The owner did not reply in time.
    #[error("{}: no reply within {:.1} s", path.display(), after.as_secs_f64())]
    Timeout {
        /// The socket.
        path: PathBuf,
        /// How long the client waited.
        after: Duration,
    },
    /// The reply was missing, too long, or not a reply of this protocol version.
    #[error("{}: bad reply: {reason}", path.display())]
    BadReply {
        /// The socket.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The request cannot be put into the protocol (a path that is not UTF-8).
    #[error("cannot send the request: {reason}")]
    BadRequest {
        /// Why.
        reason: String,
    },
}

/// Sends `req` to the server at `path` and waits at most `timeout` (overall) for its
/// reply. An error reply is `Ok(Response::Error { .. })`: the server was reached.
/// [`Request::suggested_timeout`] is a good `timeout`.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let deadline = Instant::now() + timeout;
    let line = encode(req).map_err(|e| ControlError::BadRequest {
        reason: e.to_string(),
    })?;
    let owned = || path.to_path_buf();
    let io_error = |source: io::Error| {
        if matches!(
            source.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            ControlError::Timeout {
                path: owned(),
                after: timeout,
            }
        } else {
            ControlError::Io {
                path: owned(),
                source,
            }
        }
    };
    let stream = UnixStream::connect(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            ControlError::NoServer { path: owned() }
        }
        _ => io_error(source),
    })?;
    // A zero timeout is refused by the socket; the read below honours the deadline.
    stream
        .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(io_error)?;
    // A server that refuses the connection (busy) replies and closes at once, maybe
    // before the request is written: then its reply is still there to be read.
    let written = (&stream).write_all(&line);
    // One request: say so, so the server sees the end of the connection.
    let _ = stream.shutdown(Shutdown::Write);
    let mut reader = BufReader::new(stream);
    let bad = |reason: String| ControlError::BadReply {
        path: owned(),
        reason,
    };
    let reply = read_line(&mut reader, MAX_RESPONSE_LINE, deadline);
    if let (Err(e), Err(_)) = (written, &reply) {
        return Err(io_error(e));
    }
    match reply {
        Ok(reply) => decode::<Response>(&reply).map_err(|r| bad(r.message)),
        Err(LineError::Eof) => Err(bad("the connection was closed without a reply".into())),
        Err(LineError::TooLong) => Err(bad(format!("longer than {MAX_RESPONSE_LINE} bytes"))),
        Err(LineError::TimedOut) => Err(ControlError::Timeout {
            path: owned(),
            after: timeout,
        }),
        Err(LineError::Io(e)) => Err(io_error(e)),
    }
}
