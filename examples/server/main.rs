//! A runnable identity-verification service on Magic Links: the integration to copy.
//!
//! ```text
//! cargo run --example server --features qr,http,background
//! # then open http://127.0.0.1:3000/dashboard
//! ```
//!
//! - `/dashboard` and `/api/...`: the account owner creates links with every setting, shares
//!   them (URL, copy button, "Verify now" snippet, QR code), watches their sessions live,
//!   deactivates them and tops up credits. They also set the webhook endpoint; the crate's
//!   [`Dispatcher`](magic_link::webhooks::Dispatcher) delivers every event to it, signed as Standard
//!   Webhooks specify, and `/demo/webhook-inbox` receives and verifies them as a customer's
//!   backend would.
//! - `/l/{token}`: the landing page a link opens. `GET` and `HEAD` only *inspect* the link (email
//!   scanners open links before people do); `POST` (the "Start verification" button) redeems it
//!   and redirects (303) to the flow page.
//! - `/l/{token}/seen`: the landing page's beacon. Each view of a landing page is counted for
//!   the link's funnel as a person's, a scanner's or unconfirmed (see `views.rs`); the
//!   dashboard draws each link's funnel.
//! - `/s/{session token}`: the verification flow in the link's language (English or
//!   Lithuanian). Submitting completes the session, which bills one credit. When the link has
//!   a return URL, completing or quitting sends the browser there (303), signed.
//! - `/demo/return`: the demo's return page, verifying a signed return URL as the owner's site
//!   would (see `returns.rs`).
//!
//! The visitor's pages show the account's display name and "Get help" link, never a link's
//! internal name (see `brand.rs`).
//!
//! A rejected link answers with a page that says why: 404 for an unknown, malformed or forged
//! link; 410 Gone for one used up, expired or deactivated; 503 when the owner has no credit
//! left (temporary, and not the visitor's doing).
//!
//! Configuration (arguments win over the environment):
//!
//! | argument       | environment       | default                     |
//! |----------------|-------------------|-----------------------------|
//! | `--port N`     | `PORT`            | 3000 (0: any free port)     |
//! | `--bind IP`    | `BIND`            | 127.0.0.1                   |
//! | `--base-url U` | `BASE_URL`        | `http://{bind}:{port}`      |
//! |                | `MAGIC_LINK_KEYS` | a fresh keyring (links die with the process) |
//! |                | `ACCOUNT_ID`      | `00000000-0000-4000-8000-000000000001` |
//! |                | `INITIAL_CREDITS` | 100                         |
//! |                | `DATABASE_URL`    | unset: `MemoryStore`        |
//! |                | `DATABASE_SCHEMA` | `magic_link`                |
//! |                | `WEBHOOK_ALLOW_NETWORKS` | none: webhooks go to public addresses and the demo inbox only; add comma-separated CIDRs or `host:port`s for a local receiver |
//! |                | `ALLOWED_HOSTS`   | the base URL's `host:port`: the `Host`s served (comma-separated `host[:port]`; no port: the base URL's) |
//! |                | `RATE_LIMIT_START_PER_MINUTE` | 30: session starts (`POST /l/...`) per client and minute; 0: no limit |
//! |                | `RATE_LIMIT_API_PER_MINUTE` | 600: owner API requests (`/api/...`) per client and minute; 0: no limit |
//! |                | `RATE_LIMIT_VIEW_PER_MINUTE` | 60: landing-page beacons (`POST /l/.../seen`) per client and minute; 0: no limit |
//! |                | `TRUSTED_PROXIES` | none: comma-separated IPs and CIDRs whose `X-Forwarded-For` names the client |
//! |                | `RETENTION_DAYS`  | 90: finished sessions, delivered webhook events and spent hand-offs older than this are pruned every hour (statistics and the ledger stay exact); 0: never |
//! |                | `RETURN_ORIGINS`  | the base URL's origin: the origins (comma-separated `scheme://host[:port]`) links' return and dead-link URLs may use, set on the account at start-up |
//! |                | `DISPLAY_NAME`    | `Demo Bank`: the account's name on the visitor's pages, set at start-up when it has none |
//!
//! With `DATABASE_URL` set (and the `postgres` feature), the service runs on
//! [`PostgresStore`](magic_link::store::PostgresStore) in `DATABASE_SCHEMA`, migrated at start-up, so
//! several instances can share one database: give them the same `MAGIC_LINK_KEYS`.
//!
//! The demo has one account and no login: see [`Owner`](extract::Owner).
//!
//! Under hostile traffic (see `guard.rs` and `limits.rs`) it refuses, before any handler runs:
//! a `Host` it does not serve (421, against DNS rebinding), an owner request from another site
//! that would change something (403), and a client over its rate limit (429 with
//! `Retry-After`).
//!
//! Where things are:
//!
//! | file            | what                                                                  |
//! |-----------------|-----------------------------------------------------------------------|
//! | `main.rs`       | configuration, start-up, the routes                                   |
//! | `pages.rs`      | the pages of the person verifying: landing, flow, outcome             |
//! | `brand.rs`      | the account's display name and "Get help" link on those pages         |
//! | `returns.rs`    | the demo return page, verifying signed return URLs                    |
//! | `handoff.rs`    | "Continue on your phone": the QR code, the phone's hand-off page       |
//! | `views.rs`      | which landing-page views were people and which scanners (the funnel)  |
//! | `dashboard.rs`  | the owner's dashboard and its live parts                              |
//! | `live.rs`       | Server-Sent Events: the dashboard's and the flow page's live streams  |
//! | `api.rs`        | the owner's JSON API: credits, links, sessions, QR codes              |
//! | `webhooks.rs`   | the owner's JSON API for the webhook endpoint                         |
//! | `inbox.rs`      | the demo inbox, receiving and verifying webhooks as a customer would  |
//! | `background.rs` | webhook delivery and session expiry, running beside the server        |
//! | `extract.rs`    | the owner extractor, and typed path, query and JSON extractors        |
//! | `guard.rs`      | refusing unknown hosts and cross-site owner requests                  |
//! | `limits.rs`     | per-client rate limits, and who the client is behind a proxy          |
//! | `errors.rs`     | JSON errors, problem pages with their statuses, logging               |
//! | `html.rs`       | templates and security headers (CSP with a per-response nonce)        |
//! | `i18n.rs`       | the texts of the pages, in English and Lithuanian                     |
//! | `assets/`       | the templates (`*.html`), the stylesheet and the scripts              |

mod api;
mod background;
mod brand;
mod dashboard;
mod errors;
mod extract;
mod guard;
mod handoff;
mod html;
mod i18n;
mod inbox;
mod limits;
mod live;
mod pages;
mod returns;
mod views;
mod webhooks;

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::Redirect;
use axum::routing::{get, post, put};
use axum::{middleware, Router};
use magic_link::returns::{ReturnOrigin, ReturnUrl};
use magic_link::store::{Changes, MemoryStore, WebhookStore};
use magic_link::tokens::{Keyring, LinkBase};
use magic_link::webhooks::AllowList;
use magic_link::{AccountId, Error, IdempotencyKey, MagicLinks};

/// The largest request body accepted, in bytes. JSON requests and forms are tiny.
const BODY_LIMIT: usize = 16 * 1024;

/// The demo's account when `ACCOUNT_ID` is not set. Fixed, so that a shared database keeps it.
const DEFAULT_ACCOUNT: &str = "00000000-0000-4000-8000-000000000001";

/// The demo account's display name when `DISPLAY_NAME` is not set.
const DEFAULT_DISPLAY_NAME: &str = "Demo Bank";

/// Everything the handlers share.
pub(crate) struct App<S> {
    /// The crate's facade: store, clock, keyring and link base.
    pub(crate) links: MagicLinks<S>,
    /// The one account of this demo.
    pub(crate) account: AccountId,
    /// Where this service is reached, without a final `/` (`http://127.0.0.1:3000`).
    pub(crate) base_url: String,
    /// The path part of `base_url` (`""`, or `/verify` behind a proxy), for links between pages.
    pub(crate) path_prefix: String,
    /// Which store backs it, for the dashboard.
    pub(crate) store_name: &'static str,
    /// The demo's webhook receiver.
    pub(crate) inbox: inbox::Inbox,
    /// The hosts and origins served.
    pub(crate) sites: Arc<guard::Sites>,
    /// The limit on session starts per client, if any.
    pub(crate) start_limit: Option<Arc<limits::RateLimit>>,
    /// The limit on owner API requests per client, if any.
    pub(crate) api_limit: Option<Arc<limits::RateLimit>>,
    /// Becomes `true` when the server shuts down: the live streams (`live.rs`) end.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
    /// The limit on landing-page beacons per client, if any.
    pub(crate) view_limit: Option<Arc<limits::RateLimit>>,
    /// Landing-page views waiting for their beacon (see `views.rs`).
    pub(crate) views: views::PendingViews,
}

/// The shared state.
pub(crate) type AppState<S> = Arc<App<S>>;

struct Config {
    bind: IpAddr,
    port: u16,
    base_url: Option<String>,
    keys: Option<String>,
    database_url: Option<String>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    database_schema: Option<String>,
    account: AccountId,
    initial_credits: u64,
    /// Where webhooks may go besides public addresses and the server's own demo inbox.
    webhook_allow: AllowList,
    /// The `Host`s served besides (instead of) the base URL's.
    allowed_hosts: Option<String>,
    /// Session starts per client and minute (0: no limit).
    start_per_minute: u32,
    /// Owner API requests per client and minute (0: no limit).
    api_per_minute: u32,
    /// Landing-page beacons per client and minute (0: no limit).
    view_per_minute: u32,
    /// Whose `X-Forwarded-For` names the client.
    trusted_proxies: limits::TrustedProxies,
    /// Days after which finished records are pruned (0: never).
    retention_days: u32,
    /// The origins return and dead-link URLs may use (`None`: the base URL's).
    return_origins: Option<Vec<ReturnOrigin>>,
    /// The account's display name, set at start-up when it has none.
    display_name: String,
}

impl Config {
    fn load() -> Result<Self, Box<dyn StdError>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = Self {
            bind: env("BIND").as_deref().unwrap_or("127.0.0.1").parse()?,
            port: env("PORT").as_deref().unwrap_or("3000").parse()?,
            base_url: env("BASE_URL"),
            keys: env("MAGIC_LINK_KEYS"),
            database_url: env("DATABASE_URL"),
            database_schema: env("DATABASE_SCHEMA"),
            account: env("ACCOUNT_ID")
                .as_deref()
                .unwrap_or(DEFAULT_ACCOUNT)
                .parse()?,
            initial_credits: env("INITIAL_CREDITS").as_deref().unwrap_or("100").parse()?,
            webhook_allow: env("WEBHOOK_ALLOW_NETWORKS")
                .as_deref()
                .unwrap_or("")
                .parse()?,
            allowed_hosts: env("ALLOWED_HOSTS"),
            start_per_minute: env("RATE_LIMIT_START_PER_MINUTE")
                .as_deref()
                .unwrap_or("30")
                .parse()?,
            api_per_minute: env("RATE_LIMIT_API_PER_MINUTE")
                .as_deref()
                .unwrap_or("600")
                .parse()?,
            view_per_minute: env("RATE_LIMIT_VIEW_PER_MINUTE")
                .as_deref()
                .unwrap_or("60")
                .parse()?,
            trusted_proxies: env("TRUSTED_PROXIES").as_deref().unwrap_or("").parse()?,
            retention_days: env("RETENTION_DAYS").as_deref().unwrap_or("90").parse()?,
            return_origins: env("RETURN_ORIGINS")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|o| !o.is_empty())
                        .map(ReturnOrigin::parse)
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?,
            display_name: env("DISPLAY_NAME").unwrap_or_else(|| DEFAULT_DISPLAY_NAME.to_owned()),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--port" => config.port = value()?.parse()?,
                "--bind" => config.bind = value()?.parse()?,
                "--base-url" => config.base_url = Some(value()?),
                "-h" | "--help" => {
                    println!(
                        "usage: server [--port N] [--bind IP] [--base-url URL]\n\
                         environment: PORT, BIND, BASE_URL, MAGIC_LINK_KEYS, ACCOUNT_ID, \
                         INITIAL_CREDITS, DATABASE_URL, DATABASE_SCHEMA, WEBHOOK_ALLOW_NETWORKS, \
                         ALLOWED_HOSTS, RATE_LIMIT_START_PER_MINUTE, RATE_LIMIT_API_PER_MINUTE, \
                         RATE_LIMIT_VIEW_PER_MINUTE, TRUSTED_PROXIES, RETENTION_DAYS, RETURN_ORIGINS, \
                         DISPLAY_NAME"
                    );
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?} (try --help)").into()),
            }
        }
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            let mut source = err.source();
            while let Some(err) = source {
                eprintln!("  caused by: {err}");
                source = err.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn StdError>> {
    let config = Config::load()?;
    html::check()?;
    let listener = tokio::net::TcpListener::bind((config.bind, config.port)).await?;
    let addr = listener.local_addr()?;
    let base_url = config
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let base_url = base_url.trim_end_matches('/').to_owned();
    let keyring = match &config.keys {
        Some(text) => Keyring::parse(text)?,
        None => {
            eprintln!(
                "note: MAGIC_LINK_KEYS is not set; using a fresh keyring, so links stop \
                 working when the server stops"
            );
            Keyring::generate()?
        }
    };
    let link_base = LinkBase::new(format!("{base_url}/l/"))?;
    let setup = Setup {
        keyring,
        link_base,
        base_url,
        listener,
    };
    match config.database_url.clone() {
        None => serve(Arc::new(MemoryStore::new()), "memory", &config, setup).await,
        Some(url) => serve_postgres(&url, &config, setup).await,
    }
}

/// Runs on PostgreSQL: connects, migrates (safe from every instance at once), serves.
#[cfg(feature = "postgres")]
async fn serve_postgres(url: &str, config: &Config, setup: Setup) -> Result<(), Box<dyn StdError>> {
    use magic_link::store::PostgresStore;

    let pool = PostgresStore::pool_options()
        .max_connections(8)
        .connect(url)
        .await?;
    let mut builder = PostgresStore::builder(pool);
    if let Some(schema) = &config.database_schema {
        builder = builder.schema(schema);
    }
    let store = builder.build()?;
    store.migrate().await?;
    serve(Arc::new(store), "postgres", config, setup).await
}

#[cfg(not(feature = "postgres"))]
async fn serve_postgres(
    _url: &str,
    _config: &Config,
    _setup: Setup,
) -> Result<(), Box<dyn StdError>> {
    Err(
        "DATABASE_URL is set, but this build has no PostgreSQL support: \
         run with --features qr,http,background,postgres (or unset DATABASE_URL for the memory store)"
            .into(),
    )
}

/// What `serve` needs besides the store.
struct Setup {
    keyring: Keyring,
    link_base: LinkBase,
    base_url: String,
    listener: tokio::net::TcpListener,
}

/// Runs the service on `store` until SIGINT or SIGTERM. The store is shared by the facade and
/// the webhook dispatcher.
async fn serve<S: WebhookStore + Changes + 'static>(
    store: Arc<S>,
    store_name: &'static str,
    config: &Config,
    setup: Setup,
) -> Result<(), Box<dyn StdError>> {
    let Setup {
        keyring,
        link_base,
        base_url,
        listener,
    } = setup;
    let dispatcher = background::dispatcher(
        store.clone(),
        store.changes().await?,
        listener.local_addr()?,
        config.webhook_allow.clone(),
    )?;
    let links = MagicLinks::new(store, keyring, link_base);
    let account = config.account;
    match links.create_account(account).await {
        Ok(_) | Err(Error::AlreadyExists) => {}
        Err(err) => return Err(err.into()),
    }
    if config.initial_credits > 0 {
        // Idempotent: instances sharing a database, and restarts, add the credits once.
        let key = IdempotencyKey::new(format!("initial-credits-{}", config.initial_credits))?;
        links.top_up(account, config.initial_credits, key).await?;
    }
    demo_profile(&links, account, config, &base_url).await?;
    let path_prefix = base_url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
        .unwrap_or_default();
    let sites = guard::Sites::new(&base_url, config.allowed_hosts.as_deref())?;
    let limit = |per_minute, audience| {
        limits::RateLimit::per_minute(per_minute, config.trusted_proxies.clone(), audience)
    };
    let (close, closing) = tokio::sync::watch::channel(false);
    let app = Arc::new(App {
        links,
        account,
        base_url,
        path_prefix,
        store_name,
        inbox: inbox::Inbox::default(),
        sites: Arc::new(sites),
        start_limit: limit(config.start_per_minute, limits::Audience::Visitor),
        api_limit: limit(config.api_per_minute, limits::Audience::Api),
        closing,
        view_limit: limit(config.view_per_minute, limits::Audience::Visitor),
        views: views::PendingViews::default(),
    });

    // One shutdown signal for the server and the background work.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_signal = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    // Sessions left open past their time to live are abandoned, releasing their credit,
    // expired links reported, and records older than `RETENTION_DAYS` pruned.
    let retention = (config.retention_days > 0)
        .then(|| std::time::Duration::from_secs(u64::from(config.retention_days) * 86_400));
    let sweeper = tokio::spawn(background::sweep(app.clone(), retention, stop_signal()));
    // Webhooks: the outbox, delivered to the account's endpoint.
    let delivery = tokio::spawn({
        let stop_signal = stop_signal();
        async move { dispatcher.run(stop_signal).await }
    });
    // The rate limits forget clients idle for a minute.
    let limit_sweepers: Vec<_> = [&app.start_limit, &app.api_limit, &app.view_limit]
        .into_iter()
        .flatten()
        .map(|limit| tokio::spawn(limit.clone().sweep(stop_signal())))
        .collect();

    println!(
        "listening on http://{} (dashboard: {}/dashboard, store: {store_name})",
        listener.local_addr()?,
        app.base_url
    );
    // The peer's address is the client the rate limits count (see `limits.rs`).
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // The live streams never end by themselves: end them, or they hold the shutdown.
            let _ = close.send(true);
        })
        .await;
    // The dispatcher stops claiming, lets sends in flight finish, and gives back the rest.
    let _ = stop.send(true);
    let _ = sweeper.await;
    let _ = delivery.await;
    for limit_sweeper in limit_sweepers {
        let _ = limit_sweeper.await;
    }
    Ok(served?)
}

/// The demo account's public identity and return settings: its display name (kept if it has
/// one: the owner may have changed it on the dashboard), the allowed return origins (from
/// `RETURN_ORIGINS`, else the server's own origin, so that the demo return page works), and a
/// return secret if it has none.
async fn demo_profile<S: WebhookStore>(
    links: &MagicLinks<S>,
    account: AccountId,
    config: &Config,
    base_url: &str,
) -> Result<(), Box<dyn StdError>> {
    let mut profile = links.account(account).await?.profile;
    if profile.display_name.is_none() {
        profile.display_name = Some(config.display_name.clone());
    }
    profile.return_origins = match &config.return_origins {
        Some(origins) => origins.clone(),
        // A base URL that cannot be a return URL (plain http to a public host) allows none.
        None => ReturnUrl::parse(base_url)
            .map(|url| vec![url.origin()])
            .unwrap_or_default(),
    };
    links.set_account_profile(account, profile).await?;
    if links.return_secrets(account).await?.is_none() {
        links.rotate_return_secret(account).await?;
    }
    Ok(())
}

/// The whole service.
pub(crate) fn router<S: WebhookStore + Changes + Clone + 'static>(app: AppState<S>) -> Router {
    // The owner's JSON API: rate-limited per client.
    let mut api = Router::new()
        .route("/api/account", get(api::account::<S>))
        .route("/api/credits", post(api::top_up::<S>))
        .route(
            "/api/links",
            get(api::list_links::<S>).post(api::create_link::<S>),
        )
        .route("/api/links/{id}", get(api::get_link::<S>))
        .route("/api/links/{id}/deactivate", post(api::deactivate::<S>))
        .route("/api/links/{id}/sessions", get(api::sessions::<S>))
        .route("/api/links/{id}/personal", post(api::personal::<S>))
        .route("/api/links/{id}/redact", post(api::redact_link::<S>))
        .route("/api/sessions/{id}/redact", post(api::redact_session::<S>))
        .route("/api/sessions", get(api::sessions_by_reference::<S>))
        .route("/api/account/profile", put(api::set_profile::<S>))
        .route(
            "/api/account/return-secret",
            post(api::rotate_return_secret::<S>),
        )
        .route("/api/sessions/{id}/review", post(api::review::<S>))
        .route("/api/links/{id}/qr.svg", get(api::qr_svg::<S>))
        .route("/api/links/{id}/qr.png", get(api::qr_png::<S>))
        // The owner's webhook endpoint.
        .route(
            "/api/webhook",
            get(webhooks::get::<S>)
                .put(webhooks::set::<S>)
                .delete(webhooks::disable::<S>),
        )
        .route(
            "/api/webhook/deliveries/{event}/retry",
            post(webhooks::retry::<S>),
        );
    if let Some(limit) = &app.api_limit {
        api = api.route_layer(middleware::from_fn_with_state(limit.clone(), limits::limit));
    }
    // Everything the owner uses: changes only from the server's own pages (or no browser).
    let owner = Router::new()
        .route("/dashboard", get(dashboard::page::<S>))
        .route("/dashboard/live", get(dashboard::live_parts::<S>))
        .route("/dashboard/events", get(live::dashboard::<S>))
        .merge(api)
        .route_layer(middleware::from_fn_with_state(
            app.sites.clone(),
            guard::same_origin_owner,
        ));
    // "Start verification": rate-limited per client.
    let mut start = post(pages::start::<S>);
    if let Some(limit) = &app.start_limit {
        start = start.route_layer(middleware::from_fn_with_state(limit.clone(), limits::limit));
    }
    // "Continue here" on a phone: rate-limited per client, like a start.
    let mut accept = post(handoff::accept::<S>);
    if let Some(limit) = &app.start_limit {
        accept = accept.route_layer(middleware::from_fn_with_state(limit.clone(), limits::limit));
    }
    // The landing page's beacon (the funnel): rate-limited per client.
    let mut seen = post(views::seen::<S>);
    if let Some(limit) = &app.view_limit {
        seen = seen.route_layer(middleware::from_fn_with_state(limit.clone(), limits::limit));
    }
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .merge(owner)
        // The demo receiver.
        .route("/demo/webhook-inbox", post(inbox::receive::<S>))
        .route("/demo/return", get(returns::page::<S>))
        // The person verifying.
        .route("/l/{token}", get(pages::landing::<S>).merge(start))
        .route("/l/{token}/seen", seen)
        .route(
            "/s/{token}",
            get(pages::flow::<S>).post(pages::complete::<S>),
        )
        .route("/s/{token}/quit", post(pages::quit::<S>))
        .route("/s/{token}/events", get(live::flow::<S>))
        .route("/s/{token}/phone", get(handoff::phone::<S>))
        .route("/h/{token}", get(handoff::open::<S>).merge(accept))
        .fallback(errors::not_found)
        .method_not_allowed_fallback(errors::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Every route, and the fallbacks: only for the hosts this server serves.
        .layer(middleware::from_fn_with_state(
            app.sites.clone(),
            guard::known_host,
        ))
        .layer(middleware::from_fn(html::security_headers))
        .with_state(app)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
