//! Time as the model keeps it: one real time, and each node's monotonic clock running at its
//! own rate within the drift the lease argument allows (`MAX_DRIFT_PERCENT` in
//! `src/core/quorum.rs`). Real time is counted in units fine enough that every clock's
//! millisecond ticks fall on whole units, so the order of any two ticks of any two clocks is
//! exact, not rounded.

use bully::core::quorum::MAX_DRIFT_PERCENT;

const D: u64 = MAX_DRIFT_PERCENT;

/// Units of real time in one real millisecond.
pub const UNITS_PER_MS: u64 = (100 - D) * (100 + D);

/// How fast a node's clock runs against real time: at either end of the drift the code
/// assumes, or exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rate {
    /// `100 - D` % of real time.
    Slow,
    Exact,
    /// `100 + D` % of real time.
    Fast,
}

impl Rate {
    /// Real units between two ticks of this clock's milliseconds.
    pub fn period(self) -> u64 {
        match self {
            Rate::Slow => 100 * (100 + D),
            Rate::Exact => UNITS_PER_MS,
            Rate::Fast => 100 * (100 - D),
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Rate::Slow => "slow",
            Rate::Exact => "exact",
            Rate::Fast => "fast",
        }
    }
}

/// A node's clock: milliseconds since its process started (`src/runtime/clock.rs`), read as
/// the shell reads it, rounded down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Clock {
    /// The real time its process started.
    pub epoch: u64,
    pub rate: Rate,
}

impl Clock {
    /// The clock's reading at real time `t`.
    pub fn at(self, t: u64) -> u64 {
        t.saturating_sub(self.epoch) / self.rate.period()
    }

    /// The real time at which the clock first reads `ms`.
    pub fn when(self, ms: u64) -> u64 {
        self.epoch + ms * self.rate.period()
    }
}

/// Real time `t` in milliseconds, for traces.
pub fn ms(t: u64) -> String {
    format!("{:.3} ms", t as f64 / UNITS_PER_MS as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_drift_by_the_bound_and_tick_on_whole_units() {
        let slow = Clock {
            epoch: 0,
            rate: Rate::Slow,
        };
        let fast = Clock {
            epoch: 0,
            rate: Rate::Fast,
        };
        let second = 1000 * UNITS_PER_MS;
        assert_eq!((slow.at(second), fast.at(second)), (990, 1010));
        assert_eq!(slow.at(slow.when(7)), 7);
        assert_eq!(slow.at(slow.when(7) - 1), 6);
    }
}
