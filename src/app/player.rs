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
    /// The output changed format while the voice was being prepared.
    #[error("the output device changed meanwhile")]
    FormatChanged,
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

    /// Opens `size` bytes of a sound from a source still arriving (reads wait for
    /// the bytes); `name` names it in errors and hints its format by extension.
    /// Only containers that need their end first are read out of order.
    pub fn open_arriving(
        source: impl crate::media::ReadSeek,
        size: u64,
        name: &Path,
        format: AudioFormat,
    ) -> Result<Self, MediaError> {
        let needs_end = name
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "mp4" | "m4a" | "mov" | "isomp4"));
        let decoder = Decoder::open_source(source, size, name, needs_end)?;
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

/// A file whose feeder is running and whose prebuffer is filled: a voice waiting to
/// be started. Made off the engine's thread when the file's bytes may be slow to come.
pub struct Prepared {
    format: AudioFormat,
    source: crate::audio::VoiceSource,
    feed: Feed<MediaError>,
}

/// Starts streaming `file` into the engine at `gain`; returns once the prebuffer is
/// filled and the play command has been sent.
pub fn play(
    engine: &Engine,
    file: OpenedFile,
    gain: Amplitude,
    start_frame: Option<u64>,
) -> Result<PlayingFile, PlayError> {
    start(
        engine,
        prepare(engine.format(), file)?,
        gain,
        start_frame,
        None,
    )
}

/// Starts a feeder for `file` (converting to `format`) and waits for its prebuffer.
pub fn prepare(format: AudioFormat, file: OpenedFile) -> Result<Prepared, PlayError> {
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
    let (source, feed) = feeder::spawn("jhack-decode", format, FeedSizes::default(), producer)
        .map_err(PlayError::Thread)?;
    feed.wait_ready(Duration::from_secs(10));
    Ok(Prepared {
        format,
        source,
        feed,
    })
}

/// Starts a prepared voice; `trigger` is when the play was asked for.
pub fn start(
    engine: &Engine,
    prepared: Prepared,
    gain: Amplitude,
    start_frame: Option<u64>,
    trigger: Option<std::time::Instant>,
) -> Result<PlayingFile, PlayError> {
    let Prepared {
        format,
        source,
        feed,
    } = prepared;
    if format != engine.format() {
        feed.cancel();
        return Err(PlayError::FormatChanged);
    }
    let id = engine.play(
        source,
        PlayOptions {
            gain,
            start_frame,
            trigger,
        },
    )?;
    Ok(PlayingFile { id, feed })
}
