//! The server side: a listener thread in the owning process, one short-lived thread
//! per connection (capped), and a channel to whoever answers the requests.

use std::fs;
use std::io::{self, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::protocol::{LineError, Request, Response, decode_request, encode, read_line};

/// One request for the owner, with where its reply goes. The owner sends exactly
/// one [`Response`] on the sender (a reply after the server stopped waiting is
/// dropped harmlessly).
pub type Call = (Request, Sender<Response>);

/// What the server allows a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, bytes.
    pub max_line: usize,
    /// How long a connection may take to send a complete request line.
    pub read_timeout: Duration,
    /// How long writing a reply may block.
    pub write_timeout: Duration,
    /// How long the owner has to answer a request other than `import`.
    pub reply_timeout: Duration,
    /// How long the owner has to answer an `import`.
    pub import_timeout: Duration,
    /// Connections served at once; more are refused with a `busy` error.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: super::MAX_REQUEST_LINE,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            reply_timeout: Duration::from_secs(5),
            import_timeout: Duration::from_secs(30),
            max_connections: 8,
        }
    }
}

impl Limits {
    /// How long the owner has to answer `req`.
    pub fn timeout_for(&self, req: &Request) -> Duration {
        match req {
            Request::Import { .. } => self.import_timeout,
            // Peers answer once they started, fetching the sound first if they must.
            Request::PlayOn { .. } => self.reply_timeout * 6,
            // The owner answers once the two libraries match (or gives up at 60 s).
            Request::Sync { .. } => Duration::from_secs(75),
            // A copy waits for its file; a browse for the peer's whole offer.
            Request::Copy { .. } | Request::Browse { .. } => Duration::from_secs(75),
            _ => self.reply_timeout,
        }
    }
}

struct Shared {
    limits: Limits,
    stop: AtomicBool,
    active: AtomicUsize,
    panics: AtomicUsize,
}

/// The listening control socket. Dropping it stops accepting, and removes the
/// socket file if it is still this server's.
///
/// Connections being served when it is dropped finish on their own threads (each is
/// bounded by the [`Limits`]); requests they read afterwards are answered with an
/// error rather than forwarded.
pub struct ControlServer {
    path: PathBuf,
    /// Device and inode of the socket file this server bound.
    file_id: (u64, u64),
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ControlServer {
    /// Listens at `path` with the default [`Limits`], sending every valid request to
    /// `handler`. See [`ControlServer::bind_with`].
    pub fn bind(path: &Path, handler: Sender<Call>) -> io::Result<ControlServer> {
        ControlServer::bind_with(path, handler, Limits::default())
    }

    /// Listens at `path` (mode 0600), sending every valid request to `handler`.
    ///
    /// The caller must hold the home lock: an existing socket file at `path` is
    /// taken to be stale and replaced. Anything else there (a regular file, a
    /// directory) is an `AlreadyExists` error and left alone. The socket is made in
    /// a private (0700) directory beside `path`, set to 0600 and then moved into
    /// place, so it is never reachable with other permissions whatever the umask.
    pub fn bind_with(
        path: &Path,
        handler: Sender<Call>,
        limits: Limits,
    ) -> io::Result<ControlServer> {
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists and is not a socket", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = bind_private(path)?;
        let meta = fs::symlink_metadata(path)?;
        let shared = Arc::new(Shared {
            limits,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            panics: AtomicUsize::new(0),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("jhack-control".into())
                .spawn(move || accept_loop(listener, handler, shared))
        };
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                let _ = fs::remove_file(path);
                return Err(e);
            }
        };
        tracing::debug!("control socket listening at {}", path.display());
        Ok(ControlServer {
            path: path.to_path_buf(),
            file_id: (meta.dev(), meta.ino()),
            shared,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Connection threads that ended in a panic (for tests).
    #[cfg(test)]
    pub(super) fn panics(&self) -> usize {
        self.shared.panics.load(Ordering::Relaxed)
    }

    fn still_ours(&self) -> bool {
        fs::symlink_metadata(&self.path)
            .map(|m| m.file_type().is_socket() && (m.dev(), m.ino()) == self.file_id)
            .unwrap_or(false)
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let ours = self.still_ours();
        if let Some(thread) = self.thread.take() {
            // Wake the blocking accept with a connection of our own. When that is not
            // possible (the file was removed or replaced by someone), nobody can reach
            // the listener any more, and its thread is left to end with the process.
            if ours && UnixStream::connect(&self.path).is_ok() {
                let _ = thread.join();
            }
        }
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Binds a socket at `path` that is 0600 from the moment it is reachable there.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = parent.join(format!(".jc{:x}-{seq}", std::process::id()));
    if fs::symlink_metadata(&dir).is_ok() {
        // Left by a process with this pid that died while binding.
        fs::remove_dir_all(&dir)?;
    }
    fs::DirBuilder::new().mode(0o700).create(&dir)?;
    let staged = dir.join("s");
    let result: io::Result<UnixListener> = (|| {
        let listener = UnixListener::bind(&staged)?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(0o600))?;
        fs::rename(&staged, path)?;
        Ok(listener)
    })();
    let _ = fs::remove_dir_all(&dir);
    match result {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            // The staging path is too long for a socket address where `path` itself
            // may not be: bind in place, then restrict. The home's data directory is
            // 0700, which covers the moment in between.
            if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
                fs::remove_file(path)?;
            }
            let listener = UnixListener::bind(path)?;
            if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(0o600)) {
                let _ = fs::remove_file(path);
                return Err(e);
            }
            Ok(listener)
        }
        other => other,
    }
}

/// Counts a connection thread, and notices when it ends in a panic.
struct Active(Arc<Shared>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        if std::thread::panicking() {
            self.0.panics.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn accept_loop(listener: UnixListener, handler: Sender<Call>, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Out of descriptors or similar: let it pass rather than spin.
                tracing::warn!("control socket: cannot accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.active.fetch_add(1, Ordering::AcqRel) >= shared.limits.max_connections {
            shared.active.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!("control socket: busy, connection refused");
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            let _ = send(
                &stream,
                &Response::failure("busy: too many control connections"),
            );
            continue;
        }
        let active = Active(Arc::clone(&shared));
        let handler = handler.clone();
        let spawned = std::thread::Builder::new()
            .name("jhack-control-conn".into())
            .spawn(move || {
                let shared = Arc::clone(&active.0);
                serve(stream, &handler, &shared);
                drop(active);
            });
        if let Err(e) = spawned {
            tracing::warn!("control socket: cannot start a connection thread: {e}");
        }
    }
}

/// Serves one connection: requests one after another until the client closes, or
/// until one the server cannot accept.
fn serve(stream: UnixStream, handler: &Sender<Call>, shared: &Shared) {
    let limits = &shared.limits;
    if stream
        .set_write_timeout(Some(limits.write_timeout))
        .is_err()
    {
        return;
    }
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let deadline = Instant::now() + limits.read_timeout;
        let refusal = match read_line(&mut reader, limits.max_line, deadline) {
            Ok(line) => match decode_request(&line) {
                Ok(req) => {
                    if send(&writer, &forward(req, handler, shared)).is_err() {
                        return;
                    }
                    continue;
                }
                Err(rejected) => Response::from(rejected),
            },
            Err(LineError::Eof) | Err(LineError::Io(_)) => return,
            Err(LineError::TooLong) => {
                Response::bad_input(format!("request longer than {} bytes", limits.max_line))
            }
            Err(LineError::TimedOut) => Response::bad_input(format!(
                "no complete request within {:.1} s",
                limits.read_timeout.as_secs_f64()
            )),
        };
        if let Response::Error { message, .. } = &refusal {
            tracing::debug!("control socket: request refused: {message}");
        }
        let _ = send(&writer, &refusal);
        return;
    }
}

/// Hands a request to the owner and waits for its reply.
fn forward(req: Request, handler: &Sender<Call>, shared: &Shared) -> Response {
    const GONE: &str = "jhack is shutting down";
    if shared.stop.load(Ordering::Acquire) {
        return Response::failure(GONE);
    }
    let timeout = shared.limits.timeout_for(&req);
    let (tx, rx) = mpsc::channel();
    if handler.send((req, tx)).is_err() {
        return Response::failure(GONE);
    }
    match rx.recv_timeout(timeout) {
        Ok(resp) => resp,
        Err(RecvTimeoutError::Timeout) => Response::failure(format!(
            "no reply within {:.1} s (the request may still complete)",
            timeout.as_secs_f64()
        )),
        Err(RecvTimeoutError::Disconnected) => Response::failure("the request was not answered"),
    }
}

fn send(mut stream: &UnixStream, resp: &Response) -> io::Result<()> {
    let line = match encode(resp) {
        Ok(line) => line,
        Err(e) => encode(&Response::failure(format!(
            "the reply cannot be encoded: {e}"
        )))
        .map_err(io::Error::other)?,
    };
    stream.write_all(&line)
}
