//! The interactive clients' terminal: an input line that stays put while
//! received lines scroll above it, with editing and history, when stdin and
//! stdout are both terminals.
//!
//! A line editor needs the terminal in raw mode and blocks in `readline`, so
//! it cannot live inside a mio loop. It runs on a helper thread instead,
//! exactly like the thread that reads a terminal's stdin in
//! [`super::stdin`]: each line the user accepts (Enter) is handed over a
//! bounded channel as bytes ending in LF, and the loop is woken through a
//! [`mio::Waker`]. To the loop it is one more kind of stdin; the bytes it
//! reads are the same as a pipe would give.
//!
//! Received lines must not be written to stdout directly: they would land
//! in the middle of what the user is typing (`partially typ<bob> hi`). They
//! go through the editor's *external printer* instead ([`Output::Editor`]),
//! which clears the input line, prints the message, and redraws the prompt
//! with the half-typed line below it. rustyline builds that printer for
//! exactly this job; it is the well-kept crate (used by many REPLs) that
//! gives editing, history and the printer on one thread-safe handle, so no
//! terminal escape code is written by hand here.
//!
//! End of input: Ctrl-D on an empty line, and Ctrl-C too (the editor reads
//! it as a key, not as a signal), both read as end of stdin, so the client
//! ends the way it does at the end of a pipe (`chat` sends `/quit`, `talk`
//! sends `bye`). The terminal's settings are saved before the editor starts
//! and put back by [`TerminalGuard`] when the client ends, even though the
//! editor thread is still inside `readline` then.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use mio::Waker;
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

/// Whether the client should use the line editor: stdin and stdout are
/// both terminals. Anything else (a pipe, a file, `/dev/null`, a terminal
/// whose output is redirected) keeps the plain byte-for-byte behaviour
/// scripts rely on.
pub fn is_interactive() -> bool {
    io::stdin().is_terminal() && io::stdout().is_terminal()
}

/// Where received lines are printed.
pub enum Output {
    /// stdout, written and flushed as is: for pipes, files and scripts.
    Plain,
    /// Above the input line of the editor.
    Editor(Box<dyn ExternalPrinter + Send>),
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Plain => f.write_str("Output::Plain"),
            Output::Editor(_) => f.write_str("Output::Editor"),
        }
    }
}

impl Output {
    /// Print the gathered lines (each ending in LF) and empty `to_print`.
    /// Plain output blocks while stdout's reader is behind (see the memory
    /// bounds in [`super`]); the editor's printer hands the text to the
    /// editor thread over a channel of one message, so it blocks too while
    /// the editor has not taken the previous batch.
    pub fn print(&mut self, to_print: &mut Vec<u8>) -> io::Result<()> {
        if to_print.is_empty() {
            return Ok(());
        }
        match self {
            Output::Plain => {
                let mut out = io::stdout().lock();
                out.write_all(to_print)
                    .and_then(|()| out.flush())
                    .map_err(|e| io::Error::new(e.kind(), format!("stdout: {e}")))?;
            }
            Output::Editor(printer) => {
                // The lines are already made printable (valid UTF-8).
                let text = String::from_utf8_lossy(to_print).into_owned();
                printer
                    .print(text)
                    .map_err(|e| io::Error::other(format!("terminal: {e}")))?;
            }
        }
        to_print.clear();
        Ok(())
    }
}

/// A line editor that is ready to take over the terminal, and the printer
/// that goes with it. Making one fails on a terminal the editor does not
/// support (`TERM=dumb`, say): the client then stays in plain mode.
pub struct PreparedEditor {
    editor: DefaultEditor,
    output: Output,
}

impl PreparedEditor {
    /// Set up the editor and its printer; nothing runs yet.
    pub fn new() -> io::Result<PreparedEditor> {
        let mut editor = DefaultEditor::new().map_err(editor_error)?;
        let printer = editor.create_external_printer().map_err(editor_error)?;
        Ok(PreparedEditor {
            editor,
            output: Output::Editor(Box::new(printer)),
        })
    }

    /// Start the editor on a helper thread with `prompt`. Accepted lines go
    /// to `tx` (with their LF), each followed by a wake-up; end of input
    /// hangs up the channel. Returns the printer for received lines and the
    /// guard that restores the terminal.
    pub fn spawn(
        self,
        prompt: &str,
        tx: SyncSender<io::Result<Vec<u8>>>,
        waker: Arc<Waker>,
    ) -> io::Result<(Output, TerminalGuard)> {
        let guard = TerminalGuard::save();
        let editor = self.editor;
        let prompt = prompt.to_string();
        std::thread::Builder::new()
            .name("line editor".into())
            .spawn(move || edit_lines(editor, &prompt, tx, &waker))?;
        Ok((self.output, guard))
    }
}

fn editor_error(e: ReadlineError) -> io::Error {
    io::Error::other(format!("terminal: {e}"))
}

/// The editor thread: one `readline` per line, each accepted line into the
/// history and over the channel.
fn edit_lines(
    mut editor: DefaultEditor,
    prompt: &str,
    tx: SyncSender<io::Result<Vec<u8>>>,
    waker: &Waker,
) {
    loop {
        let message = match editor.readline(prompt) {
            Ok(line) => {
                if !line.is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                let mut bytes = line.into_bytes();
                bytes.push(b'\n');
                Ok(bytes)
            }
            // Ctrl-D on an empty line, or Ctrl-C: the user is done.
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => break,
            Err(e) => Err(editor_error(e)),
        };
        let failed = message.is_err();
        if tx.send(message).is_err() || waker.wake().is_err() || failed {
            return;
        }
    }
    drop(tx);
    let _ = waker.wake();
}

/// The terminal's settings from before the editor started, put back when
/// the client ends. The editor restores them itself after each line, but
/// the client usually ends while the editor thread waits inside `readline`
/// with the terminal in raw mode, and a process that exits then would leave
/// the shell without echo.
#[derive(Debug)]
pub struct TerminalGuard {
    saved: Option<nix::sys::termios::Termios>,
}

impl TerminalGuard {
    fn save() -> TerminalGuard {
        TerminalGuard {
            saved: nix::sys::termios::tcgetattr(io::stdin()).ok(),
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
            // The shell's prompt goes below the abandoned input line.
            let mut out = io::stdout();
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}
