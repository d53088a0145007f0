//! Timers without threads: mio has none, so the loop keeps its own deadlines
//! and derives each poll timeout from the nearest one.
//!
//! Every deadline the loop has sits in one ordered set, nearest first. Most
//! belong to one source, named by (slab key, serial): a connection's idle or
//! lingering deadline, a listener's accept back-off, the Redis link's
//! reconnect or heartbeat. A source holds at most one of them, which it
//! remembers so that closing the source removes its deadline at once. The
//! loop itself holds at most two more: the next stats line and the end of the
//! shutdown grace. The set therefore holds no more entries than there are
//! open sources, plus two: memory follows what is open, not what was ever
//! opened.
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

/// Whom a deadline wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    /// A source, if the slot still holds the same one.
    Source {
        /// Its slab slot.
        key: usize,
        /// The serial it had when the deadline was set.
        serial: u64,
    },
    /// The loop itself, for one of its own deadlines.
    Loop(LoopTimer),
}

/// The loop's own deadlines, each held at most once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LoopTimer {
    /// Time to log the counters (`--stats-interval`).
    Stats,
    /// The shutdown grace is over: close whatever is still flushing.
    GraceOver,
}

/// Pending deadlines, nearest first, at most one per source and one per
/// [`LoopTimer`].
#[derive(Debug, Default)]
pub struct Timers {
    set: BTreeSet<(Instant, Wake)>,
    /// How many entries are the loop's own, so that [`Timers::len`] can
    /// count the sources' deadlines alone.
    loop_timers: usize,
}

impl Timers {
    /// No deadlines.
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Wake source (`key`, `serial`) at `when`. The caller keeps `when` so
    /// that it can [`cancel`](Timers::cancel) it.
    pub fn schedule(&mut self, when: Instant, key: usize, serial: u64) {
        self.set.insert((when, Wake::Source { key, serial }));
    }

    /// Forget a deadline given to [`schedule`](Timers::schedule) (the source
    /// is closing or chose another time).
    pub fn cancel(&mut self, when: Instant, key: usize, serial: u64) {
        self.set.remove(&(when, Wake::Source { key, serial }));
    }

    /// Wake the loop at `when` for `timer`. The caller keeps `when` so that
    /// it can [`cancel_loop`](Timers::cancel_loop) it.
    pub fn schedule_loop(&mut self, when: Instant, timer: LoopTimer) {
        if self.set.insert((when, Wake::Loop(timer))) {
            self.loop_timers += 1;
        }
    }

    /// Forget a deadline given to [`schedule_loop`](Timers::schedule_loop).
    pub fn cancel_loop(&mut self, when: Instant, timer: LoopTimer) {
        if self.set.remove(&(when, Wake::Loop(timer))) {
            self.loop_timers -= 1;
        }
    }

    /// The nearest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(when, _)| when)
    }

    /// Remove and return one deadline that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Wake> {
        match self.set.first() {
            Some(&(when, _)) if when <= now => {
                let (_, wake) = self.set.pop_first()?;
                if matches!(wake, Wake::Loop(_)) {
                    self.loop_timers -= 1;
                }
                Some(wake)
            }
            _ => None,
        }
    }

    /// Deadlines held for sources: never more than the open sources.
    pub fn len(&self) -> usize {
        self.set.len() - self.loop_timers
    }

    /// No deadline held for any source.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn source(key: usize, serial: u64) -> Option<Wake> {
        Some(Wake::Source { key, serial })
    }

    #[test]
    fn deadlines_come_due_in_order() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule(t0 + Duration::from_secs(2), 1, 10);
        t.schedule(t0 + Duration::from_secs(1), 2, 20);
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(1)), source(2, 20));
        assert_eq!(t.pop_due(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.pop_due(t0 + Duration::from_secs(5)), source(1, 10));
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
        assert_eq!(t.pop_due(t0), source(2, 20));
        assert_eq!(t.pop_due(t0), None);
    }

    #[test]
    fn the_loops_own_deadlines_share_the_set_but_not_the_source_count() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.schedule_loop(t0 + Duration::from_secs(3), LoopTimer::Stats);
        t.schedule_loop(t0 + Duration::from_secs(1), LoopTimer::GraceOver);
        t.schedule(t0 + Duration::from_secs(2), 7, 70);
        assert_eq!(t.len(), 1, "only the source's deadline is counted");
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(1)));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(t.pop_due(later), Some(Wake::Loop(LoopTimer::GraceOver)));
        assert_eq!(t.pop_due(later), source(7, 70));
        t.cancel_loop(t0 + Duration::from_secs(3), LoopTimer::Stats);
        assert_eq!(t.pop_due(later), None);
        assert_eq!(t.next(), None);
        assert!(t.is_empty());
    }
}
