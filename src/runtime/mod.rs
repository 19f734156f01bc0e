//! The shell around the core: it owns the state lock, the clock, the threads and the I/O, and
//! carries out what the core's steps return. It makes no protocol decision of its own.
//!
//! Grouped by concern: [`node`] (the state lock, the step, the effects, timers and the state
//! file), [`watch`] (held watches and beats), [`membership`] (directory, registration, registry
//! outages), [`lock`] (the leader lock in Consul or etcd), [`work`] (hooks, the child, checks,
//! VIPs), [`process`] (signals, shutdown, reload, memory) and [`metrics`].

pub mod lock;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod process;
pub mod watch;
pub mod work;
