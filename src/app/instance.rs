//! A running jhack instance: the engine, the library and the sound bank, owned by
//! one thread (the interface's loop, or a headless server's) and changed only
//! through the methods here.
//!
//! A play uses the bank when the sound is decoded there (the first sample is in the
//! next callback); otherwise it streams from the sound's file at once and asks the
//! bank to decode it for next time. Switching a device restarts the engine on the
//! new device and re-banks for its format; the library is untouched. Nothing here
//! blocks for long: decoding is the bank's thread, streaming the feeder's.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::audio::{DeviceInfo, DeviceSpec, Engine, EngineConfig, EngineError, VoiceId};
use crate::config::Config;
use crate::domain::{Decibels, SoundId, SoundMeta, chain};
use crate::library::{Edit, Library, LibraryError, LookupError, StoreError};

use super::bank::{BankRequest, SoundBank};
use super::player::{self, OpenedFile, PlayingFile};
use super::recorder::Recorder;

/// Gain steps of `[` and `]`, dB.
pub const GAIN_STEP_DB: f32 = 1.0;

/// Why an instance action failed, in words for the interface's message line.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// The engine failed or refused.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The library failed or refused.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// A lookup found no single sound.
    #[error("{target}: {source}")]
    Lookup {
        /// What was asked for.
        target: String,
        /// Why.
        #[source]
        source: LookupError,
    },
    /// A sound's file could not be played.
    #[error("{name}: {reason}")]
    Unplayable {
        /// The sound.
        name: String,
        /// Why.
        reason: String,
    },
    /// A key is bound to another sound.
    #[error("key {key} is bound to {holder}")]
    KeyTaken {
        /// The key.
        key: String,
        /// The sound holding it.
        holder: String,
    },
    /// Recording failed.
    #[error("recording: {0}")]
    Record(String),
    /// A sound someone shares with us: it stays theirs.
    #[error(
        "{name} is shared with you by {owner} and stays theirs: copy it into your library (jhack copy \"{name}\") to change it"
    )]
    NotOurs {
        /// The sound as listed here.
        name: String,
        /// Whose it is.
        owner: String,
    },
    /// The bank's thread could not start.
    #[error("cannot start the sound bank")]
    Thread(#[source] std::io::Error),
}

/// What the interface shows about the audio side.
#[derive(Debug, Clone)]
pub struct AudioStatus {
    /// What the engine runs on.
    pub info: crate::audio::EngineInfo,
    /// Its counters.
    pub stats: crate::audio::StatsSnapshot,
}

/// A recording in progress.
struct Recording {
    rec: Recorder,
    path: PathBuf,
    started: Instant,
}

/// A running instance. See the module documentation.
pub struct Instance {
    config: Config,
    engine_config: EngineConfig,
    engine: Arc<Engine>,
    lib: Arc<Library>,
    bank: SoundBank,
    sounds: Vec<SoundMeta>,
    /// Listed sounds whose files are elsewhere.
    remote: HashSet<SoundId>,
    /// Sounds pinned by hand here.
    pinned: HashSet<SoundId>,
    /// Sounds others share with us (listed after ours, as `owner/name`), with the
    /// owners that offer each.
    shared: HashMap<SoundId, crate::library::SharedBy>,
    /// Voices playing banked sounds.
    voices: HashMap<VoiceId, SoundId>,
    /// Sounds streaming from their files.
    streams: Vec<(SoundId, PlayingFile)>,
    recording: Option<Recording>,
    /// Where recordings are written before they are imported.
    recordings_dir: PathBuf,
}

impl Instance {
    /// Starts the engine and the bank, and banks every sound bound to a key.
    pub fn start(
        config: Config,
        engine_config: EngineConfig,
        lib: Library,
        recordings_dir: PathBuf,
    ) -> Result<Instance, InstanceError> {
        let engine = Arc::new(Engine::start(engine_config.clone())?);
        let bank = SoundBank::new(engine.format(), config.cache.decoded_bytes())
            .map_err(InstanceError::Thread)?;
        let mut me = Instance {
            config,
            engine_config,
            engine,
            lib: Arc::new(lib),
            bank,
            sounds: Vec::new(),
            remote: HashSet::new(),
            pinned: HashSet::new(),
            shared: HashMap::new(),
            voices: HashMap::new(),
            streams: Vec::new(),
            recording: None,
            recordings_dir,
        };
        me.reload()?;
        me.bank_keyed();
        Ok(me)
    }

    /// Re-reads the sound list from the library (and which files are elsewhere).
    pub fn reload(&mut self) -> Result<(), InstanceError> {
        let (sounds, shared) = self.lib.list_with_shared()?;
        self.sounds = sounds;
        self.shared = shared;
        self.remote = self
            .sounds
            .iter()
            .filter(|m| !self.lib.has_file(&m.id))
            .map(|m| m.id)
            .collect();
        self.pinned = self.lib.pins()?;
        Ok(())
    }

    /// The sounds pinned by hand on this machine (keyed sounds are pinned anyway).
    pub fn pinned(&self) -> &HashSet<SoundId> {
        &self.pinned
    }

    /// Pins or unpins `id` here (as `jhack pin` / `jhack unpin`).
    pub fn set_pin(&mut self, id: &SoundId, on: bool) -> Result<(), InstanceError> {
        self.lib.set_pin(id, on)?;
        self.reload()
    }

    /// The owners (peer ids' bytes) that share `id` with us, when it is a sound
    /// others share with us rather than ours.
    pub fn shared_by(&self, id: &SoundId) -> Option<&[crate::library::Owner]> {
        self.shared.get(id).map(|s| s.owners.as_slice())
    }

    /// The sounds others share with us, each with whose it is (for listings).
    pub fn owners(&self) -> Vec<(SoundId, String)> {
        self.shared
            .iter()
            .map(|(id, by)| (*id, by.owner_name.clone()))
            .collect()
    }

    /// Copies `id`, a sound someone shares with us whose file is here, into our
    /// library (named `name`, or its own name there): from now on it is ours.
    pub fn copy_shared(
        &mut self,
        id: &SoundId,
        name: Option<&str>,
    ) -> Result<SoundMeta, InstanceError> {
        let meta = self.lib.copy_shared(id, name)?;
        self.reload()?;
        Ok(meta)
    }

    /// Refuses a change to a sound that is not ours.
    fn ours(&self, id: &SoundId) -> Result<(), InstanceError> {
        match self.shared.get(id) {
            Some(s) => Err(InstanceError::NotOurs {
                name: self
                    .sounds
                    .iter()
                    .find(|m| m.id == *id)
                    .map_or_else(|| id.short(), |m| m.name.clone()),
                owner: s.owner_name.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The sounds whose files are on other machines (remote sounds), as of the last
    /// reload.
    pub fn remote(&self) -> &HashSet<SoundId> {
        &self.remote
    }

    fn bank_keyed(&self) {
        for m in self
            .sounds
            .iter()
            .filter(|m| m.key.is_some() && self.lib.has_file(&m.id))
        {
            self.bank.request(self.bank_request(m, true));
        }
    }

    fn bank_request(&self, m: &SoundMeta, pinned: bool) -> BankRequest {
        BankRequest {
            id: m.id,
            path: self.lib.blob_path(&m.id),
            seconds: Some(m.duration_secs()),
            pinned,
        }
    }

    /// The library's sounds, sorted by name.
    pub fn sounds(&self) -> &[SoundMeta] {
        &self.sounds
    }

    /// The library.
    pub fn library(&self) -> &Library {
        &self.lib
    }

    /// The library, for threads that work on it beside the owner's (library sync).
    pub fn library_shared(&self) -> Arc<Library> {
        self.lib.clone()
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The engine (for taps and meters).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine, shared (a call's threads hold it). After a device switch this is
    /// another engine: whoever holds the old one must take the new one.
    pub fn engine_shared(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// The bank (for its counters).
    pub fn bank(&self) -> &SoundBank {
        &self.bank
    }

    /// The sound bound to `key`.
    pub fn sound_for_key(&self, key: &str) -> Option<&SoundMeta> {
        self.sounds.iter().find(|m| m.key.as_deref() == Some(key))
    }

    /// The sound `target` names (name or id prefix).
    pub fn resolve(&self, target: &str) -> Result<SoundMeta, InstanceError> {
        self.lib.resolve(target).or_else(|source| {
            // A sound shared with us, by the name it is listed under (`owner/name`).
            let t = target.trim().to_lowercase();
            self.sounds
                .iter()
                .find(|m| self.shared.contains_key(&m.id) && m.name.to_lowercase() == t)
                .cloned()
                .ok_or_else(|| InstanceError::Lookup {
                    target: target.to_string(),
                    source,
                })
        })
    }

    /// Plays `id` here at its normalised gain plus `extra_db`.
    pub fn play(&mut self, id: &SoundId, extra_db: f32) -> Result<VoiceId, InstanceError> {
        self.play_triggered(id, extra_db, Instant::now())
    }

    /// Like [`Instance::play`], for a play asked for at `trigger` (a key press): the
    /// engine's trigger latency counts from then.
    pub fn play_triggered(
        &mut self,
        id: &SoundId,
        extra_db: f32,
        trigger: Instant,
    ) -> Result<VoiceId, InstanceError> {
        let Some(meta) = self.sounds.iter().find(|m| m.id == *id).cloned() else {
            return Err(InstanceError::Unplayable {
                name: id.short(),
                reason: "not in the library".into(),
            });
        };
        let norm = self.config.playback.normalization_gain(meta.loudness_lufs);
        let gain = Decibels(norm.0 + meta.gain_db + extra_db).to_amplitude();
        let voice = if let Some(samples) = self.bank.get(id) {
            let opts = crate::audio::PlayOptions {
                gain,
                trigger: Some(trigger),
                ..crate::audio::PlayOptions::default()
            };
            let v = self
                .engine
                .play(crate::audio::VoiceSource::Buffer(samples), opts)?;
            self.voices.insert(v, meta.id);
            v
        } else {
            let path = self.lib.blob_path(id);
            let file = OpenedFile::open(&path, self.engine.format()).map_err(|e| {
                InstanceError::Unplayable {
                    name: meta.name.clone(),
                    reason: e.reason(),
                }
            })?;
            let playing = player::play(&self.engine, file, gain, None).map_err(|e| match e {
                player::PlayError::Engine(e) => InstanceError::Engine(e),
                e => InstanceError::Unplayable {
                    name: meta.name.clone(),
                    reason: chain(&e),
                },
            })?;
            let v = playing.id;
            self.streams.push((meta.id, playing));
            self.bank
                .request(self.bank_request(&meta, meta.key.is_some()));
            v
        };
        let _ = self.lib.mark_played(id);
        Ok(voice)
    }

    /// Whether the library holds `id` with its file here (not a remote sound).
    pub fn has_sound(&self, id: &SoundId) -> bool {
        self.sounds.iter().any(|m| m.id == *id) && !self.remote.contains(id)
    }

    /// The gain a peer's trigger of a sound it sends plays at, dB: normalised from the
    /// loudness it announces, then its requested gain capped at
    /// `playback.remote_max_gain_db`.
    pub fn remote_gain_db(&self, loudness_lufs: Option<f32>, requested_db: f32) -> f32 {
        self.config.playback.normalization_gain(loudness_lufs).0
            + self.capped_remote_db(requested_db)
    }

    /// A peer's requested gain, capped.
    pub fn capped_remote_db(&self, requested_db: f32) -> f32 {
        requested_db.min(self.config.playback.remote_max_gain_db)
    }

    /// Starts a voice prepared off this thread (a sound arriving from a peer) at
    /// `gain_db`; `trigger` is when the play was asked for.
    pub fn play_prepared(
        &mut self,
        id: SoundId,
        prepared: player::Prepared,
        gain_db: f32,
        trigger: Instant,
    ) -> Result<VoiceId, InstanceError> {
        let gain = Decibels(gain_db).to_amplitude();
        let playing = player::start(&self.engine, prepared, gain, None, Some(trigger)).map_err(
            |e| match e {
                player::PlayError::Engine(e) => InstanceError::Engine(e),
                e => InstanceError::Unplayable {
                    name: id.short(),
                    reason: chain(&e),
                },
            },
        )?;
        let v = playing.id;
        self.streams.push((id, playing));
        Ok(v)
    }

    /// Keeps a verified blob fetched from a peer as a remote sound (evictable within
    /// `cache.remote_mb`); the file at `path` is copied, hashed again and left in place.
    pub fn keep_remote(
        &mut self,
        path: &std::path::Path,
        new: crate::library::NewSound,
    ) -> Result<SoundMeta, InstanceError> {
        let temp = self.lib.stage_file(path)?;
        let meta = match self.lib.add(temp, new)? {
            crate::library::Added::New(m) | crate::library::Added::AlreadyPresent(m) => m,
        };
        let budget = crate::cache::DiskBudget::new(self.config.cache.remote_bytes());
        for gone in self.lib.enforce_remote_budget(&budget)? {
            tracing::info!(
                "removed the remote sound \"{}\" to stay within cache.remote_mb",
                gone.name
            );
        }
        self.reload()?;
        Ok(meta)
    }

    /// Keeps the verified file of `id`, a sound someone shares with us (as theirs:
    /// a file alone, within the remote-sound budget).
    pub fn keep_shared(
        &mut self,
        path: &std::path::Path,
        id: &SoundId,
    ) -> Result<(), InstanceError> {
        let temp = self.lib.stage_file(path)?;
        if temp.id != *id {
            return Err(InstanceError::Unplayable {
                name: id.short(),
                reason: format!("the transfer hashed to {}, not to its id", temp.id.short()),
            });
        }
        self.lib.keep_shared_file(temp)?;
        let budget = crate::cache::DiskBudget::new(self.config.cache.remote_bytes());
        self.lib.enforce_remote_budget(&budget)?;
        self.reload()
    }

    /// Fades out everything playing.
    pub fn stop_all(&mut self) {
        self.engine.stop_all();
    }

    /// Forgets voices that ended and finishes their streams; returns whether the set
    /// of playing sounds changed.
    pub fn poll(&mut self) -> bool {
        use crate::audio::VoiceState;
        let engine = &self.engine;
        let ended = |v: &VoiceId| matches!(engine.state(*v), Some(VoiceState::Ended(_)) | None);
        let before = self.voices.len() + self.streams.len();
        self.voices.retain(|v, _| !ended(v));
        let mut i = 0;
        while i < self.streams.len() {
            if ended(&self.streams[i].1.id) {
                let (_, p) = self.streams.swap_remove(i);
                let _ = p.finish();
            } else {
                i += 1;
            }
        }
        before != self.voices.len() + self.streams.len()
    }

    /// The sounds playing now.
    pub fn playing(&self) -> HashSet<SoundId> {
        self.voices
            .values()
            .copied()
            .chain(self.streams.iter().map(|(id, _)| *id))
            .collect()
    }

    /// Binds `key` to `id`; a key bound elsewhere is a conflict, never overwritten.
    pub fn bind(&mut self, id: &SoundId, key: &str) -> Result<SoundMeta, InstanceError> {
        self.ours(id)?;
        let key = crate::config::normalize_key(key).unwrap_or_else(|| key.to_string());
        if let Some(holder) = self.sound_for_key(&key)
            && holder.id != *id
        {
            return Err(InstanceError::KeyTaken {
                key,
                holder: holder.name.clone(),
            });
        }
        let edit = Edit {
            key: Some(Some(key)),
            ..Edit::default()
        };
        let m = self.lib.edit(id, &edit).map_err(|e| match e {
            LibraryError::Store(StoreError::KeyTaken { key, holder }) => {
                InstanceError::KeyTaken { key, holder }
            }
            e => InstanceError::Library(e),
        })?;
        self.bank.request(self.bank_request(&m, true));
        self.reload()?;
        Ok(m)
    }

    /// Applies `edit` to `id` (as `jhack edit`), keeping the bank's pins in step.
    pub fn edit(&mut self, id: &SoundId, edit: &Edit) -> Result<SoundMeta, InstanceError> {
        self.ours(id)?;
        let m = self.lib.edit(id, edit).map_err(|e| match e {
            LibraryError::Store(StoreError::KeyTaken { key, holder }) => {
                InstanceError::KeyTaken { key, holder }
            }
            e => InstanceError::Library(e),
        })?;
        if m.key.is_some() {
            self.bank.request(self.bank_request(&m, true));
        } else {
            self.bank.unpin(id);
        }
        self.reload()?;
        Ok(m)
    }

    /// Removes `id` from the library (as `jhack rm`).
    pub fn remove(&mut self, id: &SoundId) -> Result<Option<SoundMeta>, InstanceError> {
        self.ours(id)?;
        self.bank.unpin(id);
        let m = self.lib.remove(id)?;
        self.reload()?;
        Ok(m)
    }

    /// Removes the key of `id`.
    pub fn unbind(&mut self, id: &SoundId) -> Result<SoundMeta, InstanceError> {
        self.ours(id)?;
        let edit = Edit {
            key: Some(None),
            ..Edit::default()
        };
        let m = self.lib.edit(id, &edit)?;
        self.bank.unpin(id);
        self.reload()?;
        Ok(m)
    }

    /// Changes the own gain of `id` by `delta_db` (kept within -60..+40 dB).
    pub fn nudge_gain(&mut self, id: &SoundId, delta_db: f32) -> Result<SoundMeta, InstanceError> {
        self.ours(id)?;
        let Some(m) = self.sounds.iter().find(|m| m.id == *id) else {
            return Err(InstanceError::Unplayable {
                name: id.short(),
                reason: "not in the library".into(),
            });
        };
        let g = (m.gain_db + delta_db).clamp(-60.0, 40.0);
        let edit = Edit {
            gain_db: Some((g * 10.0).round() / 10.0),
            ..Edit::default()
        };
        let m = self.lib.edit(id, &edit)?;
        self.reload()?;
        Ok(m)
    }

    /// Imports files into the library (and refreshes the list).
    pub fn import(
        &mut self,
        paths: &[PathBuf],
        opts: &super::import::ImportOptions,
    ) -> Result<ImportSummary, InstanceError> {
        use super::import::{Imported, collect_files, import_file};
        let (files, errors) = collect_files(paths);
        let mut s = ImportSummary {
            failed: errors.iter().map(|e| chain(e)).collect(),
            ..ImportSummary::default()
        };
        for f in &files {
            match import_file(&self.lib, f, opts) {
                Ok(Imported::New(m)) => {
                    if m.key.is_some() {
                        self.bank.request(self.bank_request(&m, true));
                    }
                    s.imported += 1;
                }
                Ok(Imported::AlreadyPresent(_)) => s.already_present += 1,
                Err(e) => s.failed.push(chain(&e)),
            }
        }
        self.reload()?;
        Ok(s)
    }

    /// Whether a recording is running, and for how long.
    pub fn recording_for(&self) -> Option<Duration> {
        self.recording.as_ref().map(|r| r.started.elapsed())
    }

    /// Starts recording the input into a file under the recordings folder.
    pub fn start_recording(&mut self) -> Result<(), InstanceError> {
        if self.recording.is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.recordings_dir)
            .map_err(|e| InstanceError::Record(e.to_string()))?;
        let name = format!("recording-{}.wav", crate::library::now_ms());
        let path = self.recordings_dir.join(name);
        let rec = Recorder::start(&self.engine, &path, None, None)
            .map_err(|e| InstanceError::Record(chain(&e)))?;
        self.recording = Some(Recording {
            rec,
            path,
            started: Instant::now(),
        });
        Ok(())
    }

    /// Ends the recording; the file is kept until it is saved (or discarded).
    pub fn stop_recording(&mut self) -> Result<Option<PathBuf>, InstanceError> {
        let Some(r) = self.recording.take() else {
            return Ok(None);
        };
        r.rec
            .finish()
            .map_err(|e| InstanceError::Record(chain(&e)))?;
        Ok(Some(r.path))
    }

    /// The file of a stopped recording named by its take (its file name, as
    /// [`Instance::stop_recording`] made it). Anything else — a path, another
    /// file, a take already saved — is refused: a take may come from a peer.
    pub fn take_path(&self, take: &str) -> Result<PathBuf, InstanceError> {
        let well_formed = take
            .strip_prefix("recording-")
            .and_then(|t| t.strip_suffix(".wav"))
            .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()));
        let path = self.recordings_dir.join(take);
        if !well_formed || !path.is_file() {
            return Err(InstanceError::Record(format!(
                "no stopped recording \"{}\" here",
                take.escape_debug()
            )));
        }
        Ok(path)
    }

    /// Imports a finished recording under `name` and removes the file.
    pub fn save_recording(
        &mut self,
        path: &PathBuf,
        name: &str,
    ) -> Result<SoundMeta, InstanceError> {
        let opts = super::import::ImportOptions {
            name: Some(name.to_string()),
            tags: vec!["recording".into()],
            ..Default::default()
        };
        let m = match super::import::import_file(&self.lib, path, &opts) {
            Ok(super::import::Imported::New(m) | super::import::Imported::AlreadyPresent(m)) => m,
            Err(e) => return Err(InstanceError::Record(chain(&e))),
        };
        let _ = std::fs::remove_file(path);
        self.reload()?;
        Ok(m)
    }

    /// The engine's state and counters.
    pub fn status(&self) -> AudioStatus {
        AudioStatus {
            info: self.engine.info(),
            stats: self.engine.stats(),
        }
    }

    /// The devices the system offers (slow: probes the backend).
    pub fn devices(&self) -> Vec<DeviceInfo> {
        crate::audio::list_devices()
    }

    /// Restarts the engine on another output (`output`) or input device; what is
    /// playing stops. On failure the previous devices are kept.
    pub fn switch_device(
        &mut self,
        output: Option<DeviceSpec>,
        input: Option<DeviceSpec>,
    ) -> Result<(), InstanceError> {
        let mut cfg = self.engine_config.clone();
        if let Some(o) = output {
            cfg.output = o;
            cfg.no_audio = false;
        }
        if let Some(i) = input {
            cfg.input = i;
        }
        if let Some(r) = self.recording.take() {
            let _ = r.rec.finish();
        }
        self.engine.stop_all();
        for (_, p) in self.streams.drain(..) {
            let _ = p.finish();
        }
        self.voices.clear();
        let engine = Arc::new(Engine::start(cfg.clone())?);
        let old_format = self.engine.format();
        self.engine = engine;
        self.engine_config = cfg;
        if self.engine.format() != old_format {
            self.bank = SoundBank::new(self.engine.format(), self.config.cache.decoded_bytes())
                .map_err(InstanceError::Thread)?;
            self.bank_keyed();
        }
        Ok(())
    }
}

/// What an import through a running instance did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportSummary {
    /// Sounds added.
    pub imported: usize,
    /// Files whose bytes were already there.
    pub already_present: usize,
    /// "path: reason" for each failure.
    pub failed: Vec<String>,
}
