//! The fence around the `--exec` child in quorum mode: the end of the lease, the latest
//! instant the child may still run. The core moves it forward with every renewal; the hook
//! runner hands it to the child's supervisor, which kills the child when it passes even if
//! this process is frozen and can move it no more.

use crate::sync::lock;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
pub struct Fence {
    until: Mutex<Option<Instant>>,
}

impl Fence {
    /// Moves the fence to `until`, never back: an answer that arrives late cannot shorten a
    /// lease that a newer one extended.
    pub fn extend(&self, until: Instant) {
        let mut held = lock(&self.until);
        if held.is_none_or(|h| until > h) {
            *held = Some(until);
        }
    }

    /// The current fence; `None` outside quorum mode.
    pub fn until(&self) -> Option<Instant> {
        *lock(&self.until)
    }
}
