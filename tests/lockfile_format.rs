//! The lockfile format's documentation: the JSON Schema and the commented examples in
//! `lockfiles/` agree with what this build reads.

// Helpers of tests fail the test on anything unexpected, as the tests themselves do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use aisupply::lock::LockFile;

fn examples() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("lockfiles/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_parses_and_validates_against_the_schema() {
    let files = examples();
    assert!(!files.is_empty(), "lockfiles/examples holds examples");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        LockFile::parse(&path, &text).unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
        common::assert_valid_lockfile(&text);
    }
}

#[test]
fn the_schema_rejects_what_the_reader_rejects() {
    let text = std::fs::read_to_string(&examples()[0]).unwrap();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("lockfiles/aisupply.lock.v1.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let bad = [
        text.replace("version = 1", "version = 2"),
        text.replacen("digest = \"sha256:", "digest = \"sha256:X", 1),
        text.replacen("media-type", "mediaType", 1),
        text.replacen("\nname = \"ollama\"\n", "\n", 1),
    ];
    for variant in bad {
        let instance: serde_json::Value = toml::from_str(&variant).unwrap();
        assert!(!validator.is_valid(&instance), "schema accepts:\n{variant}");
        assert!(
            LockFile::parse(Path::new("x.lock"), &variant).is_err(),
            "reader accepts:\n{variant}"
        );
    }
}
