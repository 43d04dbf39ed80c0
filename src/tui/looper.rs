//! The interface's loop: one queue of events (keys, resizes, control requests), the
//! instance polled on a short tick, and a redraw when the picture changed, no more
//! often than the configured rates.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crossterm::event::{self as ct, KeyEventKind};

use super::keys::Keymap;
use super::spectrum_link::SpectrumLink;
use super::state::{Source, UiState};
use super::terminal;
use super::theme::{ColorDepth, Theme};
use super::throttle::Throttle;
use super::update::{self, Outcome};
use super::view::{self, Screen};
use super::waterfall::Waterfall;
use crate::app::control::Call;
use crate::app::instance::{AudioStatus, Instance};
use crate::app::peers::{HubEvent, HubOptions, PeerHub};
use crate::app::spectrum_feed::Shown;
use crate::audio::DeviceInfo;
use crate::domain::{SoundId, SoundMeta};

/// How often the loop wakes with nothing to do (meters, voices ending, messages).
const TICK: Duration = Duration::from_millis(80);

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where stderr goes while the interface runs.
    pub log_file: PathBuf,
    /// The control socket to listen on (none: no socket).
    pub socket: Option<PathBuf>,
    /// Write figures (bytes to the terminal, frames drawn, start-up time) here at exit.
    pub stats_file: Option<PathBuf>,
    /// When the process started, for the start-up figure.
    pub started: Option<Instant>,
    /// The home and how to join the network (none: the screen stays off it).
    pub net: Option<(crate::home::Home, HubOptions)>,
}

/// What the interface measured about itself, written at exit with `stats_file`.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct RunStats {
    startup_to_first_frame_ms: f64,
    seconds: f64,
    frames_drawn: u64,
    terminal_bytes: u64,
    terminal_bytes_per_second: f64,
    last_trigger_to_callback_ms: f64,
    max_trigger_to_callback_ms: f64,
    sounds: usize,
    key_release_events: bool,
    /// The slowest probe answer, ms (how far behind the terminal fell at worst).
    probe_worst_ms: f64,
    /// The highest throttle level reached (0: never throttled).
    throttle_level_max: u8,
}

enum Event {
    /// A key, and when it was read.
    Key(ct::KeyEvent, Instant),
    Redraw,
    Control(Call),
    /// Something from the peers.
    Hub(HubEvent),
    /// The terminal answered a probe (`false`: it did not in time), at this time.
    Probe(Instant, bool),
}

/// The screen's place on the network: the hub (when it could start) and the peers
/// panel's last picture.
struct Net {
    hub: Option<PeerHub>,
    view: view::PeersView,
    /// Whether the talk key is held (the terminal tells releases) or latched.
    hold: bool,
    /// The SSH session this screen runs in, when it has no sound device of its own:
    /// keys then play where the person sits.
    remote_person: Option<crate::app::ssh::Session>,
    /// What to run when none of the person's machines is connected.
    setup: Vec<String>,
    /// The engine this screen shows and drives, when not its own.
    attached: Option<crate::app::attach::view::Attached>,
    /// A peer that would not let us attach, and when.
    attach_refused: Option<(crate::net::PeerId, Instant)>,
    /// What to run there so that it lets us.
    attach_hint: Vec<String>,
}

/// How long a warning keeps the message line from the network's news.
const WARNING_HOLD: Duration = Duration::from_secs(3);
/// How long before attaching is tried again where it was refused.
const ATTACH_RETRY: Duration = Duration::from_secs(15);
/// Frames a second of an attached engine's meters while no spectrogram is shown.
const METER_FPS: f32 = 10.0;

impl Net {
    /// Re-reads the peers' state; true when the panel would change.
    fn refresh(&mut self) -> bool {
        let Some(hub) = &self.hub else {
            return false;
        };
        let peers = hub.peers();
        let arriving = hub.arriving();
        let mut voice = voice_view(hub, &peers, self.hold);
        // Attached, the talk key opens the other machine's microphone.
        if let (Some(v), Some(a)) = (voice.as_mut(), self.attached.as_ref()) {
            v.talking = a.talking();
            v.can_talk = true;
        }
        if peers == self.view.peers && arriving == self.view.arriving && voice == self.view.voice {
            return false;
        }
        self.view.peers = peers;
        self.view.arriving = arriving;
        self.view.voice = voice;
        true
    }

    /// Over SSH without a sound device: plays keys on the person's own machine while
    /// it is connected (unless they chose otherwise with `t`), and shows what to run
    /// while it is not. True when the screen would change.
    fn place_keys(&mut self, ui: &mut UiState) -> bool {
        use crate::tui::state::{Person, Target};
        let Some(session) = &self.remote_person else {
            return false;
        };
        let found = crate::app::ssh::person(&self.view.peers, session).map(|(p, why)| Person {
            id: p.id.clone(),
            name: p.name.clone(),
            why: why.words(),
        });
        let hint = if found.is_some() {
            self.attach_hint.clone()
        } else {
            self.setup.clone()
        };
        if found == ui.person && hint == self.view.hint {
            return false;
        }
        self.view.hint = hint;
        if found != ui.person {
            ui.person = found;
            if !ui.target_chosen {
                ui.target = if ui.person.is_some() {
                    Target::Person
                } else {
                    Target::Here
                };
                ui.notice(format!(
                    "{} (t changes it)",
                    ui.target.label(ui.person.as_ref())
                ));
            }
        }
        true
    }

    /// Attaches to the engine of the person's own machine (a screen over SSH
    /// without a sound device) while it is connected and lets us; detaches when it
    /// goes. True when the screen changed.
    fn follow_engine(&mut self, ui: &mut UiState) -> bool {
        let Some(hub) = &self.hub else {
            return false;
        };
        let want: Option<crate::net::PeerId> = ui
            .person
            .as_ref()
            .and_then(|p| p.id.parse().ok())
            .filter(|id| hub.can_attach(id));
        if want.is_none() {
            // Gone: when it comes back it may be allowed, so ask again at once.
            self.attach_refused = None;
        }
        let have = self.attached.as_ref().map(|a| a.peer());
        if want == have {
            return false;
        }
        if let Some(a) = self.attached.take() {
            ui.notice(format!(
                "{} went away: showing this machine's engine",
                a.name()
            ));
            ui.attached = None;
        }
        let Some(id) = want else {
            return true;
        };
        if self
            .attach_refused
            .is_some_and(|(p, at)| p == id && at.elapsed() < ATTACH_RETRY)
        {
            return true;
        }
        match hub.attach(id) {
            Ok(a) => {
                ui.attached = Some(a.name().to_owned());
                self.attached = Some(a);
                self.attach_hint.clear();
            }
            Err(e) => ui.warn(e),
        }
        true
    }

    /// Acts on the attached engine's answers; true when the screen changed.
    fn attached_news(&mut self, ui: &mut UiState) -> bool {
        use crate::app::attach::view::News;
        let Some(a) = self.attached.as_mut() else {
            return false;
        };
        let news = a.poll();
        let changed = !news.is_empty();
        for n in news {
            match n {
                News::Say(text, false) => ui.notice(text),
                News::Say(text, true) => ui.warn(text),
                News::Take(take) => {
                    ui.mode = super::state::Mode::Name {
                        path: take.into(),
                        input: String::new(),
                        remote: true,
                    };
                }
                News::Lost(e) => {
                    let name = a.name().to_owned();
                    let me = self.view.me.clone().unwrap_or_default();
                    if e.contains("refused") {
                        ui.warn(format!(
                            "{name} does not let this screen drive its sound devices (see Peers)"
                        ));
                        self.attach_hint = vec![
                            format!("To show and drive {name}'s sound devices here, on {name}:"),
                            format!("  jhack peer add {me} --allow play,voice,control"),
                        ];
                    } else {
                        ui.warn(format!("{name}'s engine: {e}"));
                    }
                    self.attach_refused = Some((a.peer(), Instant::now()));
                    self.attached = None;
                    ui.attached = None;
                    return true;
                }
            }
        }
        changed
    }
}

/// The call's picture for the peers panel (`None`: no call).
fn voice_view(
    hub: &PeerHub,
    peers: &[crate::net::PeerStatus],
    hold: bool,
) -> Option<view::VoiceView> {
    let call = hub.call()?;
    let stats = call.stats();
    let mut heard: Vec<view::VoiceLine> = stats
        .peers
        .iter()
        .map(|l| view::VoiceLine {
            id: l.id.clone(),
            name: l.name.clone(),
            talking: l.talking,
            level_db: l.level_db.round() as i32,
            buffer_ms: l.depth_ms.round() as i32,
            loss_permille: (l.loss_percent * 10.0).round() as i32,
            concealed_permille: (l.concealed_percent * 10.0).round() as i32,
            mouth_to_ear_ms: l.mouth_to_ear_ms.map(|m| m.round() as i32),
        })
        .collect();
    heard.sort_by(|a, b| a.name.cmp(&b.name));
    let volumes = peers
        .iter()
        .filter_map(|p| {
            let id: crate::net::PeerId = p.id.parse().ok()?;
            match hub.voice_volume(&id) {
                Some(0.0) => None,
                v => Some((p.id.clone(), v.map(|db| db.round() as i32))),
            }
        })
        .collect();
    Some(view::VoiceView {
        talking: call.pressed(),
        hold,
        can_talk: call.settings().talk,
        heard,
        volumes,
    })
}

/// What the last drawn status line showed, to redraw only when it changes.
#[derive(Debug, Clone, PartialEq)]
struct StatusKey {
    levels: [i32; 4],
    voices: u32,
    xruns: u64,
    load: i32,
    trigger: i32,
    recording: Option<u64>,
    null: bool,
}

fn status_key(a: &AudioStatus, recording: Option<Duration>) -> StatusKey {
    let db = |x: f32| view::dbfs(x).round() as i32;
    let s = &a.stats;
    StatusKey {
        levels: [db(s.out_peak), db(s.out_rms), db(s.in_peak), db(s.in_rms)],
        voices: s.voices_active,
        xruns: s.xruns,
        load: (s.load * 100.0).round() as i32,
        trigger: (s.last_trigger_ms * 10.0).round() as i32,
        recording: recording.map(|d| d.as_secs()),
        null: a.info.output_is_null(),
    }
}

/// Runs the interface until the user quits or a signal asks it to.
pub fn run(mut instance: Instance, opts: &RunOptions) -> Result<(), String> {
    let keymap = Keymap::new(&instance.config().keys);
    let screen_cfg = instance.config().screen.clone();
    let theme = Theme::new(ColorDepth::detect());
    let source = if screen_cfg.spectrogram_source == "output" {
        Source::Output
    } else {
        Source::Input
    };
    let mut ui = UiState::new(source);
    ui.spectrum_visible = screen_cfg.spectrogram;
    if instance.status().info.output_is_null() {
        ui.warn("running on the silent null backend: no audio device (see `jhack devices`)");
    }
    let (tx, rx) = mpsc::channel::<Event>();
    let signals = signal_flag();
    let _server = match &opts.socket {
        Some(path) => Some(crate::app::control::bind_forwarding(
            path,
            tx.clone(),
            Event::Control,
        )?),
        None => None,
    };
    let mut net = Net {
        hub: None,
        view: view::PeersView::default(),
        hold: false,
        remote_person: crate::app::ssh::session()
            .filter(|_| instance.status().info.output_is_null()),
        setup: Vec::new(),
        attached: None,
        attach_refused: None,
        attach_hint: Vec::new(),
    };
    if let Some((home, hub_opts)) = &opts.net {
        let post = crate::app::peers::poster(tx.clone(), Event::Hub);
        match PeerHub::start(home, &instance, hub_opts.clone(), post) {
            Ok(h) => {
                net.view.me = Some(h.node().id().to_string());
                net.view.listen = h.node().local_addr().map(|a| a.to_string());
                net.view.enabled = true;
                for n in h.start_notes() {
                    ui.warn(n);
                }
                let dial = crate::app::ssh::dial_address(
                    std::env::var("SSH_CONNECTION").ok().as_deref(),
                    h.node().local_addr(),
                );
                net.setup = crate::app::ssh::setup_hint(
                    &h.node().id().to_string(),
                    dial.as_deref(),
                    &instance.config().net.display_name(),
                );
                net.hub = Some(h);
                net.refresh();
                net.place_keys(&mut ui);
            }
            Err(e) => {
                tracing::warn!("not on the network: {e}");
                ui.warn(format!("not on the network: {e}"));
            }
        }
    }
    let mut session = terminal::enter(&opts.log_file).map_err(|e| format!("terminal: {e}"))?;
    net.hold = session.key_release;
    let stop_input = Arc::new(AtomicBool::new(false));
    let probing = Arc::new(AtomicBool::new(false));
    let input = spawn_input(tx.clone(), stop_input.clone(), probing.clone());
    let probe = spawn_probe(tx.clone(), probing);
    let result = main_loop(
        &mut instance,
        &mut ui,
        &keymap,
        theme,
        &screen_cfg,
        &mut session,
        &rx,
        &signals,
        opts,
        &mut net,
        &probe,
    );
    drop(probe);
    terminal::restore();
    // The reader is told to stop but not waited for: on a terminal that has gone away
    // (a closed SSH session) crossterm's read can keep returning without an event,
    // and the process must still exit. It ends with the process.
    stop_input.store(true, Ordering::Relaxed);
    drop(input);
    drop(tx);
    result
}

/// Draws, in a function of its own so the borrow of the instance's data is short.
#[allow(clippy::too_many_arguments)]
fn draw(
    session: &mut terminal::Session,
    instance: &Instance,
    ui: &mut UiState,
    keymap: &Keymap,
    theme: Theme,
    outputs: &[DeviceInfo],
    inputs: &[DeviceInfo],
    waterfall: &Waterfall,
    status: &AudioStatus,
    recording: Option<Duration>,
    size: ratatui::layout::Size,
    peers: &view::PeersView,
) -> Result<(), String> {
    let playing: HashSet<SoundId> = instance.playing();
    let sounds: Vec<&SoundMeta> = ui.visible(instance.sounds());
    let areas = areas_of(size, ui.spectrum_visible);
    ui.clamp_selection(sounds.len(), view::sound_rows(areas.sounds));
    let screen = Screen {
        ui,
        theme,
        keymap,
        sounds: &sounds,
        total_sounds: instance.sounds().len(),
        playing: &playing,
        remote: instance.remote(),
        audio: status,
        outputs,
        inputs,
        waterfall,
        recording,
        peers,
    };
    session
        .terminal
        .draw(|f| view::draw(f, &screen))
        .map_err(|e| format!("terminal: {e}"))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn main_loop(
    instance: &mut Instance,
    ui: &mut UiState,
    keymap: &Keymap,
    theme: Theme,
    screen_cfg: &crate::config::ScreenConfig,
    session: &mut terminal::Session,
    rx: &Receiver<Event>,
    signals: &AtomicBool,
    opts: &RunOptions,
    net: &mut Net,
    probe: &Sender<()>,
) -> Result<(), String> {
    let t0 = Instant::now();
    let mut throttle = Throttle::new(
        screen_cfg.max_fps.max(1) as f32,
        screen_cfg.spectrogram_fps.max(1) as f32,
    );
    let mut written = session.bytes.load(Ordering::Relaxed);
    let mut urgent = false;
    let (mut outputs, mut inputs) = split_devices(instance.devices());
    let mut waterfall = Waterfall::default();
    let mut spectrum = SpectrumLink::new(screen_cfg.spectrogram_fps);
    let mut shown_fps = Some(screen_cfg.spectrogram_fps as f32);
    spectrum.attach(instance, ui);
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let mut last_status: Option<StatusKey> = None;
    let mut stats = RunStats {
        key_release_events: session.key_release,
        ..RunStats::default()
    };
    let mut next_tick = Instant::now();
    // The terminal's size, asked again only when it says it changed.
    let mut size = session
        .terminal
        .size()
        .map_err(|e| format!("terminal: {e}"))?;
    loop {
        if signals.load(Ordering::Relaxed) {
            ui.quit = true;
        }
        if ui.quit {
            break;
        }
        let now = Instant::now();
        let wait = next_tick.saturating_duration_since(now);
        let event = match rx.recv_timeout(wait) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut outcome = Outcome::default();
        // The talk key, held: down opens the microphone, up closes it (where the
        // terminal tells releases; elsewhere it is a latch, handled with the others).
        let event = match event {
            Some(Event::Key(k, _)) if session.key_release && is_talk_key(&k, ui, keymap) => {
                let down = k.kind == KeyEventKind::Press;
                if k.kind == KeyEventKind::Repeat {
                } else if let Some(a) = net.attached.as_mut() {
                    a.talk(down);
                } else if let Some(call) = net.hub.as_ref().and_then(|h| h.call()) {
                    call.press(down);
                }
                net.refresh();
                outcome.redraw = true;
                None
            }
            e => e,
        };
        match event {
            Some(Event::Key(k, pressed))
                if k.kind != KeyEventKind::Release && k.kind != KeyEventKind::Repeat =>
            {
                let areas = areas_of(size, ui.spectrum_visible);
                let mut cx = update::Context {
                    instance,
                    keymap,
                    outputs: &outputs,
                    inputs: &inputs,
                    page: view::sound_rows(areas.sounds),
                    pressed,
                    hub: net.hub.as_mut(),
                    attached: net.attached.as_mut(),
                };
                outcome = update::on_key(ui, &mut cx, &k);
                // A key's effect is drawn as soon as the terminal has room, whatever
                // the frame rate a slow terminal brought it down to, with the peers
                // panel as the key left it (a mute, a volume).
                urgent |= outcome.redraw;
                net.refresh();
            }
            Some(Event::Key(..)) => {}
            Some(Event::Redraw) => {
                size = session
                    .terminal
                    .size()
                    .map_err(|e| format!("terminal: {e}"))?;
                outcome.redraw = true;
            }
            Some(Event::Control(call)) => {
                let mut notes = Vec::new();
                crate::app::requests::dispatch(instance, net.hub.as_mut(), call, &mut |n| {
                    notes.push(n)
                });
                if let Some(n) = notes.pop() {
                    ui.notice(n);
                }
                outcome.redraw = true;
            }
            // The attached engine's frames and answers are looked at below.
            Some(Event::Hub(crate::app::peers::HubEvent::EngineFrame)) => {}
            Some(Event::Probe(at, ok)) => throttle.answered(at, ok),
            Some(Event::Hub(e)) => {
                if let Some(hub) = net.hub.as_mut() {
                    let mut notes = Vec::new();
                    hub.handle(instance, e, &mut |n| notes.push(n));
                    show(ui, net, notes);
                    net.refresh();
                    outcome.redraw = true;
                }
            }
            None => {}
        }
        if outcome.devices_changed {
            (outputs, inputs) = split_devices(instance.devices());
            spectrum.engine_changed();
            outcome.source_changed = true;
            // The call's voices and microphone were on the old engine.
            if let Some(hub) = net.hub.as_mut()
                && let Err(e) = hub.start_voice(instance)
            {
                ui.warn(format!("voice: {e}"));
            }
        }
        if outcome.source_changed {
            waterfall.clear();
            spectrum.attach(instance, ui);
        }
        dirty |= outcome.redraw;
        let now = Instant::now();
        if now >= next_tick {
            next_tick = now + TICK;
            dirty |= instance.poll();
            dirty |= ui.expire_message(now);
            if let Some(hub) = net.hub.as_mut() {
                let mut notes = Vec::new();
                hub.poll(instance, &mut |n| notes.push(n));
                dirty |= !notes.is_empty();
                show(ui, net, notes);
            }
            dirty |= net.refresh();
            dirty |= net.place_keys(ui);
            let was = net.attached.is_some();
            dirty |= net.follow_engine(ui);
            if was != net.attached.is_some() {
                (outputs, inputs) = engine_moved(instance, net, &mut spectrum, &mut waterfall, ui);
            }
        }
        if net.attached.is_some() {
            dirty |= net.attached_news(ui);
            if net.attached.is_none() {
                (outputs, inputs) = engine_moved(instance, net, &mut spectrum, &mut waterfall, ui);
            } else if let Some(d) = net.attached.as_mut().and_then(|a| a.new_devices()) {
                (outputs, inputs) = split_devices(d);
                dirty = true;
            }
        }
        // The spectrogram: new frames at its own rate (an attached engine's come
        // already reduced to our bands).
        // A slow terminal slows it, or makes it wait.
        throttle.tick(now);
        let label = throttle.label();
        if label != ui.throttled {
            if let Some(l) = &label {
                tracing::info!("{l}");
            }
            ui.throttled = label;
            dirty = true;
            stats.throttle_level_max = stats.throttle_level_max.max(throttle.level());
        }
        let spectrogram_fps = throttle.spectrogram_fps();
        if spectrogram_fps != shown_fps {
            shown_fps = spectrogram_fps;
            if let Some(f) = spectrogram_fps {
                spectrum.set_fps(f);
            }
        }
        if ui.spectrum_visible && spectrogram_fps.is_none() {
            // Waiting: the picture stays as it is; a watched engine sends meters.
            match net.attached.as_mut() {
                Some(a) => {
                    a.watch(Shown::Nothing, 0, ui.freq_range, METER_FPS);
                }
                None => spectrum.skip(),
            }
        } else if let (true, Some(fps)) = (ui.spectrum_visible, spectrogram_fps) {
            let areas = areas_of(size, true);
            if let Some(r) = areas.spectrogram {
                let (bands, rows) = view::picture_size(r);
                waterfall.resize(bands, rows);
                dirty |= match net.attached.as_mut() {
                    Some(a) => {
                        let wanted = super::spectrum_link::wanted(ui);
                        if a.watch(wanted, waterfall.bands(), ui.freq_range, fps) {
                            waterfall.clear();
                        }
                        a.take_rows(|row| waterfall.push(row))
                    }
                    None => spectrum.pull(&mut waterfall, ui),
                };
            }
        } else if let Some(a) = net.attached.as_mut() {
            a.watch(Shown::Nothing, 0, ui.freq_range, METER_FPS);
        }
        let (status, recording) = match net.attached.as_ref().and_then(|a| a.status()) {
            Some((info, stats)) => (
                AudioStatus { info, stats },
                net.attached.as_ref().and_then(|a| a.recording_for()),
            ),
            None => (instance.status(), instance.recording_for()),
        };
        let key = status_key(&status, recording);
        if last_status.as_ref() != Some(&key) {
            dirty = true;
        }
        let min_frame = throttle.frame_interval();
        let due = urgent || last_draw.is_none_or(|t| now.duration_since(t) >= min_frame);
        let room = throttle.may_draw(now);
        if dirty && due && room {
            draw(
                session, instance, ui, keymap, theme, &outputs, &inputs, &waterfall, &status,
                recording, size, &net.view,
            )?;
            if last_draw.is_none() {
                let from = opts.started.unwrap_or(t0);
                stats.startup_to_first_frame_ms = from.elapsed().as_secs_f64() * 1000.0;
            }
            stats.frames_drawn += 1;
            last_draw = Some(now);
            last_status = Some(key);
            dirty = false;
            urgent = false;
        } else if dirty && !room {
            // The terminal is behind: look again shortly (its answer also wakes us).
            next_tick = next_tick.min(now + Duration::from_millis(20));
        } else if dirty {
            // Come back when the next frame is due.
            next_tick = next_tick.min(last_draw.map_or(now, |t| t + min_frame));
        }
        // What went out, and a probe behind it when one is due.
        let total = session.bytes.load(Ordering::Relaxed);
        throttle.wrote(total - written);
        written = total;
        if throttle.wants_probe(now) && probe.send(()).is_ok() {
            throttle.sent(now);
        }
    }
    let s = instance.status().stats;
    stats.probe_worst_ms = throttle.figures().1.as_secs_f64() * 1000.0;
    stats.seconds = t0.elapsed().as_secs_f64();
    stats.terminal_bytes = session.bytes.load(Ordering::Relaxed);
    stats.terminal_bytes_per_second = stats.terminal_bytes as f64 / stats.seconds.max(1e-3);
    stats.last_trigger_to_callback_ms = s.last_trigger_ms;
    stats.max_trigger_to_callback_ms = s.max_trigger_ms;
    stats.sounds = instance.sounds().len();
    if let Some(path) = &opts.stats_file
        && let Ok(json) = serde_json::to_string(&stats)
    {
        let _ = std::fs::write(path, json + "\n");
    }
    Ok(())
}

/// The screen moved between its own engine and an attached one: the picture
/// starts afresh, and its own analysis runs only while it shows its own engine.
/// Returns this machine's outputs and inputs (an attached engine's come with its
/// first answer).
fn engine_moved(
    instance: &Instance,
    net: &Net,
    spectrum: &mut SpectrumLink,
    waterfall: &mut Waterfall,
    ui: &mut UiState,
) -> (Vec<DeviceInfo>, Vec<DeviceInfo>) {
    waterfall.clear();
    if net.attached.is_some() {
        spectrum.detach(instance);
    } else {
        spectrum.attach(instance, ui);
    }
    split_devices(instance.devices())
}

/// Puts the network's lines in the log, and the last on the message line (a refusal
/// as a warning: it says how to trust the peer).
fn show(ui: &mut UiState, net: &mut Net, notes: Vec<String>) {
    for n in &notes {
        tracing::info!("{n}");
        net.view.log.push(n.clone());
    }
    let excess = net.view.log.len().saturating_sub(view::PEER_LOG_LINES);
    net.view.log.drain(..excess);
    let Some(n) = notes.into_iter().next_back() else {
        return;
    };
    // A fresh warning stays: the line is in the peers panel's log anyway.
    if ui
        .message
        .as_ref()
        .is_some_and(|m| m.warn && m.at.elapsed() < WARNING_HOLD)
    {
        return;
    }
    if n.starts_with("refused") || n.contains(" refused") {
        ui.warn(n);
    } else {
        ui.notice(n);
    }
}

/// Whether `k` is the talk key, in the mode where keys are commands.
fn is_talk_key(k: &ct::KeyEvent, ui: &UiState, keymap: &Keymap) -> bool {
    ui.mode == super::state::Mode::Normal
        && super::keys::key_name(k).and_then(|n| keymap.command(&n))
            == Some(super::keys::Command::Talk)
}

/// Where the panels go on a terminal of `size`.
fn areas_of(size: ratatui::layout::Size, spectrogram: bool) -> view::Areas {
    view::layout(
        ratatui::layout::Rect::new(0, 0, size.width, size.height),
        spectrogram,
    )
}

fn split_devices(all: Vec<DeviceInfo>) -> (Vec<DeviceInfo>, Vec<DeviceInfo>) {
    let outputs = all
        .iter()
        .filter(|d| d.output_channels > 0)
        .cloned()
        .collect();
    let inputs = all.into_iter().filter(|d| d.input_channels > 0).collect();
    (outputs, inputs)
}

fn signal_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}

/// Asks the terminal where its cursor is, each time it is told to, and posts when
/// the answer came (after everything written before the question was taken in).
/// Frames are written whole under stdout's lock, so the question lands between two.
fn spawn_probe(tx: Sender<Event>, probing: Arc<AtomicBool>) -> Sender<()> {
    let (ask, asked) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("jhack-probe".into())
        .spawn(move || {
            for () in asked {
                probing.store(true, Ordering::Relaxed);
                let ok = crossterm::cursor::position().is_ok();
                probing.store(false, Ordering::Relaxed);
                if tx.send(Event::Probe(Instant::now(), ok)).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("no terminal probe: {e}");
    }
    ask
}

/// Reads terminal events on a thread of its own (crossterm's read blocks).
fn spawn_input(
    tx: Sender<Event>,
    stop: Arc<AtomicBool>,
    probing: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            // crossterm's reader is one lock: while a probe waits for its answer,
            // polls are short so it gets its turn soon after the answer arrives.
            let wait = if probing.load(Ordering::Relaxed) {
                5
            } else {
                50
            };
            match ct::poll(Duration::from_millis(wait)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => break,
            }
            let ev = match ct::read() {
                Ok(ct::Event::Key(k)) => Event::Key(k, Instant::now()),
                Ok(ct::Event::Resize(..)) => Event::Redraw,
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(ev).is_err() {
                break;
            }
        }
    })
}
