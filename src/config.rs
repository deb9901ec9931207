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
    /// Globs of files to lock; empty means every file.
    #[serde(default)]
    pub include: Vec<String>,
    /// Globs of files to leave out.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn default_revision() -> String {
    "main".to_owned()
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
}

/// `[scan]`: the policy applied to Trivy and Grype reports.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScanPolicy {
    /// The lowest severity that fails `verify`.
    pub fail_on: Option<String>,
    /// Whether findings without a fixed version are ignored.
    pub ignore_unfixed: Option<bool>,
    /// Accepted findings.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
}

/// One `[[scan.allow]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AllowEntry {
    /// The vulnerability id.
    pub id: String,
    /// Why the finding is accepted.
    pub reason: Option<String>,
    /// The date after which the entry no longer applies, `YYYY-MM-DD`.
    pub expires: Option<String>,
    /// Limit the entry to one image (by name).
    pub image: Option<String>,
    /// Limit the entry to one package.
    pub package: Option<String>,
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
    scan: Option<ScanPolicy>,
    #[serde(default)]
    registries: BTreeMap<String, RegistrySettings>,
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
        let invalid = |span: std::ops::Range<usize>, message: String, source| {
            ConfigError::Invalid {
                path: path.to_owned(),
                line: lines.line_of(span.start),
                message,
                source,
            }
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

        Ok(Self {
            path: path.to_owned(),
            images,
            models: raw.model,
            sources: raw.sources,
            scan: raw.scan,
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

fn image_spec(raw: RawImage, lines: &LineIndex, invalid: &Invalid) -> Result<ImageSpec, ConfigError> {
    let span = raw.reference.span();
    let reference = Reference::parse(raw.reference.get_ref()).map_err(|e| {
        invalid(
            span.clone(),
            format!("`ref = \"{}\"` is not a valid image reference", raw.reference.get_ref()),
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
        let platform: Platform = item
            .get_ref()
            .parse()
            .map_err(|e| invalid(item.span(), "invalid platform".to_owned(), Some(Box::new(e))))?;
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

    #[test]
    fn duplicate_names_are_errors_with_both_lines() {
        let err = parse("[[image]]\nref = \"a/x:1\"\nname=\"x\"\n[[image]]\nref = \"b/x:2\"\nname=\"x\"\n")
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
