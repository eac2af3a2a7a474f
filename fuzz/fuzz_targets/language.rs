//! `Language::parse` (and its `FromStr` and serde forms) on arbitrary text.
//!
//! Properties: parsing returns `Ok` or an `InvalidInput`; a tag that parses is kept as written,
//! is at most 64 bytes, has a non-empty primary subtag, parses in any letter case (BCP 47 tags
//! are case-insensitive), and survives a JSON round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magic_link::Language;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Language::parse(text);
    assert_eq!(text.parse::<Language>(), parsed);
    let json = serde_json::to_string(text).expect("a string serialises");
    assert_eq!(
        serde_json::from_str::<Language>(&json).ok(),
        parsed.clone().ok()
    );
    if let Ok(lang) = parsed {
        assert_eq!(lang.as_str(), text);
        assert!(text.len() <= 64);
        assert!(!lang.primary().is_empty(), "{text:?}");
        assert_eq!(lang.primary(), lang.primary().to_ascii_lowercase());
        for other in [text.to_ascii_lowercase(), text.to_ascii_uppercase()] {
            assert!(
                Language::parse(&other).is_ok(),
                "{text:?} parses, {other:?} does not"
            );
        }
        let json = serde_json::to_string(&lang).expect("a tag serialises");
        assert_eq!(serde_json::from_str::<Language>(&json).ok(), Some(lang));
    }
});
