//! Link URLs: a configured base plus a link token.

use std::fmt;
use std::str::FromStr;

use super::TokenError;
use crate::InvalidInput;

/// The longest base URL accepted, in bytes.
const MAX_BASE_LEN: usize = 1024;

/// The base URL of link URLs, such as `https://verify.example.com/l/`: a link's URL is the base
/// followed by its token.
///
/// The base is an absolute `https` or `http` URL with a host, no query and no fragment, made
/// of printable ASCII; a missing final `/` is added. Use `https` in production: a link URL is
/// a capability.
///
/// # Examples
///
/// ```
/// use magic_link::tokens::{LinkBase, token_from_url};
///
/// let base = LinkBase::new("https://verify.example.com/l")?;
/// assert_eq!(base.as_str(), "https://verify.example.com/l/");
/// let url = base.url("AQAAAAE");
/// assert_eq!(url, "https://verify.example.com/l/AQAAAAE");
/// assert_eq!(token_from_url(&url), Ok("AQAAAAE"));
/// # Ok::<(), magic_link::InvalidInput>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LinkBase(String);

impl LinkBase {
    /// Validates a base URL.
    ///
    /// # Errors
    ///
    /// [`InvalidInput::InvalidLinkBase`] unless `base` is an absolute `https://` or `http://`
    /// URL with a host, without query or fragment, of printable ASCII and at most 1024 bytes.
    pub fn new(base: impl Into<String>) -> Result<Self, InvalidInput> {
        let mut base = base.into();
        let rest = strip_prefix_ignore_case(&base, "https://")
            .or_else(|| strip_prefix_ignore_case(&base, "http://"))
            .ok_or(InvalidInput::InvalidLinkBase)?;
        let host = rest.split('/').next().unwrap_or_default();
        let bad_char = |b: u8| !b.is_ascii_graphic() || b"?#\"<>\\^`{|}".contains(&b);
        if host.is_empty() || host.starts_with(['@', ':']) || base.bytes().any(bad_char) {
            return Err(InvalidInput::InvalidLinkBase);
        }
        if !base.ends_with('/') {
            base.push('/');
        }
        if base.len() > MAX_BASE_LEN {
            return Err(InvalidInput::InvalidLinkBase);
        }
        Ok(Self(base))
    }

    /// The base, ending with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of a link: the base followed by its token.
    pub fn url(&self, token: &str) -> String {
        let mut url = String::with_capacity(self.0.len() + token.len());
        url.push_str(&self.0);
        url.push_str(token);
        url
    }
}

impl fmt::Debug for LinkBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkBase({})", self.0)
    }
}

impl fmt::Display for LinkBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LinkBase {
    type Err = InvalidInput;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The token in a link URL or path: its last path segment, with any query (`?...`),
/// fragment (`#...`) and trailing `/` removed.
///
/// Accepts a full URL (`https://verify.example.com/l/TOKEN?utm_source=mail`), a path
/// (`/l/TOKEN`) or the bare token, of any length. It only extracts; verify the result with
/// [`LinkToken::verify`](crate::tokens::LinkToken::verify) (or
/// [`PersonalToken::verify`](crate::tokens::PersonalToken::verify)) or pass it to
/// [`MagicLinks::inspect`](crate::MagicLinks::inspect).
///
/// # Errors
///
/// [`TokenError::Malformed`] if there is no path segment to take.
pub fn token_from_url(url: &str) -> Result<&str, TokenError> {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let path = url[..end].trim_end_matches('/');
    let token = path.rsplit('/').next().unwrap_or_default();
    if token.is_empty() || (token.ends_with(':') && path.len() == token.len()) {
        return Err(TokenError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_validation() {
        for good in [
            "https://verify.example.com/l/",
            "https://verify.example.com/l",
            "https://verify.example.com",
            "HTTPS://verify.example.com/a/b/",
            "http://localhost:8080/l/",
            "https://[::1]:8443/l/",
        ] {
            let base = LinkBase::new(good).unwrap();
            assert!(base.as_str().ends_with('/'), "{good}");
            assert!(base.as_str().starts_with(good), "{good}");
        }
        for bad in [
            "",
            "verify.example.com/l/",
            "ftp://verify.example.com/l/",
            "https://",
            "https:///l/",
            "https://verify.example.com/l/?x=1",
            "https://verify.example.com/l/#top",
            "https://verify.example.com/a b/",
            "https://verify.example.com/l/\n",
            "https://vérify.example.com/l/",
            "javascript:alert(1)//",
        ] {
            assert_eq!(
                LinkBase::new(bad),
                Err(InvalidInput::InvalidLinkBase),
                "{bad:?}"
            );
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_BASE_LEN));
        assert!(LinkBase::new(long).is_err());
    }

    #[test]
    fn extraction() {
        for (url, token) in [
            ("https://verify.example.com/l/TOKEN", "TOKEN"),
            ("https://verify.example.com/l/TOKEN/", "TOKEN"),
            ("https://verify.example.com/l/TOKEN?utm=1&b=/x", "TOKEN"),
            ("https://verify.example.com/l/TOKEN#/frag", "TOKEN"),
            ("/l/TOKEN", "TOKEN"),
            ("l/TOKEN", "TOKEN"),
            ("TOKEN", "TOKEN"),
            ("TOKEN?x", "TOKEN"),
        ] {
            assert_eq!(token_from_url(url), Ok(token), "{url}");
        }
        for bad in ["", "/", "https://", "?TOKEN", "/?x=TOKEN", "https:"] {
            assert_eq!(token_from_url(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }

    /// The longest personal link token, 232 characters, goes into a URL and comes out whole.
    #[test]
    fn longest_personal_token() {
        use crate::tokens::{Keyring, PersonalToken, SigningKey};
        use crate::{LinkId, Reference};

        let keys = Keyring::new(1, SigningKey::from_bytes([7; 32]));
        let reference = Reference::new("é".repeat(64)).unwrap();
        let claims = PersonalToken::new(LinkId::new(), None, reference);
        let token = claims.sign(&keys);
        assert_eq!(token.len(), PersonalToken::MAX_LEN);
        assert_eq!(token.len(), 232);
        let base = LinkBase::new("https://verify.example.com/p/").unwrap();
        let url = base.url(&token);
        assert_eq!(url.len(), base.as_str().len() + 232);
        for shape in [
            url.clone(),
            format!("{url}?utm_source=mail#top"),
            format!("{url}/"),
            format!("/p/{token}"),
        ] {
            let extracted = token_from_url(&shape).unwrap();
            assert_eq!(extracted, token);
            let now = chrono::DateTime::UNIX_EPOCH;
            assert_eq!(
                PersonalToken::verify(extracted, &keys, now),
                Ok(claims.clone())
            );
        }
    }
}
