//! Headless Chromium driven through ChromeDriver, with a small W3C WebDriver client.
//!
//! Only what the browser test needs: navigate, find, click, type, read, run a script, switch
//! windows, take screenshots. Chromium and ChromeDriver are Debian's (`.ci/browser-deps`
//! installs them). Everything runs on 127.0.0.1; every process started here is killed when the
//! [`Browser`] is dropped, also when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Chromium and ChromeDriver are, if installed.
pub struct Binaries {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
}

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

impl Binaries {
    /// Finds Chromium (`CHROMIUM`, or `chromium` / `chromium-browser` on `PATH`) and
    /// ChromeDriver (`CHROMEDRIVER`, or `chromedriver` on `PATH`); `Err` says what is missing.
    pub fn find() -> Result<Self, String> {
        let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
        let chromium = from_env("CHROMIUM")
            .or_else(|| which(&["chromium", "chromium-browser"]))
            .ok_or("chromium is not installed")?;
        let chromedriver = from_env("CHROMEDRIVER")
            .or_else(|| which(&["chromedriver"]))
            .ok_or("chromedriver is not installed")?;
        Ok(Self {
            chromium,
            chromedriver,
        })
    }
}

/// An element reference.
#[derive(Clone, Debug)]
pub struct Element(Value);

/// A ChromeDriver process with one headless Chromium session.
pub struct Browser {
    http: reqwest::Client,
    session_url: String,
    driver: Child,
    profile: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium with a fresh profile (a desktop window).
    pub async fn start(bins: &Binaries) -> Self {
        Self::launch(bins, None).await
    }

    /// Like [`Browser::start`], but a phone: Chrome's mobile emulation with a viewport of
    /// `width` × `height` CSS pixels (device pixel ratio 1, so screenshots have that size too),
    /// touch, and a phone's user agent. Its cookies are its own (another profile).
    pub async fn start_phone(bins: &Binaries, width: u32, height: u32) -> Self {
        let emulation = json!({
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0,
                              "mobile": true, "touch": true},
            "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
                          (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36",
        });
        Self::launch(bins, Some(emulation)).await
    }

    async fn launch(bins: &Binaries, mobile_emulation: Option<Value>) -> Self {
        let port = free_port();
        let profile = std::env::temp_dir().join(format!(
            "magic-link-chromium-{}-{}",
            std::process::id(),
            port
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("a profile directory");
        let mut cmd = Command::new(&bins.chromedriver);
        cmd.arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            // Its own process group, so that Chromium and its helpers are killed with it.
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let driver = cmd.spawn().expect("start chromedriver");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("an HTTP client");
        let mut browser = Self {
            http,
            session_url: String::new(),
            driver,
            profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = browser
                .http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            "--lang=en-US",
            &format!("--user-data-dir={}", browser.profile.display()),
        ];
        let mut options = json!({"binary": bins.chromium, "args": args});
        if let Some(emulation) = mobile_emulation {
            options["mobileEmulation"] = emulation;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            // Chrome's DevTools network events, for `requests_sent`.
            "goog:loggingPrefs": {"performance": "ALL"},
        }}});
        let res: Value = browser
            .http
            .post(format!("{base}/session"))
            .body(caps.to_string())
            .send()
            .await
            .expect("new session")
            .text()
            .await
            .map(|t| serde_json::from_str(&t).expect("JSON"))
            .expect("a body");
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"));
        browser.session_url = format!("{base}/session/{id}");
        browser
            .cmd(
                "POST",
                "/timeouts",
                json!({"implicit": 0, "pageLoad": 30000, "script": 30000}),
            )
            .await;
        browser
    }

    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{}", self.session_url, path);
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).body(body.to_string()),
        };
        let res = req.send().await.expect("a WebDriver request");
        let text = res.text().await.expect("a WebDriver answer");
        let value: Value = serde_json::from_str(&text).expect("a JSON WebDriver answer");
        let value = value["value"].clone();
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    /// Opens a URL and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.cmd("GET", "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The elements matching a CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self
            .cmd(
                "POST",
                "/elements",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(Element)
            .collect()
    }

    fn element_id(el: &Element) -> String {
        el.0.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element reference")
            .to_owned()
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(el) = self.find_all(css).await.into_iter().next() {
                return el;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} on {} within {timeout:?}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element matching `css`, which must be there now.
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for(css, Duration::from_secs(5)).await
    }

    /// Clicks an element.
    pub async fn click(&self, el: &Element) {
        let id = Self::element_id(el);
        self.cmd("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Clicks the element matching `css`.
    pub async fn click_css(&self, css: &str) {
        let el = self.find(css).await;
        self.click(&el).await;
    }

    /// Clears a text field and types into it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        let id = Self::element_id(&el);
        self.cmd("POST", &format!("/element/{id}/clear"), json!({}))
            .await;
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Chooses a file in a file input.
    pub async fn choose_file(&self, css: &str, path: &Path) {
        let el = self.find(css).await;
        let id = Self::element_id(&el);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": path.display().to_string() }),
        )
        .await;
    }

    /// An element's rendered text.
    pub async fn text(&self, el: &Element) -> String {
        let id = Self::element_id(el);
        self.cmd("GET", &format!("/element/{id}/text"), Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The rendered text of the element matching `css`.
    pub async fn text_css(&self, css: &str) -> String {
        let el = self.find(css).await;
        self.text(&el).await
    }

    /// An element's DOM property.
    pub async fn property(&self, el: &Element, name: &str) -> Value {
        let id = Self::element_id(el);
        self.cmd(
            "GET",
            &format!("/element/{id}/property/{name}"),
            Value::Null,
        )
        .await
    }

    /// Runs a script in the page; its `return` value.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Runs an asynchronous script in the page: it gets a callback as its last argument
    /// (`arguments[arguments.length - 1]`) and calls it with its result.
    pub async fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Waits up to `timeout` until `script` returns something truthy; returns it.
    pub async fn wait_until(&self, what: &str, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.execute(script, vec![]).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The current window's handle.
    pub async fn window(&self) -> String {
        self.cmd("GET", "/window", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Opens a new tab and switches to it; its handle.
    pub async fn new_tab(&self) -> String {
        let handle = self
            .cmd("POST", "/window/new", json!({"type": "tab"}))
            .await["handle"]
            .as_str()
            .expect("a window handle")
            .to_owned();
        self.switch_to(&handle).await;
        handle
    }

    /// Switches to a window.
    pub async fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", json!({ "handle": handle }))
            .await;
    }

    /// Saves a screenshot of the viewport as a PNG under `dir`.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let data = self.cmd("GET", "/screenshot", Value::Null).await;
        let png = base64_decode(data.as_str().expect("base64 PNG"));
        let path = dir.join(name);
        std::fs::write(&path, png).expect("write the screenshot");
        println!("screenshot: {}", path.display());
        path
    }

    /// The requests the browser sent (method and URL, every tab) since the last call, from
    /// Chrome's DevTools performance log (`Network.requestWillBeSent`): also those a script
    /// or an `EventSource` sends.
    pub async fn requests_sent(&self) -> Vec<(String, String)> {
        let entries = self
            .cmd("POST", "/se/log", json!({"type": "performance"}))
            .await;
        let mut sent = Vec::new();
        for entry in entries.as_array().into_iter().flatten() {
            let Some(text) = entry["message"].as_str() else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            let message = &message["message"];
            if message["method"] == "Network.requestWillBeSent" {
                let request = &message["params"]["request"];
                sent.push((
                    request["method"].as_str().unwrap_or_default().to_owned(),
                    request["url"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        sent
    }

    /// Ends the session (Chromium exits) and stops ChromeDriver.
    pub async fn quit(self) {
        self.cmd("DELETE", "", Value::Null).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a failed test the session may still be open: kill the whole process group
        // (ChromeDriver, Chromium and its helpers), then anything left on our profile.
        #[cfg(unix)]
        {
            let group = format!("-{}", self.driver.id());
            let _ = Command::new("kill")
                .args(["-KILL", "--", &group])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_by_marker(&self.profile.display().to_string());
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Kills the processes whose command line contains `marker` (our unique profile directory):
/// Chromium helpers that left the process group.
fn kill_by_marker(marker: &str) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(marker) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Standard base64 (with padding), as WebDriver sends screenshots.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
