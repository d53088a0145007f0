//! `sockloop bench` end to end: the real binary against the real server on
//! loopback, and against small misbehaving servers written here (one that
//! corrupts, one that never answers, none at all), to show that the bench
//! counts what goes wrong instead of hiding it. Speed is never asserted.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitStatus;
use std::thread;

use common::{run, Server};

/// A value of the flat JSON object `bench --json` prints.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Num(f64),
    Str(String),
}

/// Parse one flat JSON object (string keys; number or string values), the
/// whole input and nothing else. Panics, quoting the input, on anything else.
fn parse_flat_json(text: &str) -> HashMap<String, Value> {
    fn string(s: &[u8], i: &mut usize, text: &str) -> String {
        assert_eq!(s[*i], b'"', "string expected at {} in {text}", *i);
        *i += 1;
        let mut out = String::new();
        while s[*i] != b'"' {
            if s[*i] == b'\\' {
                *i += 1;
                match s[*i] {
                    b'"' => out.push('"'),
                    b'\\' => out.push('\\'),
                    b'u' => {
                        let hex = std::str::from_utf8(&s[*i + 1..*i + 5]).unwrap();
                        out.push(char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap());
                        *i += 4;
                    }
                    other => panic!("escape \\{} in {text}", other as char),
                }
            } else {
                out.push(s[*i] as char);
            }
            *i += 1;
        }
        *i += 1;
        out
    }
    let s = text.trim_end_matches('\n').as_bytes();
    let mut i = 0;
    let mut map = HashMap::new();
    assert_eq!(s.first(), Some(&b'{'), "not an object: {text}");
    i += 1;
    loop {
        let key = string(s, &mut i, text);
        assert_eq!(s[i], b':', "':' expected at {i} in {text}");
        i += 1;
        let value = if s[i] == b'"' {
            Value::Str(string(s, &mut i, text))
        } else {
            let end = i + s[i..]
                .iter()
                .position(|&b| b == b',' || b == b'}')
                .unwrap_or_else(|| panic!("unterminated number in {text}"));
            let number = std::str::from_utf8(&s[i..end]).unwrap();
            let v: f64 = number
                .parse()
                .unwrap_or_else(|e| panic!("{number:?}: {e} in {text}"));
            assert!(v.is_finite(), "{number} in {text}");
            i = end;
            Value::Num(v)
        };
        assert!(
            map.insert(key.clone(), value).is_none(),
            "{key} twice in {text}"
        );
        match s[i] {
            b',' => i += 1,
            b'}' => break,
            other => panic!("unexpected {:?} at {i} in {text}", other as char),
        }
    }
    assert_eq!(i + 1, s.len(), "trailing bytes after the object: {text}");
    map
}

/// Every field the report promises.
const FIELDS: &[&str] = &[
    "target",
    "to",
    "conns",
    "senders",
    "size",
    "pipeline",
    "duration_s",
    "elapsed_s",
    "sent",
    "messages",
    "bytes",
    "messages_per_s",
    "bytes_per_s",
    "latency_p50_us",
    "latency_p99_us",
    "latency_p999_us",
    "latency_max_us",
    "latency_mean_us",
    "errors",
    "mismatched",
    "lost",
    "disconnected",
    "late",
    "ignored",
];

struct Outcome {
    status: ExitStatus,
    report: HashMap<String, Value>,
    stderr: String,
}

impl Outcome {
    fn num(&self, key: &str) -> f64 {
        match self.report.get(key) {
            Some(Value::Num(v)) => *v,
            other => panic!("{key}: {other:?} in {:?}", self.report),
        }
    }
}

/// Run `sockloop bench TARGET --to ADDR ARGS... --json` and parse its one
/// line of JSON.
fn bench_json(target: &str, to: SocketAddr, args: &[&str]) -> Outcome {
    let to = to.to_string();
    let mut argv = vec!["bench", target, "--to", &to, "--json"];
    argv.extend_from_slice(args);
    let (status, stdout, stderr) = run(&argv);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "exactly one line on stdout: {stdout:?}; stderr: {stderr}"
    );
    let report = parse_flat_json(lines[0]);
    for field in FIELDS {
        assert!(report.contains_key(*field), "no {field} in {stdout}");
    }
    assert_eq!(report["target"], Value::Str(target.into()));
    assert_eq!(report["to"], Value::Str(to));
    Outcome {
        status,
        report,
        stderr,
    }
}

fn all_services() -> Server {
    Server::start(&common::ALL_SERVICES, 3)
}

fn assert_clean(o: &Outcome) {
    assert!(
        o.status.success(),
        "{:?}: {}\n{:?}",
        o.status,
        o.stderr,
        o.report
    );
    assert!(o.num("messages") > 0.0, "{:?}", o.report);
    assert_eq!(o.num("errors"), 0.0, "{:?}", o.report);
    assert_eq!(o.num("lost"), 0.0);
    assert_eq!(o.num("mismatched"), 0.0);
    assert!(o.num("bytes") >= o.num("messages") * o.num("size"));
    let (p50, p99, max) = (
        o.num("latency_p50_us"),
        o.num("latency_p99_us"),
        o.num("latency_max_us"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{:?}", o.report);
    assert_eq!(o.num("conns"), 4.0);
    assert_eq!(o.num("pipeline"), 2.0);
    // stderr is a pipe here: nothing but the progress lines, one per second.
    let target = o.report["target"].clone();
    let Value::Str(target) = target else {
        panic!("target is a string")
    };
    for line in o.stderr.lines() {
        assert!(
            is_interval_line(line, &target),
            "only progress lines on stderr: {}",
            o.stderr
        );
    }
}

/// `bench echo    1.00-2.00 s  51234 messages  51234/s  0 errors`
fn is_interval_line(line: &str, target: &str) -> bool {
    let Some(rest) = line.strip_prefix(&format!("bench {target} ")) else {
        return false;
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    matches!(
        words.as_slice(),
        [span, "s", n, "messages", rate, e, "errors"]
            if span.split_once('-').is_some_and(|(a, b)| {
                a.parse::<f64>().is_ok() && b.parse::<f64>().is_ok()
            })
            && n.parse::<u64>().is_ok()
            && rate.strip_suffix("/s").is_some_and(|r| r.parse::<f64>().is_ok())
            && e.parse::<u64>().is_ok()
    )
}

#[test]
fn echo_against_the_real_server_is_clean() {
    let server = all_services();
    let o = bench_json(
        "echo",
        server.addr("tcp-echo"),
        &["--conns", "4", "--pipeline", "2", "--duration", "1"],
    );
    assert_clean(&o);
    // Closed loop: every message sent was answered, none left over.
    assert_eq!(o.num("sent"), o.num("messages"));
}

#[test]
fn udp_against_the_real_server_is_clean() {
    let server = all_services();
    let o = bench_json(
        "udp",
        server.addr("udp-echo"),
        &["--conns", "4", "--pipeline", "2", "--duration", "1"],
    );
    assert_clean(&o);
    assert_eq!(o.num("sent"), o.num("messages") + o.num("late"));
}

#[test]
fn chat_against_the_real_server_is_clean() {
    let server = all_services();
    let o = bench_json(
        "chat",
        server.addr("chat"),
        &["--conns", "4", "--pipeline", "2", "--duration", "1"],
    );
    assert_clean(&o);
    // Four clients, all sending: every line reaches the three others.
    assert_eq!(o.num("senders"), 4.0);
    assert_eq!(o.num("messages"), 3.0 * o.num("sent"));
}

#[test]
fn the_table_names_rates_latency_and_errors() {
    let server = all_services();
    let to = server.addr("tcp-echo").to_string();
    let (status, stdout, stderr) = run(&[
        "bench",
        "echo",
        "--to",
        &to,
        "--conns",
        "2",
        "--duration",
        "0.3",
    ]);
    assert!(status.success(), "{stderr}");
    for needle in [
        "messages",
        "/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "errors           0",
    ] {
        assert!(stdout.contains(needle), "{needle:?} in {stdout}");
    }
}

/// `bench chat --conns 1` says why a chat bench needs two clients, not a
/// range up to 2^64.
#[test]
fn a_chat_bench_of_one_client_says_why_it_needs_two() {
    let (status, _, stderr) = run(&["bench", "chat", "--conns", "1"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs --conns 2 or more"), "{stderr}");
    assert!(stderr.contains("one client sends"), "{stderr}");
    assert!(!stderr.contains("18446744073709551615"), "{stderr}");
}

/// `-n COUNT` (as redis-benchmark): exactly COUNT messages are sent and,
/// from a correct server, answered; then the bench stops by itself, long
/// before the time limit.
#[test]
fn a_count_sends_exactly_that_many_messages() {
    let server = all_services();
    for (target, service, count) in [
        ("echo", "tcp-echo", 777.0),
        ("udp", "udp-echo", 333.0),
        ("chat", "chat", 101.0),
    ] {
        let n = count.to_string();
        let o = bench_json(
            target,
            server.addr(service),
            &["-c", "3", "-P", "4", "-n", &n, "-d", "60"],
        );
        assert!(o.status.success(), "{target}: {}", o.stderr);
        assert_eq!(o.num("sent"), count, "{target}: {:?}", o.report);
        assert_eq!(o.num("errors"), 0.0, "{target}: {:?}", o.report);
        // Chat: each line reaches the two other clients.
        let delivered = if target == "chat" { 2.0 * count } else { count };
        assert_eq!(o.num("messages"), delivered, "{target}: {:?}", o.report);
        assert!(o.num("elapsed_s") < 30.0, "{target}: {:?}", o.report);
    }
}

/// With stderr not a terminal, one progress line per `--interval` (as
/// iperf3 -i), and none with `--interval 0`.
#[test]
fn progress_is_one_line_per_interval_when_stderr_is_not_a_terminal() {
    let server = all_services();
    let to = server.addr("tcp-echo");
    let o = bench_json("echo", to, &["-c", "2", "-d", "1", "-i", "0.2"]);
    assert!(o.status.success(), "{}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert!(
        (3..=6).contains(&lines.len()),
        "about 5 lines in 1 s at 0.2 s: {}",
        o.stderr
    );
    assert!(
        lines.iter().all(|l| is_interval_line(l, "echo")),
        "{}",
        o.stderr
    );
    let o = bench_json("echo", to, &["-c", "2", "-d", "0.5", "-i", "0"]);
    assert!(o.status.success(), "{}", o.stderr);
    assert_eq!(o.stderr, "", "--interval 0: no progress lines");
}

/// A port on which nothing listens: bound, then released.
fn free_tcp_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn nothing_listening_exits_one_naming_the_address() {
    let addr = free_tcp_port();
    let to = addr.to_string();
    for target in ["echo", "chat"] {
        let (status, stdout, stderr) = run(&["bench", target, "--to", &to, "--duration", "1"]);
        assert_eq!(status.code(), Some(1), "{target}: {stderr}");
        assert!(stdout.is_empty(), "{target}: no report: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{target}: one line: {stderr}");
        assert!(
            stderr.contains(&format!("cannot connect to {to}")) && stderr.contains("refused"),
            "{target}: {stderr}"
        );
    }
    let udp = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let to = udp.to_string();
    let (status, _, stderr) = run(&["bench", "udp", "--to", &to, "--duration", "1"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("no UDP echo at {to}")), "{stderr}");
}

#[test]
fn options_out_of_range_are_usage_errors() {
    for args in [
        &["bench", "udp", "--size", "8"][..],
        &["bench", "chat", "--conns", "1"],
        &["bench", "echo", "--conns", "0"],
        &["bench", "echo", "--duration", "0"],
        &["bench", "echo", "-d", "0"],
        &["bench", "echo", "-n", "0"],
        &["bench", "smtp"],
    ] {
        let (status, stdout, stderr) = run(args);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains("Usage: sockloop bench"),
            "{args:?}: {stderr}"
        );
    }
}

/// A TCP "echo" server on a thread that serves `conns` connections with
/// `serve`, then stops accepting. Each connection's thread ends when the
/// bench closes it.
fn misbehaving_server(conns: usize, serve: fn(TcpStream)) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..conns {
            let (stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(common::WAIT)).unwrap();
            workers.push(thread::spawn(move || serve(stream)));
        }
        for w in workers {
            let _ = w.join();
        }
    });
    (addr, handle)
}

/// Echo everything, but flip one bit in the first byte of every read.
fn flip_a_bit(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        buf[0] ^= 0x04;
        if s.write_all(&buf[..n]).is_err() {
            break;
        }
    }
}

/// Read everything, answer nothing.
fn answer_nothing(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(1..) = s.read(&mut buf) {}
}

#[test]
fn a_corrupting_server_is_caught() {
    let (addr, server) = misbehaving_server(2, flip_a_bit);
    let o = bench_json(
        "echo",
        addr,
        &["--conns", "2", "--pipeline", "2", "--duration", "0.5"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert!(o.num("mismatched") > 0.0, "{:?}", o.report);
    assert!(o.num("errors") >= o.num("mismatched"));
    assert!(o.stderr.contains("errors"), "{}", o.stderr);
    server.join().unwrap();
}

#[test]
fn a_silent_server_means_lost_messages() {
    let (addr, server) = misbehaving_server(3, answer_nothing);
    let o = bench_json(
        "echo",
        addr,
        &["--conns", "3", "--pipeline", "4", "--duration", "0.2"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert_eq!(o.num("messages"), 0.0);
    // Every message started was counted as lost after the bounded drain.
    assert_eq!(o.num("lost"), 12.0, "{:?}", o.report);
    assert_eq!(o.num("sent"), 12.0);
    server.join().unwrap();
}

#[test]
fn a_server_that_hangs_up_is_counted() {
    let (addr, server) = misbehaving_server(2, drop);
    let o = bench_json("echo", addr, &["--conns", "2", "--duration", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", o.stderr);
    assert_eq!(o.num("disconnected"), 2.0, "{:?}", o.report);
    server.join().unwrap();
}
