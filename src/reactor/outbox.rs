//! The seam between the chat hub and the connections: the hub (sans-IO)
//! sends lines to client ids through an [`Outbox`]; [`ConnOutbox`] turns
//! that into a reference-count increment on the recipient's output queue, and
//! notes recipients whose output would pass `--out-limit` so the reactor can
//! disconnect them as too slow once the hub call has returned.

use super::tcp::queue_flush;
use super::*;

impl Server {
    /// Call the hub with an outbox over the connections (and the read
    /// buffer, whose bytes the hub frames in place), then deal with any
    /// client that turned out too slow.
    pub(super) fn with_hub(&mut self, f: impl FnOnce(&mut Hub, &[u8], &mut ConnOutbox<'_>)) {
        let Server {
            hub,
            read_buf,
            sources,
            flush_list,
            too_slow,
            stats,
            config,
            pending_total,
            ..
        } = self;
        let mut out = ConnOutbox {
            sources,
            flush_list,
            too_slow,
            stats,
            pending_total,
            out_limit: config.out_limit,
        };
        f(hub, read_buf, &mut out);
        self.settle_too_slow();
    }

    /// Disconnect every client the outbox found too slow. Each leave notice
    /// may find another one too slow, so loop until none is left.
    pub(super) fn settle_too_slow(&mut self) {
        while let Some(id) = self.too_slow.pop() {
            let key = key_of(id);
            if self
                .sources
                .get(key)
                .is_some_and(|e| serial_matches(id, e.serial))
            {
                self.close_conn(key, CloseReason::TooSlow);
            }
        }
    }
}

/// The hub's view of the connections: sending a line queues a handle to it
/// on the recipient's output (no copy); a recipient whose output would pass
/// `--out-limit` gets nothing more and is noted as too slow.
pub(super) struct ConnOutbox<'a> {
    sources: &'a mut Slab<Entry>,
    flush_list: &'a mut Vec<usize>,
    too_slow: &'a mut Vec<ClientId>,
    stats: &'a mut Stats,
    /// The server's count of all pending output (`--max-pending`).
    pending_total: &'a mut usize,
    out_limit: usize,
}

impl ConnOutbox<'_> {
    pub(super) fn chat_conn(&mut self, id: ClientId) -> Option<&mut Conn> {
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

impl Outbox for ConnOutbox<'_> {
    fn send(&mut self, to: ClientId, line: &SharedLine) {
        let out_limit = self.out_limit;
        let Some(conn) = self.chat_conn(to) else {
            return;
        };
        let Proto::Chat(chat) = &mut conn.proto else {
            return;
        };
        if !chat.out.fits(line, out_limit) {
            if !self.too_slow.contains(&to) {
                self.too_slow.push(to);
            }
            return;
        }
        let before = chat.out.cost();
        chat.out.push(line);
        *self.pending_total += chat.out.cost() - before;
        self.stats.lines_relayed += 1;
        queue_flush(self.sources, self.flush_list, key_of(to));
    }

    fn close(&mut self, who: ClientId) {
        let Some(conn) = self.chat_conn(who) else {
            return;
        };
        if let Proto::Chat(chat) = &mut conn.proto {
            chat.finishing = true;
        }
        queue_flush(self.sources, self.flush_list, key_of(who));
    }
}
