//! The pages of the person verifying: the landing page, the flow, and the pages that say why a
//! link cannot be used.
//!
//! `GET` and `HEAD /l/{token}` call only [`MagicLinks::inspect`](magic_link::MagicLinks::inspect),
//! which consumes nothing: email scanners fetch links before people do. The "Start
//! verification" button posts to the same URL, which calls
//! [`redeem`](magic_link::MagicLinks::redeem) and redirects (303) to the flow page, addressed
//! by the session token.

use axum::extract::rejection::FormRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use magic_link::clock::Clock;
use magic_link::store::LinkStore;
use magic_link::tokens::TokenError;
use magic_link::{AbandonReason, Error, Flow, Link, Outcome, Rejection, Session, SessionStatus};
use serde::Deserialize;

use crate::api::log_error;
use crate::html::{esc, page, page_with_script, with_status, CspNonce};
use crate::i18n::{self, Texts};
use crate::AppState;

/// Why a link or session cannot be used, and the HTTP status that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Unknown, malformed or forged: 404.
    NotFound,
    /// At its usage limit: 410 Gone.
    Used,
    /// Past its expiry: 410 Gone.
    Expired,
    /// Deactivated by its owner: 410 Gone.
    Deactivated,
    /// The owner has no credit left: 503, temporary and not the visitor's doing.
    NoCredits,
    /// The store failed: 503.
    Unavailable,
    /// A form that could not be read: 400.
    BadRequest,
    /// A session token past its expiry: 410 Gone.
    SessionExpired,
}

impl Problem {
    fn of_rejection(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Exhausted => Self::Used,
            Rejection::Expired => Self::Expired,
            Rejection::Deactivated => Self::Deactivated,
            Rejection::NoCredits => Self::NoCredits,
            Rejection::NotFound => Self::NotFound,
            _ => Self::Unavailable,
        }
    }

    fn of_error(err: &Error) -> Self {
        match err {
            Error::Rejected(rejection) => Self::of_rejection(*rejection),
            Error::InvalidToken(TokenError::Expired) => Self::Expired,
            Error::InvalidToken(_) => Self::NotFound,
            err => {
                log_error("store", err);
                Self::Unavailable
            }
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Used | Self::Expired | Self::Deactivated | Self::SessionExpired => {
                StatusCode::GONE
            }
            Self::NoCredits | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable name, in the page's `data-problem` attribute.
    fn name(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Used => "used",
            Self::Expired => "expired",
            Self::Deactivated => "deactivated",
            Self::NoCredits => "no_credits",
            Self::Unavailable => "unavailable",
            Self::BadRequest => "bad_request",
            Self::SessionExpired => "session_expired",
        }
    }

    fn texts(self, t: &Texts) -> (&'static str, &'static str) {
        match self {
            Self::NotFound => (t.invalid_title, t.invalid_body),
            Self::Used => (t.used_title, t.new_link_body),
            Self::Expired => (t.expired_title, t.new_link_body),
            Self::Deactivated => (t.deactivated_title, t.new_link_body),
            Self::NoCredits => (t.no_credit_title, t.no_credit_body),
            Self::Unavailable => (t.unavailable_title, t.unavailable_body),
            Self::BadRequest => (t.bad_request_title, t.bad_request_body),
            Self::SessionExpired => (t.session_expired_title, t.ended_body),
        }
    }
}

/// The page for a problem, with its status.
pub(crate) fn problem_page(nonce: &CspNonce, t: &Texts, problem: Problem) -> Response {
    let (title, body) = problem.texts(t);
    let icon = match problem {
        Problem::NoCredits | Problem::Unavailable => "&#9203;",
        _ => "&#9888;",
    };
    let html = format!(
        "<main class=\"narrow\" data-problem=\"{name}\"><div class=\"card center\">\
         <div class=\"big-icon\" aria-hidden=\"true\">{icon}</div>\
         <h1 id=\"problem\">{title}</h1><p>{body}</p></div></main>",
        name = problem.name(),
        title = esc(title),
        body = esc(body),
    );
    let mut res = with_status(problem.status(), page(nonce, t.lang, title, &html));
    if problem == Problem::NoCredits || problem == Problem::Unavailable {
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    }
    res
}

/// The token in the path. One that is not even UTF-8 gets the same 404 page as a forged one.
pub(crate) struct Token(String);

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(token)) => Ok(Self(token)),
            Err(_) => {
                let nonce = parts
                    .extensions
                    .get::<CspNonce>()
                    .cloned()
                    .unwrap_or_else(|| CspNonce(String::new()));
                let t = accept_language(&parts.headers);
                Err(problem_page(&nonce, t, Problem::NotFound))
            }
        }
    }
}

fn accept_language(headers: &HeaderMap) -> &'static Texts {
    i18n::for_accept_language(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

fn step_names(flow: Flow, t: &Texts) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut steps = Vec::new();
    if flow.has_document() {
        steps.push(("document", t.document, t.document_hint));
    }
    if flow.has_selfie() {
        steps.push(("selfie", t.selfie, t.selfie_hint));
    }
    steps
}

/// `GET` and `HEAD /l/{token}`: the landing page. Inspects the link; consumes nothing.
pub(crate) async fn landing<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    let inspection = match app.links.inspect(&token).await {
        Ok(inspection) => inspection,
        Err(err) => {
            return problem_page(&nonce, accept_language(&headers), Problem::of_error(&err))
        }
    };
    let link = &inspection.link;
    let t = i18n::for_language(&link.language);
    if let Err(rejection) = inspection.can_start() {
        return problem_page(&nonce, t, Problem::of_rejection(rejection));
    }
    let steps: String = step_names(link.flow, t)
        .into_iter()
        .map(|(_, name, hint)| {
            format!(
                "<li><b>{}</b><br><span class=\"note\">{}</span></li>",
                esc(name),
                esc(hint)
            )
        })
        .collect();
    let body = format!(
        "<main class=\"narrow\" data-page=\"landing\"><div class=\"card\">\
         <p class=\"muted\">{title}</p><h1 id=\"link-name\">{name}</h1>\
         <p>{intro} {no_account}</p><h2>{steps_title}</h2><ol class=\"steps\">{steps}</ol>\
         <p class=\"note\" id=\"language\">{language}: {language_name} ({tag})</p>\
         <form method=\"post\" id=\"start-form\">\
         <button class=\"big\" id=\"start\" type=\"submit\">{start}</button></form>\
         </div></main>",
        title = esc(t.title),
        name = esc(&link.name),
        intro = esc(t.intro),
        no_account = esc(t.no_account),
        steps_title = esc(t.steps),
        language = esc(t.language),
        language_name = esc(t.language_name),
        tag = esc(link.language.as_str()),
        start = esc(t.start),
    );
    // One press starts one session: the button is disabled once the form is sent.
    let script = "document.getElementById('start-form').addEventListener('submit',function(){\
                  var b=document.getElementById('start');setTimeout(function(){b.disabled=true},0)});";
    page_with_script(&nonce, t.lang, &link.name, &body, script).into_response()
}

/// `POST /l/{token}`: "Start verification". Redeems the link (a use, a held credit, a new
/// session) and redirects to the flow page.
pub(crate) async fn start<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    match app.links.redeem(&token).await {
        Ok(started) => Redirect::to(&format!("{}/s/{}", app.path_prefix, started.session_token))
            .into_response(),
        Err(err) => {
            let problem = Problem::of_error(&err);
            // The page is in the link's language when the link is known.
            let t = match &err {
                Error::Rejected(_) => match app.links.inspect(&token).await {
                    Ok(inspection) => i18n::for_language(&inspection.link.language),
                    Err(_) => accept_language(&headers),
                },
                _ => accept_language(&headers),
            };
            problem_page(&nonce, t, problem)
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
    let problem = |err: &Error| {
        let problem = match err {
            Error::InvalidToken(TokenError::Expired) => Problem::SessionExpired,
            err => Problem::of_error(err),
        };
        problem_page(nonce, accept_language(headers), problem)
    };
    let claims = app
        .links
        .verify_session_token(token)
        .map_err(|e| problem(&e))?;
    let session = app
        .links
        .session(claims.account(), claims.session())
        .await
        .map_err(|e| problem(&e))?;
    let link = app
        .links
        .link(claims.account(), session.link)
        .await
        .map_err(|e| problem(&e))?;
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
        SessionStatus::Started if session.is_stale(now) => {
            problem_page(&nonce, t, Problem::SessionExpired)
        }
        SessionStatus::Started => flow_page(&nonce, t, &link, &session, &app.path_prefix, &token),
        SessionStatus::Completed { outcome, .. } => {
            let outcome_text = match outcome {
                Outcome::Approved => t.approved,
                Outcome::Denied => t.denied,
                _ => t.needs_review,
            };
            let body = format!(
                "<main class=\"narrow\" data-page=\"done\" data-outcome=\"{outcome}\">\
                 <div class=\"card center\"><div class=\"big-icon\" aria-hidden=\"true\">&#10004;</div>\
                 <h1 id=\"done\">{title}</h1><p class=\"muted\">{name}</p>\
                 <p id=\"result\">{result}: <b>{outcome_text}</b></p><p>{body}</p></div></main>",
                outcome = outcome.as_str(),
                title = esc(t.done_title),
                name = esc(&link.name),
                result = esc(t.result),
                outcome_text = esc(outcome_text),
                body = esc(t.done_body),
            );
            page(&nonce, t.lang, t.done_title, &body).into_response()
        }
        SessionStatus::Abandoned { reason, .. } => {
            let title = match reason {
                AbandonReason::Expired => t.session_expired_title,
                AbandonReason::Explicit => t.ended_title,
            };
            let body = format!(
                "<main class=\"narrow\" data-page=\"ended\"><div class=\"card center\">\
                 <h1 id=\"ended\">{}</h1><p>{}</p></div></main>",
                esc(title),
                esc(t.ended_body)
            );
            page(&nonce, t.lang, title, &body).into_response()
        }
    }
}

fn flow_page(
    nonce: &CspNonce,
    t: &Texts,
    link: &Link,
    session: &Session,
    prefix: &str,
    token: &str,
) -> Response {
    let steps: String = step_names(session.flow, t)
        .into_iter()
        .enumerate()
        .map(|(i, (id, name, hint))| {
            let capture = if id == "selfie" {
                "user"
            } else {
                "environment"
            };
            format!(
                "<div class=\"step\"><label for=\"{id}\">{n}. {name}</label>\
                 <p class=\"note\">{hint}</p>\
                 <input type=\"file\" id=\"{id}\" accept=\"image/*\" capture=\"{capture}\"></div>",
                n = i + 1,
                name = esc(name),
                hint = esc(hint),
            )
        })
        .collect();
    // The file inputs have no `name`: the demo keeps the files in the browser. A real flow
    // uploads them to the host's verification backend, which reports the outcome.
    let body = format!(
        "<main class=\"narrow\" data-page=\"flow\"><div class=\"card\">\
         <p class=\"muted\">{name}</p><h1>{title}</h1>\
         <form method=\"post\" id=\"flow-form\">{steps}\
         <p class=\"note\">{demo_files}</p>\
         <fieldset class=\"step\"><legend>{demo_outcome}</legend><div class=\"inline\">\
         <label><input type=\"radio\" name=\"outcome\" value=\"approved\" id=\"outcome-approved\" checked> {approved}</label>\
         <label><input type=\"radio\" name=\"outcome\" value=\"denied\" id=\"outcome-denied\"> {denied}</label>\
         </div></fieldset>\
         <button class=\"big\" id=\"submit\" type=\"submit\">{submit}</button></form>\
         <form method=\"post\" action=\"{prefix}/s/{token}/quit\">\
         <p class=\"center\"><button class=\"secondary\" id=\"quit\" type=\"submit\">{quit}</button></p></form>\
         </div></main>",
        name = esc(&link.name),
        title = esc(t.title),
        demo_files = esc(t.demo_files),
        demo_outcome = esc(t.demo_outcome),
        approved = esc(t.approved),
        denied = esc(t.denied),
        submit = esc(t.submit),
        prefix = esc(prefix),
        token = esc(token),
        quit = esc(t.quit),
    );
    let script = "document.getElementById('flow-form').addEventListener('submit',function(){\
                  var b=document.getElementById('submit');setTimeout(function(){b.disabled=true},0)});";
    page_with_script(nonce, t.lang, t.title, &body, script).into_response()
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
        _ => return problem_page(&nonce, accept_language(&headers), Problem::BadRequest),
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
        Err(Error::InvalidToken(TokenError::Expired)) => {
            problem_page(nonce, accept_language(headers), Problem::SessionExpired)
        }
        Err(err) => problem_page(nonce, accept_language(headers), Problem::of_error(&err)),
    }
}
