//! What the handlers take from a request: who is asking ([`Owner`]), and typed path, query and
//! body values whose rejections answer the way the rest of the service does (JSON errors under
//! `/api/`, the "not valid" page for the person verifying).

use std::convert::Infallible;
use std::str::FromStr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use magic_link::AccountId;

use crate::errors::{ApiError, Problem};
use crate::html::CspNonce;
use crate::i18n;
use crate::AppState;

/// The account owner making a dashboard or API request.
///
/// This demo has no login: every owner request acts for the one configured account. In a real
/// service, authenticate the request here (a session cookie, an API key) and resolve the
/// account from it. Every owner handler takes the account from this extractor only, never from
/// the request, so one account can never see or change another's links.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner(pub(crate) AccountId);

impl<S: Send + Sync> FromRequestParts<AppState<S>> for Owner {
    type Rejection = Infallible;

    async fn from_request_parts(
        _parts: &mut Parts,
        app: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(app.account))
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

/// An id in the path (a [`LinkId`](magic_link::LinkId), an
/// [`EventId`](magic_link::EventId)); anything that is not one is a 404, as an unknown id is.
pub(crate) struct ApiId<T>(pub(crate) T);

impl<S: Send + Sync, T: FromStr> FromRequestParts<S> for ApiId<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::not_found())?;
        id.parse().map(Self).map_err(|_| ApiError::not_found())
    }
}

/// A link or session token in the path. One that is not even UTF-8 gets the same 404 page as a
/// forged one.
pub(crate) struct Token(pub(crate) String);

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
                    .unwrap_or_default();
                let t = i18n::for_request(&parts.headers);
                Err(Problem::NotFound.page(&nonce, t))
            }
        }
    }
}
