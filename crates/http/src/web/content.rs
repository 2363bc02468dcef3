//! The Portal's **Content** tab of a knowledge base (RUNTIME.md §8): its collections with chunk
//! counts and sizes, the storage used against the plan's quota, uploads of TXT and PDF files
//! with metadata into a new, the default or an existing collection, deleting a collection
//! (after a confirmation) and the activity log.
//!
//! The work is the application's (`App::portal_kb_*`: the Portal's access rule, extraction,
//! chunking, embedding through the linked embeddings resource, metered there, and the
//! all-or-nothing insert against the storage quota); this module reads the forms and shows
//! the answers.
//!
//! Rules chosen here (also in docs/portal.md):
//! - An upload is one `multipart/form-data` POST of at most [`UPLOAD_LIMIT`] bytes with the
//!   session's CSRF token as a field; a larger body is refused with that limit named, before
//!   anything is read past it.
//! - Metadata is typed as `key=value` lines; a line without `=` or with an empty key is refused
//!   naming the line. Every chunk of the document carries every pair.
//! - The collection is picked from a list (the default collection `default`, each existing
//!   collection, or "New collection…" with its name typed).
//! - Progress: with JavaScript, the page's script sends the form itself and shows the bytes
//!   sent, then "Extracting, embedding and storing…" until the server answers (the server
//!   does the whole document in that one request, so that second step has no finer figure to
//!   show honestly); without JavaScript the browser's own progress is all there is.
//! - Success redirects to the tab (post/redirect/get) with a line saying what was stored;
//!   a refusal shows the tab again with the reason and the form as it was (no file: browsers
//!   never refill one).

use super::portal::{is_htmx, page, portal_error, resource_or_page, ConfirmDialog};
use super::views::{bytes, sentence, thousands, when};
use super::{html, see_other, Fields, WebUser};
use crate::knowledge::multipart;
use crate::AppState;
use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use genai_app::knowledge::{KbError, Upload};
use genai_app::AppError;
use genai_core::catalog::ResourceType;
use genai_core::resource::Resource;
use genai_core::ResourceId;
use genai_knowledge::validate::{MAX_PAIRS, NAME_VALUE_MAX};
use genai_knowledge::wire::NameValue;

/// The largest upload the Content tab accepts, multipart framing included.
pub const UPLOAD_LIMIT: usize = 32_000_000;
/// The collection an upload goes to unless another is chosen.
pub const DEFAULT_COLLECTION: &str = "default";
/// The choice "New collection…" in the collection list.
const NEW: &str = "__new__";

/// The Content tab's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/resources/{id}/content", get(content_tab))
        .route("/portal/resources/{id}/content/collections", post(create_collection))
        .route("/portal/resources/{id}/content/upload", post(upload))
        .route("/portal/resources/{id}/content/collections/{name}/delete", get(delete_confirm).post(delete))
}

/// A collection's row.
pub struct CollectionRowView {
    /// Name.
    pub name: String,
    /// Chunks, for people.
    pub chunks: String,
    /// Chunks, exact.
    pub chunk_count: i64,
    /// Size, for people.
    pub size: String,
    /// Vector dimension ("—" while empty).
    pub dimension: String,
    /// Its delete confirmation's address.
    pub delete_href: String,
}

/// A line of the activity log.
pub struct ActivityView {
    /// When.
    pub at: String,
    /// Who (their name when known, else their id).
    pub who: String,
    /// Their email, when known.
    pub who_email: String,
    /// What, in words.
    pub action: &'static str,
    /// The collection.
    pub collection: String,
    /// The result.
    pub detail: String,
}

/// What the upload form held when it was refused.
#[derive(Default)]
pub struct UploadForm {
    /// The collection chosen (a name or `__new__`).
    pub collection: String,
    /// The new collection's name.
    pub new_collection: String,
    /// Metadata lines.
    pub metadata: String,
    /// Why it was refused, and which field (`file`, `collection`, `metadata`, or "" for none).
    pub error: Option<(String, String)>,
    /// The new collection form's name and its error.
    pub create_name: String,
    /// Its error.
    pub create_error: Option<String>,
}

/// The Content tab.
pub struct ContentView {
    /// Collections, by name.
    pub collections: Vec<CollectionRowView>,
    /// Choices of the upload's collection: (value, label, selected).
    pub choices: Vec<(String, String, bool)>,
    /// Whether "New collection…" is chosen.
    pub new_chosen: bool,
    /// Bytes used.
    pub used: i64,
    /// The quota.
    pub quota: i64,
    /// Used, for people.
    pub used_text: String,
    /// Quota, for people.
    pub quota_text: String,
    /// Percent used (text).
    pub percent_text: String,
    /// Percent for the meter (0–100).
    pub meter: i64,
    /// Chunks in all.
    pub chunks_text: String,
    /// The upload limit, for people.
    pub limit_text: String,
    /// The upload limit in bytes (the script checks it before sending).
    pub limit: usize,
    /// The activity log, newest first.
    pub activity: Vec<ActivityView>,
    /// The form.
    pub form: UploadForm,
    /// Whether content can change (live).
    pub live: bool,
    /// CSRF token.
    pub csrf: String,
    /// The embeddings resource that makes the vectors (name), if the viewer may see it.
    pub embeddings: Option<(String, Option<String>)>,
}

impl ContentView {
    /// The form's error if it is about `field`.
    pub fn error_of(&self, field: &str) -> &str {
        match &self.form.error {
            Some((f, m)) if f == field => m,
            _ => "",
        }
    }

    /// The form's error when it is no field's.
    pub fn general_error(&self) -> &str {
        match &self.form.error {
            Some((f, m)) if f.is_empty() => m,
            _ => "",
        }
    }
}

fn action_words(action: &str) -> &'static str {
    match action {
        "upload" => "Uploaded",
        "create_collection" => "Created collection",
        "delete_collection" | "drop_collection" => "Deleted collection",
        "delete_object" | "delete_chunks" => "Deleted chunks",
        "insert" | "insert_chunks" => "Inserted chunks",
        _ => "Changed",
    }
}

/// The result of an activity line, in words ("1 chunk", not "1 chunks").
fn activity_detail(action: &str, detail: &str) -> String {
    if detail.is_empty() {
        return if action == "create_collection" { "empty collection".into() } else { "done".into() };
    }
    let detail = detail.replace(" 1 chunks", " 1 chunk");
    match detail.strip_prefix("1 chunks") {
        Some(rest) => format!("1 chunk{rest}"),
        None => detail,
    }
}

fn percent(used: i64, quota: i64) -> (String, i64) {
    if quota <= 0 {
        return ("—".into(), 0);
    }
    let tenths = (i128::from(used) * 1000 / i128::from(quota)) as i64;
    let text = if used > 0 && tenths == 0 { "<0.1%".to_string() } else { format!("{}.{}%", tenths / 10, tenths % 10) };
    (text, (tenths / 10).min(100))
}

/// Renders the Content tab.
pub(super) async fn render(
    state: &AppState,
    who: &WebUser,
    r: &Resource,
    status: StatusCode,
    flash: Option<String>,
    form: UploadForm,
) -> Response {
    render_with(state, who, r, status, flash, form, None).await
}

/// Renders the Content tab, with a dialog open.
async fn render_with(
    state: &AppState,
    who: &WebUser,
    r: &Resource,
    status: StatusCode,
    flash: Option<String>,
    form: UploadForm,
    dialog: Option<String>,
) -> Response {
    let view = async {
        let collections = state.app.portal_kb_collections(&who.actor, &r.id).await?;
        let activity = state.app.portal_kb_activity(&who.actor, &r.id).await?;
        let storage = state.app.kb_storage(r).await.map_err(KbError::App)?;
        Ok::<_, KbError>((collections, activity, storage))
    };
    let (collections, activity, storage) = match view.await {
        Ok(v) => v,
        // A deprovisioned knowledge base has no content any more: say so on the tab.
        Err(KbError::Deprovisioned(_)) => (Vec::new(), Vec::new(), Default::default()),
        Err(e) => return portal_error(state, who, app_error(e)).await,
    };
    let members = state.app.members(&who.actor, &r.id).await.unwrap_or_default();
    let name_of = |id: &str| -> (String, String) {
        if id == who.user.id.as_str() {
            return (who.user.name.clone(), who.user.email.clone());
        }
        if id == "runtime" {
            // A deletion through the Runtime API, with a key of the knowledge base.
            return ("a Runtime API key".into(), String::new());
        }
        members
            .iter()
            .find(|m| m.user_id.as_str() == id)
            .map_or_else(|| (id.to_string(), String::new()), |m| (m.name.clone(), m.email.clone()))
    };
    let quota = state.app.storage_quota(r);
    let (percent_text, meter) = percent(storage.bytes_used, quota);
    let chosen = if form.collection.is_empty() { DEFAULT_COLLECTION.to_string() } else { form.collection.clone() };
    let mut choices: Vec<(String, String, bool)> = Vec::new();
    if !collections.iter().any(|c| c.name == DEFAULT_COLLECTION) {
        choices.push((
            DEFAULT_COLLECTION.into(),
            "default (the default collection)".into(),
            chosen == DEFAULT_COLLECTION,
        ));
    }
    for c in &collections {
        let label =
            if c.name == DEFAULT_COLLECTION { "default (the default collection)".into() } else { c.name.clone() };
        choices.push((c.name.clone(), label, chosen == c.name));
    }
    choices.push((NEW.into(), "New collection…".into(), chosen == NEW));
    let embeddings = match &r.embeddings_resource_id {
        Some(e) => Some(match state.app.portal_resource(&who.actor, e).await {
            Ok(er) => (er.display_name.to_string(), Some(format!("/portal/resources/{}", er.id))),
            Err(_) => (e.to_string(), None),
        }),
        None => None,
    };
    let view = ContentView {
        collections: collections
            .iter()
            .map(|c| CollectionRowView {
                name: c.name.clone(),
                chunks: thousands(c.chunks),
                chunk_count: c.chunks,
                size: bytes(c.bytes),
                dimension: c.dimension.map_or_else(|| "—".to_string(), |d| d.to_string()),
                delete_href: format!(
                    "/portal/resources/{}/content/collections/{}/delete",
                    r.id,
                    percent_encoding::utf8_percent_encode(&c.name, percent_encoding::NON_ALPHANUMERIC)
                ),
            })
            .collect(),
        new_chosen: chosen == NEW,
        choices,
        used: storage.bytes_used,
        quota,
        used_text: bytes(storage.bytes_used),
        quota_text: bytes(quota),
        percent_text,
        meter,
        chunks_text: chunk_count(storage.chunk_count),
        limit_text: bytes(i64::try_from(UPLOAD_LIMIT).unwrap_or(i64::MAX)),
        limit: UPLOAD_LIMIT,
        activity: activity
            .iter()
            .map(|a| ActivityView {
                at: when(a.at),
                who: name_of(&a.actor).0,
                who_email: name_of(&a.actor).1,
                action: action_words(&a.action),
                collection: a.collection_name.clone(),
                detail: activity_detail(&a.action, &a.detail),
            })
            .collect(),
        form,
        live: r.is_live(),
        csrf: who.csrf(),
        embeddings,
    };
    page(state, who, r, "content", status, flash, |p| {
        p.content = Some(view);
        p.dialog = dialog;
    })
    .await
}

/// A knowledge-base refusal as the error page shows it (never a 500 for a person's mistake).
fn app_error(e: KbError) -> AppError {
    match e {
        KbError::App(a) => a,
        KbError::CollectionNotFound(_) => AppError::NotFound("collection".into()),
        KbError::WrongResourceType(_) => AppError::NotFound("knowledge base".into()),
        other => AppError::InvalidRequest { message: sentence(&other.to_string()), details: serde_json::Value::Null },
    }
}

/// A refusal as (field, message, status).
fn refusal(e: &KbError) -> (String, String, StatusCode) {
    match e {
        KbError::Validation(v) => {
            let field = v.0.first().map(|p| p.field.clone()).unwrap_or_default();
            let field = if field == "collection" { "collection".to_string() } else { field };
            let text =
                v.0.iter()
                    .map(|p| {
                        if p.message.starts_with(&p.field) || p.message.starts_with("collection name") {
                            sentence(&p.message)
                        } else {
                            sentence(&format!("{} {}", label_of(&p.field), p.message))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
            let field =
                if matches!(field.as_str(), "file" | "collection" | "metadata") { field } else { "file".into() };
            (field, text, StatusCode::BAD_REQUEST)
        }
        KbError::Document(d) => ("file".into(), sentence(&d.to_string()), StatusCode::BAD_REQUEST),
        KbError::StorageQuotaExceeded { .. } => ("".into(), sentence(&e.to_string()), StatusCode::PAYLOAD_TOO_LARGE),
        KbError::Embeddings(x) => (
            "".into(),
            // `upload` names the embeddings resource in front of this.
            x.message.clone(),
            StatusCode::from_u16(x.status).unwrap_or(StatusCode::BAD_GATEWAY),
        ),
        KbError::NoEmbedder => ("".into(), sentence(&e.to_string()), StatusCode::SERVICE_UNAVAILABLE),
        KbError::Deprovisioned(_) => ("".into(), sentence(&e.to_string()), StatusCode::FORBIDDEN),
        other => ("".into(), sentence(&other.to_string()), StatusCode::BAD_REQUEST),
    }
}

fn label_of(field: &str) -> &str {
    match field {
        "collection" => "The collection name",
        "file" => "The file",
        "metadata" => "The metadata",
        other => other,
    }
}

/// "1 chunk", "3 chunks".
fn chunk_count(n: i64) -> String {
    if n == 1 {
        "1 chunk".into()
    } else {
        format!("{} chunks", thousands(n))
    }
}

fn chunks(q: &Fields) -> String {
    chunk_count(q.get("chunks").and_then(|c| c.parse().ok()).unwrap_or(0))
}

fn flash(q: &Fields) -> Option<String> {
    match q.get("done").map(String::as_str) {
        Some("uploaded") => Some(format!(
            "Uploaded {} into the collection {}: {}, {}.",
            q.get("file").map_or("the file", String::as_str),
            q.get("collection").map_or("", String::as_str),
            chunks(q),
            q.get("bytes").and_then(|b| b.parse::<i64>().ok()).map_or_else(|| "0 B".into(), bytes),
        )),
        Some("created") => Some(format!("Created the collection {}.", q.get("collection").map_or("", String::as_str))),
        Some("deleted") => Some(format!(
            "Deleted the collection {} and its {}.",
            q.get("collection").map_or("", String::as_str),
            chunks(q)
        )),
        _ => None,
    }
}

fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

async fn content_tab(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    match kb_or_page(&state, &who, &id).await {
        Ok(r) => render(&state, &who, &r, StatusCode::OK, flash(&q), UploadForm::default()).await,
        Err(p) => p,
    }
}

async fn create_collection(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    let r = match kb_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let name = f.get("name").map(|n| n.trim().to_string()).unwrap_or_default();
    match state.app.portal_kb_create_collection(&who.actor, &r.id, &name).await {
        Ok(c) => see_other(&format!(
            "/portal/resources/{}/content?{}",
            r.id,
            query(&[("done", "created"), ("collection", &c.name)])
        )),
        Err(KbError::App(e)) => portal_error(&state, &who, e).await,
        Err(e) => {
            let (_, message, status) = refusal(&e);
            let form = UploadForm { create_name: name, create_error: Some(message), ..UploadForm::default() };
            render(&state, &who, &r, status, None, form).await
        }
    }
}

/// The resource if it is a knowledge base the viewer may see; else the page saying it is not
/// there (another resource type has no Content tab: 404, like an unknown address).
async fn kb_or_page(state: &AppState, who: &WebUser, id: &str) -> Result<Resource, Response> {
    let r = resource_or_page(state, who, id).await?;
    if r.resource_type == ResourceType::KnowledgeBase {
        Ok(r)
    } else {
        Err(portal_error(state, who, AppError::NotFound("knowledge base".into())).await)
    }
}

/// Reads `key=value` lines.
fn parse_metadata(text: &str) -> Result<Vec<NameValue>, String> {
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("Metadata line {} has no \"=\": write one key=value pair a line.", i + 1));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(format!("Metadata line {} has an empty key: write one key=value pair a line.", i + 1));
        }
        if k.chars().count() > NAME_VALUE_MAX || v.chars().count() > NAME_VALUE_MAX {
            return Err(format!("Metadata line {} is longer than {NAME_VALUE_MAX} characters on one side.", i + 1));
        }
        pairs.push(NameValue::new(k, v));
    }
    if pairs.len() > MAX_PAIRS {
        return Err(format!("The metadata has {} pairs; at most {MAX_PAIRS} are allowed.", pairs.len()));
    }
    Ok(pairs)
}

async fn upload(
    State(state): State<AppState>,
    who: WebUser,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let raw = axum::body::to_bytes(body, UPLOAD_LIMIT).await;
    let parts = match &raw {
        Ok(raw) => multipart::parse(&content_type, raw).ok(),
        Err(_) => None,
    };
    // The CSRF token first: nothing is told to a form that did not come from this session.
    let mut fields = Fields::new();
    if let Some(parts) = &parts {
        for p in parts.iter().filter(|p| p.filename.is_none()) {
            fields.insert(p.name.clone(), String::from_utf8_lossy(p.data).into_owned());
        }
    }
    if raw.is_ok() {
        if let Some(refused) = who.csrf_refusal(&fields) {
            return refused;
        }
    }
    let r = match kb_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let form = UploadForm {
        collection: fields.get("collection").cloned().unwrap_or_default(),
        new_collection: fields.get("new_collection").cloned().unwrap_or_default(),
        metadata: fields.get("metadata").cloned().unwrap_or_default(),
        ..UploadForm::default()
    };
    let refuse = |mut form: UploadForm, field: &str, message: String, status: StatusCode| {
        form.error = Some((field.to_string(), message));
        let status = if is_htmx(&headers) { StatusCode::OK } else { status };
        (form, status)
    };
    let Ok(_) = raw else {
        let (form, status) = refuse(
            form,
            "file",
            format!(
                "The file is too large: an upload may be at most {} (TXT or PDF). Split it into smaller files.",
                bytes(i64::try_from(UPLOAD_LIMIT).unwrap_or(i64::MAX))
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        );
        return render(&state, &who, &r, status, None, form).await;
    };
    let parts = parts.unwrap_or_default();
    let file = parts.iter().find(|p| p.name == "file" && p.filename.as_deref().is_some_and(|n| !n.is_empty()));
    let Some(file) = file else {
        let (form, status) =
            refuse(form, "file", "Choose a TXT or PDF file to upload.".into(), StatusCode::BAD_REQUEST);
        return render(&state, &who, &r, status, None, form).await;
    };
    let collection = if form.collection == NEW {
        form.new_collection.trim().to_string()
    } else if form.collection.trim().is_empty() {
        DEFAULT_COLLECTION.to_string()
    } else {
        form.collection.trim().to_string()
    };
    if collection.is_empty() {
        let (form, status) = refuse(
            form,
            "collection",
            "Type the new collection's name (letters, digits, - and _; no spaces).".into(),
            StatusCode::BAD_REQUEST,
        );
        return render(&state, &who, &r, status, None, form).await;
    }
    let metadata = match parse_metadata(&form.metadata) {
        Ok(m) => m,
        Err(message) => {
            let (form, status) = refuse(form, "metadata", message, StatusCode::BAD_REQUEST);
            return render(&state, &who, &r, status, None, form).await;
        }
    };
    let upload = Upload {
        file_name: file.filename.clone().unwrap_or_default(),
        content_type: file.content_type.clone(),
        bytes: file.data.to_vec(),
        metadata,
    };
    let file_name = upload.file_name.rsplit(['/', '\\']).next().unwrap_or_default().to_string();
    match state.app.portal_kb_upload(&who.actor, &r.id, &collection, upload).await {
        Ok(done) => see_other(&format!(
            "/portal/resources/{}/content?{}",
            r.id,
            query(&[
                ("done", "uploaded"),
                ("file", &file_name),
                ("collection", &done.collection),
                ("chunks", &done.chunks.to_string()),
                ("bytes", &done.bytes.to_string()),
            ])
        )),
        Err(KbError::App(e)) => portal_error(&state, &who, e).await,
        Err(e) => {
            let (field, mut message, status) = refusal(&e);
            if matches!(e, KbError::Embeddings(_)) {
                let name = match &r.embeddings_resource_id {
                    Some(linked) => match state.app.portal_resource(&who.actor, linked).await {
                        Ok(er) => format!("{} ({})", er.display_name, er.id),
                        Err(_) => linked.to_string(),
                    },
                    None => String::new(),
                };
                message = format!(
                    "Nothing was stored: the linked embeddings resource {name} could not embed the text. {}",
                    sentence(&message)
                );
            }
            let (form, status) = refuse(form, &field, message, status);
            render(&state, &who, &r, status, None, form).await
        }
    }
}

async fn delete_confirm(
    State(state): State<AppState>,
    who: WebUser,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let r = match kb_or_page(&state, &who, &id).await {
        Ok(r) => r,
        Err(p) => return p,
    };
    let collections = match state.app.portal_kb_collections(&who.actor, &r.id).await {
        Ok(c) => c,
        Err(e) => return portal_error(&state, &who, app_error(e)).await,
    };
    let Some(c) = collections.iter().find(|c| c.name == name) else {
        return portal_error(&state, &who, AppError::NotFound("collection".into())).await;
    };
    let encoded = percent_encoding::utf8_percent_encode(&c.name, percent_encoding::NON_ALPHANUMERIC).to_string();
    let dialog = ConfirmDialog {
        title: "Delete collection".into(),
        text: format!(
            "Delete the collection \u{201c}{}\u{201d} and its {} ({})? Searches no longer find them; this \
             cannot be undone.",
            c.name,
            chunk_count(c.chunks),
            bytes(c.bytes)
        ),
        action: format!("/portal/resources/{}/content/collections/{encoded}/delete", r.id),
        button: "Delete".into(),
        back: format!("/portal/resources/{}/content", r.id),
        csrf: who.csrf(),
    };
    if is_htmx(&headers) {
        return html(StatusCode::OK, &dialog);
    }
    // Without JavaScript: the tab with the dialog open.
    render_with(&state, &who, &r, StatusCode::OK, None, UploadForm::default(), dialog.render().ok()).await
}

async fn delete(
    State(state): State<AppState>,
    who: WebUser,
    Path((id, name)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    match state.app.portal_kb_drop_collection(&who.actor, &ResourceId(id.clone()), &name).await {
        Ok(d) => see_other(&format!(
            "/portal/resources/{id}/content?{}",
            query(&[("done", "deleted"), ("collection", &name), ("chunks", &d.chunks.to_string())])
        )),
        Err(e) => portal_error(&state, &who, app_error(e)).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_lines_are_pairs_and_a_bad_line_is_named() {
        let pairs = parse_metadata("team = docs\n\nyear=2026\n").unwrap();
        assert_eq!(pairs, vec![NameValue::new("team", "docs"), NameValue::new("year", "2026")]);
        assert!(parse_metadata("ok=1\nnot a pair").unwrap_err().contains("line 2"));
        assert!(parse_metadata("=x").unwrap_err().contains("empty key"));
    }

    #[test]
    fn activity_results_read_as_words() {
        assert_eq!(activity_detail("upload", "notes.txt: 1 chunks, 517 bytes"), "notes.txt: 1 chunk, 517 bytes");
        assert_eq!(activity_detail("upload", "a.pdf: 11 chunks, 9 bytes"), "a.pdf: 11 chunks, 9 bytes");
        assert_eq!(activity_detail("delete_collection", "1 chunks, 5 bytes"), "1 chunk, 5 bytes");
        assert_eq!(activity_detail("create_collection", ""), "empty collection");
    }

    #[test]
    fn percentages_are_tenths_and_a_little_use_shows() {
        assert_eq!(percent(0, 1000), ("0.0%".to_string(), 0));
        assert_eq!(percent(1, 1_000_000), ("<0.1%".to_string(), 0));
        assert_eq!(percent(505, 1000), ("50.5%".to_string(), 50));
        assert_eq!(percent(5, 0).0, "—");
    }
}
