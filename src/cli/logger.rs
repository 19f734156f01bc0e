//! The node's log: simple_logger on stderr, one line per record,
//! `2026-01-02T03:04:05.678Z INFO  [target] message` in UTC, ureq's chatter below warnings
//! dropped.
//!
//! simple_logger writes each line with `eprintln!`, which panics when the write fails: a
//! node whose output pipe had gone (`bully ... | tee`, then `tee` dies) lost whichever thread
//! logged next, the signal thread first, and with it SIGTERM. [`Guarded`] calls it under
//! `catch_unwind` and drops the line instead: a log line is never worth the node. This relies
//! on unwinding, which the release profile keeps (`panic = "unwind"`, checked by
//! `make cross-test`).

use log::{LevelFilter, Log, Metadata, Record};
use simple_logger::SimpleLogger;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// simple_logger behind a guard: a line it cannot write is dropped, never a panic.
struct Guarded(SimpleLogger);

impl Log for Guarded {
    fn enabled(&self, meta: &Metadata) -> bool {
        self.0.enabled(meta)
    }

    fn log(&self, record: &Record) {
        if self.0.enabled(record.metadata()) {
            // A failed write (a closed pipe, a full disk) panics inside; the line is lost.
            let _ = catch_unwind(AssertUnwindSafe(|| self.0.log(record)));
        }
    }

    fn flush(&self) {}
}

/// simple_logger as the node configures it.
fn configured(level: LevelFilter) -> SimpleLogger {
    SimpleLogger::new()
        .with_level(level)
        .with_module_level("ureq", LevelFilter::Warn)
        .with_module_level("ureq_proto", LevelFilter::Warn)
        .with_utc_timestamps()
}

/// Installs the logger at `level`; a second call changes nothing.
pub fn init(level: LevelFilter) {
    let inner = configured(level);
    let max = inner.max_level();
    let logger: &'static Guarded = Box::leak(Box::new(Guarded(inner)));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[test]
    fn library_chatter_below_warnings_is_dropped() {
        let logger = Guarded(configured(LevelFilter::Trace));
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(!logger.enabled(&meta("ureq::unversioned", Level::Info)));
        assert!(!logger.enabled(&meta("ureq_proto", Level::Debug)));
        assert!(logger.enabled(&meta("ureq", Level::Warn)));
        assert!(logger.enabled(&meta("bully::election", Level::Trace)));
        let quiet = Guarded(configured(LevelFilter::Warn));
        assert!(!quiet.enabled(&meta("bully::election", Level::Info)));
    }
}
