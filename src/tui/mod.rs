//! The terminal interface: `jhack` (or `jhack tui`).
//!
//! Update/view: terminal events and control-socket requests arrive on one queue;
//! each becomes a change of [`state::UiState`] and calls on the
//! [`Instance`](crate::app::instance::Instance); the screen is then drawn from a
//! snapshot by [`view::draw`], only when something on it changed and at most
//! `screen.max_fps` times a second (the spectrogram at `screen.spectrogram_fps`).
//! This module never touches audio samples itself and never prints: problems go to
//! the message line, library chatter to the log file.

pub mod keys;
mod looper;
mod spectrum_link;
pub mod state;
pub mod strings;
pub mod terminal;
pub mod theme;
pub mod throttle;
pub mod update;
pub mod view;
pub mod waterfall;

pub use looper::{RunOptions, run};
