//! Running Trivy and Grype from PATH against the locked digests.
//!
//! Each locked platform manifest is scanned by digest (`name@sha256:…`), straight from the
//! registry rather than from a local Docker daemon, so that the report is about exactly the
//! bytes the lock pins. The tools write their JSON to a file, which is then read like any
//! other report.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::ScanError;
use super::format::{self, Report};
use super::model::Tool;
use crate::config::Config;
use crate::digest::Digest;
use crate::lock::{LockFile, LockedImage};

/// One thing to scan: a locked image at one of its locked digests.
#[derive(Clone, Debug)]
pub struct Target<'a> {
    /// The locked image.
    pub image: &'a LockedImage,
    /// The digest to scan: a platform's manifest, or the top-level digest of a single-platform
    /// image.
    pub digest: Digest,
    /// The platform, for an index.
    pub platform: Option<&'a str>,
}

impl Target<'_> {
    /// The reference the tools are given: `registry/repository@digest`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.image.reference.name(), self.digest)
    }
}

/// Every locked platform manifest, or the top-level digest of an image locked without any.
pub fn targets(lock: &LockFile) -> Vec<Target<'_>> {
    let mut targets = Vec::new();
    for image in &lock.images {
        if image.manifests.is_empty() {
            targets.push(Target {
                image,
                digest: image.digest.clone(),
                platform: None,
            });
        }
        for m in &image.manifests {
            targets.push(Target {
                image,
                digest: m.digest.clone(),
                platform: Some(&m.platform),
            });
        }
    }
    targets
}

/// The executables of the `requested` tools; none requested means every tool on PATH.
pub fn find_tools(requested: &[Tool]) -> Result<Vec<(Tool, PathBuf)>, ScanError> {
    if requested.is_empty() {
        let found: Vec<(Tool, PathBuf)> = Tool::ALL
            .into_iter()
            .filter_map(|t| find_on_path(t.as_str()).map(|p| (t, p)))
            .collect();
        return if found.is_empty() {
            Err(ScanError::NoTools)
        } else {
            Ok(found)
        };
    }
    let mut found = Vec::new();
    for &tool in requested {
        if found.iter().any(|(t, _)| *t == tool) {
            continue;
        }
        let path = find_on_path(tool.as_str()).ok_or(ScanError::ToolMissing { tool })?;
        found.push((tool, path));
    }
    Ok(found)
}

/// The first executable file named `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Whether the tools must talk plain HTTP to `registry`, as aisupply itself does.
pub fn insecure(config: &Config, registry: &str) -> bool {
    config
        .registries
        .get(registry)
        .and_then(|s| s.insecure)
        .unwrap_or_else(|| crate::registry::is_loopback(registry))
}

/// The empty files given to the tools in place of a repository's own config and ignore files.
const EMPTY_FILES: [&str; 3] = ["trivy-config.yaml", "trivyignore", "grype-config.yaml"];

/// Run `tool` (at `exe`) on `target`, writing its report into `dir`, and read the report.
///
/// The tool runs in `dir`, an empty temporary directory, with explicit empty config and ignore
/// files: Trivy reads `trivy.yaml` and `.trivyignore` from its working directory and Grype
/// searches for `.grype.yaml` there and in the home directory, and any of them could drop
/// findings unseen. Only `[[scan.allow]]`, which requires a reason, may set a finding aside.
pub fn scan(
    tool: Tool,
    exe: &Path,
    target: &Target,
    insecure: bool,
    dir: &Path,
) -> Result<Report, ScanError> {
    let reference = target.reference();
    let output = dir.join(format!("{tool}-{}.json", target.digest.hex()));
    let failed = |status: Option<String>, source: Box<dyn std::error::Error + Send + Sync>| {
        ScanError::ToolFailed {
            tool,
            target: reference.clone(),
            status,
            source,
        }
    };

    // Isolate the tool from the repository's config: an empty working directory and empty files.
    for name in EMPTY_FILES {
        std::fs::write(dir.join(name), "").map_err(|e| failed(None, Box::new(e)))?;
    }
    let exe = std::path::absolute(exe).map_err(|e| failed(None, Box::new(e)))?;
    let mut command = Command::new(exe);
    command
        .current_dir(dir)
        .args(arguments(tool, &reference, &output, insecure, dir));
    if tool == Tool::Grype && insecure {
        command.env("GRYPE_REGISTRY_INSECURE_USE_HTTP", "true");
    }
    tracing::debug!(?command, "running scanner");

    let result = command.output().map_err(|e| failed(None, Box::new(e)))?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        return Err(failed(
            Some(result.status.to_string()),
            Box::new(ToolOutput(tail(&stderr))),
        ));
    }

    let mut report = format::read(&output).map_err(|e| failed(None, Box::new(e)))?;
    report.path = PathBuf::from(format!("{tool}:{reference}"));
    Ok(report)
}

/// The command line; `dir` holds the empty config and ignore files.
fn arguments(
    tool: Tool,
    reference: &str,
    output: &Path,
    insecure: bool,
    dir: &Path,
) -> Vec<OsString> {
    let [trivy_config, trivy_ignore, grype_config] = EMPTY_FILES.map(|n| dir.join(n));
    let mut args: Vec<OsString> = match tool {
        Tool::Trivy => ["image", "--quiet", "--format", "json", "--scanners", "vuln"]
            .into_iter()
            .chain(["--image-src", "remote"])
            .map(OsString::from)
            .chain(["--config".into(), trivy_config.into()])
            .chain(["--ignorefile".into(), trivy_ignore.into()])
            .chain(["--output".into()])
            .collect(),
        Tool::Grype => ["--quiet", "--output", "json"]
            .into_iter()
            .map(OsString::from)
            .chain(["--config".into(), grype_config.into()])
            .chain(["--file".into()])
            .collect(),
    };
    args.push(output.as_os_str().to_owned());
    if tool == Tool::Trivy && insecure {
        args.push("--insecure".into());
    }
    args.push(match tool {
        Tool::Trivy => reference.into(),
        Tool::Grype => format!("registry:{reference}").into(),
    });
    args
}

/// The last lines of a tool's stderr, enough to see why it failed.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(12);
    let tail = lines[start..].join("\n");
    if tail.is_empty() {
        "(it printed nothing on stderr)".to_owned()
    } else {
        tail
    }
}

/// What a failed tool printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ToolOutput(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trivy_scans_the_registry_by_digest() {
        let args = arguments(
            Tool::Trivy,
            "r.io/a@sha256:ab",
            Path::new("/t/o.json"),
            false,
            Path::new("/t"),
        );
        let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "image",
                "--quiet",
                "--format",
                "json",
                "--scanners",
                "vuln",
                "--image-src",
                "remote",
                "--config",
                "/t/trivy-config.yaml",
                "--ignorefile",
                "/t/trivyignore",
                "--output",
                "/t/o.json",
                "r.io/a@sha256:ab"
            ]
        );
    }

    #[test]
    fn grype_is_told_to_pull_from_the_registry() {
        let args = arguments(
            Tool::Grype,
            "r.io/a@sha256:ab",
            Path::new("/t/o.json"),
            true,
            Path::new("/t"),
        );
        assert_eq!(args.last().unwrap(), "registry:r.io/a@sha256:ab");
        let config = args.iter().position(|a| a == "--config").unwrap();
        assert_eq!(args[config + 1], "/t/grype-config.yaml");
    }

    #[test]
    fn insecure_trivy_gets_the_flag() {
        let args = arguments(
            Tool::Trivy,
            "localhost:5000/a@sha256:ab",
            Path::new("o"),
            true,
            Path::new("/t"),
        );
        assert!(args.iter().any(|a| a == "--insecure"));
    }
}
