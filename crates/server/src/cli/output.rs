//! Rendering for people and for scripts: aligned tables, key/value blocks, `--json` output and
//! the one format of error messages.
//!
//! Everything is built as a `String` first and written in one go through [`emit`], which treats
//! a closed pipe (`genai resources list | head -1`) as a normal end rather than a panic.

use super::client::CliError;
use serde_json::Value;
use std::io::Write;

/// Writes `text` to stdout. A reader that went away (broken pipe) is not an error worth
/// reporting; anything else is ignored as well because there is nowhere left to report it.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
}

/// Writes a line for the person at the terminal to stderr (kept out of stdout so that
/// `$(genai …)` captures only the answer).
pub fn note(line: &str) {
    let _ = std::io::stderr().lock().write_all(format!("{line}\n").as_bytes());
}

/// Prints a JSON answer pretty, as the server sent it.
pub fn emit_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => emit(&format!("{text}\n")),
        // Serializing a `Value` cannot fail; fall back to the compact form just in case.
        Err(_) => emit(&format!("{value}\n")),
    }
}

/// An aligned table: a header row and data rows, columns separated by two spaces.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given column headers.
    pub fn new(headers: &[&'static str]) -> Table {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are empty, extra cells are dropped.
    pub fn row(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Whether no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, ending with a newline. The last column is not
    /// padded, so lines carry no trailing spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[i] - width(cell) + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key/value lines (`Key   value`), keys padded to the longest one.
#[derive(Default)]
pub struct Pairs {
    pairs: Vec<(String, String)>,
}

impl Pairs {
    /// An empty block.
    pub fn new() -> Pairs {
        Pairs::default()
    }

    /// Adds a line.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.pairs.push((key.into(), value.into()));
    }

    /// The block as text, ending with a newline.
    pub fn render(&self) -> String {
        let key_width = self.pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value) in &self.pairs {
            let line = format!("{key}{}{value}", " ".repeat(key_width - width(key) + 2));
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Display width of a cell. Characters count as one column each, which is right for the ASCII
/// and Latin text the product shows (names may contain accents; `·` is in status labels).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// A field of a JSON object as text: strings as they are, numbers grouped (`5,000,000`),
/// booleans as yes/no, null or missing as `-`.
pub fn field(value: &Value, key: &str) -> String {
    scalar(value.get(key).unwrap_or(&Value::Null))
}

/// A JSON value as text, as [`field`] does.
pub fn scalar(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => group_digits(i),
            None => n.to_string(),
        },
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string field, or `None` when it is missing, null or not a string.
pub fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut groups: Vec<&str> =
        digits.as_bytes().rchunks(3).map(|chunk| std::str::from_utf8(chunk).unwrap_or("")).collect();
    groups.reverse();
    let out = groups.join(",");
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Key/value lines for any JSON object, for answers the CLI has no dedicated view of (operator
/// answers whose fields beyond `id` the contract leaves open). Nested objects become dotted keys;
/// `id` comes first, the rest in the order the server sent.
pub fn generic_pairs(value: &Value) -> Pairs {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, inner) in map {
                    let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                    walk(&key, inner, out);
                }
            }
            other => out.push((prefix.to_string(), scalar(other))),
        }
    }
    let mut lines = Vec::new();
    walk("", value, &mut lines);
    lines.sort_by_key(|(k, _)| k != "id");
    let mut pairs = Pairs::new();
    for (k, v) in lines {
        pairs.add(k, v);
    }
    pairs
}

/// Prints an error on stderr: `error: <message> (<code>)`, then details worth a line each.
pub fn print_error(error: &CliError) {
    let mut text = String::new();
    match error {
        CliError::NoToken { operator: true } => {
            text.push_str("error: no operator token given (pass --token, or set GENAI_TOKEN or GENAI_OPERATOR_TOKEN)\n")
        }
        CliError::NoToken { operator: false } => text.push_str(
            "error: no API token given (pass --token or set GENAI_TOKEN; an operator can create one with \
             `genai operator tokens create USER_ID`)\n",
        ),
        CliError::BadServerUrl { url, reason } => {
            text.push_str(&format!("error: cannot use server URL `{url}`: {reason}\n"));
        }
        CliError::Unreachable { url, reason } => {
            text.push_str(&format!("error: cannot reach the server at {url}: {reason}\n"));
            text.push_str("hint: is `genai serve` running there? Choose another with --server or GENAI_SERVER.\n");
        }
        CliError::Api { code, message, details, .. } => {
            text.push_str(&format!("error: {message} ({code})\n"));
            text.push_str(&detail_lines(code, details));
        }
        CliError::UnexpectedAnswer { status, body } => {
            text.push_str(&format!("error: the server answered {status} with something that is not the API's JSON"));
            if body.is_empty() {
                text.push('\n');
            } else {
                text.push_str(&format!(":\n  {body}\n"));
            }
            text.push_str("hint: does --server point at a genai server?\n");
        }
        CliError::Local(message) => text.push_str(&format!("error: {message}\n")),
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
}

/// The lines under an API error: one per bad field for `validation_failed`, the failing checks
/// for `not_eligible`, the amounts for `insufficient_tokens`.
fn detail_lines(code: &str, details: &Value) -> String {
    let mut out = String::new();
    match code {
        "validation_failed" => {
            if let Some(fields) = details.get("fields").and_then(Value::as_object) {
                for (name, message) in fields {
                    let message = match message {
                        Value::String(s) => s.clone(),
                        Value::Array(items) => items.iter().map(scalar).collect::<Vec<_>>().join("; "),
                        other => scalar(other),
                    };
                    out.push_str(&format!("  {name}: {message}\n"));
                }
            }
        }
        "not_eligible" => {
            for check in details.get("checks").and_then(Value::as_array).into_iter().flatten() {
                if check.get("ok").and_then(Value::as_bool) == Some(false) {
                    out.push_str(&format!("  {}: {}\n", field(check, "name"), field(check, "message")));
                }
            }
        }
        "insufficient_tokens" if details.get("required").is_some() || details.get("available").is_some() => {
            out.push_str(&format!(
                "  required: {}, available: {}\n",
                field(details, "required"),
                field(details, "available")
            ));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_aligned_without_trailing_spaces() {
        let mut t = Table::new(&["ID", "NAME", "PLAN"]);
        t.row(vec!["r1".into(), "Support bot".into(), "medium".into()]);
        t.row(vec!["resource-2".into(), "X".into(), String::new()]);
        assert_eq!(t.render(), "ID          NAME         PLAN\nr1          Support bot  medium\nresource-2  X\n");
    }

    #[test]
    fn pairs_are_aligned() {
        let mut p = Pairs::new();
        p.add("ID", "r1");
        p.add("Created for", "Ada");
        assert_eq!(p.render(), "ID           r1\nCreated for  Ada\n");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(-2500000), "-2,500,000");
    }

    #[test]
    fn validation_details_name_each_field() {
        let details = json!({"fields": {"user.email": "not a valid address", "display_name": "too long"}});
        let lines = detail_lines("validation_failed", &details);
        assert!(lines.contains("  user.email: not a valid address\n"));
        assert!(lines.contains("  display_name: too long\n"));
    }

    #[test]
    fn generic_pairs_put_id_first_and_flatten() {
        let v = json!({"name": "Acme", "id": "c1", "balance": {"total": 500}});
        assert_eq!(generic_pairs(&v).render(), "id             c1\nbalance.total  500\nname           Acme\n");
    }
}
