//! Step 4 of docs/build-your-own.md: edge-triggered readiness with mio, a
//! slab, and tokens.
//!
//! Step 3 rebuilt the list of sockets for poll(2) on every turn, and the
//! kernel scanned all of it: the cost of a turn grew with the number of
//! clients, busy or not. epoll (through mio) keeps the interest list in the
//! kernel: each socket is registered once, with a *token* (here its slot in
//! a [`Slab`]), and a wait returns only the sockets that are ready, each
//! event naming its token.
//!
//! mio's readiness is *edge-triggered*: an event says "this socket became
//! ready", once. Read once and leave bytes behind, and no event comes for
//! them until the client sends more, which may be never. So every handler
//! here reads, writes and accepts **until `WouldBlock`**.
//!
//! Tokens bring a trap of their own. One wait returns a *batch* of events.
//! If handling one of them frees connection A's slot, and a later one
//! accepts B into it, A's remaining events in the batch carry a token that
//! now names B. The fix used here (and in sockloop): a closed connection is
//! only marked `closing`, events for it are ignored, and the slot is freed
//! by a sweep after the whole batch. `--free-at-once` removes that fix, and
//! `--demo-stale-token` plays such a batch by hand to show what goes wrong:
//!
//! ```sh
//! cargo run --example step4_mio -- 0 --demo-stale-token                 # the fix
//! cargo run --example step4_mio -- 0 --demo-stale-token --free-at-once  # the bug
//! ```
//!
//! Otherwise it serves TCP echo: `cargo run --example step4_mio [PORT]`
//! (default 12345, 0 picks a free port; it always binds 127.0.0.1).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The listener's token: slab keys count up from 0, so they never reach it.
const LISTENER: Token = Token(usize::MAX);

/// What one event says about one token: mio's `Event`, reduced to what the
/// handlers read, so that `--demo-stale-token` can build a batch by hand.
#[derive(Clone, Copy)]
struct Ready {
    token: Token,
    readable: bool,
    writable: bool,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Counts up with every connection, never reused: which client this is.
    number: u64,
    unsent: Vec<u8>,
    input_ended: bool,
    /// Closed during this batch; the sweep frees the slot after the batch.
    closing: bool,
    wants_write: bool,
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    next_number: u64,
    /// `--free-at-once`: free a slot as soon as its connection closes (the bug).
    free_at_once: bool,
}

fn main() -> io::Result<()> {
    let mut port = 12345;
    let (mut free_at_once, mut demo) = (false, false);
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--free-at-once" => free_at_once = true,
            "--demo-stale-token" => demo = true,
            _ => {
                port = arg
                    .parse()
                    .expect("usage: step4_mio [PORT] [--free-at-once] [--demo-stale-token]")
            }
        }
    }
    let mut server = Server::bind(port, free_at_once)?;
    println!("listening {}", server.listener.local_addr()?);
    if demo {
        return server.demo_stale_token();
    }
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = server.poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let batch: Vec<Ready> = events
            .iter()
            .map(|e| Ready {
                token: e.token(),
                // A hang-up or an error is news for the reader: the read says which.
                readable: e.is_readable() || e.is_read_closed() || e.is_error(),
                writable: e.is_writable(),
            })
            .collect();
        server.handle_batch(&batch);
    }
}

impl Server {
    fn bind(port: u16, free_at_once: bool) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Server {
            poll,
            listener,
            conns: Slab::new(),
            next_number: 1,
            free_at_once,
        })
    }

    /// One batch of events, then the sweep.
    fn handle_batch(&mut self, batch: &[Ready]) {
        for ready in batch {
            self.handle_event(*ready);
        }
        self.sweep();
    }

    fn handle_event(&mut self, ready: Ready) {
        if ready.token == LISTENER {
            return self.accept_all();
        }
        let key = ready.token.0;
        match self.conns.get(key) {
            None => return, // nothing in that slot any more
            Some(conn) if conn.closing => {
                println!(
                    "event for token {key} ignored: connection #{} is closing",
                    conn.number
                );
                return;
            }
            Some(_) => {}
        }
        if let Err(e) = self.serve(key, ready) {
            eprintln!("client failed: {e}");
            self.close(key);
        }
    }

    /// Edge-triggered: accept until `WouldBlock`, or the clients still
    /// waiting are never announced again.
    fn accept_all(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, peer)) => {
                    let entry = self.conns.vacant_entry();
                    let token = Token(entry.key());
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        eprintln!("register failed: {e}");
                        continue;
                    }
                    let number = self.next_number;
                    self.next_number += 1;
                    println!(
                        "accepted connection #{number} from {peer} into slot {}",
                        token.0
                    );
                    entry.insert(Conn {
                        stream,
                        peer,
                        number,
                        unsent: Vec::new(),
                        input_ended: false,
                        closing: false,
                        wants_write: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Read until `WouldBlock`, write until `WouldBlock`, then fix the
    /// interest: WRITABLE only while output waits.
    fn serve(&mut self, key: usize, ready: Ready) -> io::Result<()> {
        let conn = &mut self.conns[key];
        if ready.readable && !conn.input_ended {
            let mut buf = [0u8; 4096];
            loop {
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        conn.input_ended = true;
                        break;
                    }
                    Ok(n) => conn.unsent.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        while !conn.unsent.is_empty() {
            match conn.stream.write(&conn.unsent) {
                Ok(n) => {
                    conn.unsent.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let _ = ready.writable; // writing was tried above whatever the event said
        if conn.input_ended && conn.unsent.is_empty() {
            self.close(key);
            return Ok(());
        }
        let wants_write = !conn.unsent.is_empty();
        if wants_write != conn.wants_write {
            conn.wants_write = wants_write;
            let interest = match (conn.input_ended, wants_write) {
                (false, false) => Interest::READABLE,
                (false, true) => Interest::READABLE | Interest::WRITABLE,
                (true, _) => Interest::WRITABLE,
            };
            self.poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)?;
        }
        Ok(())
    }

    /// Close a connection. With the fix, only mark it: its slot stays taken
    /// until the sweep, so no token in this batch can name someone else.
    fn close(&mut self, key: usize) {
        if self.free_at_once {
            let conn = self.conns.remove(key); // the slot is free for the next accept
            println!(
                "closed connection #{} and freed slot {key} at once",
                conn.number
            );
        } else {
            let conn = &mut self.conns[key];
            conn.closing = true;
            let _ = self.poll.registry().deregister(&mut conn.stream);
            println!(
                "closing connection #{}, slot {key} stays taken until the sweep",
                conn.number
            );
        }
    }

    /// After the batch: free the slots of the connections closed in it.
    /// Dropping the stream closes the socket.
    fn sweep(&mut self) {
        self.conns.retain(|key, conn| {
            if conn.closing {
                println!("swept connection #{}, slot {key} is free", conn.number);
            }
            !conn.closing
        });
    }

    /// Plays one batch by hand with real sockets: A's event that ends A,
    /// the listener's event that accepts B, then another event for A's
    /// token (in a bigger server, one connection's handler can close
    /// another: sockloop's chat closes a too-slow reader while relaying
    /// someone else's line, so A's own event is still to come in the batch).
    fn demo_stale_token(&mut self) -> io::Result<()> {
        let addr = self.listener.local_addr()?;
        let mut a = std::net::TcpStream::connect(addr)?;
        a.set_read_timeout(Some(Duration::from_secs(10)))?;
        // connect() returns before the server's kernel has queued A: wait
        // for the listener's event before accepting, as the loop would.
        self.wait_for_events(&[(LISTENER, false)])?;
        self.accept_all(); // A into slot 0
        a.write_all(b"bye")?;
        a.shutdown(Shutdown::Write)?; // A has finished: its next read sees the end
        let mut b = std::net::TcpStream::connect(addr)?; // B waits in the listen queue
        b.write_all(b"Hello,Server")?;
        // The batch below is only true once A's end of input and B's
        // connection have reached the server's kernel.
        self.wait_for_events(&[(Token(0), true), (LISTENER, false)])?;
        let slot_a = Token(0);
        let meant_for = self.conns[slot_a.0].number;
        let batch = [
            Ready {
                token: slot_a,
                readable: true,
                writable: false,
            },
            Ready {
                token: LISTENER,
                readable: true,
                writable: false,
            },
            Ready {
                token: slot_a,
                readable: true,
                writable: false,
            },
        ];
        for (i, ready) in batch.into_iter().enumerate() {
            if i == 2 {
                if let Some(conn) = self.conns.get(slot_a.0).filter(|c| !c.closing) {
                    println!(
                        "WRONG CONNECTION: an event meant for #{meant_for} reached #{} ({})",
                        conn.number, conn.peer
                    );
                }
            }
            self.handle_event(ready);
        }
        self.sweep();
        let _ = b.shutdown(Shutdown::Write);
        let mut echoed = Vec::new();
        let _ = a.read_to_end(&mut echoed);
        println!("A got back {:?}", String::from_utf8_lossy(&echoed));
        Ok(())
    }

    /// Poll (for at most 10 s) until each (token, end of input) in `wanted`
    /// has been reported: readable, and with the peer's FIN if asked.
    fn wait_for_events(&mut self, wanted: &[(Token, bool)]) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = vec![false; wanted.len()];
        let mut events = Events::with_capacity(16);
        while seen.contains(&false) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    "the demo's sockets never became ready",
                ));
            }
            self.poll.poll(&mut events, Some(left))?;
            for event in events.iter() {
                for (i, &(token, fin)) in wanted.iter().enumerate() {
                    if event.token() == token && (!fin || event.is_read_closed()) {
                        seen[i] = true;
                    }
                }
            }
        }
        Ok(())
    }
}
