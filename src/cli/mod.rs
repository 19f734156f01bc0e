//! The command line: `bully PORT NAME [options]` runs a node, `bully status` reports on a
//! cluster. Parsing, the help text and the wiring of a node live here; nothing else in the
//! crate reads arguments or the environment's `BULLY_*` variables.

pub mod config;
pub mod control;
pub mod flags;
pub mod registry_flags;
pub mod run;
pub mod status;
pub mod usage;

use config::Command;
use std::process::ExitCode;
use usage::USAGE;

/// The program: dispatches on the first argument.
pub fn main() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    // Hidden: bully re-executed as the supervisor of a hook or the --exec child.
    if args.first().is_some_and(|a| a == crate::supervisor::ENTRY) {
        return crate::supervisor::main(args.split_off(1));
    }
    let env = |k: &str| std::env::var(k).ok();
    if args.first().is_some_and(|a| a == "status") {
        args.remove(0);
        return status::main(args, &env);
    }
    for what in ["step-down", "maintenance"] {
        if args.first().is_some_and(|a| a == what) {
            args.remove(0);
            return control::main(what, args, &env);
        }
    }
    match config::parse(args, &env) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("bully {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => run::run(*config),
        Err(e) => {
            eprintln!("bully: {e}\nTry 'bully --help'.");
            ExitCode::from(2)
        }
    }
}
