//! Real Trivy and Grype reports from `../shared/testdata/scanners/` (see its PROVENANCE.md):
//! every vulnerability entry of every file must become a finding, and the Trivy/Grype pair of
//! one image must merge. The folder lives outside the crate, so the tests skip when it is absent.

use std::path::{Path, PathBuf};

use aisupply::config::Config;
use aisupply::lock::LockFile;
use aisupply::scan::{self, Date, Scan, Tool};
use serde_json::Value;

fn shared_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/scanners");
    if dir.is_dir() {
        Some(dir)
    } else {
        // Printed so that a skip is visible with `--nocapture`.
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: {} is absent", dir.display());
        }
        None
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or("").to_owned()
}

/// `(id, package, version)` of every vulnerability entry, read with a generic JSON parser so
/// that the expectation does not share code with the parsers under test. SARIF carries the
/// package only in prose, so its entries are compared by id alone.
fn expected_entries(doc: &Value) -> Vec<(String, String, String)> {
    let trivy = |results: &Value| -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for result in results.as_array().into_iter().flatten() {
            for v in result["Vulnerabilities"].as_array().into_iter().flatten() {
                out.push((
                    text(&v["VulnerabilityID"]),
                    text(&v["PkgName"]),
                    text(&v["InstalledVersion"]),
                ));
            }
        }
        out
    };
    if doc.is_array() {
        return trivy(doc);
    }
    if let Some(matches) = doc["matches"].as_array() {
        return matches
            .iter()
            .map(|m| {
                (
                    text(&m["vulnerability"]["id"]),
                    text(&m["artifact"]["name"]),
                    text(&m["artifact"]["version"]),
                )
            })
            .collect();
    }
    if let Some(runs) = doc["runs"].as_array() {
        let mut out = Vec::new();
        for run in runs {
            for result in run["results"].as_array().into_iter().flatten() {
                out.push((text(&result["ruleId"]), String::new(), String::new()));
            }
        }
        return out;
    }
    trivy(&doc["Results"])
}

#[test]
fn every_vulnerability_entry_of_every_shared_report_becomes_a_finding() {
    let Some(dir) = shared_dir() else { return };
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let is_report = path
            .extension()
            .is_some_and(|e| e == "json" || e == "sarif");
        if !is_report {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut expected = expected_entries(&doc);
        let report = scan::format::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.entries.len(), expected.len(), "{name}");

        let mut actual: Vec<(String, String, String)> = report
            .entries
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.package.name.clone(),
                    e.package.version.clone(),
                )
            })
            .collect();
        if matches!(
            report.format,
            scan::Format::TrivySarif | scan::Format::GrypeSarif
        ) {
            // SARIF names packages only in prose, and Grype's rule id is
            // `<vulnerability>-<package>`: compare in file order, by id prefix.
            for (a, e) in actual.iter().zip(&expected) {
                assert!(
                    e.0.starts_with(&a.0),
                    "{name}: rule {} read as {}",
                    e.0,
                    a.0
                );
                assert!(
                    !a.1.is_empty() && !a.2.is_empty(),
                    "{name}: no package for {}",
                    a.0
                );
            }
            checked += 1;
            continue;
        }
        actual.sort();
        expected.sort();
        assert_eq!(actual, expected, "{name}");
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} reports found in {}",
        dir.display()
    );
}

#[test]
fn the_shared_trivy_and_grype_pair_merges_into_one_finding_per_vulnerability() {
    let Some(dir) = shared_dir() else { return };
    let config = Config::parse(
        Path::new("aisupply.toml"),
        "[[image]]\nname = \"my-app\"\nref = \"my-app:latest\"\n",
    )
    .unwrap();
    let lock = LockFile::parse(
        Path::new("aisupply.lock"),
        "version = 1\n[[image]]\nname = \"my-app\"\nreference = \"docker.io/library/my-app:latest\"\n\
         digest = \"sha256:9a9f58611b83609ca66023b205594bbcc35ebd03053ff9df04070d6c2e6e3b0c\"\n\
         media-type = \"application/vnd.docker.distribution.manifest.v2+json\"\n",
    )
    .unwrap();
    let read = |name: &str| {
        let report = scan::format::read(&dir.join(name)).unwrap();
        // Both were scans of a local build: they name the image only by its config digest.
        assert!(
            report.subject.digests.is_empty() || report.tool() == Tool::Grype,
            "{name}"
        );
        (report, Some("my-app".to_owned()))
    };
    let reports = vec![
        read("trivy-debian12-python-ci-v0.6x.json"),
        read("grype-debian12-python-ci-0.97.1.json"),
    ];
    let today: Date = "2026-01-01".parse().unwrap();
    let scan = Scan::assemble(reports, &config, &lock, today).unwrap();

    // Counted independently (PROVENANCE.md and a Python cross-check): 54 Trivy entries, 160
    // Grype entries, all 54 Trivy ones also in Grype once GHSA ids resolve to their CVEs and
    // package names are compared without case; 13 of those disagree on severity.
    assert_eq!(scan.findings.len(), 160);
    let both = scan
        .findings
        .iter()
        .filter(|f| f.tools().len() == 2)
        .count();
    assert_eq!(both, 54);
    let disputed = scan
        .findings
        .iter()
        .filter(|f| f.ratings.len() == 2 && f.disputed())
        .count();
    assert_eq!(disputed, 13);

    let ssl = scan
        .findings
        .iter()
        .find(|f| f.id == "CVE-2024-5535" && f.package.name == "libssl3")
        .unwrap();
    assert_eq!(
        ssl.severity,
        scan::Severity::Critical,
        "the higher of MEDIUM and Critical"
    );
    let raws: Vec<&str> = ssl.ratings.iter().map(|r| r.raw.as_str()).collect();
    assert_eq!(raws, ["MEDIUM", "Critical"]);
}

#[test]
fn target_binds_only_the_shared_report_that_names_no_digest() {
    let Some(dir) = shared_dir() else { return };
    let config = Config::parse(
        Path::new("aisupply.toml"),
        "[[image]]\nname = \"keycloak\"\nref = \"keycloak/keycloak:21.0.2\"\n\n\
         [[image]]\nname = \"alpine310\"\nref = \"alpine:3.10\"\n",
    )
    .unwrap();
    let lock = LockFile::parse(
        Path::new("aisupply.lock"),
        "version = 1\n\
         [[image]]\nname = \"keycloak\"\nreference = \"docker.io/keycloak/keycloak:21.0.2\"\n\
         digest = \"sha256:347a0d748d05a050dc64b92de2246d2240db6eb38afbc17c3c08d0acb0db1b50\"\n\
         media-type = \"application/vnd.docker.distribution.manifest.list.v2+json\"\n\
         [[image.manifest]]\nplatform = \"linux/amd64\"\n\
         digest = \"sha256:d1630d3eb8285a978301bcefc5b223e564ae300750af2fc9ea3f413c5376a47e\"\n\
         media-type = \"application/vnd.docker.distribution.manifest.v2+json\"\n\
         [[image]]\nname = \"alpine310\"\nreference = \"docker.io/library/alpine:3.10\"\n\
         digest = \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"\n\
         media-type = \"application/vnd.docker.distribution.manifest.v2+json\"\n",
    )
    .unwrap();
    let reports = [
        "grype-rhel9-keycloak-0.66.0.json",
        "trivy-alpine310-golden-dev-v0.69.json",
    ]
    .map(|name| {
        let report = scan::format::read(&dir.join(name)).unwrap();
        (report, Some("alpine310".to_owned()))
    })
    .to_vec();
    let today: Date = "2026-01-01".parse().unwrap();
    let scan = Scan::assemble(reports, &config, &lock, today).unwrap();
    let bindings: Vec<(&str, &scan::BindingStatus)> = scan
        .reports
        .iter()
        .map(|r| (r.binding.image.as_str(), &r.binding.status))
        .collect();
    assert_eq!(
        bindings,
        [
            ("keycloak", &scan::BindingStatus::Verified),
            ("alpine310", &scan::BindingStatus::Unverified),
        ]
    );
}
