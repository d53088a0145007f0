//! Test support for the client tests (`tests/binary/clients.rs`, `tests/binary/talk.rs`):
//! run a client binary with its stdin and stdout as pipes, type lines into
//! it, wait for its lines and its exit, each wait bounded, and end it by PID
//! when the test is over. Builds on `tests/support/common.rs` (the server side).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};

use crate::common::{bin, wait_exit, Lines};

/// A running client (`sockloop send|chat|talk ...`), killed by PID on drop.
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    /// What it prints on stdout, line by line.
    pub stdout: Lines,
    /// What it prints on stderr, line by line.
    pub stderr: Lines,
}

impl Client {
    /// Start `sockloop ARGS...` with stdin a pipe the test types into.
    pub fn start(args: &[&str]) -> Client {
        Client::start_with_stdin(args, Stdio::piped())
    }

    /// Start `sockloop ARGS...` with the given stdin (`/dev/null`, a file).
    pub fn start_with_stdin(args: &[&str], stdin: Stdio) -> Client {
        let mut child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sockloop");
        let stdin = child.stdin.take();
        let stdout = Lines::spawn(child.stdout.take().unwrap());
        let stderr = Lines::spawn(child.stderr.take().unwrap());
        Client {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Type one line (an LF is added).
    pub fn type_line(&mut self, line: &str) {
        self.type_raw(format!("{line}\n").as_bytes());
    }

    /// Type bytes exactly as given, in one write.
    pub fn type_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is a pipe and still open");
        stdin.write_all(bytes).expect("write to the client's stdin");
        stdin.flush().unwrap();
    }

    /// End of input: close the client's stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Wait for the client to exit (bounded): its stdout and stderr close
    /// when it does; the lines are kept in `stdout.seen` / `stderr.seen`.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.stdout.wait_eof();
        self.stderr.wait_eof();
        wait_exit(&mut self.child)
    }

    /// The client's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the client now (SIGKILL, by PID): it vanishes without a word.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the client");
        let _ = self.child.wait();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Only the process this test started, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP port with nothing listening on it: bind port 0, note the
/// port, close the socket. (Another process could take the port in between,
/// but on a test machine that is vanishingly rare.)
pub fn closed_tcp_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A loopback UDP port with nothing bound to it, found the same way.
pub fn closed_udp_port() -> SocketAddr {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap()
}
