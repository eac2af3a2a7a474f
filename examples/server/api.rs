//! The account owner's JSON API. Every handler is scoped to the [`Owner`]'s account.
//!
//! | method and path                   | body / query                         | answer          |
//! |-----------------------------------|--------------------------------------|-----------------|
//! | `GET /api/account`                |                                      | credits, profile|
//! | `PUT /api/account/profile`        | `AccountProfile` (see below)         | credits, profile|
//! | `POST /api/account/return-secret` |                                      | `{"secret"}`, shown once |
//! | `POST /api/credits`               | `{"amount", "idempotency_key"}`      | credits         |
//! | `GET /api/links`                  | `?after=&limit=` or `?reference=`    | page of links   |
//! | `POST /api/links`                 | `NewLink` (see below)                | 201, the link   |
//! | `GET /api/links/{id}`             |                                      | link and stats  |
//! | `POST /api/links/{id}/deactivate` |                                      | the link        |
//! | `POST /api/links/{id}/personal`   | `{"reference": "cus_8f2k"}`          | `{"url", "qr_svg"}` |
//! | `GET /api/links/{id}/sessions`    | `?after=&limit=`                     | page of sessions|
//! | `GET /api/sessions`               | `?reference=`                        | the sessions of a reference |
//! | `POST /api/sessions/{id}/review`  | `{"decision": "approved" \| "denied"}` | the session  |
//! | `GET /api/links/{id}/qr.svg`, `.png` | `?reference=` for a personal URL's | the QR code     |
//!
//! A new link: `{"name": "Onboarding", "flow": "document" | "selfie" | "document_and_selfie",
//! "limit": "single" | "unlimited" | {"multi": 5}, "expires_at": "2030-01-01T00:00:00Z",
//! "language": "lt", "reference": "order-42", "metadata": {"team": "retail"},
//! "return_url": "https://shop.example/kyc/done", "dead_link_url": "https://shop.example/kyc/new"}`;
//! only `name` and `flow` are required. Unknown fields are refused. A return or dead-link URL
//! on an origin the account does not allow is `422 return_origin_not_allowed`.
//!
//! The profile: `{"display_name": "Acme Bank", "support_url": "https://acme.example/help",
//! "return_origins": ["https://acme.example"], "return_outcome": false}` (every field optional).
//! A personal URL is a link's URL for one recipient, whose reference its sessions record; the
//! reference travels in the URL, so use an opaque id, never a name or an email address.
//! `?reference=` lookups answer `{"items": [...], "next": null}` (at most
//! [`MAX_BY_REFERENCE`](magic_link::store::MAX_BY_REFERENCE) items).
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
    qr, Account, AccountId, AccountProfile, Error, IdempotencyKey, Link, LinkId, LinkStats,
    LinkStatus, NewLink, Outcome, Page, Paged, Reference, Session, SessionId,
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

/// `?reference=`: a lookup by the owner's reference.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReferenceQuery {
    reference: String,
}

/// A link list's query: a page, or a lookup by reference.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinksQuery {
    after: Option<u64>,
    limit: Option<usize>,
    reference: Option<String>,
}

/// A reference from a request; an invalid one is `422 invalid_reference`.
fn reference(text: &str) -> Result<Reference, ApiError> {
    Reference::new(text).map_err(|err| Error::from(err).into())
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

/// Credits and the public profile, as the API shows them.
#[derive(Debug, Serialize)]
pub(crate) struct AccountView {
    id: AccountId,
    balance: u64,
    held: u64,
    available: u64,
    profile: AccountProfile,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            available: a.available(),
            id: a.id,
            balance: a.balance,
            held: a.held,
            profile: a.profile,
        }
    }
}

/// `PUT /api/account/profile`: the display name, support URL, allowed return origins and the
/// outcome opt-in, all at once. Removing an origin stops redirects to it at once.
pub(crate) async fn set_profile<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiJson(profile): ApiJson<AccountProfile>,
) -> Result<Json<AccountView>, ApiError> {
    Ok(Json(
        app.links
            .set_account_profile(account, profile)
            .await?
            .into(),
    ))
}

/// A new return secret: the only time it is shown.
#[derive(Debug, Serialize)]
pub(crate) struct NewSecret {
    secret: String,
}

/// `POST /api/account/return-secret`: a new random return secret, the previous one kept for
/// verifying while the owner's site switches. Answered once, like a webhook secret.
pub(crate) async fn rotate_return_secret<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Response, ApiError> {
    let secret = app.links.rotate_return_secret(account).await?;
    let body = Json(NewSecret {
        secret: secret.expose().to_string(),
    });
    // A secret: no cache keeps it.
    Ok(([(header::CACHE_CONTROL, "no-store")], body).into_response())
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

/// `GET /api/links`: a page of links, or with `?reference=` the links of that reference.
pub(crate) async fn list_links<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiQuery(query): ApiQuery<LinksQuery>,
) -> Result<Json<Paged<LinkView>>, ApiError> {
    let page = match &query.reference {
        Some(text) => Paged {
            items: app
                .links
                .links_by_reference(account, &reference(text)?)
                .await?,
            next: None,
        },
        None => {
            let page = PageQuery {
                after: query.after,
                limit: query.limit,
            };
            app.links.links(account, page.page()).await?
        }
    };
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

/// `POST /api/links/{id}/redact`: erases the link's reference and metadata, and its sessions'
/// references, everywhere they are stored (`link.redacted`).
pub(crate) async fn redact_link<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
) -> Result<Json<LinkView>, ApiError> {
    let link = app.links.redact_link(account, id).await?;
    Ok(Json(LinkView::new(&app, link)?))
}

/// `POST /api/sessions/{id}/redact`: erases the session's reference (`session.redacted`).
pub(crate) async fn redact_session<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<SessionId>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(app.links.redact_session(account, id).await?))
}

pub(crate) async fn sessions<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Session>>, ApiError> {
    Ok(Json(app.links.sessions(account, id, query.page()).await?))
}

/// `GET /api/sessions?reference=`: the sessions started from personal URLs of that reference.
pub(crate) async fn sessions_by_reference<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiQuery(query): ApiQuery<ReferenceQuery>,
) -> Result<Json<Paged<Session>>, ApiError> {
    let items = app
        .links
        .sessions_by_reference(account, &reference(&query.reference)?)
        .await?;
    Ok(Json(Paged { items, next: None }))
}

/// A personal URL's recipient.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PersonalRequest {
    reference: String,
}

/// A personal URL, with where its QR code is.
#[derive(Debug, Serialize)]
pub(crate) struct PersonalUrl {
    url: String,
    qr_svg: String,
    qr_png: String,
}

/// `POST /api/links/{id}/personal`: the link's URL for one recipient (derived, not stored).
pub(crate) async fn personal<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
    ApiJson(req): ApiJson<PersonalRequest>,
) -> Result<Json<PersonalUrl>, ApiError> {
    let reference = reference(&req.reference)?;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("reference", reference.as_str())
        .finish();
    let url = app.links.personal_url(account, id, reference).await?;
    Ok(Json(PersonalUrl {
        url,
        qr_svg: format!("{}/api/links/{id}/qr.svg?{query}", app.path_prefix),
        qr_png: format!("{}/api/links/{id}/qr.png?{query}", app.path_prefix),
    }))
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

/// `?reference=`: the QR code of a personal URL instead of the shared one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QrQuery {
    reference: Option<String>,
}

/// The URL a QR code shows: the link's, or its personal URL for `?reference=`.
async fn qr_url<S: LinkStore>(
    app: &AppState<S>,
    account: AccountId,
    id: LinkId,
    query: &QrQuery,
) -> Result<String, ApiError> {
    Ok(match &query.reference {
        Some(text) => {
            app.links
                .personal_url(account, id, reference(text)?)
                .await?
        }
        None => app.links.link_url(account, id).await?,
    })
}

pub(crate) async fn qr_svg<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
    ApiQuery(query): ApiQuery<QrQuery>,
) -> Result<Response, ApiError> {
    let url = qr_url(&app, account, id, &query).await?;
    let svg = qr::svg(&url).map_err(qr_error)?;
    Ok(image("image/svg+xml", svg))
}

pub(crate) async fn qr_png<S: LinkStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    ApiId(id): ApiId<LinkId>,
    ApiQuery(query): ApiQuery<QrQuery>,
) -> Result<Response, ApiError> {
    let url = qr_url(&app, account, id, &query).await?;
    let png = qr::png(&url).map_err(qr_error)?;
    Ok(image("image/png", png))
}
