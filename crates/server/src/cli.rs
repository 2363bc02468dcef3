//! The client half of the `genai` binary: commands that talk to a running server over its HTTP
//! API (`/work/shared/API.md` is the contract), for company admins (`resources`, `tokens`,
//! `audit`, `catalog`), for every user (`api-tokens`: their own API tokens), for a resource's team
//! (`keys`, `usage`, `members`: the Portal API) and for whoever runs the installation
//! (`operator …`).
//!
//! Design:
//! - The CLI is a plain HTTP client of the public API, never a second way into the store: what
//!   the CLI can do, a script can do with `curl`, and the server stays the only place where rules
//!   are enforced. The only client-side knowledge is convenience (inferring
//!   `cross_region_inference` from the catalog when it is not given, see [`resources`]).
//! - Every command produces one JSON answer (or a merge of paged answers). `--json` prints it
//!   pretty as the server sent it, for scripts; otherwise [`output`] renders aligned tables and
//!   key/value lines for people.
//! - Every failure is a [`client::CliError`], printed once on stderr as `error: <message> (<code>)`
//!   (plus one line per bad field for `validation_failed`), with exit code 1. Usage errors are
//!   clap's (exit code 2).
//! - `catalog --default` prints the built-in catalog without any server, so an operator can copy
//!   it as the starting point for `genai serve --catalog FILE`.

mod api_tokens;
mod audit;
mod catalog;
mod client;
mod history;
mod kb;
mod keys;
mod members;
mod models;
mod operator;
mod output;
mod resources;
mod tokens;
mod usage;

use client::{Api, CliError};
use std::process::ExitCode;

/// Global options of the client commands.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the server.
    #[arg(long, env = "GENAI_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    pub server: String,
    /// API token (user token, or the operator token for `operator` commands).
    #[arg(long, env = "GENAI_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The client commands; each one calls the server's HTTP API.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// List, show, provision, resize and deprovision GenAI resources (company admins).
    #[command(subcommand)]
    Resources(resources::ResourcesCommand),
    /// The company's cloud-token balance, or its transactions (company admins).
    Tokens(tokens::TokensArgs),
    /// The company's audit log, newest first (company admins).
    Audit(audit::AuditArgs),
    /// Your own API tokens: list, create, revoke (any role).
    #[command(subcommand, name = "api-tokens")]
    ApiTokens(api_tokens::ApiTokensCommand),
    /// The catalog of regions, environments, models and plans.
    Catalog(catalog::CatalogArgs),
    /// A resource's runtime keys: list, create, revoke (its team members and company admins).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// A knowledge base's content: collections, upload a TXT/PDF file, search by text.
    #[command(subcommand)]
    Kb(kb::KbCommand),
    /// A resource's consumption: this bundle month against the quota, and per day.
    Usage(usage::UsageArgs),
    /// A resource's team: list, add, remove members.
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// Companies, token grants, users (and disabling them), API tokens and the clock (needs the
    /// operator token).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Install and list the built-in local models (on this machine; no server involved).
    #[command(subcommand)]
    Models(models::ModelsCommand),
}

/// Runs one client command against the server named in `args`, printing its answer on stdout
/// and any error on stderr. Exit code 0 on success, 1 on any error.
pub async fn run(args: ClientArgs, command: ClientCommand) -> ExitCode {
    match execute(&args, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            output::print_error(&error);
            ExitCode::from(1)
        }
    }
}

async fn execute(args: &ClientArgs, command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Resources(command) => resources::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Tokens(command) => tokens::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Audit(command) => audit::run(&api(args, false)?, args.json, command).await,
        ClientCommand::ApiTokens(command) => api_tokens::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Keys(command) => keys::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Kb(command) => kb::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Usage(command) => usage::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Members(command) => members::run(&api(args, false)?, args.json, command).await,
        ClientCommand::Catalog(command) => {
            if command.default {
                // No server involved: the built-in catalog is compiled into this binary.
                catalog::print_default(args.json)
            } else {
                catalog::run(&api(args, false)?, args.json).await
            }
        }
        ClientCommand::Operator(command) => operator::run(&api(args, true)?, args.json, command).await,
        ClientCommand::Models(command) => models::run(args.json, command).await,
    }
}

/// Builds the HTTP client. Operator commands fall back to `GENAI_OPERATOR_TOKEN` (the variable
/// the server reads its operator token from) when no `--token`/`GENAI_TOKEN` is given, so one
/// shell that starts a server can also administer it.
fn api(args: &ClientArgs, operator: bool) -> Result<Api, CliError> {
    let token = args.token.clone().filter(|t| !t.trim().is_empty()).or_else(|| {
        if operator {
            std::env::var("GENAI_OPERATOR_TOKEN").ok().filter(|t| !t.trim().is_empty())
        } else {
            None
        }
    });
    Api::new(&args.server, token, operator)
}
