//! One engine frame on the wire: what a screen attached to an engine shows of it
//! many times a second — the meters and counters of the status line, and one row of
//! its spectrogram already reduced to the screen's bands. A few hundred bytes; one
//! datagram each, so a lost one is simply not drawn.
//!
//! Layout (big-endian):
//!
//! ```text
//! version u8 (1) | watch u16 | shown u8 | out_peak i16 | out_rms i16 | in_peak i16 |
//! in_rms i16 (centi-dBFS) | voices u16 | xruns u32 | load u16 (‰) |
//! trigger u16 (0.1 ms) | period u16 (frames) | latency u16 (0.1 ms) |
//! bands u16 | band levels u8 × bands (0.5 dB steps from −120 dBFS)
//! ```
//!
//! Plain data in, bytes out and back: no I/O. A frame that does not parse is
//! refused whole, with the reason.

use crate::app::spectrum_feed::Shown;

/// The layout's version.
const VERSION: u8 = 1;
/// Bytes before the band levels.
const HEADER: usize = 1 + 2 + 1 + 4 * 2 + 2 + 4 + 2 + 2 + 2 + 2 + 2;
/// Most bands a frame carries (a terminal 512 columns wide).
pub const MAX_BANDS: usize = 512;
/// The level a band byte of 0 stands for, dBFS.
const BAND_FLOOR_DB: f32 = -120.0;
/// Band bytes per dB.
const BAND_STEPS_PER_DB: f32 = 2.0;
/// The quietest meter reading carried, dBFS (silence reads as this).
const METER_FLOOR_DB: f32 = -200.0;
/// The loudest.
const METER_CEILING_DB: f32 = 20.0;
/// The highest callback load carried (an overloaded callback reads as this).
const MAX_LOAD: f32 = 65.0;

/// What one frame carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineFrame {
    /// Which watch it answers (a screen that changed its picture since ignores
    /// older ones).
    pub watch: u16,
    /// What the spectrogram row shows.
    pub shown: Option<Shown>,
    /// Output peak and RMS, input peak and RMS, dBFS.
    pub meters_db: [f32; 4],
    /// Voices playing.
    pub voices: u16,
    /// Xruns so far.
    pub xruns: u32,
    /// Callback load, 0..1.
    pub load: f32,
    /// The last trigger's time to the callback, ms.
    pub trigger_ms: f32,
    /// The output's period, frames.
    pub period_frames: u16,
    /// Predicted output latency, ms.
    pub latency_ms: f32,
    /// One spectrogram row, dBFS per band (empty: no new row).
    pub bands: Vec<f32>,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than its header or than the bands it announces.
    #[error("an engine frame of {got} bytes, {want} expected")]
    Length {
        /// Bytes there.
        got: usize,
        /// Bytes needed.
        want: usize,
    },
    /// Another layout.
    #[error("an engine frame of version {0}, this jhack reads version 1")]
    Version(u8),
    /// More bands than a frame may carry.
    #[error("an engine frame of {0} bands, at most 512 are accepted")]
    TooManyBands(usize),
    /// A source byte that means nothing.
    #[error("an engine frame showing source {0}, which is none of 0, 1, 2")]
    Source(u8),
}

fn centi(db: f32) -> i16 {
    let db = if db.is_finite() { db } else { METER_FLOOR_DB };
    (db.clamp(METER_FLOOR_DB, METER_CEILING_DB) * 100.0).round() as i16
}

fn tenths(ms: f32) -> u16 {
    let ms = if ms.is_finite() { ms } else { 0.0 };
    (ms * 10.0).round().clamp(0.0, f32::from(u16::MAX)) as u16
}

/// A band level as its byte.
fn band_byte(db: f32) -> u8 {
    let db = if db.is_finite() { db } else { BAND_FLOOR_DB };
    ((db - BAND_FLOOR_DB) * BAND_STEPS_PER_DB)
        .round()
        .clamp(0.0, 255.0) as u8
}

impl EngineFrame {
    /// Its bytes (at most [`MAX_BANDS`] bands are kept).
    pub fn encode(&self) -> Vec<u8> {
        let bands = &self.bands[..self.bands.len().min(MAX_BANDS)];
        let mut b = Vec::with_capacity(HEADER + bands.len());
        b.push(VERSION);
        b.extend_from_slice(&self.watch.to_be_bytes());
        b.push(match self.shown {
            None | Some(Shown::Nothing) => 0,
            Some(Shown::Input) => 1,
            Some(Shown::Output) => 2,
        });
        for m in self.meters_db {
            b.extend_from_slice(&centi(m).to_be_bytes());
        }
        b.extend_from_slice(&self.voices.to_be_bytes());
        b.extend_from_slice(&self.xruns.to_be_bytes());
        let load = (self.load.clamp(0.0, MAX_LOAD) * 1000.0).round() as u16;
        b.extend_from_slice(&load.to_be_bytes());
        b.extend_from_slice(&tenths(self.trigger_ms).to_be_bytes());
        b.extend_from_slice(&self.period_frames.to_be_bytes());
        b.extend_from_slice(&tenths(self.latency_ms).to_be_bytes());
        b.extend_from_slice(&(bands.len() as u16).to_be_bytes());
        b.extend(bands.iter().map(|&db| band_byte(db)));
        b
    }

    /// The frame in `b`.
    pub fn decode(b: &[u8]) -> Result<EngineFrame, FrameError> {
        if b.len() < HEADER {
            return Err(FrameError::Length {
                got: b.len(),
                want: HEADER,
            });
        }
        if b[0] != VERSION {
            return Err(FrameError::Version(b[0]));
        }
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let i16_at = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
        let shown = match b[3] {
            0 => None,
            1 => Some(Shown::Input),
            2 => Some(Shown::Output),
            s => return Err(FrameError::Source(s)),
        };
        let n = usize::from(u16_at(HEADER - 2));
        if n > MAX_BANDS {
            return Err(FrameError::TooManyBands(n));
        }
        if b.len() != HEADER + n {
            return Err(FrameError::Length {
                got: b.len(),
                want: HEADER + n,
            });
        }
        let mut meters_db = [0.0; 4];
        for (k, m) in meters_db.iter_mut().enumerate() {
            *m = (f32::from(i16_at(4 + 2 * k)) / 100.0).clamp(METER_FLOOR_DB, METER_CEILING_DB);
        }
        Ok(EngineFrame {
            watch: u16_at(1),
            shown,
            meters_db,
            voices: u16_at(12),
            xruns: u32::from_be_bytes([b[14], b[15], b[16], b[17]]),
            load: (f32::from(u16_at(18)) / 1000.0).min(MAX_LOAD),
            trigger_ms: f32::from(u16_at(20)) / 10.0,
            period_frames: u16_at(22),
            latency_ms: f32::from(u16_at(24)) / 10.0,
            bands: b[HEADER..]
                .iter()
                .map(|&v| BAND_FLOOR_DB + f32::from(v) / BAND_STEPS_PER_DB)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sample() -> EngineFrame {
        EngineFrame {
            watch: 7,
            shown: Some(Shown::Input),
            meters_db: [-6.5, -12.25, -30.0, -200.0],
            voices: 3,
            xruns: 70_000,
            load: 0.125,
            trigger_ms: 1.3,
            period_frames: 256,
            latency_ms: 10.7,
            bands: (0..78).map(|i| -110.0 + i as f32).collect(),
        }
    }

    #[test]
    fn a_frame_travels_whole_within_its_steps_and_fits_a_datagram() {
        let f = sample();
        let bytes = f.encode();
        assert!(bytes.len() < 200, "{} bytes for 78 bands", bytes.len());
        let back = EngineFrame::decode(&bytes).expect("decode");
        assert_eq!(back.watch, 7);
        assert_eq!(back.shown, Some(Shown::Input));
        assert_eq!(back.meters_db, f.meters_db);
        assert_eq!(
            (back.voices, back.xruns, back.period_frames),
            (3, 70_000, 256)
        );
        assert!((back.load - 0.125).abs() < 1e-3);
        assert!((back.trigger_ms - 1.3).abs() < 0.051);
        assert!((back.latency_ms - 10.7).abs() < 0.051);
        assert_eq!(back.bands.len(), 78);
        for (a, b) in f.bands.iter().zip(&back.bands) {
            assert!((a - b).abs() <= 0.25, "{a} came back as {b}");
        }
        let widest = EngineFrame {
            bands: vec![-50.0; MAX_BANDS],
            ..f
        };
        assert!(widest.encode().len() < 1200, "one datagram on any path");
    }

    #[test]
    fn out_of_range_readings_are_clamped_never_wrapped() {
        let f = EngineFrame {
            meters_db: [f32::NEG_INFINITY, f32::NAN, 99.0, -1e9],
            load: 1e9,
            trigger_ms: -5.0,
            latency_ms: 1e12,
            bands: vec![f32::NAN, -1e6, 1e6, 0.0],
            ..EngineFrame::default()
        };
        let back = EngineFrame::decode(&f.encode()).expect("decode");
        assert_eq!(back.meters_db, [-200.0, -200.0, 20.0, -200.0]);
        assert!((back.load - 65.0).abs() < 1e-3);
        assert_eq!(back.trigger_ms, 0.0);
        assert_eq!(back.latency_ms, 6553.5);
        assert_eq!(back.bands, [-120.0, -120.0, 7.5, 0.0]);
        let wide = EngineFrame {
            bands: vec![0.0; MAX_BANDS + 10],
            ..EngineFrame::default()
        };
        assert_eq!(
            EngineFrame::decode(&wide.encode()).unwrap().bands.len(),
            MAX_BANDS
        );
    }

    #[test]
    fn malformed_frames_are_refused_with_the_reason() {
        let good = sample().encode();
        assert_eq!(
            EngineFrame::decode(&good[..10]),
            Err(FrameError::Length {
                got: 10,
                want: HEADER
            })
        );
        assert!(matches!(
            EngineFrame::decode(&good[..good.len() - 1]),
            Err(FrameError::Length { .. })
        ));
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(EngineFrame::decode(&v2), Err(FrameError::Version(2)));
        let mut source = good.clone();
        source[3] = 9;
        assert_eq!(EngineFrame::decode(&source), Err(FrameError::Source(9)));
        let mut many = good.clone();
        many[HEADER - 2..HEADER].copy_from_slice(&600u16.to_be_bytes());
        assert_eq!(
            EngineFrame::decode(&many),
            Err(FrameError::TooManyBands(600))
        );
        assert!(
            FrameError::TooManyBands(600)
                .to_string()
                .starts_with("an engine frame of 600 bands")
        );
    }

    #[test]
    fn random_bytes_never_panic_and_what_parses_encodes_back_the_same() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xA77AC4);
        let good = sample().encode();
        for i in 0..20_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                let n = rng.gen_range(0..300);
                (0..n).map(|_| rng.r#gen()).collect()
            } else {
                let mut b = good.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let k = rng.gen_range(0..b.len());
                    b[k] = rng.r#gen();
                }
                b
            };
            if let Ok(f) = EngineFrame::decode(&bytes) {
                let again = EngineFrame::decode(&f.encode()).expect("re-decode");
                assert_eq!(again, f, "case {i}");
            }
        }
    }
}
