//! Choosing the audio track and building its decoder: what the track declares, libopus
//! for Opus or a symphonia decoder for the rest, the format the decoder will produce,
//! and whether the codec is lossless (which makes a header's frame count exact).
//!
//! Runs when opening and after a reset request, never per packet. Never trusts the
//! header: declared channels and rates are checked against the limits in
//! [`guard`](crate::media::guard) before a decoder is built, and every symphonia call
//! runs inside [`catch_decoder_panic`]. Never reads packets.

use std::path::Path;

use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::codecs::audio::{
    AudioCodecId, AudioCodecParameters, AudioDecoder, AudioDecoderOptions, CODEC_ID_NULL_AUDIO,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatReader, TrackType};

use super::errors::{format_error, open_error};
use super::names::codec_name;
use crate::domain::AudioFormat;
use crate::media::error::MediaError;
use crate::media::guard::{FormatProblem, MAX_CHANNELS, catch_decoder_panic, check_format};
use crate::media::opus_codec::{OPUS_RATE, OpusDecoder, OpusHead};

/// The codec side of a stream.
pub(super) enum Codec {
    Symphonia(Box<dyn AudioDecoder>),
    Opus(OpusDecoder),
}

/// What the chosen track says about itself.
pub(super) struct TrackFacts {
    pub(super) id: u32,
    pub(super) params: AudioCodecParameters,
    pub(super) frames: Option<u64>,
    pub(super) delay: Option<u32>,
    pub(super) start_ts: i64,
    pub(super) pts_in_frames: bool,
}

/// Picks the default audio track.
pub(super) fn select_track(
    reader: &dyn FormatReader,
    path: &Path,
) -> Result<TrackFacts, MediaError> {
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
pub(super) fn make_codec(
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
pub(super) fn declared_format(params: &AudioCodecParameters, codec: &Codec) -> Option<AudioFormat> {
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

/// Whether the codec is lossless.
pub(super) fn is_lossless(id: AudioCodecId) -> bool {
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
