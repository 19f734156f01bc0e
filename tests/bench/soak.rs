//! `make soak`: the hostile soak of tests/support/soak.rs on the release build, for 10 minutes
//! by default (`--minutes N` or `--seconds N`; `--seed N`; `--verbose` prints every action and
//! sample). Prints what it did and the long-lived node's memory every 5 s, writes
//! `target/bench/soak.json`, and exits 1 on any failure or when the node's PSS after the first
//! minute is not flat within 10 % (the last minute's median against the second minute's).
//!
//! A `[[bench]]` with `harness = false`: run any other way (`cargo test --all-targets` calls it
//! without `--bench`) it does nothing.

#[path = "../support/mod.rs"]
mod support;

use serde_json::json;
use std::time::Duration;
use support::soak::{self, Options};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let value = |flag: &str| {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1)?;
        Some(v.parse::<u64>().unwrap_or_else(|_| {
            eprintln!("soak: {flag}: expected a number, got '{v}'");
            std::process::exit(2)
        }))
    };
    let seconds = value("--seconds")
        .or_else(|| value("--minutes").map(|m| m * 60))
        .unwrap_or(600);
    let report = soak::run(Options {
        duration: Duration::from_secs(seconds),
        seed: value("--seed").unwrap_or(0x5_0A4E),
        bin: support::BIN.into(),
        verbose: args.iter().any(|a| a == "--verbose"),
    });
    println!("{}", report.summary());
    println!("\n| at | PSS KiB | PSS anon | PSS file | VmRSS KiB | threads |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for s in &report.memory {
        println!(
            "| {:.0?} | {} | {} | {} | {} | {} |",
            s.at, s.pss, s.pss_anon, s.pss_file, s.rss, s.threads
        );
    }
    let flat = report.pss_flat();
    let out = json!({
        "seconds": report.took.as_secs_f64(),
        "actions": report.actions,
        "failures": report.failures,
        "threads": [report.threads.0, report.threads.1],
        "descriptors": [report.fds.0, report.fds.1],
        "memory": report.memory.iter().map(|s| json!({
            "at_s": s.at.as_secs_f64(), "pss_kib": s.pss, "pss_anon_kib": s.pss_anon,
            "pss_file_kib": s.pss_file, "rss_kib": s.rss, "threads": s.threads,
        })).collect::<Vec<_>>(),
        "pss_flat_after_first_minute": flat,
    });
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench");
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(format!("{dir}/soak.json"), format!("{out:#}\n"));
    if !report.failures.is_empty() {
        println!(
            "\n{} failures:\n{}",
            report.failures.len(),
            report.failures.join("\n")
        );
        std::process::exit(1);
    }
    if flat == Some(false) {
        println!("\nPSS after the first minute is not flat within 10 % (medians of the second and last minute)");
        std::process::exit(1);
    }
}
