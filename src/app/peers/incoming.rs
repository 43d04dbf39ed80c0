//! What peers trigger here: a sound in the library plays at once; one that is not is
//! fetched from the peer and played while it arrives, opened on a short-lived thread
//! (its reads wait for the network) that hands a prepared voice back to the owner.

use std::path::Path;
use std::time::Instant;

use super::{Arriving, HubEvent, PeerHub, Started};
use crate::app::growing::GrowingFile;
use crate::app::instance::Instance;
use crate::app::player::{self, OpenedFile};
use crate::domain::chain;
use crate::proto::{PlayOutcome, Refusal, SoundOffer};

impl PeerHub {
    pub(super) fn on_play(
        &mut self,
        instance: &mut Instance,
        p: crate::net::InboundPlay,
        notice: &mut dyn FnMut(String),
    ) {
        let from = p.from;
        let from_name = p.from_name.clone();
        let received = p.received;
        let (req, reply) = p.into_parts();
        let offer = req.sound;
        if instance.has_sound(&offer.id) {
            let extra = instance.capped_remote_db(req.gain_db);
            let outcome = match instance.play_triggered(&offer.id, extra, received) {
                Ok(voice) => {
                    notice(format!("{from_name} played \"{}\" here", offer.name));
                    self.started.push(Started {
                        voice,
                        sound: offer.name.clone(),
                        from: from_name.clone(),
                        cached: true,
                    });
                    PlayOutcome::Started {
                        cached: true,
                        latency_us: micros(received),
                    }
                }
                Err(e) => PlayOutcome::Failed { message: chain(&e) },
            };
            reply.send(outcome);
            return;
        }
        let budget = instance.config().cache.remote_bytes();
        if offer.size > budget {
            reply.send(PlayOutcome::Refused {
                reason: Refusal::TooLarge,
                message: format!(
                    "\"{}\" ({} MB) is larger than this jhack's cache for remote sounds",
                    offer.name,
                    offer.size / 1_000_000
                ),
            });
            return;
        }
        let fetch = match self.arriving.get(&offer.id) {
            Some(a) => a.fetch.clone(),
            None => match self.node.fetch(&from, &offer) {
                Ok(f) => {
                    notice(format!(
                        "{from_name} played \"{}\" here: fetching it ({} KB)",
                        offer.name,
                        offer.size / 1000
                    ));
                    self.arriving.insert(
                        offer.id,
                        Arriving {
                            fetch: f.clone(),
                            offer: offer.clone(),
                            from: from_name.clone(),
                            peer: from,
                        },
                    );
                    f
                }
                Err(e) => {
                    reply.send(PlayOutcome::Failed { message: chain(&e) });
                    return;
                }
            },
        };
        let gain_db = instance.remote_gain_db(offer.loudness_lufs, req.gain_db);
        self.open_arriving(
            instance,
            fetch,
            &offer,
            from_name,
            Some(reply),
            gain_db,
            received,
        );
    }

    /// Opens a sound while it arrives, on a short-lived thread (its reads wait for the
    /// network), and posts the prepared voice (or why not) as [`HubEvent::Ready`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_arriving(
        &mut self,
        instance: &Instance,
        fetch: std::sync::Arc<crate::net::Fetch>,
        offer: &SoundOffer,
        from_name: String,
        reply: Option<crate::net::Reply>,
        gain_db: f32,
        received: Instant,
    ) {
        let format = instance.engine().format();
        let post = self.post.clone();
        let name = hint_name(offer);
        let size = offer.size;
        let id = offer.id;
        let sound = offer.name.clone();
        let kept = instance.library().blob_path(&id);
        let spawned = std::thread::Builder::new()
            .name("jhack-arriving".into())
            .spawn(move || {
                let opened = match GrowingFile::open(fetch.clone()) {
                    Ok(g) => OpenedFile::open_arriving(g, size, Path::new(&name), format)
                        .map_err(|e| e.reason()),
                    // A small sound may have arrived whole and been kept (its partial
                    // file moved into the library) before this thread opened it.
                    Err(_) if fetch.result() == Some(Ok(())) && kept.is_file() => {
                        OpenedFile::open(&kept, format).map_err(|e| e.reason())
                    }
                    Err(e) => Err(e.to_string()),
                };
                let result = opened.and_then(|f| player::prepare(format, f).map_err(|e| chain(&e)));
                post(HubEvent::Ready {
                    id,
                    sound,
                    from: from_name,
                    reply,
                    gain_db,
                    received,
                    result,
                });
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a thread for a remote sound: {e}");
        }
    }
}

/// A file name whose extension hints the container ("flac", "ogg/vorbis" → "ogg").
fn hint_name(offer: &SoundOffer) -> String {
    let ext: String = offer
        .format
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    if ext.is_empty() {
        offer.id.short()
    } else {
        format!("{}.{ext}", offer.id.short())
    }
}

pub(super) fn micros(since: Instant) -> u32 {
    since.elapsed().as_micros().min(u128::from(u32::MAX)) as u32
}
