//! Frames on QUIC streams: [`crate::proto`]'s length-prefixed frames read from and
//! written to quinn streams. The decoding (limits included) is the proto layer's;
//! this only moves bytes.

use quinn::{RecvStream, SendStream};

use crate::proto::{FrameDecoder, MAX_FRAME, encode_frame};

/// Why no frame was read.
#[derive(Debug)]
pub(crate) enum ReadFailure {
    /// The stream or connection failed (or was closed under us).
    Stream(String),
    /// The peer sent bytes that are not a valid frame.
    Malformed(String),
}

/// Reads frames from a stream that carries nothing else.
pub(crate) struct FrameReader {
    recv: RecvStream,
    dec: FrameDecoder,
    buf: Vec<u8>,
}

impl FrameReader {
    /// Reads frames of at most [`MAX_FRAME`] bytes from `recv`.
    pub(crate) fn new(recv: RecvStream) -> FrameReader {
        FrameReader {
            recv,
            dec: FrameDecoder::new(MAX_FRAME),
            buf: vec![0; 16 * 1024],
        }
    }

    /// The next frame; `Ok(None)` when the stream ended cleanly between frames.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, ReadFailure> {
        let malformed = |e: crate::proto::FrameError| ReadFailure::Malformed(e.to_string());
        loop {
            if let Some(frame) = self.dec.next_frame().map_err(malformed)? {
                return Ok(Some(frame));
            }
            match self.recv.read(&mut self.buf).await {
                Ok(Some(n)) => self.dec.push(&self.buf[..n]),
                Ok(None) => {
                    self.dec.finish().map_err(malformed)?;
                    return Ok(None);
                }
                Err(e) => return Err(ReadFailure::Stream(e.to_string())),
            }
        }
    }
}

/// Reads exactly one frame from `recv`, consuming no byte after it (raw data may
/// follow on the stream).
pub(crate) async fn read_one_frame(recv: &mut RecvStream) -> Result<Vec<u8>, String> {
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    dec.push(&len);
    if let Some(frame) = dec.next_frame().map_err(|e| e.to_string())? {
        return Ok(frame);
    }
    let want = u32::from_be_bytes(len) as usize;
    let mut payload = vec![0u8; want];
    recv.read_exact(&mut payload)
        .await
        .map_err(|e| e.to_string())?;
    dec.push(&payload);
    dec.next_frame()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "incomplete frame".to_string())
}

/// Writes one frame holding `payload`.
pub(crate) async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), String> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    encode_frame(payload, &mut out).map_err(|e| e.to_string())?;
    send.write_all(&out).await.map_err(|e| e.to_string())
}
