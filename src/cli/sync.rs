//! `jhack sync P [--json]`: one sync with a mirror, to completion — both libraries
//! hold the same records when it ends — through the running jhack that owns the home
//! when there is one, otherwise with a node of its own (which also answers the
//! peer's asks, so the peer takes our changes in the same run).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::args::GlobalArgs;
use super::context::{Context, Owner, ask_owner, library_error};
use super::error::{CliError, chain};
use crate::app::control::{Request, Response};
use crate::app::sync::{PeerSync, SyncService};
use crate::library::Library;
use crate::net::{Identity, Node};

/// How long a sync may take before it gives up.
const WITHIN: Duration = Duration::from_secs(60);

#[derive(serde::Serialize)]
struct Summary<'a> {
    peer: &'a str,
    in_sync: bool,
    pulled: u64,
    sent: u64,
    sounds: usize,
    remote: usize,
}

pub fn run(g: &GlobalArgs, peer: &str, json: bool) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let (status, counts) = match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let lib = Arc::new(*lib);
            let status = here(&ctx, &lib, peer)?;
            (status, counts(&lib)?)
        }
        Owner::Running(socket) => {
            let status = match ask_owner(
                &socket,
                &Request::Sync {
                    peer: peer.to_string(),
                },
            )? {
                Response::Synced { status } => status,
                other => return Err(CliError::failure(format!("unexpected reply: {other:?}"))),
            };
            let counts = match ask_owner(&socket, &Request::List)? {
                Response::Sounds {
                    sounds, not_here, ..
                } => (sounds.len(), not_here.len()),
                _ => (0, 0),
            };
            (status, counts)
        }
    };
    if json {
        let s = Summary {
            peer: &status.peer,
            in_sync: status.in_sync,
            pulled: status.pulled,
            sent: status.sent,
            sounds: counts.0,
            remote: counts.1,
        };
        outln!("{}", serde_json::to_string(&s).unwrap_or_default());
    } else {
        outln!(
            "in sync with {}: {} records taken, {} given; {} sounds here ({} remote)",
            status.peer,
            status.pulled,
            status.sent,
            counts.0,
            counts.1
        );
    }
    Ok(())
}

fn counts(lib: &Library) -> Result<(usize, usize), CliError> {
    let all = lib.list().map_err(library_error)?;
    let remote = all.iter().filter(|m| !lib.has_file(&m.id)).count();
    Ok((all.len(), remote))
}

/// What [`own_node`] brings up: the service bound to the node, the peer, and the
/// peer's refusal notice when it refuses us.
pub(super) struct OwnNode {
    pub(super) service: SyncService,
    pub(super) node: Arc<Node>,
    pub(super) peer: crate::net::TrustedPeer,
    pub(super) denied: Arc<std::sync::Mutex<Option<String>>>,
}

/// A node of our own for a one-off exchange, connected to `peer`, with the sync
/// service bound to it (it answers the peer's asks meanwhile).
pub(super) fn own_node(ctx: &Context, lib: &Arc<Library>, peer: &str) -> Result<OwnNode, CliError> {
    let (service, features) =
        SyncService::new(lib.clone(), Arc::new(|_| {})).map_err(CliError::failure)?;
    let me = Identity::load_or_create(&ctx.home.identity_dir())
        .map_err(|e| CliError::failure(chain(&e)))?;
    let locate = Arc::new(lib.blob_locator());
    let denied = Arc::new(std::sync::Mutex::new(None::<String>));
    let sink: crate::net::EventSink = {
        let denied = denied.clone();
        Arc::new(move |e| {
            if let crate::net::NetEvent::Denied { message, .. } = e {
                *crate::guard::lock(&denied) = Some(message);
            }
        })
    };
    let node = Arc::new(
        Node::start_with(me, ctx.node_config(None, false), locate, sink, features)
            .map_err(|e| CliError::failure(chain(&e)))?,
    );
    service.bind(&node);
    let found = node.find(peer).map_err(|e| CliError::input(chain(&e)))?;
    node.connect(&found, Duration::from_secs(10))
        .map_err(|e| CliError::failure(chain(&e)))?;
    Ok(OwnNode {
        service,
        node,
        peer: found,
        denied,
    })
}

/// Syncs with a node of our own.
fn here(ctx: &Context, lib: &Arc<Library>, peer: &str) -> Result<PeerSync, CliError> {
    let OwnNode {
        service,
        node,
        peer: found,
        denied,
    } = own_node(ctx, lib, peer)?;
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let progress = |s: &PeerSync| {
        bar.set_message(format!(
            "syncing with {}: {} records taken, {} given",
            s.peer, s.pulled, s.sent
        ));
    };
    let result = service
        .handle()
        .sync_once(&node, &found.id, WITHIN, &progress);
    bar.finish_and_clear();
    let status = result.map_err(|e| {
        // The peer's notice travels beside the refused stream: give it a moment.
        let until = std::time::Instant::now() + Duration::from_millis(500);
        let mut notice = crate::guard::lock(&denied).take();
        while notice.is_none() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
            notice = crate::guard::lock(&denied).take();
        }
        let why = notice.map_or(e, |d| format!("refused: {d}"));
        CliError::failure(format!("sync with {}: {why}", found.name))
    })?;
    // The standing now: what the peer took from us meanwhile counts too.
    let status = service.status_of(&found.id).unwrap_or(status);
    drop(service);
    if let Ok(node) = Arc::try_unwrap(node) {
        node.shutdown();
    }
    Ok(status)
}
