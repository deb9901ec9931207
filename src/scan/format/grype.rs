//! Grype JSON (`grype -o json`), with database v5 and v6 descriptors alike: only `matches`,
//! `source` and `descriptor.version` are read.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Subject, nullable, versions};
use crate::scan::model::{Entry, FixState, Package, Severity};

/// `descriptor`: the tool that wrote the report.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Descriptor {
    pub(super) version: Option<String>,
}

/// `source`: what was scanned.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct Source {
    #[serde(rename = "type")]
    kind: Option<String>,
    target: Option<Target>,
}

/// An image target is an object; a directory or file target is a path.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Target {
    Path(String),
    Image(ImageTarget),
    Other(IgnoredAny),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ImageTarget {
    user_input: Option<String>,
    #[serde(rename = "imageID")]
    image_id: Option<String>,
    manifest_digest: Option<String>,
    #[serde(deserialize_with = "nullable")]
    repo_digests: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    tags: Vec<String>,
}

/// One match, converted to an [`Entry`] as it streams past.
#[derive(Debug, Deserialize)]
#[serde(from = "RawMatch")]
pub(super) struct Match(pub(super) Entry);

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawMatch {
    vulnerability: Vulnerability,
    #[serde(deserialize_with = "nullable")]
    related_vulnerabilities: Vec<Related>,
    artifact: Artifact,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Vulnerability {
    id: Option<String>,
    severity: Option<String>,
    fix: Option<Fix>,
    data_source: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Fix {
    #[serde(deserialize_with = "nullable")]
    versions: Vec<String>,
    state: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Related {
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Artifact {
    name: Option<String>,
    version: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    purl: Option<String>,
    #[serde(deserialize_with = "nullable")]
    upstreams: Vec<Upstream>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Upstream {
    name: Option<String>,
}

impl From<RawMatch> for Match {
    fn from(raw: RawMatch) -> Self {
        let vulnerability = raw.vulnerability;
        let id = vulnerability.id.unwrap_or_default();
        let mut aliases: Vec<String> = Vec::new();
        for related in raw.related_vulnerabilities {
            if let Some(alias) = related.id
                && alias != id
                && !aliases.contains(&alias)
            {
                aliases.push(alias);
            }
        }
        let fix = vulnerability.fix.unwrap_or_default();
        let raw_severity = vulnerability.severity.unwrap_or_default();
        let artifact = raw.artifact;
        Self(Entry {
            id,
            aliases,
            package: Package {
                name: artifact.name.unwrap_or_default(),
                version: artifact.version.unwrap_or_default(),
                kind: artifact.kind.filter(|k| !k.is_empty()),
                purl: artifact.purl.filter(|p| !p.is_empty()),
                source: artifact.upstreams.into_iter().find_map(|u| u.name),
            },
            fixed_versions: versions(fix.versions.iter().map(String::as_str)),
            fix_state: FixState::from_grype(fix.state.as_deref()),
            severity: Severity::from_scanner(&raw_severity),
            raw_severity,
            title: None,
            url: vulnerability.data_source.filter(|u| !u.is_empty()),
        })
    }
}

/// What the report scanned: an image target names its manifest digest and repo digests.
pub(super) fn subject(source: Option<&Source>) -> Subject {
    let mut subject = Subject::default();
    let Some(source) = source else {
        return subject;
    };
    match &source.target {
        Some(Target::Image(image)) => {
            subject.is_image = true;
            subject.name = image
                .user_input
                .clone()
                .or_else(|| image.tags.first().cloned());
            subject.image_id.clone_from(&image.image_id);
            if let Some(digest) = &image.manifest_digest {
                subject.add_digest(digest);
            }
            for digest in &image.repo_digests {
                subject.add_digest(digest);
            }
            if let Some(input) = &image.user_input
                && input.contains('@')
            {
                subject.add_digest(input.trim_start_matches("registry:"));
            }
        }
        Some(Target::Path(path)) => {
            subject.name = Some(path.clone());
            subject.is_image = source.kind.as_deref() == Some("image");
        }
        Some(Target::Other(_)) | None => {}
    }
    subject
}
