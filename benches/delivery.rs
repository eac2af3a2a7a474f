//! Webhook delivery end to end, to a receiver on 127.0.0.1 that verifies every signature.
//!
//! - **Latency**: from `complete_session` returning to the receiver having verified its
//!   `session.completed` webhook, over 1,000 completions made one every 10 ms (an open loop:
//!   a slow delivery does not delay the next completion), with one `Dispatcher::run` that
//!   waits idle between them. It is woken by the store's change notifications, and, as the
//!   baseline, it polls every 300 ms (the example server's interval before wake-ups) instead.
//! - **Throughput**: deliveries per second for a backlog of 10,000 events, against the floor:
//!   a raw reqwest keep-alive client that POSTs the very bodies and headers the dispatcher
//!   sent (captured by the receiver) at the same concurrency (the dispatcher's batch size).
//!
//! Both on `MemoryStore` and on `PostgresStore` (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; schema `magic_link_bench_delivery`, rebuilt).
//! `cargo bench --bench delivery --features http,background,postgres`; BENCHMARKS.md records
//! the tables. `MAGIC_LINK_BENCH_EVENTS` changes the number of completions (default 1,000) and
//! `MAGIC_LINK_BENCH_BACKLOG` the backlog (default 10,000).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use magic_link::store::sqlx::postgres::PgConnectOptions;
use magic_link::store::sqlx::PgPool;
use magic_link::store::{Changes, PostgresStore, WebhookStore};
use magic_link::tokens::Keyring;
use magic_link::webhooks::{
    Dispatcher, HttpTransport, WebhookHeaders, WebhookPayload, WebhookSecret, WebhookVerifier,
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER,
};
use magic_link::{
    AccountId, Flow, IdempotencyKey, MagicLinks, NewLink, Outcome, SessionId, UsageLimit,
};
use tokio::sync::{mpsc, Notify};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SCHEMA: &str = "magic_link_bench_delivery";
/// The dispatcher's batch size, and so the floor's concurrency.
const CONCURRENCY: usize = 32;
/// Time between two completions in the latency runs.
const SPACING: Duration = Duration::from_millis(10);
/// The baseline's poll interval: the example server's before change notifications.
const BASELINE_POLL: Duration = Duration::from_millis(300);
/// The poll interval kept as a fallback when woken by notifications.
const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// One webhook the receiver verified: when, and what it carried.
struct Received {
    at: Instant,
    kind: String,
    session: Option<SessionId>,
    headers: [(&'static str, String); 3],
    body: Bytes,
}

#[derive(Clone)]
struct Receiver {
    verifier: Arc<WebhookVerifier>,
    sender: mpsc::UnboundedSender<Received>,
    rejected: Arc<AtomicU64>,
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (id, timestamp, signature) = (
        header(WEBHOOK_ID_HEADER),
        header(WEBHOOK_TIMESTAMP_HEADER),
        header(WEBHOOK_SIGNATURE_HEADER),
    );
    if receiver
        .verifier
        .verify(WebhookHeaders::new(id, timestamp, signature), &body)
        .is_err()
    {
        receiver.rejected.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    }
    let Ok(payload) = serde_json::from_slice::<WebhookPayload>(&body) else {
        receiver.rejected.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    let received = Received {
        at,
        kind: payload.kind,
        session: payload.data.session_id,
        headers: [
            (WEBHOOK_ID_HEADER, id.to_owned()),
            (WEBHOOK_TIMESTAMP_HEADER, timestamp.to_owned()),
            (WEBHOOK_SIGNATURE_HEADER, signature.to_owned()),
        ],
        body,
    };
    let _ = receiver.sender.send(received);
    StatusCode::NO_CONTENT
}

/// Starts the receiver on 127.0.0.1; returns its address, what it verified, and its count of
/// rejected requests.
async fn start_receiver() -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Received>,
    Arc<AtomicU64>,
) {
    let (sender, received) = mpsc::unbounded_channel();
    let rejected = Arc::new(AtomicU64::new(0));
    let state = Receiver {
        verifier: Arc::new(WebhookVerifier::new(SECRET.parse().expect("secret"))),
        sender,
        rejected: rejected.clone(),
    };
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (addr, received, rejected)
}

/// Percentile `p` (0..=100) of sorted `values`, nearest rank.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// A facade over `store` with one funded account and its endpoint at `addr`.
async fn setup<S: WebhookStore + 'static>(
    store: Arc<S>,
    addr: SocketAddr,
) -> (MagicLinks<Arc<S>>, AccountId) {
    let keyring = Keyring::generate().expect("keyring");
    let base = "https://verify.example.com/l/".parse().expect("base");
    let links = MagicLinks::new(store, keyring, base);
    let account = links
        .create_account(AccountId::new())
        .await
        .expect("account");
    links
        .top_up(
            account.id,
            1_000_000,
            IdempotencyKey::new("bench").expect("key"),
        )
        .await
        .expect("top up");
    let secret: WebhookSecret = SECRET.parse().expect("secret");
    links
        .set_webhook_endpoint(account.id, &format!("http://{addr}/hook"), vec![secret])
        .await
        .expect("endpoint");
    (links, account.id)
}

/// How a latency run's dispatcher learns of new events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waking {
    /// The store's change notifications, with a slow fallback poll.
    Notified,
    /// Polling every [`BASELINE_POLL`].
    Polling,
}

/// Runs `work` with a `Dispatcher::run` on `store` until `work` is done.
async fn with_dispatcher<S, F>(store: Arc<S>, addr: SocketAddr, waking: Waking, work: F)
where
    S: WebhookStore + Changes + 'static,
    F: std::future::Future<Output = ()>,
{
    let transport = HttpTransport::builder()
        .allow_socket_addr(addr)
        .build()
        .expect("transport");
    let dispatcher = Dispatcher::new(store.clone(), transport).batch_size(CONCURRENCY);
    let dispatcher = match waking {
        Waking::Notified => dispatcher
            .poll_interval(FALLBACK_POLL)
            .wake_on_changes(store.changes().await.expect("changes")),
        Waking::Polling => dispatcher.poll_interval(BASELINE_POLL),
    };
    let stop = Arc::new(Notify::new());
    let stopped = stop.clone();
    let running = tokio::spawn(async move {
        dispatcher
            .run(async move { stopped.notified().await })
            .await
    });
    work.await;
    stop.notify_one();
    running.await.expect("dispatcher");
}

/// Waits until `count` webhooks were verified; returns them.
async fn collect(received: &mut mpsc::UnboundedReceiver<Received>, count: usize) -> Vec<Received> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match tokio::time::timeout(Duration::from_secs(60), received.recv()).await {
            Ok(Some(r)) => out.push(r),
            _ => panic!("only {} of {count} webhooks arrived", out.len()),
        }
    }
    out
}

/// Latencies of `events` completions on `store`.
async fn latency<S>(store: Arc<S>, waking: Waking, events: usize) -> Vec<Duration>
where
    S: WebhookStore + Changes + 'static,
{
    let (addr, mut received, rejected) = start_receiver().await;
    let (links, account) = setup(store.clone(), addr).await;
    let link = links
        .create_link(
            account,
            NewLink::new("Latency", Flow::Selfie).limit(UsageLimit::Unlimited),
        )
        .await
        .expect("link");
    let mut sessions = Vec::with_capacity(events);
    for _ in 0..events {
        sessions.push(
            links
                .redeem(&link.token, magic_link::start::Start::new())
                .await
                .expect("redeem")
                .session
                .id,
        );
    }
    let completed: Arc<Mutex<HashMap<SessionId, Instant>>> = Arc::default();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let work = {
        let completed = completed.clone();
        let arrivals = arrivals.clone();
        async move {
            // The backlog: credits.added, link.created and the redemptions.
            collect(&mut received, events + 2).await;
            let collector = tokio::spawn(async move {
                let got = collect(&mut received, events).await;
                *arrivals.lock().expect("arrivals") = got;
            });
            let start = tokio::time::Instant::now();
            for (i, session) in sessions.iter().enumerate() {
                tokio::time::sleep_until(start + SPACING * i as u32).await;
                links
                    .complete_session(account, *session, Outcome::Approved)
                    .await
                    .expect("complete");
                completed
                    .lock()
                    .expect("completed")
                    .insert(*session, Instant::now());
            }
            collector.await.expect("collector");
        }
    };
    with_dispatcher(store, addr, waking, work).await;
    assert_eq!(rejected.load(Ordering::Relaxed), 0, "rejected webhooks");
    let completed = completed.lock().expect("completed");
    let mut latencies: Vec<Duration> = arrivals
        .lock()
        .expect("arrivals")
        .iter()
        .map(|r| {
            assert_eq!(r.kind, "session.completed");
            let session = r.session.expect("session");
            r.at.saturating_duration_since(completed[&session])
        })
        .collect();
    latencies.sort();
    latencies
}

/// Deliveries per second of a `backlog` of events on `store`, and of the floor replaying the
/// same requests.
async fn throughput<S>(store: Arc<S>, backlog: usize) -> (f64, f64)
where
    S: WebhookStore + Changes + 'static,
{
    let (addr, mut received, rejected) = start_receiver().await;
    let (links, account) = setup(store.clone(), addr).await;
    // credits.added and link.created make 2; the rest are redemptions of one link.
    let link = links
        .create_link(
            account,
            NewLink::new("Throughput", Flow::Selfie).limit(UsageLimit::Unlimited),
        )
        .await
        .expect("link");
    for _ in 0..backlog - 2 {
        links
            .redeem(&link.token, magic_link::start::Start::new())
            .await
            .expect("redeem");
    }
    let mut requests = Vec::new();
    let mut elapsed = Duration::ZERO;
    let work = async {
        let start = Instant::now();
        requests = collect(&mut received, backlog).await;
        elapsed = start.elapsed();
    };
    with_dispatcher(store, addr, Waking::Notified, work).await;
    let dispatched = backlog as f64 / elapsed.as_secs_f64();

    // The floor: the same requests, replayed by CONCURRENCY workers over keep-alive.
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/hook");
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, url, requests, next) =
                (client.clone(), url.clone(), requests.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(r) = requests.get(i) else { break };
                    let mut request = client.post(&url).body(r.body.clone());
                    for (name, value) in &r.headers {
                        request = request.header(*name, value);
                    }
                    let response = request.send().await.expect("floor request");
                    assert!(
                        response.status().is_success(),
                        "floor: {}",
                        response.status()
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let floor_elapsed = start.elapsed();
    collect(&mut received, backlog).await;
    assert_eq!(rejected.load(Ordering::Relaxed), 0, "rejected webhooks");
    let floor = backlog as f64 / floor_elapsed.as_secs_f64();
    (dispatched, floor)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A store on the bench schema, rebuilt; its connections time the store's SQL functions
/// (`track_functions`, which needs a superuser) for [`server_time`].
async fn postgres_store() -> Arc<PostgresStore> {
    let options: PgConnectOptions = database_url().parse().expect("DATABASE_URL");
    let pool = PostgresStore::pool_options()
        .max_connections(CONCURRENCY as u32 + 4)
        .connect_with(options.options([("track_functions", "pl")]))
        .await
        .expect("connect to DATABASE_URL");
    sqlx_reset(&pool).await;
    let store = PostgresStore::builder(pool)
        .schema(SCHEMA)
        .build()
        .expect("schema");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// The server time of the store's SQL functions since the schema was built, per delivery,
/// once the pool's connections have closed (and so reported their statistics).
async fn server_time(pool: PgPool, deliveries: usize) {
    pool.close().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reader = PgPool::connect(&database_url()).await.expect("connect");
    let rows: Vec<(String, i64, f64)> = magic_link::store::sqlx::query_as(
        "SELECT funcname::text, calls, total_time FROM pg_stat_user_functions \
          WHERE schemaname = $1 ORDER BY total_time DESC",
    )
    .bind(SCHEMA)
    .fetch_all(&reader)
    .await
    .expect("pg_stat_user_functions");
    println!();
    println!("PostgreSQL server time of the throughput run, by function (all calls since the schema was built):");
    println!("| function | calls | total ms | ms per call | µs per delivery |");
    println!("|---|---:|---:|---:|---:|");
    for (name, calls, total) in rows {
        println!(
            "| {name} | {calls} | {total:.0} | {:.3} | {:.0} |",
            total / calls.max(1) as f64,
            total * 1e3 / deliveries as f64
        );
    }
}

async fn sqlx_reset(pool: &magic_link::store::sqlx::PgPool) {
    magic_link::store::sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(pool)
        .await
        .expect("drop schema");
}

fn main() {
    let events = env_usize("MAGIC_LINK_BENCH_EVENTS", 1_000);
    let backlog = env_usize("MAGIC_LINK_BENCH_BACKLOG", 10_000).max(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!("latency: {events} completions, one every {SPACING:?}, from complete_session returning to the receiver's verified webhook (ms)");
        println!("| store | dispatcher woken by | p50 | p99 | max |");
        println!("|---|---|---:|---:|---:|");
        for waking in [Waking::Notified, Waking::Polling] {
            let memory = latency(Arc::new(magic_link::store::MemoryStore::new()), waking, events).await;
            row("MemoryStore", waking, &memory);
            let postgres = latency(postgres_store().await, waking, events).await;
            row("PostgresStore", waking, &postgres);
        }
        println!();
        println!("throughput: a backlog of {backlog} events, {CONCURRENCY} at once (deliveries/s)");
        println!("| store | dispatcher | floor (raw reqwest) | ratio |");
        println!("|---|---:|---:|---:|");
        let (d, f) = throughput(Arc::new(magic_link::store::MemoryStore::new()), backlog).await;
        println!("| MemoryStore | {d:.0} | {f:.0} | {:.2}x |", d / f);
        let store = postgres_store().await;
        let pool = store.pool().clone();
        let (d, f) = throughput(store, backlog).await;
        println!("| PostgresStore | {d:.0} | {f:.0} | {:.2}x |", d / f);
        server_time(pool, backlog).await;
    });
}

fn row(store: &str, waking: Waking, sorted: &[Duration]) {
    let how = match waking {
        Waking::Notified => "change notifications (fallback poll 5 s)",
        Waking::Polling => "polling every 300 ms (baseline)",
    };
    println!(
        "| {store} | {how} | {} | {} | {} |",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 99.0)),
        ms(sorted.last().copied().unwrap_or_default()),
    );
}
