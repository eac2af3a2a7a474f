//! HTML helpers: escaping, the page layout, and the security headers every response carries.

use axum::extract::Request;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn esc(text: &str) -> String {
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

/// The per-response nonce that lets this response's inline `<style>` and `<script>` run under
/// the Content Security Policy, and nothing else.
#[derive(Clone, Debug)]
pub(crate) struct CspNonce(pub(crate) String);

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
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
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

/// A whole page: `<head>` with the shared stylesheet, then `body`.
pub(crate) fn page(nonce: &CspNonce, lang: &str, title: &str, body: &str) -> Html<String> {
    page_with_script(nonce, lang, title, body, "")
}

/// A whole page with an inline script, run under the page's nonce.
pub(crate) fn page_with_script(
    nonce: &CspNonce,
    lang: &str,
    title: &str,
    body: &str,
    script: &str,
) -> Html<String> {
    let nonce = esc(&nonce.0);
    let script = if script.is_empty() {
        String::new()
    } else {
        format!("<script nonce=\"{nonce}\">{script}</script>")
    };
    Html(format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style nonce=\"{nonce}\">{STYLE}</style></head>\
         <body>{body}{script}</body></html>",
        lang = esc(lang),
        title = esc(title),
    ))
}

/// A page with a status code.
pub(crate) fn with_status(status: axum::http::StatusCode, page: Html<String>) -> Response {
    (status, page).into_response()
}

const STYLE: &str = r#"
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bg:#f5f7fa;--card:#fff;--accent:#1d4ed8;--ok:#047857;--bad:#b91c1c;--warn:#b45309}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
header.top{background:#102a43;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
header.top h1{font-size:1.15rem;margin:0}
header.top .sub{color:#bcccdc;font-size:.85rem}
main{max-width:1200px;margin:0 auto;padding:1.2rem}
main.narrow{max-width:560px;padding-top:3rem}
main.wide{max-width:1500px}
.layout{display:grid;grid-template-columns:minmax(300px,380px) minmax(0,1fr);gap:1.2rem;align-items:start}
@media (max-width:900px){.layout{grid-template-columns:minmax(0,1fr)}}
.inline input[type=number]{width:7em}
h3{font-size:.95rem;margin:1rem 0 .3rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1.2rem 1.4rem;margin-bottom:1.2rem}
h2{font-size:1.05rem;margin:0 0 .8rem}
label{display:block;font-weight:600;font-size:.85rem;margin:.6rem 0 .2rem}
input[type=text],input[type=number],input[type=url],input[type=password],input[type=datetime-local],select,textarea{font:inherit;padding:.4rem .5rem;border:1px solid #9fb3c8;border-radius:6px;width:100%;background:#fff}
textarea{font:12px/1.4 ui-monospace,monospace;resize:vertical}
.row{display:flex;gap:1rem;flex-wrap:wrap}
.row>*{flex:1 1 160px}
.inline{display:flex;gap:.8rem;align-items:center;flex-wrap:wrap;font-weight:400}
.inline label{display:inline;font-weight:400;margin:0}
button,.button{font:inherit;font-weight:600;border:0;border-radius:6px;padding:.45rem .9rem;background:var(--accent);color:#fff;cursor:pointer;text-decoration:none;display:inline-block}
button.secondary{background:#e4e7eb;color:var(--fg)}
button.danger{background:var(--bad)}
button.big,.button.big{font-size:1.1rem;padding:.75rem 1.6rem;width:100%}
button:disabled{opacity:.6;cursor:default}
.error{color:var(--bad);font-weight:600;min-height:1.2em}
.note{color:var(--muted);font-size:.85rem}
.stats{display:flex;gap:1.2rem;flex-wrap:wrap}
.stat b{display:block;font-size:1.3rem}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:.5rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.75rem;text-transform:uppercase;color:var(--muted)}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;font-size:.78rem;font-weight:600;background:#e4e7eb}
.badge.active,.badge.approved{background:#d1fae5;color:var(--ok)}
.badge.exhausted,.badge.expired,.badge.started,.badge.needs_review{background:#fef3c7;color:var(--warn)}
.badge.deactivated,.badge.denied,.badge.abandoned{background:#fee2e2;color:var(--bad)}
.share{display:grid;grid-template-columns:150px 1fr;gap:1rem;align-items:start;margin-top:.6rem}
.share img{width:150px;height:150px;border:1px solid var(--line);border-radius:6px}
.copyrow{display:flex;gap:.4rem;margin-bottom:.4rem}
.copyrow input,.copyrow textarea{flex:1}
details{margin-top:.4rem}
summary{cursor:pointer;color:var(--accent);font-weight:600}
.verify-now{display:inline-block;padding:.6em 1.2em;background:#1d4ed8;color:#fff;border-radius:6px;text-decoration:none;font-weight:600}
.steps{padding-left:1.2rem}
.steps li{margin:.3rem 0}
.step{border:1px dashed #9fb3c8;border-radius:8px;padding:.8rem;margin:.8rem 0}
.center{text-align:center}
.big-icon{font-size:3rem;line-height:1}
.muted{color:var(--muted)}
"#;
