//! Keeps the docs true.
//!
//! `the_tour_replays`: docs/tour.md quotes the server's real `RUST_LOG=trace`
//! output, step by step. This test reads the quoted lines out of the tour
//! itself (each ```` ```log ```` block after a `<!-- tour-step: NAME -->`
//! marker), replays the same steps against the real binary on 127.0.0.1 port
//! 0, and checks that every quoted line appears, in order, after its step.
//! Timestamps, port numbers, durations and the clamped `--max-conns` are
//! normalised on both sides;
//! tokens are not (they are deterministic here, and their reuse is the point
//! of one step). When the server's logging changes, this test fails until the
//! tour is updated.
//!
//! `docs_cite_only_code_that_exists`: every link in docs/*.md and README.md
//! of the form [`name`](../src/... .rs) or [`name`](../tests/... .rs) must
//! name a function, type, constant or variant that is defined in that file
//! (or the module that file is), so the docs cannot point at code or tests
//! that were renamed or removed; every link to `FILE.md#anchor` must find a
//! heading with that anchor; and every other relative link must name a file
//! or directory that exists.
//!
//! The claims, not just the names: `every_claim_names_a_proof_that_is_a_test`
//! reads every trap of docs/pitfalls.md (its "**Proved by.**" paragraph) and
//! every row of docs/limits.md's tables with a "proved by" column, and
//! requires each to name at least one proof that is a real test: a `#[test]`
//! function (not `#[ignore]`d) in the file named, a file or module with tests
//! or property tests, or a step of this tour; a claim whose test disappears
//! or stops being a test fails here. `the_code_a_claim_names_is_where_it_says`
//! checks the "where" column of limits.md and every "`name` (in FILE)" of
//! both pages against the source (a method must sit in an `impl` of its
//! type). `the_numbers_the_docs_give_are_the_codes` compares every value
//! written beside a named constant ("256 KiB (`READ_BUDGET_PER_TURN`)") with
//! the constant's definition.
//!
//! `diagrams_are_drawn_from_their_source`: the SVGs in docs/diagrams/ are
//! redrawn from their Graphviz sources and compared, and every code name in
//! their labels must still be in src/ (see that test).
//! `every_break_it_exercise_is_documented_with_its_test`: scripts/break-it.sh
//! and docs/exercises.md list the same breaks and tests.
//!
//! Set `TOUR_DUMP=FILE` to write the normalised log of a replay to FILE.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use common::{bin, WAIT};

/// The steps of the tour, in the order the tour takes them.
const STEPS: [&str; 7] = [
    "start",
    "connect",
    "send",
    "close",
    "connect-again",
    "reset",
    "stop",
];

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The quoted log lines of each step of docs/tour.md, in order.
fn tour_steps(markdown: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- tour-step:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let opening = lines
            .by_ref()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        assert_eq!(
            opening.trim(),
            "```log",
            "tour-step {name}: the marker must be followed by a ```log block"
        );
        let quoted: Vec<String> = lines
            .by_ref()
            .take_while(|l| l.trim() != "```")
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect();
        assert!(!quoted.is_empty(), "tour-step {name} quotes nothing");
        steps.push((name.trim().to_string(), quoted));
    }
    steps
}

/// Replace what differs from run to run or machine to machine: the
/// timestamp, port numbers, durations, and `--max-conns` after the clamp.
fn normalise(line: &str) -> String {
    let mut line = line.trim().to_string();
    // "[2026-01-01T00:00:00.000000Z TRACE target] ..." -> "[TIME TRACE target] ..."
    if line.starts_with('[') {
        if let Some(space) = line.find(' ') {
            line.replace_range(1..space, "TIME");
        }
    }
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("lifetime=") {
            out.push_str("lifetime=DURATION");
            rest = after.trim_start_matches(|c: char| !c.is_whitespace());
        } else if let Some(after) = rest.strip_prefix("max-conns ") {
            // Clamped below the fd limit, which differs between machines.
            out.push_str("max-conns N");
            rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
        } else if let Some(after) = ["127.0.0.1:", "[::1]:"]
            .iter()
            .find_map(|host| rest.strip_prefix(host).map(|a| (host, a)))
            .filter(|(_, a)| a.starts_with(|c: char| c.is_ascii_digit()))
        {
            out.push_str(after.0);
            out.push_str("PORT");
            rest = after.1.trim_start_matches(|c: char| c.is_ascii_digit());
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The server under the tour, with its stderr read on a thread.
struct TourServer {
    child: Child,
    log: Receiver<String>,
    seen: Vec<String>,
    echo: SocketAddr,
    /// Kept open: the server must never find its stdout closed.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl TourServer {
    /// `sockloop serve` with the same three sockets as the default, on port 0,
    /// so that the tokens are those of the tour (0, 1, 2 for the sockets).
    fn start() -> TourServer {
        let mut child = Command::new(bin())
            .args(["serve", "--echo", "127.0.0.1:0"])
            .args(["--udp-echo", "127.0.0.1:0", "--chat", "127.0.0.1:0"])
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sockloop serve");
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Reading stdout blocks; the listening lines come at once, and if the
        // server dies the pipe closes, so this cannot hang.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut listening = Vec::new();
        for _ in 0..3 {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read listening line");
            listening.push(line);
        }
        let echo = listening[0]
            .strip_prefix("listening tcp-echo ")
            .unwrap_or_else(|| panic!("unexpected first line {:?}", listening[0]))
            .trim()
            .parse()
            .unwrap();
        TourServer {
            child,
            log,
            seen: Vec::new(),
            echo,
            _stdout: stdout,
        }
    }

    /// Read the log until a line equal (normalised) to `quoted` appears.
    fn expect(&mut self, step: &str, quoted: &str) {
        let wanted = normalise(quoted);
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    let line = normalise(&line);
                    self.seen.push(line.clone());
                    if line == wanted {
                        return;
                    }
                }
                Err(e) => panic!(
                    "docs/tour.md, step {step}: the server never logged\n    {wanted}\n\
                     ({e:?}). Lines seen so far, normalised:\n{}\n\
                     If the server's output changed on purpose, update docs/tour.md.",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Send SIGINT to this server's PID.
    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -INT failed");
    }
}

impl Drop for TourServer {
    fn drop(&mut self) {
        if let Ok(path) = std::env::var("TOUR_DUMP") {
            while let Ok(line) = self.log.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(normalise(&line));
            }
            let _ = std::fs::write(path, self.seen.join("\n") + "\n");
        }
        // Only the process this test started, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s
}

#[test]
fn the_tour_replays() {
    let markdown = std::fs::read_to_string(repo_file("docs/tour.md")).expect("read docs/tour.md");
    let steps = tour_steps(&markdown);
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names, STEPS,
        "docs/tour.md must have each tour-step once, in this order"
    );

    let mut server = TourServer::start();
    let mut client: Option<TcpStream> = None;
    for (step, quoted) in &steps {
        match step.as_str() {
            "start" => {}
            "connect" | "connect-again" => client = Some(connect(server.echo)),
            "send" => {
                // What `nc` sends when you type hello and press Enter.
                let c = client.as_mut().unwrap();
                c.write_all(b"hello\n").unwrap();
                let mut echoed = [0u8; 6];
                c.read_exact(&mut echoed).unwrap();
                assert_eq!(&echoed, b"hello\n");
            }
            "close" => {
                // `nc -N` at Ctrl-D: shut down the sending side, read to EOF.
                let mut c = client.take().unwrap();
                c.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                c.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty(), "nothing more than the echo");
            }
            "reset" => {
                // SO_LINGER 0: close sends RST instead of FIN.
                let c = socket2::Socket::from(client.take().unwrap());
                c.set_linger(Some(Duration::ZERO)).unwrap();
                drop(c);
            }
            "stop" => server.interrupt(),
            other => panic!("unknown tour step {other}"),
        }
        for line in quoted {
            server.expect(step, line);
        }
    }
    let status = common::wait_exit(&mut server.child);
    assert_eq!(status.code(), Some(0), "the server exits 0 after SIGINT");
}

/// Where a doc links to a source file: (doc, name, file).
fn code_links(doc: &Path) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(doc).unwrap();
    let mut links = Vec::new();
    let mut rest = text.as_str();
    // [`name`](path.rs) -- the name in backticks, the target a .rs file.
    while let Some(start) = rest.find("[`") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("`](") else {
            continue;
        };
        let name = &rest[..end];
        let after = &rest[end + 3..];
        let Some(close) = after.find(')') else {
            continue;
        };
        let target = &after[..close];
        if target.ends_with(".rs") && !target.contains("://") {
            let file = doc.parent().unwrap().join(target);
            links.push((name.to_string(), file));
        }
    }
    links
}

/// Whether `file` is the module `name` itself (`chat` for src/client/chat.rs
/// or src/protocol/chat/mod.rs).
fn is_module_file(file: &Path, name: &str) -> bool {
    let last = name.rsplit("::").next().unwrap();
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let module = if stem == "mod" {
        file.parent()
            .and_then(|d| d.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or("")
    } else {
        stem
    };
    module == last
}

/// Whether `source` defines `name` (the last `::` segment of it): a
/// function, type, trait, constant, module, field or enum variant.
fn defines(source: &str, name: &str) -> bool {
    let name = name.trim_end_matches("()");
    let last = name.rsplit("::").next().unwrap();
    let last = last.split('(').next().unwrap().trim();
    if last.is_empty() || !last.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return true; // not an identifier (a snippet of code): nothing to check
    }
    let words = [
        "fn ", "struct ", "enum ", "trait ", "const ", "type ", "mod ", "static ",
    ];
    source.lines().any(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("pub ").unwrap_or(line);
        let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
        let line = line.strip_prefix("pub(super) ").unwrap_or(line);
        words.iter().any(|w| {
            line.strip_prefix(w).is_some_and(|r| {
                r.starts_with(last)
                    && !r[last.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
            })
        }) || (line.starts_with(last) && line[last.len()..].starts_with(['(', ',', ' ', ':', '{']))
    })
}

/// Relative links: (file, anchor) for a heading of a Markdown file (file
/// empty for a heading of the same file), (path, "") for any other file or
/// directory.
fn anchor_links(doc: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(doc).unwrap();
    let mut links = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let Some(close) = rest.find(')') else {
            break;
        };
        let target = &rest[..close];
        if target.contains("://") || target.contains(' ') {
            continue;
        }
        match target.split_once('#') {
            Some((file, anchor)) if file.is_empty() || file.ends_with(".md") => {
                links.push((file.to_string(), anchor.to_string()));
            }
            Some(_) => {}
            // A plain relative link: the file (or directory) must exist.
            None => links.push((target.to_string(), String::new())),
        }
    }
    links
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// turned into hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn docs_cite_only_code_that_exists() {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_file("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(repo_file("README.md"));
    let mut checked = 0;
    let mut broken = Vec::new();
    for doc in &docs {
        for (name, file) in code_links(doc) {
            checked += 1;
            match std::fs::read_to_string(&file) {
                Ok(_) if is_module_file(&file, &name) => {}
                Ok(source) if defines(&source, &name) => {}
                Ok(_) => broken.push(format!(
                    "{}: `{name}` is not defined in {}",
                    doc.display(),
                    file.display()
                )),
                Err(e) => broken.push(format!("{}: {}: {e}", doc.display(), file.display())),
            }
        }
    }
    for doc in &docs {
        for (target, anchor) in anchor_links(doc) {
            checked += 1;
            let file = if target.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(&target)
            };
            if anchor.is_empty() {
                if !file.exists() {
                    broken.push(format!("{}: no such file {target}", doc.display()));
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                broken.push(format!("{}: no such file {target}", doc.display()));
                continue;
            };
            let slugs: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix('#'))
                .map(|h| slug(h.trim_start_matches('#')))
                .collect();
            if !slugs.contains(&anchor) {
                broken.push(format!(
                    "{}: no heading for #{anchor} in {}",
                    doc.display(),
                    file.display()
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        checked > 100,
        "only {checked} code links found: is the parser broken?"
    );
}

#[test]
fn normalising_keeps_what_matters() {
    assert_eq!(
        normalise("[2026-11-24T21:43:16.483997Z DEBUG sockloop::reactor] close tcp-echo 127.0.0.1:44326 token=3 in=6 out=6 lifetime=407.3ms reason=done"),
        "[TIME DEBUG sockloop::reactor] close tcp-echo 127.0.0.1:PORT token=3 in=6 out=6 lifetime=DURATION reason=done"
    );
    assert_ne!(
        normalise("[t TRACE x] event token=3"),
        normalise("[t TRACE x] event token=4")
    );
    let (name, _) = &tour_steps("<!-- tour-step: send -->\n\n```log\na\n```\n")[0];
    assert_eq!(name, "send");
    assert!(defines("pub fn conn_read(", "Server::conn_read"));
    assert!(!defines("fn conn_reader(", "conn_read"));
    assert!(defines(
        "    Draining { deadline: Instant },",
        "Phase::Draining"
    ));
    assert!(is_module_file(
        Path::new("src/protocol/chat/mod.rs"),
        "chat"
    ));
    assert!(is_module_file(
        Path::new("src/client/send.rs"),
        "client::send"
    ));
    assert_eq!(
        slug("Half-close: end of input is not the end"),
        "half-close-end-of-input-is-not-the-end"
    );
    assert_eq!(slug("One peer's error"), "one-peers-error");
}

/// What a Graphviz SVG shows, without its geometry: the text of every
/// `<title>` (one per graph, node and edge: `a->b`) and `<text>` element
/// (every label line), in order. Positions depend on the fonts installed,
/// so two machines draw the same source with different coordinates; the
/// words do not change.
fn svg_words(svg: &str) -> Vec<String> {
    let mut words = Vec::new();
    for tag in ["<title>", "<text "] {
        let mut rest = svg;
        while let Some(start) = rest.find(tag) {
            rest = &rest[start..];
            let open_end = rest.find('>').unwrap() + 1;
            let close = rest.find("</").unwrap();
            words.push(format!("{tag}{}", &rest[open_end..close]));
            rest = &rest[close..];
        }
    }
    words
}

/// docs/diagrams/NAME.dot is the source of docs/diagrams/NAME.svg
/// (scripts/diagrams.sh draws them with Graphviz's `dot`). Each SVG must
/// exist, be linked from a doc, name only code that is still in src/ (every
/// label word with an underscore), and show exactly what its source says now:
/// this test draws each source again and compares the words of the two
/// pictures (every node, edge and label). Without `dot` it says SKIPPED
/// loudly, unless `SOCKLOOP_REQUIRE_DOT` is set (CI sets it, and installs
/// graphviz), in which case it fails.
#[test]
fn diagrams_are_drawn_from_their_source() {
    let dir = repo_file("docs/diagrams");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read docs/diagrams")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dot"))
        .collect();
    sources.sort();
    assert!(
        sources.len() >= 5,
        "docs/diagrams has too few sources: {sources:?}"
    );
    let docs: String = [
        "docs/architecture.md",
        "docs/build-your-own.md",
        "README.md",
    ]
    .iter()
    .map(|d| std::fs::read_to_string(repo_file(d)).unwrap())
    .collect();
    for source in &sources {
        let svg = source.with_extension("svg");
        assert!(
            svg.exists(),
            "{} has no drawing: run scripts/diagrams.sh and commit {}",
            source.display(),
            svg.display()
        );
        let name = svg.file_name().unwrap().to_str().unwrap();
        assert!(
            docs.contains(&format!("diagrams/{name}")),
            "docs/diagrams/{name} is drawn but no doc shows it"
        );
    }
    // The pictures name code (`conn_read`, `READ_BUDGET_PER_TURN`): every
    // name with an underscore in a label must still be in src/.
    let code: String = source_files().into_iter().map(|(_, text)| text).collect();
    let mut unknown = Vec::new();
    for source in &sources {
        let dot = std::fs::read_to_string(source).unwrap();
        let labels = dot
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| l.split("label=\"").skip(1))
            .map(|l| l.split('"').next().unwrap_or("").replace("\\n", " "));
        for label in labels {
            for word in label.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                let word = word.trim_matches('_');
                if word.contains('_') && word.len() > 3 && !code.contains(word) {
                    unknown.push(format!("{}: {word}", rel(source)));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "the pictures name code that is not in src/ any more:\n{}",
        unknown.join("\n")
    );
    let drawn = Command::new("dot").arg("-V").output();
    if !drawn.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("SOCKLOOP_REQUIRE_DOT").is_none(),
            "SOCKLOOP_REQUIRE_DOT is set but Graphviz's dot does not run"
        );
        // Straight to stderr, past the test harness's capture, so that the
        // skip shows even though the test passes.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED diagrams_are_drawn_from_their_source: Graphviz's `dot` is not installed \
             (apt-get install graphviz), so the committed SVGs were NOT checked against their sources"
        );
        return;
    }
    let mut stale = Vec::new();
    for source in &sources {
        let fresh = Command::new("dot")
            .arg("-Tsvg")
            .arg(source)
            .output()
            .expect("run dot");
        assert!(
            fresh.status.success(),
            "dot failed on {}: {}",
            source.display(),
            String::from_utf8_lossy(&fresh.stderr)
        );
        let fresh = String::from_utf8(fresh.stdout).unwrap();
        let committed = std::fs::read_to_string(source.with_extension("svg")).unwrap();
        if svg_words(&fresh) != svg_words(&committed) {
            stale.push(source.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "these drawings are older than their sources; run scripts/diagrams.sh and commit:\n{}",
        stale.join("\n")
    );
}

/// A path as the repository names it, for messages.
fn rel(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut parts: Vec<String> = Vec::new();
    for part in path.strip_prefix(root).unwrap_or(path).components() {
        match part {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    parts.join("/")
}

/// Every `.rs` file under `src/`, with its text.
fn source_files() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_file("src"), &mut files);
    files
}

/// Whether `source` has a test function `name`: `fn name` preceded by a
/// `#[test]` attribute (plain or inside `proptest!`), and not `#[ignore]`d.
/// A proof that is no longer a test, or is switched off, proves nothing.
fn has_test(source: &str, name: &str) -> Result<(), String> {
    let lines: Vec<&str> = source.lines().collect();
    let Some(at) = lines.iter().position(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("pub ").unwrap_or(l);
        l.strip_prefix("fn ").is_some_and(|r| {
            r.strip_prefix(name)
                .is_some_and(|r| r.starts_with('(') || r.starts_with('<'))
        })
    }) else {
        return Err("no such function".into());
    };
    let attributes: Vec<&str> = lines[..at]
        .iter()
        .rev()
        .map(|l| l.trim())
        .take_while(|l| l.starts_with("#[") || l.starts_with("//") || l.ends_with(")]"))
        .collect();
    if attributes.iter().any(|a| a.starts_with("#[ignore")) {
        return Err("the test is #[ignore]d".into());
    }
    if !attributes.contains(&"#[test]") {
        return Err("a function, but not a #[test]".into());
    }
    Ok(())
}

/// A test a doc names as the proof of a claim.
#[derive(Debug)]
enum Proof {
    /// A test function in a file (`tests/x.rs::name`, or a link).
    Test(PathBuf, String),
    /// Every test in a file, or a module's tests (`tests/x.rs`,
    /// `protocol::line` tests); `proptest` asks for property tests.
    File(PathBuf, bool),
    /// A step of the tour replay (`the close step of tests/docs/tour.rs`).
    TourStep(String),
}

/// The proofs named in one passage of pitfalls.md or limits.md: links
/// [`name`](path.rs), backticked `tests/x.rs::name`, `tests/x.rs` and
/// `module::path` (followed by "tests" or "proptest"), and tour steps.
fn proofs_in(passage: &str, doc_dir: &Path) -> Vec<Proof> {
    let mut proofs = Vec::new();
    let mut rest = passage;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let code = &after[..end];
        let tail = &after[end + 1..];
        rest = tail;
        if let Some(link) = tail.strip_prefix("](") {
            let target = &link[..link.find(')').unwrap_or(0)];
            if target.ends_with(".rs") {
                proofs.push(Proof::Test(doc_dir.join(target), code.to_string()));
            }
        } else if let Some((module, name)) = code.split_once("::tests::") {
            // `reactor::timers::tests::name`: a unit test in src/, in an
            // inline `mod tests` or in a tests.rs of its own.
            let own_file = module_file(&format!("{module}::tests"));
            let file = if own_file.exists() {
                own_file
            } else {
                module_file(module)
            };
            proofs.push(Proof::Test(file, name.into()));
        } else if let Some((file, name)) = code.split_once(".rs::") {
            proofs.push(Proof::Test(repo_file(&format!("{file}.rs")), name.into()));
        } else if code.ends_with(".rs") {
            proofs.push(Proof::File(repo_file(code), false));
        } else if tail.trim_start().starts_with("step of") {
            proofs.push(Proof::TourStep(code.to_string()));
        } else if code.contains("::")
            && code
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            let word = tail.split_whitespace().next().unwrap_or("");
            if word.starts_with("proptest") || word.starts_with("test") {
                proofs.push(Proof::File(module_file(code), word.starts_with("proptest")));
            }
        }
    }
    proofs
}

/// The file of a module path of the crate (`protocol::line` is
/// src/protocol/line.rs or src/protocol/line/mod.rs).
fn module_file(module: &str) -> PathBuf {
    let path = module.replace("::", "/");
    let file = repo_file(&format!("src/{path}.rs"));
    if file.exists() {
        file
    } else {
        repo_file(&format!("src/{path}/mod.rs"))
    }
}

/// Check one proof; `Err` says what is wrong with it.
fn check_proof(proof: &Proof) -> Result<(), String> {
    match proof {
        Proof::Test(file, name) => {
            let source =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            has_test(&source, name).map_err(|e| format!("`{name}` in {}: {e}", file.display()))
        }
        Proof::File(file, proptest) => {
            let source =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let wanted = if *proptest { "proptest!" } else { "#[test]" };
            if source.contains(wanted) {
                Ok(())
            } else {
                Err(format!("{} has no {wanted}", rel(file)))
            }
        }
        Proof::TourStep(step) => {
            if STEPS.contains(&step.as_str()) {
                Ok(())
            } else {
                Err(format!("tests/docs/tour.rs has no step `{step}`"))
            }
        }
    }
}

/// The claims of docs/pitfalls.md and docs/limits.md with the proofs each
/// names: (where, proofs). A claim that names no proof is returned with an
/// empty list.
fn claims() -> Vec<(String, Vec<Proof>)> {
    let docs = repo_file("docs");
    let mut claims = Vec::new();
    // pitfalls.md: every `## ` section is one trap, and its
    // "**Proved by.**" paragraph names the tests.
    let pitfalls = std::fs::read_to_string(docs.join("pitfalls.md")).unwrap();
    for section in pitfalls.split("\n## ").skip(1) {
        let title = section.lines().next().unwrap_or("").trim().to_string();
        let proved = section
            .split("\n\n")
            .find(|p| p.trim_start().starts_with("**Proved by"))
            .unwrap_or("");
        claims.push((format!("pitfalls.md, {title}"), proofs_in(proved, &docs)));
    }
    // limits.md: the last column of every table whose header says
    // "proved by", and every line that starts with "Proved by".
    let limits = std::fs::read_to_string(docs.join("limits.md")).unwrap();
    let mut column = None;
    for line in limits.lines() {
        if !line.starts_with('|') {
            column = None;
            if line.starts_with("Proved by") {
                claims.push((format!("limits.md: {line}"), proofs_in(line, &docs)));
            }
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if let Some(i) = cells
            .iter()
            .position(|c| c.eq_ignore_ascii_case("proved by"))
        {
            column = Some(i);
        } else if let Some(i) = column.filter(|_| !line.starts_with("|---")) {
            let cell = cells.get(i).copied().unwrap_or("");
            claims.push((format!("limits.md, {}", cells[0]), proofs_in(cell, &docs)));
        }
    }
    claims
}

#[test]
fn every_claim_names_a_proof_that_is_a_test() {
    let claims = claims();
    let mut wrong = Vec::new();
    let mut proofs = 0;
    for (claim, named) in &claims {
        if named.is_empty() {
            wrong.push(format!("{claim}: names no test that proves it"));
        }
        for proof in named {
            proofs += 1;
            if let Err(e) = check_proof(proof) {
                wrong.push(format!("{claim}: {e}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "claims whose proof is missing:\n{}",
        wrong.join("\n")
    );
    // The teaching pages make the same kind of claim: every test they link
    // (a link into tests/, or any link in an exercise's "**Caught by**")
    // must be a test.
    for page in ["build-your-own.md", "exercises.md"] {
        let doc = repo_file("docs").join(page);
        let text = std::fs::read_to_string(&doc).unwrap();
        let caught_by: Vec<&str> = text
            .split("\n\n")
            .filter(|p| p.starts_with("**Caught by**"))
            .collect();
        let mut named = code_links(&doc)
            .into_iter()
            .filter(|(_, file)| rel(file).starts_with("tests/"))
            .map(|(name, file)| Proof::Test(file, name))
            .collect::<Vec<_>>();
        for paragraph in caught_by {
            named.extend(proofs_in(paragraph, doc.parent().unwrap()));
        }
        assert!(named.len() >= 5, "{page}: too few tests found");
        for proof in &named {
            if let Err(e) = check_proof(proof) {
                wrong.push(format!("{page}: {e}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "tests named by the teaching pages:\n{}",
        wrong.join("\n")
    );
    // The parser's own sanity: both pages, and many proofs.
    assert!(claims.iter().any(|(c, _)| c.starts_with("pitfalls.md")));
    assert!(claims.iter().any(|(c, _)| c.starts_with("limits.md")));
    assert!(
        proofs > 40,
        "only {proofs} proofs found: is the parser broken?"
    );
}

/// Whether `name` (`Type::method`, `Enum::Variant`, `function`, `Type`) is
/// defined in `source`: for `Owner::item`, the file must also declare the
/// enum `Owner` or hold an `impl` of `Owner` (or of a trait for it), so that
/// a method moved to another type or file no longer counts.
fn defines_in(source: &str, name: &str) -> bool {
    match name.rsplit_once("::") {
        Some((owner, _)) => {
            let owner = owner.rsplit("::").next().unwrap();
            let has_owner = source.lines().any(|l| {
                let l = l.trim_start();
                let words = || l.split(|c: char| !(c.is_alphanumeric() || c == '_'));
                (l.starts_with("impl") && words().any(|w| w == owner))
                    || (words().any(|w| w == "enum") && words().any(|w| w == owner))
            });
            has_owner && defines(source, name)
        }
        None => defines(source, name),
    }
}

/// The code a claim says does the work: the "where" column of limits.md's
/// tables, and "`name` (in [file](...))" anywhere in pitfalls.md and
/// limits.md. Each must be defined (in that file, when one is named).
#[test]
fn the_code_a_claim_names_is_where_it_says() {
    let sources = source_files();
    let docs = repo_file("docs");
    let mut wrong = Vec::new();
    let mut checked = 0;
    let limits = std::fs::read_to_string(docs.join("limits.md")).unwrap();
    let mut column = None;
    for line in limits.lines() {
        if !line.starts_with('|') {
            column = None;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if let Some(i) = cells.iter().position(|c| *c == "where") {
            column = Some(i);
            continue;
        }
        let Some(cell) = column.and_then(|i| cells.get(i)) else {
            continue;
        };
        for name in cell.split('`').skip(1).step_by(2) {
            let name = name.split(" = ").next().unwrap().trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == ':')
            {
                continue;
            }
            checked += 1;
            if !sources.iter().any(|(_, text)| defines_in(text, name)) {
                wrong.push(format!(
                    "limits.md, {}: `{name}` is defined nowhere in src/",
                    cells[0]
                ));
            }
        }
    }
    for doc in ["pitfalls.md", "limits.md"] {
        // One line, so that "(in" and its link may be wrapped apart.
        let text = std::fs::read_to_string(docs.join(doc)).unwrap();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for (i, _) in text.match_indices("` (in [") {
            let name = text[..i].rsplit('`').next().unwrap();
            let link = &text[i + "` (in [".len()..];
            let Some(target) = link
                .split_once("](")
                .and_then(|(_, t)| t.split_once(')'))
                .map(|(t, _)| t)
            else {
                continue;
            };
            checked += 1;
            let file = docs.join(target);
            let source = std::fs::read_to_string(&file).unwrap_or_default();
            if !defines_in(&source, name) {
                wrong.push(format!("{doc}: `{name}` is not in {}", rel(&file)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "claims about where code is:\n{}",
        wrong.join("\n")
    );
    assert!(
        checked > 15,
        "only {checked} names checked: is the parser broken?"
    );
}

/// A quantity as the docs write it ("256 KiB", "65 507 bytes", "250 ms",
/// "64"), in bytes, milliseconds or a plain count.
fn doc_quantity(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace().peekable();
    let mut digits = String::new();
    let mut ended = false; // punctuation right after the number: no unit
    while let Some(w) = words.peek() {
        let lead: String = w.chars().take_while(|c| c.is_ascii_digit()).collect();
        if lead.is_empty() || !(digits.is_empty() || lead.len() == 3) {
            break;
        }
        digits.push_str(&lead);
        ended = lead.len() < w.len();
        words.next();
        if ended {
            break;
        }
    }
    let n: u64 = digits.parse().ok()?;
    let unit = if ended {
        ""
    } else {
        words.next().unwrap_or("")
    };
    let unit = unit.trim_end_matches(|c: char| !c.is_alphanumeric());
    Some(match unit {
        "KiB" => n * 1024,
        "MiB" => n * 1024 * 1024,
        "s" => n * 1000,
        _ => n, // bytes, ms, datagrams, or no unit
    })
}

/// The value of `const NAME: T = EXPR;` in `source`, for the forms the
/// constants use: `a * b * ...`, `1_048_576`, `Duration::from_millis(n)`
/// and `Duration::from_secs(n)` (in milliseconds).
fn const_value(source: &str, name: &str) -> Option<u64> {
    let line = source.lines().find(|l| {
        let l = l
            .trim_start()
            .strip_prefix("pub ")
            .unwrap_or(l.trim_start());
        l.strip_prefix("const ")
            .and_then(|r| r.strip_prefix(name))
            .is_some_and(|r| r.starts_with(':'))
    })?;
    let expr = line
        .split_once('=')?
        .1
        .trim()
        .trim_end_matches(';')
        .replace('_', "");
    if let Some(ms) = expr.strip_prefix("Duration::frommillis(") {
        return ms.trim_end_matches(')').parse().ok();
    }
    if let Some(s) = expr.strip_prefix("Duration::fromsecs(") {
        return s
            .trim_end_matches(')')
            .parse::<u64>()
            .ok()
            .map(|s| s * 1000);
    }
    expr.split('*')
        .map(|f| f.trim().parse::<u64>().ok())
        .product()
}

/// Where a doc gives a named constant's value beside its name ("256 KiB
/// (`READ_BUDGET_PER_TURN`)", "[`ACCEPT_BACKOFF`](../src/config.rs)
/// (250 ms)", "`READ_BUF_SIZE` = 64 KiB"), the value must be the code's.
#[test]
fn the_numbers_the_docs_give_are_the_codes() {
    let config = std::fs::read_to_string(repo_file("src/config.rs")).unwrap();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_file("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.push(repo_file("README.md"));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find('`') {
            let before = &text[..text.len() - rest.len() + start];
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            let name = &after[..end];
            rest = &after[end + 1..];
            if name.len() < 4
                || !name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
            {
                continue;
            }
            // Which file defines it: the link's, else src/config.rs.
            let (source, tail) = match rest.strip_prefix("](") {
                Some(link) => {
                    let (target, tail) = link.split_once(')').unwrap_or((link, ""));
                    let file = doc.parent().unwrap().join(target);
                    (std::fs::read_to_string(file).unwrap_or_default(), tail)
                }
                None => (config.clone(), rest),
            };
            let Some(actual) = const_value(&source, name) else {
                continue;
            };
            // "VALUE (`NAME`)": the value just before, closed right after.
            let stated_before = before
                .strip_suffix('(')
                .filter(|_| tail.starts_with(')'))
                .and_then(|b| {
                    let words: Vec<&str> = b.split_whitespace().collect();
                    (1..=3).rev().filter(|k| *k <= words.len()).find_map(|k| {
                        doc_quantity(&words[words.len() - k..].join(" "))
                            .filter(|_| words[words.len() - k].chars().all(|c| c.is_ascii_digit()))
                    })
                });
            // "`NAME` = VALUE" or "`NAME`](...) (VALUE)".
            let stated_after = tail
                .strip_prefix(" = ")
                .or_else(|| tail.strip_prefix(" ("))
                .and_then(doc_quantity);
            if let Some(stated) = stated_before.or(stated_after) {
                checked += 1;
                if stated != actual {
                    wrong.push(format!(
                        "{}: `{name}` is given as {stated}, the code says {actual}",
                        rel(doc)
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "numbers that drifted from the code:\n{}",
        wrong.join("\n")
    );
    assert!(
        checked >= 5,
        "only {checked} values checked: is the parser broken?"
    );
}

/// docs/exercises.md and scripts/break-it.sh describe the same breaks: each
/// break the script defines has a section in the page (`## NAME: ...`) that
/// names the test the script runs, and each section has a break.
#[test]
fn every_break_it_exercise_is_documented_with_its_test() {
    let script = std::fs::read_to_string(repo_file("scripts/break-it.sh")).unwrap();
    let page = std::fs::read_to_string(repo_file("docs/exercises.md")).unwrap();
    // `define NAME FILE FAST \` then `    "cargo test ARGS" \`.
    let mut breaks = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("define ") else {
            continue;
        };
        let name = rest.split_whitespace().next().unwrap().to_string();
        let args = lines
            .next()
            .unwrap_or("")
            .trim()
            .trim_end_matches('\\')
            .trim();
        let words: Vec<&str> = args.trim_matches('"').split_whitespace().collect();
        // `--test LEVEL MODULE::NAME` names the test's file too:
        // tests/LEVEL/MODULE.rs, which the page must link; `--lib NAME`
        // only the name.
        let test = words.last().copied().unwrap_or("");
        let cited = match (words.as_slice(), test.rsplit_once("::")) {
            (["--test", level, ..], Some((module, name))) => {
                format!("[`{name}`](../tests/{level}/{module}.rs)")
            }
            _ => format!("[`{test}`]"),
        };
        breaks.push((name, cited));
    }
    assert!(
        breaks.len() >= 3,
        "no breaks found in scripts/break-it.sh: {breaks:?}"
    );
    let sections: Vec<&str> = page.split("\n## ").skip(1).collect();
    for (name, cited) in &breaks {
        let section = sections
            .iter()
            .find(|s| s.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("docs/exercises.md has no section `## {name}: ...`"));
        assert!(
            section.contains(cited.as_str()),
            "docs/exercises.md, {name}: does not name {cited}, the test the script runs"
        );
    }
    assert_eq!(
        sections.len(),
        breaks.len(),
        "docs/exercises.md has a section for a break the script does not run"
    );
}

/// tests/ is laid out by level (docs/architecture.md, "Tests by level"):
/// one binary per folder, `tests/LEVEL/main.rs`, and no flat `tests/*.rs`
/// binary beside them. Every other `.rs` file of a level's folder must be a
/// `mod` of its main.rs, so a test file the docs cite is one `cargo test`
/// compiles and runs, not a file that only looks like one.
#[test]
fn every_test_file_is_part_of_its_level_binary() {
    let tests = repo_file("tests");
    let mut levels = 0;
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            wrong.push(format!("{}: a test binary outside the levels", rel(&path)));
        }
        let Ok(main) = std::fs::read_to_string(path.join("main.rs")) else {
            continue;
        };
        levels += 1;
        for file in std::fs::read_dir(&path).unwrap() {
            let file = file.unwrap().path();
            let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
            if file.extension().is_some_and(|e| e == "rs")
                && stem != "main"
                && !main.lines().any(|l| l.trim() == format!("mod {stem};"))
            {
                wrong.push(format!("{}: not a `mod` of its main.rs", rel(&file)));
            }
        }
    }
    assert!(wrong.is_empty(), "test files:\n{}", wrong.join("\n"));
    assert!(levels >= 4, "only {levels} test folders with a main.rs");
}

#[test]
fn the_claim_parsers_read_what_the_docs_write() {
    assert_eq!(doc_quantity("1024), where std"), Some(1024));
    assert_eq!(doc_quantity("65 507 bytes (IPv4 maximum)"), Some(65_507));
    assert_eq!(doc_quantity("250 ms) from now"), Some(250));
    assert_eq!(doc_quantity("4 MiB"), Some(4 << 20));
    assert_eq!(doc_quantity("5 s"), Some(5000));
    assert_eq!(doc_quantity("the limit"), None);
    assert_eq!(
        const_value("pub const X: usize = 256 * 1024;", "X"),
        Some(256 * 1024)
    );
    assert_eq!(
        const_value("pub const B: Duration = Duration::from_millis(250);", "B"),
        Some(250)
    );
    assert!(has_test("#[test]\nfn t() {}", "t").is_ok());
    assert!(has_test("#[test]\n#[ignore]\nfn t() {}", "t").is_err());
    assert!(has_test("fn t() {}", "t").is_err());
    assert!(defines_in(
        "enum WriteStop {\n    Budget,\n}",
        "WriteStop::Budget"
    ));
    assert!(defines_in(
        "impl Outbox for ConnOutbox {\n    fn send(",
        "ConnOutbox::send"
    ));
    assert!(!defines_in(
        "impl Other {\n    fn send(",
        "ConnOutbox::send"
    ));
}
