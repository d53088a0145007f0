//! The command line: every subcommand, option and default of SPEC.md, parsed by
//! clap. clap prints usage on stderr and exits with status 2 on a bad argument,
//! which is exactly the contract, so nothing here handles errors by hand.
//!
//! Parsing lives in the library (not in `main.rs`) so that tests can check the
//! defaults without starting a process.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config;

/// sockloop: one thread, one mio poll loop, TCP echo, UDP echo and chat.
#[derive(Debug, Parser)]
#[command(name = "sockloop", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of SPEC.md's "Commands" table.
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
}

/// Options of `sockloop serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP echo listener (repeatable).
    #[arg(long = "echo", value_name = "ADDR")]
    pub echo: Vec<String>,
    /// UDP echo socket (repeatable).
    #[arg(long = "udp-echo", value_name = "ADDR")]
    pub udp_echo: Vec<String>,
    /// Chat listener (repeatable).
    #[arg(long = "chat", value_name = "ADDR")]
    pub chat: Vec<String>,
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
    /// `--echo`, `--udp-echo` and `--chat` merged in the order they were
    /// given (filled by [`parse_from`]; clap keeps each option's own order
    /// but not the order between options).
    #[arg(skip)]
    pub listeners_in_order: Vec<config::ListenerSpec>,
}

/// Options of `sockloop send`.
#[derive(Debug, Clone, Args)]
pub struct SendArgs {
    /// Use UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// Where to send.
    #[arg(long, value_name = "ADDR", default_value = config::DEFAULT_ECHO_ADDR)]
    pub to: String,
    /// How long to wait for a reply, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = config::DEFAULT_SEND_TIMEOUT_SECS,
          value_parser = parse_secs)]
    pub timeout: f64,
    /// The message; several words are joined with spaces.
    #[arg(required = true, value_name = "MESSAGE")]
    pub message: Vec<String>,
}

/// Options of `sockloop chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// The chat server.
    #[arg(value_name = "ADDR", default_value = config::DEFAULT_CHAT_ADDR)]
    pub addr: String,
    /// Send `/nick NAME` first.
    #[arg(long, value_name = "NAME")]
    pub nick: Option<String>,
}

/// Options of `sockloop talk`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("side").required(true).args(["listen", "addr"])))]
pub struct TalkArgs {
    /// Wait for one peer on ADDR.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Connect to the peer at ADDR.
    #[arg(value_name = "ADDR")]
    pub addr: Option<String>,
}

/// Which service `bench` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTarget {
    /// TCP echo, closed loop.
    Echo,
    /// UDP echo.
    Udp,
    /// Chat fan-out in one room.
    Chat,
}

/// Options of `sockloop bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The service to drive.
    #[arg(value_enum)]
    pub target: BenchTarget,
    /// The server (default: the service's default address).
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    /// Connections (or UDP sockets, or chat clients).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = parse_positive)]
    pub conns: usize,
    /// Message size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 64, value_parser = parse_positive)]
    pub size: usize,
    /// Messages in flight per connection.
    #[arg(long, value_name = "W", default_value_t = 1, value_parser = parse_positive)]
    pub pipeline: usize,
    /// How long to run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = parse_secs)]
    pub duration: f64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
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
        for (id, service) in [
            ("echo", config::Service::TcpEcho),
            ("udp_echo", config::Service::UdpEcho),
            ("chat", config::Service::Chat),
        ] {
            let (Some(indices), Some(values)) = (sub.indices_of(id), sub.get_many::<String>(id))
            else {
                continue;
            };
            for (index, addr) in indices.zip(values) {
                ordered.push((
                    index,
                    config::ListenerSpec {
                        service,
                        addr: addr.clone(),
                    },
                ));
            }
        }
        ordered.sort_by_key(|(index, _)| *index);
        serve.listeners_in_order = ordered.into_iter().map(|(_, spec)| spec).collect();
    }
    Ok(cli)
}

/// A whole number of at least 1.
fn parse_positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
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

/// Seconds from the command line as a `Duration`; 0 means "off" where an option says so.
pub fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_defaults_match_the_spec() {
        let cli = parse_from(["sockloop", "serve"]).unwrap();
        let Command::Serve(a) = cli.command else {
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
    }

    #[test]
    fn repeated_listeners_keep_their_order() {
        let cli = parse_from([
            "sockloop",
            "serve",
            "--echo",
            "127.0.0.1:1",
            "--echo",
            "[::1]:2",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.echo, ["127.0.0.1:1", "[::1]:2"]);
    }

    #[test]
    fn listeners_keep_the_order_given_across_options() {
        let cli = parse_from([
            "sockloop",
            "serve",
            "--chat",
            "127.0.0.1:3",
            "--echo",
            "127.0.0.1:1",
            "--udp-echo",
            "127.0.0.1:2",
            "--chat",
            "127.0.0.1:4",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        let got: Vec<_> = a
            .listeners_in_order
            .iter()
            .map(|l| (l.service.name(), l.addr.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("chat", "127.0.0.1:3"),
                ("tcp-echo", "127.0.0.1:1"),
                ("udp-echo", "127.0.0.1:2"),
                ("chat", "127.0.0.1:4")
            ]
        );
    }

    #[test]
    fn bad_numbers_are_usage_errors() {
        for args in [
            &["sockloop", "serve", "--max-line", "0"][..],
            &["sockloop", "serve", "--idle-timeout", "-1"],
            &["sockloop", "serve", "--out-limit", "lots"],
            &["sockloop", "talk"],
            &["sockloop", "send"],
        ] {
            let err = parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn client_defaults_match_the_spec() {
        let cli = parse_from(["sockloop", "send", "Hello,Server"]).unwrap();
        let Command::Send(a) = cli.command else {
            panic!("not send")
        };
        assert_eq!(a.to, "127.0.0.1:12345");
        assert_eq!(a.timeout, 2.0);
        assert!(!a.udp);
        let cli = parse_from(["sockloop", "chat"]).unwrap();
        let Command::Chat(a) = cli.command else {
            panic!("not chat")
        };
        assert_eq!(a.addr, "127.0.0.1:12346");
    }
}
