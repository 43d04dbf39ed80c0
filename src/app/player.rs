//! Playing files: a decoder and a converter on a feeder thread stream a file into an
//! engine voice, so a file of any length plays in bounded memory, starting as soon
//! as a short prebuffer is ready.

use std::path::Path;
use std::time::Duration;

use crate::audio::{Engine, EngineError, PlayOptions, VoiceId};
use crate::domain::{Amplitude, AudioFormat};
use crate::media::{Converter, Decoder, MediaError, SourceInfo};

use super::feeder::{self, Feed, FeedSizes};

/// Why a file could not be played.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The file is unreadable or not audio we can decode.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The engine refused the voice.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The feeder thread could not start.
    #[error("cannot start a decoder thread")]
    Thread(#[source] std::io::Error),
}

/// A file opened and checked, ready to play.
pub struct OpenedFile {
    decoder: Decoder,
    converter: Converter,
}

impl OpenedFile {
    /// Opens `path` and prepares conversion to `format`. Fails early on bad files.
    pub fn open(path: &Path, format: AudioFormat) -> Result<Self, MediaError> {
        let decoder = Decoder::open(path)?;
        let converter = Converter::new(decoder.info().format, format)?;
        Ok(Self { decoder, converter })
    }

    /// What the file holds.
    pub fn info(&self) -> &SourceInfo {
        self.decoder.info()
    }
}

/// A file being played.
pub struct PlayingFile {
    /// The engine voice.
    pub id: VoiceId,
    feed: Feed<MediaError>,
}

impl PlayingFile {
    /// Stops feeding and returns the decoder's result (an error that ended the file early).
    pub fn finish(self) -> Result<(), MediaError> {
        self.feed.cancel();
        match self.feed.join() {
            Some(Err(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Starts streaming `file` into the engine at `gain`; returns once the prebuffer is
/// filled and the play command has been sent.
pub fn play(
    engine: &Engine,
    file: OpenedFile,
    gain: Amplitude,
    start_frame: Option<u64>,
) -> Result<PlayingFile, PlayError> {
    let OpenedFile {
        mut decoder,
        mut converter,
    } = file;
    let mut block = Vec::with_capacity(16_384);
    let mut finished = false;
    let producer = move |out: &mut Vec<f32>| -> Result<bool, MediaError> {
        if finished {
            return Ok(false);
        }
        block.clear();
        if decoder.next_block(&mut block)? == 0 {
            converter.finish(out);
            finished = true;
            return Ok(false);
        }
        converter.process(&block, out);
        Ok(true)
    };
    let (source, feed) = feeder::spawn(
        "jhack-decode",
        engine.format(),
        FeedSizes::default(),
        producer,
    )
    .map_err(PlayError::Thread)?;
    feed.wait_ready(Duration::from_secs(10));
    let id = engine.play(
        source,
        PlayOptions {
            gain,
            start_frame,
            trigger: None,
        },
    )?;
    Ok(PlayingFile { id, feed })
}
