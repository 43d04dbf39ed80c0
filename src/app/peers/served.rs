//! Blobs served to peers, told as one line per burst: a peer fetching a thousand
//! files reads as "sent 1000 files (123.4 MB) to bee", not as a thousand lines in the
//! log and on the screen. A single file reads as before, with its id.
//!
//! Pure: events and `now` in, lines out; never blocks.

use std::time::{Duration, Instant};

use crate::domain::SoundId;

/// A burst ends when a peer has fetched nothing more for this long.
const QUIET: Duration = Duration::from_millis(500);

/// What one peer fetched in its current burst.
struct Tally {
    name: String,
    files: u64,
    bytes: u64,
    first: SoundId,
    last: Instant,
}

/// The bursts being counted, by peer name.
#[derive(Default)]
pub(super) struct Served {
    tallies: Vec<Tally>,
}

impl Served {
    /// `name` fetched the blob `id` of `bytes` bytes from us.
    pub(super) fn add(&mut self, name: &str, id: SoundId, bytes: u64, now: Instant) {
        match self.tallies.iter_mut().find(|t| t.name == name) {
            Some(t) => {
                t.files += 1;
                t.bytes += bytes;
                t.last = now;
            }
            None => self.tallies.push(Tally {
                name: name.to_string(),
                files: 1,
                bytes,
                first: id,
                last: now,
            }),
        }
    }

    /// The lines of the bursts that ended by `now` (forgotten once told).
    pub(super) fn ended(&mut self, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        self.tallies.retain(|t| {
            if now.saturating_duration_since(t.last) < QUIET {
                return true;
            }
            lines.push(if t.files == 1 {
                format!(
                    "sent {} to {} ({} KB)",
                    t.first.short(),
                    t.name,
                    t.bytes / 1000
                )
            } else {
                format!(
                    "sent {} files ({:.1} MB) to {}",
                    t.files,
                    t.bytes as f64 / 1e6,
                    t.name
                )
            });
            false
        });
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_one_line_told_once_it_is_over() {
        let t0 = Instant::now();
        let mut s = Served::default();
        for i in 0..1000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            s.add(
                "bee",
                SoundId(id),
                123_400,
                t0 + Duration::from_micros(u64::from(i) * 300),
            );
        }
        s.add("ay", SoundId([9; 32]), 9_500, t0);
        let end = t0 + Duration::from_micros(999 * 300);
        assert!(s.ended(end).is_empty(), "both bursts go on");
        assert_eq!(
            s.ended(t0 + QUIET),
            vec![format!("sent {} to ay (9 KB)", SoundId([9; 32]).short())],
            "one file reads as before"
        );
        assert!(s.ended(end + QUIET / 2).is_empty(), "bee is still fetching");
        assert_eq!(
            s.ended(end + QUIET),
            vec!["sent 1000 files (123.4 MB) to bee".to_string()]
        );
        assert!(s.ended(end + QUIET * 10).is_empty(), "told once");
    }
}
