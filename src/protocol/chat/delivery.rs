//! What happens to the hub's effects on their way to the clients: the
//! per-client output bound (`--out-limit`) and the too-slow rule, as sans-IO
//! code. The reactor runs it over its connections and the fuzz harness over
//! its recorded queues, so the fuzzers check the very policy the server runs.
//!
//! The rule: a line goes onto the recipient's queue if the queue's cost
//! stays within the limit ([`ChunkQueue::fits`]: bytes plus one handle per
//! queued line). If it would not, the recipient gets nothing more and is
//! noted as too slow, once.
//!
//! Lines to a room come in runs: in a busy turn, many lines go to the same
//! room before anyone joins or leaves it. [`Delivery::apply_all`] takes such
//! a run whole ([`Hub::poll_line_to_room`]) and queues it member by member:
//! each member's queue is looked up once per run, not once per line, and
//! its scheduling (`queued`) is one call for all its lines. What each member
//! gets, in what order, and who is found too slow in what order are exactly
//! what line-by-line delivery would give; only the work per member shrinks
//! (the reactor delivers once per turn, so a run is a turn's lines). The caller then disconnects the noted clients,
//! oldest first, each through [`Hub::handle_disconnect`] with
//! [`LeaveReason::TooSlow`](super::LeaveReason::TooSlow), whose leave notices are applied the same way and
//! may find more clients too slow; it goes on until none is left. Nothing
//! here calls back into the hub: the caller takes effects out, applies them,
//! and closes clients, in a plain loop.
//!
//! ```text
//! hub.handle_input(id, bytes);
//! loop {
//!     while let Some(effect) = hub.poll_effect() { delivery.apply(effect, &mut queues); }
//!     let Some(slow) = delivery.next_too_slow() else { break };
//!     queues.close(slow);                                 // drop its queue
//!     hub.handle_disconnect(slow, LeaveReason::TooSlow);  // its room is told
//! }
//! ```

use std::collections::VecDeque;

use super::cluster::ClusterRequest;
use super::{ClientId, Effect, Hub, Recipients};
use crate::buffer::{ChunkQueue, SharedLine};

/// The clients' output queues, as whoever runs the hub keeps them.
pub trait Queues {
    /// The output queue of `id`, if it is connected and not closing.
    fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue>;
    /// `lines` lines were queued for `id`, adding `cost` to its queue's cost
    /// (for a caller that keeps totals, such as `--max-pending`, and counts
    /// lines; and to schedule the write).
    fn queued(&mut self, id: ClientId, cost: usize, lines: usize);
    /// The hub is done with `id`: flush its queue, then close it.
    fn finish(&mut self, id: ClientId);
    /// A request for the other servers of a cluster. Only a hub made with
    /// [`Hub::with_cluster`] emits one, so queues that serve a hub without
    /// a cluster may keep this default, which says loudly that it came.
    fn cluster(&mut self, request: ClusterRequest) {
        debug_assert!(
            false,
            "a cluster request from a hub without a cluster: {request:?}"
        );
        log::warn!("cluster request without a cluster, dropped: {request:?}");
    }
}

/// The output policy's state: the bound, and the clients found too slow
/// that the caller has not disconnected yet.
#[derive(Debug)]
pub struct Delivery {
    out_limit: usize,
    too_slow: VecDeque<ClientId>,
    /// The run of lines to one room being delivered: each line, and who of
    /// the members does not get it. Kept, so that a run allocates nothing.
    run: Vec<(SharedLine, Option<ClientId>)>,
    /// Members found too slow during the run, with the index of the line
    /// that did not fit, to note them in the order line-by-line delivery
    /// would have.
    run_too_slow: Vec<(usize, ClientId)>,
}

impl Delivery {
    /// A policy that holds each client's queue within `out_limit`.
    pub fn new(out_limit: usize) -> Delivery {
        Delivery {
            out_limit,
            too_slow: VecDeque::new(),
            run: Vec::new(),
            run_too_slow: Vec::new(),
        }
    }

    /// Carry out one effect on `queues`.
    pub fn apply(&mut self, effect: Effect, queues: &mut impl Queues) {
        match effect {
            Effect::Send { to, line } => {
                for to in to.iter() {
                    self.offer(to, &line, queues);
                }
            }
            Effect::Close { who } => queues.finish(who),
            Effect::Cluster(request) => queues.cluster(request),
        }
    }

    /// Queue `line` for `to` if it fits; else note `to` as too slow.
    fn offer(&mut self, to: ClientId, line: &SharedLine, queues: &mut impl Queues) {
        if self.too_slow.contains(&to) {
            return; // it gets nothing more (the list is short: usually empty)
        }
        let Some(queue) = queues.queue(to) else {
            return; // gone or closing: nobody will read it
        };
        if !queue.fits(line, self.out_limit) {
            self.too_slow.push_back(to);
            return;
        }
        let before = queue.cost();
        queue.push(line);
        let cost = queue.cost() - before;
        queues.queued(to, cost, 1);
    }

    /// Take every effect the hub has queued and carry it out, a run of lines
    /// to one room at a time (see the module's text).
    pub fn apply_all(&mut self, hub: &mut Hub, queues: &mut impl Queues) {
        while let Some(effect) = hub.poll_effect() {
            match effect {
                Effect::Send {
                    to: Recipients::Room { members, except },
                    line,
                } => {
                    self.run.push((line, except));
                    while let Some(next) = hub.poll_line_to_room(&members) {
                        self.run.push(next);
                    }
                    self.deliver_run(&members, queues);
                }
                other => self.apply(other, queues),
            }
        }
    }

    /// The lines of the current run, in order, with who does not get each:
    /// for a harness that records what [`Delivery::deliver_run`] was given.
    pub fn run(&self) -> &[(SharedLine, Option<ClientId>)] {
        &self.run
    }

    /// Start a run by hand: the harness that records each line takes the
    /// run out of the hub itself, then calls [`Delivery::deliver_run`].
    pub fn push_to_run(&mut self, line: SharedLine, except: Option<ClientId>) {
        self.run.push((line, except));
    }

    /// Queue the current run of lines for every member of `members`, member
    /// by member: one lookup of the member's queue and one `queued` call
    /// for all its lines. A member's lines go on in order until one does not
    /// fit; then it gets nothing more and is noted too slow, as line by line.
    pub fn deliver_run(&mut self, members: &[ClientId], queues: &mut impl Queues) {
        for &member in members {
            if self.too_slow.contains(&member) {
                continue;
            }
            let Some(queue) = queues.queue(member) else {
                continue; // gone or closing
            };
            let before = queue.cost();
            let mut lines = 0;
            for (at, (line, except)) in self.run.iter().enumerate() {
                if *except == Some(member) {
                    continue;
                }
                if !queue.fits(line, self.out_limit) {
                    self.run_too_slow.push((at, member));
                    break;
                }
                queue.push(line);
                lines += 1;
            }
            let cost = queue.cost() - before;
            if lines > 0 {
                queues.queued(member, cost, lines);
            }
        }
        // Line by line, the members a line did not fit were noted in line
        // order, and in member order for one line: sort by line, stably.
        self.run_too_slow.sort_by_key(|&(at, _)| at);
        for (_, member) in self.run_too_slow.drain(..) {
            self.too_slow.push_back(member);
        }
        self.run.clear();
    }

    /// The client found too slow longest ago, for the caller to disconnect
    /// (and then to tell the hub, with [`LeaveReason::TooSlow`](super::LeaveReason::TooSlow)).
    pub fn next_too_slow(&mut self) -> Option<ClientId> {
        self.too_slow.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::QUEUED_LINE_COST;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Recorded {
        queues: HashMap<ClientId, ChunkQueue>,
        finished: Vec<ClientId>,
        cost: usize,
        /// (client, lines) of every `queued` call.
        calls: Vec<(ClientId, usize)>,
    }

    impl Queues for Recorded {
        fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue> {
            self.queues.get_mut(&id)
        }
        fn queued(&mut self, id: ClientId, cost: usize, lines: usize) {
            self.cost += cost;
            self.calls.push((id, lines));
        }
        fn finish(&mut self, id: ClientId) {
            self.finished.push(id);
        }
    }

    fn send(to: u64, text: &[u8]) -> Effect {
        Effect::Send {
            to: Recipients::One(ClientId(to)),
            line: SharedLine::from(text),
        }
    }

    #[test]
    fn a_line_is_queued_up_to_exactly_the_limit_then_the_client_is_too_slow() {
        let line_cost = 4 + QUEUED_LINE_COST;
        let mut d = Delivery::new(2 * line_cost);
        let mut q = Recorded::default();
        q.queues.insert(ClientId(1), ChunkQueue::new());
        q.queues.insert(ClientId(2), ChunkQueue::new());
        for _ in 0..2 {
            d.apply(send(1, b"abc\n"), &mut q);
        }
        assert_eq!(d.next_too_slow(), None, "exactly at the limit is fine");
        assert_eq!(q.cost, 2 * line_cost);
        d.apply(send(1, b"abc\n"), &mut q);
        d.apply(send(2, b"abc\n"), &mut q);
        d.apply(send(1, b"abc\n"), &mut q);
        assert_eq!(q.queues[&ClientId(1)].len(), 8, "nothing past the limit");
        assert_eq!(d.next_too_slow(), Some(ClientId(1)), "noted once");
        assert_eq!(d.next_too_slow(), None);
    }

    #[test]
    fn too_slow_clients_come_out_oldest_first_and_closes_pass_through() {
        let mut d = Delivery::new(QUEUED_LINE_COST + 2);
        let mut q = Recorded::default();
        for id in 1..=3 {
            q.queues.insert(ClientId(id), ChunkQueue::new());
        }
        for id in [3, 1, 2] {
            d.apply(send(id, b"much too long\n"), &mut q);
        }
        d.apply(Effect::Close { who: ClientId(9) }, &mut q);
        d.apply(send(9, b"x\n"), &mut q); // unknown: dropped
        assert_eq!(q.finished, vec![ClientId(9)]);
        let order: Vec<_> = std::iter::from_fn(|| d.next_too_slow()).collect();
        assert_eq!(order, vec![ClientId(3), ClientId(1), ClientId(2)]);
    }

    /// What each client holds: its queued bytes, in order.
    fn contents(q: &Recorded) -> Vec<(u64, Vec<u8>)> {
        let mut all: Vec<(u64, Vec<u8>)> = q
            .queues
            .iter()
            .map(|(id, queue)| {
                let mut slices = vec![std::io::IoSlice::new(&[]); queue.lines().max(1)];
                let n = queue.io_slices(&mut slices);
                let bytes: Vec<u8> = slices[..n].iter().flat_map(|s| s.iter().copied()).collect();
                (id.0, bytes)
            })
            .collect();
        all.sort();
        all
    }

    proptest::proptest! {
        /// A run of lines to one room, delivered member by member, leaves
        /// every queue, every cost and the too-slow order exactly as
        /// delivering the same lines one effect at a time does; and each
        /// member is scheduled once for the run, not once per line.
        #[test]
        fn a_run_is_delivered_exactly_as_line_by_line(
            members in proptest::collection::vec(0u64..8, 1..8),
            gone in 0u64..8,
            full in proptest::collection::vec(0usize..120, 8),
            lines in proptest::collection::vec((1usize..40, proptest::option::of(0u64..8)), 1..12),
            out_limit in 50usize..300,
        ) {
            // A room lists each member once, in join order.
            let mut seen = std::collections::HashSet::new();
            let members: Vec<ClientId> =
                members.into_iter().filter(|&m| seen.insert(m)).map(ClientId).collect();
            let setup = || {
                let mut q = Recorded::default();
                for id in 0..8u64 {
                    if id == gone {
                        continue; // a member whose connection is gone
                    }
                    let mut queue = ChunkQueue::new();
                    queue.push(&SharedLine::from(vec![b'.'; full[id as usize]].as_slice()));
                    q.queues.insert(ClientId(id), queue);
                }
                q
            };
            let run: Vec<(SharedLine, Option<ClientId>)> = lines
                .iter()
                .enumerate()
                .map(|(i, &(len, except))| {
                    let mut text = vec![b'a' + i as u8; len];
                    text.push(b'\n');
                    (SharedLine::from(text.as_slice()), except.map(ClientId))
                })
                .collect();
            let room = std::rc::Rc::new(members.clone());

            let mut by_line = Delivery::new(out_limit);
            let mut one_at_a_time = setup();
            for (line, except) in &run {
                by_line.apply(
                    Effect::Send {
                        to: Recipients::Room { members: std::rc::Rc::clone(&room), except: *except },
                        line: SharedLine::clone(line),
                    },
                    &mut one_at_a_time,
                );
            }

            let mut by_run = Delivery::new(out_limit);
            let mut in_a_run = setup();
            for (line, except) in &run {
                by_run.push_to_run(SharedLine::clone(line), *except);
            }
            by_run.deliver_run(&room, &mut in_a_run);

            proptest::prop_assert_eq!(contents(&in_a_run), contents(&one_at_a_time));
            proptest::prop_assert_eq!(in_a_run.cost, one_at_a_time.cost);
            let slow_by_line: Vec<_> = std::iter::from_fn(|| by_line.next_too_slow()).collect();
            let slow_by_run: Vec<_> = std::iter::from_fn(|| by_run.next_too_slow()).collect();
            proptest::prop_assert_eq!(slow_by_run, slow_by_line);
            let mut scheduled: Vec<ClientId> = in_a_run.calls.iter().map(|&(id, _)| id).collect();
            let calls = scheduled.len();
            scheduled.sort();
            scheduled.dedup();
            proptest::prop_assert_eq!(calls, scheduled.len(), "one queued call per member");
            let lines_by_run: usize = in_a_run.calls.iter().map(|&(_, n)| n).sum();
            proptest::prop_assert_eq!(lines_by_run, one_at_a_time.calls.len());
        }
    }

    /// The hub hands out a run only while the room is the same: a join
    /// between two lines ends the run.
    #[test]
    fn a_run_ends_where_the_room_changes() {
        let mut hub = Hub::new(crate::protocol::chat::ChatLimits { max_line: 100 });
        let (a, b, c) = (ClientId(1), ClientId(2), ClientId(3));
        hub.handle_connect(a);
        hub.handle_connect(b);
        while hub.poll_effect().is_some() {}
        hub.handle_input(a, b"one\ntwo\n");
        hub.handle_connect(c);
        hub.handle_input(a, b"three\n");
        let mut q = Recorded::default();
        for id in [a, b, c] {
            q.queues.insert(id, ChunkQueue::new());
        }
        let mut d = Delivery::new(1 << 20);
        d.apply_all(&mut hub, &mut q);
        // b: scheduled once for "one" and "two" (a run), then the join
        // notice and "three" on their own (c's welcome goes to c).
        let b_calls: Vec<usize> = q
            .calls
            .iter()
            .filter(|(id, _)| *id == b)
            .map(|&(_, n)| n)
            .collect();
        assert_eq!(b_calls, [2, 1, 1], "{:?}", q.calls);
    }
}
