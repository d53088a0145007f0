//! `sockloop chat`: a client for the chat service, interactive or scripted.
//!
//! # The loop
//!
//! Two tokens:
//!
//! - [`SOCKET`]: the TCP connection, registered READABLE | WRITABLE by the
//!   non-blocking connect. While connecting, an event means "check the
//!   connect" (`take_error()`, then `peer_addr()`). Once connected, the
//!   interest is READABLE, plus WRITABLE only while the outbox holds bytes
//!   the socket would not take. READABLE: read (up to a budget per turn),
//!   split into lines, print them to stdout and flush. WRITABLE: flush the
//!   outbox.
//! - [`STDIN`]: stdin, registered only once connected (see
//!   [`super::stdin`] for how a terminal, pipe, file or `/dev/null` each
//!   become events under this token). Read it while the outbox has room and
//!   queue the bytes as they are: the server does the line framing.
//!
//! The phases are [`ChatPhase::Connecting`], [`ChatPhase::Chatting`] and
//! [`ChatPhase::Quitting`]:
//!
//! - `/nick NAME` is queued as the first line once connected, when given.
//! - At end of stdin an unfinished last line gets its LF, `/quit` is queued,
//!   and the client waits at most [`super::CLOSE_WAIT`] for the server to
//!   close (the server answers `* bye` and closes). If it does not, the
//!   client notes it on stderr and closes anyway, with status 0: everything
//!   the user asked for was sent.
//! - Whenever the server closes the connection (after `/quit` or `bye`, at
//!   server shutdown, or when it disconnects us), the last lines are printed
//!   and the client exits with status 0. A connection reset while chatting is
//!   an error (exit 1); after `/quit` it is only the server closing on us.
//!
//! Received lines are printed as they arrive, made safe for a terminal by
//! [`super::lines::printable`]. Writing to stdout blocks: if nobody reads our
//! stdout, we stop reading the socket and the server eventually disconnects
//! us as too slow, instead of this client buffering without bound.

use std::io;
use std::net::SocketAddr;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};

use super::stdin::Stdin;
use super::terminal::{Output, TerminalGuard};
use super::{Deadline, Done, Outbox, Typed, Typing, CLOSE_WAIT, MAX_RECEIVED_LINE};
use crate::config::{CLIENT_READ_BUDGET_PER_TURN, READ_BUF_SIZE};
use crate::net::toolkit::{drain, poll_once, Drained, CONNECT_TIMEOUT};
use crate::protocol::chat::wire;
use crate::protocol::line::LineFramer;

/// The token of the connection to the server.
pub const SOCKET: Token = Token(0);
/// The token of stdin (polled directly, or woken by the stdin thread).
pub const STDIN: Token = Token(1);

/// The prompt of the interactive client. Lines the user sends stay on the
/// screen after it (`> hello`), which tells them apart from received ones
/// (`<bob> hi`, `* notices`).
pub const PROMPT: &str = "> ";

/// Where the conversation with the server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatPhase {
    /// The TCP connect is in progress.
    Connecting,
    /// Lines flow both ways.
    Chatting,
    /// stdin ended and `/quit` is sent or queued: waiting for the server to
    /// close, until the deadline.
    Quitting,
}

/// What `sockloop chat` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatOptions {
    /// The chat server, `host:port`.
    pub addr: String,
    /// Send `/nick NAME` first.
    pub nick: Option<String>,
}

/// Run `sockloop chat`.
pub fn run(args: &ChatOptions) -> io::Result<()> {
    if let Some(nick) = &args.nick {
        if nick.is_empty() || nick.contains(|c: char| c.is_control()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid nickname {nick:?}: empty, or not on one line"),
            ));
        }
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    let (stream, server) = super::connect(&args.addr, poll.registry(), SOCKET)?;
    let mut chat = Chat::new(stream, server, args.nick.as_deref());
    loop {
        poll_once(&mut poll, &mut events, chat.poll_timeout())?;
        for event in events.iter() {
            chat.note(event);
        }
        if chat.turn(poll.registry())? == Done::Yes {
            return chat.finish();
        }
    }
}

/// The client's whole state; one turn of the loop is [`Chat::turn`].
struct Chat {
    stream: TcpStream,
    server: SocketAddr,
    phase: ChatPhase,
    deadline: Deadline,
    /// The interest the socket is registered with now.
    interest: Interest,
    /// The socket may have bytes for us (an event said so, or the last turn
    /// stopped at its budget).
    socket_readable: bool,
    /// stdin, once connected, and the watch for a typed `bye`, which ends
    /// the client even against a server that does not close on it.
    typing: Typing,
    outbox: Outbox,
    /// Splits received bytes into lines; a line longer than
    /// [`MAX_RECEIVED_LINE`] comes out in pieces.
    received: LineFramer,
    read_buf: Vec<u8>,
    /// Lines to print, gathered so that one read becomes one write to stdout.
    to_print: Vec<u8>,
    /// Where received lines go: stdout, or above the editor's input line.
    output: Output,
    /// Restores the terminal when the client ends (interactive only).
    _terminal: Option<TerminalGuard>,
    /// Whether the first received line was looked at (for the welcome).
    greeted: bool,
    /// The line that started [`ChatPhase::Quitting`]: `/quit` or `bye`.
    quit_line: &'static str,
}

impl Chat {
    fn new(stream: TcpStream, server: SocketAddr, nick: Option<&str>) -> Chat {
        let mut outbox = Outbox::new();
        if let Some(nick) = nick {
            // Queued now, sent first once connected.
            outbox.push(format!("/nick {nick}\n").as_bytes());
        }
        Chat {
            stream,
            server,
            phase: ChatPhase::Connecting,
            deadline: Deadline::after(CONNECT_TIMEOUT),
            interest: Interest::READABLE | Interest::WRITABLE,
            socket_readable: false,
            typing: Typing::default(),
            outbox,
            received: LineFramer::splitting(MAX_RECEIVED_LINE),
            read_buf: vec![0u8; READ_BUF_SIZE],
            to_print: Vec::new(),
            output: Output::Plain,
            _terminal: None,
            greeted: false,
            quit_line: "/quit",
        }
    }

    /// The session is over: give the terminal back, then print the last
    /// lines received straight to stdout. (The editor's printer hands text
    /// to the editor thread, which draws it a moment later; text handed to
    /// it now could be drawn after the process is gone, or not at all.)
    fn finish(mut self) -> io::Result<()> {
        drop(self._terminal.take());
        Output::Plain.print(&mut self.to_print)
    }

    /// A note for the user: above the input line in a terminal, else on
    /// stderr (stdout carries only what the server sent).
    fn warn(&mut self, message: &str) -> io::Result<()> {
        match self.output {
            Output::Plain => {
                eprintln!("sockloop: {message}");
                Ok(())
            }
            Output::Editor(_) => {
                let mut text = format!("sockloop: {message}\n").into_bytes();
                self.output.print(&mut text)
            }
        }
    }

    /// Record what an event says; the work happens in [`Chat::turn`].
    fn note(&mut self, event: &Event) {
        match event.token() {
            SOCKET if event.is_readable() || event.is_read_closed() || event.is_error() => {
                self.socket_readable = true;
            }
            STDIN => self.typing.note_ready(),
            _ => {}
        }
    }

    /// Poll at once while a source still has input left over from a turn cut
    /// short by its budget; otherwise wait for events or the deadline.
    fn poll_timeout(&self) -> Option<std::time::Duration> {
        let stdin_pending = self.typing.pending(&self.outbox);
        if self.phase != ChatPhase::Connecting && (self.socket_readable || stdin_pending) {
            Some(std::time::Duration::ZERO)
        } else {
            self.deadline.poll_timeout()
        }
    }

    /// One turn of the loop, after a poll.
    fn turn(&mut self, registry: &Registry) -> io::Result<Done> {
        if self.phase == ChatPhase::Connecting {
            if self.deadline.expired() {
                return Err(super::connect_timeout_error(self.server, CONNECT_TIMEOUT));
            }
            // Any event on the socket may be the end of the connect.
            match super::connected_peer(&self.stream, self.server)? {
                None => return Ok(Done::No),
                Some(peer) => self.connected(peer, registry)?,
            }
        }
        if self.socket_readable && self.read_socket()? == Done::Yes {
            return Ok(Done::Yes);
        }
        if self.phase == ChatPhase::Quitting && self.deadline.expired() {
            eprintln!(
                "sockloop: {} did not close the connection within {} of {}; closing",
                self.server,
                super::show_secs(CLOSE_WAIT),
                self.quit_line
            );
            return Ok(Done::Yes);
        }
        if self.read_stdin(registry)? == Done::Yes {
            return Ok(Done::Yes);
        }
        if let Err(e) = self.outbox.flush(&mut self.stream) {
            return self.lost(e);
        }
        super::update_interest(
            registry,
            &mut self.stream,
            SOCKET,
            &mut self.interest,
            &self.outbox,
        )?;
        Ok(Done::No)
    }

    fn connected(&mut self, peer: SocketAddr, registry: &Registry) -> io::Result<()> {
        log::debug!("chat: connected to {peer}");
        self.phase = ChatPhase::Chatting;
        self.deadline = Deadline::never();
        let (stdin, output, guard) = Stdin::register_interactive(registry, STDIN, PROMPT)?;
        self.typing.start(stdin);
        self.output = output;
        self._terminal = guard;
        // The server may have spoken already; trying costs a read.
        self.socket_readable = true;
        Ok(())
    }

    /// Read and print, up to the budget. `Done::Yes` when the server closed.
    fn read_socket(&mut self) -> io::Result<Done> {
        let (to_print, greeted, received) =
            (&mut self.to_print, &mut self.greeted, &mut self.received);
        let mut stranger = None;
        // The client keeps no FIN flag from its events: it reads on until
        // `WouldBlock` (read_closed), one read more per wake-up.
        let drained = drain(
            &mut self.stream,
            &mut self.read_buf,
            CLIENT_READ_BUDGET_PER_TURN,
            true,
            |data| {
                received.push_lines(data, |line| {
                    if !*greeted {
                        *greeted = true;
                        // Not a sockloop welcome: we are talking to
                        // something else (the echo port, say).
                        if !wire::is_welcome(line) {
                            stranger = Some(super::lines::printable(line).into_owned());
                        }
                    }
                    super::add_line(to_print, line)
                });
                // Stop to warn right after the lines that gave it away; the
                // rest is read next turn.
                stranger.is_none()
            },
        );
        match drained {
            Ok(Drained::Empty) => self.socket_readable = false,
            Ok(Drained::BudgetSpent | Drained::Stopped) => {}
            Ok(Drained::Eof) => {
                log::debug!("chat: {} closed the connection", self.server);
                let to_print = &mut self.to_print;
                self.received
                    .finish_lines(|line| super::add_line(to_print, line));
                // The lines of the last turn wait for [`Chat::finish`].
                return Ok(Done::Yes);
            }
            Err(e) => {
                let outcome = self.lost(e);
                if outcome.is_err() {
                    self.output.print(&mut self.to_print)?;
                }
                return outcome;
            }
        }
        if let Some(first) = stranger {
            self.output.print(&mut self.to_print)?;
            let warning = format!(
                "warning: {} does not greet like a sockloop chat server \
                 (its first line is {first:?}); is it the chat port? \
                 A line bye still ends this client.",
                self.server
            );
            self.warn(&warning)?;
        }
        self.output.print(&mut self.to_print)?;
        Ok(Done::No)
    }

    /// Move stdin into the outbox while there is room, flushing as we go so
    /// that room frees up, up to the budget. `Done::Yes` when the connection
    /// broke after `/quit`.
    fn read_stdin(&mut self, registry: &Registry) -> io::Result<Done> {
        let stream = &mut self.stream;
        let typed = self
            .typing
            .move_into(&mut self.outbox, &mut self.read_buf, |outbox| {
                outbox.flush(stream)
            })?;
        match typed {
            Typed::More => {}
            Typed::Bye => {
                // A sockloop server closes on `bye`; anything else gets
                // CLOSE_WAIT to do so, then we close.
                log::debug!("chat: bye typed");
                self.quit(registry, "bye");
                if let Err(e) = self.outbox.flush(&mut self.stream) {
                    return self.lost(e);
                }
            }
            Typed::End => {
                log::debug!("chat: end of stdin; sending /quit");
                self.outbox.push(b"/quit\n");
                self.quit(registry, "/quit");
            }
            Typed::SendFailed(e) => return self.lost(e),
        }
        Ok(Done::No)
    }

    /// The last line (`/quit` or `bye`) is queued: stop reading stdin and
    /// wait, at most [`CLOSE_WAIT`], for the server to close.
    fn quit(&mut self, registry: &Registry, line: &'static str) {
        self.typing.stop(registry);
        self.quit_line = line;
        self.phase = ChatPhase::Quitting;
        self.deadline = Deadline::after(CLOSE_WAIT);
    }

    /// The connection failed under us. After `/quit` that is just the server
    /// closing (perhaps with a reset); before, it is an error.
    fn lost(&mut self, e: io::Error) -> io::Result<Done> {
        if self.phase == ChatPhase::Quitting {
            log::debug!("chat: connection ended after /quit: {e}");
            return Ok(Done::Yes);
        }
        Err(io::Error::new(
            e.kind(),
            format!("connection to {} lost: {e}", self.server),
        ))
    }
}
