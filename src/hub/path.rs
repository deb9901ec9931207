//! Untrusted names: repository ids, revisions and file paths from a Hub listing or a lockfile.
//!
//! A file path becomes a path on disk below a target directory, so anything that could leave
//! that directory (`..`, an absolute path, a backslash that Windows reads as a separator, a
//! control character) is refused before any byte is written.

use std::fmt::Write as _;

use super::HubError;
use crate::lock::LockedModel;

/// Check a repository id: `name` or `org/name`, letters, digits, `.`, `_` and `-`.
pub fn check_repo(repo: &str) -> Result<(), HubError> {
    let part_ok = |part: &str| {
        !part.is_empty()
            && part.len() <= 96
            && part.as_bytes()[0].is_ascii_alphanumeric()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !part.contains("--")
            && !part.contains("..")
    };
    let mut parts = repo.split('/');
    let ok = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => part_ok(name),
        (Some(org), Some(name), None) => part_ok(org) && part_ok(name),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(HubError::InvalidRepo {
            repo: repo.to_owned(),
        })
    }
}

/// Check a revision: a branch, tag, `refs/pr/N` or commit, which becomes a file under `refs/`.
pub fn check_revision(repo: &str, revision: &str) -> Result<(), HubError> {
    if check_relative(revision).is_ok() {
        Ok(())
    } else {
        Err(HubError::InvalidRevision {
            repo: repo.to_owned(),
            revision: revision.to_owned(),
        })
    }
}

/// Whether `commit` is a full 40-hex lowercase git commit id.
pub fn is_commit(commit: &str) -> bool {
    commit.len() == 40
        && commit
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Check every name of a locked model that becomes a path on disk: its repository id, revision,
/// commit and file paths. `pull` and `verify` both run it before touching a file.
pub fn check_model(model: &LockedModel) -> Result<(), HubError> {
    check_repo(&model.repo)?;
    check_revision(&model.repo, &model.revision)?;
    if !is_commit(&model.commit) {
        return Err(HubError::InvalidRevision {
            repo: model.repo.clone(),
            revision: model.commit.clone(),
        });
    }
    for file in &model.files {
        check_file(&model.repo, &file.path)?;
    }
    Ok(())
}

/// Check a file path of a repository; the error names the repository and the path.
pub fn check_file(repo: &str, path: &str) -> Result<(), HubError> {
    check_relative(path).map_err(|reason| HubError::UnsafePath {
        repo: repo.to_owned(),
        path: path.to_owned(),
        reason,
    })
}

/// Why `path` is not a plain relative path that stays below its base, if it is not.
fn check_relative(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("it is empty");
    }
    if path.starts_with('/') {
        return Err("it is an absolute path");
    }
    if path.contains('\\') {
        return Err("it contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return Err("it contains a control character");
    }
    for component in path.split('/') {
        match component {
            "" => return Err("it has an empty path component"),
            "." | ".." => return Err("it has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// Percent-encode one URL path segment (everything but unreserved characters).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Percent-encode a file path, keeping its `/` separators.
pub fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_ids() {
        for ok in [
            "gpt2",
            "sentence-transformers/all-MiniLM-L6-v2",
            "org/model.v1_2",
        ] {
            assert!(check_repo(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/x", "a/b/c", "a/../b", "../a", "a/.b", "a--b/c", "a b/c", "a/",
        ] {
            assert!(check_repo(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_paths_that_escape_are_refused() {
        for ok in [
            "config.json",
            "1_Pooling/config.json",
            "onnx/model.onnx",
            "a..b",
        ] {
            assert!(check_file("r", ok).is_ok(), "{ok}");
        }
        for bad in [
            "../x",
            "/etc/x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "..",
            "a\\..\\b",
            "a\nb",
            "",
        ] {
            assert!(check_file("r", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn revisions() {
        assert!(check_revision("r", "main").is_ok());
        assert!(check_revision("r", "refs/pr/1").is_ok());
        assert!(check_revision("r", "../main").is_err());
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("0123456789ABCDEF0123456789abcdef01234567"));
        assert!(!is_commit("main"));
    }

    #[test]
    fn encoding_keeps_separators_and_escapes_the_rest() {
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_path("a b/c#d.json"), "a%20b/c%23d.json");
    }
}
