//! The status line (level meters, voices, xruns, callback load, trigger latency) and
//! the message line (notices, problems, prompts, or a hint of the keys).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::Screen;
use crate::tui::state::Mode;
use crate::tui::strings;

/// Width of a level meter in cells.
const METER: usize = 8;

/// dBFS of a linear level, with silence shown as -99.
pub fn dbfs(x: f32) -> f32 {
    crate::domain::Amplitude(x).to_decibels().0.max(-99.0)
}

fn meter<'a>(s: &Screen<'a>, label: &'static str, peak: f32, rms: f32) -> Vec<Span<'a>> {
    let t = s.theme;
    let (p, r) = (dbfs(peak), dbfs(rms));
    // -60..0 dBFS over the meter's cells, RMS solid, peak as a tick.
    let cells = |db: f32| (((db + 60.0) / 60.0).clamp(0.0, 1.0) * METER as f32).round() as usize;
    let (rc, pc) = (cells(r), cells(p).max(cells(r)));
    let mut bar = String::with_capacity(METER * 3);
    for i in 0..METER {
        bar.push(if i < rc {
            '█'
        } else if i + 1 == pc {
            '▏'
        } else {
            '·'
        });
    }
    vec![
        Span::styled(format!("{label} "), t.header()),
        Span::styled(bar, t.meter(p)),
        Span::raw(format!(" {p:>3.0}/{r:>3.0} ")),
    ]
}

pub(super) fn draw_status(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let st = &s.audio.stats;
    let mut spans = Vec::new();
    let person = match (s.ui.target, &s.ui.person) {
        (crate::tui::state::Target::Person, Some(p)) => Some(p),
        _ => None,
    };
    if let Some(p) = person {
        // Over SSH: the sound is where the person sits, and the line says so first.
        spans.push(Span::styled(
            format!("keys play on {} ({}) ", p.name, p.why),
            t.notice(),
        ));
    }
    if let Some(d) = s.recording {
        spans.push(Span::styled(
            format!("● REC {:.0}s ", d.as_secs_f64()),
            t.warn(),
        ));
    }
    // Throttled for a slow terminal: said before the figures, which it slows.
    if let Some(th) = &s.ui.throttled {
        spans.push(Span::styled(format!("{th} "), t.warn()));
    }
    // An attached machine's meters are shown (the devices panel names it); the
    // silent backend's say nothing, so its state is shown instead, unless keys play
    // elsewhere anyway.
    let silent = s.ui.attached.is_none() && s.audio.info.output_is_null();
    if !silent {
        spans.extend(meter(s, "OUT", st.out_peak, st.out_rms));
    } else if person.is_none() {
        spans.push(Span::styled(format!("{} ", strings::NO_AUDIO), t.warn()));
    }
    if s.audio.info.input.is_some() {
        spans.extend(meter(s, "IN", st.in_peak, st.in_rms));
    }
    spans.push(Span::raw(format!(
        "▶{} xrun {} cpu {:.0}% ",
        st.voices_active,
        st.xruns,
        st.load * 100.0
    )));
    if st.last_trigger_ms > 0.0 {
        spans.push(Span::raw(format!("trig {:.1}ms ", st.last_trigger_ms)));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub(super) fn draw_message(f: &mut Frame<'_>, area: Rect, s: &Screen<'_>) {
    let t = s.theme;
    let line = match &s.ui.mode {
        Mode::Filter => Line::from(Span::styled(strings::filter_prompt(&s.ui.filter), t.key())),
        Mode::Bind(id) => {
            let name = s
                .sounds
                .iter()
                .find(|m| m.id == *id)
                .map_or("?", |m| m.name.as_str());
            Line::from(Span::styled(strings::bind_prompt(name), t.key()))
        }
        Mode::Name { input, .. } => Line::from(Span::styled(strings::name_prompt(input), t.key())),
        _ => match &s.ui.message {
            Some(m) if m.warn => Line::from(Span::styled(m.text.clone(), t.warn())),
            Some(m) => Line::from(Span::styled(m.text.clone(), t.notice())),
            None => Line::from(Span::styled(strings::HINT, t.dim())),
        },
    };
    f.render_widget(Paragraph::new(line), area);
}
