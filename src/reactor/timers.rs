//! Timers without threads: mio has no timers, so the loop keeps its own
//! deadlines and derives each poll timeout from the nearest one.
//!
//! Idle timeouts use a binary heap with *lazy* deadlines. A connection that
//! receives input does not touch the heap (that would cost O(log n) on the
//! hot path); it only updates its `last_input`. When a deadline comes due the
//! loop checks the connection's real `last_input`: if the connection was
//! active meanwhile the deadline is pushed again for the new time, otherwise
//! the connection is idle and is closed. Each entry carries the connection's
//! serial number, so a deadline of a closed connection never fires on the
//! connection that reused its slab slot.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A deadline for one connection: (when, slab key, serial).
type Deadline = Reverse<(Instant, usize, u64)>;

/// Pending idle deadlines, nearest first.
#[derive(Debug, Default)]
pub struct IdleTimers {
    heap: BinaryHeap<Deadline>,
}

impl IdleTimers {
    /// No deadlines.
    pub fn new() -> IdleTimers {
        IdleTimers::default()
    }

    /// Check connection (`key`, `serial`) at `when`.
    pub fn schedule(&mut self, when: Instant, key: usize, serial: u64) {
        self.heap.push(Reverse((when, key, serial)));
    }

    /// The nearest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((when, _, _))| *when)
    }

    /// Remove and return one deadline that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.heap.peek() {
            Some(Reverse((when, _, _))) if *when <= now => {
                let Reverse((_, key, serial)) = self.heap.pop()?;
                Some((key, serial))
            }
            _ => None,
        }
    }

    /// Deadlines held (including stale ones not yet popped).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// No deadlines held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_come_due_in_order() {
        let t0 = Instant::now();
        let mut t = IdleTimers::new();
        t.schedule(t0 + Duration::from_secs(2), 1, 10);
        t.schedule(t0 + Duration::from_secs(1), 2, 20);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(1)), Some((2, 20)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), Some((1, 10)));
        assert!(t.is_empty());
    }
}
