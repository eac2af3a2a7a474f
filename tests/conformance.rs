//! The conformance suite on the in-memory stores, and the race tests.

use std::sync::Arc;

use magic_link::conformance::ReferenceStore;
use magic_link::conformance::{self, race};
use magic_link::store::MemoryStore;
use magic_link::{Rejection, UsageLimit};

#[tokio::test]
async fn memory_store_passes_the_suite() {
    conformance::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn reference_model_passes_the_suite() {
    conformance::run_all(&ReferenceStore::new()).await;
}

/// 8 threads x 500 attempts on one link of limit 1,000 with 700 credits: credits run out first.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn race_on_a_multi_use_link_stops_at_the_credits() {
    let limit = UsageLimit::multi(1000).unwrap();
    let report = race(Arc::new(MemoryStore::new()), 8, 500, limit, 700).await;
    assert_eq!(report.successes, 700);
    assert_eq!(report.uses, 700);
    assert_eq!(report.sessions, 700);
    assert_eq!(report.rejections.get(&Rejection::NoCredits), Some(&3300));
    assert_eq!(report.rejections.len(), 1, "{:?}", report.rejections);
}

/// The same race on a single-use link: exactly one success.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn race_on_a_single_use_link_has_one_winner() {
    let report = race(
        Arc::new(MemoryStore::new()),
        8,
        500,
        UsageLimit::Single,
        700,
    )
    .await;
    assert_eq!(report.successes, 1);
    assert_eq!(report.uses, 1);
    assert_eq!(report.rejections.get(&Rejection::Exhausted), Some(&3999));
}

/// Limit below credits: the limit stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn race_stops_at_the_limit() {
    let limit = UsageLimit::multi(300).unwrap();
    let report = race(Arc::new(MemoryStore::new()), 8, 100, limit, 700).await;
    assert_eq!(report.successes, 300);
    assert_eq!(report.rejections.get(&Rejection::Exhausted), Some(&500));
}

/// 32 tasks review one `needs_review` session at once, 16 approving and 16 denying: one
/// decision wins, with exactly one `session.reviewed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_reviews_record_one_decision() {
    for _ in 0..20 {
        let report = conformance::review_race(Arc::new(MemoryStore::new()), 32).await;
        assert_eq!(report.successes, 16, "{report:?}");
        assert_eq!(report.reviewed_events, 1, "{report:?}");
        assert_eq!(
            report.rejections.get(&Rejection::ReviewConflict),
            Some(&16),
            "{report:?}"
        );
    }
    let report = conformance::review_race(Arc::new(ReferenceStore::new()), 32).await;
    assert_eq!(report.reviewed_events, 1, "{report:?}");
}

/// 32 tasks redeem one link at once with one start key: 1 use and 1 session, which every task
/// gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_starts_with_one_key_make_one_session() {
    for _ in 0..20 {
        let report = conformance::keyed_race(
            Arc::new(MemoryStore::new()),
            32,
            UsageLimit::Unlimited,
            |_| 7,
        )
        .await;
        assert_eq!(report.successes, 32, "{report:?}");
        assert_eq!(report.distinct_sessions, 1, "{report:?}");
        assert_eq!(report.uses, 1, "{report:?}");
    }
    let report = conformance::keyed_race(
        Arc::new(ReferenceStore::new()),
        32,
        UsageLimit::Unlimited,
        |_| 7,
    )
    .await;
    assert_eq!(
        (report.distinct_sessions, report.uses),
        (1, 1),
        "{report:?}"
    );
}

/// 32 tasks with distinct start keys on a link of 5 uses: exactly 5 sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_starts_with_distinct_keys_stop_at_the_limit() {
    for _ in 0..20 {
        let limit = UsageLimit::multi(5).unwrap();
        let report =
            conformance::keyed_race(Arc::new(MemoryStore::new()), 32, limit, |t| t as u64).await;
        assert_eq!(report.successes, 5, "{report:?}");
        assert_eq!(report.distinct_sessions, 5, "{report:?}");
        assert_eq!(report.uses, 5, "{report:?}");
        assert_eq!(
            report.rejections.get(&Rejection::Exhausted),
            Some(&27),
            "{report:?}"
        );
    }
}

/// 32 tasks accept one hand-off at once: exactly one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_accepts_of_one_handoff_have_one_winner() {
    for _ in 0..20 {
        assert_eq!(
            conformance::handoff_race(Arc::new(MemoryStore::new()), 32).await,
            1
        );
    }
}
