//! Untrusted input never panics: arbitrary bytes into every parser and validator.

use chrono::DateTime;
use magic_link::{AccountId, Flow, IdempotencyKey, Language, Link, LinkId, NewLink, SessionTtl};
use proptest::prelude::*;

proptest! {
    #[test]
    fn references(text in any::<String>(), bytes in any::<Vec<u8>>()) {
        if let Ok(r) = magic_link::Reference::new(&text) {
            prop_assert_eq!(r.as_str(), text.as_str());
            prop_assert!(!text.is_empty() && text.len() <= magic_link::Reference::MAX_LEN);
            prop_assert!(!text.chars().any(char::is_control));
        }
        let _ = magic_link::Reference::from_bytes(&bytes);
    }

    #[test]
    fn metadata(pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..60)) {
        if let Ok(m) = magic_link::Metadata::from_pairs(pairs.clone()) {
            prop_assert!(m.len() <= magic_link::Metadata::MAX_KEYS);
            for (k, v) in m.iter() {
                prop_assert!(!k.is_empty() && k.chars().count() <= magic_link::Metadata::MAX_KEY_CHARS);
                prop_assert!(v.chars().count() <= magic_link::Metadata::MAX_VALUE_CHARS);
            }
        }
    }

    #[test]
    fn json_account_profiles(bytes in any::<Vec<u8>>()) {
        if let Ok(profile) = serde_json::from_slice::<magic_link::AccountProfile>(&bytes) {
            let _ = profile.validate();
        }
    }

    #[test]
    fn return_secrets(text in any::<String>()) {
        let _ = magic_link::returns::ReturnSecret::parse(&text);
    }

    #[test]
    fn language_tags(tag in any::<String>()) {
        if let Ok(lang) = Language::parse(&tag) {
            prop_assert_eq!(lang.as_str(), tag.as_str());
            prop_assert!(tag.len() <= 64);
        }
    }

    #[test]
    fn language_tags_from_tag_like_text(tag in "[a-zA-Z0-9-]{0,70}") {
        let _ = Language::parse(&tag);
    }

    #[test]
    fn idempotency_keys(key in any::<String>()) {
        if let Ok(k) = IdempotencyKey::new(key.clone()) {
            prop_assert_eq!(k.as_str(), key.as_str());
        }
    }

    #[test]
    fn link_settings(name in any::<String>(), lang in any::<String>(), expiry in any::<i64>()) {
        let now = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
        let mut spec = NewLink::new(name, Flow::Selfie).language(lang);
        spec.expires_at = DateTime::from_timestamp(expiry % 10_000_000_000, 0);
        if let Ok(link) = Link::new(LinkId::new(), AccountId::new(), spec, now) {
            prop_assert!(!link.name.is_empty());
            prop_assert!(link.expires_at.is_none_or(|at| at > now));
        }
    }

    #[test]
    fn json_link_settings(bytes in any::<Vec<u8>>()) {
        let _ = serde_json::from_slice::<NewLink>(&bytes);
        let _ = serde_json::from_slice::<SessionTtl>(&bytes);
    }

    #[test]
    fn ids(text in any::<String>()) {
        let _ = text.parse::<LinkId>();
    }
}

#[test]
fn json_settings_reject_unknown_fields_and_bad_values() {
    let ok = r#"{"name":"x","flow":"selfie","limit":{"multi":3},"language":"lt"}"#;
    assert!(serde_json::from_str::<NewLink>(ok).is_ok());
    for bad in [
        r#"{"name":"x","flow":"selfie","admin":true}"#,
        r#"{"name":"x","flow":"selfie","limit":{"multi":0}}"#,
        r#"{"name":"x","flow":"retina"}"#,
    ] {
        assert!(serde_json::from_str::<NewLink>(bad).is_err(), "{bad}");
    }
}
