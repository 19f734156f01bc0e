//! Starting one node: listen, open the registry, build the node and its parts, start the
//! threads, then serve on the calling thread.

use super::config::Config;
use super::{logger, output, vips};
use crate::core::election::{Settings, Snapshot};
use crate::core::lock::{ETCD_LOCK_RETRY_MS, LOCK_RETRY_MS};
use crate::core::member::Member;
use crate::core::quorum::Quorum;
use crate::http::auth::{Keys, Verifier};
use crate::http::peer::PeerClient;
use crate::http::server;
use crate::registry::{self, ConsulLock, EtcdLock, Failure};
use crate::runtime::lock::consul::LockRunner;
use crate::runtime::lock::etcd::EtcdLockRunner;
use crate::runtime::lock::LeaderLock;
use crate::runtime::membership::directory::Directory;
use crate::runtime::membership::registration::Registration;
use crate::runtime::metrics::Metrics;
use crate::runtime::node::api::Api;
use crate::runtime::node::clock::Clock;
use crate::runtime::node::fence::Fence;
use crate::runtime::node::handle::Handle;
use crate::runtime::node::schedules;
use crate::runtime::node::state_file::StateFile;
use crate::runtime::node::timing::Timing;
use crate::runtime::node::{Node, Parts};
use crate::runtime::process::reload::Reload;
use crate::runtime::process::shutdown::Leaving;
use crate::runtime::process::signals;
use crate::runtime::watch;
use crate::runtime::watch::beats::Beats;
use crate::runtime::watch::leadership::Leadership;
use crate::runtime::work::check;
use crate::runtime::work::hooks::Hooks;
use crate::runtime::work::vips::Vips;
use crate::sync::spawn_named;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Runs the node until a signal ends the process; returns only when it cannot start.
pub fn run(config: Config) -> ExitCode {
    logger::init(&config.log);
    // From here on a SIGINT or SIGTERM only marks the node as leaving until the signal thread
    // takes over, so a node stopped while it starts still leaves cleanly and exits 0.
    let stopping = Arc::new(AtomicBool::new(false));
    if let Err(e) = signals::catch_early(Arc::clone(&stopping)) {
        output::err(&format!("bully: cannot handle SIGINT/SIGTERM/SIGHUP: {e}"));
        return ExitCode::from(1);
    }

    let vips = match vips::resolve(&config) {
        Ok(v) => Arc::new(Vips::new(v)),
        Err(r) => {
            output::err(&format!("bully: {}", r.line));
            return ExitCode::from(r.code);
        }
    };
    // Before the registry: the static one asks its peers, over HTTPS when this node has TLS.
    if let Some(files) = &config.tls {
        if let Err(e) = super::tls::install(files) {
            output::err(&format!("bully: {e}"));
            return ExitCode::from(1);
        }
    }
    let addr = SocketAddr::new(config.bind, config.port);
    let listener = match server::bind(addr) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            output::err(&format!(
                "bully: port {} is already in use on {}",
                config.port, config.bind
            ));
            return ExitCode::from(1);
        }
        Err(e) => {
            output::err(&format!("bully: cannot listen on {addr}: {e}"));
            return ExitCode::from(1);
        }
    };
    let registry = match registry::open(&config.registry) {
        Ok(r) => r,
        Err(e) => {
            output::err(&format!("bully: {e}"));
            return ExitCode::from(1);
        }
    };
    let cluster = config.registry.cluster.clone();
    // Without --id, the id drawn at the first start is kept in the state file: a restart keeps
    // the node's rank (a new id at every start made restarts take or give up leadership).
    let stored_id = StateFile::stored_id(&config.state_dir, &cluster, &config.name);
    let id = match (config.id_is_random, stored_id) {
        (true, Some(id)) => id,
        _ => config.id,
    };
    let me = Member {
        name: config.name.clone(),
        id,
        host: config.advertise.clone(),
        port: config.port,
        witness: config.witness,
    };
    // Before anything of this node's is touched (its state file first): a second node of a
    // live node's name must not write where that one does. Registering checks again.
    match registry.check_name(&me) {
        Err(e) if e.failure != Failure::Unreachable => {
            output::err(&format!("bully: {e}"));
            return ExitCode::from(1);
        }
        _ => {}
    }
    let timing = Timing {
        startup_delay: config.startup_delay,
        health_interval: config.health_interval,
        timeout: config.timeout,
        heartbeat: config.heartbeat,
    };
    let (state, persisted) = match StateFile::open(&config.state_dir, &cluster, &me.name, me.id) {
        Ok(s) => s,
        Err(e) => {
            output::err(&format!("bully: {e}"));
            return ExitCode::from(1);
        }
    };
    let id_origin = match (config.id_is_random, stored_id) {
        (false, _) => String::new(),
        (true, Some(_)) => format!(" (kept in {})", state.path().display()),
        (true, None) => format!(" (drawn now, kept in {})", state.path().display()),
    };
    let metrics = Arc::new(Metrics::default());
    let directory = Arc::new(Directory::new(registry, Arc::clone(&metrics)));
    let leadership = Arc::new(Leadership::default());
    let clock = Clock::start();
    let consul_lock =
        config.registry.kind == registry::RegistryKind::Consul && config.registry.consul.lock;
    let etcd_lock =
        config.registry.kind == registry::RegistryKind::Etcd && config.registry.etcd.lock;
    // The etcd lock's lease fences the leader's work as a quorum lease does (in quorum mode
    // the quorum lease does, and the key's revision is a token only).
    let fence = Arc::new(Fence::new(clock, config.quorum.is_some() || etcd_lock));
    let keys = config.cluster_key.clone().map(Keys::new);
    let settings = Settings {
        quorum: config
            .quorum
            .map(|n| Quorum::new(n, config.lease, config.hooks.exec_grace)),
        witness: config.witness,
        has_hooks: config.hooks.any() || !vips.is_empty() || etcd_lock,
        no_preempt: config.no_preempt,
        preempt_delay_ms: config.preempt_delay.as_millis() as u64,
        health_checked: config.check.any(),
        exec_exit_unhealthy: config.hooks.exit_unhealthy,
        // An exited child keeps the node out of the running as long as a failed check would
        // take to pass again.
        recover_after_ms: (config.check.interval * config.check.rise).as_millis() as u64,
        lock: consul_lock || etcd_lock,
        lock_retry_ms: if etcd_lock {
            ETCD_LOCK_RETRY_MS
        } else {
            LOCK_RETRY_MS
        },
        beats_stand_in: Settings::beats_notice_first(
            timing.silence(),
            config.health_interval,
            config.timeout,
        ),
        ..Settings::for_timeout(config.timeout)
    };
    let quorum_line = match &settings.quorum {
        Some(q) => format!(
            ", quorum {} of {} with a {} ms lease{}",
            q.majority(),
            q.size,
            q.lease,
            if config.witness { ", witness" } else { "" }
        ),
        None => String::new(),
    };
    let parts = Parts {
        me: me.node_ref(),
        settings,
        clock,
        state,
        persisted: persisted.clone(),
        client: PeerClient::new(config.timeout).signing(keys.clone()),
        directory: Arc::clone(&directory),
        metrics: Arc::clone(&metrics),
        leadership: Arc::clone(&leadership),
        fence: Arc::clone(&fence),
        stopping: Arc::clone(&stopping),
        lock: leader_lock(&config, &me, &fence, clock),
    };
    let node: Arc<dyn Handle> = match Node::start(parts) {
        Ok(n) => n,
        Err(e) => {
            output::err(&format!("bully: cannot start the node's timer thread: {e}"));
            return ExitCode::from(1);
        }
    };
    // Subscribed before anything can change the coordinator, so no transition is missed.
    // With --etcd-lock the hook runner also keeps the lease keeper (see hooks.rs).
    let hooks = if config.hooks.any() || !vips.is_empty() || etcd_lock {
        match Hooks::start(
            Arc::clone(&node),
            me.node_ref(),
            config.hooks.clone(),
            Arc::clone(&fence),
            Arc::clone(&vips),
            Arc::clone(&metrics),
            if etcd_lock {
                "BULLY_ETCD_REVISION"
            } else {
                "BULLY_CONSUL_LOCK_INDEX"
            },
        ) {
            Ok(h) => Some(h),
            Err(e) => {
                output::err(&format!("bully: cannot start the hook thread: {e}"));
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let signed = config.cluster_key.is_some();
    let tls = match &config.tls {
        Some(t) => format!(
            ", HTTPS only with mutual TLS (certificate {}, CA {})",
            t.cert.display(),
            t.ca.display()
        ),
        None => String::new(),
    };
    log::info!(
        "Node {} with id {}{} on {} (advertised {}), cluster '{}', registry {}, {}{}{}",
        me.name,
        me.id,
        id_origin,
        addr,
        me.address(),
        cluster,
        directory.registry().describe(),
        if signed {
            "POSTs signed (HMAC-SHA256)"
        } else {
            "no cluster key"
        },
        tls,
        quorum_line
    );
    for w in &config.warnings {
        log::warn!("{w}");
    }
    if !vips.is_empty() {
        vips::remove_leftovers(vips.list());
        let list: Vec<String> = vips.list().iter().map(|v| v.to_string()).collect();
        log::info!(
            "Holds {} while it leads{}",
            list.join(", "),
            if config.quorum.is_some() {
                ", fenced by its lease"
            } else {
                " (not fenced without --quorum)"
            }
        );
    }
    if consul_lock {
        log::info!(
            "Leading takes the Consul lock bully/{cluster}/leader (sessions bound to this \
             node's check, lock-delay {} ms)",
            config.registry.consul.lock_delay.as_millis()
        );
    }
    if etcd_lock {
        log::info!(
            "Leading takes the etcd key bully/{cluster}/leader on a lease of {} s; the \
             leader's work is fenced by it",
            config.registry.etcd.ttl.as_secs()
        );
    }
    if persisted.floor > 0 {
        log::info!(
            "Terms up to {} were used before this start; the next claim takes a higher one",
            persisted.floor
        );
    }
    if !signed && config.tls.is_none() && !config.bind.is_loopback() {
        log::warn!(
            "listening on {} without --cluster-key or --tls-*: anyone who reaches this port can take over \
             the election; set a key",
            config.bind
        );
    }
    let registration = Registration::new(
        me.clone(),
        Arc::clone(&directory),
        Arc::clone(&node),
        Arc::clone(&metrics),
        timing.health_interval,
    );
    let leaving = Leaving {
        node: Arc::clone(&node),
        hooks,
        registration: Arc::clone(&registration),
        leadership: Arc::clone(&leadership),
    };
    let reload = Reload {
        key_file: config.cluster_key_file.clone().zip(keys.clone()),
        directory: Arc::clone(&directory),
        tls: config.tls.is_some(),
    };
    if let Err(e) = signals::install(leaving, reload, stopping) {
        log::warn!("cannot handle SIGINT/SIGTERM/SIGHUP ({e}); the registry record stays on exit");
    }
    if config.check.any() {
        if let Err(e) = check::start(
            Arc::clone(&node),
            config.check.clone(),
            Arc::clone(&metrics),
        ) {
            output::err(&format!("bully: cannot start the health check: {e}"));
            return ExitCode::from(1);
        }
    }
    // Before the node serves or elects: a registry that refuses the write, or a name a live
    // node holds, ends it here; one that does not answer is retried.
    match registration.first() {
        Ok(registered) => registration.keep_up(registered),
        Err(e) => {
            output::err(&format!("bully: {e}"));
            return ExitCode::from(1);
        }
    }
    let (scheduled, timed) = (Arc::clone(&node), timing.clone());
    if let Err(e) = spawn_named("schedules", move || schedules::run(scheduled, timed)) {
        output::err(&format!("bully: cannot start the schedules: {e}"));
        return ExitCode::from(1);
    }
    let (follower, timed) = (Arc::clone(&node), timing);
    if let Err(e) = spawn_named("watch", move || watch::follow(follower, timed)) {
        log::warn!("cannot start the coordinator watch ({e}); relying on the health check");
    }
    let beats = {
        let node = Arc::clone(&node);
        match Beats::start(
            Arc::clone(&leadership),
            move || node.snapshot(),
            Snapshot::asks_to_be_followed,
        ) {
            Ok(b) => b,
            Err(e) => {
                output::err(&format!("bully: cannot start the beat thread: {e}"));
                return ExitCode::from(1);
            }
        }
    };
    let api = Api {
        beats,
        witness: config.witness,
        me,
        cluster,
        node,
        directory,
        metrics,
        leadership,
        verifier: keys.clone().map(Verifier::new),
        vips,
    };
    server::serve(listener, Arc::new(api));
    ExitCode::SUCCESS
}

/// The leader lock's shell, when `--consul-lock` or `--etcd-lock` asks for one.
fn leader_lock(
    config: &Config,
    me: &Member,
    fence: &Arc<Fence>,
    clock: Clock,
) -> Option<LeaderLock> {
    let r = &config.registry;
    match r.kind {
        registry::RegistryKind::Consul if r.consul.lock => Some(LeaderLock::new(Box::new(
            LockRunner::new(ConsulLock::new(&r.consul, &r.cluster, me, config.timeout)),
        ))),
        registry::RegistryKind::Etcd if r.etcd.lock => {
            Some(LeaderLock::new(Box::new(EtcdLockRunner::new(
                EtcdLock::new(&r.etcd, &r.cluster, me, config.timeout),
                Arc::clone(fence),
                clock,
                config.quorum.is_none(),
            ))))
        }
        _ => None,
    }
}
