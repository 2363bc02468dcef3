//! `genai kb …`: a knowledge base's content (RUNTIME.md §8).
//!
//! Which API each command uses (also in README.md):
//! - `kb collections`, `kb upload` and `kb delete` are the Portal's:
//!   `GET /api/v1/resources/{id}/collections`,
//!   `POST /api/v1/resources/{id}/collections/{name}/documents` and
//!   `DELETE /api/v1/resources/{id}/collections/{name}` with the user's API token
//!   (`--token`/`GENAI_TOKEN`), like `keys`, `usage` and `members`: a team member or company
//!   admin manages content as on the Portal's Content tab.
//! - `kb search` is what an application does: the Runtime API's
//!   `POST /runtime/v1/resources/{id}/knowledge-bases/{collection}/search` with a key of the
//!   knowledge base (`--key`/`GENAI_KB_KEY`, made with `genai keys create`), because a search is a
//!   runtime call (its query is embedded by the linked embeddings resource and metered there) and
//!   the Portal API has no search.
//!
//! The upload is sent as `multipart/form-data` (a `file` part and a `metadata` part holding the
//! `--meta` pairs as JSON), built here: the CLI needs no multipart library for one file.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, Table};
use serde_json::{json, Value};
use std::path::PathBuf;

/// A knowledge base's content.
#[derive(clap::Subcommand, Debug)]
pub enum KbCommand {
    /// List a knowledge base's collections with their chunks, size and vector dimension, and
    /// the storage used (user token).
    Collections {
        /// Knowledge base id (`res_…`).
        resource: String,
    },
    /// Upload a TXT or PDF file: its text is split into chunks, embedded by the linked
    /// embeddings resource (metered there) and stored (user token).
    Upload {
        /// Knowledge base id (`res_…`).
        resource: String,
        /// The file (`.txt` or `.pdf`).
        file: PathBuf,
        /// The collection (created if new).
        #[arg(long, default_value = "default")]
        collection: String,
        /// Metadata put on every chunk, `key=value` (repeatable).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
    },
    /// Delete a collection and all its chunks (user token).
    Delete {
        /// Knowledge base id (`res_…`).
        resource: String,
        /// The collection.
        collection: String,
    },
    /// Search a collection by text: the most similar chunks first (a key of the knowledge base).
    Search {
        /// Knowledge base id (`res_…`).
        resource: String,
        /// What to look for.
        query: String,
        /// The collection.
        #[arg(long, default_value = "default")]
        collection: String,
        /// How many chunks to answer.
        #[arg(short = 'k', long = "k", default_value_t = 3)]
        k: u32,
        /// A key of the knowledge base (`genai keys create`).
        #[arg(long, env = "GENAI_KB_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Only chunks with this metadata, `key=value` (repeatable; all must match).
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
    },
}

/// Reads `key=value` pairs, naming the bad one.
fn pairs(meta: &[String]) -> Result<Vec<Value>, CliError> {
    meta.iter()
        .map(|m| match m.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(json!({"name": k.trim(), "value": v.trim()})),
            _ => Err(CliError::Local(format!("--meta {m:?}: write it as key=value with a non-empty key"))),
        })
        .collect()
}

/// A `multipart/form-data` body of one file and the metadata.
fn multipart(file_name: &str, content_type: &str, data: &[u8], metadata: &Value) -> (String, Vec<u8>) {
    // A boundary that does not occur in the file (checked, so no randomness is needed).
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let occurs = |b: &str| data.windows(b.len()).any(|w| w == b.as_bytes());
    let boundary = (0u32..)
        .map(|n| format!("genai-kb-{nanos:x}-{n}"))
        .find(|b| !occurs(b))
        .unwrap_or_else(|| "genai-kb-boundary".into());
    let quoted = file_name.replace(['"', '\r', '\n'], "_");
    let mut body = Vec::with_capacity(data.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{metadata}\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{quoted}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Runs a `kb` command.
pub async fn run(api: &Api, json: bool, command: KbCommand) -> Result<(), CliError> {
    match command {
        KbCommand::Collections { resource } => {
            let answer = api.get(&format!("/api/v1/resources/{}/collections", segment(&resource)), &[]).await?;
            if json {
                emit_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&["COLLECTION", "CHUNKS", "BYTES", "DIMENSION"]);
            for c in answer.get("collections").and_then(Value::as_array).into_iter().flatten() {
                table.row(vec![field(c, "name"), field(c, "chunks"), field(c, "bytes"), field(c, "dimension")]);
            }
            let mut out = if table.is_empty() { "No collections.\n".to_string() } else { table.render() };
            out.push_str(&format!(
                "Storage used: {} bytes in {} chunks.\n",
                field(&answer, "storage_bytes"),
                field(&answer, "chunks")
            ));
            emit(&out);
        }
        KbCommand::Upload { resource, file, collection, meta } => {
            let metadata = Value::Array(pairs(&meta)?);
            let data =
                std::fs::read(&file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let content_type = match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
                Some(e) if e == "pdf" => "application/pdf",
                Some(e) if e == "txt" => "text/plain",
                _ => "application/octet-stream",
            };
            let (ct, body) = multipart(&name, content_type, &data, &metadata);
            let path =
                format!("/api/v1/resources/{}/collections/{}/documents", segment(&resource), segment(&collection));
            let answer = api.post_bytes(&path, &ct, body).await?;
            if json {
                emit_json(&answer);
            } else {
                emit(&format!(
                    "Uploaded {name} into {}: {} chunks, {} bytes (document {}).\n",
                    field(&answer, "collection"),
                    field(&answer, "chunks"),
                    field(&answer, "bytes"),
                    field(&answer, "document_id")
                ));
            }
        }
        KbCommand::Delete { resource, collection } => {
            let path = format!("/api/v1/resources/{}/collections/{}", segment(&resource), segment(&collection));
            let answer = api.delete(&path).await?;
            if json {
                emit_json(&if answer.is_null() { json!({"collection": collection, "deleted": true}) } else { answer });
            } else {
                emit(&format!("Deleted the collection {collection}.\n"));
            }
        }
        KbCommand::Search { resource, query, collection, k, key, meta } => {
            let key = key.ok_or_else(|| {
                CliError::Local(
                    "kb search needs a key of the knowledge base: --key or GENAI_KB_KEY (make one with `genai keys \
                     create RESOURCE --description …`)"
                        .into(),
                )
            })?;
            let body = json!({"query": query, "k": k, "metadataFilters": pairs(&meta)?});
            let path =
                format!("/runtime/v1/resources/{}/knowledge-bases/{}/search", segment(&resource), segment(&collection));
            let answer = api.post_with_key(&path, &key, &body).await?;
            if json {
                emit_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&["SIMILARITY", "CHUNK", "TEXT"]);
            for hit in answer.get("chunks").and_then(Value::as_array).into_iter().flatten() {
                let chunk = hit.get("chunk").cloned().unwrap_or(Value::Null);
                let text: String = field(&chunk, "key").split_whitespace().collect::<Vec<_>>().join(" ");
                let short = match text.char_indices().nth(90) {
                    Some((cut, _)) => format!("{}…", &text[..cut]),
                    None => text,
                };
                let similarity = hit.get("similarity").and_then(Value::as_f64).unwrap_or(0.0);
                table.row(vec![format!("{similarity:.4}"), field(&chunk, "humanReadableId"), short]);
            }
            emit(&if table.is_empty() { "No chunks found.\n".to_string() } else { table.render() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_pairs_need_a_key_and_an_equals_sign() {
        assert_eq!(
            pairs(&["a=1".into(), " b = x=y ".into()]).unwrap(),
            vec![json!({"name": "a", "value": "1"}), json!({"name": "b", "value": "x=y"})]
        );
        assert!(pairs(&["novalue".into()]).is_err());
        assert!(pairs(&["=x".into()]).is_err());
    }

    #[test]
    fn the_multipart_body_holds_the_file_and_the_metadata() {
        let (ct, body) = multipart("a\"b.txt", "text/plain", b"hello", &json!([{"name": "k", "value": "v"}]));
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
        assert!(text.contains("filename=\"a_b.txt\""));
        assert!(text.contains("\r\n\r\nhello\r\n"));
        assert!(text.contains(r#"[{"name":"k","value":"v"}]"#));
    }
}
