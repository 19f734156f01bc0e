//! bully: leader election with the Bully algorithm for clusters of Linux hosts.
//!
//! [`election`] is the pure protocol core; everything else is the thin shell that gives it a
//! network, a registry and a clock.

pub mod auth;
pub mod config;
pub mod election;
pub mod hooks;
pub mod messages;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod registration;
pub mod registry;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod supervisor;
pub mod watch;
