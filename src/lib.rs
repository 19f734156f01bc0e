//! bully: leader election with the Bully algorithm for clusters of Linux hosts.
//!
//! [`core`] is the pure protocol (state, events in, everything to do out); [`runtime`] is the
//! shell that gives it threads, timers and I/O; [`http`] is the wire both ways; [`registry`]
//! is where members are found; [`cli`] reads the command line and wires a node together.
//! `tls` (feature `tls`) loads certificates and speaks TLS for `http` and `registry`.
//! Imports only point down that list: `cli` → `runtime` → `http`/`registry` → `core`.

pub mod cli;
pub mod core;
pub mod http;
pub mod log_limit;
pub mod monotonic;
pub mod registry;
pub mod runtime;
pub mod supervisor;
pub mod sync;
#[cfg(feature = "tls")]
pub mod tls;
pub mod vip;
