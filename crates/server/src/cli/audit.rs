//! `genai audit`: the company's audit log, newest first, over `/api/v1/audit-events`
//! (company admins).

use super::client::{Api, CliError};
use super::history::{self, PageArgs};
use super::output::{emit, emit_json, field, Table};
use serde_json::Value;

/// `genai audit [--limit N [--cursor C]]`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    page: PageArgs,
}

/// Runs `genai audit`.
pub async fn run(api: &Api, json: bool, args: AuditArgs) -> Result<(), CliError> {
    let answer = history::fetch(api, "/api/v1/audit-events", "events", &args.page).await?;
    if json {
        emit_json(&answer);
        return Ok(());
    }
    let mut table = Table::new(&["AT", "ACTOR", "ACTION", "RESOURCE", "DETAILS"]);
    for e in answer.get("events").and_then(Value::as_array).into_iter().flatten() {
        let details = e.get("details").map(Value::to_string).unwrap_or_default();
        table.row(vec![field(e, "at"), field(e, "actor"), field(e, "action"), field(e, "resource_id"), details]);
    }
    emit(&if table.is_empty() { "No audit events.\n".to_string() } else { table.render() });
    Ok(())
}
