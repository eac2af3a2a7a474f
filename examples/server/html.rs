//! HTML: the templates in `assets/`, and the security headers every response carries.
//!
//! Pages are [minijinja](https://docs.rs/minijinja) templates, compiled into the binary with
//! `include_str!`. Every value a template prints is HTML-escaped unless it is one of the
//! trusted assets below (the stylesheet and the scripts, inlined so that the page's CSP nonce
//! covers them and nothing else).

use std::sync::LazyLock;

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use magic_link::returns::ReturnOrigin;
use minijinja::{escape_formatter, AutoEscape, Environment, UndefinedBehavior, Value};

use crate::errors::log_error;

/// The templates, by the name they are rendered (and extended, and included) by.
const TEMPLATES: [(&str, &str); 15] = [
    ("layout.html", include_str!("assets/layout.html")),
    ("landing.html", include_str!("assets/landing.html")),
    ("flow.html", include_str!("assets/flow.html")),
    ("done.html", include_str!("assets/done.html")),
    ("ended.html", include_str!("assets/ended.html")),
    ("problem.html", include_str!("assets/problem.html")),
    ("phone.html", include_str!("assets/phone.html")),
    ("handoff.html", include_str!("assets/handoff.html")),
    ("dashboard.html", include_str!("assets/dashboard.html")),
    (
        "dashboard-credits.html",
        include_str!("assets/dashboard-credits.html"),
    ),
    (
        "dashboard-links.html",
        include_str!("assets/dashboard-links.html"),
    ),
    (
        "dashboard-webhooks.html",
        include_str!("assets/dashboard-webhooks.html"),
    ),
    ("verify-now.html", include_str!("assets/verify-now.html")),
    ("help.html", include_str!("assets/help.html")),
    ("return.html", include_str!("assets/return.html")),
];

/// The stylesheet and scripts, inserted as they are (never escaped) where the templates name them.
const ASSETS: [(&str, &str); 5] = [
    ("style_css", include_str!("assets/style.css")),
    ("submit_once_js", include_str!("assets/submit-once.js")),
    ("view_beacon_js", include_str!("assets/view-beacon.js")),
    ("dashboard_js", include_str!("assets/dashboard.js")),
    ("flow_live_js", include_str!("assets/flow-live.js")),
];

/// The compiled templates. [`check`] compiles them at start-up, so a broken template stops the
/// server before it listens, never a request.
static ENVIRONMENT: LazyLock<Environment<'static>> =
    LazyLock::new(|| environment().expect("the templates compiled at start-up (html::check)"));

fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    // A misspelt name is an error, not an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if *state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            Ok(out.write_str(&escape(text))?)
        }
        _ => escape_formatter(out, state, value),
    });
    for (name, source) in TEMPLATES {
        env.add_template(name, source)?;
    }
    for (name, source) in ASSETS {
        env.add_global(name, Value::from_safe_string(source.to_owned()));
    }
    Ok(env)
}

/// Compiles every template, or says which one is broken.
pub(crate) fn check() -> Result<(), minijinja::Error> {
    environment().map(drop)
}

/// Escapes text for HTML element content and quoted attribute values.
///
/// (minijinja's own escaping also turns `/` into `&#x2f;`, which is valid but makes every URL
/// in the pages unreadable; these five characters are the ones that matter there.)
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A template that failed to render (a bug: a name it uses is missing from its context).
#[derive(Debug)]
pub(crate) struct RenderError(minijinja::Error);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rendering a template failed: {}", self.0)
    }
}

impl std::error::Error for RenderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl IntoResponse for RenderError {
    fn into_response(self) -> Response {
        log_error("html", &self);
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
    }
}

/// Renders the template `name` with `context` (build it with [`minijinja::context!`]).
pub(crate) fn render(name: &str, context: Value) -> Result<String, RenderError> {
    ENVIRONMENT
        .get_template(name)
        .and_then(|template| template.render(context))
        .map_err(RenderError)
}

/// A whole page, with its status.
pub(crate) fn page(status: StatusCode, name: &str, context: Value) -> Response {
    match render(name, context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => err.into_response(),
    }
}

/// The per-response nonce that lets this response's inline `<style>` and `<script>` run under
/// the Content Security Policy, and nothing else.
#[derive(Clone, Debug, Default)]
pub(crate) struct CspNonce(String);

impl CspNonce {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Origins besides this server's that a page's forms may end up at: a handler puts it in its
/// response's extensions, and [`security_headers`] adds them to the page's CSP `form-action`.
/// The flow page needs it when its link has a return URL: completing or quitting answers with
/// a redirect there, and browsers check a form's redirects against `form-action` too.
#[derive(Clone, Debug, Default)]
pub(crate) struct FormTargets(pub(crate) Vec<ReturnOrigin>);

/// Adds the security headers to every response, and a fresh CSP nonce to every request.
///
/// - `Content-Security-Policy`: nothing loads from anywhere but this server; inline scripts and
///   styles run only with this response's nonce; forms post only here; no framing.
/// - `Referrer-Policy: no-referrer`: link and session tokens in URLs never leak to other sites.
/// - `Cache-Control: no-store` unless the handler chose otherwise: pages show live state and
///   carry tokens.
pub(crate) async fn security_headers(mut req: Request, next: Next) -> Response {
    // 122 random bits from the operating system's generator, hex.
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    req.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut res = next.run(req).await;
    // Validated origins (`scheme://host[:port]`): no space, quote or `;` in them.
    let form_targets: String = res
        .extensions()
        .get::<FormTargets>()
        .map(|targets| targets.0.iter().map(|o| format!(" {o}")).collect())
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'{form_targets}; \
         base-uri 'none'; frame-ancestors 'none'"
    );
    let headers = res.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("geolocation=(), microphone=(), payment=()"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}
