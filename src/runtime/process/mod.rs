//! The node as a Unix process: its signals, its orderly end, rereading its files on SIGHUP,
//! and how it keeps its memory small.

pub mod memory;
pub mod reload;
pub mod shutdown;
pub mod signals;
