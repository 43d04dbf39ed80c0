//! The MP4 edit list of the audio track, which symphonia 0.6 parses but does not apply:
//! how many priming frames to skip and how long the valid audio is.
//!
//! A bounded walk over the boxes, reading at most [`MAX_MOOV`] bytes. Must never fail
//! or delay the open: any oddity (not MP4, cut or oversized boxes, unknown versions,
//! more than one real edit) means "no edit". Never trusts a box size for allocation
//! beyond that cap.
use std::io::{Read, Seek, SeekFrom};

/// Largest `moov` box read into memory.
const MAX_MOOV: u64 = 32 << 20;

/// The first non-empty edit of an audio track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edit {
    /// The track (`tkhd` id, as symphonia numbers tracks).
    pub(super) track_id: u32,
    /// Start of the presented media, in media time scale units.
    media_time: u64,
    media_scale: u32,
    /// Presented duration, in movie time scale units (0: unknown).
    duration: u64,
    movie_scale: u32,
}

impl Edit {
    /// Frames to skip at the start, at `rate`.
    pub(super) fn skip_frames(&self, rate: u32) -> u64 {
        rescale(self.media_time, rate, self.media_scale)
    }

    /// Valid frames, at `rate`, if the edit says.
    pub(super) fn valid_frames(&self, rate: u32) -> Option<u64> {
        (self.duration > 0).then(|| rescale(self.duration, rate, self.movie_scale))
    }
}

fn rescale(v: u64, to: u32, from: u32) -> u64 {
    let from = u128::from(from.max(1));
    ((u128::from(v) * u128::from(to) + from / 2) / from).min(u128::from(u64::MAX)) as u64
}

/// Finds the first audio track's edit in an MP4 file, if any.
pub(super) fn audio_edit<R: Read + Seek>(file: &mut R, size: u64) -> Option<Edit> {
    let mut head = [0u8; 8];
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_exact(&mut head).ok()?;
    if &head[4..8] != b"ftyp" {
        return None;
    }
    let mut pos = 0u64;
    for _ in 0..64 {
        let (kind, start, end) = box_at(file, pos, size)?;
        if &kind == b"moov" {
            let len = end - start;
            if len > MAX_MOOV {
                return None;
            }
            let mut moov = vec![0u8; len as usize];
            file.seek(SeekFrom::Start(start)).ok()?;
            file.read_exact(&mut moov).ok()?;
            return parse_moov(&moov);
        }
        pos = end;
    }
    None
}

/// The box at `pos`: its type and payload range.
fn box_at<R: Read + Seek>(file: &mut R, pos: u64, size: u64) -> Option<([u8; 4], u64, u64)> {
    if pos + 8 > size {
        return None;
    }
    let mut h = [0u8; 16];
    file.seek(SeekFrom::Start(pos)).ok()?;
    file.read_exact(&mut h[..8]).ok()?;
    let len32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let kind = [h[4], h[5], h[6], h[7]];
    let (start, end) = match len32 {
        0 => (pos + 8, size),
        1 => {
            file.read_exact(&mut h[8..16]).ok()?;
            let len = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
            (pos + 16, pos.checked_add(len)?)
        }
        n => (pos + 8, pos + u64::from(n)),
    };
    (end >= start && end <= size).then_some((kind, start, end))
}

/// Child boxes of a payload held in memory: (type, payload).
fn children(mut b: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind = [b[4], b[5], b[6], b[7]];
        let (hdr, len) = match len {
            0 => (8, b.len()),
            1 if b.len() >= 16 => {
                let l = u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
                (16, usize::try_from(l).ok()?)
            }
            n => (8, n),
        };
        if len < hdr || len > b.len() {
            return None;
        }
        let payload = &b[hdr..len];
        b = &b[len..];
        Some((kind, payload))
    })
}

fn find<'a>(b: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(b).find(|(k, _)| k == kind).map(|(_, p)| p)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// (time scale, version) of an `mvhd` or `mdhd` payload.
fn time_scale(b: &[u8]) -> Option<u32> {
    match b.first()? {
        0 => be32(b, 12),
        1 => be32(b, 20),
        _ => None,
    }
}

fn parse_moov(moov: &[u8]) -> Option<Edit> {
    let movie_scale = time_scale(find(moov, b"mvhd")?)?;
    for (kind, trak) in children(moov) {
        if &kind != b"trak" {
            continue;
        }
        let mdia = find(trak, b"mdia")?;
        let hdlr = find(mdia, b"hdlr")?;
        if hdlr.get(8..12) != Some(b"soun".as_slice()) {
            continue;
        }
        let tkhd = find(trak, b"tkhd")?;
        let track_id = match tkhd.first()? {
            0 => be32(tkhd, 12)?,
            1 => be32(tkhd, 20)?,
            _ => return None,
        };
        let media_scale = time_scale(find(mdia, b"mdhd")?)?;
        let elst = find(find(trak, b"edts")?, b"elst")?;
        let version = *elst.first()?;
        let count = be32(elst, 4)? as usize;
        let size = if version == 1 { 20 } else { 12 };
        // Empty edits (media time -1) only delay the start; the first real edit counts.
        // More than one real edit is beyond what a player of sounds needs: ignore.
        let mut found = None;
        for i in 0..count.min(16) {
            let at = 8 + i * size;
            let (duration, media_time) = if version == 1 {
                (be64(elst, at)?, be64(elst, at + 8)? as i64)
            } else {
                (
                    u64::from(be32(elst, at)?),
                    i64::from(be32(elst, at + 4)? as i32),
                )
            };
            if media_time < 0 {
                continue;
            }
            if found.is_some() {
                return None;
            }
            found = Some((duration, media_time as u64));
        }
        let (duration, media_time) = found?;
        return Some(Edit {
            track_id,
            media_time,
            media_scale,
            duration,
            movie_scale,
        });
    }
    None
}
