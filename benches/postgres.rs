//! Redemptions per second on PostgreSQL, at 1, 4 and 16 concurrent tasks, each over a pool of
//! as many connections: on 100,000 links spread over 10,000 accounts, and on one hot link.
//!
//! Needs `DATABASE_URL`; without it, says so and measures nothing. It rebuilds the schema
//! `magic_link_bench` and leaves it for `benches/pgbench.sh`, which runs the same function call
//! with `pgbench -M prepared` as the floor and prints both as ratios:
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test benches/pgbench.sh
//! ```
//!
//! `postgres_notify` measures the cost of the wake-ups (`NOTIFY`) at 16 tasks on spread links,
//! with a `LISTEN`ing store as in production: `off` (`PostgresStoreBuilder::notify(false)`),
//! `after_commit` (the store's way: one coalesced `NOTIFY` from a task after commits) and
//! `in_transaction` (a statement trigger on the outbox that notifies inside every redemption's
//! transaction, built here for comparison only). Before Criterion's runs it prints the three
//! throughputs measured in alternation, and their ratios to `off`.
//!
//! `MAGIC_LINK_BENCH_REUSE=1` keeps the schema of an earlier run instead of rebuilding it.
//! `MAGIC_LINK_BENCH_SYNC_COMMIT=off` runs the connections with `synchronous_commit = off`, so
//! that commits do not wait for the disk and the server's and the client's work show.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use magic_link::store::sqlx::postgres::PgConnectOptions;
use magic_link::store::{Changes, LinkStore, PostgresStore};
use magic_link::{LinkId, SessionId, SessionTtl};
use uuid::Uuid;

/// The schema the bench builds, and `pgbench.sh` uses.
const SCHEMA: &str = "magic_link_bench";
/// Links spread over accounts; link `n` belongs to account `n % ACCOUNTS`.
const LINKS: u128 = 100_000;
const ACCOUNTS: u128 = 10_000;

/// Link `n`: the UUID whose 128 bits are `n`; the hot link is number `LINKS`, alone on account
/// `ACCOUNTS`. `pgbench.sh` computes the same ids in SQL.
fn link_id(n: u128) -> LinkId {
    LinkId::from_uuid(Uuid::from_u128(n))
}

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_893_456_000, 0).unwrap_or_default()
}

/// A store on the bench schema over a pool of `connections` connections, all opened now.
async fn store_with(url: &str, connections: u32) -> PostgresStore {
    store_notifying(url, connections, true).await
}

/// The same, notifying after commits or not.
async fn store_notifying(url: &str, connections: u32, notify: bool) -> PostgresStore {
    let mut options: PgConnectOptions = url.parse().expect("DATABASE_URL");
    if let Ok(mode) = std::env::var("MAGIC_LINK_BENCH_SYNC_COMMIT") {
        options = options.options([("synchronous_commit", mode)]);
    }
    let pool = PostgresStore::pool_options()
        .max_connections(connections)
        .min_connections(connections)
        .connect_with(options)
        .await
        .expect("connect to DATABASE_URL");
    PostgresStore::builder(pool)
        .schema(SCHEMA)
        .notify(notify)
        .build()
        .expect("valid schema")
}

/// How a redemption's wake-up is sent.
#[derive(Debug, Clone, Copy)]
enum Notifying {
    Off,
    AfterCommit,
    InTransaction,
}

impl Notifying {
    const ALL: [Self; 3] = [Self::Off, Self::AfterCommit, Self::InTransaction];

    fn name(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::AfterCommit => "after_commit",
            Self::InTransaction => "in_transaction",
        }
    }

    /// A store notifying this way (the outbox trigger is set by [`trigger`]), listening as a
    /// service's would.
    async fn store(self, url: &str, connections: u32) -> PostgresStore {
        let store = store_notifying(url, connections, matches!(self, Self::AfterCommit)).await;
        store.changes().await.expect("LISTEN");
        store
    }

    /// Creates the outbox trigger that notifies inside each transaction for `InTransaction`,
    /// drops it for the others.
    async fn trigger(self, store: &PostgresStore) {
        let sql = match self {
            Self::InTransaction => format!(
                "CREATE OR REPLACE FUNCTION {SCHEMA}.bench_notify() RETURNS trigger
                   LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$;
                 DROP TRIGGER IF EXISTS bench_notify ON {SCHEMA}.outbox;
                 CREATE TRIGGER bench_notify AFTER INSERT ON {SCHEMA}.outbox
                   FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.bench_notify();",
                channel = store.channel()
            ),
            _ => format!("DROP TRIGGER IF EXISTS bench_notify ON {SCHEMA}.outbox;"),
        };
        magic_link::store::sqlx::raw_sql(&sql)
            .execute(store.pool())
            .await
            .expect("the bench trigger");
    }
}

/// Redemptions per second of each way of notifying, measured in alternation (`rounds` rounds
/// of `per_round` redemptions by 16 tasks on spread links), printed with the ratio of each
/// time per redemption to `off`'s.
async fn compare_notifying(url: &str, rounds: u32, per_round: u64) {
    let mut stores = Vec::new();
    for way in Notifying::ALL {
        stores.push((way, way.store(url, 16).await, Duration::ZERO));
    }
    for _ in 0..rounds {
        for (way, store, total) in &mut stores {
            // The trigger is in the shared schema: set for this way before each turn.
            way.trigger(store).await;
            *total += redeem_many(store, 16, per_round, false).await;
        }
    }
    Notifying::Off.trigger(&stores[0].1).await;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "postgres_notify, 16 tasks, spread links, {rounds} x {per_round} each (load average: {})",
        load.trim()
    );
    let off = stores[0].2.as_secs_f64();
    for (way, store, total) in &stores {
        let per_second = f64::from(rounds) * per_round as f64 / total.as_secs_f64();
        eprintln!(
            "  {:<15} {per_second:>9.0} redemptions/s  {:.3}x the time of off",
            way.name(),
            total.as_secs_f64() / off
        );
        store.pool().close().await;
    }
}

/// Builds the bench schema (or keeps an earlier one, see the module docs).
async fn setup(url: &str) {
    let store = store_with(url, 1).await;
    if std::env::var("MAGIC_LINK_BENCH_REUSE").is_ok_and(|v| !v.is_empty()) && loaded(&store).await
    {
        return;
    }
    sqlx_drop(store.pool()).await;
    store.migrate().await.expect("migrate");
    // Bulk-load accounts and links in the layout the store writes (link numbers per account).
    let load = format!(
        "INSERT INTO {SCHEMA}.accounts (id, balance, held, created_at, link_count)
           SELECT ('0000000000000001' || lpad(to_hex(a), 16, '0'))::uuid, 1000000000000000, 0,
                  '2030-01-01T00:00:00Z', CASE WHEN a < {ACCOUNTS} THEN {per} ELSE 1 END
             FROM generate_series(0, {ACCOUNTS}) a;
         INSERT INTO {SCHEMA}.links (id, account_id, number, name, flow, usage_limit, uses,
                                     language, created_at)
           SELECT lpad(to_hex(n), 32, '0')::uuid,
                  ('0000000000000001' || lpad(to_hex(CASE WHEN n < {LINKS} THEN n % {ACCOUNTS}
                                                          ELSE {ACCOUNTS} END), 16, '0'))::uuid,
                  CASE WHEN n < {LINKS} THEN n / {ACCOUNTS} + 1 ELSE 1 END,
                  'bench', 'selfie', 'unlimited', 0, 'en', '2030-01-01T00:00:00Z'
             FROM generate_series(0, {LINKS}) n;
         ANALYZE {SCHEMA}.accounts, {SCHEMA}.links;",
        per = LINKS / ACCOUNTS
    );
    magic_link::store::sqlx::raw_sql(&load)
        .execute(store.pool())
        .await
        .expect("load");
    // Flush the load now rather than during the measurement (needs a privileged role).
    let _ = magic_link::store::sqlx::raw_sql("CHECKPOINT")
        .execute(store.pool())
        .await;
    store.pool().close().await;
}

/// Whether the schema holds the bench's links (from an earlier run, to reuse).
async fn loaded(store: &PostgresStore) -> bool {
    let count: Result<i64, _> =
        magic_link::store::sqlx::query_scalar(&format!("SELECT count(*) FROM {SCHEMA}.links"))
            .fetch_one(store.pool())
            .await;
    count.is_ok_and(|n| n == LINKS as i64 + 1)
}

async fn sqlx_drop(pool: &magic_link::store::sqlx::PgPool) {
    magic_link::store::sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .execute(pool)
        .await
        .expect("drop schema");
}

/// `total` redemptions by `tasks` tasks; `hot`: all on one link, else on random links.
async fn redeem_many(store: &PostgresStore, tasks: u64, total: u64, hot: bool) -> Duration {
    let ttl = SessionTtl::default();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let count = total / tasks + u64::from(t < total % tasks);
            tokio::spawn(async move {
                for _ in 0..count {
                    let n = if hot {
                        LINKS
                    } else {
                        u128::from(fastrand_u64()) % LINKS
                    };
                    let session = store
                        .redeem(link_id(n), SessionId::new(), None, None, ttl, now())
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
    start.elapsed()
}

/// A cheap random number (the links picked need not be unpredictable).
fn fastrand_u64() -> u64 {
    Uuid::new_v4().as_u64_pair().0
}

fn bench(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "skipping the PostgreSQL bench: DATABASE_URL is not set \
             (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(setup(&url));
    eprintln!("set up {LINKS} links in {:?}", started.elapsed());
    rt.block_on(compare_notifying(&url, 5, 2000));
    let mut group = c.benchmark_group("postgres_redeem");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (shape, hot) in [("spread", false), ("hot", true)] {
        for tasks in [1u64, 4, 16] {
            // As many connections as tasks, as pgbench has one per client. (A larger pool
            // is slower with few tasks: sqlx hands out the least recently used connection,
            // whose server process has gone cold.)
            let store = rt.block_on(store_with(&url, tasks as u32));
            group.bench_function(format!("{shape}/{tasks}"), |b| {
                b.iter_custom(|iters| rt.block_on(redeem_many(&store, tasks, iters, hot)));
            });
            rt.block_on(store.pool().close());
        }
    }
    group.finish();

    let mut group = c.benchmark_group("postgres_notify");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for way in Notifying::ALL {
        let store = rt.block_on(way.store(&url, 16));
        rt.block_on(way.trigger(&store));
        group.bench_function(way.name(), |b| {
            b.iter_custom(|iters| rt.block_on(redeem_many(&store, 16, iters, false)));
        });
        // Leaves the schema without the trigger, for pgbench.sh.
        rt.block_on(Notifying::Off.trigger(&store));
        rt.block_on(store.pool().close());
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
