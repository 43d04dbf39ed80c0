//! A pre-check of RIFF/WAVE headers before symphonia sees the file, so that a bad WAV
//! fails with a clear reason: RF64, channel count, sample rate, codec tag, or a data
//! chunk longer than the file.
//!
//! Reads only small fixed-size headers, in a bounded walk over the chunks: must never
//! allocate from a header's sizes, never loop without bound, and never reject a file
//! that is not RIFF/WAVE (it passes untouched). It leaves the file position anywhere;
//! the caller seeks back.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::errors::format_error;
use super::names::wav_codec_name;
use crate::domain::AudioFormat;
use crate::media::error::{Bytes, MediaError};
use crate::media::guard::check_format;

/// Checks a RIFF/WAVE header before symphonia sees it, for clearer errors: channel
/// count, rate, codec tag, and a data chunk longer than the file. Not a WAV: no-op.
pub(super) fn check_riff<R: Read + Seek>(
    file: &mut R,
    size: u64,
    path: &Path,
) -> Result<(), MediaError> {
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
