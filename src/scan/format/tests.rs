//! Tests of format detection and of each parser, on our own fixtures in `testdata/scanners/`.

use std::path::Path;

use super::*;
use crate::scan::model::{FixState, Severity};

const APP_AMD64: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const APP_INDEX: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const CONFIG: &str = "sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

fn fixture(name: &str) -> Report {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/scanners")
        .join(name);
    read(&path).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn parse_text(text: &str) -> Result<Report, ScanError> {
    parse(Path::new("report.json"), text.as_bytes())
}

fn ids(report: &Report) -> Vec<&str> {
    report.entries.iter().map(|e| e.id.as_str()).collect()
}

fn digests(report: &Report) -> Vec<String> {
    report
        .subject
        .digests
        .iter()
        .map(|d| d.digest.to_string())
        .collect()
}

#[test]
fn trivy_legacy_is_a_bare_array_of_results() {
    let report = fixture("trivy-legacy.json");
    assert_eq!(report.format, Format::TrivyLegacy);
    assert_eq!(
        ids(&report),
        ["CVE-2011-3374", "TEMP-0841856-B18BAF", "CVE-2019-14806"]
    );
    let apt = &report.entries[0];
    assert_eq!(apt.package.name, "apt");
    assert_eq!(apt.package.kind.as_deref(), Some("debian"));
    assert_eq!(
        apt.fix_state,
        FixState::NotFixed,
        "no FixedVersion means unfixed"
    );
    assert_eq!(report.entries[1].severity, Severity::Unknown);
    assert_eq!(report.entries[2].fix_state, FixState::Fixed);
    assert!(
        report.subject.digests.is_empty(),
        "legacy reports name no image"
    );
}

#[test]
fn trivy_v2_old_reads_repo_digests_vendor_ids_and_fixed_version_lists() {
    let report = fixture("trivy-v2-old.json");
    assert_eq!(report.format, Format::TrivyJson);
    assert_eq!(report.tool_version, None);
    assert_eq!(digests(&report), [APP_INDEX]);
    assert_eq!(
        report.subject.digests[0].repository.as_deref(),
        Some("registry.example/team/app")
    );
    assert_eq!(report.subject.image_id.as_deref(), Some(CONFIG));
    let ssl = &report.entries[0];
    assert_eq!(ssl.aliases, ["DSA-5700-1"]);
    assert_eq!(ssl.raw_severity, "MEDIUM");
    let flask = &report.entries[1];
    assert_eq!(flask.fixed_versions, ["2.3.2", "2.2.5"]);
    assert_eq!(flask.package.kind.as_deref(), Some("python-pkg"));
}

#[test]
fn trivy_v2_new_reads_status_purl_and_the_digest_in_the_artifact_name() {
    let report = fixture("trivy-v2-new.json");
    assert_eq!(report.tool_version.as_deref(), Some("0.69.1"));
    assert_eq!(
        digests(&report),
        [APP_AMD64],
        "RepoDigests is null; ArtifactName names it"
    );
    let states: Vec<FixState> = report.entries.iter().map(|e| e.fix_state).collect();
    assert_eq!(
        states,
        [
            FixState::Fixed,
            FixState::NotFixed,
            FixState::WontFix,
            FixState::WontFix
        ]
    );
    assert!(
        report.entries[0]
            .package
            .purl
            .as_deref()
            .unwrap()
            .starts_with("pkg:apk/alpine/musl")
    );
}

#[test]
fn trivy_v2_without_results_is_an_empty_report() {
    let report = fixture("trivy-v2-empty.json");
    assert_eq!(report.format, Format::TrivyJson);
    assert!(report.entries.is_empty());
    assert_eq!(digests(&report), [APP_AMD64]);
}

#[test]
fn grype_v6_reads_fix_states_aliases_upstreams_and_the_manifest_digest() {
    let report = fixture("grype-v6.json");
    assert_eq!(report.format, Format::GrypeJson);
    assert_eq!(report.tool_version.as_deref(), Some("0.97.1"));
    assert_eq!(digests(&report), [APP_AMD64, APP_INDEX]);
    let states: Vec<FixState> = report.entries.iter().map(|e| e.fix_state).collect();
    assert_eq!(
        states,
        [
            FixState::Fixed,
            FixState::Fixed,
            FixState::WontFix,
            FixState::Unknown, // `"state": ""`
            FixState::Unknown, // no `fix` at all
            FixState::NotFixed,
        ]
    );
    assert_eq!(report.entries[0].package.source.as_deref(), Some("openssl"));
    assert!(
        report.entries[0].aliases.is_empty(),
        "a related entry with the same id is no alias"
    );
    assert_eq!(report.entries[1].aliases, ["CVE-2023-30861"]);
    assert_eq!(report.entries[2].severity, Severity::Negligible);
    assert_eq!(report.entries[4].severity, Severity::Unknown);
}

#[test]
fn grype_v5_reads_wont_fix_and_the_user_input_digest() {
    let report = fixture("grype-v5.json");
    assert_eq!(report.tool_version.as_deref(), Some("0.66.0"));
    assert_eq!(report.entries.len(), 2);
    assert_eq!(report.entries[0].fix_state, FixState::WontFix);
    assert_eq!(
        report.entries[0].severity,
        Severity::Low,
        "the match's severity, not NVD's"
    );
    let repos: Vec<Option<&str>> = report
        .subject
        .digests
        .iter()
        .map(|d| d.repository.as_deref())
        .collect();
    assert_eq!(repos, [None, Some("docker.io/library/debian")]);
}

#[test]
fn grype_directory_scan_is_empty_and_names_no_image() {
    let report = fixture("grype-empty-directory.json");
    assert!(report.entries.is_empty());
    assert!(!report.subject.is_image);
    assert_eq!(report.subject.name.as_deref(), Some("."));
}

#[test]
fn trivy_sarif_reads_packages_from_messages_and_skips_misconfigurations() {
    let report = fixture("trivy.sarif");
    assert_eq!(report.format, Format::TrivySarif);
    assert_eq!(
        ids(&report),
        ["CVE-2025-0001", "CVE-2025-0001", "CVE-2025-0002"]
    );
    let musl = &report.entries[0];
    assert_eq!(
        (musl.package.name.as_str(), musl.package.version.as_str()),
        ("musl", "1.2.5-r0")
    );
    assert_eq!(musl.severity, Severity::Critical);
    assert_eq!(musl.fixed_versions, ["1.2.5-r1"]);
    assert_eq!(report.entries[2].fix_state, FixState::NotFixed);
    assert_eq!(digests(&report), [APP_AMD64]);
}

#[test]
fn grype_sarif_reads_help_text_and_falls_back_to_the_message_and_score() {
    let report = fixture("grype.sarif");
    assert_eq!(report.format, Format::GrypeSarif);
    assert_eq!(ids(&report), ["CVE-2024-5535", "CVE-2024-1111"]);
    let ssl = &report.entries[0];
    assert_eq!(ssl.severity, Severity::Critical);
    assert_eq!(ssl.package.kind.as_deref(), Some("deb"));
    assert_eq!(ssl.fixed_versions, ["3.0.15-1~deb12u1"]);
    let perl = &report.entries[1];
    assert_eq!(perl.package.name, "perl-base");
    assert_eq!(perl.package.version, "5.36.0-7+deb12u1");
    assert_eq!(
        perl.severity,
        Severity::Low,
        "from the numeric security-severity"
    );
    assert!(report.subject.digests.is_empty());
}

#[test]
fn sarif_from_an_unknown_tool_is_named() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scanners/unknown-tool.sarif");
    let err = read(&path).unwrap_err();
    assert!(matches!(&err, ScanError::SarifTool { tool, .. } if tool == "Snyk Container"));
    assert!(err.to_string().contains("unknown-tool.sarif"), "{err}");
}

#[test]
fn sarif_of_another_version_is_rejected() {
    let err = parse_text(r#"{"version": "2.0.0", "runs": []}"#).unwrap_err();
    assert!(matches!(err, ScanError::SarifVersion { .. }), "{err}");
}

#[test]
fn truncated_json_is_not_valid_json() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/scanners/grype-v6.json"),
    )
    .unwrap();
    let err = parse_text(&text[..text.len() / 2]).unwrap_err();
    assert!(matches!(err, ScanError::NotJson { .. }), "{err:?}");
    assert!(err.hint().unwrap().contains("cut short"));
}

#[test]
fn non_json_and_empty_files_are_not_valid_json() {
    for text in [
        "",
        "<html>502 Bad Gateway</html>",
        "Total: 3 (HIGH: 1)",
        "{} trailing",
    ] {
        assert!(
            matches!(parse_text(text), Err(ScanError::NotJson { .. })),
            "{text:?}"
        );
    }
}

#[test]
fn json_of_another_shape_names_the_keys_it_found() {
    let err = parse_text(r#"{"bomFormat": "CycloneDX", "components": []}"#).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("`bomFormat`") && message.contains("`components`"),
        "{message}"
    );
    assert!(matches!(parse_text("42"), Err(ScanError::Shape { .. })));
}

#[test]
fn a_known_key_with_a_wrong_type_is_a_shape_error() {
    let err = parse_text(r#"{"SchemaVersion": 2, "Results": "none"}"#).unwrap_err();
    assert!(matches!(err, ScanError::Shape { .. }), "{err:?}");
}

#[test]
fn a_future_trivy_schema_is_rejected() {
    let err = parse_text(r#"{"SchemaVersion": 3, "Results": []}"#).unwrap_err();
    assert!(matches!(err, ScanError::TrivySchema { .. }), "{err:?}");
}

#[test]
fn every_field_of_an_entry_is_optional() {
    let report = parse_text(r#"{"matches": [{}], "source": null}"#).unwrap();
    assert_eq!(report.entries.len(), 1);
    let report =
        parse_text(r#"{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{}]}]}"#).unwrap();
    assert_eq!(report.entries.len(), 1);
    let report = parse_text(r#"[{"Vulnerabilities": [{"VulnerabilityID": "CVE-1"}]}]"#).unwrap();
    assert_eq!(ids(&report), ["CVE-1"]);
}

#[test]
fn a_utf8_byte_order_mark_before_the_json_is_skipped() {
    let report =
        parse_text("\u{feff}{\"matches\": [], \"source\": {\"type\": \"image\"}}").unwrap();
    assert_eq!(report.format, Format::GrypeJson);
}
