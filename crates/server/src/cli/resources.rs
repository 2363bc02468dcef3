//! `genai resources …`: the Control Center's resource actions (SPEC §5–§7) over
//! `/api/v1/resources`.
//!
//! `provision` without `--cri`/`--no-cri` asks the server's catalog which inference mode the
//! model offers in the region and uses the only one allowed; when the catalog allows both (or
//! does not know the model or region) it sends `false` and leaves any complaint to the server,
//! which names the model, the region and what would work.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, group_digits, str_field, Pairs, Table};
use clap::builder::BoolishValueParser;
use serde_json::{json, Map, Value};

/// A resource type, as the API spells it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum ResourceTypeArg {
    /// Text generation (chat with an LLM).
    #[value(alias = "text")]
    TextGeneration,
    /// Embeddings generation.
    #[value(alias = "embeddings")]
    EmbeddingsGeneration,
    /// Knowledge base (stored chunks with similarity search).
    #[value(alias = "kb")]
    KnowledgeBase,
}

impl ResourceTypeArg {
    const ALL: [ResourceTypeArg; 3] =
        [ResourceTypeArg::TextGeneration, ResourceTypeArg::EmbeddingsGeneration, ResourceTypeArg::KnowledgeBase];

    fn as_str(self) -> &'static str {
        match self {
            ResourceTypeArg::TextGeneration => "text_generation",
            ResourceTypeArg::EmbeddingsGeneration => "embeddings_generation",
            ResourceTypeArg::KnowledgeBase => "knowledge_base",
        }
    }
}

/// A plan size, as the API spells it.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum PlanArg {
    /// Text/embeddings: the smallest plan.
    Small,
    /// Text/embeddings: the middle plan.
    Medium,
    /// Text/embeddings: the largest plan.
    Large,
    /// Knowledge bases: their only plan.
    Standard,
}

impl PlanArg {
    fn as_str(self) -> &'static str {
        match self {
            PlanArg::Small => "small",
            PlanArg::Medium => "medium",
            PlanArg::Large => "large",
            PlanArg::Standard => "standard",
        }
    }
}

/// The resource commands.
#[derive(clap::Subcommand, Debug)]
pub enum ResourcesCommand {
    /// List resources (all types unless --type is given).
    List(ListArgs),
    /// Show one resource.
    Show {
        /// Resource id.
        id: String,
    },
    /// Provision a new resource (allocates its plan's cloud tokens now).
    Provision(ProvisionArgs),
    /// Change the plan size: an upgrade applies at once, a downgrade at the next bundle-month boundary.
    Plan {
        /// Resource id.
        id: String,
        /// The new plan size.
        #[arg(value_enum)]
        size: PlanArg,
    },
    /// Cancel a scheduled plan downgrade.
    CancelDowngrade {
        /// Resource id.
        id: String,
    },
    /// Schedule deprovisioning at the end of the current bundle month.
    Deprovision {
        /// Resource id.
        id: String,
    },
    /// Cancel a scheduled deprovisioning.
    CancelDeprovision {
        /// Resource id.
        id: String,
    },
}

/// Options of `resources list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only resources of this type.
    #[arg(long = "type", value_enum)]
    pub resource_type: Option<ResourceTypeArg>,
    /// Include deprovisioned resources.
    #[arg(long)]
    pub all: bool,
}

/// Options of `resources provision`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("inference").args(["cri", "no_cri", "cross_region_inference"])))]
pub struct ProvisionArgs {
    /// Resource type.
    #[arg(long = "type", value_enum)]
    pub resource_type: ResourceTypeArg,
    /// Display name (1–64 characters, unique among the company's resources).
    #[arg(long)]
    pub name: String,
    /// Environment label: test, acceptance or production.
    #[arg(long)]
    pub environment: String,
    /// Region id, e.g. eu-central-1.
    #[arg(long)]
    pub region: String,
    /// Use cross-region inference. Without --cri/--no-cri the mode is taken from the catalog
    /// when the model allows only one.
    #[arg(long)]
    pub cri: bool,
    /// Run in the region only (no cross-region inference).
    #[arg(long)]
    pub no_cri: bool,
    /// Cross-region inference as a value (true/false, yes/no, 1/0).
    #[arg(long, value_name = "BOOL", value_parser = BoolishValueParser::new())]
    pub cross_region_inference: Option<bool>,
    /// Model id (text and embeddings resources), e.g. claude-sonnet-4.6.
    #[arg(long)]
    pub model: Option<String>,
    /// Plan size (knowledge bases: standard).
    #[arg(long, value_enum)]
    pub plan: PlanArg,
    /// The embeddings resource a knowledge base embeds through (knowledge bases only).
    #[arg(long, value_name = "ID")]
    pub embeddings_resource: Option<String>,
    /// Name of the user the resource is created for (joins its team).
    #[arg(long)]
    pub user_name: String,
    /// Email of the user the resource is created for.
    #[arg(long)]
    pub user_email: String,
    /// Idempotency key: retrying with the same key and options never creates a second resource.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    /// Show the Resource Specification (cost, balance before/after, quota, first bundle month)
    /// without provisioning anything.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs a resource command.
pub async fn run(api: &Api, json: bool, command: ResourcesCommand) -> Result<(), CliError> {
    match command {
        ResourcesCommand::List(args) => list(api, json, args).await,
        ResourcesCommand::Show { id } => {
            let resource = api.get(&resource_path(&id, ""), &[]).await?;
            print_resource(api, json, None, &resource);
            Ok(())
        }
        ResourcesCommand::Provision(args) => provision(api, json, args).await,
        ResourcesCommand::Plan { id, size } => {
            let body = json!({ "plan": size.as_str() });
            let resource = api.post(&resource_path(&id, "/plan"), Some(&body), None).await?;
            let headline = match resource.get("scheduled_downgrade").filter(|d| !d.is_null()) {
                Some(downgrade) => format!(
                    "Downgrade to {} scheduled for {}; the plan stays {} until then.",
                    field(downgrade, "plan"),
                    field(downgrade, "effective_at"),
                    field(&resource, "plan")
                ),
                None => format!("Plan is now {}.", field(&resource, "plan")),
            };
            print_resource(api, json, Some(&headline), &resource);
            Ok(())
        }
        ResourcesCommand::CancelDowngrade { id } => {
            let resource = api.post(&resource_path(&id, "/cancel-downgrade"), None, None).await?;
            let headline = format!("Scheduled downgrade cancelled; the plan stays {}.", field(&resource, "plan"));
            print_resource(api, json, Some(&headline), &resource);
            Ok(())
        }
        ResourcesCommand::Deprovision { id } => {
            let resource = api.post(&resource_path(&id, "/deprovision"), None, None).await?;
            let headline = format!(
                "Deprovisioning scheduled for {}; the resource keeps working until then.",
                field(&resource, "deprovisioning_at")
            );
            print_resource(api, json, Some(&headline), &resource);
            Ok(())
        }
        ResourcesCommand::CancelDeprovision { id } => {
            let resource = api.post(&resource_path(&id, "/cancel-deprovision"), None, None).await?;
            print_resource(api, json, Some("Deprovisioning cancelled."), &resource);
            Ok(())
        }
    }
}

fn resource_path(id: &str, action: &str) -> String {
    format!("/api/v1/resources/{}{action}", segment(id))
}

async fn list(api: &Api, json: bool, args: ListArgs) -> Result<(), CliError> {
    // The API lists one type per call; without --type the CLI asks for each type in the
    // overview's order and follows `next_cursor` in case the server pages anyway.
    let types: Vec<ResourceTypeArg> = match args.resource_type {
        Some(t) => vec![t],
        None => ResourceTypeArg::ALL.to_vec(),
    };
    let mut resources = Vec::new();
    for resource_type in types {
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![("type", resource_type.as_str().to_string())];
            if args.all {
                query.push(("include_deprovisioned", "true".to_string()));
            }
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page = api.get("/api/v1/resources", &query).await?;
            if let Some(items) = page.get("resources").and_then(Value::as_array) {
                resources.extend(items.iter().cloned());
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(next) if cursor.as_deref() != Some(next) => cursor = Some(next.to_string()),
                _ => break,
            }
        }
    }
    if json {
        emit_json(&json!({ "resources": resources, "next_cursor": null }));
        return Ok(());
    }
    let mut table = Table::new(&["ID", "STATUS", "NAME", "TYPE", "MODEL", "PLAN", "TOKENS", "CREATED FOR"]);
    for r in &resources {
        table.row(vec![
            field(r, "id"),
            status_label(r),
            field(r, "display_name"),
            field(r, "type"),
            field(r, "model"),
            plan_cell(r),
            field(r, "cloud_tokens"),
            created_for(r),
        ]);
    }
    if table.is_empty() {
        emit(if args.all { "No resources.\n" } else { "No resources (use --all to include deprovisioned ones).\n" });
    } else {
        emit(&table.render());
    }
    Ok(())
}

async fn provision(api: &Api, json: bool, args: ProvisionArgs) -> Result<(), CliError> {
    let cross_region_inference = match (args.cri, args.no_cri, args.cross_region_inference) {
        (true, _, _) => true,
        (_, true, _) => false,
        (_, _, Some(value)) => value,
        _ => infer_cross_region_inference(api, args.model.as_deref(), &args.region).await?,
    };
    let mut body = Map::new();
    body.insert("type".into(), json!(args.resource_type.as_str()));
    body.insert("display_name".into(), json!(args.name));
    body.insert("environment".into(), json!(args.environment));
    body.insert("region".into(), json!(args.region));
    body.insert("cross_region_inference".into(), json!(cross_region_inference));
    if let Some(model) = &args.model {
        body.insert("model".into(), json!(model));
    }
    body.insert("plan".into(), json!(args.plan.as_str()));
    if let Some(id) = &args.embeddings_resource {
        body.insert("embeddings_resource_id".into(), json!(id));
    }
    body.insert("user".into(), json!({ "name": args.user_name, "email": args.user_email }));
    let body = Value::Object(body);

    if args.dry_run {
        let spec = api.post("/api/v1/resources/specification", Some(&body), None).await?;
        if json {
            emit_json(&spec);
        } else {
            emit(&render_specification(&spec));
        }
        return Ok(());
    }
    let resource = api.post("/api/v1/resources", Some(&body), args.idempotency_key.as_deref()).await?;
    let headline = format!("Provisioned {} ({}).", field(&resource, "display_name"), field(&resource, "id"));
    print_resource(api, json, Some(&headline), &resource);
    Ok(())
}

/// The only `cross_region_inference` value the catalog allows for the model in the region, or
/// `false` when there is no model, no single answer, or the catalog does not know them.
async fn infer_cross_region_inference(api: &Api, model: Option<&str>, region: &str) -> Result<bool, CliError> {
    let Some(model) = model else { return Ok(false) };
    let catalog = match api.get("/api/v1/catalog", &[]).await {
        Ok(catalog) => catalog,
        // Only a convenience: whatever the catalog call says, the provisioning call will say
        // too (or succeed), with the server's own field-level message.
        Err(CliError::Api { .. } | CliError::UnexpectedAnswer { .. }) => return Ok(false),
        Err(other) => return Err(other),
    };
    let mode = catalog
        .get("models")
        .and_then(Value::as_array)
        .and_then(|models| models.iter().find(|m| str_field(m, "id") == Some(model)))
        .and_then(|m| m.get("regions"))
        .and_then(|regions| str_field(regions, region));
    Ok(mode == Some("cri_only"))
}

fn status_label(r: &Value) -> String {
    match str_field(r, "status_label") {
        Some(label) if !label.is_empty() => label.to_string(),
        _ => field(r, "status"),
    }
}

/// The plan, with a scheduled downgrade's target (`large → small`).
fn plan_cell(r: &Value) -> String {
    match r.get("scheduled_downgrade").and_then(|d| str_field(d, "plan")) {
        Some(target) => format!("{} → {target}", field(r, "plan")),
        None => field(r, "plan"),
    }
}

fn created_for(r: &Value) -> String {
    let Some(user) = r.get("created_for").filter(|u| !u.is_null()) else {
        return "-".into();
    };
    match (str_field(user, "name"), str_field(user, "email")) {
        (Some(name), Some(email)) => format!("{name} <{email}>"),
        (Some(name), None) => name.to_string(),
        (None, Some(email)) => email.to_string(),
        (None, None) => "-".into(),
    }
}

/// `used / quota` with grouped digits, or `-` when the server sent neither.
fn usage_pair(usage: &Value, used: &str, quota: &str, unit: &str) -> Option<String> {
    let used = usage.get(used).and_then(Value::as_i64);
    let quota = usage.get(quota).and_then(Value::as_i64);
    match (used, quota) {
        (None, None) => None,
        (used, quota) => Some(format!(
            "{} / {}{unit}",
            used.map(group_digits).unwrap_or_else(|| "-".into()),
            quota.map(group_digits).unwrap_or_else(|| "-".into())
        )),
    }
}

/// Prints a resource: its JSON with `--json`, else an optional headline and key/value lines.
fn print_resource(api: &Api, json: bool, headline: Option<&str>, r: &Value) {
    if json {
        emit_json(r);
        return;
    }
    let mut out = String::new();
    if let Some(headline) = headline {
        out.push_str(headline);
        out.push_str("\n\n");
    }
    out.push_str(&resource_pairs(api.base(), r).render());
    emit(&out);
}

fn resource_pairs(base: &str, r: &Value) -> Pairs {
    let mut p = Pairs::new();
    p.add("ID", field(r, "id"));
    p.add("Name", field(r, "display_name"));
    p.add("Type", field(r, "type"));
    p.add("Status", status_label(r));
    p.add("Environment", field(r, "environment"));
    p.add("Region", field(r, "region"));
    p.add("Cross-region inference", field(r, "cross_region_inference"));
    if r.get("model").is_some_and(|m| !m.is_null()) {
        p.add("Model", field(r, "model"));
    }
    p.add("Plan", field(r, "plan"));
    p.add("Cloud tokens", field(r, "cloud_tokens"));
    if let Some(d) = r.get("scheduled_downgrade").filter(|d| !d.is_null()) {
        p.add("Scheduled downgrade", format!("to {} at {}", field(d, "plan"), field(d, "effective_at")));
    }
    if r.get("deprovisioning_at").is_some_and(|v| !v.is_null()) {
        p.add("Deprovisioning at", field(r, "deprovisioning_at"));
    }
    if r.get("deprovisioned_at").is_some_and(|v| !v.is_null()) {
        p.add("Deprovisioned at", field(r, "deprovisioned_at"));
    }
    if r.get("embeddings_resource_id").is_some_and(|v| !v.is_null()) {
        p.add("Embeddings resource", field(r, "embeddings_resource_id"));
    }
    p.add("Created for", created_for(r));
    p.add("Created at", field(r, "created_at"));
    if let Some(month) = r.get("bundle_month").filter(|m| !m.is_null()) {
        p.add("Bundle month", format!("{} – {}", field(month, "start"), field(month, "end")));
    }
    if let Some(usage) = r.get("usage").filter(|u| !u.is_null()) {
        if let Some(text) = usage_pair(usage, "input_tokens", "input_quota", " tokens") {
            p.add("Input tokens", text);
        }
        if let Some(text) = usage_pair(usage, "output_tokens", "output_quota", " tokens") {
            p.add("Output tokens", text);
        }
        if let Some(text) = usage_pair(usage, "storage_bytes", "storage_quota_bytes", " bytes") {
            p.add("Storage", text);
        }
    }
    if let Some(url) = str_field(r, "portal_url") {
        let full = if url.starts_with('/') { format!("{base}{url}") } else { url.to_string() };
        p.add("Portal", full);
    }
    p
}

fn render_specification(spec: &Value) -> String {
    let mut p = Pairs::new();
    p.add("Type", field(spec, "resource_type"));
    p.add("Plan", field(spec, "plan"));
    p.add("Cloud tokens", field(spec, "cloud_tokens"));
    p.add("Available before", field(spec, "available_before"));
    p.add("Available after", field(spec, "available_after"));
    if let Some(quota) = spec.get("quota").filter(|q| !q.is_null()) {
        match quota {
            Value::Object(map) => {
                for (key, value) in map {
                    p.add(format!("Quota {}", key.replace('_', " ")), super::output::scalar(value));
                }
            }
            other => p.add("Quota", super::output::scalar(other)),
        }
    }
    if let Some(month) = spec.get("first_bundle_month").filter(|m| !m.is_null()) {
        p.add("First bundle month", format!("{} – {}", field(month, "start"), field(month, "end")));
    }
    let mut out = String::from("Resource Specification (nothing was provisioned)\n\n");
    out.push_str(&p.render());
    let problems: Vec<String> = spec
        .get("problems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|problem| match problem {
            Value::String(s) => s.clone(),
            Value::Object(_) => match (str_field(problem, "message"), str_field(problem, "code")) {
                (Some(m), Some(c)) => format!("{m} ({c})"),
                (Some(m), None) => m.to_string(),
                _ => problem.to_string(),
            },
            other => other.to_string(),
        })
        .collect();
    if problems.is_empty() {
        out.push_str("\nNo problems: it can be provisioned.\n");
    } else {
        out.push_str("\nProblems:\n");
        for problem in problems {
            out.push_str(&format!("  - {problem}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_renders_as_key_value_lines() {
        let r = json!({
            "id": "r1", "type": "text_generation", "display_name": "Support bot",
            "environment": "production", "region": "eu-central-1", "cross_region_inference": true,
            "model": "claude-sonnet-4.6", "plan": "medium", "cloud_tokens": 60,
            "created_for": {"name": "Ada Lovelace", "email": "ada@example.com"},
            "status": "plan_downgrade_scheduled", "status_label": "PLAN DOWNGRADE SCHEDULED",
            "created_at": "2026-01-05T00:00:00Z",
            "bundle_month": {"start": "2026-01-05T00:00:00Z", "end": "2026-02-05T00:00:00Z"},
            "scheduled_downgrade": {"plan": "small", "effective_at": "2026-02-05T00:00:00Z"},
            "deprovisioning_at": null, "deprovisioned_at": null, "embeddings_resource_id": null,
            "usage": {"input_tokens": 0, "output_tokens": 12, "input_quota": 5000000, "output_quota": 2500000},
            "portal_url": "/portal/resources/r1"
        });
        let text = resource_pairs("http://h:1", &r).render();
        assert!(text.contains("Status                  PLAN DOWNGRADE SCHEDULED\n"), "{text}");
        assert!(text.contains("Scheduled downgrade     to small at 2026-02-05T00:00:00Z\n"), "{text}");
        assert!(text.contains("Created for             Ada Lovelace <ada@example.com>\n"), "{text}");
        assert!(text.contains("Output tokens           12 / 2,500,000 tokens\n"), "{text}");
        assert!(text.contains("Portal                  http://h:1/portal/resources/r1\n"), "{text}");
        assert!(!text.contains("Deprovisioned at"), "{text}");
        assert_eq!(plan_cell(&r), "medium → small");
    }
}
