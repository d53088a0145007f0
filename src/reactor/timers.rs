//! Timers without threads: mio has none, so the loop keeps its own deadlines
//! and derives each poll timeout from the nearest one.
//!
//! Every deadline belongs to one source, named by (slab key, serial): a
//! connection's idle or lingering deadline, a listener's accept back-off. The
//! deadlines sit in one ordered set, nearest first, and a source holds at
//! most one of them, which it remembers so that closing the source removes
//! its deadline at once. The set therefore holds no more entries than there
//! are open sources: memory follows what is open, not what was ever opened.
//!
//! Idle deadlines are *lazy*: a connection that receives input does not touch
//! the set (that would cost O(log n) on the hot path); it only updates its
//! `last_input`. When the deadline comes due the loop looks at the real
//! `last_input`: if the connection was active meanwhile it schedules the new
//! deadline, otherwise the connection is idle and is closed. The serial in
//! each entry means a deadline can never fire on a source that reused a
//! closed one's slab slot.

use std::collections::BTreeSet;
use std::time::Instant;

/// One deadline: (when, slab key, serial).
type Deadline = (Instant, usize, u64);

/// Pending deadlines, nearest first, at most one per source.
#[derive(Debug, Default)]
pub struct Timers {
    set: BTreeSet<Deadline>,
}

impl Timers {
    /// No deadlines.
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Wake source (`key`, `serial`) at `when`. The caller keeps `when` so
    /// that it can [`cancel`](Timers::cancel) it.
    pub fn schedule(&mut self, when: Instant, key: usize, serial: u64) {
        self.set.insert((when, key, serial));
    }

    /// Forget a deadline given to [`schedule`](Timers::schedule) (the source
    /// is closing or chose another time).
    pub fn cancel(&mut self, when: Instant, key: usize, serial: u64) {
        self.set.remove(&(when, key, serial));
    }

    /// The nearest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(when, _, _)| when)
    }

    /// Remove and return one source whose deadline is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(usize, u64)> {
        match self.set.first() {
            Some(&(when, _, _)) if when <= now => {
                let (_, key, serial) = self.set.pop_first()?;
                Some((key, serial))
            }
            _ => None,
        }
    }

    /// Deadlines held: never more than the open sources.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// No deadlines held.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn deadlines_come_due_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule(t0 + Duration::from_secs(2), 1, 10);
        t.schedule(t0 + Duration::from_secs(1), 2, 20);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(1)), Some((2, 20)));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), Some((1, 10)));
        assert!(t.is_empty());
    }

    #[test]
    fn a_cancelled_deadline_is_gone_at_once() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule(t0, 1, 10);
        t.schedule(t0, 2, 20);
        t.cancel(t0, 1, 10);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(t0), Some((2, 20)));
        assert_eq!(t.pop_due(t0), None);
    }
}
