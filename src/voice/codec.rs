//! The intercom's Opus codec: one encoder per call and one decoder per talking peer,
//! at 48 kHz, mono by default (stereo an option), frames of 2.5, 5, 10 or 20 ms, in
//! one of two profiles chosen per call:
//! - [`Profile::LowDelay`]: RESTRICTED_LOWDELAY (2.5 ms look-ahead instead of 6.5),
//!   constant bit rate of at least 64 kb/s; losses are repaired by the redundant
//!   copies each datagram carries (see `packet`).
//! - [`Profile::Robust`]: VOIP with in-band FEC, the expected-loss setting fed from
//!   the loss the receiver reports.
//!
//! Both use DTX: in silence the encoder emits packets of a byte or two, which the
//! call does not send, so an open microphone in a quiet room sends almost nothing.
//!
//! This file is the only importer of `opus` for calls. It never panics on any packet,
//! and decoding into a caller's buffer allocates nothing (libopus works in its own
//! preallocated state).

use opus::{Application, Bitrate, Channels, Decoder, Encoder};

/// The only rate calls run at.
pub const RATE: u32 = 48_000;
/// An encoded frame's largest size we produce (bytes).
pub const MAX_PACKET: usize = 1000;
/// A packet this short (or shorter) is DTX silence: not worth sending.
pub const DTX_PACKET: usize = 2;

/// The call's trade between delay and resilience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    /// Least delay: RESTRICTED_LOWDELAY, redundant copies of earlier frames.
    LowDelay,
    /// Resilient: VOIP, in-band FEC tuned to the reported loss.
    Robust,
}

impl Profile {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::LowDelay => "low-delay",
            Profile::Robust => "robust",
        }
    }

    /// The encoder's look-ahead (µs): what the codec adds to mouth-to-ear.
    pub fn lookahead_us(self) -> u64 {
        match self {
            Profile::LowDelay => 2_500,
            Profile::Robust => 6_500,
        }
    }
}

/// How a call encodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecConfig {
    /// The profile.
    pub profile: Profile,
    /// 1 or 2.
    pub channels: u16,
    /// Samples per channel per frame at 48 kHz: 120, 240, 480 or 960.
    pub frame_samples: u32,
    /// Bits per second (low delay: at least 64000).
    pub bitrate: i32,
}

impl CodecConfig {
    /// The defaults of a profile: mono, 10 ms frames, 64 kb/s (low delay) or 32 kb/s
    /// (robust).
    pub fn new(profile: Profile) -> CodecConfig {
        CodecConfig {
            profile,
            channels: 1,
            frame_samples: 480,
            bitrate: match profile {
                Profile::LowDelay => 64_000,
                Profile::Robust => 32_000,
            },
        }
    }

    /// The frame length for a duration in ms (2.5, 5, 10 or 20).
    pub fn frame_for_ms(ms: f64) -> Option<u32> {
        [120u32, 240, 480, 960]
            .into_iter()
            .find(|&f| (f64::from(f) / 48.0 - ms).abs() < 0.01)
    }

    /// The frame duration (µs).
    pub fn frame_us(&self) -> u64 {
        u64::from(self.frame_samples) * 1_000_000 / u64::from(RATE)
    }
}

/// A codec operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// libopus refused a setting or a packet.
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
    /// A setting out of range.
    #[error("{0}")]
    Config(String),
}

fn channels(n: u16) -> Result<Channels, CodecError> {
    match n {
        1 => Ok(Channels::Mono),
        2 => Ok(Channels::Stereo),
        n => Err(CodecError::Config(format!(
            "{n} channels: calls are mono or stereo"
        ))),
    }
}

/// The call's encoder.
pub struct VoiceEncoder {
    enc: Encoder,
    cfg: CodecConfig,
    loss_percent: i32,
}

impl VoiceEncoder {
    /// An encoder for `cfg`.
    pub fn new(cfg: CodecConfig) -> Result<VoiceEncoder, CodecError> {
        if !matches!(cfg.frame_samples, 120 | 240 | 480 | 960) {
            return Err(CodecError::Config(format!(
                "a frame of {} samples: frames are 2.5, 5, 10 or 20 ms",
                cfg.frame_samples
            )));
        }
        let app = match cfg.profile {
            Profile::LowDelay => Application::LowDelay,
            Profile::Robust => Application::Voip,
        };
        let mut enc = Encoder::new(RATE, channels(cfg.channels)?, app)?;
        let bitrate = match cfg.profile {
            Profile::LowDelay => cfg.bitrate.max(64_000),
            Profile::Robust => cfg.bitrate.max(6_000),
        };
        enc.set_bitrate(Bitrate::Bits(bitrate.min(510_000)))?;
        enc.set_dtx(true)?;
        match cfg.profile {
            Profile::LowDelay => {
                enc.set_vbr(false)?;
                enc.set_inband_fec(false)?;
            }
            Profile::Robust => {
                enc.set_vbr(true)?;
                enc.set_inband_fec(true)?;
                enc.set_packet_loss_perc(5)?;
            }
        }
        Ok(VoiceEncoder {
            enc,
            cfg,
            loss_percent: 5,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CodecConfig {
        &self.cfg
    }

    /// Encodes one frame (`frame_samples × channels` interleaved samples) into `out`;
    /// returns its length. A length ≤ [`DTX_PACKET`] is silence (DTX).
    pub fn encode(&mut self, pcm: &[f32], out: &mut [u8]) -> Result<usize, CodecError> {
        let want = self.cfg.frame_samples as usize * usize::from(self.cfg.channels);
        if pcm.len() != want {
            return Err(CodecError::Config(format!(
                "a frame of {} samples, {want} expected",
                pcm.len()
            )));
        }
        Ok(self.enc.encode_float(pcm, out)?)
    }

    /// Tells the robust profile's FEC how much loss the receivers see (0–100 %).
    pub fn set_expected_loss(&mut self, percent: f64) -> Result<(), CodecError> {
        if self.cfg.profile != Profile::Robust {
            return Ok(());
        }
        let p = percent.clamp(0.0, 50.0).ceil() as i32;
        if p != self.loss_percent {
            self.enc.set_packet_loss_perc(p)?;
            self.loss_percent = p;
        }
        Ok(())
    }

    /// The expected loss the encoder is tuned for (%).
    pub fn expected_loss(&self) -> i32 {
        self.loss_percent
    }
}

/// A talking peer's decoder.
pub struct VoiceDecoder {
    dec: Decoder,
    channels: u16,
}

impl VoiceDecoder {
    /// A decoder producing `channels` channels at 48 kHz.
    pub fn new(channels_out: u16) -> Result<VoiceDecoder, CodecError> {
        Ok(VoiceDecoder {
            dec: Decoder::new(RATE, channels(channels_out)?)?,
            channels: channels_out,
        })
    }

    /// Output channels.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Decodes `packet` (or its FEC with `fec`) into `out`, which holds exactly the
    /// frame wanted (`samples × channels`); returns samples per channel.
    pub fn decode(
        &mut self,
        packet: &[u8],
        fec: bool,
        out: &mut [f32],
    ) -> Result<usize, CodecError> {
        Ok(self.dec.decode_float(packet, out, fec)?)
    }

    /// Conceals one lost frame (Opus PLC) into `out` (`samples × channels`).
    pub fn conceal(&mut self, out: &mut [f32]) -> Result<usize, CodecError> {
        Ok(self.dec.decode_float(&[], out, false)?)
    }

    /// Starts a new stream (a new talk session).
    pub fn reset(&mut self) -> Result<(), CodecError> {
        Ok(self.dec.reset_state()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(frame: usize, n: usize, f: f32) -> Vec<f32> {
        (0..frame)
            .map(|i| {
                0.3 * (2.0 * std::f32::consts::PI * f * (n * frame + i) as f32 / 48000.0).sin()
            })
            .collect()
    }

    #[test]
    fn every_frame_size_and_profile_round_trips() {
        for profile in [Profile::LowDelay, Profile::Robust] {
            for ms in [2.5, 5.0, 10.0, 20.0] {
                let mut cfg = CodecConfig::new(profile);
                cfg.frame_samples = CodecConfig::frame_for_ms(ms).unwrap();
                let mut enc = VoiceEncoder::new(cfg).unwrap();
                let mut dec = VoiceDecoder::new(1).unwrap();
                let frame = cfg.frame_samples as usize;
                let mut out = vec![0.0; frame];
                let mut packet = [0u8; MAX_PACKET];
                let mut energy = 0.0;
                for n in 0..100 {
                    let len = enc.encode(&tone(frame, n, 440.0), &mut packet).unwrap();
                    assert!(
                        len > DTX_PACKET && len < MAX_PACKET,
                        "{profile:?} {ms} ms: {len}"
                    );
                    assert_eq!(dec.decode(&packet[..len], false, &mut out).unwrap(), frame);
                    if n > 50 {
                        energy += out.iter().map(|s| s * s).sum::<f32>();
                    }
                }
                let rms = (energy / (49 * frame) as f32).sqrt();
                assert!((0.15..0.3).contains(&rms), "{profile:?} {ms} ms: rms {rms}");
            }
        }
    }

    #[test]
    fn silence_becomes_dtx_packets() {
        let mut enc = VoiceEncoder::new(CodecConfig::new(Profile::LowDelay)).unwrap();
        let mut packet = [0u8; MAX_PACKET];
        let silent = vec![0.0f32; 480];
        let small = (0..200)
            .filter(|_| enc.encode(&silent, &mut packet).unwrap() <= DTX_PACKET)
            .count();
        assert!(small > 150, "only {small} of 200 silent frames were DTX");
    }

    #[test]
    fn concealment_and_fec_fill_a_lost_frame() {
        let mut cfg = CodecConfig::new(Profile::Robust);
        cfg.frame_samples = 960;
        let mut enc = VoiceEncoder::new(cfg).unwrap();
        enc.set_expected_loss(20.0).unwrap();
        assert_eq!(enc.expected_loss(), 20);
        let mut dec = VoiceDecoder::new(1).unwrap();
        let mut out = vec![0.0; 960];
        let mut packet = [0u8; MAX_PACKET];
        for n in 0..20 {
            let len = enc.encode(&tone(960, n, 300.0), &mut packet).unwrap();
            dec.decode(&packet[..len], false, &mut out).unwrap();
        }
        assert_eq!(dec.conceal(&mut out).unwrap(), 960);
        let len = enc.encode(&tone(960, 21, 300.0), &mut packet).unwrap();
        assert_eq!(dec.decode(&packet[..len], true, &mut out).unwrap(), 960);
        assert!(out.iter().any(|s| s.abs() > 0.01), "FEC produced silence");
        // Garbage is an error, never a panic.
        assert!(dec.decode(&[0xff; 7], false, &mut out).is_err() || out.len() == 960);
        dec.reset().unwrap();
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut cfg = CodecConfig::new(Profile::LowDelay);
        cfg.frame_samples = 500;
        assert!(VoiceEncoder::new(cfg).is_err());
        cfg.frame_samples = 480;
        cfg.channels = 3;
        assert!(VoiceEncoder::new(cfg).is_err());
        let mut enc = VoiceEncoder::new(CodecConfig::new(Profile::LowDelay)).unwrap();
        assert!(enc.encode(&[0.0; 100], &mut [0u8; 100]).is_err());
        assert_eq!(CodecConfig::frame_for_ms(2.5), Some(120));
        assert_eq!(CodecConfig::frame_for_ms(7.0), None);
    }
}
