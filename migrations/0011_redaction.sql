-- Redaction: erasing the owner's labels (`LinkStore::redact_link`, `redact_session`), version
-- 11. A template, as 0001_initial.sql.
--
-- Each redaction is one call of one function, under the row lock of the link (and then of
-- each of its sessions, in id order, as the expiry sweep takes them) or of the session. It
-- erases the labels on the link or session rows and in every outbox row about them, then
-- writes its event: the `outbox_labels` trigger of migration 10 copies the erased (NULL)
-- labels into it. Waiting for the session row locks lets every writer of an event about a
-- session (which may hold only that session's lock) commit first, so its event is scrubbed
-- here; a writer that comes later reads the erased labels.
--
-- Deliveries keep no copy of an event's labels (a claim reads them from the outbox), and
-- `last_message` holds only a transport failure's name (`refused`, `tls`, `blocked`,
-- `other`); earlier versions stored raw error text there, which is cleared for the scrubbed
-- events.
--
-- Ids, counters, outcomes, statistics and the ledger do not change.

-- The outbox rows of a link, or of a session, that still carry a label: the scrubs below use
-- these, not a scan of the outbox.
CREATE INDEX outbox_link_labels ON __SCHEMA__.outbox (link_id)
    WHERE reference IS NOT NULL OR session_reference IS NOT NULL OR metadata IS NOT NULL;
CREATE INDEX outbox_session_labels ON __SCHEMA__.outbox (session_id)
    WHERE session_reference IS NOT NULL;

-- Clears raw error text that earlier versions stored in deliveries of the events `p_seqs`.
CREATE FUNCTION __SCHEMA__.scrub_deliveries(p_seqs bigint[])
RETURNS void
LANGUAGE sql AS $$
    UPDATE __SCHEMA__.deliveries d SET last_message = NULL
     WHERE d.seq = ANY (p_seqs)
       AND d.last_message IS NOT NULL
       AND d.last_message NOT IN ('refused', 'tls', 'blocked', 'other');
$$;

-- Mirrors `rules::redact_link`, `rules::erase_session_reference` and `rules::scrub_labels`.
-- Codes: 0 ok (`r_link` is the link after), 1 not found.
CREATE FUNCTION __SCHEMA__.redact_link(
    p_account uuid, p_link uuid, p_now timestamptz,
    OUT r_code int, OUT r_link __SCHEMA__.links)
LANGUAGE plpgsql AS $$
DECLARE
    v_seqs bigint[];
BEGIN
    SELECT * INTO r_link FROM __SCHEMA__.links l
     WHERE l.id = p_link AND l.account_id = p_account
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    r_code := 0;
    IF r_link.redacted_at IS NOT NULL THEN
        RETURN; -- a repeat: no change, no event
    END IF;
    PERFORM FROM __SCHEMA__.sessions s WHERE s.link_id = p_link ORDER BY s.id FOR UPDATE;
    UPDATE __SCHEMA__.sessions s SET reference = NULL, redacted_at = p_now
     WHERE s.link_id = p_link AND s.reference IS NOT NULL;
    UPDATE __SCHEMA__.links l SET reference = NULL, metadata = NULL, redacted_at = p_now
     WHERE l.id = p_link
    RETURNING * INTO r_link;
    WITH scrubbed AS (
        UPDATE __SCHEMA__.outbox o
           SET reference = NULL, session_reference = NULL, metadata = NULL
         WHERE o.link_id = p_link
           AND (o.reference IS NOT NULL OR o.session_reference IS NOT NULL
                OR o.metadata IS NOT NULL)
        RETURNING o.seq
    )
    SELECT array_agg(seq) INTO v_seqs FROM scrubbed WHERE seq IS NOT NULL;
    PERFORM __SCHEMA__.scrub_deliveries(v_seqs);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id)
    VALUES (gen_random_uuid(), p_account, p_now, 'link_redacted', p_link);
END
$$;

-- Mirrors `rules::redact_session` and `rules::scrub_labels`. Codes: 0 ok (`r_session` is the
-- session after), 1 not found.
CREATE FUNCTION __SCHEMA__.redact_session(
    p_account uuid, p_session uuid, p_now timestamptz,
    OUT r_code int, OUT r_session __SCHEMA__.sessions)
LANGUAGE plpgsql AS $$
DECLARE
    v_seqs bigint[];
BEGIN
    SELECT * INTO r_session FROM __SCHEMA__.sessions s
     WHERE s.id = p_session AND s.account_id = p_account
       FOR UPDATE;
    IF NOT FOUND THEN
        r_code := 1;
        RETURN;
    END IF;
    r_code := 0;
    IF r_session.redacted_at IS NOT NULL THEN
        RETURN; -- a repeat (or its link's redaction erased its reference): no event
    END IF;
    UPDATE __SCHEMA__.sessions s SET reference = NULL, redacted_at = p_now
     WHERE s.id = p_session
    RETURNING * INTO r_session;
    WITH scrubbed AS (
        UPDATE __SCHEMA__.outbox o SET session_reference = NULL
         WHERE o.session_id = p_session AND o.session_reference IS NOT NULL
        RETURNING o.seq
    )
    SELECT array_agg(seq) INTO v_seqs FROM scrubbed WHERE seq IS NOT NULL;
    PERFORM __SCHEMA__.scrub_deliveries(v_seqs);
    INSERT INTO __SCHEMA__.outbox (id, account_id, at, kind, link_id, session_id)
    VALUES (gen_random_uuid(), p_account, p_now, 'session_redacted', r_session.link_id,
            p_session);
END
$$;

COMMENT ON FUNCTION __SCHEMA__.redact_link(uuid, uuid, timestamptz) IS
    'Mirrors rules::redact_link, rules::erase_session_reference and rules::scrub_labels.';
COMMENT ON FUNCTION __SCHEMA__.redact_session(uuid, uuid, timestamptz) IS
    'Mirrors rules::redact_session and rules::scrub_labels.';
