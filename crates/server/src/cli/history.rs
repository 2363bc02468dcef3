//! The newest-first histories (the ledger, the audit log) as the API pages them (`limit`,
//! `cursor`, `next_cursor`): one page when `--limit` is given, otherwise every page, followed
//! and merged, so that nothing is silently cut off.

use super::client::{Api, CliError};
use super::output::note;
use serde_json::{json, Value};

/// `--limit` and `--cursor` of a history command.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PageArgs {
    /// Show one page of at most this many entries (1–1000) instead of all of them.
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Continue after the page that printed this cursor.
    #[arg(long, value_name = "CURSOR", requires = "limit")]
    pub cursor: Option<String>,
}

/// The page size when every page is fetched.
const FETCH_ALL_PAGE: &str = "1000";

/// Fetches `path`'s list under `key`: one page as asked, or all of them merged (then
/// `next_cursor` is null). With one page, the cursor of the next is noted on stderr.
pub async fn fetch(api: &Api, path: &str, key: &str, page: &PageArgs) -> Result<Value, CliError> {
    if let Some(limit) = page.limit {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = &page.cursor {
            query.push(("cursor", c.clone()));
        }
        let answer = api.get(path, &query).await?;
        if let Some(next) = answer.get("next_cursor").and_then(Value::as_str) {
            note(&format!("more: add --cursor {next}"));
        }
        return Ok(answer);
    }
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", FETCH_ALL_PAGE.to_string())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let answer = api.get(path, &query).await?;
        items.extend(answer.get(key).and_then(Value::as_array).into_iter().flatten().cloned());
        match answer.get("next_cursor").and_then(Value::as_str) {
            Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_string()),
            _ => break,
        }
    }
    Ok(json!({ key: items, "next_cursor": null }))
}
