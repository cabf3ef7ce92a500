//! Command-line interface: `handler` with no subcommand serves, as the host starts it.
//!
//! Owns: argument syntax and dispatch to the module that does the work.
//! Must not: do the work itself.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Azure Functions custom handler for client-certificate (mTLS) APIs.
#[derive(Debug, Parser)]
#[command(name = "handler", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Functions host (the default).
    Serve,
}

/// Parses the arguments and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Serve) => crate::start::serve(),
    }
}
