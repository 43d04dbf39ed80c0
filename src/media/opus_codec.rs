//! Opus decoding (symphonia 0.6 demuxes Opus from Ogg, Matroska and MP4 but has no Opus
//! decoder): the `OpusHead` identification header and a libopus multistream decoder
//! (the `opus` crate) covering channel mapping families 0, 1, 2 and 255.
//!
//! Output is always 48 kHz, interleaved f32, channels in WAVE order (family 1's Vorbis
//! order is reordered) with the header's output gain applied. Pre-skip and end padding
//! are trimmed by the caller from the packets' trim fields. This file must never panic
//! on a malformed header or packet, and never allocate per packet once warmed up.

/// Opus always decodes at 48 kHz.
pub const OPUS_RATE: u32 = 48_000;

/// Longest Opus packet: 120 ms at 48 kHz.
const MAX_PACKET_FRAMES: usize = 5760;

/// The fields of an `OpusHead` packet (RFC 7845 section 5.1) that decoding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusHead {
    /// Output channels.
    pub channels: u8,
    /// Frames at 48 kHz to discard at the start.
    pub pre_skip: u16,
    /// Sample rate of the original input (informational only).
    pub input_rate: u32,
    /// Output gain in Q7.8 dB.
    pub gain_q8: i16,
    /// Channel mapping family.
    pub family: u8,
    /// Streams in each packet.
    pub streams: u8,
    /// Of which coupled (stereo) streams.
    pub coupled: u8,
    /// Output channel to decoded channel map.
    pub mapping: Vec<u8>,
}

impl OpusHead {
    /// Parses an `OpusHead` packet (as in Ogg and Matroska); the error says what is wrong.
    pub fn parse(b: &[u8]) -> Result<OpusHead, String> {
        Self::parse_with(b, false)
    }

    /// Parses the `OpusHead` symphonia builds from an MP4 `dOps` box: the magic
    /// prepended to the box as is, so the multi-byte fields are big-endian.
    pub fn parse_mp4(b: &[u8]) -> Result<OpusHead, String> {
        Self::parse_with(b, true)
    }

    fn parse_with(b: &[u8], big_endian: bool) -> Result<OpusHead, String> {
        let u16_at = |i: usize| {
            if big_endian {
                u16::from_be_bytes([b[i], b[i + 1]])
            } else {
                u16::from_le_bytes([b[i], b[i + 1]])
            }
        };
        if b.len() < 19 || &b[..8] != b"OpusHead" {
            return Err("missing OpusHead".into());
        }
        if b[8] >> 4 != 0 {
            return Err(format!("opus header version {}", b[8]));
        }
        let channels = b[9];
        if channels == 0 {
            return Err("0 channels".into());
        }
        let pre_skip = u16_at(10);
        let input_rate = (u32::from(u16_at(12)) << 16) | u32::from(u16_at(14));
        let input_rate = if big_endian {
            input_rate
        } else {
            input_rate.rotate_left(16)
        };
        let gain_q8 = u16_at(16) as i16;
        let family = b[18];
        let (streams, coupled, mapping) = if family == 0 {
            if channels > 2 {
                return Err(format!("{channels} channels with mapping family 0"));
            }
            (1, channels - 1, (0..channels).collect())
        } else {
            let n = usize::from(channels);
            if b.len() < 21 + n {
                return Err("short channel mapping table".into());
            }
            let (streams, coupled) = (b[19], b[20]);
            if streams == 0 || coupled > streams {
                return Err(format!("{streams} streams, {coupled} coupled"));
            }
            (streams, coupled, b[21..21 + n].to_vec())
        };
        if family == 1 && channels > 8 {
            return Err(format!("{channels} channels with mapping family 1"));
        }
        if family == 3 || (family > 3 && family != 255) {
            return Err(format!("opus channel mapping family {family}"));
        }
        Ok(OpusHead {
            channels,
            pre_skip,
            input_rate,
            gain_q8,
            family,
            streams,
            coupled,
            mapping,
        })
    }
}

/// A libopus decoder for one stream, with its output buffer.
pub struct OpusDecoder {
    dec: opus::MSDecoder,
    channels: usize,
    pre_skip: u16,
    /// Decoded output of the last packet, in libopus channel order.
    buf: Vec<f32>,
    /// Output in WAVE order (only used when `reorder` is set).
    ordered: Vec<f32>,
    /// For each decoded (Vorbis-order) channel, its WAVE-order position.
    reorder: Option<&'static [usize]>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("channels", &self.channels)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder for the stream described by `head`.
    pub fn new(head: &OpusHead) -> Result<OpusDecoder, String> {
        let mut dec = opus::MSDecoder::new(OPUS_RATE, head.streams, head.coupled, &head.mapping)
            .map_err(|e| format!("opus decoder: {e}"))?;
        if head.gain_q8 != 0 {
            dec.set_gain(i32::from(head.gain_q8))
                .map_err(|e| format!("opus gain: {e}"))?;
        }
        let channels = usize::from(head.channels);
        let reorder = if head.family == 1 {
            vorbis_to_wave(channels)
        } else {
            None
        };
        Ok(OpusDecoder {
            dec,
            channels,
            pre_skip: head.pre_skip,
            buf: vec![0.0; MAX_PACKET_FRAMES * channels],
            ordered: Vec::with_capacity(if reorder.is_some() {
                MAX_PACKET_FRAMES * channels
            } else {
                0
            }),
            reorder,
        })
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames to discard at the start of the stream.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Decodes one packet; returns its interleaved samples (48 kHz, WAVE order).
    pub fn decode(&mut self, packet: &[u8]) -> Result<&[f32], String> {
        if packet.is_empty() {
            return Err("empty opus packet".into());
        }
        let frames = self
            .dec
            .decode_float(packet, &mut self.buf, false)
            .map_err(|e| e.to_string())?;
        let n = frames.min(MAX_PACKET_FRAMES) * self.channels;
        match self.reorder {
            None => Ok(&self.buf[..n]),
            Some(map) => {
                self.ordered.clear();
                self.ordered.resize(n, 0.0);
                for (src, dst) in self.buf[..n]
                    .chunks_exact(self.channels)
                    .zip(self.ordered.chunks_exact_mut(self.channels))
                {
                    for (i, &s) in src.iter().enumerate() {
                        dst[map[i]] = s;
                    }
                }
                Ok(&self.ordered)
            }
        }
    }
}

/// Vorbis channel order (used by Opus mapping family 1) to WAVE order, per channel count.
fn vorbis_to_wave(channels: usize) -> Option<&'static [usize]> {
    match channels {
        3 => Some(&[0, 2, 1]),
        5 => Some(&[0, 2, 1, 3, 4]),
        6 => Some(&[0, 2, 1, 4, 5, 3]),
        7 => Some(&[0, 2, 1, 5, 6, 4, 3]),
        8 => Some(&[0, 2, 1, 6, 7, 4, 5, 3]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, family: u8, table: &[u8]) -> Vec<u8> {
        let mut b = b"OpusHead".to_vec();
        b.extend_from_slice(&[1, channels]);
        b.extend_from_slice(&312u16.to_le_bytes());
        b.extend_from_slice(&44_100u32.to_le_bytes());
        b.extend_from_slice(&0i16.to_le_bytes());
        b.push(family);
        b.extend_from_slice(table);
        b
    }

    #[test]
    fn parses_family_0_and_1() {
        let h = OpusHead::parse(&head(2, 0, &[])).unwrap();
        assert_eq!(
            (
                h.channels,
                h.pre_skip,
                h.streams,
                h.coupled,
                h.mapping.clone()
            ),
            (2, 312, 1, 1, vec![0, 1])
        );
        let h = OpusHead::parse(&head(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5])).unwrap();
        assert_eq!((h.streams, h.coupled, h.mapping.len()), (4, 2, 6));
        assert!(OpusDecoder::new(&h).is_ok());
    }

    #[test]
    fn parses_the_big_endian_mp4_variant() {
        let mut b = b"OpusHead".to_vec();
        b.extend_from_slice(&[0, 2, 0x01, 0x38, 0, 0, 0xac, 0x44, 0xff, 0x00, 0]);
        let h = OpusHead::parse_mp4(&b).unwrap();
        assert_eq!((h.pre_skip, h.input_rate, h.gain_q8), (312, 44_100, -256));
        let h = OpusHead::parse(&head(2, 0, &[])).unwrap();
        assert_eq!(h.input_rate, 44_100);
    }

    #[test]
    fn rejects_bad_heads_without_panicking() {
        assert!(OpusHead::parse(b"OpusHead").is_err());
        assert!(OpusHead::parse(&head(0, 0, &[])).is_err());
        assert!(OpusHead::parse(&head(3, 0, &[])).is_err());
        assert!(OpusHead::parse(&head(6, 1, &[4, 2, 0])).is_err());
        assert!(OpusHead::parse(&head(6, 1, &[0, 0, 0, 0, 0, 0, 0, 0])).is_err());
        assert!(OpusHead::parse(&head(2, 3, &[1, 1, 0, 1])).is_err());
        // A table that libopus itself rejects (stream index out of range).
        let h = OpusHead::parse(&head(2, 1, &[1, 0, 0, 9])).unwrap();
        assert!(OpusDecoder::new(&h).is_err());
    }

    #[test]
    fn round_trip_through_libopus() {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        let pcm: Vec<f32> = (0..960 * 2)
            .map(|i| ((i / 2) as f32 * 2.0 * std::f32::consts::PI * 440.0 / 48_000.0).sin() * 0.3)
            .collect();
        let mut pkt = vec![0u8; 4000];
        let n = enc.encode_float(&pcm, &mut pkt).unwrap();
        let mut dec = OpusDecoder::new(&OpusHead::parse(&head(2, 0, &[])).unwrap()).unwrap();
        assert_eq!(dec.decode(&pkt[..n]).unwrap().len(), 960 * 2);
        assert!(dec.decode(&[0xff, 0xff, 0xff]).is_err() || dec.decode(&[0xff]).is_err());
        assert!(dec.decode(&[]).is_err());
    }

    #[test]
    fn reorders_vorbis_to_wave() {
        // Every map is a permutation.
        for ch in 1..=8 {
            if let Some(m) = vorbis_to_wave(ch) {
                let mut seen = vec![false; ch];
                for &i in m {
                    seen[i] = true;
                }
                assert!(seen.iter().all(|&s| s));
            }
        }
    }
}
