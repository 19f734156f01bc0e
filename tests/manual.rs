//! One flag reference: bully(8) documents every option `bully --help`, `bully status --help`,
//! `bully step-down --help` and `bully maintenance --help` list, and no option they do not.

mod support;

use std::collections::BTreeSet;
use support::*;

/// The options a help text lists: `--flag` at the start of an option line.
fn help_options(args: &[&str]) -> BTreeSet<String> {
    let out = std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("run bully");
    assert!(out.status.success(), "bully {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // `--flag ...`, or `-h, --help ...`.
        .map(|l| {
            let l = l.trim_start();
            match l.split_once(", --") {
                Some((short, rest)) if short.len() == 2 && short.starts_with('-') => {
                    format!("--{rest}")
                }
                _ => l.to_string(),
            }
        })
        .filter_map(|l| l.strip_prefix("--").map(str::to_string))
        .filter_map(|l| l.split([' ', ',', '=']).next().map(str::to_string))
        .map(|f| format!("--{f}"))
        .collect()
}

/// The options a part of the manual documents: `.B \-\-flag` or `.BI \-\-flag` right after
/// `.TP`, as every option entry starts.
fn manual_options(section: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut lines = section.lines().peekable();
    while let Some(l) = lines.next() {
        if l != ".TP" {
            continue;
        }
        let Some(entry) = lines.peek() else { break };
        for word in entry.split_whitespace() {
            let word = word.trim_matches('"');
            if let Some(flag) = word.strip_prefix("\\-\\-") {
                let flag: String = flag
                    .replace("\\-", "-")
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                out.insert(format!("--{flag}"));
            }
        }
    }
    out
}

fn manual() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/dist/bully.8")).unwrap()
}

/// The text of the manual between `.SH start` and the next `.SH`.
fn part(man: &str, start: &str) -> String {
    man.split(&format!("\n.SH {start}\n"))
        .nth(1)
        .and_then(|s| s.split("\n.SH ").next())
        .unwrap_or_else(|| panic!("no section {start} in bully.8"))
        .to_string()
}

#[test]
fn the_manual_and_help_list_the_same_node_options() {
    let man = manual();
    let help = help_options(&["--help"]);
    let documented = manual_options(&part(&man, "OPTIONS"));
    assert!(help.len() > 30, "{help:?}");
    let missing: Vec<_> = help.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&help).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in --help, not in bully.8 OPTIONS: {missing:?}\nin bully.8 OPTIONS, not in --help: {extra:?}"
    );
}

#[test]
fn the_manual_documents_every_option_of_the_commands() {
    let man = manual();
    for (args, section) in [
        (&["status", "--help"][..], "BULLY STATUS"),
        (&["step-down", "--help"][..], "STEP-DOWN AND MAINTENANCE"),
        (&["maintenance", "--help"][..], "STEP-DOWN AND MAINTENANCE"),
    ] {
        let help = help_options(args);
        let text = part(&man, section);
        let missing: Vec<_> = help
            .iter()
            .filter(|f| !text.contains(&f.replace('-', "\\-")))
            .collect();
        assert!(
            missing.is_empty(),
            "bully {args:?} lists {missing:?}, which bully.8's {section} does not mention"
        );
    }
}
