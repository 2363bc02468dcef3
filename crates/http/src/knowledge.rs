//! Knowledge bases over HTTP (RUNTIME.md §8): the Runtime API's knowledge-base routes under
//! `/runtime/v1/resources/{id}/knowledge-bases` (authenticated by `x-api-key` with a key of the
//! knowledge base) and the Portal API's content routes under `/api/v1/resources/{id}/collections`
//! (a user's bearer token, the Portal's access rule).
//!
//! Errors use the API's envelope `{"error": {"code", "message", "details"}}`; Runtime API
//! answers also carry a top-level `message`, as the product family's clients read it. Codes:
//! `validation_failed` (400, `details.fields` names each field, e.g. `chunks[9].vector`),
//! `invalid_request` (400, a body that is not the JSON expected), `not_found` (404, an unknown
//! collection), `storage_quota_exceeded` (413, `details` `{used, quota, needed}`),
//! `unsupported_file_type` / `no_text` / `unsupported_encoding` / `encrypted_pdf` /
//! `unreadable_pdf` (uploads), and what the linked embeddings resource answered (429
//! `quota_exceeded` with `Retry-After`, 502, …) for searches by text and uploads.
//!
//! The upload is `multipart/form-data` with a `file` part and an optional `metadata` part (a
//! JSON array of `{"name", "value"}` or an object of names to values), at most
//! [`UPLOAD_LIMIT`] bytes; it bypasses the `/api/v1` JSON guard ([`is_upload_path`]) and is
//! checked here instead.

use crate::api::Caller;
use crate::error::ApiError;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use genai_app::knowledge::{KbError, Upload};
use genai_core::resource::Resource;
use genai_core::ResourceId;
use genai_knowledge::validate::{parse_mx_object_id, PageRequest};
use genai_knowledge::wire::{InsertChunksRequest, NameValue, SearchRequest, SimilarityRequest};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The largest Runtime API knowledge-base body: 100 chunks of 8,192 dimensions written as
/// decimal text fit with room to spare.
pub const RUNTIME_KB_BODY_LIMIT: usize = 32 * 1024 * 1024;
/// The largest uploaded document (with its multipart framing).
pub const UPLOAD_LIMIT: usize = 32 * 1024 * 1024;

/// Whether a path is the Portal's document upload (multipart, larger than the API's JSON limit).
pub fn is_upload_path(path: &str) -> bool {
    path.starts_with("/api/v1/resources/") && path.contains("/collections/") && path.ends_with("/documents")
}

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runtime/v1/resources/{id}/knowledge-bases", get(list_collections))
        .route("/runtime/v1/resources/{id}/knowledge-bases/{collection}", axum::routing::delete(drop_collection))
        .route(
            "/runtime/v1/resources/{id}/knowledge-bases/{collection}/chunks",
            post(insert_chunks).get(list_chunks).delete(delete_object),
        )
        .route("/runtime/v1/resources/{id}/knowledge-bases/{collection}/similarity", post(similarity))
        .route("/runtime/v1/resources/{id}/knowledge-bases/{collection}/search", post(search))
        .layer(DefaultBodyLimit::max(RUNTIME_KB_BODY_LIMIT))
        .merge(
            Router::new()
                .route("/api/v1/resources/{id}/collections", get(portal_collections))
                .route(
                    "/api/v1/resources/{id}/collections/{collection}",
                    post(portal_create_collection).delete(portal_drop_collection),
                )
                .route("/api/v1/resources/{id}/collections/{collection}/documents", post(portal_upload))
                .route("/api/v1/resources/{id}/activity", get(portal_activity))
                .layer(DefaultBodyLimit::max(UPLOAD_LIMIT)),
        )
}

/// An error of these routes, in the API's envelope.
pub struct KbFailure {
    error: KbError,
    /// Whether to add the top-level `message` of the Runtime API.
    runtime: bool,
}

impl From<KbError> for KbFailure {
    fn from(error: KbError) -> Self {
        KbFailure { error, runtime: true }
    }
}

fn envelope(status: u16, code: &str, message: String, details: Value, runtime: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body = json!({"error": {"code": code, "message": message, "details": details}});
    if runtime {
        body["message"] = json!(message);
    }
    (status, Json(body)).into_response()
}

impl IntoResponse for KbFailure {
    fn into_response(self) -> Response {
        let runtime = self.runtime;
        let message = self.error.to_string();
        match self.error {
            KbError::App(e) => {
                let mut res = ApiError::from(e).into_response();
                if runtime {
                    res.headers_mut().insert("x-genai-surface", HeaderValue::from_static("runtime"));
                }
                res
            }
            KbError::Unauthenticated(_) => envelope(401, "unauthenticated", message, json!({}), runtime),
            KbError::WrongResource(id) => {
                envelope(403, "wrong_resource", message, json!({"resource_id": id.as_str()}), runtime)
            }
            KbError::WrongResourceType(_) => envelope(
                400,
                "wrong_resource_type",
                "this route serves knowledge-base resources; the key's resource is not one".into(),
                json!({}),
                runtime,
            ),
            KbError::Deprovisioned(_) => envelope(409, "already_deprovisioned", message, json!({}), runtime),
            KbError::CollectionNotFound(name) => envelope(
                404,
                "not_found",
                format!("No collection named {name:?} in this knowledge base."),
                json!({"collection": name}),
                runtime,
            ),
            KbError::Validation(e) => envelope(
                400,
                "validation_failed",
                format!("The request is not valid: {}", e.summary()),
                json!({"fields": e.fields()}),
                runtime,
            ),
            KbError::StorageQuotaExceeded { used, quota, needed } => envelope(
                413,
                "storage_quota_exceeded",
                message,
                json!({"used": used, "quota": quota, "needed": needed}),
                runtime,
            ),
            KbError::Document(e) => {
                let status = if e.code() == "unsupported_file_type" { 415 } else { 400 };
                envelope(status, e.code(), e.to_string(), json!({"field": "file"}), runtime)
            }
            KbError::Embeddings(e) => {
                let retry = e.retry_after_secs;
                let mut res = envelope(
                    e.status,
                    &e.code,
                    format!("The linked embeddings resource refused: {}", e.message),
                    json!({"embeddings": true}),
                    runtime,
                );
                if let Some(v) = retry.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                    res.headers_mut().insert(header::RETRY_AFTER, v);
                }
                res
            }
            KbError::NoEmbedder => envelope(503, "embeddings_unavailable", message, json!({}), runtime),
        }
    }
}

type KbResult<T> = Result<T, KbFailure>;

fn portal(e: KbError) -> KbFailure {
    KbFailure { error: e, runtime: false }
}

fn invalid(message: String) -> KbFailure {
    KbFailure {
        error: KbError::App(genai_app::AppError::InvalidRequest { message, details: json!({"field": "body"}) }),
        runtime: true,
    }
}

/// Parses a JSON body into a request type; malformed JSON is 400 `invalid_request`.
fn parse<T: DeserializeOwned>(raw: &Bytes) -> KbResult<T> {
    serde_json::from_slice(raw).map_err(|e| invalid(format!("The body is not the JSON expected: {e}.")))
}

async fn caller(s: &AppState, headers: &HeaderMap, id: &str) -> KbResult<Resource> {
    let secret = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    Ok(s.app.kb_caller(secret, id).await?)
}

fn page(q: &HashMap<String, String>) -> KbResult<PageRequest> {
    PageRequest::parse(q.get("pageNumber").map(String::as_str), q.get("pageSize").map(String::as_str))
        .map_err(|e| KbError::Validation(e).into())
}

async fn list_collections(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    let page = page(&q)?;
    Ok(Json(s.app.kb_collections(&kb, page).await?).into_response())
}

async fn insert_chunks(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, collection)): Path<(String, String)>,
    raw: Bytes,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    let request: InsertChunksRequest = parse(&raw)?;
    let n = s.app.kb_insert(&kb, &collection, request).await?;
    Ok((StatusCode::CREATED, Json(json!({"collection": collection, "chunks": n}))).into_response())
}

async fn list_chunks(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, collection)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    let page = page(&q)?;
    let object = parse_mx_object_id(q.get("mxObjectId").map(String::as_str), false).map_err(KbError::Validation)?;
    Ok(Json(s.app.kb_chunks(&kb, &collection, object.as_deref(), page).await?).into_response())
}

async fn delete_object(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, collection)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    let object = parse_mx_object_id(q.get("mxObjectId").map(String::as_str), true)
        .map_err(KbError::Validation)?
        .unwrap_or_default();
    s.app.kb_delete_object(&kb, &collection, &object).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn drop_collection(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, collection)): Path<(String, String)>,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    s.app.kb_drop_collection(&kb, &collection, "runtime").await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn similarity(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, collection)): Path<(String, String)>,
    raw: Bytes,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    let request: SimilarityRequest = parse(&raw)?;
    Ok(Json(s.app.kb_similarity(&kb, &collection, &request).await?).into_response())
}

async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, collection)): Path<(String, String)>,
    raw: Bytes,
) -> KbResult<Response> {
    let kb = caller(&s, &headers, &id).await?;
    let request: SearchRequest = parse(&raw)?;
    Ok(Json(s.app.kb_search(&kb, &collection, &request).await?).into_response())
}

// ---- Portal API ------------------------------------------------------------------------------

async fn portal_collections(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> KbResult<Response> {
    let id = ResourceId(id);
    let list = s.app.portal_kb_collections(&actor, &id).await.map_err(portal)?;
    let storage = {
        let r = s.app.portal_resource(&actor, &id).await.map_err(|e| portal(e.into()))?;
        s.app.kb_storage(&r).await.map_err(|e| portal(e.into()))?
    };
    let collections: Vec<Value> = list
        .iter()
        .map(|c| json!({"name": c.name, "chunks": c.chunks, "bytes": c.bytes, "dimension": c.dimension}))
        .collect();
    Ok(Json(json!({"collections": collections, "storage_bytes": storage.bytes_used, "chunks": storage.chunk_count}))
        .into_response())
}

async fn portal_create_collection(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path((id, collection)): Path<(String, String)>,
) -> KbResult<Response> {
    let c = s.app.portal_kb_create_collection(&actor, &ResourceId(id), &collection).await.map_err(portal)?;
    Ok((StatusCode::CREATED, Json(json!({"name": c.name, "chunks": c.chunks, "bytes": c.bytes}))).into_response())
}

async fn portal_drop_collection(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path((id, collection)): Path<(String, String)>,
) -> KbResult<Response> {
    s.app.portal_kb_drop_collection(&actor, &ResourceId(id), &collection).await.map_err(portal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn portal_activity(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> KbResult<Response> {
    let log = s.app.portal_kb_activity(&actor, &ResourceId(id)).await.map_err(portal)?;
    let lines: Vec<Value> = log
        .iter()
        .map(|a| {
            json!({"at": a.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "actor": a.actor,
                   "action": a.action, "collection": a.collection_name, "detail": a.detail})
        })
        .collect();
    Ok(Json(json!({"activity": lines})).into_response())
}

async fn portal_upload(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path((id, collection)): Path<(String, String)>,
    headers: HeaderMap,
    raw: Bytes,
) -> KbResult<Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let parts = multipart::parse(content_type, &raw).map_err(|m| portal(field_problem("body", m)))?;
    let file = parts.iter().find(|p| p.name == "file").ok_or_else(|| {
        portal(field_problem("file", "is required: a multipart part named \"file\" holding a TXT or PDF document"))
    })?;
    let metadata = match parts.iter().find(|p| p.name == "metadata") {
        None => Vec::new(),
        Some(p) => parse_metadata(p.data).map_err(|m| portal(field_problem("metadata", m)))?,
    };
    let upload = Upload {
        file_name: file.filename.clone().unwrap_or_default(),
        content_type: file.content_type.clone(),
        bytes: file.data.to_vec(),
        metadata,
    };
    let done = s.app.portal_kb_upload(&actor, &ResourceId(id), &collection, upload).await.map_err(portal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"document_id": done.document_id, "chunks": done.chunks, "bytes": done.bytes,
                    "collection": done.collection})),
    )
        .into_response())
}

fn field_problem(field: &str, message: impl Into<String>) -> KbError {
    KbError::Validation(genai_knowledge::ValidationErrors(vec![genai_knowledge::ValidationProblem::field(
        field, message,
    )]))
}

/// Metadata of an upload: `[{"name", "value"}, …]` or `{"name": "value", …}`.
pub fn parse_metadata(data: &[u8]) -> Result<Vec<NameValue>, String> {
    let text = std::str::from_utf8(data).map_err(|_| "is not UTF-8 text".to_string())?;
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(text).map_err(|e| format!("is not valid JSON: {e}"))?;
    let pairs: Vec<NameValue> = match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| {
                let name = item.get("name").and_then(Value::as_str);
                let value = item.get("value").and_then(Value::as_str);
                match (name, value) {
                    (Some(n), Some(v)) if !n.is_empty() => Ok(NameValue::new(n, v)),
                    _ => Err("must be a list of {\"name\": text, \"value\": text} with non-empty names".to_string()),
                }
            })
            .collect::<Result<_, _>>()?,
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) if !k.is_empty() => Ok(NameValue::new(k, s)),
                _ => Err("must map non-empty names to text values".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("must be a JSON list of {\"name\", \"value\"} or an object of names to values".into()),
    };
    if pairs.len() > genai_knowledge::validate::MAX_PAIRS {
        return Err(format!(
            "holds {} pairs; at most {} are allowed",
            pairs.len(),
            genai_knowledge::validate::MAX_PAIRS
        ));
    }
    if let Some(p) = pairs.iter().find(|p| {
        p.name.chars().count() > genai_knowledge::validate::NAME_VALUE_MAX
            || p.value.chars().count() > genai_knowledge::validate::NAME_VALUE_MAX
    }) {
        return Err(format!(
            "pair {:?} is longer than {} characters",
            p.name,
            genai_knowledge::validate::NAME_VALUE_MAX
        ));
    }
    Ok(pairs)
}

/// A small `multipart/form-data` reader (RFC 7578): enough for a browser's or a client
/// library's upload of a few fields and one file, all in memory.
pub mod multipart {
    /// One part.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Part<'a> {
        /// The form field's name.
        pub name: String,
        /// The file name, for a file.
        pub filename: Option<String>,
        /// The part's declared content type.
        pub content_type: Option<String>,
        /// The content.
        pub data: &'a [u8],
    }

    /// The `boundary` parameter of a `multipart/form-data` content type.
    fn boundary(content_type: &str) -> Option<String> {
        let mut pieces = content_type.split(';');
        if !pieces.next()?.trim().eq_ignore_ascii_case("multipart/form-data") {
            return None;
        }
        pieces.find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
        })
    }

    /// A header parameter (`name="file"`), quoted or not.
    fn param(header: &str, key: &str) -> Option<String> {
        header.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"').to_string())
        })
    }

    /// Splits a body into its parts; an error names what is wrong, for people.
    pub fn parse<'a>(content_type: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, String> {
        let boundary = boundary(content_type).ok_or_else(|| {
            format!("must be sent as multipart/form-data with a boundary (got content type {content_type:?})")
        })?;
        let delimiter = format!("--{boundary}");
        let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
        let starts: Vec<usize> = finder.find_iter(body).collect();
        if starts.len() < 2 {
            return Err("is not a complete multipart body".into());
        }
        let mut parts = Vec::new();
        for pair in starts.windows(2) {
            let mut chunk = &body[pair[0] + delimiter.len()..pair[1]];
            chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
            chunk = chunk.strip_suffix(b"\r\n").unwrap_or(chunk);
            let split = memchr::memmem::find(chunk, b"\r\n\r\n").ok_or("has a part without headers")?;
            let headers = std::str::from_utf8(&chunk[..split]).map_err(|_| "has part headers that are not text")?;
            let data = &chunk[split + 4..];
            let (mut name, mut filename, mut content_type) = (None, None, None);
            for line in headers.split("\r\n") {
                let Some((key, value)) = line.split_once(':') else { continue };
                if key.trim().eq_ignore_ascii_case("content-disposition") {
                    name = param(value, "name");
                    filename = param(value, "filename");
                } else if key.trim().eq_ignore_ascii_case("content-type") {
                    content_type = Some(value.trim().to_string());
                }
            }
            let name = name.ok_or("has a part without a name")?;
            parts.push(Part { name, filename, content_type, data });
        }
        Ok(parts)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_fields_and_files_and_refuses_what_is_not_multipart() {
            let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"metadata\"\r\nContent-Type: application/json\r\n\r\n[1]\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.txt\"\r\nContent-Type: text/plain\r\n\r\nline 1\r\n\r\nline 2\r\n--XyZ--\r\n";
            let parts = parse("multipart/form-data; boundary=XyZ", body).unwrap();
            assert_eq!(parts.len(), 2);
            assert_eq!((parts[0].name.as_str(), parts[0].data), ("metadata", &b"[1]"[..]));
            assert_eq!(parts[1].filename.as_deref(), Some("a b.txt"));
            assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
            assert_eq!(parts[1].data, b"line 1\r\n\r\nline 2");
            assert!(parse("application/json", body).is_err());
            assert!(parse("multipart/form-data; boundary=XyZ", b"nothing").is_err());
        }
    }
}

/// The runtime engine as the knowledge bases' [`Embedder`](genai_app::knowledge::Embedder):
/// a search by text or an upload embeds through the linked embeddings resource's model and is
/// metered on that resource exactly as a Runtime API `invoke` of it would be (reserved first,
/// refused with 429 `quota_exceeded` when its quota is spent, settled with the usage the
/// upstream reported, durable before the answer).
pub struct RuntimeEmbedder {
    runtime: genai_runtime::Runtime,
}

impl RuntimeEmbedder {
    /// An embedder over the engine.
    pub fn new(runtime: genai_runtime::Runtime) -> RuntimeEmbedder {
        RuntimeEmbedder { runtime }
    }
}

fn embed_error(e: genai_runtime::RuntimeError) -> genai_app::knowledge::EmbedError {
    if let genai_runtime::RuntimeError::Unavailable(cause) = &e {
        tracing::warn!(cause = %cause, "a knowledge base's embedding call could not be served");
    }
    genai_app::knowledge::EmbedError {
        status: e.status(),
        code: e.code().to_string(),
        message: e.to_string(),
        retry_after_secs: e.retry_after(),
    }
}

#[async_trait::async_trait]
impl genai_app::knowledge::Embedder for RuntimeEmbedder {
    async fn embed(
        &self,
        embeddings: &Resource,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, genai_app::knowledge::EmbedError> {
        use genai_runtime::{Caller, Demand, RuntimeError};
        use genai_wire::openai::{EmbeddingInput, EmbeddingsRequest, EncodingFormat};
        let rt = &self.runtime;
        if !genai_runtime::serves_at(embeddings, rt.app().now()) {
            return Err(genai_app::knowledge::EmbedError {
                status: 409,
                code: "already_deprovisioned".into(),
                message: format!("the linked embeddings resource {} is deprovisioned", embeddings.id),
                retry_after_secs: None,
            });
        }
        let model = embeddings.model.clone().ok_or_else(|| genai_app::knowledge::EmbedError {
            status: 500,
            code: "internal".into(),
            message: format!("the embeddings resource {} has no model", embeddings.id),
            retry_after_secs: None,
        })?;
        let caller = Caller::internal(embeddings.clone());
        let route = rt.route(&model).map_err(|e| embed_error(RuntimeError::from(e)))?.clone();
        let request = EmbeddingsRequest {
            model,
            input: EmbeddingInput::Texts(texts.to_vec()),
            encoding_format: Some(EncodingFormat::Float),
            dimensions: None,
            extra: Default::default(),
        };
        let bound = genai_wire::estimate::embeddings(&request);
        let reservation = rt
            .reserve(&caller, Demand { input: bound, max_output: None, produces_output: false })
            .await
            .map_err(embed_error)?;
        // A failed upstream call drops the reservation: nothing is charged.
        let answer = route.embed(request).await.map_err(|e| embed_error(RuntimeError::Provider(e)))?;
        let input_tokens = answer.input_tokens().unwrap_or(bound);
        let out = genai_wire::translate::embeddings_to_cohere(answer.response, String::new(), texts.to_vec()).map_err(
            |e| genai_app::knowledge::EmbedError {
                status: 502,
                code: "upstream_failed".into(),
                message: format!("the embeddings model answered something unusable: {}", e.0),
                retry_after_secs: None,
            },
        )?;
        rt.settle(reservation, genai_core::quota::Tokens::new(input_tokens, 0)).await.map_err(embed_error)?;
        Ok(out.embeddings.into_iter().map(|v| v.into_iter().map(|x| x as f32).collect()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_a_list_of_pairs_or_an_object() {
        let pairs = parse_metadata(br#"[{"name": "a", "value": "1"}]"#).unwrap();
        assert_eq!(pairs, vec![NameValue::new("a", "1")]);
        assert_eq!(parse_metadata(br#"{"b": "2"}"#).unwrap(), vec![NameValue::new("b", "2")]);
        assert!(parse_metadata(br#"{"b": 2}"#).is_err());
        assert!(parse_metadata(b"[{\"name\": \"\"}]").is_err());
        assert_eq!(parse_metadata(b"  ").unwrap(), vec![]);
        assert!(is_upload_path("/api/v1/resources/res_1/collections/x/documents"));
        assert!(!is_upload_path("/api/v1/resources/res_1/collections/x"));
    }
}
