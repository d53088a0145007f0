//! `sockloop talk`: one-to-one chat between two terminals, no server (the
//! tutorial's two-machine chat, full duplex instead of taking turns).
//!
//! `sockloop talk --listen ADDR` prints `listening on ADDR` on stderr with the
//! real bound address (so `--listen 127.0.0.1:0` is usable: read the port
//! there), accepts exactly one peer, and closes its listener: a second
//! caller is refused. `sockloop talk ADDR` connects. Both then print
//! `connected to PEER` on stderr, and from there on the two sides are the
//! same program.
//!
//! # The loop
//!
//! Three tokens:
//!
//! - [`LISTENER`] (`--listen` only): READABLE means a peer is waiting; accept
//!   one, then deregister and drop the listener.
//! - [`PEER`]: the connection. While connecting (the connecting side), any
//!   event means "check the connect" (`take_error()`, then `peer_addr()`).
//!   Then READABLE always, WRITABLE only while typed bytes wait. READABLE:
//!   read, split into lines, print each (made safe for a terminal); a line
//!   `bye` ends the conversation. WRITABLE: flush the outbox.
//! - [`STDIN`]: registered once connected. Typed bytes go to the outbox as
//!   they are, while it has room; a typed line `bye` is sent and ends the
//!   conversation (anything typed after it is not sent).
//!
//! # How a conversation ends
//!
//! - **We say `bye`** (typed, or at end of stdin, where the client sends
//!   `bye` for the user so that the other side ends with status 0 too): the
//!   rest of the outbox and the `bye` line are sent, the sending side is shut
//!   down, and we wait at most [`super::CLOSE_WAIT`] for the peer to close,
//!   printing whatever it still sends. Waiting instead of closing at once
//!   matters: closing a socket with unread input sends a reset, which may
//!   destroy our `bye` before the peer reads it. Exit 0.
//! - **The peer says `bye`**: the line is printed, we close, exit 0. Bytes we
//!   had not sent yet are dropped: the peer has stopped listening.
//! - **The peer vanishes** (end of stream or reset without a `bye`): one line
//!   on stderr saying so, exit 1. The conversation was cut off, not ended,
//!   and a script can tell the difference.
//!
//! Memory is bounded as in every client (see [`super`]): typed bytes wait in
//! the outbox up to its limit and then stdin is not read until the peer
//! reads; received lines are printed as they arrive.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};

use super::lines::is_bye;
use super::stdin::Stdin;
use super::terminal::{Output, TerminalGuard};
use super::{Deadline, Done, Outbox, Typed, Typing, CLOSE_WAIT, MAX_RECEIVED_LINE};
use crate::config::{CLIENT_READ_BUDGET_PER_TURN, READ_BUF_SIZE};
use crate::net;
use crate::net::toolkit::{drain, poll_once, Drained, CONNECT_TIMEOUT};
use crate::protocol::line::LineFramer;

/// The token of the listener (`--listen` only, until the peer arrives).
pub const LISTENER: Token = Token(0);
/// The token of the connection to the peer.
pub const PEER: Token = Token(1);
/// The token of stdin (polled directly, or woken by the stdin thread).
pub const STDIN: Token = Token(2);

/// The prompt of the interactive client. What the user sends stays on the
/// screen after it (`me> hello`), so their own lines are marked and the
/// peer's lines (printed as received) are not.
pub const PROMPT: &str = "me> ";

/// Where the conversation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TalkPhase {
    /// `--listen`: waiting for the one peer.
    Listening,
    /// Connecting to the peer.
    Connecting,
    /// Lines flow both ways.
    Talking,
    /// We said `bye`: sending what is left, then waiting for the peer to
    /// close, until the deadline.
    Closing,
}

/// What `sockloop talk` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TalkOptions {
    /// Which side of the conversation this is.
    pub side: TalkSide,
}

/// Wait for the peer, or call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TalkSide {
    /// `--listen ADDR`: wait for one peer there.
    Listen(String),
    /// `ADDR`: connect to the peer there.
    Connect(String),
}

/// Run `sockloop talk`.
pub fn run(options: &TalkOptions) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(16);
    let mut talk = match &options.side {
        TalkSide::Listen(addr) => Talk::listen(addr, poll.registry())?,
        TalkSide::Connect(addr) => Talk::connect(addr, poll.registry())?,
    };
    loop {
        poll_once(&mut poll, &mut events, talk.poll_timeout())?;
        for event in events.iter() {
            talk.note(event);
        }
        if talk.turn(poll.registry())? == Done::Yes {
            return talk.finish();
        }
    }
}

/// The whole state of one side; one turn of the loop is [`Talk::turn`].
struct Talk {
    phase: TalkPhase,
    deadline: Deadline,
    /// `--listen`, until the peer arrives.
    listener: Option<(TcpListener, SocketAddr)>,
    listener_ready: bool,
    /// The connection, once there is one (accepted, or connecting).
    stream: Option<TcpStream>,
    /// The peer's address: where we connect to, then who we talk to.
    peer: Option<SocketAddr>,
    /// The interest `stream` is registered with now.
    interest: Interest,
    socket_ready: bool,
    /// Our sending side is shut down (after our `bye` went out).
    sending_shut: bool,
    /// stdin, once connected, and the watch for a typed `bye`.
    typing: Typing,
    outbox: Outbox,
    /// Splits received bytes into lines; a line longer than
    /// [`MAX_RECEIVED_LINE`] comes out in pieces.
    received: LineFramer,
    read_buf: Vec<u8>,
    to_print: Vec<u8>,
    /// Where received lines go: stdout, or above the editor's input line.
    output: Output,
    /// Restores the terminal when the client ends (interactive only).
    _terminal: Option<TerminalGuard>,
}

impl Talk {
    fn new(phase: TalkPhase, deadline: Deadline) -> Talk {
        Talk {
            phase,
            deadline,
            listener: None,
            listener_ready: false,
            stream: None,
            peer: None,
            interest: Interest::READABLE | Interest::WRITABLE,
            socket_ready: false,
            sending_shut: false,
            typing: Typing::default(),
            outbox: Outbox::new(),
            received: LineFramer::splitting(MAX_RECEIVED_LINE),
            read_buf: vec![0u8; READ_BUF_SIZE],
            to_print: Vec::new(),
            output: Output::Plain,
            _terminal: None,
        }
    }

    /// Bind, say where on stderr, and wait for one peer (no deadline: the
    /// user waits as long as they like).
    fn listen(addr: &str, registry: &Registry) -> io::Result<Talk> {
        let resolved = crate::config::resolve(addr)?;
        let mut listener = TcpListener::bind(resolved)
            .map_err(|e| io::Error::new(e.kind(), format!("listen on {resolved}: {e}")))?;
        let local = listener.local_addr()?;
        registry.register(&mut listener, LISTENER, Interest::READABLE)?;
        // One write for the whole line: `eprintln!` writes the address in
        // pieces, and a terminal (or a script reading it) could see half.
        let _ = io::Write::write_all(
            &mut io::stderr(),
            format!("listening on {local}\n").as_bytes(),
        );
        let mut talk = Talk::new(TalkPhase::Listening, Deadline::never());
        talk.listener = Some((listener, local));
        Ok(talk)
    }

    /// Start a non-blocking connect to the peer.
    fn connect(addr: &str, registry: &Registry) -> io::Result<Talk> {
        let (stream, resolved) = super::connect(addr, registry, PEER)?;
        let mut talk = Talk::new(TalkPhase::Connecting, Deadline::after(CONNECT_TIMEOUT));
        talk.stream = Some(stream);
        talk.peer = Some(resolved);
        Ok(talk)
    }

    /// Record what an event says; the work happens in [`Talk::turn`].
    fn note(&mut self, event: &Event) {
        match event.token() {
            LISTENER => self.listener_ready = true,
            PEER => self.socket_ready = true,
            STDIN => self.typing.note_ready(),
            _ => {}
        }
    }

    /// Poll at once while a source still has input left over from a turn cut
    /// short by its budget; otherwise wait for events or the deadline.
    fn poll_timeout(&self) -> Option<Duration> {
        let talking = matches!(self.phase, TalkPhase::Talking | TalkPhase::Closing);
        let stdin_pending = self.typing.pending(&self.outbox);
        if talking && (self.socket_ready || stdin_pending) {
            Some(Duration::ZERO)
        } else {
            self.deadline.poll_timeout()
        }
    }

    /// One turn of the loop, after a poll.
    fn turn(&mut self, registry: &Registry) -> io::Result<Done> {
        match self.phase {
            TalkPhase::Listening => {
                if self.listener_ready {
                    self.accept(registry)?;
                }
                if self.phase == TalkPhase::Listening {
                    return Ok(Done::No);
                }
            }
            TalkPhase::Connecting => {
                let (Some(stream), Some(addr)) = (&self.stream, self.peer) else {
                    unreachable!("connecting without a stream");
                };
                if self.deadline.expired() {
                    return Err(super::connect_timeout_error(addr, CONNECT_TIMEOUT));
                }
                match super::connected_peer(stream, addr)? {
                    None => return Ok(Done::No),
                    Some(peer) => self.connected(peer, registry)?,
                }
            }
            TalkPhase::Talking | TalkPhase::Closing => {}
        }
        if self.socket_ready && self.read_peer()? == Done::Yes {
            return Ok(Done::Yes);
        }
        if self.phase == TalkPhase::Closing && self.deadline.expired() {
            eprintln!(
                "sockloop: {} did not close the connection within {} of bye; closing",
                self.peer_addr(),
                super::show_secs(CLOSE_WAIT)
            );
            return Ok(Done::Yes);
        }
        if self.read_stdin(registry)? == Done::Yes {
            return Ok(Done::Yes);
        }
        if let Err(e) = self.send() {
            return self.lost(e);
        }
        let stream = self.stream.as_mut().expect("connected");
        super::update_interest(registry, stream, PEER, &mut self.interest, &self.outbox)?;
        Ok(Done::No)
    }

    /// The conversation is over: give the terminal back, then print the
    /// last lines received straight to stdout (see `Chat::finish` in
    /// [`super::chat`]: the editor's printer draws asynchronously).
    fn finish(mut self) -> io::Result<()> {
        drop(self._terminal.take());
        Output::Plain.print(&mut self.to_print)
    }

    /// Accept the one peer, then close the listener so nobody else can come.
    fn accept(&mut self, registry: &Registry) -> io::Result<()> {
        let Some((listener, local)) = &self.listener else {
            return Ok(());
        };
        loop {
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if let Some((mut listener, _)) = self.listener.take() {
                        registry.deregister(&mut listener)?;
                    }
                    registry.register(&mut stream, PEER, Interest::READABLE)?;
                    self.interest = Interest::READABLE;
                    self.stream = Some(stream);
                    return self.connected(peer, registry);
                }
                Err(e) if net::would_block(&e) => {
                    self.listener_ready = false;
                    return Ok(());
                }
                // A caller that gave up while queued, or a signal: try again.
                Err(e) if net::interrupted(&e) || e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    return Err(io::Error::new(e.kind(), format!("accept on {local}: {e}")));
                }
            }
        }
    }

    fn connected(&mut self, peer: SocketAddr, registry: &Registry) -> io::Result<()> {
        let _ = io::Write::write_all(
            &mut io::stderr(),
            format!("connected to {peer}\n").as_bytes(),
        );
        self.peer = Some(peer);
        self.phase = TalkPhase::Talking;
        self.deadline = Deadline::never();
        let (stdin, output, guard) = Stdin::register_interactive(registry, STDIN, PROMPT)?;
        self.typing.start(stdin);
        self.output = output;
        self._terminal = guard;
        // Input may be waiting on either side already (`Typing::start`
        // tries stdin); trying costs a read.
        self.socket_ready = true;
        Ok(())
    }

    fn peer_addr(&self) -> SocketAddr {
        self.peer.expect("a peer once connected")
    }

    /// Read and print, up to the budget. `Done::Yes` when the conversation
    /// is over: the peer said `bye`, or closed after ours.
    fn read_peer(&mut self) -> io::Result<Done> {
        let mut peer_said_bye = false;
        let stream = self.stream.as_mut().expect("connected");
        let (to_print, received) = (&mut self.to_print, &mut self.received);
        // As in `chat`: no FIN flag kept, so read on until `WouldBlock`.
        let drained = drain(
            stream,
            &mut self.read_buf,
            CLIENT_READ_BUDGET_PER_TURN,
            true,
            |data| {
                received.push_lines(data, |line| {
                    print_until_bye(to_print, &mut peer_said_bye, line)
                });
                !peer_said_bye
            },
        );
        let ended = match drained {
            Ok(Drained::Empty) => {
                self.socket_ready = false;
                None
            }
            Ok(Drained::BudgetSpent | Drained::Stopped) => None,
            Ok(Drained::Eof) => {
                received.finish_lines(|line| print_until_bye(to_print, &mut peer_said_bye, line));
                Some(Ok(()))
            }
            Err(e) => Some(Err(e)),
        };
        let outcome = if peer_said_bye {
            log::debug!("talk: {} said bye", self.peer_addr());
            Ok(Done::Yes)
        } else {
            self.ending(ended)
        };
        // The lines of the last turn wait for [`Talk::finish`].
        if !matches!(outcome, Ok(Done::Yes)) {
            self.output.print(&mut self.to_print)?;
        }
        outcome
    }

    /// What the end of the peer's stream (or an error reading it) means.
    fn ending(&mut self, ended: Option<io::Result<()>>) -> io::Result<Done> {
        match ended {
            None => Ok(Done::No),
            Some(Ok(())) if self.phase == TalkPhase::Closing => Ok(Done::Yes),
            Some(Ok(())) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} closed the connection without saying bye",
                    self.peer_addr()
                ),
            )),
            Some(Err(e)) => self.lost(e),
        }
    }

    /// Move typed bytes into the outbox while there is room, sending as we
    /// go so that room frees up, up to the budget. A typed `bye`, or the end
    /// of stdin, starts [`TalkPhase::Closing`].
    fn read_stdin(&mut self, registry: &Registry) -> io::Result<Done> {
        let (stream, sending_shut) = (self.stream.as_mut(), &mut self.sending_shut);
        let stream = stream.expect("connected");
        let phase = self.phase;
        let typed = self
            .typing
            .move_into(&mut self.outbox, &mut self.read_buf, |outbox| {
                send(stream, outbox, phase, sending_shut)
            })?;
        match typed {
            Typed::More => {}
            Typed::Bye => {
                log::debug!("talk: bye typed");
                self.say_bye(registry);
                if let Err(e) = self.send() {
                    return self.lost(e);
                }
            }
            Typed::End => {
                log::debug!("talk: end of stdin; saying bye");
                self.outbox.push(b"bye\n");
                self.say_bye(registry);
            }
            Typed::SendFailed(e) => return self.lost(e),
        }
        Ok(Done::No)
    }

    /// Our `bye` is in the outbox: stop reading stdin and start closing.
    fn say_bye(&mut self, registry: &Registry) {
        self.typing.stop(registry);
        self.phase = TalkPhase::Closing;
        self.deadline = Deadline::after(CLOSE_WAIT);
    }

    /// Write what the peer will take (see [`send`]).
    fn send(&mut self) -> io::Result<()> {
        let stream = self.stream.as_mut().expect("connected");
        send(stream, &mut self.outbox, self.phase, &mut self.sending_shut)
    }

    /// The connection failed under us. Once we said `bye` that is just the
    /// peer closing (perhaps with a reset); before, the peer vanished.
    fn lost(&mut self, e: io::Error) -> io::Result<Done> {
        if self.phase == TalkPhase::Closing {
            log::debug!("talk: connection ended after our bye: {e}");
            return Ok(Done::Yes);
        }
        Err(io::Error::new(
            e.kind(),
            format!("connection to {} lost: {e}", self.peer_addr()),
        ))
    }
}

/// Print a received line unless the peer already said `bye`: nothing after
/// it belongs to the conversation. Notes whether this line is the `bye`.
fn print_until_bye(to_print: &mut Vec<u8>, peer_said_bye: &mut bool, line: &[u8]) {
    if !*peer_said_bye {
        *peer_said_bye = is_bye(line);
        super::add_line(to_print, line);
    }
}

/// Write what the peer will take; once closing and drained, shut down our
/// sending side so the peer sees the end of our stream after `bye`.
fn send(
    stream: &mut TcpStream,
    outbox: &mut Outbox,
    phase: TalkPhase,
    sending_shut: &mut bool,
) -> io::Result<()> {
    outbox.flush(stream)?;
    if phase == TalkPhase::Closing && outbox.is_empty() && !*sending_shut {
        stream.shutdown(Shutdown::Write)?;
        *sending_shut = true;
    }
    Ok(())
}
