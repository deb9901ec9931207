//! Checks that a lockfile our binary wrote conforms to the published JSON Schema.

use std::path::Path;

/// Panics, naming every violation, unless `text` (an `aisupply.lock`) validates against
/// `lockfiles/aisupply.lock.v1.schema.json`.
pub fn assert_valid_lockfile(text: &str) {
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("lockfiles/aisupply.lock.v1.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&schema_path).expect("read the schema"))
            .expect("the schema is JSON");
    let instance: serde_json::Value = toml::from_str(text).expect("the lockfile is TOML");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "lockfile violates the schema:\n{}\n---\n{text}",
        errors.join("\n")
    );
}
