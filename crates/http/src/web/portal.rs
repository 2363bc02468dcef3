//! The GenAI Portal in the browser (RUNTIME.md §7): `/portal` lists the caller's resources, and a
//! resource's page has the tabs **Consumption** (model resources), **Content** (knowledge bases,
//! in [`super::content`]), **Team**, **Keys** and **Settings**.
//!
//! Who sees what is decided by the Portal use cases (`App::team_resource` behind every one of
//! them): a company admin sees every resource of the company, a member the resources whose team
//! they are on, and for anyone else a resource does not exist (404). Every form carries the
//! session's CSRF token; every value is escaped by askama.
//!
//! Rules chosen here (also in docs/portal.md):
//! - A tab is a page of its own (`/portal/resources/{id}` is Consumption, or Content for a
//!   knowledge base, which has no token quota), so each works without JavaScript and can be
//!   linked.
//! - **Create Key** asks for a description in a dialog; the answer to it is a dialog with the
//!   secret and the configuration key, sent with `Cache-Control: no-store`. With JavaScript it is
//!   swapped in by htmx, so the page's address stays the Keys tab and reloading shows the list
//!   only; without JavaScript the form posts and the answer is a page with the dialog open,
//!   which no cache keeps. The secret is never put in a URL or a cookie.
//! - Revoking a key and leaving a team ask for confirmation; removing the last member is refused
//!   with the use case's message.
//! - The consumption period is `period=7d` (the last 7 UTC days), `month` (the current bundle
//!   month, the default) or `prev-N` (the N-th bundle month before it, up to 12 back and not
//!   before the resource existed). **Export** downloads the same CSV as the API's
//!   `consumption.csv` for the period shown.

use super::chart::{self, Chart, ChartDay};
use super::views::{sentence, settings, thousands, when, Chrome, Row};
use super::{chrome, error_page, html, see_other, Fields, WebUser};
use crate::headers::ShownOnce;
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use genai_app::portal::Consumption;
use genai_app::{AppError, Member, RuntimeKey};
use genai_core::calendar::{self, format_day};
use genai_core::catalog::ResourceType;
use genai_core::quota;
use genai_core::resource::Resource;
use genai_core::{DomainError, ResourceId, UserId};
use std::collections::HashMap;

/// How many bundle months back the period choice goes.
const PREVIOUS_MONTHS: u32 = 12;

/// The Portal's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal", get(list))
        .route("/portal/resources/{id}", get(first_tab))
        .route("/portal/resources/{id}/consumption", get(consumption_tab))
        .route("/portal/resources/{id}/consumption.csv", get(consumption_csv))
        .route("/portal/resources/{id}/team", get(team_tab).post(add_member))
        .route("/portal/resources/{id}/team/{user_id}/remove", get(remove_confirm).post(remove_member))
        .route("/portal/resources/{id}/keys", get(keys_tab).post(create_key))
        .route("/portal/resources/{id}/keys/new", get(new_key))
        .route("/portal/resources/{id}/keys/{key_id}/revoke", get(revoke_confirm).post(revoke_key))
        .route("/portal/resources/{id}/settings", get(settings_tab))
        .merge(super::content::routes())
}

// ---- views ----------------------------------------------------------------------------------

/// The Portal list.
#[derive(Template)]
#[template(path = "portal_list.html")]
pub struct PortalListPage {
    /// Chrome.
    pub chrome: Chrome,
    /// One row per resource (the overview's rows, with this month's usage).
    pub rows: Vec<(Row, &'static str)>,
}

/// A tab of a resource's page.
pub struct PortalTab {
    /// Its address.
    pub href: String,
    /// Its label.
    pub label: &'static str,
    /// Whether it is shown now.
    pub selected: bool,
}

/// The head of a resource's page.
pub struct ResourceHead {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Type label.
    pub type_label: &'static str,
    /// Status (CSS class) and label.
    pub status: &'static str,
    /// Status label.
    pub status_label: String,
    /// Environment.
    pub environment: &'static str,
    /// Region.
    pub region: String,
    /// The tabs.
    pub tabs: Vec<PortalTab>,
    /// The Control Center's page of its type (company admins).
    pub control_center: Option<String>,
    /// Whether keys and members can still change.
    pub live: bool,
}

impl ResourceHead {
    fn new(r: &Resource, tab: &str, is_admin: bool) -> ResourceHead {
        let base = format!("/portal/resources/{}", r.id);
        let mut tabs = Vec::new();
        if r.resource_type != ResourceType::KnowledgeBase {
            tabs.push(("consumption", "Consumption"));
        }
        if r.resource_type == ResourceType::KnowledgeBase {
            tabs.push(("content", "Content"));
        }
        tabs.extend([("team", "Team"), ("keys", "Keys"), ("settings", "Settings")]);
        ResourceHead {
            id: r.id.to_string(),
            name: r.display_name.to_string(),
            type_label: r.resource_type.label(),
            status: r.status.as_str(),
            status_label: r.status_label(),
            environment: r.environment.as_str(),
            region: r.region.clone(),
            tabs: tabs
                .into_iter()
                .map(|(id, label)| PortalTab { href: format!("{base}/{id}"), label, selected: id == tab })
                .collect(),
            control_center: is_admin.then(|| format!("/resources?type={}", r.resource_type.as_str())),
            live: r.is_live(),
        }
    }
}

/// One quantity of the current bundle month against its quota.
pub struct UsedLine {
    /// `input`, `output`, `calls`.
    pub id: &'static str,
    /// Label.
    pub label: &'static str,
    /// Used.
    pub used: i64,
    /// Used, formatted.
    pub used_text: String,
    /// The quota (none for API calls).
    pub quota: Option<i64>,
    /// The quota, formatted.
    pub quota_text: String,
    /// Percent of the quota used, rounded down (may pass 100).
    pub percent: i64,
    /// The meter's value (0–100).
    pub meter: i64,
    /// The percentage for people: "<1%" when something was used but not a whole percent.
    pub percent_text: String,
}

impl UsedLine {
    fn new(id: &'static str, label: &'static str, used: i64, quota: Option<i64>) -> UsedLine {
        let percent = match quota {
            Some(q) if q > 0 => used.saturating_mul(100) / q,
            _ => 0,
        };
        UsedLine {
            id,
            label,
            used,
            used_text: thousands(used),
            quota,
            quota_text: quota.map(thousands).unwrap_or_default(),
            percent,
            meter: percent.clamp(0, 100),
            percent_text: if percent == 0 && used > 0 { "<1%".into() } else { format!("{percent}%") },
        }
    }
}

/// A period of the choice.
pub struct PeriodOption {
    /// `period=` value.
    pub value: String,
    /// Label.
    pub label: String,
    /// Chosen.
    pub selected: bool,
}

/// A day of the table under the charts.
pub struct DayRow {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// For people.
    pub label: String,
    /// Input tokens.
    pub input: String,
    /// Output tokens.
    pub output: String,
    /// API calls.
    pub calls: String,
}

/// The Consumption tab.
pub struct ConsumptionView {
    /// "This bundle month", or "Its last bundle month" for a deprovisioned resource.
    pub month_heading: &'static str,
    /// The current bundle month, for people.
    pub bundle_month: String,
    /// When the quota refills.
    pub refills: String,
    /// The current bundle month against the quota.
    pub used: Vec<UsedLine>,
    /// The period choice.
    pub periods: Vec<PeriodOption>,
    /// The period shown, for people.
    pub period_label: String,
    /// The charts.
    pub charts: Vec<Chart>,
    /// Whether the resource has output tokens.
    pub has_output: bool,
    /// Days shown (newest first), with usage only.
    pub days: Vec<DayRow>,
    /// The CSV of the period shown.
    pub export_href: String,
}

/// A member row.
pub struct MemberRow {
    /// User id.
    pub user_id: String,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Joined.
    pub added: String,
    /// Whether it is the viewer.
    pub is_me: bool,
}

/// The Team tab.
pub struct TeamView {
    /// Members.
    pub members: Vec<MemberRow>,
    /// The add form's values and errors.
    pub email: String,
    /// Name typed.
    pub name: String,
    /// Field errors.
    pub errors: HashMap<String, String>,
    /// A refusal that is no field's (last member, deprovisioned).
    pub error: Option<String>,
}

impl TeamView {
    /// The error of a field, or "".
    pub fn error_of(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }
}

/// A key row.
pub struct KeyRow {
    /// Id.
    pub id: String,
    /// Description.
    pub description: String,
    /// Created.
    pub created: String,
    /// By whom (name).
    pub created_by: String,
    /// By whom (email; empty when they are no longer known here).
    pub created_by_email: String,
    /// Last used.
    pub last_used: String,
    /// Revoked when (empty: active).
    pub revoked: String,
    /// For a companion key: the knowledge base it serves.
    pub companion_of: Option<String>,
}

/// The Keys tab's list.
pub struct KeysView {
    /// Resource id.
    pub resource_id: String,
    /// Whether keys can be created.
    pub live: bool,
    /// Rows, newest first.
    pub rows: Vec<KeyRow>,
    /// CSRF token.
    pub csrf: String,
}

/// A linked resource on the Settings tab.
pub struct Linked {
    /// What the link is ("Embeddings resource", "Used by knowledge base").
    pub label: &'static str,
    /// Its name (or id when the viewer may not see it).
    pub name: String,
    /// Its Portal page, when the viewer may see it.
    pub href: Option<String>,
}

/// A resource's Portal page, one tab shown.
#[derive(Template)]
#[template(path = "portal.html")]
pub struct PortalPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The head and tabs.
    pub head: ResourceHead,
    /// The tab shown.
    pub tab: &'static str,
    /// Consumption.
    pub consumption: Option<ConsumptionView>,
    /// Team.
    pub team: Option<TeamView>,
    /// Keys.
    pub keys: Option<KeysView>,
    /// Settings.
    pub settings: Vec<(String, String)>,
    /// Linked resources.
    pub linked: Vec<Linked>,
    /// Content (knowledge bases).
    pub content: Option<super::content::ContentView>,
    /// A dialog open on the page (the no-JavaScript form of the key dialogs), rendered by askama.
    pub dialog: Option<String>,
}

/// The "Create Key" dialog: asks for a description.
#[derive(Template)]
#[template(path = "portal_key_new.html")]
pub struct NewKeyDialog {
    /// Resource id.
    pub id: String,
    /// CSRF token.
    pub csrf: String,
    /// Description typed.
    pub description: String,
    /// Why it was refused.
    pub error: Option<String>,
}

/// The dialog showing a new key once (and, for htmx, the refreshed list out of band).
#[derive(Template)]
#[template(path = "portal_key_created.html")]
pub struct KeyCreatedDialog {
    /// Resource id.
    pub id: String,
    /// Its description.
    pub description: String,
    /// The secret.
    pub secret: String,
    /// The configuration key.
    pub configuration_key: String,
    /// Whether a companion key was made on the embeddings resource.
    pub companion: bool,
    /// The list, swapped in out of band (htmx answers only).
    pub k: Option<KeysView>,
}

/// A confirmation dialog (revoke a key, remove a member).
#[derive(Template)]
#[template(path = "portal_confirm.html")]
pub struct ConfirmDialog {
    /// Heading.
    pub title: String,
    /// The question.
    pub text: String,
    /// Where the form posts.
    pub action: String,
    /// The button.
    pub button: String,
    /// Where Cancel goes.
    pub back: String,
    /// CSRF token.
    pub csrf: String,
}

// ---- helpers --------------------------------------------------------------------------------

pub(super) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

fn flash(q: &Fields) -> Option<String> {
    Some(
        match q.get("done")?.as_str() {
            "added" => "The member was added to the team.",
            "already" => "That person is already on the team.",
            "removed" => "The member was removed from the team.",
            "revoked" => "The key was revoked; calls with it are refused from now on.",
            _ => return None,
        }
        .to_string(),
    )
}

pub(super) async fn resource_or_page(state: &AppState, who: &WebUser, id: &str) -> Result<Resource, Response> {
    match state.app.portal_resource(&who.actor, &ResourceId(id.to_string())).await {
        Ok(r) => Ok(r),
        Err(e) => Err(portal_error(state, who, e).await),
    }
}

/// The Portal's error page for a use case's refusal (a resource of another team: 404, …).
pub(super) async fn portal_error(state: &AppState, who: &WebUser, e: AppError) -> Response {
    error_page(&chrome(state, who, "GenAI Portal", "portal", None).await, e)
}

/// Renders a tab of a resource's page.
#[allow(clippy::too_many_arguments)]
pub(super) async fn page(
    state: &AppState,
    who: &WebUser,
    r: &Resource,
    tab: &'static str,
    status: StatusCode,
    flash: Option<String>,
    fill: impl FnOnce(&mut PortalPage),
) -> Response {
    let mut p = PortalPage {
        chrome: Chrome {
            title: r.display_name.to_string(),
            ..chrome(state, who, "GenAI Portal", "portal", flash).await
        },
        head: ResourceHead::new(r, tab, who.is_admin()),
        tab,
        consumption: None,
        team: None,
        keys: None,
        settings: Vec::new(),
        linked: Vec::new(),
        content: None,
        dialog: None,
    };
    fill(&mut p);
    html(status, &p)
}

// ---- the list -------------------------------------------------------------------------------

async fn list(State(state): State<AppState>, who: WebUser) -> Response {
    let page = async {
        let resources = state.app.portal_resources(&who.actor, false).await?;
        let usage = state.app.month_usage(&resources).await?;
        let catalog = state.app.catalog();
        let mut rows: Vec<(Row, &'static str)> = resources
            .iter()
            .zip(usage)
            .map(|(r, u)| (Row::with_usage(r, catalog, Some(&u)), r.resource_type.label()))
            .collect();
        // A knowledge base's storage used, from its storage counter (RUNTIME.md §8).
        for ((row, _), r) in rows.iter_mut().zip(&resources) {
            if r.resource_type == ResourceType::KnowledgeBase {
                row.set_storage_used(state.app.kb_storage(r).await?.bytes_used);
            }
        }
        Ok::<_, AppError>(PortalListPage { chrome: chrome(&state, &who, "GenAI Portal", "portal", None).await, rows })
    };
    match page.await {
        Ok(p) => html(StatusCode::OK, &p),
        Err(e) => portal_error(&state, &who, e).await,
    }
}

// ---- consumption ----------------------------------------------------------------------------

async fn first_tab(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    if r.resource_type == ResourceType::KnowledgeBase {
        super::content::render(&state, &who, &r, StatusCode::OK, None, Default::default()).await
    } else {
        render_consumption(&state, &who, &r, &q).await
    }
}

async fn consumption_tab(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    match resource_or_page(&state, &who, &id).await {
        Ok(r) => render_consumption(&state, &who, &r, &q).await,
        Err(p) => p,
    }
}

/// The period asked for: the days shown, their label, and the days to read (from the start of
/// the bundle month of the first day shown, for the running total).
struct Period {
    label: String,
    shown: quota::DayRange,
    read_from: chrono::NaiveDate,
}

fn month_label(start: genai_core::Instant, end: genai_core::Instant) -> String {
    format!("{} – {}", format_day(start), format_day(end))
}

/// The current bundle month's name: a deprovisioned resource's is its last.
fn this_month(r: &Resource) -> &'static str {
    if r.is_live() {
        "This bundle month"
    } else {
        "Its last bundle month"
    }
}

/// The period choices of a resource now, and the one chosen (unknown values: the default).
fn periods(r: &Resource, now: genai_core::Instant, asked: Option<&str>) -> Option<(Vec<PeriodOption>, Period)> {
    let current = r.bundle_month(now)?;
    let anchor = r.created_at;
    let month_start_day = |day: chrono::NaiveDate| {
        let t = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(anchor).max(anchor);
        calendar::bundle_month_at(anchor, t).map_or(quota::day_of(anchor), |m| quota::day_of(m.start))
    };
    let today = quota::day_of(now.min(current.end - chrono::Duration::milliseconds(1)));
    let mut options = vec![
        ("7d".to_string(), "Last 7 days".to_string()),
        ("month".to_string(), format!("{} ({})", this_month(r), month_label(current.start, current.end))),
    ];
    for n in 1..=PREVIOUS_MONTHS.min(current.index) {
        let k = current.index - n;
        if let (Some(s), Some(e)) = (calendar::boundary(anchor, k), calendar::boundary(anchor, k + 1)) {
            options.push((format!("prev-{n}"), month_label(s, e)));
        }
    }
    let chosen = asked.filter(|a| options.iter().any(|(v, _)| v == a)).unwrap_or("month").to_string();
    let period = if chosen == "7d" {
        let from = (today - chrono::Duration::days(6)).max(quota::day_of(anchor));
        Period {
            label: "the last 7 days".into(),
            shown: quota::DayRange { from, to: today },
            read_from: month_start_day(from).min(from),
        }
    } else if let Some(n) = chosen.strip_prefix("prev-").and_then(|n| n.parse::<u32>().ok()) {
        let k = current.index.saturating_sub(n);
        let (s, e) = (calendar::boundary(anchor, k)?, calendar::boundary(anchor, k + 1)?);
        let shown = quota::DayRange::of_bundle_month(s, e);
        Period { label: format!("the bundle month {}", month_label(s, e)), shown, read_from: shown.from }
    } else {
        let shown = quota::DayRange::of_bundle_month(current.start, current.end);
        Period {
            label: format!("{} ({})", this_month(r).to_lowercase(), month_label(current.start, current.end)),
            shown,
            read_from: shown.from,
        }
    };
    let options =
        options.into_iter().map(|(value, label)| PeriodOption { selected: value == chosen, value, label }).collect();
    Some((options, period))
}

fn consumption_view(
    r: &Resource,
    c: &Consumption,
    options: Vec<PeriodOption>,
    p: &Period,
    today: chrono::NaiveDate,
) -> ConsumptionView {
    let has_output = r.resource_type == ResourceType::TextGeneration;
    let anchor = r.created_at;
    // The days bundle months start on, around the period.
    let starts: Vec<chrono::NaiveDate> =
        (0..=c.bundle_month.index + 1).filter_map(|k| calendar::boundary(anchor, k)).map(quota::day_of).collect();
    let by_day: HashMap<&str, &genai_app::DayUsage> = c.days.iter().map(|d| (d.day.as_str(), d)).collect();
    // What earlier days of the first shown day's bundle month used.
    let first_start = starts.iter().rev().find(|s| **s <= p.shown.from).copied().unwrap_or(p.read_from);
    let carried = |f: fn(&genai_app::DayUsage) -> i64| -> i64 {
        c.days
            .iter()
            .filter(|d| {
                quota::parse_day(&d.day)
                    .is_some_and(|day| day >= first_start && day >= p.read_from && day < p.shown.from)
            })
            .map(f)
            .sum()
    };
    let series = |f: fn(&genai_app::DayUsage) -> i64| -> Vec<ChartDay> {
        let carry = carried(f);
        p.shown
            .days()
            .enumerate()
            .map(|(i, day)| {
                let key = quota::format_day(day);
                ChartDay {
                    label: day.format("%-d %b").to_string(),
                    date: day.format("%-d %b %Y").to_string(),
                    value: (day <= today).then(|| by_day.get(key.as_str()).map_or(0, |d| f(d))),
                    month_starts: starts.contains(&day),
                    carried: if i == 0 { carry } else { 0 },
                }
            })
            .collect()
    };
    let mut charts =
        vec![chart::chart("input", "Input tokens", "input tokens", &series(|d| d.input_tokens), Some(c.quota.input))];
    if has_output {
        charts.push(chart::chart(
            "output",
            "Output tokens",
            "output tokens",
            &series(|d| d.output_tokens),
            Some(c.quota.output),
        ));
    }
    charts.push(chart::chart("calls", "API calls", "calls", &series(|d| d.api_calls), None));
    let mut used = vec![UsedLine::new("input", "Input tokens", c.used.input_tokens, Some(c.quota.input))];
    if has_output {
        used.push(UsedLine::new("output", "Output tokens", c.used.output_tokens, Some(c.quota.output)));
    }
    used.push(UsedLine::new("calls", "API calls", c.used.api_calls, None));
    let days = c
        .days_with_usage()
        .filter(|d| quota::parse_day(&d.day).is_some_and(|day| day >= p.shown.from && day <= p.shown.to))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .map(|d| DayRow {
            date: d.day.clone(),
            label: quota::parse_day(&d.day).map_or(d.day.clone(), |day| day.format("%-d %b %Y").to_string()),
            input: thousands(d.input_tokens),
            output: thousands(d.output_tokens),
            calls: thousands(d.api_calls),
        })
        .collect();
    ConsumptionView {
        month_heading: this_month(r),
        bundle_month: month_label(c.bundle_month.start, c.bundle_month.end),
        refills: if r.is_live() { when(c.bundle_month.end) } else { String::new() },
        used,
        periods: options,
        period_label: p.label.clone(),
        charts,
        has_output,
        days,
        export_href: format!(
            "/portal/resources/{}/consumption.csv?from={}&to={}",
            r.id,
            quota::format_day(p.shown.from),
            quota::format_day(p.shown.to)
        ),
    }
}

async fn render_consumption(state: &AppState, who: &WebUser, r: &Resource, q: &Fields) -> Response {
    if r.resource_type == ResourceType::KnowledgeBase {
        return render_settings(state, who, r).await;
    }
    let now = state.app.now();
    let Some((options, period)) = periods(r, now, q.get("period").map(String::as_str)) else {
        let c = chrome(state, who, "GenAI Portal", "portal", None).await;
        return error_page(&c, AppError::Internal(format!("the bundle month of {} cannot be computed", r.id)));
    };
    let (from, to) = (quota::format_day(period.read_from), quota::format_day(period.shown.to));
    let c = match state.app.consumption(&who.actor, &r.id, Some(&from), Some(&to)).await {
        Ok(c) => c,
        Err(e) => return portal_error(state, who, e).await,
    };
    let view = consumption_view(r, &c, options, &period, quota::day_of(now));
    page(state, who, r, "consumption", StatusCode::OK, None, |p| p.consumption = Some(view)).await
}

async fn consumption_csv(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    let from = q.get("from").map(String::as_str).filter(|s| !s.is_empty());
    let to = q.get("to").map(String::as_str).filter(|s| !s.is_empty());
    match state.app.consumption(&who.actor, &ResourceId(id), from, to).await {
        Ok(c) => {
            let file = format!(
                "attachment; filename=\"consumption-{}-{}-{}.csv\"",
                c.resource.id,
                quota::format_day(c.range.from),
                quota::format_day(c.range.to)
            );
            let mut res = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], c.csv()).into_response();
            if let Ok(v) = HeaderValue::from_str(&file) {
                res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            res
        }
        Err(e) => portal_error(&state, &who, e).await,
    }
}

// ---- team -----------------------------------------------------------------------------------

fn member_rows(members: &[Member], me: &UserId) -> Vec<MemberRow> {
    members
        .iter()
        .map(|m| MemberRow {
            user_id: m.user_id.to_string(),
            name: m.name.clone(),
            email: m.email.clone(),
            added: when(m.added_at),
            is_me: &m.user_id == me,
        })
        .collect()
}

async fn render_team(
    state: &AppState,
    who: &WebUser,
    r: &Resource,
    status: StatusCode,
    flash: Option<String>,
    form: (String, String, HashMap<String, String>, Option<String>),
) -> Response {
    let members = match state.app.members(&who.actor, &r.id).await {
        Ok(m) => m,
        Err(e) => return portal_error(state, who, e).await,
    };
    let (email, name, errors, error) = form;
    let view = TeamView { members: member_rows(&members, &who.user.id), email, name, errors, error };
    page(state, who, r, "team", status, flash, |p| p.team = Some(view)).await
}

async fn team_tab(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    match resource_or_page(&state, &who, &id).await {
        Ok(r) => render_team(&state, &who, &r, StatusCode::OK, flash(&q), Default::default()).await,
        Err(p) => p,
    }
}

async fn add_member(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let email = f.get("email").cloned().unwrap_or_default();
    let name = f.get("name").cloned().unwrap_or_default();
    let name_opt = Some(name.trim()).filter(|n| !n.is_empty());
    match state.app.add_member(&who.actor, &r.id, Some(email.trim()), name_opt).await {
        Ok((_, added)) => {
            see_other(&format!("/portal/resources/{}/team?done={}", r.id, if added { "added" } else { "already" }))
        }
        Err(AppError::Domain(DomainError::Validation(fields))) => {
            let errors = fields.into_iter().map(|(k, v)| (k, sentence(&v))).collect();
            render_team(&state, &who, &r, StatusCode::UNPROCESSABLE_ENTITY, None, (email, name, errors, None)).await
        }
        Err(e @ AppError::Domain(_)) => {
            let msg = Some(sentence(&e.to_string()));
            render_team(&state, &who, &r, StatusCode::CONFLICT, None, (email, name, HashMap::new(), msg)).await
        }
        Err(e) => portal_error(&state, &who, e).await,
    }
}

async fn remove_confirm(
    State(state): State<AppState>,
    who: WebUser,
    headers: HeaderMap,
    Path((id, user_id)): Path<(String, String)>,
) -> Response {
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let members = match state.app.members(&who.actor, &r.id).await {
        Ok(m) => m,
        Err(e) => return portal_error(&state, &who, e).await,
    };
    let Some(m) = members.iter().find(|m| m.user_id.as_str() == user_id) else {
        return portal_error(&state, &who, AppError::NotFound("team member".into())).await;
    };
    let me = m.user_id == who.user.id;
    let text = if me {
        format!(
            "Leave the team of {}? You will no longer see it in your Portal unless someone adds you again.",
            r.display_name
        )
    } else {
        format!(
            "Remove {} <{}> from the team of {}? They will no longer see it in their Portal.",
            m.name, m.email, r.display_name
        )
    };
    let dialog = ConfirmDialog {
        title: if me { "Leave the team".into() } else { "Remove member".into() },
        text,
        action: format!("/portal/resources/{}/team/{}/remove", r.id, m.user_id),
        button: if me { "Leave".into() } else { "Remove".into() },
        back: format!("/portal/resources/{}/team", r.id),
        csrf: who.csrf(),
    };
    confirm(&state, &who, &r, "team", &headers, dialog).await
}

/// A confirmation: the dialog alone for htmx, else the tab with it open.
async fn confirm(
    state: &AppState,
    who: &WebUser,
    r: &Resource,
    tab: &'static str,
    headers: &HeaderMap,
    dialog: ConfirmDialog,
) -> Response {
    if is_htmx(headers) {
        return html(StatusCode::OK, &dialog);
    }
    let rendered = dialog.render().ok();
    match tab {
        "team" => {
            let members = state.app.members(&who.actor, &r.id).await.unwrap_or_default();
            let view = TeamView {
                members: member_rows(&members, &who.user.id),
                email: String::new(),
                name: String::new(),
                errors: HashMap::new(),
                error: None,
            };
            page(state, who, r, "team", StatusCode::OK, None, |p| {
                p.team = Some(view);
                p.dialog = rendered;
            })
            .await
        }
        _ => {
            let view = keys_view(state, who, r).await;
            page(state, who, r, "keys", StatusCode::OK, None, |p| {
                p.keys = view.ok();
                p.dialog = rendered;
            })
            .await
        }
    }
}

async fn remove_member(
    State(state): State<AppState>,
    who: WebUser,
    Path((id, user_id)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let user = UserId(user_id);
    match state.app.remove_member(&who.actor, &r.id, &user).await {
        // A member who left no longer sees the resource: back to their Portal.
        Ok(()) if user == who.user.id && !who.is_admin() => see_other("/portal"),
        Ok(()) => see_other(&format!("/portal/resources/{}/team?done=removed", r.id)),
        Err(e @ AppError::Domain(_)) => {
            let msg = Some(match &e {
                // Starts with an email, which a sentence would capitalise.
                AppError::Domain(DomainError::LastMember(email)) => format!(
                    "{email} is the only member of this resource's team, and a team is never left empty: add \
                     someone else before removing them."
                ),
                other => sentence(&other.to_string()),
            });
            let status = crate::error::status_of(e.code());
            render_team(&state, &who, &r, status, None, (String::new(), String::new(), HashMap::new(), msg)).await
        }
        Err(e) => portal_error(&state, &who, e).await,
    }
}

// ---- keys -----------------------------------------------------------------------------------

async fn keys_view(state: &AppState, who: &WebUser, r: &Resource) -> Result<KeysView, AppError> {
    let keys = state.app.keys(&who.actor, &r.id).await?;
    let members: std::collections::HashSet<String> =
        state.app.members(&who.actor, &r.id).await?.into_iter().map(|m| m.user_id.to_string()).collect();
    let names = state.app.key_creators(&who.actor, &r.id, &keys).await?;
    // A creator who has left the team is still named, and said to have left.
    let email = |id: &str| match (names.get(id), members.contains(id)) {
        (Some(n), true) => n.1.clone(),
        (Some(n), false) => format!("{} · no longer on the team", n.1),
        (None, _) => String::new(),
    };
    let row = |k: &RuntimeKey| KeyRow {
        id: k.id.clone(),
        description: k.description.clone(),
        created: when(k.created_at),
        created_by: names.get(k.created_by.as_str()).map_or_else(|| "a former user".to_string(), |n| n.0.clone()),
        created_by_email: email(k.created_by.as_str()),
        last_used: k.last_used_at.map_or_else(|| "never".to_string(), when),
        revoked: k.revoked_at.map(when).unwrap_or_default(),
        companion_of: k.companion_of.as_ref().map(|c| c.to_string()),
    };
    Ok(KeysView {
        resource_id: r.id.to_string(),
        live: r.is_live(),
        rows: keys.iter().map(row).collect(),
        csrf: who.csrf(),
    })
}

async fn render_keys(
    state: &AppState,
    who: &WebUser,
    r: &Resource,
    status: StatusCode,
    flash: Option<String>,
    dialog: Option<String>,
) -> Response {
    let view = match keys_view(state, who, r).await {
        Ok(v) => v,
        Err(e) => return portal_error(state, who, e).await,
    };
    let res = page(state, who, r, "keys", status, flash, |p| {
        p.keys = Some(view);
        p.dialog = dialog;
    })
    .await;
    ShownOnce(res).into_response()
}

async fn keys_tab(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    match resource_or_page(&state, &who, &id).await {
        Ok(r) => render_keys(&state, &who, &r, StatusCode::OK, flash(&q), None).await,
        Err(p) => p,
    }
}

async fn new_key(State(state): State<AppState>, who: WebUser, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let dialog = NewKeyDialog { id: r.id.to_string(), csrf: who.csrf(), description: String::new(), error: None };
    if is_htmx(&headers) {
        return html(StatusCode::OK, &dialog);
    }
    render_keys(&state, &who, &r, StatusCode::OK, None, dialog.render().ok()).await
}

async fn create_key(
    State(state): State<AppState>,
    who: WebUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let htmx = is_htmx(&headers);
    let description = f.get("description").cloned().unwrap_or_default();
    match state.app.create_key(&who.actor, &r.id, Some(&description)).await {
        Ok(created) => {
            let mut dialog = KeyCreatedDialog {
                id: r.id.to_string(),
                description: created.key.description.clone(),
                secret: created.secret.expose().to_string(),
                configuration_key: created.configuration_key.clone(),
                companion: created.companion.is_some(),
                k: None,
            };
            if htmx {
                dialog.k = keys_view(&state, &who, &r).await.ok();
                return ShownOnce(html(StatusCode::OK, &dialog)).into_response();
            }
            render_keys(&state, &who, &r, StatusCode::CREATED, None, dialog.render().ok()).await
        }
        Err(e @ AppError::Domain(_)) => {
            let error = match &e {
                AppError::Domain(DomainError::Validation(fields)) => {
                    fields.values().map(|v| sentence(&format!("The description {v}"))).collect::<Vec<_>>().join(" ")
                }
                other => sentence(&other.to_string()),
            };
            let status = crate::error::status_of(e.code());
            let dialog = NewKeyDialog { id: r.id.to_string(), csrf: who.csrf(), description, error: Some(error) };
            if htmx {
                // htmx swaps only successful answers: the refusal is the dialog again, with its reason.
                return html(StatusCode::OK, &dialog);
            }
            render_keys(&state, &who, &r, status, None, dialog.render().ok()).await
        }
        Err(e) => portal_error(&state, &who, e).await,
    }
}

async fn revoke_confirm(
    State(state): State<AppState>,
    who: WebUser,
    headers: HeaderMap,
    Path((id, key_id)): Path<(String, String)>,
) -> Response {
    let r = match resource_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let keys = match state.app.keys(&who.actor, &r.id).await {
        Ok(k) => k,
        Err(e) => return portal_error(&state, &who, e).await,
    };
    let Some(k) = keys.iter().find(|k| k.id == key_id) else {
        return portal_error(&state, &who, AppError::NotFound("key".into())).await;
    };
    let extra = if r.resource_type == ResourceType::KnowledgeBase {
        " Its companion key on the embeddings resource is revoked with it."
    } else {
        ""
    };
    let dialog = ConfirmDialog {
        title: "Revoke key".into(),
        text: format!(
            "Revoke the key \u{201c}{}\u{201d}? Calls with it are refused from then on; this cannot be undone.{extra}",
            k.description
        ),
        action: format!("/portal/resources/{}/keys/{}/revoke", r.id, k.id),
        button: "Revoke".into(),
        back: format!("/portal/resources/{}/keys", r.id),
        csrf: who.csrf(),
    };
    confirm(&state, &who, &r, "keys", &headers, dialog).await
}

async fn revoke_key(
    State(state): State<AppState>,
    who: WebUser,
    Path((id, key_id)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    match state.app.revoke_key(&who.actor, &ResourceId(id.clone()), &key_id).await {
        Ok(()) => see_other(&format!("/portal/resources/{id}/keys?done=revoked")),
        Err(e) => portal_error(&state, &who, e).await,
    }
}

// ---- settings -------------------------------------------------------------------------------

async fn linked(state: &AppState, who: &WebUser, r: &Resource) -> Vec<Linked> {
    let mut out = Vec::new();
    if let Some(e) = &r.embeddings_resource_id {
        match state.app.portal_resource(&who.actor, e).await {
            Ok(er) => out.push(Linked {
                label: "Embeddings resource",
                name: er.display_name.to_string(),
                href: Some(format!("/portal/resources/{}", er.id)),
            }),
            Err(_) => {
                out.push(Linked { label: "Embeddings resource", name: format!("{e} (not on your teams)"), href: None })
            }
        }
    }
    if r.resource_type == ResourceType::EmbeddingsGeneration {
        // The knowledge bases the viewer can see that embed through this resource.
        let all = state.app.portal_resources(&who.actor, true).await.unwrap_or_default();
        for kb in all.iter().filter(|k| k.embeddings_resource_id.as_ref() == Some(&r.id)) {
            out.push(Linked {
                label: "Used by knowledge base",
                name: if kb.is_live() {
                    kb.display_name.to_string()
                } else {
                    format!("{} (deprovisioned)", kb.display_name)
                },
                href: Some(format!("/portal/resources/{}", kb.id)),
            });
        }
    }
    out
}

async fn render_settings(state: &AppState, who: &WebUser, r: &Resource) -> Response {
    let entries = settings(r, state.app.catalog(), state.app.now())
        .into_iter()
        .filter(|(k, _)| k != "Embeddings resource")
        .collect();
    let linked = linked(state, who, r).await;
    page(state, who, r, "settings", StatusCode::OK, None, |p| {
        p.settings = entries;
        p.linked = linked;
    })
    .await
}

async fn settings_tab(State(state): State<AppState>, who: WebUser, Path(id): Path<String>) -> Response {
    match resource_or_page(&state, &who, &id).await {
        Ok(r) => render_settings(&state, &who, &r).await,
        Err(p) => p,
    }
}
