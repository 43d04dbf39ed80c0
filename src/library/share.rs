//! Sharing, as the library keeps it. As an owner: what we offer a peer under the tags
//! shared with it, answered from the replica ([`crate::sync::share::answer`]). As a
//! subscriber: each owner's view, kept apart from our own records (never listed as
//! ours, never replicated to our mirrors), each answer committed with its cursor in
//! one transaction; the file of an offered sound is kept as a blob alone, within the
//! remote-sound budget, and fetched again when it was evicted.
//!
//! Must never: put another person's sound into our replica (copying it into our
//! library is an import, by the person's choice), or hold the views' lock while
//! waiting on anything but the database.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::{Library, LibraryError, TempBlob};
use crate::domain::SoundId;
use crate::sync::share::{self, Offered, ShareError, ShareMsg, View, ViewChange};

/// One owner's view as held here.
struct Held {
    name: String,
    view: View,
}

/// Every owner's view, loaded at first use.
#[derive(Default)]
pub(super) struct ViewsCell {
    views: Mutex<Option<HashMap<[u8; 32], Held>>>,
}

/// A sound another person shares with us.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSound {
    /// Its owner (the peer id's bytes).
    pub owner: [u8; 32],
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

/// What taking an owner's answer did.
#[derive(Debug)]
pub enum Taken {
    /// Taken (and kept): what changed.
    Changed(ViewChange),
    /// The answer was refused, and why (nothing was kept).
    Refused(ShareError),
}

impl Library {
    fn views(&self) -> Result<MutexGuard<'_, Option<HashMap<[u8; 32], Held>>>, LibraryError> {
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
    pub fn offer_ask(&self, owner: &[u8; 32]) -> Result<ShareMsg, LibraryError> {
        let g = self.views()?;
        Ok(g.as_ref()
            .and_then(|all| all.get(owner))
            .map_or_else(|| View::default().ask(), |h| h.view.ask()))
    }

    /// Takes `owner`'s answer into its view (called `name` here) and keeps it.
    pub fn offer_take(
        &self,
        owner: &[u8; 32],
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
        Ok(Taken::Changed(change))
    }

    /// Forgets `owner`'s view (we no longer subscribe to it); its files go with the
    /// remote budget.
    pub fn offer_forget(&self, owner: &[u8; 32]) -> Result<bool, LibraryError> {
        let mut g = self.views()?;
        let had = g.as_mut().and_then(|all| all.remove(owner)).is_some();
        if had {
            self.store.offers_forget(owner)?;
        }
        Ok(had)
    }

    /// The owners we hold a view of.
    pub fn offer_owners(&self) -> Result<Vec<[u8; 32]>, LibraryError> {
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
