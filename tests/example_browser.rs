//! The example server in a real browser: headless Chromium, driven through ChromeDriver, against
//! the example's own binary on 127.0.0.1.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`bash .ci/browser-deps` installs them).
//! Without them the tests say why and skip, except under CI (`CI=true`), where they fail.
//! Screenshots are saved under `target/screenshots/`.

mod example_support;

use std::time::Duration;

use example_support::webdriver::{Binaries, Browser};
use example_support::{artefact_dir, get_json, http, Receiver, Server};

/// One browser at a time: the machine is small, and the scenarios are easier to read apart.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const WAIT: Duration = Duration::from_secs(15);

fn binaries_or_skip() -> Option<Binaries> {
    match Binaries::find() {
        Ok(bins) => Some(bins),
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "{why}: CI runs the browser test (bash .ci/browser-deps)"
            );
            eprintln!("skipping the browser test: {why} (install with `bash .ci/browser-deps`)");
            None
        }
    }
}

/// The phone the public pages are checked on: 390 × 844 CSS pixels.
const PHONE: (u32, u32) = (390, 844);

/// axe-core's `axe.min.js` (installed by `bash .ci/axe` under `target/axe`, or the file
/// `AXE_CORE` names). Without it the accessibility test says why and skips, except under CI.
fn axe_or_skip() -> Option<String> {
    let path = std::env::var_os("AXE_CORE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| artefact_dir("axe").join("node_modules/axe-core/axe.min.js"));
    match std::fs::read_to_string(&path) {
        Ok(source) => Some(source),
        Err(err) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
            assert!(
                !ci,
                "{}: {err}: CI runs the accessibility checks (bash .ci/axe)",
                path.display()
            );
            eprintln!(
                "skipping the accessibility checks: {}: {err} (install with `bash .ci/axe`)",
                path.display()
            );
            None
        }
    }
}

/// The controls of the page smaller than 44 × 44 CSS pixels (a radio button or checkbox counts
/// with its label, which is what a finger taps), as `tag#id "text" W×H`.
const SMALL_TAP_TARGETS: &str = "
    const small = [];
    const sel = 'a[href], button, summary, select, textarea, input:not([type=hidden])';
    for (const el of document.querySelectorAll(sel)) {
      const box = (el.type === 'radio' || el.type === 'checkbox') ? (el.closest('label') || el) : el;
      const r = box.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.width < 44 || r.height < 44) {
        small.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' \"'
          + (box.textContent || '').trim().slice(0, 30) + '\" '
          + Math.round(r.width) + 'x' + Math.round(r.height));
      }
    }
    return small;";

/// Runs axe-core in the page (injected with WebDriver's execute, which the page's CSP does not
/// govern); the serious and critical violations, as `rule: help [targets]`.
const AXE_RUN: &str = "
    const done = arguments[arguments.length - 1];
    axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations
        .filter(v => v.impact === 'serious' || v.impact === 'critical')
        .map(v => v.id + ' (' + v.impact + '): ' + v.help + ' ['
          + v.nodes.map(n => n.target.join(' ')).join(', ') + ']')))
      .catch(e => done(['axe failed: ' + e]));";

/// Checks the page the phone shows: it fits the viewport (no horizontal scrolling), its tap
/// targets are at least 44 px, and axe-core finds no serious or critical violation.
async fn audit(b: &Browser, axe: &str, page: &str) {
    let fits = b
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth]",
            vec![],
        )
        .await;
    let (scroll, inner) = (fits[0].as_u64().unwrap(), fits[1].as_u64().unwrap());
    assert_eq!(inner, u64::from(PHONE.0), "{page}: the phone's viewport");
    assert!(
        scroll <= inner,
        "{page}: scrolls sideways ({scroll} px wide in a {inner} px viewport)"
    );
    let small = b.execute(SMALL_TAP_TARGETS, vec![]).await;
    assert_eq!(
        small,
        serde_json::json!([]),
        "{page}: tap targets under 44 x 44 px"
    );
    b.execute(axe, vec![]).await;
    let violations = b.execute_async(AXE_RUN, vec![]).await;
    let violations: Vec<String> = serde_json::from_value(violations).unwrap();
    assert!(
        violations.is_empty(),
        "{page}: axe-core found serious or critical violations:\n  {}",
        violations.join("\n  ")
    );
}

enum Limit {
    Single,
    Multi(u32),
}

/// Fills in and submits the dashboard's "New link" form; the new link's id and URL.
async fn create_link(
    b: &Browser,
    name: &str,
    flow: &str,
    limit: Limit,
    language: &str,
) -> (String, String) {
    b.type_into("#name", name).await;
    b.click_css(&format!("#flow option[value={flow}]")).await;
    match limit {
        Limit::Single => b.click_css("#limit-single").await,
        Limit::Multi(uses) => {
            b.click_css("#limit-multi").await;
            b.type_into("#uses", &uses.to_string()).await;
        }
    }
    b.type_into("#language", language).await;
    b.click_css("#create").await;
    // The new link appears with its share panel open.
    let name = serde_json::to_string(name).unwrap();
    let id = b
        .wait_until(
            "the new link on the dashboard",
            &format!(
                "const r = [...document.querySelectorAll('tr[data-link-id]')]
                   .find(r => r.querySelector('.link-name').textContent === {name});
                 if (!r) return null;
                 const d = document.querySelector('details[data-id=\"' + r.dataset.linkId + '\"]');
                 return d && d.open ? r.dataset.linkId : null;"
            ),
            WAIT,
        )
        .await;
    let id = id.as_str().unwrap().to_owned();
    let field = b.find(&format!("#url-{id}")).await;
    let url = b.property(&field, "value").await;
    (id, url.as_str().unwrap().to_owned())
}

/// The dashboard's row of a link: uses, status, and the sessions' status badges.
fn row_script(id: &str) -> String {
    format!(
        "const r = document.querySelector('tr[data-link-id=\"{id}\"]');
         if (!r) return null;
         return {{uses: r.querySelector('.uses').textContent, status: r.dataset.status,
                 sessions: [...document.querySelectorAll('details[data-id=\"{id}\"] .session-status')]
                   .map(e => e.textContent)}};"
    )
}

/// Waits until the flow page has opened its event stream (`/s/{token}/events`), as Chrome's
/// performance log shows.
async fn wait_for_flow_stream(b: &Browser) {
    let mut opened = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while !opened
        .iter()
        .any(|(_, u): &(String, String)| u.ends_with("/events") && u.contains("/s/"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the flow page opens its stream: {opened:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        opened.extend(b.requests_sent().await);
    }
}

/// Waits until the dashboard (without reloading) shows the link with these uses, status and
/// session badges (in any order).
async fn wait_for_row(b: &Browser, id: &str, uses: u64, status: &str, sessions: &[&str]) {
    let mut expected: Vec<String> = sessions.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    let expected = serde_json::to_string(&expected).unwrap();
    let script = format!(
        "const row = (function() {{ {} }})();
         if (!row) return false;
         const got = JSON.stringify([...row.sessions].sort());
         return row.uses === '{uses}' && row.status === '{status}' && got === {:?};",
        row_script(id),
        expected
    );
    let what = format!("dashboard shows {uses} uses, {status}, sessions {sessions:?}");
    b.wait_until(&what, &script, WAIT).await;
}

/// The link's uses, from the JSON API.
async fn uses(base: &str, id: &str) -> u64 {
    let (status, link) = get_json(&http(), &format!("{base}/api/links/{id}")).await;
    assert_eq!(status, 200, "{link}");
    link["uses"].as_u64().unwrap()
}

/// The link's landing-page views (people, scanners, unconfirmed), from the JSON API.
async fn views(base: &str, id: &str) -> (u64, u64, u64) {
    let (status, link) = get_json(&http(), &format!("{base}/api/links/{id}")).await;
    assert_eq!(status, 200, "{link}");
    let views = &link["stats"]["views"];
    let n = |kind: &str| views[kind].as_u64().unwrap();
    (n("human"), n("scanner"), n("unconfirmed"))
}

/// Waits until the JSON API reports these views (a page's beacon arrives on its own time).
async fn wait_for_views(base: &str, id: &str, expected: (u64, u64, u64), what: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let got = views(base, id).await;
        if got == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: views (people, scanners, unconfirmed) are {got:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens the link, checks the landing page, starts, goes through the flow with `outcome`, and
/// checks the done page. Saves screenshots with `shots` as prefix, if given.
async fn verify(
    b: &Browser,
    url: &str,
    outcome: &str,
    file: Option<&std::path::Path>,
    shots: Option<&str>,
) {
    let dir = artefact_dir("screenshots");
    b.goto(url).await;
    b.wait_for("main[data-page=landing]", WAIT).await;
    if let Some(prefix) = shots {
        b.screenshot(&dir, &format!("{prefix}-2-landing.png")).await;
    }
    b.click_css("#start").await;
    b.wait_for("main[data-page=flow]", WAIT).await;
    assert!(
        b.url().await.contains("/s/"),
        "the flow page is addressed by the session token"
    );
    if let Some(file) = file {
        b.choose_file("#document", file).await;
        b.choose_file("#selfie", file).await;
    }
    if let Some(prefix) = shots {
        b.screenshot(&dir, &format!("{prefix}-3-flow.png")).await;
    }
    b.click_css(&format!("#outcome-{outcome}")).await;
    b.click_css("#submit").await;
    b.wait_for(
        &format!("main[data-page=done][data-outcome={outcome}]"),
        WAIT,
    )
    .await;
    if let Some(prefix) = shots {
        b.screenshot(&dir, &format!("{prefix}-4-done.png")).await;
    }
}

/// A single-use link: created on the dashboard, opened, started and completed; the dashboard
/// updates by itself; opening the link again says it was already used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_use_link_end_to_end() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    // Its webhook receiver is on 127.0.0.1: allowed explicitly, as in local development.
    let server = Server::start(&[
        ("INITIAL_CREDITS", "10"),
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.1/32"),
    ]);
    let base = server.base.clone();
    let b = Browser::start(&bins).await;
    let dir = artefact_dir("screenshots");

    b.goto(&format!("{base}/dashboard")).await;
    let dashboard = b.window().await;

    // The webhook endpoint: a receiver of this test's, with a secret the server generates.
    let receiver = Receiver::start().await;
    b.type_into("#webhook-url", &receiver.url).await;
    b.click_css("#webhook-save").await;
    b.wait_for("#webhook-state[data-state=enabled]", WAIT).await;
    let shown = b.find("#webhook-secret-shown").await;
    let secret = b
        .property(&shown, "value")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret:?}");

    let (id, url) = create_link(
        &b,
        "Alice Example (single-use)",
        "document_and_selfie",
        Limit::Single,
        "en",
    )
    .await;
    assert!(url.starts_with(&format!("{base}/l/")), "{url}");
    b.execute("window.scrollTo(0, 0)", vec![]).await;
    b.screenshot(&dir, "single-1-dashboard.png").await;
    wait_for_row(&b, &id, 0, "active", &[]).await;

    // The QR code the dashboard shows is the one the API serves; upload it as the "document".
    let qr = http()
        .get(format!("{base}/api/links/{id}/qr.png"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let upload = dir.join("upload-example.png");
    std::fs::write(&upload, &qr).unwrap();

    // The person opens the link in another tab and completes the verification.
    b.new_tab().await;
    verify(&b, &url, "approved", Some(&upload), Some("single")).await;
    assert_eq!(uses(&base, &id).await, 1);

    // The dashboard, left open in the first tab, updates without a reload.
    b.switch_to(&dashboard).await;
    wait_for_row(&b, &id, 1, "exhausted", &["completed: approved"]).await;
    assert_eq!(b.text_css("#balance").await, "9", "one credit billed");
    assert_eq!(b.text_css("#held").await, "0");
    b.execute("window.scrollTo(0, 0)", vec![]).await;
    b.screenshot(&dir, "single-5-dashboard-updated.png").await;

    // The completion reached the receiver, signed (checked with the independent
    // `standardwebhooks` crate).
    let (headers, body) = receiver.wait_for("session.completed", "link_id", &id).await;
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["data"]["outcome"], "approved");
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&body, &headers)
        .expect("a valid webhook signature");

    // Opening the link again: "already used", 410 Gone, nothing consumed.
    b.new_tab().await;
    b.goto(&url).await;
    b.wait_for("main[data-problem=used]", WAIT).await;
    let title = b.text_css("#problem").await;
    assert_eq!(title, "This link has already been used");
    b.screenshot(&dir, "single-6-already-used.png").await;
    let res = http().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 410);
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    assert_eq!(uses(&base, &id).await, 1);

    b.quit().await;
    drop(server);
}

/// A 2-use link in Lithuanian: an email scanner's GET and HEAD consume nothing; two people use
/// it; the third is told it was used; a forged URL is not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_use_link_survives_email_scanners() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let base = server.base.clone();
    let b = Browser::start(&bins).await;
    let dir = artefact_dir("screenshots");

    b.goto(&format!("{base}/dashboard")).await;
    let dashboard = b.window().await;
    // Webhooks go to the server's own demo inbox, which verifies them as a receiver would.
    b.click_css("#webhook-use-inbox").await;
    b.click_css("#webhook-save").await;
    b.wait_for("#webhook-state[data-state=enabled]", WAIT).await;

    let (id, url) = create_link(&b, "Pavasario kampanija", "selfie", Limit::Multi(2), "lt").await;

    // An email security scanner fetches the link, several times, with GET and HEAD.
    let scanner = http();
    for _ in 0..3 {
        let got = scanner
            .get(&url)
            .header("user-agent", "Mozilla/5.0 (compatible; SafeLinks scanner)")
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        let page = got.text().await.unwrap();
        assert!(
            page.contains("Pradėti patvirtinimą"),
            "the landing page, in Lithuanian"
        );
        let head = scanner.head(&url).send().await.unwrap();
        assert_eq!(head.status(), 200);
    }
    assert_eq!(uses(&base, &id).await, 0, "GET and HEAD consumed nothing");
    assert_eq!(
        views(&base, &id).await,
        (0, 6, 0),
        "the scanner's GETs and HEADs count as a scanner's views"
    );
    wait_for_row(&b, &id, 0, "active", &[]).await;

    // The first person: the landing page is in Lithuanian; they are denied.
    b.new_tab().await;
    b.goto(&url).await;
    b.wait_for("main[data-page=landing]", WAIT).await;
    // Before any start: the page's script ran (allowed by the page's CSP nonce) and its
    // beacon confirmed the view as a person's.
    wait_for_views(&base, &id, (1, 6, 0), "the beacon of a real browser").await;
    assert_eq!(b.text_css("#start").await, "Pradėti patvirtinimą");
    assert!(b.text_css("#language").await.contains("Lietuvių"));
    b.screenshot(&dir, "multi-1-landing-lt.png").await;
    verify(&b, &url, "denied", None, None).await;
    assert!(b.text_css("#result").await.contains("Atmesta"));
    assert_eq!(uses(&base, &id).await, 1);
    wait_for_views(&base, &id, (2, 6, 0), "the person's second view").await;

    // The scanner again: still nothing consumed. A client that names no user agent and runs
    // no script leaves its view unconfirmed.
    assert_eq!(scanner.get(&url).send().await.unwrap().status(), 200);
    assert_eq!(scanner.head(&url).send().await.unwrap().status(), 200);
    assert_eq!(uses(&base, &id).await, 1);
    assert_eq!(views(&base, &id).await, (2, 7, 1));

    // The second person is approved.
    verify(&b, &url, "approved", None, Some("multi")).await;
    assert_eq!(uses(&base, &id).await, 2);
    wait_for_views(&base, &id, (3, 7, 1), "the second person's view").await;

    // The dashboard shows both sessions, live.
    b.switch_to(&dashboard).await;
    wait_for_row(
        &b,
        &id,
        2,
        "exhausted",
        &["completed: approved", "completed: denied"],
    )
    .await;
    assert_eq!(b.text_css("#balance").await, "8");
    // The link's funnel, drawn by the server as an SVG bar chart with text labels.
    b.wait_until(
        "the dashboard's funnel chart",
        &format!(
            "const svg = document.querySelector('details[data-id=\"{id}\"] svg.funnel');
             if (!svg) return false;
             const stage = s => svg.querySelector('g[data-stage=' + s + '] title').textContent;
             return svg.querySelector('title').textContent.startsWith('Funnel: 11 views')
               && stage('human') === 'Views: people: 3' && stage('scanner') === 'Views: scanners: 7'
               && stage('starts') === 'Starts: 2' && stage('approved') === 'Approved: 1'
               && stage('denied') === 'Denied: 1' && stage('expired') === 'Expired: 0';"
        ),
        WAIT,
    )
    .await;
    b.execute("window.scrollTo(0, 0)", vec![]).await;
    b.screenshot(&dir, "multi-5-dashboard.png").await;
    b.wait_until(
        "the demo inbox shows both completions, verified",
        "const rows = [...document.querySelectorAll('#inbox tr')].map(r => r.textContent);
         return ['session.completed (approved)', 'session.completed (denied)'].every(
           t => rows.some(r => r.includes(t) && r.includes('signature verified')));",
        WAIT,
    )
    .await;
    b.execute(
        "document.getElementById('webhooks').scrollIntoView()",
        vec![],
    )
    .await;
    b.screenshot(&dir, "multi-7-webhooks.png").await;

    // A third person: used up (410), in Lithuanian. A scanner's HEAD says the same.
    b.new_tab().await;
    b.goto(&url).await;
    b.wait_for("main[data-problem=used]", WAIT).await;
    assert_eq!(b.text_css("#problem").await, "Ši nuoroda jau panaudota");
    assert_eq!(scanner.head(&url).send().await.unwrap().status(), 410);

    // A forged link (one character of the signature changed): not found (404).
    let at = url.len() - 5;
    let swap = if &url[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{swap}{}", &url[..at], &url[at + 1..]);
    b.goto(&forged).await;
    b.wait_for("main[data-problem=not_found]", WAIT).await;
    b.screenshot(&dir, "multi-6-forged.png").await;
    assert_eq!(scanner.get(&forged).send().await.unwrap().status(), 404);
    assert_eq!(uses(&base, &id).await, 2);

    b.quit().await;
    drop(server);
}

/// An endpoint that receives only `session.reviewed`, chosen with the dashboard's checkboxes;
/// a verification that needs review; the owner approves it on the dashboard's session row: the
/// row shows the decision, nothing more is billed, and only `session.reviewed` is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_review_is_decided_on_the_dashboard() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[
        ("INITIAL_CREDITS", "10"),
        ("WEBHOOK_ALLOW_NETWORKS", "127.0.0.1/32"),
    ]);
    let base = server.base.clone();
    let b = Browser::start(&bins).await;
    let dir = artefact_dir("screenshots");
    b.goto(&format!("{base}/dashboard")).await;
    let dashboard = b.window().await;

    let receiver = Receiver::start().await;
    b.type_into("#webhook-url", &receiver.url).await;
    for name in [
        "link.created",
        "link.redeemed",
        "link.exhausted",
        "link.expired",
        "link.deactivated",
        "session.completed",
        "session.handed_off",
        "session.abandoned",
        "link.redacted",
        "session.redacted",
        "credits.added",
    ] {
        b.click_css(&format!("input[name=event-type][value='{name}']"))
            .await;
    }
    b.click_css("#webhook-save").await;
    b.wait_for("#webhook-state[data-state=enabled]", WAIT).await;
    assert_eq!(
        b.text_css("#webhook-types").await,
        "Event types: session.reviewed"
    );

    let (id, url) = create_link(&b, "Case 7", "selfie", Limit::Single, "en").await;
    b.new_tab().await;
    verify(&b, &url, "needs_review", None, None).await;
    b.switch_to(&dashboard).await;
    wait_for_row(&b, &id, 1, "exhausted", &["completed: needs_review"]).await;
    b.click_css(&format!(
        "details[data-id=\"{id}\"] [data-review][data-decision=approved]"
    ))
    .await;
    wait_for_row(
        &b,
        &id,
        1,
        "exhausted",
        &["completed: needs_review, reviewed: approved"],
    )
    .await;
    assert!(
        b.find_all(&format!("details[data-id=\"{id}\"] [data-review]"))
            .await
            .is_empty(),
        "a reviewed session offers no decision"
    );
    assert_eq!(b.text_css("#balance").await, "9", "one credit, billed once");
    b.screenshot(&dir, "review-1-dashboard.png").await;

    receiver
        .wait_for("session.reviewed", "decision", "approved")
        .await;
    let types = receiver.received_types();
    assert_eq!(types, ["session.reviewed"], "only the chosen type is sent");

    b.quit().await;
    drop(server);
}

/// The dashboard shows a completion without a reload and without polling: once it has loaded
/// and opened its event stream, it sends no request at all while a session is started and
/// completed elsewhere (over HTTP, outside this browser), yet shows the completion. Then the
/// flow page, left open, shows the outcome by itself when its session is completed elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_completion_without_reload_or_polling() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let base = server.base.clone();
    let http = http();
    let (status, link) = example_support::post_json(
        &http,
        &format!("{base}/api/links"),
        &serde_json::json!({"name": "Watched live", "flow": "selfie", "limit": {"multi": 2}}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let id = link["id"].as_str().unwrap().to_owned();
    let url = link["url"].as_str().unwrap().to_owned();

    let b = Browser::start(&bins).await;
    b.goto(&format!("{base}/dashboard")).await;
    let dashboard = b.window().await;
    b.wait_for("#dashboard[data-live=open]", WAIT).await;
    wait_for_row(&b, &id, 0, "active", &[]).await;
    // A mark that a reload would wipe out.
    b.execute("window.stillTheSamePage = true", vec![]).await;
    let loading = b.requests_sent().await;
    assert!(
        loading
            .iter()
            .any(|(_, u)| u.ends_with("/dashboard/events")),
        "the page opened its event stream: {loading:?}"
    );

    // A person starts and completes a session, in another client.
    let res = example_support::start(&http, &url).await;
    assert_eq!(res.status(), 303);
    let flow = format!("{base}{}", res.headers()["location"].to_str().unwrap());
    let done = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=approved")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);

    wait_for_row(&b, &id, 1, "active", &["completed: approved"]).await;
    assert_eq!(b.text_css("#balance").await, "9", "one credit billed");
    assert_eq!(
        b.execute("return window.stillTheSamePage === true", vec![])
            .await,
        true,
        "no reload"
    );
    // Left open a while longer (more than twice the 2 s the dashboard used to poll at), it
    // still sends nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let meanwhile = b.requests_sent().await;
    assert!(
        meanwhile.is_empty(),
        "no request while waiting (no polling): {meanwhile:?}"
    );

    // The flow page of a second session, left open in another tab, while the session is
    // completed elsewhere (a phone, the owner's backend): it shows the outcome by itself.
    b.new_tab().await;
    b.goto(&url).await;
    b.wait_for("main[data-page=landing]", WAIT).await;
    b.click_css("#start").await;
    b.wait_for("main[data-page=flow]", WAIT).await;
    let flow = b.url().await;
    // The page has opened its stream before the completion (else it would show the outcome
    // on opening it, which is right too, but not what is shown here).
    wait_for_flow_stream(&b).await;
    let done = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=denied")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    b.wait_for("main[data-page=done][data-outcome=denied]", WAIT)
        .await;

    b.switch_to(&dashboard).await;
    wait_for_row(
        &b,
        &id,
        2,
        "exhausted",
        &["completed: approved", "completed: denied"],
    )
    .await;
    b.quit().await;
    drop(server);
}

/// The public pages on a phone (390 x 844): the landing page, the flow, the result and the
/// problem pages fit the screen without sideways scrolling, their tap targets are at least
/// 44 px, and axe-core finds no serious or critical violation on any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_pages_fit_a_phone_and_pass_axe() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let Some(axe) = axe_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let base = server.base.clone();
    let (status, link) = example_support::post_json(
        &http(),
        &format!("{base}/api/links"),
        &serde_json::json!({"name": "Phone check, with a rather long name that has to wrap",
                            "flow": "document_and_selfie", "limit": "single"}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().unwrap().to_owned();

    let phone = Browser::start_phone(&bins, PHONE.0, PHONE.1).await;
    phone.goto(&url).await;
    phone.wait_for("main[data-page=landing]", WAIT).await;
    audit(&phone, &axe, "the landing page").await;

    phone.click_css("#start").await;
    phone.wait_for("main[data-page=flow]", WAIT).await;
    audit(&phone, &axe, "the flow page").await;

    phone.click_css("#outcome-approved").await;
    phone.click_css("#submit").await;
    phone
        .wait_for("main[data-page=done][data-outcome=approved]", WAIT)
        .await;
    audit(&phone, &axe, "the result page").await;

    // The problem pages: a used link (410) and a forged one (404).
    phone.goto(&url).await;
    phone.wait_for("main[data-problem=used]", WAIT).await;
    audit(&phone, &axe, "the problem page (used)").await;
    let at = url.len() - 5;
    let swap = if &url[at..=at] == "A" { "B" } else { "A" };
    phone
        .goto(&format!("{}{swap}{}", &url[..at], &url[at + 1..]))
        .await;
    phone.wait_for("main[data-problem=not_found]", WAIT).await;
    audit(&phone, &axe, "the problem page (not found)").await;

    phone.quit().await;
    drop(server);
}

/// Two browsers with their own cookies, a desktop and a phone (390 x 844). The desktop starts,
/// comes back to the link, sees "Continue your verification" and lands in the same session
/// (one use). It hands off: the phone opens the short hand-off URL, continues and completes;
/// the desktop says "continued on your phone", then shows the result by itself. The hand-off
/// URL opened again is refused. On the phone, two quick presses of "Start verification" start
/// one session, and a tampered form gets the 400 page. axe-core finds no serious or critical
/// violation on the landing, flow, hand-off, result, refusal and 400 pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_resume_and_hand_off_between_two_browsers() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let Some(axe) = axe_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let base = server.base.clone();
    let create = |name: &str, limit: serde_json::Value| {
        let base = base.clone();
        let body = serde_json::json!({"name": name, "flow": "document_and_selfie", "limit": limit});
        async move {
            let (status, link) =
                example_support::post_json(&http(), &format!("{base}/api/links"), &body).await;
            assert_eq!(status, 201, "{link}");
            let id = link["id"].as_str().unwrap().to_owned();
            (id, link["url"].as_str().unwrap().to_owned())
        }
    };
    let dir = artefact_dir("screenshots");
    let desktop = Browser::start(&bins).await;
    let phone = Browser::start_phone(&bins, PHONE.0, PHONE.1).await;

    // The desktop starts a single-use link's verification.
    let (id, url) = create("Account opening", serde_json::json!("single")).await;
    desktop.goto(&url).await;
    desktop.wait_for("main[data-page=landing]", WAIT).await;
    desktop.click_css("#start").await;
    desktop.wait_for("main[data-page=flow]", WAIT).await;
    let flow = desktop.url().await;
    assert_eq!(uses(&base, &id).await, 1);

    // It comes back to the link (reload, back button, the email again): "Continue", and the
    // same session, although the link is used up.
    desktop.goto(&url).await;
    desktop
        .wait_for("main[data-page=landing][data-resume]", WAIT)
        .await;
    assert_eq!(
        desktop.text_css("#continue").await,
        "Continue your verification"
    );
    assert_eq!(desktop.text_css("#start").await, "Continue verification");
    desktop.click_css("#start").await;
    desktop.wait_for("main[data-page=flow]", WAIT).await;
    assert_eq!(desktop.url().await, flow, "the same session");
    assert_eq!(uses(&base, &id).await, 1, "continuing consumed nothing");

    // "Continue on your phone": a QR code and a short URL, followed live.
    desktop.click_css("#to-phone").await;
    desktop
        .wait_for("main[data-page=phone][data-live=open]", WAIT)
        .await;
    let handoff_url = desktop.text_css("#handoff-url").await;
    assert!(
        handoff_url.starts_with(&format!("{base}/h/")) && handoff_url.len() <= 100,
        "{handoff_url} ({} characters)",
        handoff_url.len()
    );
    desktop.find("figure.qr svg").await;
    desktop.screenshot(&dir, "handoff-1-desktop-qr.png").await;
    desktop
        .execute("window.stillTheSamePage = true", vec![])
        .await;

    // The phone opens it: a page with a button (opening it consumed nothing).
    phone.goto(&handoff_url).await;
    phone.wait_for("main[data-page=handoff]", WAIT).await;
    audit(&phone, &axe, "the hand-off page").await;
    phone.screenshot(&dir, "phone-3-handoff.png").await;
    phone.click_css("#accept").await;
    phone.wait_for("main[data-page=flow]", WAIT).await;
    audit(&phone, &axe, "the flow page (handed off)").await;
    phone.screenshot(&dir, "phone-2-flow.png").await;

    // The desktop says so, by itself.
    desktop
        .wait_for("main[data-page=phone][data-handed-off]", WAIT)
        .await;
    assert!(desktop
        .text_css("#live-status")
        .await
        .starts_with("Continued on your phone"));
    assert_eq!(
        desktop
            .execute("return window.stillTheSamePage === true", vec![])
            .await,
        true,
        "no reload"
    );

    // The phone completes; the desktop shows the result without the person reloading it.
    phone.click_css("#outcome-approved").await;
    phone.click_css("#submit").await;
    phone
        .wait_for("main[data-page=done][data-outcome=approved]", WAIT)
        .await;
    audit(&phone, &axe, "the result page").await;
    phone.screenshot(&dir, "phone-4-result.png").await;
    desktop
        .wait_for("main[data-page=done][data-outcome=approved]", WAIT)
        .await;
    assert_eq!(
        desktop
            .execute("return window.stillTheSamePage === true", vec![])
            .await,
        true,
        "the result replaced the page's content: no reload"
    );
    desktop
        .screenshot(&dir, "handoff-2-desktop-result.png")
        .await;
    assert_eq!(uses(&base, &id).await, 1);

    // The hand-off URL again: refused as soon as it opens (a read of the store, nothing used).
    phone.goto(&handoff_url).await;
    phone
        .wait_for("main[data-problem=handoff_used]", WAIT)
        .await;
    assert_eq!(uses(&base, &id).await, 1);
    audit(&phone, &axe, "the refusal page").await;
    phone.screenshot(&dir, "phone-5-refused.png").await;

    // On the phone, a new link: two quick presses of "Start verification" (both sent, as a
    // double tap before the page changes would), one session.
    let (id, url) = create("Newsletter", serde_json::json!({"multi": 3})).await;
    phone.goto(&url).await;
    phone.wait_for("main[data-page=landing]", WAIT).await;
    audit(&phone, &axe, "the landing page").await;
    phone.screenshot(&dir, "phone-1-landing.png").await;
    let statuses = phone
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const form = document.getElementById('start-form');
             const press = () => fetch(location.href, {method: 'POST', body: new URLSearchParams(new FormData(form)), redirect: 'manual'});
             Promise.all([press(), press()]).then(rs => done(rs.map(r => r.type)));",
            vec![],
        )
        .await;
    assert_eq!(
        statuses,
        serde_json::json!(["opaqueredirect", "opaqueredirect"])
    );
    assert_eq!(uses(&base, &id).await, 1, "two presses, one use");

    // A form whose token was tampered with: the 400 page, with a way back.
    phone
        .execute(
            "const f = document.getElementById('start-form');
             f.querySelector('input[name=form_token]').value = 'tampered';
             f.submit();",
            vec![],
        )
        .await;
    phone
        .wait_for("main[data-problem=form_rejected]", WAIT)
        .await;
    audit(&phone, &axe, "the 400 page").await;
    phone.click_css("#back").await;
    phone
        .wait_for("main[data-page=landing][data-resume]", WAIT)
        .await;
    assert_eq!(uses(&base, &id).await, 1);

    desktop.quit().await;
    phone.quit().await;
    drop(server);
}

/// The query of `url` with the value of parameter `name` changed (a character, or the status
/// flipped), the rest as it was.
fn with_changed(url: &str, name: &str) -> String {
    let (path, query) = url.split_once('?').unwrap();
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap();
            if key != name {
                return pair.to_owned();
            }
            let changed = match key {
                "status" if value == "completed" => "quit".to_owned(),
                "status" => "completed".to_owned(),
                "timestamp" => (value.parse::<i64>().unwrap() + 1).to_string(),
                _ => {
                    let last = value.chars().last().unwrap();
                    let other = if last == '1' { '2' } else { '1' };
                    format!("{}{other}", &value[..value.len() - 1])
                }
            };
            format!("{key}={changed}")
        })
        .collect();
    assert!(
        pairs.iter().any(|p| p.starts_with(&format!("{name}="))),
        "{url} has no {name}"
    );
    format!("{path}?{}", pairs.join("&"))
}

/// One multi-use link with a return URL on the server's own origin, and two personal URLs for
/// two recipients, each opened in its own browser (its own cookies): each session records its
/// own reference. A personal URL edited in its reference is refused and uses nothing. A
/// completion lands on the return URL, whose page verifies the signature and shows the
/// session and the reference; quitting lands there too, as `quit`. The landed URL with any
/// one parameter changed fails verification. A return URL on an origin the account does not
/// allow is refused (422). axe-core checks the branded landing, flow and return pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_urls_and_signed_returns() {
    let Some(bins) = binaries_or_skip() else {
        return;
    };
    let Some(axe) = axe_or_skip() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let server = Server::start(&[("INITIAL_CREDITS", "10")]);
    let base = server.base.clone();
    let http = http();

    // The account's support URL: "Get help" on the visitor's pages.
    let res = http
        .put(format!("{base}/api/account/profile"))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({"display_name": "Demo Bank",
                "support_url": format!("{base}/help"), "return_origins": [&base]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Not allowed: another origin.
    let (status, refused) = example_support::post_json(
        &http,
        &format!("{base}/api/links"),
        &serde_json::json!({"name": "Elsewhere", "flow": "selfie",
                            "return_url": "https://shop.example/done"}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["code"], "return_origin_not_allowed");

    let return_url = format!("{base}/demo/return?shop=7");
    let (status, link) = example_support::post_json(
        &http,
        &format!("{base}/api/links"),
        &serde_json::json!({"name": "Spring cohort (internal)", "flow": "selfie",
                            "limit": {"multi": 5}, "return_url": return_url}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let id = link["id"].as_str().unwrap().to_owned();
    let personal = |reference: &'static str| {
        let (http, url) = (http.clone(), format!("{base}/api/links/{id}/personal"));
        async move {
            let body = serde_json::json!({ "reference": reference });
            let (status, made) = example_support::post_json(&http, &url, &body).await;
            assert_eq!(status, 200, "{made}");
            made["url"].as_str().unwrap().to_owned()
        }
    };
    let alice = personal("cus_alice_0001").await;
    let bob = personal("cus_bob_0002").await;

    // Alice, in her browser: landing, flow, completion, and the return page.
    let a = Browser::start_phone(&bins, PHONE.0, PHONE.1).await;
    a.goto(&alice).await;
    a.wait_for("main[data-page=landing]", WAIT).await;
    assert_eq!(a.text_css("#brand").await, "Demo Bank");
    a.find("#help").await;
    audit(&a, &axe, "the branded landing page").await;
    a.click_css("#start").await;
    a.wait_for("main[data-page=flow]", WAIT).await;
    audit(&a, &axe, "the branded flow page").await;
    a.click_css("#outcome-approved").await;
    a.click_css("#submit").await;
    a.wait_for("main[data-page=return][data-verified=true]", WAIT)
        .await;
    audit(&a, &axe, "the demo return page").await;
    let landed = a.url().await;
    assert!(
        landed.starts_with(&format!("{return_url}&session_id=")),
        "{landed}"
    );
    assert_eq!(a.text_css("#reference").await, "cus_alice_0001");
    assert_eq!(a.text_css("#status").await, "completed");
    let alice_session = a.text_css("#session-id").await;
    assert_eq!(a.text_css("#link-id").await, id);

    // An edited personal URL: refused, nothing used.
    let at = alice.find("/l/").unwrap() + 3 + 44;
    let swap = if &alice[at..=at] == "A" { "B" } else { "A" };
    let edited = format!("{}{swap}{}", &alice[..at], &alice[at + 1..]);
    a.goto(&edited).await;
    a.wait_for("main[data-problem=not_found]", WAIT).await;
    assert_eq!(uses(&base, &id).await, 1, "the edited URL used nothing");

    // Bob, in another browser: he quits, and lands on the return page as `quit`.
    let b = Browser::start(&bins).await;
    b.goto(&bob).await;
    b.wait_for("main[data-page=landing]", WAIT).await;
    b.click_css("#start").await;
    b.wait_for("main[data-page=flow]", WAIT).await;
    b.click_css("#quit").await;
    b.wait_for("main[data-page=return][data-verified=true]", WAIT)
        .await;
    assert_eq!(b.text_css("#reference").await, "cus_bob_0002");
    assert_eq!(b.text_css("#status").await, "quit");
    let bob_session = b.text_css("#session-id").await;
    assert_eq!(uses(&base, &id).await, 2);

    // Each session carries its own reference.
    let (status, sessions) = get_json(&http, &format!("{base}/api/links/{id}/sessions")).await;
    assert_eq!(status, 200, "{sessions}");
    let mut got: Vec<(String, String)> = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_owned(),
                s["reference"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(
        got,
        vec![
            (alice_session.clone(), "cus_alice_0001".to_owned()),
            (bob_session.clone(), "cus_bob_0002".to_owned()),
        ]
    );

    // The landed URL verifies as it is; with any one parameter changed, it does not.
    let verdict = |url: String| {
        let http = http.clone();
        async move {
            let res = http.get(&url).send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (status, page) = verdict(landed.clone()).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-verified=\"true\""), "{page}");
    for name in [
        "session_id",
        "link_id",
        "reference",
        "status",
        "timestamp",
        "shop",
    ] {
        let changed = with_changed(&landed, name);
        assert_ne!(changed, landed);
        let (status, page) = verdict(changed).await;
        assert_eq!(status, 400, "{name} changed: {page}");
        assert!(
            page.contains("data-verified=\"false\"") && page.contains("bad_signature"),
            "{name} changed: {page}"
        );
    }

    // The owner erases Bob's reference on the dashboard, then the link's labels (each button
    // pressed twice: erasing is final). Clicked by script: they sit in collapsed details.
    a.goto(&format!("{base}/dashboard")).await;
    let press_twice = |css: String| {
        let a = &a;
        async move {
            a.wait_for(&css, WAIT).await;
            for _ in 0..2 {
                a.execute(
                    "document.querySelector(arguments[0]).click()",
                    vec![serde_json::json!(css)],
                )
                .await;
            }
        }
    };
    press_twice(format!("button[data-redact-session='{bob_session}']")).await;
    a.wait_until(
        "Bob's reference erased on the dashboard",
        &format!("return !document.querySelector(\"button[data-redact-session='{bob_session}']\")"),
        WAIT,
    )
    .await;
    let session_ref = |session: String| {
        let (http, base, id) = (http.clone(), base.clone(), id.clone());
        async move {
            let (_, s) = get_json(&http, &format!("{base}/api/links/{id}/sessions")).await;
            s["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["id"] == session.as_str())
                .map(|x| x["reference"].clone())
                .unwrap()
        }
    };
    assert_eq!(
        session_ref(bob_session.clone()).await,
        serde_json::Value::Null
    );
    assert_eq!(session_ref(alice_session.clone()).await, "cus_alice_0001");
    press_twice(format!("button[data-redact-link='{id}']")).await;
    a.wait_for(&format!("tr[data-link-id='{id}'] .link-redacted"), WAIT)
        .await;
    assert_eq!(
        session_ref(alice_session.clone()).await,
        serde_json::Value::Null
    );
    let (_, found) = get_json(
        &http,
        &format!("{base}/api/sessions?reference=cus_alice_0001"),
    )
    .await;
    assert_eq!(found["items"], serde_json::json!([]), "{found}");

    // After the link's redaction a personal URL still starts a session, which records no
    // reference. Its flow page, left open while the session is completed elsewhere (over
    // HTTP, outside this browser), follows the signed return URL by itself.
    let carol = personal("cus_carol_0003").await;
    a.goto(&carol).await;
    a.wait_for("main[data-page=landing]", WAIT).await;
    a.click_css("#start").await;
    a.wait_for("main[data-page=flow]", WAIT).await;
    let flow = a.url().await;
    // The page has opened its stream before the completion.
    wait_for_flow_stream(&a).await;
    let done = http
        .post(&flow)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("outcome=approved")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 303);
    a.wait_for("main[data-page=return][data-verified=true]", WAIT)
        .await;
    assert_eq!(a.text_css("#status").await, "completed");
    assert_eq!(
        a.text_css("#reference").await,
        "",
        "a redacted link's personal URL records no reference"
    );

    a.quit().await;
    b.quit().await;
    drop(server);
}
