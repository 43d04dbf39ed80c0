//! Real jhack processes for the peer tests: a process guard that collects stderr and
//! kills on drop, and a `Peer` (a home with its id and port) that trusts, serves,
//! plays on and inspects the others.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{jhack, run, stderr, stdout};

/// How long a `jhack serve` has to say it is serving.
pub const START: Duration = Duration::from_secs(20);
/// How long a one-shot command may take.
pub const COMMAND: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- processes

/// A running jhack process whose stderr is collected as it comes. Killed (SIGKILL)
/// on drop unless it was stopped; when the test is failing, its stderr is printed.
pub struct Proc {
    name: String,
    child: Child,
    err: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    pub fn start(name: &str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn jhack");
        let mut pipe = child.stderr.take().expect("stderr");
        let err = Arc::new(Mutex::new(Vec::new()));
        let sink = err.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Proc {
            name: name.to_string(),
            child,
            err,
            reader: Some(reader),
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.err.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits until stderr holds `text` at least `n` times; returns the first line
    /// holding it. Panics (with the log) on timeout or when the process ends first.
    pub fn wait_count(&mut self, text: &str, n: usize, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.exited();
            let log = self.stderr();
            if log.matches(text).count() >= n {
                return log
                    .lines()
                    .find(|l| l.contains(text))
                    .unwrap_or_default()
                    .to_string();
            }
            if let Some(status) = exited {
                // Let the reader take the last bytes, then look once more.
                std::thread::sleep(Duration::from_millis(100));
                let log = self.stderr();
                if log.matches(text).count() >= n {
                    continue;
                }
                panic!(
                    "{} ended ({status}) before logging {text:?} ×{n}:\n{log}",
                    self.name
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not log {text:?} ×{n} in {timeout:?}:\n{log}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_for(&mut self, text: &str, timeout: Duration) -> String {
        self.wait_count(text, 1, timeout)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for it to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, as Ctrl-C would stop it; must exit in time. Returns its whole stderr.
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(10));
        if let Some(r) = self.reader.take()
            && status.is_some()
        {
            let _ = r.join();
        }
        let log = self.stderr();
        let status = status.unwrap_or_else(|| panic!("{} ignored SIGTERM:\n{log}", self.name));
        assert!(
            status.success(),
            "{} exited with {status}:\n{log}",
            self.name
        );
        log
    }

    /// SIGKILL, now.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(10));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- stderr of {}:\n{}", self.name, self.stderr());
        }
    }
}

// ---------------------------------------------------------------- peers

/// A port nobody uses right now on loopback, for UDP and TCP alike, taken from below
/// the kernel's ephemeral range. A port found by binding to port 0 and letting go may
/// be handed to the next socket bound to port 0 — a QUIC client's endpoint, any
/// connection — before the server it was meant for binds it; the kernel never hands
/// out a port below that range that way. Each test process starts at its own place
/// in the range and never returns a port twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 10_000;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = low.saturating_sub(FIRST);
    let free = |p: u16| {
        std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
    };
    if span >= 1_000 {
        let start = std::process::id().wrapping_mul(7_919) % span;
        for _ in 0..span {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = FIRST + (start + n) % span;
            if let Ok(port) = u16::try_from(port)
                && free(port)
            {
                return port;
            }
        }
    }
    // No room below the ephemeral range: one the kernel picks.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Runs `jhack --home HOME ARGS...` to completion.
pub fn cmd(home: &Path, args: &[&str]) -> Output {
    let mut c = jhack(home);
    c.args(args);
    run(c, COMMAND)
}

pub fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what} failed ({}): {}{}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// The `jhack: error: ` lines of a command's stderr.
pub fn error_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("jhack: error: "))
        .map(str::to_string)
        .collect()
}

/// One installation: its home, peer id and listen port.
pub struct Peer {
    pub name: &'static str,
    dir: tempfile::TempDir,
    pub id: String,
    pub port: u16,
}

impl Peer {
    pub fn new(name: &'static str) -> Peer {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = cmd(dir.path(), &["id"]);
        ok(&o, "jhack id");
        let id = stdout(&o)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let groups: Vec<&str> = id.split('-').collect();
        assert!(
            groups.len() == 8 && groups.iter().all(|g| g.len() == 4),
            "jhack id printed {id:?}"
        );
        Peer {
            name,
            dir,
            id,
            port: free_port(),
        }
    }

    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn jhack(&self, args: &[&str]) -> Output {
        cmd(self.home(), args)
    }

    /// Trusts `other` under `name` as a mirror of this library (`read,write`, at its
    /// address).
    pub fn mirror(&self, other: &Peer, name: &str) {
        let addr = other.addr();
        ok(
            &self.jhack(&[
                "peer",
                "add",
                &other.id,
                &addr,
                "--name",
                name,
                "--allow",
                "read,write",
                "--sync",
                "mirror",
            ]),
            "jhack peer add --sync mirror",
        );
    }

    /// Trusts `other` under `name`, allowed `allow`, at its address when `at`.
    pub fn trust(&self, other: &Peer, name: &str, allow: &str, at: bool) {
        let addr = other.addr();
        let mut args = vec!["peer", "add", &other.id];
        if at {
            args.push(&addr);
        }
        args.extend(["--name", name, "--allow", allow]);
        ok(&self.jhack(&args), "jhack peer add");
    }

    pub fn serve_cmd(&self, port: u16, audio: bool, env: &[(&str, &str)]) -> Command {
        let mut c = jhack(self.home());
        if !audio {
            c.arg("--no-audio");
        }
        c.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("JHACK_LOG", "info");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// `jhack serve` on this peer's port (silent null backend unless `audio`), once
    /// it says it is serving.
    pub fn serve(&self, audio: bool, env: &[(&str, &str)]) -> Proc {
        self.serve_on(self.port, audio, env)
    }

    /// `jhack serve --call` on the sound devices: the machine a person sits at,
    /// taking part in calls with its own microphone.
    pub fn serve_calling(&self) -> Proc {
        let mut c = self.serve_cmd(self.port, true, &[]);
        c.arg("--call");
        let mut p = Proc::start(&format!("{} (serve)", self.name), c);
        p.wait_for(
            &format!("serving as {} on 127.0.0.1:{}", self.id, self.port),
            START,
        );
        p
    }

    /// `jhack serve` on another port than its own.
    pub fn serve_on(&self, port: u16, audio: bool, env: &[(&str, &str)]) -> Proc {
        let mut p = Proc::start(
            &format!("{} (serve)", self.name),
            self.serve_cmd(port, audio, env),
        );
        p.wait_for(
            &format!("serving as {} on 127.0.0.1:{port}", self.id),
            START,
        );
        p
    }

    /// `jhack play SOUND --peer PEER`, to completion.
    pub fn play_on(&self, sound: &str, peer: &str) -> Output {
        self.jhack(&["play", sound, "--peer", peer])
    }

    /// `jhack play SOUND --peer PEER` in the background, with extra environment.
    pub fn play_on_bg(&self, sound: &str, peer: &str, env: &[(&str, &str)]) -> Proc {
        let mut c = jhack(self.home());
        c.args(["play", sound, "--peer", peer]);
        for (k, v) in env {
            c.env(k, v);
        }
        Proc::start(&format!("{} (play)", self.name), c)
    }

    /// Imports `file` under `name`; returns the sound's id (hex).
    pub fn import(&self, file: &Path, name: &str) -> String {
        let f = file.to_string_lossy();
        ok(&self.jhack(&["import", &f, "--name", name]), "jhack import");
        self.sound(name)["id"].as_str().expect("id").to_string()
    }

    /// The library as `jhack list --json` prints it.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let o = self.jhack(&["list", "--json"]);
        ok(&o, "jhack list --json");
        serde_json::from_str(stdout(&o).trim()).expect("list JSON")
    }

    pub fn sound(&self, name: &str) -> serde_json::Value {
        let list = self.list();
        list.iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no sound {name:?} in {}'s library: {list:?}", self.name))
            .clone()
    }

    pub fn blob(&self, hex: &str) -> PathBuf {
        self.home()
            .join("library")
            .join("blobs")
            .join(&hex[..2])
            .join(hex)
    }

    pub fn partial(&self, hex: &str) -> PathBuf {
        self.home().join("partial").join(format!("{hex}.part"))
    }

    /// `jhack check` exits 0.
    pub fn check_clean(&self) {
        let o = self.jhack(&["check"]);
        ok(&o, "jhack check");
        assert!(stdout(&o).contains("all intact"), "{}", stdout(&o));
    }
}

/// Waits until `f` holds (checked every 10 ms); returns how long it took. Fails
/// the test, saying `what`, when it does not hold within `within`.
pub fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}
