//! Starts with a start key against starts without one, at 16 concurrent tasks on links spread
//! over accounts: on `MemoryStore`, and on PostgreSQL when `DATABASE_URL` is set (over a pool of
//! 16 connections, in the schema `magic_link_bench_start`, rebuilt each run).
//!
//! Before Criterion's runs it measures both kinds in alternation (so that the tables grow alike
//! under both) and prints their throughputs and the ratio of the keyed time per start to the
//! plain one; the target on PostgreSQL is at most 1.15x. Each keyed start uses a new key, as a
//! new browser does: the lookup finds nothing and the session is stored with the key's hash.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --features postgres --bench start
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use magic_link::start::StartKey;
use magic_link::store::{LinkStore, MemoryStore, PostgresStore};
use magic_link::{
    Account, AccountId, IdempotencyKey, Link, LinkId, NewLink, SessionId, SessionTtl, UsageLimit,
};

const SCHEMA: &str = "magic_link_bench_start";
const ACCOUNTS: usize = 100;
const LINKS: usize = 2_000;
const TASKS: u64 = 16;

static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default()
}

/// Accounts with plenty of credits and unlimited links spread over them.
async fn populate<S: LinkStore>(store: &S) -> Vec<LinkId> {
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let id = AccountId::new();
        store
            .create_account(Account::new(id, now()))
            .await
            .expect("account");
        store
            .top_up(id, 1 << 40, IdempotencyKey::new("bench").unwrap(), now())
            .await
            .expect("top up");
        accounts.push(id);
    }
    let mut links = Vec::new();
    for n in 0..LINKS {
        let spec = NewLink::new("bench", magic_link::Flow::Selfie).limit(UsageLimit::Unlimited);
        let link = Link::new(LinkId::new(), accounts[n % ACCOUNTS], spec, now()).expect("link");
        links.push(store.insert_link(link).await.expect("insert").id);
    }
    links
}

/// `total` starts by [`TASKS`] tasks on random links, each with a new start key or none.
async fn start_many<S: LinkStore + 'static>(
    store: &Arc<S>,
    links: &Arc<Vec<LinkId>>,
    total: u64,
    keyed: bool,
) -> Duration {
    let ttl = SessionTtl::default();
    let begin = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, links) = (Arc::clone(store), Arc::clone(links));
            let count = total / TASKS + u64::from(t < total % TASKS);
            tokio::spawn(async move {
                for _ in 0..count {
                    let n = (uuid::Uuid::new_v4().as_u64_pair().0 % links.len() as u64) as usize;
                    // A new browser's key (from a counter: the random source is the
                    // browser's cost, once); hashed per start, as the facade does.
                    let key = keyed.then(|| {
                        let n = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
                        StartKey::new(format!("bench-start-key-{n:020}"))
                            .expect("key")
                            .hash()
                    });
                    let session = store
                        .redeem(links[n], SessionId::new(), key, None, ttl, now())
                        .await
                        .expect("redeem");
                    black_box(session);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("task");
    }
    begin.elapsed()
}

/// Both kinds in alternation, `rounds` rounds of `per_round` starts each; prints both and the
/// ratio.
async fn compare<S: LinkStore + 'static>(
    name: &str,
    store: &Arc<S>,
    links: &Arc<Vec<LinkId>>,
    rounds: u32,
    per_round: u64,
) {
    let (mut plain, mut keyed) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        plain += start_many(store, links, per_round, false).await;
        keyed += start_many(store, links, per_round, true).await;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rate = |d: Duration| f64::from(rounds) * per_round as f64 / d.as_secs_f64();
    eprintln!(
        "start_key on {name}, {TASKS} tasks, spread links, {rounds} x {per_round} each \
         (load average: {})",
        load.trim()
    );
    eprintln!("  without a key {:>10.0} starts/s", rate(plain));
    eprintln!("  with a key    {:>10.0} starts/s", rate(keyed));
    eprintln!(
        "  ratio         {:>10.3}x the time per start",
        keyed.as_secs_f64() / plain.as_secs_f64()
    );
}

async fn postgres(url: &str) -> PostgresStore {
    let pool = PostgresStore::pool_options()
        .max_connections(TASKS as u32)
        .min_connections(TASKS as u32)
        .connect(url)
        .await
        .expect("connect to DATABASE_URL");
    magic_link::store::sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(&pool)
        .await
        .expect("drop schema");
    let store = PostgresStore::builder(pool)
        .schema(SCHEMA)
        .build()
        .expect("valid schema");
    store.migrate().await.expect("migrate");
    store
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let memory = Arc::new(MemoryStore::new());
    let memory_links = Arc::new(rt.block_on(populate(&*memory)));
    rt.block_on(compare("MemoryStore", &memory, &memory_links, 5, 20_000));

    let pg = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let store = Arc::new(rt.block_on(postgres(&url)));
            let links = Arc::new(rt.block_on(populate(&*store)));
            rt.block_on(compare("PostgreSQL", &store, &links, 5, 2_000));
            Some((store, links))
        }
        _ => {
            eprintln!(
                "skipping PostgreSQL: DATABASE_URL is not set \
                 (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            None
        }
    };

    let mut group = c.benchmark_group("start_key");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for keyed in [false, true] {
        let kind = if keyed { "keyed" } else { "plain" };
        group.bench_function(format!("memory/{kind}"), |b| {
            b.iter_custom(|iters| rt.block_on(start_many(&memory, &memory_links, iters, keyed)));
        });
        if let Some((store, links)) = &pg {
            group.bench_function(format!("postgres/{kind}"), |b| {
                b.iter_custom(|iters| rt.block_on(start_many(store, links, iters, keyed)));
            });
        }
    }
    group.finish();
    if let Some((store, _)) = pg {
        rt.block_on(store.pool().close());
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
