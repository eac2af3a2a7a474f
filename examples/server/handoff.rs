//! "Continue on your phone": a session moves from the device that started it to a phone.
//!
//! | method and path        | device         | what                                                  |
//! |------------------------|----------------|-------------------------------------------------------|
//! | `GET /s/{token}/phone` | the first one  | mints a hand-off ([`MagicLinks::handoff`]) and shows its short URL as a QR code |
//! | `GET /h/{handoff}`     | the phone      | checks it ([`MagicLinks::check_handoff`]) and shows a "Continue here" button, or the refusal; consumes nothing |
//! | `POST /h/{handoff}`    | the phone      | accepts the hand-off ([`MagicLinks::accept_handoff`]) and redirects to the phone's own flow page |
//!
//! A hand-off token works once, for ten minutes, and never after its session has ended; the
//! refusals are problem pages (410). Opening the URL is a `GET` that only checks the token and
//! reads the store: link scanners and chat previews open URLs too, and must not use it up.
//! The first device's pages follow the session's event stream (`live.rs`): they show
//! "continued on your phone" when the phone accepts (`session.handed_off`) and the result when
//! it finishes.
//!
//! [`MagicLinks::handoff`]: magic_link::MagicLinks::handoff
//! [`MagicLinks::check_handoff`]: magic_link::MagicLinks::check_handoff
//! [`MagicLinks::accept_handoff`]: magic_link::MagicLinks::accept_handoff

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use magic_link::store::LinkStore;
use magic_link::{qr, Error, Rejection};
use minijinja::context;
use minijinja::value::{Serde, Value};

use crate::brand::Brand;
use crate::errors::{log_error, Problem};
use crate::extract::Token;
use crate::html::{self, CspNonce};
use crate::i18n;
use crate::AppState;

/// `GET /s/{session token}/phone`: a new hand-off of the session, as a QR code and a short URL.
/// A session that has ended goes to its flow page, which says how it ended.
pub(crate) async fn phone<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    let flow = format!("{}/s/{token}", app.path_prefix);
    let handoff = match app.links.handoff(&token).await {
        Ok(handoff) => handoff,
        Err(Error::Rejected(
            Rejection::SessionCompleted | Rejection::SessionAbandoned | Rejection::SessionExpired,
        )) => return Redirect::to(&flow).into_response(),
        Err(err) => {
            return Problem::of_session_error(&err).page(&nonce, i18n::for_request(&headers))
        }
    };
    let t = i18n::for_language(&handoff.session.language);
    let url = format!("{}/h/{}", app.base_url, handoff.token);
    let svg = match qr::svg(&url) {
        Ok(svg) => svg,
        Err(err) => {
            log_error("qr", &err);
            return Problem::Unavailable.page(&nonce, t);
        }
    };
    let brand = Brand::of_account(&app, handoff.session.account).await;
    let context = context! {
        lang => t.lang,
        nonce => nonce.as_str(),
        t => Serde(t),
        prefix => &app.path_prefix,
        token,
        handoff_url => url,
        // Made by the crate from the URL alone: no text of the request in it.
        qr_svg => Value::from_safe_string(svg),
        ..brand.context(t)
    };
    html::page(StatusCode::OK, "phone.html", context)
}

/// `GET /h/{hand-off token}`: the phone's "Continue here" page. Checks the token (signature and
/// expiry first, then with a read of the store: [`MagicLinks::check_handoff`]) and consumes
/// nothing, so a used or expired hand-off, or one of a session that has ended, shows its
/// refusal page at once.
///
/// [`MagicLinks::check_handoff`]: magic_link::MagicLinks::check_handoff
pub(crate) async fn open<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    let t = i18n::for_request(&headers);
    if let Err(err) = app.links.check_handoff(&token).await {
        return Problem::of_handoff_error(&err).page(&nonce, t);
    }
    let context = context! { lang => t.lang, nonce => nonce.as_str(), t => Serde(t) };
    html::page(StatusCode::OK, "handoff.html", context)
}

/// `POST /h/{hand-off token}`: "Continue here". Accepts the hand-off (once) and redirects to
/// this device's own flow page for the session; a used or expired hand-off, or one of a session
/// that has ended, gets its refusal page.
pub(crate) async fn accept<S: LinkStore>(
    State(app): State<AppState<S>>,
    Token(token): Token,
    Extension(nonce): Extension<CspNonce>,
    headers: HeaderMap,
) -> Response {
    match app.links.accept_handoff(&token).await {
        Ok(accepted) => Redirect::to(&format!("{}/s/{}", app.path_prefix, accepted.session_token))
            .into_response(),
        Err(err) => Problem::of_handoff_error(&err).page(&nonce, i18n::for_request(&headers)),
    }
}
