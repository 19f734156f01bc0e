//! Reading flags, each falling back to its `BULLY_*` environment variable. A flag always wins
//! over its variable, so a unit file can set defaults that an operator still overrides by hand.
//!
//! Nothing is silent: a flag given twice, a flag without its value, an unknown option (with the
//! one it may have meant) and a bad value are errors naming the flag, or the variable when the
//! value came from there; a `BULLY_*` variable that bully does not know is a warning naming it.

use crate::runtime::work::hooks::VARIABLES as HOOK_VARIABLES;
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

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    /// The `BULLY_*` variable of that name.
    Var(String),
}

/// Variables read without a flag of their own: the systemd unit's PORT and NAME (for the
/// command line it builds), and the commands' instance and defaults file (an operator's shell
/// may export them; a node does not read them). Those hooks get are [`HOOK_VARIABLES`].
const UNIT_VARIABLES: [&str; 4] = [
    "BULLY_PORT",
    "BULLY_NAME",
    "BULLY_INSTANCE",
    "BULLY_DEFAULTS",
];

/// Reads flags, falling back to `BULLY_*` variables from `env`.
pub struct Flags<'a> {
    args: pico_args::Arguments,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    /// The `BULLY_*` variables set, to find the ones bully does not know.
    variables: Vec<String>,
    /// Every flag asked for: the known ones.
    asked: Vec<&'static str>,
    /// Where each flag that has a value got it.
    given: Vec<(&'static str, Source)>,
    /// Variables that do nothing, for the log (or stderr).
    pub warnings: Vec<String>,
}

impl<'a> Flags<'a> {
    /// `variables` are the names of the `BULLY_*` variables set.
    pub fn new(
        args: Vec<OsString>,
        env: &'a dyn Fn(&str) -> Option<String>,
        variables: &[String],
    ) -> Self {
        Flags {
            args: pico_args::Arguments::from_vec(args),
            env,
            variables: variables.to_vec(),
            asked: Vec::new(),
            given: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Whether `flag` is among the arguments (removing it); for `--help` and the like.
    pub fn contains(&mut self, flag: &'static str) -> bool {
        self.asked.push(flag);
        self.args.contains(flag)
    }

    /// A switch without a variable (`--json`): given at most once.
    pub fn flag(&mut self, flag: &'static str) -> Result<bool, UsageError> {
        let given = self.contains(flag);
        if given && self.args.contains(flag) {
            return Err(twice(flag));
        }
        Ok(given)
    }

    /// A switch: given as a flag, or its `BULLY_` variable set to `1`, `true` or `yes`.
    pub fn switch(&mut self, flag: &'static str) -> Result<bool, UsageError> {
        if self.flag(flag)? {
            self.given.push((flag, Source::Flag));
            return Ok(true);
        }
        let var = env_name(flag);
        match (self.env)(&var)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("" | "0" | "false" | "no") => Ok(false),
            Some("1" | "true" | "yes") => {
                self.given.push((flag, Source::Var(var)));
                Ok(true)
            }
            Some(other) => Err(UsageError(format!(
                "{var}: expected 1, true, yes, 0, false or no, got '{other}'"
            ))),
        }
    }

    /// The flag's value, else its `BULLY_` variable's; `expects` says what a missing value
    /// should have been.
    fn raw(&mut self, flag: &'static str, expects: &str) -> Result<Option<String>, UsageError> {
        self.asked.push(flag);
        let missing = || UsageError(format!("{flag}: expected {expects} after it"));
        match self.args.opt_value_from_str::<_, String>(flag) {
            Ok(Some(v)) => {
                if v.starts_with("--") && v.len() > 2 {
                    // `--exec --on-demoted x`: the value is missing, not `--on-demoted`.
                    return Err(UsageError(format!(
                        "{flag}: expected {expects} after it, got the option '{v}'"
                    )));
                }
                match self.args.opt_value_from_str::<_, String>(flag) {
                    Ok(None) => {}
                    _ => return Err(twice(flag)),
                }
                self.given.push((flag, Source::Flag));
                Ok(Some(v))
            }
            Ok(None) => {
                let var = env_name(flag);
                let v = (self.env)(&var).filter(|v| !v.is_empty());
                if v.is_some() {
                    self.given.push((flag, Source::Var(var)));
                }
                Ok(v)
            }
            Err(pico_args::Error::OptionWithoutAValue(_)) => Err(missing()),
            Err(pico_args::Error::NonUtf8Argument) => {
                Err(UsageError(format!("{flag}: expected UTF-8 text")))
            }
            Err(e) => Err(UsageError(format!("{flag}: {e}"))),
        }
    }

    /// A flag that may be given several times (`--vip A --vip B`); without it, its
    /// `BULLY_` variable as a list separated by commas or white space. Each value is checked
    /// by `parse`, whose error follows the flag's (or variable's) name.
    pub fn repeated<T>(
        &mut self,
        flag: &'static str,
        expects: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Vec<T>, UsageError> {
        self.asked.push(flag);
        let given: Vec<String> = match self.args.values_from_str::<_, String>(flag) {
            Ok(v) => v,
            Err(pico_args::Error::OptionWithoutAValue(_)) => {
                return Err(UsageError(format!("{flag}: expected {expects} after it")))
            }
            Err(e) => return Err(UsageError(format!("{flag}: {e}"))),
        };
        let (values, source) = if given.is_empty() {
            let var = env_name(flag);
            let v = (self.env)(&var).unwrap_or_default();
            let list = v
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            (list, Source::Var(var))
        } else {
            (given, Source::Flag)
        };
        if values.is_empty() {
            return Ok(Vec::new());
        }
        self.given.push((flag, source));
        values
            .iter()
            .map(|v| {
                if v.starts_with("--") && v.len() > 2 {
                    return Err(UsageError(format!(
                        "{flag}: expected {expects} after it, got the option '{v}'"
                    )));
                }
                parse(v).map_err(|e| UsageError(format!("{}: {e}", self.source(flag))))
            })
            .collect()
    }

    /// The flag's value, else its `BULLY_` variable's.
    pub fn value(&mut self, flag: &'static str) -> Result<Option<String>, UsageError> {
        self.raw(flag, "a value")
    }

    /// A value `parse` accepts; the error names where the value came from.
    pub fn parsed<T>(
        &mut self,
        flag: &'static str,
        expects: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, UsageError> {
        match self.raw(flag, expects)? {
            None => Ok(None),
            Some(v) => parse(&v).map(Some).ok_or_else(|| {
                UsageError(format!(
                    "{}: expected {expects}, got '{v}'",
                    self.source(flag)
                ))
            }),
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
            Ok(Some(v)) => Err(self.unknown(&v)),
            Ok(None) => Err(UsageError(format!("missing {what} ({expects})"))),
            Err(e) => Err(UsageError(format!("{what}: {e}"))),
        }
    }

    /// A shell command; an empty one counts as none, so `BULLY_EXEC=` turns it off.
    pub fn command(&mut self, flag: &'static str) -> Result<Option<String>, UsageError> {
        Ok(self
            .raw(flag, "a shell command")?
            .filter(|c| !c.trim().is_empty()))
    }

    /// Where `flag`'s value came from, for messages: the flag, or its variable.
    pub fn source(&self, flag: &'static str) -> String {
        match self.given.iter().find(|(f, _)| *f == flag) {
            Some((_, Source::Var(v))) => v.clone(),
            _ => flag.to_string(),
        }
    }

    /// `flag` does nothing here (`why` says what it needs): an error when it was given on
    /// the command line, a warning when its variable set it (a defaults file shared by
    /// several nodes may well set it).
    pub fn unused(&mut self, flag: &'static str, why: &str) -> Result<(), UsageError> {
        match self.given.iter().find(|(f, _)| *f == flag).map(|(_, s)| s) {
            None => Ok(()),
            Some(Source::Flag) => Err(UsageError(format!("{flag}: {why}"))),
            Some(Source::Var(v)) => {
                self.warnings
                    .push(format!("{v} is set, but {why}; ignored"));
                Ok(())
            }
        }
    }

    /// `flag` does nothing here either, but one set of options may well serve nodes that
    /// differ (a `--lease` for nodes with and without `--quorum`): a warning however given.
    pub fn idle(&mut self, flag: &'static str, why: &str) {
        let source = match self.given.iter().find(|(f, _)| *f == flag).map(|(_, s)| s) {
            None => return,
            Some(Source::Flag) => flag.to_string(),
            Some(Source::Var(v)) => v.clone(),
        };
        self.warnings
            .push(format!("{source} is set, but {why}; ignored"));
    }

    /// Anything left over is a mistake worth naming; so is a `BULLY_*` variable that no
    /// flag reads (a warning: it may be meant for another version of bully).
    pub fn finish(mut self) -> Result<Vec<String>, UsageError> {
        let rest =
            std::mem::replace(&mut self.args, pico_args::Arguments::from_vec(vec![])).finish();
        if let Some(a) = rest.first() {
            let a = a.to_string_lossy();
            return Err(if a.starts_with('-') {
                self.unknown(&a)
            } else {
                UsageError(format!("unexpected argument '{a}'"))
            });
        }
        let known: Vec<String> = self.asked.iter().map(|f| env_name(f)).collect();
        let mut variables = std::mem::take(&mut self.variables);
        variables.sort();
        for v in variables {
            if !v.starts_with("BULLY_")
                || known.contains(&v)
                || UNIT_VARIABLES.contains(&v.as_str())
                || HOOK_VARIABLES.contains(&v.as_str())
            {
                continue;
            }
            let hint = match nearest(&v, known.iter().map(String::as_str)) {
                Some(k) => format!(" (did you mean {k}?)"),
                None => String::new(),
            };
            self.warnings
                .push(format!("{v} is not a bully variable{hint}; ignored"));
        }
        Ok(self.warnings)
    }

    /// An option no one asked for, with the known one it may have meant.
    fn unknown(&self, arg: &str) -> UsageError {
        let name = arg.split('=').next().unwrap_or(arg);
        match nearest(name, self.asked.iter().copied()) {
            Some(k) => UsageError(format!("unknown option '{name}'; did you mean '{k}'?")),
            None => UsageError(format!("unknown option '{name}'")),
        }
    }
}

fn twice(flag: &str) -> UsageError {
    UsageError(format!("{flag}: given more than once; give it once"))
}

/// The candidate closest to `word` when it is close enough to be a typo of it: at most two
/// edits, and fewer than a third of the word.
pub fn nearest<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 2);
    candidates
        .map(|c| (edits(word, c), c))
        .filter(|(d, c)| *d <= limit && *c != word)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, ASCII-case-insensitive.
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
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

    #[test]
    fn typos_find_what_was_meant() {
        let flags = ["--health-interval", "--hook-timeout", "--id", "--timeout"];
        let near = |w: &str| nearest(w, flags.iter().copied());
        assert_eq!(near("--helth-interval"), Some("--health-interval"));
        assert_eq!(near("--timeuot"), Some("--timeout"));
        assert_eq!(near("--ids"), Some("--id"));
        assert_eq!(near("--bogus"), None);
        assert_eq!(nearest("statu", ["status"].into_iter()), Some("status"));
        assert_eq!(nearest("5001", ["status"].into_iter()), None);
        assert_eq!(
            nearest(
                "BULLY_HEALTHINTERVAL",
                ["BULLY_HEALTH_INTERVAL"].into_iter()
            ),
            Some("BULLY_HEALTH_INTERVAL")
        );
    }

    #[test]
    fn a_flag_twice_or_without_its_value_is_named_once() {
        let none = |_: &str| None;
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let mut f = Flags::new(args(&["--id", "1", "--id=2"]), &none, &[]);
        assert_eq!(
            f.value("--id").unwrap_err().0,
            "--id: given more than once; give it once"
        );
        let mut f = Flags::new(args(&["--exec"]), &none, &[]);
        assert_eq!(
            f.command("--exec").unwrap_err().0,
            "--exec: expected a shell command after it"
        );
        let mut f = Flags::new(args(&["--exec", "--on-demoted", "x"]), &none, &[]);
        assert_eq!(
            f.command("--exec").unwrap_err().0,
            "--exec: expected a shell command after it, got the option '--on-demoted'"
        );
        let mut f = Flags::new(args(&["--json", "--json"]), &none, &[]);
        assert!(f
            .flag("--json")
            .unwrap_err()
            .0
            .starts_with("--json: given more"));
    }

    #[test]
    fn a_bad_value_from_a_variable_names_the_variable() {
        let env = |k: &str| (k == "BULLY_TIMEOUT").then(|| "soon".to_string());
        let mut f = Flags::new(vec![], &env, &[]);
        let e = f.duration("--timeout", Duration::ZERO).unwrap_err();
        assert!(e.0.starts_with("BULLY_TIMEOUT: expected a duration"), "{e}");
        assert!(e.0.ends_with("got 'soon'"), "{e}");
    }

    #[test]
    fn unknown_variables_and_unused_ones_are_warnings() {
        let env = |k: &str| (k == "BULLY_PEERS").then(|| "h:1".to_string());
        let vars: Vec<String> = [
            "BULLY_HEALTHINTERVAL",
            "BULLY_PEERS",
            "BULLY_NODE",
            "BULLYX",
        ]
        .map(String::from)
        .to_vec();
        let mut f = Flags::new(vec![], &env, &vars);
        f.duration("--health-interval", Duration::ZERO).unwrap();
        assert_eq!(f.value("--peers").unwrap().as_deref(), Some("h:1"));
        f.unused("--peers", "the dir registry has no peers")
            .unwrap();
        let warnings = f.finish().unwrap();
        assert_eq!(
            warnings,
            vec![
                "BULLY_PEERS is set, but the dir registry has no peers; ignored".to_string(),
                "BULLY_HEALTHINTERVAL is not a bully variable (did you mean \
                 BULLY_HEALTH_INTERVAL?); ignored"
                    .into(),
            ]
        );
        let mut f = Flags::new(vec![OsString::from("--peers=h:1")], &env, &[]);
        f.value("--peers").unwrap();
        let e = f
            .unused("--peers", "the dir registry has no peers")
            .unwrap_err();
        assert_eq!(e.0, "--peers: the dir registry has no peers");
    }
}
