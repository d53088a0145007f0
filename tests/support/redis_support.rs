//! A real `redis-server` for the tests that need one: started on a free
//! loopback port (never 6379), with no persistence and its own temporary
//! directory, waited for with `PING` under a deadline, killed and restarted
//! on the same port when a test wants Redis to die, and ended by PID.
//!
//! When `redis-server` is not installed, [`RedisServer::start`] says so
//! loudly ("SKIPPED: ...") and returns `None`, and the test returns early;
//! but when the `CI` environment variable is set, a missing `redis-server`
//! fails the test instead (CI installs it, so its absence is a defect).

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long Redis may take to answer `PING` after it is started.
pub const START_DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` process this test started.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: PathBuf,
}

/// Whether `redis-server` can be run; if not, say so (or fail under CI).
fn redis_installed(test: &str) -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: redis-server is not installed, and CI is set: CI must install it (apt-get install redis-server)");
        }
        // Straight to the process's stderr: the test harness captures
        // `eprintln!` of a passing test, and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {test}: redis-server not installed (apt-get install redis-server)"
        );
    }
    found
}

impl RedisServer {
    /// Start a Redis for `test` (its name, for the skip message), requiring
    /// `password` when given. `None`: not installed, test skipped.
    pub fn start(test: &str, password: Option<&str>) -> Option<RedisServer> {
        if !redis_installed(test) {
            return None;
        }
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sockloop-redis-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the redis temp dir");
        // A free port can be taken by someone else between our probe and
        // Redis's bind; try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                port,
                password: password.map(Into::into),
                dir: dir.clone(),
            };
            if server.spawn() {
                return Some(server);
            }
        }
        panic!("{test}: redis-server did not start on any of 5 free ports");
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://[:PASSWORD@]127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// Its PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kill it (SIGKILL, by PID) and reap it: its data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_DEADLINE;
        // The port is ours again as soon as the old process is reaped; a
        // retry covers a slow kernel.
        while !self.spawn() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not restart on port {}",
                self.port
            );
        }
    }

    /// Start the process and wait for PONG; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        let mut child = cmd.spawn().expect("spawn redis-server");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // it exited: most likely the port was taken
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "redis-server on port {} gave no PONG within {START_DEADLINE:?}",
                    self.port
                );
            }
            // Not a fixed sleep standing in for a condition: a short pause
            // between PING attempts, under the deadline above.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One PING (after AUTH when a password is set); true on PONG.
    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut script = Vec::new();
        if let Some(p) = &self.password {
            script.extend_from_slice(format!("AUTH {p}\r\n").as_bytes());
        }
        script.extend_from_slice(b"PING\r\n");
        if s.write_all(&script).is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 256];
        while !got.windows(5).any(|w| w == b"+PONG") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port nobody listens on right now, never Redis's default.
pub fn free_port() -> u16 {
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
        let port = probe.local_addr().expect("probe address").port();
        if port != 6379 {
            return port;
        }
    }
}
