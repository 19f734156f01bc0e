//! The two schedules of the original design: the first election after the startup delay,
//! then a health tick every interval (which also trims the heap now and then). Plain
//! `std::thread::sleep`, on one thread.

use super::handle::Handle;
use super::timing::Timing;
use crate::core::event::Event;
use std::sync::Arc;

/// Runs forever on the calling thread (the node registered before it started).
pub fn run(node: Arc<dyn Handle>, timing: Timing) {
    std::thread::sleep(timing.startup_delay);
    node.step(Event::Startup);
    loop {
        std::thread::sleep(timing.health_interval);
        node.step(Event::HealthTick);
        // Quiet moments between ticks: the heap's free pages go back (see process/memory.rs).
        crate::runtime::process::memory::trim();
    }
}
