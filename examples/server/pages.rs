//! The pages of the person verifying: the landing page, the flow, and where a session stands.
//! Pages that say why a link cannot be used are [`Problem`] pages.
//!
//! `GET` and `HEAD /l/{token}` call only [`MagicLinks::inspect`](magic_link::MagicLinks::inspect),
//! which consumes nothing: email scanners fetch links before people do. The "Start
//! verification" button posts to the same URL, which calls
//! [`redeem`](magic_link::MagicLinks::redeem) and redirects (303) to the flow page, addressed
//! by the session token.

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use magic_link::clock::Clock;
use magic_link::store::LinkStore;
use magic_link::{AbandonReason, Error, Flow, Link, Outcome, Session, SessionStatus};
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};

use crate::errors::Problem;
use crate::extract::Token;
use crate::html::{self, CspNonce};
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

/// `GET` and `HEAD /l/{token}`: the landing page. Inspects the link; consumes nothing. When
/// the page is shown, counts the view for the link's funnel (see `views.rs`).
pub(crate) async fn landing<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let inspection = match app.links.inspect(&token, None).await {
        Ok(inspection) => inspection,
        Err(err) => return Problem::of_error(&err).page(&nonce, i18n::for_request(&headers)),
    };
    let link = &inspection.link;
    let t = i18n::for_language(&link.language);
    if let Err(rejection) = inspection.can_start() {
        return Problem::of_rejection(rejection).page(&nonce, t);
    }
    let kind = views::classify(&method, &headers);
    let view = views::record(&app, &token, link.id, kind).await;
    let context = context! {
        lang => t.lang,
        nonce => nonce.as_str(),
        t => Serde(t),
        link_name => &link.name,
        language_tag => link.language.as_str(),
        steps => Serde(steps(link.flow, t)),
        view => view.map(|id| id.simple().to_string()),
    };
    let mut page = html::page(StatusCode::OK, "landing.html", context);
    if let Some(cookie) = view.and_then(|id| views::cookie(&app, &token, id)) {
        page.headers_mut().append(header::SET_COOKIE, cookie);
    }
    page
}

/// `POST /l/{token}`: "Start verification". Redeems the link (a use, a held credit, a new
/// session) and redirects to the flow page. A start from the browser that was shown the
/// landing page confirms that view as a person's (see `views.rs`).
pub(crate) async fn start<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    if let Ok(claims) = app.links.verify_link_token(&token) {
        views::confirm_from_cookie(&app, &token, claims.link(), &headers).await;
    }
    match app
        .links
        .redeem(&token, magic_link::start::Start::new())
        .await
    {
        Ok(started) => Redirect::to(&format!("{}/s/{}", app.path_prefix, started.session_token))
            .into_response(),
        Err(err) => {
            // The page is in the link's language when the link is known.
            let t = match &err {
                Error::Rejected(_) => match app.links.inspect(&token, None).await {
                    Ok(inspection) => i18n::for_language(&inspection.link.language),
                    Err(_) => i18n::for_request(&headers),
                },
                _ => i18n::for_request(&headers),
            };
            Problem::of_error(&err).page(&nonce, t)
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

/// `GET /s/{session token}`: the verification flow, or where the session stands.
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
    match session.status {
        SessionStatus::Started if session.is_stale(now) => Problem::SessionExpired.page(&nonce, t),
        SessionStatus::Started => {
            let context = context! {
                lang => t.lang,
                nonce => nonce.as_str(),
                t => Serde(t),
                link_name => &link.name,
                steps => Serde(steps(session.flow, t)),
                prefix => &app.path_prefix,
                token,
            };
            html::page(StatusCode::OK, "flow.html", context)
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
                link_name => &link.name,
                outcome => outcome.as_str(),
                outcome_text,
            };
            html::page(StatusCode::OK, "done.html", context)
        }
        SessionStatus::Abandoned { reason, .. } => {
            let title = match reason {
                AbandonReason::Expired => t.session_expired_title,
                AbandonReason::Explicit => t.ended_title,
            };
            let context =
                context! { lang => t.lang, nonce => nonce.as_str(), t => Serde(t), title };
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
    after_session_change(&app, &token, &nonce, &headers, done.map(drop))
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
    after_session_change(&app, &token, &nonce, &headers, done.map(drop))
}

/// After a completion or abandonment: redirect to the flow page, which shows where the session
/// stands (also when it was already completed or abandoned: both are idempotent), or the
/// problem page for a bad token or a failed store.
fn after_session_change<S>(
    app: &AppState<S>,
    token: &str,
    nonce: &CspNonce,
    headers: &HeaderMap,
    done: Result<(), Error>,
) -> Response {
    match done {
        Ok(()) | Err(Error::Rejected(_)) => {
            Redirect::to(&format!("{}/s/{token}", app.path_prefix)).into_response()
        }
        Err(err) => Problem::of_session_error(&err).page(nonce, i18n::for_request(headers)),
    }
}
