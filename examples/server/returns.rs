//! The demo return page, `GET /demo/return`: what the owner's site does when a verification
//! sends the person back to a link's return URL. It verifies the signed query with a
//! [`ReturnVerifier`] holding the account's return secrets (current and previous), as the
//! owner's site would with the secret shown on the dashboard, and shows the verified values or
//! why the query was refused (400).
//!
//! The return URL `{base URL}/demo/return` is allowed by default: the server's own origin is
//! the demo account's allowed return origin unless `RETURN_ORIGINS` says otherwise.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use magic_link::returns::{ReturnError, ReturnVerifier};
use magic_link::store::LinkStore;
use minijinja::context;

use crate::errors::log_error;
use crate::html::{self, CspNonce};
use crate::AppState;

/// A stable name of a verification failure, in the page's `data-error`.
fn error_code(err: ReturnError) -> &'static str {
    match err {
        ReturnError::Malformed => "malformed",
        ReturnError::MissingParameter(_) => "missing_parameter",
        ReturnError::DuplicateParameter(_) => "duplicate_parameter",
        ReturnError::SignatureNotLast => "signature_not_last",
        ReturnError::BadSignature => "bad_signature",
        ReturnError::InvalidParameter(_) => "invalid_parameter",
        ReturnError::TimestampTooOld => "timestamp_too_old",
        ReturnError::TimestampTooNew => "timestamp_too_new",
        _ => "invalid",
    }
}

/// `GET /demo/return?…&signature=…`: verifies the raw query (as the browser sent it, never
/// decoded and encoded again) against the account's return secrets.
pub(crate) async fn page<S: LinkStore>(
    State(app): State<AppState<S>>,
    Extension(nonce): Extension<CspNonce>,
    uri: Uri,
) -> Response {
    let secrets = match app.links.return_secrets(app.account).await {
        Ok(secrets) => secrets,
        Err(err) => {
            log_error("store", &err);
            None
        }
    };
    let query = uri.query().unwrap_or_default();
    let verified = match secrets {
        Some(secrets) => ReturnVerifier::new(secrets).verify(query),
        None => Err(ReturnError::BadSignature),
    };
    match verified {
        Ok(ret) => {
            let context = context! {
                lang => "en",
                nonce => nonce.as_str(),
                verified => true,
                session_id => ret.session.to_string(),
                link_id => ret.link.to_string(),
                reference => ret.reference.as_ref().map_or("", |r| r.as_str()),
                status => ret.status.as_str(),
                outcome => ret.outcome.map_or("(not sent)", |o| o.as_str()),
                timestamp => ret.timestamp,
            };
            html::page(StatusCode::OK, "return.html", context)
        }
        Err(err) => {
            let context = context! {
                lang => "en",
                nonce => nonce.as_str(),
                verified => false,
                error => err.to_string(),
                error_code => error_code(err),
            };
            html::page(StatusCode::BAD_REQUEST, "return.html", context)
        }
    }
}
