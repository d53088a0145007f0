//! Step 2 of docs/build-your-own.md: one thread per connection.
//!
//! The server of step 1, with one change: each accepted connection gets a
//! thread of its own, so a client that connects and says nothing blocks only
//! its own thread, never the `accept` loop or the other clients. The price
//! is a thread (a stack, a kernel task, a context switch per wake-up) for
//! every connection, idle or not, and every piece of state shared between
//! clients (a chat room) would need a lock.
//!
//! Run it with `cargo run --example step2_threads [PORT]` (default 12345,
//! 0 picks a free port; it always binds 127.0.0.1).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("usage: step2_threads [PORT]"),
        None => 12345,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening {}", listener.local_addr()?);
    for conn in listener.incoming() {
        match conn {
            // The one new line: the blocking work moves to a thread of its own.
            Ok(conn) => {
                thread::spawn(move || {
                    if let Err(e) = echo_until_eof(conn) {
                        eprintln!("client failed: {e}");
                    }
                });
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
    Ok(())
}

/// Exactly step 1's: blocking reads and writes, now on this client's thread.
fn echo_until_eof(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}
