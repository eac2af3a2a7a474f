//! Live events of one account (feature `background`): the [`Subscription`] that
//! [`MagicLinks::subscribe`](crate::MagicLinks::subscribe) returns.
//!
//! One reader per facade (and its clones), on a task of its own, reads the outbox after each
//! wake-up of the store's [change signal](crate::store::Changes) (and every 5 s, a fallback for
//! lost notifications) and hands each event to the subscriptions of its account. A
//! subscription first reads the events between its cursor and the reader's position from the
//! store itself, then takes the reader's. Each subscription has a bounded queue: one that falls
//! behind is dropped by the reader, which never waits for it, and catches up again from the
//! store, from its own cursor, without a gap or a repeat.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::OnceCell;
use tokio::task::AbortHandle;

use crate::store::{ChangeSignal, LinkStore};
use crate::{AccountId, Error, Event, Page};

/// Events queued per subscription before the reader drops it (it then catches up from the
/// store).
const QUEUE: usize = 512;
/// How often the reader reads the outbox without a wake-up, by default: the fallback for lost
/// notifications.
const FALLBACK_POLL: Duration = Duration::from_secs(5);
/// The first wait after a failed read; doubled per further failure, up to 30 s.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(100);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// Reads the outbox for the reader and for subscriptions catching up: the store, type-erased.
pub(crate) trait ReadOutbox: Send + Sync {
    fn after(
        &self,
        cursor: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Event>, Error>> + Send + '_>>;
}

impl<S: LinkStore> ReadOutbox for S {
    fn after(
        &self,
        cursor: u64,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Event>, Error>> + Send + '_>> {
        Box::pin(self.outbox_after(cursor, Page::MAX_LIMIT))
    }
}

/// The reader of a facade and its clones, started by the first subscription.
#[derive(Clone)]
pub(crate) struct Hub {
    reader: Arc<OnceCell<Arc<Shared>>>,
    /// How often the reader reads without a wake-up.
    poll: Duration,
}

impl Default for Hub {
    fn default() -> Self {
        Self {
            reader: Arc::default(),
            poll: FALLBACK_POLL,
        }
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("started", &self.reader.initialized())
            .field("poll", &self.poll)
            .finish()
    }
}

/// What the reader and the subscriptions share.
struct Shared {
    outbox: Arc<dyn ReadOutbox>,
    state: Mutex<State>,
    /// The reader task, stopped when the facade and every subscription are gone.
    reader: Mutex<Option<AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let reader = self
            .reader
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(task) = reader.take() {
            task.abort();
        }
    }
}

struct State {
    /// The `seq` up to which the reader has handed out events.
    position: u64,
    subscribers: HashMap<AccountId, Vec<Slot>>,
    next_id: u64,
}

struct Slot {
    id: u64,
    queue: mpsc::Sender<Event>,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a queue for `account`: it gets the account's events after the returned
    /// position.
    fn register(&self, account: AccountId) -> (u64, mpsc::Receiver<Event>, u64) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state
            .subscribers
            .entry(account)
            .or_default()
            .push(Slot { id, queue });
        (id, receiver, state.position)
    }

    fn unregister(&self, account: AccountId, id: u64) {
        let mut state = self.state();
        if let Some(slots) = state.subscribers.get_mut(&account) {
            slots.retain(|slot| slot.id != id);
            if slots.is_empty() {
                state.subscribers.remove(&account);
            }
        }
    }

    /// Hands out a batch read after the current position, in order. A queue that is full or
    /// closed is dropped: its subscription catches up from the store.
    fn fan_out(&self, batch: Vec<Event>) {
        let mut state = self.state();
        let Some(last) = batch.last().map(|e| e.seq) else {
            return;
        };
        for event in batch {
            if event.seq <= state.position {
                continue;
            }
            let Some(slots) = state.subscribers.get_mut(&event.account) else {
                continue;
            };
            slots.retain(|slot| slot.queue.try_send(event.clone()).is_ok());
            if slots.is_empty() {
                state.subscribers.remove(&event.account);
            }
        }
        state.position = state.position.max(last);
    }
}

impl Hub {
    /// The same, whose reader polls every `poll` (at least 1 ms) without a wake-up. A reader
    /// already started keeps its interval.
    pub(crate) fn with_poll(self, poll: Duration) -> Self {
        Self {
            poll: poll.max(Duration::from_millis(1)),
            ..self
        }
    }

    /// The started reader: on first use, reads the outbox head and spawns the reader task on
    /// the current Tokio runtime.
    async fn shared<S>(&self, store: &S) -> Result<Arc<Shared>, Error>
    where
        S: LinkStore + crate::store::Changes + Clone + 'static,
    {
        self.reader
            .get_or_try_init(|| async {
                let signal = store.changes().await?;
                let position = store.outbox_head().await?;
                let outbox: Arc<dyn ReadOutbox> = Arc::new(store.clone());
                let shared = Arc::new(Shared {
                    outbox: outbox.clone(),
                    state: Mutex::new(State {
                        position,
                        subscribers: HashMap::new(),
                        next_id: 0,
                    }),
                    reader: Mutex::new(None),
                });
                let task = tokio::spawn(read(Arc::downgrade(&shared), outbox, signal, self.poll));
                *shared.reader.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some(task.abort_handle());
                Ok(shared)
            })
            .await
            .cloned()
    }

    /// A subscription of `account` from `after`.
    pub(crate) async fn subscribe<S>(
        &self,
        store: &S,
        account: AccountId,
        after: Option<u64>,
    ) -> Result<Subscription, Error>
    where
        S: LinkStore + crate::store::Changes + Clone + 'static,
    {
        let shared = self.shared(store).await?;
        let cursor = match after {
            Some(cursor) => cursor,
            None => store.outbox_head().await?,
        };
        Ok(Subscription {
            shared,
            account,
            cursor,
            scanned: cursor,
            pending: VecDeque::new(),
            live: None,
        })
    }
}

/// The reader task: reads after each wake-up (or fallback poll) and fans out, until the
/// facade and every subscription are gone.
async fn read(
    shared: Weak<Shared>,
    outbox: Arc<dyn ReadOutbox>,
    signal: ChangeSignal,
    poll: Duration,
) {
    let mut listener = signal.listen();
    let mut failures = 0u32;
    loop {
        let Some(position) = shared.upgrade().map(|s| s.state().position) else {
            return;
        };
        match outbox.after(position).await {
            Ok(batch) if !batch.is_empty() => {
                failures = 0;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.fan_out(batch);
                // More may follow at once.
                continue;
            }
            Ok(_) => {
                failures = 0;
                tokio::select! {
                    () = listener.changed() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                let wait = FIRST_RETRY_WAIT
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(MAX_RETRY_WAIT);
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// One account's events, in [`seq`](Event::seq) order, without gaps or repeats: first those
/// after the cursor it was made with, then live ones as they commit. Made by
/// [`MagicLinks::subscribe`](crate::MagicLinks::subscribe).
///
/// [`cursor`](Self::cursor) is the `seq` of the last event returned: a client that reconnects
/// (an SSE client's `Last-Event-ID`) subscribes again from it.
pub struct Subscription {
    shared: Arc<Shared>,
    account: AccountId,
    /// The `seq` of the last event returned (or the starting cursor).
    cursor: u64,
    /// The `seq` up to which the outbox was read from the store while catching up.
    scanned: u64,
    /// Events read from the store, not yet returned.
    pending: VecDeque<Event>,
    /// The queue from the reader, its id, and the reader's position when it was registered:
    /// events up to that come from the store.
    live: Option<Live>,
}

struct Live {
    id: u64,
    queue: mpsc::Receiver<Event>,
    from: u64,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("account", &self.account)
            .field("cursor", &self.cursor)
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The account.
    pub fn account(&self) -> AccountId {
        self.account
    }

    /// The `seq` of the last event returned, or the cursor it started from: where to resume.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The next event: at once if one is due, else when the next one of the account commits.
    ///
    /// Cancel-safe: dropping the future (in a `select!` or a timeout) loses no event.
    ///
    /// # Errors
    ///
    /// Backend failures while catching up from the store; the subscription stays usable and
    /// the next call tries again from the same cursor.
    pub async fn next(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.cursor = event.seq;
                return Ok(event);
            }
            let from = match &self.live {
                Some(live) => live.from,
                None => {
                    let (id, queue, from) = self.shared.register(self.account);
                    self.live = Some(Live { id, queue, from });
                    from
                }
            };
            if self.scanned < from {
                self.catch_up(from).await?;
                continue;
            }
            let Some(live) = &mut self.live else {
                continue;
            };
            match live.queue.recv().await {
                Some(event) if event.seq > self.cursor => {
                    self.cursor = event.seq;
                    self.scanned = self.scanned.max(event.seq);
                    return Ok(event);
                }
                Some(_) => {}
                None => {
                    // Dropped by the reader for falling behind: catch up from the store.
                    self.live = None;
                    self.scanned = self.cursor;
                }
            }
        }
    }

    /// Reads one page of the outbox after `scanned`, up to `to`, keeping the account's events.
    async fn catch_up(&mut self, to: u64) -> Result<(), Error> {
        let batch = self.shared.outbox.after(self.scanned).await?;
        if batch.is_empty() {
            self.scanned = to;
        }
        for event in batch {
            if event.seq > to {
                self.scanned = to;
                break;
            }
            self.scanned = event.seq;
            if event.account == self.account && event.seq > self.cursor {
                self.pending.push_back(event);
            }
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            self.shared.unregister(self.account, live.id);
        }
    }
}
