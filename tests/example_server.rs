//! The example server (`examples/server`) over HTTP, as a separate process on 127.0.0.1: the
//! JSON API's error cases, the landing and flow pages' statuses and headers, and the QR code
//! it serves, decoded back to the link URL.

mod example_support;

use example_support::{
    get_json, http, landing_form, post_json, post_start, start, Receiver, Server, SseStream,
};
use serde_json::{json, Value};

/// Asserts an API error: the status, the code, and a body of exactly `error` and `code`.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
}

async fn create(server: &Server, spec: Value) -> Value {
    let (status, link) = post_json(&http(), &format!("{}/api/links", server.base), &spec).await;
    assert_eq!(status, 201, "{link}");
    link
}

#[tokio::test]
async fn json_api_rejects_bad_input_with_typed_4xx_errors() {
    let server = Server::start(&[]);
    let http = http();
    let links = format!("{}/api/links", server.base);
    let post = |body: Value| {
        let http = http.clone();
        let links = links.clone();
        async move { post_json(&http, &links, &body).await }
    };

    // Malformed JSON, wrong content type, oversized body.
    let res = http
        .post(&links)
        .header("content-type", "application/json")
        .body("{\"name\": \"x\",")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_error(&(400, body), 400, "malformed_json");
    let res = http.post(&links).body("name=x").send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_error(&(status, body), 415, "unsupported_media_type");
    let huge = json!({"name": "x".repeat(20 * 1024), "flow": "selfie"});
    assert_error(&post(huge).await, 413, "body_too_large");

    // The wrong shape: unknown, missing or mistyped fields.
    let shape_errors = [
        json!({"name": "x", "flow": "selfie", "colour": "red"}),
        json!({"name": "x"}),
        json!({"flow": "selfie"}),
        json!({"name": "x", "flow": "video"}),
        json!({"name": 7, "flow": "selfie"}),
        json!({"name": "x", "flow": "selfie", "limit": {"multi": 0}}),
        json!({"name": "x", "flow": "selfie", "limit": {"multi": -1}}),
        json!({"name": "x", "flow": "selfie", "limit": "twice"}),
        json!({"name": "x", "flow": "selfie", "expires_at": "tomorrow"}),
        json!([1, 2, 3]),
        json!(null),
    ];
    for body in shape_errors {
        assert_error(&post(body.clone()).await, 422, "invalid_body");
    }

    // Well-formed but invalid settings: the crate's typed validation errors.
    let settings = [
        (json!({"name": "  ", "flow": "selfie"}), "empty_name"),
        (
            json!({"name": "x".repeat(201), "flow": "selfie"}),
            "name_too_long",
        ),
        (
            json!({"name": "a\u{0007}b", "flow": "selfie"}),
            "name_control_character",
        ),
        (
            json!({"name": "x", "flow": "selfie", "expires_at": "2001-01-01T00:00:00Z"}),
            "expiry_in_past",
        ),
        (
            json!({"name": "x", "flow": "selfie", "language": "not a tag"}),
            "invalid_language",
        ),
    ];
    for (body, code) in settings {
        assert_error(&post(body).await, 422, code);
    }

    // Credits.
    let credits = format!("{}/api/credits", server.base);
    let top_up = |amount: Value, key: &str| {
        let body = json!({"amount": amount, "idempotency_key": key});
        let http = http.clone();
        let credits = credits.clone();
        async move { post_json(&http, &credits, &body).await }
    };
    assert_error(&top_up(json!(0), "k0").await, 422, "zero_amount");
    assert_error(&top_up(json!(-5), "k1").await, 422, "invalid_body");
    assert_error(
        &top_up(json!(2_000_000), "k2").await,
        422,
        "amount_too_large",
    );
    assert_error(&top_up(json!(5), "").await, 422, "invalid_idempotency_key");
    assert_error(
        &top_up(json!(5), &"k".repeat(200)).await,
        422,
        "invalid_idempotency_key",
    );
    let (status, first) = top_up(json!(5), "invoice-1").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["balance"], 105);
    let (status, again) = top_up(json!(5), "invoice-1").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["balance"], 105, "a retried top-up adds nothing");
    assert_error(
        &top_up(json!(6), "invoice-1").await,
        409,
        "idempotency_conflict",
    );

    // Ids, queries, routes and methods.
    let base = &server.base;
    assert_error(
        &get_json(&http, &format!("{base}/api/links/not-a-uuid")).await,
        404,
        "not_found",
    );
    let unknown = "0b9d2c4e-5f1a-4c3b-9d8e-7f6a5b4c3d2e";
    for path in [
        format!("/api/links/{unknown}"),
        format!("/api/links/{unknown}/sessions"),
        format!("/api/links/{unknown}/qr.png"),
        "/api/nothing-here".to_owned(),
    ] {
        assert_error(
            &get_json(&http, &format!("{base}{path}")).await,
            404,
            "not_found",
        );
    }
    assert_error(
        &post_json(
            &http,
            &format!("{base}/api/links/{unknown}/deactivate"),
            &json!({}),
        )
        .await,
        404,
        "not_found",
    );
    for query in ["limit=abc", "after=-1", "colour=red"] {
        assert_error(
            &get_json(&http, &format!("{base}/api/links?{query}")).await,
            400,
            "invalid_query",
        );
    }
    let res = http.delete(&links).send().await.unwrap();
    let status = res.status().as_u16();
    let body: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_error(&(status, body), 405, "method_not_allowed");

    // Nothing above created a link.
    let (status, page) = get_json(&http, &links).await;
    assert_eq!(status, 200);
    assert_eq!(page["items"], json!([]));
}

#[tokio::test]
async fn links_over_the_api_and_their_pages() {
    let server = Server::start(&[("INITIAL_CREDITS", "1")]);
    let http = http();
    let base = &server.base;

    let link = create(
        &server,
        json!({"name": "<script>alert(1)</script> & co", "flow": "document_and_selfie",
               "limit": {"multi": 3}, "language": "lt",
               "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let id = link["id"].as_str().unwrap().to_owned();
    let url = link["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{base}/l/")), "{url}");
    assert_eq!(link["status"], "active");
    assert_eq!(link["remaining"], 3);
    assert_eq!(link["limit"], json!({"multi": 3}));
    assert_eq!(link["language"], "lt");
    assert!(link["embed_html"].as_str().unwrap().contains(&url));
    let (status, list) = get_json(&http, &format!("{base}/api/links")).await;
    assert_eq!(status, 200);
    assert_eq!(list["items"][0]["id"], id.as_str());

    // The landing page: in Lithuanian, with the security headers, consuming nothing, and
    // without the link's internal name (the owner's; visitors see the account's display name).
    for _ in 0..2 {
        let res = http.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let headers = res.headers().clone();
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none';"), "{csp}");
        assert!(!csp.contains("http"), "no third-party origin: {csp}");
        let html = res.text().await.unwrap();
        assert!(!html.contains("alert(1)"), "the internal name: {html}");
        assert!(html.contains("<h1 id=\"brand\">Demo Bank</h1>"), "{html}");
        assert!(html.contains("Pradėti patvirtinimą"));
        assert!(!html.contains(" src=\"http") && !html.contains(" href=\"http"));
        assert!(!html.contains("<link"), "no external stylesheets");
        let head = http.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    let (_, got) = get_json(&http, &format!("{base}/api/links/{id}")).await;
    assert_eq!(got["uses"], 0);
    assert_eq!(got["stats"]["started"], 0);

    // The dashboard escapes it too, in the page and in its live updates.
    let dashboard = http.get(format!("{base}/dashboard")).send().await.unwrap();
    assert_eq!(dashboard.status(), 200);
    let dashboard = dashboard.text().await.unwrap();
    let (status, live) = get_json(&http, &format!("{base}/dashboard/live")).await;
    assert_eq!(status, 200);
    for html in [dashboard.as_str(), live["links"].as_str().unwrap()] {
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        assert!(!html.contains("<script>alert"));
    }

    // Another browser's landing page, shown now: its start comes later.
    let other = landing_form(&http, &url, None).await;
    // Start: 303 to the flow page, addressed by the session token.
    let res = start(&http, &url).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    assert!(flow.contains("/s/"), "{flow}");
    let page = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-page=\"flow\""));
    assert!(page.contains("id=\"document\"") && page.contains("id=\"selfie\""));

    // The only credit is held: the link stays active, but a start would find no credit.
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "60");
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"no_credits\""));
    assert_eq!(post_start(&http, &url, &other).await.status(), 503);

    // Completing: a bad form is a 400 page; then approved; a second, different outcome changes
    // nothing; quitting a completed session changes nothing.
    let form = |body: &'static str| {
        http.post(&flow)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(form("outcome=maybe").await.unwrap().status(), 400);
    assert_eq!(form("").await.unwrap().status(), 400);
    assert_eq!(form("outcome=approved").await.unwrap().status(), 303);
    assert_eq!(form("outcome=denied").await.unwrap().status(), 303);
    let quit = http.post(format!("{flow}/quit")).send().await.unwrap();
    assert_eq!(quit.status(), 303);
    let done = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(done.contains("data-outcome=\"approved\""), "{done}");
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(account["balance"], 0, "one credit billed, once");
    assert_eq!(account["held"], 0);
    let (_, sessions) = get_json(&http, &format!("{base}/api/links/{id}/sessions")).await;
    assert_eq!(sessions["items"][0]["status"]["status"], "completed");
    assert_eq!(sessions["items"][0]["status"]["outcome"], "approved");

    // Deactivation is final, idempotent, and shown as 410.
    let deactivate = format!("{base}/api/links/{id}/deactivate");
    let (status, off) = post_json(&http, &deactivate, &json!({})).await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["status"], "deactivated");
    let (status, _) = post_json(&http, &deactivate, &json!({})).await;
    assert_eq!(status, 200);
    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 410);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"deactivated\""));
    assert_eq!(post_start(&http, &url, &other).await.status(), 410);
    let (_, got) = get_json(&http, &format!("{base}/api/links/{id}")).await;
    assert_eq!(
        got["uses"], 1,
        "landing pages, HEADs and refusals consumed nothing"
    );

    // Forged, truncated, garbage and foreign tokens: 404 pages. Forged session tokens too.
    let token = url.rsplit('/').next().unwrap();
    let mut forged = token.to_owned().into_bytes();
    let i = forged.len() - 3;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let long = "A".repeat(5000);
    for bad in [
        forged.as_str(),
        &token[..token.len() - 1],
        "x",
        long.as_str(),
        "%00%ff",
        "..%2f..%2fetc%2fpasswd",
    ] {
        for res in [
            http.get(format!("{base}/l/{bad}")).send().await.unwrap(),
            http.post(format!("{base}/l/{bad}")).send().await.unwrap(),
            http.get(format!("{base}/s/{bad}")).send().await.unwrap(),
        ] {
            assert_eq!(res.status(), 404, "{bad}");
            assert_eq!(res.headers()["referrer-policy"], "no-referrer");
            assert!(res
                .text()
                .await
                .unwrap()
                .contains("data-problem=\"not_found\""));
        }
        let res = http
            .post(format!("{base}/s/{bad}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("outcome=approved")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }
    // A link token is not a session token, nor the other way round.
    let session_token = flow.rsplit('/').next().unwrap();
    assert_eq!(
        http.get(format!("{base}/s/{token}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{base}/l/{session_token}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // A page that does not exist.
    let res = http.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

/// An expired link (or session) is 410 Gone with its own page. Without waiting: the test holds
/// the server's keys and signs tokens that expired an hour ago, as the server would have.
#[tokio::test]
async fn expired_links_and_sessions_are_gone() {
    use chrono::{Duration, Utc};
    use magic_link::tokens::{Keyring, LinkToken, SessionToken};
    use magic_link::{AccountId, LinkId, SessionId};

    let keyring = Keyring::generate().unwrap();
    let keys = keyring.export();
    let server = Server::start(&[("MAGIC_LINK_KEYS", keys.expose_secret())]);
    let http = http();
    let base = &server.base;
    let link = create(&server, json!({"name": "Late", "flow": "selfie"})).await;
    let id: LinkId = link["id"].as_str().unwrap().parse().unwrap();
    let past = Utc::now() - Duration::hours(1);

    let expired = LinkToken::new(id, Some(past)).sign(&keyring);
    for res in [
        http.get(format!("{base}/l/{expired}"))
            .send()
            .await
            .unwrap(),
        http.post(format!("{base}/l/{expired}"))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(res.status(), 410);
        assert!(res
            .text()
            .await
            .unwrap()
            .contains("data-problem=\"expired\""));
    }
    let session = SessionToken::new(SessionId::new(), AccountId::new(), past).sign(&keyring);
    let res = http
        .get(format!("{base}/s/{session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"session_expired\""));
    // The link's own token still works, and nothing was consumed.
    let url = link["url"].as_str().unwrap();
    assert_eq!(http.get(url).send().await.unwrap().status(), 200);
    let (_, got) = get_json(&http, &format!("{base}/api/links/{id}")).await;
    assert_eq!(got["uses"], 0);
}

/// Quitting the flow abandons the session: the credit is released, the use stays consumed.
#[tokio::test]
async fn quitting_releases_the_credit_but_not_the_use() {
    let server = Server::start(&[("INITIAL_CREDITS", "1")]);
    let http = http();
    let base = &server.base;
    let link = create(&server, json!({"name": "Quitter", "flow": "document"})).await;
    let url = link["url"].as_str().unwrap();

    let res = start(&http, url).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    let page = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"document\"") && !page.contains("id=\"selfie\""));
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(
        (account["balance"].as_u64(), account["held"].as_u64()),
        (Some(1), Some(1))
    );

    let quit = http.post(format!("{flow}/quit")).send().await.unwrap();
    assert_eq!(quit.status(), 303);
    let page = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-page=\"ended\""), "{page}");
    // Submitting after quitting changes nothing.
    let late = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=approved")
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 303);
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(
        (account["balance"].as_u64(), account["held"].as_u64()),
        (Some(1), Some(0))
    );
    let id = link["id"].as_str().unwrap();
    let (_, got) = get_json(&http, &format!("{base}/api/links/{id}")).await;
    assert_eq!(got["uses"], 1);
    assert_eq!(got["stats"]["abandoned"], 1);
    assert_eq!(http.get(url).send().await.unwrap().status(), 410);
}

#[tokio::test]
async fn served_qr_code_decodes_to_the_link_url() {
    let server = Server::start(&[]);
    let http = http();
    let link = create(
        &server,
        json!({"name": "Front desk", "flow": "selfie", "limit": "unlimited"}),
    )
    .await;
    let url = link["url"].as_str().unwrap();

    let res = http
        .get(format!(
            "{}{}",
            server.base,
            link["qr_png"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().await.unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(&png[..]));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(
        info.width as usize,
        info.height as usize,
        |x, y| buf[y * info.line_size + x * channels],
    );
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, url);

    let res = http
        .get(format!(
            "{}{}",
            server.base,
            link["qr_svg"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/svg+xml");
    assert!(res.text().await.unwrap().starts_with("<svg"));
}

/// A small deterministic generator for garbage.
fn garbage(seed: &mut u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn garbage_never_gets_a_server_error() {
    let server = Server::start(&[]);
    let http = http();
    let link = create(
        &server,
        json!({"name": "x", "flow": "selfie", "limit": "unlimited"}),
    )
    .await;
    let id = link["id"].as_str().unwrap();
    let paths = [
        "/api/links".to_owned(),
        "/api/credits".to_owned(),
        "/api/links/0b9d2c4e-5f1a-4c3b-9d8e-7f6a5b4c3d2e/deactivate".to_owned(),
        "/l/AAAA".to_owned(),
        "/s/AAAA".to_owned(),
        "/s/AAAA/quit".to_owned(),
    ];
    let mut seed = 7;
    for round in 0..36 {
        let len = [0, 1, 17, 300, 4000, 20_000][round % 6];
        let mut body = garbage(&mut seed, len);
        if round % 3 == 0 {
            // Almost JSON.
            body = format!(
                "{{\"name\": \"{}\", \"flow\": [",
                String::from_utf8_lossy(&body)
            )
            .into_bytes();
        }
        for path in &paths {
            for content_type in [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain",
            ] {
                let res = http
                    .post(format!("{}{path}", server.base))
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                let status = res.status().as_u16();
                assert!(
                    (400..500).contains(&status),
                    "POST {path} ({content_type}, {len} bytes): {status}"
                );
            }
        }
    }
    // The unlimited link is untouched, and the server still answers.
    let (status, got) = get_json(&http, &format!("{}/api/links/{id}", server.base)).await;
    assert_eq!(status, 200);
    assert_eq!(got["uses"], 0);
}

async fn put_json(http: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let res = http
        .put(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The webhook endpoint over the API, and a completed verification delivered to a receiver
/// on 127.0.0.1, signed as Standard Webhooks specify (checked with the `standardwebhooks`
/// crate, independent of this one).
#[tokio::test]
async fn completion_fires_a_signed_webhook() {
    // The receiver is on 127.0.0.1: the server's transport refuses it unless allowed.
    let server = Server::start(&[("WEBHOOK_ALLOW_NETWORKS", "127.0.0.1/32")]);
    let receiver = Receiver::start().await;
    let http = http();
    let base = &server.base;
    let hook = format!("{base}/api/webhook");

    // Bad settings.
    for (body, code) in [
        (
            json!({"url": "ftp://hooks.example.com/x"}),
            "invalid_webhook_url",
        ),
        (json!({"url": "not a url"}), "invalid_webhook_url"),
        (
            json!({"url": receiver.url, "secret": "swordfish"}),
            "invalid_secret",
        ),
        (
            json!({"url": receiver.url, "colour": "red"}),
            "invalid_body",
        ),
        (
            json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
            "invalid_body",
        ),
    ] {
        assert_error(&put_json(&http, &hook, &body).await, 422, code);
    }
    let res = http.delete(&hook).send().await.unwrap();
    assert_eq!(res.status(), 404, "no endpoint to disable yet");
    let (status, got) = get_json(&http, &hook).await;
    assert_eq!(status, 200);
    assert_eq!(got["endpoint"], Value::Null);

    // Set it; the generated secret is shown this once.
    let (status, set) = put_json(&http, &hook, &json!({"url": receiver.url})).await;
    assert_eq!(status, 200, "{set}");
    let secret = set["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(set["endpoint"]["enabled"], true);
    assert_eq!(set["endpoint"]["secrets"], 1);
    let (_, got) = get_json(&http, &hook).await;
    assert_eq!(got["endpoint"]["url"], receiver.url.as_str());
    assert!(
        !got.to_string().contains(&secret),
        "the secret is not shown again"
    );

    // A verification completes.
    let link = create(&server, json!({"name": "Hooked", "flow": "selfie"})).await;
    let res = start(&http, link["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    let res = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=approved")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    let (headers, body) = receiver
        .wait_for("session.completed", "outcome", "approved")
        .await;
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["data"]["link_id"], link["id"]);
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&body, &headers)
        .expect("a valid Standard Webhooks signature");
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(standardwebhooks::Webhook::new(other)
        .unwrap()
        .verify(&body, &headers)
        .is_err());
    // The redemption before it was sent too.
    receiver
        .wait_for("link.redeemed", "link_id", link["id"].as_str().unwrap())
        .await;

    // Stop sending.
    let res = http.delete(&hook).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let (_, got) = get_json(&http, &hook).await;
    assert_eq!(got["endpoint"]["enabled"], false);
}

/// An endpoint that chose `session.completed` and `session.reviewed` over the API, a session
/// completed with `needs_review`, and its review over the API: `session.reviewed` arrives with
/// the decision, types the endpoint did not choose are not sent, nothing more is billed, and
/// the API refuses bad event types, bad decisions and a second, different decision.
#[tokio::test]
async fn review_sends_session_reviewed_to_an_endpoint_that_chose_it() {
    let server = Server::start(&[("WEBHOOK_ALLOW_NETWORKS", "127.0.0.1/32")]);
    let receiver = Receiver::start().await;
    let http = http();
    let base = &server.base;
    let hook = format!("{base}/api/webhook");
    for (types, code) in [
        (
            json!(["session.reviewed", "session.teleported"]),
            "unknown_event_type",
        ),
        (json!([]), "no_event_types"),
        (json!("session.reviewed"), "invalid_body"),
    ] {
        let body = json!({"url": receiver.url, "event_types": types});
        assert_error(&put_json(&http, &hook, &body).await, 422, code);
    }
    let body =
        json!({"url": receiver.url, "event_types": ["session.reviewed", "session.completed"]});
    let (status, set) = put_json(&http, &hook, &body).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set["endpoint"]["event_types"],
        json!(["session.completed", "session.reviewed"])
    );

    let link = create(&server, json!({"name": "Reviewed", "flow": "selfie"})).await;
    let res = start(&http, link["url"].as_str().unwrap()).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    let res = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=needs_review")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    receiver
        .wait_for("session.completed", "outcome", "needs_review")
        .await;
    let (_, sessions) = get_json(
        &http,
        &format!("{base}/api/links/{}/sessions", link["id"].as_str().unwrap()),
    )
    .await;
    let session = sessions["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, before) = get_json(&http, &format!("{base}/api/account")).await;

    let review = format!("{base}/api/sessions/{session}/review");
    assert_error(
        &post_json(&http, &review, &json!({"decision": "needs_review"})).await,
        422,
        "invalid_decision",
    );
    assert_error(
        &post_json(&http, &review, &json!({"decision": "maybe"})).await,
        422,
        "invalid_body",
    );
    let unknown = format!("{base}/api/sessions/{}/review", uuid::Uuid::new_v4());
    assert_error(
        &post_json(&http, &unknown, &json!({"decision": "approved"})).await,
        404,
        "not_found",
    );
    let (status, reviewed) = post_json(&http, &review, &json!({"decision": "approved"})).await;
    assert_eq!(status, 200, "{reviewed}");
    assert_eq!(reviewed["decision"], "approved");
    assert_eq!(reviewed["status"]["outcome"], "needs_review");
    let (status, again) = post_json(&http, &review, &json!({"decision": "approved"})).await;
    assert_eq!(
        (status, &again),
        (200, &reviewed),
        "the same decision again"
    );
    assert_error(
        &post_json(&http, &review, &json!({"decision": "denied"})).await,
        409,
        "review_conflict",
    );
    let (_, after) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(after, before, "a review bills nothing");

    receiver
        .wait_for("session.reviewed", "decision", "approved")
        .await;
    let types = receiver.received_types();
    assert!(
        types
            .iter()
            .all(|t| t == "session.completed" || t == "session.reviewed"),
        "only the chosen types are sent: {types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "session.reviewed").count(),
        1,
        "{types:?}"
    );
}

/// The `data-view` id of a landing page, if it has one.
fn view_id(page: &str) -> Option<String> {
    let start = page.find("data-view=\"")? + "data-view=\"".len();
    Some(page[start..].split('"').next()?.to_owned())
}

/// The funnel over HTTP: a GET of the landing page counts an unconfirmed view and hands out a
/// view id (in the page, and in a cookie scoped to the link); the page's beacon confirms it as
/// a person's, once; `HEAD` and scanner user agents count as scanners and get no id; a start
/// with the cookie confirms its view. The API reports it all, and views consume nothing.
#[tokio::test]
async fn landing_views_are_counted_by_kind_and_confirmed_once() {
    let server = Server::start(&[]);
    let http = http();
    let base = &server.base;
    let link = create(
        &server,
        json!({"name": "Funnel", "flow": "selfie", "limit": "unlimited"}),
    )
    .await;
    let url = link["url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    let id = link["id"].as_str().unwrap();
    let stats = || {
        let http = http.clone();
        let api = format!("{base}/api/links/{id}");
        async move { get_json(&http, &api).await.1["stats"].clone() }
    };
    let views = |stats: &Value| {
        (
            stats["views"]["human"].as_u64().unwrap(),
            stats["views"]["scanner"].as_u64().unwrap(),
            stats["views"]["unconfirmed"].as_u64().unwrap(),
        )
    };
    let beacon = |view: String| {
        let http = http.clone();
        let seen = format!("{url}/seen");
        async move {
            http.post(seen)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("view={view}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let fresh = stats().await;
    assert_eq!(views(&fresh), (0, 0, 0));
    assert_eq!(
        fresh["conversion"],
        Value::Null,
        "no human views: no conversion"
    );

    // A GET: unconfirmed, with a view id in the page and in the cookie.
    let res = http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let page = res.text().await.unwrap();
    let view = view_id(&page).expect("an unconfirmed view carries its id");
    assert_eq!(view.len(), 32, "{view}");
    assert!(
        cookie.starts_with(&format!("ml_view={view}; Path=/l/{token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(views(&stats().await), (0, 0, 1));

    // The beacon confirms it, once; an unknown id or another link's token confirms nothing.
    assert_eq!(beacon(view.clone()).await, 204);
    assert_eq!(beacon(view.clone()).await, 204);
    assert_eq!(beacon("f".repeat(32)).await, 204);
    assert_eq!(beacon("not an id".into()).await, 204);
    assert_eq!(
        views(&stats().await),
        (1, 0, 0),
        "a repeated beacon counts once"
    );
    let forged = http
        .post(format!("{base}/l/AAAA/seen"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("view={view}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 404);

    // HEAD and known scanners: scanners, with no view id to confirm.
    let head = http.head(url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("set-cookie").is_none());
    for agent in [
        "Mozilla/5.0 (compatible; BingPreview/1.0b)",
        "facebookexternalhit/1.1",
        "curl/8.5.0",
    ] {
        let res = http
            .get(url)
            .header("user-agent", agent)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert!(res.headers().get("set-cookie").is_none(), "{agent}");
        assert_eq!(view_id(&res.text().await.unwrap()), None, "{agent}");
    }
    assert_eq!(views(&stats().await), (1, 4, 0));

    // A start from the browser that was shown the page confirms its view.
    let res = http.get(url).send().await.unwrap();
    let start_key = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("ml_start="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("a person's browser gets a start key");
    let shown = res.text().await.unwrap();
    let view = view_id(&shown).unwrap();
    let form_token = example_support::form_token(&shown).unwrap();
    let page = http.get(url).send().await.unwrap().text().await.unwrap();
    view_id(&page).expect("another page load, another view");
    assert_eq!(views(&stats().await), (1, 4, 2));
    let start = http
        .post(url)
        .header("cookie", format!("ml_view={view}; {start_key}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("form_token={form_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 303);
    assert_eq!(beacon(view).await, 204, "already confirmed by the start");
    let got = stats().await;
    assert_eq!(
        views(&got),
        (2, 4, 1),
        "the other page load stays unconfirmed"
    );
    assert_eq!(got["uses"], 1, "views consume nothing; the start one use");
    assert_eq!(got["conversion"], 0.0, "nothing completed yet");
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(account["held"], 1, "only the start holds a credit");
}

/// Adds one credit with a fresh idempotency key.
async fn add_credit(server: &Server, key: &str) {
    let (status, account) = post_json(
        &http(),
        &format!("{}/api/credits", server.base),
        &json!({"amount": 1, "idempotency_key": key}),
    )
    .await;
    assert_eq!(status, 200, "{account}");
}

/// The dashboard's live stream (Server-Sent Events): the live parts when it opens, then each
/// change of the account as it commits, with its `seq` as the id, followed by the parts again.
/// A client that reconnects with `Last-Event-ID` gets exactly the changes it missed, in order.
#[tokio::test]
async fn dashboard_events_resume_after_the_last_event_id() {
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let url = format!("{}/dashboard/events", server.base);
    let mut events = SseStream::open(&url, None).await.unwrap();
    let parts: Value = serde_json::from_str(&events.next_of("live").await.data).unwrap();
    assert!(
        parts["credits"].as_str().unwrap().contains(">10<"),
        "{parts}"
    );

    add_credit(&server, "sse-1").await;
    add_credit(&server, "sse-2").await;
    let first = events.next_of("change").await;
    let second = events.next_of("change").await;
    let seq =
        |m: &example_support::SseMessage| -> u64 { m.id.as_deref().unwrap().parse().unwrap() };
    assert!(seq(&first) < seq(&second));
    for (message, balance) in [(&first, 11), (&second, 12)] {
        let event: Value = serde_json::from_str(&message.data).unwrap();
        assert_eq!(event["type"], "credits.added", "{event}");
        assert_eq!(event["balance"], balance, "{event}");
        assert_eq!(event["seq"], seq(message), "{event}");
    }
    let parts: Value = serde_json::from_str(&events.next_of("live").await.data).unwrap();
    assert!(
        parts["credits"].as_str().unwrap().contains(">12<"),
        "{parts}"
    );
    drop(events);

    // Changes while disconnected, then a reconnection from the last id received.
    add_credit(&server, "sse-3").await;
    let link = create(&server, json!({"name": "While away", "flow": "selfie"})).await;
    let second_id = second.id.clone().unwrap();
    let mut resumed = SseStream::open(&url, Some(&second_id)).await.unwrap();
    let third = resumed.next_of("change").await;
    let fourth = resumed.next_of("change").await;
    assert!(seq(&second) < seq(&third) && seq(&third) < seq(&fourth));
    let third: Value = serde_json::from_str(&third.data).unwrap();
    let fourth: Value = serde_json::from_str(&fourth.data).unwrap();
    assert_eq!(
        (&third["type"], &third["balance"]),
        (&json!("credits.added"), &json!(13))
    );
    assert_eq!(fourth["type"], "link.created", "{fourth}");
    assert_eq!(fourth["link"], link["id"], "{fourth}");

    // A cursor that is not one is refused.
    assert_eq!(SseStream::open(&url, Some("12abc")).await.err(), Some(400));
}

/// The flow page's stream: `ended` with the outcome once its own session ends (another
/// session's end is not sent), at once for a session already ended, and nothing without a
/// valid session token.
#[tokio::test]
async fn flow_events_tell_only_their_session_that_it_ended() {
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let http = http();
    let base = &server.base;
    let link = create(
        &server,
        json!({"name": "Two", "flow": "selfie", "limit": {"multi": 2}}),
    )
    .await;
    let url = link["url"].as_str().unwrap();
    let mut flows = Vec::new();
    for _ in 0..2 {
        let res = start(&http, url).await;
        assert_eq!(res.status(), 303);
        flows.push(format!(
            "{base}{}",
            res.headers()["location"].to_str().unwrap()
        ));
    }
    let complete = |flow: String, outcome: &'static str| {
        let http = http.clone();
        async move {
            let res = http
                .post(&flow)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("outcome={outcome}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 303);
        }
    };

    let mut watching = SseStream::open(&format!("{}/events", flows[0]), None)
        .await
        .unwrap();
    // The other session ends first (denied), then this one (approved).
    complete(flows[1].clone(), "denied").await;
    complete(flows[0].clone(), "approved").await;
    let ended = watching.next_of("ended").await;
    let data: Value = serde_json::from_str(&ended.data).unwrap();
    assert_eq!(data, json!({"status": "completed", "outcome": "approved"}));
    assert!(ended.id.is_some(), "resumable");

    // Opened after the end: said at once.
    let mut late = SseStream::open(&format!("{}/events", flows[1]), None)
        .await
        .unwrap();
    let data: Value = serde_json::from_str(&late.next_of("ended").await.data).unwrap();
    assert_eq!(data, json!({"status": "completed", "outcome": "denied"}));

    // A forged session token.
    let forged = format!("{}x/events", flows[0]);
    assert!(SseStream::open(&forged, None).await.is_err());
}

/// The link's uses, from the JSON API.
async fn uses_of(base: &str, id: &str) -> u64 {
    let (status, link) = get_json(&http(), &format!("{base}/api/links/{id}")).await;
    assert_eq!(status, 200, "{link}");
    link["uses"].as_u64().unwrap()
}

/// A start needs the form token that the link's landing page minted for this browser: without
/// one, with another link's, another browser's or an expired one, it is a 400 page that links
/// back to the landing page, and nothing is consumed. A bad link token is still a 404 first.
#[tokio::test]
async fn a_start_without_the_landing_pages_form_token_is_a_400() {
    use chrono::{Duration, Utc};
    use magic_link::start::StartKey;
    use magic_link::tokens::{FormToken, Keyring};
    use magic_link::LinkId;

    let keyring = Keyring::generate().unwrap();
    let keys = keyring.export();
    let server = Server::start(&[
        ("INITIAL_CREDITS", "5"),
        ("MAGIC_LINK_KEYS", keys.expose_secret()),
    ]);
    let http = http();
    let base = &server.base;
    let link = create(&server, json!({"name": "Form", "flow": "selfie"})).await;
    let other = create(&server, json!({"name": "Other", "flow": "selfie"})).await;
    let (id, url) = (link["id"].as_str().unwrap(), link["url"].as_str().unwrap());
    let token = url.rsplit('/').next().unwrap();
    let other_url = other["url"].as_str().unwrap();

    let refused = |res: reqwest::Response| async move {
        assert_eq!(res.status(), 400);
        let page = res.text().await.unwrap();
        assert!(page.contains("data-problem=\"form_rejected\""), "{page}");
        assert!(
            page.contains(&format!("id=\"back\" href=\"/l/{token}\"")),
            "a link back to the landing page: {page}"
        );
    };

    // A bare POST, as a bot sends it: no cookie, no form.
    refused(http.post(url).send().await.unwrap()).await;
    // A cookie but no form token; a form token but no cookie.
    let form = landing_form(&http, url, None).await;
    refused(
        http.post(url)
            .header("cookie", &form.cookie)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = http
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("form_token={}", form.form_token))
        .send()
        .await
        .unwrap();
    refused(res).await;
    // Another link's form token, with its own browser's cookie.
    let elsewhere = landing_form(&http, other_url, None).await;
    refused(post_start(&http, url, &elsewhere).await).await;
    // Another browser's cookie with this page's form token.
    let another = landing_form(&http, url, None).await;
    let swapped = example_support::LandingForm {
        cookie: another.cookie.clone(),
        form_token: form.form_token.clone(),
    };
    refused(post_start(&http, url, &swapped).await).await;
    // A form token that expired (signed with the server's keys, an hour ago).
    let key = StartKey::new(form.cookie.trim_start_matches("ml_start=")).unwrap();
    let link_id: LinkId = id.parse().unwrap();
    let stale = FormToken::new(Utc::now() - Duration::hours(1)).sign(&keyring, link_id, &key);
    let stale = example_support::LandingForm {
        cookie: form.cookie.clone(),
        form_token: stale,
    };
    refused(post_start(&http, url, &stale).await).await;
    assert_eq!(uses_of(base, id).await, 0, "nothing was started");

    // The link token is checked first: a forged one is a 404, form token or not.
    let forged = format!("{}x", &url[..url.len() - 1]);
    assert_eq!(http.post(&forged).send().await.unwrap().status(), 404);
    assert_eq!(post_start(&http, &forged, &form).await.status(), 404);

    // The page's own form starts.
    assert_eq!(post_start(&http, url, &form).await.status(), 303);
    assert_eq!(uses_of(base, id).await, 1);
}

/// One person, one use: a double submit of the landing page's form starts one session; the
/// same browser coming back to the link sees "Continue your verification", which returns that
/// session; another browser sees the normal landing page.
#[tokio::test]
async fn a_double_submit_and_a_return_resume_the_same_session() {
    let server = Server::start(&[("INITIAL_CREDITS", "5")]);
    let http = http();
    let base = &server.base;
    let link = create(
        &server,
        json!({"name": "Once", "flow": "selfie", "limit": {"multi": 3}}),
    )
    .await;
    let (id, url) = (link["id"].as_str().unwrap(), link["url"].as_str().unwrap());

    let form = landing_form(&http, url, None).await;
    let (a, b) = tokio::join!(post_start(&http, url, &form), post_start(&http, url, &form));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (303, 303));
    let (a, b) = (&a.headers()["location"], &b.headers()["location"]);
    let (flow_a, flow_b) = (a.to_str().unwrap(), b.to_str().unwrap());
    assert_eq!(uses_of(base, id).await, 1, "two presses, one use");
    let (_, sessions) = get_json(&http, &format!("{base}/api/links/{id}/sessions")).await;
    assert_eq!(
        sessions["items"].as_array().unwrap().len(),
        1,
        "one session"
    );
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(account["held"], 1, "one credit held");

    // Back to the link in the same browser: "Continue".
    let again = http
        .get(url)
        .header("cookie", &form.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert!(
        again.headers().get("set-cookie").is_none() || {
            // Only the funnel's view cookie; the start key stays as it is.
            again
                .headers()
                .get_all("set-cookie")
                .iter()
                .all(|v| !v.to_str().unwrap().starts_with("ml_start="))
        }
    );
    let page = again.text().await.unwrap();
    assert!(page.contains("data-resume"), "{page}");
    assert!(page.contains("Continue your verification"), "{page}");
    let token = example_support::form_token(&page).unwrap();
    let resumed = post_start(
        &http,
        url,
        &example_support::LandingForm {
            cookie: form.cookie.clone(),
            form_token: token,
        },
    )
    .await;
    assert_eq!(resumed.status(), 303);
    let resumed_flow = resumed.headers()["location"].to_str().unwrap();
    let claims = |flow: &str| flow.rsplit('/').next().unwrap().to_owned();
    // Session tokens of one session are signed the same way: the same URL.
    assert_eq!(claims(resumed_flow), claims(flow_a));
    assert_eq!(flow_a, flow_b);
    assert_eq!(uses_of(base, id).await, 1, "continuing consumes nothing");

    // Another device, without the cookie: the normal landing page, and its start is new.
    let fresh = http.get(url).send().await.unwrap().text().await.unwrap();
    assert!(!fresh.contains("data-resume") && fresh.contains("Start verification"));
    assert_eq!(start(&http, url).await.status(), 303);
    assert_eq!(uses_of(base, id).await, 2);
}

/// "Continue on your phone": the flow page links to a page with a QR code and a short URL
/// (at most 100 characters); opening that URL consumes nothing; its button hands the session
/// over once, to a flow page of the same session; a second use and an expired hand-off are
/// refused with 410 pages; the first device's event stream says `handed_off`.
#[tokio::test]
async fn a_session_is_handed_off_to_a_phone_once() {
    use chrono::{Duration, Utc};
    use magic_link::start::HandoffId;
    use magic_link::tokens::{HandoffToken, Keyring};

    let keyring = Keyring::generate().unwrap();
    let keys = keyring.export();
    let server = Server::start(&[
        ("INITIAL_CREDITS", "5"),
        ("MAGIC_LINK_KEYS", keys.expose_secret()),
    ]);
    let http = http();
    let base = &server.base;
    let link = create(&server, json!({"name": "Handed", "flow": "selfie"})).await;
    let (id, url) = (link["id"].as_str().unwrap(), link["url"].as_str().unwrap());
    let res = start(&http, url).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    let page = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("id=\"to-phone\""), "{page}");

    let mut stream = SseStream::open(&format!("{flow}/events"), None)
        .await
        .unwrap();
    let phone = http.get(format!("{flow}/phone")).send().await.unwrap();
    assert_eq!(phone.status(), 200);
    let phone = phone.text().await.unwrap();
    assert!(phone.contains("<svg"), "a QR code: {phone}");
    let at = phone.find("id=\"handoff-url\" class=\"url\">").unwrap() + 29;
    let handoff_url = &phone[at..at + phone[at..].find('<').unwrap()];
    assert!(
        handoff_url.starts_with(&format!("{base}/h/")) && handoff_url.len() <= 100,
        "a short URL: {handoff_url} ({} characters)",
        handoff_url.len()
    );

    // Opened (a scanner, a preview, the person): nothing is used up.
    for _ in 0..2 {
        let opened = http.get(handoff_url).send().await.unwrap();
        assert_eq!(opened.status(), 200);
        assert!(opened.text().await.unwrap().contains("id=\"accept\""));
    }
    let accepted = http.post(handoff_url).send().await.unwrap();
    assert_eq!(accepted.status(), 303);
    let phone_flow = format!("{base}{}", accepted.headers()["location"].to_str().unwrap());
    assert!(phone_flow.contains("/s/"));
    assert_eq!(stream.next().await.event, "handed_off");

    // A second use: refused, and so is opening it again (a read; nothing is used).
    let again = http.post(handoff_url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"handoff_used\""));
    let reopened = http.get(handoff_url).send().await.unwrap();
    assert_eq!(reopened.status(), 410);
    assert!(reopened
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"handoff_used\""));

    // The phone completes; the first device's stream says so; nothing more was consumed.
    let done = http
        .post(&phone_flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=approved")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let ended = stream.next().await;
    assert_eq!(ended.event, "ended");
    let ended: Value = serde_json::from_str(&ended.data).unwrap();
    assert_eq!(ended["outcome"], "approved");
    assert_eq!(uses_of(base, id).await, 1);
    let (_, account) = get_json(&http, &format!("{base}/api/account")).await;
    assert_eq!(account["balance"], 4, "one credit billed");

    // An expired hand-off (signed with the server's keys): refused when opened.
    let expired = HandoffToken::new(
        HandoffId::generate().unwrap(),
        Utc::now() - Duration::minutes(1),
    )
    .sign(&keyring);
    let res = http
        .get(format!("{base}/h/{expired}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"handoff_expired\""));
    // A hand-off of a session that has ended: the phone page goes to the result.
    let ended = http.get(format!("{flow}/phone")).send().await.unwrap();
    assert_eq!(ended.status(), 303);
}

/// A personal URL with one character of its reference changed (the token's bytes 30.. hold the
/// reference: base64 characters 40.. of the token).
fn edit_reference(url: &str) -> String {
    let at = url.find("/l/").expect("a link URL") + 3 + 44;
    let swap = if &url[at..=at] == "A" { "B" } else { "A" };
    format!("{}{swap}{}", &url[..at], &url[at + 1..])
}

/// The visitor's pages say whose verification it is (the account's display name, "Demo Bank"
/// by default, and its "Get help" link once set) and never the link's internal name, which is
/// the owner's.
#[tokio::test]
async fn visitor_pages_show_the_display_name_never_the_link_name() {
    let server = Server::start(&[]);
    let http = http();
    let base = &server.base;
    let secret_name = "Internal cohort Zq7xK";
    let link = create(
        &server,
        json!({"name": secret_name, "flow": "selfie", "limit": "single"}),
    )
    .await;
    let url = link["url"].as_str().unwrap();

    let landing = http.get(url).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    let page = landing.text().await.unwrap();
    assert!(page.contains("<h1 id=\"brand\">Demo Bank</h1>"), "{page}");
    assert!(!page.contains("Zq7xK"), "the internal name leaked: {page}");
    assert!(!page.contains("id=\"help\""), "no support URL yet: {page}");

    // With a support URL: "Get help" on the landing, flow, result and refusal pages.
    let (status, account) = put_json(
        &http,
        &format!("{base}/api/account/profile"),
        &json!({"display_name": "Acme <Bank>", "support_url": "https://help.example/kyc",
                "return_origins": [base]}),
    )
    .await;
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["profile"]["display_name"], "Acme <Bank>");
    let res = start(&http, url).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    let page = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Acme &lt;Bank&gt;"), "{page}");
    assert!(page.contains("href=\"https://help.example/kyc\""), "{page}");
    assert!(!page.contains("Zq7xK"), "{page}");
    let done = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=approved")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    let page = http.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-page=\"done\""), "{page}");
    assert!(
        page.contains("Acme &lt;Bank&gt;") && !page.contains("Zq7xK"),
        "{page}"
    );
    let used = http.get(url).send().await.unwrap();
    assert_eq!(used.status(), 410);
    let page = used.text().await.unwrap();
    assert!(page.contains("data-problem=\"used\""), "{page}");
    assert!(
        page.contains("Acme &lt;Bank&gt;") && !page.contains("Zq7xK"),
        "{page}"
    );
    assert!(page.contains("id=\"help\""), "{page}");

    // A forged link names no account: the neutral title.
    let forged = edit_reference(&format!("{url}AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let page = http
        .get(&forged)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-problem=\"not_found\""), "{page}");
    assert!(
        page.contains("Identity verification") && !page.contains("Acme"),
        "{page}"
    );
}

/// A return or dead-link URL must be on an origin the account allows (by default, the
/// server's own): anything else is a 422 and creates nothing.
#[tokio::test]
async fn a_return_url_on_an_origin_not_allowed_is_a_422() {
    let server = Server::start(&[]);
    let http = http();
    let base = &server.base;
    let links = format!("{base}/api/links");
    for spec in [
        json!({"name": "x", "flow": "selfie", "return_url": "https://evil.example/done"}),
        json!({"name": "x", "flow": "selfie", "dead_link_url": "https://evil.example/new"}),
        json!({"name": "x", "flow": "selfie", "return_url": "http://localhost:1/done"}),
    ] {
        assert_error(
            &post_json(&http, &links, &spec).await,
            422,
            "return_origin_not_allowed",
        );
    }
    for spec in [
        json!({"name": "x", "flow": "selfie", "return_url": "http://evil.example/done"}),
        json!({"name": "x", "flow": "selfie", "reference": ""}),
        json!({"name": "x", "flow": "selfie", "metadata": {"": "v"}}),
    ] {
        assert_error(&post_json(&http, &links, &spec).await, 422, "invalid_body");
    }
    let (status, page) = get_json(&http, &links).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"], json!([]), "nothing was created");

    // The server's own origin is allowed.
    let ok = create(
        &server,
        json!({"name": "x", "flow": "selfie", "return_url": format!("{base}/demo/return?shop=1")}),
    )
    .await;
    assert_eq!(
        ok["return_url"],
        format!("{base}/demo/return?shop=1"),
        "{ok}"
    );
}

/// Personal URLs over the API: each recipient's URL starts a session that records its
/// reference; one edited in its reference is the "not valid" page and uses nothing; lookups by
/// reference find the link and the sessions.
#[tokio::test]
async fn personal_urls_and_lookups_by_reference() {
    let server = Server::start(&[]);
    let http = http();
    let base = &server.base;
    let link = create(
        &server,
        json!({"name": "Cohort", "flow": "selfie", "limit": {"multi": 5},
               "reference": "order-42", "metadata": {"team": "retail"}}),
    )
    .await;
    let id = link["id"].as_str().unwrap();
    assert_eq!(link["metadata"], json!({"team": "retail"}));

    let personal = |reference: &str| {
        let http = http.clone();
        let url = format!("{base}/api/links/{id}/personal");
        let body = json!({ "reference": reference });
        async move { post_json(&http, &url, &body).await }
    };
    assert_error(&personal("").await, 422, "invalid_reference");
    let (status, made) = personal("cus_8f2kAAAAAAAA").await;
    assert_eq!(status, 200, "{made}");
    let url = made["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{base}/l/")), "{url}");
    let qr = http
        .get(format!("{base}{}", made["qr_svg"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(qr.status(), 200);

    // Edited: refused like a forged link, nothing used.
    let edited = edit_reference(&url);
    assert_ne!(edited, url);
    let res = http.get(&edited).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("data-problem=\"not_found\""));
    let res = http
        .post(&edited)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("form_token=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(uses_of(base, id).await, 0);

    // The real one: a landing page, a start, a session with the reference.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(start(&http, &url).await.status(), 303);
    assert_eq!(uses_of(base, id).await, 1);
    let (status, sessions) = get_json(&http, &format!("{base}/api/links/{id}/sessions")).await;
    assert_eq!(status, 200, "{sessions}");
    assert_eq!(sessions["items"][0]["reference"], "cus_8f2kAAAAAAAA");

    let (status, found) = get_json(
        &http,
        &format!("{base}/api/sessions?reference=cus_8f2kAAAAAAAA"),
    )
    .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["items"][0]["link"], id);
    let (_, none) = get_json(&http, &format!("{base}/api/sessions?reference=other")).await;
    assert_eq!(none["items"], json!([]));
    let (status, found) = get_json(&http, &format!("{base}/api/links?reference=order-42")).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1), "{found}");
    assert_eq!(found["items"][0]["id"], id);
    assert_error(
        &get_json(&http, &format!("{base}/api/sessions")).await,
        400,
        "invalid_query",
    );
}
