//! Decoding audio files to interleaved f32 at their native rate and channel count.
//!
//! Every container and codec symphonia 0.6 supports with its "all" features (WAV,
//! AIFF, CAF, FLAC, MP1/2/3, AAC in ADTS or MP4, ALAC, Vorbis, ADPCM, PCM in Matroska
//! and MP4), plus Opus in any of those containers through libopus. Bad packets are
//! skipped and counted; a reset request recreates the decoder; an end-of-file inside a
//! packet ends the stream. Output channels are in WAVE order.
//!
//! Files are untrusted: this module must never panic or hang on any input. Every
//! symphonia call runs inside [`catch_decoder_panic`]; files, channel counts and rates
//! are capped (see [`guard`](super::guard)); a stream that keeps failing is abandoned
//! after [`MAX_CONSECUTIVE_ERRORS`]; header sizes are never trusted for allocation.
//! Never used on the audio callback.
//!
//! Files, one job each:
//! - this one: [`Decoder`] (opening a file and the packet loop: skips, resets, encoder
//!   delay and padding, the end-of-stream check), [`SourceInfo`], [`Decoded`] and
//!   [`decode_file`];
//! - `track`: choosing the audio track and building its decoder (libopus or symphonia);
//! - `packet`: decoding one packet into interleaved f32;
//! - `errors`: mapping symphonia errors and format problems to [`MediaError`]s;
//! - `names`: codec and container names;
//! - `riff`: the RIFF/WAVE header pre-check;
//! - `mp4`: the MP4 edit list (priming and padding), which symphonia does not apply.

use std::fs::File;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::well_known::{CODEC_ID_MP3, CODEC_ID_OPUS, CODEC_ID_VORBIS};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use super::convert::Converter;
use super::error::MediaError;
use super::guard::{
    MAX_CONSECUTIVE_ERRORS, MAX_DECODED_SAMPLES, MAX_FILE_BYTES, catch_decoder_panic, check_format,
};
use super::opus_codec::OPUS_RATE;
use crate::domain::AudioFormat;

mod errors;
mod mp4;
mod names;
mod packet;
mod riff;
mod track;

use errors::{format_error, open_error};
use names::{codec_name, container_name};
use riff::check_riff;
use track::{Codec, declared_format, is_lossless, make_codec, select_track};

/// Packets in a row that may decode to nothing (without an error) before the stream is
/// declared stuck. Real streams have a handful at most (decoder warm-up, trimmed priming).
const MAX_EMPTY_PACKETS: u32 = 10_000;

/// What a file is, as found when opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInfo {
    /// Native rate and channels of the decoded audio.
    pub format: AudioFormat,
    /// Total frames, if the container says (after encoder delay and padding are removed).
    pub frames: Option<u64>,
    /// The codec, e.g. "flac", "pcm_s16le", "vorbis", "mp3", "aac", "opus".
    pub codec: String,
    /// The container, e.g. "wav", "flac", "ogg", "mp3", "mp4".
    pub container: String,
}

/// A whole file decoded into memory.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// What the file is.
    pub info: SourceInfo,
    /// The format of `samples` (the target, if one was given; else native).
    pub format: AudioFormat,
    /// Interleaved samples.
    pub samples: Vec<f32>,
}

impl Decoded {
    /// Frames in `samples`.
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.format.channels.max(1))
    }
}

/// What a decoder can read from: a file, or any seekable source of known length.
pub trait ReadSeek: std::io::Read + std::io::Seek + Send + Sync + 'static {}

impl<T: std::io::Read + std::io::Seek + Send + Sync + 'static> ReadSeek for T {}

/// A source with its length, as symphonia reads it.
struct Source<R> {
    inner: R,
    len: u64,
    seekable: bool,
}

impl<R: ReadSeek> std::io::Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

impl<R: ReadSeek> std::io::Seek for Source<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl<R: ReadSeek> symphonia::core::io::MediaSource for Source<R> {
    fn is_seekable(&self) -> bool {
        self.seekable
    }

    fn byte_len(&self) -> Option<u64> {
        Some(self.len)
    }
}

/// A streaming decoder of one file.
pub struct Decoder {
    path: PathBuf,
    info: SourceInfo,
    reader: Box<dyn FormatReader>,
    track_id: u32,
    codec: Codec,
    /// Whether `info.frames` is exact, so that a short stream means a cut file.
    exact_count: bool,
    /// Frames the stream may fall short of an exact count without being called cut:
    /// 0 for lossless codecs, about one packet for lossy ones.
    count_tolerance: u64,
    /// Audio decoded while opening, handed out by the first `next_block`.
    primed: Vec<f32>,
    /// Scratch for streams whose channel count differs from `info.format`.
    scratch: Vec<f32>,
    /// Whether `info.format` comes from decoded audio (or a fixed-format codec).
    format_fixed: bool,
    /// Encoder delay still to drop from the start (Opus pre-skip, MP4 edit list), in
    /// frames, when the demuxer does not trim it itself.
    lead_skip: u64,
    /// Valid frames in the stream when the container says (MP4 edit list); the
    /// encoder padding after them is dropped.
    valid_frames: Option<u64>,
    /// The next packet's timestamp, in frames, where timestamps count frames.
    next_pts: Option<i64>,
    /// Whether packet timestamps count frames (time base is 1 / rate).
    pts_in_frames: bool,
    /// Frames lost to gaps in the timestamps (bad frames the demuxer resynced past).
    gap_frames: u64,
    /// Packets that failed to decode.
    failed_packets: u64,
    frames_out: u64,
    consecutive_errors: u32,
    empty_packets: u32,
    skipped: u64,
    ended: bool,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("path", &self.path)
            .field("info", &self.info)
            .field("frames_out", &self.frames_out)
            .field("skipped", &self.skipped)
            .finish()
    }
}

/// What the caller of one decode step must do next.
enum Step {
    /// Frames were appended.
    Audio(usize),
    /// A packet produced nothing (or belonged to another track); go on.
    Nothing,
    /// A packet failed to decode and was skipped.
    Skipped,
    /// The stream ended.
    End,
}

impl Decoder {
    /// Opens `path`, identifies the container and codec, and decodes up to the first
    /// audio so that a file without any decodable audio fails here, not later.
    pub fn open(path: &Path) -> Result<Decoder, MediaError> {
        let meta = std::fs::metadata(path).map_err(|e| MediaError::from_io(path, e))?;
        let owned = || path.to_path_buf();
        if meta.is_dir() {
            return Err(MediaError::IsDirectory { path: owned() });
        }
        if !meta.is_file() {
            // FIFOs and devices could block forever or never end.
            return Err(MediaError::NotRegularFile { path: owned() });
        }
        let size = meta.len();
        if size == 0 {
            return Err(MediaError::Empty { path: owned() });
        }
        if size > MAX_FILE_BYTES {
            return Err(MediaError::TooLarge {
                path: owned(),
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        let file = File::open(path).map_err(|e| MediaError::from_io(path, e))?;
        Decoder::open_source(file, size, path, true)
    }

    /// Opens `size` bytes of a sound from any seekable source — a file that is still
    /// arriving, whose reads wait for the bytes. `path` names it in errors and gives
    /// the extension hint. With `seekable` false the demuxer reads it front to back
    /// only (it does not look for tags at the end, which would wait for the whole
    /// file); containers that need their end first (MP4 with the index last) need it.
    pub fn open_source<R: ReadSeek>(
        mut file: R,
        size: u64,
        path: &Path,
        seekable: bool,
    ) -> Result<Decoder, MediaError> {
        let owned = || path.to_path_buf();
        check_riff(&mut file, size, path)?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::from_io(path, e))?;
        let edit = mp4::audio_edit(&mut file, size);
        file.seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::from_io(path, e))?;

        let source = Source {
            inner: file,
            len: size,
            seekable,
        };
        let mss = MediaSourceStream::new(Box::new(source), MediaSourceStreamOptions::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let probed = catch_decoder_panic(|| {
            symphonia::default::get_probe().probe(
                &hint,
                mss,
                FormatOptions::default(),
                MetadataOptions::default(),
            )
        });
        let reader = match probed {
            Err(()) => return Err(MediaError::DecoderCrashed { path: owned() }),
            Ok(Err(e)) => return Err(open_error(path, e)),
            Ok(Ok(r)) => r,
        };
        let container = container_name(reader.as_ref());
        let track = select_track(reader.as_ref(), path)?;
        let codec_id = track.params.codec;
        let codec = make_codec(&track.params, path, &container)?;
        let declared = declared_format(&track.params, &codec);
        if let Some(f) = declared {
            check_format(f).map_err(|p| format_error(path, p))?;
        }
        let mut frames = track.frames;
        let mut lead_skip = 0;
        let mut valid_frames = None;
        let edit = edit.filter(|e| e.track_id == track.id);
        if let Codec::Opus(d) = &codec {
            // Symphonia's Ogg demuxer reports the pre-skip as the track's delay but does
            // not trim it (its frame count includes it); other containers do neither.
            lead_skip = u64::from(d.pre_skip());
            frames = frames.map(|n| n.saturating_sub(lead_skip));
            valid_frames = edit.and_then(|e| e.valid_frames(OPUS_RATE));
        } else if let (Some(edit), Some(rate), None) = (edit, track.params.sample_rate, track.delay)
        {
            // MP4 (AAC, ALAC): symphonia ignores the edit list; apply its priming skip
            // and valid duration, as ffmpeg and Apple players do.
            lead_skip = edit.skip_frames(rate);
            valid_frames = edit.valid_frames(rate);
        }
        if valid_frames.is_some() {
            frames = valid_frames;
        }
        // Counts that are exact: lossless headers, MP3 with a LAME header, Ogg granules.
        let exact_count = is_lossless(codec_id)
            || (codec_id == CODEC_ID_MP3 && track.delay.is_some())
            || (container == "ogg" && matches!(codec_id, CODEC_ID_VORBIS | CODEC_ID_OPUS));
        let mut dec = Decoder {
            path: owned(),
            info: SourceInfo {
                format: declared.unwrap_or(AudioFormat::new(0, 0)),
                frames,
                codec: codec_name(codec_id),
                container,
            },
            reader,
            track_id: track.id,
            format_fixed: matches!(codec, Codec::Opus(_)),
            codec,
            exact_count,
            count_tolerance: if is_lossless(codec_id) { 0 } else { 2048 },
            primed: Vec::new(),
            scratch: Vec::new(),
            lead_skip,
            valid_frames,
            next_pts: Some(track.start_ts),
            pts_in_frames: track.pts_in_frames && is_lossless(codec_id),
            gap_frames: 0,
            failed_packets: 0,
            frames_out: 0,
            consecutive_errors: 0,
            empty_packets: 0,
            skipped: 0,
            ended: false,
        };
        dec.prime()?;
        Ok(dec)
    }

    /// What the file is.
    pub fn info(&self) -> &SourceInfo {
        &self.info
    }

    /// The file being decoded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bad packets skipped so far: packets that failed to decode, plus stretches the
    /// demuxer skipped itself (seen as gaps in the timestamps).
    pub fn skipped_packets(&self) -> u64 {
        self.skipped
    }

    /// Frames decoded so far (including any decoded ahead while opening).
    pub fn frames_decoded(&self) -> u64 {
        self.frames_out
    }

    /// Appends the next decoded block as interleaved f32 (native rate and channels) to
    /// `out`; returns the frames appended. `Ok(0)` means the end of the stream.
    ///
    /// Bad packets are skipped (see [`skipped_packets`](Self::skipped_packets)). A stream
    /// that ends short of the exact frame count its header promises (lossless codecs,
    /// MP3 with a LAME header, Ogg) ends with [`MediaError::Truncated`] instead of `Ok(0)`.
    /// After an error the stream is over and further calls return `Ok(0)`.
    pub fn next_block(&mut self, out: &mut Vec<f32>) -> Result<usize, MediaError> {
        if !self.primed.is_empty() {
            out.extend_from_slice(&self.primed);
            let frames = self.primed.len() / self.channels();
            self.primed.clear();
            return Ok(frames);
        }
        match self.decode_until_audio(out) {
            Ok(frames) => {
                if frames == 0 && !self.ended {
                    self.ended = true;
                    self.check_complete()?;
                }
                Ok(frames)
            }
            Err(e) => {
                self.ended = true;
                Err(e)
            }
        }
    }

    fn channels(&self) -> usize {
        usize::from(self.info.format.channels.max(1))
    }

    /// Decodes the first audio into `primed` and fixes `info.format` from it.
    fn prime(&mut self) -> Result<(), MediaError> {
        let mut primed = Vec::new();
        let result = self.decode_until_audio(&mut primed);
        self.primed = primed;
        let path = || self.path.clone();
        match result {
            Ok(0) if self.failed_packets > 0 => Err(MediaError::NotAudio { path: path() }),
            Ok(0) => Err(MediaError::NoAudio {
                path: path(),
                detail: Some("0 frames".into()),
            }),
            Ok(_) => Ok(()),
            Err(MediaError::Corrupt { .. }) => Err(MediaError::NotAudio { path: path() }),
            Err(e) => Err(e),
        }
    }

    /// Decodes packets until one yields audio (appended to `out`) or the stream ends
    /// (0). Drops the encoder delay and padding the container asks for.
    fn decode_until_audio(&mut self, out: &mut Vec<f32>) -> Result<usize, MediaError> {
        loop {
            if self.ended || self.valid_frames.is_some_and(|v| self.frames_out >= v) {
                return Ok(0);
            }
            let start = out.len();
            match self.step(out)? {
                Step::Audio(mut n) => {
                    self.consecutive_errors = 0;
                    self.empty_packets = 0;
                    let c = self.channels();
                    if self.lead_skip > 0 {
                        let k = (self.lead_skip as usize).min(n);
                        out.drain(start..start + k * c);
                        self.lead_skip -= k as u64;
                        n -= k;
                    }
                    if let Some(v) = self.valid_frames {
                        let room = v.saturating_sub(self.frames_out) as usize;
                        if n > room {
                            out.truncate(start + room * c);
                            n = room;
                        }
                    }
                    self.frames_out += n as u64;
                    if n > 0 {
                        return Ok(n);
                    }
                }
                Step::End => return Ok(0),
                Step::Nothing => {
                    self.empty_packets += 1;
                    if self.empty_packets > MAX_EMPTY_PACKETS {
                        return Err(MediaError::Corrupt {
                            path: self.path.clone(),
                            errors: self.empty_packets,
                        });
                    }
                }
                Step::Skipped => {
                    self.skipped += 1;
                    self.failed_packets += 1;
                    self.consecutive_errors += 1;
                    if self.consecutive_errors >= MAX_CONSECUTIVE_ERRORS {
                        return Err(MediaError::Corrupt {
                            path: self.path.clone(),
                            errors: self.consecutive_errors,
                        });
                    }
                }
            }
        }
    }

    /// Reads and decodes one packet.
    fn step(&mut self, out: &mut Vec<f32>) -> Result<Step, MediaError> {
        let path = &self.path;
        let packet = match catch_decoder_panic(|| self.reader.next_packet()) {
            Err(()) => return Err(MediaError::DecoderCrashed { path: path.clone() }),
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return Ok(Step::End),
            // The file ends inside a packet or page: the stream ends there.
            Ok(Err(SymError::IoError(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Ok(Step::End);
            }
            Ok(Err(SymError::IoError(e))) => {
                return Err(MediaError::Io {
                    path: path.clone(),
                    source: e,
                });
            }
            Ok(Err(SymError::ResetRequired)) => {
                self.reselect_track()?;
                return Ok(Step::Skipped);
            }
            // A damaged container page or frame header: skip, as for a bad packet.
            Ok(Err(SymError::DecodeError(_))) => return Ok(Step::Skipped),
            Ok(Err(e)) => return Err(open_error(path, e)),
        };
        if packet.track_id != self.track_id {
            return Ok(Step::Nothing);
        }
        if self.pts_in_frames {
            // A jump forward in the timestamps is a stretch the demuxer skipped (it
            // resyncs past bad frames silently): count it as skipped, for the record and
            // so that the end-of-stream check does not call the file truncated.
            let pts = packet.pts.get();
            if let Some(next) = self.next_pts
                && pts > next
            {
                self.gap_frames += (pts - next) as u64;
                self.skipped += 1;
            }
            self.next_pts = Some(pts.saturating_add(packet.dur.get().min(i64::MAX as u64) as i64));
        }
        self.decode_packet(&packet, out)
    }

    /// After a reset request (a chained stream), picks the audio track again and
    /// rebuilds the decoder. The rate must not change; channels are mapped.
    fn reselect_track(&mut self) -> Result<(), MediaError> {
        let track = select_track(self.reader.as_ref(), &self.path)?;
        let codec = make_codec(&track.params, &self.path, &self.info.container)?;
        if let Some(f) = declared_format(&track.params, &codec)
            && f.sample_rate != self.info.format.sample_rate
        {
            return Err(MediaError::Unsupported {
                path: self.path.clone(),
                what: format!(
                    "sample rate changes from {} to {} Hz",
                    self.info.format.sample_rate, f.sample_rate
                ),
            });
        }
        self.track_id = track.id;
        self.codec = codec;
        self.next_pts = None;
        Ok(())
    }

    /// At the end of a stream whose frame count is exact, a shortfall that skipped
    /// stretches do not explain means the file was cut short.
    fn check_complete(&self) -> Result<(), MediaError> {
        match self.info.frames {
            Some(n)
                if self.exact_count
                    && self.frames_out + self.gap_frames + self.count_tolerance < n
                    && !self.lost_packets() =>
            {
                Err(MediaError::Truncated {
                    path: self.path.clone(),
                    detail: Some(format!(
                        "stream ends after {} of {} frames",
                        self.frames_out, n
                    )),
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether packets failed to decode, which makes the frame count unreliable.
    fn lost_packets(&self) -> bool {
        self.failed_packets > 0
    }
}

/// Decodes the whole file at `path`, converting to `target` (rate and channels) when
/// given. The decoded length is capped at [`MAX_DECODED_SAMPLES`].
pub fn decode_file(path: &Path, target: Option<AudioFormat>) -> Result<Decoded, MediaError> {
    let mut dec = Decoder::open(path)?;
    let info = dec.info().clone();
    let ch = usize::from(info.format.channels);
    // Header counts are hints only: never reserve more than a sane amount up front.
    let hint = info
        .frames
        .map_or(0, |f| f.saturating_mul(ch as u64))
        .min(1 << 24) as usize;
    let mut samples = Vec::with_capacity(hint + 16_384);
    while dec.next_block(&mut samples)? > 0 {
        if samples.len() > MAX_DECODED_SAMPLES {
            return Err(MediaError::DecodedTooLarge {
                path: path.to_path_buf(),
                limit: MAX_DECODED_SAMPLES as u64 * 4,
            });
        }
    }
    match target {
        Some(to) if to != info.format => {
            let mut conv = Converter::new(info.format, to)?;
            let frames = samples.len() / ch;
            let mut out = Vec::with_capacity(
                conv.output_frames_for(frames as u64) as usize * usize::from(to.channels),
            );
            conv.process(&samples, &mut out);
            drop(samples);
            conv.finish(&mut out);
            Ok(Decoded {
                info,
                format: to,
                samples: out,
            })
        }
        _ => Ok(Decoded {
            format: info.format,
            info,
            samples,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_is_send() {
        fn send<T: Send>() {}
        send::<Decoder>();
    }
}
