//! Small files of the network layer (identity, trust store, group hashes) written
//! so that a crash leaves either the old file or the new one: a private temporary
//! file, fsync, rename, directory fsync. Nothing here reads.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Tells temporary files of one process apart.
static TEMP_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Writes `bytes` to `path` through a temporary file (0600) in the same directory,
/// fsynced and renamed into place, then fsyncs the directory. `Err` names the file
/// or directory that failed.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), (PathBuf, io::Error)> {
    let io_error = |path: &Path, source: io::Error| (path.to_path_buf(), source);
    let file_name = path.file_name().ok_or_else(|| {
        io_error(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;

    let (temp, mut file) =
        create_temp(&dir, &file_name.to_string_lossy()).map_err(|e| io_error(path, e))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&temp, path)
        });
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(io_error(path, e));
    }
    sync_dir(&dir).map_err(|e| io_error(&dir, e))
}

/// A new, empty temporary file (mode 0600 on Unix) in `dir`, and its path.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    let mut attempts = 0;
    loop {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&temp) {
            Ok(file) => {
                // The umask may have taken bits away; make it exactly 0600.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Err(e) = file.set_permissions(fs::Permissions::from_mode(0o600)) {
                        drop(file);
                        let _ = fs::remove_file(&temp);
                        return Err(e);
                    }
                }
                return Ok((temp, file));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
