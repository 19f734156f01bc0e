//! `bully status`: an operator's view of a cluster. Reads the members from the registry, asks
//! each one for `GET /nodeDetails` in parallel, prints what they say, and exits 0 only when
//! every member that answered names the same coordinator, so scripts and monitoring can use it
//! as a check. `--watch` keeps asking and prints one line per change, as `etcdctl elect -l`.

use super::flags::{Flags, UsageError};
use super::instances::{self, Instance, Picked, Scan};
use super::output;
pub use super::report::{agreement, Report, Row};
use crate::core::member::Member;
use crate::core::wire::NodeDetails;
use crate::http::peer::PeerClient;
use crate::registry::{self, RegistryKind, RegistryOptions};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const HELP: &str = "\
bully status [--instance NAME | registry options] [--timeout DUR] [--json]
             [--watch [--interval DUR]] [--prune]

Reads the members of the cluster from its registry, asks each one (GET /nodeDetails) whom it
follows, and prints a table and a summary. Exit code 0 when every member that answers names
the same coordinator; 3 when they agree that there is none (the summary says why each member
does not stand); 1 when they disagree, none answers or the registry cannot be read; 2 on a
bad command line.

Without registry options it reads the packaged instances of this host (bully@NAME, their
settings from /etc/default/bully and /etc/default/bully-NAME): a table for each, or the one
that --instance NAME (or --cluster NAME) names.

OPTIONS (each also read from BULLY_<FLAG>; a flag wins):
    --instance NAME        the packaged instance bully@NAME: its cluster and registry
    --defaults PATH        the instances' settings file [default: /etc/default/bully]; the
                           instances are the files PATH-NAME and, with the default, the
                           bully@NAME units enabled or running
    registry options       the ones the nodes run with: --cluster, --registry, --registry-dir,
                           --peers, --peers-file, --consul, --consul-token, --etcd,
                           --etcd-user, and for TLS --consul-cacert, --consul-client-cert,
                           --consul-client-key, --consul-tls-server-name, --etcd-cacert,
                           --etcd-cert, --etcd-key (see bully --help)
    --timeout DUR          per-member request timeout [default: 1s]
    --tls-cert FILE --tls-key FILE --tls-ca FILE
                           ask over HTTPS with this certificate, as nodes with --tls-* need
    --json                 the report as one JSON object (with --watch: one per line)
    --watch                keep asking; print a line at every change of coordinator, term,
                           agreement or members: TIME COORDINATOR TERM SUMMARY, '-' for none.
                           Runs until interrupted
    --interval DUR         with --watch: how often to ask [default: 500ms]
    --prune                dir registry only, not with --watch: remove the records of the
                           members that do not answer (records of nodes killed on this host
                           are removed without it, by the next node that reads them)
";

struct Options {
    registry: RegistryOptions,
    json: bool,
    /// `--prune`: remove the records of the members that did not answer.
    prune: bool,
    /// `--watch`, asking this often.
    watch: Option<Duration>,
}

/// The flags that say where the registry is: with one of them, no instance is looked for.
pub const LOCATION: [&str; 5] = [
    "--registry",
    "--registry-dir",
    "--peers",
    "--peers-file",
    "--consul",
];

/// `bully status ARGS`: exit 0 on agreement, 3 when the members agree there is no leader, 1
/// on disagreement or when no member answers (or the registry cannot be read), 2 on a bad
/// command line. Without registry flags it reports on the packaged instances here
/// (`--instance NAME`, or every one).
pub fn main(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    variables: &[String],
) -> ExitCode {
    let scan = Scan::new(&args, env, &LOCATION);
    let mut warnings = Vec::new();
    let picked = instances::pick(&scan, true, &mut warnings);
    for w in warnings {
        output::err(&format!("bully status: warning: {w}"));
    }
    match picked {
        Ok(Picked::Flags) => report(args, env, variables, None, None),
        Ok(Picked::One(i)) => {
            let env = |k: &str| i.get(k).or_else(|| env(k));
            report(args, &env, variables, Some(&i), None)
        }
        Ok(Picked::Several(list)) => {
            // A table each; --json and --watch speak for one cluster.
            for flag in ["--json", "--watch"] {
                if args.iter().any(|a| a == flag) {
                    return usage(&instances::choose(&format!(" ({flag} reads one)"), &list));
                }
            }
            let mut worst = ExitCode::SUCCESS;
            for (n, i) in list.iter().enumerate() {
                let env = |k: &str| i.get(k).or_else(|| env(k));
                let title = format!(
                    "{}instance {} (cluster {}):\n",
                    if n == 0 { "" } else { "\n" },
                    i.name,
                    i.cluster()
                );
                let code = report(args.clone(), &env, variables, Some(i), Some(&title));
                if code != ExitCode::SUCCESS {
                    worst = code;
                }
            }
            worst
        }
        Err(e) => usage(&e),
    }
}

fn usage(e: &UsageError) -> ExitCode {
    output::err(&format!("bully status: {e}\nTry 'bully status --help'."));
    ExitCode::from(2)
}

/// One report (after `title`, when given) on the registry that `args` and `env` name, those
/// of `instance` when one is read.
fn report(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    variables: &[String],
    instance: Option<&Instance>,
    title: Option<&str>,
) -> ExitCode {
    let mut opts = match parse(args, env, variables) {
        Ok(Some(o)) => o,
        Ok(None) => {
            output::out(HELP);
            return ExitCode::SUCCESS;
        }
        Err(e) => return usage(&e),
    };
    if let Some(i) = instance {
        instances::with_own_node(&mut opts.registry, i);
    }
    if let Some(every) = opts.watch {
        return watch(&opts, every);
    }
    let report = match gather(&opts.registry, opts.prune) {
        Ok(r) => r,
        Err(e) => {
            output::err(&format!("bully status: {e}"));
            return ExitCode::from(1);
        }
    };
    let text = if opts.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => text + "\n",
            Err(e) => {
                output::err(&format!("bully status: {e}"));
                return ExitCode::from(1);
            }
        }
    } else {
        report.table()
    };
    output::out(&format!("{}{text}", title.unwrap_or("")));
    if report.agreed {
        ExitCode::SUCCESS
    } else if report.leaderless {
        ExitCode::from(3)
    } else {
        ExitCode::from(1)
    }
}

/// `--watch`: asks every `every` and prints a line whenever what it sees changes. Ends (exit
/// 0) when stdout closes, as under `| head`; otherwise runs until a signal ends it.
fn watch(opts: &Options, every: Duration) -> ExitCode {
    let mut last = None;
    loop {
        let started = Instant::now();
        let (line, seen) = match gather(&opts.registry, false) {
            Ok(r) => {
                let seen = r.change_key();
                let line = if opts.json {
                    serde_json::to_string(&r).unwrap_or_default()
                } else {
                    r.watch_line()
                };
                (line, seen)
            }
            Err(e) => (format!("- - {e}"), e),
        };
        if last.as_ref() != Some(&seen) {
            let line = if opts.json {
                line
            } else {
                format!("{} {line}", utc_now())
            };
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                return ExitCode::SUCCESS;
            }
            last = Some(seen);
        }
        if reader_gone_within(every.saturating_sub(started.elapsed())) {
            return ExitCode::SUCCESS;
        }
    }
}

/// Waits `time`, or less: true as soon as stdout's reader is gone (a pipe whose read end
/// closed reports POLLERR, a hung-up terminal or socket POLLHUP), so `| head -1` ends the
/// watch at once rather than at the next change, when a write would fail.
fn reader_gone_within(time: Duration) -> bool {
    let end = Instant::now() + time;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        // Asking for no event: poll reports only the errors and hang-ups, which it always does.
        let mut out = libc::pollfd {
            fd: libc::STDOUT_FILENO,
            events: 0,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd for the duration of the call, and its count.
        let n = unsafe { libc::poll(&mut out, 1, ms) };
        if n > 0 {
            return out.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
        }
        // 0: the time is up; below 0: a signal (EINTR), so wait for the rest.
        if n == 0 || left.is_zero() {
            return false;
        }
    }
}

/// `None` for `--help`.
fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    variables: &[String],
) -> Result<Option<Options>, UsageError> {
    let mut f = Flags::new(args, env, variables);
    if f.contains("-h") || f.contains("--help") {
        return Ok(None);
    }
    // Read before the flags, by Scan; asked here so they are known.
    f.value("--instance")?;
    f.value("--defaults")?;
    let json = f.flag("--json")?;
    let prune = f.flag("--prune")?;
    let watching = f.flag("--watch")?;
    let timeout = f.duration("--timeout", Duration::from_secs(1))?;
    if timeout.is_zero() {
        return Err(UsageError(format!(
            "{}: expected a duration above zero",
            f.source("--timeout")
        )));
    }
    let interval = f.duration("--interval", Duration::from_millis(500))?;
    if interval.is_zero() {
        return Err(UsageError(format!(
            "{}: expected a duration above zero",
            f.source("--interval")
        )));
    }
    if !watching {
        f.unused("--interval", "it only sets how often --watch asks")?;
    }
    let registry = f.registry(timeout)?;
    let tls = super::tls::files(&mut f)?;
    let warnings = f.finish()?;
    for w in warnings {
        output::err(&format!("bully status: warning: {w}"));
    }
    if prune && registry.kind != RegistryKind::Dir {
        return Err(UsageError(
            "--prune: only the dir registry keeps records to remove (Consul drops an instance \
             whose check stays critical for --consul-deregister-after; static has no records)"
                .into(),
        ));
    }
    if watching && prune {
        return Err(UsageError(
            "--prune: removes records once; not with --watch, which would remove those of \
             members that are only slow to answer"
                .into(),
        ));
    }
    // Each instance of several is read with its own TLS files, or none.
    match &tls {
        Some(files) => super::tls::install(files).map_err(UsageError)?,
        None => super::tls::set_aside(),
    }
    Ok(Some(Options {
        registry,
        json,
        prune,
        watch: watching.then_some(interval),
    }))
}

/// Where the registry looked, and what would make the nodes show up there.
fn hint(opts: &RegistryOptions) -> String {
    match opts.kind {
        RegistryKind::Dir => format!(
            "no node of cluster '{}' has registered in {}: run bully status with the nodes' \
             --registry-dir and --cluster (or BULLY_REGISTRY_DIR, BULLY_CLUSTER), as the \
             same user",
            opts.cluster,
            opts.dir.display()
        ),
        RegistryKind::Consul => format!(
            "the agent at {} lists no instance of cluster '{}': run bully status with the \
             nodes' --consul, --cluster and a token that may read the service (or \
             CONSUL_HTTP_ADDR, BULLY_CLUSTER, CONSUL_HTTP_TOKEN)",
            opts.consul.address, opts.cluster
        ),
        RegistryKind::Static => "--peers lists nobody".into(),
        RegistryKind::Etcd => format!(
            "etcd at {} has no key under bully/{}/members/: run bully status with the nodes' \
             --etcd and --cluster (or ETCDCTL_ENDPOINTS, BULLY_CLUSTER)",
            opts.etcd.endpoints.join(","),
            opts.cluster
        ),
    }
}

/// Reads the members and asks each one, then with `prune` removes the records of those that
/// did not answer; an unreadable registry (or a record that cannot be removed) is the only
/// error.
pub fn gather(opts: &RegistryOptions, prune: bool) -> Result<Report, String> {
    let registry = registry::open(opts)?;
    let describe = registry.describe();
    let listed = registry
        .members()
        .map_err(|e| format!("registry {describe}: {e}"))?;
    let client = PeerClient::new(opts.timeout);
    let members = PeerClient::fan_out(&listed, |m| ask(&client, &opts.cluster, m));
    let mut pruned = Vec::new();
    if prune {
        for (m, row) in listed.iter().zip(&members) {
            if row.reachable {
                continue;
            }
            let removed = registry
                .prune(m)
                .map_err(|e| format!("cannot remove the record of {}: {e}", m.name))?;
            if removed {
                pruned.push(m.name.clone());
            }
        }
    }
    let coordinator = agreement(&members);
    let coordinator_reachable = coordinator
        .as_ref()
        .is_some_and(|c| members.iter().any(|r| r.reachable && r.name == *c));
    Ok(Report {
        cluster: opts.cluster.clone(),
        registry: describe,
        agreed: coordinator.is_some(),
        leaderless: members.iter().any(|r| r.reachable)
            && members
                .iter()
                .all(|r| !r.reachable || r.coordinator.is_none()),
        coordinator,
        coordinator_reachable,
        members,
        pruned,
        hint: hint(opts),
    })
}

/// The civil date (year, month, day) of a day counted from 1970-01-01 in the proleptic
/// Gregorian calendar, after Howard Hinnant's days_from_civil inverse.
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The time now as RFC 3339 in UTC, to the millisecond (`2026-12-01T22:30:00.123Z`).
fn utc_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    utc(now)
}

fn utc(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let rest = secs % 86_400;
    let (year, month, day) = civil_date((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since_epoch.subsec_millis()
    )
}

/// A member is reachable when it answers `/nodeDetails` as the node the registry lists.
fn ask(client: &PeerClient, cluster: &str, m: &Member) -> Row {
    let address = m.address();
    let answer = match client.get::<NodeDetails>(&address, "/nodeDetails") {
        Ok((200, Some(d)))
            if d.node_name == m.name && d.node_id == m.id && d.cluster == cluster =>
        {
            Ok(d)
        }
        Ok((200, Some(d))) => Err(format!(
            "answers as {} (id {}) of cluster '{}'",
            d.node_name, d.node_id, d.cluster
        )),
        Ok((status, _)) => Err(format!("answered {status} without node details")),
        Err(e) => Err(e.to_string()),
    };
    let mut row = Row {
        name: m.name.clone(),
        id: m.id,
        address,
        reachable: answer.is_ok(),
        coordinator: None,
        coordinator_id: None,
        term: None,
        election: None,
        healthy: None,
        maintenance: None,
        preempts: None,
        quorum: None,
        abstains: None,
        sit_out_ms_left: None,
        error: None,
        vips: Vec::new(),
    };
    match answer {
        Ok(d) => {
            row.coordinator = d.coordinator;
            row.coordinator_id = d.coordinator_id;
            row.term = Some(d.term);
            row.election = Some(d.election);
            row.healthy = Some(d.healthy);
            row.maintenance = Some(d.maintenance);
            row.preempts = Some(d.preempts);
            row.quorum = d.quorum.map(|q| q.state);
            row.vips = d.vips;
            row.abstains = d.abstains;
            row.sit_out_ms_left = d.sit_out_ms_left;
        }
        Err(e) => row.error = Some(e),
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, coordinator: Option<(&str, u64)>, reachable: bool) -> Row {
        Row {
            name: name.into(),
            id: 1,
            address: "127.0.0.1:1".into(),
            reachable,
            coordinator: coordinator.map(|c| c.0.to_string()),
            coordinator_id: coordinator.map(|c| c.1),
            term: reachable.then_some(3),
            election: reachable.then_some(false),
            healthy: reachable.then_some(true),
            maintenance: reachable.then_some(false),
            preempts: reachable.then_some(true),
            quorum: None,
            abstains: None,
            sit_out_ms_left: None,
            error: None,
            vips: Vec::new(),
        }
    }

    #[test]
    fn agreement_counts_only_reachable_members() {
        let n4 = Some(("node4", 4));
        let rows = [
            row("a", n4, true),
            row("b", n4, true),
            row("c", None, false),
        ];
        assert_eq!(agreement(&rows).as_deref(), Some("node4"));
        let rows = [row("a", n4, true), row("b", Some(("node9", 9)), true)];
        assert_eq!(agreement(&rows), None);
        let rows = [row("a", n4, true), row("b", Some(("node4", 5)), true)];
        assert_eq!(agreement(&rows), None, "same name, other id");
        assert_eq!(
            agreement(&[row("a", None, true), row("b", None, true)]),
            None
        );
        assert_eq!(agreement(&[row("a", None, false)]), None);
        assert_eq!(agreement(&[]), None);
    }

    #[test]
    fn table_aligns_columns_and_sums_up() {
        let rows = vec![
            row("node1", Some(("node4", 4)), true),
            row("n2", None, false),
        ];
        let report = Report {
            cluster: "bully".into(),
            registry: "dir x".into(),
            agreed: true,
            leaderless: false,
            coordinator: Some("node4".into()),
            coordinator_reachable: false,
            members: rows,
            pruned: vec!["n2".into()],
            hint: String::new(),
        };
        let text = report.table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(
            lines[4],
            "pruned: removed the records of n2 (not reachable)"
        );
        assert!(lines[0].starts_with("NAME   ID  ADDRESS"), "{text}");
        assert!(
            lines[1].contains("node4") && lines[1].ends_with("yes"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("n2     1   ") && lines[2].ends_with("no"),
            "{text}"
        );
        assert_eq!(
            lines[3],
            "agreed: coordinator node4, but it is not a reachable member (gone?); \
             1 of 2 members reachable"
        );
    }

    #[test]
    fn health_maintenance_and_quorum_state_have_columns_and_are_summed_up() {
        let mut sick = row("node1", Some(("node3", 3)), true);
        sick.healthy = Some(false);
        let mut resting = row("node2", Some(("node3", 3)), true);
        resting.maintenance = Some(true);
        let mut report = Report {
            cluster: "bully".into(),
            registry: "dir x".into(),
            agreed: true,
            leaderless: false,
            coordinator: Some("node3".into()),
            coordinator_reachable: true,
            members: vec![sick, resting, row("node3", Some(("node3", 3)), true)],
            pruned: Vec::new(),
            hint: String::new(),
        };
        let text = report.table();
        let lines: Vec<&str> = text.lines().collect();
        let cells = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            cells(0)[5..],
            ["ELECTION", "HEALTHY", "MAINTENANCE", "REACHABLE"],
            "{text}"
        );
        assert_eq!(cells(1)[5..], ["no", "no", "off", "yes"], "{text}");
        assert_eq!(cells(2)[5..], ["no", "yes", "on", "yes"], "{text}");
        assert_eq!(
            lines[4],
            "agreed: coordinator node3; 3 of 3 members reachable; unhealthy: node1; \
             in maintenance: node2"
        );
        // Quorum mode adds a column; a member that does not answer shows dashes.
        for (r, state) in report
            .members
            .iter_mut()
            .zip(["following", "following", "leading"])
        {
            r.quorum = Some(state.into());
        }
        report.members.push(row("node4", None, false));
        let text = report.table();
        let lines: Vec<&str> = text.lines().collect();
        let cells = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
        assert_eq!(cells(0)[8], "QUORUM", "{text}");
        assert_eq!(cells(3)[8], "leading", "{text}");
        assert_eq!(
            cells(4)[3..],
            ["-", "-", "-", "-", "-", "-", "no"],
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["members"][0]["healthy"], false, "{json}");
        assert_eq!(json["members"][1]["maintenance"], true, "{json}");
        assert_eq!(json["members"][2]["quorum"], "leading", "{json}");
        assert_eq!(
            json["members"][3]["healthy"],
            serde_json::Value::Null,
            "{json}"
        );
    }

    #[test]
    fn options() {
        let env = |k: &str| (k == "BULLY_TIMEOUT").then(|| "3s".to_string());
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let o = parse(args(&["--json", "--registry-dir", "r"]), &env, &[])
            .unwrap()
            .unwrap();
        assert!(o.json);
        assert_eq!(o.registry.timeout, Duration::from_secs(3));
        assert_eq!(o.registry.dir, std::path::PathBuf::from("r"));
        assert!(parse(args(&["--help"]), &env, &[]).unwrap().is_none());
        let e = parse(args(&["--bogus"]), &env, &[]).err().unwrap();
        assert!(e.0.contains("--bogus"), "{e}");
        let e = parse(args(&["--timeout", "0"]), &env, &[]).err().unwrap();
        assert!(e.0.starts_with("--timeout"), "{e}");
    }

    #[test]
    fn watch_lines_name_coordinator_and_term_and_times_are_utc() {
        let rows = vec![
            row("node1", Some(("node4", 4)), true),
            row("node4", Some(("node4", 4)), true),
        ];
        let report = Report {
            cluster: "bully".into(),
            registry: "dir x".into(),
            agreed: true,
            leaderless: false,
            coordinator: Some("node4".into()),
            coordinator_reachable: true,
            members: rows,
            pruned: Vec::new(),
            hint: String::new(),
        };
        assert_eq!(
            report.watch_line(),
            "node4 3 agreed: coordinator node4; 2 of 2 members reachable"
        );
        let none = Report {
            agreed: false,
            leaderless: false,
            coordinator: None,
            members: vec![],
            pruned: Vec::new(),
            hint: "look here".into(),
            ..report
        };
        assert_eq!(
            none.watch_line(),
            "- - no members in cluster 'bully' (registry dir x); look here"
        );
        assert_eq!(utc(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            utc(Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            utc(Duration::from_secs(1_796_170_245)),
            "2026-12-02T00:10:45.000Z"
        );
    }
}
