//! [`WebhookStore`] for [`PostgresStore`]: endpoints and delivery state in the tables of
//! migration 2. Queueing, claiming and recording are each one function call; claims use
//! `FOR UPDATE SKIP LOCKED`, so dispatchers on several machines never hold one delivery at once.
//!
//! The SQL functions mirror the pure [delivery rules](crate::webhooks::rules): each statement
//! below names the rule it applies (and migration 5 records the same on the functions).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use super::decode::{self, get, status};
use super::PostgresStore;
use crate::store::WebhookStore;
use crate::webhooks::{rules, Endpoint, EventType, WebhookSecret};
use crate::webhooks::{
    Attempt, AttemptOutcome, Claim, Delivery, DeliveryStatus, FailReason, Lease, NextStep,
    TransportFailure,
};
use crate::{AccountId, Error, EventId, Rejection};
use crate::{Page, Paged};

/// The SQL of the webhook operations, with the schema filled in.
pub(super) struct Statements {
    set_endpoint: String,
    endpoint: String,
    disable_endpoint: String,
    queue: String,
    claim: String,
    record: String,
    delivery: String,
    failed: String,
    requeue: String,
    prune: String,
    release: String,
}

/// The columns [`delivery`] reads, in order, from a table aliased `d`.
const DELIVERY_COLUMNS: &str = "d.seq, d.event_id, d.account_id, d.status, d.next_attempt_at, \
     d.done_at, d.fail_reason, d.attempts, d.last_number, d.last_at, d.last_kind, d.last_code, \
     d.last_message, d.leased_until, d.queued_at";

impl Statements {
    pub(super) fn new(schema: &str) -> Self {
        let s = |template: &str| {
            template
                .replace("{delivery}", DELIVERY_COLUMNS)
                .replace(super::migrate::PLACEHOLDER, schema)
        };
        // Each function of migrations 2 and 3 applies delivery rules, named on the statement
        // that calls it: the memory store and the delivery model call the same rules in Rust.
        Self {
            set_endpoint: s(
                "INSERT INTO __SCHEMA__.endpoints (account_id, url, secrets, updated_at, \
                 disabled_at, event_types) SELECT a.id, $2, $3, $4, $5, $6 \
                 FROM __SCHEMA__.accounts a WHERE a.id = $1 \
                 ON CONFLICT (account_id) DO UPDATE SET url = EXCLUDED.url, \
                 secrets = EXCLUDED.secrets, updated_at = EXCLUDED.updated_at, \
                 disabled_at = EXCLUDED.disabled_at, event_types = EXCLUDED.event_types, \
                 version = __SCHEMA__.endpoints.version + 1 \
                 RETURNING version",
            ),
            endpoint: s(
                "SELECT url, secrets, updated_at, disabled_at, version, event_types \
                 FROM __SCHEMA__.endpoints WHERE account_id = $1",
            ),
            // `disable_endpoint` fails the pending deliveries (as `DeliveryStatus::Failed` with
            // `FailReason::EndpointDisabled`), as the memory store does.
            disable_endpoint: s(
                "SELECT r_code, r_url, r_secrets, r_updated_at, r_disabled_at, r_version, \
                 (SELECT e.event_types FROM __SCHEMA__.endpoints e WHERE e.account_id = $1) \
                 FROM __SCHEMA__.disable_endpoint($1, $2)",
            ),
            // Mirrors `rules::queued_status`: no endpoint, or one that does not take the
            // event's type, not queued; a disabled one, failed (`endpoint_disabled`); an
            // enabled one, pending and due at `p_now` (migration 8).
            queue: s("SELECT r_taken FROM __SCHEMA__.queue_deliveries($1, $2)"),
            // Mirrors `rules::fails_at_claim` (due deliveries without an enabled endpoint fail)
            // with the lease end of `rules::lease_until`, computed here. The endpoint's event
            // types are read beside the function (as of the statement's start): they are
            // informational on a claim, since queueing already chose the events. So are the
            // event's labels (migration 10), read by its `seq`, which was numbered and queued
            // by transactions that committed before this statement began.
            claim: s(
                "SELECT r_lease, r_event, r_attempt, r_url, r_secrets, r_updated_at, \
                 NULL::timestamptz, r_version, r_seq, \
                 r_event, r_account, r_at, r_kind, r_link, r_session, r_outcome, r_reason, \
                 r_amount::text, r_balance::text, o.reference, o.session_reference, \
                 o.metadata::text, (SELECT e.event_types \
                 FROM __SCHEMA__.endpoints e WHERE e.account_id = c.r_account) \
                 FROM __SCHEMA__.claim_due($1, $2, $3) c \
                 LEFT JOIN __SCHEMA__.outbox o ON o.seq = c.r_seq",
            ),
            // Mirrors `rules::step_to_apply` (a `disable` for a replaced endpoint becomes a
            // `retry` at `p_at`), `rules::accepts_attempt` (the lease and status check, with the
            // exception for `delivered`) and `rules::status_after` (the new status).
            record: s(
                "SELECT r_recorded FROM __SCHEMA__.record_attempt($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9, $10)",
            ),
            // Owner operations: another account's delivery is not found.
            delivery: s("SELECT {delivery} FROM __SCHEMA__.deliveries d \
                 WHERE d.event_id = $1 AND d.account_id = $2"),
            failed: s("SELECT {delivery} FROM __SCHEMA__.deliveries d \
                 WHERE d.status = 'failed' AND d.account_id = $1 \
                 AND d.seq > $2 ORDER BY d.seq LIMIT $3"),
            requeue: s(
                "WITH requeued AS (UPDATE __SCHEMA__.deliveries d SET status = 'pending', \
                 next_attempt_at = $2, eligible_at = $2, attempts = 0, queued_at = $2, \
                 done_at = NULL, fail_reason = NULL, lease_id = NULL, leased_until = NULL \
                 WHERE d.event_id = $1 AND d.account_id = $3 AND d.status = 'failed' \
                 RETURNING {delivery}) \
                 SELECT * FROM requeued UNION ALL SELECT {delivery} \
                 FROM __SCHEMA__.deliveries d \
                 WHERE d.event_id = $1 AND d.account_id = $3 \
                 AND NOT EXISTS (SELECT FROM requeued)",
            ),
            // The work list is materialized: as an `IN (... LIMIT ... SKIP LOCKED)` subquery
            // the planner may run it more than once, deleting more than `$2` rows (the
            // retention check caught the same shape in `prune`, migration 12).
            prune: s(
                "WITH picked AS MATERIALIZED (SELECT d.seq FROM __SCHEMA__.deliveries d \
                 WHERE d.status = 'delivered' AND d.done_at < $1 \
                 ORDER BY d.done_at, d.seq LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 DELETE FROM __SCHEMA__.deliveries x USING picked p WHERE x.seq = p.seq",
            ),
            release: s(
                "UPDATE __SCHEMA__.deliveries SET lease_id = NULL, leased_until = NULL, \
                 eligible_at = next_attempt_at \
                 WHERE event_id = $1 AND lease_id = $2 AND status = 'pending'",
            ),
        }
    }
}

/// An endpoint from `url, secrets, updated_at, disabled_at, version` starting at column `at`,
/// with its `event_types` at column `types`.
fn endpoint(row: &PgRow, at: usize, types: usize, account: AccountId) -> Result<Endpoint, Error> {
    let url: String = get(row, at)?;
    let keys: Vec<Vec<u8>> = get(row, at + 1)?;
    let secrets = keys
        .iter()
        .map(|key| WebhookSecret::from_stored(key).map_err(Error::backend))
        .collect::<Result<Vec<_>, _>>()?;
    let mut endpoint =
        Endpoint::new(account, &url, secrets, get(row, at + 2)?).map_err(Error::backend)?;
    endpoint.disabled_at = get(row, at + 3)?;
    let version: i64 = get(row, at + 4)?;
    endpoint.version = u64::try_from(version).map_err(|_| decode::corrupt("version", version))?;
    let names: Vec<String> = get(row, types)?;
    let types = names
        .iter()
        .map(|name| {
            name.parse()
                .map_err(|_| decode::corrupt("event_types", name))
        })
        .collect::<Result<Vec<EventType>, _>>()?;
    endpoint
        .with_event_types(types)
        .map_err(|_| decode::corrupt("event_types", "{}"))
}

fn fail_reason(name: Option<&str>) -> Result<FailReason, Error> {
    match name {
        Some("exhausted") => Ok(FailReason::Exhausted),
        Some("endpoint_disabled") => Ok(FailReason::EndpointDisabled),
        other => Err(decode::corrupt("fail_reason", other.unwrap_or("NULL"))),
    }
}

fn number(value: i32, column: &'static str) -> Result<u32, Error> {
    u32::try_from(value).map_err(|_| decode::corrupt(column, value))
}

/// A delivery from [`DELIVERY_COLUMNS`].
fn delivery(row: &PgRow) -> Result<Delivery, Error> {
    let seq: i64 = get(row, 0)?;
    let status_name: &str = get(row, 3)?;
    let next_attempt_at: Option<DateTime<Utc>> = get(row, 4)?;
    let done_at: Option<DateTime<Utc>> = get(row, 5)?;
    let status = match (status_name, next_attempt_at, done_at) {
        ("pending", Some(next_attempt_at), None) => DeliveryStatus::Pending { next_attempt_at },
        ("delivered", None, Some(at)) => DeliveryStatus::Delivered { at },
        ("failed", None, Some(at)) => DeliveryStatus::Failed {
            at,
            reason: fail_reason(get(row, 6)?)?,
        },
        (other, ..) => return Err(decode::corrupt("status", other)),
    };
    let last_number: Option<i32> = get(row, 8)?;
    let last_attempt = match last_number {
        None => None,
        Some(n) => {
            let kind: Option<&str> = get(row, 10)?;
            let outcome = match kind {
                Some("status") => {
                    let code: Option<i32> = get(row, 11)?;
                    let code = code.unwrap_or_default();
                    AttemptOutcome::Status {
                        code: u16::try_from(code)
                            .map_err(|_| decode::corrupt("last_code", code))?,
                    }
                }
                Some("timeout") => AttemptOutcome::Timeout,
                Some("transport") => {
                    // Earlier versions stored raw messages: they read as `other`.
                    let message: Option<String> = get(row, 12)?;
                    AttemptOutcome::Transport {
                        failure: TransportFailure::from_name(message.as_deref().unwrap_or("")),
                    }
                }
                other => return Err(decode::corrupt("last_kind", other.unwrap_or("NULL"))),
            };
            let at: Option<DateTime<Utc>> = get(row, 9)?;
            Some(Attempt {
                number: number(n, "last_number")?,
                at: at.ok_or_else(|| decode::corrupt("last_at", "NULL"))?,
                outcome,
            })
        }
    };
    Ok(Delivery {
        event: EventId::from_uuid(get(row, 1)?),
        seq: u64::try_from(seq).map_err(|_| decode::corrupt("seq", seq))?,
        account: AccountId::from_uuid(get(row, 2)?),
        status,
        attempts: number(get(row, 7)?, "attempts")?,
        last_attempt,
        leased_until: get(row, 13)?,
        queued_at: get(row, 14)?,
    })
}

/// The `p_kind`, `p_code` and `p_message` of an attempt's outcome.
fn outcome_columns(outcome: &AttemptOutcome) -> (&'static str, Option<i32>, Option<&str>) {
    match outcome {
        AttemptOutcome::Status { code } => ("status", Some(i32::from(*code)), None),
        AttemptOutcome::Timeout => ("timeout", None, None),
        AttemptOutcome::Transport { failure } => ("transport", None, Some(failure.as_str())),
    }
}

/// The `p_next`, `p_retry_at` and `p_endpoint_version` of a next step.
fn next_columns(next: NextStep) -> (&'static str, Option<DateTime<Utc>>, Option<i64>) {
    match next {
        NextStep::Delivered => ("delivered", None, None),
        NextStep::RetryAt(at) => ("retry", Some(at), None),
        NextStep::GiveUp => ("give_up", None, None),
        NextStep::DisableEndpoint { endpoint_version } => (
            "disable",
            None,
            Some(i64::try_from(endpoint_version).unwrap_or(i64::MAX)),
        ),
    }
}

impl WebhookStore for PostgresStore {
    async fn set_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        let secrets: Vec<&[u8]> = endpoint.secrets().iter().map(|s| s.key_bytes()).collect();
        // The version: 1 when first set, one more on every set (`rules::endpoint_version`).
        let version: Option<i64> = sqlx::query_scalar(&self.sql.webhooks.set_endpoint)
            .bind(endpoint.account.as_uuid())
            .bind(endpoint.url())
            .bind(secrets)
            .bind(endpoint.updated_at)
            .bind(endpoint.disabled_at)
            .bind(
                endpoint
                    .event_types()
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>(),
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?;
        let version = version.ok_or(Rejection::NotFound)?;
        let mut endpoint = endpoint;
        endpoint.version =
            u64::try_from(version).map_err(|_| decode::corrupt("version", version))?;
        Ok(endpoint)
    }

    async fn endpoint(&self, account: AccountId) -> Result<Option<Endpoint>, Error> {
        sqlx::query(&self.sql.webhooks.endpoint)
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?
            .map(|row| endpoint(&row, 0, 5, account))
            .transpose()
    }

    async fn disable_endpoint(
        &self,
        account: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Endpoint, Error> {
        let row = sqlx::query(&self.sql.webhooks.disable_endpoint)
            .bind(account.as_uuid())
            .bind(now)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::backend)?;
        status(get(&row, 0)?)?;
        endpoint(&row, 1, 6, account)
    }

    async fn queue_deliveries(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        if limit == 0 {
            return Ok(0);
        }
        let taken: i64 = sqlx::query_scalar(&self.sql.webhooks.queue)
            .bind(now)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_one(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(usize::try_from(taken).unwrap_or(usize::MAX))
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claim>, Error> {
        let until = rules::lease_until(now, lease);
        let rows = sqlx::query(&self.sql.webhooks.claim)
            .bind(now)
            .bind(until)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(Error::backend)?;
        rows.iter()
            .map(|row| {
                let event = decode::event(row, 8)?;
                let attempt: i32 = get(row, 2)?;
                Ok(Claim {
                    lease: Lease {
                        id: get(row, 0)?,
                        event: EventId::from_uuid(get(row, 1)?),
                        attempt: number(attempt, "attempts")?,
                        until,
                    },
                    endpoint: endpoint(row, 3, 22, event.account)?,
                    event,
                })
            })
            .collect()
    }

    async fn record_attempt(
        &self,
        lease: Lease,
        attempt: Attempt,
        next: NextStep,
    ) -> Result<bool, Error> {
        let (kind, code, message) = outcome_columns(&attempt.outcome);
        let (next, retry_at, endpoint_version) = next_columns(next);
        sqlx::query_scalar(&self.sql.webhooks.record)
            .bind(lease.event.as_uuid())
            .bind(lease.id)
            .bind(i32::try_from(attempt.number).unwrap_or(i32::MAX))
            .bind(attempt.at)
            .bind(kind)
            .bind(code)
            .bind(message)
            .bind(next)
            .bind(retry_at)
            .bind(endpoint_version)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::backend)
    }

    async fn release(&self, lease: Lease) -> Result<bool, Error> {
        let done = sqlx::query(&self.sql.webhooks.release)
            .bind(lease.event.as_uuid())
            .bind(lease.id)
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delivery(&self, account: AccountId, event: EventId) -> Result<Delivery, Error> {
        let row = sqlx::query(&self.sql.webhooks.delivery)
            .bind(event.as_uuid())
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?
            .ok_or(Rejection::NotFound)?;
        delivery(&row)
    }

    async fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<Paged<Delivery>, Error> {
        let limit = page.clamped_limit();
        let rows = sqlx::query(&self.sql.webhooks.failed)
            .bind(account.as_uuid())
            .bind(i64::try_from(page.after).unwrap_or(i64::MAX))
            .bind(limit as i64 + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::backend)?;
        let mut items = rows.iter().map(delivery).collect::<Result<Vec<_>, _>>()?;
        let next = (items.len() > limit).then(|| items[limit - 1].seq);
        items.truncate(limit);
        Ok(Paged { items, next })
    }

    async fn requeue(
        &self,
        account: AccountId,
        event: EventId,
        now: DateTime<Utc>,
    ) -> Result<Delivery, Error> {
        let row = sqlx::query(&self.sql.webhooks.requeue)
            .bind(event.as_uuid())
            .bind(now)
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?
            .ok_or(Rejection::NotFound)?;
        delivery(&row)
    }

    async fn prune_delivered(&self, before: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        let done = sqlx::query(&self.sql.webhooks.prune)
            .bind(before)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(usize::try_from(done.rows_affected()).unwrap_or(usize::MAX))
    }
}
