//! Random operation sequences for `conformance::compare_with_model`, shared by the model tests
//! of every store.

use magic_link::conformance::Op;
use proptest::prelude::*;

/// One random operation, weighted towards redemptions.
pub(crate) fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<u8>(), proptest::option::of(0u8..4), proptest::option::of(0u16..600))
            .prop_map(|(account, limit, expires_in)| Op::CreateLink { account, limit, expires_in }),
        6 => (0u8..8).prop_map(|link| Op::Redeem { link }),
        3 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(session, account, outcome)| Op::Complete { session, account, outcome }),
        2 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(session, account, decision)| Op::Review { session, account, decision }),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(session, account)| Op::Abandon { session, account }),
        1 => (0u8..8, any::<u8>()).prop_map(|(link, account)| Op::Deactivate { link, account }),
        2 => (any::<u8>(), 0u8..4, any::<u8>())
            .prop_map(|(account, amount, key)| Op::TopUp { account, amount, key }),
        2 => (0u16..1200).prop_map(|seconds| Op::Advance { seconds }),
        1 => Just(Op::Expire),
        1 => Just(Op::ExpireLinks),
        2 => (0u8..8, any::<u8>()).prop_map(|(link, change)| Op::View { link, change }),
        4 => (0u8..8, any::<u8>()).prop_map(|(link, key)| Op::RedeemWithKey { link, key }),
        1 => (0u8..8, any::<u8>()).prop_map(|(link, key)| Op::StartedSession { link, key }),
        2 => (any::<u8>(), any::<u8>(), 0u16..1200)
            .prop_map(|(session, account, ttl)| Op::Handoff { session, account, ttl }),
        2 => any::<u8>().prop_map(|handoff| Op::AcceptHandoff { handoff }),
        1 => (0u16..1200, any::<u8>()).prop_map(|(age, limit)| Op::Prune { age, limit }),
        2 => (any::<u8>(), proptest::option::of(any::<u8>()), 0u8..3).prop_map(
            |(account, reference, metadata)| Op::CreateLabelledLink { account, reference, metadata }
        ),
        4 => (0u8..8, any::<u8>()).prop_map(|(link, reference)| Op::RedeemAs { link, reference }),
        1 => (any::<u8>(), any::<u8>())
            .prop_map(|(account, reference)| Op::ByReference { account, reference }),
        1 => (0u8..8, any::<u8>()).prop_map(|(link, account)| Op::RedactLink { link, account }),
        1 => (any::<u8>(), any::<u8>())
            .prop_map(|(session, account)| Op::RedactSession { session, account }),
    ]
}

/// References and redaction in a fixed sequence: labelled links, personal and anonymous
/// redemptions, reads by reference, a session's redaction, its link's, repeats, a redemption
/// after the link's redaction, and another account's attempts.
#[allow(dead_code)] // not every test binary that includes this file uses it
pub(crate) fn redaction_sequence() -> Vec<Op> {
    vec![
        Op::TopUp {
            account: 0,
            amount: 3,
            key: 0,
        },
        Op::CreateLabelledLink {
            account: 0,
            reference: Some(0),
            metadata: 1,
        },
        Op::CreateLabelledLink {
            account: 0,
            reference: Some(0),
            metadata: 0,
        },
        Op::RedeemAs {
            link: 0,
            reference: 0,
        },
        Op::Redeem { link: 0 },
        Op::RedeemAs {
            link: 1,
            reference: 1,
        },
        Op::Complete {
            session: 0,
            account: 0,
            outcome: 0,
        },
        Op::ByReference {
            account: 0,
            reference: 0,
        },
        Op::ByReference {
            account: 1,
            reference: 0,
        },
        Op::RedactSession {
            session: 2,
            account: 1,
        },
        Op::RedactSession {
            session: 2,
            account: 0,
        },
        Op::RedactSession {
            session: 2,
            account: 0,
        },
        Op::RedactLink {
            link: 0,
            account: 1,
        },
        Op::RedactLink {
            link: 0,
            account: 0,
        },
        Op::RedactLink {
            link: 0,
            account: 0,
        },
        Op::RedactSession {
            session: 0,
            account: 0,
        },
        Op::RedactSession {
            session: 1,
            account: 0,
        },
        Op::TopUp {
            account: 0,
            amount: 3,
            key: 1,
        },
        Op::RedeemAs {
            link: 0,
            reference: 0,
        },
        Op::ByReference {
            account: 0,
            reference: 0,
        },
    ]
}
