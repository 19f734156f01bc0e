//! The shell around the core: it owns the state lock, the clock, the threads and the I/O, and
//! carries out what the core's steps return. It makes no protocol decision of its own.

pub mod api;
pub mod beats;
pub mod check;
pub mod child_output;
pub mod clock;
pub mod consul_lock;
pub mod directory;
pub mod effects;
pub mod etcd_lock;
pub mod fence;
pub mod handle;
pub mod hooks;
pub mod leader_lock;
pub mod leadership;
pub mod memory;
pub mod metrics;
pub mod node;
pub mod outage;
pub mod registration;
pub mod reload;
pub mod repeats;
pub mod schedules;
pub mod shutdown;
pub mod signals;
pub mod state_file;
pub mod timers;
pub mod timing;
pub mod turns;
pub mod vips;
pub mod watch;
