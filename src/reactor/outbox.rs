//! The seam between the chat hub and the connections. The hub is sans-IO: it
//! takes events and queues [`Effect`](crate::protocol::chat::Effect)s. After
//! every hub call (and before every flush) the reactor takes those effects
//! out and carries them out with the shared delivery policy
//! ([`Delivery`](crate::protocol::chat::delivery::Delivery)) over the slab: a line becomes a handle on the recipient's
//! output queue, a close marks the connection finishing. The clients found
//! too slow are then closed one at a time, which tells the hub, whose leave
//! notices go the same way; a plain loop, nothing calls back into the
//! reactor.

use slab::Slab;

use super::source::{key_of, serial_matches, CloseReason, Conn, Entry, Proto, Source};
use super::stats::Stats;
use super::tcp::queue_flush;
use super::Server;
use crate::buffer::ChunkQueue;
use crate::cluster::link::Link;
use crate::net::Net;
use crate::protocol::chat::cluster::ClusterRequest;
use crate::protocol::chat::delivery::Queues;
use log::warn;
use std::time::Instant;

use crate::protocol::chat::ClientId;

impl<N: Net> Server<N> {
    /// Carry out every effect the hub has queued, then disconnect the
    /// clients that turned out too slow, until there is nothing left to do.
    pub(super) fn deliver_chat(&mut self) {
        while self.hub.pending_effects() > 0 {
            let Server {
                hub,
                delivery,
                sources,
                flush_list,
                pending_total,
                stats,
                cluster,
                now,
                ..
            } = self;
            let mut queues = SlabQueues {
                sources,
                flush_list,
                pending_total,
                stats,
                link: cluster.as_mut().map(|c| &mut c.link),
                now: *now,
            };
            delivery.apply_all(hub, &mut queues);
            while let Some(id) = self.delivery.next_too_slow() {
                let key = key_of(id);
                if self
                    .sources
                    .get(key)
                    .is_some_and(|e| serial_matches(id, e.serial))
                {
                    // Tells the hub, which queues the leave notices: the
                    // outer loop delivers them.
                    self.close_conn(key, CloseReason::TooSlow);
                }
            }
        }
    }
}

/// The chat connections' output queues, as the delivery policy sees them.
struct SlabQueues<'a, N: Net> {
    sources: &'a mut Slab<Entry<N>>,
    flush_list: &'a mut Vec<usize>,
    /// The server's count of all pending output (`--max-pending`).
    pending_total: &'a mut usize,
    stats: &'a mut Stats,
    /// The Redis link, with `--cluster`: where cluster requests go.
    link: Option<&'a mut Link>,
    now: Instant,
}

impl<N: Net> SlabQueues<'_, N> {
    fn chat_conn(&mut self, id: ClientId) -> Option<&mut Conn<N>> {
        let entry = self.sources.get_mut(key_of(id))?;
        if !serial_matches(id, entry.serial) {
            return None;
        }
        match &mut entry.source {
            Source::Conn(conn) if conn.closing.is_none() => Some(conn),
            _ => None,
        }
    }
}

impl<N: Net> Queues for SlabQueues<'_, N> {
    fn queue(&mut self, id: ClientId) -> Option<&mut ChunkQueue> {
        match &mut self.chat_conn(id)?.proto {
            Proto::Chat(chat) => Some(&mut chat.out),
            Proto::Echo(_) | Proto::Daytime(_) => None,
        }
    }

    fn queued(&mut self, id: ClientId, cost: usize, lines: usize) {
        *self.pending_total += cost;
        self.stats.lines_relayed += lines as u64;
        queue_flush(self.sources, self.flush_list, key_of(id));
    }

    fn finish(&mut self, id: ClientId) {
        let Some(conn) = self.chat_conn(id) else {
            return;
        };
        if let Proto::Chat(chat) = &mut conn.proto {
            chat.finishing = true;
        }
        queue_flush(self.sources, self.flush_list, key_of(id));
    }

    fn cluster(&mut self, request: ClusterRequest) {
        let Some(link) = self.link.as_deref_mut() else {
            warn!("cluster request without a link, dropped: {request:?}");
            return;
        };
        let now = self.now;
        match request {
            // A dropped publish is counted by the link.
            ClusterRequest::Publish(event) => _ = link.publish(now, event),
            ClusterRequest::Claim { name, token } => link.claim(now, name, token),
            ClusterRequest::Release { name } => link.release(now, name),
            ClusterRequest::ReleaseFor { server, name } => link.release_for(now, server, name),
            ClusterRequest::ReserveGuests { count, token } => {
                link.reserve_guests(now, count, token)
            }
        }
    }
}
