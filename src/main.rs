//! The `sockloop` binary: parse the command line, start logging, run one
//! subcommand and turn its result into an exit status (0 ok, 1 failure, 2 bad
//! usage, the last one printed by clap).

use std::process::ExitCode;

use clap::CommandFactory;
use sockloop::cli::{self, Cli, Command};

/// Print clap's error and exit. `--help` and `--version` land here too, with
/// status 0. For real usage errors (status 2) SPEC asks for a usage message:
/// clap prints one for some errors but not for a bad value, so add the usage
/// of the subcommand in question when clap's text has none.
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

fn main() -> ExitCode {
    let cli = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_micros()
        .init();
    let result = match cli.command {
        Command::Serve(args) => sockloop::reactor::serve(&args),
        Command::Send(args) => sockloop::client::send::run(&args),
        Command::Chat(args) => sockloop::client::chat::run(&args),
        Command::Talk(args) => sockloop::client::talk::run(&args),
        Command::Bench(args) => sockloop::bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sockloop: {e}");
            ExitCode::FAILURE
        }
    }
}
