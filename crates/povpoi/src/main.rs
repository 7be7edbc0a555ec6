//! The `povpoi` command.

mod board;
mod convert;
mod node;
mod poi_client;
mod preview;
mod sim;
mod sim_sync;
mod upload;

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
    /// Runs one poi: its HTTP API, discovery and sync, until SIGINT or SIGTERM.
    Node(node::Args),
    /// Runs the board firmware's application on this machine (RAM flash, real HTTP and UDP):
    /// a board to sync with without one.
    Board(board::Args),
    /// Starts a troupe of poi on 127.0.0.1 that sync with each other (no multicast needed).
    Sim(sim::Args),
    /// Shows poi replicas, in memory, editing apart and converging when they sync.
    SimSync(sim_sync::Args),
    /// Converts a picture (PNG, JPEG, GIF, BMP, WebP, .pov, image_WxH.rgb) for the poi:
    /// raw image_WxH.rgb to upload, .pov for SD cards, or PNG.
    Convert(convert::Args),
    /// Draws what a spectator sees when the poi spins with a picture or a pattern (a PNG).
    Preview(preview::Args),
    /// Uploads a picture to a poi, a node or a board, fitted here to its strip and sent as
    /// raw image_WxH.rgb (a board converts nothing itself).
    Upload(upload::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(args) => node::run(&args),
        Command::Board(args) => board::run(&args),
        Command::Sim(args) => sim::run(&args),
        Command::SimSync(args) => sim_sync::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Upload(args) => upload::run(&args),
        Command::Preview(args) => preview::run(&args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("povpoi: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
