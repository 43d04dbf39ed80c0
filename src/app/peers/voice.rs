//! The hub's voice: the screen's call (talk to every connected peer that takes our
//! voice, hear whoever may talk here) or `serve`'s relay. The call's own threads do
//! the work; here it is started, kept pointed at the peers that are online, moved to
//! a new engine after a device switch, and asked for its figures.
//!
//! Never touches audio or datagrams itself: it runs on the owner's thread, which
//! must stay free for keys and triggers.

use std::collections::HashMap;
use std::sync::Arc;

use super::PeerHub;
use crate::app::call::{
    Call, CallSettings, CallStats, FEATURE, RelayStats, VoiceInbox, VoiceRelay,
};
use crate::app::instance::Instance;
use crate::net::{Feature, PeerId};

/// What a hub does with voice.
#[derive(Debug, Clone, Default)]
pub enum VoiceRole {
    /// Nothing (one-off commands).
    #[default]
    Off,
    /// A call with the connected peers, with these settings (the screen).
    Call(CallSettings),
    /// Forward every member's voice to the others (`serve`).
    Relay,
}

/// The hub's voice state.
pub(super) enum Voice {
    Off,
    Call(Box<CallState>),
    Relay(Arc<VoiceRelay>),
}

/// The screen's call and what it keeps across restarts.
pub(super) struct CallState {
    inbox: Arc<VoiceInbox>,
    settings: CallSettings,
    call: Option<Call>,
    /// The peers the call talks to now.
    peers: Vec<PeerId>,
    /// Volumes set by the user (dB; `None`: muted), kept across restarts.
    volumes: HashMap<PeerId, Option<f32>>,
}

impl VoiceRole {
    /// A call with the talk key: low delay, 10 ms frames, the microphone open only
    /// while the key is down (a screen, or `serve --call`).
    pub fn push_to_talk() -> VoiceRole {
        VoiceRole::Call(CallSettings::new(
            crate::voice::codec::Profile::LowDelay,
            480,
            crate::voice::gate::TalkMode::PushToTalk,
        ))
    }
}

impl Voice {
    /// The state for `role`, and the feature to plug into the node.
    pub(super) fn new(role: &VoiceRole) -> (Voice, Option<Feature>) {
        match role {
            VoiceRole::Off => (Voice::Off, None),
            VoiceRole::Call(settings) => {
                let inbox = VoiceInbox::new();
                let feature = inbox.feature();
                let voice = Voice::Call(Box::new(CallState {
                    inbox,
                    settings: settings.clone(),
                    call: None,
                    peers: Vec::new(),
                    volumes: HashMap::new(),
                }));
                (voice, Some(feature))
            }
            VoiceRole::Relay => {
                let relay = VoiceRelay::new();
                let feature = relay.feature();
                (Voice::Relay(relay), Some(feature))
            }
        }
    }
}

impl PeerHub {
    /// Starts the call (the screen's) on `instance`'s engine; a call already running
    /// is moved there (after a device switch). Nothing for a relay or no voice.
    pub fn start_voice(&mut self, instance: &Instance) -> Result<(), String> {
        let node = self.node.clone();
        if let Voice::Relay(r) = &self.voice {
            r.attach(node.outbox());
            return Ok(());
        }
        let Voice::Call(state) = &mut self.voice else {
            return Ok(());
        };
        let CallState {
            inbox,
            settings,
            call,
            peers,
            volumes,
        } = &mut **state;
        if let Some(old) = call.take() {
            old.stop();
        }
        let start = |s: CallSettings| {
            Call::start(
                instance.engine_shared(),
                node.clone(),
                inbox,
                peers.clone(),
                s,
            )
        };
        let started = match start(settings.clone()) {
            Ok(c) => c,
            Err(e) if settings.talk => {
                // Without a microphone we can still hear the others.
                let c = start(CallSettings {
                    talk: false,
                    ..settings.clone()
                })?;
                self.notes.push(format!("listening only: {e}"));
                c
            }
            Err(e) => return Err(e),
        };
        for (p, v) in volumes.iter() {
            started.set_volume(*p, *v);
        }
        *call = Some(started);
        Ok(())
    }

    /// Points the call at the peers online now that speak voice.
    pub(super) fn poll_voice(&mut self) {
        let Voice::Call(state) = &mut self.voice else {
            return;
        };
        let CallState {
            call: Some(call),
            peers,
            ..
        } = &mut **state
        else {
            return;
        };
        let now: Vec<PeerId> = self
            .node
            .connected()
            .into_iter()
            .filter(|p| self.node.speaks(p, FEATURE))
            .collect();
        if now != *peers {
            *peers = now.clone();
            call.set_peers(now);
        }
    }

    /// A peer went offline: a relay stops forwarding to it.
    pub(super) fn voice_peer_down(&self, peer: &PeerId) {
        if let Voice::Relay(r) = &self.voice {
            r.leave(peer, "offline");
        }
    }

    /// Whether our call sends our voice now (the talk key is down or latched).
    pub(super) fn talking(&self) -> bool {
        self.call().is_some_and(|c| c.pressed() || c.transmitting())
    }

    /// The call, when one runs.
    pub fn call(&self) -> Option<&Call> {
        match &self.voice {
            Voice::Call(state) => state.call.as_ref(),
            _ => None,
        }
    }

    /// The call's figures, when one runs.
    pub fn call_stats(&self) -> Option<CallStats> {
        self.call().map(Call::stats)
    }

    /// The relay's figures, when this hub relays.
    pub fn relay_stats(&self) -> Option<RelayStats> {
        match &self.voice {
            Voice::Relay(r) => Some(r.stats()),
            _ => None,
        }
    }

    /// A talking peer's volume (dB; `None`: muted), kept for later calls too.
    pub fn set_voice_volume(&mut self, peer: PeerId, db: Option<f32>) {
        if let Voice::Call(state) = &mut self.voice {
            state.volumes.insert(peer, db);
            if let Some(c) = &state.call {
                c.set_volume(peer, db);
            }
        }
    }

    /// A peer's volume as set (dB; `None`: muted; 0 dB when never set).
    pub fn voice_volume(&self, peer: &PeerId) -> Option<f32> {
        match &self.voice {
            Voice::Call(state) => state.volumes.get(peer).copied().unwrap_or(Some(0.0)),
            _ => Some(0.0),
        }
    }
}
