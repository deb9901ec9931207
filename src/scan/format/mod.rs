//! Reading scanner reports: the format is detected by shape, in the same single pass that parses
//! it.
//!
//! Reports can be hundreds of megabytes, so the file is streamed through serde into small typed
//! structs that keep only the fields aisupply uses; descriptions, CVSS vectors and layer lists
//! are skipped as they stream past. Every field is optional, because each tool has added,
//! renamed and dropped fields across versions.

mod grype;
mod sarif;
mod trivy;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::ScanError;
use super::model::{Entry, Tool};
use crate::digest::Digest;
use crate::reference::Reference;

/// The report formats aisupply reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Trivy before v0.20: a bare array of results.
    TrivyLegacy,
    /// Trivy `--format json` with `SchemaVersion: 2` (v0.20 and later).
    TrivyJson,
    /// Grype `-o json`.
    GrypeJson,
    /// SARIF 2.1.0 from Trivy (`--format sarif`).
    TrivySarif,
    /// SARIF 2.1.0 from Grype (`-o sarif`).
    GrypeSarif,
}

impl Format {
    /// The tool that writes this format.
    pub fn tool(self) -> Tool {
        match self {
            Self::TrivyLegacy | Self::TrivyJson | Self::TrivySarif => Tool::Trivy,
            Self::GrypeJson | Self::GrypeSarif => Tool::Grype,
        }
    }

    /// A short description for output, such as `trivy json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrivyLegacy => "trivy legacy json",
            Self::TrivyJson => "trivy json",
            Self::GrypeJson => "grype json",
            Self::TrivySarif => "trivy sarif",
            Self::GrypeSarif => "grype sarif",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a report says it scanned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// Whether the scan was of a container image (rather than a directory or file system).
    pub is_image: bool,
    /// What the tool was pointed at, as the report records it.
    pub name: Option<String>,
    /// Manifest digests the report names, with their repository when known: these are what
    /// binds a report to a locked image.
    pub digests: Vec<SubjectDigest>,
    /// The image config digest (Trivy `ImageID`, Grype `imageID`). The lock records manifest
    /// digests, not config digests, so this is shown but never binds.
    pub image_id: Option<String>,
}

/// A manifest digest named by a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubjectDigest {
    /// The normalized repository, such as `docker.io/keycloak/keycloak`, when given.
    pub repository: Option<String>,
    /// The digest.
    pub digest: Digest,
}

impl Subject {
    /// Record `repo@sha256:…` (or a bare digest); text that is neither is ignored, since a
    /// report's optional metadata must not make the report unreadable.
    fn add_digest(&mut self, text: &str) {
        let found = if let Ok(digest) = text.parse::<Digest>() {
            Some(SubjectDigest {
                repository: None,
                digest,
            })
        } else {
            Reference::parse(text).ok().and_then(|r| {
                r.digest().map(|d| SubjectDigest {
                    repository: Some(r.name()),
                    digest: d.clone(),
                })
            })
        };
        if let Some(found) = found
            && !self.digests.contains(&found)
        {
            self.digests.push(found);
        }
    }
}

/// One scanner report, read and normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// The tool version the report records.
    pub tool_version: Option<String>,
    /// What it scanned.
    pub subject: Subject,
    /// One entry per vulnerability entry in the file.
    pub entries: Vec<Entry>,
}

impl Report {
    /// The tool that wrote it.
    pub fn tool(&self) -> Tool {
        self.format.tool()
    }
}

/// Read the report at `path`, detecting its format.
pub fn read(path: &Path) -> Result<Report, ScanError> {
    let read_error = |source| ScanError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    skip_bom(&mut reader).map_err(read_error)?;
    let mut de = serde_json::Deserializer::from_reader(reader);
    let document = de
        .deserialize_any(DocumentVisitor)
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|source| json_error(path, source))?;
    document.into_report(path)
}

/// Skip a UTF-8 byte order mark, which tools on Windows (and PowerShell's `>`) write first.
fn skip_bom(reader: &mut impl BufRead) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    Ok(())
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Read a report from memory; `path` names it in errors.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Report, ScanError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let document = de
        .deserialize_any(DocumentVisitor)
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|source| json_error(path, source))?;
    document.into_report(path)
}

fn json_error(path: &Path, source: serde_json::Error) -> ScanError {
    use serde_json::error::Category;
    let path = path.to_owned();
    match source.classify() {
        Category::Io => ScanError::Read {
            path,
            source: source.into(),
        },
        Category::Syntax | Category::Eof => ScanError::NotJson { path, source },
        Category::Data => ScanError::Shape { path, source },
    }
}

/// Every top-level key any supported format uses, read in one pass; the keys decide the format.
#[derive(Default)]
struct Document {
    legacy: Option<Vec<trivy::Result>>,
    schema_version: Option<serde_json::Value>,
    artifact_name: Option<String>,
    artifact_type: Option<String>,
    trivy_metadata: Option<trivy::Metadata>,
    trivy_results: Option<Vec<trivy::Result>>,
    trivy: Option<trivy::Version>,
    matches: Option<Vec<grype::Match>>,
    source: Option<grype::Source>,
    descriptor: Option<grype::Descriptor>,
    runs: Option<Vec<sarif::Run>>,
    version: Option<serde_json::Value>,
    saw_trivy_key: bool,
    saw_grype_key: bool,
    other_keys: Vec<String>,
}

struct DocumentVisitor;

impl<'de> Visitor<'de> for DocumentVisitor {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object or array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Document, A::Error> {
        let mut results = Vec::new();
        while let Some(result) = seq.next_element()? {
            results.push(result);
        }
        Ok(Document {
            legacy: Some(results),
            ..Document::default()
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let mut doc = Document::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "SchemaVersion" => doc.schema_version = map.next_value()?,
                "ArtifactName" => doc.artifact_name = map.next_value()?,
                "ArtifactType" => doc.artifact_type = map.next_value()?,
                "Metadata" => doc.trivy_metadata = map.next_value()?,
                "Results" => doc.trivy_results = map.next_value()?,
                "Trivy" => doc.trivy = map.next_value()?,
                "matches" => doc.matches = map.next_value()?,
                "source" => doc.source = map.next_value()?,
                "descriptor" => doc.descriptor = map.next_value()?,
                "runs" => doc.runs = map.next_value()?,
                "version" => doc.version = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    if doc.other_keys.len() < 6 {
                        doc.other_keys.push(key.clone());
                    }
                }
            }
            doc.saw_trivy_key |= matches!(
                key.as_str(),
                "SchemaVersion" | "ArtifactName" | "ArtifactType" | "Metadata" | "Results"
            );
            doc.saw_grype_key |= matches!(key.as_str(), "matches" | "source" | "descriptor");
        }
        Ok(doc)
    }
}

impl Document {
    fn into_report(self, path: &Path) -> Result<Report, ScanError> {
        let report = |format, tool_version, subject, entries| Report {
            path: path.to_owned(),
            format,
            tool_version,
            subject,
            entries,
        };
        if let Some(results) = self.legacy {
            let entries = trivy::entries(results);
            return Ok(report(
                Format::TrivyLegacy,
                None,
                Subject::default(),
                entries,
            ));
        }
        if let Some(runs) = self.runs {
            let version = self.version.as_ref().and_then(serde_json::Value::as_str);
            if version != Some("2.1.0") {
                return Err(ScanError::SarifVersion {
                    path: path.to_owned(),
                    found: self.version.map(|v| v.to_string()),
                });
            }
            let (format, tool_version, subject, entries) = sarif::read(path, runs)?;
            return Ok(report(format, tool_version, subject, entries));
        }
        if self.saw_grype_key {
            let subject = grype::subject(self.source.as_ref());
            let tool_version = self.descriptor.and_then(|d| d.version);
            let entries = self
                .matches
                .unwrap_or_default()
                .into_iter()
                .map(|m| m.0)
                .collect();
            return Ok(report(Format::GrypeJson, tool_version, subject, entries));
        }
        if self.saw_trivy_key {
            match &self.schema_version {
                None => {}
                Some(v) if v.as_i64() == Some(2) => {}
                Some(other) => {
                    return Err(ScanError::TrivySchema {
                        path: path.to_owned(),
                        found: other.to_string(),
                    });
                }
            }
            let subject = trivy::subject(
                self.artifact_name,
                self.artifact_type.as_deref(),
                self.trivy_metadata,
            );
            let tool_version = self.trivy.and_then(|t| t.version);
            let entries = trivy::entries(self.trivy_results.unwrap_or_default());
            return Ok(report(Format::TrivyJson, tool_version, subject, entries));
        }
        Err(ScanError::UnknownFormat {
            path: path.to_owned(),
            keys: self.other_keys,
        })
    }
}

/// Deserialize `null` as the type's default, for lists that tools write as `null` when empty.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: de::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Trim a list of version strings, dropping empty ones.
fn versions<'a>(parts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in parts {
        let part = part.trim();
        if !part.is_empty() && !out.iter().any(|v| v == part) {
            out.push(part.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests;
