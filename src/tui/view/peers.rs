//! The peers panel: each trusted peer (name, short id, online with its round trip,
//! what it may do here, transfers running), where hotkeys play, and — without peers —
//! how to add one. Draws a snapshot; asks nothing of the network.

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
}

/// Lines of peer activity kept for the panel.
pub const LOG_LINES: usize = 32;

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let v = s.peers;
    let mut title = vec![Span::styled(format!(" {} ", strings::PEERS), t.title())];
    if v.enabled {
        title.push(Span::styled(format!("· {} ", s.ui.target.label()), t.dim()));
    }
    let mut lines: Vec<Line<'_>> = Vec::new();
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
        for p in &v.peers {
            lines.push(peer_line(p, s));
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
    Line::from(spans)
}
