//! `bully PORT NAME [options]`: one node of a Bully leader-election cluster;
//! `bully status [options]`: what the members of a cluster report.

fn main() -> std::process::ExitCode {
    bully::cli::main()
}
