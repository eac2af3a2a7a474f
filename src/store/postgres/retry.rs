//! Statements that PostgreSQL rolled back because of a conflict with another transaction are
//! run again, a bounded number of times.
//!
//! Every operation of the store is one statement, so one implicit transaction: a
//! serialization failure (`40001`, possible when a pool the user built runs at `repeatable
//! read` or `serializable`) or a deadlock (`40P01`) rolled back all of it, and running it
//! again is safe. Connection errors are *not* retried: the statement may have committed.

use std::future::Future;
use std::time::Duration;

/// How many times a statement runs at most.
pub(super) const MAX_ATTEMPTS: u32 = 10;

/// Runs `statement` until it succeeds, fails with anything but a conflict, or has run
/// [`MAX_ATTEMPTS`] times.
pub(super) async fn retry<T, F, Fut>(mut statement: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match statement().await {
            Err(err) if attempt < MAX_ATTEMPTS && is_conflict(&err) => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            done => return done,
        }
    }
}

/// A serialization failure or a deadlock: the transaction was rolled back.
pub(super) fn is_conflict(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40001" | "40P01")))
}

/// A random wait before attempt `attempt + 1`, up to 1 ms doubled per attempt (at most 256 ms),
/// so that the transactions that conflicted do not meet again at once.
fn backoff(attempt: u32) -> Duration {
    let cap_us = 1000u64 << attempt.min(8);
    let random = getrandom::u64().unwrap_or(cap_us / 2);
    Duration::from_micros(random % cap_us)
}
