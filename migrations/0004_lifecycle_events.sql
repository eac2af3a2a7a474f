-- Lifecycle events (rules::redeem, rules::abandon, rules::expire_link):
--
-- * `link.exhausted` is written by the redemption that takes a link's last use, in the same
--   statement as its `link.redeemed`;
-- * `link.expired` is written once per link by the expiry sweep (`expire_links`), never for a
--   link deactivated before the sweep found it expired; `expiry_reported_at` records it;
-- * a session abandoned at or after its time to live is abandoned as `expired`.

ALTER TABLE __SCHEMA__.links ADD COLUMN expiry_reported_at timestamptz;

-- What the sweep looks for: expired links not deactivated and not reported yet.
CREATE INDEX links_expiry_unreported ON __SCHEMA__.links (expires_at, id)
    WHERE expires_at IS NOT NULL AND deactivated_at IS NULL AND expiry_reported_at IS NULL;

CREATE OR REPLACE FUNCTION __SCHEMA__.redeem(
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
    IF l.uses + 1 = l.max_uses THEN
        INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
        VALUES (gen_random_uuid(), l.account_id, p_now, 'link_exhausted', p_link);
    END IF;
    r_code := 0;
    r_account := l.account_id;
    r_number := l.uses + 1;
    r_flow := l.flow;
    r_language := l.language;
END
$$;

-- As in migration 1, except that an explicit abandon at or after the session's time to live
-- is recorded as `expired`.
CREATE OR REPLACE FUNCTION __SCHEMA__.finish(
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
            PERFORM __SCHEMA__.end_session(p_account, p_session, NULL,
                CASE WHEN p_now >= s.expires_at THEN 'expired' ELSE 'explicit' END, p_now);
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

-- Writes `link.expired` for up to `p_limit` links past their expiry at `p_now`, not
-- deactivated and not reported yet, in order of expiry then id (rules::expire_link); each is
-- re-checked under its row lock, so concurrent sweeps report a link once.
CREATE FUNCTION __SCHEMA__.expire_links(p_now timestamptz, p_limit bigint, OUT r_reported bigint)
LANGUAGE plpgsql AS $$
DECLARE
    c record;
BEGIN
    r_reported := 0;
    FOR c IN
        SELECT due.id
          FROM (SELECT l.id, l.expires_at
                  FROM __SCHEMA__.links l
                 WHERE l.expires_at <= p_now AND l.deactivated_at IS NULL
                   AND l.expiry_reported_at IS NULL
                 ORDER BY l.expires_at, l.id
                 LIMIT p_limit) due
         ORDER BY due.id
    LOOP
        UPDATE __SCHEMA__.links l SET expiry_reported_at = p_now
         WHERE l.id = c.id AND l.expires_at <= p_now AND l.deactivated_at IS NULL
           AND l.expiry_reported_at IS NULL;
        IF FOUND THEN
            INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
            SELECT gen_random_uuid(), l.account_id, p_now, 'link_expired', l.id
              FROM __SCHEMA__.links l WHERE l.id = c.id;
            r_reported := r_reported + 1;
        END IF;
    END LOOP;
END
$$;
