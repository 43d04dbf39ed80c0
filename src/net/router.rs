//! Where what a peer sends goes: the node's router (after iroh's). A feature (voice,
//! and what comes next) registers the datagram kinds and feature-message kinds it
//! handles and the permission a peer needs to use it; the node's own features (blob
//! transfer) register the stream kinds they serve. The connection's reader looks the
//! kind up here, checks the permission and hands the bytes over, so adding a
//! feature edits no reader, writer or node code.
//!
//! The router is built before the node starts and never changes afterwards: lookups
//! take no lock. Handlers run on the network threads: they must return at once
//! (push into a queue, wake a thread) and never block, write files or hash.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::link::Link;
use super::peer_id::PeerId;
use super::shared::Shared;
use super::trust::Permissions;
use crate::proto::StreamKind;

/// Receives one datagram of its kind (kind byte removed) from a peer allowed to send
/// it, with the time it was read off the connection.
pub type DatagramHandler = Arc<dyn Fn(&PeerId, bytes::Bytes, Instant) + Send + Sync>;

/// Receives one feature message of its kind from a peer allowed to send it.
pub type MessageHandler = Arc<dyn Fn(&PeerId, &[u8]) + Send + Sync>;

/// Serves one stream a peer opened (its kind header already read).
pub(crate) type StreamHandler = Arc<
    dyn Fn(
            Arc<Shared>,
            Arc<Link>,
            quinn::SendStream,
            quinn::RecvStream,
        ) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A permission a peer needs for a feature (see [`Permissions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Trigger sounds.
    Play,
    /// Talk over the intercom.
    Voice,
    /// Fetch from the library.
    Read,
    /// Add to the library.
    Write,
    /// Drive the engine from another screen.
    Control,
    /// Any trusted peer: the feature itself decides (an answer to something we
    /// asked that peer for).
    Trusted,
}

impl Permission {
    /// Whether `p` grants it.
    pub fn granted(self, p: &Permissions) -> bool {
        match self {
            Permission::Play => p.play,
            Permission::Voice => p.voice,
            Permission::Read => p.read,
            Permission::Write => p.write,
            Permission::Control => p.control,
            Permission::Trusted => true,
        }
    }

    /// Its name in the trust store.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Play => "play",
            Permission::Voice => "voice",
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Control => "control",
            Permission::Trusted => "trusted",
        }
    }
}

/// A feature as it plugs into the node.
#[derive(Clone)]
pub struct Feature {
    /// Its name and version, told to peers (e.g. `"voice/1"`).
    pub name: &'static str,
    /// What a peer needs to use it here.
    pub permission: Permission,
    /// The datagram kinds it receives.
    pub datagrams: Vec<(u8, DatagramHandler)>,
    /// The feature-message kinds it receives.
    pub messages: Vec<(u16, MessageHandler)>,
    /// The stream kinds it answers requests on (see [`super::request`]).
    pub requests: Vec<(StreamKind, super::request::RequestHandler)>,
}

/// One registered feature's routing facts.
#[derive(Clone)]
pub(crate) struct Route<H> {
    /// The feature's name.
    pub(crate) feature: &'static str,
    /// What a peer needs.
    pub(crate) permission: Option<Permission>,
    /// Who handles it.
    pub(crate) handler: H,
}

/// The node's routing table. See the module documentation.
#[derive(Default)]
pub(crate) struct Router {
    names: Vec<&'static str>,
    datagrams: HashMap<u8, Route<DatagramHandler>>,
    messages: HashMap<u16, Route<MessageHandler>>,
    streams: HashMap<StreamKind, Route<StreamHandler>>,
}

/// Two features claimed the same kind.
#[derive(Debug, thiserror::Error)]
#[error("{what} kind {kind} is claimed by both {first} and {second}")]
pub struct RouteClash {
    what: &'static str,
    kind: u32,
    first: &'static str,
    second: &'static str,
}

impl Router {
    /// Adds a feature; a kind another feature already has is refused.
    pub(crate) fn add(&mut self, f: Feature) -> Result<(), RouteClash> {
        for (kind, h) in f.datagrams {
            if let Some(r) = self.datagrams.get(&kind) {
                return Err(clash("datagram", kind.into(), r.feature, f.name));
            }
            self.datagrams
                .insert(kind, route(f.name, Some(f.permission), h));
        }
        for (kind, h) in f.messages {
            if let Some(r) = self.messages.get(&kind) {
                return Err(clash("message", kind.into(), r.feature, f.name));
            }
            self.messages
                .insert(kind, route(f.name, Some(f.permission), h));
        }
        for (kind, h) in f.requests {
            if let Some(r) = self.streams.get(&kind) {
                return Err(clash("stream", kind.0.into(), r.feature, f.name));
            }
            self.streams.insert(
                kind,
                route(f.name, Some(f.permission), super::request::serve(h)),
            );
        }
        self.names.push(f.name);
        Ok(())
    }

    /// Adds a stream kind served by the node itself; `permission` `None` leaves the
    /// check to the handler (a blob may be fetched with `read` or when offered).
    pub(crate) fn add_stream(
        &mut self,
        feature: &'static str,
        kind: StreamKind,
        permission: Option<Permission>,
        handler: StreamHandler,
    ) -> Result<(), RouteClash> {
        if let Some(r) = self.streams.get(&kind) {
            return Err(clash("stream", kind.0.into(), r.feature, feature));
        }
        if !self.names.contains(&feature) {
            self.names.push(feature);
        }
        self.streams
            .insert(kind, route(feature, permission, handler));
        Ok(())
    }

    /// The features this node speaks, for the peer.
    pub(crate) fn names(&self) -> Vec<String> {
        self.names.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The route of a datagram kind.
    pub(crate) fn datagram(&self, kind: u8) -> Option<&Route<DatagramHandler>> {
        self.datagrams.get(&kind)
    }

    /// The route of a feature-message kind.
    pub(crate) fn message(&self, kind: u16) -> Option<&Route<MessageHandler>> {
        self.messages.get(&kind)
    }

    /// The route of a stream kind.
    pub(crate) fn stream(&self, kind: StreamKind) -> Option<&Route<StreamHandler>> {
        self.streams.get(&kind)
    }
}

fn route<H>(feature: &'static str, permission: Option<Permission>, handler: H) -> Route<H> {
    Route {
        feature,
        permission,
        handler,
    }
}

fn clash(what: &'static str, kind: u32, first: &'static str, second: &'static str) -> RouteClash {
    RouteClash {
        what,
        kind,
        first,
        second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: &'static str, datagram: u8, message: u16) -> Feature {
        let d: DatagramHandler = Arc::new(|_, _, _| {});
        let m: MessageHandler = Arc::new(|_, _| {});
        Feature {
            name,
            permission: Permission::Voice,
            datagrams: vec![(datagram, d)],
            messages: vec![(message, m)],
            requests: vec![],
        }
    }

    #[test]
    fn kinds_route_to_their_feature_and_clashes_are_refused() {
        let mut r = Router::default();
        r.add(feature("voice/1", 1, 0x100)).unwrap();
        assert_eq!(r.datagram(1).map(|r| r.feature), Some("voice/1"));
        assert_eq!(r.message(0x100).map(|r| r.feature), Some("voice/1"));
        assert!(r.datagram(2).is_none());
        assert!(r.message(0x101).is_none());
        let e = r.add(feature("other/1", 1, 0x200)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "datagram kind 1 is claimed by both voice/1 and other/1"
        );
        assert_eq!(r.names(), vec!["voice/1".to_string()]);
    }

    #[test]
    fn permissions_are_named_and_checked() {
        let p = Permissions::parse("voice,read").unwrap();
        assert!(Permission::Voice.granted(&p));
        assert!(Permission::Read.granted(&p));
        assert!(!Permission::Play.granted(&p));
        assert!(!Permission::Write.granted(&p));
        assert_eq!(Permission::Voice.name(), "voice");
    }
}
