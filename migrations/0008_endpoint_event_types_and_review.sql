-- Event types per endpoint, and the review decision after `needs_review`.
--
-- * An endpoint receives only the event types it lists (`event_types`, the names webhooks send,
--   such as `session.completed`). Endpoints set before this migration receive the types that
--   existed then, which excludes `session.reviewed`, added here: a new type never surprises a
--   live receiver. The store always writes the list explicitly, so the column has no default
--   after this migration. `queue_deliveries` skips events whose type the endpoint does not
--   take, as it skips accounts without an endpoint (rules::queued_status).
-- * A session that completed with `needs_review` records the owner's final decision
--   (`decision`, `reviewed_at`) once, with a `session.reviewed` event (kind `session_reviewed`,
--   the decision in `outcome`), and bills nothing (rules::review). `finish` returns the two
--   new columns too.
--
-- New status codes: 14 not under review (Rejection::NotUnderReview), 15 reviewed with the other
-- decision (Rejection::ReviewConflict).

ALTER TABLE __SCHEMA__.endpoints ADD COLUMN event_types text[] NOT NULL
    DEFAULT ARRAY['link.created', 'link.redeemed', 'link.exhausted', 'link.expired',
                  'link.deactivated', 'session.completed', 'session.abandoned',
                  'credits.added']::text[]
    CHECK (cardinality(event_types) > 0);
ALTER TABLE __SCHEMA__.endpoints ALTER COLUMN event_types DROP DEFAULT;

ALTER TABLE __SCHEMA__.sessions
    ADD COLUMN decision text CHECK (decision IN ('approved', 'denied')),
    ADD COLUMN reviewed_at timestamptz,
    ADD CHECK ((decision IS NULL) = (reviewed_at IS NULL)),
    ADD CHECK (decision IS NULL OR outcome = 'needs_review');

-- As in migration 2, except that an event is queued only if its type is one the endpoint
-- takes. The outbox kind is the type's name with its first `.` written `_`.
CREATE OR REPLACE FUNCTION __SCHEMA__.queue_deliveries(p_now timestamptz, p_limit bigint,
                                                       OUT r_taken bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_cursor bigint;
    v_last bigint;
BEGIN
    SELECT c.seq INTO v_cursor FROM __SCHEMA__.delivery_cursor c FOR UPDATE;
    WITH taken AS (
        SELECT o.r_seq, o.r_id, o.r_account, o.r_kind
          FROM __SCHEMA__.outbox_after(v_cursor, p_limit) o
    ), queued AS (
        INSERT INTO __SCHEMA__.deliveries (seq, event_id, account_id, status, next_attempt_at,
                                           eligible_at, done_at, fail_reason, queued_at)
        SELECT t.r_seq, t.r_id, t.r_account,
               CASE WHEN e.disabled_at IS NULL THEN 'pending' ELSE 'failed' END,
               CASE WHEN e.disabled_at IS NULL THEN p_now END,
               CASE WHEN e.disabled_at IS NULL THEN p_now END,
               CASE WHEN e.disabled_at IS NULL THEN NULL ELSE p_now END,
               CASE WHEN e.disabled_at IS NULL THEN NULL ELSE 'endpoint_disabled' END,
               p_now
          FROM taken t JOIN __SCHEMA__.endpoints e ON e.account_id = t.r_account
         WHERE regexp_replace(t.r_kind, '_', '.') = ANY (e.event_types)
        ON CONFLICT DO NOTHING
    )
    SELECT count(*), max(t.r_seq) INTO r_taken, v_last FROM taken t;
    IF v_last IS NOT NULL THEN
        UPDATE __SCHEMA__.delivery_cursor c SET seq = v_last;
    END IF;
END
$$;

COMMENT ON FUNCTION __SCHEMA__.queue_deliveries(timestamptz, bigint) IS
    'Mirrors magic_link::webhooks::rules::queued_status: an event is queued only for an '
    'account whose endpoint takes its type; pending if the endpoint is enabled, failed '
    '(endpoint_disabled) if it is disabled.';

-- As in migration 4, returning the review columns too (r_decision, r_reviewed_at).
DROP FUNCTION __SCHEMA__.finish(uuid, uuid, text, timestamptz);

CREATE FUNCTION __SCHEMA__.finish(
    p_account uuid, p_session uuid, p_outcome text, p_now timestamptz,
    OUT r_code int, OUT r_id uuid, OUT r_account uuid, OUT r_link uuid, OUT r_number bigint,
    OUT r_flow text, OUT r_language text, OUT r_status text, OUT r_outcome text,
    OUT r_reason text, OUT r_ended_at timestamptz, OUT r_started_at timestamptz,
    OUT r_expires_at timestamptz, OUT r_decision text, OUT r_reviewed_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    PERFORM FROM __SCHEMA__.accounts a WHERE a.id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    SELECT x.status, x.outcome, x.expires_at INTO s
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session AND x.account_id = p_account
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    IF p_outcome IS NOT NULL THEN
        IF s.status = 'completed' AND s.outcome <> p_outcome THEN
            r_code := 7;
            RETURN;
        ELSIF s.status = 'abandoned' THEN
            r_code := 8;
            RETURN;
        ELSIF s.status = 'started' AND p_now >= s.expires_at THEN
            r_code := 9;
            RETURN;
        ELSIF s.status = 'started' THEN
            PERFORM __SCHEMA__.end_session(p_account, p_session, p_outcome, NULL, p_now);
        END IF;
    ELSE
        IF s.status = 'completed' THEN
            r_code := 13;
            RETURN;
        ELSIF s.status = 'started' THEN
            PERFORM __SCHEMA__.end_session(p_account, p_session, NULL,
                CASE WHEN p_now >= s.expires_at THEN 'expired' ELSE 'explicit' END, p_now);
        END IF;
    END IF;
    SELECT 0, x.id, x.account_id, x.link_id, x.number, x.flow, x.language, x.status, x.outcome,
           x.reason, x.ended_at, x.started_at, x.expires_at, x.decision, x.reviewed_at
      INTO r_code, r_id, r_account, r_link, r_number, r_flow, r_language, r_status, r_outcome,
           r_reason, r_ended_at, r_started_at, r_expires_at, r_decision, r_reviewed_at
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session;
END
$$;

-- Records the owner's decision (`approved` or `denied`, checked by the caller) on a session of
-- `p_account` that completed with `needs_review`, under the session's row lock, with its
-- `session.reviewed` event; a repeat with the same decision changes nothing. No credit moves.
-- Returns the session's row, as `finish`.
CREATE FUNCTION __SCHEMA__.review_session(
    p_account uuid, p_session uuid, p_decision text, p_now timestamptz,
    OUT r_code int, OUT r_id uuid, OUT r_account uuid, OUT r_link uuid, OUT r_number bigint,
    OUT r_flow text, OUT r_language text, OUT r_status text, OUT r_outcome text,
    OUT r_reason text, OUT r_ended_at timestamptz, OUT r_started_at timestamptz,
    OUT r_expires_at timestamptz, OUT r_decision text, OUT r_reviewed_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    SELECT x.status, x.outcome, x.decision, x.link_id INTO s
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session AND x.account_id = p_account
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    IF s.status <> 'completed' OR s.outcome <> 'needs_review' THEN
        r_code := 14;
        RETURN;
    ELSIF s.decision IS NOT NULL AND s.decision <> p_decision THEN
        r_code := 15;
        RETURN;
    ELSIF s.decision IS NULL THEN
        UPDATE __SCHEMA__.sessions x SET decision = p_decision, reviewed_at = p_now
         WHERE x.id = p_session;
        INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id, session_id, outcome)
        VALUES (gen_random_uuid(), p_account, p_now, 'session_reviewed', s.link_id, p_session,
                p_decision);
    END IF;
    SELECT 0, x.id, x.account_id, x.link_id, x.number, x.flow, x.language, x.status, x.outcome,
           x.reason, x.ended_at, x.started_at, x.expires_at, x.decision, x.reviewed_at
      INTO r_code, r_id, r_account, r_link, r_number, r_flow, r_language, r_status, r_outcome,
           r_reason, r_ended_at, r_started_at, r_expires_at, r_decision, r_reviewed_at
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session;
END
$$;

COMMENT ON FUNCTION __SCHEMA__.review_session(uuid, uuid, text, timestamptz) IS
    'Mirrors magic_link::rules::review: only a session completed with needs_review is '
    'reviewed, once; the same decision again changes nothing, the other is refused.';
