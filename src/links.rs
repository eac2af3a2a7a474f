//! Magic Links: their settings, validation and status.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::returns::ReturnUrl;
use crate::{AccountId, InvalidInput, LinkId, Metadata, Reference};

/// The longest language tag accepted, in bytes.
const MAX_LANGUAGE_LEN: usize = 64;

/// The steps of the verification flow a link starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    /// An identity document only.
    Document,
    /// A selfie only.
    Selfie,
    /// An identity document, then a selfie.
    DocumentAndSelfie,
}

impl Flow {
    /// Whether the flow asks for an identity document.
    pub fn has_document(self) -> bool {
        matches!(self, Self::Document | Self::DocumentAndSelfie)
    }

    /// Whether the flow asks for a selfie.
    pub fn has_selfie(self) -> bool {
        matches!(self, Self::Selfie | Self::DocumentAndSelfie)
    }
}

/// How many times a link can be redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageLimit {
    /// One redemption.
    Single,
    /// `N >= 1` redemptions.
    Multi(NonZeroU32),
    /// Until deactivated or expired.
    Unlimited,
}

impl UsageLimit {
    /// A multi-use limit of `uses` redemptions.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::ZeroUses`] when `uses` is zero.
    pub fn multi(uses: u32) -> Result<Self, InvalidInput> {
        NonZeroU32::new(uses)
            .map(Self::Multi)
            .ok_or(InvalidInput::ZeroUses)
    }

    /// The maximum number of redemptions, or `None` for unlimited.
    pub fn max_uses(self) -> Option<u64> {
        match self {
            Self::Single => Some(1),
            Self::Multi(n) => Some(u64::from(n.get())),
            Self::Unlimited => None,
        }
    }
}

/// A well-formed BCP 47 language tag (RFC 5646), such as `en`, `lt` or `pt-BR`.
///
/// Cloning is cheap: sessions share their link's tag.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Language(Arc<str>);

impl Language {
    /// Parses and validates a language tag.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidLanguage`] when `tag` is not a well-formed BCP 47 tag or is longer
    /// than 64 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use magic_link::Language;
    /// assert_eq!(Language::parse("pt-BR").unwrap().as_str(), "pt-BR");
    /// assert!(Language::parse("not a tag").is_err());
    /// ```
    pub fn parse(tag: &str) -> Result<Self, InvalidInput> {
        if tag.len() > MAX_LANGUAGE_LEN {
            return Err(InvalidInput::InvalidLanguage);
        }
        oxilangtag::LanguageTag::parse(tag)
            .map(|t| Self(Arc::from(t.as_str())))
            .map_err(|_| InvalidInput::InvalidLanguage)
    }

    /// English, the default.
    pub fn english() -> Self {
        Self(Arc::from("en"))
    }

    /// The tag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag, lowercased (`pt` for `pt-BR`).
    pub fn primary(&self) -> String {
        self.0
            .split('-')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

impl Default for Language {
    fn default() -> Self {
        Self::english()
    }
}

impl fmt::Debug for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Language({})", self.0)
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Language {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Language {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tag = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&tag).map_err(serde::de::Error::custom)
    }
}

/// The settings of a new link, validated by [`Link::new`].
///
/// # Examples
///
/// ```
/// use magic_link::{Flow, NewLink, UsageLimit};
/// let spec = NewLink::new("Onboarding", Flow::DocumentAndSelfie)
///     .limit(UsageLimit::multi(3).unwrap())
///     .language("lt");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// Internal name, shown on the owner's dashboard; never on a page a visitor sees (those
    /// show the account's display name).
    pub name: String,
    /// The verification steps.
    pub flow: Flow,
    /// The usage limit (default: single-use).
    #[serde(default = "default_limit")]
    pub limit: UsageLimit,
    /// When the link stops working, if ever.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The interface language, as a BCP 47 tag (default: `en`).
    #[serde(default = "default_language")]
    pub language: String,
    /// The owner's id for whom or what the link is (see [`Reference`]).
    #[serde(default)]
    pub reference: Option<Reference>,
    /// The owner's key-value data (see [`Metadata`]).
    #[serde(default)]
    pub metadata: Metadata,
    /// Where the flow page sends the person when the session completes or they quit, with
    /// signed parameters (see [`returns`](crate::returns)). Its origin must be one the account
    /// allows.
    #[serde(default)]
    pub return_url: Option<ReturnUrl>,
    /// Where a visitor of a used-up, expired or deactivated link is sent instead of the
    /// built-in page. Its origin must be one the account allows.
    #[serde(default)]
    pub dead_link_url: Option<ReturnUrl>,
}

fn default_limit() -> UsageLimit {
    UsageLimit::Single
}

fn default_language() -> String {
    "en".to_owned()
}

impl NewLink {
    /// A single-use link in English that never expires.
    pub fn new(name: impl Into<String>, flow: Flow) -> Self {
        Self {
            name: name.into(),
            flow,
            limit: default_limit(),
            expires_at: None,
            language: default_language(),
            reference: None,
            metadata: Metadata::new(),
            return_url: None,
            dead_link_url: None,
        }
    }

    /// Sets the return URL (see [`returns`](crate::returns)).
    pub fn return_url(mut self, url: ReturnUrl) -> Self {
        self.return_url = Some(url);
        self
    }

    /// Sets the dead-link URL.
    pub fn dead_link_url(mut self, url: ReturnUrl) -> Self {
        self.dead_link_url = Some(url);
        self
    }

    /// Sets the owner's reference: their id for whom or what the link is.
    pub fn reference(mut self, reference: Reference) -> Self {
        self.reference = Some(reference);
        self
    }

    /// Sets the owner's metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the usage limit.
    pub fn limit(mut self, limit: UsageLimit) -> Self {
        self.limit = limit;
        self
    }

    /// Sets the expiry time.
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the interface language (validated by [`Link::new`]).
    pub fn language(mut self, tag: impl Into<String>) -> Self {
        self.language = tag.into();
        self
    }
}

/// Where a link stands, as a landing page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    /// It can be redeemed (credits permitting).
    Active,
    /// Deactivated by its owner (final).
    Deactivated,
    /// Past its expiry time.
    Expired,
    /// At its usage limit.
    Exhausted,
}

/// A Magic Link. Its limit and expiry are fixed at creation; the only later change is
/// deactivation, which is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The link's id; the link token carries it.
    pub id: LinkId,
    /// The owner.
    pub account: AccountId,
    /// Internal name.
    pub name: String,
    /// The verification steps.
    pub flow: Flow,
    /// The usage limit.
    pub limit: UsageLimit,
    /// When the link stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// The interface language.
    pub language: Language,
    /// Redemptions so far.
    pub uses: u64,
    /// When the link was created.
    pub created_at: DateTime<Utc>,
    /// When the link was deactivated, if it was.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// The owner's id for whom or what the link is; `None` when none was set, and after
    /// redaction. Absent from JSON while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<Reference>,
    /// The owner's key-value data; empty after redaction. Absent from JSON while empty.
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    /// The return URL, if any (see [`NewLink::return_url`]). Absent from JSON while `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_url: Option<ReturnUrl>,
    /// The dead-link URL, if any (see [`NewLink::dead_link_url`]). Absent from JSON while
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_link_url: Option<ReturnUrl>,
    /// When the link's reference and metadata were erased
    /// ([`MagicLinks::redact_link`](crate::MagicLinks::redact_link)). Absent from JSON while
    /// `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_at: Option<DateTime<Utc>>,
}

impl Link {
    /// The longest link name accepted, in characters.
    pub const MAX_NAME_CHARS: usize = 200;

    /// Validates `spec` and builds a new, unused link.
    ///
    /// # Errors
    ///
    /// [`InvalidInput`] for an empty, overlong or control-character name, a multi-use limit of
    /// zero, an expiry not after `now`, or a malformed language tag.
    pub fn new(
        id: LinkId,
        account: AccountId,
        spec: NewLink,
        now: DateTime<Utc>,
    ) -> Result<Self, InvalidInput> {
        let name = spec.name.trim();
        if name.is_empty() {
            return Err(InvalidInput::EmptyName);
        }
        if name.chars().count() > Link::MAX_NAME_CHARS {
            return Err(InvalidInput::NameTooLong {
                max: Link::MAX_NAME_CHARS,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidInput::NameControlCharacter);
        }
        if spec.expires_at.is_some_and(|at| at <= now) {
            return Err(InvalidInput::ExpiryInPast);
        }
        let language = Language::parse(&spec.language)?;
        Ok(Self {
            id,
            account,
            name: name.to_owned(),
            flow: spec.flow,
            limit: spec.limit,
            expires_at: spec.expires_at,
            language,
            uses: 0,
            created_at: now,
            deactivated_at: None,
            reference: spec.reference,
            metadata: spec.metadata,
            return_url: spec.return_url,
            dead_link_url: spec.dead_link_url,
            redacted_at: None,
        })
    }

    /// Redemptions left, or `None` for unlimited.
    pub fn remaining(&self) -> Option<u64> {
        self.limit
            .max_uses()
            .map(|max| max.saturating_sub(self.uses))
    }

    /// Whether the link is past its expiry at `now` (expired at exactly `expires_at`).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// The link's status at `now`. Deactivation outranks expiry, which outranks exhaustion.
    pub fn status(&self, now: DateTime<Utc>) -> LinkStatus {
        if self.deactivated_at.is_some() {
            LinkStatus::Deactivated
        } else if self.is_expired(now) {
            LinkStatus::Expired
        } else if self.remaining() == Some(0) {
            LinkStatus::Exhausted
        } else {
            LinkStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn build(spec: NewLink) -> Result<Link, InvalidInput> {
        Link::new(LinkId::new(), AccountId::new(), spec, now())
    }

    #[test]
    fn validates_every_setting() {
        let ok = NewLink::new("Onboarding", Flow::Document);
        assert_eq!(build(ok.clone()).unwrap().name, "Onboarding");
        let named = |n: &str| NewLink {
            name: n.into(),
            ..ok.clone()
        };
        assert_eq!(build(named("  ")), Err(InvalidInput::EmptyName));
        assert_eq!(
            build(named(&"x".repeat(Link::MAX_NAME_CHARS + 1))),
            Err(InvalidInput::NameTooLong {
                max: Link::MAX_NAME_CHARS
            })
        );
        assert!(build(named(&"é".repeat(Link::MAX_NAME_CHARS))).is_ok());
        assert_eq!(
            build(named("a\u{0}b")),
            Err(InvalidInput::NameControlCharacter)
        );
        assert_eq!(UsageLimit::multi(0), Err(InvalidInput::ZeroUses));
        assert_eq!(
            build(ok.clone().expires_at(now())),
            Err(InvalidInput::ExpiryInPast)
        );
        assert!(build(ok.clone().expires_at(now() + Duration::seconds(1))).is_ok());
        for bad in ["", "english!", "en--US", "e", &"a".repeat(65)] {
            assert_eq!(
                build(ok.clone().language(bad)),
                Err(InvalidInput::InvalidLanguage),
                "{bad:?}"
            );
        }
        for good in ["en", "lt", "pt-BR", "zh-Hant-TW", "sr-Latn"] {
            assert_eq!(
                build(ok.clone().language(good)).unwrap().language.as_str(),
                good
            );
        }
    }

    #[test]
    fn status_precedence_and_remaining() {
        let mut link = build(
            NewLink::new("x", Flow::Selfie)
                .limit(UsageLimit::multi(2).unwrap())
                .expires_at(now() + Duration::hours(1)),
        )
        .unwrap();
        assert_eq!(link.status(now()), LinkStatus::Active);
        assert_eq!(link.remaining(), Some(2));
        link.uses = 2;
        assert_eq!(link.status(now()), LinkStatus::Exhausted);
        assert_eq!(link.status(now() + Duration::hours(1)), LinkStatus::Expired);
        link.deactivated_at = Some(now());
        assert_eq!(link.status(now()), LinkStatus::Deactivated);
    }

    #[test]
    fn language_serde_validates() {
        let lang: Language = serde_json::from_str("\"pt-BR\"").unwrap();
        assert_eq!(lang.primary(), "pt");
        assert!(serde_json::from_str::<Language>("\"no such tag\"").is_err());
        assert_eq!(serde_json::to_string(&lang).unwrap(), "\"pt-BR\"");
    }
}
