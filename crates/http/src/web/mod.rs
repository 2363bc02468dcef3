//! The Control Center web UI: server-rendered pages (askama) made smoother by vendored htmx.
//!
//! Every form works without JavaScript; htmx only swaps in partials (the live Resource
//! Specification, the model list filtered by region and inference mode, the deprovision dialog).
//! The pages call the same use cases as the REST API, so no rule lives here.
//!
//! Security: a session is a random secret in an HttpOnly, SameSite=Lax cookie (`Secure` when
//! the request came over HTTPS, as told by `X-Forwarded-Proto`); only its hash is stored.
//! Every state-changing form carries a CSRF token derived from the session secret and is
//! refused without it; the login form uses a double-submit cookie. Pages are sent with a
//! Content-Security-Policy that allows scripts and styles from this origin only.
//!
//! Logging in: the form's body is limited to [`LOGIN_BODY_LIMIT`]; an over-long email is refused
//! before any lookup; failures are throttled per client address and email (see
//! `genai_app::throttle`). After logging in, `next` is followed only when it is a plain local
//! path ([`safe_next`]); anything else goes to the overview.
//!
//! Cookies are read by a few lines here rather than the `cookie` crate: we only ever read our
//! own two cookies by name, and that crate would bring the `time` crate into the build.

pub mod chart;
pub mod history;
pub mod portal;
pub mod tokens;
pub mod views;

use crate::serve::ClientAddr;
use crate::AppState;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use genai_app::auth::Actor;
use genai_app::{App, AppError, ResourceAction, ResourceQuery, User};
use genai_core::catalog::{PlanSize, ResourceType};
use genai_core::ledger;
use genai_core::resource::{Environment, Status};
use genai_core::validation::ProvisionForm;
use genai_core::{CompanyId, DomainError, ResourceId};
use history::{AuditPage, AuditRow, Pager, TransactionRow, TransactionsPage};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::collections::HashMap;
use views::*;

const SESSION_COOKIE: &str = "genai_session";
const LOGIN_CSRF_COOKIE: &str = "genai_login_csrf";
/// The largest login form accepted: an email (at most 254 bytes), a password (at most 1024), a
/// CSRF token and `next`, percent-encoded, fit with room to spare.
pub const LOGIN_BODY_LIMIT: usize = 8 * 1024;
/// The longest `next` followed after logging in.
const NEXT_MAX: usize = 1024;

type Fields = HashMap<String, String>;

/// The routes of the web UI.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route(
            "/login",
            get(login_page)
                .post(login)
                .layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT))
                .layer(axum::middleware::from_fn(refuse_declared_large_login)),
        )
        .route("/logout", post(logout))
        .route("/resources", get(overview))
        .route("/resources/new", get(provision_page).post(provision))
        .route("/resources/new/specification", get(provision_specification))
        .route("/resources/new/models", get(model_list))
        .route("/resources/{id}/plan", get(plan_page).post(change_plan))
        .route("/resources/{id}/plan/specification", get(plan_specification))
        .route("/resources/{id}/deprovision", get(deprovision_page).post(deprovision))
        .route("/resources/{id}/cancel-downgrade", post(cancel_downgrade))
        .route("/resources/{id}/cancel-deprovision", post(cancel_deprovision))
        .route("/transactions", get(transactions))
        .route("/audit", get(audit))
        .merge(portal::routes())
        .merge(tokens::routes())
        .route("/static/{file}", get(static_file))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

// ---- plumbing ---------------------------------------------------------------------------

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn is_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, same_site: &str, https: bool) -> HeaderValue {
    let secure = if https { "; Secure" } else { "" };
    let v = format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

fn html<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(body) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered").into_response()
        }
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// The logged-in user of a page (from the session cookie).
pub struct WebUser {
    actor: Actor,
    user: User,
    secret: String,
}

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/resources");
            let next = if parts.method == axum::http::Method::GET { next } else { "/resources" };
            see_other(&format!("/login?next={}", urlencode(next)))
        };
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        match state.app.session_actor(&secret).await {
            Ok(actor @ Actor::User(_)) => {
                let Actor::User(user) = &actor else { return Err(to_login()) };
                let user = user.clone();
                Ok(WebUser { actor, user, secret })
            }
            Ok(Actor::Operator) | Err(AppError::Unauthenticated) => Err(to_login()),
            Err(e) => Err(error_page(&Chrome::default(), e)),
        }
    }
}

/// What `next=` escapes: everything but unreserved characters and `/`.
const NEXT_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~').remove(b'/');

fn urlencode(s: &str) -> String {
    utf8_percent_encode(s, NEXT_ESCAPES).to_string()
}

impl WebUser {
    fn is_admin(&self) -> bool {
        self.actor.is_company_admin()
    }

    fn csrf(&self) -> String {
        App::csrf_token(&self.secret)
    }

    /// The refusal page when a form lacks this session's CSRF token (`None`: the token is fine).
    fn csrf_refusal(&self, form: &Fields) -> Option<Response> {
        let submitted = form.get("csrf_token").map(String::as_str).unwrap_or("");
        if App::csrf_ok(&self.secret, submitted) {
            None
        } else {
            let chrome = Chrome { title: "Form expired".into(), ..Chrome::default() };
            Some(html(
                StatusCode::FORBIDDEN,
                &MessagePage {
                    chrome,
                    heading: "This form has expired".into(),
                    text: "The form was not sent from this session, so nothing was changed. Go back, reload the page and try again.".into(),
                    link: Some(("/resources".into(), "Back to GenAI Resources".into())),
                },
            ))
        }
    }
}

async fn chrome(state: &AppState, who: &WebUser, title: &str, nav: &'static str, flash: Option<String>) -> Chrome {
    let company = state.app.my_company(&who.actor).await.map(|c| c.name).unwrap_or_default();
    let balance = if who.is_admin() { state.app.balance(&who.actor).await.ok().map(Into::into) } else { None };
    Chrome {
        title: title.into(),
        signed_in: true,
        is_admin: who.is_admin(),
        user_email: who.user.email.clone(),
        company,
        balance,
        csrf: who.csrf(),
        nav,
        flash,
    }
}

/// The web UI's one mapping of an error to a page: the status is the API's for the same code
/// (`crate::error::status_of`), the text is for people.
fn error_page(chrome: &Chrome, e: AppError) -> Response {
    let status = crate::error::status_of(e.code());
    let (heading, text) = match &e {
        AppError::NotFound(_) => ("Not found", "There is no such resource in your company.".to_string()),
        AppError::Forbidden(m) => ("Not allowed", m.clone()),
        AppError::Store(_) | AppError::Internal(_) => {
            tracing::error!(error = %e.chain(), "internal error");
            ("Something went wrong", "It was logged. Please try again.".to_string())
        }
        other => ("That did not work", sentence(&other.to_string())),
    };
    message_page(status, chrome, heading, text)
}

fn message_page(status: StatusCode, chrome: &Chrome, heading: &str, text: String) -> Response {
    html(
        status,
        &MessagePage {
            chrome: Chrome { title: heading.into(), ..chrome.clone() },
            heading: heading.into(),
            text,
            link: Some(("/resources".into(), "Back to GenAI Resources".into())),
        },
    )
}

/// The page for a path no route matches.
pub fn not_found_page() -> Response {
    message_page(StatusCode::NOT_FOUND, &Chrome::default(), "Not found", "There is no page at this address.".into())
}

/// The page for a method a route does not accept (e.g. opening a form's target directly).
pub fn method_not_allowed_page() -> Response {
    message_page(
        StatusCode::METHOD_NOT_ALLOWED,
        &Chrome::default(),
        "Not allowed here",
        "This address does not accept that kind of request. Go back and use the page's buttons.".into(),
    )
}

/// Members get a clear page instead of the Control Center.
async fn require_admin(state: &AppState, who: &WebUser) -> Result<(), Response> {
    if who.is_admin() {
        return Ok(());
    }
    let chrome = chrome(state, who, "Only company admins", "", None).await;
    Err(html(
        StatusCode::FORBIDDEN,
        &MessagePage {
            chrome,
            heading: "Only company admins can use the Control Center".into(),
            text: format!(
                "You are logged in as {}, a member of {}. Ask a company admin of your company to provision or change GenAI resources; the resources whose team you are on are in the GenAI Portal.",
                who.user.email,
                state.app.my_company(&who.actor).await.map(|c| c.name).unwrap_or_default()
            ),
            link: Some(("/portal".into(), "Go to the GenAI Portal".into())),
        },
    ))
}

fn flash_text(code: Option<&String>) -> Option<String> {
    Some(
        match code?.as_str() {
            "provisioned" => "The resource was provisioned.",
            "upgraded" => "The plan was upgraded; the larger quota applies now.",
            "downgrade_scheduled" => "The downgrade is scheduled for the start of the next bundle month.",
            "downgrade_cancelled" => "The scheduled downgrade was cancelled.",
            "deprovision_scheduled" => "Deprovisioning is scheduled for the end of the bundle month.",
            "deprovision_cancelled" => "The scheduled deprovisioning was cancelled.",
            _ => return None,
        }
        .to_string(),
    )
}

fn type_of(q: &Fields) -> ResourceType {
    q.get("type").and_then(|t| ResourceType::parse(t)).unwrap_or(ResourceType::TextGeneration)
}

// ---- login ------------------------------------------------------------------------------

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match cookie(&headers, SESSION_COOKIE) {
        Some(secret) => match state.app.session_actor(&secret).await {
            Ok(actor) => see_other(landing("/resources", actor.is_company_admin())),
            Err(_) => see_other("/login"),
        },
        None => see_other("/login"),
    }
}

/// Where to go after logging in: `next` when it is a plain local path — `/` then path, query
/// and fragment characters only (ASCII letters, digits and `-._~/?=&%+,;:@!$*'()#`), no `//`
/// (another host to a browser), no `\` (read as `/` by browsers), no control characters or
/// spaces, at most [`NEXT_MAX`] bytes — and the overview otherwise. What passes is a valid
/// header value by construction, so the redirect can never fail.
fn safe_next(next: Option<&String>) -> String {
    let plain = |n: &str| {
        n.starts_with('/')
            && n.len() <= NEXT_MAX
            && !n.contains("//")
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/?=&%+,;:@!$*'()#".contains(&b))
    };
    match next {
        Some(n) if plain(n) => n.clone(),
        _ => "/resources".into(),
    }
}

/// Where a user goes after logging in, given the `next` asked for: a member who is not a company
/// admin cannot use the Control Center, so anything but a Portal page or their API tokens sends
/// them to the Portal instead of a refusal.
fn landing(next: &str, is_admin: bool) -> &str {
    let member_page = |p: &str| {
        ["/portal", "/api-tokens"]
            .iter()
            .any(|m| p == *m || p.starts_with(&format!("{m}/")) || p.starts_with(&format!("{m}?")))
    };
    if is_admin || member_page(next) {
        next
    } else {
        "/portal"
    }
}

fn login_form(status: StatusCode, https: bool, error: Option<String>, next: String, email: String) -> Response {
    let csrf = genai_app::auth::new_token_secret();
    let mut res = html(
        status,
        &LoginPage {
            chrome: Chrome { title: "Log in".into(), ..Chrome::default() },
            error,
            csrf: csrf.clone(),
            next,
            email,
        },
    );
    res.headers_mut().append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, &csrf, "/login", 3600, "Strict", https));
    res
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap, Query(q): Query<Fields>) -> Response {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(actor) = state.app.session_actor(&secret).await {
            return see_other(landing(&safe_next(q.get("next")), actor.is_company_admin()));
        }
    }
    login_form(StatusCode::OK, is_https(&headers), None, safe_next(q.get("next")), String::new())
}

/// Middleware of `POST /login`: a form whose declared length is over [`LOGIN_BODY_LIMIT`] is
/// refused before any of it is read (one arriving without a length is cut at the limit by the
/// form extractor, see [`login`]).
async fn refuse_declared_large_login(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if crate::body::declared_length(req.headers()).is_some_and(|n| n > LOGIN_BODY_LIMIT as u64) {
        return too_large_login(is_https(req.headers()));
    }
    next.run(req).await
}

fn too_large_login(https: bool) -> Response {
    let msg = "The login form was too large. Please type your email and password again.".to_string();
    login_form(StatusCode::PAYLOAD_TOO_LARGE, https, Some(msg), "/resources".into(), String::new())
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<Fields>, FormRejection>,
) -> Response {
    let https = is_https(&headers);
    let f = match form {
        Ok(Form(f)) => f,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => return too_large_login(https),
        Err(rejection) => {
            let msg = "The login form could not be read. Please try again.".to_string();
            return login_form(rejection.status(), https, Some(msg), "/resources".into(), String::new());
        }
    };
    let next = safe_next(f.get("next"));
    let email = f.get("email").cloned().unwrap_or_default();
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let submitted = f.get("csrf_token").cloned().unwrap_or_default();
    if expected.is_empty() || !genai_app::auth::constant_time_eq(expected.as_bytes(), submitted.as_bytes()) {
        let msg = "Your login form expired. Please try again.".to_string();
        return login_form(StatusCode::FORBIDDEN, https, Some(msg), next, email);
    }
    let password = f.get("password").map(String::as_str).unwrap_or("");
    match state.app.log_in(client, &email, password).await {
        Ok((user, secret)) => {
            let mut res = see_other(landing(&next, user.role == genai_app::Role::CompanyAdmin));
            let h = res.headers_mut();
            let max_age = genai_app::web::SESSION_LIFETIME.num_seconds();
            h.append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, &secret, "/", max_age, "Lax", https));
            h.append(header::SET_COOKIE, set_cookie(LOGIN_CSRF_COOKIE, "", "/login", 0, "Strict", https));
            res
        }
        Err(AppError::Unauthenticated) => {
            login_form(StatusCode::UNAUTHORIZED, https, Some("Wrong email or password.".into()), next, email)
        }
        Err(AppError::Domain(DomainError::Validation(fields))) => {
            let msg = fields.iter().map(|(k, v)| sentence(&format!("{k} {v}"))).collect::<Vec<_>>().join(" ");
            // Not echoed back: an over-long email is not worth showing again.
            login_form(StatusCode::UNPROCESSABLE_ENTITY, https, Some(msg), next, String::new())
        }
        Err(AppError::TooManyAttempts { retry_after_secs }) => {
            let msg = format!("Too many failed attempts. Try again in {retry_after_secs} seconds.");
            let mut res = login_form(StatusCode::TOO_MANY_REQUESTS, https, Some(msg), next, email);
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        Err(e) => error_page(&Chrome::default(), e),
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap, who: WebUser, Form(f): Form<Fields>) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    if let Err(e) = state.app.log_out(&who.secret).await {
        return error_page(&Chrome::default(), e);
    }
    let mut res = see_other("/login");
    res.headers_mut().append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", "/", 0, "Lax", is_https(&headers)));
    res
}

// ---- overview ---------------------------------------------------------------------------

/// Why provisioning a resource of type `t` is not possible now, if it is not.
async fn provision_blocker(state: &AppState, who: &WebUser, t: ResourceType) -> Result<Option<String>, AppError> {
    let checks = state.app.eligibility(&who.actor).await?;
    if let Some(c) = checks.iter().find(|c| !c.ok) {
        return Ok(Some(format!("Not eligible: {}", c.message)));
    }
    let balance = state.app.balance(&who.actor).await?;
    let cheapest = state.app.catalog().plans.iter().filter(|p| p.resource_type == t).map(|p| p.cloud_tokens).min();
    match cheapest.map(|c| ledger::afford(balance.available, c)) {
        None => return Ok(Some(format!("The catalog offers no {} plan.", t.label().to_lowercase()))),
        Some(Err(e)) => {
            return Ok(Some(format!("Not enough cloud tokens for the smallest plan: {}", sentence(&e.to_string()))))
        }
        Some(Ok(_)) => {}
    }
    if t == ResourceType::KnowledgeBase && embeddings_choices(state, who).await?.is_empty() {
        return Ok(Some(
            "A knowledge base embeds its content through an embeddings resource: provision an embeddings resource first."
                .into(),
        ));
    }
    Ok(None)
}

async fn embeddings_choices(state: &AppState, who: &WebUser) -> Result<Vec<(String, String)>, AppError> {
    let list = state
        .app
        .resources(
            &who.actor,
            ResourceQuery {
                company_id: CompanyId(String::new()),
                resource_type: Some(ResourceType::EmbeddingsGeneration),
                include_deprovisioned: false,
                after_id: None,
                limit: None,
            },
        )
        .await?;
    // Every region's: the option shows its region, and the specification says when it is not
    // the knowledge base's (the same rule, with the region, as the provisioning).
    Ok(list
        .iter()
        .filter(|r| r.linkable_embeddings(None).is_ok())
        // Names are unique among a company's live resources, so the name and region identify it.
        .map(|r| (r.id.to_string(), format!("{} ({})", r.display_name, r.region)))
        .collect())
}

async fn overview(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let t = type_of(&q);
    let show = q.get("show_deprovisioned").is_some_and(|v| v == "1" || v == "true");
    let page = async {
        let checks = state.app.eligibility(&who.actor).await?;
        let resources = state
            .app
            .resources(
                &who.actor,
                ResourceQuery {
                    company_id: CompanyId(String::new()),
                    resource_type: Some(t),
                    include_deprovisioned: show,
                    after_id: None,
                    limit: None,
                },
            )
            .await?;
        let catalog = state.app.catalog();
        let usage = state.app.month_usage(&resources).await?;
        Ok::<_, AppError>(OverviewPage {
            chrome: chrome(&state, &who, "Resources", "resources", flash_text(q.get("done"))).await,
            failing_checks: checks.iter().filter(|c| !c.ok).map(|c| c.message.clone()).collect(),
            tabs: ResourceType::ALL
                .iter()
                .map(|x| Tab { id: x.as_str(), label: format!("{} Resources", x.label()), selected: *x == t })
                .collect(),
            resource_type: t.as_str(),
            type_label: t.label(),
            provision_disabled: provision_blocker(&state, &who, t).await?,
            show_deprovisioned: show,
            rows: resources.iter().zip(&usage).map(|(r, u)| Row::with_usage(r, catalog, Some(u))).collect(),
        })
    };
    match page.await {
        Ok(p) => html(StatusCode::OK, &p),
        Err(e) => error_page(&chrome(&state, &who, "Error", "resources", None).await, e),
    }
}

// ---- provisioning -----------------------------------------------------------------------

/// The form's values: from the submitted fields, with defaults for a fresh form.
fn form_values(state: &AppState, who: &WebUser, t: ResourceType, f: &Fields, fresh: bool) -> FormValues {
    let catalog = state.app.catalog();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let region =
        f.get("region").cloned().unwrap_or_else(|| catalog.regions.first().map(|r| r.id.clone()).unwrap_or_default());
    // A fresh form preselects the inference mode the first model offered in the region needs.
    let cri = if fresh {
        catalog
            .models
            .iter()
            .find(|m| m.resource_type == t && m.regions.contains_key(&region))
            .and_then(|m| m.regions.get(&region))
            .is_some_and(|mode| *mode == genai_core::catalog::InferenceMode::CriOnly)
    } else {
        f.get("cross_region_inference").is_some_and(|v| v == "true" || v == "on")
    };
    FormValues {
        display_name: get("display_name"),
        environment: f.get("environment").cloned().unwrap_or_else(|| "test".into()),
        region,
        cri,
        model: get("model"),
        plan: f
            .get("plan")
            .cloned()
            .unwrap_or_else(|| PlanSize::allowed_for(t).first().map(|p| p.as_str().to_string()).unwrap_or_default()),
        embeddings_resource_id: get("embeddings_resource_id"),
        user_name: if fresh { who.user.name.clone() } else { get("user_name") },
        user_email: if fresh { who.user.email.clone() } else { get("user_email") },
        errors: Default::default(),
    }
}

fn provision_form(t: ResourceType, v: &FormValues, model: Option<String>) -> ProvisionForm {
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
    ProvisionForm {
        resource_type: Some(t),
        display_name: Some(v.display_name.clone()),
        environment: Environment::parse(&v.environment),
        region: opt(&v.region),
        cross_region_inference: Some(v.cri),
        model: if t.has_model() { model.filter(|m| !m.is_empty()) } else { None },
        plan: PlanSize::parse(&v.plan),
        embeddings_resource_id: if t == ResourceType::KnowledgeBase { opt(&v.embeddings_resource_id) } else { None },
        user_name: Some(v.user_name.clone()),
        user_email: Some(v.user_email.clone()),
    }
}

/// What was entered, for the specification panel. `embeddings` is the chosen embeddings
/// resource's display name (shown instead of its id).
fn entries(
    state: &AppState,
    t: ResourceType,
    v: &FormValues,
    model: &str,
    embeddings: Option<&str>,
) -> Vec<(String, String)> {
    let catalog = state.app.catalog();
    let mut e = vec![
        ("Type".to_string(), t.label().to_string()),
        (
            "Display Name".into(),
            if v.display_name.trim().is_empty() { "—".into() } else { v.display_name.trim().into() },
        ),
        ("Environment".into(), v.environment.clone()),
        ("Region".into(), catalog.region(&v.region).map_or(v.region.clone(), |r| format!("{} ({})", r.name, r.id))),
    ];
    if t.has_model() {
        e.push(("Cross-region inference".into(), if v.cri { "yes" } else { "no" }.into()));
        e.push(("Model".into(), if model.is_empty() { "—".into() } else { catalog.model_name(model).to_string() }));
    } else {
        e.push(("Embeddings Resource".into(), embeddings.unwrap_or("—").to_string()));
    }
    e.push(("Created for".into(), format!("{} <{}>", v.user_name.trim(), v.user_email.trim())));
    e
}

async fn spec_view(state: &AppState, who: &WebUser, t: ResourceType, v: &FormValues, model: &str) -> SpecView {
    let embeddings = match v.embeddings_resource_id.as_str() {
        "" => None,
        id => state
            .app
            .resource_names(&who.actor, &[ResourceId(id.to_string())])
            .await
            .ok()
            .and_then(|n| n.into_values().next()),
    };
    let entries = |v| entries(state, t, v, model, embeddings.as_deref());
    let form = provision_form(t, v, Some(model.to_string()));
    match state.app.specification(&who.actor, &form).await {
        Ok(s) => SpecView::new(&s, entries(v)),
        Err(e) => SpecView {
            entries: entries(v),
            plan: v.plan.clone(),
            cloud_tokens: "—".into(),
            quota: "—".into(),
            available_before: "—".into(),
            available_after: "—".into(),
            short: false,
            insufficient: None,
            first_bundle_month: "—".into(),
            problems: vec![e.to_string()],
        },
    }
}

/// Renders the provision form (fresh, or again with errors).
async fn render_provision(
    state: &AppState,
    who: &WebUser,
    t: ResourceType,
    mut v: FormValues,
    status: StatusCode,
    form_error: Option<String>,
) -> Response {
    let catalog = state.app.catalog();
    let models = model_options(catalog, t, &v.region, v.cri, &v.model);
    let model = models.iter().find(|m| m.selected).or(models.first()).map(|m| m.id.clone()).unwrap_or_default();
    v.model = model.clone();
    let embeddings = if t == ResourceType::KnowledgeBase {
        embeddings_choices(state, who).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    if t == ResourceType::KnowledgeBase && v.embeddings_resource_id.is_empty() {
        v.embeddings_resource_id = embeddings.first().map(|e| e.0.clone()).unwrap_or_default();
    }
    let spec = spec_view(state, who, t, &v, &model).await;
    let disabled_reason = submit_blocker(state, who, t, &spec).await;
    let page = ProvisionPage {
        chrome: chrome(state, who, &format!("Provision {} Resource", t.label()), "resources", None).await,
        resource_type: t.as_str(),
        type_label: t.label(),
        has_model: t.has_model(),
        is_kb: t == ResourceType::KnowledgeBase,
        environments: Environment::ALL.iter().map(|e| e.as_str().to_string()).collect(),
        regions: catalog.regions.iter().map(|r| (r.id.clone(), r.name.clone())).collect(),
        models,
        plans: PlanSize::allowed_for(t)
            .iter()
            .filter_map(|p| catalog.plan(t, *p))
            .map(|p| {
                (
                    p.size.as_str().to_string(),
                    format!("{} — {} cloud tokens — {}", p.size, p.cloud_tokens, quota_text(p)),
                )
            })
            .collect(),
        embeddings,
        spec,
        disabled_reason,
        form_error,
        f: v,
        oob: false,
    };
    html(status, &page)
}

/// Why the provision button is disabled: the company cannot provision this type at all, or the
/// plan chosen costs more than is available.
async fn submit_blocker(state: &AppState, who: &WebUser, t: ResourceType, spec: &SpecView) -> Option<String> {
    if let Some(reason) = provision_blocker(state, who, t).await.unwrap_or(None) {
        return Some(reason);
    }
    spec.insufficient.clone()
}

async fn provision_page(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let t = type_of(&q);
    let v = form_values(&state, &who, t, &q, true);
    render_provision(&state, &who, t, v, StatusCode::OK, None).await
}

async fn provision_specification(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let t = type_of(&q);
    let v = form_values(&state, &who, t, &q, false);
    let models = model_options(state.app.catalog(), t, &v.region, v.cri, &v.model);
    let model = models.iter().find(|m| m.selected).or(models.first()).map(|m| m.id.clone()).unwrap_or_default();
    let spec = spec_view(&state, &who, t, &v, &model).await;
    let disabled_reason = submit_blocker(&state, &who, t, &spec).await;
    html(StatusCode::OK, &SpecPartial { spec, oob: true, disabled_reason })
}

async fn model_list(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let t = type_of(&q);
    let v = form_values(&state, &who, t, &q, false);
    html(
        StatusCode::OK,
        &ModelOptionsPartial { models: model_options(state.app.catalog(), t, &v.region, v.cri, &v.model) },
    )
}

async fn provision(State(state): State<AppState>, who: WebUser, Form(f): Form<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    let t = type_of(&f);
    let v = form_values(&state, &who, t, &f, false);
    let form = provision_form(t, &v, f.get("model").cloned());
    match state.app.provision(&who.actor, &form, None).await {
        Ok(_) => see_other(&format!("/resources?type={}&done=provisioned", t.as_str())),
        Err(AppError::Domain(DomainError::Validation(fields))) => {
            let mut v = v;
            v.errors = fields;
            render_provision(
                &state,
                &who,
                t,
                v,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("Please correct the fields marked below.".into()),
            )
            .await
        }
        Err(e @ AppError::Domain(_)) => {
            render_provision(&state, &who, t, v, StatusCode::CONFLICT, Some(sentence(&e.to_string()))).await
        }
        Err(e) => error_page(&chrome(&state, &who, "Error", "resources", None).await, e),
    }
}

// ---- plan changes -----------------------------------------------------------------------

fn default_target(r: &genai_core::resource::Resource) -> PlanSize {
    let sizes = PlanSize::allowed_for(r.resource_type);
    let i = sizes.iter().position(|p| *p == r.plan).unwrap_or(0);
    sizes.get(i + 1).or(i.checked_sub(1).and_then(|j| sizes.get(j))).copied().unwrap_or(r.plan)
}

async fn render_plan(
    state: &AppState,
    who: &WebUser,
    id: &ResourceId,
    target: Option<PlanSize>,
    status: StatusCode,
    form_error: Option<String>,
) -> Response {
    let r = match state.app.resource(&who.actor, id).await {
        Ok(r) => r,
        Err(e) => return error_page(&chrome(state, who, "Error", "resources", None).await, e),
    };
    let target = target.unwrap_or_else(|| default_target(&r));
    let preview = match state.app.preview_plan_change(&who.actor, id, target).await {
        Ok(p) => p,
        Err(e) => return error_page(&chrome(state, who, "Error", "resources", None).await, e),
    };
    let catalog = state.app.catalog();
    let page = PlanPage {
        chrome: chrome(state, who, "Adjust Plan Size", "resources", None).await,
        id: r.id.to_string(),
        name: r.display_name.to_string(),
        resource_type: r.resource_type.as_str(),
        type_label: r.resource_type.label(),
        current_plan: r.plan.to_string(),
        target: target.as_str().to_string(),
        plans: PlanSize::allowed_for(r.resource_type)
            .iter()
            .filter_map(|p| catalog.plan(r.resource_type, *p))
            .map(|p| {
                (
                    p.size.as_str().to_string(),
                    format!("{} — {} cloud tokens — {}", p.size, p.cloud_tokens, quota_text(p)),
                )
            })
            .collect(),
        disabled_reason: preview.outcome.as_ref().err().map(|e| sentence(&e.to_string())),
        spec: PlanSpecView::new(&preview),
        form_error,
        oob: false,
    };
    html(status, &page)
}

async fn plan_page(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let target = q.get("plan").and_then(|p| PlanSize::parse(p));
    render_plan(&state, &who, &ResourceId(id), target, StatusCode::OK, None).await
}

async fn plan_specification(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Query(q): Query<Fields>,
) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let id = ResourceId(id);
    let target = match q.get("plan").and_then(|p| PlanSize::parse(p)) {
        Some(t) => t,
        None => return (StatusCode::BAD_REQUEST, "plan is required").into_response(),
    };
    match state.app.preview_plan_change(&who.actor, &id, target).await {
        Ok(p) => html(
            StatusCode::OK,
            &PlanSpecPartial {
                spec: PlanSpecView::new(&p),
                oob: true,
                disabled_reason: p.outcome.as_ref().err().map(|e| sentence(&e.to_string())),
            },
        ),
        Err(e) => error_page(&Chrome::default(), e),
    }
}

async fn act(state: &AppState, who: &WebUser, id: &ResourceId, action: ResourceAction, f: &Fields) -> Response {
    if let Err(r) = require_admin(state, who).await {
        return r;
    }
    if let Some(r) = who.csrf_refusal(f) {
        return r;
    }
    match state.app.act(&who.actor, id, action).await {
        Ok(r) => {
            let done = match (action, r.status) {
                (ResourceAction::ChangePlan(_), Status::PlanDowngradeScheduled) => "downgrade_scheduled",
                (ResourceAction::ChangePlan(_), _) => "upgraded",
                (ResourceAction::CancelDowngrade, _) => "downgrade_cancelled",
                (ResourceAction::Deprovision, _) => "deprovision_scheduled",
                (ResourceAction::CancelDeprovision, _) => "deprovision_cancelled",
            };
            see_other(&format!("/resources?type={}&done={done}", r.resource_type.as_str()))
        }
        Err(e @ AppError::Domain(_)) if matches!(action, ResourceAction::ChangePlan(_)) => {
            let target = match action {
                ResourceAction::ChangePlan(p) => Some(p),
                _ => None,
            };
            render_plan(state, who, id, target, StatusCode::CONFLICT, Some(sentence(&e.to_string()))).await
        }
        Err(e) => error_page(&chrome(state, who, "Error", "resources", None).await, e),
    }
}

async fn change_plan(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let Some(plan) = f.get("plan").and_then(|p| PlanSize::parse(p)) else {
        return error_page(&Chrome::default(), AppError::field("plan", "choose a plan"));
    };
    act(&state, &who, &ResourceId(id), ResourceAction::ChangePlan(plan), &f).await
}

async fn cancel_downgrade(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    act(&state, &who, &ResourceId(id), ResourceAction::CancelDowngrade, &f).await
}

async fn cancel_deprovision(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    act(&state, &who, &ResourceId(id), ResourceAction::CancelDeprovision, &f).await
}

async fn deprovision(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    act(&state, &who, &ResourceId(id), ResourceAction::Deprovision, &f).await
}

async fn deprovision_page(
    State(state): State<AppState>,
    who: WebUser,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let (r, when) = match state.app.preview_deprovision(&who.actor, &ResourceId(id)).await {
        Ok(x) => x,
        Err(e) => return error_page(&chrome(&state, &who, "Error", "resources", None).await, e),
    };
    let d = DeprovisionView::new(&r, when, state.app.catalog(), who.csrf());
    if headers.contains_key("hx-request") {
        html(StatusCode::OK, &DeprovisionDialog { d })
    } else {
        html(
            StatusCode::OK,
            &DeprovisionPage { chrome: chrome(&state, &who, "Deprovision Resource", "resources", None).await, d },
        )
    }
}

// ---- history, portal, assets --------------------------------------------------------------

async fn transactions(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let cursor = q.get("cursor").map(String::as_str);
    let page = async {
        let all = state.app.transactions(&who.actor).await?;
        let (lines, next) = history::page_after(&all, cursor, |t| t.id.as_str());
        let ids: Vec<ResourceId> = lines.iter().filter_map(|t| t.resource_id.clone()).collect();
        let names = state.app.resource_names(&who.actor, &ids).await?;
        Ok::<_, AppError>(TransactionsPage {
            chrome: chrome(&state, &who, "Cloud Tokens", "transactions", None).await,
            rows: lines.iter().map(|t| TransactionRow::new(t, &names)).collect(),
            pager: Pager::new("/transactions", cursor, next),
        })
    };
    match page.await {
        Ok(p) => html(StatusCode::OK, &p),
        Err(e) => error_page(&chrome(&state, &who, "Error", "transactions", None).await, e),
    }
}

async fn audit(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    if let Err(r) = require_admin(&state, &who).await {
        return r;
    }
    let cursor = q.get("cursor").map(String::as_str);
    let page = async {
        let all = state.app.audit_events(&who.actor).await?;
        let (lines, next) = history::page_after(&all, cursor, |e| e.id.as_str());
        let ids: Vec<ResourceId> = lines.iter().filter_map(|e| e.resource_id.clone()).collect();
        let names = state.app.resource_names(&who.actor, &ids).await?;
        let catalog = state.app.catalog();
        Ok::<_, AppError>(AuditPage {
            chrome: chrome(&state, &who, "Audit Log", "audit", None).await,
            rows: lines.iter().map(|e| AuditRow::new(e, &names, catalog)).collect(),
            pager: Pager::new("/audit", cursor, next),
        })
    };
    match page.await {
        Ok(p) => html(StatusCode::OK, &p),
        Err(e) => error_page(&chrome(&state, &who, "Error", "audit", None).await, e),
    }
}

async fn static_file(Path(name): Path<String>) -> Response {
    let (bytes, mime): (&'static [u8], &str) = match name.as_str() {
        "htmx.min.js" => (include_bytes!("../../vendor/htmx/htmx.min.js"), "text/javascript"),
        "app.js" => (include_bytes!("../../static/app.js"), "text/javascript"),
        "app.css" => (include_bytes!("../../static/app.css"), "text/css"),
        _ => return (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "public, max-age=3600")], bytes).into_response()
}
