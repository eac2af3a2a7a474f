//! [`WebhookStore`] for [`PostgresStore`]: endpoints and delivery state in the tables of
//! migration 2. Queueing, claiming and recording are each one function call; claims use
//! `FOR UPDATE SKIP LOCKED`, so dispatchers on several machines never hold one delivery at once.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::postgres::PgRow;

use super::decode::{self, get, status};
use super::PostgresStore;
use crate::store::WebhookStore;
use crate::webhooks::{
    Attempt, AttemptOutcome, Claim, Delivery, DeliveryStatus, FailReason, Lease, NextStep,
};
use crate::webhooks::{Endpoint, WebhookSecret};
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
        Self {
            set_endpoint: s(
                "INSERT INTO __SCHEMA__.endpoints (account_id, url, secrets, updated_at, \
                 disabled_at) SELECT a.id, $2, $3, $4, $5 FROM __SCHEMA__.accounts a \
                 WHERE a.id = $1 \
                 ON CONFLICT (account_id) DO UPDATE SET url = EXCLUDED.url, \
                 secrets = EXCLUDED.secrets, updated_at = EXCLUDED.updated_at, \
                 disabled_at = EXCLUDED.disabled_at",
            ),
            endpoint: s("SELECT url, secrets, updated_at, disabled_at \
                 FROM __SCHEMA__.endpoints WHERE account_id = $1"),
            disable_endpoint: s(
                "SELECT r_code, r_url, r_secrets, r_updated_at, r_disabled_at \
                 FROM __SCHEMA__.disable_endpoint($1, $2)",
            ),
            queue: s("SELECT r_taken FROM __SCHEMA__.queue_deliveries($1, $2)"),
            claim: s(
                "SELECT r_lease, r_event, r_attempt, r_url, r_secrets, r_updated_at, \
                 NULL::timestamptz, r_seq, \
                 r_event, r_account, r_at, r_kind, r_link, r_session, r_outcome, r_reason, \
                 r_amount::text, r_balance::text FROM __SCHEMA__.claim_due($1, $2, $3)",
            ),
            record: s(
                "SELECT r_recorded FROM __SCHEMA__.record_attempt($1, $2, $3, $4, $5, \
                 $6, $7, $8, $9, $10)",
            ),
            delivery: s("SELECT {delivery} FROM __SCHEMA__.deliveries d WHERE d.event_id = $1"),
            failed: s("SELECT {delivery} FROM __SCHEMA__.deliveries d \
                 WHERE d.status = 'failed' AND ($1::uuid IS NULL OR d.account_id = $1) \
                 AND d.seq > $2 ORDER BY d.seq LIMIT $3"),
            requeue: s(
                "WITH requeued AS (UPDATE __SCHEMA__.deliveries d SET status = 'pending', \
                 next_attempt_at = $2, eligible_at = $2, attempts = 0, queued_at = $2, \
                 done_at = NULL, fail_reason = NULL, lease_id = NULL, leased_until = NULL \
                 WHERE d.event_id = $1 AND d.status = 'failed' RETURNING {delivery}) \
                 SELECT * FROM requeued UNION ALL SELECT {delivery} \
                 FROM __SCHEMA__.deliveries d \
                 WHERE d.event_id = $1 AND NOT EXISTS (SELECT FROM requeued)",
            ),
            prune: s(
                "DELETE FROM __SCHEMA__.deliveries WHERE seq IN (SELECT d.seq \
                 FROM __SCHEMA__.deliveries d WHERE d.status = 'delivered' AND d.done_at < $1 \
                 ORDER BY d.done_at, d.seq LIMIT $2 FOR UPDATE SKIP LOCKED)",
            ),
        }
    }
}

/// An endpoint from `url, secrets, updated_at, disabled_at` starting at column `at`.
fn endpoint(row: &PgRow, at: usize, account: AccountId) -> Result<Endpoint, Error> {
    let url: String = get(row, at)?;
    let keys: Vec<Vec<u8>> = get(row, at + 1)?;
    let secrets = keys
        .iter()
        .map(|key| WebhookSecret::from_stored(key).map_err(Error::backend))
        .collect::<Result<Vec<_>, _>>()?;
    let mut endpoint =
        Endpoint::new(account, &url, secrets, get(row, at + 2)?).map_err(Error::backend)?;
    endpoint.disabled_at = get(row, at + 3)?;
    Ok(endpoint)
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
                    let message: Option<String> = get(row, 12)?;
                    AttemptOutcome::Transport {
                        message: message.unwrap_or_default(),
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
        AttemptOutcome::Transport { message } => ("transport", None, Some(message.as_str())),
    }
}

/// The `p_next`, `p_retry_at` and `p_endpoint_version` of a next step.
fn next_columns(next: NextStep) -> (&'static str, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    match next {
        NextStep::Delivered => ("delivered", None, None),
        NextStep::RetryAt(at) => ("retry", Some(at), None),
        NextStep::GiveUp => ("give_up", None, None),
        NextStep::DisableEndpoint {
            endpoint_updated_at,
        } => ("disable", None, Some(endpoint_updated_at)),
    }
}

impl WebhookStore for PostgresStore {
    async fn set_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint, Error> {
        let secrets: Vec<&[u8]> = endpoint.secrets().iter().map(|s| s.key_bytes()).collect();
        let done = sqlx::query(&self.sql.webhooks.set_endpoint)
            .bind(endpoint.account.as_uuid())
            .bind(endpoint.url())
            .bind(secrets)
            .bind(endpoint.updated_at)
            .bind(endpoint.disabled_at)
            .execute(&self.pool)
            .await
            .map_err(Error::backend)?;
        if done.rows_affected() == 0 {
            return Err(Rejection::NotFound.into());
        }
        Ok(endpoint)
    }

    async fn endpoint(&self, account: AccountId) -> Result<Option<Endpoint>, Error> {
        sqlx::query(&self.sql.webhooks.endpoint)
            .bind(account.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?
            .map(|row| endpoint(&row, 0, account))
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
        endpoint(&row, 1, account)
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
        let lease = TimeDelta::from_std(lease.max(Duration::from_secs(1)))
            .unwrap_or(TimeDelta::MAX)
            .min(TimeDelta::days(365));
        let until = now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let rows = sqlx::query(&self.sql.webhooks.claim)
            .bind(now)
            .bind(until)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(Error::backend)?;
        rows.iter()
            .map(|row| {
                let event = decode::event(row, 7)?;
                let attempt: i32 = get(row, 2)?;
                Ok(Claim {
                    lease: Lease {
                        id: get(row, 0)?,
                        event: EventId::from_uuid(get(row, 1)?),
                        attempt: number(attempt, "attempts")?,
                        until,
                    },
                    endpoint: endpoint(row, 3, event.account)?,
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

    async fn delivery(&self, event: EventId) -> Result<Delivery, Error> {
        let row = sqlx::query(&self.sql.webhooks.delivery)
            .bind(event.as_uuid())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::backend)?
            .ok_or(Rejection::NotFound)?;
        delivery(&row)
    }

    async fn failed_deliveries(
        &self,
        account: Option<AccountId>,
        page: Page,
    ) -> Result<Paged<Delivery>, Error> {
        let limit = page.clamped_limit();
        let rows = sqlx::query(&self.sql.webhooks.failed)
            .bind(account.map(|a| *a.as_uuid()))
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

    async fn requeue(&self, event: EventId, now: DateTime<Utc>) -> Result<Delivery, Error> {
        let row = sqlx::query(&self.sql.webhooks.requeue)
            .bind(event.as_uuid())
            .bind(now)
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
