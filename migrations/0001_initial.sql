-- magic-link: tables and functions of PostgresStore, version 1.
--
-- A template: `PostgresStore::migrate()` replaces __SCHEMA__ with the store's quoted schema name
-- and runs it once per schema, in one transaction, recording it in __SCHEMA__.schema_migrations.
-- Do not edit a released migration: add a new file.
--
-- Every state-changing operation is one call of one function below, so it costs one round trip
-- and runs in one transaction. The functions take `p_now` from the caller (the crate's Clock),
-- never the database clock, and answer a status code that the crate maps to its typed errors:
--
--   0 ok                 5 no credits            10 idempotency conflict
--   1 not found          6 already exists        11 zero amount
--   2 deactivated        7 outcome conflict      12 overflow
--   3 expired            8 session abandoned     13 session completed
--   4 exhausted          9 session expired
--
-- Row locks are always taken in the order link, account, session, so two operations never wait
-- on each other in a cycle. No token or secret is stored: only ids.

CREATE TABLE __SCHEMA__.accounts (
    id          uuid PRIMARY KEY,
    balance     numeric(20, 0) NOT NULL CHECK (balance BETWEEN 0 AND 18446744073709551615),
    held        numeric(20, 0) NOT NULL CHECK (held >= 0),
    created_at  timestamptz NOT NULL,
    -- How many links and ledger entries the account has: the number of the next one is one
    -- more. Both are only changed under the account's row lock, so numbers are dense.
    link_count  bigint NOT NULL DEFAULT 0,
    entry_count bigint NOT NULL DEFAULT 0,
    CHECK (held <= balance)
);

CREATE TABLE __SCHEMA__.links (
    id             uuid PRIMARY KEY,
    account_id     uuid NOT NULL REFERENCES __SCHEMA__.accounts (id),
    -- The link's position among its account's links, from 1: the listing order.
    number         bigint NOT NULL,
    name           text NOT NULL,
    flow           text NOT NULL CHECK (flow IN ('document', 'selfie', 'document_and_selfie')),
    usage_limit    text NOT NULL CHECK (usage_limit IN ('single', 'multi', 'unlimited')),
    max_uses       bigint CHECK (max_uses > 0),
    uses           bigint NOT NULL CHECK (uses >= 0),
    expires_at     timestamptz,
    language       text NOT NULL,
    created_at     timestamptz NOT NULL,
    deactivated_at timestamptz,
    CHECK ((usage_limit = 'unlimited') = (max_uses IS NULL)),
    CHECK (uses <= max_uses),
    UNIQUE (account_id, number)
);

-- Sessions, ledger entries and events are written only by the functions below, which hold the
-- row locks of the link and account they refer to; they carry no foreign keys, which would
-- cost a trigger query per row on the redemption path.
CREATE TABLE __SCHEMA__.sessions (
    id         uuid PRIMARY KEY,
    account_id uuid NOT NULL,
    link_id    uuid NOT NULL,
    -- The redemption's ordinal on its link, from 1: redemption (and so time) order.
    number     bigint NOT NULL,
    flow       text NOT NULL,
    language   text NOT NULL,
    status     text NOT NULL CHECK (status IN ('started', 'completed', 'abandoned')),
    outcome    text CHECK (outcome IN ('approved', 'denied', 'needs_review')),
    reason     text CHECK (reason IN ('explicit', 'expired')),
    ended_at   timestamptz,
    started_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK ((status = 'started') = (ended_at IS NULL)),
    CHECK ((status = 'completed') = (outcome IS NOT NULL)),
    CHECK ((status = 'abandoned') = (reason IS NOT NULL)),
    UNIQUE (link_id, number)
);

-- The sweep's work list: open sessions by expiry.
CREATE INDEX sessions_due ON __SCHEMA__.sessions (expires_at) WHERE status = 'started';

CREATE TABLE __SCHEMA__.ledger (
    account_id uuid NOT NULL,
    -- The entry's position in its account's ledger, from 1.
    number     bigint NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('top_up', 'hold', 'capture', 'release')),
    top_up_key text,
    session_id uuid,
    amount     numeric(20, 0) NOT NULL CHECK (amount > 0),
    at         timestamptz NOT NULL,
    PRIMARY KEY (account_id, number),
    CHECK ((kind = 'top_up') = (top_up_key IS NOT NULL)),
    CHECK ((kind = 'top_up') = (session_id IS NULL))
);

-- A top-up's idempotency key, once per account.
CREATE UNIQUE INDEX ledger_top_up_keys ON __SCHEMA__.ledger (account_id, top_up_key)
    WHERE kind = 'top_up';

-- The outbox. Writers insert events with `seq` NULL; `outbox_after` numbers them (see there).
CREATE TABLE __SCHEMA__.outbox (
    pos        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seq        bigint,
    id         uuid NOT NULL,
    account_id uuid NOT NULL,
    at         timestamptz NOT NULL,
    kind       text NOT NULL,
    link_id    uuid,
    session_id uuid,
    outcome    text,
    reason     text,
    amount     numeric(20, 0),
    balance    numeric(20, 0)
);

CREATE UNIQUE INDEX outbox_seq ON __SCHEMA__.outbox (seq) WHERE seq IS NOT NULL;
-- Events not numbered yet, in insertion order.
CREATE INDEX outbox_unnumbered ON __SCHEMA__.outbox (pos) WHERE seq IS NULL;

-- The last `seq` handed out; its row lock serializes numbering.
CREATE TABLE __SCHEMA__.outbox_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint NOT NULL
);
INSERT INTO __SCHEMA__.outbox_head (seq) VALUES (0);

CREATE FUNCTION __SCHEMA__.insert_link(
    p_id uuid, p_account uuid, p_name text, p_flow text, p_usage_limit text, p_max_uses bigint,
    p_uses bigint, p_expires_at timestamptz, p_language text, p_created_at timestamptz,
    p_deactivated_at timestamptz,
    OUT r_code int)
LANGUAGE plpgsql AS $$
DECLARE
    v_number bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM __SCHEMA__.links l WHERE l.id = p_id) THEN
        r_code := 6;
        RETURN;
    END IF;
    UPDATE __SCHEMA__.accounts a SET link_count = a.link_count + 1
     WHERE a.id = p_account
     RETURNING a.link_count INTO v_number;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    -- A concurrent insert of the same id fails here with a unique violation (links_pkey).
    INSERT INTO __SCHEMA__.links (id, account_id, number, name, flow, usage_limit, max_uses, uses,
                                  expires_at, language, created_at, deactivated_at)
    VALUES (p_id, p_account, v_number, p_name, p_flow, p_usage_limit, p_max_uses, p_uses,
            p_expires_at, p_language, p_created_at, p_deactivated_at);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
    VALUES (gen_random_uuid(), p_account, p_created_at, 'link_created', p_id);
    r_code := 0;
END
$$;

-- Redeems a link: the whole of rule 2 in one transaction. The link's row lock serializes
-- redemptions of one link; the account's conditional update serializes its credits.
CREATE FUNCTION __SCHEMA__.redeem(
    p_link uuid, p_session uuid, p_now timestamptz, p_expires_at timestamptz,
    OUT r_code int, OUT r_account uuid, OUT r_number bigint, OUT r_flow text, OUT r_language text)
LANGUAGE plpgsql AS $$
DECLARE
    l record;
    v_entry bigint;
BEGIN
    SELECT k.account_id, k.flow, k.language, k.max_uses, k.uses, k.expires_at, k.deactivated_at
      INTO l
      FROM __SCHEMA__.links k
     WHERE k.id = p_link
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM __SCHEMA__.sessions s WHERE s.id = p_session) THEN
        r_code := 6;
        RETURN;
    END IF;
    -- The rejections, in the order of rules::check_redeemable.
    IF l.deactivated_at IS NOT NULL THEN
        r_code := 2;
        RETURN;
    END IF;
    IF p_now >= l.expires_at THEN
        r_code := 3;
        RETURN;
    END IF;
    IF l.uses >= l.max_uses THEN
        r_code := 4;
        RETURN;
    END IF;
    UPDATE __SCHEMA__.accounts a SET held = a.held + 1, entry_count = a.entry_count + 1
     WHERE a.id = l.account_id AND a.balance - a.held >= 1
     RETURNING a.entry_count INTO v_entry;
    IF NOT FOUND THEN
        r_code := 5;
        RETURN;
    END IF;
    UPDATE __SCHEMA__.links k SET uses = k.uses + 1 WHERE k.id = p_link;
    -- A concurrent redemption with the same session id fails here (sessions_pkey).
    INSERT INTO __SCHEMA__.sessions (id, account_id, link_id, number, flow, language, status,
                                     started_at, expires_at)
    VALUES (p_session, l.account_id, p_link, l.uses + 1, l.flow, l.language, 'started',
            p_now, p_expires_at);
    INSERT INTO __SCHEMA__.ledger (account_id, number, kind, session_id, amount, at)
    VALUES (l.account_id, v_entry, 'hold', p_session, 1, p_now);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id, session_id)
    VALUES (gen_random_uuid(), l.account_id, p_now, 'link_redeemed', p_link, p_session);
    r_code := 0;
    r_account := l.account_id;
    r_number := l.uses + 1;
    r_flow := l.flow;
    r_language := l.language;
END
$$;

-- Ends a started session of an account whose row the caller has locked: completes it with
-- `p_outcome`, or abandons it for `p_reason` when `p_outcome` is NULL. Captures or releases
-- the hold and appends the ledger entry and the event.
CREATE FUNCTION __SCHEMA__.end_session(
    p_account uuid, p_session uuid, p_outcome text, p_reason text, p_now timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_link uuid;
    v_entry bigint;
BEGIN
    UPDATE __SCHEMA__.sessions s
       SET status = CASE WHEN p_outcome IS NULL THEN 'abandoned' ELSE 'completed' END,
           outcome = p_outcome, reason = p_reason, ended_at = p_now
     WHERE s.id = p_session
     RETURNING s.link_id INTO v_link;
    UPDATE __SCHEMA__.accounts a
       SET held = a.held - 1,
           balance = a.balance - CASE WHEN p_outcome IS NULL THEN 0 ELSE 1 END,
           entry_count = a.entry_count + 1
     WHERE a.id = p_account
     RETURNING a.entry_count INTO v_entry;
    INSERT INTO __SCHEMA__.ledger (account_id, number, kind, session_id, amount, at)
    VALUES (p_account, v_entry, CASE WHEN p_outcome IS NULL THEN 'release' ELSE 'capture' END,
            p_session, 1, p_now);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id, session_id, outcome, reason)
    VALUES (gen_random_uuid(), p_account, p_now,
            CASE WHEN p_outcome IS NULL THEN 'session_abandoned' ELSE 'session_completed' END,
            v_link, p_session, p_outcome, p_reason);
END
$$;

-- Completes (`p_outcome` given) or explicitly abandons (`p_outcome` NULL) a session of
-- `p_account`, as rules::complete and rules::abandon decide. Returns the session's row.
CREATE FUNCTION __SCHEMA__.finish(
    p_account uuid, p_session uuid, p_outcome text, p_now timestamptz,
    OUT r_code int, OUT r_id uuid, OUT r_account uuid, OUT r_link uuid, OUT r_number bigint,
    OUT r_flow text, OUT r_language text, OUT r_status text, OUT r_outcome text,
    OUT r_reason text, OUT r_ended_at timestamptz, OUT r_started_at timestamptz,
    OUT r_expires_at timestamptz)
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
            PERFORM __SCHEMA__.end_session(p_account, p_session, NULL, 'explicit', p_now);
        END IF;
    END IF;
    SELECT 0, x.id, x.account_id, x.link_id, x.number, x.flow, x.language, x.status, x.outcome,
           x.reason, x.ended_at, x.started_at, x.expires_at
      INTO r_code, r_id, r_account, r_link, r_number, r_flow, r_language, r_status, r_outcome,
           r_reason, r_ended_at, r_started_at, r_expires_at
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session;
END
$$;

-- Abandons, as expired, up to `p_limit` open sessions past their expiry at `p_now`, oldest
-- first; each is re-checked under its account's and its own row lock. Accounts are locked in
-- id order, so concurrent sweeps cannot deadlock.
CREATE FUNCTION __SCHEMA__.expire_sessions(p_now timestamptz, p_limit bigint, OUT r_expired bigint)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    r_expired := 0;
    FOR c IN
        SELECT due.id, due.account_id
          FROM (SELECT s.id, s.account_id
                  FROM __SCHEMA__.sessions s
                 WHERE s.status = 'started' AND s.expires_at <= p_now
                 ORDER BY s.expires_at, s.id
                 LIMIT p_limit) due
         ORDER BY due.account_id, due.id
    LOOP
        PERFORM FROM __SCHEMA__.accounts a WHERE a.id = c.account_id FOR UPDATE;
        PERFORM FROM __SCHEMA__.sessions s
          WHERE s.id = c.id AND s.status = 'started' AND s.expires_at <= p_now
            FOR UPDATE;
        IF FOUND THEN
            PERFORM __SCHEMA__.end_session(c.account_id, c.id, NULL, 'expired', p_now);
            r_expired := r_expired + 1;
        END IF;
    END LOOP;
END
$$;

-- Deactivates a link of `p_account` for good; a repeat changes nothing. Returns the link.
CREATE FUNCTION __SCHEMA__.deactivate(
    p_account uuid, p_link uuid, p_now timestamptz,
    OUT r_code int, OUT r_id uuid, OUT r_account uuid, OUT r_name text, OUT r_flow text,
    OUT r_usage_limit text, OUT r_max_uses bigint, OUT r_uses bigint,
    OUT r_expires_at timestamptz, OUT r_language text, OUT r_created_at timestamptz,
    OUT r_deactivated_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT l.deactivated_at INTO r_deactivated_at
      FROM __SCHEMA__.links l
     WHERE l.id = p_link AND l.account_id = p_account
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    IF r_deactivated_at IS NULL THEN
        UPDATE __SCHEMA__.links l SET deactivated_at = p_now WHERE l.id = p_link;
        INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
        VALUES (gen_random_uuid(), p_account, p_now, 'link_deactivated', p_link);
    END IF;
    SELECT 0, l.id, l.account_id, l.name, l.flow, l.usage_limit, l.max_uses, l.uses,
           l.expires_at, l.language, l.created_at, l.deactivated_at
      INTO r_code, r_id, r_account, r_name, r_flow, r_usage_limit, r_max_uses, r_uses,
           r_expires_at, r_language, r_created_at, r_deactivated_at
      FROM __SCHEMA__.links l
     WHERE l.id = p_link;
END
$$;

CREATE FUNCTION __SCHEMA__.top_up(
    p_account uuid, p_amount numeric, p_key text, p_now timestamptz,
    OUT r_code int, OUT r_balance numeric, OUT r_held numeric, OUT r_created_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_previous numeric;
    v_entry bigint;
BEGIN
    SELECT a.balance, a.held, a.created_at INTO r_balance, r_held, r_created_at
      FROM __SCHEMA__.accounts a
     WHERE a.id = p_account
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    SELECT e.amount INTO v_previous
      FROM __SCHEMA__.ledger e
     WHERE e.account_id = p_account AND e.kind = 'top_up' AND e.top_up_key = p_key;
    IF FOUND THEN
        r_code := CASE WHEN v_previous = p_amount THEN 0 ELSE 10 END;
        RETURN;
    END IF;
    IF p_amount = 0 THEN
        r_code := 11;
        RETURN;
    END IF;
    IF r_balance + p_amount > 18446744073709551615 THEN
        r_code := 12;
        RETURN;
    END IF;
    UPDATE __SCHEMA__.accounts a
       SET balance = a.balance + p_amount, entry_count = a.entry_count + 1
     WHERE a.id = p_account
     RETURNING a.balance, a.entry_count INTO r_balance, v_entry;
    INSERT INTO __SCHEMA__.ledger (account_id, number, kind, top_up_key, amount, at)
    VALUES (p_account, v_entry, 'top_up', p_key, p_amount, p_now);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, amount, balance)
    VALUES (gen_random_uuid(), p_account, p_now, 'credits_added', p_amount, r_balance);
    r_code := 0;
END
$$;

-- Reads the outbox after `p_cursor`, gap-free.
--
-- `seq` is not taken when an event is written: writers commit in any order, so a number taken
-- at insert could become visible after a larger one had been read, and a reader would skip it
-- for good. Instead the reader numbers events, and only events already committed: under the
-- row lock of outbox_head it gives the next numbers, in insertion order, to every visible event
-- that has none, then reads by `seq`. Numbering is serialized by that lock and each numbering
-- commits before the next starts, so every number below a visible one is visible too. An event
-- whose writer has not committed yet is numbered by a later read, after every number given so
-- far. Writers never touch the lock, so they do not wait on readers or on each other.
CREATE FUNCTION __SCHEMA__.outbox_after(p_cursor bigint, p_limit bigint)
RETURNS TABLE (r_seq bigint, r_id uuid, r_account uuid, r_at timestamptz, r_kind text,
               r_link uuid, r_session uuid, r_outcome text, r_reason text, r_amount numeric,
               r_balance numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_head bigint;
    v_numbered bigint;
BEGIN
    IF EXISTS (SELECT FROM __SCHEMA__.outbox o WHERE o.seq IS NULL) THEN
        SELECT h.seq INTO v_head FROM __SCHEMA__.outbox_head h FOR UPDATE;
        -- A new snapshot: it sees the numbers given by whoever held the lock before.
        WITH batch AS (
            SELECT o.pos, row_number() OVER (ORDER BY o.pos) AS n
              FROM __SCHEMA__.outbox o
             WHERE o.seq IS NULL
             ORDER BY o.pos
             LIMIT 10000
        )
        UPDATE __SCHEMA__.outbox o SET seq = v_head + b.n
          FROM batch b
         WHERE o.pos = b.pos;
        GET DIAGNOSTICS v_numbered = ROW_COUNT;
        UPDATE __SCHEMA__.outbox_head h SET seq = v_head + v_numbered;
    END IF;
    RETURN QUERY
        SELECT o.seq, o.id, o.account_id, o.at, o.kind, o.link_id, o.session_id, o.outcome,
               o.reason, o.amount, o.balance
          FROM __SCHEMA__.outbox o
         WHERE o.seq > p_cursor
         ORDER BY o.seq
         LIMIT p_limit;
END
$$;
