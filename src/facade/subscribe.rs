//! [`MagicLinks::subscribe`]: an account's events as they commit (feature `background`).

use std::time::Duration;

use crate::clock::Clock;
use crate::live::Subscription;
use crate::store::{Changes, LinkStore};
use crate::{AccountId, Error, MagicLinks};

impl<S, C> MagicLinks<S, C> {
    /// Sets how often the reader that [`subscribe`](Self::subscribe) starts reads the outbox
    /// when no wake-up came (default 5 s, at least 1 ms): the fallback for lost
    /// notifications. Set it before the first subscription; clones made before share the
    /// reader but keep their own setting, so set it on the facade you clone.
    #[must_use]
    pub fn subscription_poll_interval(mut self, every: Duration) -> Self {
        self.live = self.live.with_poll(every);
        self
    }
}

impl<S, C> MagicLinks<S, C>
where
    S: LinkStore + Changes + Clone + 'static,
    C: Clock,
{
    /// `account`'s events from a cursor, then live: those with a [`seq`](crate::Event::seq)
    /// after `after`, in order and without gaps, then each new one as soon as it commits.
    /// `None` starts at the newest event now in the outbox: only later changes.
    ///
    /// An SSE endpoint passes the `Last-Event-ID` its client sends back when it reconnects
    /// (the `seq` of the last event it got), so it resumes without losing or repeating one.
    ///
    /// The first call starts one reader for this facade and its clones, on a task of the
    /// current Tokio runtime: it reads the outbox whenever the store's
    /// [change signal](Changes::changes) is raised (on PostgreSQL, by a change committed by
    /// any instance), and every 5 s as a fallback
    /// ([`subscription_poll_interval`](Self::subscription_poll_interval)), and hands each event to the subscriptions
    /// of its account. A subscription that falls more than 512 events behind is dropped by the
    /// reader, which never waits for it, and catches up from the store by itself. The store
    /// is cloned into the reader: share a [`MemoryStore`](crate::store::MemoryStore) as
    /// `Arc<MemoryStore>`.
    ///
    /// A subscription from an old cursor reads the shared outbox from there, every account's
    /// events, to find `account`'s: keep cursors recent.
    ///
    /// # Errors
    ///
    /// Backend failures (reading the outbox head; on PostgreSQL, opening the `LISTEN`
    /// connection).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use magic_link::store::MemoryStore;
    /// use magic_link::tokens::Keyring;
    /// use magic_link::{AccountId, EventKind, IdempotencyKey, MagicLinks};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let links = MagicLinks::new(
    ///     Arc::new(MemoryStore::new()),
    ///     Keyring::generate()?,
    ///     "https://verify.example.com/l/".parse()?,
    /// );
    /// let account = links.create_account(AccountId::new()).await?;
    /// let mut events = links.subscribe(account.id, None).await?;
    /// links.top_up(account.id, 5, IdempotencyKey::new("invoice-1")?).await?;
    /// let event = events.next().await?;
    /// assert!(matches!(event.kind, EventKind::CreditsAdded { amount: 5, .. }));
    /// // A reconnecting client resumes after the last event it got.
    /// let resumed = links.subscribe(account.id, Some(events.cursor())).await?;
    /// # drop(resumed);
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(
        &self,
        account: AccountId,
        after: Option<u64>,
    ) -> Result<Subscription, Error> {
        self.live.subscribe(&self.store, account, after).await
    }
}
