//! The interface's screens drawn on ratatui's `TestBackend`: the main screen and the
//! help at 80×24 and 120×40, the too-small message, and the silent (no device)
//! status line — compared with reviewed snapshots (insta).

use std::collections::HashSet;

use jhack::app::instance::AudioStatus;
use jhack::audio::{DeviceInfo, EngineInfo, StatsSnapshot, StreamInfo};
use jhack::config::Config;
use jhack::domain::{AudioFormat, Origin, SoundId, SoundMeta};
use jhack::tui::keys::Keymap;
use jhack::tui::state::{Mode, Source, UiState};
use jhack::tui::theme::{ColorDepth, Theme};
use jhack::tui::view::{self, Screen};
use jhack::tui::waterfall::Waterfall;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn sound(n: u8, name: &str, key: Option<&str>, secs: f64, tags: &[&str]) -> SoundMeta {
    SoundMeta {
        id: SoundId([n; 32]),
        name: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        key: key.map(Into::into),
        gain_db: 0.0,
        frames: (secs * 48_000.0) as u64,
        sample_rate: 48_000,
        channels: 2,
        format: "wav/pcm_s16le".into(),
        size: 1000,
        added_ms: 0,
        loudness_lufs: Some(-16.0),
        last_played_ms: None,
        origin: Origin::Local,
    }
}

fn library() -> Vec<SoundMeta> {
    vec![
        sound(1, "airhorn", Some("1"), 1.53, &["starter"]),
        sound(2, "buzzer", Some("4"), 0.9, &["starter"]),
        sound(3, "clap", Some("8"), 0.4, &["starter", "drums"]),
        sound(4, "countdown", Some("9"), 2.1, &["starter"]),
        sound(5, "ding", Some("3"), 2.2, &["starter"]),
        sound(6, "drumroll", Some("6"), 3.2, &["starter", "drums"]),
        sound(7, "hello-there", None, 0.9, &["voice"]),
        sound(8, "rimshot", Some("2"), 1.7, &["starter", "drums"]),
    ]
}

fn device(index: usize, name: &str, inp: u16, out: u16, default: bool) -> DeviceInfo {
    DeviceInfo {
        index,
        host: "ALSA".into(),
        name: name.into(),
        id: name.to_lowercase(),
        input_channels: inp,
        output_channels: out,
        default_rate: Some(48_000),
        default_input: default && inp > 0,
        default_output: default && out > 0,
    }
}

fn status(null: bool) -> AudioStatus {
    let stream = |device: &str| StreamInfo {
        host: if null { "null".into() } else { "ALSA".into() },
        device: device.into(),
        format: AudioFormat::new(48_000, 2),
        sample_format: "f32".into(),
        requested_period: 256,
        period_frames: Some(256),
    };
    AudioStatus {
        info: EngineInfo {
            output: stream(if null {
                "silent null output"
            } else {
                "Default Audio Device"
            }),
            input: (!null).then(|| stream("Default Audio Device")),
        },
        stats: StatsSnapshot {
            period_frames: 256,
            voices_active: 1,
            last_trigger_ms: 4.2,
            output_latency_ms: 10.6,
            load: 0.03,
            out_peak: 0.5,
            out_rms: 0.2,
            in_peak: 0.05,
            in_rms: 0.01,
            ..StatsSnapshot::default()
        },
    }
}

/// A waterfall with a tone sweeping up and a noise floor.
fn waterfall(bands: usize, rows: usize) -> Waterfall {
    let mut w = Waterfall::new(bands, rows);
    for age in (0..rows * 2).rev() {
        let peak = (age * bands / (rows * 2).max(1)).min(bands - 1);
        let frame = (0..bands)
            .map(|b| {
                let d = b.abs_diff(peak) as f32;
                (-20.0 - 12.0 * d).max(-80.0)
            })
            .collect();
        w.push(frame);
    }
    w
}

fn render(w: u16, h: u16, ui: &UiState, null: bool) -> String {
    render_with(w, h, ui, null, &jhack::tui::view::PeersView::default())
}

/// Two trusted peers, one online with a transfer running, and some activity.
fn peers_view() -> jhack::tui::view::PeersView {
    use jhack::net::PeerStatus;
    jhack::tui::view::PeersView {
        enabled: true,
        me: Some("9Y8V-FD6X-R2PE-S9B2-H1P7-QXVJ-DCQ5-84P7".into()),
        listen: Some("[::]:7355".into()),
        peers: vec![
            PeerStatus {
                name: "studio".into(),
                id: "7KQ2-M4XF-R2PE-S9B2-H1P7-QXVJ-DCQ5-84P7".into(),
                address: Some("studio.lan:7355".into()),
                allow: "play,read".into(),
                online: true,
                rtt_ms: Some(0.42),
                transfers: 1,
                datagrams_dropped: 0,
                protocol: Some(2),
                last_error: None,
                sync: Some("mirror".into()),
                sync_state: Some("in sync".into()),
                shares: Vec::new(),
                remote: None,
                speakers: false,
            },
            PeerStatus {
                name: "laptop".into(),
                id: "HQ92-C3GK-JX4N-6RA7-56QK-DMWY-HHZN-HGWT".into(),
                address: None,
                allow: "play".into(),
                online: false,
                rtt_ms: None,
                transfers: 0,
                datagrams_dropped: 0,
                protocol: None,
                last_error: Some("no answer".into()),
                sync: None,
                sync_state: None,
                shares: Vec::new(),
                remote: None,
                speakers: false,
            },
        ],
        arriving: 1,
        log: vec![
            "studio is online (192.0.2.7:7355)".into(),
            "studio played \"airhorn\" here".into(),
        ],
        // In a call: studio talks, the laptop is muted, and someone is heard
        // through a relay; our microphone is latched open.
        voice: Some(jhack::tui::view::VoiceView {
            talking: true,
            hold: false,
            can_talk: true,
            heard: vec![
                jhack::tui::view::VoiceLine {
                    id: "7KQ2-M4XF-R2PE-S9B2-H1P7-QXVJ-DCQ5-84P7".into(),
                    name: "studio".into(),
                    talking: true,
                    level_db: -23,
                    buffer_ms: 21,
                    loss_permille: 4,
                    concealed_permille: 1,
                    mouth_to_ear_ms: Some(48),
                },
                jhack::tui::view::VoiceLine {
                    id: "M2QX-7KQ2-R2PE-S9B2-H1P7-QXVJ-DCQ5-84P7".into(),
                    name: "dana via studio".into(),
                    talking: false,
                    level_db: -70,
                    buffer_ms: 30,
                    loss_permille: 12,
                    concealed_permille: 3,
                    mouth_to_ear_ms: Some(61),
                },
            ],
            volumes: vec![("HQ92-C3GK-JX4N-6RA7-56QK-DMWY-HHZN-HGWT".into(), None)],
        }),
        hint: Vec::new(),
    }
}

fn render_with(
    w: u16,
    h: u16,
    ui: &UiState,
    null: bool,
    peers: &jhack::tui::view::PeersView,
) -> String {
    let keymap = Keymap::new(&Config::default().keys);
    let lib = library();
    let sounds: Vec<&SoundMeta> = ui.visible(&lib);
    let playing: HashSet<SoundId> = [SoundId([1; 32])].into_iter().collect();
    let st = status(null);
    let outputs = vec![
        device(0, "Default Audio Device", 2, 2, true),
        device(1, "test_speaker", 0, 2, false),
    ];
    let inputs = vec![
        device(0, "Default Audio Device", 2, 2, true),
        device(2, "test_mic", 1, 0, false),
    ];
    let area = view::layout(ratatui::layout::Rect::new(0, 0, w, h), ui.spectrum_visible);
    let (bands, rows) = area.spectrogram.map(view::picture_size).unwrap_or((1, 1));
    let wf = waterfall(bands, rows);
    let screen = Screen {
        ui,
        theme: Theme::new(ColorDepth::True),
        keymap: &keymap,
        sounds: &sounds,
        total_sounds: lib.len(),
        playing: &playing,
        // "hello-there" is a remote sound: its file is on another machine.
        remote: &[SoundId([7; 32])].into_iter().collect(),
        audio: &st,
        outputs: &outputs,
        inputs: &inputs,
        waterfall: &wf,
        recording: None,
        peers,
    };
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| view::draw(f, &screen)).expect("draw");
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn main_screen_80x24() {
    let ui = UiState::new(Source::Input);
    insta::assert_snapshot!(render(80, 24, &ui, false));
}

#[test]
fn main_screen_120x40() {
    let mut ui = UiState::new(Source::Output);
    ui.selected = 2;
    ui.filter = "dr".into();
    insta::assert_snapshot!(render(120, 40, &ui, false));
}

#[test]
fn main_screen_with_peers_120x40() {
    let mut ui = UiState::new(Source::Input);
    ui.target = jhack::tui::state::Target::Both;
    let text = render_with(120, 40, &ui, false, &peers_view());
    assert!(
        text.contains("● studio") && text.contains("○ laptop"),
        "{text}"
    );
    assert!(text.contains("keys play here + peers"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn help_80x24() {
    let mut ui = UiState::new(Source::Input);
    ui.mode = Mode::Help;
    insta::assert_snapshot!(render(80, 24, &ui, false));
}

#[test]
fn help_120x40() {
    let mut ui = UiState::new(Source::Input);
    ui.mode = Mode::Help;
    insta::assert_snapshot!(render(120, 40, &ui, false));
}

#[test]
fn silent_without_a_device_and_spectrogram_hidden() {
    let mut ui = UiState::new(Source::Input);
    ui.spectrum_visible = false;
    let text = render(80, 24, &ui, true);
    assert!(text.contains("no audio device: silent"), "{text}");
    insta::assert_snapshot!(text);
}

#[test]
fn too_small_says_so() {
    let ui = UiState::new(Source::Input);
    let text = render(60, 20, &ui, false);
    assert!(
        text.contains("Window too small (60×20); jhack needs 80×24."),
        "{text}"
    );
}

#[test]
fn over_ssh_the_panel_says_what_to_run_then_where_keys_play() {
    // No machine of the person's connected: the commands, wrapped, never cut.
    let ui = UiState::new(Source::Input);
    let mut peers = peers_view();
    peers.voice = None;
    peers.hint = jhack::app::ssh::setup_hint(
        "9Y8V-FD6X-R2PE-S9B2-H1P7-QXVJ-DCQ5-84P7",
        Some("198.51.100.2:7355"),
        "server",
    );
    let text = render_with(120, 40, &ui, true, &peers);
    assert!(
        text.contains("9Y8V-FD6X-R2PE-S9B2-H1P7-QXVJ-DCQ5-84P7"),
        "{text}"
    );
    insta::assert_snapshot!("over_ssh_hint_120x40", text);
    // The laptop connected: keys play there, and the title says so.
    let mut ui = UiState::new(Source::Input);
    ui.person = Some(jhack::tui::state::Person {
        id: "HQ92-C3GK-JX4N-6RA7-56QK-DMWY-HHZN-HGWT".into(),
        name: "laptop".into(),
        why: "your SSH client",
    });
    ui.target = jhack::tui::state::Target::Person;
    peers.hint.clear();
    let text = render_with(120, 40, &ui, true, &peers);
    assert!(
        text.contains("keys play on laptop (your SSH client)"),
        "{text}"
    );
    // The status line says so too, in place of the silent device.
    assert!(
        text.lines()
            .any(|l| l.starts_with("keys play on laptop (your SSH client)")),
        "{text}"
    );
}
