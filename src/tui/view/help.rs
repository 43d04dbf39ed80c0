//! The help overlay: every key and what it does.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{Screen, panel};
use crate::tui::strings;

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let mut lines = vec![Line::from(Span::styled(strings::HELP_INTRO, t.dim()))];
    for (cmds, what) in strings::HELP_LINES {
        let keys: Vec<&str> = s
            .keymap
            .entries()
            .iter()
            .filter(|(_, c)| cmds.contains(c))
            .map(|(k, _)| k.as_str())
            .collect();
        if keys.is_empty() {
            continue; // unbound in the config
        }
        lines.push(Line::from(vec![
            Span::styled(format!("{:>22}  ", keys.join(" ")), t.key()),
            Span::raw(*what),
        ]));
    }
    let w = area.width.min(72);
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let title = Line::from(Span::styled(
        format!(" {} · any key closes ", strings::HELP),
        t.title(),
    ));
    f.render_widget(Clear, r);
    f.render_widget(Paragraph::new(lines).block(panel(title, true, t)), r);
}
