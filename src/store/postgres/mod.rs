//! The PostgreSQL store: for services that run on more than one machine.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};

use crate::funnel::{ViewChange, ViewCounts, ViewKind};
use crate::returns::{ReturnOrigin, ReturnSecret, ReturnSecrets, ReturnUrl};
use crate::rules;
use crate::start::{HandoffId, StartKeyHash};
use crate::store::{LinkStore, MAX_BY_REFERENCE};
use crate::{
    Account, AccountId, AccountProfile, Error, Event, IdempotencyKey, LedgerEntry, Link, LinkId,
    Outcome, Reference, Rejection, Session, SessionId, SessionStatus, SessionTtl,
};
use crate::{LinkStats, OutcomeCounts, Page, Paged, Pruned};

mod changes;
mod decode;
mod migrate;
mod retry;
mod statements;
mod webhook_store;

use decode::{get, status, to_i64};
use retry::retry;
use statements::Statements;

/// The schema [`PostgresStore::new`] uses.
pub const DEFAULT_SCHEMA: &str = "magic_link";

/// The longest schema name PostgreSQL keeps, in bytes.
const MAX_SCHEMA_LEN: usize = 63;

/// A [`LinkStore`] in PostgreSQL (feature `postgres`): for services that run on more than one
/// machine. Several instances of a service, each with its own pool, share one store.
///
/// Its tables and functions live in one schema ([`DEFAULT_SCHEMA`] unless
/// [`builder`](Self::builder) names another), created and upgraded by [`migrate`](Self::migrate)
/// from the versioned SQL in the crate's `migrations/` folder, which the crate embeds.
///
/// # How it keeps the rules
///
/// Each operation that changes state is one call of one server-side function, so it costs one
/// round trip and runs in one transaction: the redemption function locks the link's row,
/// checks deactivation, expiry, the usage limit and the owner's available credit, increments
/// the uses, places the hold, and inserts the session, its ledger entry and its outbox event.
/// Nothing is read into Rust and written back. Row locks are taken in one order everywhere
/// (link, then account, then session), so operations never deadlock. A rejected operation
/// returns before writing; a failed one (connection lost, statement cancelled) is rolled back
/// whole. The database clock is never used: `now` comes from the caller, as in the pure rules.
///
/// Only ids are stored, never a link or session token.
///
/// # Webhooks
///
/// It is also a [`WebhookStore`](crate::store::WebhookStore), in the same schema: dispatchers on
/// several machines claim deliveries with `FOR UPDATE SKIP LOCKED`, so no delivery is held by
/// two at once. Endpoint signing secrets are kept as raw key bytes in the `endpoints` table,
/// since the store signs with them: restrict who may read the schema.
///
/// # The outbox
///
/// [`outbox_after`](LinkStore::outbox_after) is gap-free although writers commit in any order:
/// events are written without a sequence number, and the reader numbers the committed ones,
/// in insertion order, under a row lock, before reading by number. Writers never wait for it.
/// Reading the outbox therefore writes (the numbers) and serializes concurrent readers.
///
/// # Connections
///
/// A pool made by [`pool_options`](Self::pool_options) does not ping a connection before
/// handing it out, which sqlx does by default and which would cost a second round trip per
/// operation. Size the pool to the concurrency the service has: sqlx hands out the least
/// recently used idle connection, so a few tasks over a large pool keep waking cold server
/// processes (see BENCHMARKS.md). TLS is not enabled by this crate; enable one of sqlx's TLS features in your own
/// `Cargo.toml` (`sqlx = { version = "0.8", features = ["tls-rustls"] }`) to connect with it.
///
/// If the connection fails while an operation's transaction commits, the operation may or may
/// not have been applied ([`Error::Backend`]); redeeming again with the same session id then
/// answers [`Error::AlreadyExists`] if it was.
///
/// # Examples
///
/// ```no_run
/// use magic_link::store::PostgresStore;
/// use magic_link::tokens::Keyring;
/// use magic_link::MagicLinks;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = PostgresStore::pool_options()
///     .max_connections(16)
///     .connect("postgres://postgres@127.0.0.1:5432/test")
///     .await?;
/// let store = PostgresStore::builder(pool).schema("identity").build()?;
/// store.migrate().await?;
/// let keyring = Keyring::parse(&std::env::var("MAGIC_LINK_KEYS")?)?;
/// let links = MagicLinks::new(store, keyring, "https://verify.example.com/l/".parse()?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    schema: Arc<str>,
    sql: Arc<Statements>,
    /// `NOTIFY` after changes, `LISTEN` for them (see [`Changes`](crate::store::Changes)).
    live: Arc<changes::Live>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool)
            .finish()
    }
}

/// Configures a [`PostgresStore`]; made by [`PostgresStore::builder`].
#[derive(Debug)]
pub struct PostgresStoreBuilder {
    pool: PgPool,
    schema: String,
    notify: bool,
}

/// A schema name that is not a plain lowercase identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the schema name must be 1 to 63 characters of a-z, 0-9 and _, start with a letter or _, \
     and not start with pg_"
)]
pub struct InvalidSchemaName;

impl PostgresStoreBuilder {
    /// Sets the schema that holds the store's tables and functions (default: `magic_link`).
    pub fn schema(mut self, name: impl Into<String>) -> Self {
        self.schema = name.into();
        self
    }

    /// Sets whether the store sends a `NOTIFY` on its [`channel`](PostgresStore::channel)
    /// after each change commits (default: on), which wakes the
    /// [`Changes`](crate::store::Changes) listeners of every instance sharing the database at
    /// once. Off, they find changes at their next poll only. The notifications are coalesced
    /// (at most one in flight per store) and sent from a task, on a connection of their own,
    /// after the change's transaction has committed: they never hold up a redemption.
    pub fn notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }

    /// Builds the store. Connects to nothing: call [`PostgresStore::migrate`] before use.
    ///
    /// # Errors
    ///
    /// [`InvalidSchemaName`] unless the schema name is 1 to 63 characters of `a-z`, `0-9` and
    /// `_`, starting with a letter or `_` and not with `pg_` (reserved by PostgreSQL).
    pub fn build(self) -> Result<PostgresStore, InvalidSchemaName> {
        validate_schema(&self.schema)?;
        let mut store = PostgresStore::with_schema(self.pool, &self.schema);
        if !self.notify {
            store.live = Arc::new(changes::Live::new(&store.pool, &self.schema, false));
        }
        Ok(store)
    }
}

fn validate_schema(name: &str) -> Result<(), InvalidSchemaName> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if first_ok && rest_ok && name.len() <= MAX_SCHEMA_LEN && !name.starts_with("pg_") {
        Ok(())
    } else {
        Err(InvalidSchemaName)
    }
}

impl PostgresStore {
    /// A store in the schema `magic_link` of `pool`'s database.
    pub fn new(pool: PgPool) -> Self {
        Self::with_schema(pool, DEFAULT_SCHEMA)
    }

    /// A builder, to choose the schema.
    pub fn builder(pool: PgPool) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            pool,
            schema: DEFAULT_SCHEMA.to_owned(),
            notify: true,
        }
    }

    /// Pool options suited to the store: sqlx's defaults, except that
    ///
    /// - every new connection runs at `READ COMMITTED`, whatever the database's or the role's
    ///   default (`default_transaction_isolation`): the store's statements take the row locks
    ///   they need and are written for it, while `repeatable read` or `serializable` would
    ///   fail concurrent redemptions of one link with serialization errors;
    /// - a connection is not pinged before each use (an extra round trip). A broken
    ///   connection then fails one operation with [`Error::Backend`] and is dropped from the
    ///   pool.
    ///
    /// With a pool you build yourself, at another isolation level, the store still works:
    /// statements that fail with a serialization failure (`40001`) or a deadlock (`40P01`),
    /// which roll back the whole statement, are run again after a short random wait, up to 10
    /// times in all.
    pub fn pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    sqlx::Executor::execute(
                        conn,
                        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
                    )
                    .await
                    .map(drop)
                })
            })
    }

    /// Connects a pool made by [`pool_options`](Self::pool_options) to `url` and returns a
    /// store in the default schema. Does not migrate.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if the database cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let pool = Self::pool_options()
            .connect(url)
            .await
            .map_err(Error::backend)?;
        Ok(Self::new(pool))
    }

    fn with_schema(pool: PgPool, schema: &str) -> Self {
        Self {
            live: Arc::new(changes::Live::new(&pool, schema, true)),
            pool,
            schema: schema.into(),
            sql: Arc::new(Statements::new(&quote(schema))),
        }
    }

    /// Creates the schema if it does not exist and applies the migrations it lacks, in one
    /// transaction. Safe to call from every instance at start-up: an advisory lock lets one
    /// apply them while the others wait.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] if the database fails, the role may not create the schema, or a
    /// migration recorded in the schema differs from the one this build embeds.
    pub async fn migrate(&self) -> Result<(), Error> {
        migrate::run(&self.pool, &self.schema, &quote(&self.schema)).await
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema that holds the store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Runs the statement that `query` builds and returns its one row, retrying conflicts.
    async fn one<'q>(
        &self,
        query: impl Fn() -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<PgRow, Error> {
        retry(|| query().fetch_one(&self.pool))
            .await
            .map_err(Error::backend)
    }
}

/// The quoted identifier of a validated schema name.
fn quote(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// Whether `err` is a unique violation of `constraint`.
fn violates(err: &sqlx::Error, constraint: &str) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// The cursor and row limit of a page: one row more than asked, to tell whether there is more.
fn page_bounds(page: Page) -> (i64, i64) {
    let after = i64::try_from(page.after).unwrap_or(i64::MAX);
    (after, page.clamped_limit() as i64 + 1)
}

/// The page of `items` (fetched by [`page_bounds`]).
fn paged<T>(mut items: Vec<T>, page: Page) -> Paged<T> {
    let more = items.len() > page.clamped_limit();
    items.truncate(page.clamped_limit());
    let next = more.then(|| page.after + items.len() as u64);
    Paged { items, next }
}

/// Rows of an outer join whose first inner column is NULL when the owner has none.
fn inner_rows(rows: &[PgRow], first: usize) -> Result<impl Iterator<Item = &PgRow>, Error> {
    let mut present = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Option<uuid::Uuid> = get(row, first)?;
        if id.is_some() {
            present.push(row);
        }
    }
    Ok(present.into_iter())
}

impl LinkStore for PostgresStore {
    async fn create_account(&self, account: Account) -> Result<Account, Error> {
        let account = rules::create_account(&account)?;
        let done = retry(|| {
            sqlx::query(&self.sql.create_account)
                .bind(account.id.as_uuid())
                .bind(account.balance.to_string())
                .bind(account.held.to_string())
                .bind(account.created_at)
                .execute(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        if done.rows_affected() == 0 {
            return Err(Error::AlreadyExists);
        }
        Ok(account)
    }

    async fn insert_link(&self, link: Link) -> Result<Link, Error> {
        let link = rules::create_link(&link)?.value;
        let (usage_limit, max_uses) = decode::limit_columns(link.limit);
        let uses = to_i64(link.uses, "uses")?;
        let row = retry(|| {
            sqlx::query(&self.sql.insert_link)
                .bind(link.id.as_uuid())
                .bind(link.account.as_uuid())
                .bind(&link.name)
                .bind(decode::flow_name(link.flow))
                .bind(usage_limit)
                .bind(max_uses)
                .bind(uses)
                .bind(link.expires_at)
                .bind(link.language.as_str())
                .bind(link.created_at)
                .bind(link.deactivated_at)
                .bind(link.reference.as_ref().map(Reference::as_str))
                .bind(decode::metadata_json(&link.metadata))
                .bind(link.return_url.as_ref().map(ReturnUrl::as_str))
                .bind(link.dead_link_url.as_ref().map(ReturnUrl::as_str))
                .fetch_one(&self.pool)
        })
        .await
        .map_err(|e| {
            if violates(&e, "links_pkey") {
                Error::AlreadyExists
            } else {
                Error::backend(e)
            }
        })?;
        status(get(&row, 0)?)?;
        self.live.changed();
        Ok(link)
    }

    async fn redeem(
        &self,
        link: LinkId,
        session: SessionId,
        key: Option<StartKeyHash>,
        reference: Option<Reference>,
        ttl: SessionTtl,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let expires_at = now
            .checked_add_signed(ttl.duration())
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let key = key.map(|k| k.as_bytes().to_vec());
        let row = retry(|| {
            sqlx::query(&self.sql.redeem)
                .bind(link.as_uuid())
                .bind(session.as_uuid())
                .bind(key.as_deref())
                .bind(now)
                .bind(expires_at)
                .bind(reference.as_ref().map(Reference::as_str))
                .fetch_one(&self.pool)
        })
        .await
        .map_err(|e| {
            if violates(&e, "sessions_pkey") {
                Error::AlreadyExists
            } else {
                Error::backend(e)
            }
        })?;
        status(get(&row, 0)?)?;
        let id = SessionId::from_uuid(get(&row, 5)?);
        if id == session {
            // A resumed start changed nothing.
            self.live.changed();
        }
        let number: i64 = get(&row, 2)?;
        let flow: &str = get(&row, 3)?;
        Ok(Session {
            id,
            account: AccountId::from_uuid(get(&row, 1)?),
            link,
            number: number as u64,
            flow: decode::flow(flow)?,
            language: decode::language(get(&row, 4)?)?,
            status: SessionStatus::Started,
            started_at: get(&row, 6)?,
            expires_at: get(&row, 7)?,
            decision: None,
            reviewed_at: None,
            reference: decode::reference(get(&row, 8)?)?,
            redacted_at: None,
        })
    }

    async fn started_session(
        &self,
        link: LinkId,
        key: StartKeyHash,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.started_session)
                .bind(link.as_uuid())
                .bind(&key.as_bytes()[..])
                .bind(now)
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        row.map(|row| decode::session(&row, 0)).transpose()
    }

    async fn create_handoff(
        &self,
        account: AccountId,
        session: SessionId,
        handoff: HandoffId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let row = self
            .one(|| {
                sqlx::query(&self.sql.create_handoff)
                    .bind(&handoff.as_bytes()[..])
                    .bind(account.as_uuid())
                    .bind(session.as_uuid())
                    .bind(expires_at)
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        decode::session(&row, 1)
    }

    async fn accept_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let row = self
            .one(|| {
                sqlx::query(&self.sql.accept_handoff)
                    .bind(&handoff.as_bytes()[..])
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        self.live.changed();
        decode::session(&row, 1)
    }

    async fn check_handoff(
        &self,
        handoff: HandoffId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.check_handoff)
                .bind(&handoff.as_bytes()[..])
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        let session = decode::session(&row, 2)?;
        rules::check_handoff(get(&row, 0)?, get(&row, 1)?, &session, now)?;
        Ok(session)
    }

    async fn complete(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.finish(account, session, Some(outcome), now).await
    }

    async fn review(
        &self,
        account: AccountId,
        session: SessionId,
        decision: Outcome,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        rules::check_decision(decision)?;
        // One call of `review_session` (migration 8): the session's row lock, the check of
        // `rules::review`, the change and its event.
        let row = self
            .one(|| {
                sqlx::query(&self.sql.review)
                    .bind(account.as_uuid())
                    .bind(session.as_uuid())
                    .bind(decision.as_str())
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        self.live.changed();
        decode::session(&row, 1)
    }

    async fn abandon(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        self.finish(account, session, None, now).await
    }

    async fn expire_sessions(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.sweep(&self.sql.expire, now, limit).await
    }

    async fn expire_links(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        self.sweep(&self.sql.expire_links, now, limit).await
    }

    async fn prune(&self, before: DateTime<Utc>, limit: usize) -> Result<Pruned, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.prune)
                .bind(before)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_one(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        let n = |i: usize| -> Result<u64, Error> {
            let count: i64 = get(&row, i)?;
            Ok(count.max(0) as u64)
        };
        Ok(Pruned {
            sessions: n(0)?,
            events: n(1)?,
            deliveries: n(2)?,
            handoffs: n(3)?,
        })
    }

    async fn deactivate(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        let row = self
            .one(|| {
                sqlx::query(&self.sql.deactivate)
                    .bind(account.as_uuid())
                    .bind(link.as_uuid())
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        self.live.changed();
        decode::link(&row, 1)
    }

    async fn redact_link(
        &self,
        account: AccountId,
        link: LinkId,
        now: DateTime<Utc>,
    ) -> Result<Link, Error> {
        // One call of `redact_link` (migration 11): the link's and its sessions' row locks,
        // the erasure, the outbox scrub and the event.
        let row = self
            .one(|| {
                sqlx::query(&self.sql.redact_link)
                    .bind(account.as_uuid())
                    .bind(link.as_uuid())
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        // As `deactivate`: a repeat wakes listeners needlessly, and finds nothing new.
        self.live.changed();
        decode::link(&row, 1)
    }

    async fn redact_session(
        &self,
        account: AccountId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        // One call of `redact_session` (migration 11), under the session's row lock.
        let row = self
            .one(|| {
                sqlx::query(&self.sql.redact_session)
                    .bind(account.as_uuid())
                    .bind(session.as_uuid())
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        // As `deactivate`: a repeat wakes listeners needlessly, and finds nothing new.
        self.live.changed();
        decode::session(&row, 1)
    }

    async fn top_up(
        &self,
        account: AccountId,
        amount: u64,
        key: IdempotencyKey,
        now: DateTime<Utc>,
    ) -> Result<Account, Error> {
        let row = self
            .one(|| {
                sqlx::query(&self.sql.top_up)
                    .bind(account.as_uuid())
                    .bind(amount.to_string())
                    .bind(key.as_str())
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        self.live.changed();
        decode::account_at(&row, 1)
    }

    async fn inspect(&self, link: LinkId) -> Result<(Link, Account), Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.inspect)
                .bind(link.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        Ok((
            decode::link(&row, 0)?,
            decode::account_at(&row, decode::LINK_COLUMN_COUNT)?,
        ))
    }

    async fn set_profile(
        &self,
        account: AccountId,
        profile: AccountProfile,
    ) -> Result<Account, Error> {
        let profile = profile.validate()?;
        let origins: Vec<&str> = profile
            .return_origins
            .iter()
            .map(ReturnOrigin::as_str)
            .collect();
        let row = retry(|| {
            sqlx::query(&self.sql.set_profile)
                .bind(account.as_uuid())
                .bind(profile.display_name.as_deref())
                .bind(profile.support_url.as_ref().map(ReturnUrl::as_str))
                .bind(&origins)
                .bind(profile.return_outcome)
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        decode::account_at(&row, 0)
    }

    async fn return_secrets(&self, account: AccountId) -> Result<Option<ReturnSecrets>, Error> {
        let keys: Vec<Vec<u8>> = retry(|| {
            sqlx::query_scalar(&self.sql.return_secrets)
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        // Stored current first.
        let mut keys = keys
            .iter()
            .map(|key| ReturnSecret::from_bytes(key).map_err(Error::backend))
            .collect::<Result<Vec<_>, _>>()?;
        let current = keys.first().cloned();
        let previous = keys.get(1).cloned();
        keys.clear();
        Ok(match (current, previous) {
            (None, _) => None,
            (Some(current), None) => Some(ReturnSecrets::new(current)),
            (Some(current), Some(previous)) => {
                let mut secrets = ReturnSecrets::new(previous);
                secrets.rotate(current);
                Some(secrets)
            }
        })
    }

    async fn rotate_return_secret(
        &self,
        account: AccountId,
        secret: ReturnSecret,
    ) -> Result<(), Error> {
        let done = retry(|| {
            sqlx::query(&self.sql.rotate_return_secret)
                .bind(account.as_uuid())
                .bind(secret.key_bytes())
                .execute(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        if done.rows_affected() == 0 {
            return Err(Rejection::NotFound.into());
        }
        self.live.changed();
        Ok(())
    }

    async fn record_view(&self, link: LinkId, change: ViewChange) -> Result<ViewCounts, Error> {
        let new = |kind| i64::from(change == ViewChange::View(kind));
        let row = retry(|| {
            sqlx::query(&self.sql.record_view)
                .bind(link.as_uuid())
                .bind(new(ViewKind::Human))
                .bind(new(ViewKind::Scanner))
                .bind(new(ViewKind::Unconfirmed))
                .bind(change == ViewChange::Confirm)
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        let n = |i: usize| -> Result<u64, Error> {
            let count: i64 = get(&row, i)?;
            Ok(count.max(0) as u64)
        };
        Ok(ViewCounts {
            human: n(0)?,
            scanner: n(1)?,
            unconfirmed: n(2)?,
        })
    }

    async fn link(&self, account: AccountId, link: LinkId) -> Result<Link, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.link)
                .bind(link.as_uuid())
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        decode::link(&row, 0)
    }

    async fn links(&self, account: AccountId, page: Page) -> Result<Paged<Link>, Error> {
        let (after, limit) = page_bounds(page);
        let rows = retry(|| {
            sqlx::query(&self.sql.links)
                .bind(account.as_uuid())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        if rows.is_empty() {
            return Err(Rejection::NotFound.into());
        }
        let items = inner_rows(&rows, 0)?
            .map(|row| decode::link(row, 0))
            .collect::<Result<_, _>>()?;
        Ok(paged(items, page))
    }

    async fn links_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Link>, Error> {
        let rows = retry(|| {
            sqlx::query(&self.sql.links_by_reference)
                .bind(account.as_uuid())
                .bind(reference.as_str())
                .bind(MAX_BY_REFERENCE as i64)
                .fetch_all(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        rows.iter().map(|row| decode::link(row, 0)).collect()
    }

    async fn sessions_by_reference(
        &self,
        account: AccountId,
        reference: &Reference,
    ) -> Result<Vec<Session>, Error> {
        let rows = retry(|| {
            sqlx::query(&self.sql.sessions_by_reference)
                .bind(account.as_uuid())
                .bind(reference.as_str())
                .bind(MAX_BY_REFERENCE as i64)
                .fetch_all(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        rows.iter().map(|row| decode::session(row, 0)).collect()
    }

    async fn session(&self, account: AccountId, session: SessionId) -> Result<Session, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.session)
                .bind(session.as_uuid())
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        decode::session(&row, 0)
    }

    async fn sessions(
        &self,
        account: AccountId,
        link: LinkId,
        page: Page,
    ) -> Result<Paged<Session>, Error> {
        let (after, limit) = page_bounds(page);
        let rows = retry(|| {
            sqlx::query(&self.sql.sessions)
                .bind(link.as_uuid())
                .bind(account.as_uuid())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        if rows.is_empty() {
            return Err(Rejection::NotFound.into());
        }
        let mut items: Vec<Session> = inner_rows(&rows, 0)?
            .map(|row| decode::session(row, 0))
            .collect::<Result<_, _>>()?;
        // By number: pruned sessions leave gaps, so the cursor is the last one's number.
        let limit = page.clamped_limit();
        let next = (items.len() > limit).then(|| items[limit - 1].number);
        items.truncate(limit);
        Ok(Paged { items, next })
    }

    async fn stats(&self, account: AccountId, link: LinkId) -> Result<LinkStats, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.stats)
                .bind(link.as_uuid())
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        let link = decode::link(&row, 0)?;
        let c = decode::LINK_COLUMN_COUNT;
        let n = |i: usize| -> Result<u64, Error> {
            let count: i64 = get(&row, i)?;
            Ok(count.max(0) as u64)
        };
        Ok(LinkStats {
            link: link.id,
            uses: link.uses,
            remaining: link.remaining(),
            started: n(c)?,
            completed: OutcomeCounts {
                approved: n(c + 1)?,
                denied: n(c + 2)?,
                needs_review: n(c + 3)?,
            },
            abandoned: n(c + 4)?,
            reviewed: OutcomeCounts {
                approved: n(c + 5)?,
                denied: n(c + 6)?,
                needs_review: 0,
            },
            expired: n(c + 7)?,
            median_time_to_complete: get::<Option<i64>>(&row, c + 8)?
                .map(|micros| std::time::Duration::from_micros(micros.max(0) as u64)),
            views: ViewCounts {
                human: n(c + 9)?,
                scanner: n(c + 10)?,
                unconfirmed: n(c + 11)?,
            },
        })
    }

    async fn account(&self, account: AccountId) -> Result<Account, Error> {
        let row = retry(|| {
            sqlx::query(&self.sql.account)
                .bind(account.as_uuid())
                .fetch_optional(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .ok_or(Rejection::NotFound)?;
        decode::account_at(&row, 0)
    }

    async fn ledger(&self, account: AccountId, page: Page) -> Result<Paged<LedgerEntry>, Error> {
        let (after, limit) = page_bounds(page);
        let rows = retry(|| {
            sqlx::query(&self.sql.ledger)
                .bind(account.as_uuid())
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
        })
        .await
        .map_err(Error::backend)?;
        if rows.is_empty() {
            return Err(Rejection::NotFound.into());
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind: Option<&str> = get(row, 0)?;
            if kind.is_some() {
                items.push(decode::ledger_entry(row, account)?);
            }
        }
        Ok(paged(items, page))
    }

    async fn outbox_after(&self, cursor: u64, limit: usize) -> Result<Vec<Event>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        // At most Page::MAX_LIMIT events per call, as MemoryStore.
        let limit = limit.min(crate::Page::MAX_LIMIT) as i64;
        retry(|| {
            sqlx::query(&self.sql.outbox_after)
                .bind(cursor)
                .bind(limit)
                .fetch_all(&self.pool)
        })
        .await
        .map_err(Error::backend)?
        .iter()
        .map(|row| decode::event(row, 0))
        .collect()
    }
}

impl PostgresStore {
    /// Runs a sweep function `(p_now, p_limit)` that returns how many objects it handled.
    async fn sweep(&self, sql: &str, now: DateTime<Utc>, limit: usize) -> Result<usize, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let row = self.one(|| sqlx::query(sql).bind(now).bind(limit)).await?;
        let handled: i64 = get(&row, 0)?;
        if handled > 0 {
            self.live.changed();
        }
        Ok(usize::try_from(handled).unwrap_or(usize::MAX))
    }

    /// Completes (`Some(outcome)`) or abandons (`None`) a session of `account`.
    async fn finish(
        &self,
        account: AccountId,
        session: SessionId,
        outcome: Option<Outcome>,
        now: DateTime<Utc>,
    ) -> Result<Session, Error> {
        let row = self
            .one(|| {
                sqlx::query(&self.sql.finish)
                    .bind(account.as_uuid())
                    .bind(session.as_uuid())
                    .bind(outcome.map(Outcome::as_str))
                    .bind(now)
            })
            .await?;
        status(get(&row, 0)?)?;
        self.live.changed();
        decode::session(&row, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["magic_link", "_x", "a", "tenant_42", &"a".repeat(63)] {
            assert_eq!(validate_schema(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "Magic",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "x;drop schema public",
            "pg_catalog",
            "é",
            &"a".repeat(64),
        ] {
            assert_eq!(validate_schema(bad), Err(InvalidSchemaName), "{bad:?}");
        }
    }

    #[test]
    fn every_status_code_maps_to_its_error() {
        assert!(status(0).is_ok());
        let rejection = |code| status(code).unwrap_err().rejection();
        assert_eq!(rejection(1), Some(Rejection::NotFound));
        assert_eq!(rejection(5), Some(Rejection::NoCredits));
        assert_eq!(rejection(13), Some(Rejection::SessionCompleted));
        assert!(matches!(status(6), Err(Error::AlreadyExists)));
        assert!(matches!(status(99), Err(Error::Backend(_))));
    }
}
