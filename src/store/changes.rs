//! Wake-ups after committed changes: the [`Changes`] trait, the [`ChangeSignal`] a store
//! raises and the [`ChangeListener`] a waiting party holds.
//!
//! A signal carries no data: it only says "the outbox may have grown; read it again". The
//! reader then reads [`outbox_after`](crate::store::LinkStore::outbox_after) from its own
//! cursor, so a coalesced, spurious or late wake-up never loses or duplicates an event. A lost
//! one only delays the reader until its next poll, which is why every waiting party keeps a
//! slow poll as a fallback.
//!
//! The signal is plain `std` (an atomic counter and a list of [`Waker`]s), so it works on any
//! executor and costs the default build nothing: raising it is one atomic increment, plus a
//! lock only while someone is parked waiting.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::Error;

/// A store whose committed changes wake those who wait for them.
///
/// [`MemoryStore`](crate::store::MemoryStore) raises its signal in process, right after each
/// change's events are appended. `PostgresStore` sends a `NOTIFY` after each change commits
/// and raises its signal when its `LISTEN` connection hears one from any instance sharing the
/// database.
///
/// [`Dispatcher::wake_on_changes`](crate::webhooks::Dispatcher) and `MagicLinks::subscribe`
/// (feature `background`) use it.
///
/// # Examples
///
/// ```
/// use magic_link::store::{Changes, MemoryStore};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), magic_link::Error> {
/// let store = MemoryStore::new();
/// let mut listener = store.changes().await?.listen();
/// // ... another task changes something in the store ...
/// # store.changes().await?.raise();
/// listener.changed().await; // then read the outbox after your cursor
/// # Ok(()) }
/// ```
pub trait Changes: Send + Sync {
    /// The signal this store raises after every change that appends to the outbox commits,
    /// started on first use. Once it has returned, every change that commits later wakes the
    /// signal's listeners (on PostgreSQL: unless a notification is lost while the `LISTEN`
    /// connection reconnects; the signal is raised once after each reconnection, since a
    /// change may have been missed).
    ///
    /// # Errors
    ///
    /// Backend failures (PostgreSQL: the `LISTEN` connection could not be opened).
    fn changes(&self) -> impl Future<Output = Result<ChangeSignal, Error>> + Send;

    /// The [`seq`](crate::Event::seq) of the newest event in the outbox, 0 when empty: a
    /// cursor from which [`outbox_after`](crate::store::LinkStore::outbox_after) returns only
    /// events that were not yet readable when this was called (and, on PostgreSQL, events
    /// committed but not yet numbered).
    ///
    /// # Errors
    ///
    /// Backend failures.
    fn outbox_head(&self) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl<S: Changes> Changes for Arc<S> {
    fn changes(&self) -> impl Future<Output = Result<ChangeSignal, Error>> + Send {
        (**self).changes()
    }

    fn outbox_head(&self) -> impl Future<Output = Result<u64, Error>> + Send {
        (**self).outbox_head()
    }
}

/// A wake-up raised after committed changes. Clones share one signal.
///
/// [`raise`](Self::raise) wakes every [`ChangeListener`]; a listener that was busy when the
/// signal was raised finds out at its next [`changed`](ChangeListener::changed), which then
/// returns at once. Raises in quick succession may wake a listener only once.
#[derive(Clone, Default)]
pub struct ChangeSignal {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// How often the signal was raised.
    raised: AtomicU64,
    /// Whether `parked` may hold wakers: read on every raise, so that a raise takes the lock
    /// only while someone waits.
    waiting: AtomicBool,
    parked: Mutex<Vec<Waker>>,
    /// Dropped with the last clone: stops what feeds the signal (a `LISTEN` task).
    _guard: Option<Box<dyn Send + Sync>>,
}

impl fmt::Debug for ChangeSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeSignal")
            .field("raised", &self.inner.raised.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ChangeSignal {
    /// A new signal, raised by nobody yet (stores make their own; this is for tests and for
    /// stores of your own).
    pub fn new() -> Self {
        Self::default()
    }

    /// A signal that keeps `guard` until its last clone is dropped (a store's `LISTEN` task
    /// handle that aborts the task on drop).
    #[cfg(feature = "postgres")]
    pub(crate) fn with_guard(guard: Box<dyn Send + Sync>) -> Self {
        Self {
            inner: Arc::new(Inner {
                _guard: Some(guard),
                ..Inner::default()
            }),
        }
    }

    /// Wakes every listener: call it after a change has committed (never before: a woken
    /// reader must find the change).
    pub fn raise(&self) {
        self.inner.raised.fetch_add(1, Ordering::SeqCst);
        if self.inner.waiting.load(Ordering::SeqCst) {
            let wakers = {
                let mut parked = self
                    .inner
                    .parked
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                self.inner.waiting.store(false, Ordering::SeqCst);
                std::mem::take(&mut *parked)
            };
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// A listener that waits for raises after this call.
    pub fn listen(&self) -> ChangeListener {
        ChangeListener {
            seen: self.inner.raised.load(Ordering::SeqCst),
            signal: self.clone(),
        }
    }

    /// A handle that does not keep the signal's feed alive, for the task that raises it.
    #[cfg(feature = "postgres")]
    pub(crate) fn downgrade(&self) -> WeakSignal {
        WeakSignal(Arc::downgrade(&self.inner))
    }
}

/// A [`ChangeSignal`] that does not keep it alive.
#[cfg(feature = "postgres")]
pub(crate) struct WeakSignal(std::sync::Weak<Inner>);

#[cfg(feature = "postgres")]
impl WeakSignal {
    /// Raises the signal; `false` if it is gone (every clone dropped).
    pub(crate) fn raise(&self) -> bool {
        match self.0.upgrade() {
            Some(inner) => {
                ChangeSignal { inner }.raise();
                true
            }
            None => false,
        }
    }
}

/// Waits for a [`ChangeSignal`]; made by [`ChangeSignal::listen`].
#[derive(Debug, Clone)]
pub struct ChangeListener {
    signal: ChangeSignal,
    /// The raise count last seen.
    seen: u64,
}

impl ChangeListener {
    /// Completes when the signal has been raised since the listener was made or since the
    /// last `changed` completed: at once if it already was. Cancel-safe.
    pub fn changed(&mut self) -> Changed<'_> {
        Changed { listener: self }
    }

    /// Whether the signal was raised since the last [`changed`](Self::changed) completed (or
    /// the listener was made), without waiting or consuming it.
    pub fn has_changed(&self) -> bool {
        self.signal.inner.raised.load(Ordering::SeqCst) != self.seen
    }
}

/// The future of [`ChangeListener::changed`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Changed<'a> {
    listener: &'a mut ChangeListener,
}

impl Future for Changed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let listener = &mut *self.get_mut().listener;
        let inner = &listener.signal.inner;
        let now = inner.raised.load(Ordering::SeqCst);
        if now != listener.seen {
            listener.seen = now;
            return Poll::Ready(());
        }
        {
            let mut parked = inner.parked.lock().unwrap_or_else(PoisonError::into_inner);
            if !parked.iter().any(|w| w.will_wake(cx.waker())) {
                parked.push(cx.waker().clone());
            }
            inner.waiting.store(true, Ordering::SeqCst);
        }
        // A raise between the first check and `waiting` being set saw no one waiting: check
        // again (both sides use SeqCst, so one of them sees the other).
        let now = inner.raised.load(Ordering::SeqCst);
        if now != listener.seen {
            listener.seen = now;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_raise_wakes_a_parked_listener_and_is_seen_once() {
        let signal = ChangeSignal::new();
        let mut listener = signal.listen();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut changed = Box::pin(listener.changed());
        assert!(changed.as_mut().poll(&mut cx).is_pending());
        signal.raise();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken");
        assert!(changed.as_mut().poll(&mut cx).is_ready());
        drop(changed);
        assert!(!listener.has_changed());
        assert!(Box::pin(listener.changed())
            .as_mut()
            .poll(&mut cx)
            .is_pending());
        // A raise while nobody polls is kept for the next call.
        signal.raise();
        signal.raise();
        assert!(listener.has_changed());
        assert!(Box::pin(listener.changed())
            .as_mut()
            .poll(&mut cx)
            .is_ready());
        assert!(Box::pin(listener.changed())
            .as_mut()
            .poll(&mut cx)
            .is_pending());
    }
}
