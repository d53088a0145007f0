//! Step 3 of docs/build-your-own.md: one thread, one loop, level-triggered
//! `poll`.
//!
//! No thread per client any more. Every socket is non-blocking, and one call
//! to poll(2) waits for all of them at once: the listener for a new client,
//! each connection for input and, only while it has unsent output, for room
//! to write. poll is *level-triggered*: it reports a socket as readable on
//! every call for as long as unread bytes remain, so reading once per report
//! is enough; whatever is left is reported again on the next turn.
//!
//! New ideas, each marked in the code: non-blocking sockets and
//! `WouldBlock`; output that did not fit waits in a buffer of its own (the
//! `sendall` of step 1 blocked instead); interest in writing only while
//! output waits; a connection closes when its input ended and its output is
//! gone.
//!
//! Run it with `cargo run --example step3_poll [PORT]` (default 12345,
//! 0 picks a free port; it always binds 127.0.0.1).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};

use rustix::event::{poll, PollFd, PollFlags};

/// One client: its socket, the bytes it sent that are not yet echoed, and
/// whether it has finished sending.
struct Conn {
    stream: TcpStream,
    unsent: Vec<u8>,
    input_ended: bool,
}

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("usage: step3_poll [PORT]"),
        None => 12345,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    // Non-blocking: `accept`, `read` and `write` return `WouldBlock` instead
    // of waiting. Only `poll` ever waits.
    listener.set_nonblocking(true)?;
    println!("listening {}", listener.local_addr()?);
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        // Ask about every socket, every turn. Interest follows state: input
        // while the client may still send, output only while bytes wait
        // (a socket is nearly always writable; asking for it all the time
        // would wake the loop for nothing).
        let mut fds = vec![PollFd::new(&listener, PollFlags::IN)];
        for conn in &conns {
            let mut interest = PollFlags::empty();
            if !conn.input_ended {
                interest |= PollFlags::IN;
            }
            if !conn.unsent.is_empty() {
                interest |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&conn.stream, interest));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::INTR => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds); // it borrows the sockets we are about to use

        // Connections first (their indices match `ready[1..]`), then accept,
        // so that new connections do not shift the indices.
        for (conn, &revents) in conns.iter_mut().zip(&ready[1..]) {
            if let Err(e) = serve(conn, revents) {
                eprintln!("client failed: {e}");
                conn.input_ended = true;
                conn.unsent.clear();
            }
        }
        // Done: input ended and everything echoed. Dropping closes it.
        conns.retain(|c| !(c.input_ended && c.unsent.is_empty()));
        if ready[0].contains(PollFlags::IN) {
            // Level-triggered: one accept per turn is enough; if more clients
            // wait, poll says so again at once.
            match listener.accept() {
                Ok((stream, _peer)) => {
                    stream.set_nonblocking(true)?;
                    conns.push(Conn {
                        stream,
                        unsent: Vec::new(),
                        input_ended: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => eprintln!("accept failed: {e}"),
            }
        }
    }
}

/// One read and one write for one connection, as far as poll said they
/// would not block.
fn serve(conn: &mut Conn, revents: PollFlags) -> io::Result<()> {
    // ERR and HUP come whether asked or not; a read then says what happened.
    if revents.intersects(PollFlags::IN | PollFlags::ERR | PollFlags::HUP) && !conn.input_ended {
        let mut buf = [0u8; 1024];
        match conn.stream.read(&mut buf) {
            Ok(0) => conn.input_ended = true,
            Ok(n) => conn.unsent.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    // Write at once rather than wait for a turn: the socket is almost always
    // writable, and whatever it does not take waits in `unsent`.
    if !conn.unsent.is_empty() {
        match conn.stream.write(&conn.unsent) {
            Ok(n) => {
                conn.unsent.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
