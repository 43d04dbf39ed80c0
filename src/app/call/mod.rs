//! A call: the intercom wired between the engine and the network. The talker's side
//! ([`talker`]) reads the engine's input tap, gates, encodes and sends each frame as a
//! datagram to every peer of the call; the listener's side ([`listener`]) takes the
//! datagrams the node routes to the voice feature — straight from the network
//! thread, never through an owner's event queue — through a jitter buffer and a
//! decoder per talking peer into a live voice in the mixer, and reports back.
//!
//! The logic is `voice`'s (plain state machines); this module only moves samples and
//! bytes between threads. It never runs on the audio thread: the mixer only reads
//! the ring each peer's voice is fed through.

mod listener;
mod relay;
mod talker;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::audio::Engine;
use crate::net::{DatagramHandler, Feature, MessageHandler, Node, PeerId, Permission};
use crate::proto::{datagram_kind, feature_kind};
use crate::voice::codec::{CodecConfig, Profile};
use crate::voice::gate::TalkMode;
use crate::voice::jitter::{JitterConfig, JitterStats};
use crate::voice::report::{CallNote, Report};

pub use listener::ListenerStats;
pub use relay::{RelayStats, VoiceRelay};

/// The voice feature's name on the wire.
pub const FEATURE: &str = "voice/1";
/// Datagrams waiting for the listener thread; beyond this they are dropped (a flood).
const INBOX: usize = 2048;

/// What the network hands the listener.
pub(crate) enum Inbound {
    /// A voice packet and when it was read.
    Datagram {
        /// Who talks.
        talker: PeerId,
        /// The relay it came through, if not from the talker itself.
        via: Option<PeerId>,
        /// The packet (kind byte, and a relay's talker id, removed).
        packet: bytes::Bytes,
        /// When it was read.
        at: Instant,
    },
    /// A listener's report about our talking.
    Report(PeerId, Report),
    /// A talker started or stopped.
    Note(PeerId, CallNote),
}

/// Where the voice feature's datagrams and messages go until a call takes them.
pub struct VoiceInbox {
    tx: SyncSender<Inbound>,
    rx: Mutex<Option<Receiver<Inbound>>>,
}

impl VoiceInbox {
    /// A new inbox.
    pub fn new() -> Arc<VoiceInbox> {
        let (tx, rx) = std::sync::mpsc::sync_channel(INBOX);
        Arc::new(VoiceInbox {
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    /// The feature to plug into the node: peers need `voice` here to be heard.
    pub fn feature(self: &Arc<Self>) -> Feature {
        let tx = self.tx.clone();
        let datagram: DatagramHandler = Arc::new(move |peer, packet, at| {
            let d = Inbound::Datagram {
                talker: *peer,
                via: None,
                packet,
                at,
            };
            // Never block the network thread: a full inbox drops the datagram.
            if let Err(TrySendError::Full(_)) = tx.try_send(d) {
                tracing::debug!("voice inbox full: a datagram dropped");
            }
        });
        let tx = self.tx.clone();
        let relayed: DatagramHandler = Arc::new(move |relay, bytes, at| {
            let Some((talker, _)) = relay::unwrap_relayed(&bytes) else {
                return tracing::debug!("a relayed voice datagram too short to name its talker");
            };
            let d = Inbound::Datagram {
                talker,
                via: Some(*relay),
                packet: bytes.slice(20..),
                at,
            };
            if let Err(TrySendError::Full(_)) = tx.try_send(d) {
                tracing::debug!("voice inbox full: a datagram dropped");
            }
        });
        let tx = self.tx.clone();
        let report: MessageHandler = Arc::new(move |peer, body| {
            if let Some(r) = Report::decode(body) {
                let _ = tx.try_send(Inbound::Report(*peer, r));
            }
        });
        let tx = self.tx.clone();
        let note: MessageHandler = Arc::new(move |peer, body| {
            if let Some(n) = CallNote::decode(body) {
                let _ = tx.try_send(Inbound::Note(*peer, n));
            }
        });
        Feature {
            name: FEATURE,
            permission: Permission::Voice,
            datagrams: vec![
                (datagram_kind::VOICE, datagram),
                (datagram_kind::VOICE_RELAYED, relayed),
            ],
            messages: vec![
                (feature_kind::VOICE_REPORT, report),
                (feature_kind::VOICE_CALL, note),
            ],
            requests: vec![],
        }
    }

    fn take(&self) -> Option<Receiver<Inbound>> {
        crate::guard::lock(&self.rx).take()
    }

    /// A call that ended hands the inbox's receiver back for the next one; what
    /// arrived meanwhile is old and dropped.
    fn put_back(&self, rx: Receiver<Inbound>) {
        while rx.try_recv().is_ok() {}
        *crate::guard::lock(&self.rx) = Some(rx);
    }
}

/// How a call runs.
#[derive(Debug, Clone)]
pub struct CallSettings {
    /// The codec's settings (profile, frame, channels, bit rate).
    pub codec: CodecConfig,
    /// Redundant copies of earlier frames per datagram (low delay: 1 or 2).
    pub copies: usize,
    /// When the microphone opens.
    pub mode: TalkMode,
    /// The jitter buffer's settings.
    pub jitter: JitterConfig,
    /// Send our voice (false: listen only).
    pub talk: bool,
}

impl CallSettings {
    /// The settings of a profile with `frame_samples` frames.
    pub fn new(profile: Profile, frame_samples: u32, mode: TalkMode) -> CallSettings {
        let mut codec = CodecConfig::new(profile);
        codec.frame_samples = frame_samples;
        let jitter = JitterConfig {
            frame_samples,
            fec: profile == Profile::Robust,
            repair_frames: 1,
            // The stretch follows the drift between the talker's microphone and our
            // speaker; real cards differ by a fraction of a per mille, but virtual
            // and resampled devices have been measured 1–2 % apart.
            max_stretch: 0.025,
            ..JitterConfig::default()
        };
        CallSettings {
            codec,
            copies: if profile == Profile::LowDelay { 1 } else { 0 },
            mode,
            jitter,
            talk: true,
        }
    }
}

/// What one call did, for `--stats` and the screen.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CallStats {
    /// Frames captured and encoded.
    pub frames_captured: u64,
    /// Datagrams sent (to all peers).
    pub datagrams_sent: u64,
    /// Datagrams that could not be sent (peer gone, path too small).
    pub send_errors: u64,
    /// The loss the listeners last reported, %.
    pub reported_loss_percent: f64,
    /// Each talking peer, by name.
    pub peers: Vec<ListenerStats>,
}

/// A running call. See the module documentation.
pub struct Call {
    stop: Arc<AtomicBool>,
    talker_thread: Option<JoinHandle<()>>,
    listener_thread: Option<JoinHandle<Receiver<Inbound>>>,
    talker: Arc<talker::Shared>,
    listener: Arc<listener::Shared>,
    inbox: Arc<VoiceInbox>,
    node: Arc<Node>,
    stream: u32,
    settings: CallSettings,
}

impl Call {
    /// Starts talking to `peers` and listening to whoever is allowed to talk to us,
    /// with the datagrams from `inbox` (the feature plugged into `node`).
    pub fn start(
        engine: Arc<Engine>,
        node: Arc<Node>,
        inbox: &Arc<VoiceInbox>,
        peers: Vec<PeerId>,
        settings: CallSettings,
    ) -> Result<Call, String> {
        let rx = inbox
            .take()
            .ok_or_else(|| "a call is already running on this voice inbox".to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let stream = session_id();
        let listener = Arc::new(listener::Shared::new(settings.jitter.clone()));
        let talker = Arc::new(talker::Shared::new(settings.mode));
        let mut call = Call {
            stop: stop.clone(),
            talker_thread: None,
            listener_thread: None,
            talker: talker.clone(),
            listener: listener.clone(),
            inbox: inbox.clone(),
            node: node.clone(),
            stream,
            settings: settings.clone(),
        };
        let tap = if settings.talk {
            match engine.open_input(0.5) {
                Ok(t) => Some(t),
                Err(e) => {
                    inbox.put_back(rx);
                    return Err(format!("the microphone: {}", crate::domain::chain(&e)));
                }
            }
        } else {
            None
        };
        {
            let (engine, node, stop, listener) =
                (engine.clone(), node.clone(), stop.clone(), listener.clone());
            let talker = talker.clone();
            let spawned = std::thread::Builder::new()
                .name("jhack-voice-rx".into())
                .spawn(move || listener::run(&engine, &node, rx, &stop, &listener, &talker));
            call.listener_thread =
                Some(spawned.map_err(|e| format!("cannot start the voice thread: {e}"))?);
        }
        call.set_peers(peers);
        if let Some(tap) = tap {
            let (stop, talker) = (stop.clone(), talker.clone());
            let spawned = std::thread::Builder::new()
                .name("jhack-voice-tx".into())
                .spawn(move || talker::run(tap, &node, &settings, stream, &stop, &talker));
            call.talker_thread =
                Some(spawned.map_err(|e| format!("cannot start the voice thread: {e}"))?);
        }
        Ok(call)
    }

    /// The peers our voice goes to from now on: each new one is told we joined,
    /// each dropped one that we left.
    pub fn set_peers(&self, peers: Vec<PeerId>) {
        let old = self.talker.set_peers(peers.clone());
        for p in peers.iter().filter(|p| !old.contains(p)) {
            self.note(p, true);
        }
        for p in old.iter().filter(|p| !peers.contains(p)) {
            self.note(p, false);
        }
    }

    fn note(&self, peer: &PeerId, joined: bool) {
        let note = CallNote {
            stream: self.stream,
            joined,
        };
        let _ = self
            .node
            .send_feature(peer, feature_kind::VOICE_CALL, note.encode());
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &CallSettings {
        &self.settings
    }

    /// The talk key went down or up (push to talk).
    pub fn press(&self, down: bool) {
        self.talker.press(down);
    }

    /// Toggles the talk latch.
    pub fn toggle(&self) {
        self.talker.toggle();
    }

    /// Whether the talk key is down (or latched).
    pub fn pressed(&self) -> bool {
        self.talker.pressed()
    }

    /// Whether our voice is sent now (the gate is open).
    pub fn transmitting(&self) -> bool {
        self.talker.transmitting()
    }

    /// A function that toggles the talk latch from any thread.
    pub fn toggler(&self) -> impl Fn() + Send + Sync + 'static {
        let t = self.talker.clone();
        move || t.toggle()
    }

    /// A peer's volume (dB; `None`: muted).
    pub fn set_volume(&self, peer: PeerId, db: Option<f32>) {
        self.listener.set_volume(peer, db);
    }

    /// The call's figures now.
    pub fn stats(&self) -> CallStats {
        let mut s = self.talker.stats();
        s.peers = self.listener.stats();
        s
    }

    /// The jitter statistics of each peer heard (by id).
    pub fn jitter(&self) -> HashMap<PeerId, JitterStats> {
        self.listener.jitter()
    }

    /// Ends the call (its voices fade out); the inbox is free for the next one.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.set_peers(Vec::new());
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.talker_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.listener_thread.take()
            && let Ok(rx) = t.join()
        {
            self.inbox.put_back(rx);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A random talk-session id.
fn session_id() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = blake3::hash(
        &[
            t.to_le_bytes().as_slice(),
            &std::process::id().to_le_bytes(),
        ]
        .concat(),
    );
    let b = h.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
