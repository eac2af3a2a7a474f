//! Random operation sequences: MemoryStore against the reference model, with the invariants
//! checked after every step.

use magic_link::conformance::compare_with_model;
use magic_link::store::MemoryStore;
use proptest::prelude::*;

#[path = "common/ops.rs"]
mod ops;
use ops::op;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(compare_with_model(&MemoryStore::new(), &ops));
    }
}

/// The keyed operations in a fixed sequence: a resume, a second key, a hand-off accepted twice,
/// a start after the session ended, and one after it went stale.
#[test]
fn keyed_starts_and_handoffs_match_the_model() {
    use magic_link::conformance::Op;
    let ops = [
        Op::CreateLink {
            account: 0,
            limit: None,
            expires_in: None,
        },
        Op::TopUp {
            account: 0,
            amount: 3,
            key: 0,
        },
        Op::RedeemWithKey { link: 0, key: 0 },
        Op::RedeemWithKey { link: 0, key: 0 },
        Op::StartedSession { link: 0, key: 0 },
        Op::RedeemWithKey { link: 0, key: 1 },
        Op::Handoff {
            session: 0,
            account: 0,
            ttl: 600,
        },
        Op::AcceptHandoff { handoff: 0 },
        Op::AcceptHandoff { handoff: 0 },
        Op::Complete {
            session: 0,
            account: 0,
            outcome: 0,
        },
        Op::RedeemWithKey { link: 0, key: 0 },
        Op::Advance { seconds: 1200 },
        Op::Advance { seconds: 1200 },
        Op::StartedSession { link: 0, key: 0 },
        Op::RedeemWithKey { link: 0, key: 0 },
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(compare_with_model(&MemoryStore::new(), &ops));
}

/// References and redaction in a fixed sequence (see `ops::redaction_sequence`).
#[test]
fn references_and_redaction_match_the_model() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(compare_with_model(
        &MemoryStore::new(),
        &ops::redaction_sequence(),
    ));
}
