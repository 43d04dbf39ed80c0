//! Peers over QUIC: who this installation is ([`Identity`], [`PeerId`]), whom it
//! trusts ([`TrustStore`]), and the [`Node`] that talks to them — remote triggers on
//! one control stream per connection, blobs fetched on their own streams and verified
//! group by group against the sound's id, and a router through which features
//! (voice, …) plug in their datagrams and messages with the permission they need.
//!
//! Shape: `shared` holds the state every task sees; `link` runs one connection and
//! routes what arrives through `router`; `blob/` is blob transfer; `node` is the
//! public face. Imports point one way: node → link → router/shared ← blob.
//!
//! This is the only module that imports quinn and rustls. It never decodes audio,
//! never plays, and never writes the library: the application (`app`) does that with
//! what the node hands it.

mod blob;
mod events;
mod files;
mod framed;
mod hooks;
mod identity;
mod limit;
mod link;
mod node;
mod outbox;
pub mod peer_id;
pub mod request;
mod router;
mod shared;
mod socket;
mod tls;
mod transport;
pub mod trust;
pub mod tunnel;

pub use blob::tree;
pub use blob::{BATCH_BLOB_MAX, Fetch, FetchError, FetchStats};
pub use events::{InboundPlay, NetEvent, PeerStatus, Reply};
pub use identity::{Identity, IdentityError};
pub use node::{BlobLookup, EventSink, NetError, Node, NodeConfig, ReadPolicy, channel_sink};
pub use outbox::Outbox;
pub use peer_id::{PeerId, PeerIdError};
pub use router::{DatagramHandler, Feature, MessageHandler, Permission, RouteClash};
pub use tls::{ALPN, Gate, client_config, remote_id, server_config};
pub use transport::{endpoint, full_socket_buffers};
pub use trust::{DEFAULT_PORT, Permissions, SyncRelation, TrustError, TrustStore, TrustedPeer};
