//! What happens to the hub's effects on their way to the clients: the
//! per-client output bound (`--out-limit`) and the too-slow rule, as sans-IO
//! code. The reactor runs it over its connections and the fuzz harness over
//! its recorded queues, so the fuzzers check the very policy the server runs.
//!
//! The rule: a line goes onto the recipient's queue if the queue's cost
//! stays within the limit ([`ChunkQueue::fits`]: bytes plus one handle per
//! queued line). If it would not, the recipient gets nothing more and is
//! noted as too slow, once. The caller then disconnects the noted clients,
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
use super::{ClientId, Effect, Hub};
use crate::buffer::{ChunkQueue, SharedLine};

/// The clients' output queues, as whoever runs the hub keeps them.
pub trait Queues {
    /// The output queue of `id`, if it is connected and not closing.
    fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue>;
    /// A line was queued for `id`, adding `cost` to its queue's cost (for a
    /// caller that keeps totals, such as `--max-pending`; and to schedule
    /// the write).
    fn queued(&mut self, id: ClientId, cost: usize);
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
}

impl Delivery {
    /// A policy that holds each client's queue within `out_limit`.
    pub fn new(out_limit: usize) -> Delivery {
        Delivery {
            out_limit,
            too_slow: VecDeque::new(),
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
        let Some(queue) = queues.queue(to) else {
            return; // gone or closing: nobody will read it
        };
        if !queue.fits(line, self.out_limit) {
            if !self.too_slow.contains(&to) {
                self.too_slow.push_back(to);
            }
            return;
        }
        let before = queue.cost();
        queue.push(line);
        let cost = queue.cost() - before;
        queues.queued(to, cost);
    }

    /// Take every effect the hub has queued and carry it out.
    pub fn apply_all(&mut self, hub: &mut Hub, queues: &mut impl Queues) {
        while let Some(effect) = hub.poll_effect() {
            self.apply(effect, queues);
        }
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
    use crate::protocol::chat::Recipients;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Recorded {
        queues: HashMap<ClientId, ChunkQueue>,
        finished: Vec<ClientId>,
        cost: usize,
    }

    impl Queues for Recorded {
        fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue> {
            self.queues.get_mut(&id)
        }
        fn queued(&mut self, _id: ClientId, cost: usize) {
            self.cost += cost;
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
}
