//! Outgoing webhooks in the Standard Webhooks form, and their verification on the receiving
//! side.

pub(crate) mod signing;
