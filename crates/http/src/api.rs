//! The REST handlers of the Control Center and Operator APIs (`API.md`).
//!
//! Handlers are thin: authenticate, read the request, call one use case, shape the answer.
//! Every rule lives in `genai-app` and `genai-core`, shared with the UI and the CLI.

use crate::body::Body;
use crate::dto::*;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::headers::ShownOnce;
use crate::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use genai_app::auth::Actor;
use genai_app::{AppError, CompanyInput, ResourceAction, ResourceQuery, Role, UserInput};
use genai_core::calendar::{format_instant, parse_instant};
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::resource::{Environment, Resource};
use genai_core::validation::ProvisionForm;
use genai_core::{CompanyId, Instant, ResourceId, UserId};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The authenticated caller, from `Authorization: Bearer …`.
pub struct Caller(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Caller(state.app.authenticate(bearer_token(&parts.headers)).await?))
    }
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is matched without regard
/// to case (RFC 9110 §11.1: `bearer`, `BEARER` and `Bearer` are the same scheme).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

const RESOURCE_TYPES: [&str; 3] = ["text_generation", "embeddings_generation", "knowledge_base"];
const ENVIRONMENTS: [&str; 3] = ["test", "acceptance", "production"];
const ROLES: [&str; 2] = ["company_admin", "member"];

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "Idempotency-Key must be 1–255 visible ASCII characters",
            json!({"header": "Idempotency-Key"}),
        ));
    }
    Ok(Some(key.to_string()))
}

/// Reads the provisioning body into the form the use case validates.
pub fn provision_form(body: &Body) -> ApiResult<ProvisionForm> {
    let plans: Vec<&str> = PlanSize::ALL.iter().map(|p| p.as_str()).collect();
    Ok(ProvisionForm {
        resource_type: body.one_of("type", &RESOURCE_TYPES, ResourceType::parse)?,
        display_name: body.string("display_name")?,
        environment: body.one_of("environment", &ENVIRONMENTS, Environment::parse)?,
        region: body.string("region")?,
        cross_region_inference: body.bool("cross_region_inference")?,
        model: body.string("model")?,
        plan: body.one_of("plan", &plans, PlanSize::parse)?,
        embeddings_resource_id: body.string("embeddings_resource_id")?,
        user_name: body.string("user.name")?,
        user_email: body.string("user.email")?,
    })
}

// ---- health ---------------------------------------------------------------------------------

/// Answers 200 once the server is ready (the database is open and migrated before it listens).
#[utoipa::path(get, path = "/healthz", tag = "Health", responses((status = 200, description = "Ready")))]
pub async fn get_health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

// ---- operator -------------------------------------------------------------------------------

fn company_input(body: &Body) -> ApiResult<CompanyInput> {
    Ok(CompanyInput {
        name: body.string("name")?,
        price_list: body.string("price_list")?,
        accounts: body.integer("accounts")?,
        enterprise_subscriptions: body.integer("enterprise_subscriptions")?,
    })
}

/// Creates a company.
#[utoipa::path(post, path = "/api/v1/operator/companies", tag = "Operator", request_body = CompanyRequest,
    responses((status = 201, body = CompanyDto), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_company(
    State(s): State<AppState>,
    Caller(actor): Caller,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<CompanyDto>)> {
    let body = Body::parse(&raw)?;
    let company = s.app.create_company(&actor, company_input(&body)?).await?;
    let (_, balance) = s.app.company(&actor, &company.id).await?;
    Ok((StatusCode::CREATED, Json(CompanyDto::new(&company, Some(balance)))))
}

/// Lists companies.
#[utoipa::path(get, path = "/api/v1/operator/companies", tag = "Operator",
    responses((status = 200, body = CompanyListDto)), security(("bearer" = [])))]
pub async fn list_companies(State(s): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<CompanyListDto>> {
    let companies = s.app.companies(&actor).await?;
    Ok(Json(CompanyListDto { companies: companies.iter().map(|c| CompanyDto::new(c, None)).collect() }))
}

/// A company with its balance.
#[utoipa::path(get, path = "/api/v1/operator/companies/{id}", tag = "Operator",
    params(("id" = String, Path)), responses((status = 200, body = CompanyDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_company(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CompanyDto>> {
    let (c, b) = s.app.company(&actor, &CompanyId(id)).await?;
    Ok(Json(CompanyDto::new(&c, Some(b))))
}

/// Changes a company's subscription facts.
#[utoipa::path(patch, path = "/api/v1/operator/companies/{id}", tag = "Operator", request_body = CompanyRequest,
    params(("id" = String, Path)), responses((status = 200, body = CompanyDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update_company(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<CompanyDto>> {
    let body = Body::parse(&raw)?;
    let id = CompanyId(id);
    let company = s.app.update_company(&actor, &id, company_input(&body)?).await?;
    let (_, balance) = s.app.company(&actor, &id).await?;
    Ok(Json(CompanyDto::new(&company, Some(balance))))
}

/// Grants cloud tokens (honours `Idempotency-Key`).
#[utoipa::path(post, path = "/api/v1/operator/companies/{id}/token-grants", tag = "Operator", request_body = GrantRequest,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body grant once")),
    responses((status = 201, body = GrantDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_token_grant(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<GrantDto>)> {
    let body = Body::parse(&raw)?;
    let key = idempotency_key(&headers)?;
    let (transaction_id, balance) = s
        .app
        .grant_tokens(
            &actor,
            &CompanyId(id),
            body.integer("tokens")?,
            body.string("note")?,
            key.as_deref().map(|k| (k, body.value())),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(GrantDto { transaction_id, balance: balance.into() })))
}

/// Creates a user of a company.
#[utoipa::path(post, path = "/api/v1/operator/companies/{id}/users", tag = "Operator", request_body = UserRequest,
    params(("id" = String, Path)), responses((status = 201, body = UserDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_user(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<UserDto>)> {
    let body = Body::parse(&raw)?;
    let input = UserInput {
        name: body.string("name")?,
        email: body.string("email")?,
        role: body.one_of("role", &ROLES, Role::parse)?,
        password: body.string("password")?,
    };
    let user = s.app.create_user(&actor, &CompanyId(id), input).await?;
    Ok((StatusCode::CREATED, Json(UserDto::from(&user))))
}

/// Reads `description` and `expires_at` (RFC 3339) of a token request.
fn token_request(body: &Body) -> ApiResult<(Option<String>, Option<Instant>)> {
    let expires_at = match body.string("expires_at")? {
        None => None,
        Some(text) => Some(parse_instant(&text).ok_or_else(|| {
            ApiError::from(AppError::field("expires_at", format!("\"{text}\" is not an RFC 3339 instant")))
        })?),
    };
    Ok((body.string("description")?, expires_at))
}

/// Creates an API token for a user; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/operator/users/{id}/api-tokens", tag = "Operator", request_body = ApiTokenRequest,
    params(("id" = String, Path)), responses((status = 201, body = ApiTokenDto, description = "Shown once; sent with Cache-Control: no-store"),
    (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_api_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<ShownOnce<(StatusCode, Json<ApiTokenDto>)>> {
    let body = Body::parse(&raw)?;
    let (description, expires_at) = token_request(&body)?;
    let (token, secret) = s.app.create_api_token(&actor, &UserId(id), description, expires_at).await?;
    Ok(ShownOnce((StatusCode::CREATED, Json(ApiTokenDto::new(&token, secret)))))
}

/// A user's API tokens, revoked and expired ones included (never their secrets).
#[utoipa::path(get, path = "/api/v1/operator/users/{id}/api-tokens", tag = "Operator", params(("id" = String, Path)),
    responses((status = 200, body = ApiTokenListDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_user_api_tokens(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiTokenListDto>> {
    let tokens = s.app.user_api_tokens(&actor, &UserId(id)).await?;
    Ok(Json(ApiTokenListDto { tokens: tokens.iter().map(Into::into).collect() }))
}

/// Revokes any user's API token; it is refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/operator/api-tokens/{id}", tag = "Operator", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked (also when it already was)"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke_api_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.revoke_api_token(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Disables a user (their tokens and web sessions are refused at once) or enables them again.
#[utoipa::path(patch, path = "/api/v1/operator/users/{id}", tag = "Operator", request_body = UserPatchRequest,
    params(("id" = String, Path)), responses((status = 200, body = UserDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<UserDto>> {
    let body = Body::parse(&raw)?;
    let user = s.app.set_user_disabled(&actor, &UserId(id), body.bool("disabled")?).await?;
    Ok(Json(UserDto::from(&user)))
}

/// The caller's own API tokens (any role), never their secrets.
#[utoipa::path(get, path = "/api/v1/me/api-tokens", tag = "Me",
    responses((status = 200, body = ApiTokenListDto), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_my_api_tokens(State(s): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<ApiTokenListDto>> {
    let tokens = s.app.my_api_tokens(&actor).await?;
    Ok(Json(ApiTokenListDto { tokens: tokens.iter().map(Into::into).collect() }))
}

/// Creates an API token for the caller; the secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/me/api-tokens", tag = "Me", request_body = ApiTokenRequest,
    responses((status = 201, body = ApiTokenDto, description = "Shown once; sent with Cache-Control: no-store"),
    (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create_my_api_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
    raw: Bytes,
) -> ApiResult<ShownOnce<(StatusCode, Json<ApiTokenDto>)>> {
    let body = Body::parse(&raw)?;
    let (description, expires_at) = token_request(&body)?;
    let (token, secret) = s.app.create_my_api_token(&actor, description, expires_at).await?;
    Ok(ShownOnce((StatusCode::CREATED, Json(ApiTokenDto::new(&token, secret)))))
}

/// Revokes one of the caller's own API tokens (another user's is not found).
#[utoipa::path(delete, path = "/api/v1/me/api-tokens/{id}", tag = "Me", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked (also when it already was)"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke_my_api_token(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.app.revoke_my_api_token(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The server's clock.
#[utoipa::path(get, path = "/api/v1/operator/clock", tag = "Operator", responses((status = 200, body = ClockDto)), security(("bearer" = [])))]
pub async fn get_clock(State(s): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<ClockDto>> {
    if !matches!(actor, Actor::Operator) {
        return Err(AppError::Forbidden("only the operator may use the Operator API".into()).into());
    }
    let mode = if s.app.clock().is_manual() { "manual" } else { "system" };
    Ok(Json(ClockDto { now: format_instant(s.app.now()), mode: mode.into() }))
}

/// Moves the manual clock forward and applies what became due (404 on the system clock).
#[utoipa::path(post, path = "/api/v1/operator/clock", tag = "Operator", request_body = ClockRequest,
    responses((status = 200, body = ClockMovedDto), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_clock(State(s): State<AppState>, Caller(actor): Caller, raw: Bytes) -> ApiResult<Json<ClockMovedDto>> {
    let body = Body::parse(&raw)?;
    if !matches!(actor, Actor::Operator) {
        return Err(AppError::Forbidden("only the operator may use the Operator API".into()).into());
    }
    let Some(text) = body.string("now")? else {
        return Err(AppError::field("now", "is required").into());
    };
    let to = parse_instant(&text)
        .ok_or_else(|| ApiError::from(AppError::field("now", format!("\"{text}\" is not an RFC 3339 instant"))))?;
    let (now, applied) = s.app.set_clock(&actor, to).await?;
    Ok(Json(ClockMovedDto { now: format_instant(now), applied }))
}

// ---- Control Center -------------------------------------------------------------------------

/// The company's eligibility for self-service provisioning.
#[utoipa::path(get, path = "/api/v1/eligibility", tag = "Control Center", responses((status = 200, body = EligibilityDto)), security(("bearer" = [])))]
pub async fn get_eligibility(State(s): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<EligibilityDto>> {
    let checks = s.app.eligibility(&actor).await?;
    Ok(Json(EligibilityDto { eligible: checks.iter().all(|c| c.ok), checks: checks.iter().map(Into::into).collect() }))
}

/// The cloud-token balance.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "Control Center", responses((status = 200, body = BalanceDto)), security(("bearer" = [])))]
pub async fn get_tokens(State(s): State<AppState>, Caller(actor): Caller) -> ApiResult<Json<BalanceDto>> {
    Ok(Json(s.app.balance(&actor).await?.into()))
}

/// `limit` and `cursor` of a history list: the number is checked here (400 when it is none),
/// its range and the cursor by the use case.
fn page_query(q: &ListQuery) -> ApiResult<(Option<i64>, Option<&str>)> {
    let limit = match q.raw.get("limit") {
        None => None,
        Some(l) => Some(l.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!("limit must be a whole number; got \"{l}\""), json!({"field": "limit"}))
        })?),
    };
    Ok((limit, q.raw.get("cursor").map(String::as_str)))
}

/// The cloud-token ledger, newest first, paged like the resource list.
#[utoipa::path(get, path = "/api/v1/tokens/transactions", tag = "Control Center",
    params(("limit" = Option<i64>, Query, description = "1–1000; without it, every transaction"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = TransactionListDto), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_transactions(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<TransactionListDto>> {
    let (limit, cursor) = page_query(&q)?;
    let page = s.app.transactions_page(&actor, limit, cursor).await?;
    Ok(Json(TransactionListDto {
        transactions: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// The catalog: regions, environments, models, plans.
#[utoipa::path(get, path = "/api/v1/catalog", tag = "Control Center", responses((status = 200, description = "The catalog", body = Object)), security(("bearer" = [])))]
pub async fn get_catalog(State(s): State<AppState>, Caller(_actor): Caller) -> ApiResult<Json<Value>> {
    serde_json::to_value(s.app.catalog())
        .map(Json)
        .map_err(|e| ApiError::internal(format!("catalog serialization: {e}")))
}

/// Query of the resource list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(flatten)]
    raw: HashMap<String, String>,
}

impl ListQuery {
    /// One query parameter, as sent.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.raw.get(name).map(String::as_str)
    }
}

/// Resource answers with their current bundle month's usage (one batched read for all).
pub async fn resource_dtos(s: &AppState, resources: &[Resource]) -> ApiResult<Vec<ResourceDto>> {
    let usage = s.app.month_usage(resources).await?;
    let (catalog, now) = (s.app.catalog(), s.app.now());
    let mut dtos: Vec<ResourceDto> =
        resources.iter().zip(usage).map(|(r, u)| ResourceDto::new(r, catalog, now, u)).collect();
    // A knowledge base's stored bytes (RUNTIME.md §8), read from its storage counter.
    for (dto, r) in dtos.iter_mut().zip(resources) {
        if r.resource_type == genai_core::catalog::ResourceType::KnowledgeBase {
            dto.usage.storage_bytes = Some(s.app.kb_storage(r).await?.bytes_used);
        }
    }
    Ok(dtos)
}

/// One resource answer with its usage.
pub async fn resource_dto(s: &AppState, r: &Resource) -> ApiResult<ResourceDto> {
    let mut one = resource_dtos(s, std::slice::from_ref(r)).await?;
    one.pop().ok_or_else(|| ApiError::internal("a resource answer went missing"))
}

/// Lists resources in creation order; without `limit`, all of them.
#[utoipa::path(get, path = "/api/v1/resources", tag = "Control Center",
    params(("type" = Option<String>, Query, description = "text_generation | embeddings_generation | knowledge_base"),
           ("include_deprovisioned" = Option<bool>, Query), ("limit" = Option<i64>, Query, description = "1–1000"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = ResourceListDto), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_resources(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ResourceListDto>> {
    let bad = |field: &str, msg: String| ApiError::invalid(msg, json!({"field": field}));
    let resource_type =
        match q.raw.get("type").map(String::as_str) {
            None | Some("") => None,
            Some(t) => Some(ResourceType::parse(t).ok_or_else(|| {
                bad("type", format!("type must be one of {}; got \"{t}\"", RESOURCE_TYPES.join(", ")))
            })?),
        };
    let include_deprovisioned = match q.raw.get("include_deprovisioned").map(String::as_str) {
        None | Some("false") | Some("0") | Some("") => false,
        Some("true") | Some("1") => true,
        Some(other) => {
            return Err(bad(
                "include_deprovisioned",
                format!("include_deprovisioned must be true or false; got \"{other}\""),
            ))
        }
    };
    let limit = match q.raw.get("limit") {
        None => None,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => Some(n),
            Ok(_) => return Err(AppError::field("limit", "must be from 1 to 1000").into()),
            Err(_) => return Err(bad("limit", format!("limit must be a whole number; got \"{l}\""))),
        },
    };
    let after_id = match q.raw.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(c)
            if c.starts_with("res_")
                && c.len() <= 64
                && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') =>
        {
            Some(ResourceId(c.to_string()))
        }
        Some(c) => return Err(bad("cursor", format!("\"{c}\" is not a cursor this server gave out"))),
    };
    let query = ResourceQuery {
        company_id: CompanyId(String::new()),
        resource_type,
        include_deprovisioned,
        after_id,
        // One more than asked tells whether there is a next page.
        limit: limit.map(|l| l + 1),
    };
    let mut resources = s.app.resources(&actor, query).await?;
    let next_cursor = match limit {
        Some(l) if resources.len() as i64 > l => {
            resources.truncate(l as usize);
            resources.last().map(|r| r.id.to_string())
        }
        _ => None,
    };
    Ok(Json(ResourceListDto { resources: resource_dtos(&s, &resources).await?, next_cursor }))
}

/// Previews a provisioning (the Resource Specification); nothing is stored.
#[utoipa::path(post, path = "/api/v1/resources/specification", tag = "Control Center", request_body = ProvisionRequest,
    responses((status = 200, body = SpecificationDto), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn preview_resource(
    State(s): State<AppState>,
    Caller(actor): Caller,
    raw: Bytes,
) -> ApiResult<Json<SpecificationDto>> {
    let body = Body::parse(&raw)?;
    let spec = s.app.specification(&actor, &provision_form(&body)?).await?;
    Ok(Json(spec.into()))
}

/// Provisions a resource (honours `Idempotency-Key`).
#[utoipa::path(post, path = "/api/v1/resources", tag = "Control Center", request_body = ProvisionRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retries with the same key and body answer the same resource")),
    responses((status = 201, body = ResourceDto), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn provision_resource(
    State(s): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<ResourceDto>)> {
    let body = Body::parse(&raw)?;
    let key = idempotency_key(&headers)?;
    let form = provision_form(&body)?;
    let r = s.app.provision(&actor, &form, key.as_deref().map(|k| (k, body.value()))).await?;
    Ok((StatusCode::CREATED, Json(resource_dto(&s, &r).await?)))
}

/// One resource.
#[utoipa::path(get, path = "/api/v1/resources/{id}", tag = "Control Center", params(("id" = String, Path)),
    responses((status = 200, body = ResourceDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_resource(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceDto>> {
    let r = s.app.resource(&actor, &ResourceId(id)).await?;
    Ok(Json(resource_dto(&s, &r).await?))
}

async fn act(s: &AppState, actor: &Actor, id: String, action: ResourceAction) -> ApiResult<Json<ResourceDto>> {
    let r = s.app.act(actor, &ResourceId(id), action).await?;
    Ok(Json(resource_dto(s, &r).await?))
}

/// Changes the plan: upgrades now, downgrades at the next bundle-month boundary.
#[utoipa::path(post, path = "/api/v1/resources/{id}/plan", tag = "Control Center", params(("id" = String, Path)), request_body = PlanRequest,
    responses((status = 200, body = ResourceDto), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn change_plan(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ResourceDto>> {
    let body = Body::parse(&raw)?;
    let plans: Vec<&str> = PlanSize::ALL.iter().map(|p| p.as_str()).collect();
    let Some(plan) = body.one_of("plan", &plans, PlanSize::parse)? else {
        return Err(AppError::field("plan", "is required").into());
    };
    act(&s, &actor, id, ResourceAction::ChangePlan(plan)).await
}

/// Cancels a scheduled downgrade.
#[utoipa::path(post, path = "/api/v1/resources/{id}/cancel-downgrade", tag = "Control Center", params(("id" = String, Path)),
    responses((status = 200, body = ResourceDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cancel_downgrade(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceDto>> {
    act(&s, &actor, id, ResourceAction::CancelDowngrade).await
}

/// Schedules deprovisioning for the end of the bundle month.
#[utoipa::path(post, path = "/api/v1/resources/{id}/deprovision", tag = "Control Center", params(("id" = String, Path)),
    responses((status = 200, body = ResourceDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn deprovision_resource(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceDto>> {
    act(&s, &actor, id, ResourceAction::Deprovision).await
}

/// Cancels a scheduled deprovisioning.
#[utoipa::path(post, path = "/api/v1/resources/{id}/cancel-deprovision", tag = "Control Center", params(("id" = String, Path)),
    responses((status = 200, body = ResourceDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn cancel_deprovision(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ResourceDto>> {
    act(&s, &actor, id, ResourceAction::CancelDeprovision).await
}

/// The audit log, newest first, paged like the resource list.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "Control Center",
    params(("limit" = Option<i64>, Query, description = "1–1000; without it, every event"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, body = AuditEventListDto), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_audit_events(
    State(s): State<AppState>,
    Caller(actor): Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<AuditEventListDto>> {
    let (limit, cursor) = page_query(&q)?;
    let page = s.app.audit_events_page(&actor, limit, cursor).await?;
    Ok(Json(AuditEventListDto { events: page.items.iter().map(Into::into).collect(), next_cursor: page.next_cursor }))
}
