//! The leader's work and what it depends on: the hooks and the `--exec` child, the health
//! check that keeps a node standing, the child's output, and the virtual IPs.

pub mod check;
pub mod child_output;
pub mod hooks;
pub mod vips;
