//! Random delivery operation sequences: MemoryStore and the ReferenceStore's webhook half
//! against the delivery model, compared after every step.

use std::sync::Arc;

use magic_link::conformance::{compare_delivery_with_model, ReferenceStore};
use magic_link::store::MemoryStore;
use proptest::prelude::*;

#[path = "common/delivery_ops.rs"]
mod delivery_ops;
use delivery_ops::delivery_op;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_store_matches_the_delivery_model(
        ops in proptest::collection::vec(delivery_op(), 1..120)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(compare_delivery_with_model(&MemoryStore::new(), &ops));
    }

    #[test]
    fn shared_memory_store_matches_the_delivery_model(
        ops in proptest::collection::vec(delivery_op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(compare_delivery_with_model(&Arc::new(MemoryStore::new()), &ops));
    }

    #[test]
    fn reference_store_matches_the_delivery_model(
        ops in proptest::collection::vec(delivery_op(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(compare_delivery_with_model(&ReferenceStore::new(), &ops));
    }
}
