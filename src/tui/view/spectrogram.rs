//! The spectrogram: a waterfall, newest at the top, frequency across on a
//! logarithmic axis with labels, level as colour (two frames per row with
//! half-block characters). Without colour, shades of block characters.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use super::{Screen, panel};
use crate::tui::state::Source;
use crate::tui::strings;
use crate::tui::theme::ColorDepth;
use crate::tui::waterfall::{FLOOR_DB, RANGE_DB, scale};

/// Frequencies labelled on the axis when they are in range.
const LABELS: &[(f32, &str)] = &[
    (50.0, "50"),
    (100.0, "100"),
    (200.0, "200"),
    (500.0, "500"),
    (1000.0, "1k"),
    (2000.0, "2k"),
    (5000.0, "5k"),
    (10_000.0, "10k"),
    (20_000.0, "20k"),
];

/// The picture's size inside `area`: (columns = bands, rows of cells).
pub fn picture_size(area: Rect) -> (usize, usize) {
    (
        usize::from(area.width.saturating_sub(2)),
        usize::from(area.height.saturating_sub(3)),
    )
}

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let ui = s.ui;
    let (lo, hi) = ui.freq_range;
    let source = match ui.source {
        Source::Input => "microphone",
        Source::Output => "output",
    };
    let title = Line::from(vec![
        Span::styled(format!(" {} ", strings::SPECTROGRAM), t.title()),
        Span::styled(
            format!(
                "{source} · {}–{} Hz · colour {:.0}…{:.0} dBFS ",
                lo.round(),
                hi.round(),
                FLOOR_DB - ui.spectrum_gain_db,
                FLOOR_DB + RANGE_DB - ui.spectrum_gain_db
            ),
            t.dim(),
        ),
    ]);
    let block = panel(title, false, t);
    let inner = block.inner(area);
    f.render_widget(block, area);
    if inner.height < 2 || inner.width < 2 {
        return;
    }
    let pic = Rect::new(inner.x, inner.y, inner.width, inner.height - 1);
    let axis = Rect::new(inner.x, inner.y + inner.height - 1, inner.width, 1);
    paint(f.buffer_mut(), pic, s);
    labels(f.buffer_mut(), axis, lo, hi, t.dim());
}

fn paint(buf: &mut Buffer, r: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let w = &s.waterfall;
    let gain = s.ui.spectrum_gain_db;
    let level = |age: usize, band: usize| -> f32 {
        w.frame(age)
            .and_then(|fr| fr.get(band).copied())
            .map_or(0.0, |db| scale(db, gain))
    };
    for row in 0..r.height {
        for col in 0..r.width {
            let (band, y) = (usize::from(col), usize::from(row));
            let (up, down) = (level(2 * y, band), level(2 * y + 1, band));
            let Some(cell) = buf.cell_mut((r.x + col, r.y + row)) else {
                continue;
            };
            if t.depth == ColorDepth::None {
                cell.set_char(t.heat_glyph(up.max(down)));
                continue;
            }
            match (t.heat(up), t.heat(down)) {
                (None, None) => {
                    cell.set_char(' ').set_style(Style::reset());
                }
                (a, b) => {
                    cell.set_char('▀').set_style(
                        Style::default()
                            .fg(a.unwrap_or(Color::Reset))
                            .bg(b.unwrap_or(Color::Reset)),
                    );
                }
            }
        }
    }
}

fn labels(buf: &mut Buffer, r: Rect, lo: f32, hi: f32, style: Style) {
    let width = f32::from(r.width);
    let span = (hi / lo).ln();
    let mut next_free = 0u16;
    for (freq, text) in LABELS {
        if *freq < lo || *freq > hi {
            continue;
        }
        let x = ((freq / lo).ln() / span * width) as u16;
        let len = text.len() as u16;
        let start = x.saturating_sub(len / 2).min(r.width.saturating_sub(len));
        if start < next_free {
            continue;
        }
        buf.set_string(r.x + start, r.y, text, style);
        next_free = start + len + 1;
    }
}
