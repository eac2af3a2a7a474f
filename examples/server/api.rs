//! The account owner's JSON API. Every handler is scoped to the [`Owner`]'s account.
//!
//! | method and path                   | body / query                         | answer          |
//! |-----------------------------------|--------------------------------------|-----------------|
//! | `GET /api/account`                |                                      | credits         |
//! | `POST /api/credits`               | `{"amount", "idempotency_key"}`      | credits         |
//! | `GET /api/links`                  | `?after=&limit=`                     | page of links   |
//! | `POST /api/links`                 | `NewLink` (see below)                | 201, the link   |
//! | `GET /api/links/{id}`             |                                      | link and stats  |
//! | `POST /api/links/{id}/deactivate` |                                      | the link        |
//! | `GET /api/links/{id}/sessions`    | `?after=&limit=`                     | page of sessions|
//! | `GET /api/links/{id}/qr.svg`, `.png` |                                   | the QR code     |
//!
//! A new link: `{"name": "Onboarding", "flow": "document" | "selfie" | "document_and_selfie",
//! "limit": "single" | "unlimited" | {"multi": 5}, "expires_at": "2030-01-01T00:00:00Z",
//! "language": "lt"}`; only `name` and `flow` are required. Unknown fields are refused.
//!
//! Errors are JSON, `{"error": "what went wrong", "code": "machine_readable"}`, with a 4xx
//! status for anything the request did wrong and 503 when the store is unavailable.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magic_link::clock::Clock;
use magic_link::store::LinkStore;
use magic_link::tokens::LinkToken;
use magic_link::{
    qr, Error, IdempotencyKey, InvalidInput, Link, LinkId, LinkStats, LinkStatus, NewLink, Page,
    Paged, Rejection, Session,
};
use serde::{Deserialize, Serialize};

use crate::{AppState, Owner};

/// The largest top-up the demo accepts at once.
const MAX_TOP_UP: u64 = 1_000_000;

/// An API error: a status and a JSON body `{"error": ..., "code": ...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message, "code": self.code });
        (self.status, Json(body)).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let message = err.to_string();
        match err {
            Error::Rejected(rejection) => {
                let (status, code) = match rejection {
                    Rejection::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                    Rejection::Deactivated => (StatusCode::CONFLICT, "deactivated"),
                    Rejection::Expired => (StatusCode::CONFLICT, "expired"),
                    Rejection::Exhausted => (StatusCode::CONFLICT, "exhausted"),
                    Rejection::NoCredits => (StatusCode::CONFLICT, "no_credits"),
                    Rejection::IdempotencyConflict => {
                        (StatusCode::CONFLICT, "idempotency_conflict")
                    }
                    _ => (StatusCode::CONFLICT, "rejected"),
                };
                Self::new(status, code, message)
            }
            Error::Invalid(invalid) => Self::invalid(invalid_code(&invalid), message),
            Error::InvalidToken(_) => Self::new(StatusCode::NOT_FOUND, "invalid_token", message),
            Error::AlreadyExists => Self::new(StatusCode::CONFLICT, "already_exists", message),
            err => {
                // A backend failure: log its whole chain, answer without the details.
                log_error("store", &err);
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the store is unavailable; try again",
                )
            }
        }
    }
}

/// Logs an error and its sources to stderr. Errors never carry tokens or secrets.
pub(crate) fn log_error(context: &str, err: &dyn std::error::Error) {
    let mut line = format!("{context}: {err}");
    let mut source = err.source();
    while let Some(err) = source {
        line.push_str(&format!(": {err}"));
        source = err.source();
    }
    eprintln!("{line}");
}

fn invalid_code(invalid: &InvalidInput) -> &'static str {
    match invalid {
        InvalidInput::EmptyName => "empty_name",
        InvalidInput::NameTooLong { .. } => "name_too_long",
        InvalidInput::NameControlCharacter => "name_control_character",
        InvalidInput::ZeroUses => "zero_uses",
        InvalidInput::ExpiryInPast => "expiry_in_past",
        InvalidInput::InvalidLanguage => "invalid_language",
        InvalidInput::ZeroAmount => "zero_amount",
        InvalidInput::Overflow => "overflow",
        InvalidInput::InvalidIdempotencyKey { .. } => "invalid_idempotency_key",
        InvalidInput::InvalidWebhookUrl => "invalid_webhook_url",
        InvalidInput::WebhookSecretCount { .. } => "invalid_secret_count",
        _ => "invalid_input",
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s: 400 for malformed JSON, 415 without a JSON
/// content type, 413 past the body limit, 422 for a body of the wrong shape (a missing or
/// unknown field, a wrong type).
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<S: Send + Sync, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let code = match &rejection {
                    JsonRejection::JsonDataError(_) => "invalid_body",
                    JsonRejection::JsonSyntaxError(_) => "malformed_json",
                    JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
                    _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
                    _ => "bad_request",
                };
                Err(ApiError::new(
                    rejection.status(),
                    code,
                    rejection.body_text(),
                ))
            }
        }
    }
}

/// `Query<T>` whose rejections are [`ApiError`]s (400).
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T> FromRequestParts<S> for ApiQuery<T>
where
    Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// A link id in the path; anything but a UUID is a 404 (as an unknown id is).
pub(crate) struct ApiLinkId(pub(crate) LinkId);

impl<S: Send + Sync> FromRequestParts<S> for ApiLinkId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found");
        let Path(id): Path<String> = Path::from_request_parts(parts, state)
            .await
            .map_err(|_: PathRejection| not_found())?;
        id.parse().map(Self).map_err(|_| not_found())
    }
}

/// A page request in the query string.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

impl PageQuery {
    fn page(&self) -> Page {
        Page {
            after: self.after.unwrap_or(0),
            limit: self.limit.unwrap_or(100),
        }
    }
}

/// A link as the API shows it: its fields, its status now, and how to share it.
#[derive(Debug, Serialize)]
pub(crate) struct LinkView {
    #[serde(flatten)]
    pub(crate) link: Link,
    pub(crate) status: LinkStatus,
    pub(crate) remaining: Option<u64>,
    pub(crate) url: String,
    pub(crate) qr_svg: String,
    pub(crate) qr_png: String,
    pub(crate) embed_html: String,
}

impl LinkView {
    pub(crate) fn new<S: LinkStore>(app: &AppState<S>, link: Link) -> Self {
        let url = link_url(app, &link);
        let now = app.links.clock().now();
        Self {
            status: link.status(now),
            remaining: link.remaining(),
            qr_svg: format!("{}/api/links/{}/qr.svg", app.path_prefix, link.id),
            qr_png: format!("{}/api/links/{}/qr.png", app.path_prefix, link.id),
            embed_html: embed_snippet(&url),
            url,
            link,
        }
    }
}

/// A link's URL, signed again (tokens are not stored; signing is deterministic).
pub(crate) fn link_url<S: LinkStore>(app: &AppState<S>, link: &Link) -> String {
    let token = LinkToken::for_link(link).sign(app.links.keyring());
    app.links.link_base().url(&token)
}

/// A "Verify now" button to paste into a web site. It opens the landing page, which consumes
/// nothing until the person presses "Start verification".
pub(crate) fn embed_snippet(url: &str) -> String {
    format!(
        "<a href=\"{}\" rel=\"noreferrer\" style=\"display:inline-block;padding:.6em 1.2em;\
         background:#1d4ed8;color:#fff;border-radius:6px;text-decoration:none;\
         font:600 16px system-ui,sans-serif\">Verify now</a>",
        crate::html::esc(url)
    )
}

/// Credits as the API shows them.
#[derive(Debug, Serialize)]
pub(crate) struct AccountView {
    id: magic_link::AccountId,
    balance: u64,
    held: u64,
    available: u64,
}

impl From<magic_link::Account> for AccountView {
    fn from(a: magic_link::Account) -> Self {
        Self {
            available: a.available(),
            id: a.id,
            balance: a.balance,
            held: a.held,
        }
    }
}

pub(crate) async fn account<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(app.links.account(account).await?.into()))
}

/// A top-up. Retrying with the same key and amount adds nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopUp {
    amount: u64,
    idempotency_key: String,
}

pub(crate) async fn top_up<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiJson(req): ApiJson<TopUp>,
) -> Result<Json<AccountView>, ApiError> {
    if req.amount > MAX_TOP_UP {
        return Err(ApiError::invalid(
            "amount_too_large",
            format!("a top-up adds at most {MAX_TOP_UP} credits"),
        ));
    }
    let key = IdempotencyKey::new(req.idempotency_key).map_err(Error::from)?;
    let account = app.links.top_up(account, req.amount, key).await?;
    Ok(Json(account.into()))
}

pub(crate) async fn list_links<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Paged<LinkView>>, ApiError> {
    let page = app.links.links(account, query.page()).await?;
    Ok(Json(Paged {
        items: page
            .items
            .into_iter()
            .map(|l| LinkView::new(&app, l))
            .collect(),
        next: page.next,
    }))
}

pub(crate) async fn create_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiJson(spec): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    let created = app.links.create_link(account, spec).await?;
    let mut view = LinkView::new(&app, created.link);
    view.url = created.url;
    view.embed_html = embed_snippet(&view.url);
    Ok((StatusCode::CREATED, Json(view)))
}

/// A link with its statistics.
#[derive(Debug, Serialize)]
pub(crate) struct LinkDetail {
    #[serde(flatten)]
    view: LinkView,
    stats: LinkStats,
}

pub(crate) async fn get_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiLinkId(id): ApiLinkId,
) -> Result<Json<LinkDetail>, ApiError> {
    let link = app.links.link(account, id).await?;
    let stats = app.links.stats(account, id).await?;
    Ok(Json(LinkDetail {
        view: LinkView::new(&app, link),
        stats,
    }))
}

pub(crate) async fn deactivate<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiLinkId(id): ApiLinkId,
) -> Result<Json<LinkView>, ApiError> {
    let link = app.links.deactivate_link(account, id).await?;
    Ok(Json(LinkView::new(&app, link)))
}

pub(crate) async fn sessions<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiLinkId(id): ApiLinkId,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Session>>, ApiError> {
    Ok(Json(app.links.sessions(account, id, query.page()).await?))
}

async fn owned_link_url<S: LinkStore>(
    app: &AppState<S>,
    account: magic_link::AccountId,
    id: LinkId,
) -> Result<String, ApiError> {
    let link = app.links.link(account, id).await?;
    Ok(link_url(app, &link))
}

fn qr_error(err: qr::QrError) -> ApiError {
    ApiError::invalid("qr_unavailable", err.to_string())
}

fn image(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The URL is the same every time (signing is deterministic); it is a capability,
            // so only the owner's browser may keep it.
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn qr_svg<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiLinkId(id): ApiLinkId,
) -> Result<Response, ApiError> {
    let url = owned_link_url(&app, account, id).await?;
    let svg = qr::svg(&url).map_err(qr_error)?;
    Ok(image("image/svg+xml", svg))
}

pub(crate) async fn qr_png<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiLinkId(id): ApiLinkId,
) -> Result<Response, ApiError> {
    let url = owned_link_url(&app, account, id).await?;
    let png = qr::png(&url).map_err(qr_error)?;
    Ok(image("image/png", png))
}
