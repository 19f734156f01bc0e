//! Reading flags, each falling back to its `BULLY_*` environment variable. A flag always wins
//! over its variable, so a unit file can set defaults that an operator still overrides by hand.

use std::ffi::OsString;
use std::time::Duration;

/// A bad command line: one line for the user, then exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads flags, falling back to `BULLY_*` variables from `env`.
pub struct Flags<'a> {
    args: pico_args::Arguments,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Flags<'a> {
    pub fn new(args: Vec<OsString>, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Flags {
            args: pico_args::Arguments::from_vec(args),
            env,
        }
    }

    pub fn contains(&mut self, flag: &'static str) -> bool {
        self.args.contains(flag)
    }

    /// A switch: given as a flag, or its `BULLY_` variable set to `1`, `true` or `yes`.
    pub fn switch(&mut self, flag: &'static str) -> Result<bool, UsageError> {
        if self.args.contains(flag) {
            return Ok(true);
        }
        let var = env_name(flag);
        match (self.env)(&var)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("" | "0" | "false" | "no") => Ok(false),
            Some("1" | "true" | "yes") => Ok(true),
            Some(other) => Err(UsageError(format!(
                "{var}: expected 1, true, yes, 0, false or no, got '{other}'"
            ))),
        }
    }

    /// The flag's value, else its `BULLY_` variable's.
    pub fn value(&mut self, flag: &'static str) -> Result<Option<String>, UsageError> {
        match self.args.opt_value_from_str::<_, String>(flag) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => Ok((self.env)(&env_name(flag)).filter(|v| !v.is_empty())),
            Err(e) => Err(UsageError(format!("{flag}: {e}"))),
        }
    }

    pub fn parsed<T>(
        &mut self,
        flag: &'static str,
        expects: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, UsageError> {
        match self.value(flag)? {
            None => Ok(None),
            Some(v) => parse(&v)
                .map(Some)
                .ok_or_else(|| UsageError(format!("{flag}: expected {expects}, got '{v}'"))),
        }
    }

    pub fn duration(
        &mut self,
        flag: &'static str,
        default: Duration,
    ) -> Result<Duration, UsageError> {
        Ok(self
            .parsed(
                flag,
                "a duration like 250ms, 15s, 2m or a number of seconds",
                parse_duration,
            )?
            .unwrap_or(default))
    }

    pub fn free(&mut self, what: &str, expects: &str) -> Result<String, UsageError> {
        match self.args.opt_free_from_str::<String>() {
            Ok(Some(v)) if !v.starts_with('-') => Ok(v),
            Ok(Some(v)) => Err(UsageError(format!("unknown option '{v}'"))),
            Ok(None) => Err(UsageError(format!("missing {what} ({expects})"))),
            Err(e) => Err(UsageError(format!("{what}: {e}"))),
        }
    }

    /// A shell command; an empty one counts as none, so `BULLY_EXEC=` turns it off.
    pub fn command(&mut self, flag: &'static str) -> Result<Option<String>, UsageError> {
        Ok(self.value(flag)?.filter(|c| !c.trim().is_empty()))
    }

    /// Anything left over is a mistake worth naming.
    pub fn finish(self) -> Result<(), UsageError> {
        let rest = self.args.finish();
        match rest.first() {
            None => Ok(()),
            Some(a) => Err(UsageError(format!(
                "unexpected argument '{}'",
                a.to_string_lossy()
            ))),
        }
    }
}

/// `--health-interval` becomes `BULLY_HEALTH_INTERVAL`.
pub fn env_name(flag: &str) -> String {
    format!(
        "BULLY_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// `250ms`, `15s`, `2m`, `1h`, or a bare (possibly fractional) number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let secs = num.parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs <= 365.0 * 86400.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        for bad in ["", "s", "-1s", "1x", "abc", "1e9", "99999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn variable_names() {
        assert_eq!(env_name("--health-interval"), "BULLY_HEALTH_INTERVAL");
        assert_eq!(env_name("--id"), "BULLY_ID");
    }
}
