//! Screens under test: the real interface in a tmux server of its own (driven with
//! `send-keys`, read with `capture-pane`), and a private OpenSSH server to run one
//! through `ssh -t`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::*;

/// One tmux server of our own (never the user's), with one window running jhack.
pub struct Tui {
    socket: String,
    target: String,
}

impl Tui {
    /// Starts `jhack tui` for `home` in a `w`×`h` window; `extra` goes before `tui`.
    pub fn start(home: &Path, w: u16, h: u16, extra: &[&str], stats: Option<&Path>) -> Tui {
        Tui::start_env(home, w, h, extra, stats, &[])
    }

    /// [`Tui::start`] with more environment for jhack.
    pub fn start_env(
        home: &Path,
        w: u16,
        h: u16,
        extra: &[&str],
        stats: Option<&Path>,
        more_env: &[(&str, &str)],
    ) -> Tui {
        let mut cmd = format!("{} --home {}", env!("CARGO_BIN_EXE_jhack"), home.display());
        for e in extra {
            cmd.push(' ');
            cmd.push_str(e);
        }
        cmd.push_str(" tui");
        if let Some(s) = stats {
            cmd.push_str(&format!(" --stats-file {}", s.display()));
        }
        Tui::launch(&cmd, w, h, more_env)
    }

    /// Runs the shell command `cmd` (which starts a screen) in a `w`×`h` tmux window.
    pub fn launch(cmd: &str, w: u16, h: u16, more_env: &[(&str, &str)]) -> Tui {
        let socket = format!("jhack-test-{}-{}", std::process::id(), unix_us());
        // After jhack exits: its status, whether the terminal is back in cooked mode.
        let script = format!(
            "{cmd}; echo \"EXITED $?\"; stty -a | grep -o -w -- '-\\?icanon'; echo DONE; sleep 600"
        );
        let mut env: Vec<String> = Vec::new();
        for k in [
            "XDG_RUNTIME_DIR",
            "PULSE_SERVER",
            "PULSE_COOKIE",
            "DBUS_SESSION_BUS_ADDRESS",
            "JHACK_TEST_AUDIO",
            "PIPEWIRE_NODE",
        ] {
            if let Ok(v) = std::env::var(k) {
                env.push(format!("{k}={v}"));
            }
        }
        env.extend(more_env.iter().map(|(k, v)| format!("{k}={v}")));
        env.push("TERM=xterm-256color".into());
        env.push("COLORTERM=truecolor".into());
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &w.to_string(), "-y", &h.to_string(), "-n", "jhack"])
            .arg("env")
            .args(&env)
            .args(["sh", "-c", &script])
            .status()
            .expect("tmux");
        assert!(status.success(), "tmux did not start");
        Tui {
            socket,
            target: "jhack".into(),
        }
    }

    pub fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux")
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", &self.target];
        a.extend_from_slice(keys);
        let o = self.tmux(&a);
        assert!(o.status.success(), "send-keys: {}", stderr(&o));
    }

    pub fn screen(&self) -> String {
        stdout(&self.tmux(&["capture-pane", "-p", "-t", &self.target]))
    }

    /// Waits until the screen shows `text`; panics with the screen otherwise.
    pub fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {text:?}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Quits with `q`: jhack exits with status 0 and the terminal is back.
    pub fn quit(&self, timeout: Duration) -> String {
        self.keys(&["q"]);
        let s = self.wait_for("DONE", timeout);
        assert!(s.contains("EXITED 0"), "{s}");
        s
    }

    /// Moves the focus to the output list and switches to the first output whose
    /// line names one of `names` (Enter; the caller waits for its effect).
    pub fn switch_output_to(&self, names: &[&str]) {
        self.keys(&["Tab"]);
        let screen = self.screen();
        let outputs: Vec<&str> = screen
            .lines()
            .skip_while(|l| !l.contains("Output"))
            .take_while(|l| !l.contains("Input"))
            .collect();
        let current = outputs.iter().position(|l| l.contains('●')).unwrap_or(1);
        let target = outputs
            .iter()
            .position(|l| names.iter().any(|n| l.contains(n)))
            .unwrap_or_else(|| panic!("no output named {names:?} listed:\n{screen}"));
        let (key, steps) = if target > current {
            ("Down", target - current)
        } else {
            ("Up", current - target)
        };
        for _ in 0..steps {
            self.keys(&[key]);
        }
        self.keys(&["Enter"]);
    }

    pub fn resize(&self, w: u16, h: u16) {
        self.tmux(&[
            "resize-window",
            "-t",
            &self.target,
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
        ]);
    }

    /// The pid of jhack (the pane's shell's child).
    pub fn jhack_pid(&self) -> Option<u32> {
        let pane = stdout(&self.tmux(&["list-panes", "-t", &self.target, "-F", "#{pane_pid}"]));
        let shell: u32 = pane.trim().parse().ok()?;
        let o = Command::new("pgrep")
            .args(["-P", &shell.to_string(), "jhack"])
            .output()
            .ok()?;
        stdout(&o).lines().next()?.trim().parse().ok()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

pub fn have_tmux(test: &str) -> bool {
    if have("tmux") {
        return true;
    }
    skip(test, "tmux is not installed");
    false
}

pub fn import(home: &Path, file: &Path, extra: &[&str]) {
    let mut cmd = jhack(home);
    cmd.arg("import").arg(file).args(extra);
    let o = run(cmd, Duration::from_secs(30));
    assert!(o.status.success(), "import: {}", stderr(&o));
}

pub fn click(dir: &Path) -> PathBuf {
    let f = dir.join("click.wav");
    sh(&format!(
        "sox -n -r 48000 -c 2 -b 16 {} synth 0.05 sine 2000 gain -3 pad 0 0.3",
        f.display()
    ));
    f
}

/// A private OpenSSH server on 127.0.0.1 for one test: its own host key, a test key
/// allowed in, its own config and pid file; never a system one. Stopped on drop.
pub struct Sshd {
    pub proc: crate::common::peers::Proc,
    port: u16,
    key: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts it, or says why it cannot run here (skipped loudly by the caller).
    pub fn start() -> Result<Sshd, String> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() || Command::new("ssh").arg("-V").output().is_err() {
            return Err("openssh-server or openssh-client is not installed (scripts/install-deps.sh --test installs them)".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        for name in ["host", "user"] {
            let o = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(name))
                .output()
                .map_err(|e| e.to_string())?;
            if !o.status.success() {
                return Err(format!("ssh-keygen: {}", stderr(&o)));
            }
        }
        std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).map_err(|e| e.to_string())?;
        // sshd's privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = crate::common::peers::free_port();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {h}\nAuthorizedKeysFile {a}\nPidFile {p}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nAllowUsers {user}\n",
                h = d.join("host").display(),
                a = d.join("authorized_keys").display(),
                p = d.join("sshd.pid").display(),
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut c = Command::new(sshd);
        c.arg("-D").arg("-e").arg("-f").arg(d.join("sshd_config"));
        let proc = crate::common::peers::Proc::start("sshd", c);
        let t0 = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if t0.elapsed() > Duration::from_secs(10) {
                return Err(format!("sshd did not listen: {}", proc.stderr()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Sshd {
            proc,
            port,
            key: d.join("user"),
            _dir: dir,
        })
    }

    /// Starts it for `test`, or says loudly why the test is skipped.
    pub fn or_skip(test: &str) -> Option<Sshd> {
        match Sshd::start() {
            Ok(s) => Some(s),
            Err(why) => {
                skip(test, &why);
                None
            }
        }
    }

    /// The `ssh -t` command line that runs `remote` on it.
    pub fn ssh(&self, remote: &str) -> String {
        let mut argv = self.ssh_argv(remote);
        argv.insert(1, "-tt".into());
        let last = argv.pop().unwrap_or_default();
        format!("{} '{last}'", argv.join(" "))
    }

    /// The `ssh` arguments (no terminal) that run `remote` on it.
    pub fn ssh_argv(&self, remote: &str) -> Vec<String> {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let mut v: Vec<String> = vec!["ssh".into(), "-p".into(), self.port.to_string()];
        v.extend(["-i".into(), self.key.display().to_string()]);
        for o in [
            "StrictHostKeyChecking=no",
            "UserKnownHostsFile=/dev/null",
            "LogLevel=ERROR",
            "BatchMode=yes",
        ] {
            v.extend(["-o".into(), o.into()]);
        }
        v.push(format!("{user}@127.0.0.1"));
        v.push(remote.into());
        v
    }
}
