-- Endpoints carry a version that only ever increases (1 when first set, +1 on every set):
-- the 410 guard (rules::step_to_apply) compares it instead of `updated_at`, which two changes
-- in the same microsecond share. `claim_due` and `disable_endpoint` return it, and
-- `record_attempt` takes it; their comments from migration 5 are restated.

ALTER TABLE __SCHEMA__.endpoints ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0);

DROP FUNCTION __SCHEMA__.claim_due(timestamptz, timestamptz, bigint);
DROP FUNCTION __SCHEMA__.disable_endpoint(uuid, timestamptz);
DROP FUNCTION __SCHEMA__.record_attempt(
    uuid, uuid, integer, timestamptz, text, integer, text, text, timestamptz, timestamptz);

CREATE FUNCTION __SCHEMA__.disable_endpoint(
    p_account uuid, p_now timestamptz,
    OUT r_code int, OUT r_url text, OUT r_secrets bytea[], OUT r_updated_at timestamptz,
    OUT r_disabled_at timestamptz, OUT r_version bigint)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE __SCHEMA__.endpoints e SET disabled_at = coalesce(e.disabled_at, p_now)
     WHERE e.account_id = p_account
     RETURNING e.url, e.secrets, e.updated_at, e.disabled_at, e.version
          INTO r_url, r_secrets, r_updated_at, r_disabled_at, r_version;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    PERFORM __SCHEMA__.fail_pending(p_account, p_now);
    r_code := 0;
END
$$;

CREATE FUNCTION __SCHEMA__.claim_due(p_now timestamptz, p_until timestamptz, p_limit bigint)
RETURNS TABLE (r_lease uuid, r_event uuid, r_attempt integer, r_url text, r_secrets bytea[],
               r_updated_at timestamptz, r_version bigint, r_seq bigint, r_account uuid, r_at timestamptz,
               r_kind text, r_link uuid, r_session uuid, r_outcome text, r_reason text,
               r_amount numeric, r_balance numeric)
LANGUAGE plpgsql AS $$
DECLARE
    d record;
    e record;
    v_lease uuid;
    v_claimed bigint := 0;
BEGIN
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    FOR d IN
        SELECT x.seq, x.account_id, x.attempts, x.event_id
          FROM __SCHEMA__.deliveries x
         WHERE x.status = 'pending' AND x.eligible_at <= p_now
         ORDER BY x.eligible_at, x.seq
           FOR UPDATE SKIP LOCKED
    LOOP
        SELECT y.url, y.secrets, y.updated_at, y.version INTO e
          FROM __SCHEMA__.endpoints y
         WHERE y.account_id = d.account_id AND y.disabled_at IS NULL;
        IF NOT FOUND THEN
            UPDATE __SCHEMA__.deliveries x
               SET status = 'failed', done_at = p_now, fail_reason = 'endpoint_disabled',
                   next_attempt_at = NULL, eligible_at = NULL, lease_id = NULL,
                   leased_until = NULL
             WHERE x.seq = d.seq;
            CONTINUE;
        END IF;
        v_lease := gen_random_uuid();
        UPDATE __SCHEMA__.deliveries x
           SET lease_id = v_lease, leased_until = p_until, eligible_at = p_until
         WHERE x.seq = d.seq;
        RETURN QUERY
            SELECT v_lease, d.event_id, d.attempts + 1, e.url, e.secrets, e.updated_at, e.version,
                   o.seq, o.account_id, o.at, o.kind, o.link_id, o.session_id, o.outcome,
                   o.reason, o.amount, o.balance
              FROM __SCHEMA__.outbox o
             WHERE o.seq = d.seq;
        v_claimed := v_claimed + 1;
        EXIT WHEN v_claimed >= p_limit;
    END LOOP;
END
$$;

CREATE FUNCTION __SCHEMA__.record_attempt(
    p_event uuid, p_lease uuid, p_number integer, p_at timestamptz, p_kind text,
    p_code integer, p_message text, p_next text, p_retry_at timestamptz,
    p_endpoint_version bigint,
    OUT r_recorded boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_account uuid;
    v_version bigint;
    d record;
BEGIN
    r_recorded := false;
    IF p_next = 'disable' THEN
        -- The endpoint's lock before the delivery's, as in disable_endpoint.
        SELECT x.account_id INTO v_account FROM __SCHEMA__.deliveries x WHERE x.event_id = p_event;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        SELECT y.version INTO v_version
          FROM __SCHEMA__.endpoints y WHERE y.account_id = v_account FOR UPDATE;
        IF FOUND AND v_version IS DISTINCT FROM p_endpoint_version THEN
            p_next := 'retry';
            p_retry_at := p_at;
        END IF;
    END IF;
    SELECT x.seq, x.status, x.lease_id, x.account_id INTO d
      FROM __SCHEMA__.deliveries x
     WHERE x.event_id = p_event
       FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_next = 'delivered' THEN
        IF d.status = 'delivered' THEN
            RETURN;
        END IF;
    ELSIF d.status <> 'pending' OR d.lease_id IS DISTINCT FROM p_lease THEN
        RETURN;
    END IF;
    UPDATE __SCHEMA__.deliveries x
       SET attempts = greatest(x.attempts, p_number),
           last_number = p_number, last_at = p_at, last_kind = p_kind, last_code = p_code,
           last_message = p_message, lease_id = NULL, leased_until = NULL,
           status = CASE p_next WHEN 'delivered' THEN 'delivered'
                                WHEN 'retry' THEN 'pending'
                                ELSE 'failed' END,
           next_attempt_at = CASE WHEN p_next = 'retry' THEN p_retry_at END,
           eligible_at = CASE WHEN p_next = 'retry' THEN p_retry_at END,
           done_at = CASE WHEN p_next = 'retry' THEN NULL ELSE p_at END,
           fail_reason = CASE p_next WHEN 'give_up' THEN 'exhausted'
                                     WHEN 'disable' THEN 'endpoint_disabled' END
     WHERE x.seq = d.seq;
    IF p_next = 'disable' THEN
        UPDATE __SCHEMA__.endpoints y SET disabled_at = coalesce(y.disabled_at, p_at)
         WHERE y.account_id = d.account_id;
        PERFORM __SCHEMA__.fail_pending(d.account_id, p_at);
    END IF;
    r_recorded := true;
END
$$;

COMMENT ON FUNCTION __SCHEMA__.claim_due(timestamptz, timestamptz, bigint) IS
    'Mirrors magic_link::webhooks::rules::fails_at_claim: a due delivery whose account has no '
    'enabled endpoint fails (endpoint_disabled) instead of being claimed. p_until is '
    'rules::lease_until, computed by the caller.';

COMMENT ON FUNCTION __SCHEMA__.record_attempt(
    uuid, uuid, integer, timestamptz, text, integer, text, text, timestamptz, bigint) IS
    'Mirrors magic_link::webhooks::rules::step_to_apply (a disable for a replaced endpoint '
    'becomes a retry at p_at), rules::accepts_attempt (only the current lease of a pending '
    'delivery records, except delivered) and rules::status_after (the new status).';
