//! Mixed-architecture clusters: x86_64 nodes with cross-built aarch64 and armv7 nodes under
//! qemu-user, and the checks on those binaries: static, within their size budgets, unwinding.
//!
//! Ignored by `make test`; `make cross-test` builds both ARM binaries and runs these with
//! `BULLY_CROSS_AARCH64` and `BULLY_CROSS_ARMV7` (the binaries); `make cross-test TLS=1`
//! builds them with TLS and sets `BULLY_CROSS_TLS=1`: a budget of 2 MiB, clusters over mutual
//! TLS. The emulators are `qemu-aarch64-static` and `qemu-arm-static` unless
//! `BULLY_CROSS_AARCH64_RUNNER` or `BULLY_CROSS_ARMV7_RUNNER` name others. A missing binary
//! or emulator fails the tests, it never skips them.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
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

/// The aim for builds with TLS, on both architectures: 2 MiB (src/dist/README.md "With TLS").
const TLS_LIMIT: u64 = 2_097_152;

/// `make cross-test TLS=1` builds both binaries with TLS and says so in `BULLY_CROSS_TLS`:
/// they must then stay within [`TLS_LIMIT`], and the mixed clusters speak mutual TLS.
fn tls_build() -> bool {
    std::env::var("BULLY_CROSS_TLS").is_ok_and(|v| v == "1")
}

/// Less landing-pad table than this means the node's code has no landing pads.
const LSDA_MIN: usize = 16 * 1024;

/// One ARM architecture: where its binary and emulator are named, and what its ELF must show.
struct Arch {
    name: &'static str,
    bin_var: &'static str,
    runner_var: &'static str,
    runner: &'static str,
    /// `e_machine`: EM_AARCH64 or EM_ARM.
    machine: u16,
    is_64: bool,
    /// The size budget of the embedded issue, in bytes.
    limit: u64,
    /// Where the unwinder finds each function's unwind rules: DWARF CFI on aarch64, the ARM
    /// EHABI index on armv7.
    unwind_index: &'static [&'static str],
    /// The section of landing-pad tables (LSDA), which only unwinding code has: measured,
    /// 45 KiB on aarch64 and 44 KiB on armv7, against 0 and 0.4 KiB (from libgcc) in builds
    /// with `panic = "abort"`.
    lsda: &'static str,
}

const AARCH64: Arch = Arch {
    name: "aarch64",
    bin_var: "BULLY_CROSS_AARCH64",
    runner_var: "BULLY_CROSS_AARCH64_RUNNER",
    runner: "qemu-aarch64-static",
    machine: 183,
    is_64: true,
    limit: 1_572_864, // 1.5 MiB
    unwind_index: &[".eh_frame_hdr", ".eh_frame"],
    lsda: ".gcc_except_table",
};

const ARMV7: Arch = Arch {
    name: "armv7",
    bin_var: "BULLY_CROSS_ARMV7",
    runner_var: "BULLY_CROSS_ARMV7_RUNNER",
    runner: "qemu-arm-static",
    machine: 40,
    is_64: false,
    limit: 1_468_006, // 1.4 MiB
    unwind_index: &[".ARM.exidx"],
    lsda: ".ARM.extab",
};

impl Arch {
    /// The cross-built binary named by `bin_var`.
    fn binary(&self) -> String {
        let var = self.bin_var;
        let bin = std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set; run `make cross-test`, which builds and names it")
        });
        assert!(
            Path::new(&bin).is_file(),
            "{var}={bin}: no such file; build it with `make cross TARGET=...` (src/dist/README.md, \"Embedded hosts\")"
        );
        bin
    }

    fn runner(&self) -> String {
        std::env::var(self.runner_var).unwrap_or_else(|_| self.runner.into())
    }

    /// `[emulator, binary]`, after checking that the pair runs `--version`.
    fn program(&self) -> Vec<String> {
        let (bin, runner) = (self.binary(), self.runner());
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
}

/// The few ELF header fields the checks need, for 32- and 64-bit little-endian files.
struct Elf {
    bytes: Vec<u8>,
    is_64: bool,
}

impl Elf {
    fn u16_at(&self, o: usize) -> u16 {
        u16::from_le_bytes([self.bytes[o], self.bytes[o + 1]])
    }

    fn u32_at(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.bytes[o..o + 4].try_into().unwrap())
    }

    /// A 32-bit field in ELF32, a 64-bit one in ELF64 (addresses, offsets, sizes).
    fn word_at(&self, o: usize) -> usize {
        if self.is_64 {
            u64::from_le_bytes(self.bytes[o..o + 8].try_into().unwrap()) as usize
        } else {
            self.u32_at(o) as usize
        }
    }

    /// `p_type` of every program header.
    fn segment_types(&self) -> Vec<u32> {
        let (phoff, entsize, num) = if self.is_64 {
            (self.word_at(0x20), self.u16_at(0x36), self.u16_at(0x38))
        } else {
            (self.word_at(0x1c), self.u16_at(0x2a), self.u16_at(0x2c))
        };
        (0..num as usize)
            .map(|i| self.u32_at(phoff + i * entsize as usize))
            .collect()
    }

    /// `(name, size)` of every section (`strip` keeps the section headers).
    fn sections(&self) -> Vec<(String, usize)> {
        let (shoff, entsize, num, strndx) = if self.is_64 {
            let h = (self.word_at(0x28), self.u16_at(0x3a), self.u16_at(0x3c));
            (h.0, h.1 as usize, h.2 as usize, self.u16_at(0x3e) as usize)
        } else {
            let h = (self.word_at(0x20), self.u16_at(0x2e), self.u16_at(0x30));
            (h.0, h.1 as usize, h.2 as usize, self.u16_at(0x32) as usize)
        };
        // sh_name at 0; sh_offset and sh_size at 0x18/0x20 (ELF64) or 0x10/0x14 (ELF32).
        let (off_at, size_at) = if self.is_64 {
            (0x18, 0x20)
        } else {
            (0x10, 0x14)
        };
        let header = |i: usize| shoff + i * entsize;
        let names = self.word_at(header(strndx) + off_at);
        (0..num)
            .map(|i| {
                let start = names + self.u32_at(header(i)) as usize;
                let end = start + self.bytes[start..].iter().position(|b| *b == 0).unwrap();
                let name = String::from_utf8_lossy(&self.bytes[start..end]).into_owned();
                (name, self.word_at(header(i) + size_at))
            })
            .collect()
    }
}

/// Static, of the right architecture, within budget, with its unwind tables and landing pads.
fn check_binary(arch: &Arch) {
    let bin = arch.binary();
    let bytes = std::fs::read(&bin).unwrap();
    let class = if arch.is_64 { 2 } else { 1 };
    assert_eq!(
        &bytes[..6],
        &[0x7f, b'E', b'L', b'F', class, 1],
        "{bin}: not a little-endian {}-bit ELF file",
        if arch.is_64 { 64 } else { 32 }
    );
    let elf = Elf {
        bytes,
        is_64: arch.is_64,
    };
    assert_eq!(
        elf.u16_at(0x12),
        arch.machine,
        "{bin}: e_machine is not {}",
        arch.name
    );
    let segments = elf.segment_types();
    assert!(
        !segments.contains(&3),
        "{bin}: has a PT_INTERP header, so it is not static"
    );
    let sections = elf.sections();
    let size_of = |want: &str| sections.iter().find(|(n, _)| n == want).map(|(_, s)| *s);
    for want in arch.unwind_index {
        assert!(
            size_of(want).is_some_and(|s| s > 0),
            "{bin}: no {want} section, so it cannot unwind: {sections:?}"
        );
    }
    let lsda = size_of(arch.lsda).unwrap_or(0);
    assert!(
        lsda >= LSDA_MIN,
        "{bin}: {} is {lsda} bytes, under {LSDA_MIN}: built with panic = \"abort\"?",
        arch.lsda
    );
    let size = elf.bytes.len() as u64;
    let (limit, with) = if tls_build() {
        (TLS_LIMIT, "with TLS")
    } else {
        (arch.limit, "without TLS")
    };
    println!(
        "{bin}: {size} bytes ({:.2} MiB), budget {limit} ({with})",
        size as f64 / 1048576.0,
    );
    assert!(
        size <= limit,
        "{bin}: {size} bytes, over the {limit}-byte budget of {} {with}",
        arch.name
    );
}

/// Runs the emulated binary so that it panics, and checks that the panic unwound.
///
/// The node logs through simple_logger, whose `eprintln!` panics when the write fails; its
/// logger catches that panic and drops the line (src/cli/logger.rs). So with stderr on
/// /dev/full (ENOSPC) and a registry under a regular file, the node logs its start line (a
/// panic, caught), finds that it cannot register, and exits 1. With `panic = "abort"`, or an
/// unwinder that cannot find the frames ("failed to initiate panic"), the first line kills it
/// with SIGABRT instead. That a panic happened is seen in qemu's syscall trace: the panic
/// hook's message is one more failed write to stderr than the lines the same run writes to
/// a pipe. This is the binary's own unwinder at work, the one that keeps a panicking handler
/// thread from taking its node down. (`--version >/dev/full` used to be the trigger; nothing
/// but the log panics on a failed write any more.)
fn check_unwinds(arch: &Arch) {
    let (bin, runner) = (arch.binary(), arch.runner());
    let dir = TempDir::new(&format!("unwind-{}", arch.name));
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let run = |stderr: Stdio, n: usize| {
        let trace = dir.path().join(format!("strace-{n}"));
        let state = dir.path().join(format!("state-{n}"));
        let child = Command::new(&runner)
            .arg("-strace")
            .arg("-D")
            .arg(&trace)
            .arg(&bin)
            .arg(free_port().to_string())
            .arg("node1")
            .arg("--registry-dir")
            .arg(blocker.join("registry"))
            .arg("--state-dir")
            .arg(&state)
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {runner}: {e}"));
        let out = wait_with_deadline(child, secs(60), &format!("{runner} {bin}"));
        let trace = std::fs::read_to_string(&trace).unwrap_or_default();
        let failed = trace
            .lines()
            .filter(|l| l.contains(" write(2,") && l.contains("errno=28"))
            .count();
        (out, failed, trace)
    };
    let (piped, _, _) = run(Stdio::piped(), 1);
    let shown = String::from_utf8_lossy(&piped.stderr).into_owned();
    assert!(
        piped.status.code() == Some(1)
            && shown.lines().next().is_some_and(|l| l.contains(" INFO "))
            && shown.contains("bully: cannot write to"),
        "{runner} {bin} with its registry under a file: {:?} (exit 1 after a log line and \
         the error), stderr {shown:?}",
        piped.status
    );
    let full = std::fs::File::create("/dev/full").expect("/dev/full");
    let (out, failed, trace) = run(Stdio::from(full), 2);
    let lines = shown.lines().count();
    assert!(
        out.status.code() == Some(1) && failed > lines,
        "{runner} {bin} 2>/dev/full: {:?} (1 after unwound, caught panics), {failed} failed \
         writes to stderr (more than its {lines} lines: the panic message), trace:\n{trace}",
        out.status
    );
}

/// Waits for `child` to exit, at most `within`; kills it and fails after that.
fn wait_with_deadline(
    mut child: std::process::Child,
    within: Duration,
    what: &str,
) -> std::process::Output {
    let deadline = std::time::Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("collect the output"),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not exit within {within:?}");
            }
        }
    }
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

/// Waits until every running node names `node`, then checks that `node` says so itself;
/// returns how long the agreement took.
fn agree_on(c: &mut Cluster, node: &str, within: Duration) -> Duration {
    let took = c.await_agreement(node, within);
    let d = c.node(node).details();
    let ok = d.as_ref().is_some_and(|d| d["is_coordinator"] == true);
    assert!(ok, "{node} is not coordinator: {d:?}\n{}", c.log_tails());
    took
}

/// Starts node`id` under `program` (an emulator and an ARM binary) with `extra` flags.
fn start_emulated(c: &mut Cluster, program: &[String], id: u64, extra: &[&str]) {
    let port = free_port();
    c.start_via(program, id, port, extra);
    assert_runs(c, &format!("node{id}"), program);
}

/// `--tls-cert`, `--tls-key` and `--tls-ca` for node1, node2 and node3, each with a P-256
/// certificate for its name from a CA made under `dir` (as tests/tls.rs makes them); the
/// harness presents one too from now on.
#[cfg(feature = "tls")]
fn tls_flags(dir: &Path) -> Vec<Vec<String>> {
    use support::tls::{client_config, use_client, Pki};
    let pki = Pki::new(dir, "cluster-ca");
    let admin = pki.issue("admin", "admin", None);
    use_client(Some(client_config(&pki.ca(), Some(&admin))));
    (1..=3)
        .map(|id| {
            let name = format!("node{id}");
            pki.issue(&name, &name, None).flags(&pki.ca())
        })
        .collect()
}

#[cfg(not(feature = "tls"))]
fn tls_flags(_: &Path) -> Vec<Vec<String>> {
    panic!("BULLY_CROSS_TLS=1 needs these tests built with the `tls` feature (a default one)")
}

/// node1 on x86_64, node2 and node3 emulated: node3 leads, node2 takes over after node3's
/// kill -9, and node3 takes leadership back when it returns on the same port. All over
/// mutual TLS in a TLS build ([`tls_build`]).
fn mixed_cluster(tag: &str, second_arch: &Arch, top_arch: &Arch) {
    let (second, top) = (second_arch.program(), top_arch.program());
    let mut c = Cluster::new(tag, SLOW);
    let flags = if tls_build() {
        tls_flags(c.dir.path())
    } else {
        vec![Vec::new(); 3]
    };
    let flags: Vec<Vec<&str>> = flags
        .iter()
        .map(|f| f.iter().map(String::as_str).collect())
        .collect();
    c.start(1, &flags[0]);
    start_emulated(&mut c, &second, 2, &flags[1]);
    start_emulated(&mut c, &top, 3, &flags[2]);
    let elected = agree_on(&mut c, "node3", secs(60));
    if tls_build() {
        let logs = c.log_tails();
        assert!(logs.contains("mutual TLS"), "no node speaks TLS:\n{logs}");
        assert!(!logs.contains("handshake"), "a peer was refused:\n{logs}");
    }

    c.node("node3").kill9();
    let failover = agree_on(&mut c, "node2", secs(30));

    c.node("node3").restart();
    let back = agree_on(&mut c, "node3", secs(60));
    println!(
        "{tag}: node3 ({}) elected in {elected:?}; node2 ({}) took over {failover:?} after \
         kill -9; node3 back in {back:?}",
        top_arch.name, second_arch.name
    );
}

#[test]
#[ignore = "needs the ARM binaries and qemu-user: run `make cross-test`"]
fn aarch64_binary_is_static_within_budget_and_unwinds() {
    check_binary(&AARCH64);
    check_unwinds(&AARCH64);
}

#[test]
#[ignore = "needs the ARM binaries and qemu-user: run `make cross-test`"]
fn armv7_binary_is_static_within_budget_and_unwinds() {
    check_binary(&ARMV7);
    check_unwinds(&ARMV7);
}

#[test]
#[ignore = "needs the ARM binaries and qemu-user: run `make cross-test`"]
fn aarch64_leads_and_armv7_takes_over_after_kill9() {
    mixed_cluster("cross-a64-top", &ARMV7, &AARCH64);
}

#[test]
#[ignore = "needs the ARM binaries and qemu-user: run `make cross-test`"]
fn armv7_leads_and_aarch64_takes_over_after_kill9() {
    mixed_cluster("cross-v7-top", &AARCH64, &ARMV7);
}
