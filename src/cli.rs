//! The command line: every subcommand, option and default, parsed by clap,
//! and turned into the plain option structs the rest of the crate takes
//! ([`ServeConfig`], [`SendOptions`], [`ChatOptions`], [`TalkOptions`],
//! [`BenchOptions`]). This module and `main.rs` are the only code that knows
//! clap: the server, the clients and the bench can be embedded without it.
//!
//! clap prints usage on stderr and exits with status 2 on a bad argument,
//! which is exactly the contract. Every ADDR goes through
//! [`config::check_addr`] as clap parses it, so an address that is not
//! `HOST:PORT` is a bad argument like any other; only resolving a
//! well-formed name can fail later, at run time.
//!
//! Parsing lives in the library (not in `main.rs`) so that tests can check
//! the defaults without starting a process.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::bench::{BenchOptions, Stop, Target};
use crate::client::chat::ChatOptions;
use crate::client::send::SendOptions;
use crate::client::talk::{TalkOptions, TalkSide};
use crate::config::redis_url::RedisUrl;
use crate::config::{self, ListenerSpec, ServeConfig, Service};

/// sockloop: one thread, one mio poll loop, TCP echo, UDP echo and chat.
#[derive(Debug, Parser)]
#[command(
    name = "sockloop",
    version,
    about,
    propagate_version = true,
    after_help = "Every ADDR is HOST:PORT, for example 127.0.0.1:12345 or [::1]:12345."
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The multiplexed server: TCP echo, UDP echo and chat on one thread.
    Serve(ServeArgs),
    /// One-shot client over TCP or UDP (the tutorial's tcp_client / udp_client).
    Send(SendArgs),
    /// Chat client for the chat service, interactive or scripted through a pipe.
    Chat(ChatArgs),
    /// One-to-one chat between two terminals, no server.
    Talk(TalkArgs),
    /// Load generator for the three services, with latency percentiles.
    Bench(BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print a man page (roff) for sockloop or one of its commands.
    Man(ManArgs),
}

/// Options of `sockloop serve`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
With none of --echo, --udp-echo, --chat, --daytime given, serves the tutorial's three sockets:
  --echo 127.0.0.1:12345 --udp-echo 127.0.0.1:12345 --chat 127.0.0.1:12346
With any of them given, serves exactly those and nothing else: `serve --echo
127.0.0.1:7` serves TCP echo only. One `listening SERVICE ADDR` line per socket
goes to stdout once all are bound; logs go to stderr (RUST_LOG, default info).
Every ADDR is HOST:PORT, for example 127.0.0.1:12345 or [::1]:12345; port 0
picks a free port and the real one is printed.")]
pub struct ServeArgs {
    /// TCP echo listener, HOST:PORT (repeatable) [default: 127.0.0.1:12345 when no service is given]
    #[arg(long = "echo", value_name = "ADDR", value_parser = parse_addr)]
    pub echo: Vec<String>,
    /// UDP echo socket, HOST:PORT (repeatable) [default: 127.0.0.1:12345 when no service is given]
    #[arg(long = "udp-echo", value_name = "ADDR", value_parser = parse_addr)]
    pub udp_echo: Vec<String>,
    /// Chat listener, HOST:PORT (repeatable) [default: 127.0.0.1:12346 when no service is given]
    #[arg(long = "chat", value_name = "ADDR", value_parser = parse_addr)]
    pub chat: Vec<String>,
    /// Daytime listener (RFC 867: the time in UTC as one line, then close), HOST:PORT (repeatable)
    #[arg(long = "daytime", value_name = "ADDR", value_parser = parse_addr)]
    pub daytime: Vec<String>,
    /// TCP connections open at once, all listeners together.
    #[arg(long, value_name = "N", default_value_t = config::DEFAULT_MAX_CONNS,
          value_parser = clap::value_parser!(usize))]
    pub max_conns: usize,
    /// Longest chat line, without its line ending.
    #[arg(long, value_name = "BYTES", default_value_t = config::DEFAULT_MAX_LINE,
          value_parser = parse_positive)]
    pub max_line: usize,
    /// Pending output allowed per TCP connection.
    #[arg(long, value_name = "BYTES", default_value_t = config::DEFAULT_OUT_LIMIT,
          value_parser = parse_positive)]
    pub out_limit: usize,
    /// Pending output allowed for all connections together: past it, echo
    /// input is paused and the chat clients with the most pending output are
    /// disconnected as too slow.
    #[arg(long, value_name = "BYTES", default_value_t = config::DEFAULT_MAX_PENDING,
          value_parser = parse_positive)]
    pub max_pending: usize,
    /// Close a TCP connection that has sent nothing for SECS (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = parse_secs)]
    pub idle_timeout: f64,
    /// How long shutdown may spend flushing pending output.
    #[arg(long, value_name = "SECS", default_value_t = config::DEFAULT_SHUTDOWN_GRACE_SECS,
          value_parser = parse_secs)]
    pub shutdown_grace: f64,
    /// Log the server's counters at info every SECS (0: never), and once at shutdown.
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = parse_secs)]
    pub stats_interval: f64,
    /// Write the loop's activity as Chrome trace event JSON (opens in Perfetto).
    #[arg(long, value_name = "FILE")]
    pub trace_events: Option<std::path::PathBuf>,
    /// Join this server's chat to every other sockloop server using the same
    /// Redis: redis://HOST:PORT, or redis://:PASSWORD@HOST:PORT (needs a chat listener).
    #[arg(long, value_name = "URL", value_parser = parse_redis_url)]
    pub cluster: Option<RedisUrl>,
    /// `--echo`, `--udp-echo`, `--chat` and `--daytime` merged in the order they were
    /// given (filled by [`parse_from`]; clap keeps each option's own order
    /// but not the order between options).
    #[arg(skip)]
    pub listeners_in_order: Vec<ListenerSpec>,
}

impl ServeArgs {
    /// The server's configuration: with none of `--echo`, `--udp-echo`,
    /// `--chat` given, the tutorial's three default sockets; otherwise
    /// exactly the sockets given, in the order given.
    pub fn to_config(&self) -> ServeConfig {
        let listeners = if self.listeners_in_order.is_empty() {
            [
                (Service::TcpEcho, config::DEFAULT_ECHO_ADDR),
                (Service::UdpEcho, config::DEFAULT_UDP_ECHO_ADDR),
                (Service::Chat, config::DEFAULT_CHAT_ADDR),
            ]
            .into_iter()
            .map(|(service, addr)| ListenerSpec {
                service,
                addr: addr.to_string(),
            })
            .collect()
        } else {
            self.listeners_in_order.clone()
        };
        ServeConfig {
            listeners,
            max_conns: self.max_conns,
            max_line: self.max_line,
            out_limit: self.out_limit,
            max_pending: self.max_pending,
            idle_timeout: off_if_zero(self.idle_timeout),
            shutdown_grace: secs(self.shutdown_grace),
            stats_interval: off_if_zero(self.stats_interval),
            trace_events: self.trace_events.clone(),
            cluster: self.cluster.clone(),
        }
    }
}

/// Options of `sockloop send`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Prints `Received from server: REPLY`. Over TCP it shuts down its sending side
after the message and reads until the server closes; over UDP it waits for one
datagram. No reply in time, a refused connection or any other failure: one line
on stderr and exit status 1. The address goes after --to (a first word that is
an address would be ambiguous with the message); `send 127.0.0.1 12345 hi`
sends the text \"127.0.0.1 12345 hi\" and warns that it looks like nc's form.")]
pub struct SendArgs {
    /// Use UDP instead of TCP.
    #[arg(short = 'u', long)]
    pub udp: bool,
    /// Where to send, HOST:PORT.
    #[arg(long, value_name = "ADDR", default_value = config::DEFAULT_ECHO_ADDR,
          value_parser = parse_addr)]
    pub to: String,
    /// Seconds the whole exchange may take, connect included (0: wait forever).
    #[arg(short = 't', long, value_name = "SECS",
          default_value_t = config::DEFAULT_SEND_TIMEOUT_SECS, value_parser = parse_secs)]
    pub timeout: f64,
    /// The message; several words are joined with spaces.
    #[arg(required = true, value_name = "MESSAGE")]
    pub message: Vec<String>,
}

impl SendArgs {
    /// The client's options.
    pub fn to_options(&self) -> SendOptions {
        SendOptions {
            udp: self.udp,
            to: self.to.clone(),
            timeout: off_if_zero(self.timeout),
            message: self.message.join(" "),
        }
    }

    /// A warning when the message starts with nc's `HOST PORT`, which a
    /// user of nc may have meant as the address.
    pub fn host_port_warning(&self) -> Option<String> {
        let [host, port, ..] = self.message.as_slice() else {
            return None;
        };
        let port_like = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok();
        let host_like = host == "localhost"
            || host.parse::<std::net::IpAddr>().is_ok()
            || (host.contains('.')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')));
        (host_like && port_like).then(|| {
            let addr = match host.parse::<std::net::Ipv6Addr>() {
                Ok(_) => format!("[{host}]:{port}"),
                Err(_) => format!("{host}:{port}"),
            };
            format!(
                "warning: the message starts with \"{host} {port}\" and is sent as text to {}; \
                 to send to {addr}, use --to {addr}",
                self.to
            )
        })
    }
}

/// Options of `sockloop chat`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Sends each line you type (or read from stdin) and prints each line received.
In a terminal, received lines scroll above a prompt you can edit, with history
(Up/Down); with a pipe or file as stdin, stdout is exactly the lines received.
/help asks the server for its commands; `bye` or /quit leaves. At end of input
(Ctrl-D) the client sends /quit for you and waits briefly for the server to
close. Exit 0 when the server closes the connection.")]
pub struct ChatArgs {
    /// The chat server, HOST:PORT [default: 127.0.0.1:12346]
    #[arg(value_name = "ADDR", value_parser = parse_addr, conflicts_with = "to")]
    pub addr: Option<String>,
    /// The chat server, HOST:PORT (the same as ADDR).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub to: Option<String>,
    /// Send `/nick NAME` first.
    #[arg(short = 'n', long, value_name = "NAME")]
    pub nick: Option<String>,
}

impl ChatArgs {
    /// The client's options.
    pub fn to_options(&self) -> ChatOptions {
        let addr = self.addr.as_ref().or(self.to.as_ref());
        ChatOptions {
            addr: addr
                .map_or(config::DEFAULT_CHAT_ADDR, |a| a.as_str())
                .to_string(),
            nick: self.nick.clone(),
        }
    }
}

/// Options of `sockloop talk`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("side").required(true).args(["listen", "addr", "to"])))]
#[command(after_help = "\
One side listens (-l ADDR), the other connects (ADDR). Both print `connected to
PEER` on stderr; then each line typed is sent and each line received printed.
In a terminal your own lines are marked `me>` and the peer's lines scroll above
an input line you can edit. A line `bye`, typed or received, or the end of
input (Ctrl-D), ends both sides with status 0.")]
pub struct TalkArgs {
    /// Wait for one peer on ADDR (HOST:PORT).
    #[arg(short = 'l', long, value_name = "ADDR", value_parser = parse_addr)]
    pub listen: Option<String>,
    /// Connect to the peer at ADDR (HOST:PORT).
    #[arg(value_name = "ADDR", value_parser = parse_addr)]
    pub addr: Option<String>,
    /// Connect to the peer at ADDR (the same as the positional ADDR).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub to: Option<String>,
}

impl TalkArgs {
    /// The client's options.
    pub fn to_options(&self) -> TalkOptions {
        // clap's group guarantees exactly one of the three.
        let side = match (&self.listen, self.addr.as_ref().or(self.to.as_ref())) {
            (Some(listen), _) => TalkSide::Listen(listen.clone()),
            (None, Some(addr)) => TalkSide::Connect(addr.clone()),
            (None, None) => unreachable!("clap requires --listen, ADDR or --to"),
        };
        TalkOptions { side }
    }
}

/// Which service `bench` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    // No doc comments here: clap would then lay the values out as a long
    // list unlike every other help page; TARGET's own help names them.
    #[allow(missing_docs)]
    Echo,
    #[allow(missing_docs)]
    Udp,
    #[allow(missing_docs)]
    Chat,
}

/// Options of `sockloop bench`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Every reply is checked byte for byte; a mismatch, a loss or a disconnection is
an error, and any error makes the exit status 1 after the report. Progress: a
bar when stderr is a terminal, else one line per --interval on stderr.")]
pub struct BenchArgs {
    /// echo (TCP echo, closed loop), udp (UDP echo) or chat (fan-out in one room).
    #[arg(value_enum, value_name = "TARGET", hide_possible_values = true)]
    pub target: BenchTarget,
    /// The server, HOST:PORT [default: 127.0.0.1:12345 for echo and udp, 127.0.0.1:12346 for chat]
    #[arg(value_name = "ADDR", value_parser = parse_addr, conflicts_with = "to")]
    pub addr: Option<String>,
    /// The server, HOST:PORT (the same as ADDR); for chat, repeat it to
    /// spread the clients over several servers of one cluster.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub to: Vec<String>,
    /// Connections (or UDP sockets, or chat clients; chat needs 2 or more).
    #[arg(short = 'c', long, value_name = "N", default_value_t = 10, value_parser = parse_positive)]
    pub conns: usize,
    /// Message size in bytes.
    #[arg(short = 's', long, value_name = "BYTES", default_value_t = 64,
          value_parser = parse_positive)]
    pub size: usize,
    /// Messages in flight per connection.
    #[arg(short = 'P', long, value_name = "W", default_value_t = 1, value_parser = parse_positive)]
    pub pipeline: usize,
    /// How long to run, in seconds, more than 0 [default: 5; with -n, at most 300]
    #[arg(short = 'd', long, value_name = "SECS", value_parser = parse_positive_secs)]
    pub duration: Option<f64>,
    /// Stop after COUNT messages (chat: lines sent) instead of after a time.
    #[arg(short = 'n', long, value_name = "COUNT", value_parser = parse_positive_u64)]
    pub count: Option<u64>,
    /// Seconds between progress lines on stderr when it is not a terminal (0: none).
    #[arg(short = 'i', long, value_name = "SECS", default_value_t = 1.0, value_parser = parse_secs)]
    pub interval: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The bench's options, checked against the limits that depend on the
    /// target (a failure is a usage error, exit status 2).
    pub fn to_options(&self) -> Result<BenchOptions, clap::Error> {
        let options = BenchOptions {
            target: match self.target {
                BenchTarget::Echo => Target::Echo,
                BenchTarget::Udp => Target::Udp,
                BenchTarget::Chat => Target::Chat,
            },
            to: self.addr.clone().or_else(|| self.to.first().cloned()),
            also_to: self.to.iter().skip(1).cloned().collect(),
            conns: self.conns,
            size: self.size,
            pipeline: self.pipeline,
            stop: match (self.count, self.duration) {
                (None, duration) => Stop::After(secs(duration.unwrap_or(5.0))),
                (Some(count), duration) => Stop::Count {
                    count,
                    at_most: secs(duration.unwrap_or(crate::bench::COUNT_MODE_MAX_SECS)),
                },
            },
            interval: off_if_zero(self.interval),
            json: self.json,
        };
        options.check().map_err(|message| {
            let mut cli = <Cli as clap::CommandFactory>::command();
            cli.build();
            let bench = cli
                .find_subcommand_mut("bench")
                .expect("bench is a subcommand");
            bench.error(clap::error::ErrorKind::ValueValidation, message)
        })?;
        Ok(options)
    }
}

/// Options of `sockloop completions`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  sockloop completions bash > ~/.local/share/bash-completion/completions/sockloop
  sockloop completions zsh > ~/.zfunc/_sockloop
  sockloop completions fish > ~/.config/fish/completions/sockloop.fish")]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Options of `sockloop man`.
#[derive(Debug, Clone, Args)]
#[command(after_help = "\
Examples:
  sockloop man | man -l -
  sockloop man > sockloop.1; sockloop man chat > sockloop-chat.1")]
pub struct ManArgs {
    /// The command whose page to print (default: sockloop itself).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// Write the completion script for `shell` to `out`, generated from the
/// same clap definition that parses the command line.
pub fn write_completions(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    let mut cli = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cli, "sockloop", out);
}

/// Write the man page of `sockloop` (or of `sockloop COMMAND`) to `out`,
/// generated from the same clap definition. An unknown command is an error
/// message listing the known ones.
pub fn write_man_page(
    command: Option<&str>,
    out: &mut dyn std::io::Write,
) -> Result<(), ManPageError> {
    let mut cli = <Cli as clap::CommandFactory>::command();
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => {
            let Some(sub) = cli.find_subcommand(name) else {
                let known: Vec<_> = cli
                    .get_subcommands()
                    .map(|s| s.get_name().to_string())
                    .collect();
                return Err(ManPageError::Unknown(format!(
                    "no command {name:?}; one of: {}",
                    known.join(", ")
                )));
            };
            // The page is named after the whole command: sockloop-chat(1).
            sub.clone().name(format!("sockloop-{name}"))
        }
    };
    clap_mangen::Man::new(page)
        .render(out)
        .map_err(ManPageError::Io)
}

/// Why `sockloop man` failed.
#[derive(Debug)]
pub enum ManPageError {
    /// No such command (a usage error).
    Unknown(String),
    /// Writing the page failed.
    Io(std::io::Error),
}

/// The clap id of the option that asks for a listener of `service`. A
/// match, not a table, so that a new service does not compile until it has
/// its option.
fn listener_option(service: Service) -> &'static str {
    match service {
        Service::TcpEcho => "echo",
        Service::UdpEcho => "udp_echo",
        Service::Chat => "chat",
        Service::Daytime => "daytime",
    }
}

/// Parse a command line (program name first). Like clap's own parsing, but
/// also records the order of the listener options for `serve`.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches_from(args)?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let (Command::Serve(serve), Some(("serve", sub))) = (&mut cli.command, matches.subcommand())
    {
        let mut ordered = Vec::new();
        for service in Service::ALL {
            let id = listener_option(service);
            let (Some(indices), Some(values)) = (sub.indices_of(id), sub.get_many::<String>(id))
            else {
                continue;
            };
            for (index, addr) in indices.zip(values) {
                ordered.push((
                    index,
                    ListenerSpec {
                        service,
                        addr: addr.clone(),
                    },
                ));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        serve.listeners_in_order = ordered.into_iter().map(|(_, spec)| spec).collect();
        // The default sockets include chat; given ones must, for --cluster.
        let has_chat = serve.listeners_in_order.is_empty() || !serve.chat.is_empty();
        if serve.cluster.is_some() && !has_chat {
            let mut command = Cli::command();
            command.build();
            let serve_cmd = command
                .find_subcommand_mut("serve")
                .expect("serve is a subcommand");
            return Err(serve_cmd.error(
                clap::error::ErrorKind::MissingRequiredArgument,
                "--cluster joins the chat service to other servers: it needs --chat ADDR",
            ));
        }
    }
    Ok(cli)
}

/// A `redis://` URL for `--cluster`, checked for form (not resolved).
fn parse_redis_url(s: &str) -> Result<RedisUrl, String> {
    RedisUrl::parse(s).map_err(|e| e.to_string())
}

/// An ADDR: `HOST:PORT`, checked for form (not resolved).
fn parse_addr(s: &str) -> Result<String, String> {
    config::check_addr(s).map(str::to_string)
}

/// A whole number of at least 1.
fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A whole number of at least 1, up to 2^64 - 1.
fn parse_positive_u64(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds as a non-negative, finite number (fractions allowed: `0.5`).
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1e9).contains(&v) => Ok(v),
        Ok(_) => Err("must be a number of seconds from 0 to 1e9".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds, more than 0 (a run of no time measures nothing).
fn parse_positive_secs(s: &str) -> Result<f64, String> {
    match parse_secs(s)? {
        v if v > 0.0 => Ok(v),
        _ => Err("must be more than 0 seconds".into()),
    }
}

/// Seconds from the command line as a `Duration`.
fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v)
}

/// Seconds where 0 means "off" (`--idle-timeout 0`, `send --timeout 0`).
fn off_if_zero(v: f64) -> Option<Duration> {
    (v > 0.0).then(|| secs(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> Command {
        let mut argv = vec!["sockloop"];
        argv.extend_from_slice(args);
        parse_from(argv).unwrap().command
    }

    #[test]
    fn serve_defaults_match_the_contract() {
        let Command::Serve(a) = command(&["serve"]) else {
            panic!("not serve")
        };
        assert!(a.echo.is_empty() && a.udp_echo.is_empty() && a.chat.is_empty());
        assert_eq!(a.max_conns, 10_000);
        assert_eq!(a.max_line, 4096);
        assert_eq!(a.out_limit, 1_048_576);
        assert_eq!(a.max_pending, 268_435_456);
        assert_eq!(a.idle_timeout, 0.0);
        assert_eq!(a.shutdown_grace, 5.0);
        assert_eq!(a.stats_interval, 0.0);
        assert!(a.trace_events.is_none());
        let c = a.to_config();
        let got: Vec<_> = c
            .listeners
            .iter()
            .map(|l| (l.service.name(), l.addr.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("tcp-echo", "127.0.0.1:12345"),
                ("udp-echo", "127.0.0.1:12345"),
                ("chat", "127.0.0.1:12346")
            ]
        );
        assert_eq!(c.idle_timeout, None);
        assert_eq!(c.stats_interval, None);
        assert_eq!(c.shutdown_grace, Duration::from_secs(5));
    }

    #[test]
    fn one_service_flag_serves_only_that() {
        let Command::Serve(a) = command(&["serve", "--echo", "localhost:12399"]) else {
            panic!("not serve")
        };
        let c = a.to_config();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].service, Service::TcpEcho);
    }

    #[test]
    fn daytime_alone_serves_only_daytime() {
        let Command::Serve(a) = command(&["serve", "--daytime", "127.0.0.1:13013"]) else {
            panic!("not serve")
        };
        let c = a.to_config();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].service, Service::Daytime);
    }

    #[test]
    fn repeated_listeners_keep_their_order() {
        let Command::Serve(a) = command(&["serve", "--echo", "127.0.0.1:1", "--echo", "[::1]:2"])
        else {
            panic!("not serve")
        };
        assert_eq!(a.echo, ["127.0.0.1:1", "[::1]:2"]);
    }

    #[test]
    fn listeners_keep_the_order_given_across_options() {
        let Command::Serve(a) = command(&[
            "serve",
            "--chat",
            "127.0.0.1:3",
            "--echo",
            "127.0.0.1:1",
            "--udp-echo",
            "127.0.0.1:2",
            "--daytime",
            "127.0.0.1:5",
            "--chat",
            "127.0.0.1:4",
        ]) else {
            panic!("not serve")
        };
        let got: Vec<_> = a
            .to_config()
            .listeners
            .iter()
            .map(|l| (l.service.name(), l.addr.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("chat", "127.0.0.1:3".to_string()),
                ("tcp-echo", "127.0.0.1:1".into()),
                ("udp-echo", "127.0.0.1:2".into()),
                ("daytime", "127.0.0.1:5".into()),
                ("chat", "127.0.0.1:4".into())
            ]
        );
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for args in [
            &["sockloop", "serve", "--max-line", "0"][..],
            &["sockloop", "serve", "--idle-timeout", "-1"],
            &["sockloop", "serve", "--out-limit", "lots"],
            &["sockloop", "serve", "--echo", "127.0.0.1"],
            &["sockloop", "talk"],
            &["sockloop", "talk", "127.0.0.1:1", "--to", "127.0.0.1:2"],
            &["sockloop", "chat", "127.0.0.1:1", "--to", "127.0.0.1:2"],
            &["sockloop", "send"],
            &["sockloop", "bench", "echo", "--duration", "0"],
            &["sockloop", "bench", "echo", "-n", "0"],
        ] {
            let err = parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn client_defaults_match_the_contract() {
        let Command::Send(a) = command(&["send", "Hello,Server"]) else {
            panic!("not send")
        };
        let o = a.to_options();
        assert_eq!(o.to, "127.0.0.1:12345");
        assert_eq!(o.timeout, Some(Duration::from_secs(2)));
        assert!(!o.udp);
        let Command::Chat(a) = command(&["chat"]) else {
            panic!("not chat")
        };
        assert_eq!(a.to_options().addr, "127.0.0.1:12346");
    }

    #[test]
    fn short_options_mean_the_long_ones() {
        let Command::Send(a) = command(&["send", "-u", "-t", "0", "hi"]) else {
            panic!("not send")
        };
        assert!(a.udp);
        assert_eq!(a.to_options().timeout, None, "0 waits forever");
        let Command::Talk(a) = command(&["talk", "-l", "127.0.0.1:0"]) else {
            panic!("not talk")
        };
        assert_eq!(a.to_options().side, TalkSide::Listen("127.0.0.1:0".into()));
        let Command::Chat(a) = command(&["chat", "-n", "alice", "--to", "[::1]:7"]) else {
            panic!("not chat")
        };
        let o = a.to_options();
        assert_eq!(
            (o.addr.as_str(), o.nick.as_deref()),
            ("[::1]:7", Some("alice"))
        );
        let Command::Bench(a) = command(&[
            "bench",
            "chat",
            "127.0.0.1:9",
            "-c",
            "3",
            "-s",
            "40",
            "-P",
            "2",
            "-n",
            "100",
            "-d",
            "7",
        ]) else {
            panic!("not bench")
        };
        let o = a.to_options().unwrap();
        assert_eq!(o.to.as_deref(), Some("127.0.0.1:9"));
        assert_eq!((o.conns, o.size, o.pipeline), (3, 40, 2));
        assert_eq!(
            o.stop,
            Stop::Count {
                count: 100,
                at_most: Duration::from_secs(7)
            }
        );
    }

    #[test]
    fn the_address_is_taken_the_same_way_everywhere() {
        for (args, want) in [
            (&["chat", "127.0.0.1:1"][..], "127.0.0.1:1"),
            (&["chat", "--to", "127.0.0.1:1"], "127.0.0.1:1"),
        ] {
            let Command::Chat(a) = command(args) else {
                panic!()
            };
            assert_eq!(a.to_options().addr, want);
        }
        for args in [
            &["talk", "127.0.0.1:1"][..],
            &["talk", "--to", "127.0.0.1:1"],
        ] {
            let Command::Talk(a) = command(args) else {
                panic!()
            };
            assert_eq!(a.to_options().side, TalkSide::Connect("127.0.0.1:1".into()));
        }
        for args in [
            &["bench", "echo", "127.0.0.1:1"][..],
            &["bench", "echo", "--to", "127.0.0.1:1"],
        ] {
            let Command::Bench(a) = command(args) else {
                panic!()
            };
            assert_eq!(a.to_options().unwrap().to.as_deref(), Some("127.0.0.1:1"));
        }
    }

    #[test]
    fn nc_style_host_port_in_a_message_is_warned_about() {
        for (args, warn) in [
            (
                &["send", "127.0.0.1", "12345", "hi"][..],
                Some("--to 127.0.0.1:12345"),
            ),
            (&["send", "localhost", "7"], Some("--to localhost:7")),
            (&["send", "::1", "7", "x"], Some("--to [::1]:7")),
            (&["send", "Hello,Server"], None),
            (&["send", "call", "911"], None),
            (&["send", "127.0.0.1", "99999"], None),
        ] {
            let Command::Send(a) = command(args) else {
                panic!()
            };
            let got = a.host_port_warning();
            match warn {
                Some(w) => assert!(
                    got.as_deref().unwrap_or("").contains(w),
                    "{args:?}: {got:?}"
                ),
                None => assert_eq!(got, None, "{args:?}"),
            }
        }
    }
}
