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
