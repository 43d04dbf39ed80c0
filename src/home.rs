//! Where jhack keeps its state: the home.
//!
//! With `--home DIR` (or `JHACK_HOME`) everything lives under DIR, so two instances
//! with two homes never share anything. Without it, the XDG directories are used:
//! configuration (config file, identity, trust store) in the config directory, the
//! library and caches in the data directory, and the control socket and lock beside
//! the library.
//!
//! This module only computes paths and creates directories; it never reads or writes
//! the files themselves (each subsystem owns its own files).

use std::path::{Path, PathBuf};

/// The directories of one jhack installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    config: PathBuf,
    data: PathBuf,
}

/// The home could not be found or made.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// No `--home` was given and the system has no home directory for this user.
    #[error("no home directory for this user; pass --home DIR or set JHACK_HOME")]
    NoUserDirs,
    /// A directory of the home could not be created.
    #[error("{}: cannot create the directory", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl Home {
    /// The home under one directory (`--home DIR`).
    pub fn at(dir: &Path) -> Home {
        Home {
            config: dir.to_path_buf(),
            data: dir.to_path_buf(),
        }
    }

    /// `--home DIR` when given, else the XDG directories of this user.
    pub fn resolve(explicit: Option<&Path>) -> Result<Home, HomeError> {
        if let Some(dir) = explicit {
            return Ok(Home::at(dir));
        }
        let dirs = directories::ProjectDirs::from("", "", "jhack").ok_or(HomeError::NoUserDirs)?;
        Ok(Home {
            config: dirs.config_dir().to_path_buf(),
            data: dirs.data_dir().to_path_buf(),
        })
    }

    /// Creates the home's directories (mode 0700 for new ones on Unix).
    pub fn create(&self) -> Result<(), HomeError> {
        for dir in [&self.config, &self.data] {
            create_private_dir(dir)?;
        }
        Ok(())
    }

    /// The directory of the configuration, identity and trust store.
    pub fn config_dir(&self) -> &Path {
        &self.config
    }

    /// The directory of the library and caches.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The config file.
    pub fn config_file(&self) -> PathBuf {
        self.config.join(crate::config::FILE_NAME)
    }

    /// The identity (key pair and certificate) directory.
    pub fn identity_dir(&self) -> PathBuf {
        self.config.join("identity")
    }

    /// The trust store (trusted peers).
    pub fn trust_file(&self) -> PathBuf {
        self.config.join("peers.toml")
    }

    /// The library: blobs and metadata.
    pub fn library_dir(&self) -> PathBuf {
        self.data.join("library")
    }

    /// The lock file that one running instance holds.
    pub fn lock_file(&self) -> PathBuf {
        self.data.join("jhack.lock")
    }

    /// The control socket of the running instance.
    pub fn socket_path(&self) -> PathBuf {
        self.data.join("jhack.sock")
    }
}

fn create_private_dir(dir: &Path) -> Result<(), HomeError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| HomeError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_home_holds_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::resolve(Some(dir.path())).expect("explicit");
        for p in [
            home.config_file(),
            home.identity_dir(),
            home.trust_file(),
            home.library_dir(),
            home.lock_file(),
            home.socket_path(),
        ] {
            assert!(p.starts_with(dir.path()), "{}", p.display());
        }
        home.create().expect("create");
        assert!(dir.path().is_dir());
    }

    #[test]
    fn unwritable_home_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").expect("write");
        let home = Home::at(&file.join("below"));
        let err = home.create().expect_err("below a file");
        assert!(err.to_string().contains("below"), "{err}");
    }
}
