//! The sound list: key, name, length and tags, a mark on what is playing and on
//! remote sounds (their files on another machine: they play from a mirror).

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};

use super::{Screen, panel, sound_rows};
use crate::tui::state::{Focus, Mode};
use crate::tui::strings;

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let mut title = vec![
        Span::styled(format!(" {} ", strings::SOUNDS), t.title()),
        Span::styled(
            format!(
                "{}/{} · by {} ",
                s.sounds.len(),
                s.total_sounds,
                s.ui.sort.label()
            ),
            t.dim(),
        ),
    ];
    if !s.ui.filter.is_empty() {
        title.push(Span::styled(format!("· /{} ", s.ui.filter), t.key()));
    }
    let block = panel(Line::from(title), s.ui.focus == Focus::Sounds, t);
    if s.sounds.is_empty() {
        let text = if s.total_sounds == 0 {
            strings::EMPTY_LIBRARY
        } else {
            strings::NO_MATCH
        };
        f.render_widget(Paragraph::new(text).style(t.dim()).block(block), area);
        return;
    }
    let rows_fit = sound_rows(area);
    let bind_target = match &s.ui.mode {
        Mode::Bind(id) => Some(*id),
        _ => None,
    };
    let rows = s
        .sounds
        .iter()
        .enumerate()
        .skip(s.ui.scroll)
        .take(rows_fit)
        .map(|(i, m)| {
            let playing = s.playing.contains(&m.id);
            let remote = s.remote.contains(&m.id);
            let mark = match (playing, remote) {
                (true, _) => Span::styled("▶", t.playing()),
                (false, true) => Span::styled("○", t.dim()),
                (false, false) => Span::raw(" "),
            };
            let key = if bind_target == Some(m.id) {
                "…".to_string()
            } else {
                m.key.clone().unwrap_or_default()
            };
            let mut style = if playing {
                t.playing()
            } else if remote {
                t.dim()
            } else {
                Style::default()
            };
            if i == s.ui.selected {
                style = t.selected();
            }
            Row::new(vec![
                Cell::from(mark),
                Cell::from(Span::styled(key, t.key())),
                Cell::from(m.name.clone()),
                Cell::from(m.duration_text()),
                Cell::from(Span::styled(m.tags.join(","), t.dim())),
            ])
            .style(style)
        });
    let header = Row::new(["", "KEY", "NAME", "LENGTH", "TAGS"]).style(t.header());
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(6),
            Constraint::Fill(3),
            Constraint::Length(7),
            Constraint::Fill(2),
        ],
    )
    .header(header)
    .block(block);
    f.render_widget(table, area);
}
