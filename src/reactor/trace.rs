//! `--trace-events FILE`: the loop's activity as Chrome trace event JSON,
//! which Perfetto (ui.perfetto.dev) and chrome://tracing open as a timeline,
//! and which `scripts/trace2svg.py` draws as an SVG (docs/tour.md shows one).
//!
//! The file has one track for the loop and one track per slab token:
//!
//! - **loop**: each `poll` call is a slice as long as the loop slept in it
//!   (with the number of events it returned and the timeout it was given);
//!   after it, one slice per phase of the turn that had work to do
//!   (`events`, `still-ready`, `flush`, `sweep`).
//! - **token N**: each event dispatched to that token is a slice as long as
//!   its handling took, with the bytes (or datagrams) it moved; each flush is
//!   a `write` slice with the bytes written; instants mark `open`,
//!   `interest` changes, `eof`, `closing` (with the reason) and `close` (the
//!   sweep). A reused slab slot shows as a second `open` on the same track.
//! - **signals**: SIGINT and SIGTERM as they are handled.
//!
//! When the option is off the reactor holds `None`, and every hook is one
//! branch on it: no clock read, no formatting, no syscall.
//!
//! The format is the JSON Array Format of the Trace Event Format document:
//! `[{"name":..., "ph":"X"|"i"|"M", "ts":µs, "dur":µs, "pid":1, "tid":..., "args":{...}}, ...]`.
//! Timestamps are microseconds since the trace file was created.

use std::fmt::{self, Display};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::stats::Stats;

/// The track of the loop itself.
const LOOP_TRACK: u64 = 1;
/// The track of signal deliveries.
const SIGNAL_TRACK: u64 = 2;
/// Token `k` is drawn on track `TOKEN_TRACK_BASE + k`.
const TOKEN_TRACK_BASE: u64 = 10;

fn token_track(token: usize) -> u64 {
    TOKEN_TRACK_BASE + token as u64
}

/// Bytes and datagrams moved so far, read off the server's counters before
/// and after a piece of work, so the trace can say what that work moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// TCP bytes read.
    pub bytes_in: u64,
    /// TCP bytes written.
    pub bytes_out: u64,
    /// UDP datagrams received.
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
}

impl Moved {
    /// The counters now.
    pub fn of(stats: &Stats) -> Moved {
        Moved {
            bytes_in: stats.bytes_in,
            bytes_out: stats.bytes_out,
            datagrams_in: stats.datagrams_in,
            datagrams_out: stats.datagrams_out,
        }
    }

    /// What moved between `earlier` and `self`.
    pub fn since(self, earlier: Moved) -> Moved {
        Moved {
            bytes_in: self.bytes_in - earlier.bytes_in,
            bytes_out: self.bytes_out - earlier.bytes_out,
            datagrams_in: self.datagrams_in - earlier.datagrams_in,
            datagrams_out: self.datagrams_out - earlier.datagrams_out,
        }
    }
}

/// The readiness one event reported, as the trace names it.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// READABLE was reported.
    pub readable: bool,
    /// WRITABLE was reported.
    pub writable: bool,
    /// The peer's FIN (or an error) was reported.
    pub closed: bool,
}

impl Ready {
    /// The slice name: what was reported, e.g. `readable+closed`.
    fn name(self) -> &'static str {
        match (self.readable, self.writable, self.closed) {
            (true, false, false) => "readable",
            (false, true, false) => "writable",
            (true, true, false) => "readable+writable",
            (true, false, true) => "readable+closed",
            (false, true, true) => "writable+closed",
            (true, true, true) => "readable+writable+closed",
            (false, false, true) => "closed",
            (false, false, false) => "event",
        }
    }
}

/// An open trace file.
pub struct EventTrace {
    out: BufWriter<File>,
    start: Instant,
    first: bool,
    /// The first write error, reported at the end instead of failing the
    /// server mid-run over a diagnostics file.
    error: Option<io::Error>,
    /// Which token tracks have been given a name, by token.
    named: Vec<bool>,
}

impl EventTrace {
    /// Create (truncate) `path` and write the opening bracket and the names
    /// of the fixed tracks.
    pub fn create(path: &Path) -> io::Result<EventTrace> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create trace file {}: {e}", path.display()),
            )
        })?;
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        out.write_all(b"[\n")?;
        let mut trace = EventTrace {
            out,
            start: Instant::now(),
            first: true,
            error: None,
            named: Vec::new(),
        };
        trace.record(format_args!(
            r#"{{"name":"process_name","ph":"M","pid":1,"tid":{LOOP_TRACK},"args":{{"name":"sockloop serve"}}}}"#
        ));
        trace.name_track(LOOP_TRACK, "loop");
        trace.name_track(SIGNAL_TRACK, "signals");
        Ok(trace)
    }

    fn micros(&self, t: Instant) -> u128 {
        t.saturating_duration_since(self.start).as_micros()
    }

    /// Start and duration of the span `from`..`to`, in microseconds.
    fn span(&self, from: Instant, to: Instant) -> (u128, u128) {
        let ts = self.micros(from);
        (ts, self.micros(to).saturating_sub(ts))
    }

    fn record(&mut self, args: fmt::Arguments<'_>) {
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

    fn name_track(&mut self, tid: u64, name: impl Display) {
        let name = Escaped(name);
        self.record(format_args!(
            r#"{{"name":"thread_name","ph":"M","pid":1,"tid":{tid},"args":{{"name":"{name}"}}}}"#
        ));
        self.record(format_args!(
            r#"{{"name":"thread_sort_index","ph":"M","pid":1,"tid":{tid},"args":{{"sort_index":{tid}}}}}"#
        ));
    }

    /// Name the track of `token` the first time it is used.
    fn token_track(&mut self, token: usize) -> u64 {
        if self.named.len() <= token {
            self.named.resize(token + 1, false);
        }
        if !self.named[token] {
            self.named[token] = true;
            self.name_track(token_track(token), format_args!("token {token}"));
        }
        token_track(token)
    }

    /// One `poll` call: slept from `from` to `to` with `timeout` (`None`:
    /// no timeout) and returned `events`.
    pub fn poll_wait(
        &mut self,
        from: Instant,
        to: Instant,
        events: usize,
        timeout: Option<Duration>,
    ) {
        let (ts, dur) = self.span(from, to);
        let timeout_ms = Escaped(TimeoutMs(timeout));
        self.record(format_args!(
            r#"{{"name":"poll","cat":"loop","ph":"X","ts":{ts},"dur":{dur},"pid":1,"tid":{LOOP_TRACK},"args":{{"events":{events},"timeout_ms":"{timeout_ms}"}}}}"#
        ));
    }

    /// One phase of a turn (`events`, `still-ready`, `flush`, `sweep`) that
    /// handled `items` things.
    pub fn phase(&mut self, name: &str, from: Instant, to: Instant, items: usize) {
        let (ts, dur) = self.span(from, to);
        self.record(format_args!(
            r#"{{"name":"{name}","cat":"loop","ph":"X","ts":{ts},"dur":{dur},"pid":1,"tid":{LOOP_TRACK},"args":{{"items":{items}}}}}"#
        ));
    }

    /// One event for slab entry `token` (a `kind` of source), handled from
    /// `from` to `to`, which moved `moved`.
    pub fn dispatch(
        &mut self,
        from: Instant,
        to: Instant,
        token: usize,
        kind: &str,
        ready: Ready,
        moved: Moved,
    ) {
        let tid = self.token_track(token);
        let (ts, dur) = self.span(from, to);
        let name = ready.name();
        let Moved {
            bytes_in,
            bytes_out,
            datagrams_in,
            datagrams_out,
        } = moved;
        self.record(format_args!(
            r#"{{"name":"{name}","cat":"event","ph":"X","ts":{ts},"dur":{dur},"pid":1,"tid":{tid},"args":{{"token":{token},"kind":"{kind}","bytes_in":{bytes_in},"bytes_out":{bytes_out},"datagrams_in":{datagrams_in},"datagrams_out":{datagrams_out}}}}}"#
        ));
    }

    /// A flush of connection `token`, from `from` to `to`, wrote `bytes` of
    /// the `pending` bytes it had. Fewer than pending (and than the write
    /// budget) means the socket's send buffer filled up; 0 means it was
    /// already full (`WouldBlock`).
    pub fn write(
        &mut self,
        from: Instant,
        to: Instant,
        token: usize,
        bytes: usize,
        pending: usize,
    ) {
        let tid = self.token_track(token);
        let (ts, dur) = self.span(from, to);
        self.record(format_args!(
            r#"{{"name":"write","cat":"io","ph":"X","ts":{ts},"dur":{dur},"pid":1,"tid":{tid},"args":{{"token":{token},"bytes_out":{bytes},"pending":{pending}}}}}"#
        ));
    }

    /// Something happens to slab entry `token` now: `what` is `open`,
    /// `interest`, `eof`, `closing`, `close`, ...; `detail` says more (a peer
    /// address, an interest set, a close reason). The clock is read here, not
    /// taken from the turn's `now`, so that an instant falls inside the
    /// slice of the event that caused it.
    pub fn instant(&mut self, what: &str, token: usize, detail: impl Display) {
        let tid = self.token_track(token);
        let ts = self.micros(Instant::now());
        let detail = Escaped(detail);
        self.record(format_args!(
            r#"{{"name":"{what}","cat":"conn","ph":"i","s":"t","ts":{ts},"pid":1,"tid":{tid},"args":{{"token":{token},"detail":"{detail}"}}}}"#
        ));
    }

    /// A signal is being handled now.
    pub fn signal(&mut self, signal: i32) {
        let ts = self.micros(Instant::now());
        self.record(format_args!(
            r#"{{"name":"signal {signal}","cat":"signal","ph":"i","s":"t","ts":{ts},"pid":1,"tid":{SIGNAL_TRACK},"args":{{"signal":{signal}}}}}"#
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

/// A poll timeout in milliseconds, or `none`.
struct TimeoutMs(Option<Duration>);

impl Display for TimeoutMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{}", t.as_millis()),
            None => f.write_str("none"),
        }
    }
}

/// Displays its value as the inside of a JSON string: quotes, backslashes
/// and control characters escaped, without building a `String` first.
struct Escaped<T>(T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct JsonEscaper<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for JsonEscaper<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    match c {
                        '"' => self.0.write_str("\\\"")?,
                        '\\' => self.0.write_str("\\\\")?,
                        c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                        c => fmt::Write::write_char(self.0, c)?,
                    }
                }
                Ok(())
            }
        }
        fmt::write(&mut JsonEscaper(f), format_args!("{}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_strings_are_valid_json_string_contents() {
        let s = Escaped("error: \"x\" \\ \n end").to_string();
        assert_eq!(s, r#"error: \"x\" \\ \u000a end"#);
    }

    #[test]
    fn a_trace_file_is_one_json_array_with_named_tracks() {
        let path = std::env::temp_dir().join(format!("sockloop-trace-{}.json", std::process::id()));
        let mut t = EventTrace::create(&path).unwrap();
        let t0 = Instant::now();
        t.poll_wait(t0, t0 + Duration::from_millis(3), 1, None);
        let ready = Ready {
            readable: true,
            writable: false,
            closed: true,
        };
        t.dispatch(t0, t0, 3, "echo-conn", ready, Moved::default());
        t.instant("closing", 3, "error: \"quoted\"");
        t.signal(2);
        t.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(text.starts_with("[\n") && text.ends_with("\n]\n"), "{text}");
        let records: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
        assert!(
            records
                .iter()
                .all(|r| r.trim_end_matches(',').ends_with('}')),
            "{text}"
        );
        assert!(text.contains(
            r#""name":"thread_name","ph":"M","pid":1,"tid":13,"args":{"name":"token 3"}"#
        ));
        assert!(text.contains(r#""name":"readable+closed""#));
        assert!(text.contains(r#""detail":"error: \"quoted\"""#));
        assert!(text.contains(r#""timeout_ms":"none""#));
        assert_eq!(
            text.matches(r#""token 3""#).count(),
            1,
            "a track is named once"
        );
    }
}
