//! A plain mio TCP echo server, laid out the way mio's own `tcp_server`
//! example is: one `Poll`, a `HashMap` from token to connection, every
//! connection registered once for READABLE | WRITABLE (edge-triggered) and
//! never re-registered. Reads go into one 64 KiB buffer shared by all
//! connections and are written straight back; only what the socket did not
//! take is copied into the connection's `pending`, and while anything is
//! pending the connection is not read (backpressure) until its writable edge.
//!
//!     mio-echo PORT   binds 127.0.0.1:PORT (0: any free port) and prints
//!                     `listening tcp-echo 127.0.0.1:PORT`, as sockloop does.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const SERVER: Token = Token(0);

struct Connection {
    stream: TcpStream,
    /// Bytes read but not yet taken by the socket.
    pending: Vec<u8>,
}

fn main() -> io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(12345, |p| p.parse().expect("PORT"));
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut server = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut server, SERVER, Interest::READABLE)?;
    println!("listening tcp-echo {}", server.local_addr()?);

    let mut connections: HashMap<Token, Connection> = HashMap::new();
    let mut unique_token = Token(SERVER.0 + 1);
    let mut buf = vec![0; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            match event.token() {
                SERVER => loop {
                    let mut stream = match server.accept() {
                        Ok((stream, _)) => stream,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    };
                    stream.set_nodelay(true)?;
                    let token = unique_token;
                    unique_token.0 += 1;
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE.add(Interest::WRITABLE),
                    )?;
                    let pending = Vec::new();
                    connections.insert(token, Connection { stream, pending });
                },
                token => {
                    let done = match connections.get_mut(&token) {
                        Some(conn) => handle_connection_event(conn, &mut buf).unwrap_or(true),
                        None => false, // a stale event for a connection already gone
                    };
                    if done {
                        if let Some(mut conn) = connections.remove(&token) {
                            poll.registry().deregister(&mut conn.stream)?;
                        }
                    }
                }
            }
        }
    }
}

/// Write what waits, then read and echo until the socket has nothing more to
/// read or will take nothing more. Returns whether the connection is done.
fn handle_connection_event(conn: &mut Connection, buf: &mut [u8]) -> io::Result<bool> {
    if !conn.pending.is_empty() {
        let taken = write_some(&mut conn.stream, &conn.pending)?;
        conn.pending.drain(..taken);
        if !conn.pending.is_empty() {
            return Ok(false);
        }
    }
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                let taken = write_some(&mut conn.stream, &buf[..n])?;
                if taken < n {
                    conn.pending.extend_from_slice(&buf[taken..n]);
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Write as much of `data` as the socket takes now; how much it took.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
