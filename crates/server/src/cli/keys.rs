//! `genai keys …`: a resource's runtime keys (RUNTIME.md §2), over
//! `/api/v1/resources/{id}/keys`, for its team members and the company's admins.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, note, Table};
use serde_json::{json, Value};

/// A resource's runtime keys.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// List a resource's keys (revoked ones too), newest first; never their secrets.
    List {
        /// Resource id (`res_…`).
        resource: String,
    },
    /// Create a key; its secret and configuration key are printed once and cannot be shown
    /// again.
    Create {
        /// Resource id (`res_…`).
        resource: String,
        /// What the key is for (1–200 characters).
        #[arg(long)]
        description: String,
    },
    /// Revoke a key (a knowledge-base key with its companion); calls with it are refused from
    /// then on.
    Revoke {
        /// Resource id (`res_…`).
        resource: String,
        /// Key id (`key_…`, from `genai keys list`).
        key: String,
    },
}

fn keys_path(resource: &str) -> String {
    format!("/api/v1/resources/{}/keys", segment(resource))
}

/// Runs a `keys` command.
pub async fn run(api: &Api, json: bool, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::List { resource } => print_list(json, &api.get(&keys_path(&resource), &[]).await?),
        KeysCommand::Create { resource, description } => {
            let body = json!({ "description": description });
            print_created(json, &api.post(&keys_path(&resource), Some(&body), None).await?);
        }
        KeysCommand::Revoke { resource, key } => {
            api.delete(&format!("{}/{}", keys_path(&resource), segment(&key))).await?;
            if json {
                emit_json(&json!({ "id": key, "revoked": true }));
            } else {
                emit(&format!("Revoked key {key}.\n"));
            }
        }
    }
    Ok(())
}

/// A key list (`{"keys": […]}`) as a table.
fn print_list(json: bool, answer: &Value) {
    if json {
        emit_json(answer);
        return;
    }
    let mut table = Table::new(&["ID", "DESCRIPTION", "CREATED", "LAST USED", "REVOKED", "COMPANION OF"]);
    for k in answer.get("keys").and_then(Value::as_array).into_iter().flatten() {
        table.row(vec![
            field(k, "id"),
            field(k, "description"),
            field(k, "created_at"),
            field(k, "last_used_at"),
            field(k, "revoked_at"),
            field(k, "companion_of"),
        ]);
    }
    emit(&if table.is_empty() { "No keys.\n".to_string() } else { table.render() });
}

/// A new key: with `--json` the whole answer; otherwise the secret alone on stdout (so
/// `KEY=$(genai keys create …)` works) and the configuration key with the reminder on stderr.
fn print_created(json: bool, answer: &Value) {
    if json {
        emit_json(answer);
        return;
    }
    emit(&format!("{}\n", field(answer, "secret")));
    note(&format!(
        "note: key {} is shown only once; store it securely now.\nconfiguration key: {}",
        field(answer, "id"),
        field(answer, "configuration_key")
    ));
}
