//! The facade's webhook methods: endpoints and failed deliveries, for stores that keep them.

use crate::clock::Clock;
use crate::store::WebhookStore;
use crate::webhooks::{Delivery, Endpoint, EventType, WebhookSecret};
use crate::{AccountId, Error, EventId, MagicLinks, Page, Paged};

/// Webhook endpoints and deliveries, for stores that keep them.
impl<S: WebhookStore, C: Clock> MagicLinks<S, C> {
    /// Sets `account`'s webhook endpoint: its URL and its signing secrets, newest first (every
    /// delivery carries one signature per secret). Replaces any previous endpoint and enables
    /// it. It receives every event type this version of the crate knows
    /// ([`EventType::ALL`], stored as a list: types added by later versions are not sent to it
    /// until chosen); choose types with
    /// [`set_webhook_endpoint_receiving`](Self::set_webhook_endpoint_receiving). Setting it
    /// again replaces the choice too.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`](crate::InvalidInput) for a bad URL or secret count; `NotFound` for an
    /// unknown account; backend failures.
    ///
    /// # Examples
    ///
    /// ```
    /// use magic_link::store::MemoryStore;
    /// use magic_link::tokens::Keyring;
    /// use magic_link::webhooks::WebhookSecret;
    /// use magic_link::{AccountId, MagicLinks};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let base = "https://verify.example.com/l/".parse()?;
    /// let links = MagicLinks::new(MemoryStore::new(), Keyring::generate()?, base);
    /// let account = links.create_account(AccountId::new()).await?;
    /// let secret = WebhookSecret::generate()?;
    /// // Show the receiver `secret.expose()` once, over a secure channel.
    /// links
    ///     .set_webhook_endpoint(account.id, "https://hooks.example.com/idv", vec![secret])
    ///     .await?;
    /// assert!(links.webhook_endpoint(account.id).await?.is_some_and(|e| e.is_enabled()));
    /// # Ok(()) }
    /// ```
    pub async fn set_webhook_endpoint(
        &self,
        account: AccountId,
        url: &str,
        secrets: Vec<WebhookSecret>,
    ) -> Result<Endpoint, Error> {
        let endpoint = Endpoint::new(account, url, secrets, self.clock().now())?;
        self.store().set_endpoint(endpoint).await
    }

    /// Sets `account`'s webhook endpoint as [`set_webhook_endpoint`](Self::set_webhook_endpoint)
    /// does, receiving only the event types named in `event_types` (names such as
    /// `"session.reviewed"`, or [`EventType`] values).
    ///
    /// # Errors
    ///
    /// [`InvalidInput::UnknownEventType`](crate::InvalidInput::UnknownEventType) for a name
    /// this version does not know, [`InvalidInput::NoEventTypes`](crate::InvalidInput::NoEventTypes)
    /// for none; otherwise as [`set_webhook_endpoint`](Self::set_webhook_endpoint).
    ///
    /// # Examples
    ///
    /// ```
    /// use magic_link::store::MemoryStore;
    /// use magic_link::tokens::Keyring;
    /// use magic_link::webhooks::{EventType, WebhookSecret};
    /// use magic_link::{AccountId, MagicLinks};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let base = "https://verify.example.com/l/".parse()?;
    /// let links = MagicLinks::new(MemoryStore::new(), Keyring::generate()?, base);
    /// let account = links.create_account(AccountId::new()).await?;
    /// let url = "https://hooks.example.com/idv";
    /// let secrets = vec![WebhookSecret::generate()?];
    /// let endpoint = links
    ///     .set_webhook_endpoint_receiving(account.id, url, secrets, ["session.completed", "session.reviewed"])
    ///     .await?;
    /// assert_eq!(endpoint.event_types(), [EventType::SessionCompleted, EventType::SessionReviewed]);
    /// # Ok(()) }
    /// ```
    pub async fn set_webhook_endpoint_receiving<I>(
        &self,
        account: AccountId,
        url: &str,
        secrets: Vec<WebhookSecret>,
        event_types: I,
    ) -> Result<Endpoint, Error>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let types = EventType::parse_set(event_types)?;
        let endpoint =
            Endpoint::new(account, url, secrets, self.clock().now())?.with_event_types(types)?;
        self.store().set_endpoint(endpoint).await
    }

    /// Reads `account`'s webhook endpoint, if it has one.
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn webhook_endpoint(&self, account: AccountId) -> Result<Option<Endpoint>, Error> {
        self.store().endpoint(account).await
    }

    /// Disables `account`'s webhook endpoint; its pending deliveries fail and can be re-queued
    /// after it is set again.
    ///
    /// # Errors
    ///
    /// `NotFound` if it has no endpoint; backend failures.
    pub async fn disable_webhook_endpoint(&self, account: AccountId) -> Result<Endpoint, Error> {
        self.store()
            .disable_endpoint(account, self.clock().now())
            .await
    }

    /// Lists `account`'s failed deliveries.
    ///
    /// # Errors
    ///
    /// Backend failures.
    pub async fn failed_deliveries(
        &self,
        account: AccountId,
        page: Page,
    ) -> Result<Paged<Delivery>, Error> {
        self.store().failed_deliveries(account, page).await
    }

    /// Re-queues a failed delivery of `account` with a fresh retry schedule.
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown event or another account's; backend failures.
    pub async fn requeue_delivery(
        &self,
        account: AccountId,
        event: EventId,
    ) -> Result<Delivery, Error> {
        self.store()
            .requeue(account, event, self.clock().now())
            .await
    }
}
