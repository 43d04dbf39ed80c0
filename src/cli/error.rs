//! How commands fail: a one-line message and an exit status.
//!
//! Status 2 means bad usage or bad input (an unreadable file, an unknown device);
//! 1 means anything else went wrong.

use std::fmt;

/// A command's failure.
#[derive(Debug)]
pub struct CliError {
    /// The exit status.
    pub status: u8,
    /// The message, without the `jhack: error:` prefix.
    pub message: String,
}

impl CliError {
    /// Bad usage or bad input (status 2).
    pub fn input(msg: impl fmt::Display) -> Self {
        Self {
            status: 2,
            message: msg.to_string(),
        }
    }

    /// Any other failure (status 1).
    pub fn failure(msg: impl fmt::Display) -> Self {
        Self {
            status: 1,
            message: msg.to_string(),
        }
    }
}

pub use crate::domain::chain;

impl From<crate::audio::EngineError> for CliError {
    fn from(e: crate::audio::EngineError) -> Self {
        match e {
            crate::audio::EngineError::Device(crate::audio::DeviceError::NotFound { .. }) => {
                Self::input(chain(&e))
            }
            e => Self::failure(chain(&e)),
        }
    }
}

impl From<crate::media::MediaError> for CliError {
    fn from(e: crate::media::MediaError) -> Self {
        Self::input(chain(&e))
    }
}

impl From<crate::app::player::PlayError> for CliError {
    fn from(e: crate::app::player::PlayError) -> Self {
        use crate::app::player::PlayError as P;
        match e {
            P::Media(m) => m.into(),
            P::Engine(e) => e.into(),
            e @ (P::Thread(_) | P::FormatChanged) => Self::failure(chain(&e)),
        }
    }
}

impl From<crate::app::recorder::RecordError> for CliError {
    fn from(e: crate::app::recorder::RecordError) -> Self {
        use crate::app::recorder::RecordError as R;
        match e {
            R::Engine(e) => e.into(),
            e => Self::failure(chain(&e)),
        }
    }
}
