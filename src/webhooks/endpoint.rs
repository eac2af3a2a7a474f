//! An account's webhook endpoint: where its events go and the secrets that sign them.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::webhooks::WebhookSecret;
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
/// Both the URL and the secrets are confidential: a URL often carries a token in its path or
/// query. `Debug` prints only the URL's scheme and host, and no secret material.
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
    /// When it was disabled (by its owner, or because it answered `410 Gone`); `None` while
    /// enabled. A disabled endpoint receives nothing until it is set again.
    pub disabled_at: Option<DateTime<Utc>>,
}

impl Endpoint {
    /// An enabled endpoint for `account`, after validating the URL and the number of secrets.
    /// Put the newest secret first.
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
        validate_url(url)?;
        if secrets.is_empty() || secrets.len() > MAX_WEBHOOK_SECRETS {
            return Err(InvalidInput::WebhookSecretCount {
                max: MAX_WEBHOOK_SECRETS,
            });
        }
        Ok(Self {
            account,
            url: url.to_owned(),
            secrets,
            updated_at: now,
            disabled_at: None,
        })
    }

    /// The URL deliveries are sent to.
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
            .field("disabled_at", &self.disabled_at)
            .finish()
    }
}

/// Shows a URL's scheme and host only; user information, port, path and query are hidden.
pub(crate) struct RedactedUrl<'a>(pub(crate) &'a str);

impl fmt::Debug for RedactedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match split_url(self.0) {
            Some((scheme, host, rest)) => {
                let more = if rest.is_empty() { "" } else { "/[redacted]" };
                write!(f, "\"{scheme}://{host}{more}\"")
            }
            None => f.write_str("\"[redacted]\""),
        }
    }
}

/// `(scheme, host, everything after the host)` of an `http`/`https` URL.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        // An IPv6 literal: up to and including the bracket.
        &host_port[..host_port.find(']').map_or(host_port.len(), |i| i + 1)]
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let had_port = host.len() < host_port.len();
    let rest = if had_port || host_port.len() < authority.len() {
        // Hide user information and the port as "the rest", marked as redacted.
        if after.is_empty() {
            ":"
        } else {
            after
        }
    } else {
        after
    };
    Some((scheme, host, rest))
}

fn validate_url(url: &str) -> Result<(), InvalidInput> {
    let well_formed = url.len() <= MAX_WEBHOOK_URL_LEN
        && url.bytes().all(|b| b.is_ascii_graphic())
        && split_url(url).is_some()
        && authority_is_well_formed(url);
    if well_formed {
        Ok(())
    } else {
        Err(InvalidInput::InvalidWebhookUrl)
    }
}

/// Whether the authority of a URL (between `://` and the path) is `[user@]host[:port]`, with a
/// host that is either a non-empty name without brackets or a closed IPv6 literal of hex digits,
/// `:` and `.`, and a port (possibly empty) of digits up to 65535.
fn authority_is_well_formed(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host_ok, port) = match host_port.strip_prefix('[') {
        Some(literal) => {
            let Some((ip, port)) = literal.split_once(']') else {
                return false;
            };
            let ip_chars = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
            (!ip.is_empty() && ip.bytes().all(ip_chars), port)
        }
        None => {
            let (name, port) = host_port.split_at(host_port.find(':').unwrap_or(host_port.len()));
            (!name.is_empty() && !name.contains(['[', ']']), port)
        }
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            digits.is_empty()
                || (digits.bytes().all(|b| b.is_ascii_digit()) && digits.parse::<u16>().is_ok())
        }
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> WebhookSecret {
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap()
    }

    #[test]
    fn accepts_http_and_https_urls_with_a_host() {
        for url in [
            "https://hooks.example.com",
            "https://hooks.example.com/a/b?token=x",
            "HTTP://127.0.0.1:8080/hook",
            "https://user:pw@example.com/",
            "http://[::1]:9000/x",
        ] {
            assert!(validate_url(url).is_ok(), "{url}");
        }
        for url in [
            "",
            "example.com/hook",
            "ftp://example.com/",
            "https://",
            "https:///path",
            "https://:443/",
            "https://exa mple.com/",
            "https://example.com/\n",
            "https://exämple.com/",
            "http://[]/",
        ] {
            assert_eq!(
                validate_url(url),
                Err(InvalidInput::InvalidWebhookUrl),
                "{url:?}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL_LEN));
        assert!(validate_url(&long).is_err());
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
                "https://u:t0k3n@example.com",
                "\"https://example.com/[redacted]\"",
            ),
            (
                "https://example.com:8443",
                "\"https://example.com/[redacted]\"",
            ),
            ("http://[::1]:9/t0k3n", "\"http://[::1]/[redacted]\""),
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
}
