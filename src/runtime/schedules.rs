//! The two schedules of the original design: the first election after the startup delay,
//! then a health tick every interval. Plain `std::thread::sleep`, on one thread.

use super::handle::Handle;
use super::registration::Registration;
use super::timing::Timing;
use crate::core::event::Event;
use std::sync::Arc;

/// Registers first, so the first election usually finds this node registered; then runs
/// forever on the calling thread.
pub fn run(node: Arc<dyn Handle>, registration: Arc<Registration>, timing: Timing) {
    registration.start();
    std::thread::sleep(timing.startup_delay);
    node.step(Event::Startup);
    loop {
        std::thread::sleep(timing.health_interval);
        node.step(Event::HealthTick);
    }
}
