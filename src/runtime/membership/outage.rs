//! Quiet when nothing changes: a failure that repeats for as long as something is away (the
//! registry, most often) is logged when it starts, then as a reminder at a slow and slowing
//! pace, and once more when it ends. Each failure is still counted (in `/metrics`).

use crate::sync::lock;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first reminder comes this long after the failure started ...
const FIRST_REMINDER: Duration = Duration::from_secs(60);
/// ... and each later one twice as long after the one before, up to this.
const MAX_REMINDER: Duration = Duration::from_secs(600);

/// One kind of repeated failure, e.g. "registering in dir /run/bully/bully".
pub struct Outage {
    what: String,
    state: Mutex<Option<Since>>,
}

struct Since {
    started: Instant,
    failures: u64,
    /// How it failed (a label like "unreachable"); a change of kind is logged at once.
    kind: String,
    next_reminder: Instant,
    every: Duration,
}

/// What the caller should log, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Say {
    /// Nothing: the failure goes on, or things keep working.
    Nothing,
    /// It started (or failed in a new way): log a warning.
    Started,
    /// It goes on: a reminder, with how long and how many failures.
    StillFailing { lasted: Duration, failures: u64 },
    /// It ended after `lasted` and `failures`.
    Recovered { lasted: Duration, failures: u64 },
}

impl Outage {
    pub fn new(what: impl Into<String>) -> Outage {
        Outage {
            what: what.into(),
            state: Mutex::new(None),
        }
    }

    /// A failure of `kind` with `error`: logged as the outage's start, as a reminder, or not.
    pub fn failed(&self, kind: &str, error: &str) {
        match self.failed_at(Instant::now(), kind) {
            Say::Started => log::warn!(
                "{} failed: {error} (counted in /metrics; a reminder follows if it lasts)",
                self.what
            ),
            Say::StillFailing { lasted, failures } => log::warn!(
                "{} still failing after {} ({failures} failures): {error}",
                self.what,
                human(lasted)
            ),
            _ => {}
        }
    }

    /// A success: the outage, if there was one, is over.
    pub fn ok(&self) {
        if let Say::Recovered { lasted, failures } = self.ok_at(Instant::now()) {
            log::info!(
                "{} works again after {} ({failures} failures)",
                self.what,
                human(lasted)
            );
        }
    }

    /// Whether a failure is going on.
    pub fn failing(&self) -> bool {
        lock(&self.state).is_some()
    }

    fn failed_at(&self, now: Instant, kind: &str) -> Say {
        let mut state = lock(&self.state);
        match state.as_mut() {
            Some(s) if s.kind == kind => {
                s.failures += 1;
                if now < s.next_reminder {
                    return Say::Nothing;
                }
                s.every = (s.every * 2).min(MAX_REMINDER);
                s.next_reminder = now + s.every;
                Say::StillFailing {
                    lasted: now - s.started,
                    failures: s.failures,
                }
            }
            _ => {
                let started = state.as_ref().map_or(now, |s| s.started);
                let failures = state.as_ref().map_or(0, |s| s.failures) + 1;
                *state = Some(Since {
                    started,
                    failures,
                    kind: kind.to_string(),
                    next_reminder: now + FIRST_REMINDER,
                    every: FIRST_REMINDER,
                });
                Say::Started
            }
        }
    }

    fn ok_at(&self, now: Instant) -> Say {
        match lock(&self.state).take() {
            Some(s) => Say::Recovered {
                lasted: now - s.started,
                failures: s.failures,
            },
            None => Say::Nothing,
        }
    }
}

/// `45 s`, `12 min`, `3 h 5 min`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_when_it_starts_then_at_a_slowing_pace_then_when_it_ends() {
        let o = Outage::new("registering");
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(o.ok_at(t0), Say::Nothing);
        assert_eq!(o.failed_at(t0, "unreachable"), Say::Started);
        let said: Vec<u64> = (1..=1200)
            .filter(|s| o.failed_at(at(*s), "unreachable") != Say::Nothing)
            .collect();
        // Reminders after 1, 3, 7, 15 minutes: 4 lines in 20 minutes of failures every second.
        assert_eq!(said, vec![60, 180, 420, 900]);
        assert_eq!(o.failed_at(at(1201), "refused"), Say::Started, "a new kind");
        assert!(o.failing());
        assert_eq!(
            o.ok_at(at(1260)),
            Say::Recovered {
                lasted: Duration::from_secs(1260),
                failures: 1202
            }
        );
        assert!(!o.failing());
        assert_eq!(o.ok_at(at(1261)), Say::Nothing);
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(720)), "12 min");
        assert_eq!(human(Duration::from_secs(11_100)), "3 h 5 min");
    }
}
