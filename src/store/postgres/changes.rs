//! Wake-ups across processes: a `NOTIFY` after each change commits, coalesced, and a
//! `LISTEN` connection that raises the store's [`ChangeSignal`].
//!
//! The notification carries nothing (an empty payload on a channel named after the schema):
//! it only wakes readers, who read the outbox after their cursor.
//!
//! Why after commit, from a task, rather than in the SQL functions: a transaction that
//! notifies takes a lock at commit that serializes the commits of every notifying transaction
//! in the cluster, WAL flush included, which would cost every redemption. Here the
//! redemptions commit as before; the store then marks "changed", and one task per store sends
//! one `NOTIFY` for all the changes marked while the previous one was in flight, on a
//! connection of its own. `benches/postgres.rs` measures both ways.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::{Mutex, Notify};
use tokio::task::AbortHandle;

use super::PostgresStore;
use crate::store::changes::WeakSignal;
use crate::store::{ChangeSignal, Changes};
use crate::Error;

/// The first wait after a failure of the notifying or the listening connection; it doubles
/// with each further failure in a row, up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The longest channel name PostgreSQL takes, in bytes.
const MAX_CHANNEL_LEN: usize = 63;

/// The wait after `failures` failures in a row (none after none).
fn retry_wait(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    FIRST_RETRY_WAIT
        .saturating_mul(1 << (failures - 1).min(16))
        .min(MAX_RETRY_WAIT)
}

/// The channel of a schema: `{schema}.changes`, or for a schema name too long for that,
/// `magic_link.` and 32 hex digits of its SHA-256.
pub(super) fn channel_of(schema: &str) -> String {
    let plain = format!("{schema}.changes");
    if plain.len() <= MAX_CHANNEL_LEN {
        return plain;
    }
    let digest = Sha256::digest(schema.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("magic_link.{hex}")
}

/// What the clones of one store share for wake-ups.
pub(super) struct Live {
    channel: Arc<str>,
    /// Whether changes are notified (the builder's `notify`).
    notify: bool,
    /// Connection options of the store's pool, for the two connections of this module.
    pool: PgPool,
    outgoing: Arc<Outgoing>,
    sender: OnceLock<AbortOnDrop>,
    /// The signal, once [`Changes::changes`] started the `LISTEN` task.
    signal: Mutex<Option<ChangeSignal>>,
}

/// Changes marked but not yet notified.
#[derive(Default)]
struct Outgoing {
    dirty: AtomicBool,
    wake: Notify,
}

struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Live {
    pub(super) fn new(pool: &PgPool, schema: &str, notify: bool) -> Self {
        Self {
            channel: channel_of(schema).into(),
            notify,
            pool: pool.clone(),
            outgoing: Arc::default(),
            sender: OnceLock::new(),
            signal: Mutex::new(None),
        }
    }

    pub(super) fn channel(&self) -> &str {
        &self.channel
    }

    /// A pool of one connection with the store pool's options, that keeps it open.
    fn own_pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            // No ping before each `NOTIFY`: a broken connection fails one, which is retried.
            .test_before_acquire(false)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with((*self.pool.connect_options()).clone())
    }

    /// Marks that a change committed: the notifying task sends a `NOTIFY` soon, one for all
    /// changes marked meanwhile. Never waits. Without a Tokio runtime (impossible for a call
    /// that just ran a query) nothing is sent and readers find the change at their next poll.
    pub(super) fn changed(&self) {
        if !self.notify {
            return;
        }
        let outgoing = &self.outgoing;
        if outgoing.dirty.load(Ordering::Acquire) || outgoing.dirty.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.sender.get().is_none() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let _ = self.sender.get_or_init(|| {
                    let task = runtime.spawn(send_notifications(
                        outgoing.clone(),
                        self.own_pool(),
                        self.channel.clone(),
                    ));
                    AbortOnDrop(task.abort_handle())
                });
            }
        }
        outgoing.wake.notify_one();
    }

    async fn signal(&self) -> Result<ChangeSignal, Error> {
        let mut slot = self.signal.lock().await;
        if let Some(signal) = &*slot {
            return Ok(signal.clone());
        }
        let pool = self.own_pool();
        let listener = listen(&pool, &self.channel).await?;
        let handle = Arc::new(OnceLock::new());
        let signal = ChangeSignal::with_guard(Box::new(AbortLater {
            _task: handle.clone(),
        }));
        let task = tokio::spawn(raise_on_notifications(
            listener,
            pool,
            self.channel.clone(),
            signal.downgrade(),
        ));
        let _ = handle.set(AbortOnDrop(task.abort_handle()));
        *slot = Some(signal.clone());
        Ok(signal)
    }
}

/// Aborts the task once its handle is set, when dropped.
struct AbortLater {
    _task: Arc<OnceLock<AbortOnDrop>>,
}

/// Opens a `LISTEN` connection on `channel`.
async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, Error> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(Error::backend)?;
    listener.listen(channel).await.map_err(Error::backend)?;
    Ok(listener)
}

/// The notifying task: one `NOTIFY` per wake-up, which covers every change marked before it
/// cleared the mark.
async fn send_notifications(outgoing: Arc<Outgoing>, pool: PgPool, channel: Arc<str>) {
    let mut failures = 0u32;
    loop {
        outgoing.wake.notified().await;
        outgoing.dirty.store(false, Ordering::Release);
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(&*channel)
            .execute(&pool)
            .await;
        if sent.is_ok() {
            failures = 0;
            continue;
        }
        failures = failures.saturating_add(1);
        tokio::time::sleep(retry_wait(failures)).await;
        outgoing.dirty.store(true, Ordering::Release);
        outgoing.wake.notify_one();
    }
}

/// The listening task: raises the signal on every notification, and once after each
/// reconnection (a notification may have been missed meanwhile). Ends when the signal is gone.
async fn raise_on_notifications(
    listener: PgListener,
    pool: PgPool,
    channel: Arc<str>,
    signal: WeakSignal,
) {
    let mut listener = Some(listener);
    let mut failures = 0u32;
    loop {
        let Some(current) = listener.as_mut() else {
            tokio::time::sleep(retry_wait(failures)).await;
            match listen(&pool, &channel).await {
                Ok(fresh) => {
                    listener = Some(fresh);
                    failures = 0;
                    if !signal.raise() {
                        return;
                    }
                }
                Err(_) => failures = failures.saturating_add(1),
            }
            continue;
        };
        let heard = match current.try_recv().await {
            Ok(Some(_)) => {
                // Many notifications may be queued: one raise wakes the readers for all.
                while current.next_buffered().is_some() {}
                true
            }
            // The connection was lost and opened again: changes may have been missed.
            Ok(None) => true,
            Err(_) => {
                listener = None;
                failures = failures.saturating_add(1);
                false
            }
        };
        if heard && !signal.raise() {
            return;
        }
    }
}

impl PostgresStore {
    /// The `LISTEN`/`NOTIFY` channel of the store's schema: `{schema}.changes` (or, for a
    /// schema name longer than 55 bytes, `magic_link.` and 32 hex digits of its SHA-256). Each
    /// notification on it has an empty payload and means only "the outbox may have grown".
    pub fn channel(&self) -> &str {
        self.live.channel()
    }
}

impl Changes for PostgresStore {
    /// Opens a connection (with the pool's options, outside the pool) that `LISTEN`s on the
    /// store's [`channel`](PostgresStore::channel), on the first call, and returns the signal
    /// it raises; later calls, also from clones of the store, return the same signal. A task
    /// on the current Tokio runtime keeps the connection, reconnects it with backoff when it
    /// fails (raising the signal after each reconnection), and stops when the store and every
    /// clone of the signal are dropped.
    ///
    /// Instances that notify are those whose builder left
    /// [`notify`](super::PostgresStoreBuilder::notify) on (the default).
    async fn changes(&self) -> Result<ChangeSignal, Error> {
        self.live.signal().await
    }

    async fn outbox_head(&self) -> Result<u64, Error> {
        let sql = format!("SELECT seq FROM {}.outbox_head", super::quote(&self.schema));
        let head: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&self.pool)
            .await
            .map_err(Error::backend)?;
        Ok(u64::try_from(head).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_fit_postgres_limit() {
        assert_eq!(channel_of("magic_link"), "magic_link.changes");
        let long = "a".repeat(63);
        let channel = channel_of(&long);
        assert!(channel.len() <= MAX_CHANNEL_LEN, "{channel}");
        assert_ne!(channel, channel_of(&"a".repeat(62)));
    }
}
