-- magic-link: webhook endpoints and delivery state (the WebhookStore of PostgresStore),
-- version 2. A template, as 0001_initial.sql.
--
-- Row locks: an endpoint before any of its account's deliveries. Deliveries are claimed with
-- FOR UPDATE SKIP LOCKED, so dispatchers on several machines never claim one twice.

-- One endpoint per account. Its signing secrets are kept (the store signs with them), as raw
-- key bytes: restrict who may read this table.
CREATE TABLE __SCHEMA__.endpoints (
    account_id  uuid PRIMARY KEY REFERENCES __SCHEMA__.accounts (id),
    url         text NOT NULL,
    secrets     bytea[] NOT NULL,
    updated_at  timestamptz NOT NULL,
    disabled_at timestamptz
);

-- The last outbox `seq` queued for delivery; its row lock serializes queueing.
CREATE TABLE __SCHEMA__.delivery_cursor (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL
);
INSERT INTO __SCHEMA__.delivery_cursor (seq) VALUES (0);

CREATE TABLE __SCHEMA__.deliveries (
    seq             bigint PRIMARY KEY,     -- the event's outbox seq
    event_id        uuid NOT NULL UNIQUE,
    account_id      uuid NOT NULL,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    next_attempt_at timestamptz,            -- pending: when due
    done_at         timestamptz,            -- delivered or failed: when
    fail_reason     text CHECK (fail_reason IN ('exhausted', 'endpoint_disabled')),
    attempts        integer NOT NULL DEFAULT 0,
    last_number     integer,
    last_at         timestamptz,
    last_kind       text CHECK (last_kind IN ('status', 'timeout', 'transport')),
    last_code       integer,
    last_message    text,
    lease_id        uuid,
    leased_until    timestamptz,
    queued_at       timestamptz NOT NULL,
    -- Pending: when it may next be claimed (when due, or when its lease runs out).
    eligible_at     timestamptz,
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL AND eligible_at IS NOT NULL)),
    CHECK ((status = 'pending') = (done_at IS NULL)),
    CHECK ((status = 'failed') = (fail_reason IS NOT NULL))
);

CREATE INDEX deliveries_due ON __SCHEMA__.deliveries (eligible_at, seq)
    WHERE status = 'pending';
CREATE INDEX deliveries_pending_of ON __SCHEMA__.deliveries (account_id)
    WHERE status = 'pending';
CREATE INDEX deliveries_failed ON __SCHEMA__.deliveries (seq) WHERE status = 'failed';
CREATE INDEX deliveries_failed_of ON __SCHEMA__.deliveries (account_id, seq)
    WHERE status = 'failed';
CREATE INDEX deliveries_delivered ON __SCHEMA__.deliveries (done_at, seq)
    WHERE status = 'delivered';

-- Fails the pending deliveries of an account whose endpoint row the caller has locked.
CREATE FUNCTION __SCHEMA__.fail_pending(p_account uuid, p_at timestamptz)
RETURNS void
LANGUAGE sql AS $$
    UPDATE __SCHEMA__.deliveries d
       SET status = 'failed', done_at = p_at, fail_reason = 'endpoint_disabled',
           next_attempt_at = NULL, eligible_at = NULL, lease_id = NULL, leased_until = NULL
     WHERE d.account_id = p_account AND d.status = 'pending';
$$;

-- Disables an account's endpoint (idempotent) and fails its pending deliveries.
CREATE FUNCTION __SCHEMA__.disable_endpoint(
    p_account uuid, p_now timestamptz,
    OUT r_code int, OUT r_url text, OUT r_secrets bytea[], OUT r_updated_at timestamptz,
    OUT r_disabled_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE __SCHEMA__.endpoints e SET disabled_at = coalesce(e.disabled_at, p_now)
     WHERE e.account_id = p_account
     RETURNING e.url, e.secrets, e.updated_at, e.disabled_at
          INTO r_url, r_secrets, r_updated_at, r_disabled_at;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    PERFORM __SCHEMA__.fail_pending(p_account, p_now);
    r_code := 0;
END
$$;

-- Queues deliveries for up to `p_limit` outbox events after the delivery cursor: pending for
-- accounts with an enabled endpoint, failed for a disabled one, none without an endpoint.
-- Returns how many events it took.
CREATE FUNCTION __SCHEMA__.queue_deliveries(p_now timestamptz, p_limit bigint,
                                            OUT r_taken bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_cursor bigint;
    v_last bigint;
BEGIN
    SELECT c.seq INTO v_cursor FROM __SCHEMA__.delivery_cursor c FOR UPDATE;
    WITH taken AS (
        SELECT o.r_seq, o.r_id, o.r_account FROM __SCHEMA__.outbox_after(v_cursor, p_limit) o
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
        ON CONFLICT DO NOTHING
    )
    SELECT count(*), max(t.r_seq) INTO r_taken, v_last FROM taken t;
    IF v_last IS NOT NULL THEN
        UPDATE __SCHEMA__.delivery_cursor c SET seq = v_last;
    END IF;
END
$$;

-- Claims up to `p_limit` due deliveries under new leases until `p_until`; due deliveries
-- whose account has no enabled endpoint fail instead. Skips rows other claimers hold.
CREATE FUNCTION __SCHEMA__.claim_due(p_now timestamptz, p_until timestamptz, p_limit bigint)
RETURNS TABLE (r_lease uuid, r_event uuid, r_attempt integer, r_url text, r_secrets bytea[],
               r_updated_at timestamptz, r_seq bigint, r_account uuid, r_at timestamptz,
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
        SELECT y.url, y.secrets, y.updated_at INTO e
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
            SELECT v_lease, d.event_id, d.attempts + 1, e.url, e.secrets, e.updated_at,
                   o.seq, o.account_id, o.at, o.kind, o.link_id, o.session_id, o.outcome,
                   o.reason, o.amount, o.balance
              FROM __SCHEMA__.outbox o
             WHERE o.seq = d.seq;
        v_claimed := v_claimed + 1;
        EXIT WHEN v_claimed >= p_limit;
    END LOOP;
END
$$;

-- Records an attempt made under lease `p_lease` and applies the next step (`delivered`,
-- `retry`, `give_up` or `disable`). Returns false, changing nothing, when the lease is no
-- longer current, except that `delivered` is recorded unless already delivered.
CREATE FUNCTION __SCHEMA__.record_attempt(
    p_event uuid, p_lease uuid, p_number integer, p_at timestamptz, p_kind text,
    p_code integer, p_message text, p_next text, p_retry_at timestamptz,
    OUT r_recorded boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_account uuid;
    d record;
BEGIN
    r_recorded := false;
    IF p_next = 'disable' THEN
        -- The endpoint's lock before the delivery's, as in disable_endpoint.
        SELECT x.account_id INTO v_account FROM __SCHEMA__.deliveries x WHERE x.event_id = p_event;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        PERFORM FROM __SCHEMA__.endpoints y WHERE y.account_id = v_account FOR UPDATE;
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
