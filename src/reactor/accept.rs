//! Accepting TCP connections: draining a listener within the accept budget,
//! turning connections away at `--max-conns`, and backing off on a timer
//! when the process runs out of file descriptors (EMFILE) instead of
//! spinning or exiting. Also the listener's creation (a larger backlog than
//! std's) and the start-up clamp of `--max-conns` below the fd limit.

use std::io::{self, Write};
use std::net::SocketAddr;

use log::{debug, warn};
use mio::{Interest, Token};

use crate::buffer::ChunkQueue;
use crate::config::{self, TcpService};
use crate::net::{interrupted, would_block, Net};
use crate::protocol::chat;
use crate::protocol::daytime::DaytimeSession;
use crate::protocol::echo::EchoSession;

use super::source::{client_id, ChatConn, Conn, Entry, Proto, Source};
use super::{Server, ServerPhase};

impl<N: Net> Server<N> {
    /// Accept until the listener would block, within the accept budget.
    pub(super) fn accept_ready(&mut self, key: usize) {
        if self.phase != ServerPhase::Running {
            return;
        }
        for _ in 0..config::ACCEPT_BUDGET_PER_TURN {
            let Source::Listener(listener) = &mut self.sources[key].source else {
                return;
            };
            if listener.backoff_until.is_some() {
                return; // the back-off timer will try again
            }
            let service = listener.service;
            match self.net.accept(&listener.socket) {
                Ok((stream, peer)) => self.admit(service, stream, peer),
                Err(e) if would_block(&e) => return,
                // The client gave up before we accepted it, or a signal came:
                // neither is about us; try the next one at once.
                Err(e) if interrupted(&e) || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if out_of_resources(&e) => {
                    // The connection stays in the kernel's backlog. Retrying
                    // now would spin; exiting would be worse. Pause this
                    // listener and let a timer retry.
                    warn!(
                        "accept on {}: {e}; pausing accepts for {:?} ({} connections open)",
                        service.name(),
                        config::ACCEPT_BACKOFF,
                        self.stats.conns_open
                    );
                    self.stats.accept_backoffs += 1;
                    let until = self.now + config::ACCEPT_BACKOFF;
                    listener.backoff_until = Some(until);
                    self.timers.schedule(until, key, self.sources[key].serial);
                    return;
                }
                Err(e) => debug!("accept on {}: {e}", service.name()),
            }
        }
        // Budget spent with connections maybe still waiting: come back next
        // turn, after the other sources had theirs.
        self.still_ready.push((key, self.sources[key].serial));
    }

    /// Take an accepted connection into the slab, or turn it away at
    /// `--max-conns`.
    pub(super) fn admit(&mut self, service: TcpService, mut stream: N::Stream, peer: SocketAddr) {
        if self.stats.conns_open as usize >= self.max_conns {
            self.stats.conns_rejected += 1;
            debug!(
                "reject {} {peer}: at max-conns {}",
                service.name(),
                self.max_conns
            );
            match service {
                // A fresh socket's send buffer is empty, so this short line
                // fits; if it somehow does not, the client just sees a close.
                TcpService::Chat => {
                    let _ = self.net.io(&stream).write(chat::SERVER_FULL);
                }
                TcpService::Echo | TcpService::Daytime => {}
            }
            return; // dropping the stream closes it
        }
        // Echo and chat send small replies that the client waits for; Nagle's
        // algorithm would hold them back waiting for an ACK.
        if let Err(e) = self.net.set_nodelay(&stream) {
            debug!("set_nodelay {peer}: {e}");
        }
        let entry = self.sources.vacant_entry();
        let key = entry.key();
        let serial = self.next_serial;
        if let Err(e) = self
            .net
            .register(&mut stream, Token(key), Interest::READABLE)
        {
            warn!("register {peer}: {e}");
            return;
        }
        self.next_serial += 1;
        let proto = match service {
            TcpService::Chat => Proto::Chat(ChatConn {
                out: ChunkQueue::new(),
                finishing: false,
            }),
            TcpService::Echo => Proto::Echo(EchoSession::new(self.config.out_limit)),
            TcpService::Daytime => Proto::Daytime(DaytimeSession::new(self.net.wall_clock())),
        };
        // A service that speaks first has output before any event: it counts
        // against --max-pending like any other.
        let first_output = match &proto {
            Proto::Daytime(d) => d.pending(),
            Proto::Echo(_) | Proto::Chat(_) => 0,
        };
        self.pending_total += first_output;
        entry.insert(Entry {
            serial,
            source: Source::Conn(Conn {
                stream,
                peer,
                service,
                proto,
                interest: Interest::READABLE,
                closing: None,
                flush_queued: false,
                opened: self.now,
                last_input: self.now,
                deadline: None,
                saw_eof: false,
                paused_for_total: false,
                total_share: None,
                bytes_in: 0,
                bytes_out: 0,
                relay: None,
                lingering: false,
            }),
        });
        self.stats.conns_open += 1;
        self.stats.conns_accepted += 1;
        debug!("open {} {peer} token={key}", service.name());
        if let Some(t) = self.trace.as_mut() {
            t.instant("open", key, format_args!("{} {peer}", service.name()));
        }
        if let Some(idle) = self.config.idle_timeout {
            self.set_deadline(key, Some(self.now + idle));
        }
        match service {
            TcpService::Chat => {
                self.hub.handle_connect(client_id(key, serial));
                self.deliver_chat();
            }
            // Speaks first: written at the end of this turn, no event needed.
            TcpService::Daytime => self.queue_flush(key),
            TcpService::Echo => {}
        }
    }
}

/// Whether an accept error means the process or system ran out of file
/// descriptors or memory (the connection is still waiting in the backlog).
pub(super) fn out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM)
    )
}
