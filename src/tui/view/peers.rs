//! The peers panel: each trusted peer (name, short id, online with its round trip,
//! what it may do here, transfers running, and in a call whether it talks, its
//! level and the call's figures), where hotkeys play, whether our microphone is
//! open, and — without peers — how to add one. Draws a snapshot; asks nothing of the
//! network.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Screen, panel};
use crate::net::PeerStatus;
use crate::tui::strings;

/// What the panel shows, refreshed by the loop when it changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeersView {
    /// Whether this screen is on the network.
    pub enabled: bool,
    /// Our id.
    pub me: Option<String>,
    /// Where we listen.
    pub listen: Option<String>,
    /// The trusted peers.
    pub peers: Vec<PeerStatus>,
    /// Sounds arriving from peers.
    pub arriving: usize,
    /// What happened with peers, oldest first (the last few are shown).
    pub log: Vec<String>,
    /// The call, when this screen has one.
    pub voice: Option<VoiceView>,
    /// What to run so that keys play where the person sits (a screen run over SSH
    /// without a sound device, none of the person's machines connected).
    pub hint: Vec<String>,
}

/// The call as the panel shows it, in the units it shows (so an unchanged picture
/// compares equal and is not redrawn).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoiceView {
    /// Our microphone is open (the talk key is down or latched).
    pub talking: bool,
    /// The talk key is held (the terminal tells releases), not latched.
    pub hold: bool,
    /// Whether the call can send our voice (false: no microphone, listening only).
    pub can_talk: bool,
    /// Each peer heard (by id; a relayed talker too).
    pub heard: Vec<VoiceLine>,
    /// Peers muted or turned down here (id, dB; `None`: muted).
    pub volumes: Vec<(String, Option<i32>)>,
}

/// One peer's voice, rounded for the screen.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VoiceLine {
    /// Its id.
    pub id: String,
    /// Its name ("alice via server" through a relay).
    pub name: String,
    /// It talks now.
    pub talking: bool,
    /// Its level, dBFS.
    pub level_db: i32,
    /// Jitter buffer depth, ms.
    pub buffer_ms: i32,
    /// Loss, tenths of a percent.
    pub loss_permille: i32,
    /// Concealed, tenths of a percent.
    pub concealed_permille: i32,
    /// Estimated mouth-to-ear, ms.
    pub mouth_to_ear_ms: Option<i32>,
}

/// Lines of peer activity kept for the panel.
pub const LOG_LINES: usize = 32;

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let v = s.peers;
    let mut title = vec![Span::styled(format!(" {} ", strings::PEERS), t.title())];
    if v.enabled {
        title.push(Span::styled(
            format!("· {} ", s.ui.target.label(s.ui.person.as_ref())),
            t.dim(),
        ));
    }
    if let Some(voice) = &v.voice {
        title.push(mic_span(voice, s));
    }
    let mut lines: Vec<Line<'_>> = Vec::new();
    // Commands to copy: wrapped at spaces, never cut.
    let width = usize::from(area.width.saturating_sub(2)).max(8);
    lines.extend(
        v.hint
            .iter()
            .flat_map(|l| wrap_words(l, width))
            .map(|l| Line::from(Span::styled(l, t.warn()))),
    );
    if v.peers.is_empty() {
        lines.push(Line::from(Span::styled(strings::NO_PEERS[0], t.dim())));
        match &v.me {
            Some(me) => lines.push(Line::from(Span::styled(format!("Your id: {me}"), t.dim()))),
            None => lines.push(Line::from(Span::styled(strings::NO_PEERS[1], t.dim()))),
        }
        lines.extend(
            strings::NO_PEERS[2..]
                .iter()
                .map(|l| Line::from(Span::styled(*l, t.dim()))),
        );
    } else {
        let focused = s.ui.focus == crate::tui::state::Focus::Peers;
        for (i, p) in v.peers.iter().enumerate() {
            let mut line = peer_line(p, s);
            if focused && i == s.ui.peer_selected {
                line = line.style(t.selected());
            }
            lines.push(line);
            if let Some(voice) = &v.voice {
                let volume = voice
                    .volumes
                    .iter()
                    .find(|(id, _)| *id == p.id)
                    .map(|v| v.1);
                if let Some(h) = voice.heard.iter().find(|h| h.id == p.id) {
                    lines.push(voice_line(h, volume, s));
                } else if let Some(vol) = volume {
                    lines.push(Line::from(Span::styled(
                        format!("   {}", volume_text(vol)),
                        t.dim(),
                    )));
                }
            }
        }
        // Talkers heard through a relay are not among our trusted peers.
        if let Some(voice) = &v.voice {
            for h in voice
                .heard
                .iter()
                .filter(|h| !v.peers.iter().any(|p| p.id == h.id))
            {
                lines.push(Line::from(vec![
                    Span::styled("◆ ", t.playing()),
                    Span::raw(h.name.as_str()),
                ]));
                lines.push(voice_line(h, None, s));
            }
        }
        if v.arriving > 0 {
            lines.push(Line::from(Span::styled(
                format!("{} sound(s) arriving", v.arriving),
                t.dim(),
            )));
        }
    }
    // The latest activity fills the rows left (inside the borders).
    let room = usize::from(area.height.saturating_sub(2)).saturating_sub(lines.len());
    let skip = v.log.len().saturating_sub(room);
    for l in &v.log[skip..] {
        lines.push(Line::from(Span::styled(l.as_str(), t.dim())));
    }
    f.render_widget(
        Paragraph::new(lines).block(panel(Line::from(title), false, s.theme)),
        area,
    );
}

fn peer_line<'a>(p: &'a PeerStatus, s: &Screen<'_>) -> Line<'a> {
    let t = s.theme;
    let short: String = p.id.chars().take(9).collect();
    let (dot, state) = if p.online {
        (
            Span::styled("● ", t.playing()),
            p.rtt_ms
                .map_or_else(|| "online".to_string(), |r| format!("{r:.1} ms")),
        )
    } else {
        (Span::styled("○ ", t.dim()), "offline".to_string())
    };
    let mut spans = vec![
        dot,
        Span::raw(p.name.as_str()),
        Span::styled(format!("  {short}  "), t.dim()),
        Span::raw(state),
        Span::styled(format!("  {}", p.allow), t.dim()),
    ];
    if p.transfers > 0 {
        spans.push(Span::styled(format!("  ⇅{}", p.transfers), t.notice()));
    }
    // A mirror: ⇄ when in sync, ⇄… while syncing, ⇄! when the last exchange failed
    // (`jhack peer list` says why); a subscription the same with ⇣ (receive only).
    if let Some(relation) = p.sync.as_deref() {
        let arrow = if relation == "subscribe" {
            "⇣"
        } else {
            "⇄"
        };
        let (mark, style) = match p.sync_state.as_deref() {
            None => ("", t.dim()),
            Some(s) if s.contains("to fetch") || s.starts_with("syncing") => ("…", t.notice()),
            Some(s) if s.starts_with("in sync") => ("", t.dim()),
            Some(_) => ("!", t.warn()),
        };
        spans.push(Span::styled(format!("  {arrow}{mark}"), style));
    }
    // What we share with it.
    if !p.shares.is_empty() {
        spans.push(Span::styled(format!("  ⇡{}", p.shares.join(",")), t.dim()));
    }
    Line::from(spans)
}

/// `text` in lines of at most `width` characters, broken at spaces (a word longer
/// than a line gets a line of its own); continuation lines are indented by two.
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut line));
            line.push_str("  ");
        } else if len > 0 {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.trim().is_empty() {
        out.push(line);
    }
    out
}

fn mic_span<'a>(v: &VoiceView, s: &Screen<'_>) -> Span<'a> {
    let t = s.theme;
    let key = s
        .keymap
        .key_of(crate::tui::keys::Command::Talk)
        .unwrap_or("the talk key");
    if !v.can_talk {
        return Span::styled("· listening only ", t.dim());
    }
    match (v.talking, v.hold) {
        (true, _) => Span::styled("· ● TALKING ", t.warn()),
        (false, true) => Span::styled(format!("· hold {key}: talk "), t.dim()),
        (false, false) => Span::styled(format!("· {key}: talk "), t.dim()),
    }
}

fn volume_text(v: Option<i32>) -> String {
    match v {
        None => "muted".to_string(),
        Some(db) => format!("{db:+} dB"),
    }
}

/// "   ▶  -23 dB ≈48 ms · buf 21 · loss 0.4% · conc 0.1%": who talks, how loud, the
/// estimated mouth-to-ear delay, and the call's figures (jitter buffer in ms).
fn voice_line<'a>(h: &VoiceLine, volume: Option<Option<i32>>, s: &Screen<'_>) -> Line<'a> {
    let t = s.theme;
    let mut spans = Vec::new();
    match volume {
        Some(None) => spans.push(Span::styled("   ✕ muted".to_string(), t.warn())),
        _ if h.talking => spans.push(Span::styled(
            format!("   ▶ {:>3} dB", h.level_db),
            t.meter(h.level_db as f32),
        )),
        _ => spans.push(Span::styled("   · quiet ".to_string(), t.dim())),
    }
    if let Some(Some(db)) = volume {
        spans.push(Span::styled(format!(" ({db:+} dB)"), t.dim()));
    }
    let tenths = |x: i32| format!("{}.{}", x / 10, x % 10);
    let mut figures = String::new();
    if let Some(m) = h.mouth_to_ear_ms {
        figures.push_str(&format!(" ≈{m} ms"));
    }
    figures.push_str(&format!(
        " · buf {} · loss {}% · conc {}%",
        h.buffer_ms,
        tenths(h.loss_permille),
        tenths(h.concealed_permille)
    ));
    spans.push(Span::styled(figures, t.dim()));
    Line::from(spans)
}
