//! The node's log: simple_logger on stderr, one line per record,
//! `2026-01-02T03:04:05.678Z INFO  [target] message` in UTC, ureq's chatter below warnings
//! dropped. The level is a `RUST_LOG`-style list: `debug`, or
//! `info,bully::runtime::watch=debug,ureq=info`.
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

/// What to log: a level for everything, and levels for targets (a module path and what lies
/// under it), as `RUST_LOG` spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSpec {
    pub level: LevelFilter,
    pub targets: Vec<(String, LevelFilter)>,
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            level: LevelFilter::Info,
            targets: Vec::new(),
        }
    }
}

impl LogSpec {
    /// What `--log-level` expects, for its error.
    pub const EXPECTS: &'static str =
        "error, warn, info, debug, trace or off, or a list like info,bully::runtime=debug";

    /// `LEVEL`, `TARGET=LEVEL` or a comma-separated list of them. `None` for anything else.
    pub fn parse(text: &str) -> Option<LogSpec> {
        let mut spec = LogSpec::default();
        let mut any = false;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            any = true;
            match part.split_once('=') {
                Some((target, level)) => {
                    let target = target.trim();
                    if !valid_target(target) {
                        return None;
                    }
                    spec.targets
                        .push((target.to_string(), level_of(level.trim())?));
                }
                // A bare word must be a level: `RUST_LOG` reads a bare `debgu` as a target
                // at trace, which would hide the typo.
                None => spec.level = level_of(part)?,
            }
        }
        any.then_some(spec)
    }
}

fn level_of(text: &str) -> Option<LevelFilter> {
    match text.to_ascii_lowercase().as_str() {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// A module path: `bully::runtime::watch`, `ureq`.
fn valid_target(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && text
            .split("::")
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// simple_logger as the node configures it.
fn configured(spec: &LogSpec) -> SimpleLogger {
    let mut targets: Vec<(String, LevelFilter)> = ["ureq", "ureq_proto"]
        .iter()
        .map(|t| (t.to_string(), LevelFilter::Warn))
        .collect();
    // The user's word replaces the default for the same target.
    for (target, level) in &spec.targets {
        targets.retain(|(t, _)| t != target);
        targets.push((target.clone(), *level));
    }
    targets
        .into_iter()
        .fold(
            SimpleLogger::new().with_level(spec.level),
            |logger, (target, level)| logger.with_module_level(&target, level),
        )
        .with_utc_timestamps()
}

/// Installs the logger; a second call changes nothing.
pub fn init(spec: &LogSpec) {
    let inner = configured(spec);
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
        let level = |level| LogSpec {
            level,
            targets: Vec::new(),
        };
        let logger = Guarded(configured(&level(LevelFilter::Trace)));
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(!logger.enabled(&meta("ureq::unversioned", Level::Info)));
        assert!(!logger.enabled(&meta("ureq_proto", Level::Debug)));
        assert!(logger.enabled(&meta("ureq", Level::Warn)));
        assert!(logger.enabled(&meta("bully::election", Level::Trace)));
        let quiet = Guarded(configured(&level(LevelFilter::Warn)));
        assert!(!quiet.enabled(&meta("bully::election", Level::Info)));
    }

    #[test]
    fn levels_are_spelled_as_in_rust_log() {
        let spec = LogSpec::parse("warn, bully::runtime::watch=debug,ureq=info").unwrap();
        assert_eq!(spec.level, LevelFilter::Warn);
        let logger = Guarded(configured(&spec));
        let meta = |target, level| Metadata::builder().target(target).level(level).build();
        assert!(logger.enabled(&meta("bully::runtime::watch", Level::Debug)));
        assert!(!logger.enabled(&meta("bully::election", Level::Info)));
        assert!(logger.enabled(&meta("ureq::pool", Level::Info)));
        assert_eq!(LogSpec::parse("DEBUG").unwrap().level, LevelFilter::Debug);
        for bad in [
            "",
            ",",
            "loud",
            "bully=loud",
            "=info",
            "a::=info",
            "x/y=info",
            "a b",
        ] {
            assert_eq!(LogSpec::parse(bad), None, "{bad:?}");
        }
    }
}
