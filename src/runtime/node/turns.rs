//! Steps carry out what they return in the order they were taken, without holding the state
//! lock meanwhile: each draws a ticket under the state lock and waits for its turn after
//! letting it go. Before, a step took the next lock while still holding the state lock, so a
//! step behind a slow fsync held every snapshot (`/nodeDetails`, `/metrics`) up with it.

use crate::sync::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

#[derive(Default)]
pub struct Turns {
    drawn: AtomicU64,
    /// The ticket whose turn it is.
    serving: Mutex<u64>,
    next: Condvar,
}

/// A step's turn; the next ticket's comes when it drops (also on a panic).
pub struct Turn<'a> {
    turns: &'a Turns,
}

impl Turns {
    /// Draws the next ticket. Call under the state lock, so tickets follow the steps' order.
    pub fn draw(&self) -> u64 {
        self.drawn.fetch_add(1, Ordering::SeqCst)
    }

    /// Waits until it is `ticket`'s turn.
    pub fn wait(&self, ticket: u64) -> Turn<'_> {
        let mut serving = lock(&self.serving);
        while *serving != ticket {
            serving = self.next.wait(serving).unwrap_or_else(|e| e.into_inner());
        }
        Turn { turns: self }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *lock(&self.turns.serving) += 1;
        self.turns.next.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn turns_come_in_ticket_order_whoever_waits_first() {
        let turns = Arc::new(Turns::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let tickets: Vec<u64> = (0..4).map(|_| turns.draw()).collect();
        let threads: Vec<_> = tickets
            .into_iter()
            .rev()
            .map(|t| {
                let (turns, order) = (Arc::clone(&turns), Arc::clone(&order));
                std::thread::spawn(move || {
                    let _turn = turns.wait(t);
                    lock(&order).push(t);
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock(&order), vec![0, 1, 2, 3]);
    }
}
