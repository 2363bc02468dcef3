//! `genai tokens` and `genai tokens transactions`: the company's cloud-token balance and its
//! append-only ledger (SPEC §3), over `/api/v1/tokens`.

use super::client::{Api, CliError};
use super::history::{self, PageArgs};
use super::output::{emit, emit_json, field, Pairs, Table};
use serde_json::Value;

/// `genai tokens [balance|transactions]`; without a subcommand it shows the balance.
#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    /// What to show (default: the balance).
    #[command(subcommand)]
    pub command: Option<TokensCommand>,
}

/// The token views.
#[derive(clap::Subcommand, Debug)]
pub enum TokensCommand {
    /// Total, allocated, available and pending-release cloud tokens (the default).
    Balance,
    /// Every grant, allocation and release, newest first (or one page of them).
    Transactions(PageArgs),
}

/// Runs a tokens command.
pub async fn run(api: &Api, json: bool, args: TokensArgs) -> Result<(), CliError> {
    match args.command.unwrap_or(TokensCommand::Balance) {
        TokensCommand::Balance => {
            let balance = api.get("/api/v1/tokens", &[]).await?;
            if json {
                emit_json(&balance);
            } else {
                emit(&balance_pairs(&balance).render());
            }
        }
        TokensCommand::Transactions(page) => {
            let answer = history::fetch(api, "/api/v1/tokens/transactions", "transactions", &page).await?;
            if json {
                emit_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&["AT", "KIND", "TOKENS", "AVAILABLE AFTER", "RESOURCE", "ID"]);
            for t in answer.get("transactions").and_then(Value::as_array).into_iter().flatten() {
                table.row(vec![
                    field(t, "at"),
                    field(t, "kind"),
                    field(t, "tokens"),
                    field(t, "available_after"),
                    field(t, "resource_id"),
                    field(t, "id"),
                ]);
            }
            if table.is_empty() {
                emit("No transactions.\n");
            } else {
                emit(&table.render());
            }
        }
    }
    Ok(())
}

/// The balance as key/value lines (shared with `operator grant`, which answers a balance too).
pub fn balance_pairs(balance: &Value) -> Pairs {
    let mut p = Pairs::new();
    p.add("Total", field(balance, "total"));
    p.add("Allocated", field(balance, "allocated"));
    p.add("Available", field(balance, "available"));
    p.add("Pending release", field(balance, "pending_release"));
    p
}
