//! Attaching a screen to another machine's engine: the screen an SSH session runs
//! on a server shows and drives the sound card of the laptop the person sits at —
//! its devices (and switching them), meters, spectrogram, recording, stop-all and
//! the intercom's talk key — as if it were its own.
//!
//! Two features plug into the node:
//!
//! - [`FEATURE`] (`engine/1`), served by every engine, for peers with the
//!   `control` permission only (one's own machines): requests on a
//!   [`StreamKind::ENGINE`](crate::proto::StreamKind::ENGINE) stream, each one
//!   [`Ask`] in JSON. A control request is the control socket's own (the engine's
//!   subset of it), answered by the owner's loop as a local command would be; a
//!   [`Watch`] asks for [`frame::EngineFrame`]s to be sent to the asker as
//!   datagrams at the screen's rate for a few seconds (the screen renews it).
//! - [`VIEW_FEATURE`] (`engine-view/1`) on the screen's side: it receives those
//!   frames, only from the peer it attached to.
//!
//! The analysis runs where the sound is; only a few hundred bytes a frame travel.
//! Nothing here runs on the audio thread, and no network thread ever waits for the
//! owner's loop.

pub mod frame;
pub mod host;
pub mod view;

use serde::{Deserialize, Serialize};

use crate::app::control::Request;
use crate::app::spectrum_feed::Shown;

/// The engine's feature, as told to peers.
pub const FEATURE: &str = "engine/1";
/// The watching screen's feature.
pub const VIEW_FEATURE: &str = "engine-view/1";
/// How long a watch lasts unless renewed.
pub const WATCH_LEASE: std::time::Duration = std::time::Duration::from_secs(3);
/// Largest answer an engine request may get (a long device list).
pub const MAX_ANSWER: usize = 256 * 1024;

/// One request to an attached engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case", deny_unknown_fields)]
pub enum Ask {
    /// A control-socket request (those [`allowed`] lets through).
    Control {
        /// The request.
        request: Request,
    },
    /// Send engine frames to the asker for [`WATCH_LEASE`].
    Watch(Watch),
    /// Stop sending them.
    Unwatch,
}

/// What a watching screen wants to see.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    /// Its number: frames carry it, so ones made for an older picture are ignored.
    pub watch: u16,
    /// What the spectrogram shows.
    pub shown: Shown,
    /// The picture's columns (at most [`frame::MAX_BANDS`]).
    pub bands: u16,
    /// Its frequency range, Hz.
    pub lo_hz: f32,
    /// See `lo_hz`.
    pub hi_hz: f32,
    /// Frames a second.
    pub fps: f32,
}

impl Watch {
    /// The watch with its numbers brought within what an engine serves.
    pub fn sane(mut self) -> Watch {
        let finite = |x: f32, d: f32| if x.is_finite() { x } else { d };
        self.bands = self.bands.min(frame::MAX_BANDS as u16);
        self.fps = finite(self.fps, 10.0).clamp(1.0, 40.0);
        self.lo_hz = finite(self.lo_hz, 20.0).clamp(1.0, 20_000.0);
        self.hi_hz = finite(self.hi_hz, 20_000.0).clamp(self.lo_hz * 2.0, 96_000.0);
        self
    }
}

/// Whether a peer with `control` may send `request`: the engine's own requests
/// (and plays of this machine's sounds), never the library's or the peers'.
pub fn allowed(request: &Request) -> bool {
    matches!(
        request,
        Request::Ping
            | Request::Stop
            | Request::Play { .. }
            | Request::Engine
            | Request::Switch { .. }
            | Request::RecordStart
            | Request::RecordStop
            | Request::RecordSave { .. }
            | Request::RecordDiscard { .. }
            | Request::Talk { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_are_json_and_unknown_ones_are_refused() {
        let a = Ask::Control {
            request: Request::Switch {
                output: Some("2".into()),
                input: None,
            },
        };
        let j = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Ask>(&j).unwrap(), a);
        assert!(serde_json::from_str::<Ask>(r#"{"ask":"format_disk"}"#).is_err());
        let w = r#"{"ask":"watch","watch":1,"shown":"input","bands":80,"lo_hz":40,"hi_hz":16000,"fps":12"#;
        assert!(serde_json::from_str::<Ask>(&format!("{w}}}")).is_ok());
        assert!(serde_json::from_str::<Ask>(&format!("{w},\"x\":1}}")).is_err());
    }

    #[test]
    fn only_the_engines_requests_pass_and_watches_are_bounded() {
        assert!(allowed(&Request::Engine));
        assert!(allowed(&Request::Talk { down: true }));
        assert!(!allowed(&Request::List));
        assert!(!allowed(&Request::Remove { target: "x".into() }));
        assert!(!allowed(&Request::Import {
            paths: vec!["/etc/passwd".into()],
            name: None,
            tags: vec![],
            key: None,
            gain_db: 0.0,
        }));
        let w = Watch {
            watch: 1,
            shown: Shown::Input,
            bands: 60_000,
            lo_hz: f32::NAN,
            hi_hz: 5.0,
            fps: 1e9,
        }
        .sane();
        assert_eq!(w.bands as usize, frame::MAX_BANDS);
        assert_eq!(w.fps, 40.0);
        assert_eq!(w.lo_hz, 20.0);
        assert_eq!(w.hi_hz, 40.0);
    }
}
