-- Idempotent starts and hand-offs (magic_link::start):
--
-- * A session may carry the SHA-256 of the start key that started it (`start_key`, 32 bytes;
--   the key itself is never stored). `redeem` takes the key's hash and, under the link's row
--   lock that it already takes, looks up the key's started session on the link
--   (rules::keyed_start): an open one is returned and nothing changes; a stale one is abandoned
--   as expired (with its ledger entry and `session.abandoned`) in the same step, then the new
--   session is started with the key. A unique index on (link, key) of started sessions is a
--   backstop.
-- * A hand-off (`handoffs`) binds a random 16-byte id to an open session, until `expires_at`,
--   once (`used_at`). `accept_handoff` checks and consumes it under its row lock and the
--   session's (rules::accept_handoff) and writes `session.handed_off` (kind
--   `session_handed_off`). No use and no credit move.
--
-- New status codes: 16 hand-off used (Rejection::HandoffUsed), 17 hand-off expired
-- (TokenError::Expired).
--
-- Endpoints keep the event types they chose: `session.handed_off` is new, so no endpoint set
-- before this migration receives it until its owner chooses it.

ALTER TABLE __SCHEMA__.sessions
    ADD COLUMN start_key bytea CHECK (start_key IS NULL OR length(start_key) = 32);

CREATE UNIQUE INDEX sessions_start_key ON __SCHEMA__.sessions (link_id, start_key)
    WHERE status = 'started' AND start_key IS NOT NULL;

CREATE TABLE __SCHEMA__.handoffs (
    id         bytea PRIMARY KEY CHECK (length(id) = 16),
    account_id uuid NOT NULL,
    session_id uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- As in migration 4, with the start key: `p_key` is NULL for a start without one. Returns the
-- session's id, start and expiry too: a resumed start returns the key's open session, whose id
-- is not `p_session`.
DROP FUNCTION __SCHEMA__.redeem(uuid, uuid, timestamptz, timestamptz);

CREATE FUNCTION __SCHEMA__.redeem(
    p_link uuid, p_session uuid, p_key bytea, p_now timestamptz, p_expires_at timestamptz,
    OUT r_code int, OUT r_account uuid, OUT r_number bigint, OUT r_flow text, OUT r_language text,
    OUT r_session uuid, OUT r_started_at timestamptz, OUT r_expires_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    l record;
    p record;
    v_stale uuid;
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
    IF p_key IS NOT NULL THEN
        SELECT s.id, s.number, s.flow, s.language, s.started_at, s.expires_at INTO p
          FROM __SCHEMA__.sessions s
         WHERE s.link_id = p_link AND s.start_key = p_key AND s.status = 'started';
        IF FOUND THEN
            IF p_now < p.expires_at THEN
                -- Resume: the key's open session; nothing changes.
                r_code := 0;
                r_account := l.account_id;
                r_number := p.number;
                r_flow := p.flow;
                r_language := p.language;
                r_session := p.id;
                r_started_at := p.started_at;
                r_expires_at := p.expires_at;
                RETURN;
            END IF;
            v_stale := p.id;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM __SCHEMA__.sessions s WHERE s.id = p_session) THEN
        r_code := 6;
        RETURN;
    END IF;
    -- The rejections, in the order of Link::status and rules::check_start.
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
    IF v_stale IS NOT NULL THEN
        -- The stale session's hold is released first (so its credit is available again), under
        -- the account's row lock and then the session's, as `finish` takes them; re-checked,
        -- since a completion may have ended it since it was read.
        PERFORM FROM __SCHEMA__.accounts a WHERE a.id = l.account_id FOR UPDATE;
        PERFORM FROM __SCHEMA__.sessions s WHERE s.id = v_stale AND s.status = 'started'
           FOR UPDATE;
        IF FOUND THEN
            PERFORM __SCHEMA__.end_session(l.account_id, v_stale, NULL, 'expired', p_now);
        END IF;
    END IF;
    UPDATE __SCHEMA__.accounts a SET held = a.held + 1, entry_count = a.entry_count + 1
     WHERE a.id = l.account_id AND a.balance - a.held >= 1
     RETURNING a.entry_count INTO v_entry;
    IF NOT FOUND THEN
        -- Only without a stale session (whose release made a credit available).
        r_code := 5;
        RETURN;
    END IF;
    UPDATE __SCHEMA__.links k SET uses = k.uses + 1 WHERE k.id = p_link;
    -- A concurrent redemption with the same session id fails here (sessions_pkey).
    INSERT INTO __SCHEMA__.sessions (id, account_id, link_id, number, flow, language, status,
                                     started_at, expires_at, start_key)
    VALUES (p_session, l.account_id, p_link, l.uses + 1, l.flow, l.language, 'started',
            p_now, p_expires_at, p_key);
    INSERT INTO __SCHEMA__.ledger (account_id, number, kind, session_id, amount, at)
    VALUES (l.account_id, v_entry, 'hold', p_session, 1, p_now);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id, session_id)
    VALUES (gen_random_uuid(), l.account_id, p_now, 'link_redeemed', p_link, p_session);
    IF l.uses + 1 = l.max_uses THEN
        INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
        VALUES (gen_random_uuid(), l.account_id, p_now, 'link_exhausted', p_link);
    END IF;
    r_code := 0;
    r_account := l.account_id;
    r_number := l.uses + 1;
    r_flow := l.flow;
    r_language := l.language;
    r_session := p_session;
    r_started_at := p_now;
    r_expires_at := p_expires_at;
END
$$;

COMMENT ON FUNCTION __SCHEMA__.redeem(uuid, uuid, bytea, timestamptz, timestamptz) IS
    'Mirrors magic_link::rules::keyed_start and rules::redeem: the key''s open session is '
    'returned unchanged; a stale one is abandoned as expired in the same step.';

-- Records a hand-off of an open session of `p_account` (rules::check_open), under the
-- session's row lock. Returns the session's row, as `finish`.
CREATE FUNCTION __SCHEMA__.create_handoff(
    p_id bytea, p_account uuid, p_session uuid, p_expires_at timestamptz, p_now timestamptz,
    OUT r_code int, OUT r_id uuid, OUT r_account uuid, OUT r_link uuid, OUT r_number bigint,
    OUT r_flow text, OUT r_language text, OUT r_status text, OUT r_outcome text,
    OUT r_reason text, OUT r_ended_at timestamptz, OUT r_started_at timestamptz,
    OUT r_expires_at timestamptz, OUT r_decision text, OUT r_reviewed_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
BEGIN
    SELECT x.status, x.expires_at INTO s
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session AND x.account_id = p_account
       FOR SHARE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    ELSIF s.status = 'completed' THEN
        r_code := 13;
        RETURN;
    ELSIF s.status = 'abandoned' THEN
        r_code := 8;
        RETURN;
    ELSIF p_now >= s.expires_at THEN
        r_code := 9;
        RETURN;
    END IF;
    INSERT INTO __SCHEMA__.handoffs (id, account_id, session_id, expires_at, created_at)
    VALUES (p_id, p_account, p_session, p_expires_at, p_now)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        r_code := 6;
        RETURN;
    END IF;
    SELECT 0, x.id, x.account_id, x.link_id, x.number, x.flow, x.language, x.status, x.outcome,
           x.reason, x.ended_at, x.started_at, x.expires_at, x.decision, x.reviewed_at
      INTO r_code, r_id, r_account, r_link, r_number, r_flow, r_language, r_status, r_outcome,
           r_reason, r_ended_at, r_started_at, r_expires_at, r_decision, r_reviewed_at
      FROM __SCHEMA__.sessions x
     WHERE x.id = p_session;
END
$$;

-- Accepts a hand-off once (rules::accept_handoff): under the hand-off's row lock and then the
-- session's, checks single use, expiry and that the session is open; marks it used and writes
-- `session.handed_off`. Returns the session's row, as `finish`.
CREATE FUNCTION __SCHEMA__.accept_handoff(
    p_id bytea, p_now timestamptz,
    OUT r_code int, OUT r_id uuid, OUT r_account uuid, OUT r_link uuid, OUT r_number bigint,
    OUT r_flow text, OUT r_language text, OUT r_status text, OUT r_outcome text,
    OUT r_reason text, OUT r_ended_at timestamptz, OUT r_started_at timestamptz,
    OUT r_expires_at timestamptz, OUT r_decision text, OUT r_reviewed_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    h record;
    s record;
BEGIN
    SELECT x.account_id, x.session_id, x.expires_at, x.used_at INTO h
      FROM __SCHEMA__.handoffs x
     WHERE x.id = p_id
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    ELSIF h.used_at IS NOT NULL THEN
        r_code := 16;
        RETURN;
    ELSIF p_now >= h.expires_at THEN
        r_code := 17;
        RETURN;
    END IF;
    SELECT x.status, x.expires_at, x.link_id INTO s
      FROM __SCHEMA__.sessions x
     WHERE x.id = h.session_id AND x.account_id = h.account_id
       FOR SHARE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    ELSIF s.status = 'completed' THEN
        r_code := 13;
        RETURN;
    ELSIF s.status = 'abandoned' THEN
        r_code := 8;
        RETURN;
    ELSIF p_now >= s.expires_at THEN
        r_code := 9;
        RETURN;
    END IF;
    UPDATE __SCHEMA__.handoffs x SET used_at = p_now WHERE x.id = p_id;
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id, session_id)
    VALUES (gen_random_uuid(), h.account_id, p_now, 'session_handed_off', s.link_id,
            h.session_id);
    SELECT 0, x.id, x.account_id, x.link_id, x.number, x.flow, x.language, x.status, x.outcome,
           x.reason, x.ended_at, x.started_at, x.expires_at, x.decision, x.reviewed_at
      INTO r_code, r_id, r_account, r_link, r_number, r_flow, r_language, r_status, r_outcome,
           r_reason, r_ended_at, r_started_at, r_expires_at, r_decision, r_reviewed_at
      FROM __SCHEMA__.sessions x
     WHERE x.id = h.session_id;
END
$$;

COMMENT ON FUNCTION __SCHEMA__.accept_handoff(bytea, timestamptz) IS
    'Mirrors magic_link::rules::accept_handoff: once, before its expiry, while the session is '
    'open; writes session.handed_off.';
