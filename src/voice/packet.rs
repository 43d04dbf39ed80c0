//! The voice datagram: what one talker sends a listener every frame.
//!
//! Layout (after the datagram's kind byte, little-endian):
//! `version u8 = 1 | flags u8 | stream u32 | seq u32 | ts u32 | len u16 | primary |`
//! then per redundant copy (older frames, newest first): `seq_back u8 | ts_back u32 |
//! len u16 | bytes`. `flags`: bits 0–1 the number of copies (0–2), bits 4–5 the frame
//! length (120, 240, 480, 960 samples), bit 6 stereo. `seq` counts datagrams sent
//! (it does not advance in DTX silence), `ts` is the sender's capture time of the
//! frame's first sample in 48 kHz samples (it does). Both wrap and are unwrapped
//! here against the last one seen of the stream.
//!
//! Pure: no I/O, no clock. Parsing never panics and never trusts a length.

use std::collections::VecDeque;

use bytes::Bytes;

use super::jitter::Incoming;

/// The layout's version.
pub const VERSION: u8 = 1;
/// Bytes before the primary frame.
pub const HEADER: usize = 16;
/// Bytes before each redundant copy.
const COPY_HEADER: usize = 7;
/// The frame lengths the flags can say.
const FRAMES: [u32; 4] = [120, 240, 480, 960];

/// Why a datagram is not a voice packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than its header or one of its lengths.
    #[error("voice datagram truncated")]
    Truncated,
    /// Another layout version.
    #[error("voice datagram of version {0}")]
    Version(u8),
    /// Bytes after the last frame, or a frame of zero bytes, or a copy pointing
    /// nowhere.
    #[error("malformed voice datagram: {0}")]
    Malformed(&'static str),
}

/// A parsed datagram, borrowing its frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet<'a> {
    /// Talk session.
    pub stream: u32,
    /// Wrapped datagram counter.
    pub seq: u32,
    /// Wrapped capture time (samples).
    pub ts: u32,
    /// Frame length (samples per channel).
    pub samples: u32,
    /// Two channels.
    pub stereo: bool,
    /// This frame.
    pub primary: &'a [u8],
    /// Earlier frames: (seq back, ts back, bytes), newest first.
    pub copies: Vec<(u8, u32, &'a [u8])>,
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], PacketError> {
    if b.len() < n {
        return Err(PacketError::Truncated);
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Ok(head)
}

fn u16_at(b: &mut &[u8]) -> Result<u16, PacketError> {
    let s = take(b, 2)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &mut &[u8]) -> Result<u32, PacketError> {
    let s = take(b, 4)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses one voice datagram (its kind byte already removed).
pub fn parse(mut b: &[u8]) -> Result<Packet<'_>, PacketError> {
    let head = take(&mut b, 2)?;
    if head[0] != VERSION {
        return Err(PacketError::Version(head[0]));
    }
    let flags = head[1];
    if flags & 0b1000_1100 != 0 {
        return Err(PacketError::Malformed("unknown flags"));
    }
    let n_copies = flags & 0b11;
    if n_copies > 2 {
        return Err(PacketError::Malformed("more than two copies"));
    }
    let samples = FRAMES[usize::from((flags >> 4) & 0b11)];
    let stream = u32_at(&mut b)?;
    let seq = u32_at(&mut b)?;
    let ts = u32_at(&mut b)?;
    let len = usize::from(u16_at(&mut b)?);
    if len == 0 {
        return Err(PacketError::Malformed("an empty frame"));
    }
    let primary = take(&mut b, len)?;
    let mut copies = Vec::with_capacity(usize::from(n_copies));
    for _ in 0..n_copies {
        let back = take(&mut b, 1)?[0];
        let ts_back = u32_at(&mut b)?;
        let len = usize::from(u16_at(&mut b)?);
        if back == 0 || back > 2 || len == 0 || ts_back == 0 {
            return Err(PacketError::Malformed("a copy pointing nowhere"));
        }
        copies.push((back, ts_back, take(&mut b, len)?));
    }
    if !b.is_empty() {
        return Err(PacketError::Malformed("bytes after the last frame"));
    }
    Ok(Packet {
        stream,
        seq,
        ts,
        samples,
        stereo: flags & 0b0100_0000 != 0,
        primary,
        copies,
    })
}

/// Extends wrapping 32-bit counters to 64 bits, nearest to the last value seen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwrap {
    last: Option<u64>,
}

impl Unwrap {
    /// The 64-bit value of `v` nearest the last one (the first is taken as is).
    pub fn extend(&mut self, v: u32) -> u64 {
        let Some(last) = self.last else {
            let x = u64::from(v) + (1u64 << 32);
            self.last = Some(x);
            return x;
        };
        let base = last & !0xFFFF_FFFF;
        let cands = [
            base.wrapping_sub(1 << 32) | u64::from(v),
            base | u64::from(v),
            base.wrapping_add(1 << 32) | u64::from(v),
        ];
        let x = cands
            .into_iter()
            .min_by_key(|c| c.abs_diff(last))
            .unwrap_or(base | u64::from(v));
        if x > last {
            self.last = Some(x);
        }
        x
    }
}

/// Turns a listener's datagrams into jitter-buffer input: unwraps seq and ts per
/// stream (a new stream starts afresh).
#[derive(Debug, Clone, Default)]
pub struct Depacketizer {
    stream: Option<u32>,
    seq: Unwrap,
    ts: Unwrap,
}

impl Depacketizer {
    /// The frames of one datagram (`bytes` is the datagram after its kind byte, kept
    /// alive by the payloads without a copy): the primary first, then its copies.
    pub fn frames(&mut self, bytes: &Bytes) -> Result<Vec<Incoming>, PacketError> {
        let p = parse(bytes)?;
        if self.stream != Some(p.stream) {
            *self = Depacketizer {
                stream: Some(p.stream),
                ..Depacketizer::default()
            };
        }
        let seq = self.seq.extend(p.seq);
        let ts = self.ts.extend(p.ts);
        let slice = |s: &[u8]| bytes.slice_ref(s);
        let mut out = Vec::with_capacity(1 + p.copies.len());
        out.push(Incoming {
            stream: p.stream,
            seq,
            ts,
            samples: p.samples,
            payload: slice(p.primary),
            primary: true,
        });
        for (back, ts_back, data) in p.copies {
            out.push(Incoming {
                stream: p.stream,
                seq: seq.saturating_sub(u64::from(back)),
                ts: ts.saturating_sub(u64::from(ts_back)),
                samples: p.samples,
                payload: slice(data),
                primary: false,
            });
        }
        Ok(out)
    }
}

/// A talker's side: numbers its frames and adds copies of the previous ones.
#[derive(Debug, Clone)]
pub struct Packetizer {
    stream: u32,
    seq: u32,
    copies: usize,
    samples: u32,
    stereo: bool,
    history: VecDeque<(u32, u32, Vec<u8>)>,
}

impl Packetizer {
    /// A new talk session `stream` sending `copies` (0–2) redundant copies of earlier
    /// frames with each of its frames of `samples` samples.
    pub fn new(stream: u32, copies: usize, samples: u32, stereo: bool) -> Packetizer {
        Packetizer {
            stream,
            seq: 0,
            copies: copies.min(2),
            samples,
            stereo,
            history: VecDeque::with_capacity(3),
        }
    }

    /// The datagram for the frame captured at `ts` (samples), at most `max` bytes
    /// (copies that do not fit are left out). `None` for a DTX frame (not sent; the
    /// sequence does not advance).
    pub fn packet(&mut self, ts: u64, frame: &[u8], max: usize) -> Option<Vec<u8>> {
        if frame.len() <= super::codec::DTX_PACKET || frame.len() > usize::from(u16::MAX) {
            // Silence: what comes after it has nothing before it worth repeating.
            self.history.clear();
            return None;
        }
        let ts = ts as u32;
        let code = FRAMES.iter().position(|&f| f == self.samples).unwrap_or(2) as u8;
        let mut copies: Vec<&(u32, u32, Vec<u8>)> = Vec::new();
        let mut size = HEADER + frame.len();
        for h in self.history.iter().rev().take(self.copies) {
            if size + COPY_HEADER + h.2.len() > max {
                break;
            }
            size += COPY_HEADER + h.2.len();
            copies.push(h);
        }
        let mut out = Vec::with_capacity(size);
        out.push(VERSION);
        out.push(copies.len() as u8 | (code << 4) | if self.stereo { 0x40 } else { 0 });
        out.extend_from_slice(&self.stream.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(&(frame.len() as u16).to_le_bytes());
        out.extend_from_slice(frame);
        for (seq, t, data) in copies {
            out.push(self.seq.wrapping_sub(*seq) as u8);
            out.extend_from_slice(&ts.wrapping_sub(*t).to_le_bytes());
            out.extend_from_slice(&(data.len() as u16).to_le_bytes());
            out.extend_from_slice(data);
        }
        if self.history.len() == 2 {
            self.history.pop_front();
        }
        self.history.push_back((self.seq, ts, frame.to_vec()));
        self.seq = self.seq.wrapping_add(1);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_copies_round_trip_across_the_wrap() {
        let mut tx = Packetizer::new(7, 2, 480, false);
        let mut rx = Depacketizer::default();
        // Start just before both counters wrap.
        tx.seq = u32::MAX - 1;
        let base = u64::from(u32::MAX) - 480;
        let mut last = None;
        for n in 0..6u64 {
            let frame = vec![n as u8 + 1; 40];
            let d = tx.packet(base + n * 480, &frame, 1200).unwrap();
            let got = rx.frames(&Bytes::from(d)).unwrap();
            assert_eq!(got.len(), 1 + (n as usize).min(2));
            assert_eq!(&got[0].payload[..], &frame[..]);
            if let Some((s, t)) = last {
                assert_eq!(got[0].seq, s + 1);
                assert_eq!(got[0].ts, t + 480);
                assert_eq!(got[1].seq, s);
                assert_eq!(got[1].ts, t);
                assert_eq!(got[1].payload[0], n as u8);
                assert!(!got[1].primary);
            }
            last = Some((got[0].seq, got[0].ts));
        }
    }

    #[test]
    fn dtx_frames_are_not_sent_and_copies_fit_the_path() {
        let mut tx = Packetizer::new(1, 2, 240, true);
        assert!(tx.packet(0, &[1, 2, 3], 1200).is_some());
        assert!(tx.packet(240, &[0], 1200).is_none());
        let d = tx.packet(480, &[5; 100], 1200).unwrap();
        let p = parse(&d).unwrap();
        assert_eq!(
            (p.seq, p.samples, p.stereo, p.copies.len()),
            (1, 240, true, 0)
        );
        let _ = tx.packet(720, &[6; 600], 1200).unwrap();
        // 500 + 600 + 100 with headers would not fit 1200: one copy only.
        let d = tx.packet(960, &[7; 500], 1200).unwrap();
        assert!(d.len() <= 1200);
        assert_eq!(parse(&d).unwrap().copies.len(), 1);
    }

    #[test]
    fn hostile_datagrams_are_errors_never_panics() {
        let mut tx = Packetizer::new(3, 2, 480, false);
        let _ = tx.packet(0, &[1; 30], 1200);
        let good = tx.packet(480, &[2; 30], 1200).unwrap();
        assert!(parse(&good).is_ok());
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(parse(&longer).is_err());
        let mut v2 = good.clone();
        v2[0] = 2;
        assert_eq!(parse(&v2), Err(PacketError::Version(2)));
        let mut flags = good.clone();
        flags[1] |= 0x80;
        assert!(parse(&flags).is_err());
        // Random bytes, seeded.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rx = Depacketizer::default();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 64) as usize;
            let mut b: Vec<u8> = (0..n).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            if n > 2 {
                b[0] = 1;
            }
            let _ = rx.frames(&Bytes::from(b));
        }
    }

    #[test]
    fn unwrapping_follows_the_nearest_value() {
        let mut u = Unwrap::default();
        let a = u.extend(u32::MAX - 5);
        let b = u.extend(3);
        assert_eq!(b - a, 9);
        let c = u.extend(u32::MAX - 2); // late, from before the wrap
        assert_eq!(b - c, 6);
        assert_eq!(u.extend(10) - b, 7);
    }
}
