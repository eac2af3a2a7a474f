//! Random operation sequences: MemoryStore against the reference model, with the invariants
//! checked after every step.

use magic_link::conformance::{compare_with_model, Op};
use magic_link::MemoryStore;
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<u8>(), proptest::option::of(0u8..4), proptest::option::of(0u16..600))
            .prop_map(|(account, limit, expires_in)| Op::CreateLink { account, limit, expires_in }),
        6 => (0u8..8).prop_map(|link| Op::Redeem { link }),
        3 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(session, account, outcome)| Op::Complete { session, account, outcome }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(session, account)| Op::Abandon { session, account }),
        1 => (0u8..8, any::<u8>()).prop_map(|(link, account)| Op::Deactivate { link, account }),
        2 => (any::<u8>(), 0u8..4, any::<u8>())
            .prop_map(|(account, amount, key)| Op::TopUp { account, amount, key }),
        2 => (0u16..1200).prop_map(|seconds| Op::Advance { seconds }),
        1 => Just(Op::Expire),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(compare_with_model(&MemoryStore::new(), &ops));
    }
}
