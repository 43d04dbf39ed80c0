//! The sound library: every sound's original bytes as a content-addressed blob, and
//! its metadata (name, tags, key, gain, format, loudness, …) in a sled database.
//!
//! Crash safety comes from the order of writes: a blob is complete and durable
//! (temporary file, fsync, rename, directory fsync) before the metadata that names it
//! is written and flushed; removal goes the other way (metadata first). So at any
//! instant every listed sound has its whole blob, and the worst a crash leaves is a
//! stray temporary file (removed at the next open) or a blob no record names yet
//! (re-importing the file adopts it).
//!
//! This module stores and finds sounds; it never decodes audio (that is `media`,
//! wired in by `app::import`), and it never deletes a local sound on its own.

mod blobs;
mod check;
mod lock;
mod lookup;
mod names;
mod share;
mod store;
mod sync;

use std::path::{Path, PathBuf};

pub use blobs::{BlobState, BlobStore, TempBlob};
pub use check::{CheckReport, Problem};
pub use lock::{HomeLock, LockError};
pub use lookup::LookupError;
pub use names::{clean_name, clean_tags};
pub use share::{Owner, SharedBy, SharedSound, Taken};
pub use store::{MetaStore, StoreError};
pub use sync::{Merged, Watcher, fix_text};

use crate::cache::{DiskBudget, DiskEntry};
use crate::domain::{Origin, SoundId, SoundMeta};

/// Largest file the library accepts, in bytes.
pub const MAX_SOUND_BYTES: u64 = 2 << 30;

/// A file present from a library's creation until its first run has finished setting
/// it up ([`Library::finish_setup`]), so a first run cut short is completed by the next.
const SETUP_PENDING: &str = "setup-pending";

/// A library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// Another process owns this home.
    #[error(transparent)]
    Locked(#[from] LockError),
    /// The metadata store failed or refused a change.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of the library could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A name, tag or key given for a sound is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

impl LibraryError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError + '_ {
        move |source| LibraryError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What is known of a sound about to be added (everything but its id and size).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSound {
    /// Wanted name; a numbered suffix is added when it is taken.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Key to bind (must be free).
    pub key: Option<String>,
    /// Own gain, dB.
    pub gain_db: f32,
    /// Length in frames at `sample_rate`.
    pub frames: u64,
    /// Native rate.
    pub sample_rate: u32,
    /// Native channels.
    pub channels: u16,
    /// Container/codec.
    pub format: String,
    /// Integrated loudness, LUFS.
    pub loudness_lufs: Option<f32>,
    /// Where it came from.
    pub origin: Origin,
}

/// What adding a sound did.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// It is new in the library.
    New(SoundMeta),
    /// The same bytes were already there (under this record); nothing changed.
    AlreadyPresent(SoundMeta),
}

/// A change to a sound's metadata; `None` fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edit {
    /// New name (must be free).
    pub name: Option<String>,
    /// `Some(Some(k))` binds k (must be free), `Some(None)` unbinds.
    pub key: Option<Option<String>>,
    /// New own gain, dB.
    pub gain_db: Option<f32>,
    /// Tags to add.
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
}

/// An open library; holds the home lock while it lives.
pub struct Library {
    dir: PathBuf,
    blobs: BlobStore,
    store: MetaStore,
    sync: sync::SyncCell,
    views: share::ViewsCell,
    created: bool,
    _lock: HomeLock,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Library {
    /// Opens (creating) the library in `dir`, first taking the lock at `lock_file`.
    /// Temporary files a crash left behind are removed.
    pub fn open(dir: &Path, lock_file: &Path) -> Result<Library, LibraryError> {
        let lock = HomeLock::acquire(lock_file)?;
        let db_dir = dir.join("meta");
        let pending = dir.join(SETUP_PENDING);
        if !db_dir.exists() {
            std::fs::create_dir_all(dir).map_err(LibraryError::io(dir))?;
            std::fs::File::create(&pending)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::File::open(dir)?.sync_all())
                .map_err(LibraryError::io(&pending))?;
        }
        let created = pending.exists();
        let blob_dir = dir.join("blobs");
        let blobs = BlobStore::open(&blob_dir).map_err(LibraryError::io(&blob_dir))?;
        let store = MetaStore::open(&db_dir)?;
        Ok(Library {
            dir: dir.to_path_buf(),
            blobs,
            store,
            sync: sync::SyncCell::default(),
            views: share::ViewsCell::default(),
            created,
            _lock: lock,
        })
    }

    /// Whether this open created the library (a first run), or found a first run's
    /// setup unfinished.
    pub fn was_created(&self) -> bool {
        self.created
    }

    /// Records that a new library is set up: later opens are not first runs.
    pub fn finish_setup(&self) -> Result<(), LibraryError> {
        let pending = self.dir.join(SETUP_PENDING);
        match std::fs::remove_file(&pending) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(LibraryError::io(&pending)(e))
            }
            _ => Ok(()),
        }
    }

    /// The library directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The blob file of `id`.
    pub fn blob_path(&self, id: &SoundId) -> PathBuf {
        self.blobs.path(id)
    }

    /// Where blobs are, for readers on other threads (the network serving them): the
    /// file of an id when it is in place. Blobs are immutable once in place.
    pub fn blob_locator(&self) -> impl Fn(&SoundId) -> Option<PathBuf> + Send + Sync + 'static {
        let dir = self.dir.join("blobs");
        move |id: &SoundId| {
            let hex = id.to_hex();
            let p = dir.join(&hex[..2]).join(hex);
            p.is_file().then_some(p)
        }
    }

    /// Copies `src` into a temporary blob (hashed, fsynced), ready for [`Library::add`].
    pub fn stage_file(&self, src: &Path) -> Result<TempBlob, LibraryError> {
        let file = std::fs::File::open(src).map_err(LibraryError::io(src))?;
        let ext = src.extension().and_then(|e| e.to_str());
        self.blobs
            .write_temp(file, ext, MAX_SOUND_BYTES)
            .map_err(LibraryError::io(src))
    }

    /// Stages bytes held in memory.
    pub fn stage_bytes(&self, bytes: &[u8], ext: Option<&str>) -> Result<TempBlob, LibraryError> {
        self.blobs
            .write_temp(bytes, ext, MAX_SOUND_BYTES)
            .map_err(LibraryError::io(&self.dir))
    }

    /// The record of `id`, if it is in the library.
    pub fn get(&self, id: &SoundId) -> Result<Option<SoundMeta>, LibraryError> {
        Ok(self.store.get(id)?)
    }

    /// Adds a staged blob with its metadata: the blob goes in place first, then the
    /// record (name made unique) with its sync record, in one transaction, flushed.
    /// The same bytes listed as a remote sound (file elsewhere) get their file here.
    pub fn add(&self, temp: TempBlob, new: NewSound) -> Result<Added, LibraryError> {
        if let Some(mut existing) = self.store.get(&temp.id)? {
            if !self.blobs.contains(&temp.id) {
                let id = temp.id;
                let path = self.blobs.path(&id);
                self.blobs.install(temp).map_err(LibraryError::io(&path))?;
                existing.origin = new.origin;
                self.store.update(&existing)?;
                let now = now_ms();
                self.change(&std::collections::HashMap::new(), |r| {
                    r.set_holder(&id, true, now)
                })?;
            }
            return Ok(Added::AlreadyPresent(existing));
        }
        let name = clean_name(&new.name).map_err(LibraryError::Invalid)?;
        let key = new
            .key
            .as_deref()
            .map(names::clean_key)
            .transpose()
            .map_err(LibraryError::Invalid)?;
        let tags = clean_tags(&new.tags).map_err(LibraryError::Invalid)?;
        // A refused key stores nothing: the blob would be left belonging to no sound.
        self.key_free(key.as_deref(), &temp.id)?;
        let (id, size) = (temp.id, temp.size);
        let blob_path = self.blobs.path(&id);
        self.blobs
            .install(temp)
            .map_err(LibraryError::io(&blob_path))?;
        let mut meta = SoundMeta {
            id,
            name: name.clone(),
            tags,
            key,
            gain_db: new.gain_db,
            frames: new.frames,
            sample_rate: new.sample_rate,
            channels: new.channels,
            format: new.format,
            size,
            added_ms: now_ms(),
            loudness_lufs: new.loudness_lufs,
            last_played_ms: None,
            origin: new.origin,
        };
        let facts = sync::facts_of(&meta);
        let now = meta.added_ms;
        let bases = std::iter::once((id, meta.clone())).collect();
        let (_, done) = self.change(&bases, |r| {
            for n in 1u32.. {
                let candidate = names::numbered(&name, n);
                if r.name_free(&candidate) {
                    meta.name = candidate;
                    break;
                }
            }
            let mut fixes = r.import_with(
                id,
                facts,
                &meta.name,
                meta.key.as_deref(),
                meta.gain_db,
                &meta.tags,
                now,
            );
            fixes.extend(r.set_holder(&id, true, now).unwrap_or_default());
            fixes
        })?;
        let added = done
            .changed
            .into_iter()
            .find(|m| m.id == id)
            .unwrap_or(meta);
        Ok(Added::New(added))
    }

    /// Refuses a key another sound holds.
    fn key_free(&self, key: Option<&str>, id: &SoundId) -> Result<(), LibraryError> {
        if let Some(k) = key
            && let Some(holder) = self.store.by_key(k)?
            && holder != *id
        {
            let holder = self
                .get(&holder)?
                .map_or_else(|| holder.short(), |m| m.name);
            return Err(StoreError::KeyTaken {
                key: k.to_string(),
                holder,
            }
            .into());
        }
        Ok(())
    }

    /// Every sound, sorted by name (case-insensitive).
    pub fn list(&self) -> Result<Vec<SoundMeta>, LibraryError> {
        let (mut all, damaged) = self.store.all()?;
        for d in damaged {
            tracing::warn!(
                "library: the record {} is damaged; `jhack check` reports it",
                d.key
            );
        }
        all.sort_by_cached_key(|m| (m.name.to_lowercase(), m.name.clone()));
        Ok(all)
    }

    /// How many sounds there are.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the library holds no sounds.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The sound bound to `key`.
    pub fn by_key(&self, key: &str) -> Result<Option<SoundMeta>, LibraryError> {
        match self.store.by_key(key)? {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    /// Applies `edit` to the sound `id` (a replicated change); returns the new record.
    pub fn edit(&self, id: &SoundId, edit: &Edit) -> Result<SoundMeta, LibraryError> {
        let mut meta = self
            .store
            .get(id)?
            .ok_or_else(|| StoreError::Missing(id.short()))?;
        let old = meta.clone();
        if let Some(name) = &edit.name {
            meta.name = clean_name(name).map_err(LibraryError::Invalid)?;
            if let Some(holder) = self.store.by_name(&meta.name)?
                && holder != *id
            {
                return Err(StoreError::NameTaken(meta.name).into());
            }
        }
        if let Some(key) = &edit.key {
            meta.key = key
                .as_deref()
                .map(names::clean_key)
                .transpose()
                .map_err(LibraryError::Invalid)?;
            self.key_free(meta.key.as_deref(), id)?;
        }
        if let Some(g) = edit.gain_db {
            if !g.is_finite() || !(-60.0..=40.0).contains(&g) {
                return Err(LibraryError::Invalid(format!(
                    "gain {g} dB is out of range (-60 to 40)"
                )));
            }
            meta.gain_db = g;
        }
        let mut tags = meta.tags.clone();
        tags.extend(edit.add_tags.iter().cloned());
        let drop = clean_tags(&edit.remove_tags).map_err(LibraryError::Invalid)?;
        tags.retain(|t| !drop.contains(t));
        meta.tags = clean_tags(&tags).map_err(LibraryError::Invalid)?;
        let now = now_ms();
        let (_, done) = self.change(&std::collections::HashMap::new(), |r| {
            if meta.name != old.name {
                r.rename(id, &meta.name, now);
            }
            if meta.key != old.key {
                r.bind(id, meta.key.as_deref(), now);
            }
            if meta.gain_db != old.gain_db {
                r.set_gain(id, meta.gain_db, now);
            }
            for t in meta.tags.iter().filter(|t| !old.tags.contains(t)) {
                r.tag(id, t, true, now);
            }
            for t in old.tags.iter().filter(|t| !meta.tags.contains(t)) {
                r.tag(id, t, false, now);
            }
        })?;
        Ok(done
            .changed
            .into_iter()
            .find(|m| m.id == *id)
            .unwrap_or(meta))
    }

    /// Records that `id` was just played (for cache eviction order).
    pub fn mark_played(&self, id: &SoundId) -> Result<(), LibraryError> {
        if let Some(mut meta) = self.store.get(id)? {
            meta.last_played_ms = Some(now_ms());
            self.store.update(&meta)?;
        }
        Ok(())
    }

    /// Removes a sound (a replicated delete): its record first (flushed, with its
    /// tombstone), then its blob.
    pub fn remove(&self, id: &SoundId) -> Result<Option<SoundMeta>, LibraryError> {
        let Some(old) = self.store.get(id)? else {
            return Ok(None);
        };
        let now = now_ms();
        self.change(&std::collections::HashMap::new(), |r| r.delete(id, now))?;
        if self.store.get(id)?.is_some() {
            // No sync record (cannot happen once adopted): remove the listing itself.
            self.store.remove(id)?;
            self.store.flush()?;
            let path = self.blobs.path(id);
            self.blobs.remove(id).map_err(LibraryError::io(&path))?;
        }
        Ok(Some(old))
    }

    /// Pins (or unpins) `id` on this machine: its file is fetched ahead and never
    /// evicted. Sounds bound to keys are pinned anyway.
    pub fn set_pin(&self, id: &SoundId, on: bool) -> Result<(), LibraryError> {
        if self.store.get(id)?.is_none() && !self.shared_sounds()?.iter().any(|s| s.sound.id == *id)
        {
            return Err(StoreError::Missing(id.short()).into());
        }
        Ok(self.store.set_pin(id, on)?)
    }

    /// The sounds pinned by hand on this machine.
    pub fn pins(&self) -> Result<std::collections::HashSet<SoundId>, LibraryError> {
        Ok(self.store.pins()?)
    }

    /// Takes the files of listed sounds fetched from peers — each already verified
    /// against its id and fsynced — into the library by moving them into place (no
    /// copy, no second hash), then records this machine as holding them, all in one
    /// commit. With `for_good` they are kept like local sounds (never evicted).
    /// Files of sounds not listed, or already here, are left where they are.
    /// Returns the sounds whose files are here now.
    pub fn adopt_fetched(
        &self,
        files: &[(SoundId, PathBuf)],
        for_good: bool,
    ) -> Result<Vec<SoundId>, LibraryError> {
        let mut wanted = Vec::with_capacity(files.len());
        let mut bases = std::collections::HashMap::new();
        for (id, path) in files {
            if let Some(mut m) = self.store.get(id)? {
                if for_good {
                    m.origin = Origin::Local;
                }
                bases.insert(*id, m);
                wanted.push((*id, path.clone()));
            }
        }
        self.blobs
            .adopt(&wanted)
            .map_err(LibraryError::io(self.blobs.dir()))?;
        // Here now, whether just moved or left in place by a run cut short between
        // its move and its commit.
        let placed: Vec<SoundId> = wanted
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| self.blobs.contains(id))
            .collect();
        let here: std::collections::HashSet<&SoundId> = placed.iter().collect();
        bases.retain(|id, _| here.contains(id));
        let now = now_ms();
        self.change(&bases, |r| {
            for id in &placed {
                r.set_holder(id, true, now);
            }
        })?;
        Ok(placed)
    }

    /// Whether the file of `id` is here.
    pub fn has_file(&self, id: &SoundId) -> bool {
        self.blobs.contains(id)
    }

    /// Verifies every blob against its id and every record against its indexes.
    pub fn check(&self) -> Result<CheckReport, LibraryError> {
        let mut report = check::run(&self.store, &self.blobs)?;
        report
            .problems
            .extend(self.sync_problems()?.into_iter().map(Problem::Sync));
        // The kept files of sounds shared with us are verified too.
        let mut seen = std::collections::HashSet::new();
        for s in self.shared_sounds()? {
            let id = s.sound.id;
            if !seen.insert(id) || self.store.get(&id)?.is_some() {
                continue;
            }
            let path = self.blobs.path(&id);
            match self.blobs.verify(&id).map_err(LibraryError::io(&path))? {
                BlobState::Missing => {}
                BlobState::Intact(size) => {
                    report.shared_here += 1;
                    report.bytes += size;
                    report.unlisted_blobs = report.unlisted_blobs.saturating_sub(1);
                }
                BlobState::Corrupt { .. } => {
                    report.unlisted_blobs = report.unlisted_blobs.saturating_sub(1);
                    report.problems.push(Problem::CorruptBlob {
                        name: s.listed_name(),
                        id,
                    });
                }
            }
        }
        Ok(report)
    }

    /// The sounds that came from peers, as entries for the disk budget (bound keys
    /// and pins by hand keep them).
    pub fn remote_entries(&self) -> Result<Vec<DiskEntry<SoundId>>, LibraryError> {
        let (all, _) = self.store.all()?;
        let pins = self.store.pins()?;
        // The last known copy is never dropped: a file no mirror we know holds counts
        // as pinned. Only the devices of mirrors in the trust store count (learned
        // from each as it syncs, forgotten when it is no longer a mirror): a holder
        // that was removed, or wiped and started a new library, says nothing.
        let mut others: std::collections::HashSet<crate::sync::hlc::Device> = self
            .store
            .mirror_devices()?
            .into_iter()
            .map(|(_, d)| d)
            .collect();
        let guard = self.replica()?;
        if let Some(r) = guard.as_ref() {
            others.remove(&r.device());
        }
        let only_here = |id: &SoundId| {
            guard
                .as_ref()
                .is_none_or(|r| r.get(id).is_none_or(|rec| !rec.held_by_any(&others)))
        };
        let mut entries: Vec<DiskEntry<SoundId>> = all
            .iter()
            .filter(|m| m.origin == Origin::Remote && self.blobs.contains(&m.id))
            .map(|m| DiskEntry {
                id: m.id,
                size_bytes: m.size,
                last_used_ms: m.last_played_ms.unwrap_or(m.added_ms),
                pinned: m.key.is_some() || pins.contains(&m.id) || only_here(&m.id),
            })
            .collect();
        drop(guard);
        // Files of sounds others share with us: their owners keep them, so any may
        // go; the least recently kept first.
        let ours: std::collections::HashSet<SoundId> = all.iter().map(|m| m.id).collect();
        let mut seen = std::collections::HashSet::new();
        for s in self.shared_sounds()? {
            let id = s.sound.id;
            if ours.contains(&id) || !seen.insert(id) || !self.blobs.contains(&id) {
                continue;
            }
            let kept_ms = std::fs::metadata(self.blobs.path(&id))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            entries.push(DiskEntry {
                id,
                size_bytes: s.sound.facts.size,
                last_used_ms: kept_ms,
                pinned: pins.contains(&id),
            });
        }
        Ok(entries)
    }

    /// Deletes the files of the least recently used unpinned remote sounds until
    /// they fit `budget`; their records stay (listed as remote, fetched again when
    /// played). Local sounds are never touched, nor a file no other known device
    /// holds (the last copy). Returns what was dropped.
    pub fn enforce_remote_budget(
        &self,
        budget: &DiskBudget,
    ) -> Result<Vec<SoundMeta>, LibraryError> {
        let entries = self.remote_entries()?;
        let mut removed = Vec::new();
        let now = now_ms();
        for id in budget.evictions(&entries) {
            if let Some(m) = self.get(&id)? {
                // Told first (a crash between leaves a file no one counts on), then
                // the file goes.
                self.change(&std::collections::HashMap::new(), |r| {
                    r.set_holder(&id, false, now)
                })?;
                let path = self.blobs.path(&id);
                self.blobs.remove(&id).map_err(LibraryError::io(&path))?;
                removed.push(m);
            } else {
                // A shared sound's file (not ours: no record to tell).
                let path = self.blobs.path(&id);
                self.blobs.remove(&id).map_err(LibraryError::io(&path))?;
                tracing::info!(
                    "removed the file of the shared sound {} to stay within cache.remote_mb",
                    id.short()
                );
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sound(name: &str, origin: Origin, key: Option<&str>) -> NewSound {
        NewSound {
            name: name.into(),
            tags: vec![],
            key: key.map(Into::into),
            gain_db: 0.0,
            frames: 48_000,
            sample_rate: 48_000,
            channels: 1,
            format: "wav/pcm_s16le".into(),
            loudness_lufs: None,
            origin,
        }
    }

    #[test]
    fn the_remote_budget_evicts_least_recently_played_remote_sounds_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = Library::open(&dir.path().join("lib"), &dir.path().join("lock")).expect("open");
        let mut ids = Vec::new();
        for (i, (name, origin, key)) in [
            ("local", Origin::Local, None),
            ("old", Origin::Remote, None),
            ("pinned", Origin::Remote, Some("p")),
            ("newer", Origin::Remote, None),
        ]
        .into_iter()
        .enumerate()
        {
            // 1000 distinct bytes each.
            let bytes: Vec<u8> = (0..1000u32).map(|b| (b * (i as u32 + 3)) as u8).collect();
            let temp = lib.stage_bytes(&bytes, Some("wav")).expect("stage");
            let Added::New(m) = lib.add(temp, sound(name, origin, key)).expect("add") else {
                panic!("new bytes");
            };
            ids.push(m.id);
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        // Nothing is evicted while this is the only copy.
        assert!(
            lib.enforce_remote_budget(&DiskBudget::new(0))
                .expect("enforce")
                .is_empty()
        );
        // Another machine holds the remote sounds' files too, and says so.
        let other =
            Library::open(&dir.path().join("other"), &dir.path().join("lock2")).expect("open");
        sync::pull(&lib, &other);
        for (i, name) in [(1u32, "old"), (2, "pinned"), (3, "newer")] {
            let bytes: Vec<u8> = (0..1000u32).map(|b| (b * (i + 3)) as u8).collect();
            let temp = other.stage_bytes(&bytes, Some("wav")).expect("stage");
            other
                .add(temp, sound(name, Origin::Local, None))
                .expect("add");
        }
        sync::pull(&other, &lib);
        // Its word counts only once it is known as a mirror's: a stranger's claim,
        // or one of a mirror since removed (or wiped), keeps every file.
        assert!(
            lib.enforce_remote_budget(&DiskBudget::new(0))
                .expect("enforce")
                .is_empty(),
            "a holder of unknown device keeps nothing from being dropped"
        );
        let mirror = [9u8; 20];
        lib.set_mirror_device(&mirror, other.sync_device().expect("device"))
            .expect("device");
        lib.mark_played(&ids[3]).expect("played");
        // Room for two remote sounds: the pinned one stays, the oldest unpinned goes.
        let removed = lib
            .enforce_remote_budget(&DiskBudget::new(2000))
            .expect("enforce");
        let names: Vec<&str> = removed.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["old"]);
        assert!(!lib.blob_path(&ids[1]).exists(), "its file is deleted");
        assert!(lib.get(&ids[1]).expect("get").is_some(), "it stays listed");
        for id in [ids[0], ids[2], ids[3]] {
            assert!(lib.get(&id).expect("get").is_some());
            assert!(lib.blob_path(&id).exists());
        }
        // No room at all: every unpinned remote sound goes, local and pinned stay.
        let removed = lib
            .enforce_remote_budget(&DiskBudget::new(0))
            .expect("enforce");
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].name, "newer");
        assert_eq!(lib.len(), 4);
        assert!(!lib.has_file(&ids[3]));
        // A pin by hand keeps a file like a key does.
        let temp = lib.stage_bytes(&[7u8; 1500], Some("wav")).expect("stage");
        let Added::New(kept) = lib
            .add(temp, sound("kept", Origin::Remote, None))
            .expect("add")
        else {
            panic!("new bytes");
        };
        let temp = other.stage_bytes(&[7u8; 1500], Some("wav")).expect("stage");
        other
            .add(temp, sound("kept", Origin::Local, None))
            .expect("add");
        sync::pull(&other, &lib);
        lib.set_pin(&kept.id, true).expect("pin");
        assert!(
            lib.enforce_remote_budget(&DiskBudget::new(0))
                .expect("enforce")
                .is_empty()
        );
        assert!(lib.has_file(&kept.id));
        lib.set_pin(&kept.id, false).expect("unpin");
        // The mirror is forgotten (removed from the trust store): its word no longer
        // counts, so the unpinned file stays as the last copy known here.
        assert!(lib.forget_mirror_device(&mirror).expect("forget"));
        assert!(!lib.forget_mirror_device(&mirror).expect("forget"));
        assert!(
            lib.enforce_remote_budget(&DiskBudget::new(0))
                .expect("enforce")
                .is_empty()
        );
        // Known again (it synced): the file may go.
        lib.set_mirror_device(&mirror, other.sync_device().expect("device"))
            .expect("device");
        assert_eq!(lib.mirror_device_peers().expect("peers"), vec![mirror]);
        assert_eq!(
            lib.enforce_remote_budget(&DiskBudget::new(0))
                .expect("enforce")
                .len(),
            1
        );
        assert!(lib.check().expect("check").is_clean());
    }

    #[test]
    fn a_mirror_device_survives_reopening_and_is_kept_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lib");
        let lock = dir.path().join("lock");
        let peer = [3u8; 20];
        {
            let lib = Library::open(&path, &lock).expect("open");
            lib.set_mirror_device(&peer, crate::sync::hlc::Device(42))
                .expect("set");
            lib.set_mirror_device(&peer, crate::sync::hlc::Device(42))
                .expect("set again");
        }
        let lib = Library::open(&path, &lock).expect("reopen");
        assert_eq!(lib.mirror_device_peers().expect("peers"), vec![peer]);
        // A wiped mirror comes back with a new library: the new number replaces it.
        lib.set_mirror_device(&peer, crate::sync::hlc::Device(43))
            .expect("set");
        assert_eq!(
            lib.store.mirror_devices().expect("devices"),
            vec![(peer, crate::sync::hlc::Device(43))]
        );
    }
}
