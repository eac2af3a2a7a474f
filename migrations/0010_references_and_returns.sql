-- References, metadata, return URLs and the account's public profile:
--
-- * A link may carry the owner's `reference` (at most 128 bytes of UTF-8) and `metadata` (a
--   JSON object of strings; NULL when empty), and `return_url` / `dead_link_url` (validated by
--   the crate: https, or http on localhost, on an origin the account allows). A session
--   records the reference of the personal URL that started it (`reference`), unless its link
--   was redacted. `redacted_at` marks links and sessions whose reference and metadata were
--   erased.
-- * Owners find links and sessions by reference: `links_reference` and `sessions_reference`.
-- * Every outbox event keeps the labels of its link and session as they were when it was
--   written (`reference`, `session_reference`, `metadata`): a trigger copies them from the
--   link's and the session's rows, which every writer has locked or just inserted, so no
--   writing function had to change for it. `outbox_after` returns them too.
-- * An account has a public profile (`display_name`, `support_url`), the origins its return
--   URLs may use (`return_origins`), whether redirects carry the outcome (`return_outcome`),
--   and its return-URL signing secrets (`return_secrets`, raw key bytes, current first; like
--   endpoint secrets, restrict who may read this table).
--
-- `insert_link` takes the new columns, and `redeem` the session's reference (it returns it).

ALTER TABLE __SCHEMA__.links
    ADD COLUMN reference text CHECK (octet_length(reference) BETWEEN 1 AND 128),
    ADD COLUMN metadata jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    ADD COLUMN return_url text,
    ADD COLUMN dead_link_url text,
    ADD COLUMN redacted_at timestamptz;

ALTER TABLE __SCHEMA__.sessions
    ADD COLUMN reference text CHECK (octet_length(reference) BETWEEN 1 AND 128),
    ADD COLUMN redacted_at timestamptz;

CREATE INDEX links_reference ON __SCHEMA__.links (account_id, reference, number)
    WHERE reference IS NOT NULL;
CREATE INDEX sessions_reference ON __SCHEMA__.sessions (account_id, reference, started_at, id)
    WHERE reference IS NOT NULL;

ALTER TABLE __SCHEMA__.accounts
    ADD COLUMN display_name text,
    ADD COLUMN support_url text,
    ADD COLUMN return_origins text[] NOT NULL DEFAULT '{}',
    ADD COLUMN return_outcome boolean NOT NULL DEFAULT false,
    ADD COLUMN return_secrets bytea[] NOT NULL DEFAULT '{}'
        CHECK (cardinality(return_secrets) <= 2);

ALTER TABLE __SCHEMA__.outbox
    ADD COLUMN reference text,
    ADD COLUMN session_reference text,
    ADD COLUMN metadata jsonb;

CREATE FUNCTION __SCHEMA__.outbox_labels() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.link_id IS NOT NULL THEN
        SELECT l.reference, l.metadata INTO NEW.reference, NEW.metadata
          FROM __SCHEMA__.links l WHERE l.id = NEW.link_id;
    END IF;
    IF NEW.session_id IS NOT NULL THEN
        SELECT s.reference INTO NEW.session_reference
          FROM __SCHEMA__.sessions s WHERE s.id = NEW.session_id;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER outbox_labels BEFORE INSERT ON __SCHEMA__.outbox
    FOR EACH ROW EXECUTE FUNCTION __SCHEMA__.outbox_labels();

-- As in migration 1, with the reference, metadata and return URLs.
DROP FUNCTION __SCHEMA__.insert_link(
    uuid, uuid, text, text, text, bigint, bigint, timestamptz, text, timestamptz, timestamptz);

CREATE FUNCTION __SCHEMA__.insert_link(
    p_id uuid, p_account uuid, p_name text, p_flow text, p_usage_limit text, p_max_uses bigint,
    p_uses bigint, p_expires_at timestamptz, p_language text, p_created_at timestamptz,
    p_deactivated_at timestamptz, p_reference text, p_metadata jsonb, p_return_url text,
    p_dead_link_url text,
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
                                  expires_at, language, created_at, deactivated_at, reference,
                                  metadata, return_url, dead_link_url)
    VALUES (p_id, p_account, v_number, p_name, p_flow, p_usage_limit, p_max_uses, p_uses,
            p_expires_at, p_language, p_created_at, p_deactivated_at, p_reference, p_metadata,
            p_return_url, p_dead_link_url);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
    VALUES (gen_random_uuid(), p_account, p_created_at, 'link_created', p_id);
    r_code := 0;
END
$$;

-- As in migration 9, with the session's reference (`p_reference`, NULL for none), which a
-- redacted link does not record. Returns the stored reference (a resumed session's own).
DROP FUNCTION __SCHEMA__.redeem(uuid, uuid, bytea, timestamptz, timestamptz);

CREATE FUNCTION __SCHEMA__.redeem(
    p_link uuid, p_session uuid, p_key bytea, p_now timestamptz, p_expires_at timestamptz,
    p_reference text,
    OUT r_code int, OUT r_account uuid, OUT r_number bigint, OUT r_flow text, OUT r_language text,
    OUT r_session uuid, OUT r_started_at timestamptz, OUT r_expires_at timestamptz,
    OUT r_reference text)
LANGUAGE plpgsql AS $$
DECLARE
    l record;
    p record;
    v_stale uuid;
    v_entry bigint;
    v_reference text;
BEGIN
    SELECT k.account_id, k.flow, k.language, k.max_uses, k.uses, k.expires_at, k.deactivated_at,
           k.redacted_at
      INTO l
      FROM __SCHEMA__.links k
     WHERE k.id = p_link
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    IF p_key IS NOT NULL THEN
        SELECT s.id, s.number, s.flow, s.language, s.started_at, s.expires_at, s.reference INTO p
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
                r_reference := p.reference;
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
        r_code := 5;
        RETURN;
    END IF;
    IF l.redacted_at IS NULL THEN
        v_reference := p_reference;
    END IF;
    UPDATE __SCHEMA__.links k SET uses = k.uses + 1 WHERE k.id = p_link;
    -- A concurrent redemption with the same session id fails here (sessions_pkey).
    INSERT INTO __SCHEMA__.sessions (id, account_id, link_id, number, flow, language, status,
                                     started_at, expires_at, start_key, reference)
    VALUES (p_session, l.account_id, p_link, l.uses + 1, l.flow, l.language, 'started',
            p_now, p_expires_at, p_key, v_reference);
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
    r_reference := v_reference;
END
$$;

-- As in migration 1, returning the labels too (the functions of migrations 2 and 8 that read
-- it select their columns by name).
DROP FUNCTION __SCHEMA__.outbox_after(bigint, bigint);

CREATE FUNCTION __SCHEMA__.outbox_after(p_cursor bigint, p_limit bigint)
RETURNS TABLE (r_seq bigint, r_id uuid, r_account uuid, r_at timestamptz, r_kind text,
               r_link uuid, r_session uuid, r_outcome text, r_reason text, r_amount numeric,
               r_balance numeric, r_reference text, r_session_reference text, r_metadata text)
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
               o.reason, o.amount, o.balance, o.reference, o.session_reference, o.metadata::text
          FROM __SCHEMA__.outbox o
         WHERE o.seq > p_cursor
         ORDER BY o.seq
         LIMIT p_limit;
END
$$;
