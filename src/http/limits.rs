//! Every size, count and timeout that bounds what a peer or a client can make a node hold, in
//! one place. The vendored HTTP server takes its limits from here too, so the node's own guards
//! and the crate's never disagree.

use std::time::Duration;

/// Largest request body accepted; election messages are tens of bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest request head (request line and headers) the server reads; past it the client gets
/// `431` and the connection closes. The vendored server counts it while reading, so no header
/// reaches the node past it. Election messages send a few hundred bytes.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most requests handled at once; beyond it the loop answers `503` at once.
pub const MAX_HANDLERS: usize = 64;
/// Most held `/watch` requests (one thread and one socket each). Bully clusters are small;
/// followers beyond the cap fall back to the periodic health check.
pub const MAX_WATCHERS: usize = 128;
/// Most connections read at once, one server thread each: the handlers and the watches, with
/// room for connections still being read. Beyond it the accept thread answers `503` and
/// closes. Without a cap every connection, idle ones too, cost a thread.
pub const MAX_CONNECTIONS: usize = MAX_HANDLERS + MAX_WATCHERS + 64;
/// A client that sends nothing for this long loses its connection (and its thread).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections the kernel queues before they are accepted. std listens with 128, fewer than a
/// failover of a large cluster sends the new coordinator at once; the kernel dropped the rest,
/// their retry came after 1 s, and the senders had timed out and taken a live coordinator for
/// dead, which fed the storm with more elections.
pub const BACKLOG: i32 = 1024;
/// Largest answer body read from a peer; anything bigger is not a bully node.
pub const MAX_ANSWER: u64 = 64 * 1024;
