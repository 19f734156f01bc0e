//! Repeated log lines, summarised: a burst of the same kind of line (13 "Ignoring stale
//! announcement" lines in 9 ms after a SIGCONT) shows its first few, then one line that says
//! how many were left out.

use crate::sync::lock;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one kind shown per window; the rest are counted.
const SHOWN: u32 = 3;
const WINDOW: Duration = Duration::from_secs(1);

/// What to do with a line.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `left_out` lines of its kind were not shown since the last one that was.
    Show { left_out: u32 },
    /// Count it, do not log it.
    LeaveOut,
}

/// Per kind of line: when its window began, lines shown in it, lines left out.
pub struct Repeats<K> {
    kinds: Mutex<HashMap<K, (Instant, u32, u32)>>,
}

impl<K: Hash + Eq> Default for Repeats<K> {
    fn default() -> Self {
        Repeats {
            kinds: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> Repeats<K> {
    pub fn admit(&self, kind: K, now: Instant) -> Verdict {
        let mut kinds = lock(&self.kinds);
        let entry = kinds.entry(kind).or_insert((now, 0, 0));
        let (start, shown, left_out) = entry;
        if now.duration_since(*start) >= WINDOW {
            let was_left_out = *left_out;
            *entry = (now, 1, 0);
            return Verdict::Show {
                left_out: was_left_out,
            };
        }
        if *shown < SHOWN {
            *shown += 1;
            return Verdict::Show { left_out: 0 };
        }
        *left_out += 1;
        Verdict::LeaveOut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_shows_its_first_lines_and_counts_the_rest_on_the_next_one_shown() {
        let r = Repeats::default();
        let t = Instant::now();
        let verdicts: Vec<Verdict> = (0..13)
            .map(|i| r.admit("stale", t + Duration::from_micros(i)))
            .collect();
        assert_eq!(
            verdicts.iter().filter(|v| **v == Verdict::LeaveOut).count(),
            10
        );
        // Another kind is not held back by it.
        assert_eq!(r.admit("won", t), Verdict::Show { left_out: 0 });
        assert_eq!(r.admit("stale", t + WINDOW), Verdict::Show { left_out: 10 });
        assert_eq!(
            r.admit("stale", t + WINDOW * 3),
            Verdict::Show { left_out: 0 }
        );
    }
}
