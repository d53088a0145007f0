//! What a bench run counts, and how it is shown: the [`Tally`] every driver
//! updates as replies arrive, the final [`Report`] as a table or as one JSON
//! object, and the [`Progress`] bar drawn on a terminal while it runs.
//!
//! Latency goes into an HDR histogram allocated once at start (recording is
//! an index computation and an increment, no allocation), in nanoseconds;
//! reports show microseconds.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

use super::Plan;

/// The largest latency the histogram tells apart from larger ones: 60 s.
/// Anything slower is recorded as 60 s (and was certainly counted as lost by
/// UDP's timeout long before).
const LATENCY_MAX_NS: u64 = 60_000_000_000;

/// Counters of one run. Every message ends as exactly one of: answered
/// (`messages`), `mismatched`, or `lost`; `disconnected` counts connections
/// that ended under the bench, whose messages in flight are counted as lost.
#[derive(Debug)]
pub struct Tally {
    /// Messages started (for chat: lines sent).
    pub sent: u64,
    /// Replies (for chat: relayed lines received) that matched byte for byte.
    pub messages: u64,
    /// Bytes of those replies (for chat: whole relayed lines, nick prefix and
    /// LF included: what crossed the wire to the receiver).
    pub bytes: u64,
    /// Replies that differed from what was sent, bytes nobody asked for, and
    /// (chat) `* error:` lines from the server.
    pub mismatched: u64,
    /// Messages never answered: in flight when their connection ended, still
    /// unanswered when the bench stopped waiting, or (UDP) unanswered within
    /// the loss timeout.
    pub lost: u64,
    /// Connections closed or reset by the other side during the run.
    pub disconnected: u64,
    /// UDP replies that came after their datagram had been counted as lost.
    /// Not an error of its own: the loss already counted.
    pub late: u64,
    /// Lines that are nobody's business (chat: notices, other people's
    /// lines), skipped and counted.
    pub ignored: u64,
    /// Round-trip (for chat: send-to-delivery) times of the answered
    /// messages, in nanoseconds.
    pub latency: Histogram<u64>,
    /// When the last answer arrived; the end of the measured interval.
    pub last_answer: Option<Instant>,
    /// Messages that may be started in all (`-n COUNT`; otherwise no limit).
    pub limit: u64,
}

impl Tally {
    /// All zero, with the histogram allocated.
    pub fn new() -> Tally {
        Tally {
            sent: 0,
            messages: 0,
            bytes: 0,
            mismatched: 0,
            lost: 0,
            disconnected: 0,
            late: 0,
            ignored: 0,
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_NS, 3)
                .expect("constant histogram bounds are valid"),
            last_answer: None,
            limit: u64::MAX,
        }
    }

    /// All zero, limited to the plan's `-n COUNT` if it has one.
    pub fn for_plan(plan: &Plan) -> Tally {
        Tally {
            limit: plan.count.unwrap_or(u64::MAX),
            ..Tally::new()
        }
    }

    /// Whether one more message may start (`-n COUNT` not reached yet).
    #[inline]
    pub fn may_start(&self) -> bool {
        self.sent < self.limit
    }

    /// One answer matched: count it and its latency.
    #[inline]
    pub fn answered(&mut self, bytes: usize, latency_ns: u64, now: Instant) {
        self.messages += 1;
        self.bytes += bytes as u64;
        self.latency.saturating_record(latency_ns.max(1));
        self.last_answer = Some(now);
    }

    /// Every kind of error together; the bench exits 1 when this is not 0.
    pub fn errors(&self) -> u64 {
        self.mismatched + self.lost + self.disconnected
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

/// The outcome of one run, ready to print.
#[derive(Debug)]
pub struct Report<'a> {
    /// What was asked.
    pub plan: &'a Plan,
    /// How many connections sent (chat; for echo and UDP every one does).
    pub senders: usize,
    /// From the start of the load to the last answer (or to the deadline,
    /// whichever is later): the interval the rates are computed over.
    pub elapsed: Duration,
    /// The counters.
    pub tally: &'a Tally,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

impl Report<'_> {
    fn per_second(&self, count: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            count as f64 / secs
        } else {
            0.0
        }
    }

    fn quantile_us(&self, q: f64) -> f64 {
        let h = &self.tally.latency;
        if h.is_empty() {
            0.0
        } else {
            us(h.value_at_quantile(q))
        }
    }

    /// The report as one JSON object on one line. Flat on purpose: every
    /// field is a top-level number or string, easy for `jq` and for tests.
    /// Latencies are in microseconds; 0 when nothing was answered.
    pub fn to_json(&self) -> String {
        let t = self.tally;
        let p = self.plan;
        let mut s = String::with_capacity(768);
        s.push('{');
        let _ = write!(
            s,
            "\"target\":\"{}\",\"to\":\"{}\",\"conns\":{},\"senders\":{},\"size\":{},\
             \"pipeline\":{},\"duration_s\":{:.3},\"elapsed_s\":{:.6},",
            p.target_name(),
            json_escape(&p.servers()),
            p.conns,
            self.senders,
            p.size,
            p.pipeline,
            p.duration.as_secs_f64(),
            self.elapsed.as_secs_f64(),
        );
        let _ = write!(
            s,
            "\"sent\":{},\"messages\":{},\"bytes\":{},\"messages_per_s\":{:.1},\
             \"bytes_per_s\":{:.1},",
            t.sent,
            t.messages,
            t.bytes,
            self.per_second(t.messages),
            self.per_second(t.bytes),
        );
        let mean = if t.latency.is_empty() {
            0.0
        } else {
            t.latency.mean() / 1000.0
        };
        let _ = write!(
            s,
            "\"latency_p50_us\":{:.1},\"latency_p99_us\":{:.1},\"latency_p999_us\":{:.1},\
             \"latency_max_us\":{:.1},\"latency_mean_us\":{:.1},",
            self.quantile_us(0.5),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            us(t.latency.max()),
            mean,
        );
        let _ = write!(
            s,
            "\"errors\":{},\"mismatched\":{},\"lost\":{},\"disconnected\":{},\"late\":{},\
             \"ignored\":{}}}",
            t.errors(),
            t.mismatched,
            t.lost,
            t.disconnected,
            t.late,
            t.ignored,
        );
        s
    }

    /// The report as a small table for people.
    pub fn to_text(&self) -> String {
        let t = self.tally;
        let p = self.plan;
        let mut s = String::new();
        let unit = match p.target {
            super::Target::Chat => "lines delivered",
            _ => "messages",
        };
        let _ = writeln!(
            s,
            "sockloop bench {} -> {}: {} connections{}, {} bytes, pipeline {}, {:.1} s",
            p.target_name(),
            p.servers(),
            p.conns,
            match p.target {
                super::Target::Chat => format!(" ({} sending)", self.senders),
                _ => String::new(),
            },
            p.size,
            p.pipeline,
            self.elapsed.as_secs_f64(),
        );
        let _ = writeln!(
            s,
            "  {unit:<16} {:>12}  {:>12.0}/s",
            t.messages,
            self.per_second(t.messages)
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>12}  {:>12}/s",
            "bytes",
            t.bytes,
            human_bytes(self.per_second(t.bytes))
        );
        let max_us = us(t.latency.max());
        // Microseconds read well up to 10 000; past that, milliseconds do.
        let (unit, scale, places) = if max_us >= 10_000.0 {
            ("ms", 1000.0, 2)
        } else {
            ("us", 1.0, 1)
        };
        let _ = writeln!(
            s,
            "  {:<16} p50 {:.*}  p99 {:.*}  p99.9 {:.*}  max {:.*}",
            format!("latency ({unit})"),
            places,
            self.quantile_us(0.5) / scale,
            places,
            self.quantile_us(0.99) / scale,
            places,
            self.quantile_us(0.999) / scale,
            places,
            max_us / scale,
        );
        let _ = writeln!(
            s,
            "  {:<16} {} (mismatched {}, lost {}, disconnected {}){}",
            "errors",
            t.errors(),
            t.mismatched,
            t.lost,
            t.disconnected,
            if t.late > 0 {
                format!(", {} late replies", t.late)
            } else {
                String::new()
            },
        );
        s
    }
}

fn human_bytes(per_second: f64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = per_second;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Escape a string for a JSON string literal (quotes, backslashes, control
/// characters). Addresses never need it; it is here so that the JSON stays
/// valid whatever text ends up in it.
pub fn json_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s
}

/// Progress on stderr while the bench runs: a bar, redrawn at most every
/// [`Progress::EVERY`], when stderr is a terminal; otherwise (a log file, a
/// pipe, CI) one line per `--interval`, as iperf3 prints them, so that a long
/// run in a log shows how it went; otherwise nothing.
pub struct Progress {
    show: Show,
    /// Messages and time at the last interval line.
    last_messages: u64,
    last_at: Duration,
    next_draw: Instant,
    label: String,
    /// With `-n COUNT`, the bar counts messages started instead of time.
    count: Option<u64>,
}

enum Show {
    Nothing,
    Bar(ProgressBar),
    Lines(Duration),
}

impl Progress {
    /// How often the bar is redrawn.
    pub const EVERY: Duration = Duration::from_millis(100);

    /// Progress for `plan`: a bar when stderr is a terminal, else lines
    /// every `plan.interval` if it has one, else nothing.
    pub fn new(label: &str, plan: &Plan) -> Progress {
        let show = if std::io::stderr().is_terminal() {
            let len = plan
                .count
                .unwrap_or(plan.duration.as_millis().max(1) as u64);
            let bar = ProgressBar::new(len);
            if let Ok(style) =
                ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed_precise} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(label.to_string());
            Show::Bar(bar)
        } else {
            match plan.interval {
                Some(every) => Show::Lines(every),
                None => Show::Nothing,
            }
        };
        let first = match show {
            Show::Lines(every) => Instant::now() + every,
            _ => Instant::now(),
        };
        Progress {
            show,
            last_messages: 0,
            last_at: Duration::ZERO,
            next_draw: first,
            label: label.to_string(),
            count: plan.count,
        }
    }

    /// Whether anything is shown at all (the loop then wakes up for it).
    pub fn visible(&self) -> bool {
        !matches!(self.show, Show::Nothing)
    }

    /// When the progress next wants drawing, if it is shown.
    pub fn next_draw(&self) -> Option<Instant> {
        self.visible().then_some(self.next_draw)
    }

    /// Redraw if it is time: position in the run, answers so far, errors.
    pub fn update(&mut self, now: Instant, since_start: Duration, tally: &Tally) {
        if now < self.next_draw {
            return;
        }
        match &self.show {
            Show::Nothing => {}
            Show::Bar(bar) => {
                self.next_draw = now + Self::EVERY;
                bar.set_position(match self.count {
                    Some(_) => tally.sent,
                    None => since_start.as_millis() as u64,
                });
                let secs = since_start.as_secs_f64().max(1e-3);
                bar.set_message(format!(
                    "{:.0}/s, {} errors",
                    tally.messages as f64 / secs,
                    tally.errors()
                ));
            }
            Show::Lines(every) => {
                self.next_draw = now + *every;
                eprintln!("{}", self.interval_line(since_start, tally));
                self.last_messages = tally.messages;
                self.last_at = since_start;
            }
        }
    }

    /// One interval: `bench echo   1.00-2.00 s  51234 messages  51234/s  0 errors`.
    fn interval_line(&self, since_start: Duration, tally: &Tally) -> String {
        let messages = tally.messages - self.last_messages;
        let secs = (since_start - self.last_at).as_secs_f64().max(1e-3);
        format!(
            "{} {:>7.2}-{:.2} s  {messages} messages  {:.0}/s  {} errors",
            self.label,
            self.last_at.as_secs_f64(),
            since_start.as_secs_f64(),
            messages as f64 / secs,
            tally.errors()
        )
    }

    /// Remove the bar, so the report starts on a clean line.
    pub fn finish(&self) {
        if let Show::Bar(bar) = &self.show {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Target;

    fn text_with_latencies(latencies_us: &[u64]) -> String {
        let plan = Plan {
            target: Target::Echo,
            addr: "127.0.0.1:1".parse().unwrap(),
            also: Vec::new(),
            conns: 1,
            size: 64,
            pipeline: 1,
            duration: Duration::from_secs(1),
            count: None,
            interval: None,
        };
        let mut tally = Tally::new();
        for &us in latencies_us {
            tally.answered(64, us * 1000, Instant::now());
        }
        Report {
            plan: &plan,
            senders: 1,
            elapsed: Duration::from_secs(1),
            tally: &tally,
        }
        .to_text()
    }

    #[test]
    fn latency_is_in_microseconds_below_ten_thousand() {
        let text = text_with_latencies(&[40, 50, 9_000]);
        assert!(text.contains("latency (us)"), "{text}");
        assert!(text.contains("max 9") && text.contains(".0"), "{text}");
    }

    #[test]
    fn latency_is_in_milliseconds_past_ten_thousand_microseconds() {
        let text = text_with_latencies(&[2_000, 31_785]);
        assert!(text.contains("latency (ms)"), "{text}");
        // hdrhistogram keeps 3 significant digits: 31 785 us reads 31.79 ms.
        assert!(
            text.contains("max 31.7") || text.contains("max 31.8"),
            "{text}"
        );
        assert!(!text.contains("31785"), "{text}");
    }
}
