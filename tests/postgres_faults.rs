//! PostgresStore under hostile settings and faults: a role whose default isolation is
//! `serializable`, connections killed in the middle of a statement, and a server restarted
//! while 16 tasks redeem and a dispatcher delivers.
//!
//! The first two read `DATABASE_URL` at run time and, without it, print why they skip. The
//! restart test runs a PostgreSQL instance of its own (initdb as the `postgres` user, in a
//! temporary directory, on a free port), so no other test is disturbed; without the server
//! binaries it says why and skips, except under CI (`CI` set), where it fails.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use magic_link::conformance::race;
use magic_link::store::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use magic_link::store::sqlx::{self, PgPool};
use magic_link::store::{LinkStore, PostgresStore, WebhookStore};
use magic_link::testing::RecordingTransport;
use magic_link::tokens::Keyring;
use magic_link::webhooks::{DeliveryStatus, Dispatcher, WebhookSecret};
use magic_link::{
    AccountId, Error, EventId, Flow, MagicLinks, NewLink, Outcome, Page, SessionStatus, UsageLimit,
};

fn database_url() -> Option<String> {
    let url = std::env::var("DATABASE_URL").ok();
    if url.is_none() {
        eprintln!("DATABASE_URL is not set: skipping (CI sets it; see .ci/postgres)");
    }
    url
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn migrated(pool: PgPool, schema: &str) -> PostgresStore {
    let store = PostgresStore::builder(pool)
        .schema(schema)
        .build()
        .expect("valid schema name");
    store.migrate().await.expect("migrate");
    store
}

/// Every rule holds for the link: uses == sessions == started + completed + abandoned, the
/// account holds one credit per started session and was billed one per completed session, and
/// the outbox has one `link.redeemed` per use.
async fn check_invariants<S: LinkStore>(
    links: &MagicLinks<S>,
    account: AccountId,
    link: magic_link::LinkId,
    credits: u64,
) -> (u64, u64, u64) {
    let uses = links.link(account, link).await.expect("link").uses;
    let mut sessions = Vec::new();
    let mut page = Page::first(Page::MAX_LIMIT);
    loop {
        let got = links.sessions(account, link, page).await.expect("sessions");
        sessions.extend(got.items);
        match got.next {
            Some(next) => page.after = next,
            None => break,
        }
    }
    let count =
        |f: fn(&SessionStatus) -> bool| sessions.iter().filter(|s| f(&s.status)).count() as u64;
    let started = count(|s| matches!(s, SessionStatus::Started));
    let completed = count(|s| matches!(s, SessionStatus::Completed { .. }));
    let abandoned = count(|s| matches!(s, SessionStatus::Abandoned { .. }));
    let account_now = links.account(account).await.expect("account");
    assert_eq!(uses, sessions.len() as u64, "uses == sessions");
    assert_eq!(
        uses,
        started + completed + abandoned,
        "every session is counted once"
    );
    assert_eq!(
        account_now.held, started,
        "one credit held per open session"
    );
    assert_eq!(
        credits - account_now.balance,
        completed,
        "captured credits == completed sessions"
    );
    let redeemed = links
        .events_after(account, 0, usize::MAX)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.kind.name() == "link.redeemed")
        .count() as u64;
    assert!(redeemed <= uses, "no event without its change");
    (uses, completed, abandoned)
}

/// All `link.redeemed` events of `account`, read page by page.
async fn event_ids<S: LinkStore>(store: &S, account: AccountId) -> HashSet<EventId> {
    let mut ids = HashSet::new();
    let mut cursor = 0;
    loop {
        let batch = store.outbox_after(cursor, 1000).await.expect("outbox");
        let Some(last) = batch.last() else { break };
        cursor = last.seq;
        ids.extend(
            batch
                .into_iter()
                .filter(|e| e.account == account)
                .map(|e| e.id),
        );
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_serializable_role_default_changes_no_count() {
    let Some(url) = database_url() else { return };
    let admin = PgPool::connect(&url).await.expect("connect");
    let role = unique("ml_serializable");
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&admin)
        .await
        .expect("database name");
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN; \
         ALTER ROLE {role} SET default_transaction_isolation = 'serializable'; \
         GRANT CREATE ON DATABASE \"{database}\" TO {role};"
    ))
    .execute(&admin)
    .await
    .expect("create role");
    let options = PgConnectOptions::from_str(&url)
        .expect("url")
        .username(&role);

    // The role's own default is serializable: a plain pool of the user's sees it.
    let plain = PgPoolOptions::new()
        .max_connections(12)
        .connect_with(options.clone())
        .await
        .expect("connect as the role");
    let level: String = sqlx::query_scalar("SHOW transaction_isolation")
        .fetch_one(&plain)
        .await
        .expect("show");
    assert_eq!(level, "serializable", "the hostile default is in force");

    // The store's own pool options run at READ COMMITTED whatever the default.
    let pool = PostgresStore::pool_options()
        .max_connections(16)
        .connect_with(options)
        .await
        .expect("connect");
    let level: String = sqlx::query_scalar("SHOW transaction_isolation")
        .fetch_one(&pool)
        .await
        .expect("show");
    assert_eq!(level, "read committed", "pool_options sets READ COMMITTED");
    let schema = unique("ml_ser");
    let store = Arc::new(migrated(pool, &schema).await);
    // `race` panics on any error that is not a typed rejection, and checks exact counts.
    let report = race(
        Arc::clone(&store),
        32,
        4,
        UsageLimit::multi(5).unwrap(),
        1000,
    )
    .await;
    assert_eq!(report.successes, 5);
    let report = race(Arc::clone(&store), 16, 8, UsageLimit::Unlimited, 100).await;
    assert_eq!(report.successes, 100);

    // A pool the user built, left at serializable: conflicts are retried.
    let user_store = Arc::new(
        PostgresStore::builder(plain)
            .schema(&schema)
            .build()
            .expect("schema"),
    );
    let report = race(
        Arc::clone(&user_store),
        8,
        4,
        UsageLimit::multi(5).unwrap(),
        1000,
    )
    .await;
    assert_eq!(report.successes, 5);

    store.pool().close().await;
    user_store.pool().close().await;
    sqlx::raw_sql(&format!(
        "DROP SCHEMA \"{schema}\" CASCADE; DROP OWNED BY {role}; DROP ROLE {role};"
    ))
    .execute(&admin)
    .await
    .expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_killed_mid_statement_break_no_invariant() {
    let Some(url) = database_url() else { return };
    let admin = PgPool::connect(&url).await.expect("connect");
    let name = unique("ml_victim");
    let options = PgConnectOptions::from_str(&url)
        .expect("url")
        .application_name(&name);
    let pool = PostgresStore::pool_options()
        .max_connections(16)
        .connect_with(options)
        .await
        .expect("connect");
    let schema = unique("ml_kill");
    let store = migrated(pool, &schema).await;
    let links = Arc::new(MagicLinks::new(
        store,
        Keyring::generate().expect("keyring"),
        "https://verify.test/l/".parse().expect("base"),
    ));
    let account = links
        .create_account(AccountId::new())
        .await
        .expect("account")
        .id;
    let credits = 100_000;
    let key = magic_link::IdempotencyKey::new("credits").expect("key");
    links.top_up(account, credits, key).await.expect("top up");
    let link = links
        .create_link(
            account,
            NewLink::new("kill", Flow::Selfie).limit(UsageLimit::Unlimited),
        )
        .await
        .expect("link");

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (links, token, stop) = (Arc::clone(&links), link.token.clone(), Arc::clone(&stop));
        let (ok, failed) = (Arc::clone(&ok), Arc::clone(&failed));
        tasks.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 400 {
                n += 1;
                match links.redeem(&token, magic_link::start::Start::new()).await {
                    Ok(started) if (i + n).is_multiple_of(3) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        // Completing may also be cut off; that too must leave the rules whole.
                        let _ = links
                            .complete_session(account, started.session.id, Outcome::Approved)
                            .await;
                    }
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::Backend(_)) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(other) => panic!("only backend errors are expected here: {other:?}"),
                }
            }
        }));
    }
    let mut killed = 0i64;
    for _ in 0..40 {
        tokio::time::sleep(StdDuration::from_millis(15)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'active'",
        )
        .bind(&name)
        .fetch_one(&admin)
        .await
        .expect("terminate");
        killed += n;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task");
    }
    assert!(
        killed > 0,
        "the test killed no statement in flight: it proves nothing"
    );
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "killed statements fail with Backend errors"
    );

    // The pool recovers: new connections replace the killed ones.
    links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .expect("a redemption after the storm");
    let (uses, ..) = check_invariants(&links, account, link.link.id, credits).await;
    let ok = ok.load(Ordering::Relaxed) + 1;
    assert!(
        uses >= ok,
        "every success counted: {uses} uses, {ok} successes"
    );
    assert!(
        uses <= ok + failed.load(Ordering::Relaxed),
        "no use without a redemption that may have committed"
    );
    eprintln!("killed {killed} statements; {ok} redemptions succeeded, {uses} uses");

    links.store().pool().close().await;
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await
        .expect("drop schema");
}

/// A PostgreSQL instance of the test's own, stopped and removed on drop.
struct PrivateServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivateServer {
    fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()?;
        let dir = std::env::temp_dir().join(unique("ml_pg"));
        std::fs::create_dir(&dir).expect("temp dir");
        run(Command::new("chown").arg("postgres:postgres").arg(&dir));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let server = Self { bin, dir, port };
        server.as_postgres(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        server.pg_ctl("start");
        Some(server)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_postgres(&self, tool: &str, args: &[&str]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args));
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        let data = self.data();
        let mut args = vec!["-D", &data, "-l", &log, "-o", &options, "-w", action];
        if action != "start" {
            args.extend(["-m", "fast"]);
        }
        self.as_postgres("pg_ctl", &args);
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let data = self.data();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    Path::new("/proc/self/status").exists()
        && std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_restart_under_load_loses_nothing() {
    let server = if is_root() {
        PrivateServer::start()
    } else {
        None
    };
    let Some(server) = server else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the restart test: PostgreSQL's server binaries and root are needed"
        );
        eprintln!("no PostgreSQL server binaries (or not root): skipping the restart test");
        return;
    };
    let pool = PostgresStore::pool_options()
        .max_connections(20)
        .acquire_timeout(StdDuration::from_secs(3))
        .connect(&server.url())
        .await
        .expect("connect to the private server");
    let store = Arc::new(migrated(pool, "magic_link").await);
    let links = Arc::new(MagicLinks::new(
        Arc::clone(&store),
        Keyring::generate().expect("keyring"),
        "https://verify.test/l/".parse().expect("base"),
    ));
    let account = links
        .create_account(AccountId::new())
        .await
        .expect("account")
        .id;
    let credits = 100_000;
    let key = magic_link::IdempotencyKey::new("credits").expect("key");
    links.top_up(account, credits, key).await.expect("top up");
    let secret = WebhookSecret::from_bytes(&[7; 32]).expect("secret");
    links
        .set_webhook_endpoint(account, "https://hooks.test/restart", vec![secret])
        .await
        .expect("endpoint");
    let link = links
        .create_link(
            account,
            NewLink::new("restart", Flow::Document).limit(UsageLimit::Unlimited),
        )
        .await
        .expect("link");

    let transport = Arc::new(RecordingTransport::new());
    let dispatcher = Arc::new(
        Dispatcher::new(Arc::clone(&store), Arc::clone(&transport))
            .timeout(StdDuration::from_secs(1))
            .batch_size(128)
            .lease(StdDuration::from_secs(6)),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let dispatcher_errors = Arc::new(AtomicU64::new(0));
    let delivering = {
        let (dispatcher, stop, errors) = (
            Arc::clone(&dispatcher),
            Arc::clone(&stop),
            Arc::clone(&dispatcher_errors),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if dispatcher.run_once().await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(StdDuration::from_millis(20)).await;
            }
        })
    };
    let failed = Arc::new(AtomicU64::new(0));
    // The load runs until a while after the restart (bounded in count and time).
    let load_done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let (links, token, failed) = (Arc::clone(&links), link.token.clone(), Arc::clone(&failed));
        let load_done = Arc::clone(&load_done);
        tasks.push(tokio::spawn(async move {
            for n in 0..5_000u32 {
                if load_done.load(Ordering::Relaxed) {
                    break;
                }
                match links.redeem(&token, magic_link::start::Start::new()).await {
                    Ok(started) => {
                        let id = started.session.id;
                        let done = match (i + n) % 3 {
                            0 => links
                                .complete_session(account, id, Outcome::Approved)
                                .await
                                .map(drop),
                            1 => links.abandon_session(account, id).await.map(drop),
                            _ => Ok(()),
                        };
                        if let Err(e) = done {
                            assert!(matches!(e, Error::Backend(_)), "{e:?}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(Error::Backend(_)) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(StdDuration::from_millis(10)).await;
                    }
                    Err(other) => panic!("only backend errors are expected here: {other:?}"),
                }
            }
        }));
    }
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    let started_at = "SELECT pg_postmaster_start_time()::text";
    let before: String = sqlx::query_scalar(started_at)
        .fetch_one(store.pool())
        .await
        .expect("start time");
    let uses_before = links.link(account, link.link.id).await.expect("link").uses;
    let restart = {
        let (bin, dir, port) = (server.bin.clone(), server.dir.clone(), server.port);
        tokio::task::spawn_blocking(move || {
            let server = PrivateServer { bin, dir, port };
            server.pg_ctl("restart");
            std::mem::forget(server); // the outer handle stops and removes it
        })
    };
    restart.await.expect("restart");
    let after: String = sqlx::query_scalar(started_at)
        .fetch_one(store.pool())
        .await
        .expect("start time after the restart");
    assert_ne!(before, after, "the server restarted");
    let uses_at_restart = links.link(account, link.link.id).await.expect("link").uses;
    tokio::time::sleep(StdDuration::from_millis(400)).await;
    load_done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("redeeming task");
    }
    stop.store(true, Ordering::Relaxed);
    delivering.await.expect("dispatcher task");
    let uses_after = links.link(account, link.link.id).await.expect("link").uses;
    assert!(
        uses_before > 0 && uses_after > uses_at_restart,
        "the load ran before and after the restart: {uses_before}, {uses_at_restart}, {uses_after}"
    );

    // The pool recovered; the rules held.
    links
        .redeem(&link.token, magic_link::start::Start::new())
        .await
        .expect("a redemption after the restart");
    let (uses, completed, abandoned) =
        check_invariants(&links, account, link.link.id, credits).await;
    assert!(
        completed > 0 && abandoned > 0,
        "{uses} uses, {completed} completed, {abandoned} abandoned"
    );

    // The dispatcher goes on: it delivers every event, each accepted once by a receiver
    // that deduplicates by webhook-id. Leases of attempts cut off by the restart run out
    // after 6 s; the loop is bounded.
    let expected: HashSet<String> = event_ids(&*store, account)
        .await
        .iter()
        .map(|id| id.to_string())
        .collect();
    let undelivered = format!(
        "SELECT count(*) FROM \"{}\".deliveries WHERE status <> 'delivered'",
        store.schema()
    );
    let mut received = HashSet::new();
    for _ in 0..100 {
        // Drain what is due, then wait for leases cut off by the restart to run out: an
        // attempt whose send went through but whose record did not is sent again then.
        while dispatcher.run_once().await.is_ok_and(|r| r.attempted > 0) {}
        received = transport
            .requests()
            .into_iter()
            .map(|r| r.id)
            .collect::<HashSet<_>>();
        let pending: i64 = sqlx::query_scalar(&undelivered)
            .fetch_one(store.pool())
            .await
            .expect("count");
        if received.is_superset(&expected) && pending == 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(200)).await;
    }
    let sent = transport.requests().len();
    assert_eq!(
        received.intersection(&expected).count(),
        expected.len(),
        "every event arrived"
    );
    for id in &expected {
        let event: EventId = id.parse().expect("event id");
        let delivery = store.delivery(account, event).await.expect("delivery");
        assert!(
            matches!(delivery.status, DeliveryStatus::Delivered { .. }),
            "{delivery:?}"
        );
    }
    eprintln!(
        "restart: {} failed operations, {} dispatcher errors, {uses} uses, {} events \
         delivered in {sent} requests (the receiver deduplicates the rest)",
        failed.load(Ordering::Relaxed),
        dispatcher_errors.load(Ordering::Relaxed),
        expected.len()
    );
    store.pool().close().await;
}

/// A TCP proxy on 127.0.0.1 between one pool and the server that, once armed, cuts the
/// connection at the first reply to a statement that ran: it watches the server's messages and
/// holds back every message after arming; at a ReadyForQuery (`Z`) that follows a DataRow
/// (`D`) or CommandComplete (`C`), the implicit transaction has committed on the server, and
/// the proxy closes both sides instead of forwarding the reply. Replies of other round trips
/// (a statement's Parse and Describe) are forwarded when their `Z` arrives.
struct CuttingProxy {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicU64>,
}

impl CuttingProxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicU64::new(0));
        let (armed2, cuts2) = (Arc::clone(&armed), Arc::clone(&cuts));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(Self::pipe(
                    client,
                    server,
                    Arc::clone(&armed2),
                    Arc::clone(&cuts2),
                ));
            }
        });
        Self { addr, armed, cuts }
    }

    async fn pipe(
        client: tokio::net::TcpStream,
        server: tokio::net::TcpStream,
        armed: Arc<AtomicBool>,
        cuts: Arc<AtomicU64>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let upstream = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        // Server to client, message by message (the pool does not ask for TLS, so every server
        // message is typed: one byte, then a big-endian length that counts itself).
        let mut buf: Vec<u8> = Vec::new();
        let mut held: Vec<u8> = Vec::new();
        let mut ran = false;
        let mut chunk = [0u8; 8192];
        'read: loop {
            let n = match server_read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= 5 {
                let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
                if buf.len() < 1 + len {
                    break;
                }
                let message: Vec<u8> = buf.drain(..1 + len).collect();
                if !armed.load(Ordering::SeqCst) && held.is_empty() {
                    if client_write.write_all(&message).await.is_err() {
                        break 'read;
                    }
                    continue;
                }
                let kind = message[0];
                held.extend_from_slice(&message);
                ran |= kind == b'D' || kind == b'C';
                if kind == b'Z' {
                    if ran && armed.swap(false, Ordering::SeqCst) {
                        // Committed on the server; the reply never reaches the client.
                        cuts.fetch_add(1, Ordering::SeqCst);
                        break 'read;
                    }
                    if client_write.write_all(&held).await.is_err() {
                        break 'read;
                    }
                    held.clear();
                    ran = false;
                }
            }
        }
        upstream.abort();
        let _ = client_write.shutdown().await;
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn cuts(&self) -> u64 {
        self.cuts.load(Ordering::SeqCst)
    }
}

/// Safe retry after an unknown outcome: the redemption's commit reaches the server, the
/// connection drops before its reply comes back, and the caller gets a backend error. Its retry
/// with the same start key returns the same session, and the link has one use, one hold and one
/// `link.redeemed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_a_lost_commit_reply_returns_the_same_session() {
    use magic_link::start::{Start, StartKey};
    let Some(url) = database_url() else { return };
    let direct = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .expect("connect");
    let schema = unique("ml_proxy");
    let store = migrated(direct.clone(), &schema).await;
    let keyring = Keyring::generate().expect("keyring");
    let base: magic_link::tokens::LinkBase = "https://verify.example.com/l/".parse().unwrap();
    let links = MagicLinks::new(store.clone(), keyring.clone(), base.clone());
    let account = links
        .create_account(AccountId::new())
        .await
        .expect("account");
    links
        .top_up(account.id, 5, magic_link::IdempotencyKey::new("t").unwrap())
        .await
        .expect("top up");
    let created = links
        .create_link(account.id, NewLink::new("proxy", Flow::Selfie))
        .await
        .expect("link");

    // A dedicated pool of one connection, through the proxy, without TLS.
    let options = PgConnectOptions::from_str(&url)
        .expect("DATABASE_URL")
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    let upstream = tokio::net::lookup_host((options.get_host(), options.get_port()))
        .await
        .expect("resolve")
        .next()
        .expect("an address");
    let proxy = CuttingProxy::start(upstream).await;
    let proxied_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.host("127.0.0.1").port(proxy.addr.port()))
        .await
        .expect("connect through the proxy");
    let proxied = PostgresStore::builder(proxied_pool)
        .schema(&schema)
        .build()
        .expect("valid schema name");
    let through = MagicLinks::new(proxied, keyring, base);
    // The connection is open and works.
    assert_eq!(through.account(account.id).await.expect("read").balance, 5);

    let key = StartKey::generate().expect("key");
    proxy.arm();
    let lost = through
        .redeem(&created.token, Start::with_key(key.clone()))
        .await;
    assert!(
        matches!(lost, Err(Error::Backend(_))),
        "the caller sees a backend error: {lost:?}"
    );
    assert_eq!(proxy.cuts(), 1, "the proxy cut the reply");
    assert_eq!(
        links.link(account.id, created.link.id).await.unwrap().uses,
        1,
        "the first attempt committed"
    );

    let retried = through
        .redeem(&created.token, Start::with_key(key))
        .await
        .expect("the retry");
    assert!(retried.resumed, "the retry returns the committed session");
    let sessions = links
        .sessions(account.id, created.link.id, Page::first(10))
        .await
        .expect("sessions")
        .items;
    assert_eq!(sessions.len(), 1, "one session");
    assert_eq!(sessions[0].id, retried.session.id, "the same session");
    let (uses, _, _) = check_invariants(&links, account.id, created.link.id, 5).await;
    assert_eq!(uses, 1, "uses == 1");
    assert_eq!(links.account(account.id).await.unwrap().held, 1);

    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&direct)
        .await
        .expect("drop schema");
}
