//! Hybrid logical clocks: the timestamps every synced change carries. A stamp is the
//! wall time in milliseconds, a counter for changes within one millisecond (or while
//! the wall clock stands behind a stamp already seen), and the device that made it;
//! stamps are totally ordered by (wall, counter, device), so two replicas that hold
//! the same changes pick the same winner, with no coordination.
//!
//! A peer's clock far ahead of ours must not let its changes win forever: a stamp
//! more than [`MAX_SKEW_MS`] ahead of our wall clock is refused (the change is asked
//! for again later, when our clock has caught up), never folded into our clock.
//!
//! Pure: the wall time is passed in. Never reads a clock, never panics.

use serde::{Deserialize, Serialize};

/// How far ahead of our wall clock a peer's stamp may be: a minute covers machines
/// whose clocks are not synchronised well; beyond that the peer's clock is wrong.
pub const MAX_SKEW_MS: u64 = 60_000;

/// One device's id in stamps: a short, stable number derived from its peer id.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Device(pub u64);

/// A hybrid logical clock stamp. Ordered by wall time, then counter, then device.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Stamp {
    /// Wall time, ms since the Unix epoch (as the clock that made it believed).
    pub wall_ms: u64,
    /// Changes within one `wall_ms`.
    pub counter: u32,
    /// Who made it: breaks ties.
    pub device: Device,
}

/// A stamp from a peer that is too far ahead of our clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "a timestamp {ahead_ms} ms ahead of this machine's clock (at most {} ms is believed)",
    MAX_SKEW_MS
)]
pub struct TooFarAhead {
    /// How far ahead it was.
    pub ahead_ms: u64,
}

/// One device's clock.
#[derive(Debug, Clone)]
pub struct Clock {
    device: Device,
    last: Stamp,
}

impl Clock {
    /// A clock for `device` that has seen nothing.
    pub fn new(device: Device) -> Clock {
        Clock {
            device,
            last: Stamp {
                wall_ms: 0,
                counter: 0,
                device,
            },
        }
    }

    /// A clock for `device` that has already made or seen `last` (restored from disk).
    pub fn resume(device: Device, last: Stamp) -> Clock {
        Clock {
            device,
            last: Stamp { device, ..last },
        }
    }

    /// The device.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The latest stamp made or seen.
    pub fn last(&self) -> Stamp {
        self.last
    }

    /// A new stamp for a local change at wall time `now_ms`: later than every stamp
    /// made or seen here.
    pub fn tick(&mut self, now_ms: u64) -> Stamp {
        let (wall_ms, counter) = if now_ms > self.last.wall_ms {
            (now_ms, 0)
        } else if self.last.counter < u32::MAX {
            (self.last.wall_ms, self.last.counter + 1)
        } else {
            (self.last.wall_ms + 1, 0)
        };
        self.last = Stamp {
            wall_ms,
            counter,
            device: self.device,
        };
        self.last
    }

    /// Checks a peer's stamp against our wall clock without folding it in.
    pub fn check(&self, remote: Stamp, now_ms: u64) -> Result<(), TooFarAhead> {
        let limit = now_ms.saturating_add(MAX_SKEW_MS);
        if remote.wall_ms > limit {
            return Err(TooFarAhead {
                ahead_ms: remote.wall_ms - now_ms,
            });
        }
        Ok(())
    }

    /// Folds in a peer's stamp (so our next change is later than it); refuses one
    /// too far ahead of `now_ms`.
    pub fn observe(&mut self, remote: Stamp, now_ms: u64) -> Result<(), TooFarAhead> {
        self.check(remote, now_ms)?;
        if remote > self.last {
            self.last = Stamp {
                device: self.device,
                ..remote
            };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_only_go_forward_even_when_the_wall_clock_steps_back() {
        let mut c = Clock::new(Device(1));
        let a = c.tick(1000);
        let b = c.tick(1000);
        let d = c.tick(500); // the wall clock stepped back
        assert!(a < b && b < d);
        assert_eq!(d.wall_ms, 1000);
        let e = c.tick(2000);
        assert_eq!((e.wall_ms, e.counter), (2000, 0));
    }

    #[test]
    fn a_peers_stamp_is_folded_in_and_ties_break_by_device() {
        let mut c = Clock::new(Device(1));
        let remote = Stamp {
            wall_ms: 5000,
            counter: 3,
            device: Device(9),
        };
        c.observe(remote, 4990).unwrap();
        let next = c.tick(4995);
        assert!(next > remote);
        let same = Stamp {
            device: Device(2),
            ..remote
        };
        assert!(same < remote, "the device breaks a tie");
    }

    #[test]
    fn a_stamp_far_ahead_is_refused_and_not_folded_in() {
        let mut c = Clock::new(Device(1));
        let year = 365 * 24 * 3600 * 1000;
        let liar = Stamp {
            wall_ms: 1_000_000 + year,
            counter: 0,
            device: Device(7),
        };
        let e = c.observe(liar, 1_000_000).unwrap_err();
        assert_eq!(e.ahead_ms, year);
        assert!(c.tick(1_000_000).wall_ms <= 1_000_000);
        // Within the bound it is believed.
        let near = Stamp {
            wall_ms: 1_000_000 + MAX_SKEW_MS,
            ..liar
        };
        assert!(c.observe(near, 1_000_000).is_ok());
    }

    #[test]
    fn the_counter_never_overflows() {
        let mut c = Clock::new(Device(1));
        c.last.counter = u32::MAX;
        c.last.wall_ms = 10;
        let s = c.tick(5);
        assert_eq!((s.wall_ms, s.counter), (11, 0));
    }
}
