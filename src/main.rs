//! `bully PORT NAME [options]`: one node of a Bully leader-election cluster;
//! `bully status [options]`: what the members of a cluster report.

use bully::config::{self, Command, Config, USAGE};
use bully::election::Member;
use bully::hooks::Hooks;
use bully::node::{Node, Timing};
use bully::{registry, server, shutdown, status, supervisor};
use std::net::SocketAddr;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    // Hidden: bully re-executed as the supervisor of a hook or the --exec child.
    if args.first().is_some_and(|a| a == supervisor::ENTRY) {
        return supervisor::main(args.split_off(1));
    }
    let env = |k: &str| std::env::var(k).ok();
    if args.first().is_some_and(|a| a == "status") {
        args.remove(0);
        return status::main(args, &env);
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
        Ok(Command::Run(config)) => run(*config),
        Err(e) => {
            eprintln!("bully: {e}\nTry 'bully --help'.");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> ExitCode {
    simple_logger::SimpleLogger::new()
        .with_level(config.log_level)
        .with_module_level("ureq", log::LevelFilter::Warn)
        .with_module_level("ureq_proto", log::LevelFilter::Warn)
        .with_utc_timestamps()
        .init()
        .ok();

    let addr = SocketAddr::new(config.bind, config.port);
    let listener = match server::bind(addr) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            eprintln!(
                "bully: port {} is already in use on {}",
                config.port, config.bind
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("bully: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    let registry = match registry::open(&config.registry) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bully: {e}");
            return ExitCode::from(1);
        }
    };
    let me = Member {
        name: config.name.clone(),
        id: config.id,
        host: config.advertise.clone(),
        port: config.port,
    };
    let timing = Timing {
        startup_delay: config.startup_delay,
        health_interval: config.health_interval,
        timeout: config.timeout,
    };
    let signed = config.cluster_key.is_some();
    let node = Node::new(
        me,
        config.registry.cluster.clone(),
        timing,
        registry,
        config.cluster_key.clone(),
    );
    // Subscribed before anything can change the coordinator, so no transition is missed.
    let hooks = if config.hooks.any() {
        match Hooks::start(&node, config.hooks.clone()) {
            Ok(h) => Some(h),
            Err(e) => {
                eprintln!("bully: cannot start the hook thread: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    log::info!(
        "Node {} with id {}{} on {} (advertised {}), cluster '{}', registry {}, {}",
        node.me.name,
        node.me.id,
        if config.id_is_random { " (random)" } else { "" },
        addr,
        node.me.address(),
        node.cluster,
        node.registry().describe(),
        if signed {
            "POSTs signed (HMAC-SHA256)"
        } else {
            "no cluster key"
        }
    );
    if !signed && !config.bind.is_loopback() {
        log::warn!(
            "listening on {} without --cluster-key: anyone who reaches this port can take over \
             the election; set a key",
            config.bind
        );
    }
    if let Err(e) = shutdown::install(node.clone(), hooks) {
        log::warn!("cannot handle SIGINT/SIGTERM ({e}); the registry record stays on exit");
    }
    let schedules = node.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("schedules".into())
        .spawn(move || schedules.run_schedules())
    {
        eprintln!("bully: cannot start the schedules: {e}");
        return ExitCode::from(1);
    }
    let follower = node.clone();
    if let Err(e) = std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || bully::watch::follow(follower))
    {
        log::warn!("cannot start the coordinator watch ({e}); relying on the health check");
    }
    server::serve(listener, node);
    ExitCode::SUCCESS
}
