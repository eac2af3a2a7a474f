//! What the service answers when something is refused or fails: JSON errors for the owner's
//! API, pages with the right status for the person verifying, and the log line for the
//! operator.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use magic_link::tokens::TokenError;
use magic_link::{Error, InvalidInput, Rejection};
use minijinja::context;

use crate::brand::Brand;
use crate::html::{self, CspNonce, RenderError};
use crate::i18n::{self, Texts};

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

    /// 422: a well-formed request with a value the service refuses.
    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404, for an unknown id (and for one that is not even an id).
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "not found")
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
                    Rejection::NotUnderReview => (StatusCode::CONFLICT, "not_under_review"),
                    Rejection::ReviewConflict => (StatusCode::CONFLICT, "review_conflict"),
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

impl From<RenderError> for ApiError {
    fn from(err: RenderError) -> Self {
        log_error("html", &err);
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
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
        InvalidInput::UnknownEventType => "unknown_event_type",
        InvalidInput::NoEventTypes => "no_event_types",
        InvalidInput::InvalidDecision => "invalid_decision",
        InvalidInput::InvalidReturnUrl => "invalid_return_url",
        InvalidInput::InvalidReturnOrigin => "invalid_return_origin",
        InvalidInput::ReturnOriginNotAllowed => "return_origin_not_allowed",
        InvalidInput::InvalidDisplayName { .. } => "invalid_display_name",
        InvalidInput::TooManyReturnOrigins { .. } => "too_many_return_origins",
        InvalidInput::InvalidReference { .. } => "invalid_reference",
        InvalidInput::InvalidMetadata { .. } => "invalid_metadata",
        _ => "invalid_input",
    }
}

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
    /// Too many starts from this client: 429, temporary (the rate limit sets `Retry-After`).
    TooManyRequests,
    /// A start without the landing page's form token, or with one that is stale or was minted
    /// for another link or browser: 400, with a link back to the landing page. Nothing started.
    FormRejected,
    /// A hand-off URL opened a second time: 410 Gone.
    HandoffUsed,
    /// A hand-off URL past its ten minutes: 410 Gone.
    HandoffExpired,
    /// A hand-off of a session that has ended (completed, abandoned or timed out): 410 Gone.
    SessionEnded,
}

impl Problem {
    pub(crate) fn of_rejection(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Exhausted => Self::Used,
            Rejection::Expired => Self::Expired,
            Rejection::Deactivated => Self::Deactivated,
            Rejection::NoCredits => Self::NoCredits,
            Rejection::NotFound => Self::NotFound,
            _ => Self::Unavailable,
        }
    }

    /// The problem of a failed call on a link token; backend failures are logged here.
    pub(crate) fn of_error(err: &Error) -> Self {
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

    /// The problem of a refused or failed hand-off (on either device).
    pub(crate) fn of_handoff_error(err: &Error) -> Self {
        match err {
            Error::Rejected(Rejection::HandoffUsed) => Self::HandoffUsed,
            Error::Rejected(
                Rejection::SessionCompleted
                | Rejection::SessionAbandoned
                | Rejection::SessionExpired,
            ) => Self::SessionEnded,
            Error::InvalidToken(TokenError::Expired) => Self::HandoffExpired,
            err => Self::of_error(err),
        }
    }

    /// The problem of a failed call on a session token: like [`of_error`](Self::of_error), but
    /// an expired token is a session that timed out.
    pub(crate) fn of_session_error(err: &Error) -> Self {
        match err {
            Error::InvalidToken(TokenError::Expired) => Self::SessionExpired,
            err => Self::of_error(err),
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Used
            | Self::Expired
            | Self::Deactivated
            | Self::SessionExpired
            | Self::HandoffUsed
            | Self::HandoffExpired
            | Self::SessionEnded => StatusCode::GONE,
            Self::NoCredits | Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::BadRequest | Self::FormRejected => StatusCode::BAD_REQUEST,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
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
            Self::TooManyRequests => "too_many_requests",
            Self::FormRejected => "form_rejected",
            Self::HandoffUsed => "handoff_used",
            Self::HandoffExpired => "handoff_expired",
            Self::SessionEnded => "session_ended",
        }
    }

    /// Temporary: worth trying again in a minute.
    fn is_temporary(self) -> bool {
        matches!(
            self,
            Self::NoCredits | Self::Unavailable | Self::TooManyRequests
        )
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
            Self::TooManyRequests => (t.busy_title, t.busy_body),
            Self::FormRejected => (t.form_title, t.form_body),
            Self::HandoffUsed => (t.handoff_used_title, t.handoff_refused_body),
            Self::HandoffExpired => (t.handoff_expired_title, t.handoff_refused_body),
            Self::SessionEnded => (t.ended_title, t.ended_body),
        }
    }

    /// The page that says what went wrong, in `t`'s language, with its status (and
    /// `Retry-After` when it is temporary), for a visitor whose account is not known (a forged
    /// or malformed token): under the neutral brand.
    pub(crate) fn page(self, nonce: &CspNonce, t: &Texts) -> Response {
        self.page_for(nonce, t, &Brand::neutral(), None)
    }

    /// [`page`](Self::page) with a link back to where the person can carry on: `back` is its
    /// URL, labelled "Back to the verification page".
    pub(crate) fn page_with_link(
        self,
        nonce: &CspNonce,
        t: &Texts,
        back: Option<&str>,
    ) -> Response {
        self.page_for(nonce, t, &Brand::neutral(), back)
    }

    /// The page under the account's `brand` (its display name and "Get help" link), with an
    /// optional link back.
    pub(crate) fn page_for(
        self,
        nonce: &CspNonce,
        t: &Texts,
        brand: &Brand,
        back: Option<&str>,
    ) -> Response {
        let (title, body) = self.texts(t);
        // An hourglass when waiting helps, a warning sign otherwise.
        let icon = if self.is_temporary() {
            "\u{23F3}"
        } else {
            "\u{26A0}"
        };
        let context = context! {
            lang => t.lang,
            nonce => nonce.as_str(),
            problem => self.name(),
            icon,
            title,
            body,
            back,
            back_text => t.back_to_start,
            ..brand.context(t)
        };
        let mut res = html::page(self.status(), "problem.html", context);
        if self.is_temporary() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
        }
        res
    }
}

/// The fallback for unknown routes: a JSON error under `/api/`, the "not valid" page elsewhere.
pub(crate) async fn not_found(uri: Uri, Extension(nonce): Extension<CspNonce>) -> Response {
    if uri.path().starts_with("/api/") {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint").into_response()
    } else {
        Problem::NotFound.page(&nonce, &i18n::EN)
    }
}

/// The fallback for a known route with a method it does not take.
pub(crate) async fn method_not_allowed(uri: Uri) -> Response {
    let status = StatusCode::METHOD_NOT_ALLOWED;
    if uri.path().starts_with("/api/") {
        ApiError::new(status, "method_not_allowed", "method not allowed").into_response()
    } else {
        (status, "method not allowed").into_response()
    }
}
