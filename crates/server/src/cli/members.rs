//! `genai members …`: a resource's team (RUNTIME.md §1), over
//! `/api/v1/resources/{id}/members`.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, Table};
use serde_json::{json, Map, Value};

/// A resource's team.
#[derive(clap::Subcommand, Debug)]
pub enum MembersCommand {
    /// List a resource's team members, in the order they joined.
    List {
        /// Resource id (`res_…`).
        resource: String,
    },
    /// Add someone by email; an address that is nobody's login yet becomes a user of the
    /// company (role member).
    Add {
        /// Resource id (`res_…`).
        resource: String,
        /// Their email.
        email: String,
        /// Their name, for a new user (default: the email's local part).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a member (never the last one).
    Remove {
        /// Resource id (`res_…`).
        resource: String,
        /// The member's user id (`usr_…`, from `genai members list`).
        user: String,
    },
}

fn members_path(resource: &str) -> String {
    format!("/api/v1/resources/{}/members", segment(resource))
}

/// Runs a `members` command.
pub async fn run(api: &Api, json: bool, command: MembersCommand) -> Result<(), CliError> {
    match command {
        MembersCommand::List { resource } => {
            let answer = api.get(&members_path(&resource), &[]).await?;
            if json {
                emit_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&["USER ID", "NAME", "EMAIL", "ADDED"]);
            for m in answer.get("members").and_then(Value::as_array).into_iter().flatten() {
                table.row(vec![field(m, "user_id"), field(m, "name"), field(m, "email"), field(m, "added_at")]);
            }
            emit(&if table.is_empty() { "No members.\n".to_string() } else { table.render() });
        }
        MembersCommand::Add { resource, email, name } => {
            let mut body = Map::new();
            body.insert("email".into(), json!(email));
            if let Some(n) = name {
                body.insert("name".into(), json!(n));
            }
            let m = api.post(&members_path(&resource), Some(&Value::Object(body)), None).await?;
            if json {
                emit_json(&m);
            } else {
                emit(&format!(
                    "{} <{}> is a member ({}).\n",
                    field(&m, "name"),
                    field(&m, "email"),
                    field(&m, "user_id")
                ));
            }
        }
        MembersCommand::Remove { resource, user } => {
            api.delete(&format!("{}/{}", members_path(&resource), segment(&user))).await?;
            if json {
                emit_json(&json!({ "user_id": user, "removed": true }));
            } else {
                emit(&format!("Removed {user} from the team.\n"));
            }
        }
    }
    Ok(())
}
