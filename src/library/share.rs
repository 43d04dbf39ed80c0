//! Sharing, as the library keeps it. As an owner: what we offer a peer under the tags
//! shared with it, answered from the replica ([`crate::sync::share::answer`]). As a
//! subscriber: each owner's view, kept apart from our own records (never listed as
//! ours, never replicated to our mirrors), each answer committed with its cursor in
//! one transaction; the file of an offered sound is kept as a blob alone, within the
//! remote-sound budget, fetched again when it was evicted, and removed once no one
//! shares the sound with us any more.
//!
//! Must never: put another person's sound into our replica (copying it into our
//! library is an import, by the person's choice), or hold the views' lock while
//! waiting on anything but the database.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{Added, Library, LibraryError, NewSound, TempBlob};
use crate::domain::{Origin, SoundId, SoundMeta};
use crate::sync::share::{self, Offered, ShareError, ShareMsg, View, ViewChange};

/// An owner of shared sounds: its peer id's bytes.
pub type Owner = [u8; super::store::OWNER_LEN];

/// One owner's view as held here.
struct Held {
    name: String,
    view: View,
}

/// Every owner's view, loaded at first use.
#[derive(Default)]
pub(super) struct ViewsCell {
    views: Mutex<Option<HashMap<Owner, Held>>>,
}

/// A sound another person shares with us.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSound {
    /// Its owner (the peer id's bytes).
    pub owner: Owner,
    /// What the owner is called here.
    pub owner_name: String,
    /// The sound as offered.
    pub sound: Offered,
}

impl SharedSound {
    /// How it is listed here: `owner/name`.
    pub fn listed_name(&self) -> String {
        format!("{}/{}", self.owner_name, self.sound.name)
    }
}

/// Who shares a sound with us.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedBy {
    /// The owners that offer it.
    pub owners: Vec<Owner>,
    /// What the first of them is called here.
    pub owner_name: String,
}

/// How a sound shared with us is listed here: `owner/name`, no key, from elsewhere.
fn shared_meta(s: &SharedSound) -> SoundMeta {
    let o = &s.sound;
    SoundMeta {
        id: o.id,
        name: s.listed_name(),
        tags: o.tags.clone(),
        key: None,
        gain_db: o.gain_db,
        frames: o.facts.frames,
        sample_rate: o.facts.sample_rate,
        channels: o.facts.channels,
        format: o.facts.format.clone(),
        size: o.facts.size,
        added_ms: 0,
        loudness_lufs: o.facts.loudness_lufs,
        last_played_ms: None,
        origin: Origin::Remote,
    }
}

/// What taking an owner's answer did.
#[derive(Debug)]
pub enum Taken {
    /// Taken (and kept): what changed.
    Changed(ViewChange),
    /// The answer was refused, and why (nothing was kept).
    Refused(ShareError),
}

impl Library {
    fn views(&self) -> Result<MutexGuard<'_, Option<HashMap<Owner, Held>>>, LibraryError> {
        let mut guard = crate::guard::lock(&self.views.views);
        if guard.is_none() {
            let mut all = HashMap::new();
            for v in self.store.offers_load()? {
                all.insert(
                    v.owner,
                    Held {
                        name: v.name,
                        view: View::restore(v.sounds, v.cursor),
                    },
                );
            }
            *guard = Some(all);
        }
        Ok(guard)
    }

    /// What to send `owner` next to follow its offer.
    pub fn offer_ask(&self, owner: &Owner) -> Result<ShareMsg, LibraryError> {
        let g = self.views()?;
        Ok(g.as_ref()
            .and_then(|all| all.get(owner))
            .map_or_else(|| View::default().ask(), |h| h.view.ask()))
    }

    /// Takes `owner`'s answer into its view (called `name` here) and keeps it.
    pub fn offer_take(
        &self,
        owner: &Owner,
        name: &str,
        msg: ShareMsg,
    ) -> Result<Taken, LibraryError> {
        let mut g = self.views()?;
        let Some(all) = g.as_mut() else {
            return Ok(Taken::Changed(ViewChange::default()));
        };
        let held = all.entry(*owner).or_insert_with(|| Held {
            name: name.to_string(),
            view: View::default(),
        });
        let change = match held.view.handle(msg) {
            Ok(c) => c,
            Err(e) => return Ok(Taken::Refused(e)),
        };
        let renamed = held.name != name;
        if change.changed() || change.cursor.is_some() || renamed {
            held.name = name.to_string();
            let cursor = held.view.cursor();
            if let Err(e) = self.store.offers_commit(owner, name, &change, cursor) {
                // Not kept: the view goes back to what is on disk.
                *g = None;
                return Err(e.into());
            }
        }
        let gone: Vec<SoundId> = change.removed.clone();
        self.drop_unshared_files(all, &gone)?;
        Ok(Taken::Changed(change))
    }

    /// Removes the kept files of sounds no longer shared with us by anyone (after
    /// their records are gone), unless they are ours.
    fn drop_unshared_files(
        &self,
        views: &HashMap<Owner, Held>,
        ids: &[SoundId],
    ) -> Result<(), LibraryError> {
        for id in ids {
            let still = views.values().any(|h| h.view.sounds().contains_key(id));
            if still || self.store.get(id)?.is_some() || !self.blobs.contains(id) {
                continue;
            }
            let path = self.blobs.path(id);
            self.blobs.remove(id).map_err(LibraryError::io(&path))?;
        }
        Ok(())
    }

    /// The fingerprint of what we hold of `owner`'s offer.
    pub fn offer_fingerprint(&self, owner: &Owner) -> Result<[u8; 32], LibraryError> {
        let g = self.views()?;
        Ok(g.as_ref()
            .and_then(|all| all.get(owner))
            .map_or([0; 32], |h| h.view.fingerprint()))
    }

    /// Forgets `owner`'s view (we no longer subscribe to it); its files go with the
    /// remote budget.
    pub fn offer_forget(&self, owner: &Owner) -> Result<bool, LibraryError> {
        let mut g = self.views()?;
        let Some(all) = g.as_mut() else {
            return Ok(false);
        };
        let Some(held) = all.remove(owner) else {
            return Ok(false);
        };
        self.store.offers_forget(owner)?;
        let ids: Vec<SoundId> = held.view.sounds().keys().copied().collect();
        self.drop_unshared_files(all, &ids)?;
        Ok(true)
    }

    /// The owners we hold a view of.
    pub fn offer_owners(&self) -> Result<Vec<Owner>, LibraryError> {
        let g = self.views()?;
        Ok(g.as_ref()
            .map(|all| all.keys().copied().collect())
            .unwrap_or_default())
    }

    /// Every sound shared with us, by owner then name.
    pub fn shared_sounds(&self) -> Result<Vec<SharedSound>, LibraryError> {
        let g = self.views()?;
        let mut out: Vec<SharedSound> = g
            .iter()
            .flat_map(|all| all.iter())
            .flat_map(|(owner, h)| {
                h.view.sounds().values().map(|s| SharedSound {
                    owner: *owner,
                    owner_name: h.name.clone(),
                    sound: s.clone(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            (a.owner_name.to_lowercase(), &a.sound.name)
                .cmp(&(b.owner_name.to_lowercase(), &b.sound.name))
        });
        Ok(out)
    }

    /// Our sounds sorted by name, then the sounds others share with us (listed as
    /// `owner/name`; the same bytes in our library are ours and listed once), with
    /// who shares each.
    #[allow(clippy::type_complexity)]
    pub fn list_with_shared(
        &self,
    ) -> Result<(Vec<SoundMeta>, HashMap<SoundId, SharedBy>), LibraryError> {
        let mut sounds = self.list()?;
        let ours: std::collections::HashSet<SoundId> = sounds.iter().map(|m| m.id).collect();
        let mut by: HashMap<SoundId, SharedBy> = HashMap::new();
        for s in self.shared_sounds()? {
            if ours.contains(&s.sound.id) {
                continue;
            }
            if let Some(known) = by.get_mut(&s.sound.id) {
                known.owners.push(s.owner);
                continue;
            }
            by.insert(
                s.sound.id,
                SharedBy {
                    owners: vec![s.owner],
                    owner_name: s.owner_name.clone(),
                },
            );
            sounds.push(shared_meta(&s));
        }
        Ok((sounds, by))
    }

    /// The sound shared with us that is listed as `target` (`owner/name`, any case).
    pub fn find_shared(&self, target: &str) -> Result<Option<(SoundMeta, SharedBy)>, LibraryError> {
        let t = target.trim().to_lowercase();
        let (sounds, mut by) = self.list_with_shared()?;
        Ok(sounds
            .into_iter()
            .find(|m| by.contains_key(&m.id) && m.name.to_lowercase() == t)
            .and_then(|m| by.remove(&m.id).map(|b| (m, b))))
    }

    /// Copies `id`, a sound someone shares with us whose file is here, into our
    /// library (named `name`, or its own name there, numbered when taken): from now
    /// on it is ours, with its tags and gain.
    pub fn copy_shared(&self, id: &SoundId, name: Option<&str>) -> Result<SoundMeta, LibraryError> {
        let Some(s) = self
            .shared_sounds()?
            .into_iter()
            .find(|s| s.sound.id == *id)
        else {
            return Err(LibraryError::Invalid(format!(
                "{} is not a sound shared with this library",
                id.short()
            )));
        };
        if !self.has_file(id) {
            return Err(LibraryError::Invalid(format!(
                "{}: its file is not here yet (a running screen or `jhack serve` fetches it from {})",
                s.listed_name(),
                s.owner_name
            )));
        }
        let temp = self.stage_file(&self.blob_path(id))?;
        let o = s.sound;
        let new = NewSound {
            name: name.map_or(o.name, str::to_string),
            tags: o.tags,
            key: None,
            gain_db: o.gain_db,
            frames: o.facts.frames,
            sample_rate: o.facts.sample_rate,
            channels: o.facts.channels,
            format: o.facts.format,
            loudness_lufs: o.facts.loudness_lufs,
            origin: Origin::Local,
        };
        match self.add(temp, new)? {
            Added::New(m) | Added::AlreadyPresent(m) => Ok(m),
        }
    }

    /// Our answer to a subscriber's ask, offering what carries any of `tags`.
    pub fn share_answer(
        &self,
        tags: &BTreeSet<String>,
        ask: &ShareMsg,
    ) -> Result<Option<ShareMsg>, LibraryError> {
        let g = self.replica()?;
        Ok(g.as_ref().and_then(|r| share::answer(r, tags, ask)))
    }

    /// Whether `id` is a live sound of ours carrying any of `tags` (a subscriber
    /// with those shares may fetch it).
    pub fn is_offered(&self, tags: &BTreeSet<String>, id: &SoundId) -> bool {
        if tags.is_empty() {
            return false;
        }
        self.replica().ok().is_some_and(|g| {
            g.as_ref()
                .and_then(|r| r.get(id))
                .is_some_and(|r| share::offered(r, tags))
        })
    }

    /// Keeps the verified file of a sound shared with us (a blob alone: the sound
    /// stays theirs). Returns whether it was new here.
    pub fn keep_shared_file(&self, temp: TempBlob) -> Result<bool, LibraryError> {
        let path = self.blobs.path(&temp.id);
        self.blobs.install(temp).map_err(LibraryError::io(&path))
    }
}
