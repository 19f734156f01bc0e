//! The command line: `bully PORT NAME [options]` runs a node, `bully status` reports on a
//! cluster, `bully help [COMMAND]` explains. Parsing, the help text and the wiring of a node
//! live here; nothing else in the crate reads arguments or the environment's `BULLY_*`
//! variables.

pub mod config;
pub mod control;
pub mod flags;
pub mod instances;
pub mod logger;
pub mod output;
pub mod registry_flags;
pub mod report;
pub mod run;
pub mod status;
pub mod tls;
pub mod usage;
pub mod vips;

use config::Command;
use std::process::ExitCode;
use usage::USAGE;

/// The program: dispatches on the first argument.
pub fn main() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    // A node (`bully PORT ...`) runs for long and meets bursts; the commands do not.
    if args
        .first()
        .and_then(|a| a.to_str())
        .is_some_and(|a| a.parse::<u16>().is_ok())
    {
        crate::runtime::process::memory::without_stack_cache();
    }
    crate::runtime::process::memory::one_arena();
    // Hidden: bully re-executed as the supervisor of a hook or the --exec child.
    if args.first().is_some_and(|a| a == crate::supervisor::ENTRY) {
        return crate::supervisor::main(args.split_off(1));
    }
    let env = |k: &str| std::env::var(k).ok();
    let variables: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("BULLY_"))
        .collect();
    if args.first().is_some_and(|a| a == "help") {
        return help(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "status") {
        args.remove(0);
        return status::main(args, &env, &variables);
    }
    for what in ["step-down", "maintenance"] {
        if args.first().is_some_and(|a| a == what) {
            args.remove(0);
            return control::main(what, args, &env, &variables);
        }
    }
    // `bully statu`: a mistyped command, not a port.
    if let Some(word) = args.first().and_then(|a| a.to_str()) {
        if word.parse::<u16>().is_err() && !word.starts_with('-') {
            let commands = ["status", "step-down", "maintenance", "help"];
            if let Some(command) = flags::nearest(word, commands.into_iter()) {
                output::err(&format!(
                    "bully: unknown command '{word}'; did you mean '{command}'?\nTry 'bully --help'."
                ));
                return ExitCode::from(2);
            }
        }
    }
    match config::parse(args, &env, &variables) {
        Ok(Command::Help) => {
            output::out(USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            output::out(&format!("bully {}\n", env!("CARGO_PKG_VERSION")));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => run::run(*config),
        Err(e) => {
            output::err(&format!("bully: {e}\nTry 'bully --help'."));
            ExitCode::from(2)
        }
    }
}

/// `bully help [COMMAND]`: the usage, or the command's own help; exit 0, or 2 for a command
/// that does not exist.
fn help(topic: &[std::ffi::OsString]) -> ExitCode {
    let text = match topic.iter().map(|t| t.to_str()).collect::<Vec<_>>()[..] {
        [] | [Some("-h" | "--help" | "help")] => USAGE,
        [Some("status")] => status::HELP,
        [Some("step-down")] => control::STEP_DOWN_HELP,
        [Some("maintenance")] => control::MAINTENANCE_HELP,
        [Some(other)] => {
            let hint = flags::nearest(other, ["status", "step-down", "maintenance"].into_iter())
                .map(|c| format!("did you mean '{c}'? "))
                .unwrap_or_default();
            output::err(&format!(
                "bully help: no command '{other}'; {hint}the commands are status, step-down \
                 and maintenance"
            ));
            return ExitCode::from(2);
        }
        _ => {
            output::err("bully help: expected at most one command, as in 'bully help status'");
            return ExitCode::from(2);
        }
    };
    output::out(text);
    ExitCode::SUCCESS
}
