//! Allocation counts on the chat hot path (sans-IO level: the hub and the
//! delivery policy, no socket), measured with dhat's counting global
//! allocator: a line relayed to a room costs one allocation (its one
//! shared buffer) whether the room has 1 listener or 1000, and canned lines
//! (errors, /help) cost none.
//!
//! The outbox here queues handles on pre-grown [`ChunkQueue`]s, as the
//! reactor does, so the counts are the hub's, not the recorder's. The test
//! runs alone on the main thread (tests/alloc/main.rs says why).

use sockloop::buffer::ChunkQueue;
use sockloop::protocol::chat::delivery::{self, Delivery};
use sockloop::protocol::chat::{ChatLimits, ClientId, Hub};

/// One output queue per client, indexed by id, like the reactor's, filled
/// by the server's own delivery policy.
struct Queues {
    queues: Vec<ChunkQueue>,
    closed: usize,
    delivery: Delivery,
}

impl delivery::Queues for Queues {
    fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue> {
        self.queues.get_mut(id.0 as usize)
    }
    fn queued(&mut self, _id: ClientId, _cost: usize, _lines: usize) {}
    fn finish(&mut self, _id: ClientId) {
        self.closed += 1;
    }
}

/// Hand `bytes` from `id` to the hub and deliver what it asks for, as the
/// reactor does.
fn feed(hub: &mut Hub, out: &mut Queues, id: ClientId, bytes: &[u8]) {
    hub.handle_input(id, bytes);
    deliver(hub, out);
}

fn deliver(hub: &mut Hub, out: &mut Queues) {
    let mut delivery = std::mem::replace(&mut out.delivery, Delivery::new(0));
    delivery.apply_all(hub, out);
    out.delivery = delivery;
}

impl Queues {
    /// Empty every queue, keeping its capacity.
    fn clear(&mut self) {
        self.queues.iter_mut().for_each(ChunkQueue::clear);
    }

    fn pending(&self, who: usize) -> usize {
        self.queues[who].len()
    }
}

/// A hub whose client 0 talks to `listeners` others in #lobby, every
/// buffer already grown by a first round of traffic.
fn warm_room(listeners: usize) -> (Hub, Queues) {
    let mut hub = Hub::new(ChatLimits { max_line: 4096 });
    let mut out = Queues {
        queues: (0..=listeners).map(|_| ChunkQueue::new()).collect(),
        closed: 0,
        delivery: Delivery::new(usize::MAX),
    };
    for i in 0..=listeners {
        hub.handle_connect(ClientId(i as u64));
        deliver(&mut hub, &mut out);
    }
    // Grow the scratch buffer, the split-line buffer and each queue's ring
    // once, as the first lines of a real session would.
    feed(
        &mut hub,
        &mut out,
        ClientId(0),
        b"a first line, longer than the ones measured\n",
    );
    feed(&mut hub, &mut out, ClientId(0), b"a split");
    feed(&mut hub, &mut out, ClientId(0), b" line\n");
    feed(&mut hub, &mut out, ClientId(0), b"/me warms up\n/help\n");
    out.clear();
    (hub, out)
}

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = dhat::HeapStats::get().total_blocks;
    f();
    dhat::HeapStats::get().total_blocks - before
}

/// Allocations for each hot-path case in a room of `listeners`.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    relay: u64,
    relay_many_lines: u64,
    relay_split: u64,
    me: u64,
    canned: u64,
}

fn measure(listeners: usize) -> Counts {
    let (mut hub, mut out) = warm_room(listeners);
    let line = b"hello, room of any size!\n";

    let relay = allocations_during(|| feed(&mut hub, &mut out, ClientId(0), line));
    for i in 1..=listeners {
        assert_eq!(out.pending(i), "<guest1> hello, room of any size!\n".len());
    }
    assert_eq!(out.pending(0), 0, "the sender gets nothing back");
    out.clear();

    let relay_many_lines =
        allocations_during(|| feed(&mut hub, &mut out, ClientId(0), b"one\ntwo\nthree\nfour\n"));
    out.clear();

    let relay_split = allocations_during(|| {
        feed(&mut hub, &mut out, ClientId(0), b"in two ");
        feed(&mut hub, &mut out, ClientId(0), b"pieces\n");
    });
    assert_eq!(out.pending(1), "<guest1> in two pieces\n".len());
    out.clear();

    let me = allocations_during(|| feed(&mut hub, &mut out, ClientId(0), b"/me waves\n"));
    out.clear();

    let too_long = vec![b'x'; 5000];
    let canned = allocations_during(|| {
        feed(&mut hub, &mut out, ClientId(0), &too_long);
        feed(&mut hub, &mut out, ClientId(0), b"\n\xff\xfe\n/help\n\n");
    });
    assert!(out.pending(0) > 0, "the errors and help were sent");
    assert_eq!(out.closed, 0);

    Counts {
        relay,
        relay_many_lines,
        relay_split,
        me,
        canned,
    }
}

pub fn a_relayed_line_allocates_the_same_for_a_room_of_1_or_1000() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let one = measure(1);
    let thousand = measure(1000);
    assert_eq!(one, thousand, "allocations must not grow with the room");
    // And what they are: one shared buffer per line sent, nothing else.
    assert_eq!(
        thousand,
        Counts {
            relay: 1,
            relay_many_lines: 4,
            relay_split: 1,
            me: 1,
            canned: 0,
        }
    );
}
