//! Keeping a sound fetched from a peer: once every byte is verified, it goes into the
//! library as a remote sound (within the remote-sound budget) and its partial files
//! are removed; a failed or mismatched transfer is reported, never kept.

use super::PeerHub;
use crate::app::instance::Instance;
use crate::domain::{Origin, SoundId, chain};
use crate::library::NewSound;

impl PeerHub {
    pub(super) fn on_fetched(
        &mut self,
        instance: &mut Instance,
        id: SoundId,
        result: Result<(), crate::net::FetchError>,
        notice: &mut dyn FnMut(String),
    ) {
        let Some(a) = self.arriving.remove(&id) else {
            return;
        };
        if let Err(e) = result {
            self.misses.entry(id).or_default().push(a.peer);
            let why = format!("\"{}\" from {} did not arrive: {e}", a.offer.name, a.from);
            self.finish_copies(instance, &id, Err(why.clone()), notice);
            notice(why);
            return;
        }
        if instance.shared_by(&id).is_some() {
            let kept = instance.keep_shared(a.fetch.path(), &id);
            a.fetch.discard_files();
            let done = kept.as_ref().map(|_| ()).map_err(|e| chain(e));
            self.finish_copies(instance, &id, done, notice);
            match kept {
                Ok(()) => {
                    self.misses.remove(&id);
                    notice(format!(
                        "kept \"{}\" shared by {} ({} KB, every byte verified)",
                        a.offer.name,
                        a.from,
                        a.offer.size / 1000
                    ));
                }
                Err(e) => notice(format!(
                    "\"{}\" from {} could not be kept: {}",
                    a.offer.name,
                    a.from,
                    chain(&e)
                )),
            }
            return;
        }
        let new = NewSound {
            name: a.offer.name.clone(),
            tags: vec!["remote".into()],
            key: None,
            gain_db: 0.0,
            frames: a.offer.frames,
            sample_rate: a.offer.sample_rate,
            channels: a.offer.channels,
            format: a.offer.format.clone(),
            loudness_lufs: a.offer.loudness_lufs,
            // The machine that holds the whole library keeps every file for good.
            origin: if self.keeps_all() {
                Origin::Local
            } else {
                Origin::Remote
            },
        };
        match instance.keep_remote(a.fetch.path(), new) {
            Ok(m) if m.id == id => {
                self.misses.remove(&id);
                a.fetch.discard_files();
                notice(format!(
                    "kept \"{}\" from {} ({} KB, every byte verified)",
                    m.name,
                    a.from,
                    a.offer.size / 1000
                ));
            }
            Ok(m) => notice(format!(
                "\"{}\" from {} was stored under another id ({}): the library disagrees with the transfer",
                m.name,
                a.from,
                m.id.short()
            )),
            Err(e) => notice(format!(
                "\"{}\" from {} could not be kept: {}",
                a.offer.name,
                a.from,
                chain(&e)
            )),
        }
    }
}
