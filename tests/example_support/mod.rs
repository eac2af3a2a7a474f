//! Shared by the tests that drive the example server as a separate process (`examples/server`).
#![allow(dead_code)]

pub mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The features this test binary was built with, which the example is built with too (the
/// same feature set keeps cargo from rebuilding the library).
fn features() -> Vec<&'static str> {
    let mut features = vec!["qr"];
    if cfg!(feature = "test-util") {
        features.push("test-util");
    }
    if cfg!(feature = "http") {
        features.push("http");
    }
    if cfg!(feature = "background") {
        features.push("background");
    }
    if cfg!(feature = "postgres") {
        features.push("postgres");
    }
    features
}

/// `target/<profile>`, from this test binary's path (`target/<profile>/deps/<test>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// Where artefacts go: `target/<dir>`.
pub fn artefact_dir(dir: &str) -> PathBuf {
    let target = profile_dir()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(profile_dir);
    let path = target.join(dir);
    std::fs::create_dir_all(&path).expect("create the artefact directory");
    path
}

/// The example server's binary, built (or found up to date) by cargo with this test's features.
pub fn server_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
                .args(["build", "--quiet", "--example", "server", "--features"])
                .arg(features().join(","));
            // Cargo gives test processes the package's variables; build scripts that watch
            // them (ring's does) would otherwise see a change and rebuild everything above.
            for (name, _) in std::env::vars_os() {
                let Some(name) = name.to_str() else { continue };
                let injected = [
                    "CARGO_PKG_",
                    "CARGO_MANIFEST_",
                    "CARGO_BIN_",
                    "CARGO_CRATE_",
                ]
                .iter()
                .any(|p| name.starts_with(p))
                    || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&name);
                if injected {
                    cmd.env_remove(name);
                }
            }
            if !cfg!(debug_assertions) {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "cargo build --example server failed");
            let bin = profile_dir().join("examples").join("server");
            assert!(bin.exists(), "{} was not built", bin.display());
            bin
        })
        .clone()
}

/// A running example server, killed when dropped.
pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    child: Child,
}

impl Server {
    /// Starts the example server on a free port with these extra environment variables (and
    /// without `DATABASE_URL` unless given), and waits until it listens. Its rate limits are
    /// off unless `env` sets them: the tests of everything else send many requests quickly.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(server_binary());
        cmd.args(["--port", "0", "--bind", "127.0.0.1"])
            .env_remove("DATABASE_URL")
            .env_remove("BASE_URL")
            .env_remove("PORT")
            .env_remove("ALLOWED_HOSTS")
            .env_remove("TRUSTED_PROXIES")
            .env("RATE_LIMIT_START_PER_MINUTE", "0")
            .env("RATE_LIMIT_API_PER_MINUTE", "0")
            .env("RATE_LIMIT_VIEW_PER_MINUTE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the example server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut sent = false;
            while let Some(Ok(line)) = lines.next() {
                if !sent {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        let addr = rest.split_whitespace().next().unwrap_or_default();
                        let _ = tx.send(addr.to_owned());
                        sent = true;
                    }
                }
                println!("[server] {line}");
            }
        });
        let mut server = Self {
            base: String::new(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(base) = rx.recv_timeout(Duration::from_millis(100)) {
                server.base = base;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the example server exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the example server did not start"
            );
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that follows no redirects, so tests see every status.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// What a browser takes from a landing page for its start: its start-key cookie
/// (`ml_start=...`, set by the page when the browser had none) and the form's token.
#[derive(Debug, Clone)]
pub struct LandingForm {
    /// `ml_start=<key>`, for a `Cookie` header.
    pub cookie: String,
    /// The hidden `form_token` field.
    pub form_token: String,
}

/// GETs a landing page as a browser holding `cookie` (`ml_start=...`), or as a new browser;
/// panics unless the page has the start form.
pub async fn landing_form(http: &reqwest::Client, url: &str, cookie: Option<&str>) -> LandingForm {
    let mut req = http.get(url);
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.expect("the landing page");
    let set = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ml_start="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned());
    let cookie = match (cookie, set) {
        (_, Some(set)) => set,
        (Some(cookie), None) => cookie.to_owned(),
        (None, None) => panic!("the landing page set no start-key cookie"),
    };
    let page = res.text().await.expect("the landing page's HTML");
    let form_token =
        form_token(&page).unwrap_or_else(|| panic!("no form token on the landing page: {page}"));
    LandingForm { cookie, form_token }
}

/// The landing page's form token, if it has the form.
pub fn form_token(page: &str) -> Option<String> {
    let at = page.find("name=\"form_token\" value=\"")? + "name=\"form_token\" value=\"".len();
    let len = page[at..].find('"')?;
    Some(page[at..at + len].to_owned())
}

/// POSTs a landing page's start form as the browser that `form` came from.
pub async fn post_start(
    http: &reqwest::Client,
    url: &str,
    form: &LandingForm,
) -> reqwest::Response {
    http.post(url)
        .header("cookie", &form.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("form_token={}", form.form_token))
        .send()
        .await
        .expect("a start")
}

/// Starts a session as a new browser would: the landing page, then its form.
pub async fn start(http: &reqwest::Client, url: &str) -> reqwest::Response {
    let form = landing_form(http, url, None).await;
    post_start(http, url, &form).await
}

/// POSTs JSON, returning the status and the JSON answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = res.status().as_u16();
    let text = res.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// GETs JSON, returning the status and the JSON answer.
pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let res = http.get(url).send().await.expect("GET");
    let status = res.status().as_u16();
    let text = res.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// The requests a [`Receiver`] got: headers and raw body.
type Log = std::sync::Arc<std::sync::Mutex<Vec<(http::HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on 127.0.0.1 that records every request it gets and answers 204.
pub struct Receiver {
    /// Where it listens: `http://127.0.0.1:PORT/hook`.
    pub url: String,
    received: Log,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts it on the current runtime.
    pub async fn start() -> Self {
        use axum::extract::State;
        use axum::routing::post;
        async fn hook(
            State(log): State<Log>,
            headers: http::HeaderMap,
            body: axum::body::Bytes,
        ) -> http::StatusCode {
            log.lock().unwrap().push((headers, body.to_vec()));
            http::StatusCode::NO_CONTENT
        }
        let received = Log::default();
        let app = axum::Router::new()
            .route("/hook", post(hook))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            received,
            task,
        }
    }

    /// The JSON `type` of every webhook received so far, in order of arrival.
    pub fn received_types(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, body)| {
                let json: serde_json::Value = serde_json::from_slice(body).ok()?;
                json["type"].as_str().map(str::to_owned)
            })
            .collect()
    }

    /// Waits up to 20 s for a webhook whose JSON `type` is `kind` and whose `data` field
    /// `field` is `value`; returns its headers and raw body.
    pub async fn wait_for(
        &self,
        kind: &str,
        field: &str,
        value: &str,
    ) -> (http::HeaderMap, Vec<u8>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.received.lock().unwrap().iter().find_map(|(h, body)| {
                let json: serde_json::Value = serde_json::from_slice(body).ok()?;
                (json["type"] == kind && json["data"][field] == value)
                    .then(|| (h.clone(), body.clone()))
            });
            if let Some(found) = found {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} webhook with {field} = {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One message of a Server-Sent Events stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseMessage {
    /// `event:` (empty: none).
    pub event: String,
    /// `id:`, if the message set one.
    pub id: Option<String>,
    /// `data:` lines, joined with newlines.
    pub data: String,
}

/// A Server-Sent Events stream being read.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    /// GETs `url` with `Last-Event-ID: last_id` if given; the stream, or the status it got.
    pub async fn open(url: &str, last_id: Option<&str>) -> Result<Self, u16> {
        let mut req = http().get(url).header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        // No overall timeout on the stream: each read below has its own.
        let response = req
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .expect("GET the stream");
        if response.status() != 200 {
            return Err(response.status().as_u16());
        }
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The next message with an `event:` or `data:`, waiting up to 30 s (a safety net).
    pub async fn next(&mut self) -> SseMessage {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut message = SseMessage::default();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        message.event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        message.id = Some(v.trim_start().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                message.data = data.join("\n");
                if !message.event.is_empty() || !message.data.is_empty() {
                    return message;
                }
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .expect("an event within 30 s")
                .expect("read the stream")
                .expect("the stream is still open");
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// The next message of type `event`, skipping others.
    pub async fn next_of(&mut self, event: &str) -> SseMessage {
        loop {
            let message = self.next().await;
            if message.event == event {
                return message;
            }
        }
    }
}
