//! The Cloud Tokens and Audit Log pages: a company's history, read like a bank statement.
//!
//! Each line says when (a readable UTC date, the exact instant in `<time datetime>`), what
//! happened in words, to which resource (its display name, linked to its Portal page, never a
//! raw id), and for the ledger the signed amount and the balance after it. Audit details are
//! summarised from the event's before/after facts; the raw JSON stays available from
//! `GET /api/v1/audit-events`. Long histories are paged, newest first.

use super::views::{thousands, when, when_parts, Chrome};
use askama::Template;
use genai_app::{AuditEvent, LedgerTransaction};
use genai_core::calendar::{format_instant, parse_instant};
use genai_core::catalog::{Catalog, ResourceType};
use genai_core::ledger::TransactionKind;
use genai_core::ResourceId;
use serde_json::Value;
use std::collections::HashMap;

/// Lines per page of history.
pub const PAGE_SIZE: usize = 50;

/// One page of a newest-first history: the lines after `cursor` (the id of the last line the
/// previous page showed; none, or one not in the history: from the newest), at most
/// [`PAGE_SIZE`], and the cursor of the next page when older lines remain.
///
/// Interim: the application still answers a company's whole history (up to its 10,000-line
/// limit) and this slices it. Once the store pages ledgers and audit logs (`limit` and `cursor`,
/// as `API.md` describes), the handlers ask the application for one page and its `next_cursor`
/// instead, and this function goes; the pages and their links stay as they are.
pub fn page_after<'a, T>(all: &'a [T], cursor: Option<&str>, id: impl Fn(&T) -> &str) -> (&'a [T], Option<String>) {
    let start = cursor.and_then(|c| all.iter().position(|x| id(x) == c)).map_or(0, |i| i + 1);
    let rest = all.get(start..).unwrap_or_default();
    let page = rest.get(..PAGE_SIZE).unwrap_or(rest);
    let next = (rest.len() > page.len()).then(|| page.last().map(|x| id(x).to_string())).flatten();
    (page, next)
}

/// Links between the pages of a history.
pub struct Pager {
    /// The page's own path (`/transactions`), for "Newest".
    pub path: &'static str,
    /// Whether this is an older page (then "Newest" links back to the first).
    pub is_older_page: bool,
    /// The next (older) page's link.
    pub older: Option<String>,
}

impl Pager {
    /// The links of a page reached with `cursor` whose next page starts after `next`.
    pub fn new(path: &'static str, cursor: Option<&str>, next: Option<String>) -> Pager {
        Pager {
            path,
            is_older_page: cursor.is_some_and(|c| !c.is_empty()),
            older: next.map(|n| format!("{path}?cursor={}", super::urlencode(&n))),
        }
    }
}

/// A resource as a history line shows it: its name, linked to its Portal page.
pub struct ResourceLink {
    /// Id (for the link only).
    pub id: String,
    /// Display name (the id, should the resource not be found: resources are never deleted).
    pub name: String,
}

fn link(id: Option<&ResourceId>, names: &HashMap<ResourceId, String>) -> Option<ResourceLink> {
    id.map(|id| ResourceLink { id: id.to_string(), name: names.get(id).cloned().unwrap_or_else(|| id.to_string()) })
}

/// One line of the Cloud Tokens statement.
pub struct TransactionRow {
    /// "12 Mar 2026" and "08:00 UTC" (read as "12 Mar 2026, 08:00 UTC").
    pub at: (String, String),
    /// The exact instant (RFC 3339), for `<time datetime>`.
    pub at_iso: String,
    /// `grant`, `allocate` or `release` (CSS class).
    pub kind: &'static str,
    /// What happened, in words, before the resource's name.
    pub what: &'static str,
    /// The resource (allocations and releases).
    pub resource: Option<ResourceLink>,
    /// The grant's note.
    pub note: String,
    /// Signed amount: "+500" into the available pool, "−30" out of it.
    pub amount: String,
    /// Available right after.
    pub available_after: String,
}

impl TransactionRow {
    /// A ledger transaction as a statement line.
    pub fn new(t: &LedgerTransaction, names: &HashMap<ResourceId, String>) -> TransactionRow {
        let tokens = thousands(t.tokens.get());
        let (what, amount) = match t.kind {
            TransactionKind::Grant => ("Granted by the operator", format!("+{tokens}")),
            TransactionKind::Allocate => ("Allocated to", format!("−{tokens}")),
            TransactionKind::Release => ("Released from", format!("+{tokens}")),
        };
        TransactionRow {
            at: when_parts(t.at),
            at_iso: format_instant(t.at),
            kind: t.kind.as_str(),
            what,
            resource: link(t.resource_id.as_ref(), names),
            note: t.note.clone().unwrap_or_default(),
            amount,
            available_after: thousands(t.available_after.get()),
        }
    }
}

/// The Cloud Tokens page.
#[derive(Template)]
#[template(path = "transactions.html")]
pub struct TransactionsPage {
    /// Chrome.
    pub chrome: Chrome,
    /// Lines, newest first.
    pub rows: Vec<TransactionRow>,
    /// Paging.
    pub pager: Pager,
}

/// One line of the Audit Log.
pub struct AuditRow {
    /// "12 Mar 2026" and "08:00 UTC" (read as "12 Mar 2026, 08:00 UTC").
    pub at: (String, String),
    /// The exact instant (RFC 3339), for `<time datetime>`.
    pub at_iso: String,
    /// Who: a person's email, "Operator" or "Scheduler".
    pub actor: String,
    /// What, in words.
    pub action: String,
    /// The resource it concerns.
    pub resource: Option<ResourceLink>,
    /// The details, summarised in words.
    pub details: String,
}

impl AuditRow {
    /// Who, in two halves at the `@` of an email ("ada", "@example.com"), so that a narrow
    /// column breaks a long address there rather than anywhere.
    pub fn actor_parts(&self) -> (&str, &str) {
        match self.actor.find('@') {
            Some(i) => self.actor.split_at(i),
            None => (&self.actor, ""),
        }
    }

    /// An audit event as a line of the log.
    pub fn new(e: &AuditEvent, names: &HashMap<ResourceId, String>, catalog: &Catalog) -> AuditRow {
        AuditRow {
            at: when_parts(e.at),
            at_iso: format_instant(e.at),
            actor: match e.actor.as_str() {
                "operator" => "Operator".into(),
                "scheduler" => "Scheduler".into(),
                who => who.into(),
            },
            action: action_words(&e.action),
            resource: link(e.resource_id.as_ref(), names),
            details: summary(&e.action, &e.details, catalog),
        }
    }
}

/// The Audit Log page.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    /// Chrome.
    pub chrome: Chrome,
    /// Lines, newest first.
    pub rows: Vec<AuditRow>,
    /// Paging.
    pub pager: Pager,
}

/// An audit action in words; an action this version does not know reads as its name in words
/// (`api_token.revoked` → "Api token revoked").
pub fn action_words(action: &str) -> String {
    let known = match action {
        "company.created" => "Company created",
        "company.updated" => "Company changed",
        "tokens.granted" => "Cloud tokens granted",
        "user.created" => "User added",
        "api_token.created" => "API token created",
        "api_token.revoked" => "API token revoked",
        "resource.provisioned" => "Provisioned",
        "resource.upgraded" => "Plan upgraded",
        "resource.downgrade_scheduled" => "Plan downgrade scheduled",
        "resource.downgrade_cancelled" => "Plan downgrade cancelled",
        "resource.downgraded" => "Plan downgraded",
        "resource.deprovision_scheduled" => "Deprovisioning scheduled",
        "resource.deprovision_cancelled" => "Deprovisioning cancelled",
        "resource.deprovisioned" => "Deprovisioned",
        other => return humanize(other),
    };
    known.into()
}

/// `api_token.revoked` → "Api token revoked".
fn humanize(name: &str) -> String {
    let words = name.replace(['.', '_'], " ");
    let mut chars = words.trim().chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A JSON value's text, for a summary: strings as they are, numbers with separators.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.as_i64().map_or_else(|| n.to_string(), thousands)),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        _ => None,
    }
}

/// An instant in the details, readable.
fn instant(v: &Value) -> Option<String> {
    v.as_str().and_then(parse_instant).map(when)
}

/// "1 account", "2 accounts".
fn count(v: &Value, one: &str, many: &str) -> Option<String> {
    v.as_i64().map(|n| format!("{} {}", thousands(n), if n == 1 { one } else { many }))
}

/// The details of an audit event in a sentence or a few short phrases.
pub fn summary(action: &str, d: &Value, catalog: &Catalog) -> String {
    let (before, after) = (&d["before"], &d["after"]);
    let plan = |side: &Value| text(&side["plan"]).unwrap_or_else(|| "—".into());
    let tokens = |side: &Value| side["cloud_tokens"].as_i64().unwrap_or(0);
    let parts: Vec<String> = match action {
        "resource.provisioned" => vec![
            d["type"].as_str().and_then(ResourceType::parse).map(|t| t.label().to_string()),
            d["model"].as_str().map(|m| catalog.model_name(m).to_string()),
            text(&d["region"]),
            Some(format!("{} plan, {} cloud tokens", plan(after), thousands(tokens(after)))),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "resource.upgraded" | "resource.downgraded" => {
            let change = format!("Plan {} → {}", plan(before), plan(after));
            let diff = tokens(after) - tokens(before);
            let money = if diff >= 0 {
                format!("{} more cloud tokens", thousands(diff))
            } else {
                format!("{} cloud tokens released", thousands(-diff))
            };
            vec![change, money]
        }
        "resource.downgrade_scheduled" => {
            let s = &after["scheduled"];
            let mut v = vec![format!("Plan {} → {}", plan(before), text(&s["plan"]).unwrap_or_else(|| "—".into()))];
            v.extend(instant(&s["effective_at"]).map(|t| format!("from {t}")));
            v
        }
        "resource.downgrade_cancelled" => {
            let to = text(&before["scheduled"]["plan"]).map(|p| format!(" (not {p})")).unwrap_or_default();
            vec![format!("Stays on the {} plan{to}", plan(after))]
        }
        "resource.deprovision_scheduled" => {
            vec![instant(&after["scheduled"]["effective_at"])
                .map_or_else(|| "At the end of the bundle month".into(), |t| format!("Takes effect on {t}"))]
        }
        "resource.deprovision_cancelled" => {
            let was =
                instant(&before["scheduled"]["effective_at"]).map(|t| format!(" (was due {t})")).unwrap_or_default();
            vec![format!("Stays active{was}")]
        }
        "resource.deprovisioned" => vec![format!("{} cloud tokens released", thousands(tokens(before)))],
        "tokens.granted" => {
            let mut v = vec![format!("{} cloud tokens", text(&d["tokens"]).unwrap_or_else(|| "—".into()))];
            v.extend(text(&d["note"]).map(|n| format!("“{n}”")));
            v
        }
        "company.created" => vec![
            text(&d["name"]).map(|n| format!("“{n}”")),
            text(&d["price_list"]).map(|p| format!("price list {p}")),
            count(&d["accounts"], "account", "accounts"),
            count(&d["enterprise_subscriptions"], "enterprise subscription", "enterprise subscriptions"),
        ]
        .into_iter()
        .flatten()
        .collect(),
        "company.updated" => {
            let changed: Vec<String> = ["name", "price_list", "accounts", "enterprise_subscriptions"]
                .into_iter()
                .filter(|k| before[*k] != after[*k])
                .map(|k| {
                    let show = |v: &Value| text(v).unwrap_or_else(|| "—".into());
                    format!("{} {} → {}", humanize(k).to_lowercase(), show(&before[k]), show(&after[k]))
                })
                .collect();
            if changed.is_empty() {
                vec!["Nothing changed".into()]
            } else {
                changed
            }
        }
        "user.created" => {
            let role = match d["role"].as_str() {
                Some("company_admin") => "company admin",
                Some("member") => "member",
                _ => "user",
            };
            vec![format!("{} ({role})", text(&d["email"]).unwrap_or_else(|| "—".into()))]
        }
        "api_token.created" | "api_token.revoked" => {
            vec![text(&d["description"]).map_or_else(|| "No description".into(), |t| format!("“{t}”"))]
        }
        _ => generic(d),
    };
    parts.join(" · ")
}

/// A summary of details this version does not know: their plain facts as "key: value"
/// phrases (ids and nested objects left out), never raw JSON.
fn generic(d: &Value) -> Vec<String> {
    let Some(map) = d.as_object() else { return text(d).into_iter().collect() };
    map.iter()
        .filter(|(k, _)| !k.ends_with("_id") && *k != "id")
        .filter_map(|(k, v)| text(v).map(|t| format!("{}: {t}", humanize(k).to_lowercase())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats() {
        let all: Vec<String> = (0..123).map(|i| format!("id{i}")).collect();
        fn id(s: &String) -> &str {
            s
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let (page, next) = page_after(&all, cursor.as_deref(), id);
            seen.extend(page.iter().cloned());
            match next {
                Some(n) => {
                    assert_eq!(page.len(), PAGE_SIZE);
                    cursor = Some(n);
                }
                None => break,
            }
        }
        assert_eq!(seen, all);
        // Exactly a page: no Older link.
        assert_eq!(page_after(&all[..PAGE_SIZE], None, id).1, None);
        // An unknown cursor starts from the newest; an empty history is one empty page.
        assert_eq!(page_after(&all, Some("gone"), id).0.first().map(String::as_str), Some("id0"));
        assert_eq!(page_after(&[] as &[String], None, id), (&[] as &[String], None));
    }

    #[test]
    fn actions_read_as_words() {
        assert_eq!(action_words("resource.upgraded"), "Plan upgraded");
        assert_eq!(action_words("user.disabled"), "User disabled");
        assert_eq!(action_words("api_token.revoked"), "API token revoked");
    }

    #[test]
    fn details_are_summarised_not_dumped() {
        let c = Catalog::builtin();
        let snap = |plan: &str, t: i64| json!({"status": "active", "plan": plan, "cloud_tokens": t, "scheduled": null});
        let provisioned = json!({"before": null, "after": snap("small", 30), "display_name": "Bot",
            "type": "text_generation", "model": "claude-sonnet-4.6", "region": "eu-central-1"});
        assert_eq!(
            summary("resource.provisioned", &provisioned, &c),
            "Text Generation · Anthropic Claude Sonnet 4.6 · eu-central-1 · small plan, 30 cloud tokens"
        );
        let up = json!({"before": snap("small", 30), "after": snap("medium", 60)});
        assert_eq!(summary("resource.upgraded", &up, &c), "Plan small → medium · 30 more cloud tokens");
        let down = json!({"before": snap("medium", 60), "after": snap("small", 30)});
        assert_eq!(summary("resource.downgraded", &down, &c), "Plan medium → small · 30 cloud tokens released");
        let mut leaving = snap("small", 30);
        leaving["scheduled"] = json!({"kind": "deprovision", "effective_at": "2026-03-12T08:00:00Z"});
        let scheduled = json!({"before": snap("small", 30), "after": leaving});
        assert_eq!(summary("resource.deprovision_scheduled", &scheduled, &c), "Takes effect on 12 Mar 2026, 08:00 UTC");
        let grant = json!({"tokens": 1500, "note": "Q1 <b>", "transaction_id": "txn_1"});
        assert_eq!(summary("tokens.granted", &grant, &c), "1,500 cloud tokens · “Q1 <b>”");
        let updated = json!({"before": {"name": "A", "price_list": "FY21", "accounts": 1, "enterprise_subscriptions": 1},
            "after": {"name": "A", "price_list": "FY20", "accounts": 2, "enterprise_subscriptions": 1}});
        assert_eq!(summary("company.updated", &updated, &c), "price list FY21 → FY20 · accounts 1 → 2");
        let unknown = json!({"user_id": "usr_1", "disabled": true, "reason": "left", "nested": {"a": 1}});
        assert_eq!(summary("user.updated", &unknown, &c), "disabled: yes · reason: left");
        for (action, d) in [("resource.provisioned", &provisioned), ("user.updated", &unknown)] {
            let s = summary(action, d, &c);
            assert!(!s.contains('{') && !s.contains("\":"), "no JSON in {s}");
        }
    }
}
