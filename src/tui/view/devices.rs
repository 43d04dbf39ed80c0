//! The devices panel: what the engine runs on (device, rate, period, latency), and
//! the output and input lists to switch from.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{Screen, devices_focused, panel};
use crate::audio::DeviceInfo;
use crate::tui::state::Focus;
use crate::tui::strings;

pub(super) fn draw(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let out = &s.audio.info.output;
    let period = out.period_frames.unwrap_or(s.audio.stats.period_frames);
    let rate = out.format.sample_rate.max(1);
    let title = match &s.ui.attached {
        Some(name) => format!(" {} on {name} ", strings::DEVICES),
        None => format!(" {} ", strings::DEVICES),
    };
    let title = Line::from(Span::styled(title, t.title()));
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "{} kHz {} f {:.1} ms, out {:.1} ms",
            f64::from(rate) / 1000.0,
            period,
            f64::from(period) * 1000.0 / f64::from(rate),
            s.audio.stats.output_latency_ms
        ),
        t.dim(),
    ))];
    let inner_rows = usize::from(area.height.saturating_sub(3));
    let current_in = s.audio.info.input.as_ref().map(|i| i.device.as_str());
    let half = inner_rows.saturating_sub(2) / 2;
    let out_rows = if s.inputs.is_empty() {
        inner_rows.saturating_sub(1)
    } else {
        half.max(1)
    };
    list(
        &mut lines,
        s,
        "Output",
        s.outputs,
        Some(out.device.as_str()),
        0,
        out_rows,
        s.ui.focus == Focus::Outputs,
    );
    let in_rows = (inner_rows + 1).saturating_sub(lines.len() + 1);
    list(
        &mut lines,
        s,
        "Input",
        s.inputs,
        current_in,
        1,
        in_rows,
        s.ui.focus == Focus::Inputs,
    );
    let block = panel(title, devices_focused(s.ui.focus), t);
    f.render_widget(Paragraph::new(lines).block(block), area);
}

#[allow(clippy::too_many_arguments)]
fn list<'a>(
    lines: &mut Vec<Line<'a>>,
    s: &Screen<'a>,
    label: &'static str,
    devices: &'a [DeviceInfo],
    current: Option<&str>,
    which: usize,
    rows: usize,
    focused: bool,
) {
    let t = s.theme;
    lines.push(Line::from(Span::styled(label, t.header())));
    if devices.is_empty() {
        lines.push(Line::from(Span::styled("  (none)", t.dim())));
        return;
    }
    let sel = s.ui.device_selected[which].min(devices.len() - 1);
    let rows = rows.max(1);
    let first = sel.saturating_sub(rows.saturating_sub(1));
    for (i, d) in devices.iter().enumerate().skip(first).take(rows) {
        let is_current = current == Some(d.name.as_str());
        let mark = if is_current { "● " } else { "  " };
        let mut style = if is_current {
            t.playing()
        } else {
            Style::default()
        };
        if focused && i == sel {
            style = t.selected();
        }
        let default = if (which == 0 && d.default_output) || (which == 1 && d.default_input) {
            " (default)"
        } else {
            ""
        };
        lines.push(Line::from(vec![
            Span::styled(mark, t.playing()),
            Span::styled(format!("{}{default}", d.name), style),
        ]));
    }
}
