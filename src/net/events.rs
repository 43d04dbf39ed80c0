//! What the network tells the application, and what it shows of its peers. Plain
//! values: the application reacts to them on its own thread; nothing here blocks.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::peer_id::PeerId;
use crate::proto::{PlayOutcome, PlayRequest};

/// Something the application should know or act on.
#[derive(Debug)]
pub enum NetEvent {
    /// A trusted peer is connected.
    PeerUp {
        /// Who.
        id: PeerId,
        /// Its name in the trust store.
        name: String,
        /// Where it is.
        addr: SocketAddr,
    },
    /// A peer's connection ended.
    PeerDown {
        /// Who.
        id: PeerId,
        /// Its name.
        name: String,
        /// Why, in words.
        reason: String,
    },
    /// A connection was refused at the handshake (either way), or a dial failed in a
    /// way the user should see.
    Refused {
        /// The id that tried (or that was dialled), when known.
        id: Option<PeerId>,
        /// The other side's address.
        addr: Option<SocketAddr>,
        /// Why, in words, with what to do about it.
        reason: String,
    },
    /// A trusted peer with `play` asks us to play a sound (already checked against its
    /// permissions and rate limit). Answer it.
    Play(InboundPlay),
    /// We refused a peer's trigger (permissions, rate limit): for the log.
    PlayRefused {
        /// Who asked.
        name: String,
        /// What.
        sound: String,
        /// Why.
        reason: String,
    },
    /// A peer answered one of our triggers.
    TriggerResult {
        /// The trigger, as [`super::Node::trigger`] returned it.
        trigger: u64,
        /// The peer.
        peer: PeerId,
        /// Its answer.
        outcome: PlayOutcome,
    },
    /// A blob fetch finished (verified and complete) or failed.
    FetchDone {
        /// The sound.
        id: crate::domain::SoundId,
        /// `Err`: why it failed.
        result: Result<(), super::FetchError>,
    },
    /// A peer fetched one of our sounds.
    Served {
        /// Who.
        name: String,
        /// Which.
        id: crate::domain::SoundId,
        /// Bytes sent.
        bytes: u64,
    },
    /// Something that went wrong in the network layer itself (e.g. the listen port).
    Problem(String),
    /// A peer finished fetching one of our sounds (`error` None: it holds it whole).
    PeerFetched {
        /// Who.
        id: PeerId,
        /// The sound.
        sound: crate::domain::SoundId,
        /// Why it gave up, if it did.
        error: Option<String>,
    },
    /// A peer told us which features it speaks (right after connecting).
    Features {
        /// Who.
        id: PeerId,
    },
    /// A peer refused something one of our features did (e.g. talking to it without
    /// its `voice` permission).
    Denied {
        /// Who refused.
        id: PeerId,
        /// Its name.
        name: String,
        /// The feature.
        feature: String,
        /// Why, in its words.
        message: String,
    },
}

/// A play request from a peer, with the way to answer it.
#[derive(Debug)]
pub struct InboundPlay {
    /// Who asks.
    pub from: PeerId,
    /// Its trusted name.
    pub from_name: String,
    /// What it asks for.
    pub request: PlayRequest,
    /// When the request arrived (the trigger latency counts from here).
    pub received: Instant,
    pub(crate) reply: tokio::sync::oneshot::Sender<PlayOutcome>,
}

impl InboundPlay {
    /// Answers the peer (an answer nobody waits for any more is dropped).
    pub fn answer(self, outcome: PlayOutcome) {
        let _ = self.reply.send(outcome);
    }

    /// Splits into the request and its answer handle, to answer later.
    pub fn into_parts(self) -> (PlayRequest, Reply) {
        (self.request, Reply(self.reply))
    }
}

/// The answer handle of an [`InboundPlay`], kept while the sound is being fetched.
#[derive(Debug)]
pub struct Reply(tokio::sync::oneshot::Sender<PlayOutcome>);

impl Reply {
    /// Answers the peer.
    pub fn send(self, outcome: PlayOutcome) {
        let _ = self.0.send(outcome);
    }
}

/// One trusted peer as the peers panel and `jhack peer list` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerStatus {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Its address in the trust store.
    pub address: Option<String>,
    /// What it may do here.
    pub allow: String,
    /// Whether it is connected.
    pub online: bool,
    /// Last measured round trip, ms.
    pub rtt_ms: Option<f64>,
    /// Blob transfers running with it (either way).
    pub transfers: u32,
    /// Datagrams from it dropped (unknown kind, not allowed, over the rate).
    #[serde(default)]
    pub datagrams_dropped: u64,
    /// The protocol version settled with it, while connected.
    #[serde(default)]
    pub protocol: Option<u16>,
    /// Why the last connection attempt failed, when it did.
    pub last_error: Option<String>,
    /// Library sync with it (`"mirror"`), when there is one.
    #[serde(default)]
    pub sync: Option<String>,
    /// How that sync stands (`in sync`, `syncing`, or why not), while a jhack runs.
    #[serde(default)]
    pub sync_state: Option<String>,
    /// The tags of our sounds shared with it.
    #[serde(default)]
    pub shares: Vec<String>,
    /// Where its connection comes from, while connected.
    #[serde(default)]
    pub remote: Option<String>,
    /// Marked in `peers.toml` as the machine with this person's speakers (where an
    /// SSH-hosted screen plays).
    #[serde(default)]
    pub speakers: bool,
}

/// Round trip in ms from a duration.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
