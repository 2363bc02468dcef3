//! The "API tokens" page: the logged-in user's own tokens (any role) — list, create (the secret
//! shown once, on the answer to the form, never in a URL and never cached), revoke. Both forms
//! carry the session's CSRF token. The rules are the use cases' (`genai_app::access`).

use super::{chrome, error_page, html, see_other, Fields, WebUser};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use genai_app::{ApiToken, AppError};
use genai_core::calendar::format_instant;
use genai_core::Instant;

/// The page's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api-tokens", get(tokens_page).post(create_token))
        .route("/api-tokens/{id}/revoke", post(revoke_token))
}

/// The expiries offered: (days, label); empty days means never.
const EXPIRY_CHOICES: [(&str, &str); 5] =
    [("", "never"), ("7", "in 7 days"), ("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year")];

/// One token as listed.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Id.
    pub id: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created: String,
    /// When it expires, or "never".
    pub expires: String,
    /// When it was last used, or "never".
    pub last_used: String,
    /// Active, expired or revoked.
    pub status: String,
    /// Whether it can still be revoked.
    pub active: bool,
}

impl TokenRow {
    fn new(t: &ApiToken, now: Instant) -> TokenRow {
        let when = |i: Option<Instant>| i.map_or_else(|| "never".to_string(), format_instant);
        let status = match (t.revoked_at, t.is_active(now)) {
            (Some(at), _) => format!("revoked {}", format_instant(at)),
            (None, true) => "active".into(),
            (None, false) => "expired".into(),
        };
        TokenRow {
            id: t.id.clone(),
            description: if t.description.is_empty() { "—".into() } else { t.description.clone() },
            created: format_instant(t.created_at),
            expires: when(t.expires_at),
            last_used: when(t.last_used_at),
            status,
            active: t.revoked_at.is_none(),
        }
    }
}

/// The page.
#[derive(Template)]
#[template(path = "api_tokens.html")]
pub struct ApiTokensPage {
    /// Chrome.
    pub chrome: super::views::Chrome,
    /// The secret of the token just created (this answer only).
    pub new_secret: Option<String>,
    /// Why the form was refused.
    pub error: Option<String>,
    /// The description typed (kept when refused).
    pub description: String,
    /// The expiry options.
    pub expiry_choices: Vec<(&'static str, &'static str)>,
    /// The tokens, newest first.
    pub rows: Vec<TokenRow>,
}

async fn render(
    state: &AppState,
    who: &WebUser,
    status: StatusCode,
    new_secret: Option<String>,
    error: Option<String>,
    description: String,
    flash: Option<String>,
) -> Response {
    let tokens = match state.app.my_api_tokens(&who.actor).await {
        Ok(t) => t,
        Err(e) => return error_page(&chrome(state, who, "Error", "api-tokens", None).await, e),
    };
    let now = state.app.now();
    let page = ApiTokensPage {
        chrome: chrome(state, who, "API tokens", "api-tokens", flash).await,
        new_secret,
        error,
        description,
        expiry_choices: EXPIRY_CHOICES.to_vec(),
        rows: tokens.iter().map(|t| TokenRow::new(t, now)).collect(),
    };
    // Every rendering may carry a secret (the one just created) or lists the user's tokens:
    // no cache keeps it.
    crate::headers::ShownOnce(html(status, &page)).into_response()
}

async fn tokens_page(State(state): State<AppState>, who: WebUser, Query(q): Query<Fields>) -> Response {
    let flash = q.get("done").filter(|d| *d == "revoked").map(|_| "The token was revoked.".to_string());
    render(&state, &who, StatusCode::OK, None, None, String::new(), flash).await
}

async fn create_token(State(state): State<AppState>, who: WebUser, Form(f): Form<Fields>) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    let description = f.get("description").cloned().unwrap_or_default();
    let days = f.get("expires_in_days").map(String::as_str).unwrap_or("");
    let expires_at = match days {
        "" => None,
        d => match d.parse::<i64>().ok().filter(|d| (1..=3650).contains(d)) {
            Some(d) => Some(state.app.now() + chrono::Duration::days(d)),
            None => {
                let error = Some("Choose when the token expires from the list.".to_string());
                return render(&state, &who, StatusCode::UNPROCESSABLE_ENTITY, None, error, description, None).await;
            }
        },
    };
    match state.app.create_my_api_token(&who.actor, Some(description.clone()), expires_at).await {
        Ok((_, secret)) => render(&state, &who, StatusCode::CREATED, Some(secret), None, String::new(), None).await,
        Err(AppError::Domain(genai_core::DomainError::Validation(fields))) => {
            let error = fields.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; ");
            render(&state, &who, StatusCode::UNPROCESSABLE_ENTITY, None, Some(error), description, None).await
        }
        Err(e) => error_page(&chrome(&state, &who, "Error", "api-tokens", None).await, e),
    }
}

async fn revoke_token(
    State(state): State<AppState>,
    who: WebUser,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(r) = who.csrf_refusal(&f) {
        return r;
    }
    match state.app.revoke_my_api_token(&who.actor, &id).await {
        Ok(()) => see_other("/api-tokens?done=revoked"),
        Err(e) => error_page(&chrome(&state, &who, "Error", "api-tokens", None).await, e),
    }
}
