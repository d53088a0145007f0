//! The `sockloop` binary: parse the command line, start logging, run one
//! subcommand and turn its result into an exit status: 0 ok, 1 a run-time
//! failure (one `sockloop: ...` line on stderr), 2 a bad argument (usage on
//! stderr, printed by clap).
//!
//! This file and `cli.rs` are the only code that knows clap. The library
//! parts take plain options: `Server::bind(ServeConfig)` then
//! `Server::run()`, `client::*::run(&Options)`, `bench::run(&BenchOptions)`,
//! and return errors instead of exiting.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::CommandFactory;
use sockloop::cli::{self, Cli, Command};
use sockloop::config::ServeConfig;
use sockloop::reactor::Server;

/// How long `serve --cluster` may try to reach Redis before giving up.
const CLUSTER_START_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Print clap's error and exit. `--help` and `--version` land here too, with
/// status 0. For real usage errors (status 2) the contract asks for a usage
/// message: clap prints one for some errors but not for a bad value, so add
/// the usage of the subcommand in question when clap's text has none.
fn usage_error(e: clap::Error) -> ! {
    if e.exit_code() != 2 || e.to_string().contains("Usage:") {
        e.exit();
    }
    let _ = e.print();
    let mut command = Cli::command();
    // Building fills in each subcommand's full name ("sockloop serve").
    command.build();
    let sub = std::env::args().nth(1).unwrap_or_default();
    let usage = match command.find_subcommand_mut(&sub) {
        Some(sub) => sub.render_usage(),
        None => command.render_usage(),
    };
    eprintln!("\n{usage}");
    std::process::exit(2);
}

/// `sockloop serve`: bind every socket, print one `listening SERVICE ADDR`
/// line per socket on stdout (the real address, port 0 resolved) and flush,
/// say on stderr what is served, then run the loop until a signal and the
/// drain that follows.
fn serve(config: ServeConfig) -> io::Result<()> {
    // Once per process, before any loop: the loop only clamps below it.
    sockloop::net::toolkit::prepare_process_for_serving(config.max_conns, config.listeners.len());
    let mut server = Server::bind(config)?;
    // With --cluster, Redis first: no `listening` line before it answers.
    server.wait_for_cluster(CLUSTER_START_LIMIT)?;
    let addrs = server.local_addrs();
    {
        let mut out = io::stdout().lock();
        for (service, addr) in &addrs {
            writeln!(out, "listening {} {}", service.name(), addr)?;
        }
        out.flush()?;
    }
    let served: Vec<String> = addrs
        .iter()
        .map(|(service, addr)| format!("{} on {addr}", service.name()))
        .collect();
    log::info!("serving {}", served.join(", "));
    server.run()
}

fn main() -> ExitCode {
    let cli = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_micros()
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args.to_config()),
        Command::Send(args) => {
            if let Some(warning) = args.host_port_warning() {
                eprintln!("sockloop: {warning}");
            }
            sockloop::client::send::run(&args.to_options())
        }
        Command::Chat(args) => sockloop::client::chat::run(&args.to_options()),
        Command::Talk(args) => sockloop::client::talk::run(&args.to_options()),
        Command::Bench(args) => match args.to_options() {
            Ok(options) => sockloop::bench::run(&options),
            Err(usage) => usage_error(usage),
        },
        Command::Completions(args) => {
            cli::write_completions(args.shell, &mut io::stdout());
            Ok(())
        }
        Command::Man(args) => match cli::write_man_page(args.command.as_deref(), &mut io::stdout())
        {
            Ok(()) => Ok(()),
            // `sockloop man | head`: the reader had enough.
            Err(cli::ManPageError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            Err(cli::ManPageError::Io(e)) => Err(e),
            Err(cli::ManPageError::Unknown(message)) => {
                let mut command = Cli::command();
                command.build();
                let man = command
                    .find_subcommand_mut("man")
                    .expect("man is a subcommand");
                usage_error(man.error(clap::error::ErrorKind::InvalidValue, message))
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockloop: {e}");
            ExitCode::FAILURE
        }
    }
}
