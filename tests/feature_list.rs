//! The feature list is written once, in Cargo.toml (its `## ` comments are rendered into the
//! crate docs by `document-features`); the README's feature table must name exactly the same
//! features, so the two cannot drift apart.

use std::collections::BTreeSet;

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/{name}", env!("CARGO_MANIFEST_DIR"))).expect(name)
}

/// The features of Cargo.toml's `[features]` table (not `default`), each with whether a `## `
/// doc comment stands right above it.
fn cargo_features() -> Vec<(String, bool)> {
    let manifest = read("Cargo.toml");
    let section = manifest
        .split("\n[features]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [features] table");
    let mut features = Vec::new();
    let mut documented = false;
    for line in section.lines() {
        let line = line.trim();
        if line.starts_with("## ") {
            documented = true;
        } else if let Some((name, _)) = line.split_once(" = ") {
            if name != "default" {
                features.push((name.to_owned(), documented));
            }
            documented = false;
        }
    }
    features
}

/// The backticked names in the first column of the README's `## Features` table.
fn readme_features() -> BTreeSet<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## Features\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Features section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name.to_owned()))
        .collect()
}

#[test]
fn the_readme_table_names_exactly_the_cargo_features_and_each_is_documented() {
    let features = cargo_features();
    assert!(features.len() >= 5, "parsed the features: {features:?}");
    for (name, documented) in &features {
        assert!(
            documented,
            "feature `{name}` has no `## ` comment in Cargo.toml"
        );
    }
    let cargo: BTreeSet<String> = features.into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        readme_features(),
        cargo,
        "README's feature table and Cargo.toml's features"
    );
}
