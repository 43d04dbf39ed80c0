//! The peers panel.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Screen, panel};
use crate::tui::strings;

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let title = Line::from(Span::styled(format!(" {} ", strings::PEERS), t.title()));
    let lines: Vec<Line<'_>> = strings::NO_PEERS
        .iter()
        .map(|l| Line::from(Span::styled(*l, t.dim())))
        .collect();
    f.render_widget(Paragraph::new(lines).block(panel(title, false, t)), area);
}
