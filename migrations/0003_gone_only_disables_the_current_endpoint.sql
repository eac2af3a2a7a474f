-- A `410 Gone` disables the account's endpoint only if it is still the one the attempt was
-- sent to (same `updated_at`): if the owner replaced it while the attempt was in flight, the
-- delivery is due again at once, for the new endpoint. `record_attempt` takes the version.
DROP FUNCTION __SCHEMA__.record_attempt(
    uuid, uuid, integer, timestamptz, text, integer, text, text, timestamptz);

CREATE FUNCTION __SCHEMA__.record_attempt(
    p_event uuid, p_lease uuid, p_number integer, p_at timestamptz, p_kind text,
    p_code integer, p_message text, p_next text, p_retry_at timestamptz,
    p_endpoint_version timestamptz,
    OUT r_recorded boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_account uuid;
    v_version timestamptz;
    d record;
BEGIN
    r_recorded := false;
    IF p_next = 'disable' THEN
        -- The endpoint's lock before the delivery's, as in disable_endpoint.
        SELECT x.account_id INTO v_account FROM __SCHEMA__.deliveries x WHERE x.event_id = p_event;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        SELECT y.updated_at INTO v_version
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
