//! What a listener tells a talker about a call, about once a second: loss, lateness
//! and buffer depth, and the talker's session it refers to. The talker's robust
//! profile tunes its FEC to the loss, and both screens show the figures.
//!
//! Encoded with postcard inside a feature message; pure, never panics on any bytes.

use serde::{Deserialize, Serialize};

/// A listener's report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The talk session it is about.
    pub stream: u32,
    /// Datagrams lost over the last interval, per mille.
    pub loss_permille: u16,
    /// Frames that came too late, per mille.
    pub late_permille: u16,
    /// Frames concealed, per mille.
    pub concealed_permille: u16,
    /// The jitter buffer's depth, µs.
    pub depth_us: u32,
    /// Its target, µs.
    pub target_us: u32,
}

impl Report {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// A report from bytes; `None` when they are not one (or are out of range).
    pub fn decode(b: &[u8]) -> Option<Report> {
        let (r, rest) = postcard::take_from_bytes::<Report>(b).ok()?;
        let sane = rest.is_empty()
            && r.loss_permille <= 1000
            && r.late_permille <= 1000
            && r.concealed_permille <= 1000;
        sane.then_some(r)
    }

    /// Loss in percent.
    pub fn loss_percent(&self) -> f64 {
        f64::from(self.loss_permille) / 10.0
    }
}

/// A peer joins (`joined`) or leaves a call with the receiver: a relay keeps its
/// group by these, and a screen shows who is in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallNote {
    /// The talk session.
    pub stream: u32,
    /// Whether it joins (false: it leaves).
    pub joined: bool,
}

impl CallNote {
    /// Its encoding.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// A note from bytes.
    pub fn decode(b: &[u8]) -> Option<CallNote> {
        match postcard::take_from_bytes::<CallNote>(b) {
            Ok((n, [])) => Some(n),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_garbage_is_refused() {
        let r = Report {
            stream: 9,
            loss_permille: 52,
            late_permille: 3,
            concealed_permille: 4,
            depth_us: 12_000,
            target_us: 11_000,
        };
        assert_eq!(Report::decode(&r.encode()), Some(r));
        assert!((r.loss_percent() - 5.2).abs() < 1e-9);
        let mut bad = r;
        bad.loss_permille = 2000;
        assert_eq!(Report::decode(&bad.encode()), None);
        assert_eq!(Report::decode(&[0xff; 3]), None);
        let mut long = r.encode();
        long.push(0);
        assert_eq!(Report::decode(&long), None);
        let n = CallNote {
            stream: 1,
            joined: true,
        };
        assert_eq!(CallNote::decode(&n.encode()), Some(n));
        assert_eq!(CallNote::decode(&[]), None);
    }
}
