//! Syncthing, run headless for the whole-library fetch comparison: homes on loopback
//! that know nothing but each other (no discovery, relays, NAT or usage reports),
//! one folder sent by one and received by the other, watched through the REST API
//! (plain HTTP/1.0 on loopback, so no client library is needed).
//!
//! Only the comparison uses it; it never touches a jhack home.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The folder both sides share.
const FOLDER: &str = "m";

/// One Syncthing device: its home, id, API key and ports, and the running process.
pub struct Syncthing {
    home: PathBuf,
    id: String,
    key: String,
    gui: u16,
    listen: u16,
    child: Option<Child>,
}

/// A free TCP port on loopback.
fn tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral TCP port")
        .port()
}

/// The text between `open` and `close` in `s`.
fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

impl Syncthing {
    /// A new device (keys and a config) under `home`.
    pub fn new(home: &Path) -> Syncthing {
        let out = Command::new("syncthing")
            .arg("generate")
            .arg(format!("--home={}", home.display()))
            .args(["--no-default-folder", "--skip-port-probing"])
            .output()
            .expect("syncthing generate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let id = between(&text, "Device ID: ", "\n")
            .unwrap_or_else(|| panic!("syncthing generate printed no device id:\n{text}"))
            .trim()
            .to_string();
        let config = std::fs::read_to_string(home.join("config.xml")).expect("config.xml");
        let key = between(&config, "<apikey>", "</apikey>")
            .expect("an API key")
            .to_string();
        Syncthing {
            home: home.to_path_buf(),
            id,
            key,
            gui: tcp_port(),
            listen: tcp_port(),
            child: None,
        }
    }

    /// Writes its config: `folder` shared with `peer`, as `kind` ("sendonly" or
    /// "receiveonly"), never rescanned or watched while measured.
    pub fn configure(&self, peer: &Syncthing, folder: &Path, kind: &str) {
        std::fs::create_dir_all(folder.join(".stfolder")).expect("folder marker");
        let device = |d: &Syncthing| {
            format!(
                r#"<device id="{}" compression="never"><address>tcp://127.0.0.1:{}</address><autoAcceptFolders>false</autoAcceptFolders></device>"#,
                d.id, d.listen
            )
        };
        let xml = format!(
            r#"<configuration version="36">
<folder id="{FOLDER}" label="{FOLDER}" path="{path}" type="{kind}" rescanIntervalS="3600" fsWatcherEnabled="false">
<device id="{me}"></device><device id="{them}"></device>
<minDiskFree unit="%">0</minDiskFree><markerName>.stfolder</markerName>
</folder>
{dev_me}
{dev_them}
<gui enabled="true" tls="false"><address>127.0.0.1:{gui}</address><apikey>{key}</apikey></gui>
<options><listenAddress>tcp://127.0.0.1:{listen}</listenAddress><globalAnnounceEnabled>false</globalAnnounceEnabled><localAnnounceEnabled>false</localAnnounceEnabled><relaysEnabled>false</relaysEnabled><natEnabled>false</natEnabled><urAccepted>-1</urAccepted><startBrowser>false</startBrowser><autoUpgradeIntervalH>0</autoUpgradeIntervalH><crashReportingEnabled>false</crashReportingEnabled><setLowPriority>false</setLowPriority><reconnectionIntervalS>1</reconnectionIntervalS></options>
</configuration>
"#,
            path = folder.display(),
            me = self.id,
            them = peer.id,
            dev_me = device(self),
            dev_them = device(peer),
            gui = self.gui,
            key = self.key,
            listen = self.listen,
        );
        std::fs::write(self.home.join("config.xml"), xml).expect("write config.xml");
    }

    /// The end of its log (for a failure's message).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.home.join("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Stops it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (with every device and folder paused, given `paused`) and waits for
    /// its API.
    pub fn start(&mut self, paused: bool) {
        let log = std::fs::File::create(self.home.join("log")).expect("log");
        let mut c = Command::new("syncthing");
        c.arg("serve")
            .arg(format!("--home={}", self.home.display()))
            .args(["--no-browser", "--no-restart", "--no-upgrade"])
            .env("STNOUPGRADE", "1")
            // Run as the monitored process itself: otherwise `serve` forks a child
            // that outlives a killed parent and keeps the database locked.
            .env("STMONITORED", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log));
        if paused {
            c.arg("--paused");
        }
        self.child = Some(c.spawn().expect("syncthing serve"));
        let until = Instant::now() + Duration::from_secs(30);
        while self.status().is_none() {
            assert!(
                Instant::now() < until,
                "syncthing's API did not come up: {}",
                std::fs::read_to_string(self.home.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unpauses the folder and every device.
    pub fn resume(&self) {
        self.http(
            "PATCH",
            &format!("/rest/config/folders/{FOLDER}"),
            Some(r#"{"paused":false}"#),
        )
        .expect("unpause the folder");
        self.http("POST", "/rest/system/resume", None)
            .expect("resume the devices");
    }

    /// The folder's state (`/rest/db/status`), when the API answers.
    pub fn status(&self) -> Option<serde_json::Value> {
        let body = self.http("GET", &format!("/rest/db/status?folder={FOLDER}"), None)?;
        serde_json::from_str(&body).ok()
    }

    /// Waits until the folder is idle with `files` files here and none needed;
    /// false after `within`.
    pub fn wait_complete(&self, files: u64, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(s) = self.status() {
                let n = |k: &str| s[k].as_u64().unwrap_or(0);
                if s["state"] == "idle" && n("localFiles") >= files && n("needFiles") == 0 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// One request to the API; the body of a 2xx answer.
    fn http(&self, method: &str, path: &str, body: Option<&str>) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.gui)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let body = body.unwrap_or("");
        let req = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.key,
            body.len()
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        head.split_whitespace()
            .nth(1)
            .is_some_and(|code| code.starts_with('2'))
            .then(|| body.to_string())
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        self.stop();
    }
}
