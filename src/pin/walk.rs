//! Choosing the source files: `[sources]` globs over a `.gitignore`-aware walk.

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{
    DiscoveryError, Environment, Scanned, SkippedFile, SourceError, SourceKind, scan_file,
};
use crate::config::Sources;

/// The Dockerfile globs used when `[sources]` has no `dockerfiles`.
pub const DEFAULT_DOCKERFILES: &[&str] = &[
    "**/Dockerfile",
    "**/Dockerfile.*",
    "**/*.Dockerfile",
    "**/Containerfile",
];

/// The compose globs used when `[sources]` has no `compose`.
pub const DEFAULT_COMPOSE: &[&str] = &["**/compose*.y*ml", "**/docker-compose*.y*ml"];

/// The Kubernetes globs used when `[sources]` has no `kubernetes`.
pub const DEFAULT_KUBERNETES: &[&str] = &[
    "**/k8s/**/*.y*ml",
    "**/kubernetes/**/*.y*ml",
    "**/deploy/**/*.y*ml",
    "**/manifests/**/*.y*ml",
];

/// The globs of each kind of source file, compiled.
#[derive(Debug, Clone)]
pub struct SourceGlobs {
    /// The globs as written, per kind, in the order files are classified.
    pub written: Vec<(SourceKind, Vec<String>)>,
    sets: Vec<(SourceKind, GlobSet)>,
    /// `[sources]` `exclude`: files left out whichever list matches them.
    exclude: GlobSet,
}

impl SourceGlobs {
    /// Compile `[sources]`, using the defaults for each list that is absent.
    pub fn new(sources: Option<&Sources>) -> Result<Self, DiscoveryError> {
        let sources = sources.cloned().unwrap_or_default();
        let or_default = |list: Option<Vec<String>>, default: &[&str]| {
            list.unwrap_or_else(|| default.iter().map(|&g| g.to_owned()).collect())
        };
        let written = vec![
            (
                SourceKind::Dockerfile,
                or_default(sources.dockerfiles, DEFAULT_DOCKERFILES),
            ),
            (
                SourceKind::Compose,
                or_default(sources.compose, DEFAULT_COMPOSE),
            ),
            (
                SourceKind::Kubernetes,
                or_default(sources.kubernetes, DEFAULT_KUBERNETES),
            ),
        ];
        let mut sets = Vec::with_capacity(written.len());
        for (kind, globs) in &written {
            sets.push((*kind, compile(globs)?));
        }
        let exclude = compile(&sources.exclude)?;
        Ok(Self {
            written,
            sets,
            exclude,
        })
    }

    /// The kind of the file at `relative` (with `/` separators), if a glob matches it.
    /// Dockerfile globs are tried first, then compose, then Kubernetes. A `.dockerignore` file
    /// is never a Dockerfile, and an excluded file has no kind.
    pub fn classify(&self, relative: &Path) -> Option<SourceKind> {
        if self.is_excluded(relative) {
            return None;
        }
        let dockerignore = relative
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.to_ascii_lowercase().ends_with(".dockerignore"));
        self.sets
            .iter()
            .filter(|(kind, _)| !(dockerignore && *kind == SourceKind::Dockerfile))
            .find(|(_, set)| set.is_match(relative))
            .map(|(kind, _)| *kind)
    }

    /// Whether `[sources]` `exclude` leaves the file at `relative` out.
    pub fn is_excluded(&self, relative: &Path) -> bool {
        self.exclude.is_match(relative)
    }
}

fn compile(globs: &[String]) -> Result<GlobSet, DiscoveryError> {
    let mut set = GlobSetBuilder::new();
    for glob in globs {
        let compiled = GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|source| DiscoveryError::Glob {
                glob: glob.clone(),
                source,
            })?;
        set.add(compiled);
    }
    set.build().map_err(|source| DiscoveryError::Glob {
        glob: globs.join(", "),
        source,
    })
}

/// A file to read: as shown, on disk, its kind, and why it is skipped unread, if it is.
pub(super) struct Candidate {
    shown: PathBuf,
    disk: PathBuf,
    kind: SourceKind,
    skip: Option<&'static str>,
}

/// The source files under `root`, restricted to `only` when it is not empty, sorted by path.
pub(super) fn candidates(
    root: &Path,
    globs: &SourceGlobs,
    only: &[PathBuf],
) -> Result<Vec<Candidate>, DiscoveryError> {
    let mut found = walk(root, globs);
    if only.is_empty() {
        return Ok(found);
    }

    // Keep what lies under a given path; a given file no glob matches is classified by name.
    let canonical_root = canonical(root)?;
    let wanted = only
        .iter()
        .map(|p| canonical(p).map(|c| (p, c)))
        .collect::<Result<Vec<_>, _>>()?;
    found.retain(|c| {
        let full = canonical_root.join(c.disk.strip_prefix(root).unwrap_or(&c.disk));
        wanted.iter().any(|(_, w)| full.starts_with(w))
    });
    for (given, full) in &wanted {
        let known = found
            .iter()
            .any(|c| canonical_root.join(c.disk.strip_prefix(root).unwrap_or(&c.disk)) == *full);
        if full.is_file() && !known {
            let kind = kind_by_name(given).ok_or_else(|| DiscoveryError::UnknownKind {
                path: (*given).clone(),
            })?;
            found.push(Candidate {
                shown: (*given).clone(),
                disk: (*given).clone(),
                kind,
                skip: helm_file(given, kind),
            });
        }
    }
    found.sort_by(|a, b| a.shown.cmp(&b.shown));
    Ok(found)
}

fn canonical(path: &Path) -> Result<PathBuf, DiscoveryError> {
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    path.canonicalize()
        .map_err(|_| DiscoveryError::MissingPath {
            path: path.to_owned(),
        })
}

/// Every file under `root` that a glob matches, skipping `.git` and ignored paths. Directories
/// are read on as many threads as there are cores.
fn walk(root: &Path, globs: &SourceGlobs) -> Vec<Candidate> {
    let start = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let walker = ignore::WalkBuilder::new(start)
        .hidden(false)
        .require_git(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build_parallel();

    let found = std::sync::Mutex::new(Vec::new());
    walker.run(|| {
        Box::new(|entry| {
            if let Some(candidate) = entry.ok().and_then(|e| candidate(e, root, start, globs)) {
                found
                    .lock()
                    .expect("a walker thread panicked")
                    .push(candidate);
            }
            ignore::WalkState::Continue
        })
    });
    let mut found = found.into_inner().expect("a walker thread panicked");
    found.sort_by(|a, b| a.shown.cmp(&b.shown));
    found
}

/// The walked `entry` as a candidate, if it is a file a glob matches.
fn candidate(
    entry: ignore::DirEntry,
    root: &Path,
    start: &Path,
    globs: &SourceGlobs,
) -> Option<Candidate> {
    if !entry.file_type().is_some_and(|t| t.is_file()) {
        return None;
    }
    let disk = entry.into_path();
    let relative = disk.strip_prefix(start).ok()?;
    let kind = globs.classify(relative)?;
    let shown = if start == Path::new(".") {
        relative.to_owned()
    } else {
        root.join(relative)
    };
    let skip = helm_file(&disk, kind);
    Some(Candidate {
        shown,
        disk,
        kind,
        skip,
    })
}

/// Why a YAML file of a Helm chart is not a manifest: a chart's templates render to manifests
/// only through `helm template`, and its values files hold settings, not manifests.
fn helm_file(disk: &Path, kind: SourceKind) -> Option<&'static str> {
    if kind != SourceKind::Kubernetes {
        return None;
    }
    let is_chart = |dir: &Path| dir.join("Chart.yaml").is_file() || dir.join("Chart.yml").is_file();
    let dir = disk.parent()?;
    let name = disk.file_name()?.to_str()?.to_ascii_lowercase();
    if name.starts_with("values") && is_chart(dir) {
        return Some("it holds a Helm chart's values, not Kubernetes manifests");
    }
    let in_templates = disk
        .ancestors()
        .skip(1)
        .find(|a| a.file_name().is_some_and(|n| n == "templates"))
        .and_then(Path::parent);
    in_templates
        .is_some_and(is_chart)
        .then_some(super::kubernetes::TEMPLATE)
}

/// Why the paths `only` select no file: `.gitignore`, `[sources]` `exclude`, or no glob.
pub(super) fn why_nothing(root: &Path, globs: &SourceGlobs, only: &[PathBuf]) -> String {
    let start = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let canonical_root = start.canonicalize().unwrap_or_else(|_| start.to_owned());
    let wanted: Vec<PathBuf> = only.iter().filter_map(|p| canonical(p).ok()).collect();
    let (mut ignored, mut excluded) = (false, false);
    for entry in ignore::WalkBuilder::new(start)
        .standard_filters(false)
        .filter_entry(|entry| entry.file_name() != ".git")
        .build()
        .flatten()
    {
        let Ok(relative) = entry.path().strip_prefix(start) else {
            continue;
        };
        let full = canonical_root.join(relative);
        let under = wanted.iter().any(|w| full.starts_with(w));
        if !under || !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        if globs.is_excluded(relative) {
            excluded = true;
        } else if globs.classify(relative).is_some() {
            ignored = true;
        }
    }
    if ignored {
        "`.gitignore` hides the files there".to_owned()
    } else if excluded {
        "`[sources]` `exclude` leaves the files there out".to_owned()
    } else {
        "no file there matches a `[sources]` glob".to_owned()
    }
}

/// The kind of a file named on the command line that no glob matches.
fn kind_by_name(path: &Path) -> Option<SourceKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let extension = Path::new(&name).extension().and_then(|e| e.to_str());
    let yaml = matches!(extension, Some("yaml" | "yml"));
    if name.ends_with(".dockerignore") {
        None
    } else if name.contains("dockerfile") || name.contains("containerfile") {
        Some(SourceKind::Dockerfile)
    } else if yaml && (name.starts_with("compose") || name.starts_with("docker-compose")) {
        Some(SourceKind::Compose)
    } else if yaml {
        Some(SourceKind::Kubernetes)
    } else {
        None
    }
}

/// Read and scan every candidate, on as many threads as there are cores.
pub(super) fn read_all(
    candidates: &[Candidate],
    env: &Environment,
) -> Vec<Result<Scanned, SourceError>> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = candidates.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|c| match c.skip {
                            Some(reason) => Ok(Scanned::Skipped(SkippedFile {
                                path: c.shown.clone(),
                                reason: reason.to_owned(),
                            })),
                            None => scan_file(&c.shown, &c.disk, c.kind, env),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a source scanning thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_globs_classify_common_layouts() {
        let globs = SourceGlobs::new(None).unwrap();
        let kind = |p: &str| globs.classify(Path::new(p));
        assert_eq!(kind("Dockerfile"), Some(SourceKind::Dockerfile));
        assert_eq!(kind("svc/api/Dockerfile"), Some(SourceKind::Dockerfile));
        assert_eq!(kind("build/gpu.Dockerfile"), Some(SourceKind::Dockerfile));
        assert_eq!(kind("compose.yaml"), Some(SourceKind::Compose));
        assert_eq!(
            kind("ops/docker-compose.prod.yml"),
            Some(SourceKind::Compose)
        );
        assert_eq!(kind("deploy/base/app.yaml"), Some(SourceKind::Kubernetes));
        assert_eq!(kind("README.md"), None);
        assert_eq!(kind("Dockerfile.dockerignore"), None);
        assert_eq!(kind("svc/api.Dockerfile.dockerignore"), None);
        assert_eq!(kind(".github/workflows/ci.yaml"), None);
    }

    #[test]
    fn a_configured_list_replaces_only_its_own_default() {
        let sources = Sources {
            kubernetes: Some(vec!["ops/*.yaml".to_owned()]),
            ..Sources::default()
        };
        let globs = SourceGlobs::new(Some(&sources)).unwrap();
        assert_eq!(
            globs.classify(Path::new("ops/a.yaml")),
            Some(SourceKind::Kubernetes)
        );
        assert_eq!(globs.classify(Path::new("ops/x/a.yaml")), None);
        assert_eq!(globs.classify(Path::new("deploy/a.yaml")), None);
        assert_eq!(
            globs.classify(Path::new("Dockerfile")),
            Some(SourceKind::Dockerfile)
        );
    }

    #[test]
    fn dockerignore_files_are_not_dockerfiles() {
        let globs = SourceGlobs::new(None).unwrap();
        assert_eq!(globs.classify(Path::new("Dockerfile.dockerignore")), None);
        assert_eq!(
            globs.classify(Path::new("app/Dockerfile.dockerignore")),
            None
        );
        assert_eq!(
            globs.classify(Path::new("app/Dockerfile.prod")),
            Some(SourceKind::Dockerfile)
        );
    }

    #[test]
    fn sources_exclude_leaves_files_out() {
        let sources = Sources {
            exclude: vec![
                "deploy/legacy/**".to_owned(),
                "**/Dockerfile.old".to_owned(),
            ],
            ..Sources::default()
        };
        let globs = SourceGlobs::new(Some(&sources)).unwrap();
        assert_eq!(globs.classify(Path::new("deploy/legacy/a.yaml")), None);
        assert_eq!(globs.classify(Path::new("svc/Dockerfile.old")), None);
        assert_eq!(
            globs.classify(Path::new("deploy/base/a.yaml")),
            Some(SourceKind::Kubernetes)
        );
    }

    #[test]
    fn an_invalid_glob_names_itself() {
        let sources = Sources {
            compose: Some(vec!["compose[.yaml".to_owned()]),
            ..Sources::default()
        };
        let err = SourceGlobs::new(Some(&sources)).unwrap_err();
        assert!(err.to_string().contains("compose[.yaml"), "{err}");
    }
}
