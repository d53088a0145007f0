//! Step 5 of docs/build-your-own.md: budgets and the still-ready list.
//!
//! Step 4 reads each connection until `WouldBlock`. A client that sends
//! as fast as the loop reads is then never drained, and while the loop
//! reads from it nobody else is served: *starvation*. So each event gets a
//! budget (`--budget BYTES` a turn, 64 KiB unless told). But a connection
//! cut off by its budget still has bytes in the kernel, and edge-triggered
//! epoll will not report them again: it reported them already. Unless the
//! loop remembers the connection itself, on a *still-ready* list, and comes
//! back to it without sleeping, those bytes wait until the client sends
//! something new, which may be never: a *lost wake-up*.
//!
//! Two flags take each idea away, to watch what breaks (`--verbose` prints
//! every read and every wait):
//!
//! - `--no-budget`: one event reads a client until `WouldBlock`, however
//!   much it sent;
//! - `--no-still-ready`: the budget stays, the still-ready list goes; the
//!   loop sleeps with bytes unread.
//!
//! Everything else is step 4's, unchanged: compare the two files.
//! Run it with `cargo run --example step5_budgets [PORT] [FLAGS]` (default
//! port 12345, 0 picks a free port; it always binds 127.0.0.1).

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

/// The listener's token: slab keys count up from 0, so they never reach it.
const LISTENER: Token = Token(usize::MAX);

#[derive(Clone, Copy)]
struct Ready {
    token: Token,
    readable: bool,
}

struct Conn {
    stream: TcpStream,
    /// Counts up with every connection, never reused: which client this is.
    number: u64,
    bytes_in: u64,
    unsent: Vec<u8>,
    input_ended: bool,
    closing: bool,
    wants_write: bool,
}

struct Options {
    port: u16,
    budget: usize,
    still_ready: bool,
    verbose: bool,
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<Conn>,
    next_number: u64,
    options: Options,
    /// Connections whose read stopped on the budget, not on `WouldBlock`.
    /// The list outlives the batch, so each entry names its connection by
    /// slot *and* number: the slot may belong to someone else by then.
    still_ready: Vec<(usize, u64)>,
}

fn main() -> io::Result<()> {
    let mut options = Options {
        port: 12345,
        budget: 64 * 1024,
        still_ready: true,
        verbose: false,
    };
    let usage =
        "usage: step5_budgets [PORT] [--budget BYTES] [--no-budget] [--no-still-ready] [--verbose]";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--budget" => options.budget = args.next().and_then(|b| b.parse().ok()).expect(usage),
            "--no-budget" => options.budget = usize::MAX,
            "--no-still-ready" => options.still_ready = false,
            "--verbose" => options.verbose = true,
            _ => options.port = arg.parse().expect(usage),
        }
    }
    let mut server = Server::bind(options)?;
    println!("listening {}", server.listener.local_addr()?);
    let mut events = Events::with_capacity(1024);
    loop {
        // The one change to the wait: with work left over, do not sleep.
        let timeout = if server.still_ready.is_empty() {
            server.say(format_args!("poll: sleeping until an event"));
            None
        } else {
            let n = server.still_ready.len();
            server.say(format_args!("poll: not sleeping, {n} still ready"));
            Some(Duration::ZERO)
        };
        if let Err(e) = server.poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let batch: Vec<Ready> = events
            .iter()
            .map(|e| Ready {
                token: e.token(),
                readable: e.is_readable() || e.is_read_closed() || e.is_error(),
            })
            .collect();
        // Retry only what ran out of budget before this poll: a connection
        // that runs out again during this turn waits for the next one, so
        // it spends one budget per turn like everyone else.
        let retry = std::mem::take(&mut server.still_ready);
        server.handle_batch(&batch, retry);
    }
}

impl Server {
    fn bind(options: Options) -> io::Result<Server> {
        let poll = Poll::new()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], options.port));
        let mut listener = TcpListener::bind(addr)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Server {
            poll,
            listener,
            conns: Slab::new(),
            next_number: 1,
            options,
            still_ready: Vec::new(),
        })
    }

    fn say(&self, line: std::fmt::Arguments) {
        if self.options.verbose {
            println!("{line}");
        }
    }

    /// The batch, then the connections still ready from the last turn
    /// (after everyone else had their turn), then the sweep.
    fn handle_batch(&mut self, batch: &[Ready], retry: Vec<(usize, u64)>) {
        for ready in batch {
            self.handle_event(*ready);
        }
        for (key, number) in retry {
            if self.conns.get(key).is_some_and(|c| c.number == number) {
                let token = Token(key);
                self.handle_event(Ready {
                    token,
                    readable: true,
                });
            }
        }
        self.sweep();
    }

    fn handle_event(&mut self, ready: Ready) {
        if ready.token == LISTENER {
            return self.accept_all();
        }
        let key = ready.token.0;
        if self.conns.get(key).is_none_or(|c| c.closing) {
            return; // a stale event: step 4
        }
        if let Err(e) = self.serve(key, ready) {
            eprintln!("client failed: {e}");
            self.close(key);
        }
    }

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
                    entry.insert(Conn {
                        stream,
                        number,
                        bytes_in: 0,
                        unsent: Vec::new(),
                        input_ended: false,
                        closing: false,
                        wants_write: false,
                    });
                    self.say(format_args!("accepted connection #{number} from {peer}"));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Read until `WouldBlock` *or the budget*, then write until
    /// `WouldBlock`, then fix the interest.
    fn serve(&mut self, key: usize, ready: Ready) -> io::Result<()> {
        let budget = self.options.budget;
        let conn = &mut self.conns[key];
        if ready.readable && !conn.input_ended {
            let mut buf = [0u8; 4096];
            let mut read = 0;
            let mut budget_spent = false;
            loop {
                if read >= budget {
                    budget_spent = true;
                    break;
                }
                let room = buf.len().min(budget - read);
                match conn.stream.read(&mut buf[..room]) {
                    Ok(0) => {
                        conn.input_ended = true;
                        break;
                    }
                    Ok(n) => {
                        read += n;
                        conn.unsent.extend_from_slice(&buf[..n]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            conn.bytes_in += read as u64;
            let (number, total) = (conn.number, conn.bytes_in);
            // The other new line: remember what the kernel will not repeat.
            if budget_spent && self.options.still_ready {
                self.still_ready.push((key, number));
            }
            let spent = if budget_spent { ", budget spent" } else { "" };
            self.say(format_args!(
                "connection #{number}: read {read} bytes ({total} in total){spent}"
            ));
        }
        let conn = &mut self.conns[key];
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

    /// Mark it closing; the sweep frees the slot after the batch (step 4).
    fn close(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.closing = true;
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let number = conn.number;
        self.say(format_args!("closing connection #{number}"));
    }

    fn sweep(&mut self) {
        self.conns.retain(|_, conn| !conn.closing);
    }
}
