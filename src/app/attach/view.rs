//! The screen's side of attaching: [`ViewInbox`] takes the attached engine's frames
//! off the network (from that peer only), and [`Attached`] is the engine as the
//! screen sees it — what it runs on, its devices, its latest meters and the
//! spectrogram rows not yet drawn — and the requests the keys make of it, sent in
//! order from a thread of its own so the screen's loop never waits for the network.
//!
//! Must never: block the screen's loop, or take frames from a peer it did not
//! attach to.

use std::collections::VecDeque;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::EngineFrame;
use super::{Ask, MAX_ANSWER, Watch};
use crate::app::control::{Request, Response};
use crate::app::peers::{HubEvent, Poster};
use crate::app::spectrum_feed::Shown;
use crate::audio::{DeviceInfo, EngineInfo, StatsSnapshot};
use crate::guard::lock;
use crate::net::{DatagramHandler, Feature, Node, PeerId, Permission};
use crate::proto::{StreamKind, datagram_kind};

/// Spectrogram rows kept for the screen to take (a few seconds' worth).
const MAX_ROWS: usize = 128;
/// How often the watch is renewed.
const RENEW: Duration = Duration::from_secs(1);
/// How often what the engine runs on is asked again.
const REFRESH: Duration = Duration::from_secs(2);
/// Longest a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Default)]
struct Seen {
    from: Option<PeerId>,
    watch: u16,
    latest: Option<(EngineFrame, Instant)>,
    rows: VecDeque<Vec<f32>>,
    refused: u64,
}

/// Where the attached engine's frames land. See the module documentation.
pub struct ViewInbox {
    seen: Mutex<Seen>,
    post: Poster,
}

impl ViewInbox {
    /// An inbox that wakes the owner's loop through `post` when a frame arrives,
    /// and the feature to plug into the node.
    pub fn new(post: Poster) -> (Arc<ViewInbox>, Feature) {
        let inbox = Arc::new(ViewInbox {
            seen: Mutex::new(Seen::default()),
            post,
        });
        let handler: DatagramHandler = {
            let inbox = inbox.clone();
            Arc::new(move |peer, bytes, at| inbox.on_frame(peer, &bytes, at))
        };
        let feature = Feature {
            name: super::VIEW_FEATURE,
            // Any trusted peer may answer; only the one we attached to is heard.
            permission: Permission::Trusted,
            datagrams: vec![(datagram_kind::ENGINE_FRAME, handler)],
            messages: Vec::new(),
            requests: Vec::new(),
        };
        (inbox, feature)
    }

    fn on_frame(&self, peer: &PeerId, bytes: &[u8], at: Instant) {
        let mut s = lock(&self.seen);
        if s.from != Some(*peer) {
            s.refused += 1;
            return;
        }
        let frame = match EngineFrame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                s.refused += 1;
                if s.refused.is_power_of_two() {
                    tracing::warn!("{peer}: {e} (refused; {} so far)", s.refused);
                }
                return;
            }
        };
        if frame.watch != s.watch {
            return;
        }
        if !frame.bands.is_empty() {
            if s.rows.len() == MAX_ROWS {
                s.rows.pop_front();
            }
            s.rows.push_back(frame.bands.clone());
        }
        s.latest = Some((frame, at));
        drop(s);
        (self.post)(HubEvent::EngineFrame);
    }

    fn listen_to(&self, peer: Option<PeerId>, watch: u16) {
        let mut s = lock(&self.seen);
        if s.from != peer || s.watch != watch {
            s.rows.clear();
            if s.from != peer {
                s.latest = None;
            }
        }
        s.from = peer;
        s.watch = watch;
    }

    /// Frames refused: from another peer, or malformed.
    pub fn refused(&self) -> u64 {
        lock(&self.seen).refused
    }
}

/// What an answer was for.
#[derive(Debug, Clone)]
enum For {
    Engine,
    Watch,
    Said,
    /// Said already by the screen: only a refusal is news.
    Quiet,
    RecordStop,
}

/// The attached engine's answers, for the screen's loop to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum News {
    /// A line for the message line (`true`: a warning).
    Say(String, bool),
    /// A take to name (the recording stopped).
    Take(String),
    /// The engine refused us (no `control`) or went away: detach.
    Lost(String),
}

struct Job {
    ask: Ask,
    what: For,
}

/// An answer, and what it was for.
type Answer = (For, Result<Response, String>);

/// The engine as the screen sees it. See the module documentation.
pub struct Attached {
    peer: PeerId,
    name: String,
    inbox: Arc<ViewInbox>,
    jobs: Sender<Job>,
    answers: Arc<Mutex<Vec<Answer>>>,
    info: Option<EngineInfo>,
    devices: Vec<DeviceInfo>,
    devices_seen: bool,
    recording: Option<(Duration, Instant)>,
    talking: bool,
    watch: Option<(Watch, Instant)>,
    next_watch: u16,
    refreshed: Instant,
}

impl Attached {
    /// Attaches to `peer`'s engine through `node`; frames land in `inbox`.
    pub fn start(
        node: Arc<Node>,
        peer: PeerId,
        name: String,
        inbox: Arc<ViewInbox>,
        post: Poster,
    ) -> std::io::Result<Attached> {
        let (jobs, rx) = channel::<Job>();
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        {
            let answers = answers.clone();
            std::thread::Builder::new()
                .name("jhack-attached".into())
                .spawn(move || {
                    for job in rx {
                        let r = ask(&node, &peer, &job.ask);
                        lock(&answers).push((job.what, r));
                        post(HubEvent::EngineFrame);
                    }
                })?;
        }
        inbox.listen_to(Some(peer), 0);
        let a = Attached {
            peer,
            name,
            inbox,
            jobs,
            answers,
            info: None,
            devices: Vec::new(),
            devices_seen: false,
            recording: None,
            talking: false,
            watch: None,
            next_watch: 1,
            refreshed: Instant::now(),
        };
        a.send(Request::Engine, For::Engine);
        Ok(a)
    }

    /// The peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn send(&self, request: Request, what: For) {
        let _ = self.jobs.send(Job {
            ask: Ask::Control { request },
            what,
        });
    }

    /// What the engine runs on and its counters, once it answered.
    pub fn status(&self) -> Option<(EngineInfo, StatsSnapshot)> {
        let info = self.info.clone()?;
        let s = lock(&self.inbox.seen);
        let mut stats = StatsSnapshot::default();
        if let Some((f, _)) = &s.latest {
            let lin = |db: f32| crate::dsp::spectrum::db_to_power(db).sqrt();
            stats.out_peak = lin(f.meters_db[0]);
            stats.out_rms = lin(f.meters_db[1]);
            stats.in_peak = lin(f.meters_db[2]);
            stats.in_rms = lin(f.meters_db[3]);
            stats.voices_active = u32::from(f.voices);
            stats.xruns = u64::from(f.xruns);
            stats.load = f.load;
            stats.last_trigger_ms = f64::from(f.trigger_ms);
            stats.period_frames = u32::from(f.period_frames);
            stats.output_latency_ms = f64::from(f.latency_ms);
        }
        Some((info, stats))
    }

    /// The devices it could use; `Some` only when they changed since last asked.
    pub fn new_devices(&mut self) -> Option<Vec<DeviceInfo>> {
        if self.devices_seen {
            return None;
        }
        self.devices_seen = true;
        Some(self.devices.clone())
    }

    /// How long its recording has run.
    pub fn recording_for(&self) -> Option<Duration> {
        self.recording.map(|(d, at)| d + at.elapsed())
    }

    /// Whether its microphone is open for the call.
    pub fn talking(&self) -> bool {
        self.talking
    }

    /// Moves the spectrogram rows that arrived into `push` (each `bands` wide);
    /// true when there were any.
    pub fn take_rows(&self, mut push: impl FnMut(Vec<f32>)) -> bool {
        let rows: Vec<Vec<f32>> = lock(&self.inbox.seen).rows.drain(..).collect();
        let any = !rows.is_empty();
        rows.into_iter().for_each(&mut push);
        any
    }

    /// What the screen shows now; a changed picture is asked for at once (older
    /// rows are then dropped: true), the same one renewed every second.
    pub fn watch(&mut self, shown: Shown, bands: usize, range: (f32, f32), fps: f32) -> bool {
        let want = Watch {
            watch: self.watch.map_or(0, |(w, _)| w.watch),
            shown,
            bands: bands.min(super::frame::MAX_BANDS) as u16,
            lo_hz: range.0,
            hi_hz: range.1,
            fps,
        };
        let same = self.watch.is_some_and(|(w, _)| w == want);
        let due = self.watch.is_none_or(|(_, at)| at.elapsed() >= RENEW);
        if same && !due {
            return false;
        }
        let want = if same {
            want
        } else {
            self.next_watch = self.next_watch.wrapping_add(1).max(1);
            Watch {
                watch: self.next_watch,
                ..want
            }
        };
        if !same {
            self.inbox.listen_to(Some(self.peer), want.watch);
        }
        self.watch = Some((want, Instant::now()));
        let _ = self.jobs.send(Job {
            ask: Ask::Watch(want),
            what: For::Watch,
        });
        !same
    }

    /// Stop everything playing there.
    pub fn stop_all(&self) {
        self.send(Request::Stop, For::Said);
    }

    /// Move its output (`true`) or input to the device at `index` of its list.
    pub fn switch(&self, output: bool, index: usize) {
        let d = Some(index.to_string());
        let r = if output {
            Request::Switch {
                output: d,
                input: None,
            }
        } else {
            Request::Switch {
                output: None,
                input: d,
            }
        };
        self.send(r, For::Said);
        self.send(Request::Engine, For::Engine);
    }

    /// Starts its recording, or stops it (its take is then named).
    pub fn record(&mut self) {
        if self.recording.is_some() {
            self.recording = None;
            self.send(Request::RecordStop, For::RecordStop);
        } else {
            self.recording = Some((Duration::ZERO, Instant::now()));
            self.send(Request::RecordStart, For::Said);
        }
    }

    /// Saves a stopped take as `name` (or discards it with `None`).
    pub fn keep_take(&self, take: String, name: Option<String>) {
        match name {
            Some(name) => self.send(Request::RecordSave { take, name }, For::Said),
            None => self.send(Request::RecordDiscard { take }, For::Said),
        }
    }

    /// Opens or closes its microphone in its call.
    pub fn talk(&mut self, down: bool) {
        self.talking = down;
        self.send(Request::Talk { down }, For::Quiet);
    }

    /// Acts on the answers that came; what the screen should say or do.
    pub fn poll(&mut self) -> Vec<News> {
        if self.refreshed.elapsed() >= REFRESH {
            self.refreshed = Instant::now();
            self.send(Request::Engine, For::Engine);
        }
        let answers: Vec<Answer> = std::mem::take(&mut *lock(&self.answers));
        let mut news = Vec::new();
        for (what, r) in answers {
            match (what, r) {
                (_, Err(e)) => news.push(News::Lost(e)),
                (
                    For::Engine,
                    Ok(Response::Engine {
                        info,
                        devices,
                        recording_ms,
                        talking,
                    }),
                ) => {
                    if devices != self.devices || self.info.is_none() {
                        self.devices = devices;
                        self.devices_seen = false;
                    }
                    self.info = Some(info);
                    self.recording =
                        recording_ms.map(|ms| (Duration::from_millis(ms), Instant::now()));
                    self.talking = talking;
                }
                (For::RecordStop, Ok(Response::Recorded { take: Some(t) })) => {
                    news.push(News::Take(t));
                }
                (For::Watch | For::Quiet, Ok(Response::Ok { .. })) => {}
                (_, Ok(Response::Ok { message })) => news.push(News::Say(message, false)),
                (_, Ok(Response::Sound { sound })) => news.push(News::Say(
                    format!("saved the recording as \"{}\" on {}", sound.name, self.name),
                    false,
                )),
                (_, Ok(Response::Error { message, .. })) => {
                    news.push(News::Say(format!("{}: {message}", self.name), true));
                }
                (_, Ok(_)) => {}
            }
        }
        news
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.jobs.send(Job {
            ask: Ask::Unwatch,
            what: For::Watch,
        });
        self.inbox.listen_to(None, 0);
    }
}

/// One request and its answer, on the asking thread.
fn ask(node: &Node, peer: &PeerId, ask: &Ask) -> Result<Response, String> {
    let body = serde_json::to_vec(ask).map_err(|e| e.to_string())?;
    let answer = node
        .request(peer, StreamKind::ENGINE, &body, MAX_ANSWER, REQUEST_TIMEOUT)
        .map_err(|e| crate::domain::chain(&e))?;
    serde_json::from_slice(&answer).map_err(|e| format!("an answer that is not one: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(watch: u16, bands: usize) -> Vec<u8> {
        EngineFrame {
            watch,
            shown: Some(Shown::Input),
            meters_db: [-6.0, -9.0, -20.0, -23.0],
            bands: vec![-40.0; bands],
            ..EngineFrame::default()
        }
        .encode()
    }

    #[test]
    fn only_the_attached_peers_frames_of_the_current_watch_are_taken() {
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let post: Poster = {
            let woken = woken.clone();
            Arc::new(move |_| {
                woken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
        };
        let (inbox, f) = ViewInbox::new(post);
        assert_eq!(f.permission, Permission::Trusted);
        let handler = f.datagrams[0].1.clone();
        let (laptop, stranger) = (
            PeerId::from_public_key(&[1; 32]),
            PeerId::from_public_key(&[2; 32]),
        );
        let now = Instant::now();
        let deliver = |who: &PeerId, b: Vec<u8>| handler(who, bytes::Bytes::from(b), now);
        // Not attached: nothing is taken.
        deliver(&laptop, frame(1, 4));
        inbox.listen_to(Some(laptop), 3);
        deliver(&stranger, frame(3, 4));
        deliver(&laptop, b"\x01\x00".to_vec());
        deliver(&laptop, frame(2, 4)); // an older picture's
        assert_eq!(inbox.refused(), 3);
        assert!(lock(&inbox.seen).rows.is_empty());
        assert!(lock(&inbox.seen).latest.is_none());
        deliver(&laptop, frame(3, 4));
        deliver(&laptop, frame(3, 0)); // meters alone
        let s = lock(&inbox.seen);
        assert_eq!(s.rows.len(), 1);
        assert_eq!(s.latest.as_ref().map(|(f, _)| f.meters_db[0]), Some(-6.0));
        drop(s);
        assert_eq!(woken.load(std::sync::atomic::Ordering::Relaxed), 2);
        // Rows are bounded however many arrive before the screen takes them.
        for _ in 0..MAX_ROWS + 50 {
            deliver(&laptop, frame(3, 2));
        }
        assert_eq!(lock(&inbox.seen).rows.len(), MAX_ROWS);
        // A new picture drops the old rows.
        inbox.listen_to(Some(laptop), 4);
        assert!(lock(&inbox.seen).rows.is_empty());
    }
}
