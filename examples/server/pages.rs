//! The pages of the person verifying: the landing page, the flow, and where a session stands.
//! Pages that say why a link cannot be used are [`Problem`] pages.
//!
//! `GET` and `HEAD /l/{token}` call only [`MagicLinks::inspect`](magic_link::MagicLinks::inspect),
//! which consumes nothing: email scanners fetch links before people do. The "Start
//! verification" button posts to the same URL, which calls
//! [`redeem`](magic_link::MagicLinks::redeem) and redirects (303) to the flow page, addressed
//! by the session token.
//!
//! The pages say whose verification it is with the account's display name and "Get help" link
//! (`brand.rs`), never with the link's internal name. Where the link owner set them, two
//! redirects (303) leave the service:
//!
//! - a dead link (used up, expired or deactivated) with a dead-link URL sends its visitors
//!   there: [`Inspection::dead_link_url`](magic_link::Inspection::dead_link_url), and for an
//!   expired link, whose token is refused before any store access,
//!   [`dead_link_redirect`](magic_link::MagicLinks::dead_link_redirect);
//! - a session that ends (completed or quit) on a link with a return URL sends the browser to
//!   the signed [`return_redirect`](magic_link::MagicLinks::return_redirect): from the POST
//!   that ends it, and from the flow page of a session that ended elsewhere (which the page's
//!   live stream reloads). The flow page's CSP lets its forms end up at that origin.
//!
//! One person, one use (see [`magic_link::start`]):
//!
//! - The browser keeps a random start key in the cookie `ml_start` (`HttpOnly`,
//!   `SameSite=Lax`, `Secure` when the base URL is https, sent only to `/l/` URLs). The landing
//!   page sets it when it is missing and inspects the link with it.
//! - The page's form carries the form token that `inspect` minted for this link and this key
//!   (valid for an hour). A start without it, or with one of another link or browser, or a
//!   stale one, starts nothing: a 400 page links back to the landing page. The checks run in
//!   this order: the link token (404), the form token (400), then the store (410, 503).
//! - While the session this browser started on the link is open, the landing page offers
//!   "Continue your verification" instead, and its button returns that session (no new use):
//!   so do a double click, a reload and the back button.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use magic_link::clock::Clock;
use magic_link::funnel::ViewKind;
use magic_link::start::{Start, StartKey};
use magic_link::store::LinkStore;
use magic_link::tokens::TokenError;
use magic_link::{AbandonReason, Error, Flow, Link, Outcome, Session, SessionStatus};
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};

use crate::brand::Brand;
use crate::errors::{log_error, Problem};
use crate::extract::Token;
use crate::html::{self, CspNonce, FormTargets};
use crate::i18n::{self, Texts};
use crate::{views, AppState};

/// A step of a flow, as the landing and flow pages list it.
#[derive(Debug, Serialize)]
struct Step {
    /// The file input's id.
    id: &'static str,
    name: &'static str,
    hint: &'static str,
    /// Which camera a phone opens for it.
    capture: &'static str,
}

fn steps(flow: Flow, t: &Texts) -> Vec<Step> {
    let mut steps = Vec::new();
    if flow.has_document() {
        steps.push(Step {
            id: "document",
            name: t.document,
            hint: t.document_hint,
            capture: "environment",
        });
    }
    if flow.has_selfie() {
        steps.push(Step {
            id: "selfie",
            name: t.selfie,
            hint: t.selfie_hint,
            capture: "user",
        });
    }
    steps
}

/// The cookie that keeps this browser's start key.
const START_COOKIE: &str = "ml_start";

/// How long a browser keeps its start key: a day, longer than a session lives.
const START_COOKIE_MAX_AGE: u64 = 24 * 60 * 60;

/// The browser's start key, from its cookie, if it has a valid one.
fn start_key(headers: &HeaderMap) -> Option<StartKey> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(START_COOKIE)?.strip_prefix('='))
        .find_map(|value| StartKey::new(value).ok())
}

/// The `Set-Cookie` that keeps a new start key: HttpOnly (no script reads it), SameSite=Lax
/// (it goes with the person's own clicks, not with another site's POSTs), Secure on https,
/// sent only to the landing pages' URLs.
fn start_cookie<S>(app: &AppState<S>, key: &StartKey) -> Option<HeaderValue> {
    let secure = if app.base_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{START_COOKIE}={}; Path={}/l/; Max-Age={START_COOKIE_MAX_AGE}; HttpOnly; \
         SameSite=Lax{secure}",
        key.expose_secret(),
        app.path_prefix,
    ))
    .ok()
}

/// `GET` and `HEAD /l/{token}`: the landing page. Inspects the link with the browser's start
/// key (a new one, set as a cookie, if it has none); consumes nothing. When the key's session
/// on this link is still open, offers "Continue your verification" (also when the link is used
/// up: that session took its last use). When the page is shown, counts the view for the link's
/// funnel (see `views.rs`).
pub(crate) async fn landing<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let kind = views::classify(&method, &headers);
    let (key, new_key) = match start_key(&headers) {
        Some(key) => (Some(key), false),
        // A scanner gets no key (and so no form token): it is not going to start.
        None if kind == ViewKind::Scanner => (None, false),
        // Without a key (the operating system's random source failed) the page still shows;
        // its start is then refused with the 400 page.
        None => (StartKey::generate().ok(), true),
    };
    let inspection = match app.links.inspect(&token, key.as_ref()).await {
        Ok(inspection) => inspection,
        Err(err) => {
            // An authentic token of an expired link: its owner may send visitors on.
            if matches!(err, Error::InvalidToken(TokenError::Expired)) {
                match app.links.dead_link_redirect(&token).await {
                    Ok(Some(url)) => return Redirect::to(url.as_str()).into_response(),
                    Ok(None) | Err(Error::Rejected(_)) => {}
                    Err(err) => log_error("store", &err),
                }
            }
            return Problem::of_error(&err).page(&nonce, i18n::for_request(&headers));
        }
    };
    let link = &inspection.link;
    let t = i18n::for_language(&link.language);
    let brand = Brand::new(
        inspection.display_name.clone(),
        inspection.support_url.as_ref(),
    );
    let resume = inspection
        .open_session
        .as_ref()
        .is_some_and(|session| session.status == SessionStatus::Started);
    if !resume {
        // A dead link (used up, expired, deactivated) whose owner set where to send visitors.
        if let Some(url) = &inspection.dead_link_url {
            return Redirect::to(url.as_str()).into_response();
        }
        if let Err(rejection) = inspection.can_start() {
            return Problem::of_rejection(rejection).page_for(&nonce, t, &brand, None);
        }
    }
    let view = views::record(&app, &token, link.id, kind).await;
    let context = context! {
        lang => t.lang,
        nonce => nonce.as_str(),
        t => Serde(t),
        language_tag => link.language.as_str(),
        steps => Serde(steps(link.flow, t)),
        view => view.map(|id| id.simple().to_string()),
        form_token => &inspection.form_token,
        resume,
        ..brand.context(t)
    };
    let mut page = html::page(StatusCode::OK, "landing.html", context);
    if let Some(cookie) = view.and_then(|id| views::cookie(&app, &token, id)) {
        page.headers_mut().append(header::SET_COOKIE, cookie);
    }
    if let Some(cookie) = key.filter(|_| new_key).and_then(|k| start_cookie(&app, &k)) {
        page.headers_mut().append(header::SET_COOKIE, cookie);
    }
    page
}

/// The landing page's form: the form token its `GET` minted.
#[derive(Debug, Deserialize)]
pub(crate) struct StartForm {
    form_token: String,
}

/// `POST /l/{token}`: "Start verification" (or "Continue"). Checks the link token (404), then
/// the form token against the browser's start key (400, with a link back to the landing page),
/// then redeems the link: a use, a held credit, a new session; or, while the key's session on
/// this link is open, that session again, consuming nothing. Redirects to the flow page. A
/// start from the browser that was shown the landing page confirms that view as a person's
/// (see `views.rs`).
pub(crate) async fn start<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
    form: Result<Form<StartForm>, FormRejection>,
) -> Response {
    // A shared link's token or a personal URL's.
    let link = match app.links.verify_url_token(&token) {
        Ok((link, _reference)) => link,
        Err(err) => return Problem::of_error(&err).page(&nonce, i18n::for_request(&headers)),
    };
    // No store access before the form token is checked: the 400 page is in the browser's
    // language.
    let back = format!("{}/l/{token}", app.path_prefix);
    let refused =
        || Problem::FormRejected.page_with_link(&nonce, i18n::for_request(&headers), Some(&back));
    let (Some(key), Ok(Form(form))) = (start_key(&headers), form) else {
        return refused();
    };
    let start = Start::from_landing_page(key, form.form_token);
    let started = app.links.redeem(&token, start).await;
    if !matches!(started, Err(Error::InvalidFormToken(_))) {
        // The form came from the landing page this browser was shown.
        views::confirm_from_cookie(&app, &token, link, &headers).await;
    }
    match started {
        Ok(started) => Redirect::to(&format!("{}/s/{}", app.path_prefix, started.session_token))
            .into_response(),
        Err(Error::InvalidFormToken(_)) => refused(),
        Err(err) => {
            // The page is in the link's language when the link is known.
            let (t, brand) = match &err {
                Error::Rejected(_) => match app.links.inspect(&token, None).await {
                    Ok(inspection) => (
                        i18n::for_language(&inspection.link.language),
                        Brand::new(inspection.display_name, inspection.support_url.as_ref()),
                    ),
                    Err(_) => (i18n::for_request(&headers), Brand::neutral()),
                },
                _ => (i18n::for_request(&headers), Brand::neutral()),
            };
            Problem::of_error(&err).page_for(&nonce, t, &brand, None)
        }
    }
}

/// Reads the session a session token names, with its link, or the problem page.
async fn session_of<S: LinkStore>(
    app: &AppState<S>,
    token: &str,
    nonce: &CspNonce,
    headers: &HeaderMap,
) -> Result<(Session, Link), Response> {
    let problem =
        |err: Error| Problem::of_session_error(&err).page(nonce, i18n::for_request(headers));
    let claims = app.links.verify_session_token(token).map_err(problem)?;
    let session = app
        .links
        .session(claims.account(), claims.session())
        .await
        .map_err(problem)?;
    let link = app
        .links
        .link(claims.account(), session.link)
        .await
        .map_err(problem)?;
    Ok((session, link))
}

/// `GET /s/{session token}`: the verification flow, or where the session stands; for a session
/// that has ended on a link with a return URL, a redirect (303) to the signed return URL
/// instead (see [`return_redirect`]).
pub(crate) async fn flow<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    let (session, link) = match session_of(&app, &token, &nonce, &headers).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let t = i18n::for_language(&session.language);
    let now = app.links.clock().now();
    if session.status != SessionStatus::Started {
        if let Some(to) = return_redirect(&app, &token).await {
            return to;
        }
    }
    let brand = Brand::of_account(&app, session.account).await;
    match session.status {
        SessionStatus::Started if session.is_stale(now) => {
            Problem::SessionExpired.page_for(&nonce, t, &brand, None)
        }
        SessionStatus::Started => {
            let context = context! {
                lang => t.lang,
                nonce => nonce.as_str(),
                t => Serde(t),
                steps => Serde(steps(session.flow, t)),
                prefix => &app.path_prefix,
                token,
                ..brand.context(t)
            };
            let mut page = html::page(StatusCode::OK, "flow.html", context);
            // Completing or quitting redirects to the return URL: the CSP must let the forms
            // end up there.
            if let Some(url) = &link.return_url {
                page.extensions_mut()
                    .insert(FormTargets(vec![url.origin()]));
            }
            page
        }
        SessionStatus::Completed { outcome, .. } => {
            let outcome_text = match outcome {
                Outcome::Approved => t.approved,
                Outcome::Denied => t.denied,
                _ => t.needs_review,
            };
            let context = context! {
                lang => t.lang,
                nonce => nonce.as_str(),
                t => Serde(t),
                outcome => outcome.as_str(),
                outcome_text,
                ..brand.context(t)
            };
            html::page(StatusCode::OK, "done.html", context)
        }
        SessionStatus::Abandoned { reason, .. } => {
            let title = match reason {
                AbandonReason::Expired => t.session_expired_title,
                AbandonReason::Explicit => t.ended_title,
            };
            let context = context! {
                lang => t.lang,
                nonce => nonce.as_str(),
                t => Serde(t),
                title,
                ..brand.context(t)
            };
            html::page(StatusCode::OK, "ended.html", context)
        }
    }
}

/// The flow's form: the outcome the tester picked.
#[derive(Debug, Deserialize)]
pub(crate) struct Submission {
    outcome: String,
}

/// `POST /s/{session token}`: completes the session with the picked outcome (billing one
/// credit, emitting `session.completed`), then shows where it stands.
pub(crate) async fn complete<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
    form: Result<Form<Submission>, FormRejection>,
) -> Response {
    let outcome = match form.as_ref().map(|f| f.outcome.as_str()) {
        Ok("approved") => Outcome::Approved,
        Ok("denied") => Outcome::Denied,
        Ok("needs_review") => Outcome::NeedsReview,
        _ => return Problem::BadRequest.page(&nonce, i18n::for_request(&headers)),
    };
    let done = app.links.complete_session_with_token(&token, outcome).await;
    after_session_change(&app, &token, &nonce, &headers, done.map(drop)).await
}

/// `POST /s/{session token}/quit`: abandons the session (its credit is released; the link's
/// use stays consumed).
pub(crate) async fn quit<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    let done = app.links.abandon_session_with_token(&token).await;
    after_session_change(&app, &token, &nonce, &headers, done.map(drop)).await
}

/// After a completion or abandonment: redirect (303) to the link's signed return URL when it
/// has one, else to the flow page, which shows where the session stands (also when it was
/// already completed or abandoned: both are idempotent); or the problem page for a bad token
/// or a failed store.
async fn after_session_change<S: LinkStore>(
    app: &AppState<S>,
    token: &str,
    nonce: &CspNonce,
    headers: &HeaderMap,
    done: Result<(), Error>,
) -> Response {
    match done {
        Ok(()) | Err(Error::Rejected(_)) => match return_redirect(app, token).await {
            Some(to) => to,
            None => Redirect::to(&format!("{}/s/{token}", app.path_prefix)).into_response(),
        },
        Err(err) => Problem::of_session_error(&err).page(nonce, i18n::for_request(headers)),
    }
}

/// The redirect (303) to the signed return URL of an ended session
/// ([`MagicLinks::return_redirect`](magic_link::MagicLinks::return_redirect)), if its link has
/// one on an origin the account still allows. A failure to sign it is logged, and the person
/// sees the built-in result page instead.
async fn return_redirect<S: LinkStore>(app: &AppState<S>, token: &str) -> Option<Response> {
    match app.links.return_redirect(token).await {
        Ok(url) => url.map(|url| Redirect::to(&url).into_response()),
        Err(err) => {
            log_error("store", &err);
            None
        }
    }
}
