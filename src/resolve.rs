//! Locking: turning the images of `aisupply.toml` into `aisupply.lock` entries.
//!
//! Existing pins are kept unless the user asks to update them; only entries that are new,
//! changed or named for update are resolved, concurrently and with a bound on open requests.

use std::collections::BTreeSet;
use std::path::PathBuf;

use futures_util::stream::{self, StreamExt as _};
use serde::Serialize;

use crate::config::{Config, ImageSpec};
use crate::digest::Digest;
use crate::lock::{LockFile, LockedImage, LockedManifest, VERSION};
use crate::platform::Platform;
use crate::progress::{Reporter, Unit};
use crate::reference::Reference;
use crate::registry::manifest::{self, PlatformManifest};
use crate::registry::{Client, RegistryError};

/// How many images are resolved at once.
pub const CONCURRENCY: usize = 16;

/// Which existing pins to re-resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// None: keep every pin that still matches its config entry.
    Nothing,
    /// Every entry.
    All,
    /// The entries with these names.
    Names(Vec<String>),
}

/// What happened to one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Newly locked.
    Added,
    /// Re-resolved to another digest.
    Updated,
    /// Kept, or re-resolved to the same digest.
    Unchanged,
    /// Dropped because the config no longer has it.
    Removed,
}

impl Status {
    /// What happened to an entry locked as `now`, that was locked as `previous` before.
    pub fn of<T: PartialEq>(previous: Option<&T>, now: &T) -> Self {
        match previous {
            None => Self::Added,
            Some(p) if p == now => Self::Unchanged,
            Some(_) => Self::Updated,
        }
    }
}

/// One entry of the outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The entry's name.
    pub name: String,
    /// What happened.
    pub status: Status,
    /// The normalized reference.
    pub reference: String,
    /// The digest locked before, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Digest>,
    /// The digest locked now (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
}

/// The new lockfile and what changed.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The lockfile to write.
    pub lock: LockFile,
    /// One change per entry, sorted by name.
    pub changes: Vec<Change>,
}

impl Outcome {
    /// Whether the lockfile differs from the one it started from.
    pub fn changed(&self) -> bool {
        self.changes.iter().any(|c| c.status != Status::Unchanged)
    }
}

/// Why an image could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// `--update` named an entry the config does not have.
    #[error("`--update {name}` names no image or model of `{}`", config.display())]
    UnknownName {
        /// The name given.
        name: String,
        /// The config path.
        config: PathBuf,
    },
    /// The registry could not resolve the entry.
    #[error("cannot lock image `{name}` (`{}` line {line})", config.display())]
    Registry {
        /// The entry's name.
        name: String,
        /// The config path.
        config: PathBuf,
        /// The line of its `ref`.
        line: usize,
        /// Why.
        #[source]
        source: Box<RegistryError>,
    },
    /// The entry's platforms are not what the image offers.
    #[error("cannot lock image `{name}` (`{}` line {line}): {message}", config.display())]
    Platforms {
        /// The entry's name.
        name: String,
        /// The config path.
        config: PathBuf,
        /// The line of its `ref`.
        line: usize,
        /// What does not fit.
        message: String,
    },
}

impl ResolveError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownName { .. } => Some(
                "use the `name` of an `[[image]]` entry (or its repository path), or the \
                 `repo` of a `[[model]]` entry"
                    .to_owned(),
            ),
            Self::Registry { source, .. } => source.hint(),
            Self::Platforms { .. } => Some(
                "change `platforms` to ones the image has, or remove it to lock every platform"
                    .to_owned(),
            ),
        }
    }
}

/// Lock every image of `config`, keeping the pins of `existing` except those `update` names.
pub async fn lock_images(
    config: &Config,
    existing: Option<&LockFile>,
    update: &Update,
    client: &Client,
    reporter: &dyn Reporter,
) -> Result<Outcome, ResolveError> {
    if let Update::Names(names) = update {
        for name in names {
            if config.image(name).is_none() {
                return Err(ResolveError::UnknownName {
                    name: name.clone(),
                    config: config.path.clone(),
                });
            }
        }
    }

    // Decide per entry: keep the existing pin, or resolve it again.
    // An entry's pin is the lock entry of its name, or of a name the config no longer has
    // with the same reference and platforms: renaming an entry must not re-resolve its tag.
    let previous = |spec: &ImageSpec| {
        existing.and_then(|lock| {
            lock.image(&spec.name).or_else(|| {
                lock.images
                    .iter()
                    .find(|l| config.image(&l.name).is_none() && matches_config(l, spec))
            })
        })
    };
    let wants_update = |spec: &ImageSpec| match update {
        Update::Nothing => false,
        Update::All => true,
        Update::Names(names) => names.contains(&spec.name),
    };
    let (kept, to_resolve): (Vec<&ImageSpec>, Vec<&ImageSpec>) =
        config.images.iter().partition(|spec| {
            !wants_update(spec) && previous(spec).is_some_and(|p| matches_config(p, spec))
        });

    // Resolve what needs it, a bounded number at a time.
    let task = reporter.start(
        "Resolving images",
        Some(to_resolve.len() as u64),
        Unit::Items,
    );
    let mut results: Vec<(usize, Result<LockedImage, ResolveError>)> =
        stream::iter(to_resolve.iter().enumerate())
            .map(|(i, spec)| async move {
                let result = lock_image(config, spec, client).await;
                reporter.advance(task, 1);
                (i, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    reporter.finish(task);
    results.sort_by_key(|(i, _)| *i);

    // Assemble the new lockfile; the first failure in config order is reported.
    let mut images: Vec<LockedImage> = kept
        .iter()
        .filter_map(|spec| {
            previous(spec).map(|p| LockedImage {
                name: spec.name.clone(),
                ..p.clone()
            })
        })
        .collect();
    for (_, result) in results {
        images.push(result?);
    }
    let changes = changes(config, existing, &images);
    let mut lock = LockFile {
        version: VERSION,
        images,
        models: existing.map(|l| l.models.clone()).unwrap_or_default(),
    };
    lock.images.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Outcome { lock, changes })
}

/// Whether a lock entry still describes `spec`: same reference, same platform request.
pub fn matches_config(locked: &LockedImage, spec: &ImageSpec) -> bool {
    locked.reference == spec.reference && requested_platforms(spec) == locked.platforms
}

/// The platform request of `spec` as the lockfile records it.
pub fn requested_platforms(spec: &ImageSpec) -> Option<Vec<String>> {
    spec.platforms.as_ref().map(|platforms| {
        let set: BTreeSet<String> = platforms
            .iter()
            .map(|p| p.normalized().to_string())
            .collect();
        set.into_iter().collect()
    })
}

async fn lock_image(
    config: &Config,
    spec: &ImageSpec,
    client: &Client,
) -> Result<LockedImage, ResolveError> {
    let registry_error = |source| ResolveError::Registry {
        name: spec.name.clone(),
        config: config.path.clone(),
        line: spec.line,
        source: Box::new(source),
    };
    let found = client
        .resolve(&spec.reference)
        .await
        .map_err(registry_error)?;

    let manifests = if manifest::is_index(&found.media_type) {
        let bytes = found.bytes.as_deref().unwrap_or_default();
        let all = manifest::platform_manifests(bytes).map_err(|e| {
            registry_error(RegistryError::BadResponse {
                registry: spec.reference.registry().to_owned(),
                message: format!("the index of `{}` is unreadable: {e}", spec.reference),
            })
        })?;
        select_platforms(config, spec, all)?
    } else {
        if let Some(wanted) = &spec.platforms {
            let platform = single_manifest_platform(client, &spec.reference, &found.digest)
                .await
                .map_err(registry_error)?;
            check_single_platform(config, spec, wanted, platform.as_ref())?;
        }
        Vec::new()
    };

    Ok(LockedImage {
        name: spec.name.clone(),
        reference: spec.reference.clone(),
        digest: found.digest,
        media_type: found.media_type,
        platforms: requested_platforms(spec),
        manifests,
    })
}

/// Keep the index entries the config asks for; each requested platform must be there.
fn select_platforms(
    config: &Config,
    spec: &ImageSpec,
    all: Vec<PlatformManifest>,
) -> Result<Vec<LockedManifest>, ResolveError> {
    let platform_error = |message| ResolveError::Platforms {
        name: spec.name.clone(),
        config: config.path.clone(),
        line: spec.line,
        message,
    };
    if let Some(wanted) = &spec.platforms {
        let available = || {
            let names: Vec<String> = all.iter().map(|m| m.platform.to_string()).collect();
            names.join(", ")
        };
        for platform in wanted {
            if !all.iter().any(|m| m.platform.matches(platform)) {
                return Err(platform_error(format!(
                    "the index has no `{platform}` manifest; it has {}",
                    available()
                )));
            }
        }
    }
    let mut selected: Vec<LockedManifest> = Vec::new();
    for m in all {
        let wanted = spec
            .platforms
            .as_ref()
            .is_none_or(|wanted| wanted.iter().any(|p| p.matches(&m.platform)));
        if !wanted {
            continue;
        }
        let platform = m.platform.to_string();
        if selected.iter().any(|s| s.platform == platform) {
            return Err(platform_error(format!(
                "the index lists `{platform}` twice, so the platform is ambiguous"
            )));
        }
        selected.push(LockedManifest {
            platform,
            digest: m.digest,
            media_type: m.media_type,
        });
    }
    Ok(selected)
}

fn check_single_platform(
    config: &Config,
    spec: &ImageSpec,
    wanted: &[Platform],
    actual: Option<&Platform>,
) -> Result<(), ResolveError> {
    let fits = actual.is_some_and(|a| wanted.len() == 1 && wanted[0].matches(a));
    if fits {
        return Ok(());
    }
    let actual = actual.map_or_else(|| "an unknown platform".to_owned(), |a| format!("`{a}`"));
    Err(ResolveError::Platforms {
        name: spec.name.clone(),
        config: config.path.clone(),
        line: spec.line,
        message: format!("the image is a single-platform manifest for {actual}"),
    })
}

/// The platform of a single-platform image, read from its config blob.
async fn single_manifest_platform(
    client: &Client,
    reference: &Reference,
    digest: &Digest,
) -> Result<Option<Platform>, RegistryError> {
    #[derive(serde::Deserialize)]
    struct Manifest {
        config: Descriptor,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct ImageConfig {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let malformed = |what: &str| RegistryError::BadResponse {
        registry: reference.registry().to_owned(),
        message: format!("the {what} of `{reference}` is malformed"),
    };
    let by_digest = reference.with_digest(digest.clone());
    let fetched = client.fetch_manifest(&by_digest, Some(digest)).await?;
    let manifest: Manifest = serde_json::from_slice(fetched.bytes.as_deref().unwrap_or_default())
        .map_err(|_| malformed("manifest"))?;
    let config_digest: Digest = manifest
        .config
        .digest
        .parse()
        .map_err(|_| malformed("manifest"))?;
    let bytes = client.fetch_small_blob(reference, &config_digest).await?;
    let config: ImageConfig = serde_json::from_slice(&bytes).map_err(|_| malformed("config"))?;
    Ok(match (config.os, config.architecture) {
        (Some(os), Some(arch)) => Some(Platform::new(&os, &arch, config.variant.as_deref())),
        _ => None,
    })
}

fn changes(config: &Config, existing: Option<&LockFile>, images: &[LockedImage]) -> Vec<Change> {
    let mut changes: Vec<Change> = images
        .iter()
        .map(|image| {
            let previous = existing.and_then(|l| l.image(&image.name));
            let status = Status::of(previous, image);
            Change {
                name: image.name.clone(),
                status,
                reference: image.reference.to_string(),
                previous: previous.map(|p| p.digest.clone()),
                digest: Some(image.digest.clone()),
            }
        })
        .collect();
    for old in existing.map(|l| l.images.as_slice()).unwrap_or_default() {
        if config.image(&old.name).is_none() {
            changes.push(Change {
                name: old.name.clone(),
                status: Status::Removed,
                reference: old.reference.to_string(),
                previous: Some(old.digest.clone()),
                digest: None,
            });
        }
    }
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    changes
}
