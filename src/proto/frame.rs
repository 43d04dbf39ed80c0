//! Length-prefixed frames: the unit in which peers exchange messages.
//!
//! A frame is a 4-byte big-endian payload length followed by that many payload
//! bytes. The payload is never empty and never longer than [`MAX_FRAME`] bytes.
//!
//! This module only cuts a byte stream into frames and builds frames from
//! payloads. It must never do I/O, never panic whatever bytes it is given, never
//! trust a length prefix further than the decoder's limit (a length is checked
//! as soon as its 4 bytes are known, before any of its payload is kept), and
//! never buffer more than the bound documented on [`FrameDecoder`].

use std::cmp::Ordering;

/// Largest payload of one frame, in bytes.
pub const MAX_FRAME: usize = 64 * 1024;

/// Size of the length prefix in front of every payload.
const LEN_BYTES: usize = 4;

/// Why a frame could not be built or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A zero-length frame, which the format does not allow.
    #[error("zero-length frame")]
    Empty,
    /// A frame longer than the limit; `len` is the announced (or offered) length.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload length announced by the length prefix (or offered to the encoder).
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended inside a frame; at least `needed` more bytes were due.
    #[error("stream ended inside a frame, at least {needed} more bytes expected")]
    Truncated {
        /// Bytes still missing: exact inside a payload, a lower bound inside a length prefix.
        needed: usize,
    },
}

/// Appends one frame carrying `payload` to `out`.
///
/// Refuses an empty payload ([`FrameError::Empty`]) and one over [`MAX_FRAME`]
/// bytes ([`FrameError::TooLarge`]); `out` is left untouched on error.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let len = check_len(payload.len(), MAX_FRAME)?;
    out.reserve(LEN_BYTES + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Checks a payload length against `max` and returns it as the 4-byte prefix value.
fn check_len(len: usize, max: usize) -> Result<u32, FrameError> {
    if len == 0 {
        return Err(FrameError::Empty);
    }
    let too_large = || FrameError::TooLarge {
        len: u64::try_from(len).unwrap_or(u64::MAX),
        max,
    };
    if len > max {
        return Err(too_large());
    }
    u32::try_from(len).map_err(|_| too_large())
}

/// Cuts a byte stream into frame payloads.
///
/// Feed it with [`push`](Self::push) as bytes arrive and take payloads with
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
///
/// Every length prefix is checked the moment its 4 bytes have been pushed: a
/// zero or over-limit length puts the decoder in error at once, and neither that
/// prefix nor anything pushed after it is kept. Frames that arrived whole before
/// the bad prefix are still handed out, in order; then `next_frame` returns the
/// error, and the same error on every later call. Bytes pushed after an error are
/// dropped. The caller is expected to close the connection.
///
/// # Memory bound
///
/// Once `next_frame` has returned `Ok(None)` or an error, [`buffered`](Self::buffered)
/// is below `4 + max` (at most one incomplete frame is held; nothing after an
/// error). Each `push` adds at most its own length, so a caller that drains the
/// decoder after every push never holds more than `4 + max + n` bytes, where `n`
/// is the length of the latest push.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// Limit on payload length, at most [`MAX_FRAME`].
    max: usize,
    /// Pushed bytes; those before `head` have been handed out already.
    buf: Vec<u8>,
    /// Start of the first frame not yet handed out.
    head: usize,
    /// Start of the next length prefix not yet checked. Every frame between
    /// `head` and `scan` has a checked prefix; when `scan > buf.len()`, the
    /// frame before it is still waiting for `scan - buf.len()` payload bytes.
    scan: usize,
    /// Set when a bad length prefix has been seen.
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder accepting payloads of up to `max` bytes (clamped to [`MAX_FRAME`]).
    pub fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            max: max.min(MAX_FRAME),
            buf: Vec::new(),
            head: 0,
            scan: 0,
            error: None,
        }
    }

    /// The payload limit in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Adds bytes received from the stream; checks each length prefix they complete.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && self.error.is_none() {
            let held = self.buf.len();
            let take = if self.scan > held {
                // Inside a payload whose prefix has been checked.
                self.scan - held
            } else {
                // Inside (or at the start of) the prefix that starts at `scan`.
                LEN_BYTES - (held - self.scan).min(LEN_BYTES)
            };
            let (now, rest) = bytes.split_at_checked(take).unwrap_or((bytes, &[][..]));
            self.buf.extend_from_slice(now);
            bytes = rest;
            if self.scan <= held {
                self.check_prefix();
            }
        }
    }

    /// Checks the length prefix at `scan` if all 4 of its bytes are held.
    fn check_prefix(&mut self) {
        let Some(prefix) = self.prefix_at(self.scan) else {
            return;
        };
        match usize::try_from(prefix)
            .map_err(|_| FrameError::TooLarge {
                len: u64::from(prefix),
                max: self.max,
            })
            .and_then(|len| check_len(len, self.max).map(|_| len))
        {
            Ok(len) => self.scan = self.scan.saturating_add(LEN_BYTES + len),
            Err(error) => {
                // Keep only the whole frames before the bad prefix.
                self.buf.truncate(self.scan);
                self.error = Some(error);
            }
        }
    }

    /// The length prefix starting at `at`, if all its bytes are held.
    fn prefix_at(&self, at: usize) -> Option<u32> {
        let end = at.checked_add(LEN_BYTES)?;
        let bytes: [u8; LEN_BYTES] = self.buf.get(at..end)?.try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// The next whole payload: `Ok(None)` when more bytes are needed, the
    /// decoder's error (again and again) once it has failed and the frames
    /// before the failure have been taken.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if let Some(payload) = self.take_whole() {
            return Ok(Some(payload));
        }
        if let Some(error) = &self.error {
            let error = error.clone();
            self.buf = Vec::new();
            self.head = 0;
            self.scan = 0;
            return Err(error);
        }
        self.compact();
        Ok(None)
    }

    /// Removes and returns the frame at `head` if it is whole and checked.
    fn take_whole(&mut self) -> Option<Vec<u8>> {
        if self.head >= self.scan {
            return None;
        }
        let len = usize::try_from(self.prefix_at(self.head)?).ok()?;
        let start = self.head.checked_add(LEN_BYTES)?;
        let end = start.checked_add(len)?;
        let payload = self.buf.get(start..end)?.to_vec();
        self.head = end;
        Some(payload)
    }

    /// Drops the bytes already handed out, and spare capacity after a big push.
    fn compact(&mut self) {
        if self.head > 0 {
            self.buf.drain(..self.head.min(self.buf.len()));
            self.scan = self.scan.saturating_sub(self.head);
            self.head = 0;
        }
        let keep = LEN_BYTES + self.max;
        if self.buf.capacity() > 2 * keep {
            self.buf.shrink_to(keep);
        }
    }

    /// Bytes held: whole frames not yet taken plus the incomplete one.
    pub fn buffered(&self) -> usize {
        self.buf.len().saturating_sub(self.head)
    }

    /// To be called at the end of the stream: `Ok` if it ended between frames,
    /// [`FrameError::Truncated`] if it ended inside one, or the decoder's error.
    /// Whole frames still held can be taken with [`next_frame`](Self::next_frame).
    pub fn finish(&self) -> Result<(), FrameError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        let held = self.buf.len();
        match self.scan.cmp(&held) {
            Ordering::Greater => Err(FrameError::Truncated {
                needed: self.scan - held,
            }),
            Ordering::Less => Err(FrameError::Truncated {
                needed: LEN_BYTES.saturating_sub(held - self.scan),
            }),
            Ordering::Equal => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode_frame(p, &mut out).unwrap();
        }
        out
    }

    fn drain(dec: &mut FrameDecoder) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut frames = Vec::new();
        while let Some(f) = dec.next_frame()? {
            frames.push(f);
        }
        Ok(frames)
    }

    #[test]
    fn encode_writes_big_endian_length_then_payload() {
        let mut out = vec![9];
        encode_frame(b"abc", &mut out).unwrap();
        assert_eq!(out, [9, 0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn encode_refuses_empty_and_oversized_payloads() {
        let mut out = vec![1, 2];
        assert_eq!(encode_frame(b"", &mut out), Err(FrameError::Empty));
        let big = vec![0u8; MAX_FRAME + 1];
        assert_eq!(
            encode_frame(&big, &mut out),
            Err(FrameError::TooLarge {
                len: MAX_FRAME as u64 + 1,
                max: MAX_FRAME
            })
        );
        assert_eq!(out, [1, 2]);
        encode_frame(&big[..MAX_FRAME], &mut out).unwrap();
        assert_eq!(out.len(), 2 + 4 + MAX_FRAME);
    }

    #[test]
    fn error_messages_read_as_log_phrases() {
        let e = FrameError::TooLarge {
            len: 70000,
            max: 65536,
        };
        assert_eq!(
            e.to_string(),
            "frame of 70000 bytes exceeds the 65536-byte limit"
        );
        assert_eq!(FrameError::Empty.to_string(), "zero-length frame");
        assert_eq!(
            FrameError::Truncated { needed: 3 }.to_string(),
            "stream ended inside a frame, at least 3 more bytes expected"
        );
    }

    #[test]
    fn decodes_frames_pushed_whole_byte_by_byte_and_split() {
        let payloads: [&[u8]; 4] = [b"a", b"hello", &[0; 300], &[7; 1000]];
        let stream = framed(&payloads);
        let want: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();

        let mut dec = FrameDecoder::new(MAX_FRAME);
        dec.push(&stream);
        assert_eq!(drain(&mut dec).unwrap(), want);
        assert_eq!(dec.buffered(), 0);
        dec.finish().unwrap();

        let mut dec = FrameDecoder::new(MAX_FRAME);
        let mut got = Vec::new();
        for b in &stream {
            dec.push(std::slice::from_ref(b));
            got.extend(drain(&mut dec).unwrap());
        }
        assert_eq!(got, want);

        for split in 0..=stream.len() {
            let mut dec = FrameDecoder::new(MAX_FRAME);
            dec.push(&stream[..split]);
            let mut got = drain(&mut dec).unwrap();
            dec.push(&stream[split..]);
            got.extend(drain(&mut dec).unwrap());
            assert_eq!(got, want, "split at {split}");
            dec.finish().unwrap();
        }
    }

    #[test]
    fn accepts_a_payload_of_exactly_max() {
        let mut dec = FrameDecoder::new(10);
        dec.push(&framed(&[&[1; 10]]));
        assert_eq!(dec.next_frame().unwrap(), Some(vec![1; 10]));
    }

    #[test]
    fn oversized_length_fails_before_its_payload_is_kept() {
        let mut dec = FrameDecoder::new(100);
        dec.push(&[0, 0, 0]);
        assert_eq!(dec.next_frame(), Ok(None));
        dec.push(&[101, 1, 2, 3]);
        assert_eq!(dec.buffered(), 0);
        let err = FrameError::TooLarge { len: 101, max: 100 };
        assert_eq!(dec.next_frame(), Err(err.clone()));
        dec.push(&[0, 0, 0, 1, 5]);
        assert_eq!(dec.buffered(), 0);
        assert_eq!(dec.next_frame(), Err(err.clone()));
        assert_eq!(dec.finish(), Err(err));

        let mut dec = FrameDecoder::new(MAX_FRAME);
        dec.push(&[0xff; 4]);
        assert_eq!(
            dec.next_frame(),
            Err(FrameError::TooLarge {
                len: u64::from(u32::MAX),
                max: MAX_FRAME
            })
        );
    }

    #[test]
    fn zero_length_frame_is_an_error_that_sticks() {
        let mut dec = FrameDecoder::new(100);
        dec.push(&[0, 0, 0, 0, 0, 0, 0, 1, 9]);
        assert_eq!(dec.next_frame(), Err(FrameError::Empty));
        assert_eq!(dec.next_frame(), Err(FrameError::Empty));
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn whole_frames_before_a_bad_prefix_are_still_delivered() {
        let mut stream = framed(&[b"one", b"two"]);
        stream.extend_from_slice(&[0, 1, 0, 0, 42, 42]);
        let mut dec = FrameDecoder::new(1000);
        dec.push(&stream);
        assert_eq!(dec.buffered(), 14);
        assert_eq!(dec.next_frame(), Ok(Some(b"one".to_vec())));
        assert_eq!(dec.next_frame(), Ok(Some(b"two".to_vec())));
        let err = FrameError::TooLarge {
            len: 65536,
            max: 1000,
        };
        assert_eq!(dec.next_frame(), Err(err.clone()));
        assert_eq!(dec.next_frame(), Err(err));
    }

    #[test]
    fn max_is_clamped_to_the_format_limit() {
        let mut dec = FrameDecoder::new(usize::MAX);
        assert_eq!(dec.max(), MAX_FRAME);
        dec.push(&(MAX_FRAME as u32 + 1).to_be_bytes());
        assert!(matches!(
            dec.next_frame(),
            Err(FrameError::TooLarge { max: MAX_FRAME, .. })
        ));
    }

    #[test]
    fn finish_reports_how_much_is_missing() {
        let stream = framed(&[b"abcdef"]);
        for cut in 1..stream.len() {
            let mut dec = FrameDecoder::new(100);
            dec.push(&stream[..cut]);
            assert_eq!(dec.next_frame(), Ok(None));
            let needed = if cut < 4 { 4 - cut } else { stream.len() - cut };
            assert_eq!(dec.finish(), Err(FrameError::Truncated { needed }));
        }
        let mut dec = FrameDecoder::new(100);
        dec.finish().unwrap();
        dec.push(&stream);
        dec.finish().unwrap();
    }

    #[test]
    fn buffered_stays_within_the_documented_bound() {
        let max = 50;
        let mut dec = FrameDecoder::new(max);
        let stream = framed(&[&[1; 50], &[2; 1], &[3; 49], &[4; 50], &[5; 20]]);
        for chunk in stream.chunks(7) {
            dec.push(chunk);
            assert!(dec.buffered() <= 4 + max + chunk.len());
            drain(&mut dec).unwrap();
            assert!(dec.buffered() < 4 + max);
        }
        // A big push of many frames is held until taken, then released.
        let many = framed(&vec![&[9u8; 50][..]; 1000]);
        dec.push(&many);
        assert!(dec.buffered() <= 4 + max + many.len());
        assert_eq!(drain(&mut dec).unwrap().len(), 1000);
        assert!(dec.buffered() < 4 + max);
        assert!(dec.buf.capacity() <= 2 * (4 + max));
    }
}
