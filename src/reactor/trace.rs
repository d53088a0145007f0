//! `--trace-events FILE`: the loop's activity as Chrome trace event JSON,
//! which Perfetto (ui.perfetto.dev) and chrome://tracing open as a timeline.
//!
//! Each poll wait is a duration slice ("poll", with how many events it
//! returned); each event dispatched and each connection opened or closed is
//! an instant on the same track. When the option is off the reactor holds
//! `None` and every hook is one branch on it: zero cost beyond that.
//!
//! The format is the JSON Array Format of the Trace Event Format document:
//! `[{"name":..., "ph":"X"|"i", "ts":µs, "dur":µs, "pid":1, "tid":1, "args":{...}}, ...]`.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

/// An open trace file.
pub struct EventTrace {
    out: BufWriter<File>,
    start: Instant,
    first: bool,
    /// The first write error, reported at the end instead of failing the
    /// server mid-run over a diagnostics file.
    error: Option<io::Error>,
}

impl EventTrace {
    /// Create (truncate) `path` and write the opening bracket.
    pub fn create(path: &Path) -> io::Result<EventTrace> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create trace file {}: {e}", path.display()),
            )
        })?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        out.write_all(b"[\n")?;
        Ok(EventTrace {
            out,
            start: Instant::now(),
            first: true,
            error: None,
        })
    }

    fn micros(&self, t: Instant) -> u128 {
        t.saturating_duration_since(self.start).as_micros()
    }

    fn record(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_some() {
            return;
        }
        let sep: &[u8] = if self.first { b"" } else { b",\n" };
        self.first = false;
        if let Err(e) = self
            .out
            .write_all(sep)
            .and_then(|()| self.out.write_fmt(args))
        {
            self.error = Some(e);
        }
    }

    /// One `poll` call: slept from `from` to `to` and returned `events`.
    pub fn poll_wait(&mut self, from: Instant, to: Instant, events: usize) {
        let (ts, dur) = (
            self.micros(from),
            self.micros(to).saturating_sub(self.micros(from)),
        );
        self.record(format_args!(
            r#"{{"name":"poll","cat":"loop","ph":"X","ts":{ts},"dur":{dur},"pid":1,"tid":1,"args":{{"events":{events}}}}}"#
        ));
    }

    /// One event dispatched to slab entry `token`.
    pub fn event(&mut self, at: Instant, token: usize, kind: &str, readable: bool, writable: bool) {
        let ts = self.micros(at);
        self.record(format_args!(
            r#"{{"name":"event {kind}","cat":"event","ph":"i","s":"t","ts":{ts},"pid":1,"tid":1,"args":{{"token":{token},"readable":{readable},"writable":{writable}}}}}"#
        ));
    }

    /// Something happened to slab entry `token` ("open", "close").
    pub fn instant(&mut self, at: Instant, what: &str, token: usize) {
        let ts = self.micros(at);
        self.record(format_args!(
            r#"{{"name":"{what}","cat":"conn","ph":"i","s":"t","ts":{ts},"pid":1,"tid":1,"args":{{"token":{token}}}}}"#
        ));
    }

    /// Close the JSON array and flush; report the first write error if any.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.write_all(b"\n]\n")?;
        self.out.flush()
    }
}
