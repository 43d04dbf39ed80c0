//! Sounds others share with us, as the owner of a home handles them on request:
//! what a peer offers us now (`jhack list --peer`), looked up on a thread of its own,
//! and copying a shared sound into our library (`jhack copy`), which waits for its
//! file when it is not here yet.
//!
//! Must never: wait on the owner's thread (the network is asked on another), or
//! copy a file that was not verified (it is copied once kept).

use std::sync::mpsc::Sender;
use std::time::Duration;

use super::PeerHub;
use crate::app::control::Response;
use crate::app::instance::Instance;
use crate::domain::{SoundId, SoundMeta, chain};

/// How long a look at a peer's offer may take.
const BROWSE_WITHIN: Duration = Duration::from_secs(30);

/// A copy waiting for its file.
pub(super) struct PendingCopy {
    id: SoundId,
    name: Option<String>,
    reply: Sender<Response>,
}

impl PeerHub {
    /// Answers `reply` with what `peer` shares with us now.
    pub fn browse_now(&mut self, peer: &str, reply: Sender<Response>) {
        let found = match self.node.find(peer) {
            Ok(p) => p,
            Err(e) => {
                let _ = reply.send(Response::bad_input(chain(&e)));
                return;
            }
        };
        let node = self.node.clone();
        let spawned = std::thread::Builder::new()
            .name("jhack-browse".into())
            .spawn(move || {
                let r = match node.connect(&found, Duration::from_secs(10)) {
                    Err(e) => Response::failure(chain(&e)),
                    Ok(()) => {
                        match crate::app::sync::follower::browse(&node, &found.id, BROWSE_WITHIN) {
                            Ok(sounds) => Response::Offer {
                                peer: found.name.clone(),
                                sounds,
                            },
                            Err(e) => Response::failure(e),
                        }
                    }
                };
                let _ = reply.send(r);
            });
        if let Err(e) = spawned {
            // The reply went with the closure; the asker sees its connection close.
            tracing::warn!("browse: cannot start a thread: {e}");
        }
    }

    /// Copies `meta`, a shared sound whose file is not here, once its file arrives
    /// from its owner.
    pub fn copy_when_here(
        &mut self,
        instance: &Instance,
        meta: &SoundMeta,
        name: Option<String>,
        reply: Sender<Response>,
    ) {
        if let Err(e) = self.fetch_file(instance, meta, true) {
            let _ = reply.send(Response::failure(e));
            return;
        }
        self.copies.push(PendingCopy {
            id: meta.id,
            name,
            reply,
        });
    }

    /// The file of `id` was kept (`Ok`) or did not arrive: answers the copies
    /// waiting for it.
    pub(super) fn finish_copies(
        &mut self,
        instance: &mut Instance,
        id: &SoundId,
        kept: Result<(), String>,
        notice: &mut dyn FnMut(String),
    ) {
        let (now, later): (Vec<PendingCopy>, Vec<PendingCopy>) = std::mem::take(&mut self.copies)
            .into_iter()
            .partition(|c| c.id == *id);
        self.copies = later;
        for c in now {
            let r = match &kept {
                Err(e) => Response::failure(e.clone()),
                Ok(()) => match instance.copy_shared(&c.id, c.name.as_deref()) {
                    Ok(m) => {
                        notice(format!(
                            "copied \"{}\" into this library by a command",
                            m.name
                        ));
                        Response::Sound { sound: m }
                    }
                    Err(e) => Response::failure(chain(&e)),
                },
            };
            let _ = c.reply.send(r);
        }
    }
}
