//! `genai api-tokens …`: the caller's own API tokens (any role), over `/api/v1/me/api-tokens`;
//! and the token table and creation output `genai operator tokens …` shares.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, note, Table};
use serde_json::{json, Map, Value};

/// The caller's API tokens.
#[derive(clap::Subcommand, Debug)]
pub enum ApiTokensCommand {
    /// List your tokens (revoked and expired ones too), newest first; never their secrets.
    List,
    /// Create a token; it is printed once and cannot be shown again.
    Create(CreateArgs),
    /// Revoke one of your tokens; it is refused from the next request on.
    Revoke {
        /// Token id (`tok_…`, from `genai api-tokens list`).
        id: String,
    },
}

/// What a new token is for and when it stops working.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// What the token is for.
    #[arg(long)]
    pub description: Option<String>,
    /// When it stops working (RFC 3339 instant, or a date meaning midnight UTC); default: never.
    #[arg(long, value_name = "INSTANT", value_parser = super::operator::parse_instant)]
    pub expires_at: Option<String>,
}

impl CreateArgs {
    /// The request body.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        if let Some(d) = &self.description {
            body.insert("description".into(), json!(d));
        }
        if let Some(e) = &self.expires_at {
            body.insert("expires_at".into(), json!(e));
        }
        Value::Object(body)
    }
}

/// Runs an `api-tokens` command.
pub async fn run(api: &Api, json: bool, command: ApiTokensCommand) -> Result<(), CliError> {
    match command {
        ApiTokensCommand::List => print_list(json, &api.get("/api/v1/me/api-tokens", &[]).await?),
        ApiTokensCommand::Create(args) => {
            print_created(json, &api.post("/api/v1/me/api-tokens", Some(&args.body()), None).await?)
        }
        ApiTokensCommand::Revoke { id } => {
            api.delete(&format!("/api/v1/me/api-tokens/{}", segment(&id))).await?;
            print_revoked(json, &id);
        }
    }
    Ok(())
}

/// Prints a token list (`{"tokens": […]}`).
pub fn print_list(json: bool, answer: &Value) {
    if json {
        emit_json(answer);
        return;
    }
    let mut table = Table::new(&["ID", "DESCRIPTION", "CREATED", "EXPIRES", "LAST USED", "REVOKED"]);
    for t in answer.get("tokens").and_then(Value::as_array).into_iter().flatten() {
        table.row(vec![
            field(t, "id"),
            field(t, "description"),
            field(t, "created_at"),
            field(t, "expires_at"),
            field(t, "last_used_at"),
            field(t, "revoked_at"),
        ]);
    }
    emit(&if table.is_empty() { "No API tokens.\n".to_string() } else { table.render() });
}

/// Prints a new token: with `--json` the whole answer, otherwise the secret alone on stdout (so
/// `TOKEN=$(genai … create)` works) and the reminder on stderr.
pub fn print_created(json: bool, answer: &Value) {
    if json {
        emit_json(answer);
    } else {
        emit(&format!("{}\n", field(answer, "token")));
        note(&format!(
            "note: token {} is shown only once; store it now (use it as GENAI_TOKEN or --token).",
            field(answer, "id")
        ));
    }
}

/// Prints the outcome of a revocation (the API answers 204 without a body).
pub fn print_revoked(json: bool, id: &str) {
    if json {
        emit_json(&json!({ "id": id, "revoked": true }));
    } else {
        emit(&format!("Revoked API token {id}.\n"));
    }
}
