//! `aisupply.toml`: what the project wants pinned, as written by hand.
//!
//! Parsing is strict: an unknown key is an error naming the key and the file, because a typo
//! such as `platform = [...]` must never silently widen what gets locked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::platform::Platform;
use crate::reference::Reference;
use crate::scan::{Date, FixState, Severity as VulnSeverity};

/// The default file name of the config.
pub const FILE_NAME: &str = "aisupply.toml";

/// A loaded and validated `aisupply.toml`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the config was read from.
    pub path: PathBuf,
    /// `[[image]]` entries, in file order.
    pub images: Vec<ImageSpec>,
    /// `[[model]]` entries, in file order.
    pub models: Vec<ModelSpec>,
    /// `[sources]`: files whose image references must be pinned.
    pub sources: Option<Sources>,
    /// `[scan]`: the vulnerability policy.
    pub scan: Option<ScanPolicy>,
    /// `[registries."host"]` settings.
    pub registries: BTreeMap<String, RegistrySettings>,
}

/// One `[[image]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The entry's name, unique in the config.
    pub name: String,
    /// The normalized reference.
    pub reference: Reference,
    /// The platforms to lock; `None` means every platform of the index.
    pub platforms: Option<Vec<Platform>>,
    /// The 1-based line of the entry's `ref` key.
    pub line: usize,
}

/// One `[[model]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelSpec {
    /// The Hugging Face repository id, such as `meta-llama/Llama-3.1-8B-Instruct`.
    pub repo: String,
    /// A branch, tag, `refs/pr/N` or 40-hex commit.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Globs of files to lock; absent means every file (`include = []` is refused).
    #[serde(default, deserialize_with = "non_empty_include")]
    pub include: Vec<String>,
    /// Globs of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn default_revision() -> String {
    "main".to_owned()
}

/// `include = []` would lock nothing (as `allow_patterns=[]` downloads nothing in
/// `huggingface_hub`), which is never what was meant: refused, with the fix.
fn non_empty_include<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let globs = Vec::<String>::deserialize(d)?;
    if globs.is_empty() {
        return Err(serde::de::Error::custom(
            "`include = []` selects no file; remove `include` to lock every file",
        ));
    }
    Ok(globs)
}

/// `[sources]`: globs of files whose image references must be pinned.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Sources {
    /// Dockerfile globs.
    pub dockerfiles: Option<Vec<String>>,
    /// Compose file globs.
    pub compose: Option<Vec<String>>,
    /// Kubernetes manifest globs.
    pub kubernetes: Option<Vec<String>>,
    /// Globs of files to leave out, whichever list matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// `[scan]`: the policy applied to Trivy and Grype reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPolicy {
    /// The lowest severity that fails (`fail-on`, `high` when unset).
    pub fail_on: VulnSeverity,
    /// Fix states whose findings never fail: `ignore-unfixed = true` means every state but
    /// `fixed`; `ignore-fix-states` lists them one by one.
    pub ignore_fix_states: Vec<FixState>,
    /// Accepted findings.
    pub allow: Vec<AllowEntry>,
}

impl Default for ScanPolicy {
    fn default() -> Self {
        Self {
            fail_on: VulnSeverity::High,
            ignore_fix_states: Vec::new(),
            allow: Vec::new(),
        }
    }
}

/// One `[[scan.allow]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AllowEntry {
    /// The vulnerability id (or one of its aliases).
    pub id: String,
    /// Why the finding is accepted.
    pub reason: String,
    /// The last day the entry applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Date>,
    /// Limit the entry to one image (by name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Limit the entry to one package (its name or its source package's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// The 1-based line of the entry's `id` key.
    pub line: usize,
}

/// `[registries."host"]` settings.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistrySettings {
    /// `true`: plain HTTP. `false`: HTTPS even for a loopback host. Unset: plain HTTP for
    /// loopback hosts, HTTPS for every other host.
    pub insecure: Option<bool>,
}

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config `{}`", path.display())]
    Read {
        /// The config path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or holds unknown keys or wrong types.
    #[error("config `{}` is invalid", path.display())]
    Parse {
        /// The config path.
        path: PathBuf,
        /// The parser's explanation, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A value is well-formed TOML but not acceptable.
    #[error("config `{}` line {line}: {message}", path.display())]
    Invalid {
        /// The config path.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
        /// The underlying error, such as a malformed reference.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl ConfigError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Some(
                "create it with `aisupply init`, or point at it with `--config PATH`".to_owned(),
            ),
            Self::Parse { .. } => Some(
                "the keys aisupply knows are listed under \"Configuration\" in the README"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(default)]
    image: Vec<RawImage>,
    #[serde(default)]
    model: Vec<ModelSpec>,
    sources: Option<Sources>,
    scan: Option<RawScan>,
    #[serde(default)]
    registries: BTreeMap<String, RegistrySettings>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawScan {
    fail_on: Option<Spanned<String>>,
    ignore_unfixed: Option<Spanned<bool>>,
    ignore_fix_states: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAllow {
    id: Option<Spanned<String>>,
    reason: Option<Spanned<String>>,
    expires: Option<Spanned<toml::Value>>,
    image: Option<Spanned<String>>,
    package: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawImage {
    name: Option<Spanned<String>>,
    #[serde(rename = "ref")]
    reference: Spanned<String>,
    platforms: Option<Vec<Spanned<String>>>,
}

impl Config {
    /// Read and validate the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Validate config `text` that was read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })?;
        let lines = LineIndex::new(text);
        let invalid =
            |span: std::ops::Range<usize>, message: String, source| ConfigError::Invalid {
                path: path.to_owned(),
                line: lines.line_of(span.start),
                message,
                source,
            };

        let mut images = Vec::with_capacity(raw.image.len());
        for entry in raw.image {
            images.push(image_spec(entry, &lines, &invalid)?);
        }
        reject_duplicate_names(&images, &|line, message| ConfigError::Invalid {
            path: path.to_owned(),
            line,
            message,
            source: None,
        })?;
        let scan = match raw.scan {
            Some(raw_scan) => Some(scan_policy(raw_scan, &images, &lines, &|span, message| {
                invalid(span, message, None)
            })?),
            None => None,
        };
        if let Some(sources) = &raw.sources {
            for glob in &sources.exclude {
                if let Err(source) = globset::Glob::new(glob) {
                    let at = text.find(glob.as_str()).unwrap_or(0);
                    let message = format!("`[sources]` `exclude` glob `{glob}` is invalid");
                    return Err(invalid(at..at, message, Some(Box::new(source))));
                }
            }
        }

        Ok(Self {
            path: path.to_owned(),
            images,
            models: raw.model,
            sources: raw.sources,
            scan,
            registries: raw.registries,
        })
    }

    /// The image entry named `name`.
    pub fn image(&self, name: &str) -> Option<&ImageSpec> {
        self.images.iter().find(|i| i.name == name)
    }
}

type Invalid<'a> = dyn Fn(
        std::ops::Range<usize>,
        String,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> ConfigError
    + 'a;

fn image_spec(
    raw: RawImage,
    lines: &LineIndex,
    invalid: &Invalid,
) -> Result<ImageSpec, ConfigError> {
    let span = raw.reference.span();
    let reference = Reference::parse(raw.reference.get_ref()).map_err(|e| {
        invalid(
            span.clone(),
            format!(
                "`ref = \"{}\"` is not a valid image reference",
                raw.reference.get_ref()
            ),
            Some(Box::new(e)),
        )
    })?;

    let platforms = match raw.platforms {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(invalid(
                span,
                "`platforms` is empty; remove it to lock every platform, or list some".to_owned(),
                None,
            ));
        }
        Some(list) => Some(parse_platforms(list, invalid)?),
    };

    let name = match raw.name {
        Some(name) if name.get_ref().trim().is_empty() => {
            return Err(invalid(name.span(), "`name` is empty".to_owned(), None));
        }
        Some(name) if name.get_ref().chars().any(char::is_control) => {
            let message = format!(
                "`name = {:?}` holds control characters (such as a newline); use a plain name",
                name.get_ref()
            );
            return Err(invalid(name.span(), message, None));
        }
        Some(name) => name.into_inner(),
        None => default_name(&reference),
    };
    Ok(ImageSpec {
        name,
        reference,
        platforms,
        line: lines.line_of(span.start),
    })
}

fn parse_platforms(
    list: Vec<Spanned<String>>,
    invalid: &Invalid,
) -> Result<Vec<Platform>, ConfigError> {
    let mut platforms: Vec<Platform> = Vec::with_capacity(list.len());
    for item in list {
        let platform: Platform = item.get_ref().parse().map_err(|e| {
            invalid(
                item.span(),
                "invalid platform".to_owned(),
                Some(Box::new(e)),
            )
        })?;
        if platforms.iter().any(|p| p.matches(&platform)) {
            return Err(invalid(
                item.span(),
                format!("platform `{platform}` is listed twice"),
                None,
            ));
        }
        platforms.push(platform);
    }
    Ok(platforms)
}

/// The repository path, without Docker Hub's implicit `library/`.
fn default_name(reference: &Reference) -> String {
    let repository = reference.repository();
    match repository.strip_prefix("library/") {
        Some(short) if reference.registry() == "docker.io" => short.to_owned(),
        _ => repository.to_owned(),
    }
}

fn reject_duplicate_names(
    images: &[ImageSpec],
    invalid: &dyn Fn(usize, String) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, image) in images.iter().enumerate() {
        if let Some(first) = images[..i].iter().find(|other| other.name == image.name) {
            return Err(invalid(
                image.line,
                format!(
                    "two images are named `{}` (lines {} and {}); give one of them a distinct \
                     `name = \"...\"`",
                    image.name, first.line, image.line
                ),
            ));
        }
    }
    Ok(())
}

/// Validate `[scan]`: known severity and fix-state words, and allow entries that say why and
/// until when.
fn scan_policy(
    raw: RawScan,
    images: &[ImageSpec],
    lines: &LineIndex,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<ScanPolicy, ConfigError> {
    let mut policy = ScanPolicy::default();
    if let Some(word) = raw.fail_on {
        policy.fail_on = word.get_ref().parse().map_err(|()| {
            let known: Vec<&str> = VulnSeverity::ALL.iter().map(|s| s.as_str()).collect();
            invalid(
                word.span(),
                format!(
                    "`fail-on = \"{}\"` is not a severity; use one of {}",
                    word.get_ref(),
                    known.join(", ")
                ),
            )
        })?;
    }

    match (raw.ignore_unfixed, raw.ignore_fix_states) {
        (Some(_), Some(states)) => {
            return Err(invalid(
                states.span(),
                "set either `ignore-unfixed` or `ignore-fix-states`, not both".to_owned(),
            ));
        }
        (Some(flag), None) if *flag.get_ref() => {
            policy.ignore_fix_states = FixState::UNFIXED.to_vec();
        }
        (_, Some(states)) => {
            for word in states.into_inner() {
                let state = word.get_ref().parse().map_err(|()| {
                    invalid(
                        word.span(),
                        format!(
                            "`{}` is not a fix state; use fixed, not-fixed, wont-fix or unknown",
                            word.get_ref()
                        ),
                    )
                })?;
                policy.ignore_fix_states.push(state);
            }
        }
        _ => {}
    }

    for entry in raw.allow {
        policy
            .allow
            .push(allow_entry(entry, images, lines, invalid)?);
    }
    Ok(policy)
}

fn allow_entry(
    raw: Spanned<RawAllow>,
    images: &[ImageSpec],
    lines: &LineIndex,
    invalid: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<AllowEntry, ConfigError> {
    let span = raw.span();
    let raw = raw.into_inner();
    let Some(id) = raw.id.filter(|id| !id.get_ref().trim().is_empty()) else {
        return Err(invalid(
            span,
            "a `[[scan.allow]]` entry has no `id`; name the vulnerability, such as \
             `id = \"CVE-2024-5535\"`"
                .to_owned(),
        ));
    };
    let id_span = id.span();
    let id = id.into_inner();
    if raw
        .reason
        .as_ref()
        .is_none_or(|r| r.get_ref().trim().is_empty())
    {
        return Err(invalid(
            id_span,
            format!(
                "the allow entry for `{id}` has no `reason`; say why the finding is accepted, \
                 such as `reason = \"not reachable from the server process\"`"
            ),
        ));
    }
    let expires = match raw.expires {
        None => None,
        Some(value) => Some(allow_expiry(value.get_ref()).ok_or_else(|| {
            invalid(
                value.span(),
                format!(
                    "`expires = {}` of the allow entry for `{id}` is not a date; write it as \
                     `YYYY-MM-DD`, such as `2027-03-01`",
                    value.get_ref()
                ),
            )
        })?),
    };
    if let Some(image) = &raw.image
        && !images.iter().any(|i| i.name == *image.get_ref())
    {
        return Err(invalid(
            image.span(),
            format!(
                "the allow entry for `{id}` names image `{}`, which is not an `[[image]]` of \
                 this config",
                image.get_ref()
            ),
        ));
    }
    Ok(AllowEntry {
        id,
        reason: raw.reason.map(Spanned::into_inner).unwrap_or_default(),
        expires,
        image: raw.image.map(Spanned::into_inner),
        package: raw.package.map(Spanned::into_inner),
        line: lines.line_of(id_span.start),
    })
}

/// `expires` as a string (`"2027-03-01"`) or a TOML date (`2027-03-01`).
fn allow_expiry(value: &toml::Value) -> Option<Date> {
    match value {
        toml::Value::String(text) => text.parse().ok(),
        toml::Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
            let date = dt.date?;
            Date::new(date.year, date.month, date.day)
        }
        _ => None,
    }
}

/// Byte offsets to 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("aisupply.toml"), text)
    }

    #[test]
    fn images_get_normalized_references_names_and_lines() {
        let config = parse(
            "[[image]]\nref = \"ubuntu:22.04\"\n\n[[image]]\nname = \"app\"\n\
             ref = \"localhost:5000/team/app:1\"\nplatforms = [\"linux/amd64\"]\n",
        )
        .unwrap();
        assert_eq!(config.images[0].name, "ubuntu");
        assert_eq!(
            config.images[0].reference.to_string(),
            "docker.io/library/ubuntu:22.04"
        );
        assert_eq!(config.images[0].line, 2);
        assert_eq!(config.images[1].name, "app");
        assert_eq!(config.images[1].line, 6);
        assert_eq!(config.images[1].platforms.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = parse("[[image]]\nref = \"ubuntu\"\nplatform = [\"linux/amd64\"]\n").unwrap_err();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("platform"), "{cause}");
        assert!(err.to_string().contains("aisupply.toml"));
    }

    /// Regression: a name with a newline broke the line-per-finding text output.
    #[test]
    fn names_with_control_characters_are_rejected() {
        let err = parse("[[image]]\nref = \"a/x:1\"\nname = \"x\\ny\"\n").unwrap_err();
        assert!(err.to_string().contains("control characters"), "{err}");
    }

    #[test]
    fn duplicate_names_are_errors_with_both_lines() {
        let err = parse(
            "[[image]]\nref = \"a/x:1\"\nname=\"x\"\n[[image]]\nref = \"b/x:2\"\nname=\"x\"\n",
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("lines 2 and 5"), "{message}");
    }

    #[test]
    fn default_names_collide_when_the_same_repository_appears_twice() {
        let err = parse("[[image]]\nref = \"ubuntu:22.04\"\n[[image]]\nref = \"ubuntu:24.04\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("`ubuntu`"));
    }

    #[test]
    fn malformed_reference_points_at_its_line() {
        let err = parse("\n[[image]]\nref = \"Ubuntu:22.04\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { line: 3, .. }), "{err}");
    }

    #[test]
    fn platforms_are_validated() {
        assert!(parse("[[image]]\nref = \"a/b\"\nplatforms = [\"linux\"]\n").is_err());
        assert!(parse("[[image]]\nref = \"a/b\"\nplatforms = []\n").is_err());
        let dup = "[[image]]\nref = \"a/b\"\nplatforms = [\"linux/arm64\", \"linux/aarch64\"]\n";
        assert!(parse(dup).is_err());
    }

    #[test]
    fn the_spec_example_parses() {
        let text = r#"
[[image]]
name = "vllm"
ref = "vllm/vllm-openai:v0.6.3"
platforms = ["linux/amd64"]

[[model]]
repo = "meta-llama/Llama-3.1-8B-Instruct"
revision = "main"
include = ["*.safetensors", "*.json", "tokenizer*"]
exclude = ["original/*"]

[sources]
dockerfiles = ["**/Dockerfile", "**/*.Dockerfile"]
compose = ["**/compose*.y*ml", "**/docker-compose*.y*ml"]
kubernetes = ["deploy/**/*.yaml"]

[scan]
fail-on = "high"
ignore-unfixed = true
[[scan.allow]]
id = "CVE-2024-5535"
reason = "openssl not reachable from the server process"
expires = "2027-03-01"
image = "vllm"

[registries."localhost:5000"]
insecure = true
"#;
        let config = parse(text).unwrap();
        assert_eq!(config.images.len(), 1);
        assert_eq!(config.models.len(), 1);
        assert_eq!(config.registries["localhost:5000"].insecure, Some(true));
    }
}
