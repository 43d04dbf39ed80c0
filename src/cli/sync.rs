//! `jhack sync P [--all] [--json]`: one sync with a mirror, to completion — both
//! libraries hold the same records when it ends, and with `--all` every file is here
//! too — through the running jhack that owns the home when there is one, otherwise
//! with a node of its own (which also answers the peer's asks, so the peer takes our
//! changes in the same run).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::args::GlobalArgs;
use super::context::{Context, Owner, ask_owner, library_error};
use super::error::{CliError, chain};
use crate::app::control::{Request, Response};
use crate::app::sync::files::FilesProgress;
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
    /// With `--all`: the files fetched, their bytes, and those that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<FilesProgress>,
    /// With `--all`: seconds spent fetching files.
    #[serde(skip_serializing_if = "Option::is_none")]
    files_secs: Option<f64>,
}

pub fn run(g: &GlobalArgs, peer: &str, all: bool, json: bool) -> Result<(), CliError> {
    let ctx = Context::load(g)?;
    let (status, counts, files) = match ctx.library_or_owner()? {
        Owner::Here(lib) => {
            let lib = Arc::new(*lib);
            let (status, files) = here(&ctx, &lib, peer, all)?;
            (status, counts(&lib)?, files)
        }
        Owner::Running(socket) => {
            let t0 = std::time::Instant::now();
            let (status, files) = match ask_owner(
                &socket,
                &Request::Sync {
                    peer: peer.to_string(),
                    all,
                },
            )? {
                Response::Synced { status, files } => {
                    (status, files.map(|f| (f, t0.elapsed().as_secs_f64(), None)))
                }
                other => return Err(CliError::failure(format!("unexpected reply: {other:?}"))),
            };
            let counts = match ask_owner(&socket, &Request::List)? {
                Response::Sounds {
                    sounds, not_here, ..
                } => (sounds.len(), not_here.len()),
                _ => (0, 0),
            };
            (status, counts, files)
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
            files: files.as_ref().map(|f| f.0),
            files_secs: files.as_ref().map(|f| f.1),
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
        if let Some((f, secs, _)) = &files {
            outln!(
                "fetched {} of {} files ({:.1} MB) in {secs:.2} s, {:.1} MB/s{}",
                f.done_files,
                f.files,
                f.done_bytes as f64 / 1e6,
                f.done_bytes as f64 / 1e6 / secs.max(1e-9),
                if f.failed > 0 {
                    format!("; {} failed", f.failed)
                } else {
                    String::new()
                }
            );
        }
    }
    match files {
        Some((f, _, why)) if f.failed > 0 => Err(CliError::failure(format!(
            "{} files could not be fetched from {}{}",
            f.failed,
            status.peer,
            why.map_or_else(String::new, |w| format!(" (first: {w})"))
        ))),
        _ => Ok(()),
    }
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

/// The peer's reason for refusing us in place of `e`, when its notice arrives.
///
/// The notice travels on the control stream, beside the refused request stream, so it
/// may land a little after the refusal: wait for it, up to two seconds (a loaded
/// machine can take that long), and only on this failure path.
pub(super) fn with_notice(denied: &std::sync::Mutex<Option<String>>, e: String) -> String {
    let until = std::time::Instant::now() + Duration::from_secs(2);
    let mut notice = crate::guard::lock(denied).take();
    while notice.is_none() && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        notice = crate::guard::lock(denied).take();
    }
    notice.map_or(e, |d| format!("refused: {d}"))
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

/// What fetching every file did: the standing, the seconds it took, and the first
/// failure.
type FilesDone = (FilesProgress, f64, Option<String>);

/// Syncs with a node of our own (and with `all` fetches every file).
fn here(
    ctx: &Context,
    lib: &Arc<Library>,
    peer: &str,
    all: bool,
) -> Result<(PeerSync, Option<FilesDone>), CliError> {
    let t0 = std::time::Instant::now();
    let took = |what: &str| {
        tracing::debug!(
            "sync: {what} after {:.1} ms",
            t0.elapsed().as_secs_f64() * 1e3
        )
    };
    let OwnNode {
        service,
        node,
        peer: found,
        denied,
    } = own_node(ctx, lib, peer)?;
    took("connected");
    // With `--all` the files' bar says it all (the files flow while records do).
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !all {
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
    let handle = service.handle();
    let (result, files) = if all {
        let files_bar = files_bar();
        let t0 = std::time::Instant::now();
        let (records, files) = handle.sync_and_fetch_all(
            &node,
            &found.id,
            WITHIN,
            &progress,
            &files_progress(&files_bar, &found.name),
        );
        files_bar.finish_and_clear();
        let files = files
            .map(|(p, why)| (p, t0.elapsed().as_secs_f64(), why))
            .map_err(|e| CliError::failure(format!("fetching from {}: {e}", found.name)));
        (records, Some(files))
    } else {
        (handle.sync_once(&node, &found.id, WITHIN, &progress), None)
    };
    bar.finish_and_clear();
    let status = result.map_err(|e| {
        CliError::failure(format!(
            "sync with {}: {}",
            found.name,
            with_notice(&denied, e)
        ))
    })?;
    let files = files.transpose()?;
    took("records in sync, files here");
    // The standing now: what the peer took from us meanwhile counts too.
    let status = service.status_of(&found.id).unwrap_or(status);
    drop(service);
    if let Ok(node) = Arc::try_unwrap(node) {
        node.shutdown();
    }
    took("node down");
    Ok((status, files))
}

/// The files' progress bar on a terminal (files, bytes, rate), hidden elsewhere.
fn files_bar() -> ProgressBar {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// What tells `bar` how the files from `peer` stand.
fn files_progress<'a>(bar: &'a ProgressBar, peer: &'a str) -> impl Fn(&FilesProgress) + Sync + 'a {
    move |p: &FilesProgress| {
        bar.set_length(p.bytes);
        bar.set_position(p.done_bytes);
        bar.set_message(format!("files from {peer}: {}/{}", p.done_files, p.files));
    }
}
