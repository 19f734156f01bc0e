//! The node's log: one line per record on stderr, `2026-01-02T03:04:05.678Z INFO  [target]
//! message`, in UTC. Written by hand rather than configured: `simple_logger` wrote to stdout
//! and panicked when the write failed, so a node whose output pipe had gone (`bully ... | tee`,
//! then `tee` dies) lost the thread that logged, the signal thread first. Here a failed write
//! is dropped: a log line is never worth the node.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Crates whose chatter only matters when it is a warning or worse.
const QUIET_TARGETS: [&str; 2] = ["ureq", "ureq_proto"];

struct Logger;

static LOGGER: Logger = Logger;

/// Installs the logger at `level`; a second call changes nothing.
pub fn init(level: LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

impl Log for Logger {
    fn enabled(&self, meta: &Metadata) -> bool {
        let quiet = QUIET_TARGETS
            .iter()
            .any(|t| meta.target() == *t || meta.target().starts_with(&format!("{t}::")));
        !quiet || meta.level() <= Level::Warn
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} [{}] {}\n",
            utc_now(),
            record.level(),
            record.target(),
            record.args()
        );
        // One write per line, so lines of different threads do not interleave; errors (a
        // closed pipe, a full disk) are ignored.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// The wall clock as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    utc(since.as_secs(), since.subsec_millis())
}

fn utc(secs: u64, millis: u32) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Year, month and day of `days` since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc(0, 0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day in a century year divisible by 400), 12:34:56.
        assert_eq!(utc(951_827_696, 7), "2000-02-29T12:34:56.007Z");
        // 2024-12-31 23:59:59, the last second of a leap year.
        assert_eq!(utc(1_735_689_599, 999), "2024-12-31T23:59:59.999Z");
        assert_eq!(utc(1_735_689_600, 0), "2025-01-01T00:00:00.000Z");
        // 2100-03-01: 2100 is not a leap year.
        assert_eq!(utc(4_107_542_400, 0), "2100-03-01T00:00:00.000Z");
    }

    #[test]
    fn library_chatter_below_warnings_is_dropped() {
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(!LOGGER.enabled(&meta("ureq::unversioned", Level::Info)));
        assert!(!LOGGER.enabled(&meta("ureq_proto", Level::Debug)));
        assert!(LOGGER.enabled(&meta("ureq", Level::Warn)));
        assert!(LOGGER.enabled(&meta("ureqx", Level::Info)));
        assert!(LOGGER.enabled(&meta("bully::election", Level::Trace)));
    }
}
