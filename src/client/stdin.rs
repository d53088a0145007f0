//! stdin as a mio source, whatever stdin is.
//!
//! A client loop registers [`Stdin`] under one token and, on each event with
//! that token, calls [`Stdin::read`] until it says `WouldBlock` (or until the
//! client has no room for more). Behind that one interface are two ways of
//! getting readiness, chosen by what stdin turns out to be:
//!
//! - **Polled directly** (stdin is a pipe, a FIFO or a socket): the descriptor
//!   is registered with epoll like any socket, under the client's token. mio is
//!   edge-triggered, so the loop must be able to read until `WouldBlock`, which
//!   means the descriptor must be non-blocking. We duplicate fd 0 into a
//!   [`mio::unix::pipe::Receiver`], which can both switch `O_NONBLOCK` on and
//!   read, with no `unsafe` (registering fd 0 through `mio::unix::SourceFd`
//!   needs no `unsafe` either, but reading it and setting the flag would).
//!   `O_NONBLOCK` belongs to the open file description, which the duplicate
//!   shares with fd 0 (and with any process that inherited it), so it is
//!   switched off again when [`Stdin`] is dropped. (A client killed by a
//!   signal leaves it on; for a pipe only another reader of the very same
//!   pipe could notice, which is one more reason terminals take the other
//!   path.)
//!
//! - **Read on a helper thread** (stdin is a terminal, a regular file,
//!   `/dev/null`, or anything else): a thread does blocking reads and hands
//!   each chunk over a bounded channel, then wakes the loop with a
//!   [`mio::Waker`] registered under the same token. Why not poll these too:
//!   epoll refuses regular files and `/dev/null` outright (`EPERM`: they are
//!   always "ready", so readiness means nothing); and a terminal's open file
//!   description is normally shared with our own stdout and stderr and with
//!   the shell that started us, so setting `O_NONBLOCK` on it would make our
//!   own `println!` fail with `EAGAIN` on a busy terminal and would leave the
//!   shell's terminal non-blocking if we were killed. The same holds for any
//!   stdin that is the very same file as stdout (a socket handed to us as
//!   both, by inetd or socat): it goes to the thread too. The cost is one
//!   thread and one copy per chunk, which for typed input is nothing.
//!
//! - **A line editor on a helper thread** ([`Stdin::register_interactive`], when
//!   stdin and stdout are both terminals and the client wants editing): the
//!   same channel and waker, fed by [`super::terminal`]'s editor with one
//!   accepted line at a time instead of raw chunks.
//!
//! Every path is bounded: the polled path reads only into the caller's
//! buffer, and the thread blocks once [`THREAD_CHANNEL_CHUNKS`] chunks wait,
//! so a huge file on stdin is read no faster than the socket sends it.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use mio::{Interest, Registry, Token, Waker};

use crate::net::{self, ReadOutcome};

/// Chunks the helper thread may have read ahead of the loop.
pub const THREAD_CHANNEL_CHUNKS: usize = 4;
/// The most the helper thread reads at once.
pub const THREAD_CHUNK_BYTES: usize = 16 * 1024;

/// stdin, registered with a client's poll under one token.
#[derive(Debug)]
pub struct Stdin {
    source: StdinSource,
}

#[derive(Debug)]
enum StdinSource {
    /// A pipe, FIFO or socket, registered with epoll and non-blocking.
    Polled(mio::unix::pipe::Receiver),
    /// Anything else, read by a helper thread.
    Thread {
        chunks: Receiver<io::Result<Vec<u8>>>,
        /// The chunk being handed out, and how much of it is gone.
        current: Vec<u8>,
        taken: usize,
        /// Kept so the waker stays registered while we read.
        _waker: Arc<Waker>,
    },
}

impl Stdin {
    /// Make stdin a source of events for `token` in `registry`.
    pub fn register(registry: &Registry, token: Token) -> io::Result<Stdin> {
        if let Some(mut pipe) = pollable_stdin() {
            let registered = pipe
                .set_nonblocking(true)
                .and_then(|()| registry.register(&mut pipe, token, Interest::READABLE));
            match registered {
                Ok(()) => {
                    log::debug!("stdin: registered with epoll (pipe, FIFO or socket)");
                    return Ok(Stdin {
                        source: StdinSource::Polled(pipe),
                    });
                }
                // Not expected for a pipe or socket, but if it fails, the
                // thread is always there.
                Err(e) => {
                    log::debug!("stdin: cannot poll it ({e}); using a helper thread");
                    let _ = pipe.set_nonblocking(false);
                }
            }
        }
        log::debug!("stdin: read on a helper thread (terminal, file or /dev/null)");
        Stdin::spawn_reader(registry, token)
    }

    /// Stop watching stdin: deregister it (a duplicate fd's registration
    /// outlives the duplicate while fd 0 stays open, so closing is not enough)
    /// and give the descriptor back its blocking mode.
    pub fn close(mut self, registry: &Registry) {
        if let StdinSource::Polled(pipe) = &mut self.source {
            let _ = registry.deregister(pipe);
        }
        // Drop restores blocking mode; a helper thread has already ended, or
        // ends on its next read when it finds the channel gone.
    }

    /// Make stdin a source of events for `token` as [`Stdin::register`]
    /// does, but, when stdin and stdout are both terminals, through a line
    /// editor (see [`super::terminal`]): the user's accepted lines arrive
    /// here as bytes, exactly as a pipe would give them. Returns the output
    /// that prints received lines (above the input line with the editor)
    /// and, with the editor, the guard that restores the terminal. A
    /// terminal the editor does not support gets the plain path.
    pub fn register_interactive(
        registry: &Registry,
        token: Token,
        prompt: &str,
    ) -> io::Result<(
        Stdin,
        super::terminal::Output,
        Option<super::terminal::TerminalGuard>,
    )> {
        use super::terminal::{self, Output, PreparedEditor};
        if !terminal::is_interactive() {
            return Ok((Stdin::register(registry, token)?, Output::Plain, None));
        }
        let editor = match PreparedEditor::new() {
            Ok(editor) => editor,
            Err(e) => {
                log::debug!("stdin: no line editor ({e}); plain terminal input");
                return Ok((Stdin::register(registry, token)?, Output::Plain, None));
            }
        };
        let waker = Arc::new(Waker::new(registry, token)?);
        let (tx, rx) = mpsc::sync_channel(THREAD_CHANNEL_CHUNKS);
        let (output, guard) = editor.spawn(prompt, tx, Arc::clone(&waker))?;
        log::debug!("stdin: a line editor on a helper thread (terminal)");
        let stdin = Stdin {
            source: StdinSource::Thread {
                chunks: rx,
                current: Vec::new(),
                taken: 0,
                _waker: waker,
            },
        };
        Ok((stdin, output, Some(guard)))
    }

    fn spawn_reader(registry: &Registry, token: Token) -> io::Result<Stdin> {
        let waker = Arc::new(Waker::new(registry, token)?);
        let (tx, rx) = mpsc::sync_channel(THREAD_CHANNEL_CHUNKS);
        let thread_waker = Arc::clone(&waker);
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || read_stdin_forever(tx, &thread_waker))?;
        Ok(Stdin {
            source: StdinSource::Thread {
                chunks: rx,
                current: Vec::new(),
                taken: 0,
                _waker: waker,
            },
        })
    }

    /// Read what stdin has now into `buf`: `Data(n)`, `Eof`, or `WouldBlock`
    /// (wait for the next event with this stdin's token). Read errors are
    /// returned with "stdin:" in front.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<ReadOutcome> {
        if buf.is_empty() {
            return Ok(ReadOutcome::WouldBlock);
        }
        let result = match &mut self.source {
            StdinSource::Polled(pipe) => net::read_once(pipe, buf),
            StdinSource::Thread {
                chunks,
                current,
                taken,
                ..
            } => {
                if *taken == current.len() {
                    match chunks.try_recv() {
                        Ok(Ok(chunk)) => {
                            *current = chunk;
                            *taken = 0;
                        }
                        Ok(Err(e)) => return Err(stdin_error(e)),
                        Err(TryRecvError::Empty) => return Ok(ReadOutcome::WouldBlock),
                        // The thread hung up: it saw end of input.
                        Err(TryRecvError::Disconnected) => return Ok(ReadOutcome::Eof),
                    }
                }
                let n = buf.len().min(current.len() - *taken);
                buf[..n].copy_from_slice(&current[*taken..*taken + n]);
                *taken += n;
                Ok(ReadOutcome::Data(n))
            }
        };
        result.map_err(stdin_error)
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        if let StdinSource::Polled(pipe) = &self.source {
            // Give fd 0's open file description back the way we found it
            // (blocking is how every program expects to receive stdin).
            let _ = pipe.set_nonblocking(false);
        }
    }
}

fn stdin_error(e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("stdin: {e}"))
}

/// A duplicate of fd 0 if stdin is something epoll can watch and that we may
/// make non-blocking: a pipe, FIFO or socket that is not also our stdout.
fn pollable_stdin() -> Option<mio::unix::pipe::Receiver> {
    // A closed fd 0 fails here; the thread then reads it as end of input
    // (std's stdin treats EBADF as EOF).
    let file = File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    let kind = meta.file_type();
    if !(kind.is_fifo() || kind.is_socket()) {
        return None;
    }
    let stdout = File::from(io::stdout().as_fd().try_clone_to_owned().ok()?);
    if let Ok(out) = stdout.metadata() {
        if out.dev() == meta.dev() && out.ino() == meta.ino() {
            return None;
        }
    }
    Some(mio::unix::pipe::Receiver::from(OwnedFd::from(file)))
}

/// The helper thread: blocking reads, one chunk at a time, each followed by a
/// wake-up. It ends at end of input or on an error, and hangs up the channel
/// (which the loop reads as end of input) before the last wake-up.
fn read_stdin_forever(tx: SyncSender<io::Result<Vec<u8>>>, waker: &Waker) {
    let mut stdin = io::stdin().lock();
    loop {
        let mut chunk = vec![0u8; THREAD_CHUNK_BYTES];
        let message = match stdin.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                chunk.truncate(n);
                Ok(chunk)
            }
            Err(e) if net::interrupted(&e) => continue,
            Err(e) => Err(e),
        };
        let failed = message.is_err();
        // `send` blocks while the loop is behind: that is the back-pressure.
        // It fails only when the loop is gone, and then so is our job.
        if tx.send(message).is_err() || waker.wake().is_err() || failed {
            return;
        }
    }
    // Dropping the sender before waking guarantees the loop sees
    // `Disconnected` (end of input) when it looks.
    drop(tx);
    let _ = waker.wake();
}
