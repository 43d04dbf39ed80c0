//! The metadata store: sled trees of sound records and their name and key indexes.
//!
//! The only file that imports sled. Records are a version byte plus postcard. A name
//! and a key each belong to at most one sound; every change that touches the indexes
//! is one sled transaction, so the indexes never disagree with the records, even
//! after a crash. This module never touches blob files.
//!
//! Library sync keeps three more trees here: each sound's replicated record with its
//! local sequence number (`sync_records`), each peer's cursor (`sync_peers`), and the
//! replica's device, clock and last sequence number (`sync_state`). A sync commit
//! writes the records, the cursors and the sounds they project to in one transaction
//! over all six trees, so the library and its replica never disagree after a crash.
//! Sounds other people share with us are kept apart, per owner (`offers`, and each
//! owner's name and cursor in `offer_owners`): they are never listed as ours.

use std::collections::{HashMap, HashSet};

use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use crate::domain::{SoundId, SoundMeta};
use crate::sync::hlc::{Device, Stamp};
use crate::sync::record::Record;
use crate::sync::replica::Dirty;
use crate::sync::share::{Offered, ViewChange};

/// Format version of a stored record.
const RECORD_VERSION: u8 = 1;

/// The store failed, or a change conflicts with what is there.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed (I/O, or a damaged database).
    #[error("the metadata database failed")]
    Db(#[from] sled::Error),
    /// The name belongs to another sound.
    #[error("the name \"{0}\" is taken")]
    NameTaken(String),
    /// The key is bound to another sound.
    #[error("key {key} is bound to {holder}")]
    KeyTaken {
        /// The key.
        key: String,
        /// The name of the sound holding it.
        holder: String,
    },
    /// A record could not be decoded.
    #[error("the record of {0} is damaged")]
    Damaged(String),
    /// There is no such sound.
    #[error("no sound {0}")]
    Missing(String),
}

/// A record that could not be read, with what is known of it.
#[derive(Debug, Clone)]
pub struct DamagedRecord {
    /// The record's key, as hex (or raw bytes escaped when not 32 bytes).
    pub key: String,
}

/// The metadata database of one library.
pub struct MetaStore {
    db: sled::Db,
    sounds: sled::Tree,
    names: sled::Tree,
    keys: sled::Tree,
    sync_records: sled::Tree,
    sync_peers: sled::Tree,
    sync_state: sled::Tree,
    pins: sled::Tree,
    offers: sled::Tree,
    offer_owners: sled::Tree,
    /// A mirror's peer id → the device number its library stamps its changes with.
    mirror_devices: sled::Tree,
}

/// A change to one sound's listing, made together with a sync commit.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaChange {
    /// The sound is listed as this (added or replaced).
    Put(SoundMeta),
    /// The sound is no longer listed.
    Remove(SoundId),
}

impl MetaChange {
    fn id(&self) -> SoundId {
        match self {
            MetaChange::Put(m) => m.id,
            MetaChange::Remove(id) => *id,
        }
    }
}

/// What the sync trees hold: everything a replica is restored from.
#[derive(Debug, Default)]
pub struct SyncSaved {
    /// This library's device number (`None` before the first sync use).
    pub device: Option<Device>,
    /// The replica clock's latest stamp.
    pub clock: Stamp,
    /// The last local sequence number.
    pub seq: u64,
    /// Every record with its sequence number.
    pub records: Vec<(u64, Record)>,
    /// Every peer's cursor.
    pub cursors: Vec<(Device, u64)>,
    /// Record keys that could not be read.
    pub damaged: Vec<String>,
}

const SYNC_VERSION: u8 = 2;

fn encode_synced(seq: u64, r: &Record) -> Vec<u8> {
    let mut out = vec![SYNC_VERSION];
    out.extend(postcard::to_allocvec(&(seq, r)).unwrap_or_default());
    out
}

fn decode_synced(bytes: &[u8]) -> Option<(u64, Record)> {
    match bytes.split_first() {
        Some((&SYNC_VERSION, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(<[u8; 8]>::try_from(v).ok()?))
}

fn encode(meta: &SoundMeta) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    // Serialising plain owned data into a Vec cannot fail.
    out.extend(postcard::to_allocvec(meta).unwrap_or_default());
    out
}

fn decode(bytes: &[u8]) -> Option<SoundMeta> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => postcard::from_bytes(rest).ok(),
        _ => None,
    }
}

fn key_text(k: &[u8]) -> String {
    match <[u8; 32]>::try_from(k) {
        Ok(a) => SoundId(a).to_hex(),
        Err(_) => k.escape_ascii().to_string(),
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort<T>(e: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

fn flatten<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Db(e),
    })
}

/// Within a transaction: the name of the sound with `id`, for messages.
fn holder_name(s: &TransactionalTree, id: &[u8]) -> TxResult<String> {
    Ok(s.get(id)?
        .and_then(|v| decode(&v))
        .map_or_else(|| key_text(id), |m| m.name))
}

/// Within a transaction: claims `name` and `key` for `id`, failing on conflicts.
fn claim(
    s: &TransactionalTree,
    n: &TransactionalTree,
    k: &TransactionalTree,
    meta: &SoundMeta,
) -> TxResult<()> {
    let id = meta.id.0;
    if let Some(other) = n.get(meta.name.as_bytes())?
        && other.as_ref() != id
    {
        return abort(StoreError::NameTaken(meta.name.clone()));
    }
    if let Some(key) = &meta.key
        && let Some(other) = k.get(key.as_bytes())?
        && other.as_ref() != id
    {
        let holder = holder_name(s, &other)?;
        return abort(StoreError::KeyTaken {
            key: key.clone(),
            holder,
        });
    }
    n.insert(meta.name.as_bytes(), &id)?;
    if let Some(key) = &meta.key {
        k.insert(key.as_bytes(), &id)?;
    }
    s.insert(&id, encode(meta))?;
    Ok(())
}

impl MetaStore {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &std::path::Path) -> Result<MetaStore, StoreError> {
        // The home lock keeps other processes out; a database lock still held means
        // this process closed it a moment ago and sled's flusher has not let go yet.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(16 << 20)
                .open()
            {
                Err(sled::Error::Io(e))
                    if e.kind() == std::io::ErrorKind::Other
                        && e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        Ok(MetaStore {
            sounds: db.open_tree("sounds")?,
            names: db.open_tree("names")?,
            keys: db.open_tree("keys")?,
            sync_records: db.open_tree("sync_records")?,
            sync_peers: db.open_tree("sync_peers")?,
            sync_state: db.open_tree("sync_state")?,
            pins: db.open_tree("pins")?,
            offers: db.open_tree("offers")?,
            offer_owners: db.open_tree("offer_owners")?,
            mirror_devices: db.open_tree("mirror_devices")?,
            db,
        })
    }

    /// Makes every change so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The record of `id`.
    pub fn get(&self, id: &SoundId) -> Result<Option<SoundMeta>, StoreError> {
        match self.sounds.get(id.0)? {
            None => Ok(None),
            Some(v) => decode(&v)
                .map(Some)
                .ok_or_else(|| StoreError::Damaged(id.to_hex())),
        }
    }

    /// Every readable record, in id order, and the records that could not be read.
    pub fn all(&self) -> Result<(Vec<SoundMeta>, Vec<DamagedRecord>), StoreError> {
        let mut ok = Vec::with_capacity(self.sounds.len());
        let mut bad = Vec::new();
        for item in self.sounds.iter() {
            let (k, v) = item?;
            match decode(&v).filter(|m| m.id.0.as_slice() == k.as_ref()) {
                Some(m) => ok.push(m),
                None => bad.push(DamagedRecord { key: key_text(&k) }),
            }
        }
        Ok((ok, bad))
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.sounds.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.sounds.is_empty()
    }

    /// The sound called `name`.
    pub fn by_name(&self, name: &str) -> Result<Option<SoundId>, StoreError> {
        Ok(self.names.get(name.as_bytes())?.and_then(|v| to_id(&v)))
    }

    /// The sound bound to `key`.
    pub fn by_key(&self, key: &str) -> Result<Option<SoundId>, StoreError> {
        Ok(self.keys.get(key.as_bytes())?.and_then(|v| to_id(&v)))
    }

    /// Every (name → id) and (key → id) index entry, for checking.
    pub fn indexes(&self) -> Result<IndexDump, StoreError> {
        let mut dump = IndexDump::default();
        for item in self.names.iter() {
            let (k, v) = item?;
            dump.names
                .push((String::from_utf8_lossy(&k).into_owned(), to_id(&v)));
        }
        for item in self.keys.iter() {
            let (k, v) = item?;
            dump.keys
                .push((String::from_utf8_lossy(&k).into_owned(), to_id(&v)));
        }
        Ok(dump)
    }

    /// The ids whose hex form starts with `prefix` (lowercase hex digits).
    pub fn ids_with_prefix(&self, prefix: &str) -> Result<Vec<SoundId>, StoreError> {
        let whole = prefix.len() / 2;
        let mut bytes = Vec::with_capacity(whole);
        for i in 0..whole {
            match u8::from_str_radix(&prefix[2 * i..2 * i + 2], 16) {
                Ok(b) => bytes.push(b),
                Err(_) => return Ok(Vec::new()),
            }
        }
        let mut out = Vec::new();
        for item in self.sounds.scan_prefix(&bytes) {
            let (k, _) = item?;
            if let Some(id) = to_id(&k)
                && id.to_hex().starts_with(prefix)
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Adds a new record; its name and key must be free.
    pub fn insert(&self, meta: &SoundMeta) -> Result<(), StoreError> {
        flatten(
            (&self.sounds, &self.names, &self.keys).transaction(|(s, n, k)| claim(s, n, k, meta)),
        )
    }

    /// Replaces the record of `new.id`, moving its name and key indexes; the new name
    /// and key must be free or already its own.
    pub fn update(&self, new: &SoundMeta) -> Result<(), StoreError> {
        flatten(
            (&self.sounds, &self.names, &self.keys).transaction(|(s, n, k)| {
                let Some(old) = s.get(new.id.0)?.and_then(|v| decode(&v)) else {
                    return abort(StoreError::Missing(new.id.short()));
                };
                n.remove(old.name.as_bytes())?;
                if let Some(key) = &old.key {
                    k.remove(key.as_bytes())?;
                }
                claim(s, n, k, new)
            }),
        )
    }

    /// Removes the record of `id` and its index entries; returns it.
    pub fn remove(&self, id: &SoundId) -> Result<Option<SoundMeta>, StoreError> {
        flatten(
            (&self.sounds, &self.names, &self.keys).transaction(|(s, n, k)| {
                let Some(raw) = s.remove(&id.0)? else {
                    return Ok(None);
                };
                let old = decode(&raw);
                if let Some(old) = &old {
                    if n.get(old.name.as_bytes())?.as_deref() == Some(id.0.as_slice()) {
                        n.remove(old.name.as_bytes())?;
                    }
                    if let Some(key) = &old.key
                        && k.get(key.as_bytes())?.as_deref() == Some(id.0.as_slice())
                    {
                        k.remove(key.as_bytes())?;
                    }
                }
                Ok(old)
            }),
        )
    }

    /// Everything the sync trees hold.
    pub fn sync_load(&self) -> Result<SyncSaved, StoreError> {
        let mut saved = SyncSaved {
            device: self
                .sync_state
                .get(b"device")?
                .and_then(|v| be_u64(&v))
                .map(Device),
            clock: self
                .sync_state
                .get(b"clock")?
                .and_then(|v| postcard::from_bytes(&v).ok())
                .unwrap_or_default(),
            seq: self
                .sync_state
                .get(b"seq")?
                .and_then(|v| be_u64(&v))
                .unwrap_or(0),
            ..SyncSaved::default()
        };
        for item in self.sync_records.iter() {
            let (k, v) = item?;
            match decode_synced(&v).filter(|(_, r)| r.id.0.as_slice() == k.as_ref()) {
                Some(x) => saved.records.push(x),
                None => saved.damaged.push(key_text(&k)),
            }
        }
        for item in self.sync_peers.iter() {
            let (k, v) = item?;
            if let (Some(d), Some(c)) = (be_u64(&k), be_u64(&v)) {
                saved.cursors.push((Device(d), c));
            }
        }
        Ok(saved)
    }

    /// Pins or unpins a sound on this machine (its file is kept here, never evicted;
    /// not replicated: each machine pins for itself). Flushed.
    pub fn set_pin(&self, id: &SoundId, on: bool) -> Result<(), StoreError> {
        if on {
            self.pins.insert(id.0, &[])?;
        } else {
            self.pins.remove(id.0)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// The sounds pinned on this machine.
    pub fn pins(&self) -> Result<std::collections::HashSet<SoundId>, StoreError> {
        let mut out = std::collections::HashSet::new();
        for item in self.pins.iter() {
            let (k, _) = item?;
            if let Some(id) = to_id(&k) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Records that the library of the mirror `peer` (its peer id) stamps its changes
    /// with `device`; made durable before it returns (it decides which files may go).
    pub fn set_mirror_device(&self, peer: &[u8; 20], device: Device) -> Result<(), StoreError> {
        if self.mirror_devices.get(peer)?.as_deref() == Some(device.0.to_be_bytes().as_slice()) {
            return Ok(());
        }
        self.mirror_devices.insert(peer, &device.0.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// The mirrors whose devices are known: peer id → device.
    pub fn mirror_devices(&self) -> Result<Vec<([u8; 20], Device)>, StoreError> {
        let mut out = Vec::new();
        for item in self.mirror_devices.iter() {
            let (k, v) = item?;
            if let (Ok(peer), Some(d)) = (<[u8; 20]>::try_from(k.as_ref()), be_u64(&v)) {
                out.push((peer, Device(d)));
            }
        }
        Ok(out)
    }

    /// Forgets the device of the mirror `peer`; whether it was known.
    pub fn forget_mirror_device(&self, peer: &[u8; 20]) -> Result<bool, StoreError> {
        let was = self.mirror_devices.remove(peer)?.is_some();
        if was {
            self.db.flush()?;
        }
        Ok(was)
    }

    /// Records this library's device number (once, at its first sync use).
    pub fn sync_set_device(&self, device: Device) -> Result<(), StoreError> {
        self.sync_state.insert(b"device", &device.0.to_be_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Writes a replica's changes and the listing changes they make, in one
    /// transaction: every old name and key of the changed sounds is released first,
    /// then the new ones are claimed (so two sounds may swap names in one commit);
    /// a claim that is still taken aborts the whole commit.
    pub fn sync_commit(&self, dirty: &Dirty, metas: &[MetaChange]) -> Result<(), StoreError> {
        let trees = (
            &self.sounds,
            &self.names,
            &self.keys,
            &self.sync_records,
            &self.sync_peers,
            &self.sync_state,
        );
        // Encoded once, outside the transaction (whose closure may run again).
        let synced: Vec<([u8; 32], Vec<u8>)> = dirty
            .records
            .iter()
            .map(|(seq, r)| (r.id.0, encode_synced(*seq, r)))
            .collect();
        let clock = postcard::to_allocvec(&dirty.clock).unwrap_or_default();
        // Sounds changed once in this commit: one whose name and key stay as they
        // are (a file kept, a gain or tags edited) keeps its index entries.
        let mut seen = HashMap::with_capacity(metas.len());
        for change in metas {
            *seen.entry(change.id()).or_insert(0u32) += 1;
        }
        flatten(trees.transaction(|(s, n, k, sr, sp, ss)| {
            let mut in_place = HashSet::new();
            for change in metas {
                let id = change.id();
                if let Some(old) = s.get(id.0)?.and_then(|v| decode(&v)) {
                    let name_ours = n.get(old.name.as_bytes())?.as_deref() == Some(id.0.as_slice());
                    let key_ours = match &old.key {
                        Some(key) => k.get(key.as_bytes())?.as_deref() == Some(id.0.as_slice()),
                        None => true,
                    };
                    if let MetaChange::Put(meta) = change
                        && name_ours
                        && key_ours
                        && meta.name == old.name
                        && meta.key == old.key
                        && seen.get(&id) == Some(&1)
                    {
                        in_place.insert(id);
                        continue;
                    }
                    if name_ours {
                        n.remove(old.name.as_bytes())?;
                    }
                    if let Some(key) = &old.key
                        && key_ours
                    {
                        k.remove(key.as_bytes())?;
                    }
                }
                if let MetaChange::Remove(_) = change {
                    s.remove(&id.0)?;
                }
            }
            for change in metas {
                if let MetaChange::Put(meta) = change {
                    if in_place.contains(&meta.id) {
                        // Its name and key already point here: only the record changes.
                        s.insert(&meta.id.0, encode(meta))?;
                    } else {
                        claim(s, n, k, meta)?;
                    }
                }
            }
            for (id, v) in &synced {
                sr.insert(id, v.as_slice())?;
            }
            for (peer, cursor) in &dirty.cursors {
                sp.insert(&peer.0.to_be_bytes(), &cursor.to_be_bytes())?;
            }
            ss.insert(b"seq", &dirty.seq.to_be_bytes())?;
            ss.insert(b"clock", clock.as_slice())?;
            Ok(())
        }))
    }

    /// Every subscribed view as kept: per owner, its name, cursor and sounds. A
    /// damaged entry is skipped (the next full pass brings it again).
    pub fn offers_load(&self) -> Result<Vec<SavedView>, StoreError> {
        let mut out = Vec::new();
        for item in self.offer_owners.iter() {
            let (k, v) = item?;
            let (Ok(owner), Ok((name, cursor))) = (
                <[u8; OWNER_LEN]>::try_from(k.as_ref()),
                postcard::from_bytes::<(String, u64)>(&v),
            ) else {
                continue;
            };
            let mut sounds = Vec::new();
            for item in self.offers.scan_prefix(owner) {
                let (_, v) = item?;
                if let Ok(s) = postcard::from_bytes::<Offered>(&v) {
                    sounds.push(s);
                }
            }
            out.push(SavedView {
                owner,
                name,
                cursor,
                sounds,
            });
        }
        Ok(out)
    }

    /// Writes what one answer changed in a view, with its cursor and the owner's
    /// name, in one transaction, flushed.
    pub fn offers_commit(
        &self,
        owner: &[u8; OWNER_LEN],
        name: &str,
        change: &ViewChange,
        cursor: u64,
    ) -> Result<(), StoreError> {
        let key = |id: &SoundId| {
            let mut k = [0u8; OWNER_LEN + 32];
            k[..OWNER_LEN].copy_from_slice(owner);
            k[OWNER_LEN..].copy_from_slice(&id.0);
            k
        };
        let puts: Vec<([u8; OWNER_LEN + 32], Vec<u8>)> = change
            .upserts
            .iter()
            .map(|s| (key(&s.id), postcard::to_allocvec(s).unwrap_or_default()))
            .collect();
        let state = postcard::to_allocvec(&(name, cursor)).unwrap_or_default();
        flatten((&self.offers, &self.offer_owners).transaction(|(o, st)| {
            for id in &change.removed {
                o.remove(key(id).as_slice())?;
            }
            for (k, v) in &puts {
                o.insert(k.as_slice(), v.as_slice())?;
            }
            st.insert(owner, state.as_slice())?;
            Ok(())
        }))?;
        self.db.flush()?;
        Ok(())
    }

    /// Forgets an owner's view (no longer subscribed): its state first, so a crash
    /// midway leaves entries no view names, cleared the next time.
    pub fn offers_forget(&self, owner: &[u8; OWNER_LEN]) -> Result<(), StoreError> {
        self.offer_owners.remove(owner)?;
        for item in self.offers.scan_prefix(owner) {
            let (k, _) = item?;
            self.offers.remove(k)?;
        }
        self.db.flush()?;
        Ok(())
    }

    /// Removes a damaged record (unreadable, so its index entries are found by id).
    pub fn remove_raw(&self, id: &SoundId) -> Result<(), StoreError> {
        self.sounds.remove(id.0)?;
        for tree in [&self.names, &self.keys] {
            for item in tree.iter() {
                let (k, v) = item?;
                if v.as_ref() == id.0.as_slice() {
                    tree.remove(k)?;
                }
            }
        }
        Ok(())
    }
}

/// The index trees as they are, for consistency checks.
#[derive(Debug, Default)]
pub struct IndexDump {
    /// name → id (`None`: the value is not an id).
    pub names: Vec<(String, Option<SoundId>)>,
    /// key → id.
    pub keys: Vec<(String, Option<SoundId>)>,
}

/// The length of an owner's key (a peer id's bytes).
pub const OWNER_LEN: usize = 20;

/// One subscribed view as the store keeps it.
#[derive(Debug, Clone)]
pub struct SavedView {
    /// The owner (its peer id's bytes).
    pub owner: [u8; OWNER_LEN],
    /// What the owner is called here.
    pub name: String,
    /// The last of the owner's sequence numbers the view reflects.
    pub cursor: u64,
    /// The offered sounds.
    pub sounds: Vec<Offered>,
}

fn to_id(v: &[u8]) -> Option<SoundId> {
    <[u8; 32]>::try_from(v).ok().map(SoundId)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Origin;

    pub(crate) fn meta(n: u8, name: &str, key: Option<&str>) -> SoundMeta {
        SoundMeta {
            id: SoundId([n; 32]),
            name: name.into(),
            tags: vec![],
            key: key.map(Into::into),
            gain_db: 0.0,
            frames: 48_000,
            sample_rate: 48_000,
            channels: 2,
            format: "wav/pcm_s16le".into(),
            size: 1000,
            added_ms: 1,
            loudness_lufs: Some(-20.0),
            last_played_ms: None,
            origin: Origin::Local,
        }
    }

    #[test]
    fn names_and_keys_are_unique_and_follow_updates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = MetaStore::open(dir.path()).expect("open");
        s.insert(&meta(1, "horn", Some("1"))).expect("insert");
        assert!(matches!(
            s.insert(&meta(2, "horn", None)),
            Err(StoreError::NameTaken(_))
        ));
        let err = s
            .insert(&meta(2, "bell", Some("1")))
            .expect_err("key taken");
        assert_eq!(err.to_string(), "key 1 is bound to horn");
        s.insert(&meta(2, "bell", Some("2"))).expect("insert");
        let mut m = meta(1, "airhorn", Some("3"));
        m.gain_db = -3.0;
        s.update(&m).expect("update");
        assert_eq!(s.by_name("horn").expect("name"), None);
        assert_eq!(s.by_name("airhorn").expect("name"), Some(m.id));
        assert_eq!(s.by_key("1").expect("key"), None);
        assert_eq!(s.by_key("3").expect("key"), Some(m.id));
        assert_eq!(s.get(&m.id).expect("get"), Some(m.clone()));
        assert!(
            s.update(&meta(2, "airhorn", None)).is_err(),
            "name of another"
        );
        assert_eq!(
            s.get(&SoundId([2; 32])).expect("get").expect("kept").name,
            "bell"
        );
        s.remove(&m.id).expect("remove");
        assert_eq!(s.by_name("airhorn").expect("name"), None);
        assert_eq!(s.len(), 1);
        let ids = s.ids_with_prefix("0202").expect("prefix");
        assert_eq!(ids, vec![SoundId([2; 32])]);
        assert_eq!(s.ids_with_prefix("020").expect("odd prefix").len(), 1);
        assert!(s.ids_with_prefix("03").expect("none").is_empty());
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = MetaStore::open(dir.path()).expect("open");
            s.insert(&meta(7, "seven", Some("7"))).expect("insert");
            s.flush().expect("flush");
        }
        let s = MetaStore::open(dir.path()).expect("reopen");
        let (all, bad) = s.all().expect("all");
        assert_eq!(all, vec![meta(7, "seven", Some("7"))]);
        assert!(bad.is_empty());
    }
}
