//! Two instances of the example server on one PostgreSQL database: a 5-use link redeemed
//! through both at once yields exactly 5 sessions.
//!
//! Reads `DATABASE_URL` at run time; without it the test says why and skips (CI sets it).
//! Works in a schema of its own, dropped at the end.

mod example_support;

use example_support::{get_json, http, post_json, Server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_database() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("skipping the two-instance test: DATABASE_URL is not set");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let schema = format!("server_test_{}_{nanos}", std::process::id());
    let _drop = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };

    // Both instances: one database and schema, one keyring, one account.
    let keys = magic_link::tokens::Keyring::generate().unwrap().export();
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_SCHEMA", schema.as_str()),
        ("MAGIC_LINK_KEYS", keys.expose_secret()),
        ("INITIAL_CREDITS", "20"),
    ];
    let a = Server::start(&env);
    let b = Server::start(&env);
    let http = http();

    // The initial credits were added once, though both instances started with them.
    let (_, account) = get_json(&http, &format!("{}/api/account", b.base)).await;
    assert_eq!(account["balance"], 20, "{account}");

    let (status, link) = post_json(
        &http,
        &format!("{}/api/links", a.base),
        &json!({"name": "Shared", "flow": "selfie", "limit": {"multi": 5}}),
    )
    .await;
    assert_eq!(status, 201, "{link}");
    let id = link["id"].as_str().unwrap().to_owned();
    let token = link["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();

    // Twelve people press "Start verification" at once, alternately on each instance.
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let base = if i % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            };
            let http = http.clone();
            let token = token.clone();
            tokio::spawn(async move {
                let res = example_support::start(&http, &format!("{base}/l/{token}")).await;
                res.status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [303, 303, 303, 303, 303, 410, 410, 410, 410, 410, 410, 410]
    );

    // Both instances see exactly five sessions, numbered 1 to 5, and five held credits.
    for server in [&a, &b] {
        let (status, got) = get_json(&http, &format!("{}/api/links/{id}", server.base)).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["uses"], 5);
        assert_eq!(got["status"], "exhausted");
        assert_eq!(got["stats"]["started"], 5);
        let (_, sessions) =
            get_json(&http, &format!("{}/api/links/{id}/sessions", server.base)).await;
        let mut numbers: Vec<u64> = sessions["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["number"].as_u64().unwrap())
            .collect();
        numbers.sort_unstable();
        assert_eq!(numbers, [1, 2, 3, 4, 5]);
        let (_, account) = get_json(&http, &format!("{}/api/account", server.base)).await;
        assert_eq!(account["held"], 5);
        let landing = http
            .get(format!("{}/l/{token}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(landing.status(), 410);
    }
}

/// Drops the test's schema, also when the test fails.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema);
        // A fresh runtime and connection on another thread: this runs inside the test's
        // runtime, maybe while it unwinds.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(pool) = magic_link::store::sqlx::PgPool::connect(&url).await {
                    let _ = magic_link::store::sqlx::query(&sql).execute(&pool).await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}
