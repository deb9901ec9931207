//! Trivy JSON: `SchemaVersion: 2` reports and the bare result arrays of Trivy before v0.20.
//!
//! Both share the shape of a result and of a vulnerability; only the envelope differs.

use serde::Deserialize;

use super::{Subject, nullable, versions};
use crate::scan::model::{Entry, FixState, Package, Severity};

/// `Metadata` of a v2 report: what binds it to an image.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct Metadata {
    #[serde(rename = "ImageID")]
    image_id: Option<String>,
    #[serde(deserialize_with = "nullable")]
    repo_digests: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    repo_tags: Vec<String>,
}

/// The `Trivy` object of newer reports.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct Version {
    pub(super) version: Option<String>,
}

/// One result: a target (the OS packages, a lock file, a jar) and its vulnerabilities.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(super) struct Result {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(deserialize_with = "nullable")]
    vulnerabilities: Vec<Vulnerability>,
}

/// A vulnerability, converted to an [`Entry`] as it streams past.
#[derive(Debug, Deserialize)]
#[serde(from = "RawVulnerability")]
struct Vulnerability(Entry);

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct RawVulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: Option<String>,
    #[serde(rename = "VendorIDs", deserialize_with = "nullable")]
    vendor_ids: Vec<String>,
    pkg_name: Option<String>,
    pkg_identifier: Option<PkgIdentifier>,
    installed_version: Option<String>,
    fixed_version: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    title: Option<String>,
    #[serde(rename = "PrimaryURL")]
    primary_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PkgIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

impl From<RawVulnerability> for Vulnerability {
    fn from(raw: RawVulnerability) -> Self {
        // `FixedVersion` is one string that may list several versions: "2.3.2, 2.2.5".
        let fixed_versions = versions(raw.fixed_version.as_deref().unwrap_or("").split(','));
        let raw_severity = raw.severity.unwrap_or_default();
        Self(Entry {
            id: raw.vulnerability_id.unwrap_or_default(),
            aliases: raw.vendor_ids,
            package: Package {
                name: raw.pkg_name.unwrap_or_default(),
                version: raw.installed_version.unwrap_or_default(),
                kind: None,
                purl: raw.pkg_identifier.and_then(|p| p.purl),
                source: None,
            },
            fix_state: FixState::from_trivy(raw.status.as_deref(), !fixed_versions.is_empty()),
            fixed_versions,
            severity: Severity::from_scanner(&raw_severity),
            raw_severity,
            title: raw.title,
            url: raw.primary_url,
        })
    }
}

/// The entries of every result, each tagged with its result's package type.
pub(super) fn entries(results: Vec<Result>) -> Vec<Entry> {
    let mut entries = Vec::new();
    for result in results {
        for Vulnerability(mut entry) in result.vulnerabilities {
            entry.package.kind.clone_from(&result.kind);
            entries.push(entry);
        }
    }
    entries
}

/// What a v2 report scanned: `RepoDigests` name manifest digests, `ImageID` the config digest.
pub(super) fn subject(
    artifact_name: Option<String>,
    artifact_type: Option<&str>,
    metadata: Option<Metadata>,
) -> Subject {
    let metadata = metadata.unwrap_or_default();
    let mut subject = Subject {
        is_image: artifact_type == Some("container_image")
            || (artifact_type.is_none() && metadata.image_id.is_some()),
        name: artifact_name,
        digests: Vec::new(),
        image_id: metadata.image_id,
    };
    for digest in &metadata.repo_digests {
        subject.add_digest(digest);
    }
    // Trivy scanning `repo@sha256:…` names the artifact by that reference.
    if subject.is_image
        && let Some(name) = subject.name.clone()
        && name.contains('@')
    {
        subject.add_digest(&name);
    }
    if subject.name.is_none() {
        subject.name = metadata.repo_tags.into_iter().next();
    }
    subject
}
