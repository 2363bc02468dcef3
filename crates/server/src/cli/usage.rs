//! `genai usage <resource>`: a resource's consumption (RUNTIME.md §2), over
//! `/api/v1/resources/{id}/consumption`: the current bundle month against the quota, then one
//! line per day of the range.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, group_digits, Pairs, Table};
use serde_json::Value;

/// Which resource and which days.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Resource id (`res_…`).
    pub resource: String,
    /// First day, YYYY-MM-DD (alone: until today) [default: the current bundle month]
    #[arg(long)]
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (needs --from; at most 400 days in all)
    #[arg(long)]
    pub to: Option<String>,
    /// Only the days with usage
    #[arg(long)]
    pub used_days: bool,
}

/// `used of quota (p%)`, or `used` alone when there is no quota of that kind.
fn against(used: Option<i64>, quota: Option<i64>) -> String {
    match (used, quota) {
        (Some(u), Some(q)) if q > 0 => {
            // Tenths of a percent in integers: exact, and never rounded up to 100 % early.
            let tenths = i128::from(u) * 1000 / i128::from(q);
            format!("{} of {} ({}.{}%)", group_digits(u), group_digits(q), tenths / 10, tenths % 10)
        }
        (Some(u), _) => group_digits(u),
        (None, _) => "-".into(),
    }
}

/// Runs `genai usage`.
pub async fn run(api: &Api, json: bool, args: UsageArgs) -> Result<(), CliError> {
    let mut query = Vec::new();
    if let Some(f) = &args.from {
        query.push(("from", f.clone()));
    }
    if let Some(t) = &args.to {
        query.push(("to", t.clone()));
    }
    let path = format!("/api/v1/resources/{}/consumption", segment(&args.resource));
    let answer = api.get(&path, &query).await?;
    if json {
        emit_json(&answer);
        return Ok(());
    }
    let (used, quota) = (&answer["used"], &answer["quota"]);
    let month = &answer["bundle_month"];
    let mut pairs = Pairs::new();
    pairs.add("Bundle month", format!("{} – {}", field(month, "start"), field(month, "end")));
    pairs.add("Input tokens", against(used["input_tokens"].as_i64(), quota["input_tokens"].as_i64()));
    pairs.add("Output tokens", against(used["output_tokens"].as_i64(), quota["output_tokens"].as_i64()));
    pairs.add("API calls", field(used, "api_calls"));
    pairs.add("Refills at", field(month, "end"));
    let mut out = pairs.render();
    let mut table = Table::new(&["DATE", "INPUT TOKENS", "OUTPUT TOKENS", "API CALLS"]);
    for d in answer.get("days").and_then(Value::as_array).into_iter().flatten() {
        let idle = ["input_tokens", "output_tokens", "api_calls"].iter().all(|k| d[*k].as_i64() == Some(0));
        if args.used_days && idle {
            continue;
        }
        table.row(vec![field(d, "date"), field(d, "input_tokens"), field(d, "output_tokens"), field(d, "api_calls")]);
    }
    out.push('\n');
    if table.is_empty() {
        out.push_str(&format!("No usage from {} to {}.\n", field(&answer, "from"), field(&answer, "to")));
    } else {
        out.push_str(&table.render());
    }
    emit(&out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::against;

    #[test]
    fn usage_against_the_quota() {
        assert_eq!(against(Some(1_250_000), Some(2_500_000)), "1,250,000 of 2,500,000 (50.0%)");
        assert_eq!(against(Some(2_499_999), Some(2_500_000)), "2,499,999 of 2,500,000 (99.9%)");
        assert_eq!(against(Some(7), Some(0)), "7");
        assert_eq!(against(None, Some(5)), "-");
    }
}
