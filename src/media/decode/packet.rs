//! Decoding one packet of the chosen track and appending its audio as interleaved f32
//! in the stream's channel count (mapping channels when a packet has another count).
//! The first decoded audio fixes the stream's format.
//!
//! One packet at a time: never reads the next packet, never counts skips or decides
//! that the stream is over (the decode loop in the parent module does). Never panics on
//! bad data (symphonia runs inside [`catch_decoder_panic`]) and never lets the sample
//! rate change mid-stream.

use symphonia::core::audio::GenericAudioBufferRef;
use symphonia::core::errors::Error as SymError;
use symphonia::core::packet::Packet;

use super::errors::{format_error, strip_prefix};
use super::track::Codec;
use super::{Decoder, Step};
use crate::domain::AudioFormat;
use crate::media::channels::map_channels;
use crate::media::error::MediaError;
use crate::media::guard::{catch_decoder_panic, check_format};

impl Decoder {
    /// Decodes one packet of our track and appends its audio.
    pub(super) fn decode_packet(
        &mut self,
        packet: &Packet,
        out: &mut Vec<f32>,
    ) -> Result<Step, MediaError> {
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
