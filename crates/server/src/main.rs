//! `genai`: the one binary of GenAI Resources.
//!
//! `genai serve` runs everything (APIs, UI, scheduler) on one address; the other subcommands
//! are a client of a running server's HTTP API (see [`cli`]). This is the only crate that names
//! a concrete store: the database URL's scheme picks the adapter.

mod cli;
mod serve;
mod settings;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// GenAI Resources: a control plane and gateway for generative-AI capacity.
#[derive(Parser, Debug)]
#[command(name = "genai", version, about)]
struct Cli {
    #[command(flatten)]
    client: cli::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: Control Center and Operator APIs, UI, scheduler.
    Serve(settings::ServeArgs),
    /// Apply the database migrations and exit.
    Migrate(settings::MigrateArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Migrate(args) => serve::migrate(args).await,
            Command::Client(cmd) => cli::run(cli.client, cmd).await,
        }
    })
}
