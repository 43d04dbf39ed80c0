//! Sounds as the library knows them: the content id and the metadata record.

use std::fmt;

/// A sound's id: the BLAKE3 hash of its original file bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SoundId(pub [u8; 32]);

impl SoundId {
    /// Hex digits shown to people as a short id.
    pub const SHORT_LEN: usize = 12;

    /// The full id as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.hex_digits(64)
    }

    /// The first [`Self::SHORT_LEN`] hex digits.
    pub fn short(&self) -> String {
        self.hex_digits(Self::SHORT_LEN)
    }

    /// The first `n` (≤ 64) hex digits, written into one string of the right size.
    fn hex_digits(&self, n: usize) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(n);
        for b in &self.0 {
            for nibble in [b >> 4, b & 0x0f] {
                if s.len() == n {
                    return s;
                }
                s.push(char::from(DIGITS[usize::from(nibble)]));
            }
        }
        s
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<SoundId> {
        let s = s.trim();
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(SoundId(out))
    }
}

impl fmt::Debug for SoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SoundId({})", self.short())
    }
}

impl fmt::Display for SoundId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Where a sound in the library came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
pub enum Origin {
    /// Imported or recorded here: never evicted.
    #[default]
    Local,
    /// Fetched from a peer: lives in the budgeted cache area, evictable unless pinned.
    Remote,
}

/// Everything the library records about one sound.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SoundMeta {
    /// Content id (hash of the blob).
    pub id: SoundId,
    /// Unique name within the library.
    pub name: String,
    /// Free-form tags, sorted, no duplicates.
    pub tags: Vec<String>,
    /// Hotkey bound to it, if any (unique within the library).
    pub key: Option<String>,
    /// The sound's own gain, dB, applied after loudness normalisation.
    pub gain_db: f32,
    /// Length in frames at `sample_rate`.
    pub frames: u64,
    /// Native sample rate.
    pub sample_rate: u32,
    /// Native channels.
    pub channels: u16,
    /// Container and codec, e.g. "flac", "ogg/vorbis", "wav/pcm_s16le".
    pub format: String,
    /// Blob size in bytes.
    pub size: u64,
    /// When it was added, Unix time in milliseconds.
    pub added_ms: u64,
    /// Integrated loudness (EBU R128), LUFS; `None` for silence or very short sounds.
    pub loudness_lufs: Option<f32>,
    /// When it was last played, Unix time in milliseconds.
    pub last_played_ms: Option<u64>,
    /// Where it came from.
    pub origin: Origin,
}

impl SoundMeta {
    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate.max(1))
    }

    /// Duration as people read it: `m:ss.s`, or `h:mm:ss` from an hour.
    pub fn duration_text(&self) -> String {
        duration_text(self.duration_secs())
    }
}

/// Seconds as `m:ss.s`, or `h:mm:ss` from an hour.
pub fn duration_text(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs >= 3600.0 {
        let s = secs.round() as u64;
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        let tenths = (secs * 10.0).round() as u64;
        format!("{}:{:02}.{}", tenths / 600, tenths / 10 % 60, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(1.54), "0:01.5");
        assert_eq!(duration_text(75.0), "1:15.0");
        assert_eq!(duration_text(3725.0), "1:02:05");
    }

    #[test]
    fn hex_round_trip() {
        let id = SoundId(*blake3::hash(b"abc").as_bytes());
        let hex = id.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(SoundId::from_hex(&hex), Some(id));
        assert_eq!(id.short(), hex[..12]);
        assert_eq!(SoundId::from_hex("zz"), None);
        assert_eq!(SoundId::from_hex(&"g".repeat(64)), None);
    }
}
