//! The engine's side of attaching: answers a `control` peer's requests through the
//! owner's loop and sends each watching screen its engine frames from a thread of
//! its own.
//!
//! The request handler runs on a network thread: it only parses and posts. The
//! frame thread reads the engine's counters and its spectrum feed (taps the engine
//! offers) and sends datagrams; it never waits for the owner's loop, and sleeps
//! when nobody watches.
//!
//! Must never: answer a request the [`super::allowed`] list does not name, or send
//! frames to a peer whose watch has lapsed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::EngineFrame;
use super::{Ask, WATCH_LEASE, Watch};
use crate::app::control::{Request, Response};
use crate::app::peers::{HubEvent, Poster};
use crate::app::spectrum::SpectrumFrame;
use crate::app::spectrum_feed::{BandMapper, Shown, SpectrumFeed};
use crate::audio::Engine;
use crate::guard::lock;
use crate::net::request::RequestHandler;
use crate::net::{Feature, Outbox, PeerId, Permission};
use crate::proto::{StreamKind, datagram_kind};

/// Longest the owner may take to answer a request from an attached screen.
const ANSWER_WITHIN: Duration = Duration::from_secs(50);
/// How long the frame thread sleeps when nobody watches.
const IDLE: Duration = Duration::from_millis(250);

/// A control request from an attached screen, for the owner's loop to answer.
pub struct EngineAsk {
    /// Who asks.
    pub peer: PeerId,
    /// What.
    pub request: Request,
    /// Where the answer goes (JSON of a [`Response`]).
    pub reply: tokio::sync::oneshot::Sender<Vec<u8>>,
}

impl std::fmt::Debug for EngineAsk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineAsk")
            .field("peer", &self.peer)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

impl EngineAsk {
    /// Answers it with `reply`'s response: at once when it is there, else from a
    /// short-lived thread that waits for it (a play on peers answers later).
    pub fn answer_from(self, reply: std::sync::mpsc::Receiver<Response>) {
        let send = |tx: tokio::sync::oneshot::Sender<Vec<u8>>, r: Response| {
            let _ = tx.send(serde_json::to_vec(&r).unwrap_or_default());
        };
        match reply.try_recv() {
            Ok(r) => send(self.reply, r),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {}
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                let tx = self.reply;
                let spawned = std::thread::Builder::new()
                    .name("jhack-engine-answer".into())
                    .spawn(move || {
                        if let Ok(r) = reply.recv_timeout(ANSWER_WITHIN) {
                            send(tx, r);
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("attached screen: cannot wait for an answer: {e}");
                }
            }
        }
    }
}

struct Watcher {
    watch: Watch,
    until: Instant,
    mapper: BandMapper,
}

struct Inner {
    watchers: Mutex<HashMap<PeerId, Watcher>>,
    engine: Mutex<Arc<Engine>>,
    engine_changed: AtomicBool,
    outbox: Mutex<Option<Outbox>>,
    stop: AtomicBool,
}

/// The engine's side. See the module documentation.
pub struct EngineHost {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EngineHost {
    /// The host of `engine`; control requests go to the owner through `post`.
    /// Returns it and the feature to plug into the node.
    pub fn new(engine: Arc<Engine>, post: Poster) -> std::io::Result<(EngineHost, Feature)> {
        let inner = Arc::new(Inner {
            watchers: Mutex::new(HashMap::new()),
            engine: Mutex::new(engine),
            engine_changed: AtomicBool::new(false),
            outbox: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let handler: RequestHandler = {
            let inner = inner.clone();
            Arc::new(move |peer, body, reply| on_request(&inner, &post, peer, &body, reply))
        };
        let feature = Feature {
            name: super::FEATURE,
            permission: Permission::Control,
            datagrams: Vec::new(),
            messages: Vec::new(),
            requests: vec![(StreamKind::ENGINE, handler)],
        };
        let thread = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("jhack-engine-frames".into())
                .spawn(move || run(&inner))?
        };
        Ok((
            EngineHost {
                inner,
                thread: Some(thread),
            },
            feature,
        ))
    }

    /// The node is up: frames leave through `outbox`.
    pub fn bind(&self, outbox: Outbox) {
        *lock(&self.inner.outbox) = Some(outbox);
    }

    /// The owner's engine was replaced (a device switch): its taps are taken anew.
    pub fn engine_changed(&self, engine: Arc<Engine>) {
        *lock(&self.inner.engine) = engine;
        self.inner.engine_changed.store(true, Ordering::Release);
    }

    /// A peer went away: its watch ends.
    pub fn peer_down(&self, peer: &PeerId) {
        lock(&self.inner.watchers).remove(peer);
    }

    /// The peers watching now.
    pub fn watchers(&self) -> Vec<PeerId> {
        lock(&self.inner.watchers).keys().copied().collect()
    }
}

impl Drop for EngineHost {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn answer(reply: tokio::sync::oneshot::Sender<Vec<u8>>, r: &Response) {
    let _ = reply.send(serde_json::to_vec(r).unwrap_or_default());
}

/// On a network thread: parse, then post or note the watch. Never waits.
fn on_request(
    inner: &Inner,
    post: &Poster,
    peer: &PeerId,
    body: &[u8],
    reply: tokio::sync::oneshot::Sender<Vec<u8>>,
) {
    let ask: Ask = match serde_json::from_slice(body) {
        Ok(a) => a,
        Err(e) => {
            return answer(
                reply,
                &Response::bad_input(format!("not an engine request: {e}")),
            );
        }
    };
    match ask {
        Ask::Control { request } if super::allowed(&request) => match request.check() {
            Ok(()) => post(HubEvent::EngineAsk(EngineAsk {
                peer: *peer,
                request,
                reply,
            })),
            Err(e) => answer(reply, &Response::bad_input(e)),
        },
        Ask::Control { .. } => answer(
            reply,
            &Response::bad_input(
                "an attached screen drives the engine only (devices, recording, talk, stop, play)",
            ),
        ),
        Ask::Watch(w) => {
            let w = w.sane();
            let until = Instant::now() + WATCH_LEASE;
            let mut watchers = lock(&inner.watchers);
            let x = watchers.entry(*peer).or_insert_with(|| Watcher {
                watch: w,
                until,
                mapper: BandMapper::default(),
            });
            (x.watch, x.until) = (w, until);
            drop(watchers);
            answer(
                reply,
                &Response::Ok {
                    message: "watching".into(),
                },
            );
        }
        Ask::Unwatch => {
            lock(&inner.watchers).remove(peer);
            answer(
                reply,
                &Response::Ok {
                    message: "no longer watching".into(),
                },
            );
        }
    }
}

/// The frame thread: while anyone watches, one frame per new spectrum row (or one
/// of meters alone) at the fastest watcher's rate.
fn run(inner: &Inner) {
    let mut feed = SpectrumFeed::new(10.0);
    // What the feed was pointed at for (the wanted), and what it shows.
    let mut attached_for: Option<Shown> = None;
    let mut actual = Shown::Nothing;
    let mut rows: Vec<SpectrumFrame> = Vec::new();
    let mut row = Vec::new();
    let mut warned: Option<String> = None;
    while !inner.stop.load(Ordering::Acquire) {
        let now = Instant::now();
        let engine = lock(&inner.engine).clone();
        if inner.engine_changed.swap(false, Ordering::AcqRel) {
            feed.engine_changed();
            attached_for = None;
        }
        // The newest watch decides what the spectrogram shows.
        let (want, fps) = {
            let mut w = lock(&inner.watchers);
            w.retain(|_, x| x.until > now);
            let want = w.values().max_by_key(|x| x.until).map(|x| x.watch.shown);
            let fps = w.values().map(|x| x.watch.fps).fold(1.0f32, f32::max);
            (want, fps)
        };
        let Some(want) = want else {
            if attached_for.take().is_some_and(|s| s != Shown::Nothing) {
                feed.attach(&engine, Shown::Nothing);
            }
            std::thread::park_timeout(IDLE);
            continue;
        };
        if attached_for != Some(want) {
            let (got, warning) = feed.attach(&engine, want);
            if warning != warned
                && let Some(w) = &warning
            {
                tracing::warn!("attached screen: {w}");
            }
            warned = warning;
            // A fallback is kept until the screen asks for something else.
            attached_for = Some(want);
            actual = got;
        }
        feed.set_frame_rate(fps);
        rows.clear();
        feed.frames(&mut rows);
        let stats = engine.stats();
        send_frames(inner, &stats, actual, &rows, &mut row);
        std::thread::park_timeout(Duration::from_secs_f32(1.0 / fps));
    }
}

/// One frame per row (meters alone when there is none) to each watcher.
fn send_frames(
    inner: &Inner,
    stats: &crate::audio::StatsSnapshot,
    actual: Shown,
    rows: &[SpectrumFrame],
    row: &mut Vec<f32>,
) {
    let Some(outbox) = lock(&inner.outbox).clone() else {
        return;
    };
    let db = |x: f32| crate::dsp::spectrum::power_to_db(x * x);
    let base = EngineFrame {
        meters_db: [
            db(stats.out_peak),
            db(stats.out_rms),
            db(stats.in_peak),
            db(stats.in_rms),
        ],
        voices: stats.voices_active.min(u32::from(u16::MAX)) as u16,
        xruns: stats.xruns.min(u64::from(u32::MAX)) as u32,
        load: stats.load,
        trigger_ms: stats.last_trigger_ms as f32,
        period_frames: stats.period_frames.min(u32::from(u16::MAX)) as u16,
        latency_ms: stats.output_latency_ms as f32,
        ..EngineFrame::default()
    };
    let mut watchers = lock(&inner.watchers);
    for (peer, w) in watchers.iter_mut() {
        let mut frame = EngineFrame {
            watch: w.watch.watch,
            shown: Some(actual),
            ..base.clone()
        };
        let send = |f: &EngineFrame| {
            if let Err(e) = outbox.send_datagram(peer, datagram_kind::ENGINE_FRAME, &f.encode()) {
                tracing::debug!("engine frame to {peer}: {e}");
            }
        };
        if rows.is_empty() || actual == Shown::Nothing || w.watch.bands == 0 {
            send(&frame);
            continue;
        }
        for r in rows {
            let range = (w.watch.lo_hz, w.watch.hi_hz);
            w.mapper.map(r, usize::from(w.watch.bands), range, row);
            frame.bands.clone_from(row);
            send(&frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::EngineConfig;

    fn peer(n: u8) -> PeerId {
        PeerId::from_public_key(&[n; 32])
    }

    /// A host on the silent engine, and what it posted to the owner.
    fn host() -> (EngineHost, Feature, Arc<Mutex<Vec<HubEvent>>>) {
        let engine = Engine::start(EngineConfig {
            no_audio: true,
            ..EngineConfig::default()
        })
        .expect("null engine");
        let posted: Arc<Mutex<Vec<HubEvent>>> = Arc::default();
        let post: Poster = {
            let posted = posted.clone();
            Arc::new(move |e| lock(&posted).push(e))
        };
        let (h, f) = EngineHost::new(Arc::new(engine), post).expect("host");
        (h, f, posted)
    }

    /// Sends `body` from `who` as a request; the answer given at once, if any.
    fn ask(f: &Feature, who: PeerId, body: &[u8]) -> Option<Response> {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        (f.requests[0].1)(&who, body.to_vec(), tx);
        rx.try_recv()
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("a response"))
    }

    fn json(a: &Ask) -> Vec<u8> {
        serde_json::to_vec(a).expect("json")
    }

    fn refusal(r: Option<Response>) -> String {
        match r {
            Some(Response::Error { message, status: 2 }) => message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn only_the_engines_requests_reach_the_owner_and_bad_ones_get_one_line() {
        let (_h, f, posted) = host();
        assert_eq!(f.permission, Permission::Control);
        let p = peer(1);
        let m = refusal(ask(&f, p, b"\xff garbage"));
        assert!(m.starts_with("not an engine request"), "{m}");
        let m = refusal(ask(
            &f,
            p,
            &json(&Ask::Control {
                request: Request::List,
            }),
        ));
        assert!(m.contains("drives the engine only"), "{m}");
        let m = refusal(ask(
            &f,
            p,
            &json(&Ask::Control {
                request: Request::Switch {
                    output: None,
                    input: Some(" ".into()),
                },
            }),
        ));
        assert!(m.contains("name an output or an input"), "{m}");
        assert!(lock(&posted).is_empty(), "nothing bad reached the owner");
        // A good one goes to the owner, with its answer handle; none is given here.
        let r = ask(
            &f,
            p,
            &json(&Ask::Control {
                request: Request::Engine,
            }),
        );
        assert_eq!(r, None);
        let posted = std::mem::take(&mut *lock(&posted));
        assert!(
            matches!(&posted[..], [HubEvent::EngineAsk(a)] if a.peer == p && a.request == Request::Engine),
            "{} events posted",
            posted.len()
        );
    }

    #[test]
    fn a_watch_is_kept_per_peer_until_unwatched_or_the_peer_goes() {
        let (h, f, _) = host();
        let w = Watch {
            watch: 1,
            shown: Shown::Output,
            bands: 80,
            lo_hz: 40.0,
            hi_hz: 16_000.0,
            fps: 12.0,
        };
        let (a, b) = (peer(1), peer(2));
        for p in [a, b] {
            assert!(matches!(
                ask(&f, p, &json(&Ask::Watch(w))),
                Some(Response::Ok { .. })
            ));
        }
        let mut now = h.watchers();
        now.sort();
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(now, both);
        assert!(matches!(
            ask(&f, a, &json(&Ask::Unwatch)),
            Some(Response::Ok { .. })
        ));
        assert_eq!(h.watchers(), vec![b]);
        h.peer_down(&b);
        assert!(h.watchers().is_empty());
    }
}
