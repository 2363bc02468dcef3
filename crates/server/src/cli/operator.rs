//! `genai operator …`: what whoever runs the installation does over `/api/v1/operator`
//! (companies and their subscription facts, token grants, users, API tokens, the manual clock).
//! These calls need the operator token (`GENAI_OPERATOR_TOKEN` of the server).

use super::api_tokens::{print_created, print_list, print_revoked, CreateArgs};
use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, generic_pairs, str_field};
use super::tokens::balance_pairs;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

/// The operator commands.
#[derive(clap::Subcommand, Debug)]
pub enum OperatorCommand {
    /// Create or update companies.
    #[command(subcommand)]
    Companies(CompaniesCommand),
    /// Grant cloud tokens to a company.
    Grant {
        /// Company id.
        company_id: String,
        /// Number of cloud tokens to grant.
        tokens: i64,
        /// A note kept with the grant (e.g. the order number).
        #[arg(long)]
        note: Option<String>,
        /// Idempotency key: retrying with the same key grants only once.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
    /// Create, disable and enable users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Create, list and revoke users' API tokens.
    #[command(subcommand)]
    Tokens(OperatorTokensCommand),
    /// Show the server's clock, or move a manual clock forward (applying every change that falls due).
    Clock {
        /// Move the clock to this instant (RFC 3339, e.g. 2026-03-12T09:30:00Z, or a date meaning
        /// midnight UTC). Only for servers started with --manual-clock.
        #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
        set: Option<String>,
    },
}

/// `genai operator companies …`.
#[derive(clap::Subcommand, Debug)]
pub enum CompaniesCommand {
    /// Create a company.
    Create {
        /// Company name.
        #[arg(long)]
        name: String,
        /// Price list (FY21 or newer makes the company eligible).
        #[arg(long, default_value = "FY21")]
        price_list: String,
        /// Number of accounts the company owns (eligible: exactly 1).
        #[arg(long, default_value_t = 1)]
        accounts: i64,
        /// Number of active enterprise platform subscriptions (eligible: exactly 1).
        #[arg(long, default_value_t = 1)]
        enterprise_subscriptions: i64,
    },
    /// Change a company's subscription facts (only the options given).
    #[command(group(clap::ArgGroup::new("changes").required(true).multiple(true)
        .args(["price_list", "accounts", "enterprise_subscriptions"])))]
    Update {
        /// Company id.
        id: String,
        /// Price list, e.g. FY22.
        #[arg(long)]
        price_list: Option<String>,
        /// Number of accounts the company owns.
        #[arg(long)]
        accounts: Option<i64>,
        /// Number of active enterprise platform subscriptions.
        #[arg(long)]
        enterprise_subscriptions: Option<i64>,
    },
}

/// A user's role in their company.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
#[value(rename_all = "snake_case")]
pub enum RoleArg {
    /// Uses the Control Center.
    #[value(alias = "admin")]
    CompanyAdmin,
    /// Member of resource teams (Portal only).
    Member,
}

/// `genai operator users …`.
#[derive(clap::Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user in a company.
    Create {
        /// Company id.
        company_id: String,
        /// Full name.
        #[arg(long)]
        name: String,
        /// Email address (also the login).
        #[arg(long)]
        email: String,
        /// Role in the company.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Password for the web UI (without one the user can only use API tokens).
        #[arg(long)]
        password: Option<String>,
    },
    /// Disable a user: their API tokens and web sessions are refused at once.
    Disable {
        /// User id.
        user_id: String,
    },
    /// Enable a disabled user again (their unrevoked tokens work again; they log in anew).
    Enable {
        /// User id.
        user_id: String,
    },
}

/// `genai operator tokens …`.
#[derive(clap::Subcommand, Debug)]
pub enum OperatorTokensCommand {
    /// Create an API token for a user; the token is printed once and cannot be shown again.
    Create {
        /// User id.
        user_id: String,
        #[command(flatten)]
        token: CreateArgs,
    },
    /// List a user's API tokens (revoked and expired ones too), newest first.
    List {
        /// User id.
        user_id: String,
    },
    /// Revoke any user's API token; it is refused from the next request on.
    Revoke {
        /// Token id (`tok_…`).
        token_id: String,
    },
}

/// Runs an operator command.
pub async fn run(api: &Api, json: bool, command: OperatorCommand) -> Result<(), CliError> {
    match command {
        OperatorCommand::Companies(CompaniesCommand::Create {
            name,
            price_list,
            accounts,
            enterprise_subscriptions,
        }) => {
            let body = json!({
                "name": name,
                "price_list": price_list,
                "accounts": accounts,
                "enterprise_subscriptions": enterprise_subscriptions,
            });
            let company = api.post("/api/v1/operator/companies", Some(&body), None).await?;
            print_object(json, &format!("Created company {}.", field(&company, "id")), &company);
        }
        OperatorCommand::Companies(CompaniesCommand::Update { id, price_list, accounts, enterprise_subscriptions }) => {
            let mut body = Map::new();
            if let Some(p) = price_list {
                body.insert("price_list".into(), json!(p));
            }
            if let Some(a) = accounts {
                body.insert("accounts".into(), json!(a));
            }
            if let Some(e) = enterprise_subscriptions {
                body.insert("enterprise_subscriptions".into(), json!(e));
            }
            let path = format!("/api/v1/operator/companies/{}", segment(&id));
            let company = api.patch(&path, &Value::Object(body)).await?;
            print_object(json, &format!("Updated company {}.", field(&company, "id")), &company);
        }
        OperatorCommand::Grant { company_id, tokens, note, idempotency_key } => {
            let mut body = Map::new();
            body.insert("tokens".into(), json!(tokens));
            if let Some(note) = note {
                body.insert("note".into(), json!(note));
            }
            let path = format!("/api/v1/operator/companies/{}/token-grants", segment(&company_id));
            let answer = api.post(&path, Some(&Value::Object(body)), idempotency_key.as_deref()).await?;
            if json {
                emit_json(&answer);
            } else {
                let mut out = format!(
                    "Granted {} cloud tokens to company {company_id} (transaction {}).\n\n",
                    super::output::group_digits(tokens),
                    field(&answer, "transaction_id")
                );
                out.push_str(&balance_pairs(answer.get("balance").unwrap_or(&Value::Null)).render());
                emit(&out);
            }
        }
        OperatorCommand::Users(UsersCommand::Create { company_id, name, email, role, password }) => {
            let mut body = Map::new();
            body.insert("name".into(), json!(name));
            body.insert("email".into(), json!(email));
            let role = match role {
                RoleArg::CompanyAdmin => "company_admin",
                RoleArg::Member => "member",
            };
            body.insert("role".into(), json!(role));
            if let Some(password) = password {
                body.insert("password".into(), json!(password));
            }
            let path = format!("/api/v1/operator/companies/{}/users", segment(&company_id));
            let user = api.post(&path, Some(&Value::Object(body)), None).await?;
            print_object(json, &format!("Created user {}.", field(&user, "id")), &user);
        }
        OperatorCommand::Users(UsersCommand::Disable { user_id }) => {
            let path = format!("/api/v1/operator/users/{}", segment(&user_id));
            let user = api.patch(&path, &json!({ "disabled": true })).await?;
            print_object(json, &format!("Disabled user {user_id}: their tokens and sessions are refused."), &user);
        }
        OperatorCommand::Users(UsersCommand::Enable { user_id }) => {
            let path = format!("/api/v1/operator/users/{}", segment(&user_id));
            let user = api.patch(&path, &json!({ "disabled": false })).await?;
            print_object(json, &format!("Enabled user {user_id}."), &user);
        }
        OperatorCommand::Tokens(OperatorTokensCommand::Create { user_id, token }) => {
            let path = format!("/api/v1/operator/users/{}/api-tokens", segment(&user_id));
            print_created(json, &api.post(&path, Some(&token.body()), None).await?);
        }
        OperatorCommand::Tokens(OperatorTokensCommand::List { user_id }) => {
            let path = format!("/api/v1/operator/users/{}/api-tokens", segment(&user_id));
            print_list(json, &api.get(&path, &[]).await?);
        }
        OperatorCommand::Tokens(OperatorTokensCommand::Revoke { token_id }) => {
            api.delete(&format!("/api/v1/operator/api-tokens/{}", segment(&token_id))).await?;
            print_revoked(json, &token_id);
        }
        OperatorCommand::Clock { set: None } => {
            let clock = api.get("/api/v1/operator/clock", &[]).await?;
            if json {
                emit_json(&clock);
            } else {
                emit(&format!("{} ({} clock)\n", field(&clock, "now"), field(&clock, "mode")));
            }
        }
        OperatorCommand::Clock { set: Some(now) } => {
            let answer = api.post("/api/v1/operator/clock", Some(&json!({ "now": now })), None).await?;
            if json {
                emit_json(&answer);
            } else {
                let applied = answer.get("applied").and_then(Value::as_i64).unwrap_or(0);
                emit(&format!(
                    "Clock moved to {}; {applied} scheduled change{} applied.\n",
                    str_field(&answer, "now").unwrap_or(&now),
                    if applied == 1 { "" } else { "s" }
                ));
            }
        }
    }
    Ok(())
}

/// Prints an operator answer: its JSON with `--json`, else a headline and its fields.
fn print_object(json: bool, headline: &str, value: &Value) {
    if json {
        emit_json(value);
    } else {
        emit(&format!("{headline}\n\n{}", generic_pairs(value).render()));
    }
}

/// Parses an instant option (`--set`, `--expires-at`): an RFC 3339 instant (any offset, sent as
/// UTC) or a plain date (midnight UTC).
pub(super) fn parse_instant(text: &str) -> Result<String, String> {
    let text = text.trim();
    let instant = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or("invalid date")?,
            Err(_) => {
                return Err("expected an RFC 3339 instant like 2026-03-12T09:30:00Z, or a date like 2026-03-12".into())
            }
        },
    };
    Ok(instant.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_normalised_to_utc() {
        assert_eq!(parse_instant("2026-03-12T09:30:00Z"), Ok("2026-03-12T09:30:00Z".to_string()));
        assert_eq!(parse_instant("2026-03-12T10:30:00+01:00"), Ok("2026-03-12T09:30:00Z".to_string()));
        assert_eq!(parse_instant("2026-03-12"), Ok("2026-03-12T00:00:00Z".to_string()));
        assert!(parse_instant("12 March").is_err());
    }
}
