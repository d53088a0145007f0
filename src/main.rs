//! The `sockloop` binary: parse the command line, start logging, run one
//! subcommand and turn its result into an exit status (0 ok, 1 failure, 2 bad
//! usage, the last one printed by clap).

use std::process::ExitCode;

use sockloop::cli::{self, Command};

fn main() -> ExitCode {
    let cli = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        // --help and --version land here too, with exit status 0.
        Err(e) => e.exit(),
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
