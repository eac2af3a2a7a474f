//! The funnel's top: which landing-page views were people and which were scanners.
//!
//! The crate only counts ([`MagicLinks::record_view`](magic_link::MagicLinks::record_view));
//! this service decides what each view was:
//!
//! - a `HEAD` request, or a `GET` from a known scanner or link-preview user agent
//!   ([`SCANNER_AGENTS`]), is a **scanner**;
//! - any other `GET` that shows the landing page is **unconfirmed** at first. The page carries
//!   a random view id, remembered here for [`PENDING_FOR`], and a cookie with it, scoped to
//!   that link's path. The view is **confirmed** as human, once, when the page's own script
//!   (allowed to run by the page's CSP nonce; scanners seldom run scripts) posts the id back to
//!   `POST /l/{token}/seen`, or when a start (`POST /l/{token}`) comes with the cookie.
//!
//! The view ids live in this process's memory: behind a load balancer without sticky
//! sessions a beacon that reaches another instance leaves its view unconfirmed. A view
//! consumes nothing and writes no event.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use magic_link::funnel::{ViewChange, ViewKind};
use magic_link::store::LinkStore;
use magic_link::LinkId;
use serde::Deserialize;
use uuid::Uuid;

use crate::errors::{log_error, Problem};
use crate::extract::Token;
use crate::html::CspNonce;
use crate::i18n;
use crate::AppState;

/// Lowercase substrings of the `User-Agent`s of email security scanners, link-preview bots and
/// HTTP libraries: a view from one of them counts as a scanner's. The one place to extend.
/// (Scanners that pose as a browser are not caught here; their views stay unconfirmed, since
/// they rarely run the page's script.)
pub(crate) const SCANNER_AGENTS: &[&str] = &[
    // Email security: Microsoft Defender Safe Links and Bing's preview, Proofpoint URL
    // Defense, Mimecast URL Protect, Barracuda Link Protection.
    "bingpreview",
    "safelinks",
    "proofpoint",
    "mimecast",
    "barracuda",
    // Link previews in chat and social apps.
    "google-inspectiontool",
    "googlebot",
    "google-safety",
    "slackbot",
    "slack-imgproxy",
    "facebookexternalhit",
    "twitterbot",
    "whatsapp",
    "telegrambot",
    "discordbot",
    "linkedinbot",
    "skypeuripreview",
    // HTTP libraries and command-line clients.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "okhttp",
    "libwww-perl",
    "apache-httpclient",
];

/// How long a page's view id can still be confirmed.
pub(crate) const PENDING_FOR: Duration = Duration::from_secs(30 * 60);

/// At most this many view ids are remembered; the oldest is dropped first.
const MAX_PENDING: usize = 100_000;

/// The cookie that carries a view id to a start from the same browser.
const COOKIE: &str = "ml_view";

/// What a view of the landing page was, as far as the request shows.
pub(crate) fn classify(method: &Method, headers: &HeaderMap) -> ViewKind {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if method == Method::HEAD || SCANNER_AGENTS.iter().any(|bot| agent.contains(bot)) {
        ViewKind::Scanner
    } else {
        ViewKind::Unconfirmed
    }
}

/// The unconfirmed views of recent page loads, by their random id.
#[derive(Debug, Default)]
pub(crate) struct PendingViews(Mutex<Pending>);

#[derive(Debug, Default)]
struct Pending {
    links: HashMap<Uuid, LinkId>,
    /// Ids in the order they were made, with when.
    order: VecDeque<(Instant, Uuid)>,
}

impl PendingViews {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers a new unconfirmed view of `link`; returns its id.
    pub(crate) fn add(&self, link: LinkId) -> Uuid {
        let id = Uuid::new_v4();
        let now = Instant::now();
        let mut pending = self.lock();
        while let Some(&(at, old)) = pending.order.front() {
            if now.duration_since(at) < PENDING_FOR && pending.order.len() < MAX_PENDING {
                break;
            }
            pending.order.pop_front();
            pending.links.remove(&old);
        }
        pending.order.push_back((now, id));
        pending.links.insert(id, link);
        id
    }

    /// Takes the view `id` of `link` if it is still pending: true once per view.
    pub(crate) fn take(&self, id: Uuid, link: LinkId) -> bool {
        let mut pending = self.lock();
        if pending.links.get(&id) != Some(&link) {
            return false;
        }
        pending.links.remove(&id);
        // Its entry in `order` goes when it is the oldest.
        true
    }
}

/// Counts a landing page's view as `kind`; an unconfirmed one is remembered and its id
/// returned, to go into the page and the cookie. A failed count is logged, never shown.
pub(crate) async fn record<S: LinkStore>(
    app: &AppState<S>,
    token: &str,
    link: LinkId,
    kind: ViewKind,
) -> Option<Uuid> {
    if let Err(err) = app.links.record_view(token, kind).await {
        log_error("views", &err);
        return None;
    }
    (kind == ViewKind::Unconfirmed).then(|| app.views.add(link))
}

/// The `Set-Cookie` that hands view `id` to a start from this browser: HttpOnly, sent only to
/// this link's URLs, for as long as the view can be confirmed.
pub(crate) fn cookie<S>(app: &AppState<S>, token: &str, id: Uuid) -> Option<HeaderValue> {
    let secure = if app.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path={}/l/{token}; Max-Age={}; HttpOnly; SameSite=Strict{secure}",
        id.simple(),
        app.path_prefix,
        PENDING_FOR.as_secs()
    ))
    .ok()
}

/// Confirms the view named by the request's cookie, if it is a pending view of `link`: a
/// start from the browser that was shown the page.
pub(crate) async fn confirm_from_cookie<S: LinkStore>(
    app: &AppState<S>,
    token: &str,
    link: LinkId,
    headers: &HeaderMap,
) {
    let id = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find_map(|value| Uuid::try_parse(value).ok());
    if let Some(id) = id {
        confirm(app, token, link, id).await;
    }
}

async fn confirm<S: LinkStore>(app: &AppState<S>, token: &str, link: LinkId, id: Uuid) {
    if app.views.take(id, link) {
        if let Err(err) = app.links.record_view(token, ViewChange::Confirm).await {
            log_error("views", &err);
        }
    }
}

/// The beacon's form: the page's view id.
#[derive(Debug, Deserialize)]
pub(crate) struct Beacon {
    view: String,
}

/// `POST /l/{token}/seen`: the landing page's script reporting that it ran. Confirms the
/// page's view once; answers 204 whether or not there was anything to confirm, 404 for a bad
/// link token, 400 for a malformed form. Rate-limited per client.
pub(crate) async fn seen<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
    form: Result<Form<Beacon>, FormRejection>,
) -> Response {
    let Ok(Form(beacon)) = form else {
        return Problem::BadRequest.page(&nonce, i18n::for_request(&headers));
    };
    let link = match app.links.verify_url_token(&token) {
        Ok((link, _reference)) => link,
        Err(err) => return Problem::of_error(&err).page(&nonce, i18n::for_request(&headers)),
    };
    if let Ok(id) = Uuid::try_parse(&beacon.view) {
        confirm(&app, &token, link, id).await;
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(ua: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, HeaderValue::from_str(ua).unwrap());
        headers
    }

    #[test]
    fn head_and_known_scanners_are_scanners_the_rest_unconfirmed() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      HeadlessChrome/131.0.0.0 Safari/537.36";
        assert_eq!(
            classify(&Method::GET, &agent(chrome)),
            ViewKind::Unconfirmed
        );
        assert_eq!(classify(&Method::HEAD, &agent(chrome)), ViewKind::Scanner);
        assert_eq!(
            classify(&Method::GET, &HeaderMap::new()),
            ViewKind::Unconfirmed
        );
        for bot in [
            "Mozilla/5.0 (compatible; BingPreview/1.0b)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "Go-http-client/1.1",
            "WhatsApp/2.23.20.0",
        ] {
            assert_eq!(
                classify(&Method::GET, &agent(bot)),
                ViewKind::Scanner,
                "{bot}"
            );
        }
    }

    #[test]
    fn a_pending_view_is_taken_once_and_only_for_its_link() {
        let pending = PendingViews::default();
        let (link, other) = (LinkId::new(), LinkId::new());
        let id = pending.add(link);
        assert!(!pending.take(id, other), "another link's view");
        assert!(!pending.take(Uuid::new_v4(), link), "an unknown id");
        assert!(pending.take(id, link));
        assert!(!pending.take(id, link), "a repeated beacon counts once");
    }
}
