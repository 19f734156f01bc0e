//! Warnings that a peer can provoke at will (a forged request, a refused handshake) must not
//! become a flood of log lines: at most a few a second are shown, and the rest of a second are
//! counted in one line when the next second's first one comes.

use crate::sync::lock;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// At most `limit` lines a wall-clock second.
pub struct PerSecond {
    limit: u64,
    /// The second being counted, and how many events fell in it.
    window: Mutex<(u64, u64)>,
}

/// What to log for one event.
pub struct Admit {
    /// Log this event's own line.
    pub show: bool,
    /// Events of the previous counted second that were not shown: log a line counting them
    /// first, when not zero.
    pub left_out: u64,
}

impl PerSecond {
    pub const fn new(limit: u64) -> PerSecond {
        PerSecond {
            limit,
            window: Mutex::new((0, 0)),
        }
    }

    /// Counts one event now.
    pub fn admit(&self) -> Admit {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.admit_at(second)
    }

    fn admit_at(&self, second: u64) -> Admit {
        let mut w = lock(&self.window);
        let mut left_out = 0;
        if w.0 != second {
            left_out = w.1.saturating_sub(self.limit);
            *w = (second, 0);
        }
        w.1 += 1;
        Admit {
            show: w.1 <= self.limit,
            left_out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_shows_the_limit_then_counts_the_rest_when_the_next_second_starts() {
        let log = PerSecond::new(5);
        let shown = (0..12).filter(|_| log.admit_at(7).show).count();
        assert_eq!(shown, 5);
        let next = log.admit_at(8);
        assert!(next.show);
        assert_eq!(next.left_out, 7);
        assert_eq!(log.admit_at(9).left_out, 0);
    }
}
