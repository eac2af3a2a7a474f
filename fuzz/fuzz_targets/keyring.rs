//! `Keyring::parse` (and its `FromStr`) on arbitrary text.
//!
//! Properties: parsing returns `Ok` or a `KeyringError`; a parsed keyring holds 1 to
//! `MAX_KEYS` keys, newest first, and signs with the highest id; its export parses back to the
//! same export; neither its `Debug` nor the error's text shows key material.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magic_link::tokens::{Keyring, MAX_KEYS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Keyring::parse(text);
    assert_eq!(
        text.parse::<Keyring>()
            .map(|k| k.export().expose_secret().to_owned())
            .ok(),
        parsed
            .as_ref()
            .ok()
            .map(|k| k.export().expose_secret().to_owned())
    );
    match parsed {
        Ok(keys) => {
            let ids: Vec<u32> = keys.key_ids().collect();
            assert!(!ids.is_empty() && ids.len() <= MAX_KEYS, "{ids:?}");
            assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
            assert_eq!(keys.signing_key_id(), ids[0]);
            assert!(ids.iter().all(|&id| keys.key(id).is_some()));

            let export = keys.export();
            let again = Keyring::parse(export.expose_secret()).expect("an export parses");
            assert_eq!(again.export().expose_secret(), export.expose_secret());

            let shown = format!("{keys:?}");
            for entry in export.expose_secret()["mlk1:".len()..].split(',') {
                let (_, key) = entry.split_once('.').expect("id.key");
                assert!(!shown.contains(key), "{shown}");
            }
        }
        Err(err) => {
            let shown = format!("{err} {err:?}");
            // A key is 43 characters: no run of 43 input characters appears in the error.
            if let Some(window) = text
                .as_bytes()
                .windows(43)
                .find(|w| std::str::from_utf8(w).is_ok_and(|w| shown.contains(w)))
            {
                panic!("{shown} shows input {window:?}");
            }
        }
    }
});
