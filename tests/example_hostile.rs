//! The example server (`examples/server`) under hostile traffic, over HTTP on 127.0.0.1: owner
//! changes from another site are refused and change nothing, foreign `Host`s are misdirected,
//! rate limits answer 429 with `Retry-After`, and `X-Forwarded-For` counts only from a trusted
//! proxy.

mod example_support;

use example_support::{get_json, http, post_json, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// A request with extra headers: the status, the `Retry-After` header, and the body as text.
async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Option<String>, String) {
    let mut req = http().request(method, url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let res = req.send().await.expect("a response");
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, res.text().await.expect("a body"))
}

/// "Start verification" as a new browser (the landing page, then its form), with extra
/// headers on the POST: its status, `Retry-After` and body.
async fn start(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let form = example_support::landing_form(&http(), url, None).await;
    let mut req = http()
        .post(url)
        .header("cookie", &form.cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("form_token={}", form.form_token));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.expect("a response");
    let status = res.status().as_u16();
    let retry_after = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, res.text().await.expect("a body"))
}

/// The JSON error code of a body.
fn code(body: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap_or(Value::Null)["code"].clone()
}

/// `Retry-After` as whole seconds, checked to be between 1 and 60.
#[track_caller]
fn seconds(retry_after: Option<String>) -> u64 {
    let seconds: u64 = retry_after
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    seconds
}

/// Creates a link over the API (which is a client without `Origin` or `Sec-Fetch-Site`).
async fn create_link(server: &Server, spec: Value) -> Value {
    let (status, link) = post_json(&http(), &format!("{}/api/links", server.base), &spec).await;
    assert_eq!(status, 201, "{link}");
    link
}

/// The port of the server, from its base URL.
fn port(server: &Server) -> &str {
    server.base.rsplit(':').next().unwrap()
}

#[tokio::test]
async fn cross_site_owner_changes_are_refused_and_change_nothing() {
    let server = Server::start(&[]);
    let base = &server.base;
    let link = create_link(&server, json!({"name": "Target", "flow": "selfie"})).await;
    let id = link["id"].as_str().unwrap();
    let own_origin = base.as_str();

    let hostile: [&[(&str, &str)]; 6] = [
        &[("origin", "https://evil.example")],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("origin", "null")],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example"),
        ],
        &[("sec-fetch-site", "cross-site"), ("origin", own_origin)],
    ];
    for headers in hostile {
        let changes = [
            (
                Method::POST,
                format!("{base}/api/links/{id}/deactivate"),
                None,
            ),
            (
                Method::POST,
                format!("{base}/api/credits"),
                Some(json!({"amount": 5, "idempotency_key": "csrf"})),
            ),
            (
                Method::POST,
                format!("{base}/api/links"),
                Some(json!({"name": "Planted", "flow": "selfie"})),
            ),
            (
                Method::PUT,
                format!("{base}/api/webhook"),
                Some(json!({"url": "https://evil.example/hook"})),
            ),
            (Method::DELETE, format!("{base}/api/webhook"), None),
        ];
        for (method, url, body) in changes {
            let (status, _, text) = send(method.clone(), &url, headers, body.as_ref()).await;
            assert_eq!(status, 403, "{method} {url} with {headers:?}: {text}");
            assert_eq!(code(&text), "cross_site", "{text}");
        }
    }

    // Nothing changed: the link is active, no credits were added, no link was planted, no
    // endpoint set.
    let http = http();
    let (_, got) = get_json(&http, &format!("{base}/api/links/{id}")).await;
    assert_eq!(got["status"], "active", "{got}");
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(account["balance"], 100, "{account}");
    let (_, links) = get_json(&http, &format!("{base}/api/links")).await;
    assert_eq!(links["items"].as_array().map(Vec::len), Some(1), "{links}");
    let (_, hook) = get_json(&http, &format!("{base}/api/webhook")).await;
    assert_eq!(hook["endpoint"], Value::Null, "{hook}");

    // Reading is not changing: a cross-site GET is answered (the browser keeps the answer
    // from the other site).
    let (status, _, _) = send(
        Method::GET,
        &format!("{base}/api/links"),
        &[("sec-fetch-site", "cross-site")],
        None,
    )
    .await;
    assert_eq!(status, 200);

    // The dashboard's own requests (same origin) change things.
    let (status, _, text) = send(
        Method::POST,
        &format!("{base}/api/links/{id}/deactivate"),
        &[("sec-fetch-site", "same-origin"), ("origin", own_origin)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let (_, got) = get_json(&http, &format!("{base}/api/links/{id}")).await;
    assert_eq!(got["status"], "deactivated", "{got}");
}

#[tokio::test]
async fn foreign_hosts_are_misdirected() {
    let server = Server::start(&[]);
    let base = &server.base;
    let port = port(&server);
    let link = create_link(&server, json!({"name": "Rebound", "flow": "selfie"})).await;
    let landing = link["url"].as_str().unwrap().to_owned();

    let evil_with_port = format!("evil.example:{port}");
    let localhost = format!("localhost:{port}");
    for host in [
        "evil.example",
        evil_with_port.as_str(),
        localhost.as_str(),
        "127.0.0.1",
    ] {
        for (method, url, body) in [
            (Method::GET, format!("{base}/dashboard"), None),
            (Method::GET, format!("{base}/api/links"), None),
            (
                Method::POST,
                format!("{base}/api/links"),
                Some(json!({"name": "Planted", "flow": "selfie"})),
            ),
            (Method::GET, landing.clone(), None),
            (Method::POST, landing.clone(), None),
            (Method::GET, format!("{base}/nowhere"), None),
        ] {
            let (status, _, text) =
                send(method.clone(), &url, &[("host", host)], body.as_ref()).await;
            assert_eq!(status, 421, "{method} {url} for Host {host}: {text}");
        }
    }

    // Nothing was created or started; its own host is served.
    let (status, links) = get_json(&http(), &format!("{base}/api/links")).await;
    assert_eq!(status, 200);
    assert_eq!(links["items"].as_array().map(Vec::len), Some(1), "{links}");
    assert_eq!(links["items"][0]["uses"], 0, "{links}");

    // ALLOWED_HOSTS adds names; a name without a port is on the server's port.
    let server = Server::start(&[("ALLOWED_HOSTS", "127.0.0.1, localhost")]);
    let base = &server.base;
    let port = self::port(&server);
    let localhost = format!("localhost:{port}");
    let (status, _, text) = send(
        Method::GET,
        &format!("{base}/api/links"),
        &[("host", &localhost)],
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    // The dashboard opened as http://localhost:PORT may change things.
    let origin = format!("http://{localhost}");
    let (status, _, text) = send(
        Method::POST,
        &format!("{base}/api/links"),
        &[
            ("host", &localhost),
            ("origin", &origin),
            ("sec-fetch-site", "same-origin"),
        ],
        Some(&json!({"name": "Local", "flow": "selfie"})),
    )
    .await;
    assert_eq!(status, 201, "{text}");
    let (status, _, _) = send(
        Method::GET,
        &format!("{base}/api/links"),
        &[("host", "evil.example")],
        None,
    )
    .await;
    assert_eq!(status, 421);
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let server = Server::start(&[
        ("RATE_LIMIT_START_PER_MINUTE", "1"),
        ("RATE_LIMIT_API_PER_MINUTE", "3"),
        ("RATE_LIMIT_VIEW_PER_MINUTE", "1"),
    ]);
    let base = &server.base;
    // API request 1 of 3.
    let link = create_link(
        &server,
        json!({"name": "Busy", "flow": "selfie", "limit": "unlimited"}),
    )
    .await;
    let id = link["id"].as_str().unwrap();
    let url = link["url"].as_str().unwrap();

    // One start a minute: the second is refused with a page that says to wait.
    let (status, _, _) = start(url, &[]).await;
    assert_eq!(status, 303);
    let (status, retry_after, page) = start(url, &[]).await;
    assert_eq!(status, 429, "{page}");
    seconds(retry_after);
    assert!(
        page.contains("data-problem=\"too_many_requests\""),
        "{page}"
    );
    // Looking at the link is not limited.
    for _ in 0..3 {
        let (status, _, _) = send(Method::GET, url, &[], None).await;
        assert_eq!(status, 200);
    }
    // The landing page's beacon is: one a minute here.
    let beacon = || async {
        let res = http()
            .post(format!("{url}/seen"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("view=00000000000040008000000000000000")
            .send()
            .await
            .expect("a response");
        let retry_after = res.headers().get("retry-after").cloned();
        (res.status().as_u16(), retry_after)
    };
    assert_eq!(beacon().await.0, 204);
    let (status, retry_after) = beacon().await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some(), "429 with Retry-After");
    // API request 2 of 3: the refused start consumed nothing.
    let (status, got) = get_json(&http(), &format!("{base}/api/links/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["uses"], 1, "{got}");
    assert_eq!(got["stats"]["started"], 1, "{got}");

    // API request 3 of 3, then 429 as JSON.
    let account = format!("{base}/api/account");
    let (status, _, _) = send(Method::GET, &account, &[], None).await;
    assert_eq!(status, 200);
    let (status, retry_after, text) = send(Method::GET, &account, &[], None).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(code(&text), "rate_limited", "{text}");
    // Three a minute: one more in 20 seconds at most.
    assert!(seconds(retry_after) <= 20);
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let spec = json!({"name": "Behind a proxy", "flow": "selfie", "limit": "unlimited"});
    let start = |url: String, forwarded: &'static str| async move {
        let headers: &[(&str, &str)] = if forwarded.is_empty() {
            &[]
        } else {
            &[("x-forwarded-for", forwarded)]
        };
        start(&url, headers).await.0
    };

    // From an untrusted peer (127.0.0.1 is not a trusted proxy here), the header is ignored:
    // two "clients" claiming different addresses share the peer's one start a minute.
    let server = Server::start(&[("RATE_LIMIT_START_PER_MINUTE", "1")]);
    let url = create_link(&server, spec.clone()).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(start(url.clone(), "203.0.113.1").await, 303);
    assert_eq!(start(url.clone(), "203.0.113.2").await, 429);

    // Behind a trusted proxy (127.0.0.1), the address it appended is the client.
    let server = Server::start(&[
        ("RATE_LIMIT_START_PER_MINUTE", "1"),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ]);
    let url = create_link(&server, spec).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(start(url.clone(), "203.0.113.1").await, 303);
    assert_eq!(
        start(url.clone(), "203.0.113.2").await,
        303,
        "another client"
    );
    assert_eq!(
        start(url.clone(), "203.0.113.2").await,
        429,
        "the same again"
    );
    // What the client itself wrote, left of what the proxy appended, is not believed.
    assert_eq!(start(url.clone(), "198.51.100.9, 203.0.113.1").await, 429);
    // Without the header, the client is the proxy.
    assert_eq!(start(url.clone(), "").await, 303);
}
