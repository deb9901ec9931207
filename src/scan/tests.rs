//! Tests of the `[scan]` config and of digest binding.

use std::path::{Path, PathBuf};

use super::*;
use crate::config::ConfigError;
use crate::lock::{LockedImage, LockedManifest};
use crate::reference::Reference;

const INDEX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const AMD64: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "sha256:dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";

fn config(scan: &str) -> Result<Config, ConfigError> {
    let text = format!("[[image]]\nname = \"app\"\nref = \"registry.example/app:1\"\n{scan}");
    Config::parse(Path::new("aisupply.toml"), &text)
}

fn invalid_line(scan: &str) -> (usize, String) {
    match config(scan).unwrap_err() {
        ConfigError::Invalid { line, message, .. } => (line, message),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_scan_policy_defaults_to_fail_on_high() {
    let policy = config("[scan]\n").unwrap().scan.unwrap();
    assert_eq!(policy, ScanPolicy::default());
    assert_eq!(policy.fail_on, Severity::High);
}

#[test]
fn ignore_unfixed_ignores_every_state_but_fixed() {
    let policy = config("[scan]\nignore-unfixed = true\n")
        .unwrap()
        .scan
        .unwrap();
    assert_eq!(policy.ignore_fix_states, FixState::UNFIXED);
    let policy = config("[scan]\nignore-unfixed = false\n")
        .unwrap()
        .scan
        .unwrap();
    assert!(policy.ignore_fix_states.is_empty());
}

#[test]
fn ignore_fix_states_are_checked_words_and_exclude_ignore_unfixed() {
    let policy = config("[scan]\nignore-fix-states = [\"wont-fix\"]\n")
        .unwrap()
        .scan
        .unwrap();
    assert_eq!(policy.ignore_fix_states, [FixState::WontFix]);
    let (line, message) = invalid_line("[scan]\nignore-fix-states = [\"wontfix\"]\n");
    assert_eq!(line, 5);
    assert!(
        message.contains("`wontfix` is not a fix state"),
        "{message}"
    );
    let (_, message) =
        invalid_line("[scan]\nignore-unfixed = true\nignore-fix-states = [\"wont-fix\"]\n");
    assert!(message.contains("not both"), "{message}");
}

#[test]
fn expires_may_be_a_string_or_a_toml_date() {
    for value in ["\"2027-03-01\"", "2027-03-01"] {
        let scan = format!("[[scan.allow]]\nid = \"CVE-1\"\nreason = \"r\"\nexpires = {value}\n");
        let policy = config(&scan).unwrap().scan.unwrap();
        assert_eq!(policy.allow[0].expires, Some("2027-03-01".parse().unwrap()));
        assert_eq!(policy.allow[0].line, 5);
    }
}

#[test]
fn expires_with_a_time_or_an_impossible_date_is_rejected() {
    for value in ["2027-03-01T10:00:00Z", "\"2027-02-30\"", "20270301"] {
        let scan = format!("[[scan.allow]]\nid = \"CVE-1\"\nreason = \"r\"\nexpires = {value}\n");
        let (line, message) = invalid_line(&scan);
        assert_eq!(line, 7, "{value}");
        assert!(message.contains("YYYY-MM-DD"), "{message}");
    }
}

#[test]
fn an_allow_entry_needs_an_id_and_a_non_blank_reason() {
    let (_, message) = invalid_line("[[scan.allow]]\nreason = \"r\"\n");
    assert!(message.contains("has no `id`"), "{message}");
    let (line, message) = invalid_line("[[scan.allow]]\nid = \"CVE-1\"\nreason = \"  \"\n");
    assert_eq!(line, 5);
    assert!(message.contains("has no `reason`"), "{message}");
}

#[test]
fn an_allow_entry_scoped_to_an_unknown_image_is_rejected() {
    let (line, message) =
        invalid_line("[[scan.allow]]\nid = \"CVE-1\"\nreason = \"r\"\nimage = \"web\"\n");
    assert_eq!(line, 7);
    assert!(message.contains("image `web`"), "{message}");
}

// --- Binding ---

fn lock() -> LockFile {
    LockFile {
        version: crate::lock::VERSION,
        images: vec![LockedImage {
            name: "app".to_owned(),
            reference: Reference::parse("registry.example/app:1").unwrap(),
            digest: INDEX.parse().unwrap(),
            media_type: "application/vnd.oci.image.index.v1+json".to_owned(),
            platforms: None,
            manifests: vec![LockedManifest {
                platform: "linux/amd64".to_owned(),
                digest: AMD64.parse().unwrap(),
                media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            }],
        }],
        ..LockFile::default()
    }
}

fn report(digests: &[&str]) -> Report {
    let mut subject = Subject {
        is_image: true,
        ..Subject::default()
    };
    for d in digests {
        subject.digests.push(format::SubjectDigest {
            repository: d.split_once('@').map(|(r, _)| r.to_owned()),
            digest: d.rsplit('@').next().unwrap().parse().unwrap(),
        });
    }
    Report {
        path: PathBuf::from("r.json"),
        format: Format::TrivyJson,
        tool_version: None,
        subject,
        entries: Vec::new(),
    }
}

#[test]
fn a_platform_manifest_digest_binds_to_its_image_and_platform() {
    let binding = bind::bind(&report(&[AMD64]), &lock(), None).unwrap();
    assert_eq!(binding.status, BindingStatus::Verified);
    assert_eq!(binding.platform.as_deref(), Some("linux/amd64"));
}

#[test]
fn the_index_digest_binds_to_its_image() {
    let binding = bind::bind(&report(&[INDEX]), &lock(), None).unwrap();
    assert_eq!(binding.digest, Some(INDEX.parse().unwrap()));
    assert_eq!(binding.platform, None);
}

#[test]
fn another_digest_of_a_locked_repository_is_a_mismatch() {
    let r = report(&[&format!("registry.example/app@{OTHER}")]);
    let binding = bind::bind(&r, &lock(), None).unwrap();
    assert!(binding.is_mismatch(), "{binding:?}");
}

#[test]
fn another_digest_with_target_is_a_mismatch() {
    let binding = bind::bind(&report(&[OTHER]), &lock(), Some("app")).unwrap();
    assert!(binding.is_mismatch(), "{binding:?}");
}

#[test]
fn a_digest_of_no_locked_repository_is_an_error() {
    let r = report(&[&format!("ghcr.io/x/y@{OTHER}")]);
    let err = bind::bind(&r, &lock(), None).unwrap_err();
    assert!(matches!(err, ScanError::NotLocked { .. }), "{err:?}");
}

#[test]
fn a_report_without_digest_needs_a_target_and_is_then_unverified() {
    let err = bind::bind(&report(&[]), &lock(), None).unwrap_err();
    assert!(matches!(err, ScanError::NoImage { .. }), "{err:?}");
    let binding = bind::bind(&report(&[]), &lock(), Some("app")).unwrap();
    assert_eq!(binding.status, BindingStatus::Unverified);
    let err = bind::bind(&report(&[]), &lock(), Some("web")).unwrap_err();
    assert!(matches!(err, ScanError::UnknownTarget { .. }), "{err:?}");
}

/// The test lock plus a second image, `web`, with one single-platform digest.
fn two_images() -> LockFile {
    let mut lock = lock();
    lock.images.push(LockedImage {
        name: "web".to_owned(),
        reference: Reference::parse("registry.example/web:1").unwrap(),
        digest: OTHER.parse().unwrap(),
        media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
        platforms: None,
        manifests: Vec::new(),
    });
    lock
}

#[test]
fn target_does_not_rebind_a_report_that_names_a_locked_digest() {
    let binding = bind::bind(&report(&[AMD64]), &two_images(), Some("web")).unwrap();
    assert_eq!(binding.image, "app");
    assert_eq!(binding.status, BindingStatus::Verified);
    let binding = bind::bind(&report(&[]), &two_images(), Some("web")).unwrap();
    assert_eq!(binding.image, "web");
    assert_eq!(binding.status, BindingStatus::Unverified);
}

#[test]
fn a_locked_digest_beside_unlocked_ones_in_one_report_is_a_mismatch() {
    const THIRD: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    let r = report(&[
        &format!("registry.example/app@{THIRD}"),
        &format!("registry.example/app@{AMD64}"),
    ]);
    let binding = bind::bind(&r, &lock(), None).unwrap();
    assert_eq!(
        binding.status,
        BindingStatus::Mismatch {
            found: vec![THIRD.parse().unwrap()]
        }
    );
    let binding = bind::bind(&report(&[AMD64, INDEX]), &lock(), None).unwrap();
    assert_eq!(binding.status, BindingStatus::Verified, "both are locked");
}
