//! The Portal API (RUNTIME.md §2): a resource's team, its runtime keys and its consumption, for
//! the team's members and the company's admins.
//!
//! Handlers are thin like those of [`crate::api`]: the caller is authenticated by the same
//! bearer token, the use cases in `genai-app` decide who may see what (anyone else gets 404, as
//! for another company's id), and errors use the API's envelope with their own codes
//! (`last_member` 409, `already_deprovisioned` 409, …). A new key's answer, which carries its
//! secret and configuration key, is sent with `Cache-Control: no-store` ([`ShownOnce`]).
//!
//! Beyond RUNTIME.md, `GET /api/v1/portal/resources/{id}` answers one resource of the caller's
//! Portal (a member may not use the Control Center's `GET /api/v1/resources/{id}`), and the
//! Portal list takes `include_deprovisioned=true` like the Control Center's.

use crate::api::{resource_dto, resource_dtos, Caller, ListQuery};
use crate::body::Body;
use crate::dto::{BundleMonthDto, ResourceDto};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::headers::ShownOnce;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use genai_app::keys::CreatedKey;
use genai_app::portal::Consumption;
use genai_app::{DayUsage, Member, RuntimeKey};
use genai_core::calendar::format_instant;
use genai_core::quota::format_day;
use genai_core::{ResourceId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

// ---- shapes ---------------------------------------------------------------------------------

/// The caller's Portal resources.
#[derive(Debug, Serialize, ToSchema)]
pub struct PortalResourceListDto {
    /// Their teams' resources (company admins: all of the company's), in creation order.
    pub resources: Vec<ResourceDto>,
}

/// A member of a resource's team.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberDto {
    /// The user.
    pub user_id: String,
    /// Their name.
    pub name: String,
    /// Their email (their login).
    pub email: String,
    /// When they joined the team.
    pub added_at: String,
}

impl From<&Member> for MemberDto {
    fn from(m: &Member) -> Self {
        MemberDto {
            user_id: m.user_id.to_string(),
            name: m.name.clone(),
            email: m.email.clone(),
            added_at: format_instant(m.added_at),
        }
    }
}

/// A resource's team.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberListDto {
    /// In the order they joined.
    pub members: Vec<MemberDto>,
}

/// Adding a member.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MemberRequest {
    /// Their email; an address that is nobody's login yet becomes a user of the company (role
    /// `member`).
    pub email: String,
    /// Their name, for a new user (default: the email's local part).
    pub name: Option<String>,
}

/// A new key: the secret and the configuration key appear in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyDto {
    /// The key's id.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: String,
    /// The secret (`gr_…`): `x-api-key` of the product family's format, the bearer token of
    /// OpenAI's.
    pub secret: String,
    /// Base64 of the product family's configuration JSON (`schemaVersion` 3), which carries the
    /// secret; a knowledge base's also carries its embeddings resource's companion key.
    pub configuration_key: String,
}

impl From<&CreatedKey> for CreatedKeyDto {
    fn from(k: &CreatedKey) -> Self {
        CreatedKeyDto {
            id: k.key.id.clone(),
            description: k.key.description.clone(),
            created_at: format_instant(k.key.created_at),
            secret: k.secret.expose().to_string(),
            configuration_key: k.configuration_key.clone(),
        }
    }
}

/// A key as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    /// Id.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: String,
    /// The user who created it.
    pub created_by: String,
    /// When it last authenticated a call (may lag by up to a minute); null: never.
    pub last_used_at: Option<String>,
    /// When it was revoked; null: it works.
    pub revoked_at: Option<String>,
    /// For a companion key: the knowledge base it was made for; null for other keys.
    pub companion_of: Option<String>,
}

impl From<&RuntimeKey> for KeyDto {
    fn from(k: &RuntimeKey) -> Self {
        KeyDto {
            id: k.id.clone(),
            description: k.description.clone(),
            created_at: format_instant(k.created_at),
            created_by: k.created_by.to_string(),
            last_used_at: k.last_used_at.map(format_instant),
            revoked_at: k.revoked_at.map(format_instant),
            companion_of: k.companion_of.as_ref().map(|c| c.to_string()),
        }
    }
}

/// A resource's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListDto {
    /// Newest first, revoked ones included.
    pub keys: Vec<KeyDto>,
}

/// A new key's description.
#[derive(Debug, Deserialize, ToSchema)]
pub struct KeyRequest {
    /// What the key is for: 1–200 characters.
    pub description: String,
}

/// A monthly token quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenQuotaDto {
    /// Input tokens per bundle month.
    pub input_tokens: i64,
    /// Output tokens per bundle month (0 for embeddings).
    pub output_tokens: i64,
}

/// Usage of the current bundle month.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsedDto {
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Calls settled (refused calls are not counted).
    pub api_calls: i64,
}

/// One UTC day's usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayDto {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Input tokens.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Calls settled.
    pub api_calls: i64,
}

impl From<&DayUsage> for DayDto {
    fn from(d: &DayUsage) -> Self {
        DayDto {
            date: d.day.clone(),
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            api_calls: d.api_calls,
        }
    }
}

/// A resource's consumption.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumptionDto {
    /// The current bundle month (the last one of a deprovisioned resource); its end is when
    /// the quota refills.
    pub bundle_month: BundleMonthDto,
    /// The plan's monthly quota (zero for knowledge bases).
    pub quota: TokenQuotaDto,
    /// Used in the current bundle month.
    pub used: UsedDto,
    /// First day of the range (`YYYY-MM-DD`).
    pub from: String,
    /// Last day of the range.
    pub to: String,
    /// Every day of the range, zeros included.
    pub days: Vec<DayDto>,
}

impl From<&Consumption> for ConsumptionDto {
    fn from(c: &Consumption) -> Self {
        ConsumptionDto {
            bundle_month: c.bundle_month.into(),
            quota: TokenQuotaDto { input_tokens: c.quota.input, output_tokens: c.quota.output },
            used: UsedDto {
                input_tokens: c.used.input_tokens,
                output_tokens: c.used.output_tokens,
                api_calls: c.used.api_calls,
            },
            from: format_day(c.range.from),
            to: format_day(c.range.to),
            days: c.days.iter().map(Into::into).collect(),
        }
    }
}

// ---- handlers -------------------------------------------------------------------------------

fn include_deprovisioned(q: &ListQuery) -> ApiResult<bool> {
    match q.param("include_deprovisioned") {
        None | Some("false") | Some("0") | Some("") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            format!("include_deprovisioned must be true or false; got \"{other}\""),
            json!({"field": "include_deprovisioned"}),
        )),
    }
}

/// The caller's Portal: their teams' resources (company admins: all of the company's).
#[utoipa::path(get, path = "/api/v1/portal/resources", tag = "Portal",
    params(("include_deprovisioned" = Option<bool>, Query, description = "Also deprovisioned resources (default false)")),
    responses((status = 200, body = PortalResourceListDto)), security(("bearer" = [])))]
pub async fn list_portal_resources(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PortalResourceListDto>> {
    let resources = s.app.portal_resources(&actor, include_deprovisioned(&q)?).await?;
    Ok(Json(PortalResourceListDto { resources: resource_dtos(&s, &resources).await? }))
}

/// One resource of the caller's Portal.
#[utoipa::path(get, path = "/api/v1/portal/resources/{id}", tag = "Portal", params(("id" = String, Path)),
    responses((status = 200, body = ResourceDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_portal_resource(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceDto>> {
    let r = s.app.portal_resource(&actor, &ResourceId(id)).await?;
    Ok(Json(resource_dto(&s, &r).await?))
}

/// A resource's team.
#[utoipa::path(get, path = "/api/v1/resources/{id}/members", tag = "Portal", params(("id" = String, Path)),
    responses((status = 200, body = MemberListDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_members(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<MemberListDto>> {
    let members = s.app.members(&actor, &ResourceId(id)).await?;
    Ok(Json(MemberListDto { members: members.iter().map(Into::into).collect() }))
}

/// Adds someone to a resource's team (an unknown email becomes a user of the company, role
/// `member`); already a member: 200 with the member.
#[utoipa::path(post, path = "/api/v1/resources/{id}/members", tag = "Portal", params(("id" = String, Path)),
    request_body = MemberRequest,
    responses((status = 201, body = MemberDto, description = "Added"), (status = 200, body = MemberDto, description = "Already a member"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "already_deprovisioned"),
              (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_member(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<MemberDto>)> {
    let body = Body::parse(&raw)?;
    let (email, name) = (body.string("email")?, body.string("name")?);
    let (member, added) = s.app.add_member(&actor, &ResourceId(id), email.as_deref(), name.as_deref()).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(MemberDto::from(&member))))
}

/// Removes a member from a resource's team; the last member cannot be removed.
#[utoipa::path(delete, path = "/api/v1/resources/{id}/members/{user_id}", tag = "Portal",
    params(("id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "last_member, already_deprovisioned")), security(("bearer" = [])))]
pub async fn remove_member(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.remove_member(&actor, &ResourceId(id), &UserId(user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates a runtime key; its secret and configuration key are in this answer only.
#[utoipa::path(post, path = "/api/v1/resources/{id}/keys", tag = "Portal", params(("id" = String, Path)),
    request_body = KeyRequest,
    responses((status = 201, body = CreatedKeyDto, description = "Shown once; sent with Cache-Control: no-store"),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "already_deprovisioned"),
              (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_key(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<ShownOnce<(StatusCode, Json<CreatedKeyDto>)>> {
    let body = Body::parse(&raw)?;
    let description = body.string("description")?;
    let created = s.app.create_key(&actor, &ResourceId(id), description.as_deref()).await?;
    Ok(ShownOnce((StatusCode::CREATED, Json(CreatedKeyDto::from(&created)))))
}

/// A resource's keys, revoked ones included (never their secrets).
#[utoipa::path(get, path = "/api/v1/resources/{id}/keys", tag = "Portal", params(("id" = String, Path)),
    responses((status = 200, body = KeyListDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_keys(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyListDto>> {
    let keys = s.app.keys(&actor, &ResourceId(id)).await?;
    Ok(Json(KeyListDto { keys: keys.iter().map(Into::into).collect() }))
}

/// Revokes a key (a knowledge-base key with its companion); it is refused from then on.
#[utoipa::path(delete, path = "/api/v1/resources/{id}/keys/{key_id}", tag = "Portal",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 204, description = "Revoked (also when it already was)"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.app.revoke_key(&actor, &ResourceId(id), &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn consumption_of(
    s: &AppState,
    actor: &genai_app::auth::Actor,
    id: String,
    q: &ListQuery,
) -> ApiResult<Consumption> {
    Ok(s.app.consumption(actor, &ResourceId(id), q.param("from"), q.param("to")).await?)
}

/// A resource's consumption: the current bundle month against the quota, and every day of a
/// range (default: the current bundle month).
#[utoipa::path(get, path = "/api/v1/resources/{id}/consumption", tag = "Portal",
    params(("id" = String, Path),
           ("from" = Option<String>, Query, description = "First day, YYYY-MM-DD (alone: until today)"),
           ("to" = Option<String>, Query, description = "Last day, YYYY-MM-DD (needs from; at most 400 days in all)")),
    responses((status = 200, body = ConsumptionDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_consumption(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ConsumptionDto>> {
    let c = consumption_of(&s, &actor, id, &q).await?;
    Ok(Json(ConsumptionDto::from(&c)))
}

/// The consumption as CSV: `date,input_tokens,output_tokens,api_calls`, days with usage only.
#[utoipa::path(get, path = "/api/v1/resources/{id}/consumption.csv", tag = "Portal",
    params(("id" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    responses((status = 200, content_type = "text/csv", body = String, description = "date,input_tokens,output_tokens,api_calls"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_consumption_csv(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Response> {
    let c = consumption_of(&s, &actor, id, &q).await?;
    let file = format!(
        "attachment; filename=\"consumption-{}-{}-{}.csv\"",
        c.resource.id,
        format_day(c.range.from),
        format_day(c.range.to)
    );
    let mut res = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], c.csv()).into_response();
    // Ids are `[A-Za-z0-9_]`, so the header value is always valid; skip it rather than fail.
    if let Ok(v) = HeaderValue::from_str(&file) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}
