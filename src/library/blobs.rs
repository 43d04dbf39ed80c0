//! Content-addressed blob files: each sound's original bytes, named by their BLAKE3
//! hash (the sound id), under `blobs/<first two hex digits>/<64 hex digits>`.
//!
//! A blob appears only whole: it is written to a temporary file in the blob
//! directory, fsynced, renamed into place, and the directory fsynced. Temporary files
//! left by a crash start with `.tmp-` and are removed when the store is opened. This
//! module never decodes audio and never touches the metadata.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::domain::SoundId;

/// Prefix of temporary files; nothing else in the store starts with it.
const TEMP_PREFIX: &str = ".tmp-";
/// Copy buffer for hashing while writing.
const COPY_BUF: usize = 256 * 1024;

/// The blob directory.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    next_temp: AtomicU64,
}

/// What verifying a blob found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobState {
    /// Present, and its bytes hash to its id; the size in bytes.
    Intact(u64),
    /// No file for that id.
    Missing,
    /// The file's bytes hash to another id.
    Corrupt {
        /// What the bytes hash to.
        actual: SoundId,
    },
}

/// A blob written to a temporary file, hashed and fsynced, not yet in place. Dropping
/// it without [`BlobStore::install`] removes the temporary file.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    /// The hash of the bytes written.
    pub id: SoundId,
    /// Bytes written.
    pub size: u64,
    installed: bool,
}

impl TempBlob {
    /// The temporary file (it keeps the source's extension, as a hint to decoders).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    /// Opens (creating) the store at `dir` and removes temporary files left behind.
    /// A new store is made with all of its 256 shard folders: a first whole-library
    /// fetch made each as its first file arrived, an inode and a directory block
    /// apiece while the files flowed (and on a filesystem without a journal, whose
    /// allocator steps over recently deleted inodes one by one, a costly one).
    pub fn open(dir: &Path) -> io::Result<BlobStore> {
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            for shard in 0..=255u8 {
                fs::create_dir(dir.join(format!("{shard:02x}")))?;
            }
        }
        let store = BlobStore {
            dir: dir.to_path_buf(),
            next_temp: AtomicU64::new(0),
        };
        store.clean_temps()?;
        Ok(store)
    }

    /// The blob directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob of `id` lives.
    pub fn path(&self, id: &SoundId) -> PathBuf {
        let hex = id.to_hex();
        self.dir.join(&hex[..2]).join(hex)
    }

    /// Whether a blob for `id` is in place (not verified).
    pub fn contains(&self, id: &SoundId) -> bool {
        self.path(id).is_file()
    }

    /// Copies everything `src` yields into a temporary blob, hashing it on the way,
    /// and fsyncs it. More than `max_bytes` is an error (`InvalidData`).
    pub fn write_temp(
        &self,
        mut src: impl Read,
        extension: Option<&str>,
        max_bytes: u64,
    ) -> io::Result<TempBlob> {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        let mut name = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
        if let Some(ext) = extension.filter(|e| !e.is_empty() && e.len() <= 16) {
            name.push('.');
            name.push_str(ext);
        }
        let path = self.dir.join(name);
        let mut temp = TempBlob {
            path,
            id: SoundId([0; 32]),
            size: 0,
            installed: false,
        };
        let mut file = File::create(&temp.path)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let got = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            temp.size += got as u64;
            if temp.size > max_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("larger than the limit of {} MB", max_bytes / 1_000_000),
                ));
            }
            hasher.update(&buf[..got]);
            file.write_all(&buf[..got])?;
        }
        file.sync_all()?;
        temp.id = SoundId(*hasher.finalize().as_bytes());
        Ok(temp)
    }

    /// Puts a temporary blob in place under its id. When the blob is already there the
    /// temporary file is simply removed (same bytes, same name). Returns whether the
    /// blob was new.
    pub fn install(&self, mut temp: TempBlob) -> io::Result<bool> {
        let dest = self.path(&temp.id);
        if dest.is_file() {
            return Ok(false); // `temp` drops and removes itself
        }
        let parent = dest.parent().unwrap_or(&self.dir);
        fs::create_dir_all(parent)?;
        fs::rename(&temp.path, &dest)?;
        temp.installed = true;
        sync_dir(parent)?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Moves files already verified to hold the bytes of their ids (and fsynced)
    /// into place, then fsyncs each directory touched once. A file whose blob is
    /// already there is left where it is. Returns the ids put in place.
    pub fn adopt(&self, files: &[(SoundId, PathBuf)]) -> io::Result<Vec<SoundId>> {
        let mut dirs = std::collections::BTreeSet::new();
        let mut placed = Vec::new();
        // The files' bytes durable first (one filesystem sync for the whole batch
        // rather than one journal commit per file), then the names.
        sync_files(&self.dir, files.iter().map(|(_, p)| p.as_path()))?;
        for (id, path) in files {
            let dest = self.path(id);
            if dest.is_file() {
                continue;
            }
            let parent = dest.parent().unwrap_or(&self.dir).to_path_buf();
            match fs::rename(path, &dest) {
                // A store made before its shards were made with it.
                Err(e) if e.kind() == io::ErrorKind::NotFound && !dirs.contains(&parent) => {
                    fs::create_dir_all(&parent)?;
                    fs::rename(path, &dest)?;
                }
                r => r?,
            }
            dirs.insert(parent);
            placed.push(*id);
        }
        if !dirs.is_empty() {
            sync_files(&self.dir, dirs.iter().map(PathBuf::as_path))?;
            sync_dir(&self.dir)?;
        }
        Ok(placed)
    }

    /// Writes `bytes` as a blob (temporary file, fsync, rename); returns its id and
    /// whether it was new.
    pub fn put(&self, bytes: &[u8], extension: Option<&str>) -> io::Result<(SoundId, bool)> {
        let temp = self.write_temp(bytes, extension, u64::MAX)?;
        let id = temp.id;
        Ok((id, self.install(temp)?))
    }

    /// Re-hashes the blob of `id`.
    pub fn verify(&self, id: &SoundId) -> io::Result<BlobState> {
        let mut file = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BlobState::Missing),
            Err(e) => return Err(e),
        };
        let mut hasher = blake3::Hasher::new();
        let size = io::copy(&mut file, &mut hasher)?;
        let actual = SoundId(*hasher.finalize().as_bytes());
        Ok(if actual == *id {
            BlobState::Intact(size)
        } else {
            BlobState::Corrupt { actual }
        })
    }

    /// Removes the blob of `id` (absent is fine).
    pub fn remove(&self, id: &SoundId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file in place, by id (files with other names are ignored).
    pub fn ids(&self) -> io::Result<Vec<SoundId>> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.dir)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path())? {
                let f = f?;
                if let Some(id) = f.file_name().to_str().and_then(SoundId::from_hex) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }

    /// Removes temporary files a crash left; returns how many. Only one process uses
    /// a library at a time (the home lock), so none of them is being written.
    pub fn clean_temps(&self) -> io::Result<usize> {
        let mut removed = 0;
        for e in fs::read_dir(&self.dir)? {
            let e = e?;
            if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                fs::remove_file(e.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Makes a rename or removal in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes `paths` (files or directories on the filesystem of `dir`) durable: on Linux
/// with one `syncfs` of that filesystem, elsewhere one fsync each.
fn sync_files<'a>(dir: &Path, paths: impl Iterator<Item = &'a Path>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let _ = paths;
        let d = File::open(dir)?;
        // SAFETY: `syncfs` takes a file descriptor that is open for the call's
        // duration (`d` lives until the end of this block) and touches no memory.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        for p in paths {
            File::open(p)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_named_by_their_hash_and_stored_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let (id, new) = store.put(b"hello", Some("wav")).expect("put");
        assert!(new);
        assert_eq!(id.0, *blake3::hash(b"hello").as_bytes());
        assert_eq!(fs::read(store.path(&id)).expect("read"), b"hello");
        let (again, new) = store.put(b"hello", None).expect("put again");
        assert_eq!(again, id);
        assert!(!new);
        assert_eq!(store.ids().expect("ids"), vec![id]);
        assert_eq!(store.verify(&id).expect("verify"), BlobState::Intact(5));
    }

    #[test]
    fn corruption_and_absence_are_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let (id, _) = store.put(b"abc", None).expect("put");
        fs::write(store.path(&id), b"abd").expect("flip");
        assert!(matches!(store.verify(&id), Ok(BlobState::Corrupt { .. })));
        store.remove(&id).expect("remove");
        assert_eq!(store.verify(&id).expect("verify"), BlobState::Missing);
    }

    #[test]
    fn temporaries_never_show_as_blobs_and_are_cleaned_at_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path()).expect("open");
        let temp = store
            .write_temp(&b"partial"[..], Some("flac"), 1 << 20)
            .expect("temp");
        assert!(temp.path().exists());
        std::mem::forget(temp); // as if the process died here
        assert!(store.ids().expect("ids").is_empty());
        drop(store);
        let store = BlobStore::open(dir.path()).expect("reopen");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
        let too_big = store.write_temp(&[0u8; 100][..], None, 10);
        assert_eq!(
            too_big.expect_err("over the cap").kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 0);
    }

    #[test]
    fn a_new_store_has_its_shards_and_one_made_without_them_still_adopts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new = dir.path().join("new");
        let store = BlobStore::open(&new).expect("open");
        assert_eq!(fs::read_dir(&new).expect("ls").count(), 256);
        assert!(new.join("00").is_dir() && new.join("ff").is_dir());
        // An existing folder without shards (a store made before they were made
        // with it): a fetched file is moved into a shard made for it.
        let old = dir.path().join("old");
        fs::create_dir(&old).expect("dir");
        let old_store = BlobStore::open(&old).expect("open old");
        assert_eq!(fs::read_dir(&old).expect("ls").count(), 0);
        for s in [&store, &old_store] {
            let fetched = s.dir().join("fetched.part");
            fs::write(&fetched, b"bytes").expect("write");
            let id = SoundId(*blake3::hash(b"bytes").as_bytes());
            assert_eq!(s.adopt(&[(id, fetched.clone())]).expect("adopt"), vec![id]);
            assert_eq!(fs::read(s.path(&id)).expect("read"), b"bytes");
            assert!(!fetched.exists());
        }
    }
}
