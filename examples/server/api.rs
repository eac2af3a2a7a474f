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
//! | `POST /api/sessions/{id}/review`  | `{"decision": "approved" \| "denied"}` | the session  |
//! | `GET /api/links/{id}/qr.svg`, `.png` |                                   | the QR code     |
//!
//! A new link: `{"name": "Onboarding", "flow": "document" | "selfie" | "document_and_selfie",
//! "limit": "single" | "unlimited" | {"multi": 5}, "expires_at": "2030-01-01T00:00:00Z",
//! "language": "lt"}`; only `name` and `flow` are required. Unknown fields are refused.
//!
//! A review records the final decision on a session that completed with `needs_review`
//! (`session.reviewed`; nothing more is billed): another session is `409 not_under_review`, a
//! second review with the other decision `409 review_conflict`, `needs_review` as the decision
//! `422 invalid_decision`.
//!
//! Errors are JSON, `{"error": "what went wrong", "code": "machine_readable"}`, with a 4xx
//! status for anything the request did wrong and 503 when the store is unavailable.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magic_link::clock::Clock;
use magic_link::store::LinkStore;
use magic_link::{
    qr, Account, AccountId, Error, IdempotencyKey, Link, LinkId, LinkStats, LinkStatus, NewLink,
    Outcome, Page, Paged, Session, SessionId,
};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::extract::{ApiId, ApiJson, ApiQuery, Owner};
use crate::html;
use crate::AppState;

/// The largest top-up the demo accepts at once.
const MAX_TOP_UP: u64 = 1_000_000;

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
    pub(crate) fn new<S: LinkStore>(app: &AppState<S>, link: Link) -> Result<Self, ApiError> {
        let url = app.links.url_of(&link);
        let now = app.links.clock().now();
        Ok(Self {
            status: link.status(now),
            remaining: link.remaining(),
            qr_svg: format!("{}/api/links/{}/qr.svg", app.path_prefix, link.id),
            qr_png: format!("{}/api/links/{}/qr.png", app.path_prefix, link.id),
            embed_html: verify_now_button(&url)?,
            url,
            link,
        })
    }
}

/// A "Verify now" button to paste into a web site (`assets/verify-now.html`). It opens the
/// landing page, which consumes nothing until the person presses "Start verification".
pub(crate) fn verify_now_button(url: &str) -> Result<String, html::RenderError> {
    html::render("verify-now.html", context! { url })
}

/// Credits as the API shows them.
#[derive(Debug, Serialize)]
pub(crate) struct AccountView {
    id: AccountId,
    balance: u64,
    held: u64,
    available: u64,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
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
            .collect::<Result<_, _>>()?,
        next: page.next,
    }))
}

pub(crate) async fn create_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiJson(spec): ApiJson<NewLink>,
) -> Result<(StatusCode, Json<LinkView>), ApiError> {
    let created = app.links.create_link(account, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(LinkView::new(&app, created.link)?),
    ))
}

/// A link with its statistics.
#[derive(Debug, Serialize)]
pub(crate) struct LinkDetail {
    #[serde(flatten)]
    view: LinkView,
    stats: Stats,
}

/// A link's statistics (its funnel: `views` by kind, `uses` as starts, `completed` by outcome,
/// `abandoned`, `expired`, `median_time_to_complete`), with the conversion, completed per
/// human view (`null` while there is none).
#[derive(Debug, Serialize)]
pub(crate) struct Stats {
    #[serde(flatten)]
    stats: LinkStats,
    conversion: Option<f64>,
}

pub(crate) async fn get_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
) -> Result<Json<LinkDetail>, ApiError> {
    let link = app.links.link(account, id).await?;
    let stats = app.links.stats(account, id).await?;
    Ok(Json(LinkDetail {
        view: LinkView::new(&app, link)?,
        stats: Stats {
            conversion: stats.conversion(),
            stats,
        },
    }))
}

pub(crate) async fn deactivate<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
) -> Result<Json<LinkView>, ApiError> {
    let link = app.links.deactivate_link(account, id).await?;
    Ok(Json(LinkView::new(&app, link)?))
}

pub(crate) async fn sessions<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Session>>, ApiError> {
    Ok(Json(app.links.sessions(account, id, query.page()).await?))
}

/// A review decision.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewRequest {
    decision: Outcome,
}

/// `POST /api/sessions/{id}/review`: the owner's final decision after `needs_review`.
pub(crate) async fn review<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<SessionId>,
    ApiJson(req): ApiJson<ReviewRequest>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(
        app.links.review_session(account, id, req.decision).await?,
    ))
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
    ApiId(id): ApiId<LinkId>,
) -> Result<Response, ApiError> {
    let url = app.links.link_url(account, id).await?;
    let svg = qr::svg(&url).map_err(qr_error)?;
    Ok(image("image/svg+xml", svg))
}

pub(crate) async fn qr_png<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
) -> Result<Response, ApiError> {
    let url = app.links.link_url(account, id).await?;
    let png = qr::png(&url).map_err(qr_error)?;
    Ok(image("image/png", png))
}
