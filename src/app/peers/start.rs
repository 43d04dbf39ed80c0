//! Bringing the node up for a home: its identity, trust store and listen address
//! (falling back to another port when asked), with the blob lookup of the library.

use std::collections::HashMap;
use std::sync::Arc;

use super::{HubEvent, HubOptions, PeerHub, Poster, voice};
use crate::app::instance::Instance;
use crate::domain::chain;
use crate::home::Home;
use crate::net::{EventSink, Identity, Node, NodeConfig};

impl PeerHub {
    /// Starts the node for `instance`'s home.
    pub fn start(
        home: &Home,
        instance: &Instance,
        opts: HubOptions,
        post: Poster,
    ) -> Result<PeerHub, String> {
        let net = &instance.config().net;
        let sink: EventSink = {
            let post = post.clone();
            // The hub does nothing with a peer's word that it finished a fetch (a
            // one-off `jhack play --peer` waits on it): not posted, so a peer
            // fetching a thousand files does not wake the owner's loop for each.
            Arc::new(move |e| {
                if !matches!(e, crate::net::NetEvent::PeerFetched { .. }) {
                    post(HubEvent::Net(e))
                }
            })
        };
        let mut notes = Vec::new();
        let mut node = None;
        let (voice, feature) = voice::Voice::new(&opts.voice);
        let mut sync = None;
        let mut sync_feature = None;
        if opts.sync {
            let post = post.clone();
            let news: crate::app::sync::NewsSink = Arc::new(move |n| post(HubEvent::Synced(n)));
            match crate::app::sync::SyncService::new(instance.library_shared(), news) {
                Ok((s, f)) => {
                    sync = Some(s);
                    sync_feature = Some(f);
                }
                Err(e) => notes.push(format!("no library sync: {e}")),
            }
        }
        let (engine_view, view_feature) = crate::app::attach::view::ViewInbox::new(post.clone());
        let engine_host =
            match crate::app::attach::host::EngineHost::new(instance.engine_shared(), post.clone())
            {
                Ok(h) => Some(h),
                Err(e) => {
                    notes.push(format!("screens cannot attach here: {e}"));
                    None
                }
            };
        let host_feature = engine_host.as_ref().map(|(_, f)| f.clone());
        let engine_host = engine_host.map(|(h, _)| h);
        for (i, listen) in listen_candidates(opts.listen, opts.any_port_if_busy)
            .into_iter()
            .enumerate()
        {
            let identity = Identity::load_or_create(&home.identity_dir()).map_err(|e| chain(&e))?;
            let cfg = NodeConfig {
                listen,
                name: net.display_name(),
                trust_file: home.trust_file(),
                partial_dir: home.data_dir().join("partial"),
                dial: opts.dial,
                triggers_per_second: net.triggers_per_second,
                trigger_burst: net.trigger_burst,
            };
            let blobs = Arc::new(instance.library().blob_locator());
            let features = feature
                .iter()
                .chain(sync_feature.iter().flatten())
                .chain(host_feature.iter())
                .chain(std::iter::once(&view_feature))
                .cloned()
                .collect();
            match Node::start_with(identity, cfg, blobs, sink.clone(), features) {
                Ok(n) => {
                    if i > 0
                        && let (Some(want), Some(got)) = (opts.listen, n.local_addr())
                        && got.port() != want.port()
                    {
                        notes.push(format!(
                            "net.listen {want} is in use (another jhack?): listening on {got} instead, where peers will not look"
                        ));
                    }
                    node = Some(n);
                    break;
                }
                Err(e @ crate::net::NetError::Bind { .. }) => {
                    tracing::info!("{}", chain(&e));
                    notes.push(chain(&e));
                }
                Err(e) => return Err(chain(&e)),
            }
        }
        let Some(node) = node else {
            return Err(notes.join("; "));
        };
        notes.retain(|n| !n.starts_with("cannot listen"));
        let node = Arc::new(node);
        if let Some(h) = &engine_host {
            h.bind(node.outbox());
        }
        match sync.as_mut() {
            Some(s) => {
                if let Err(e) = s.attach(node.clone()) {
                    notes.push(format!("no library sync: {e}"));
                }
            }
            // `read` reaches what is shared, as everywhere.
            None => node.set_read_policy(crate::app::sync::read_policy(instance.library_shared())),
        }
        let mut hub = PeerHub {
            started: Vec::new(),
            node,
            voice,
            sync,
            pins_checked: None,
            misses: HashMap::new(),
            post,
            arriving: HashMap::new(),
            copies: Vec::new(),
            to_fetch: (0, 0),
            served: Default::default(),
            sent: HashMap::new(),
            waiting: HashMap::new(),
            pending: Vec::new(),
            next_request: 0,
            notes,
            log: crate::app::activity::ActivityLog::open(&home.data_dir().join("peers.log")),
            engine_host,
            engine_view,
        };
        if let Err(e) = hub.start_voice(instance) {
            hub.notes.push(format!("no voice: {e}"));
        }
        Ok(hub)
    }
}

/// The addresses to try listening on: the one asked for, the same port on IPv4 when
/// it was IPv6's any-address (a machine without IPv6), then any free port.
fn listen_candidates(
    want: Option<std::net::SocketAddr>,
    any_port: bool,
) -> Vec<Option<std::net::SocketAddr>> {
    use std::net::{Ipv4Addr, SocketAddr};
    let Some(want) = want else {
        return vec![None];
    };
    let mut c = vec![Some(want)];
    if want.ip().is_unspecified() && want.is_ipv6() {
        c.push(Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, want.port()))));
    }
    if any_port {
        let mut any = want;
        any.set_port(0);
        c.push(Some(any));
    }
    c
}
