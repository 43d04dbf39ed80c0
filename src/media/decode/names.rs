//! Names for codecs and containers, as shown in [`SourceInfo`](super::SourceInfo) and in
//! error messages: symphonia's ids and WAV format tags to short, ffmpeg-style names.
//!
//! Pure lookups: never reads a file, never fails (an unknown id gets a generic name),
//! and never decides whether something is supported.

use symphonia::core::codecs::audio::AudioCodecId;
use symphonia::core::codecs::audio::well_known::*;
use symphonia::core::formats::FormatReader;
use symphonia::core::formats::well_known::*;

/// A WAV format tag as a codec name.
pub(super) fn wav_codec_name(tag: u16) -> String {
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

/// A container's short name.
pub(super) fn container_name(reader: &dyn FormatReader) -> String {
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
pub(super) fn codec_name(id: AudioCodecId) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_tags_have_names() {
        assert_eq!(wav_codec_name(0x45), "g726");
        assert_eq!(wav_codec_name(0x1234), "wav format tag 0x1234");
    }
}
