//! The hub's part in attaching screens to engines: this engine follows device
//! switches for the screens attached to it, and a screen here attaches to a peer's.

use super::PeerHub;
use crate::app::attach::view::Attached;
use crate::app::instance::Instance;
use crate::net::PeerId;

impl PeerHub {
    /// The instance's engine was replaced (a device switch): the call and the
    /// screens attached here move to the new one.
    pub fn engine_changed(&mut self, instance: &Instance, notice: &mut dyn FnMut(String)) {
        if let Err(e) = self.start_voice(instance) {
            notice(format!("voice: {e}"));
        }
        if let Some(h) = &self.engine_host {
            h.engine_changed(instance.engine_shared());
        }
    }

    /// Whether `peer` is connected and has an engine a screen may attach to.
    pub fn can_attach(&self, peer: &PeerId) -> bool {
        self.node.speaks(peer, crate::app::attach::FEATURE)
    }

    /// Attaches this screen to `peer`'s engine (its answers and frames wake the
    /// owner's loop).
    pub fn attach(&self, peer: PeerId) -> Result<Attached, String> {
        Attached::start(
            self.node.clone(),
            peer,
            self.node.name_of(&peer),
            self.engine_view.clone(),
            self.post.clone(),
        )
        .map_err(|e| format!("cannot attach: {e}"))
    }
}
