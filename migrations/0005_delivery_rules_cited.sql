-- magic-link: the delivery functions name the pure rules they mirror, version 5. A template,
-- as 0001_initial.sql. No behaviour changes: the decisions are written once, in Rust
-- (magic_link::webhooks::rules), and MemoryStore calls them; these functions apply the same
-- rules in SQL, and the delivery model test (magic_link::conformance::compare_delivery_with_model)
-- compares this store with a model built on the Rust rules.

COMMENT ON FUNCTION __SCHEMA__.queue_deliveries(timestamptz, bigint) IS
    'Mirrors magic_link::webhooks::rules::queued_status: no endpoint, not queued; a disabled '
    'endpoint, queued as failed (endpoint_disabled); an enabled one, pending and due at p_now.';

COMMENT ON FUNCTION __SCHEMA__.claim_due(timestamptz, timestamptz, bigint) IS
    'Mirrors magic_link::webhooks::rules::fails_at_claim: a due delivery whose account has no '
    'enabled endpoint fails (endpoint_disabled) instead of being claimed. p_until is '
    'rules::lease_until, computed by the caller.';

COMMENT ON FUNCTION __SCHEMA__.record_attempt(
    uuid, uuid, integer, timestamptz, text, integer, text, text, timestamptz, timestamptz) IS
    'Mirrors magic_link::webhooks::rules::step_to_apply (a disable for a replaced endpoint '
    'becomes a retry at p_at), rules::accepts_attempt (only the current lease of a pending '
    'delivery records, except delivered) and rules::status_after (the new status).';

COMMENT ON FUNCTION __SCHEMA__.fail_pending(uuid, timestamptz) IS
    'Fails an account''s pending deliveries (endpoint_disabled), as disabling an endpoint does '
    'in magic_link::webhooks::rules::status_after for a disable step.';
