//! The account owner's dashboard: create links, share them, watch their sessions live,
//! deactivate them, top up credits.
//!
//! The page is rendered here; its script calls the JSON API for every change and polls
//! `/dashboard/live` (credits and links, rendered here too, so all escaping stays on the server)
//! every two seconds, swapping in what changed.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use magic_link::clock::Clock;
use magic_link::store::{LinkStore, WebhookStore};
use magic_link::{Flow, Link, LinkStatus, Outcome, Page, Session, SessionStatus, UsageLimit};

use crate::api::{embed_snippet, link_url, ApiError};
use crate::html::{esc, page_with_script, CspNonce};
use crate::webhooks;
use crate::{AppState, Owner};

/// How many links the dashboard shows (the newest); the API pages through all of them.
const SHOWN_LINKS: usize = 200;
/// How many sessions of a link the dashboard shows (the first); the API pages through all.
const SHOWN_SESSIONS: usize = 100;

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn flow_name(flow: Flow) -> &'static str {
    match flow {
        Flow::Document => "Document",
        Flow::Selfie => "Selfie",
        Flow::DocumentAndSelfie => "Document + selfie",
    }
}

fn limit_name(limit: UsageLimit) -> String {
    match limit {
        UsageLimit::Single => "Single-use".to_owned(),
        UsageLimit::Multi(n) => format!("{n} uses"),
        UsageLimit::Unlimited => "Unlimited".to_owned(),
    }
}

fn status_name(status: LinkStatus) -> &'static str {
    match status {
        LinkStatus::Active => "active",
        LinkStatus::Deactivated => "deactivated",
        LinkStatus::Expired => "expired",
        LinkStatus::Exhausted => "exhausted",
    }
}

/// The live parts of the dashboard, rendered here: credits, links with their sessions, and
/// webhooks.
struct Live {
    credits: String,
    links: String,
    webhooks: String,
}

async fn live_parts<S: WebhookStore>(
    app: &AppState<S>,
    account: magic_link::AccountId,
) -> Result<Live, magic_link::Error> {
    let credits = app.links.account(account).await?;
    let credits_html = format!(
        "<div class=\"stats\">\
         <div class=\"stat\"><b id=\"balance\">{}</b>credits</div>\
         <div class=\"stat\"><b id=\"held\">{}</b>held by open sessions</div>\
         <div class=\"stat\"><b id=\"available\">{}</b>available</div></div>{}",
        credits.balance,
        credits.held,
        credits.available(),
        if credits.available() == 0 {
            "<p class=\"error\">No credit available: links answer \
             \"temporarily unavailable\" (503) until you top up.</p>"
        } else {
            ""
        }
    );

    // All links, newest first, up to SHOWN_LINKS.
    let mut links: Vec<Link> = Vec::new();
    let mut page = Page::first(magic_link::Page::MAX_LIMIT);
    loop {
        let got = app.links.links(account, page).await?;
        links.extend(got.items);
        match got.next {
            Some(next) if links.len() < 10 * SHOWN_LINKS => page.after = next,
            _ => break,
        }
    }
    links.reverse();
    links.truncate(SHOWN_LINKS);

    let now = app.links.clock().now();
    let mut rows = String::new();
    for link in &links {
        let sessions = if link.uses > 0 {
            app.links
                .sessions(account, link.id, Page::first(SHOWN_SESSIONS))
                .await?
                .items
        } else {
            Vec::new()
        };
        rows.push_str(&link_row(app, link, &sessions, now));
    }
    let links_html = if links.is_empty() {
        "<p class=\"note\" id=\"no-links\">No links yet. Create one above.</p>".to_owned()
    } else {
        format!(
            "<table id=\"links-table\"><thead><tr><th>Name</th><th>Flow</th><th>Limit</th>\
             <th>Uses</th><th>Remaining</th><th>Status</th><th>Expires</th><th></th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    Ok(Live {
        credits: credits_html,
        links: links_html,
        webhooks: webhooks::live_part(app, account).await?,
    })
}

fn link_row<S: LinkStore>(
    app: &AppState<S>,
    link: &Link,
    sessions: &[Session],
    now: DateTime<Utc>,
) -> String {
    let id = link.id;
    let status = status_name(link.status(now));
    let url = link_url(app, link);
    let remaining = link
        .remaining()
        .map_or_else(|| "&infin;".to_owned(), |r| r.to_string());
    let expires = link.expires_at.map_or_else(|| "never".to_owned(), time);
    let action = if link.deactivated_at.is_none() {
        format!(
            "<button type=\"button\" class=\"danger\" data-deactivate=\"{id}\">Deactivate</button>"
        )
    } else {
        String::new()
    };
    let completed = sessions
        .iter()
        .filter(|s| matches!(s.status, SessionStatus::Completed { .. }))
        .count();
    let open = sessions.iter().filter(|s| s.is_open()).count();
    let session_rows: String = sessions.iter().map(session_row).collect();
    let sessions_html = if sessions.is_empty() {
        "<p class=\"note\">No sessions yet. Opening the link starts none; pressing \
         \"Start verification\" does.</p>"
            .to_owned()
    } else {
        format!(
            "<table class=\"sessions\"><thead><tr><th>#</th><th>Status</th><th>Started</th>\
             <th>Finished</th></tr></thead><tbody>{session_rows}</tbody></table>"
        )
    };
    format!(
        "<tr data-link-id=\"{id}\" data-status=\"{status}\">\
         <td><b class=\"link-name\">{name}</b><br><span class=\"note\">{lang}</span></td>\
         <td>{flow}</td><td>{limit}</td><td class=\"uses\">{uses}</td>\
         <td class=\"remaining\">{remaining}</td>\
         <td><span class=\"badge {status} link-status\">{status}</span></td>\
         <td>{expires}</td><td>{action}</td></tr>\
         <tr data-details-for=\"{id}\"><td colspan=\"8\">\
         <details data-id=\"{id}\"><summary>Share and sessions \
         (<span class=\"session-summary\">{started} started, {open} open, {completed} completed</span>)</summary>\
         <div class=\"share\"><div><img src=\"{prefix}/api/links/{id}/qr.svg\" alt=\"QR code of the link\">\
         <p class=\"note\"><a href=\"{prefix}/api/links/{id}/qr.png\" download=\"link-{id}.png\">PNG</a> \
         &middot; <a href=\"{prefix}/api/links/{id}/qr.svg\" download=\"link-{id}.svg\">SVG</a></p></div>\
         <div><label for=\"url-{id}\">Link URL</label><div class=\"copyrow\">\
         <input type=\"text\" readonly id=\"url-{id}\" class=\"link-url\" value=\"{url}\">\
         <button type=\"button\" class=\"secondary\" data-copy=\"url-{id}\">Copy</button></div>\
         <label for=\"embed-{id}\">&ldquo;Verify now&rdquo; button for your site</label><div class=\"copyrow\">\
         <textarea readonly rows=\"3\" id=\"embed-{id}\">{embed}</textarea>\
         <button type=\"button\" class=\"secondary\" data-copy=\"embed-{id}\">Copy</button></div>\
         <p class=\"note\">Preview: <a class=\"verify-now\" href=\"{url}\" rel=\"noreferrer\" \
         target=\"_blank\">Verify now</a></p></div></div>\
         <h3>Sessions</h3>{sessions_html}</details></td></tr>",
        name = esc(&link.name),
        lang = esc(link.language.as_str()),
        flow = flow_name(link.flow),
        limit = limit_name(link.limit),
        uses = link.uses,
        started = sessions.len(),
        prefix = esc(&app.path_prefix),
        url = esc(&url),
        embed = esc(&embed_snippet(&url)),
    )
}

fn session_row(session: &Session) -> String {
    let (class, label, finished) = match session.status {
        SessionStatus::Started => ("started", "started".to_owned(), String::new()),
        SessionStatus::Completed { outcome, at } => {
            let class = match outcome {
                Outcome::Approved => "approved",
                Outcome::Denied => "denied",
                _ => "needs_review",
            };
            (class, format!("completed: {}", outcome.as_str()), time(at))
        }
        SessionStatus::Abandoned { reason, at } => {
            let label = match reason {
                magic_link::AbandonReason::Expired => "abandoned: timed out",
                magic_link::AbandonReason::Explicit => "abandoned",
            };
            ("abandoned", label.to_owned(), time(at))
        }
    };
    format!(
        "<tr data-session-id=\"{id}\"><td>{n}</td>\
         <td><span class=\"badge {class} session-status\">{label}</span></td>\
         <td>{started}</td><td>{finished}</td></tr>",
        id = session.id,
        n = session.number,
        started = time(session.started_at),
    )
}

/// `GET /dashboard/live`: the live parts, as HTML rendered (and escaped) here.
pub(crate) async fn live<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Response, ApiError> {
    let live = live_parts(&app, account).await?;
    let parts = serde_json::json!({
        "credits": live.credits,
        "links": live.links,
        "webhook-live": live.webhooks,
    });
    Ok(Json(parts).into_response())
}

/// `GET /dashboard`.
pub(crate) async fn page<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Html<String>, ApiError> {
    let Live {
        credits,
        links,
        webhooks: _,
    } = live_parts(&app, account).await?;
    let body = format!(
        "<header class=\"top\"><h1>magic-link &middot; verification service demo</h1>\
         <span class=\"sub\">account {account} &middot; store: {store}</span></header>\
         <main id=\"dashboard\" class=\"wide\" data-prefix=\"{prefix}\"><div class=\"layout\"><div>\
         <section class=\"card\"><h2>Credits</h2><div id=\"credits\">{credits}</div>\
         <form id=\"topup-form\" class=\"inline\" autocomplete=\"off\">\
         <label for=\"topup-amount\">Add credits</label>\
         <input type=\"number\" id=\"topup-amount\" min=\"1\" max=\"1000000\" value=\"10\" required>\
         <button type=\"submit\" id=\"topup\">Top up</button></form>\
         <p class=\"note\">A started verification holds one credit; a completed one is billed it.</p>\
         <p class=\"error\" id=\"topup-error\" role=\"alert\"></p></section>\
         {create}{webhooks}</div>\
         <section class=\"card\"><h2>Links</h2><div id=\"links\">{links}</div></section>\
         </div>         </main>",
        store = esc(app.store_name),
        prefix = esc(&app.path_prefix),
        create = CREATE_FORM,
        webhooks = webhooks::FORM,
    );
    Ok(page_with_script(
        &nonce,
        "en",
        "Magic Links dashboard",
        &body,
        &format!("{SCRIPT}{}", webhooks::SCRIPT),
    ))
}

const CREATE_FORM: &str = r#"<section class="card"><h2>New link</h2>
<form id="create-form" autocomplete="off">
<div>
<div><label for="name">Name (internal)</label><input type="text" id="name" maxlength="200" placeholder="Spring onboarding" required></div>
<div><label for="flow">Verification flow</label><select id="flow">
<option value="document_and_selfie">Document and selfie</option>
<option value="document">Document only</option>
<option value="selfie">Selfie only</option></select></div>
<div><label for="language">Language (BCP 47)</label><input type="text" id="language" list="languages" value="en" required>
<datalist id="languages"><option value="en">English</option><option value="lt">Lietuvių</option></datalist></div>
</div>
<div>
<div><label>Usage limit</label><div class="inline">
<label><input type="radio" name="limit" value="single" id="limit-single" checked> Single-use</label>
<label><input type="radio" name="limit" value="multi" id="limit-multi"> Multi-use:</label>
<input type="number" id="uses" min="1" max="4294967295" value="5" aria-label="number of uses">
<label><input type="radio" name="limit" value="unlimited" id="limit-unlimited"> Unlimited</label></div></div>
<div><label for="expires">Expires (optional; your local time)</label><input type="datetime-local" id="expires"></div>
</div>
<p><button type="submit" id="create">Create link</button>
<span class="note">Limits and expiry are fixed once created: links are never extended, only deactivated.</span></p>
<p class="error" id="create-error" role="alert"></p>
</form></section>"#;

const SCRIPT: &str = r#"
(function(){
'use strict';
const $ = (id) => document.getElementById(id);
const P = $('dashboard').dataset.prefix;
const opened = {};
const last = {};
let focusLink = null;

async function api(method, path, body) {
  const init = {method, headers: {}};
  if (body !== undefined) { init.headers['content-type'] = 'application/json'; init.body = JSON.stringify(body); }
  const res = await fetch(P + path, init);
  let data = {};
  try { data = await res.json(); } catch (e) {}
  if (!res.ok) throw new Error(data.error || ('HTTP ' + res.status));
  return data;
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return 'topup-' + crypto.randomUUID();
  return 'topup-' + Date.now() + '-' + Math.random().toString(36).slice(2);
}

async function refresh() {
  let data;
  try {
    const res = await fetch(P + '/dashboard/live', {cache: 'no-store'});
    if (!res.ok) return;
    data = await res.json();
  } catch (e) { return; }
  for (const k of ['credits', 'links', 'webhook-live']) {
    if (last[k] === data[k]) continue;
    last[k] = data[k];
    const el = $(k);
    el.innerHTML = data[k];
    for (const d of el.querySelectorAll('details')) {
      if (opened[d.dataset.id]) d.open = true;
    }
  }
  if (focusLink) {
    const d = document.querySelector('details[data-id="' + focusLink + '"]');
    if (d) { d.open = true; opened[focusLink] = true; d.scrollIntoView({block: 'nearest'}); focusLink = null; }
  }
}

document.addEventListener('toggle', (e) => {
  if (e.target.tagName === 'DETAILS' && e.target.dataset.id) opened[e.target.dataset.id] = e.target.open;
}, true);

$('create-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('create-error').textContent = '';
  const kind = document.querySelector('input[name=limit]:checked').value;
  const body = {name: $('name').value, flow: $('flow').value, language: $('language').value.trim()};
  if (kind === 'multi') body.limit = {multi: Number($('uses').value)};
  else body.limit = kind;
  if ($('expires').value) {
    const at = new Date($('expires').value);
    if (isNaN(at)) { $('create-error').textContent = 'The expiry is not a valid date.'; return; }
    body.expires_at = at.toISOString();
  }
  $('create').disabled = true;
  try {
    const link = await api('POST', '/api/links', body);
    focusLink = link.id;
    $('name').value = '';
    await refresh();
  } catch (err) {
    $('create-error').textContent = err.message;
  } finally {
    $('create').disabled = false;
  }
});

let topupKey = newKey();
$('topup-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  $('topup-error').textContent = '';
  $('topup').disabled = true;
  try {
    await api('POST', '/api/credits', {amount: Number($('topup-amount').value), idempotency_key: topupKey});
    topupKey = newKey();
    await refresh();
  } catch (err) {
    $('topup-error').textContent = err.message;
  } finally {
    $('topup').disabled = false;
  }
});

document.addEventListener('click', async (e) => {
  const copy = e.target.closest('[data-copy]');
  if (copy) {
    const field = $(copy.dataset.copy);
    try { await navigator.clipboard.writeText(field.value); }
    catch (err) { field.select(); document.execCommand('copy'); }
    copy.textContent = 'Copied';
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
    return;
  }
  const off = e.target.closest('[data-deactivate]');
  if (off) {
    if (!off.dataset.armed) {
      off.dataset.armed = '1';
      off.textContent = 'Deactivate for good?';
      setTimeout(() => { delete off.dataset.armed; off.textContent = 'Deactivate'; }, 4000);
      return;
    }
    off.disabled = true;
    try { await api('POST', '/api/links/' + off.dataset.deactivate + '/deactivate'); }
    catch (err) { alert(err.message); }
    await refresh();
  }
});

window.dashboardRefresh = refresh;
refresh();
setInterval(refresh, 2000);
})();
"#;
