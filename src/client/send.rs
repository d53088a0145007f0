//! `sockloop send`: the tutorial's `tcp_client` and `udp_client`, as one
//! small mio loop each.
//!
//! The message is the command line's MESSAGE words joined with spaces. The
//! reply is printed as `Received from server: REPLY`: the bytes exactly as the
//! server sent them, followed by a newline unless the reply already ends with
//! one (so an echoed `hello` and an echoed `hello\n` both print one line).
//! `--timeout SECS` bounds the whole exchange, connect included; 0 means wait
//! forever, as 0 means "never" for `serve`'s timeouts.
//!
//! # The TCP loop
//!
//! One source, token [`SOCKET`], registered READABLE | WRITABLE right after a
//! non-blocking `connect`:
//!
//! 1. Until connected, every event is a possible end of the connect: check
//!    `take_error()`, then `peer_addr()` ([`crate::net::toolkit::connect_result`]). A
//!    spurious event leaves us waiting.
//! 2. Connected: write what the socket takes; once all of the message is
//!    written, shut down the sending side (that is how an echo server knows
//!    the message is complete) and drop WRITABLE from the interest.
//! 3. On every event, read until `WouldBlock`, appending to the reply. We
//!    read while still writing, so a message bigger than the socket buffers
//!    cannot deadlock against a server that echoes as it reads.
//! 4. End of stream: the server has sent everything; print it.
//!
//! The reply is kept in memory up to [`MAX_REPLY_BYTES`] (an echo of the
//! longest possible command line fits); a server that sends more, such as a
//! chargen service, is an error rather than a client that grows forever.
//!
//! # The UDP loop
//!
//! An ephemeral socket of the server's address family, `connect`ed to the
//! server: the kernel then delivers only datagrams from that address, and an
//! ICMP "port unreachable" comes back as `ECONNREFUSED` on the next receive
//! instead of a silent timeout. Token [`SOCKET`], READABLE | WRITABLE:
//! on WRITABLE send the one datagram (then READABLE only); on READABLE take
//! one datagram, which is the reply. A 64 KiB buffer holds any datagram whole.

use std::io::{self, IoSlice, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr};
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use super::{show_secs, Deadline};
use crate::config::READ_BUF_SIZE;
use crate::net::toolkit::{drain, poll_once, Drained};
use crate::net::{self, WriteOutcome};

/// The token of the one socket.
pub const SOCKET: Token = Token(0);

/// The longest TCP reply kept. Linux limits a whole command line to about
/// 2 MiB, so the echo of any message fits.
pub const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// What `sockloop send` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOptions {
    /// UDP instead of TCP.
    pub udp: bool,
    /// The server, `host:port`.
    pub to: String,
    /// The whole exchange's time limit, connect included (`None`: forever).
    pub timeout: Option<Duration>,
    /// The message, words already joined.
    pub message: String,
}

/// Run `sockloop send`.
pub fn run(options: &SendOptions) -> io::Result<()> {
    let (to, message, timeout) = (&options.to, options.message.as_bytes(), options.timeout);
    let reply = if options.udp {
        udp_exchange(to, message, timeout)?
    } else {
        tcp_exchange(to, message, timeout)?
    };
    let mut out = io::stdout().lock();
    out.write_all(b"Received from server: ")?;
    out.write_all(&reply)?;
    if !reply.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Send `message` over TCP, shut down the sending side, and return everything
/// the server sent until it closed.
pub fn tcp_exchange(addr: &str, message: &[u8], timeout: Option<Duration>) -> io::Result<Vec<u8>> {
    let deadline = timeout.map_or(Deadline::never(), Deadline::after);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(8);
    let (mut stream, server) = super::connect(addr, poll.registry(), SOCKET)?;
    let broken = |e: io::Error| io::Error::new(e.kind(), format!("connection to {server}: {e}"));

    let mut connected = false;
    let mut unsent = message;
    let mut sending_side_open = true;
    let mut reply = Vec::new();
    let mut buf = vec![0u8; READ_BUF_SIZE];
    loop {
        poll_once(&mut poll, &mut events, deadline.poll_timeout())?;
        if deadline.expired() {
            let after = timeout.unwrap_or_default();
            return Err(match (connected, reply.len()) {
                (false, _) => super::connect_timeout_error(server, after),
                (true, 0) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no reply from {server} within {}", show_secs(after)),
                ),
                (true, n) => io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{server} did not close the connection within {} ({n} bytes received)",
                        show_secs(after)
                    ),
                ),
            });
        }
        // Every event is for SOCKET, and what to do next depends only on the
        // state, so the events themselves need no inspection.
        if events.is_empty() {
            continue;
        }
        if !connected {
            match super::connected_peer(&stream, server)? {
                Some(peer) => {
                    log::debug!("send: connected to {peer}");
                    connected = true;
                }
                None => continue,
            }
        }
        while !unsent.is_empty() {
            match net::write_once(&mut stream, &[IoSlice::new(unsent)]).map_err(broken)? {
                WriteOutcome::Wrote(n) => unsent = &unsent[n..],
                WriteOutcome::WouldBlock => break,
            }
        }
        if unsent.is_empty() && sending_side_open {
            stream.shutdown(Shutdown::Write).map_err(broken)?;
            sending_side_open = false;
            poll.registry()
                .reregister(&mut stream, SOCKET, Interest::READABLE)?;
        }
        // One source and a bounded reply: no budget. Events' FIN flags are
        // not kept, so read on to `WouldBlock` (read_closed).
        let mut too_long = false;
        let drained = drain(&mut stream, &mut buf, usize::MAX, true, |data| {
            too_long = reply.len() + data.len() > MAX_REPLY_BYTES;
            if !too_long {
                reply.extend_from_slice(data);
            }
            !too_long
        })
        .map_err(broken)?;
        match drained {
            Drained::Stopped => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "reply from {server} is longer than {} MiB; giving up",
                        MAX_REPLY_BYTES >> 20
                    ),
                ));
            }
            Drained::Eof if !unsent.is_empty() => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{server} closed the connection before taking the whole message"),
                ));
            }
            Drained::Eof => return Ok(reply),
            Drained::Empty | Drained::BudgetSpent => {}
        }
    }
}

/// Send `message` as one UDP datagram and return the first datagram that
/// comes back from the same address.
pub fn udp_exchange(addr: &str, message: &[u8], timeout: Option<Duration>) -> io::Result<Vec<u8>> {
    let deadline = timeout.map_or(Deadline::never(), Deadline::after);
    let server = crate::config::resolve(addr)?;
    let failed = |e: io::Error| io::Error::new(e.kind(), format!("UDP to {server}: {e}"));
    let any_port: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut socket = UdpSocket::bind(any_port).map_err(failed)?;
    socket.connect(server).map_err(failed)?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(8);
    poll.registry()
        .register(&mut socket, SOCKET, Interest::READABLE | Interest::WRITABLE)?;

    let mut sent = false;
    let mut buf = vec![0u8; READ_BUF_SIZE];
    loop {
        poll_once(&mut poll, &mut events, deadline.poll_timeout())?;
        if deadline.expired() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no reply from {server} over UDP within {}",
                    show_secs(timeout.unwrap_or_default())
                ),
            ));
        }
        if events.is_empty() {
            continue;
        }
        if !sent {
            match socket.send(message) {
                Ok(_) => {
                    sent = true;
                    poll.registry()
                        .reregister(&mut socket, SOCKET, Interest::READABLE)?;
                }
                Err(e) if net::would_block(&e) || net::interrupted(&e) => continue,
                Err(e) => return Err(failed(e)),
            }
        }
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => return Ok(buf[..n].to_vec()),
                Err(e) if net::interrupted(&e) => continue,
                Err(e) if net::would_block(&e) => break,
                // Typically ECONNREFUSED: the ICMP "port unreachable" that a
                // connected UDP socket turns into an error.
                Err(e) => return Err(failed(e)),
            }
        }
    }
}
