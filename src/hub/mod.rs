//! Hugging Face models: locking `[[model]]` entries and pulling locked files, verified.
//!
//! Locking asks the Hub which commit a revision names and which files it holds, and records for
//! every selected file its size, SHA-256 and git blob SHA-1. Pulling downloads each locked file
//! at the locked commit, hashing while it streams, and places a file where a model loader reads
//! it only once its SHA-256 matches the lock.
//!
//! We talk to the Hub with `reqwest` rather than the `hf-hub` crate. `hf-hub` 1.x verifies
//! nothing it downloads, reads none of the `HF_*` variables, follows the `/resolve` redirect
//! itself (so the `X-Linked-Etag` of the redirect and the choice of which host receives the
//! token are out of our hands), and writes into the cache before any check could run. What is
//! left of it, a URL scheme and a JSON shape, is a few lines here.
//!
//! The module is split by concern: [`env`] reads the `HF_*` variables, [`client`] speaks HTTP
//! to the Hub, [`select`] applies `include`/`exclude`, [`path`] rejects untrusted names,
//! [`lock`] turns `[[model]]` entries into lock entries, [`layout`] knows where files go,
//! [`pull`] downloads and places them, and [`check`] re-hashes what is on disk.

pub mod check;
pub mod client;
mod download;
pub mod env;
pub mod from_mirror;
pub mod layout;
pub mod lock;
pub mod path;
pub mod pull;
pub mod select;

use std::path::PathBuf;

use reqwest::StatusCode;

use crate::digest::Mismatch;

pub use client::Client;
pub use env::Settings;

/// Why a Hub operation could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// `HF_ENDPOINT` is not a URL.
    #[error("`HF_ENDPOINT` is `{endpoint}`, which is not an http(s) URL")]
    BadEndpoint {
        /// The value given.
        endpoint: String,
    },
    /// The token cannot be sent in an HTTP header.
    #[error("the Hub token from {from} holds a control or non-ASCII character")]
    BadToken {
        /// Where the token came from (never the token).
        from: String,
    },
    /// The repository id is malformed.
    #[error("`{repo}` is not a Hugging Face repository id")]
    InvalidRepo {
        /// The id given.
        repo: String,
    },
    /// The revision is malformed.
    #[error("revision `{revision}` of model `{repo}` is malformed")]
    InvalidRevision {
        /// The repository.
        repo: String,
        /// The revision given.
        revision: String,
    },
    /// The same repository appears twice in the config.
    #[error("model `{repo}` appears twice in `{}`", config.display())]
    DuplicateModel {
        /// The repository.
        repo: String,
        /// The config path.
        config: PathBuf,
    },
    /// A glob of `include` or `exclude` does not parse.
    #[error("`{glob}` in model `{repo}` is not a valid glob")]
    BadGlob {
        /// The repository.
        repo: String,
        /// The glob.
        glob: String,
        /// The parser's explanation.
        #[source]
        source: globset::Error,
    },
    /// The Hub has no such repository (or hides a private one).
    #[error("model repository `{repo}` was not found on `{endpoint}`")]
    RepoNotFound {
        /// The repository.
        repo: String,
        /// The Hub endpoint.
        endpoint: String,
        /// Where the token that was sent came from, if one was.
        token_from: Option<String>,
    },
    /// The repository has no such branch, tag or commit.
    #[error("model `{repo}` has no revision `{revision}`")]
    RevisionNotFound {
        /// The repository.
        repo: String,
        /// The revision asked for.
        revision: String,
    },
    /// The commit has no such file.
    #[error("model `{repo}` has no file `{path}` at commit `{commit}`")]
    EntryNotFound {
        /// The repository.
        repo: String,
        /// The commit.
        commit: String,
        /// The file.
        path: String,
    },
    /// The repository is gated and access was refused.
    #[error("model `{repo}` is a gated repository and the Hub refused access ({status})")]
    Gated {
        /// The repository.
        repo: String,
        /// The Hub endpoint.
        endpoint: String,
        /// The HTTP status.
        status: StatusCode,
        /// Where the token that was sent came from, if one was.
        token_from: Option<String>,
    },
    /// The Hub refused access for another reason.
    #[error("the Hub refused access to model `{repo}` ({status})")]
    Unauthorized {
        /// The repository.
        repo: String,
        /// The HTTP status.
        status: StatusCode,
        /// Where the token that was sent came from, if one was.
        token_from: Option<String>,
    },
    /// An unexpected status, after retries.
    #[error("`{url}` answered {status}{}", detail_suffix(.detail.as_ref()))]
    Status {
        /// The URL, which never holds a secret.
        url: String,
        /// The status.
        status: StatusCode,
        /// `X-Error-Code` and `X-Error-Message`, when given.
        detail: Option<String>,
    },
    /// The request failed in transport, after retries.
    #[error("request to `{url}` failed")]
    Transport {
        /// The URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer is malformed or contradicts itself.
    #[error("`{url}` sent a malformed answer: {message}")]
    BadResponse {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The body kept ending before the locked size.
    #[error("download of `{path}` of model `{repo}` kept ending early ({attempts} attempts)")]
    Incomplete {
        /// The repository.
        repo: String,
        /// The file.
        path: String,
        /// The attempts made.
        attempts: u32,
    },
    /// The Hub served a file of another commit than the locked one.
    #[error(
        "the Hub served `{path}` of model `{repo}` from commit `{served}`, not the locked `{commit}`"
    )]
    WrongCommit {
        /// The repository.
        repo: String,
        /// The file.
        path: String,
        /// The locked commit.
        commit: String,
        /// The commit the Hub named.
        served: String,
    },
    /// `HF_HUB_OFFLINE` forbids the network, and the command needs it.
    #[error("`HF_HUB_OFFLINE` is set, but model `{repo}` needs the Hub")]
    Offline {
        /// The repository.
        repo: String,
    },
    /// A file name from a listing or the lockfile could escape the target directory.
    #[error("model `{repo}` names a file `{path}` that aisupply refuses: {reason}")]
    UnsafePath {
        /// The repository.
        repo: String,
        /// The file name as given.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A directory on the way to a file is a symbolic link.
    #[error("`{}` is a symbolic link; aisupply does not write through links in the target directory", path.display())]
    SymlinkInTarget {
        /// The link.
        path: PathBuf,
    },
    /// `include`/`exclude` select no file.
    #[error("`include`/`exclude` of model `{repo}` select no file at revision `{revision}`")]
    EmptySelection {
        /// The repository.
        repo: String,
        /// The revision.
        revision: String,
        /// A few paths the revision has.
        available: Vec<String>,
    },
    /// `pull` named a model the lockfile does not have.
    #[error("model `{repo}` is not in lockfile `{}`", lockfile.display())]
    NotLocked {
        /// The repository asked for.
        repo: String,
        /// The lockfile.
        lockfile: PathBuf,
    },
    /// `--local-dir` was given for several models.
    #[error("`--local-dir` holds one model, but {count} models were selected")]
    LocalDirNeedsOneModel {
        /// How many models were selected.
        count: usize,
    },
    /// A file-system operation failed.
    #[error("cannot {action} `{}`", path.display())]
    Io {
        /// What was being done, such as `write`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

fn detail_suffix(detail: Option<&String>) -> String {
    detail.map(|d| format!(" ({d})")).unwrap_or_default()
}

impl HubError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::BadEndpoint { .. } => {
                "set `HF_ENDPOINT` to a URL such as `https://huggingface.co`, or unset it".to_owned()
            }
            Self::InvalidRepo { .. } => {
                "repository ids look like `org/name`, such as `sentence-transformers/all-MiniLM-L6-v2`"
                    .to_owned()
            }
            Self::InvalidRevision { .. } => {
                "use a branch, a tag, `refs/pr/N` or a 40-hex commit".to_owned()
            }
            Self::DuplicateModel { .. } => "remove one of the two `[[model]]` entries".to_owned(),
            Self::BadGlob { .. } => {
                "globs look like `*.safetensors` or `onnx/**`; `*` also matches `/`".to_owned()
            }
            Self::RepoNotFound {
                token_from: None, ..
            } => "check `repo`; a private repository also answers this way: set `HF_TOKEN` to a \
                  token that can read it"
                .to_owned(),
            Self::RepoNotFound {
                token_from: Some(from),
                ..
            } => format!("check `repo`, and that the account of the token from {from} can read it"),
            Self::RevisionNotFound { repo, .. } => format!(
                "use a branch, tag, `refs/pr/N` or 40-hex commit of `{repo}`; `hf download \
                 {repo} --dry-run` shows what `main` holds"
            ),
            Self::EntryNotFound { repo, .. } => {
                format!("the lock is out of date: re-lock with `aisupply lock --update {repo}`")
            }
            Self::Gated {
                repo,
                endpoint,
                token_from: None,
                ..
            } => format!(
                "accept the conditions at {endpoint}/{repo}, then set `HF_TOKEN` to a token of \
                 that account (or save one with `hf auth login`)"
            ),
            Self::Gated {
                repo,
                endpoint,
                token_from: Some(from),
                ..
            } => format!(
                "the token was refused: accept the conditions at {endpoint}/{repo} with the \
                 account that owns the token from {from}, or wait until the owners grant access"
            ),
            Self::Unauthorized {
                token_from: None, ..
            } => "set `HF_TOKEN` to a token that can read the repository".to_owned(),
            Self::Unauthorized {
                token_from: Some(from),
                ..
            } => format!("the token from {from} was refused; create a new one"),
            Self::BadToken { .. } => "set the token again without stray characters (a pasted \
                 newline or quote), or unset `HF_TOKEN` to use the file `hf auth login` writes"
                .to_owned(),
            Self::Transport { .. } | Self::Incomplete { .. } => {
                "check the network and `HF_ENDPOINT`, then run the command again; `pull` resumes \
                 where it stopped"
                    .to_owned()
            }
            Self::WrongCommit { repo, .. } => format!(
                "check `HF_ENDPOINT`; if the Hub is right, re-lock with `aisupply lock --update \
                 {repo}`"
            ),
            Self::Offline { .. } => {
                "unset `HF_HUB_OFFLINE`, or pull the model on a machine with access first"
                    .to_owned()
            }
            Self::UnsafePath { .. } => {
                "file names must be relative paths without `..`; do not use this repository, \
                 and tell its owners"
                    .to_owned()
            }
            Self::SymlinkInTarget { .. } => {
                "remove the link, or pull into another `--local-dir`".to_owned()
            }
            Self::EmptySelection { available, .. } => format!(
                "check `include` and `exclude`; the revision has {}",
                available
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Self::LocalDirNeedsOneModel { .. } => {
                "name the model: `aisupply pull ORG/NAME --local-dir DIR`".to_owned()
            }
            Self::NotLocked { repo, .. } => format!(
                "add `[[model]]` with `repo = \"{repo}\"` to aisupply.toml and run `aisupply lock`"
            ),
            _ => return None,
        })
    }
}

/// A downloaded file that did not hash to its locked SHA-256. It was removed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{path}` of model `{repo}` does not match the lockfile; the download was removed\n  \
     expected: {}\n  computed: {}",
    mismatch.expected,
    mismatch.computed
)]
pub struct FileMismatch {
    /// The repository.
    pub repo: String,
    /// The file.
    pub path: String,
    /// Expected and computed digests.
    pub mismatch: Mismatch,
}

impl FileMismatch {
    /// What to do about it.
    pub fn hint(&self) -> String {
        "the Hub, a proxy or the disk altered the file; do not use it. Run `aisupply pull` again \
         after checking `HF_ENDPOINT`, and report a repeated mismatch to the repository's owners"
            .to_owned()
    }
}

/// The cache directory name of a repository: `models--org--name`.
pub fn cache_dir_name(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

fn io_error(
    action: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> HubError {
    let path = path.to_owned();
    move |source| HubError::Io {
        action,
        path,
        source,
    }
}
