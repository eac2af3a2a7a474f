//! An account's webhook endpoint: where its events go and the secrets that sign them.

use std::fmt;

use chrono::{DateTime, Utc};
use url::Url;

use crate::webhooks::event_type::normalize;
use crate::webhooks::{EventType, WebhookSecret};
use crate::{AccountId, InvalidInput};

/// The most signing secrets an endpoint holds at once (during rotation).
pub const MAX_WEBHOOK_SECRETS: usize = 5;
/// The longest endpoint URL, in bytes.
pub const MAX_WEBHOOK_URL_LEN: usize = 2048;

/// An account's webhook endpoint: its URL and one or more signing secrets.
///
/// Every delivery carries one signature per secret, so a receiver can rotate: add the new
/// secret here, switch the receiver to it, then remove the old one.
///
/// An endpoint receives only the [event types](EventType) it takes: by default (from
/// [`new`](Self::new)) every type this version of the crate knows ([`EventType::ALL`]), stored
/// as an explicit list, so a type added by a later version is not sent until the owner adds it
/// with [`with_event_types`](Self::with_event_types). Setting an endpoint again replaces the
/// whole endpoint, its types included: pass the current choice again to keep it.
///
/// Both the URL and the secrets are confidential: a URL often carries a token in its path or
/// query. `Debug` prints only the URL's scheme and host (the host a request goes to), and no
/// secret material.
///
/// # Examples
///
/// ```
/// use chrono::Utc;
/// use magic_link::webhooks::{Endpoint, WebhookSecret};
/// use magic_link::AccountId;
///
/// let secret = WebhookSecret::generate()?;
/// let endpoint = Endpoint::new(
///     AccountId::new(),
///     "https://hooks.example.com/T0/B0/s3cr3t-token",
///     vec![secret],
///     Utc::now(),
/// )?;
/// let shown = format!("{endpoint:?}");
/// assert!(shown.contains("https://hooks.example.com/[redacted]"));
/// assert!(!shown.contains("s3cr3t"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Endpoint {
    /// The account whose events go here.
    pub account: AccountId,
    url: String,
    secrets: Vec<WebhookSecret>,
    /// When the endpoint was last set.
    pub updated_at: DateTime<Utc>,
    /// The endpoint's version: the store sets it to 1 when an account's endpoint is first set
    /// and adds 1 every time it is set again, so it only ever increases (0 on an endpoint not
    /// stored yet). A `410 Gone` disables the endpoint only if it still has the version the
    /// attempt was sent to ([`NextStep::DisableEndpoint`](super::NextStep::DisableEndpoint)).
    pub version: u64,
    /// When it was disabled (by its owner, or because it answered `410 Gone`); `None` while
    /// enabled. A disabled endpoint receives nothing until it is set again.
    pub disabled_at: Option<DateTime<Utc>>,
    event_types: Vec<EventType>,
}

impl Endpoint {
    /// An enabled endpoint for `account`, after validating the URL and the number of secrets.
    /// Put the newest secret first.
    ///
    /// The URL must be an absolute `http` or `https` URL written out as `scheme://host...`,
    /// with no user information (`user:password@`), in printable ASCII, of at most
    /// [`MAX_WEBHOOK_URL_LEN`] bytes. It is read with the WHATWG URL parser (the `url` crate,
    /// which the HTTP client uses too) and kept in that parser's serialisation, so what
    /// [`url`](Self::url) returns, what `Debug` shows and where a request goes all agree:
    /// `HTTP://Hooks.Example.com` becomes `http://hooks.example.com/`, and
    /// `https://evil.example\@127.0.0.1/x` (a backslash ends the host, as a slash does) becomes
    /// `https://evil.example/@127.0.0.1/x`.
    ///
    /// Whether the host may be reached is decided when sending, on the addresses it resolves
    /// to (see `HttpTransport`, feature `http`).
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidWebhookUrl`] or [`InvalidInput::WebhookSecretCount`].
    pub fn new(
        account: AccountId,
        url: &str,
        secrets: Vec<WebhookSecret>,
        now: DateTime<Utc>,
    ) -> Result<Self, InvalidInput> {
        let url = parse_url(url)?;
        if secrets.is_empty() || secrets.len() > MAX_WEBHOOK_SECRETS {
            return Err(InvalidInput::WebhookSecretCount {
                max: MAX_WEBHOOK_SECRETS,
            });
        }
        Ok(Self {
            account,
            url: url.into(),
            secrets,
            updated_at: now,
            version: 0,
            disabled_at: None,
            event_types: EventType::ALL.to_vec(),
        })
    }

    /// The same endpoint receiving only `types` (kept in the order of [`EventType::ALL`],
    /// without repeats). Read names from a form or a request with [`EventType::parse_set`].
    ///
    /// # Errors
    ///
    /// [`InvalidInput::NoEventTypes`] for an empty set.
    pub fn with_event_types(
        mut self,
        types: impl IntoIterator<Item = EventType>,
    ) -> Result<Self, InvalidInput> {
        self.event_types = normalize(types)?;
        Ok(self)
    }

    /// The event types it receives, in the order of [`EventType::ALL`].
    pub fn event_types(&self) -> &[EventType] {
        &self.event_types
    }

    /// Whether it takes events of type `event_type` (enabled or not).
    pub fn receives(&self, event_type: EventType) -> bool {
        self.event_types.contains(&event_type)
    }

    /// The URL deliveries are sent to, as the URL parser wrote it out.
    ///
    /// # Security
    ///
    /// The URL may carry a credential (in its path or query); do not log it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The signing secrets, newest first.
    ///
    /// # Security
    ///
    /// Anyone holding a secret can forge this account's webhooks.
    pub fn secrets(&self) -> &[WebhookSecret] {
        &self.secrets
    }

    /// Whether deliveries are sent (not disabled).
    pub fn is_enabled(&self) -> bool {
        self.disabled_at.is_none()
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("account", &self.account)
            .field("url", &RedactedUrl(&self.url))
            .field(
                "secrets",
                &format_args!("[redacted; {}]", self.secrets.len()),
            )
            .field("updated_at", &self.updated_at)
            .field("version", &self.version)
            .field("disabled_at", &self.disabled_at)
            .field("event_types", &self.event_types)
            .finish()
    }
}

/// Shows a URL's scheme and host only; user information, port, path, query and fragment are
/// hidden. The URL is read with the same (WHATWG) parser that the HTTP client uses, so the host
/// shown is the host a request goes to.
pub(crate) struct RedactedUrl<'a>(pub(crate) &'a str);

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parsed = Url::parse(self.0)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        let Some(url) = parsed else {
            return f.write_str("\"[redacted]\"");
        };
        let host = url.host_str().unwrap_or_default();
        let more = !url.username().is_empty()
            || url.password().is_some()
            || url.port().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some();
        let more = if more { "/[redacted]" } else { "" };
        write!(f, "\"{}://{host}{more}\"", url.scheme())
    }
}

/// Parses an endpoint URL: an absolute `http` or `https` URL with a host and no user
/// information, written out in full (`https://` then the host), of printable ASCII, at most
/// [`MAX_WEBHOOK_URL_LEN`] bytes before and after parsing.
///
/// The WHATWG parser (the `url` crate, the one reqwest uses) decides what the URL means, and the
/// endpoint keeps its serialisation: `https://evil.example\@127.0.0.1/x` is a request to
/// `evil.example` for the path `/@127.0.0.1/x`, and is stored, shown and sent as
/// `https://evil.example/@127.0.0.1/x`.
pub(crate) fn parse_url(input: &str) -> Result<Url, InvalidInput> {
    let invalid = || InvalidInput::InvalidWebhookUrl;
    if input.len() > MAX_WEBHOOK_URL_LEN || !input.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    // The WHATWG parser forgives `https:host`, `https:///host` and `https:\host`; an endpoint
    // must spell out `scheme://host`.
    let (scheme, rest) = input.split_once("://").ok_or_else(invalid)?;
    let spelled_out = (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && !rest.starts_with(['/', '\\']);
    if !spelled_out {
        return Err(invalid());
    }
    let url = Url::parse(input).map_err(|_| invalid())?;
    let valid = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.as_str().len() <= MAX_WEBHOOK_URL_LEN;
    if valid {
        Ok(url)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap()
    }

    fn parsed(url: &str) -> Result<String, InvalidInput> {
        parse_url(url).map(String::from)
    }

    #[test]
    fn accepts_http_and_https_urls_with_a_host() {
        for (url, stored) in [
            ("https://hooks.example.com", "https://hooks.example.com/"),
            (
                "https://hooks.example.com/a/b?token=x",
                "https://hooks.example.com/a/b?token=x",
            ),
            (
                "HTTP://Hooks.Example.COM:80/hook",
                "http://hooks.example.com/hook",
            ),
            ("HTTP://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("http://127.1:9/", "http://127.0.0.1:9/"),
            ("http://0x7f.0.0.1/", "http://127.0.0.1/"),
            ("http://2130706433/", "http://127.0.0.1/"),
            ("http://[::1]:9000/x", "http://[::1]:9000/x"),
            ("http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"),
            ("https://example.com/a/../b/./c", "https://example.com/b/c"),
            ("https://example.com/x#frag", "https://example.com/x#frag"),
            (
                "https://example.com/\"<>`",
                "https://example.com/%22%3C%3E%60",
            ),
            ("https://xn--exmple-cua.com/", "https://xn--exmple-cua.com/"),
            // A backslash ends the host, as a slash does (special schemes, WHATWG).
            (
                "https://evil.com\\@127.0.0.1/x",
                "https://evil.com/@127.0.0.1/x",
            ),
        ] {
            assert_eq!(parsed(url).as_deref(), Ok(stored), "{url}");
            assert_eq!(parsed(stored).as_deref(), Ok(stored), "stable: {stored}");
        }
        for url in [
            "",
            "example.com/hook",
            "ftp://example.com/",
            "file:///etc/passwd",
            "javascript://example.com/%0aalert(1)",
            "https://",
            "https:///path",
            "https:////example.com/",
            "https://\\example.com/",
            "https:\\\\example.com/",
            "https:example.com",
            "https:/example.com",
            "https://:443/",
            "https://exa mple.com/",
            "https://example.com/\n",
            "https://exämple.com/",
            "http://[]/",
            "http://[::1/",
            "http://256.0.0.1/",
            "http://example.com:99999/",
            "http://exa%00mple.com/",
            // No user information: it would hide the host from a reader.
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "https://:pw@example.com/",
            "https://127.0.0.1@evil.com/",
        ] {
            assert_eq!(parsed(url), Err(InvalidInput::InvalidWebhookUrl), "{url:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_LEN));
        assert!(parse_url(&long).is_err());
        // Within the limit as written, over it as written out (`"` becomes `%22`).
        let grows = format!("https://example.com/{}", "\"".repeat(700));
        assert!(grows.len() <= MAX_WEBHOOK_URL_LEN);
        assert!(parse_url(&grows).is_err());
    }

    #[test]
    fn the_logged_host_is_the_host_connected_to() {
        let endpoint = Endpoint::new(
            AccountId::new(),
            "https://evil.com\\@127.0.0.1/x",
            vec![secret()],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(endpoint.url(), "https://evil.com/@127.0.0.1/x");
        let shown = format!("{endpoint:?}");
        assert!(shown.contains("\"https://evil.com/[redacted]\""), "{shown}");
        assert!(!shown.contains("127.0.0.1"), "{shown}");
        // The request goes where the HTTP client's parser (the same crate) says.
        assert_eq!(
            Url::parse(endpoint.url()).unwrap().host_str(),
            Some("evil.com")
        );
    }

    #[test]
    fn receives_every_type_unless_told_otherwise() {
        let endpoint = Endpoint::new(
            AccountId::new(),
            "https://example.com/",
            vec![secret()],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(endpoint.event_types(), EventType::ALL);
        let chosen = endpoint
            .clone()
            .with_event_types([EventType::SessionReviewed, EventType::LinkCreated])
            .unwrap();
        assert_eq!(
            chosen.event_types(),
            [EventType::LinkCreated, EventType::SessionReviewed]
        );
        assert!(chosen.receives(EventType::SessionReviewed));
        assert!(!chosen.receives(EventType::LinkRedeemed));
        assert_eq!(
            endpoint.with_event_types([]).unwrap_err(),
            InvalidInput::NoEventTypes
        );
    }

    #[test]
    fn needs_one_to_five_secrets() {
        let account = AccountId::new();
        let now = Utc::now();
        let url = "https://example.com/";
        assert!(Endpoint::new(account, url, vec![], now).is_err());
        assert!(Endpoint::new(account, url, vec![secret(); 5], now).is_ok());
        assert_eq!(
            Endpoint::new(account, url, vec![secret(); 6], now).unwrap_err(),
            InvalidInput::WebhookSecretCount { max: 5 }
        );
    }

    #[test]
    fn debug_shows_only_scheme_and_host() {
        let now = Utc::now();
        for (url, shown) in [
            ("https://example.com", "\"https://example.com\""),
            (
                "https://example.com/t0k3n",
                "\"https://example.com/[redacted]\"",
            ),
            (
                "https://example.com?key=t0k3n",
                "\"https://example.com/[redacted]\"",
            ),
            (
                "https://example.com:8443",
                "\"https://example.com/[redacted]\"",
            ),
            ("http://[::1]:9/t0k3n", "\"http://[::1]/[redacted]\""),
            (
                "HTTPS://EXAMPLE.com/#t0k3n",
                "\"https://example.com/[redacted]\"",
            ),
        ] {
            let endpoint =
                Endpoint::new(AccountId::new(), url, vec![secret(), secret()], now).unwrap();
            let text = format!("{endpoint:?}");
            assert!(text.contains(shown), "{text}");
            assert!(!text.contains("t0k3n"), "{text}");
            assert!(!text.contains("MfKQ"), "{text}");
            assert!(text.contains("[redacted; 2]"), "{text}");
        }
    }

    #[test]
    fn redacts_any_text() {
        for (text, shown) in [
            ("not a url t0k3n", "\"[redacted]\""),
            ("ftp://example.com/t0k3n", "\"[redacted]\""),
            (
                "https://u:t0k3n@example.com",
                "\"https://example.com/[redacted]\"",
            ),
            (
                "https://evil.com\\@127.0.0.1/t0k3n",
                "\"https://evil.com/[redacted]\"",
            ),
        ] {
            assert_eq!(format!("{:?}", RedactedUrl(text)), shown, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn urls_from_any_text(text in proptest::prelude::any::<String>()) {
            if let Ok(url) = parse_url(&text) {
                proptest::prop_assert!(url.as_str().len() <= MAX_WEBHOOK_URL_LEN);
                proptest::prop_assert_eq!(parsed(url.as_str()), Ok(url.to_string()));
            }
        }

        #[test]
        fn url_like_text_is_shown_with_the_host_it_goes_to(
            text in "(?i:https?)://[a-z0-9.:@\\\\/\\[\\]%?#-]{0,40}"
        ) {
            if let Ok(url) = parse_url(&text) {
                let host = url.host_str().unwrap_or_default();
                let shown = format!("{:?}", RedactedUrl(url.as_str()));
                let prefix = format!("\"{}://{host}", url.scheme());
                proptest::prop_assert!(shown.starts_with(&prefix), "{} {}", shown, host);
                proptest::prop_assert!(!host.is_empty());
                proptest::prop_assert!(url.username().is_empty());
            }
        }
    }
}
