//! The command line with the real binary: nothing given is silently ignored. A bad argument is
//! one line naming the flag (or the variable it came from) and the usual hint, exit 2; a
//! variable that does nothing is a warning at start naming it; a closed output pipe never
//! turns an exit code into a panic.

mod support;

use std::process::{Command, Stdio};
use support::*;

/// Runs `bully ARGS` with `env` added; returns the exit code and stderr.
fn bully(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Exit 2 with exactly `line` and the hint.
fn refused(args: &[&str], env: &[(&str, &str)], line: &str) {
    let (code, err) = bully(args, env);
    assert_eq!(code, 2, "{args:?}: {err}");
    // `bully status` has help of its own.
    let program = if args.first() == Some(&"status") {
        "bully status"
    } else {
        "bully"
    };
    assert_eq!(
        err,
        format!("{program}: {line}\nTry '{program} --help'.\n"),
        "{args:?} {env:?}"
    );
}

#[test]
fn every_mistake_is_one_line_naming_it_and_the_hint() {
    refused(
        &["statu"],
        &[],
        "unknown command 'statu'; did you mean 'status'?",
    );
    refused(
        &["5001", "n", "--id", "1", "--id", "2"],
        &[],
        "--id: given more than once; give it once",
    );
    refused(
        &["5001", "n", "--exec"],
        &[],
        "--exec: expected a shell command after it",
    );
    refused(
        &["5001", "n", "--startup-delay"],
        &[],
        "--startup-delay: expected a duration like 250ms, 15s, 2m or a number of seconds after it",
    );
    refused(
        &["5001", "n"],
        &[("BULLY_TIMEOUT", "soon")],
        "BULLY_TIMEOUT: expected a duration like 250ms, 15s, 2m or a number of seconds, got 'soon'",
    );
    refused(
        &["5001", "n", "--helth-interval", "1s"],
        &[],
        "unknown option '--helth-interval'; did you mean '--health-interval'?",
    );
    refused(
        &["5001", "n", "--advertise", "0.0.0.0"],
        &[],
        "--advertise: expected a host name or IP address the other nodes can reach (not \
         0.0.0.0 or ::), got '0.0.0.0'",
    );
    refused(
        &[
            "5001",
            "n",
            "--peers",
            "127.0.0.1:1",
            "--consul-deregister-after",
            "5m",
        ],
        &[],
        "--consul-deregister-after: only the consul registry reads it, and this one is static",
    );
    refused(
        &["5001", "n", "--registry", "dir", "--peers", "127.0.0.1:1"],
        &[],
        "--peers: only the static registry reads it, and this one is dir",
    );
    refused(
        &["status", "--json", "--json"],
        &[],
        "--json: given more than once; give it once",
    );
    refused(
        &["status", "--timeout", "1s", "--peers-file"],
        &[],
        "--peers-file: expected a value after it",
    );
    refused(
        &["status", "--interval", "1s"],
        &[],
        "--interval: it only sets how often --watch asks",
    );
    refused(
        &["status", "--watch", "--watch"],
        &[],
        "--watch: given more than once; give it once",
    );
    refused(
        &["status", "--watch", "--prune"],
        &[],
        "--prune: removes records once; not with --watch, which would remove those of members \
         that are only slow to answer",
    );
}

#[test]
fn variables_that_do_nothing_are_warnings_in_the_log() {
    let text = lone_node_log(
        "cliwarn",
        &[
            ("BULLY_HEALTHINTERVAL", "1s"),
            ("BULLY_PEERS", "127.0.0.1:1"),
            ("BULLY_REGISTRY", "dir"),
        ],
        &["--id", "1"],
    );
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings[0].ends_with(
            "BULLY_PEERS is set, but only the static registry reads it, and this one is dir; \
             ignored"
        ),
        "{text}"
    );
    assert!(
        warnings[1].ends_with(
            "BULLY_HEALTHINTERVAL is not a bully variable (did you mean BULLY_HEALTH_INTERVAL?); \
             ignored"
        ),
        "{text}"
    );
}

/// The write end of a pipe whose read end is already closed.
fn closed_pipe() -> Stdio {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe fills in two new descriptors; the read end is closed at once and the write
    // end is owned by the Stdio returned.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        libc::close(fds[0]);
        Stdio::from(std::os::fd::OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn a_closed_output_pipe_changes_no_exit_code() {
    // `bully --help | true`: stdout is a pipe whose reader is gone before a byte is written.
    for args in [&["--help"][..], &["--version"], &["status", "--help"]] {
        let out = Command::new(BIN)
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
    // A usage error with stderr closed the same way still exits 2, not 101.
    let status = Command::new(BIN)
        .args(["5001", "n", "--bogus"])
        .stderr(closed_pipe())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

/// Starts node1 alone with `env` and `extra` flags; returns its log once it leads.
fn lone_node_log(tag: &str, env: &[(&str, &str)], extra: &[&str]) -> String {
    let mut c = Cluster::new(tag, &["--startup-delay", "0"]);
    let port = free_port();
    let log = c.dir.path().join("node1.log");
    let mut child = Guarded::spawn(
        Command::new(BIN)
            .arg(port.to_string())
            .arg("node1")
            .args(&c.common)
            .args(extra)
            .envs(env.iter().copied())
            .env_remove("BULLY_LOG_LEVEL")
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .unwrap();
    let text = wait_for("node1 leading", secs(20), || {
        let t = std::fs::read_to_string(&log).unwrap_or_default();
        if t.contains("Coordinator is: node1") {
            Ok(t)
        } else {
            Err(t)
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    c.nodes.clear();
    text
}

#[test]
fn the_level_comes_from_rust_log_unless_log_level_names_one() {
    // Warnings only, but the election's own lines.
    let log = lone_node_log("rustlog", &[("RUST_LOG", "warn,bully::election=info")], &[]);
    assert!(!log.contains("Registered in"), "{log}");
    assert!(log.contains("Starting election in: node1"), "{log}");
    // --log-level wins over RUST_LOG.
    let log = lone_node_log(
        "rustlog2",
        &[("RUST_LOG", "error")],
        &["--log-level", "info"],
    );
    assert!(log.contains("Registered in"), "{log}");
    refused(
        &["5001", "n"],
        &[("RUST_LOG", "loud")],
        "RUST_LOG: expected error, warn, info, debug, trace or off, or a list like \
         info,bully::runtime=debug, got 'loud'",
    );
    refused(
        &["5001", "n", "--log-level", "bully=loud"],
        &[],
        "--log-level: expected error, warn, info, debug, trace or off, or a list like \
         info,bully::runtime=debug, got 'bully=loud'",
    );
}
