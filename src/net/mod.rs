//! Peers over QUIC: who this installation is ([`Identity`], [`PeerId`]), whom it
//! trusts ([`TrustStore`]), and the [`Node`] that talks to them — remote triggers on
//! one control stream per connection, blobs fetched on their own streams and verified
//! group by group against the sound's id.
//!
//! This is the only module that imports quinn and rustls. It never decodes audio,
//! never plays, and never writes the library: the application (`app`) does that with
//! what the node hands it.

mod events;
mod fetch;
mod files;
mod framed;
mod hooks;
mod identity;
mod limit;
mod link;
mod node;
pub mod peer_id;
mod serve;
mod tls;
mod transport;
pub mod tree;
pub mod trust;

pub use events::{InboundPlay, NetEvent, PeerStatus, Reply};
pub use fetch::{Fetch, FetchStats};
pub use identity::{Identity, IdentityError};
pub use node::{BlobLookup, EventSink, NetError, Node, NodeConfig};
pub use peer_id::{PeerId, PeerIdError};
pub use tls::{ALPN, Gate, client_config, remote_id, server_config};
pub use trust::{DEFAULT_PORT, Permissions, TrustError, TrustStore, TrustedPeer};
