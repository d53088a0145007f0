//! Step 1 of docs/build-your-own.md: the tutorial's blocking TCP server, in
//! Rust.
//!
//! The tutorial's Python server is four lines around `accept`:
//!
//! ```python
//! conn, addr = s.accept()
//! data = conn.recv(1024)
//! conn.sendall(data)
//! conn.close()
//! ```
//!
//! This program does the same, one client after another, except that it
//! reads until the client has said everything (`read` returns 0, the client
//! shut down its sending side) instead of trusting one `recv(1024)` to hold
//! the whole message. Every call blocks: while one client is connected,
//! nobody else is served.
//!
//! Run it with `cargo run --example step1_blocking [PORT]` (default 12345,
//! 0 picks a free port; it always binds 127.0.0.1), then
//! `cargo run -- send Hello,Server` from another terminal.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().expect("usage: step1_blocking [PORT]"),
        None => 12345,
    };
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening {}", listener.local_addr()?);
    // `incoming` is `accept` in a loop: it blocks until the next client.
    for conn in listener.incoming() {
        // One client's failure (a reset, say) must not end the server.
        if let Err(e) = conn.and_then(echo_until_eof) {
            eprintln!("client failed: {e}");
        }
    }
    Ok(())
}

/// `recv` and `sendall` until the client has finished sending; dropping
/// `conn` at the end is `conn.close()`.
fn echo_until_eof(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        // Blocks until the client sends something, or closes.
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(()); // end of input: the client shut down its sending side
        }
        // Blocks until the kernel has taken every byte.
        conn.write_all(&buf[..n])?;
    }
}
