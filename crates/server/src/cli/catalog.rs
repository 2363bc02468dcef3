//! `genai catalog`: the regions, environments, models and plans a company can provision
//! (SPEC §1), from the server (`GET /api/v1/catalog`) or, with `--default`, the built-in catalog
//! compiled into this binary — the file to copy for `genai serve --catalog FILE`.

use super::client::{Api, CliError};
use super::output::{emit, emit_json, field, scalar, str_field, Table};
use genai_core::catalog::{Catalog, DEFAULT_CATALOG_TOML};
use serde_json::Value;

/// Options of `genai catalog`.
#[derive(clap::Args, Debug)]
pub struct CatalogArgs {
    /// Print the built-in default catalog as TOML (no server needed; with --json, as JSON).
    #[arg(long)]
    pub default: bool,
}

/// Prints the server's catalog.
pub async fn run(api: &Api, json: bool) -> Result<(), CliError> {
    let catalog = api.get("/api/v1/catalog", &[]).await?;
    if json {
        emit_json(&catalog);
    } else {
        emit(&render(&catalog));
    }
    Ok(())
}

/// Prints the built-in catalog: the TOML file verbatim (comments included, it is meant to be
/// copied), or with `--json` the same shape `GET /api/v1/catalog` answers.
pub fn print_default(json: bool) -> Result<(), CliError> {
    if !json {
        emit(DEFAULT_CATALOG_TOML);
        return Ok(());
    }
    let catalog = Catalog::from_toml(DEFAULT_CATALOG_TOML)
        .map_err(|e| CliError::Local(format!("the built-in catalog is invalid: {e}")))?;
    let value = serde_json::to_value(&catalog)
        .map_err(|e| CliError::Local(format!("cannot render the built-in catalog: {e}")))?;
    emit_json(&value);
    Ok(())
}

fn items<'a>(catalog: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    catalog.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn render(catalog: &Value) -> String {
    let mut out = String::new();

    let mut regions = Table::new(&["REGION", "NAME"]);
    for r in items(catalog, "regions") {
        regions.row(vec![field(r, "id"), field(r, "name")]);
    }
    out.push_str("Regions\n");
    out.push_str(&regions.render());

    let environments: Vec<String> = items(catalog, "environments").map(scalar).collect();
    out.push_str(&format!("\nEnvironments: {}\n", environments.join(", ")));

    let mut models = Table::new(&["MODEL", "NAME", "TYPE", "REGIONS"]);
    for m in items(catalog, "models") {
        let regions: Vec<String> = m
            .get("regions")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(region, mode)| {
                let mode = match mode.as_str() {
                    Some("cri_only") => "cri only",
                    Some("in_region_only") => "in-region only",
                    Some("both") => "cri or in-region",
                    Some(other) => other,
                    None => "?",
                };
                format!("{region} ({mode})")
            })
            .collect();
        models.row(vec![field(m, "id"), field(m, "name"), field(m, "type"), regions.join(", ")]);
    }
    out.push_str("\nModels\n");
    out.push_str(&models.render());

    let mut plans =
        Table::new(&["TYPE", "PLAN", "CLOUD TOKENS", "INPUT TOKENS/MONTH", "OUTPUT TOKENS/MONTH", "STORAGE"]);
    for p in items(catalog, "plans") {
        let storage = match p.get("storage_bytes").and_then(Value::as_i64) {
            Some(bytes) => human_bytes(bytes),
            None => "-".into(),
        };
        plans.row(vec![
            field(p, "type"),
            str_field(p, "size").map(str::to_string).unwrap_or_else(|| field(p, "plan")),
            field(p, "cloud_tokens"),
            field(p, "input_tokens"),
            field(p, "output_tokens"),
            storage,
        ]);
    }
    out.push_str("\nPlans\n");
    out.push_str(&plans.render());
    out
}

/// Bytes in the largest unit that divides them evenly (`10 GB`, `10 GiB`), else as a grouped
/// number, so the catalog's round quotas read as they were written.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [(&str, i64); 6] = [
        ("TB", 1_000_000_000_000),
        ("TiB", 1 << 40),
        ("GB", 1_000_000_000),
        ("GiB", 1 << 30),
        ("MB", 1_000_000),
        ("MiB", 1 << 20),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{} bytes", super::output::group_digits(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_renders_like_the_servers() {
        let catalog = match Catalog::from_toml(DEFAULT_CATALOG_TOML).map(|c| serde_json::to_value(&c)) {
            Ok(Ok(v)) => v,
            other => panic!("built-in catalog: {other:?}"),
        };
        let text = render(&catalog);
        assert!(text.contains("claude-sonnet-4.6"), "{text}");
        assert!(text.contains("eu-central-1 (cri only)"), "{text}");
        assert!(text.contains("knowledge_base"), "{text}");
        assert!(text.contains("10 GB"), "{text}");
        assert_eq!(human_bytes(10_737_418_240), "10 GiB");
        assert_eq!(human_bytes(1000), "1,000 bytes");
    }
}
