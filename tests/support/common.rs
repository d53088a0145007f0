//! Test support shared by the integration tests: start the real `sockloop`
//! binary, wait for the lines it prints (never sleep), talk to it over
//! loopback, and end it by PID when the test is over.
//!
//! Every wait here has a timeout, so a broken server fails a test instead of
//! hanging CI.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// `sockloop serve` arguments for all three services on free loopback ports
/// (three `listening` lines).
pub const ALL_SERVICES: [&str; 6] = [
    "--echo",
    "127.0.0.1:0",
    "--udp-echo",
    "127.0.0.1:0",
    "--chat",
    "127.0.0.1:0",
];

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The binary under test, built by cargo for integration tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sockloop")
}

/// Lines of a child's output, read on a thread and handed over a channel so
/// that a test can wait for one with a timeout.
pub struct Lines {
    rx: Receiver<String>,
    /// Every line seen so far, for failure messages.
    pub seen: Vec<String>,
}

impl Lines {
    /// Read `src` line by line on a thread.
    pub fn spawn<R: Read + Send + 'static>(src: R) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(src).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line, or `None` at end of output; panics after `WAIT`.
    pub fn next_line(&mut self) -> Option<String> {
        match self.rx.recv_timeout(WAIT) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no line within {WAIT:?}; seen so far: {:#?}", self.seen)
            }
        }
    }

    /// Wait until the output ends (the process closed it, usually by
    /// exiting); the lines are kept in `seen`. Panics after `WAIT`.
    pub fn wait_eof(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(e) => panic!("output did not end: {e:?}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Skip lines until one contains `needle`; return it. Panics on timeout
    /// or end of output.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!("waiting for {needle:?}: {e:?}; seen: {:#?}", self.seen),
            }
        }
    }
}

/// A running `sockloop serve`, killed (by its PID) when dropped.
pub struct Server {
    /// The child process.
    pub child: Child,
    /// (service, address) from its `listening` lines, in order.
    pub listening: Vec<(String, SocketAddr)>,
    /// Its stderr (logs), line by line.
    pub stderr: Lines,
}

impl Server {
    /// Start `sockloop serve ARGS...` and wait for one `listening` line per
    /// socket (`sockets` of them).
    pub fn start(args: &[&str], sockets: usize) -> Server {
        Server::start_env(args, sockets, &[("RUST_LOG", "info")])
    }

    /// Like [`Server::start`] with extra environment variables.
    pub fn start_env(args: &[&str], sockets: usize, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::from_command(cmd, sockets)
    }

    /// Start a prepared command (for `ulimit` wrappers and the like).
    pub fn from_command(mut cmd: Command, sockets: usize) -> Server {
        let mut child = cmd.spawn().expect("start sockloop serve");
        let mut stdout = Lines::spawn(child.stdout.take().unwrap());
        let stderr = Lines::spawn(child.stderr.take().unwrap());
        let mut listening = Vec::new();
        while listening.len() < sockets {
            let Some(line) = stdout.next_line() else {
                let status = child.wait();
                panic!(
                    "server exited ({status:?}) before listening; stdout: {:?}",
                    stdout.seen
                );
            };
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("listening"), "unexpected line {line:?}");
            let service = words.next().unwrap().to_string();
            let addr: SocketAddr = words.next().unwrap().parse().unwrap();
            listening.push((service, addr));
        }
        Server {
            child,
            listening,
            stderr,
        }
    }

    /// The address of the first socket of `service` ("tcp-echo", "udp-echo", "chat").
    pub fn addr(&self, service: &str) -> SocketAddr {
        self.listening
            .iter()
            .find(|(s, _)| s == service)
            .unwrap_or_else(|| panic!("no {service} in {:?}", self.listening))
            .1
    }

    /// Send a signal by name ("TERM", "INT") to this server's PID.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Wait for the server to exit, at most `WAIT`: its stderr closes when
    /// it exits, so wait for that, then collect the status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.stderr.wait_eof();
        wait_exit(&mut self.child)
    }

    /// Resident memory of the server in bytes, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        rss_bytes(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Only the process this test started, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait for `child` to exit, at most `WAIT`; panics past that. Prefer
/// waiting for its output to close first (then this returns at once).
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit within {WAIT:?}",
            child.id()
        );
        // Polling a child's exit has no readiness event to wait on without
        // unsafe code (pidfd); a short poll interval bounded by WAIT is it.
        thread::sleep(Duration::from_millis(10));
    }
}

/// Resident set size of process `pid` in bytes (VmRSS in /proc/PID/status).
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Parse `name=value` out of a `stats:` log line.
pub fn stat(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        .parse()
        .unwrap()
}

/// Wait for a `stats:` line (from `--stats-interval`) that satisfies `ok`;
/// panics if none does within `WAIT` (stats lines keep coming, so each wait
/// for the next one succeeds: the deadline must cover the whole search).
pub fn wait_for_stats(server: &mut Server, mut ok: impl FnMut(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let line = server.stderr.wait_for("stats:");
        if ok(&line) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "no stats line satisfied the condition within {WAIT:?}; last: {line}"
        );
    }
}

/// Connect with read/write timeouts set, so a test can never block forever.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s =
        TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

/// Read exactly `n` bytes (panics on timeout or early EOF).
pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    s.read_exact(&mut buf)
        .unwrap_or_else(|e| panic!("read {n} bytes: {e}"));
    buf
}

/// Read until the peer closes; returns everything read.
pub fn read_to_end(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read to end");
    buf
}

/// A chat client over a plain socket, reading line by line.
pub struct ChatClient {
    /// The socket, for raw writes.
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl ChatClient {
    /// Connect and read the welcome line; returns the client and its nick.
    pub fn join(addr: SocketAddr) -> (ChatClient, String) {
        let stream = connect(addr);
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut c = ChatClient { stream, reader };
        let welcome = c.line();
        let nick = welcome_nick(&welcome);
        (c, nick)
    }

    /// Join a server that may still be closing a departed client's
    /// connection: retry while it answers "server full", bounded by `WAIT`.
    pub fn join_when_free(addr: SocketAddr) -> (ChatClient, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = connect(addr);
            let mut first = String::new();
            BufReader::new(s.try_clone().unwrap())
                .read_line(&mut first)
                .unwrap();
            if first.starts_with("* welcome") {
                let reader = BufReader::new(s.try_clone().unwrap());
                let nick = welcome_nick(first.trim_end());
                return (ChatClient { stream: s, reader }, nick);
            }
            assert_eq!(first, "* error: server full\n");
            assert!(Instant::now() < deadline, "still full after {WAIT:?}");
            let _ = s.shutdown(std::net::Shutdown::Both);
            thread::yield_now();
        }
    }

    /// Send one line (LF added).
    pub fn say(&mut self, text: &str) {
        self.stream
            .write_all(format!("{text}\n").as_bytes())
            .unwrap();
    }

    /// The next line, without its LF. Panics on timeout or EOF.
    pub fn line(&mut self) -> String {
        let mut s = String::new();
        let n = self
            .reader
            .read_line(&mut s)
            .unwrap_or_else(|e| panic!("read line: {e}"));
        assert!(n > 0, "connection closed while waiting for a line");
        assert!(s.ends_with('\n'), "line without LF: {s:?}");
        s.pop();
        s
    }

    /// Expect the server to close the connection (after any lines).
    pub fn expect_closed(&mut self) {
        let mut rest = String::new();
        match self.reader.read_to_string(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected lines before close: {rest:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("waiting for close: {e}"),
        }
    }
}

/// Run the binary with `args` to completion (stdin closed); returns
/// (status, stdout, stderr). Bounded by `WAIT`.
pub fn run(args: &[&str]) -> (ExitStatus, String, String) {
    let child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sockloop");
    output_within(child, WAIT, &format!("sockloop {args:?}"))
}

/// Everything `child` writes to its stdout and stderr (both piped), and
/// its exit status, once it has ended: both pipes close when it exits, so
/// wait for that, at most `within`. Past that the child is killed (by its
/// handle: only the process this test started) and this panics naming
/// `what`.
pub fn output_within(
    mut child: Child,
    within: Duration,
    what: &str,
) -> (ExitStatus, String, String) {
    let out = child.stdout.take().expect("a piped stdout");
    let err: ChildStderr = child.stderr.take().expect("a piped stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let err = thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
        let out = std::io::read_to_string(out).unwrap_or_default();
        let _ = tx.send((out, err.join().unwrap_or_default()));
    });
    let Ok((out, err)) = rx.recv_timeout(within) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish within {within:?}");
    };
    (wait_exit(&mut child), out, err)
}

/// Deterministic pseudo-random bytes (xorshift32 from `seed`), NULs and
/// control bytes included: garbage that replays the same way every run.
pub fn pseudo_random_bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// The nickname a chat welcome line gives; panics on any other line.
pub fn welcome_nick(line: &str) -> String {
    let nick = sockloop::protocol::chat::wire::welcome_nick(line.as_bytes())
        .unwrap_or_else(|| panic!("not a welcome: {line:?}"));
    String::from_utf8(nick.to_vec()).expect("an ASCII nickname")
}
