-- magic-link: retention (LinkStore::prune), version 12. A template, as 0001_initial.sql.
--
-- `prune(p_before, p_limit)` removes, each at most `p_limit` per call and each older than
-- `p_before` (the pure rules: rules::prunable_delivery, prunable_event, prunable_session,
-- prunable_handoff):
--
-- * deliveries delivered, then failed, before the cutoff, each oldest first (never pending
--   ones, leased or not);
-- * outbox events written before the cutoff that were queued for delivery (seq at or below
--   `delivery_cursor.seq`) and have no delivery left but a delivered one: a pending delivery
--   needs its event, and so does a failed one, which may be re-queued (claim_due reads the
--   event from the outbox). Unnumbered events are never pruned;
-- * sessions that ended before the cutoff (abandoned, or completed and, if they needed review,
--   reviewed before the cutoff), with their start keys (a column of the row). What each one
--   counted in the link's statistics moves, in the same statement, to `pruned_stats` (counts)
--   and `pruned_times` (the time to complete in microseconds: nothing personal), which the
--   `stats` statement adds to the live sessions' counts and median;
-- * hand-offs that expired before the cutoff, and those of the sessions pruned in the call,
--   in order of expiry.
--
-- Links, accounts and the ledger are never pruned. Sessions keep their numbers: `sessions`
-- pages by number.

CREATE TABLE __SCHEMA__.pruned_stats (
    link_id           uuid PRIMARY KEY,
    approved          bigint NOT NULL DEFAULT 0,
    denied            bigint NOT NULL DEFAULT 0,
    needs_review      bigint NOT NULL DEFAULT 0,
    abandoned         bigint NOT NULL DEFAULT 0,
    expired           bigint NOT NULL DEFAULT 0,
    reviewed_approved bigint NOT NULL DEFAULT 0,
    reviewed_denied   bigint NOT NULL DEFAULT 0
);

-- The times to complete of pruned completed sessions, for the median.
CREATE TABLE __SCHEMA__.pruned_times (
    link_id uuid NOT NULL,
    micros  bigint NOT NULL
);
CREATE INDEX pruned_times_link ON __SCHEMA__.pruned_times (link_id);

-- The prune's work lists.
CREATE INDEX sessions_finished ON __SCHEMA__.sessions (ended_at, id)
    WHERE status <> 'started';
CREATE INDEX outbox_numbered_at ON __SCHEMA__.outbox (at, seq) WHERE seq IS NOT NULL;
CREATE INDEX deliveries_done ON __SCHEMA__.deliveries (done_at, seq) WHERE status = 'failed';
CREATE INDEX handoffs_expiry ON __SCHEMA__.handoffs (expires_at);
CREATE INDEX handoffs_session ON __SCHEMA__.handoffs (session_id);

CREATE FUNCTION __SCHEMA__.prune(
    p_before timestamptz, p_limit bigint,
    OUT r_sessions bigint, OUT r_events bigint, OUT r_deliveries bigint, OUT r_handoffs bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_failed bigint;
    v_queued bigint;
    v_gone uuid[];
BEGIN
    -- Each work list is a MATERIALIZED CTE: a `LIMIT ... FOR UPDATE SKIP LOCKED` subquery
    -- under `IN` may be rescanned by the plan and pick more than its limit.

    -- rules::prunable_delivery: delivered first, then failed, each oldest first.
    WITH picked AS MATERIALIZED (
        SELECT x.seq FROM __SCHEMA__.deliveries x
         WHERE x.status = 'delivered' AND x.done_at < p_before
         ORDER BY x.done_at, x.seq LIMIT p_limit FOR UPDATE SKIP LOCKED
    )
    DELETE FROM __SCHEMA__.deliveries d USING picked p WHERE d.seq = p.seq;
    GET DIAGNOSTICS r_deliveries = ROW_COUNT;
    WITH picked AS MATERIALIZED (
        SELECT x.seq FROM __SCHEMA__.deliveries x
         WHERE x.status = 'failed' AND x.done_at < p_before
         ORDER BY x.done_at, x.seq LIMIT greatest(p_limit - r_deliveries, 0)
           FOR UPDATE SKIP LOCKED
    )
    DELETE FROM __SCHEMA__.deliveries d USING picked p WHERE d.seq = p.seq;
    GET DIAGNOSTICS v_failed = ROW_COUNT;
    r_deliveries := r_deliveries + v_failed;

    -- rules::prunable_event. Queueing commits its deliveries with the cursor, so every event
    -- at or below the committed cursor has its delivery, if it gets one, visible here; a
    -- delivered one never becomes pending again, and a failed one keeps its event.
    SELECT c.seq INTO v_queued FROM __SCHEMA__.delivery_cursor c;
    WITH picked AS MATERIALIZED (
        SELECT x.pos FROM __SCHEMA__.outbox x
         WHERE x.seq IS NOT NULL AND x.seq <= v_queued AND x.at < p_before
           AND NOT EXISTS (SELECT FROM __SCHEMA__.deliveries d
                            WHERE d.seq = x.seq AND d.status <> 'delivered')
         ORDER BY x.seq LIMIT p_limit FOR UPDATE SKIP LOCKED
    )
    DELETE FROM __SCHEMA__.outbox o USING picked p WHERE o.pos = p.pos;
    GET DIAGNOSTICS r_events = ROW_COUNT;

    -- rules::prunable_session, keeping what each counted. A finished session never changes
    -- but by its review, which a session waiting for one is not pruned before.
    WITH picked AS MATERIALIZED (
        SELECT x.id FROM __SCHEMA__.sessions x
         WHERE x.status <> 'started' AND x.ended_at < p_before
           AND (x.outcome IS DISTINCT FROM 'needs_review' OR x.reviewed_at < p_before)
         ORDER BY x.ended_at, x.id LIMIT p_limit FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM __SCHEMA__.sessions s USING picked p WHERE s.id = p.id
        RETURNING s.id, s.link_id, s.status, s.outcome, s.reason, s.decision, s.started_at,
                  s.ended_at
    ), counted AS (
        INSERT INTO __SCHEMA__.pruned_stats AS p (link_id, approved, denied, needs_review,
                    abandoned, expired, reviewed_approved, reviewed_denied)
        SELECT g.link_id,
               count(*) FILTER (WHERE g.outcome = 'approved'),
               count(*) FILTER (WHERE g.outcome = 'denied'),
               count(*) FILTER (WHERE g.outcome = 'needs_review'),
               count(*) FILTER (WHERE g.reason = 'explicit'),
               count(*) FILTER (WHERE g.reason = 'expired'),
               count(*) FILTER (WHERE g.decision = 'approved'),
               count(*) FILTER (WHERE g.decision = 'denied')
          FROM gone g GROUP BY g.link_id
        ON CONFLICT (link_id) DO UPDATE SET
               approved = p.approved + EXCLUDED.approved,
               denied = p.denied + EXCLUDED.denied,
               needs_review = p.needs_review + EXCLUDED.needs_review,
               abandoned = p.abandoned + EXCLUDED.abandoned,
               expired = p.expired + EXCLUDED.expired,
               reviewed_approved = p.reviewed_approved + EXCLUDED.reviewed_approved,
               reviewed_denied = p.reviewed_denied + EXCLUDED.reviewed_denied
    ), timed AS (
        -- The same expression as the `stats` statement's median over live sessions.
        INSERT INTO __SCHEMA__.pruned_times (link_id, micros)
        SELECT g.link_id,
               greatest(0, extract(epoch FROM g.ended_at - g.started_at) * 1000000)::bigint
          FROM gone g WHERE g.status = 'completed'
    )
    SELECT coalesce(array_agg(g.id), '{}') INTO v_gone FROM gone g;
    r_sessions := cardinality(v_gone);

    -- rules::prunable_handoff, and the hand-offs of the sessions just pruned.
    WITH picked AS MATERIALIZED (
        SELECT x.id FROM __SCHEMA__.handoffs x
         WHERE x.expires_at < p_before OR x.session_id = ANY (v_gone)
         ORDER BY x.expires_at, x.id LIMIT p_limit FOR UPDATE SKIP LOCKED
    )
    DELETE FROM __SCHEMA__.handoffs h USING picked p WHERE h.id = p.id;
    GET DIAGNOSTICS r_handoffs = ROW_COUNT;
END
$$;
