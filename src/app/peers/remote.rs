//! Files on demand: a sound listed here whose file is on another machine (a remote
//! sound, known through library sync) plays at once, streamed from a connected
//! mirror while it arrives (the verified fetch-while-playing that triggers use), and
//! is then kept within the remote-sound budget. Sounds bound to keys are pinned:
//! their files are fetched in the background as soon as they are known. A machine
//! that mirrors a peer marked `mirror-all` fetches every file, and keeps them all.
//!
//! A sound someone shares with us is fetched from its owner the same way (and its
//! file kept as theirs).
//!
//! Never fetches our own sounds from a peer that is not a mirror, and never keeps a
//! byte that was not verified (keeping goes through [`super::keep`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Arriving, PeerHub, offer_of};
use crate::app::instance::Instance;
use crate::domain::{SoundId, SoundMeta, chain};
use crate::net::{Fetch, PeerId, SyncRelation};

/// How often keyed remote sounds are looked for.
const PIN_CHECK: Duration = Duration::from_secs(2);
/// Pinned fetches running at once.
const PIN_FETCHES: usize = 2;

impl PeerHub {
    /// Where the file of `id` may come from, in the order to try (those a fetch of
    /// `id` already failed from last): the connected owners that share it with us,
    /// or for a sound of ours the connected mirrors.
    fn sources_for(&self, instance: &Instance, id: &SoundId) -> Vec<PeerId> {
        let missed = self.misses.get(id);
        let owners: Option<Vec<PeerId>> = instance
            .shared_by(id)
            .map(|o| o.iter().filter_map(|b| PeerId::from_bytes(*b)).collect());
        let mut m: Vec<PeerId> = self
            .node
            .connected()
            .into_iter()
            .filter(|p| match &owners {
                Some(owners) => owners.contains(p),
                None => self
                    .node
                    .trusted(p)
                    .is_some_and(|t| t.sync.is_some_and(SyncRelation::is_mirror)),
            })
            .collect();
        // Those that missed it last; before the others, the mirrors that say they
        // hold it.
        let holding: Vec<PeerId> = instance
            .library()
            .mirrors_holding(id)
            .unwrap_or_default()
            .into_iter()
            .filter_map(PeerId::from_bytes)
            .collect();
        m.sort_by_key(|p| (missed.is_some_and(|v| v.contains(p)), !holding.contains(p)));
        m
    }

    /// Starts fetching the file of `meta` from a connected mirror, or the owner that
    /// shares it (or joins the fetch already running); `background` when nobody
    /// waits to play it yet.
    pub(super) fn fetch_file(
        &mut self,
        instance: &Instance,
        meta: &SoundMeta,
        background: bool,
    ) -> Result<Arc<Fetch>, String> {
        if let Some(a) = self.arriving.get(&meta.id) {
            return Ok(a.fetch.clone());
        }
        let Some(peer) = self.sources_for(instance, &meta.id).into_iter().next() else {
            let whose = if instance.shared_by(&meta.id).is_some() {
                "the peer that shares it is not connected"
            } else {
                "no mirror is connected"
            };
            return Err(format!(
                "\"{}\" is remote (its file is on another machine) and {whose}",
                meta.name
            ));
        };
        let offer = offer_of(meta);
        let fetch = if background {
            self.node.fetch_in_background(&peer, &offer)
        } else {
            self.node.fetch(&peer, &offer)
        }
        .map_err(|e| chain(&e))?;
        self.arriving.insert(
            meta.id,
            Arriving {
                fetch: fetch.clone(),
                offer,
                from: self.node.name_of(&peer),
                peer,
            },
        );
        Ok(fetch)
    }

    /// Plays `id` here: from its file, or — a remote sound — while its file arrives
    /// from a mirror (then kept).
    pub fn play_here(
        &mut self,
        instance: &mut Instance,
        id: &SoundId,
        extra_db: f32,
        trigger: Instant,
    ) -> Result<(), String> {
        if !instance.remote().contains(id) {
            return instance
                .play_triggered(id, extra_db, trigger)
                .map(|_| ())
                .map_err(|e| chain(&e));
        }
        let Some(meta) = instance.sounds().iter().find(|m| m.id == *id).cloned() else {
            return Err(format!("{}: not in the library", id.short()));
        };
        let fetch = self.fetch_file(instance, &meta, false)?;
        let from = self
            .arriving
            .get(id)
            .map_or_else(String::new, |a| a.from.clone());
        let norm = instance
            .config()
            .playback
            .normalization_gain(meta.loudness_lufs);
        let gain_db = norm.0 + meta.gain_db + extra_db;
        let offer = offer_of(&meta);
        self.open_arriving(instance, fetch, &offer, from, None, gain_db, trigger);
        Ok(())
    }

    /// Whether this machine keeps every file: a peer it mirrors is marked
    /// `mirror-all` in `peers.toml`.
    pub(super) fn keeps_all(&self) -> bool {
        self.node
            .peers()
            .iter()
            .any(|p| p.sync.as_deref() == Some(SyncRelation::MirrorAll.name()))
    }

    /// The library may have changed (a key bound, a sync): look for pinned remote
    /// sounds at the next poll.
    pub fn library_changed(&mut self) {
        self.pins_checked = None;
    }

    /// Fetches the files of pinned remote sounds (bound to keys, or pinned by hand),
    /// a few at a time.
    pub(super) fn fetch_pinned(&mut self, instance: &Instance) {
        if self.pins_checked.is_some_and(|t| t.elapsed() < PIN_CHECK) {
            return;
        }
        self.pins_checked = Some(Instant::now());
        let lib = instance.library();
        let all = self.keeps_all();
        let wanted: Vec<SoundMeta> = instance
            .sounds()
            .iter()
            // Keeping every file means every file of ours, not every shared one.
            .filter(|m| {
                all && instance.shared_by(&m.id).is_none()
                    || m.key.is_some()
                    || instance.pinned().contains(&m.id)
            })
            .filter(|m| !lib.has_file(&m.id))
            .cloned()
            .collect();
        self.to_fetch = (wanted.len(), wanted.iter().map(|m| m.size).sum());
        let wanted: Vec<SoundMeta> = wanted
            .into_iter()
            .filter(|m| !self.arriving.contains_key(&m.id))
            .collect();
        for m in wanted {
            if self.arriving.len() >= PIN_FETCHES {
                break;
            }
            match self.fetch_file(instance, &m, true) {
                Ok(_) => tracing::info!(
                    "fetching the file of \"{}\" ({})",
                    m.name,
                    if m.key.is_some() {
                        "bound to a key"
                    } else if instance.pinned().contains(&m.id) {
                        "pinned"
                    } else {
                        "this machine keeps every file"
                    }
                ),
                Err(e) => tracing::debug!("{e}"),
            }
        }
    }
}
