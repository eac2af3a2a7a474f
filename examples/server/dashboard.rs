//! The account owner's dashboard: create links, share them, watch their sessions live,
//! deactivate them, top up credits, set the webhook endpoint.
//!
//! The page is `assets/dashboard.html`; its script (`assets/dashboard.js`) calls the JSON API
//! for every change and polls `/dashboard/live` every two seconds for the live parts (credits,
//! links with their sessions, webhooks), rendered here from the same templates as the page, so
//! all escaping stays on the server. Each link's funnel (views, starts, outcomes) is a small
//! SVG bar chart drawn here too ([`Funnel`]), with text labels and `<title>`s.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use magic_link::clock::Clock;
use magic_link::store::WebhookStore;
use magic_link::webhooks::{DeliveryStatus, EventType};
use magic_link::{
    AbandonReason, AccountId, AccountProfile, Flow, Link, LinkStats, LinkStatus, Outcome, Page,
    Session, SessionStatus, UsageLimit,
};
use minijinja::context;
use minijinja::value::{Serde, Value};
use serde::Serialize;

use crate::api::verify_now_button;
use crate::errors::ApiError;
use crate::extract::Owner;
use crate::html::{self, CspNonce};
use crate::AppState;

/// How many links the dashboard shows (the newest); the API pages through all of them.
const SHOWN_LINKS: usize = 200;
/// How many sessions of a link the dashboard shows (the first); the API pages through all.
const SHOWN_SESSIONS: usize = 100;
/// How many failed deliveries the dashboard shows; the API lists more.
const SHOWN_FAILED: usize = 20;

/// What the live parts show: the context of `dashboard-*.html`.
#[derive(Debug, Serialize)]
struct Live {
    /// The path prefix of the service's URLs.
    prefix: String,
    credits: Credits,
    links: Vec<LinkRow>,
    endpoint: Option<EndpointState>,
    /// The checkboxes of the endpoint form.
    event_types: Vec<EventTypeBox>,
    failed: Vec<FailedDelivery>,
    inbox_url: String,
    received: Vec<ReceivedWebhook>,
}

#[derive(Debug, Serialize)]
struct Credits {
    balance: u64,
    held: u64,
    available: u64,
}

#[derive(Debug, Serialize)]
struct LinkRow {
    id: String,
    name: String,
    language: String,
    flow: &'static str,
    limit: String,
    uses: u64,
    remaining: String,
    status: &'static str,
    expires: String,
    can_deactivate: bool,
    /// Not redacted yet: the row offers to erase its reference and metadata.
    can_redact: bool,
    url: String,
    /// The owner's reference of the link ("" if none).
    reference: String,
    /// The owner's metadata, as `key=value` lines.
    metadata: Vec<String>,
    /// Where a finished session's browser goes ("" if nowhere).
    return_url: String,
    /// Where a dead link's visitors go ("" if nowhere).
    dead_link_url: String,
    /// The "Verify now" snippet, as text to copy.
    embed: String,
    sessions: Vec<SessionRow>,
    open: usize,
    completed: usize,
    funnel: Funnel,
}

/// A link's funnel as a horizontal bar chart: one bar per stage, its length in proportion to
/// the largest, its label and count as text beside it (so the chart reads without colour).
#[derive(Debug, Serialize)]
struct Funnel {
    /// The chart's accessible name, its `<title>`.
    summary: String,
    /// Completed per human view, as text ("" while there is no human view).
    conversion: String,
    /// The median time to complete, as text ("" while none completed).
    median: String,
    /// The SVG's height in pixels.
    height: u32,
    bars: Vec<FunnelBar>,
}

#[derive(Debug, Serialize)]
struct FunnelBar {
    label: &'static str,
    /// The bar's CSS class (its colour).
    class: &'static str,
    value: u64,
    /// The row's top, in pixels.
    y: u32,
    /// The bar's length, in pixels.
    width: u32,
}

impl Funnel {
    /// The longest bar. (The template puts the bars at x = 130, after the labels, in an SVG
    /// 360 pixels wide.)
    const BAR_MAX: u32 = 180;
    const ROW: u32 = 18;

    fn of(stats: &LinkStats) -> Self {
        let stages = [
            ("Views: people", "human", stats.views.human),
            ("Views: scanners", "scanner", stats.views.scanner),
            ("Views: unconfirmed", "unconfirmed", stats.views.unconfirmed),
            ("Starts", "starts", stats.uses),
            ("Approved", "approved", stats.completed.approved),
            ("Denied", "denied", stats.completed.denied),
            ("Needs review", "needs_review", stats.completed.needs_review),
            ("Abandoned", "abandoned", stats.abandoned),
            ("Expired", "expired", stats.expired),
        ];
        let max = stages.iter().map(|s| s.2).max().unwrap_or(0).max(1);
        let bars = stages
            .iter()
            .zip(0..)
            .map(|(&(label, class, value), row)| FunnelBar {
                label,
                class,
                value,
                y: row * Self::ROW,
                // In proportion; a count above zero shows at least a sliver.
                width: (u128::from(value) * u128::from(Self::BAR_MAX) / u128::from(max))
                    .try_into()
                    .unwrap_or(Self::BAR_MAX)
                    .max(u32::from(value > 0)),
            })
            .collect::<Vec<_>>();
        let summary = format!(
            "Funnel: {} views ({} people, {} scanners, {} unconfirmed), {} starts, {} completed              ({} approved, {} denied, {} needing review), {} abandoned, {} expired",
            stats.views.total(),
            stats.views.human,
            stats.views.scanner,
            stats.views.unconfirmed,
            stats.uses,
            stats.completed.total(),
            stats.completed.approved,
            stats.completed.denied,
            stats.completed.needs_review,
            stats.abandoned,
            stats.expired,
        );
        Self {
            summary,
            conversion: stats
                .conversion()
                .map_or_else(String::new, |c| format!("{:.0}%", c * 100.0)),
            median: stats
                .median_time_to_complete
                .map_or_else(String::new, |d| format!("{} s", d.as_secs())),
            height: bars.len() as u32 * Self::ROW,
            bars,
        }
    }
}

#[derive(Debug, Serialize)]
struct SessionRow {
    id: String,
    number: u64,
    /// The recipient's reference, for a session started from a personal URL ("" if none).
    reference: String,
    /// The badge's class.
    class: &'static str,
    label: String,
    started: String,
    finished: String,
    /// Completed needing review and not reviewed yet: the row offers the decision.
    can_review: bool,
    /// It has a reference: the row offers to erase it.
    can_redact: bool,
}

#[derive(Debug, Serialize)]
struct EndpointState {
    url: String,
    enabled: bool,
    /// The event types it receives, by name.
    event_types: Vec<&'static str>,
}

/// A checkbox of the endpoint form: an event type, checked if the endpoint receives it (all
/// of them while there is no endpoint).
#[derive(Debug, Serialize)]
struct EventTypeBox {
    name: &'static str,
    checked: bool,
}

#[derive(Debug, Serialize)]
struct FailedDelivery {
    event: String,
    attempts: u32,
    why: String,
}

#[derive(Debug, Serialize)]
struct ReceivedWebhook {
    at: String,
    id: String,
    kind: String,
    outcome: Option<String>,
    verified: bool,
    verdict: String,
}

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

/// Reads everything the live parts show.
async fn live<S: WebhookStore>(app: &AppState<S>, account: AccountId) -> Result<Live, ApiError> {
    let credits = app.links.account(account).await?;

    // All links, newest first, up to SHOWN_LINKS.
    let mut links: Vec<Link> = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
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
    let mut rows = Vec::with_capacity(links.len());
    for link in &links {
        let sessions = if link.uses > 0 {
            app.links
                .sessions(account, link.id, Page::first(SHOWN_SESSIONS))
                .await?
                .items
        } else {
            Vec::new()
        };
        let stats = app.links.stats(account, link.id).await?;
        rows.push(link_row(app, link, &sessions, &stats, now)?);
    }

    let endpoint = app.links.webhook_endpoint(account).await?;
    let failed = app
        .links
        .failed_deliveries(account, Page::first(SHOWN_FAILED))
        .await?
        .items;
    Ok(Live {
        prefix: app.path_prefix.clone(),
        credits: Credits {
            balance: credits.balance,
            held: credits.held,
            available: credits.available(),
        },
        links: rows,
        event_types: EventType::ALL
            .iter()
            .map(|&t| EventTypeBox {
                name: t.name(),
                checked: endpoint.as_ref().is_none_or(|e| e.receives(t)),
            })
            .collect(),
        endpoint: endpoint.map(|e| EndpointState {
            url: e.url().to_owned(),
            enabled: e.is_enabled(),
            event_types: e.event_types().iter().map(|t| t.name()).collect(),
        }),
        failed: failed
            .into_iter()
            .map(|d| FailedDelivery {
                event: d.event.to_string(),
                attempts: d.attempts,
                why: match d.status {
                    DeliveryStatus::Failed { reason, .. } => format!("{reason:?}"),
                    _ => String::new(),
                },
            })
            .collect(),
        inbox_url: format!("{}/demo/webhook-inbox", app.base_url),
        received: app
            .inbox
            .entries()
            .into_iter()
            .map(|r| ReceivedWebhook {
                at: r.at.format("%H:%M:%S").to_string(),
                verified: r.verified.is_ok(),
                verdict: match r.verified {
                    Ok(()) => "signature verified".to_owned(),
                    Err(why) => format!("rejected: {why}"),
                },
                id: r.id,
                kind: r.kind,
                outcome: r.outcome,
            })
            .collect(),
    })
}

fn link_row<S: WebhookStore>(
    app: &AppState<S>,
    link: &Link,
    sessions: &[Session],
    stats: &LinkStats,
    now: DateTime<Utc>,
) -> Result<LinkRow, ApiError> {
    let url = app.links.url_of(link);
    Ok(LinkRow {
        id: link.id.to_string(),
        name: link.name.clone(),
        language: link.language.as_str().to_owned(),
        flow: flow_name(link.flow),
        limit: limit_name(link.limit),
        uses: link.uses,
        remaining: link
            .remaining()
            .map_or_else(|| "\u{221E}".to_owned(), |r| r.to_string()),
        status: status_name(link.status(now)),
        expires: link.expires_at.map_or_else(|| "never".to_owned(), time),
        can_deactivate: link.deactivated_at.is_none(),
        can_redact: link.redacted_at.is_none(),
        embed: verify_now_button(&url)?,
        url,
        reference: link
            .reference
            .as_ref()
            .map_or_else(String::new, |r| r.as_str().to_owned()),
        metadata: link
            .metadata
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect(),
        return_url: link
            .return_url
            .as_ref()
            .map_or_else(String::new, |u| u.as_str().to_owned()),
        dead_link_url: link
            .dead_link_url
            .as_ref()
            .map_or_else(String::new, |u| u.as_str().to_owned()),
        sessions: sessions.iter().map(session_row).collect(),
        open: sessions.iter().filter(|s| s.is_open()).count(),
        completed: sessions
            .iter()
            .filter(|s| matches!(s.status, SessionStatus::Completed { .. }))
            .count(),
        funnel: Funnel::of(stats),
    })
}

fn session_row(session: &Session) -> SessionRow {
    let (class, label, finished) = match session.status {
        SessionStatus::Started => ("started", "started".to_owned(), String::new()),
        SessionStatus::Completed { outcome, at } => {
            let class = match outcome {
                Outcome::Approved => "approved",
                Outcome::Denied => "denied",
                _ => "needs_review",
            };
            let label = match session.decision {
                Some(decision) => format!(
                    "completed: {}, reviewed: {}",
                    outcome.as_str(),
                    decision.as_str()
                ),
                None => format!("completed: {}", outcome.as_str()),
            };
            (class, label, time(at))
        }
        SessionStatus::Abandoned { reason, at } => {
            let label = match reason {
                AbandonReason::Expired => "abandoned: timed out",
                AbandonReason::Explicit => "abandoned",
            };
            ("abandoned", label.to_owned(), time(at))
        }
    };
    SessionRow {
        id: session.id.to_string(),
        number: session.number,
        reference: session
            .reference
            .as_ref()
            .map_or_else(String::new, |r| r.as_str().to_owned()),
        class,
        label,
        started: time(session.started_at),
        finished,
        can_review: session.awaits_review(),
        can_redact: session.reference.is_some(),
    }
}

/// The account settings form: the public profile and the return settings, as the owner last
/// saved them. (Not live: only the owner changes them, from this page.)
#[derive(Debug, Serialize)]
struct Settings {
    display_name: String,
    support_url: String,
    /// One origin per line.
    return_origins: String,
    return_outcome: bool,
    /// Whether the account has a return secret (it is shown only when made).
    has_secret: bool,
}

impl Settings {
    fn of(profile: &AccountProfile, has_secret: bool) -> Self {
        Self {
            display_name: profile.display_name.clone().unwrap_or_default(),
            support_url: profile
                .support_url
                .as_ref()
                .map_or_else(String::new, |u| u.as_str().to_owned()),
            return_origins: profile
                .return_origins
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            return_outcome: profile.return_outcome,
            has_secret,
        }
    }
}

/// `GET /dashboard`.
pub(crate) async fn page<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
    Extension(nonce): Extension<CspNonce>,
) -> Result<Response, ApiError> {
    let live = live(&app, account).await?;
    let profile = app.links.account(account).await?.profile;
    let has_secret = app.links.return_secrets(account).await?.is_some();
    let context = context! {
        lang => "en",
        nonce => nonce.as_str(),
        account => account.to_string(),
        store => app.store_name,
        settings => Serde(Settings::of(&profile, has_secret)),
        ..Value::from(Serde(&live))
    };
    Ok(html::page(StatusCode::OK, "dashboard.html", context))
}

/// `GET /dashboard/live`: the live parts, as HTML rendered (and escaped) here, by the id of
/// the element each replaces.
pub(crate) async fn live_parts<S: WebhookStore>(
    State(app): State<AppState<S>>,
    Owner(account): Owner,
) -> Result<Response, ApiError> {
    Ok(Json(parts(&app, account).await?).into_response())
}

/// The live parts, as HTML rendered (and escaped) here, by the id of the element each
/// replaces: what `/dashboard/live` answers and `/dashboard/events` sends (`live.rs`).
pub(crate) async fn parts<S: WebhookStore>(
    app: &AppState<S>,
    account: AccountId,
) -> Result<serde_json::Value, ApiError> {
    let live = Value::from(Serde(live(app, account).await?));
    Ok(serde_json::json!({
        "credits": html::render("dashboard-credits.html", live.clone())?,
        "links": html::render("dashboard-links.html", live.clone())?,
        "webhook-live": html::render("dashboard-webhooks.html", live)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(name: &str, live: &Live) -> String {
        html::render(name, Value::from(Serde(live))).expect("renders")
    }

    fn empty() -> Live {
        Live {
            prefix: String::new(),
            credits: Credits {
                balance: 5,
                held: 1,
                available: 4,
            },
            links: Vec::new(),
            endpoint: None,
            event_types: Vec::new(),
            failed: Vec::new(),
            inbox_url: "http://127.0.0.1:3000/demo/webhook-inbox".to_owned(),
            received: Vec::new(),
        }
    }

    fn link(id: &str, sessions: Vec<SessionRow>) -> LinkRow {
        LinkRow {
            id: id.to_owned(),
            name: "<b>Spring</b> & co".to_owned(),
            language: "lt".to_owned(),
            flow: "Selfie",
            limit: "2 uses".to_owned(),
            uses: 1,
            remaining: "1".to_owned(),
            status: "active",
            expires: "never".to_owned(),
            can_deactivate: sessions.is_empty(),
            can_redact: true,
            url: "http://127.0.0.1:3000/l/TOKEN".to_owned(),
            reference: "order-<42>".to_owned(),
            metadata: vec!["team=<retail>".to_owned()],
            return_url: String::new(),
            dead_link_url: String::new(),
            embed: "<a href=\"http://127.0.0.1:3000/l/TOKEN\">Verify now</a>".to_owned(),
            open: 0,
            completed: sessions.len(),
            sessions,
            funnel: Funnel::of(&LinkStats {
                link: magic_link::LinkId::new(),
                views: magic_link::funnel::ViewCounts {
                    human: 4,
                    scanner: 2,
                    unconfirmed: 1,
                },
                uses: 3,
                remaining: None,
                started: 0,
                completed: magic_link::OutcomeCounts {
                    approved: 1,
                    denied: 1,
                    needs_review: 0,
                },
                reviewed: magic_link::OutcomeCounts::default(),
                abandoned: 1,
                expired: 0,
                median_time_to_complete: Some(std::time::Duration::from_secs(75)),
            }),
        }
    }

    /// The branches the end-to-end tests seldom reach (no credit, failed deliveries, a
    /// rejected webhook, a link without sessions next to one with) render, and escape.
    #[test]
    fn live_parts_render_every_branch() {
        let mut live = empty();
        let credits = render("dashboard-credits.html", &live);
        assert!(credits.contains("<b id=\"available\">4</b>"), "{credits}");
        assert!(!credits.contains("No credit available"), "{credits}");
        let links = render("dashboard-links.html", &live);
        assert!(links.contains("id=\"no-links\""), "{links}");
        let webhooks = render("dashboard-webhooks.html", &live);
        assert!(webhooks.contains("data-state=\"none\""), "{webhooks}");
        assert!(webhooks.contains("Nothing received yet"), "{webhooks}");

        live.prefix = "/verify".to_owned();
        live.credits.available = 0;
        live.links = vec![
            link("11111111-1111-4111-8111-111111111111", Vec::new()),
            link(
                "22222222-2222-4222-8222-222222222222",
                vec![SessionRow {
                    id: "33333333-3333-4333-8333-333333333333".to_owned(),
                    number: 1,
                    reference: "cus_<8f2k>".to_owned(),
                    class: "denied",
                    label: "completed: denied".to_owned(),
                    started: "2030-01-01 10:00:00 UTC".to_owned(),
                    finished: "2030-01-01 10:01:00 UTC".to_owned(),
                    can_review: true,
                    can_redact: true,
                }],
            ),
        ];
        live.endpoint = Some(EndpointState {
            url: "https://hooks.example.com/idv?a=1&b=\"2\"".to_owned(),
            enabled: true,
            event_types: vec!["session.completed", "session.reviewed"],
        });
        live.failed = vec![FailedDelivery {
            event: "44444444-4444-4444-8444-444444444444".to_owned(),
            attempts: 8,
            why: "Exhausted".to_owned(),
        }];
        live.received = vec![
            ReceivedWebhook {
                at: "10:01:00".to_owned(),
                id: "msg_1".to_owned(),
                kind: "session.completed".to_owned(),
                outcome: Some("denied".to_owned()),
                verified: true,
                verdict: "signature verified".to_owned(),
            },
            ReceivedWebhook {
                at: "10:02:00".to_owned(),
                id: "msg_<2>".to_owned(),
                kind: "(unreadable)".to_owned(),
                outcome: None,
                verified: false,
                verdict: "rejected: no matching signature".to_owned(),
            },
        ];

        let credits = render("dashboard-credits.html", &live);
        assert!(credits.contains("No credit available"), "{credits}");

        let links = render("dashboard-links.html", &live);
        assert!(!links.contains("<b>Spring"), "names are escaped: {links}");
        assert!(
            links.contains("&lt;b&gt;Spring&lt;/b&gt; &amp; co"),
            "{links}"
        );
        assert!(
            links.contains("&lt;a href=&quot;http://127.0.0.1:3000/l/TOKEN&quot;&gt;"),
            "the snippet is shown as text: {links}"
        );
        assert!(
            links.contains("src=\"/verify/api/links/11111111-1111-4111-8111-111111111111/qr.svg\"")
        );
        assert_eq!(links.matches("data-deactivate=").count(), 1, "{links}");
        assert!(links.contains("No sessions yet"), "{links}");
        assert!(links.contains("data-session-id=\"33333333-3333-4333-8333-333333333333\""));
        assert!(links.contains("1 started, 0 open, 1 completed"), "{links}");
        assert!(
            links.contains("order-&lt;42&gt;"),
            "references are escaped: {links}"
        );
        assert!(
            links.contains("team=&lt;retail&gt;"),
            "metadata is escaped: {links}"
        );
        assert!(
            links.contains("<span class=\"session-reference\">cus_&lt;8f2k&gt;</span>"),
            "{links}"
        );
        assert_eq!(
            links
                .matches("data-review=\"33333333-3333-4333-8333-333333333333\"")
                .count(),
            2,
            "a session waiting for review offers both decisions: {links}"
        );
        // The funnel: a server-drawn SVG with a title and a labelled bar per stage.
        assert_eq!(links.matches("<svg class=\"funnel\"").count(), 2, "{links}");
        assert!(
            links.contains("<title id=\"funnel-title-11111111-1111-4111-8111-111111111111\">Funnel: 7 views (4 people, 2 scanners, 1 unconfirmed), 3 starts, 2 completed"),
            "{links}"
        );
        assert!(links.contains("<title>Views: people: 4</title>"), "{links}");
        assert!(
            links.contains("<rect class=\"bar human\" x=\"130\" y=\"0\" width=\"180\""),
            "the largest count has the longest bar: {links}"
        );
        assert!(
            links.contains("<rect class=\"bar expired\" x=\"130\" y=\"144\" width=\"0\""),
            "{links}"
        );
        assert!(links.contains("Conversion 50%"), "{links}");
        assert!(links.contains("median time to complete 75 s"), "{links}");

        let webhooks = render("dashboard-webhooks.html", &live);
        assert!(webhooks.contains("data-state=\"enabled\""), "{webhooks}");
        assert!(
            webhooks.contains("https://hooks.example.com/idv?a=1&amp;b=&quot;2&quot;"),
            "{webhooks}"
        );
        assert!(webhooks.contains("id=\"webhook-disable\""), "{webhooks}");
        assert!(
            webhooks.contains("<code>session.completed</code>, <code>session.reviewed</code>"),
            "the endpoint's event types: {webhooks}"
        );
        assert!(
            webhooks.contains("data-retry=\"44444444-4444-4444-8444-444444444444\""),
            "{webhooks}"
        );
        assert!(
            webhooks.contains("session.completed (denied)"),
            "{webhooks}"
        );
        assert!(
            webhooks.contains("title=\"webhook-id msg_&lt;2&gt;\""),
            "{webhooks}"
        );
        assert!(
            webhooks.contains("rejected: no matching signature"),
            "{webhooks}"
        );

        live.endpoint = Some(EndpointState {
            url: "https://hooks.example.com/idv".to_owned(),
            enabled: false,
            event_types: vec!["link.created"],
        });
        let webhooks = render("dashboard-webhooks.html", &live);
        assert!(webhooks.contains("data-state=\"disabled\""), "{webhooks}");
        assert!(!webhooks.contains("id=\"webhook-disable\""), "{webhooks}");
    }

    /// The whole page, with the inline script and stylesheet under the nonce, as they are.
    #[test]
    fn page_inlines_its_assets_under_the_nonce() {
        let context = context! {
            lang => "en",
            nonce => "n0nce",
            account => "00000000-0000-4000-8000-000000000001",
            store => "memory",
            settings => Serde(Settings::of(&AccountProfile::default(), false)),
            ..Value::from(Serde(&empty()))
        };
        let page = html::render("dashboard.html", context).expect("renders");
        assert!(page.starts_with("<!doctype html>"), "{page}");
        assert!(page.contains("<style nonce=\"n0nce\">:root{"), "{page}");
        assert!(
            page.contains("<script nonce=\"n0nce\">// The dashboard"),
            "{page}"
        );
        assert!(
            page.contains("if (!res.ok) throw new Error"),
            "scripts are not escaped"
        );
        assert_eq!(page.matches("<script").count(), 1, "{page}");
    }
}
