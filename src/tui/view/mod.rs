//! Drawing: the whole screen from a [`Screen`] snapshot. Views only read the
//! snapshot and write into ratatui's buffer; they change nothing and do no I/O.

mod devices;
mod help;
mod peers;
mod sounds;
mod spectrogram;

pub use peers::{LOG_LINES as PEER_LOG_LINES, PeersView, VoiceLine, VoiceView};
pub use spectrogram::picture_size;
mod status;

pub use status::dbfs;

use std::collections::HashSet;
use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

use super::keys::Keymap;
use super::state::{Focus, UiState};
use super::strings;
use super::theme::Theme;
use super::waterfall::Waterfall;
use crate::app::instance::AudioStatus;
use crate::audio::DeviceInfo;
use crate::domain::{SoundId, SoundMeta};

/// Smallest screen the interface lays out.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Everything one frame shows.
pub struct Screen<'a> {
    /// The interface's state.
    pub ui: &'a UiState,
    /// Colours.
    pub theme: Theme,
    /// Keys, for the help.
    pub keymap: &'a Keymap,
    /// The sounds to list, in order.
    pub sounds: &'a [&'a SoundMeta],
    /// How many sounds the library holds.
    pub total_sounds: usize,
    /// Sounds playing now.
    pub playing: &'a HashSet<SoundId>,
    /// Sounds whose files are on other machines (they play from a mirror).
    pub remote: &'a HashSet<SoundId>,
    /// The engine.
    pub audio: &'a AudioStatus,
    /// Output devices.
    pub outputs: &'a [DeviceInfo],
    /// Input devices.
    pub inputs: &'a [DeviceInfo],
    /// The spectrogram's picture.
    pub waterfall: &'a Waterfall,
    /// How long the recording in progress has run.
    pub recording: Option<Duration>,
    /// The peers panel's picture.
    pub peers: &'a PeersView,
}

/// Where each panel goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    /// The spectrogram (None when hidden).
    pub spectrogram: Option<Rect>,
    /// The sound list.
    pub sounds: Rect,
    /// Devices.
    pub devices: Rect,
    /// Peers.
    pub peers: Rect,
    /// The status line.
    pub status: Rect,
    /// The message line.
    pub message: Rect,
}

/// The layout for a screen of `area`.
pub fn layout(area: Rect, spectrogram: bool) -> Areas {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .split(area);
    let body = rows[0];
    let (spec, middle) = if spectrogram {
        let h = (body.height * 2 / 5).max(7);
        let parts = Layout::default()
            .direction(Direction::Vertical)
            .constraints([Constraint::Length(h), Constraint::Min(1)])
            .split(body);
        (Some(parts[0]), parts[1])
    } else {
        (None, body)
    };
    let cols = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Percentage(58), Constraint::Percentage(42)])
        .split(middle);
    // The peers panel takes about two fifths of the column (its activity lines fill
    // it); the devices keep at least six rows.
    let peers_h = (cols[1].height * 2 / 5)
        .max(5)
        .min(cols[1].height.saturating_sub(6).max(5));
    let right = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(6), Constraint::Length(peers_h)])
        .split(cols[1]);
    Areas {
        spectrogram: spec,
        sounds: cols[0],
        devices: right[0],
        peers: right[1],
        status: rows[1],
        message: rows[2],
    }
}

/// Rows of the sound list that fit in `area` (borders and header taken off).
pub fn sound_rows(area: Rect) -> usize {
    usize::from(area.height.saturating_sub(3))
}

/// Draws the whole screen.
pub fn draw(f: &mut Frame<'_>, s: &Screen<'_>) {
    let area = f.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let msg = Paragraph::new(strings::too_small(area.width, area.height)).style(s.theme.warn());
        f.render_widget(msg, area);
        return;
    }
    let a = layout(area, s.ui.spectrum_visible);
    if let Some(r) = a.spectrogram {
        spectrogram::draw(f, r, s);
    }
    sounds::draw(f, a.sounds, s);
    devices::draw(f, a.devices, s);
    peers::draw(f, a.peers, s);
    status::draw_status(f, a.status, s);
    status::draw_message(f, a.message, s);
    if s.ui.mode == super::state::Mode::Help {
        help::draw(f, area, s);
    }
}

/// A panel's frame, highlighted when focused.
fn panel<'a>(title: Line<'a>, focused: bool, theme: Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(if focused {
            theme.border_focused()
        } else {
            theme.border()
        })
        .title(title)
}

/// Whether `focus` is on one of the device lists.
fn devices_focused(focus: Focus) -> bool {
    matches!(focus, Focus::Outputs | Focus::Inputs)
}
