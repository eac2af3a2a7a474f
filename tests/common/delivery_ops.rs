//! Random operation sequences for `conformance::compare_delivery_with_model`, shared by the
//! delivery model tests of every store.

use magic_link::conformance::{AttemptReply, DeliveryOp, RetryAfterHeader};
use proptest::prelude::*;

fn retry_after() -> impl Strategy<Value = RetryAfterHeader> {
    prop_oneof![
        4 => prop_oneof![Just(0u32), Just(5), Just(30), Just(120), Just(3600), any::<u32>()]
            .prop_map(RetryAfterHeader::Seconds),
        2 => (-100i32..2000).prop_map(RetryAfterHeader::DateIn),
        1 => ".{0,12}".prop_map(RetryAfterHeader::Raw),
    ]
}

fn reply() -> impl Strategy<Value = AttemptReply> {
    let status = |codes: &'static [u16]| {
        (
            proptest::sample::select(codes),
            proptest::option::of(retry_after()),
        )
            .prop_map(|(code, retry_after)| AttemptReply::Status { code, retry_after })
    };
    prop_oneof![
        3 => status(&[200, 204]),
        2 => status(&[410]),
        3 => status(&[429, 502, 503, 504]),
        2 => status(&[500, 404, 301]),
        1 => Just(AttemptReply::Timeout),
        1 => Just(AttemptReply::Refused),
    ]
}

/// The acting account: mostly the owner.
fn by() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![3 => Just(None), 1 => any::<u8>().prop_map(Some)]
}

/// One random operation, weighted towards the dispatcher's cycle (queue, claim, record).
pub(crate) fn delivery_op() -> impl Strategy<Value = DeliveryOp> {
    prop_oneof![
        6 => (any::<u8>(), proptest::bool::weighted(0.3))
            .prop_map(|(account, link)| DeliveryOp::AddEvent { account, link }),
        2 => (any::<u8>(), proptest::bool::weighted(0.2), prop_oneof![2 => Just(0u8), 3 => 1u8..4])
            .prop_map(|(account, disabled, types)| DeliveryOp::SetEndpoint { account, disabled, types }),
        1 => any::<u8>().prop_map(|account| DeliveryOp::DisableEndpoint { account }),
        4 => prop_oneof![1 => Just(0u8), 4 => 1u8..8].prop_map(|limit| DeliveryOp::Queue { limit }),
        6 => (prop_oneof![1 => Just(0u8), 4 => 1u8..5], prop_oneof![Just(0u16), 1u16..120])
            .prop_map(|(limit, lease)| DeliveryOp::Claim { limit, lease }),
        9 => (prop_oneof![3 => 0u8..3, 1 => any::<u8>()], reply())
            .prop_map(|(claim, reply)| DeliveryOp::Record { claim, reply }),
        6 => (1u8..5, reply(), proptest::bool::weighted(0.2))
            .prop_map(|(limit, reply, replaced)| DeliveryOp::Dispatch { limit, reply, replaced }),
        3 => (any::<u8>(), by()).prop_map(|(event, by)| DeliveryOp::Requeue { event, by }),
        1 => (any::<u8>(), by()).prop_map(|(event, by)| DeliveryOp::Read { event, by }),
        1 => (any::<u8>(), any::<u8>(), 0u8..3)
            .prop_map(|(account, after, limit)| DeliveryOp::ListFailed { account, after, limit }),
        1 => (prop_oneof![Just(0u16), 0u16..30, 0u16..600], 0u8..4)
            .prop_map(|(age, limit)| DeliveryOp::Prune { age, limit }),
        4 => prop_oneof![0u16..20, 0u16..400].prop_map(|seconds| DeliveryOp::Advance { seconds }),
    ]
}
