//! Mixed-architecture clusters: x86_64 nodes and a cross-built aarch64 node under qemu-user.
//!
//! Ignored by `make test`; `make cross-test` builds the aarch64 binary and runs these with
//! `BULLY_CROSS_BIN` (the binary) and `BULLY_CROSS_RUNNER` (the emulator, by default
//! `qemu-aarch64-static`). A missing binary or emulator fails the tests, it never skips them.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

/// Emulation is slow: every node gives its peers 3 s per request; the timers stay short.
const SLOW: &[&str] = &[
    "--startup-delay",
    "0",
    "--health-interval",
    "500ms",
    "--timeout",
    "3s",
];

/// What the static aarch64 release binary may weigh: a guard against regressions, not the
/// 1.5 MiB the embedded issue asked for, which the current build misses (README "Embedded
/// hosts" says by how much and why).
const LIMIT: u64 = 2 * 1024 * 1024;

/// The cross-built binary named by `BULLY_CROSS_BIN`.
fn arm_binary() -> String {
    let bin = std::env::var("BULLY_CROSS_BIN").unwrap_or_else(|_| {
        panic!("BULLY_CROSS_BIN is not set; run `make cross-test`, which builds and names it")
    });
    assert!(
        Path::new(&bin).is_file(),
        "BULLY_CROSS_BIN={bin}: no such file; build it with \
         `make cross TARGET=aarch64-unknown-linux-gnu`"
    );
    bin
}

/// `[emulator, binary]`, after checking that the pair runs `--version`.
fn arm_program() -> Vec<String> {
    let bin = arm_binary();
    let runner =
        std::env::var("BULLY_CROSS_RUNNER").unwrap_or_else(|_| "qemu-aarch64-static".into());
    let out = Command::new(&runner)
        .arg(&bin)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {runner}: {e}; `make cross-setup` installs qemu-user-static")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("bully "),
        "{runner} {bin} --version: {:?}, stdout {stdout:?}, stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    vec![runner, bin]
}

/// Fails unless `node`'s process runs `program` (the test really has an emulated node).
fn assert_runs(c: &mut Cluster, node: &str, program: &[String]) {
    let pid = c.node(node).pid().expect("node is running");
    // Empty until the new image has set up its arguments, just after spawn returns.
    let args = wait_for(&format!("{node}'s command line"), secs(10), || {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).map_err(|e| e.to_string())?;
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.is_empty() {
            Err("empty".into())
        } else {
            Ok(args)
        }
    });
    assert!(
        args.starts_with(program),
        "{node} (pid {pid}) runs {args:?}, not {program:?}"
    );
}

/// Starts node`id` as the emulated aarch64 node.
fn start_arm(c: &mut Cluster, arm: &[String], id: u64) {
    let port = free_port();
    c.start_via(arm, id, port, &[]);
    assert_runs(c, &format!("node{id}"), arm);
}

/// Waits until every running node names `node`, then checks that `node` says so itself.
fn agree_on(c: &mut Cluster, node: &str, within: std::time::Duration) {
    c.await_agreement(node, within);
    let d = c.node(node).details();
    let ok = d.as_ref().is_some_and(|d| d["is_coordinator"] == true);
    assert!(ok, "{node} is not coordinator: {d:?}\n{}", c.log_tails());
}

#[test]
#[ignore = "needs the aarch64 binary and qemu-user: run `make cross-test`"]
fn arm_binary_is_static_aarch64_and_within_its_size_limit() {
    let bin = arm_binary();
    let elf = std::fs::read(&bin).unwrap();
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(&elf[..5], b"\x7fELF\x02", "{bin}: not a 64-bit ELF file");
    assert_eq!(u16_at(0x12), 183, "{bin}: e_machine is not EM_AARCH64");
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36), u16_at(0x38));
    let interp = (0..phnum as usize).any(|i| u32_at(phoff + i * phentsize as usize) == 3);
    assert!(
        !interp,
        "{bin}: has a PT_INTERP header, so it is not static"
    );
    let size = elf.len() as u64;
    println!("{bin}: {size} bytes ({:.2} MiB)", size as f64 / 1048576.0);
    assert!(
        size <= LIMIT,
        "{bin}: {size} bytes, over the {LIMIT}-byte limit"
    );
}

#[test]
#[ignore = "needs the aarch64 binary and qemu-user: run `make cross-test`"]
fn mixed_cluster_elects_the_arm_node_fails_over_and_hands_back() {
    let arm = arm_program();
    let mut c = Cluster::new("cross-lead", SLOW);
    c.start(1, &[]);
    c.start(2, &[]);
    start_arm(&mut c, &arm, 3);
    agree_on(&mut c, "node3", secs(60));

    c.node("node3").kill9();
    agree_on(&mut c, "node2", secs(30));

    // Back on the same port: the highest id takes leadership again.
    c.node("node3").restart();
    agree_on(&mut c, "node3", secs(60));
}

#[test]
#[ignore = "needs the aarch64 binary and qemu-user: run `make cross-test`"]
fn arm_follower_takes_over_when_it_is_the_highest_left() {
    let arm = arm_program();
    let mut c = Cluster::new("cross-follow", SLOW);
    c.start(1, &[]);
    start_arm(&mut c, &arm, 2);
    c.start(3, &[]);
    c.await_agreement("node3", secs(60));
    let d = c.node("node2").details();
    assert!(
        d.as_ref().is_some_and(|d| d["coordinator_id"] == 3),
        "the ARM node follows node3: {d:?}\n{}",
        c.log_tails()
    );

    c.node("node3").kill9();
    agree_on(&mut c, "node2", secs(30));
}
