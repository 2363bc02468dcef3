//! `genai kb …`: a knowledge base's content (RUNTIME.md §8). `collections`, `upload` and
//! `delete` use the Portal API (`/api/v1/resources/{id}/collections…`, the user's token);
//! `search` uses the Runtime API with a runtime key of the knowledge base (`--key` or
//! `GENAI_KB_KEY`), as an application would, and is metered on its linked embeddings resource.

use super::client::{segment, Api, CliError};
use super::output::{emit, emit_json, field, Table};
use serde_json::{json, Value};
use std::path::PathBuf;

/// A knowledge base's collections and documents.
#[derive(clap::Subcommand, Debug)]
pub enum KbCommand {
    /// List the collections (chunks, bytes, vector dimension) and the storage used.
    Collections {
        /// Knowledge-base resource id (`res_…`).
        resource: String,
    },
    /// Upload a TXT or PDF file into a collection (created if new): the server extracts the
    /// text, cuts it into chunks, embeds them with the linked embeddings resource and stores
    /// them all, or nothing.
    Upload {
        /// Knowledge-base resource id (`res_…`).
        resource: String,
        /// Collection name.
        collection: String,
        /// The file (`.txt` or `.pdf`).
        file: PathBuf,
        /// Metadata attached to every chunk: a JSON object of names to values, or a list of
        /// `{"name", "value"}`.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Search a collection by text (embedded by the linked embeddings resource, metered there).
    Search {
        /// Knowledge-base resource id (`res_…`).
        resource: String,
        /// Collection name.
        collection: String,
        /// What to look for.
        query: String,
        /// How many results (1–1,000).
        #[arg(long, default_value_t = 3)]
        k: u32,
        /// A runtime key of the knowledge base.
        #[arg(long, env = "GENAI_KB_KEY", hide_env_values = true)]
        key: String,
    },
    /// Delete a collection and every chunk in it.
    Delete {
        /// Knowledge-base resource id (`res_…`).
        resource: String,
        /// Collection name.
        collection: String,
    },
}

fn collections_path(resource: &str) -> String {
    format!("/api/v1/resources/{}/collections", segment(resource))
}

/// A `multipart/form-data` body with an optional `metadata` part and the `file` part.
fn multipart(file_name: &str, data: &[u8], metadata: Option<&str>) -> (String, Vec<u8>) {
    let boundary = format!("genai-cli-{:016x}", std::process::id() as u64 ^ data.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    let mut body = Vec::with_capacity(data.len() + 512);
    if let Some(m) = metadata {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n{m}\r\n"
            )
            .as_bytes(),
        );
    }
    let safe_name = file_name.replace(['"', '\r', '\n'], "_");
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{safe_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
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
            let answer = api.get(&collections_path(&resource), &[]).await?;
            if json {
                emit_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&["COLLECTION", "CHUNKS", "BYTES", "DIMENSION"]);
            for c in answer.get("collections").and_then(Value::as_array).into_iter().flatten() {
                table.row(vec![field(c, "name"), field(c, "chunks"), field(c, "bytes"), field(c, "dimension")]);
            }
            let listing = if table.is_empty() { "No collections.\n".to_string() } else { table.render() };
            emit(&format!("{listing}Storage used: {} bytes\n", field(&answer, "storage_bytes")));
        }
        KbCommand::Upload { resource, collection, file, metadata } => {
            let data =
                std::fs::read(&file).map_err(|e| CliError::Local(format!("cannot read {}: {e}", file.display())))?;
            let name = file.file_name().map_or_else(|| "upload".to_string(), |n| n.to_string_lossy().into_owned());
            let (content_type, body) = multipart(&name, &data, metadata.as_deref());
            let path = format!("{}/{}/documents", collections_path(&resource), segment(&collection));
            let answer = api.post_raw(&path, &content_type, body).await?;
            if json {
                emit_json(&answer);
            } else {
                emit(&format!(
                    "Stored {name} in {collection}: {} chunks, {} bytes (document {}).\n",
                    field(&answer, "chunks"),
                    field(&answer, "bytes"),
                    field(&answer, "document_id")
                ));
            }
        }
        KbCommand::Search { resource, collection, query, k, key } => {
            let path =
                format!("/runtime/v1/resources/{}/knowledge-bases/{}/search", segment(&resource), segment(&collection));
            let answer = api.runtime_post(&path, &key, &json!({ "query": query, "k": k })).await?;
            if json {
                emit_json(&answer);
                return Ok(());
            }
            let mut table = Table::new(&["SIMILARITY", "CHUNK", "TEXT"]);
            for hit in answer.get("chunks").and_then(Value::as_array).into_iter().flatten() {
                let chunk = hit.get("chunk").cloned().unwrap_or(Value::Null);
                let text: String = field(&chunk, "key").chars().take(80).collect();
                let similarity =
                    hit.get("similarity").and_then(Value::as_f64).map_or("—".into(), |s| format!("{s:.4}"));
                table.row(vec![similarity, field(&chunk, "chunkId"), text.replace('\n', " ")]);
            }
            emit(&if table.is_empty() { "No matches.\n".to_string() } else { table.render() });
        }
        KbCommand::Delete { resource, collection } => {
            api.delete(&format!("{}/{}", collections_path(&resource), segment(&collection))).await?;
            if json {
                emit_json(&json!({ "collection": collection, "deleted": true }));
            } else {
                emit(&format!("Deleted collection {collection}.\n"));
            }
        }
    }
    Ok(())
}
