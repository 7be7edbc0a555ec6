//! The `povpoi` command.

mod sim_sync;

use clap::{Parser, Subcommand};

/// povpoi: wireless POV LED poi that keep their content in sync, with no master.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Shows poi replicas, in memory, editing apart and converging when they sync.
    SimSync(sim_sync::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::SimSync(args) => sim_sync::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("povpoi: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
