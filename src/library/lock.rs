//! The home lock: one process at a time owns a library.
//!
//! An exclusive advisory lock (flock) on the home's lock file, held for the life of
//! the process that opened the library, and released by the kernel when it exits
//! however it exits (kill -9 included), so a stale lock never needs cleaning. The
//! holder writes its pid and command line into the file, so a refused process can
//! say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{} is in use by another jhack ({holder}); stop it or use another --home", home.display())]
    Held {
        /// The home directory.
        home: PathBuf,
        /// "pid N: command line", as the holder wrote it.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("{}: cannot lock", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A held home lock; dropping it releases the lock.
#[derive(Debug)]
pub struct HomeLock {
    _file: File,
}

impl HomeLock {
    /// Takes the lock at `path` (the home's lock file) without waiting.
    pub fn acquire(path: &Path) -> Result<HomeLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = text.trim();
                return Err(LockError::Held {
                    home: path.parent().unwrap_or(path).to_path_buf(),
                    holder: if holder.is_empty() {
                        "a process that is starting".into()
                    } else {
                        holder.into()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let me = format!(
            "pid {}: {}",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" ")
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        Ok(HomeLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jhack.lock");
        let first = HomeLock::acquire(&path).expect("first");
        let err = HomeLock::acquire(&path).expect_err("second");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        HomeLock::acquire(&path).expect("free again");
    }
}
