//! The peers' activity log (`peers.log` in the home): one line per thing that
//! happened with peers — who connected, who played what here, what we played where,
//! refusals — with the time, so a user can see later who used their speakers. Kept
//! under a size limit by rotating to `peers.log.1`.
//!
//! Writing is best effort: a full disk or an unwritable home never stops the
//! instance; the line still reaches the screen or stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Size at which the log is rotated.
const MAX_BYTES: u64 = 1 << 20;

/// An append-only activity log.
pub struct ActivityLog {
    path: PathBuf,
    file: Option<std::fs::File>,
    written: u64,
}

impl ActivityLog {
    /// Opens (creating) the log at `path`.
    pub fn open(path: &Path) -> ActivityLog {
        let file = open_append(path);
        let written = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        ActivityLog {
            path: path.to_path_buf(),
            file,
            written,
        }
    }

    /// Appends one line, prefixed with the UTC time.
    pub fn write(&mut self, line: &str) {
        if self.written >= MAX_BYTES {
            self.rotate();
        }
        let Some(f) = self.file.as_mut() else {
            return;
        };
        let text = format!("{} {}\n", utc_now(), line.replace('\n', " "));
        if f.write_all(text.as_bytes()).is_ok() {
            self.written += text.len() as u64;
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let _ = std::fs::rename(&self.path, self.path.with_extension("log.1"));
        self.file = open_append(&self.path);
        self.written = 0;
    }
}

fn open_append(path: &Path) -> Option<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ok()
}

/// "2026-12-01T10:19:03Z" from the system clock.
fn utc_now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_with_the_time_and_the_log_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("peers.log");
        let mut log = ActivityLog::open(&path);
        log.write("bee played \"airhorn\" here");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with("Z bee played \"airhorn\" here\n"), "{text}");
        log.written = MAX_BYTES;
        log.write("after");
        assert!(path.with_extension("log.1").exists());
        assert!(
            std::fs::read_to_string(&path)
                .expect("read")
                .contains("after")
        );
        // An unwritable place is no error.
        let mut nowhere = ActivityLog::open(&dir.path().join("missing/peers.log"));
        nowhere.write("lost quietly");
    }
}
