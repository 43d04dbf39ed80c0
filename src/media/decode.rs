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

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{
    AudioCodecId, AudioCodecParameters, AudioDecoder, AudioDecoderOptions, CODEC_ID_NULL_AUDIO,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::well_known::*;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::packet::Packet;

use super::channels::map_channels;
use super::convert::Converter;
use super::error::{Bytes, MediaError};
use super::guard::{
    FormatProblem, MAX_CHANNELS, MAX_CONSECUTIVE_ERRORS, MAX_DECODED_SAMPLES, MAX_FILE_BYTES,
    catch_decoder_panic, check_format,
};
use super::opus_codec::{OPUS_RATE, OpusDecoder, OpusHead};
use crate::domain::AudioFormat;

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

/// The codec side of a stream.
enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(OpusDecoder),
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

/// What the chosen track says about itself.
struct TrackFacts {
    id: u32,
    params: AudioCodecParameters,
    frames: Option<u64>,
    delay: Option<u32>,
    start_ts: i64,
    pts_in_frames: bool,
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
        let mut file = File::open(path).map_err(|e| MediaError::from_io(path, e))?;
        check_riff(&mut file, size, path)?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::from_io(path, e))?;
        let edit = mp4::audio_edit(&mut file, size);
        file.seek(SeekFrom::Start(0))
            .map_err(|e| MediaError::from_io(path, e))?;

        let mss = MediaSourceStream::new(Box::new(file), MediaSourceStreamOptions::default());
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

    /// Decodes one packet of our track and appends its audio.
    fn decode_packet(&mut self, packet: &Packet, out: &mut Vec<f32>) -> Result<Step, MediaError> {
        let Decoder {
            path,
            info,
            codec,
            scratch,
            format_fixed,
            lead_skip,
            ..
        } = self;
        match codec {
            Codec::Symphonia(dec) => {
                let decoded =
                    catch_decoder_panic(|| -> Result<Result<usize, MediaError>, SymError> {
                        let buf = dec.decode(packet)?;
                        if buf.frames() == 0 {
                            return Ok(Ok(0));
                        }
                        let spec = buf.spec();
                        let (rate, ch) = (spec.rate(), spec.channels().count());
                        let found = AudioFormat::new(rate, u16::try_from(ch).unwrap_or(u16::MAX));
                        if let Err(p) = check_format(found) {
                            return Ok(Err(format_error(path, p)));
                        }
                        // The first audio fixes the stream's format; the rate may not change after.
                        if !*format_fixed {
                            info.format = found;
                            *format_fixed = true;
                        } else if rate != info.format.sample_rate {
                            return Ok(Err(MediaError::Unsupported {
                                path: path.clone(),
                                what: format!(
                                    "sample rate changes from {} to {rate} Hz",
                                    info.format.sample_rate
                                ),
                            }));
                        }
                        Ok(Ok(append(
                            &buf,
                            ch,
                            usize::from(info.format.channels),
                            scratch,
                            out,
                        )))
                    });
                match decoded {
                    Err(()) => Err(MediaError::DecoderCrashed { path: path.clone() }),
                    Ok(Ok(Ok(0))) => Ok(Step::Nothing),
                    Ok(Ok(Ok(n))) => Ok(Step::Audio(n)),
                    Ok(Ok(Err(e))) => Err(e),
                    Ok(Err(SymError::ResetRequired)) => {
                        dec.reset();
                        Ok(Step::Skipped)
                    }
                    Ok(Err(SymError::Unsupported(what))) => Err(MediaError::Unsupported {
                        path: path.clone(),
                        what: strip_prefix(what),
                    }),
                    // Decode, I/O (a packet cut short) and limit errors: skip the packet.
                    Ok(Err(_)) => Ok(Step::Skipped),
                }
            }
            Codec::Opus(dec) => {
                let ch = dec.channels();
                let Ok(samples) = dec.decode(&packet.data) else {
                    return Ok(Step::Skipped);
                };
                let frames = samples.len() / ch;
                let trim_start = packet.trim_start.get();
                // If a demuxer trims the pre-skip itself, do not trim it twice.
                *lead_skip = lead_skip.saturating_sub(trim_start);
                let start = (trim_start as usize).min(frames);
                let end = frames
                    .saturating_sub(packet.trim_end.get() as usize)
                    .max(start);
                if end == start {
                    return Ok(Step::Nothing);
                }
                let kept = &samples[start * ch..end * ch];
                let want = usize::from(info.format.channels);
                if ch == want {
                    out.extend_from_slice(kept);
                } else {
                    map_channels(kept, ch as u16, want as u16, out);
                }
                Ok(Step::Audio(end - start))
            }
        }
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

/// Appends a decoded buffer to `out` as interleaved f32 with `want` channels.
fn append(
    buf: &GenericAudioBufferRef<'_>,
    ch: usize,
    want: usize,
    scratch: &mut Vec<f32>,
    out: &mut Vec<f32>,
) -> usize {
    let frames = buf.frames();
    if ch == want {
        let start = out.len();
        out.resize(start + frames * ch, 0.0);
        buf.copy_to_slice_interleaved::<f32, _>(&mut out[start..]);
    } else {
        scratch.clear();
        scratch.resize(frames * ch, 0.0);
        buf.copy_to_slice_interleaved::<f32, _>(&mut scratch[..]);
        // Both counts are within MAX_CHANNELS here (checked when the format was fixed).
        map_channels(
            scratch,
            ch.min(usize::from(u16::MAX)) as u16,
            want as u16,
            out,
        );
    }
    frames
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

/// Picks the default audio track.
fn select_track(reader: &dyn FormatReader, path: &Path) -> Result<TrackFacts, MediaError> {
    let track = reader
        .default_track(TrackType::Audio)
        .or_else(|| reader.first_track(TrackType::Audio));
    let no_audio = || MediaError::NoAudio {
        path: path.to_path_buf(),
        detail: Some("no audio track".into()),
    };
    let track = track.ok_or_else(no_audio)?;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(no_audio)?;
    if params.codec == CODEC_ID_NULL_AUDIO {
        return Err(MediaError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: "unknown".into(),
        });
    }
    let pts_in_frames = match (track.time_base, params.sample_rate) {
        (Some(tb), Some(rate)) => tb.numer.get() == 1 && tb.denom.get() == rate,
        _ => false,
    };
    Ok(TrackFacts {
        id: track.id,
        params: params.clone(),
        frames: track.num_frames,
        delay: track.delay,
        start_ts: track.start_ts.get(),
        pts_in_frames,
    })
}

/// Builds the decoder for `params`: libopus for Opus, symphonia for the rest.
fn make_codec(
    params: &AudioCodecParameters,
    path: &Path,
    container: &str,
) -> Result<Codec, MediaError> {
    if params.codec == CODEC_ID_OPUS {
        let head = match params.extra_data.as_deref() {
            Some(b) if container == "mp4" => OpusHead::parse_mp4(b),
            Some(b) => OpusHead::parse(b),
            None => default_opus_head(params),
        };
        let head = head.map_err(|what| MediaError::InvalidHeader {
            path: path.to_path_buf(),
            what,
        })?;
        if head.channels as u16 > MAX_CHANNELS {
            return Err(format_error(
                path,
                FormatProblem::Unsupported(format!(
                    "{} channels (limit {MAX_CHANNELS})",
                    head.channels
                )),
            ));
        }
        let dec = OpusDecoder::new(&head).map_err(|what| MediaError::InvalidHeader {
            path: path.to_path_buf(),
            what,
        })?;
        return Ok(Codec::Opus(dec));
    }
    if let Some(ch) = params.channels.as_ref().map(|c| c.count()) {
        check_format(AudioFormat::new(
            OPUS_RATE,
            u16::try_from(ch).unwrap_or(u16::MAX),
        ))
        .map_err(|p| format_error(path, p))?;
    }
    if let Some(rate) = params.sample_rate {
        check_format(AudioFormat::new(rate, 1)).map_err(|p| format_error(path, p))?;
    }
    let made = catch_decoder_panic(|| {
        symphonia::default::get_codecs().make_audio_decoder(params, &AudioDecoderOptions::default())
    });
    match made {
        Err(()) => Err(MediaError::DecoderCrashed {
            path: path.to_path_buf(),
        }),
        Ok(Ok(d)) => Ok(Codec::Symphonia(d)),
        Ok(Err(SymError::Unsupported(_))) => Err(MediaError::UnsupportedCodec {
            path: path.to_path_buf(),
            codec: codec_name(params.codec),
        }),
        Ok(Err(e)) => Err(open_error(path, e)),
    }
}

/// An OpusHead for containers that carry none (mono or stereo, no pre-skip).
fn default_opus_head(params: &AudioCodecParameters) -> Result<OpusHead, String> {
    let ch = params.channels.as_ref().map_or(2, |c| c.count());
    if !(1..=2).contains(&ch) {
        return Err(format!("{ch}-channel opus without an OpusHead"));
    }
    let ch = ch as u8;
    Ok(OpusHead {
        channels: ch,
        pre_skip: 0,
        input_rate: OPUS_RATE,
        gain_q8: 0,
        family: 0,
        streams: 1,
        coupled: ch - 1,
        mapping: (0..ch).collect(),
    })
}

/// The format the decoder will produce, if the parameters say.
fn declared_format(params: &AudioCodecParameters, codec: &Codec) -> Option<AudioFormat> {
    match codec {
        Codec::Opus(d) => Some(AudioFormat::new(OPUS_RATE, d.channels() as u16)),
        Codec::Symphonia(_) => {
            let rate = params.sample_rate?;
            let ch = params.channels.as_ref()?.count();
            Some(AudioFormat::new(
                rate,
                u16::try_from(ch).unwrap_or(u16::MAX),
            ))
        }
    }
}

fn format_error(path: &Path, p: FormatProblem) -> MediaError {
    let path = path.to_path_buf();
    match p {
        FormatProblem::Invalid(what) => MediaError::InvalidHeader { path, what },
        FormatProblem::Unsupported(what) => MediaError::Unsupported { path, what },
    }
}

/// Maps a symphonia error met while opening (or a fatal one while reading).
fn open_error(path: &Path, e: SymError) -> MediaError {
    let p = path.to_path_buf();
    match e {
        SymError::IoError(e) => MediaError::from_io(path, e),
        SymError::Unsupported(msg) if msg.contains("no suitable format reader") => {
            MediaError::NotAudio { path: p }
        }
        SymError::Unsupported(msg) => MediaError::Unsupported {
            path: p,
            what: strip_prefix(msg),
        },
        SymError::DecodeError(msg) => MediaError::InvalidHeader {
            path: p,
            what: strip_prefix(msg),
        },
        SymError::LimitError(msg) => MediaError::Unsupported {
            path: p,
            what: format!("limit reached: {msg}"),
        },
        other => MediaError::InvalidHeader {
            path: p,
            what: other.to_string(),
        },
    }
}

/// "wav: malformed fmt chunk" -> "malformed fmt chunk (wav)".
fn strip_prefix(msg: &str) -> String {
    match msg.split_once(": ") {
        Some((module, rest)) if !module.contains(' ') || module.ends_with(')') => {
            format!("{rest} ({module})")
        }
        _ => msg.to_owned(),
    }
}

/// Checks a RIFF/WAVE header before symphonia sees it, for clearer errors: channel
/// count, rate, codec tag, and a data chunk longer than the file. Not a WAV: no-op.
fn check_riff(file: &mut File, size: u64, path: &Path) -> Result<(), MediaError> {
    let io = |e| MediaError::from_io(path, e);
    let mut head = [0u8; 12];
    if size < 12 {
        return Ok(());
    }
    file.read_exact(&mut head).map_err(io)?;
    if &head[..4] == b"RF64" && &head[8..12] == b"WAVE" {
        return Err(MediaError::Unsupported {
            path: path.to_path_buf(),
            what: "rf64 wav".into(),
        });
    }
    if &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Ok(());
    }
    let mut pos = 12u64;
    // A bounded walk: a crafted file cannot make this loop long.
    for _ in 0..256 {
        if pos + 8 > size {
            return Ok(());
        }
        file.seek(SeekFrom::Start(pos)).map_err(io)?;
        let mut ch = [0u8; 8];
        file.read_exact(&mut ch).map_err(io)?;
        let len = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]);
        match &ch[..4] {
            b"fmt " => {
                let mut f = [0u8; 40];
                let n = (len as usize).min(40).min((size - pos - 8) as usize);
                if len < 16 {
                    return Err(MediaError::InvalidHeader {
                        path: path.to_path_buf(),
                        what: "short fmt chunk".into(),
                    });
                }
                if n < 16 {
                    return Err(MediaError::Truncated {
                        path: path.to_path_buf(),
                        detail: None,
                    });
                }
                file.read_exact(&mut f[..n]).map_err(io)?;
                let mut tag = u16::from_le_bytes([f[0], f[1]]);
                let channels = u16::from_le_bytes([f[2], f[3]]);
                let rate = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                if tag == 0xfffe && n >= 26 {
                    tag = u16::from_le_bytes([f[24], f[25]]);
                }
                check_format(AudioFormat::new(rate.max(1), channels))
                    .map_err(|p| format_error(path, p))?;
                if rate == 0 {
                    return Err(MediaError::InvalidHeader {
                        path: path.to_path_buf(),
                        what: "sample rate 0 Hz".into(),
                    });
                }
                if !matches!(
                    tag,
                    0x0001 | 0x0002 | 0x0003 | 0x0006 | 0x0007 | 0x0011 | 0xfffe
                ) {
                    return Err(MediaError::UnsupportedCodec {
                        path: path.to_path_buf(),
                        codec: wav_codec_name(tag),
                    });
                }
            }
            b"data" => {
                let start = pos + 8;
                let have = size - start;
                // 0xffffffff is the "unknown length, read to the end" marker of streamed WAVs.
                if len != u32::MAX && u64::from(len) > have {
                    return Err(MediaError::Truncated {
                        path: path.to_path_buf(),
                        detail: Some(format!(
                            "header claims {} of audio, file has {}",
                            Bytes(len.into()),
                            Bytes(have)
                        )),
                    });
                }
                return Ok(());
            }
            _ => {}
        }
        pos += 8 + u64::from(len) + u64::from(len & 1);
    }
    Ok(())
}

/// A WAV format tag as a codec name.
fn wav_codec_name(tag: u16) -> String {
    let name = match tag {
        0x0022 => "truespeech",
        0x0031 => "gsm_ms",
        0x0040 => "g721",
        0x0045 | 0x0064 => "g726",
        0x0050 => "mp2",
        0x0055 => "mp3",
        0x0092 | 0x2000 => "ac3",
        0x00ff | 0x1610 => "aac",
        0x0160..=0x0163 => "wma",
        0x2001 => "dts",
        0x674f..=0x6771 => "vorbis",
        0x704f | 0x7075 => "opus",
        0xf1ac => "flac",
        _ => return format!("wav format tag 0x{tag:04x}"),
    };
    name.to_owned()
}

fn is_lossless(id: AudioCodecId) -> bool {
    (CODEC_ID_PCM_S32LE..=CODEC_ID_PCM_F64BE_PLANAR).contains(&id)
        || matches!(
            id,
            CODEC_ID_FLAC
                | CODEC_ID_ALAC
                | CODEC_ID_WAVPACK
                | CODEC_ID_TTA
                | CODEC_ID_MONKEYS_AUDIO
        )
}

fn container_name(reader: &dyn FormatReader) -> String {
    let id = reader.format_info().format;
    let name = match id {
        FORMAT_ID_WAVE => "wav",
        FORMAT_ID_AIFF => "aiff",
        FORMAT_ID_CAF => "caf",
        FORMAT_ID_MP1 => "mp1",
        FORMAT_ID_MP2 => "mp2",
        FORMAT_ID_MP3 => "mp3",
        FORMAT_ID_ADTS => "adts",
        FORMAT_ID_OGG => "ogg",
        FORMAT_ID_FLAC => "flac",
        FORMAT_ID_ISOMP4 => "mp4",
        FORMAT_ID_MKV => "mkv",
        _ => reader.format_info().short_name,
    };
    name.to_owned()
}

/// A codec's short name, ffmpeg style where there is one.
fn codec_name(id: AudioCodecId) -> String {
    let name = match id {
        CODEC_ID_PCM_S32LE | CODEC_ID_PCM_S32LE_PLANAR => "pcm_s32le",
        CODEC_ID_PCM_S32BE | CODEC_ID_PCM_S32BE_PLANAR => "pcm_s32be",
        CODEC_ID_PCM_S24LE | CODEC_ID_PCM_S24LE_PLANAR => "pcm_s24le",
        CODEC_ID_PCM_S24BE | CODEC_ID_PCM_S24BE_PLANAR => "pcm_s24be",
        CODEC_ID_PCM_S16LE | CODEC_ID_PCM_S16LE_PLANAR => "pcm_s16le",
        CODEC_ID_PCM_S16BE | CODEC_ID_PCM_S16BE_PLANAR => "pcm_s16be",
        CODEC_ID_PCM_S8 | CODEC_ID_PCM_S8_PLANAR => "pcm_s8",
        CODEC_ID_PCM_U32LE | CODEC_ID_PCM_U32LE_PLANAR => "pcm_u32le",
        CODEC_ID_PCM_U32BE | CODEC_ID_PCM_U32BE_PLANAR => "pcm_u32be",
        CODEC_ID_PCM_U24LE | CODEC_ID_PCM_U24LE_PLANAR => "pcm_u24le",
        CODEC_ID_PCM_U24BE | CODEC_ID_PCM_U24BE_PLANAR => "pcm_u24be",
        CODEC_ID_PCM_U16LE | CODEC_ID_PCM_U16LE_PLANAR => "pcm_u16le",
        CODEC_ID_PCM_U16BE | CODEC_ID_PCM_U16BE_PLANAR => "pcm_u16be",
        CODEC_ID_PCM_U8 | CODEC_ID_PCM_U8_PLANAR => "pcm_u8",
        CODEC_ID_PCM_F32LE | CODEC_ID_PCM_F32LE_PLANAR => "pcm_f32le",
        CODEC_ID_PCM_F32BE | CODEC_ID_PCM_F32BE_PLANAR => "pcm_f32be",
        CODEC_ID_PCM_F64LE | CODEC_ID_PCM_F64LE_PLANAR => "pcm_f64le",
        CODEC_ID_PCM_F64BE | CODEC_ID_PCM_F64BE_PLANAR => "pcm_f64be",
        CODEC_ID_PCM_ALAW => "pcm_alaw",
        CODEC_ID_PCM_MULAW => "pcm_mulaw",
        CODEC_ID_ADPCM_G722 => "g722",
        CODEC_ID_ADPCM_G726 | CODEC_ID_ADPCM_G726LE => "g726",
        CODEC_ID_ADPCM_MS => "adpcm_ms",
        CODEC_ID_ADPCM_IMA_WAV => "adpcm_ima_wav",
        CODEC_ID_ADPCM_IMA_QT => "adpcm_ima_qt",
        CODEC_ID_VORBIS => "vorbis",
        CODEC_ID_OPUS => "opus",
        CODEC_ID_SPEEX => "speex",
        CODEC_ID_MUSEPACK => "musepack",
        CODEC_ID_MP1 => "mp1",
        CODEC_ID_MP2 => "mp2",
        CODEC_ID_MP3 => "mp3",
        CODEC_ID_AAC => "aac",
        CODEC_ID_AC3 => "ac3",
        CODEC_ID_EAC3 => "eac3",
        CODEC_ID_AC4 => "ac4",
        CODEC_ID_DCA => "dts",
        CODEC_ID_ATRAC1 | CODEC_ID_ATRAC3 | CODEC_ID_ATRAC3PLUS | CODEC_ID_ATRAC9 => "atrac",
        CODEC_ID_WMA => "wma",
        CODEC_ID_RA10 | CODEC_ID_RA20 => "realaudio",
        CODEC_ID_SIPR => "sipr",
        CODEC_ID_COOK => "cook",
        CODEC_ID_SBC => "sbc",
        CODEC_ID_APTX | CODEC_ID_APTX_HD => "aptx",
        CODEC_ID_LDAC => "ldac",
        CODEC_ID_BINK_AUDIO => "binkaudio",
        CODEC_ID_SMACKER_AUDIO => "smackaudio",
        CODEC_ID_FLAC => "flac",
        CODEC_ID_WAVPACK => "wavpack",
        CODEC_ID_MONKEYS_AUDIO => "ape",
        CODEC_ID_ALAC => "alac",
        CODEC_ID_TTA => "tta",
        CODEC_ID_RALF => "ralf",
        CODEC_ID_TRUEHD => "truehd",
        _ => {
            return match symphonia::default::get_codecs().get_audio_decoder(id) {
                Some(d) => d.codec.info.short_name.to_owned(),
                None => format!("codec {id}"),
            };
        }
    };
    name.to_owned()
}

/// The MP4 edit list of the audio track, which symphonia 0.6 parses but does not apply:
/// how many priming frames to skip and how long the valid audio is. A bounded walk over
/// the boxes, reading at most [`mp4::MAX_MOOV`] bytes; any oddity means "no edit".
mod mp4 {
    use std::fs::File;
    use std::io::{Read, Seek, SeekFrom};

    /// Largest `moov` box read into memory.
    pub const MAX_MOOV: u64 = 32 << 20;

    /// The first non-empty edit of an audio track.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Edit {
        /// The track (`tkhd` id, as symphonia numbers tracks).
        pub track_id: u32,
        /// Start of the presented media, in media time scale units.
        media_time: u64,
        media_scale: u32,
        /// Presented duration, in movie time scale units (0: unknown).
        duration: u64,
        movie_scale: u32,
    }

    impl Edit {
        /// Frames to skip at the start, at `rate`.
        pub fn skip_frames(&self, rate: u32) -> u64 {
            rescale(self.media_time, rate, self.media_scale)
        }

        /// Valid frames, at `rate`, if the edit says.
        pub fn valid_frames(&self, rate: u32) -> Option<u64> {
            (self.duration > 0).then(|| rescale(self.duration, rate, self.movie_scale))
        }
    }

    fn rescale(v: u64, to: u32, from: u32) -> u64 {
        let from = u128::from(from.max(1));
        ((u128::from(v) * u128::from(to) + from / 2) / from).min(u128::from(u64::MAX)) as u64
    }

    /// Finds the first audio track's edit in an MP4 file, if any.
    pub fn audio_edit(file: &mut File, size: u64) -> Option<Edit> {
        let mut head = [0u8; 8];
        file.seek(SeekFrom::Start(0)).ok()?;
        file.read_exact(&mut head).ok()?;
        if &head[4..8] != b"ftyp" {
            return None;
        }
        let mut pos = 0u64;
        for _ in 0..64 {
            let (kind, start, end) = box_at(file, pos, size)?;
            if &kind == b"moov" {
                let len = end - start;
                if len > MAX_MOOV {
                    return None;
                }
                let mut moov = vec![0u8; len as usize];
                file.seek(SeekFrom::Start(start)).ok()?;
                file.read_exact(&mut moov).ok()?;
                return parse_moov(&moov);
            }
            pos = end;
        }
        None
    }

    /// The box at `pos`: its type and payload range.
    fn box_at(file: &mut File, pos: u64, size: u64) -> Option<([u8; 4], u64, u64)> {
        if pos + 8 > size {
            return None;
        }
        let mut h = [0u8; 16];
        file.seek(SeekFrom::Start(pos)).ok()?;
        file.read_exact(&mut h[..8]).ok()?;
        let len32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let kind = [h[4], h[5], h[6], h[7]];
        let (start, end) = match len32 {
            0 => (pos + 8, size),
            1 => {
                file.read_exact(&mut h[8..16]).ok()?;
                let len =
                    u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
                (pos + 16, pos.checked_add(len)?)
            }
            n => (pos + 8, pos + u64::from(n)),
        };
        (end >= start && end <= size).then_some((kind, start, end))
    }

    /// Child boxes of a payload held in memory: (type, payload).
    fn children(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
        std::iter::from_fn(move || {
            if b.len() < 8 {
                return None;
            }
            let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
            let kind = [b[4], b[5], b[6], b[7]];
            let (hdr, len) = match len {
                0 => (8, b.len()),
                1 if b.len() >= 16 => {
                    let l =
                        u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
                    (16, usize::try_from(l).ok()?)
                }
                n => (8, n),
            };
            if len < hdr || len > b.len() {
                return None;
            }
            let payload = &b[hdr..len];
            b = &b[len..];
            Some((kind, payload))
        })
    }

    fn find<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
        children(b).find(|(k, _)| k == kind).map(|(_, p)| p)
    }

    fn be32(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    fn be64(b: &[u8], at: usize) -> Option<u64> {
        Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
    }

    /// (time scale, version) of an `mvhd` or `mdhd` payload.
    fn time_scale(b: &[u8]) -> Option<u32> {
        match b.first()? {
            0 => be32(b, 12),
            1 => be32(b, 20),
            _ => None,
        }
    }

    fn parse_moov(moov: &[u8]) -> Option<Edit> {
        let movie_scale = time_scale(find(moov, b"mvhd")?)?;
        for (kind, trak) in children(moov) {
            if &kind != b"trak" {
                continue;
            }
            let mdia = find(trak, b"mdia")?;
            let hdlr = find(mdia, b"hdlr")?;
            if hdlr.get(8..12) != Some(b"soun".as_slice()) {
                continue;
            }
            let tkhd = find(trak, b"tkhd")?;
            let track_id = match tkhd.first()? {
                0 => be32(tkhd, 12)?,
                1 => be32(tkhd, 20)?,
                _ => return None,
            };
            let media_scale = time_scale(find(mdia, b"mdhd")?)?;
            let elst = find(find(trak, b"edts")?, b"elst")?;
            let version = *elst.first()?;
            let count = be32(elst, 4)? as usize;
            let size = if version == 1 { 20 } else { 12 };
            // Empty edits (media time -1) only delay the start; the first real edit counts.
            // More than one real edit is beyond what a player of sounds needs: ignore.
            let mut found = None;
            for i in 0..count.min(16) {
                let at = 8 + i * size;
                let (duration, media_time) = if version == 1 {
                    (be64(elst, at)?, be64(elst, at + 8)? as i64)
                } else {
                    (
                        u64::from(be32(elst, at)?),
                        i64::from(be32(elst, at + 4)? as i32),
                    )
                };
                if media_time < 0 {
                    continue;
                }
                if found.is_some() {
                    return None;
                }
                found = Some((duration, media_time as u64));
            }
            let (duration, media_time) = found?;
            return Some(Edit {
                track_id,
                media_time,
                media_scale,
                duration,
                movie_scale,
            });
        }
        None
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

    #[test]
    fn symphonia_messages_are_tidied() {
        assert_eq!(
            strip_prefix("wav: malformed fmt chunk"),
            "malformed fmt chunk (wav)"
        );
        assert_eq!(
            strip_prefix("core (probe): no suitable format reader found"),
            "no suitable format reader found (core (probe))"
        );
        assert_eq!(strip_prefix("plain message"), "plain message");
    }

    #[test]
    fn wav_tags_have_names() {
        assert_eq!(wav_codec_name(0x45), "g726");
        assert_eq!(wav_codec_name(0x1234), "wav format tag 0x1234");
    }
}
