//! Image references in the files that build and deploy: Dockerfiles, compose files and
//! Kubernetes manifests.
//!
//! [`discover`] finds every reference, with its file and line, through the `[sources]` globs.
//! [`rewrite`] pins them to the locked digests without touching any other byte, [`check`] is
//! check 2 of `verify`, and [`starter`] writes the config `aisupply init` proposes.
//!
//! A reference is either written literally (its bytes can be rewritten in place), built from
//! variables that have values (it can be checked, not rewritten), or still holds a variable
//! with no value (it is reported as unresolved rather than guessed).

pub mod check;
pub mod compose;
pub mod dockerfile;
pub mod kubernetes;
pub mod rewrite;
pub mod starter;
mod vars;
mod walk;
mod yaml;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Sources;
use crate::reference::{Reference, ReferenceError};

pub use walk::{DEFAULT_COMPOSE, DEFAULT_DOCKERFILES, DEFAULT_KUBERNETES, SourceGlobs};

/// The kinds of file that hold image references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A Dockerfile or Containerfile.
    Dockerfile,
    /// A compose file.
    Compose,
    /// Kubernetes manifests, possibly several YAML documents.
    Kubernetes,
}

impl SourceKind {
    /// The lowercase word used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dockerfile => "dockerfile",
            Self::Compose => "compose",
            Self::Kubernetes => "kubernetes",
        }
    }
}

/// One image reference found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The file, as shown to the user.
    pub file: PathBuf,
    /// The 1-based line where the reference's text is written.
    pub line: usize,
    /// Where in the file it is used, such as `FROM` or `service web`.
    pub context: String,
    /// The reference as written where it is used, variables included.
    pub written: String,
    /// What the reference is, as far as the file alone tells.
    pub image: Image,
}

/// What a found reference resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// Written literally: the bytes at `span` of the file are the reference.
    Literal {
        /// The normalized reference.
        reference: Reference,
        /// The byte range of the reference in the file.
        span: Range<usize>,
    },
    /// Built from variables that have values: it can be checked but not rewritten in place.
    Substituted {
        /// The normalized reference.
        reference: Reference,
    },
    /// Holds a variable that has no value here.
    Unresolved {
        /// The variable's name.
        variable: String,
    },
}

impl Found {
    /// The normalized reference, unless it is unresolved.
    pub fn reference(&self) -> Option<&Reference> {
        match &self.image {
            Image::Literal { reference, .. } | Image::Substituted { reference } => Some(reference),
            Image::Unresolved { .. } => None,
        }
    }
}

/// A source file that was read and understood.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The file, as shown to the user.
    pub path: PathBuf,
    /// Where the file is on disk.
    pub disk_path: PathBuf,
    /// What kind of file it is.
    pub kind: SourceKind,
    /// The file's text, exactly as read.
    pub text: String,
    /// The references in it, in file order.
    pub references: Vec<Found>,
}

/// Everything [`discover`] found: the files it understood and the ones it could not read.
#[derive(Debug, Default)]
pub struct Discovery {
    /// Files read, sorted by path.
    pub files: Vec<SourceFile>,
    /// Files that could not be read or understood, sorted by path.
    pub problems: Vec<SourceError>,
    /// Files a glob matched but that are not read, such as Helm templates, sorted by path.
    pub skipped: Vec<SkippedFile>,
}

/// A file a `[sources]` glob matches that is left alone, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// The file, as shown to the user.
    pub path: PathBuf,
    /// Why it is not read.
    pub reason: String,
}

/// What reading one source file gives.
#[derive(Debug)]
pub enum Scanned {
    /// The file and its references.
    File(SourceFile),
    /// The file is not one to read references from.
    Skipped(SkippedFile),
}

impl Discovery {
    /// Every reference of every file, in file order.
    pub fn references(&self) -> impl Iterator<Item = &Found> {
        self.files.iter().flat_map(|f| f.references.iter())
    }
}

/// Why one source file could not be used. The other files are still read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("`{}` line {line} is not UTF-8 text", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The line of the first byte that is not UTF-8.
        line: usize,
    },
    /// The YAML does not parse.
    #[error("`{}` line {line} column {column}: the YAML does not parse: {message}", path.display())]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// The parser's explanation.
        message: String,
    },
    /// A Dockerfile instruction ends in a line continuation at the end of the file.
    #[error(
        "`{}` line {line}: the instruction continues with `{escape}` at the end of line {last}, \
         but the file ends there",
        path.display()
    )]
    UnterminatedContinuation {
        /// The file.
        path: PathBuf,
        /// The line the instruction starts on.
        line: usize,
        /// The line with the dangling continuation.
        last: usize,
        /// The escape character (`\` or a backtick).
        escape: char,
    },
    /// A reference does not follow the reference grammar.
    #[error("`{}` line {line}: `{written}` is not a valid image reference", path.display())]
    InvalidReference {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The reference as written (after variable substitution).
        written: String,
        /// What is wrong with it.
        #[source]
        source: Box<ReferenceError>,
    },
}

impl SourceError {
    /// The file the problem is in.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. }
            | Self::NotUtf8 { path, .. }
            | Self::Yaml { path, .. }
            | Self::UnterminatedContinuation { path, .. }
            | Self::InvalidReference { path, .. } => path,
        }
    }

    /// The 1-based line of the problem, when there is one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Read { .. } => None,
            Self::NotUtf8 { line, .. }
            | Self::Yaml { line, .. }
            | Self::UnterminatedContinuation { last: line, .. }
            | Self::InvalidReference { line, .. } => Some(*line),
        }
    }

    /// The exact step that fixes the problem.
    pub fn hint(&self) -> Option<String> {
        let exclude = "or leave the file out with `exclude = [\"<glob>\"]` under `[sources]` in \
                       aisupply.toml";
        Some(match self {
            Self::Read { .. } => return None,
            Self::NotUtf8 { .. } => format!("save the file as UTF-8, {exclude}"),
            Self::Yaml { .. } => format!("fix the YAML at that line, {exclude}"),
            Self::UnterminatedContinuation { escape, .. } => {
                format!("remove the trailing `{escape}` or finish the instruction on the next line")
            }
            Self::InvalidReference { .. } => {
                "write the reference as `name:tag`, such as `ubuntu:22.04` or `ghcr.io/org/app:1.0`"
                    .to_owned()
            }
        })
    }
}

/// Why discovery could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// A `[sources]` glob does not parse.
    #[error("`[sources]` glob `{glob}` is invalid")]
    Glob {
        /// The glob as written.
        glob: String,
        /// The parser's explanation.
        #[source]
        source: globset::Error,
    },
    /// A path given on the command line does not exist.
    #[error("`{}` does not exist", path.display())]
    MissingPath {
        /// The path as given.
        path: PathBuf,
    },
    /// The paths given on the command line select no source file.
    #[error("no source file was selected by {}: {reason}", quoted(paths))]
    NothingSelected {
        /// The paths as given.
        paths: Vec<PathBuf>,
        /// Why, such as `.gitignore` or no `[sources]` glob matching.
        reason: String,
    },
    /// A file given on the command line is not a Dockerfile, compose file or manifest.
    #[error("cannot tell whether `{}` is a Dockerfile, a compose file or a Kubernetes manifest", path.display())]
    UnknownKind {
        /// The path as given.
        path: PathBuf,
    },
}

impl DiscoveryError {
    /// The exact step that fixes the problem.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Glob { .. } => {
                Some("globs look like `**/Dockerfile` or `deploy/**/*.yaml`".into())
            }
            Self::MissingPath { .. } => None,
            Self::NothingSelected { .. } => Some(
                "give paths to Dockerfiles, compose files or manifests that `[sources]` in \
                 aisupply.toml matches and `.gitignore` does not hide"
                    .to_owned(),
            ),
            Self::UnknownKind { .. } => Some(
                "add the file to `dockerfiles`, `compose` or `kubernetes` under `[sources]` in \
                 aisupply.toml"
                    .to_owned(),
            ),
        }
    }
}

fn quoted(paths: &[PathBuf]) -> String {
    let quoted: Vec<String> = paths.iter().map(|p| format!("`{}`", p.display())).collect();
    quoted.join(", ")
}

/// Values for `${VAR}` in compose files: the environment, which wins over `.env`.
pub type Environment = BTreeMap<String, String>;

/// Find every image reference in the source files under `root`.
///
/// `sources` chooses the files (defaults where a list is absent); `.gitignore`d paths are
/// skipped. When `only` is not empty, just the files at or under those paths are read. A file
/// that cannot be read or understood becomes a problem; the others are still read.
pub fn discover(
    root: &Path,
    sources: Option<&Sources>,
    only: &[PathBuf],
    env: &Environment,
) -> Result<Discovery, DiscoveryError> {
    let globs = SourceGlobs::new(sources)?;
    let candidates = walk::candidates(root, &globs, only)?;
    if !only.is_empty() && candidates.is_empty() {
        return Err(DiscoveryError::NothingSelected {
            paths: only.to_owned(),
            reason: walk::why_nothing(root, &globs, only),
        });
    }

    let mut discovery = Discovery::default();
    for result in walk::read_all(&candidates, env) {
        match result {
            Ok(Scanned::File(file)) => discovery.files.push(file),
            Ok(Scanned::Skipped(skipped)) => discovery.skipped.push(skipped),
            Err(problem) => discovery.problems.push(problem),
        }
    }
    discovery.files.sort_by(|a, b| a.path.cmp(&b.path));
    discovery.problems.sort_by(|a, b| a.path().cmp(b.path()));
    discovery.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(discovery)
}

/// Read one file of `kind` and find its references; a Helm template is skipped.
pub fn scan_file(
    path: &Path,
    disk_path: &Path,
    kind: SourceKind,
    env: &Environment,
) -> Result<Scanned, SourceError> {
    let bytes = std::fs::read(disk_path).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| SourceError::NotUtf8 {
        path: path.to_owned(),
        line: line_of(e.as_bytes(), e.utf8_error().valid_up_to()),
    })?;
    if kind == SourceKind::Kubernetes && kubernetes::is_template(&text) {
        return Ok(Scanned::Skipped(SkippedFile {
            path: path.to_owned(),
            reason: kubernetes::TEMPLATE.to_owned(),
        }));
    }
    let references = match kind {
        SourceKind::Dockerfile => dockerfile::scan(path, &text)?,
        SourceKind::Compose => {
            let dir = disk_path.parent().unwrap_or(Path::new("."));
            compose::scan(path, &text, &compose::variables(dir, env))?
        }
        SourceKind::Kubernetes => kubernetes::scan(path, &text)?,
    };
    Ok(Scanned::File(SourceFile {
        path: path.to_owned(),
        disk_path: disk_path.to_owned(),
        kind,
        text,
        references,
    }))
}

/// The 1-based line of byte `offset` in `bytes`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    // The bytes before the first invalid one are valid UTF-8.
    std::str::from_utf8(&bytes[..offset]).map_or(1, |text| text.matches('\n').count() + 1)
}

/// Parse `written` (as found at `line` of `path`) into a reference.
fn parse_reference(path: &Path, line: usize, written: &str) -> Result<Reference, SourceError> {
    Reference::parse(written).map_err(|source| SourceError::InvalidReference {
        path: path.to_owned(),
        line,
        written: written.to_owned(),
        source: Box::new(source),
    })
}

/// The reference in a YAML scalar: literal when it holds no variable, else substituted by
/// `lookup` (compose) or unresolved (Kubernetes, where nothing substitutes it).
fn yaml_reference(
    path: &Path,
    scalar: &yaml::Scalar,
    context: &str,
    lookup: Option<&vars::Lookup>,
) -> Result<Found, SourceError> {
    let written = scalar.value.trim();
    let found = |image| Found {
        file: path.to_owned(),
        line: scalar.line,
        context: context.to_owned(),
        written: written.to_owned(),
        image,
    };
    let template = written.contains('$') || written.contains("{{");
    if !template {
        let reference = parse_reference(path, scalar.line, written)?;
        return Ok(found(match &scalar.span {
            Some(span) => Image::Literal {
                reference,
                span: span.clone(),
            },
            _ => Image::Substituted { reference },
        }));
    }
    let expanded = match lookup {
        Some(lookup) if !written.contains("{{") => vars::expand(written, lookup, true),
        _ => vars::Expanded::Unset(written.to_owned()),
    };
    match expanded {
        vars::Expanded::Value(value) => {
            let reference = parse_reference(path, scalar.line, &value)?;
            Ok(found(Image::Substituted { reference }))
        }
        vars::Expanded::Unset(variable) => Ok(found(Image::Unresolved { variable })),
    }
}
