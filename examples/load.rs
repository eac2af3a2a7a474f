//! A bounded load run against the example server, on 127.0.0.1 only.
//!
//! ```text
//! cargo build --release --features qr,http,background --example server --example load
//! target/release/examples/load --seconds 60
//! ```
//!
//! It starts the example server (the `server` binary beside its own, or `--server PATH`) on a
//! free port of 127.0.0.1 with the memory store and its rate limits off, tops up credits and
//! creates an unlimited link over the API, then runs `--clients` (64) concurrent clients for
//! `--seconds` (10; at most 600), each on its own connection, each cycling through the landing
//! page (`GET /l/{token}`), "Start verification" (`POST /l/{token}` with the start-key cookie
//! and the form token that landing page gave, redirects not followed; a client whose last
//! landing page had no form, for lack of credit, skips it) and API reads (`GET /api/links`,
//! `GET /api/account`). Each landing page is fetched as a new browser, so each start is a new
//! session.
//!
//! With `--with-limits` the server keeps its default rate limits instead (30 starts and 600 API
//! requests per client and minute): every client is 127.0.0.1, so this is one client's flood,
//! nearly all of it refused with 429.
//!
//! It counts the answers by class, with 429s and 503s for lack of credit apart, and prints a
//! Markdown table: latency percentiles over every request, and the server's resident memory
//! (`VmRSS`) before and after the load, and at its peak (`VmHWM`). It exits non-zero on any
//! other 5xx, any 4xx but 429, any failed connection, or when the credits held do not equal
//! the sessions started (each start holds one credit until its session ends).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use reqwest::{redirect, Client, StatusCode};
use serde_json::{json, Value};

/// The longest run it accepts, in seconds.
const MAX_SECONDS: u64 = 600;
/// The most clients it accepts.
const MAX_CLIENTS: usize = 1024;
/// Credits to add before the run: far more than a run can start.
const TOP_UPS: u64 = 5;
const TOP_UP: u64 = 1_000_000;

struct Options {
    seconds: u64,
    clients: usize,
    server: PathBuf,
    /// Keep the server's default rate limits.
    with_limits: bool,
}

fn options() -> Result<Options, String> {
    let here = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let mut options = Options {
        seconds: 10,
        clients: 64,
        server: here.with_file_name(format!("server{}", std::env::consts::EXE_SUFFIX)),
        with_limits: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value()?.parse().map_err(|e| format!("{e}"))?,
            "--clients" => options.clients = value()?.parse().map_err(|e| format!("{e}"))?,
            "--server" => options.server = PathBuf::from(value()?),
            "--with-limits" => options.with_limits = true,
            "-h" | "--help" => {
                println!("usage: load [--seconds N] [--clients N] [--server PATH] [--with-limits]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if !(1..=MAX_SECONDS).contains(&options.seconds) {
        return Err(format!("--seconds must be 1 to {MAX_SECONDS}"));
    }
    if !(1..=MAX_CLIENTS).contains(&options.clients) {
        return Err(format!("--clients must be 1 to {MAX_CLIENTS}"));
    }
    Ok(options)
}

/// The example server, killed when dropped.
struct Server {
    base: String,
    child: Child,
}

impl Server {
    fn start(path: &PathBuf, with_limits: bool) -> Result<Self, String> {
        let mut cmd = Command::new(path);
        cmd.args(["--port", "0", "--bind", "127.0.0.1"])
            .env_remove("DATABASE_URL")
            .env_remove("BASE_URL")
            .env_remove("ALLOWED_HOSTS")
            .env_remove("TRUSTED_PROXIES")
            .env_remove("RATE_LIMIT_START_PER_MINUTE")
            .env_remove("RATE_LIMIT_API_PER_MINUTE")
            .env_remove("RATE_LIMIT_VIEW_PER_MINUTE")
            .env("INITIAL_CREDITS", "0");
        if !with_limits {
            cmd.env("RATE_LIMIT_START_PER_MINUTE", "0")
                .env("RATE_LIMIT_API_PER_MINUTE", "0")
                .env("RATE_LIMIT_VIEW_PER_MINUTE", "0");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start {}: {e}", path.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Read every line, so that the pipe never fills.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let mut server = Self {
            base: String::new(),
            child,
        };
        server.base = rx
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "the server did not start listening")?;
        if !server.base.starts_with("http://127.0.0.1:") {
            return Err(format!("the server listens on {}", server.base));
        }
        Ok(server)
    }

    /// Its resident and peak memory, in KiB, from `/proc/<pid>/status`.
    fn memory(&self) -> (Option<u64>, Option<u64>) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Result<Client, String> {
    Client::builder()
        .redirect(redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

/// An owner API call that must succeed; its JSON answer. A 429 is retried after its
/// `Retry-After` (with `--with-limits`, the flood leaves the API bucket empty), a few times.
async fn api(http: &Client, url: String, body: Option<Value>) -> Result<Value, String> {
    for _ in 0..3 {
        let req = match &body {
            Some(body) => http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string()),
            None => http.get(&url),
        };
        let res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = res.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(1u64)
                .min(60);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        let text = res.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url}: {status}: {text}"));
        }
        return serde_json::from_str(&text).map_err(|e| format!("{url}: {e}"));
    }
    Err(format!("{url}: still 429 after three waits"))
}

/// What one client does, in turn.
#[derive(Debug, Clone, Copy)]
enum Op {
    Landing,
    Start,
    ListLinks,
    Account,
}

const CYCLE: [Op; 6] = [
    Op::Landing,
    Op::Start,
    Op::ListLinks,
    Op::Landing,
    Op::Start,
    Op::Account,
];

/// Answers counted by class.
#[derive(Debug, Default)]
struct Counts {
    ok: u64,
    redirect: u64,
    too_many: u64,
    no_credit: u64,
    other_4xx: u64,
    other_5xx: u64,
    failed: u64,
    /// Starts answered 303: sessions started.
    started: u64,
    /// Latencies of the answered requests, in microseconds.
    latencies: Vec<u32>,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.ok += other.ok;
        self.redirect += other.redirect;
        self.too_many += other.too_many;
        self.no_credit += other.no_credit;
        self.other_4xx += other.other_4xx;
        self.other_5xx += other.other_5xx;
        self.failed += other.failed;
        self.started += other.started;
        self.latencies.extend(other.latencies);
    }

    fn requests(&self) -> u64 {
        self.ok
            + self.redirect
            + self.too_many
            + self.no_credit
            + self.other_4xx
            + self.other_5xx
            + self.failed
    }
}

/// One client: requests in turn until `until`.
async fn run_client(
    http: Client,
    base: String,
    landing: String,
    first: usize,
    until: Instant,
) -> Counts {
    let mut counts = Counts::default();
    let mut i = first;
    // The last landing page's start-key cookie and form token.
    let mut form: Option<(String, String)> = None;
    while Instant::now() < until {
        let op = CYCLE[i % CYCLE.len()];
        i += 1;
        let req = match op {
            Op::Landing => http.get(&landing),
            Op::Start => match form.take() {
                Some((cookie, token)) => http
                    .post(&landing)
                    .header("cookie", cookie)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("form_token={token}")),
                None => continue,
            },
            Op::ListLinks => http.get(format!("{base}/api/links?limit=10")),
            Op::Account => http.get(format!("{base}/api/account")),
        };
        let t0 = Instant::now();
        let res = match req.send().await {
            Ok(res) => res,
            Err(err) => {
                eprintln!("{op:?}: {err}");
                counts.failed += 1;
                continue;
            }
        };
        let status = res.status();
        let cookie = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("ml_start="))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned);
        let body = match res.bytes().await {
            Ok(body) => body,
            Err(err) => {
                eprintln!("{op:?}: {err}");
                counts.failed += 1;
                continue;
            }
        };
        let micros = t0.elapsed().as_micros();
        counts
            .latencies
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
        if matches!(op, Op::Landing) {
            form = cookie.zip(form_token(&body));
        }
        let no_credit = || {
            body.windows(b"no_credits".len())
                .any(|w| w == b"no_credits")
        };
        match status {
            StatusCode::TOO_MANY_REQUESTS => counts.too_many += 1,
            StatusCode::SERVICE_UNAVAILABLE if no_credit() => counts.no_credit += 1,
            s if s.is_server_error() => {
                eprintln!("{op:?}: {s}");
                counts.other_5xx += 1;
            }
            s if s.is_client_error() => {
                eprintln!("{op:?}: {s}");
                counts.other_4xx += 1;
            }
            s if s.is_redirection() => {
                counts.redirect += 1;
                if matches!(op, Op::Start) {
                    counts.started += 1;
                }
            }
            _ => counts.ok += 1,
        }
    }
    counts
}

/// The landing page's form token, if it has the start form.
fn form_token(page: &[u8]) -> Option<String> {
    let page = std::str::from_utf8(page).ok()?;
    let marker = "name=\"form_token\" value=\"";
    let at = page.find(marker)? + marker.len();
    let len = page[at..].find('"')?;
    Some(page[at..at + len].to_owned())
}

/// The `q`-quantile of sorted latencies, in milliseconds.
fn quantile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "?".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

async fn run(options: Options) -> Result<bool, String> {
    let server = Server::start(&options.server, options.with_limits)?;
    let base = server.base.clone();
    let http = client()?;

    // Credits and an unlimited link, over the API.
    for n in 0..TOP_UPS {
        let body = json!({"amount": TOP_UP, "idempotency_key": format!("load-{n}")});
        api(&http, format!("{base}/api/credits"), Some(body)).await?;
    }
    let spec = json!({"name": "Load", "flow": "selfie", "limit": "unlimited"});
    let link = api(&http, format!("{base}/api/links"), Some(spec)).await?;
    let landing = link["url"]
        .as_str()
        .filter(|url| url.starts_with(&base))
        .ok_or("the link has no URL on the server")?
        .to_owned();

    let (rss_before, _) = server.memory();
    let started_at = Instant::now();
    let until = started_at + Duration::from_secs(options.seconds);
    let clients: Vec<_> = (0..options.clients)
        .map(|i| {
            let http = client()?;
            Ok(tokio::spawn(run_client(
                http,
                base.clone(),
                landing.clone(),
                i,
                until,
            )))
        })
        .collect::<Result<_, String>>()?;
    let mut counts = Counts::default();
    for client in clients {
        counts.add(client.await.map_err(|e| format!("a client failed: {e}"))?);
    }
    let elapsed = started_at.elapsed();
    let (rss_after, rss_peak) = server.memory();

    // Every session started holds one credit (sessions live 24 hours): nothing lost, nothing
    // doubled.
    let account = api(&http, format!("{base}/api/account"), None).await?;
    let held = account["held"].as_u64().unwrap_or(u64::MAX);

    counts.latencies.sort_unstable();
    let requests = counts.requests();
    let build = match (cfg!(debug_assertions), options.with_limits) {
        (true, false) => "debug",
        (false, false) => "release",
        (true, true) => "debug, default limits",
        (false, true) => "release, default limits",
    };
    println!(
        "| build | clients | seconds | requests | req/s | 2xx | 3xx (starts) | 429 | 503 no credit \
         | other 4xx | other 5xx | failed | p50 | p99 | RSS before | RSS after | RSS peak |"
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    println!(
        "| {build} | {} | {:.1} | {requests} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {:.2} ms | {:.2} ms | {} | {} | {} |",
        options.clients,
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        counts.ok,
        counts.redirect,
        counts.too_many,
        counts.no_credit,
        counts.other_4xx,
        counts.other_5xx,
        counts.failed,
        quantile(&counts.latencies, 0.50),
        quantile(&counts.latencies, 0.99),
        mib(rss_before),
        mib(rss_after),
        mib(rss_peak),
    );

    let mut ok = true;
    let mut fail = |why: String| {
        eprintln!("FAIL: {why}");
        ok = false;
    };
    if counts.other_5xx > 0 {
        fail(format!(
            "{} server errors (5xx but no-credit 503s)",
            counts.other_5xx
        ));
    }
    if counts.other_4xx > 0 {
        fail(format!("{} client errors (4xx but 429)", counts.other_4xx));
    }
    if counts.failed > 0 {
        fail(format!(
            "{} requests failed without an answer",
            counts.failed
        ));
    }
    if options.with_limits && counts.too_many == 0 {
        fail("no 429 from a server with its rate limits on".to_owned());
    }
    if counts.ok == 0 || counts.started == 0 {
        fail("no page or API answer, or no session started".to_owned());
    }
    if held != counts.started {
        fail(format!(
            "{held} credits held for {} sessions started",
            counts.started
        ));
    }
    Ok(ok)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    // Bounded even if the server stops answering: the run, then the stragglers' timeouts.
    let limit = Duration::from_secs(options.seconds + 90);
    match tokio::time::timeout(limit, run(options)).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(err)) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: the run did not finish in {} s", limit.as_secs());
            ExitCode::FAILURE
        }
    }
}
