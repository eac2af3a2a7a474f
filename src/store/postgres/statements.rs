//! The statement text of the link operations, with the schema filled in. Each state change is
//! one call of one server-side function of the migrations (`migrations/`), which applies the
//! same rules as [`rules`](crate::rules): a link's status in the order of
//! [`Link::status`](crate::Link::status), refused as [`rules::check_start`](crate::rules::check_start)
//! refuses it, never check-then-write from the client.

use super::decode::{ACCOUNT_COLUMNS, LINK_COLUMNS, SESSION_COLUMNS};
use super::{migrate, webhook_store};

/// The SQL of every operation, with the schema filled in.
pub(super) struct Statements {
    pub(super) create_account: String,
    pub(super) insert_link: String,
    pub(super) redeem: String,
    pub(super) started_session: String,
    pub(super) create_handoff: String,
    pub(super) accept_handoff: String,
    pub(super) check_handoff: String,
    pub(super) finish: String,
    pub(super) review: String,
    pub(super) expire: String,
    pub(super) expire_links: String,
    pub(super) prune: String,
    pub(super) deactivate: String,
    pub(super) redact_link: String,
    pub(super) redact_session: String,
    pub(super) top_up: String,
    pub(super) inspect: String,
    pub(super) record_view: String,
    pub(super) link: String,
    pub(super) links: String,
    pub(super) links_by_reference: String,
    pub(super) set_profile: String,
    pub(super) return_secrets: String,
    pub(super) rotate_return_secret: String,
    pub(super) sessions_by_reference: String,
    pub(super) session: String,
    pub(super) sessions: String,
    pub(super) stats: String,
    pub(super) account: String,
    pub(super) ledger: String,
    pub(super) outbox_after: String,
    pub(super) webhooks: webhook_store::Statements,
}

impl Statements {
    pub(super) fn new(schema: &str) -> Self {
        let s = |template: &str| {
            template
                .replace("{link}", LINK_COLUMNS)
                .replace("{session}", SESSION_COLUMNS)
                .replace("{account}", ACCOUNT_COLUMNS)
                .replace(migrate::PLACEHOLDER, schema)
        };
        Self {
            create_account: s(
                "INSERT INTO __SCHEMA__.accounts (id, balance, held, created_at) \
                 VALUES ($1, $2::numeric, $3::numeric, $4) ON CONFLICT (id) DO NOTHING",
            ),
            insert_link: s("SELECT r_code \
                 FROM __SCHEMA__.insert_link($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13::jsonb, $14, $15)"),
            redeem: s(
                "SELECT r_code, r_account, r_number, r_flow, r_language, r_session, \
                 r_started_at, r_expires_at, r_reference \
                 FROM __SCHEMA__.redeem($1, $2, $3, $4, $5, $6)",
            ),
            started_session: s("SELECT {session} FROM __SCHEMA__.sessions s \
                 WHERE s.link_id = $1 AND s.start_key = $2 AND s.status = 'started' \
                 AND s.expires_at > $3"),
            create_handoff: s("SELECT f.*, x.reference, x.redacted_at FROM __SCHEMA__.create_handoff($1, $2, $3, $4, $5) f \
                 LEFT JOIN __SCHEMA__.sessions x ON x.id = f.r_id"),
            accept_handoff: s("SELECT f.*, x.reference, x.redacted_at FROM __SCHEMA__.accept_handoff($1, $2) f \
                 LEFT JOIN __SCHEMA__.sessions x ON x.id = f.r_id"),
            check_handoff: s("SELECT h.used_at IS NOT NULL, h.expires_at, {session} \
                 FROM __SCHEMA__.handoffs h JOIN __SCHEMA__.sessions s \
                     ON s.id = h.session_id AND s.account_id = h.account_id \
                 WHERE h.id = $1"),
            finish: s("SELECT f.*, x.reference, x.redacted_at FROM __SCHEMA__.finish($1, $2, $3, $4) f \
                 LEFT JOIN __SCHEMA__.sessions x ON x.id = f.r_id"),
            review: s("SELECT f.*, x.reference, x.redacted_at FROM __SCHEMA__.review_session($1, $2, $3, $4) f \
                 LEFT JOIN __SCHEMA__.sessions x ON x.id = f.r_id"),
            expire: s("SELECT r_expired FROM __SCHEMA__.expire_sessions($1, $2)"),
            expire_links: s("SELECT r_reported FROM __SCHEMA__.expire_links($1, $2)"),
            deactivate: s("SELECT f.*, x.reference, x.metadata::text, x.redacted_at, x.return_url, \
                 x.dead_link_url \
                 FROM __SCHEMA__.deactivate($1, $2, $3) f \
                 LEFT JOIN __SCHEMA__.links x ON x.id = f.r_id"),
            // The function returns the row after the change: a join with the table would
            // read it as at the statement's start.
            redact_link: s("SELECT f.r_code, {link} \
                 FROM __SCHEMA__.redact_link($1, $2, $3) f \
                 CROSS JOIN LATERAL (SELECT (f.r_link).*) l"),
            redact_session: s("SELECT f.r_code, {session} \
                 FROM __SCHEMA__.redact_session($1, $2, $3) f \
                 CROSS JOIN LATERAL (SELECT (f.r_session).*) s"),
            top_up: s(
                "SELECT r_code, $1::uuid, r_balance::text, r_held::text, r_created_at, \
                 a.display_name, a.support_url, a.return_origins, a.return_outcome \
                 FROM __SCHEMA__.top_up($1, $2::numeric, $3, $4) \
                 LEFT JOIN __SCHEMA__.accounts a ON a.id = $1",
            ),
            inspect: s("SELECT {link}, {account} \
                 FROM __SCHEMA__.links l JOIN __SCHEMA__.accounts a ON a.id = l.account_id \
                 WHERE l.id = $1"),
            // $2, $3, $4: the new human, scanner and unconfirmed views; $5: confirm one (see
            // ViewCounts::apply). One statement; it locks this link's counters row only.
            record_view: s(
                "INSERT INTO __SCHEMA__.link_views AS v (link_id, human, scanner, unconfirmed) \
                 SELECT l.id, $2, $3, $4 FROM __SCHEMA__.links l WHERE l.id = $1 \
                 ON CONFLICT (link_id) DO UPDATE SET \
                     human = v.human + EXCLUDED.human \
                         + CASE WHEN $5 AND v.unconfirmed > 0 THEN 1 ELSE 0 END, \
                     scanner = v.scanner + EXCLUDED.scanner, \
                     unconfirmed = v.unconfirmed + EXCLUDED.unconfirmed \
                         - CASE WHEN $5 AND v.unconfirmed > 0 THEN 1 ELSE 0 END \
                 RETURNING v.human, v.scanner, v.unconfirmed",
            ),
            link: s("SELECT {link} FROM __SCHEMA__.links l \
                 WHERE l.id = $1 AND l.account_id = $2"),
            links: s("SELECT {link} FROM __SCHEMA__.accounts a \
                 LEFT JOIN LATERAL (SELECT * FROM __SCHEMA__.links x \
                     WHERE x.account_id = a.id AND x.number > $2 \
                     ORDER BY x.number LIMIT $3) l ON true \
                 WHERE a.id = $1 ORDER BY l.number"),
            set_profile: s("UPDATE __SCHEMA__.accounts a SET display_name = $2, \
                 support_url = $3, return_origins = $4, return_outcome = $5 \
                 WHERE a.id = $1 RETURNING {account}"),
            return_secrets: s("SELECT return_secrets FROM __SCHEMA__.accounts WHERE id = $1"),
            // The new secret first, then the current one: two at once.
            rotate_return_secret: s("UPDATE __SCHEMA__.accounts \
                 SET return_secrets = ARRAY[$2::bytea] || return_secrets[1:1] WHERE id = $1"),
            links_by_reference: s("SELECT {link} FROM __SCHEMA__.links l \
                 WHERE l.account_id = $1 AND l.reference = $2 ORDER BY l.number LIMIT $3"),
            sessions_by_reference: s("SELECT {session} FROM __SCHEMA__.sessions s \
                 WHERE s.account_id = $1 AND s.reference = $2 \
                 ORDER BY s.started_at, s.id LIMIT $3"),
            session: s("SELECT {session} FROM __SCHEMA__.sessions s \
                 WHERE s.id = $1 AND s.account_id = $2"),
            sessions: s("SELECT {session} FROM __SCHEMA__.links l \
                 LEFT JOIN LATERAL (SELECT * FROM __SCHEMA__.sessions x \
                     WHERE x.link_id = l.id AND x.number > $3 \
                     ORDER BY x.number LIMIT $4) s ON true \
                 WHERE l.id = $1 AND l.account_id = $2 ORDER BY s.number"),
            // Live sessions plus what pruned ones left (migration 12): counts in
            // `pruned_stats`, times to complete in `pruned_times`, in the median with the live
            // ones' (computed by the same expression as `prune` stored them).
            stats: s(
                "SELECT {link}, c.started, \
                     c.approved + coalesce(p.approved, 0), c.denied + coalesce(p.denied, 0), \
                     c.needs_review + coalesce(p.needs_review, 0), \
                     c.abandoned + coalesce(p.abandoned, 0), \
                     c.reviewed_approved + coalesce(p.reviewed_approved, 0), \
                     c.reviewed_denied + coalesce(p.reviewed_denied, 0), \
                     c.expired + coalesce(p.expired, 0), m.median_micros, \
                     coalesce(v.human, 0), coalesce(v.scanner, 0), coalesce(v.unconfirmed, 0) \
                 FROM __SCHEMA__.links l CROSS JOIN LATERAL (SELECT \
                     count(*) FILTER (WHERE s.status = 'started') AS started, \
                     count(*) FILTER (WHERE s.outcome = 'approved') AS approved, \
                     count(*) FILTER (WHERE s.outcome = 'denied') AS denied, \
                     count(*) FILTER (WHERE s.outcome = 'needs_review') AS needs_review, \
                     count(*) FILTER (WHERE s.reason = 'explicit') AS abandoned, \
                     count(*) FILTER (WHERE s.decision = 'approved') AS reviewed_approved, \
                     count(*) FILTER (WHERE s.decision = 'denied') AS reviewed_denied, \
                     count(*) FILTER (WHERE s.reason = 'expired') AS expired \
                     FROM __SCHEMA__.sessions s WHERE s.link_id = l.id) c \
                 CROSS JOIN LATERAL (SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t.micros) \
                     AS median_micros FROM (SELECT greatest(0, \
                         extract(epoch FROM s.ended_at - s.started_at) * 1000000)::bigint AS micros \
                         FROM __SCHEMA__.sessions s \
                         WHERE s.link_id = l.id AND s.status = 'completed' \
                     UNION ALL SELECT k.micros FROM __SCHEMA__.pruned_times k \
                         WHERE k.link_id = l.id) t) m \
                 LEFT JOIN __SCHEMA__.pruned_stats p ON p.link_id = l.id \
                 LEFT JOIN __SCHEMA__.link_views v ON v.link_id = l.id \
                 WHERE l.id = $1 AND l.account_id = $2",
            ),
            account: s("SELECT {account} FROM __SCHEMA__.accounts a WHERE a.id = $1"),
            ledger: s(
                "SELECT e.kind, e.top_up_key, e.session_id, e.amount::text, e.at \
                 FROM __SCHEMA__.accounts a \
                 LEFT JOIN LATERAL (SELECT * FROM __SCHEMA__.ledger x \
                     WHERE x.account_id = a.id AND x.number > $2 \
                     ORDER BY x.number LIMIT $3) e ON true \
                 WHERE a.id = $1 ORDER BY e.number",
            ),
            // Applies rules::prunable_delivery, prunable_event, prunable_session and
            // prunable_handoff (migration 12).
            prune: s("SELECT r_sessions, r_events, r_deliveries, r_handoffs \
                 FROM __SCHEMA__.prune($1, $2)"),
            outbox_after: s(
                "SELECT r_seq, r_id, r_account, r_at, r_kind, r_link, r_session, \
                 r_outcome, r_reason, r_amount::text, r_balance::text, r_reference, \
                 r_session_reference, r_metadata \
                 FROM __SCHEMA__.outbox_after($1, $2)",
            ),
            webhooks: webhook_store::Statements::new(schema),
        }
    }
}
