//! The delivery-conformance suite, run against every in-crate `WebhookStore`.

use std::sync::Arc;

use magic_link::conformance::{delivery, ReferenceStore};
use magic_link::store::MemoryStore;

macro_rules! suite {
    ($store:ident, $new:expr, [$($check:ident),* $(,)?]) => {
        mod $store {
            use super::*;
            $(
                #[tokio::test]
                async fn $check() {
                    delivery::$check(&$new).await;
                }
            )*
        }
    };
}

macro_rules! all_checks {
    ($store:ident, $new:expr) => {
        suite!(
            $store,
            $new,
            [
                endpoints,
                queues_events_of_accounts_with_an_endpoint,
                concurrent_queueing_queues_each_event_once,
                gone_from_a_replaced_endpoint_disables_nothing,
                claims_are_exclusive_until_the_lease_runs_out,
                attempts_move_deliveries_along,
                success_under_a_lost_lease_counts,
                exhausted_deliveries_fail_and_can_be_requeued,
                gone_endpoint_is_disabled,
                disabling_an_endpoint_fails_its_pending_deliveries,
                failed_deliveries_page_and_filter,
                owner_operations_answer_not_found_to_other_accounts,
                prune_deletes_only_old_delivered,
                released_leases_are_claimable_at_once,
                endpoints_receive_only_their_event_types,
            ]
        );
    };
}

all_checks!(memory, MemoryStore::new());
all_checks!(shared_memory, Arc::new(MemoryStore::new()));
// The reference store's webhook half is the delivery model: the suite checks the model too.
all_checks!(reference, ReferenceStore::new());

/// All checks on one store, after the core suite filled it with other accounts' events.
#[tokio::test]
async fn one_store_for_both_suites() {
    let store = MemoryStore::new();
    magic_link::conformance::run_all(&store).await;
    delivery::run_all(&store).await;
    // And again: the checks tolerate their own leftovers.
    delivery::run_all(&store).await;
}

/// The retention check on each store that is both a `LinkStore` and a `WebhookStore`.
#[tokio::test]
async fn retention_memory() {
    magic_link::conformance::retention(&MemoryStore::new()).await;
}

#[tokio::test]
async fn retention_reference() {
    magic_link::conformance::retention(&ReferenceStore::new()).await;
}
