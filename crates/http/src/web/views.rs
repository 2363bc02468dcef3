//! View models and templates of the web UI: plain structs of display-ready strings, rendered by
//! askama (which HTML-escapes every value, so user-supplied names are shown as text).

use askama::Template;
use genai_app::web::{PlanChangeKind, PlanPreview};
use genai_app::MonthUsage;
use genai_app::Specification;
use genai_core::calendar::format_day;
use genai_core::catalog::{Catalog, Plan, PlanSize, ResourceType};
use genai_core::ledger::Balance;
use genai_core::resource::{Resource, Scheduled, Status};
use genai_core::{DomainError, Instant};
use std::collections::BTreeMap;

/// 1234567 → "1,234,567".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("−{out}")
    } else {
        out
    }
}

/// Bytes for people (decimal units, like the plan's "10 GB").
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A message as a sentence: capital first letter, full stop at the end.
pub fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A plan's quota in words.
pub fn quota_text(plan: &Plan) -> String {
    match (plan.input_tokens, plan.output_tokens, plan.storage_bytes) {
        (Some(i), Some(o), _) => format!("{} input + {} output tokens", thousands(i), thousands(o)),
        (Some(i), None, _) => format!("{} input tokens", thousands(i)),
        (_, _, Some(b)) => format!("{} of stored content", bytes(b)),
        _ => "—".into(),
    }
}

/// An instant for people, the one format of every page: "12 Mar 2026, 08:00 UTC" (instants
/// are UTC throughout; the machine-readable RFC 3339 form is for the API and `<time datetime>`).
pub fn when(t: Instant) -> String {
    let (day, time) = when_parts(t);
    format!("{day}, {time}")
}

/// [`when`] in its two halves, "12 Mar 2026" and "08:00 UTC", for a cell that may wrap between
/// them but never inside either.
pub fn when_parts(t: Instant) -> (String, String) {
    (format_day(t), t.format("%H:%M UTC").to_string())
}

/// The header's balance.
#[derive(Debug, Clone)]
pub struct BalanceView {
    /// Available.
    pub available: i64,
    /// Allocated.
    pub allocated: i64,
    /// Pending release.
    pub pending_release: i64,
    /// Formatted.
    pub available_text: String,
    /// Formatted.
    pub allocated_text: String,
    /// Formatted.
    pub pending_text: String,
}

impl From<Balance> for BalanceView {
    fn from(b: Balance) -> Self {
        BalanceView {
            available: b.available.get(),
            allocated: b.allocated.get(),
            pending_release: b.pending_release.get(),
            available_text: thousands(b.available.get()),
            allocated_text: thousands(b.allocated.get()),
            pending_text: thousands(b.pending_release.get()),
        }
    }
}

/// What every page shows around its content.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// Page title.
    pub title: String,
    /// Whether someone is logged in.
    pub signed_in: bool,
    /// Whether they are a company admin.
    pub is_admin: bool,
    /// Their email.
    pub user_email: String,
    /// Their company's name.
    pub company: String,
    /// The balance (admins).
    pub balance: Option<BalanceView>,
    /// The session's CSRF token.
    pub csrf: String,
    /// Which nav entry is current.
    pub nav: &'static str,
    /// A message about what just happened.
    pub flash: Option<String>,
}

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Chrome.
    pub chrome: Chrome,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The login form's CSRF token.
    pub csrf: String,
    /// Where to go after logging in.
    pub next: String,
    /// The email typed before.
    pub email: String,
}

/// A page with a heading and a sentence (forbidden, not found, errors).
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Chrome.
    pub chrome: Chrome,
    /// Heading.
    pub heading: String,
    /// Text.
    pub text: String,
    /// A link onwards.
    pub link: Option<(String, String)>,
}

/// A tab of the overview.
pub struct Tab {
    /// Type id.
    pub id: &'static str,
    /// Label.
    pub label: String,
    /// Whether it is the current one.
    pub selected: bool,
}

/// One usage line of a row.
pub struct UsageLine {
    /// "Input", "Output", "Storage".
    pub label: &'static str,
    /// Used, formatted.
    pub used: String,
    /// Quota, formatted.
    pub quota: String,
    /// Percent used (0–100).
    pub percent: i64,
}

/// One row of the overview.
pub struct Row {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Status (CSS class).
    pub status: &'static str,
    /// Status label.
    pub status_label: String,
    /// Model display name.
    pub model: String,
    /// Plan, with a scheduled downgrade.
    pub plan: String,
    /// Created for (name).
    pub created_for: String,
    /// Created for (email).
    pub created_for_email: String,
    /// Environment.
    pub environment: &'static str,
    /// Region.
    pub region: String,
    /// Usage lines.
    pub usage: Vec<UsageLine>,
    /// Allowed actions.
    pub can_deprovision: bool,
    /// Allowed actions.
    pub can_adjust: bool,
    /// Allowed actions.
    pub can_cancel_downgrade: bool,
    /// Allowed actions.
    pub can_cancel_deprovision: bool,
}

impl Row {
    /// Whether the ⋯ menu has anything.
    pub fn has_actions(&self) -> bool {
        self.can_deprovision || self.can_adjust || self.can_cancel_downgrade || self.can_cancel_deprovision
    }

    /// Builds a row without usage figures (zeros).
    pub fn new(r: &Resource, catalog: &Catalog) -> Row {
        Row::with_usage(r, catalog, None)
    }

    /// Builds a row with the current bundle month's usage (`App::month_usage`). The allowed
    /// actions mirror the state machine of SPEC §5. A knowledge base's storage is not metered
    /// yet, so it shows 0.
    pub fn with_usage(r: &Resource, catalog: &Catalog, used: Option<&MonthUsage>) -> Row {
        let plan = catalog.plan(r.resource_type, r.plan);
        let (used_in, used_out) = used.map_or((0, 0), |u| (u.input_tokens, u.output_tokens));
        let percent =
            |used: i64, quota: i64| if quota > 0 { (used.saturating_mul(100) / quota).clamp(0, 100) } else { 0 };
        let usage = match r.resource_type {
            ResourceType::KnowledgeBase => vec![UsageLine {
                label: "Storage",
                used: bytes(0),
                quota: bytes(plan.and_then(|p| p.storage_bytes).unwrap_or(0)),
                percent: 0,
            }],
            _ => {
                let quota_in = plan.and_then(|p| p.input_tokens).unwrap_or(0);
                let mut v = vec![UsageLine {
                    label: "Input",
                    used: thousands(used_in),
                    quota: thousands(quota_in),
                    percent: percent(used_in, quota_in),
                }];
                if let Some(o) = plan.and_then(|p| p.output_tokens) {
                    v.push(UsageLine {
                        label: "Output",
                        used: thousands(used_out),
                        quota: thousands(o),
                        percent: percent(used_out, o),
                    });
                }
                v
            }
        };
        let live = matches!(r.status, Status::Active | Status::PlanDowngradeScheduled);
        Row {
            id: r.id.to_string(),
            name: r.display_name.to_string(),
            status: r.status.as_str(),
            status_label: r.status_label(),
            model: r.model.as_deref().map_or("—".into(), |m| catalog.model_name(m).to_string()),
            plan: match r.scheduled {
                Some(Scheduled::Downgrade { plan, .. }) => format!("{} → {}", r.plan, plan),
                _ => r.plan.to_string(),
            },
            created_for: r.created_for.name.to_string(),
            created_for_email: r.created_for.email.to_string(),
            environment: r.environment.as_str(),
            region: r.region.clone(),
            usage,
            can_deprovision: live,
            can_adjust: live && r.resource_type != ResourceType::KnowledgeBase,
            can_cancel_downgrade: r.status == Status::PlanDowngradeScheduled,
            can_cancel_deprovision: r.status == Status::DeprovisioningScheduled,
        }
    }
}

/// The overview.
#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// Chrome.
    pub chrome: Chrome,
    /// Failing eligibility checks' messages.
    pub failing_checks: Vec<String>,
    /// Tabs.
    pub tabs: Vec<Tab>,
    /// The current type.
    pub resource_type: &'static str,
    /// Its label.
    pub type_label: &'static str,
    /// Why provisioning is disabled.
    pub provision_disabled: Option<String>,
    /// Whether deprovisioned resources are shown.
    pub show_deprovisioned: bool,
    /// Rows.
    pub rows: Vec<Row>,
}

/// The Resource Specification panel of the provision form.
pub struct SpecView {
    /// What was entered.
    pub entries: Vec<(String, String)>,
    /// Plan.
    pub plan: String,
    /// Cost.
    pub cloud_tokens: String,
    /// Quota.
    pub quota: String,
    /// Available before.
    pub available_before: String,
    /// Available after.
    pub available_after: String,
    /// Whether the plan costs more than is available (`ledger::afford` said no).
    pub short: bool,
    /// Why not, as a sentence (for the disabled Provision button).
    pub insufficient: Option<String>,
    /// First bundle month.
    pub first_bundle_month: String,
    /// Why it cannot be provisioned.
    pub problems: Vec<String>,
}

impl SpecView {
    /// From the use case's specification and the entered values.
    pub fn new(s: &Specification, entries: Vec<(String, String)>) -> SpecView {
        SpecView {
            entries,
            plan: s.plan.size.to_string(),
            cloud_tokens: thousands(s.plan.cloud_tokens.get()),
            quota: quota_text(&s.plan),
            available_before: thousands(s.available_before.get()),
            available_after: thousands(s.available_after.get()),
            short: s.afford.is_err(),
            insufficient: s
                .afford
                .as_ref()
                .err()
                .map(|e| format!("Not enough cloud tokens: {}", sentence(&e.to_string()))),
            first_bundle_month: format!("{} – {}", when(s.first_bundle_month.start), when(s.first_bundle_month.end)),
            problems: s
                .problems
                .iter()
                .map(|p| match &p.field {
                    Some(f) => format!("{}: {}", field_label(f), p.message),
                    None => sentence(&p.message),
                })
                .collect(),
        }
    }
}

/// The spec panel alone (htmx partial), with the submit button swapped out of band so that
/// its disabled state follows the specification.
#[derive(Template)]
#[template(path = "spec.html")]
pub struct SpecPartial {
    /// The panel.
    pub spec: SpecView,
    /// Whether the submit area is sent along (out of band).
    pub oob: bool,
    /// Why the button is disabled.
    pub disabled_reason: Option<String>,
}

/// A field's label, for messages.
pub fn field_label(field: &str) -> &str {
    match field {
        "display_name" => "Display Name",
        "environment" => "Environment",
        "region" => "Region",
        "cross_region_inference" => "Cross-region inference",
        "model" => "Model",
        "plan" => "Plan Size",
        "embeddings_resource_id" => "Embeddings Resource",
        "user.name" => "User Name",
        "user.email" => "User Email",
        other => other,
    }
}

/// What the provision form holds, as typed.
#[derive(Debug, Clone, Default)]
pub struct FormValues {
    /// Display name.
    pub display_name: String,
    /// Environment.
    pub environment: String,
    /// Region.
    pub region: String,
    /// Cross-region inference.
    pub cri: bool,
    /// Model.
    pub model: String,
    /// Plan.
    pub plan: String,
    /// Embeddings resource.
    pub embeddings_resource_id: String,
    /// User name.
    pub user_name: String,
    /// User email.
    pub user_email: String,
    /// Field errors.
    pub errors: BTreeMap<String, String>,
}

impl FormValues {
    /// The error of a field, or "".
    pub fn error(&self, field: &str) -> &str {
        self.errors.get(field).map_or("", String::as_str)
    }
}

/// A model option.
pub struct ModelOption {
    /// Id.
    pub id: String,
    /// Label.
    pub label: String,
    /// Selected.
    pub selected: bool,
}

/// The model options for a type, region and inference mode: only models offered there that
/// way; the chosen one stays selected when still offered.
pub fn model_options(catalog: &Catalog, t: ResourceType, region: &str, cri: bool, chosen: &str) -> Vec<ModelOption> {
    let mut options: Vec<ModelOption> = catalog
        .models
        .iter()
        .filter(|m| m.resource_type == t && m.regions.get(region).is_some_and(|mode| mode.allows(cri)))
        .map(|m| ModelOption { id: m.id.clone(), label: m.name.clone(), selected: m.id == chosen })
        .collect();
    if options.is_empty() {
        let how = if cri { "with" } else { "without" };
        options.push(ModelOption {
            id: String::new(),
            label: format!("No model is offered in {region} {how} cross-region inference"),
            selected: true,
        });
    }
    options
}

/// The provision form.
#[derive(Template)]
#[template(path = "provision.html")]
pub struct ProvisionPage {
    /// Chrome.
    pub chrome: Chrome,
    /// Type id.
    pub resource_type: &'static str,
    /// Type label.
    pub type_label: &'static str,
    /// Whether the type has a model.
    pub has_model: bool,
    /// Whether it is a knowledge base.
    pub is_kb: bool,
    /// Values and errors.
    pub f: FormValues,
    /// A problem that is not one field's.
    pub form_error: Option<String>,
    /// Environments.
    pub environments: Vec<String>,
    /// Regions (id, name).
    pub regions: Vec<(String, String)>,
    /// Models.
    pub models: Vec<ModelOption>,
    /// Plans (id, label).
    pub plans: Vec<(String, String)>,
    /// Embeddings resources (id, label).
    pub embeddings: Vec<(String, String)>,
    /// The specification.
    pub spec: SpecView,
    /// Why the button is disabled.
    pub disabled_reason: Option<String>,
    /// Always false on the full page (the submit area is in place).
    pub oob: bool,
}

/// The model `<option>`s alone (htmx partial).
#[derive(Template)]
#[template(path = "model_options.html")]
pub struct ModelOptionsPartial {
    /// Options.
    pub models: Vec<ModelOption>,
}

/// The plan-change specification panel.
pub struct PlanSpecView {
    /// Upgrade / downgrade.
    pub kind: String,
    /// Current plan with cost and quota.
    pub current_plan: String,
    /// New plan with cost and quota.
    pub new_plan: String,
    /// Difference in cloud tokens.
    pub cost_difference: String,
    /// Available now.
    pub available_before: String,
    /// Available after.
    pub available_after: String,
    /// Negative?
    pub short: bool,
    /// When it takes effect.
    pub effective_at: String,
    /// Why it cannot be done.
    pub problem: Option<String>,
}

fn plan_text(p: Option<&Plan>, size: PlanSize) -> String {
    match p {
        Some(p) => format!("{} — {} cloud tokens — {}", p.size, thousands(p.cloud_tokens.get()), quota_text(p)),
        None => size.to_string(),
    }
}

impl PlanSpecView {
    /// From the use case's preview.
    pub fn new(p: &PlanPreview) -> PlanSpecView {
        let kind = match &p.outcome {
            Ok(PlanChangeKind::Upgrade)
            | Err(DomainError::InsufficientTokens { .. })
            | Err(DomainError::NotEligible(_)) => "Upgrade (takes effect at once)".to_string(),
            Ok(PlanChangeKind::Downgrade) => "Downgrade (takes effect at the next bundle month)".to_string(),
            Err(_) => "—".to_string(),
        };
        let diff = p.cost_difference;
        PlanSpecView {
            kind,
            current_plan: plan_text(p.current_plan.as_ref(), p.resource.plan),
            new_plan: plan_text(p.new_plan.as_ref(), p.target),
            cost_difference: if diff > 0 { format!("+{}", thousands(diff)) } else { thousands(diff) },
            available_before: thousands(p.available_before.get()),
            available_after: match p.outcome {
                Ok(PlanChangeKind::Downgrade) => format!(
                    "{} (+{} on {})",
                    thousands(p.available_after.get()),
                    thousands(-diff),
                    when(p.effective_at)
                ),
                _ => thousands(p.available_after.get()),
            },
            short: matches!(p.afford, Some(Err(_))),
            effective_at: when(p.effective_at),
            problem: p.outcome.as_ref().err().map(|e| sentence(&e.to_string())),
        }
    }
}

/// The plan panel alone (htmx partial), with the submit button out of band.
#[derive(Template)]
#[template(path = "plan_spec.html")]
pub struct PlanSpecPartial {
    /// Panel.
    pub spec: PlanSpecView,
    /// Whether the submit area is sent along (out of band).
    pub oob: bool,
    /// Why the button is disabled.
    pub disabled_reason: Option<String>,
}

/// The Adjust Plan Size page.
#[derive(Template)]
#[template(path = "plan.html")]
pub struct PlanPage {
    /// Chrome.
    pub chrome: Chrome,
    /// Resource id.
    pub id: String,
    /// Resource name.
    pub name: String,
    /// Type id.
    pub resource_type: &'static str,
    /// Type label.
    pub type_label: &'static str,
    /// Current plan.
    pub current_plan: String,
    /// Selected target.
    pub target: String,
    /// Plans (id, label).
    pub plans: Vec<(String, String)>,
    /// Panel.
    pub spec: PlanSpecView,
    /// Why the button is disabled.
    pub disabled_reason: Option<String>,
    /// A problem from the last submission.
    pub form_error: Option<String>,
    /// Always false on the full page.
    pub oob: bool,
}

/// The deprovision confirmation.
pub struct DeprovisionView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Type id.
    pub resource_type: &'static str,
    /// Type label.
    pub type_label: &'static str,
    /// Model.
    pub model: String,
    /// Plan.
    pub plan: String,
    /// Environment.
    pub environment: &'static str,
    /// Region.
    pub region: String,
    /// Created for.
    pub created_for: String,
    /// Tokens released.
    pub cloud_tokens: String,
    /// When it takes effect.
    pub effective_at: String,
    /// Why it cannot be deprovisioned.
    pub problem: Option<String>,
    /// CSRF token.
    pub csrf: String,
}

impl DeprovisionView {
    /// Builds the view.
    pub fn new(r: &Resource, when_: Result<Instant, DomainError>, catalog: &Catalog, csrf: String) -> DeprovisionView {
        let (effective_at, problem) = match when_ {
            Ok(t) => (when(t), None),
            Err(e) => (String::new(), Some(sentence(&e.to_string()))),
        };
        DeprovisionView {
            id: r.id.to_string(),
            name: r.display_name.to_string(),
            resource_type: r.resource_type.as_str(),
            type_label: r.resource_type.label(),
            model: r.model.as_deref().map_or("—".into(), |m| catalog.model_name(m).to_string()),
            plan: r.plan.to_string(),
            environment: r.environment.as_str(),
            region: r.region.clone(),
            created_for: format!("{} <{}>", r.created_for.name, r.created_for.email),
            cloud_tokens: thousands(r.cloud_tokens.get()),
            effective_at,
            problem,
            csrf,
        }
    }
}

/// The dialog alone (htmx partial).
#[derive(Template)]
#[template(path = "deprovision_dialog.html")]
pub struct DeprovisionDialog {
    /// The view.
    pub d: DeprovisionView,
}

/// The dialog as a page (without JavaScript).
#[derive(Template)]
#[template(path = "deprovision.html")]
pub struct DeprovisionPage {
    /// Chrome.
    pub chrome: Chrome,
    /// The view.
    pub d: DeprovisionView,
}

/// The settings of a resource, for the Portal page.
pub fn settings(r: &Resource, catalog: &Catalog, now: Instant) -> Vec<(String, String)> {
    let mut v = vec![
        ("Id".to_string(), r.id.to_string()),
        ("Type".into(), r.resource_type.label().into()),
        ("Status".into(), r.status_label()),
        ("Region".into(), r.region.clone()),
        ("Cross-region inference".into(), if r.cross_region_inference { "yes" } else { "no" }.into()),
        ("Model".into(), r.model.as_deref().map_or("—".into(), |m| catalog.model_name(m).to_string())),
        ("Plan".into(), plan_text(catalog.plan(r.resource_type, r.plan), r.plan)),
        ("Environment".into(), r.environment.as_str().into()),
        ("Created for".into(), format!("{} <{}>", r.created_for.name, r.created_for.email)),
        ("Provisioned".into(), when(r.created_at)),
    ];
    if let Some(m) = r.bundle_month(now) {
        v.push(("Bundle month".into(), format!("{} – {}", when(m.start), when(m.end))));
    }
    if let Some(e) = &r.embeddings_resource_id {
        v.push(("Embeddings resource".into(), e.to_string()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(thousands(2_500_000), "2,500,000");
        assert_eq!(thousands(-30), "−30");
        assert_eq!(thousands(100), "100");
        assert_eq!(bytes(10_000_000_000), "10 GB");
        assert_eq!(bytes(1_500), "1.5 kB");
        assert_eq!(sentence("this needs 30 cloud tokens"), "This needs 30 cloud tokens.");
    }
}
