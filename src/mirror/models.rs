//! Locked Hugging Face models as CNCF ModelPack artifacts: built from verified local files,
//! pushed to a registry or an OCI layout, and read back by `pull --from`.
//!
//! One model at one commit is one OCI image manifest with `artifactType`
//! `application/vnd.cncf.model.manifest.v1+json`, a `application/vnd.cncf.model.config.v1+json`
//! config, and one uncompressed `.raw` layer per locked file. A raw layer's bytes are the file's
//! bytes, so its digest is the file's SHA-256 in the lock, and the `org.cncf.model.filepath`
//! annotation names the file. Everything in the artifact derives from the lock alone, so its
//! manifest digest is known before a byte is read and a re-run can tell it has nothing to do.
//!
//! The artifact of `org/Name` at commit `C` is named `PREFIX/huggingface.co/org/name:C` in a
//! registry and `huggingface.co/org/name:C` in a layout (repository names are lowercase).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;

use super::{Manifest, MirrorError, Options, Store, Target, in_shard, ref_name};
use crate::digest::Digest;
use crate::hub::layout::Target as FilesAt;
use crate::hub::{self, FileMismatch, HubError};
use crate::lock::{LockedFile, LockedModel};
use crate::progress::{Reporter, Unit};
use crate::reference::Reference;
use crate::registry::{BlobStream, manifest};

/// The `artifactType` of a ModelPack manifest.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.model.manifest.v1+json";
/// The media type of a ModelPack config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.model.config.v1+json";
/// The layer annotation that names a file.
pub const FILEPATH: &str = "org.cncf.model.filepath";
/// Model weights, unarchived.
pub const WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
/// Configuration of the weights (`config.json`, tokenizer files), unarchived.
pub const WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
/// Documentation (`README.md`, `LICENSE`), unarchived.
pub const DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
/// Code (`*.py`), unarchived.
pub const CODE: &str = "application/vnd.cncf.model.code.v1.raw";

/// The registry component under which models are mirrored.
const HUB_HOST: &str = "huggingface.co";

/// Why a model could not be mirrored or restored from a mirror.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A Hub or file-system operation failed.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// A registry or layout operation failed.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// The repository id cannot become an OCI repository name.
    #[error("model `{repo}` cannot be named in an OCI registry: {reason}")]
    Name {
        /// The repository.
        repo: String,
        /// What is wrong.
        reason: String,
    },
    /// A local file did not match the lock, so the model was not mirrored.
    #[error(transparent)]
    LocalMismatch(FileMismatch),
    /// The mirror holds no artifact of the model at the locked commit.
    #[error("model `{repo}` at commit `{commit}` is not in the mirror: `{place}` does not exist")]
    NotMirrored {
        /// The repository.
        repo: String,
        /// The locked commit.
        commit: String,
        /// Where it was looked for.
        place: String,
    },
    /// The artifact is not a ModelPack artifact aisupply can read.
    #[error("`{place}` is not a ModelPack artifact of model `{repo}`: {reason}")]
    NotModelPack {
        /// The repository.
        repo: String,
        /// Where the artifact is.
        place: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer names a file that must not be written.
    #[error("`{place}` names a file `{path}` that aisupply refuses: {reason}")]
    UnsafeFilepath {
        /// Where the artifact is.
        place: String,
        /// The `org.cncf.model.filepath` annotation.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// A layer's digest is not the locked SHA-256 of its file.
    #[error(
        "`{place}` gives `{path}` another digest than the lockfile\n  expected: {expected}\n  \
         found: {found}"
    )]
    LayerDigest {
        /// Where the artifact is.
        place: String,
        /// The file.
        path: String,
        /// The locked SHA-256.
        expected: Digest,
        /// The layer's digest.
        found: String,
    },
}

impl ModelError {
    /// The exact step that fixes the problem, where there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Hub(e) => e.hint(),
            Self::Mirror(e) => e.hint(),
            Self::LocalMismatch(e) => Some(e.hint()),
            Self::NotMirrored { .. } => Some(
                "mirror the models first: `aisupply mirror --models --to TARGET`, with the same \
                 lockfile, then give that TARGET to `--from`"
                    .to_owned(),
            ),
            Self::NotModelPack { .. } | Self::LayerDigest { .. } => Some(
                "the mirror holds another artifact under this name; mirror the model again with \
                 `aisupply mirror --models --to TARGET`"
                    .to_owned(),
            ),
            Self::UnsafeFilepath { .. } => Some(
                "nothing was written; do not use this mirror until its operators explain the \
                 artifact, or mirror the model again from the Hub"
                    .to_owned(),
            ),
            Self::Name { .. } => None,
        }
    }
}

/// Where model `repo` at `commit` lives in `target`: a registry repository (tagged with the
/// commit), or a layout ref name.
pub fn model_place(target: &Target, repo: &str, commit: &str) -> Result<Reference, ModelError> {
    let path = format!("{HUB_HOST}/{}:{commit}", repo.to_ascii_lowercase());
    let full = match target {
        Target::Layout(_) => path,
        Target::Registry { host, prefix } if prefix.is_empty() => format!("{host}/{path}"),
        Target::Registry { host, prefix } => format!("{host}/{prefix}/{path}"),
    };
    Reference::parse(&full).map_err(|e| ModelError::Name {
        repo: repo.to_owned(),
        reason: e.to_string(),
    })
}

/// How `place` is shown to people and in the map.
pub fn shown(target: &Target, place: &Reference) -> String {
    match target {
        Target::Layout(dir) => format!("oci:{}:{}", dir.display(), ref_name(place)),
        Target::Registry { .. } => place.to_string(),
    }
}

/// The media type of a file's layer, by its name.
pub fn layer_media_type(path: &str) -> &'static str {
    const WEIGHTS: [&str; 12] = [
        "safetensors",
        "bin",
        "pt",
        "pth",
        "ckpt",
        "onnx",
        "gguf",
        "h5",
        "msgpack",
        "tflite",
        "ot",
        "pb",
    ];
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
    if WEIGHTS.contains(&extension) {
        WEIGHT
    } else if extension == "md"
        || ["readme", "license", "licence", "notice", "copying"]
            .iter()
            .any(|doc| name.starts_with(doc))
    {
        DOC
    } else if extension == "py" {
        CODE
    } else {
        WEIGHT_CONFIG
    }
}

/// A model's artifact, derived from its lock entry alone.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// The config blob's bytes.
    pub config: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
}

/// Build the artifact of `model`: deterministic, so the same lock gives the same digest.
pub fn artifact(model: &LockedModel) -> Artifact {
    let config = serde_json::json!({
        "descriptor": {
            "name": model.repo,
            "revision": model.commit,
            "sourceURL": format!("https://{HUB_HOST}/{}", model.repo),
        },
        "config": {},
        "modelfs": {
            "type": "layers",
            "diffIds": model.files.iter().map(|f| f.sha256.to_string()).collect::<Vec<_>>(),
        },
    });
    let config = serde_json::to_vec(&config).expect("JSON values serialize");
    let layers: Vec<serde_json::Value> = model
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "mediaType": layer_media_type(&f.path),
                "digest": f.sha256.to_string(),
                "size": f.size,
                "annotations": { FILEPATH: f.path },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": Digest::sha256(&config).to_string(),
            "size": config.len(),
        },
        "layers": layers,
        "annotations": {
            "org.opencontainers.image.title": model.repo,
            "org.opencontainers.image.revision": model.commit,
            "org.opencontainers.image.source": format!("https://{HUB_HOST}/{}", model.repo),
        },
    });
    let bytes = serde_json::to_vec(&doc).expect("JSON values serialize");
    Artifact {
        config,
        manifest: Manifest {
            digest: Digest::sha256(&bytes),
            media_type: manifest::OCI_MANIFEST.to_owned(),
            bytes,
        },
    }
}

/// What happened to one model.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ModelReport {
    /// The repository.
    pub repo: String,
    /// The locked commit, which is also the tag.
    pub commit: String,
    /// The artifact at the destination.
    pub mirror: String,
    /// The artifact's manifest digest.
    pub digest: String,
    /// Whether the destination already had it.
    pub up_to_date: bool,
    /// Blobs sent (or that would be sent).
    pub blobs_copied: usize,
    /// Bytes sent (or that would be sent).
    pub bytes_copied: u64,
    /// Blobs the destination already had.
    pub blobs_present: usize,
}

/// Where a model's files come from.
#[derive(Clone, Copy)]
pub enum Files<'a> {
    /// Local files (the cache or a local directory), pulled from the Hub first when missing.
    Local {
        /// Where the files are.
        at: &'a FilesAt,
        /// The Hub, for missing files.
        hub: &'a hub::Client,
    },
    /// The artifacts of another mirror, such as a layout carried across an air gap.
    Mirror {
        /// The mirror.
        store: Store<'a>,
        /// How the mirror names artifacts.
        target: &'a Target,
    },
}

/// Mirror every locked model (of the shard) into `destination`, from `files`. Every file is
/// verified against the lock while it streams to the destination (and, pulled from the Hub,
/// before it is placed locally).
pub async fn mirror_models(
    models: &[LockedModel],
    files: Files<'_>,
    destination: Store<'_>,
    target: &Target,
    options: Options,
    reporter: &dyn Reporter,
) -> Result<Vec<ModelReport>, ModelError> {
    let mut reports = Vec::new();
    for model in models.iter().filter(|m| {
        options
            .shard
            .is_none_or(|(index, count)| in_shard(&m.repo, index, count))
    }) {
        reports.push(mirror_model(model, files, destination, target, options, reporter).await?);
    }
    if let (Store::Layout(layout), false) = (destination, options.dry_run) {
        layout.save_index().map_err(MirrorError::from)?;
    }
    Ok(reports)
}

async fn mirror_model(
    model: &LockedModel,
    files: Files<'_>,
    destination: Store<'_>,
    target: &Target,
    options: Options,
    reporter: &dyn Reporter,
) -> Result<ModelReport, ModelError> {
    let place = model_place(target, &model.repo, &model.commit)?;
    let built = artifact(model);
    let mut report = ModelReport {
        repo: model.repo.clone(),
        commit: model.commit.clone(),
        mirror: shown(target, &place),
        digest: built.manifest.digest.to_string(),
        ..ModelReport::default()
    };

    // Up to date when the commit's tag already names this exact artifact.
    if destination.tag_digest(&place).await? == Some(built.manifest.digest.clone()) {
        report.up_to_date = true;
        return Ok(report);
    }

    // The plan: what the destination lacks.
    let mut missing: BTreeMap<&Digest, &LockedFile> = BTreeMap::new();
    for file in &model.files {
        if destination
            .has_blob(&place, &file.sha256, file.size)
            .await?
        {
            report.blobs_present += 1;
        } else if missing.insert(&file.sha256, file).is_none() {
            report.blobs_copied += 1;
            report.bytes_copied += file.size;
        }
    }
    if options.dry_run {
        return Ok(report);
    }

    // Layers, then the config, then the manifest under the commit's tag.
    let source = Source::open(files, model, &built, reporter, !missing.is_empty()).await?;
    for file in missing.values() {
        let bar = reporter.start(&file.path, Some(file.size), Unit::Bytes);
        let body = source.body(file).await?;
        destination
            .receive_blob(&place, &file.sha256, file.size, None, body, |_| {})
            .await?;
        reporter.advance(bar, file.size);
        reporter.finish(bar);
    }
    let config_digest = Digest::sha256(&built.config);
    let size = built.config.len() as u64;
    if !destination.has_blob(&place, &config_digest, size).await? {
        let body: BlobStream = Box::pin(futures_util::stream::once(async move {
            Ok(Bytes::from(built.config))
        }));
        destination
            .receive_blob(&place, &config_digest, size, None, body, |_| {})
            .await?;
    }
    destination
        .put_manifest(&place, &built.manifest, Some(&model.commit))
        .await?;
    Ok(report)
}

/// Where one model's layers are read from, ready.
enum Source<'a> {
    /// The snapshot directory of verified local files.
    Local(PathBuf),
    /// An artifact of another mirror.
    Mirror(Store<'a>, Reference),
}

impl<'a> Source<'a> {
    /// Prepare `model`'s files: pull what is missing locally (when `needed`), or find the
    /// artifact in the source mirror, which must be exactly the one the lock describes.
    async fn open(
        files: Files<'a>,
        model: &LockedModel,
        built: &Artifact,
        reporter: &dyn Reporter,
        needed: bool,
    ) -> Result<Self, ModelError> {
        match files {
            Files::Local { at, hub } => {
                if needed {
                    let pulled = hub::pull::pull(
                        std::slice::from_ref(model),
                        at,
                        hub,
                        &hub::pull::Options::default(),
                        reporter,
                    )
                    .await?;
                    if let Some(mismatch) = pulled.mismatches.into_iter().next() {
                        return Err(ModelError::LocalMismatch(mismatch));
                    }
                }
                Ok(Self::Local(at.place(&model.repo).snapshot(&model.commit)))
            }
            Files::Mirror { store, target } => {
                let place = model_place(target, &model.repo, &model.commit)?;
                let shown = shown(target, &place);
                let Some(found) = store.tagged(&place).await? else {
                    return Err(ModelError::NotMirrored {
                        repo: model.repo.clone(),
                        commit: model.commit.clone(),
                        place: shown,
                    });
                };
                if found.digest != built.manifest.digest {
                    return Err(ModelError::NotModelPack {
                        repo: model.repo.clone(),
                        place: shown,
                        reason: format!(
                            "its manifest `{}` is not `{}`, the artifact of the locked model",
                            found.digest, built.manifest.digest
                        ),
                    });
                }
                Ok(Self::Mirror(store, place))
            }
        }
    }

    /// The bytes of `file`; the destination verifies them while they stream.
    async fn body(&self, file: &LockedFile) -> Result<BlobStream, ModelError> {
        match self {
            Self::Local(snapshot) => Ok(file_stream(&snapshot.join(&file.path)).await?),
            Self::Mirror(store, place) => Ok(store.blob(place, &file.sha256).await?),
        }
    }
}

/// A local file as a stream of 256 KiB chunks.
async fn file_stream(path: &Path) -> Result<BlobStream, HubError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|source| HubError::Io {
            action: "open",
            path: PathBuf::from(path),
            source,
        })?;
    Ok(super::layout::file_chunks(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> LockedModel {
        let file = |path: &str, bytes: &[u8]| LockedFile {
            path: path.to_owned(),
            size: bytes.len() as u64,
            sha256: Digest::sha256(bytes),
            git_sha1: "0".repeat(40),
        };
        LockedModel {
            repo: "Org/Model-A".to_owned(),
            revision: "main".to_owned(),
            commit: "0123456789abcdef0123456789abcdef01234567".to_owned(),
            include: Vec::new(),
            exclude: Vec::new(),
            files: vec![file("config.json", b"{}"), file("model.safetensors", b"w")],
        }
    }

    #[test]
    fn artifacts_are_deterministic_with_one_layer_per_file() {
        let (a, b) = (artifact(&model()), artifact(&model()));
        assert_eq!(a.manifest.digest, b.manifest.digest);
        let doc: serde_json::Value = serde_json::from_slice(&a.manifest.bytes).unwrap();
        assert_eq!(doc["artifactType"], ARTIFACT_TYPE);
        assert_eq!(doc["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(doc["layers"][1]["mediaType"], WEIGHT);
        assert_eq!(doc["layers"][1]["digest"], Digest::sha256(b"w").to_string());
        assert_eq!(doc["layers"][0]["annotations"][FILEPATH], "config.json");
    }

    #[test]
    fn places_are_lowercase_under_huggingface_co() {
        let target: Target = "localhost:5000/mirror".parse().unwrap();
        let m = model();
        assert_eq!(
            model_place(&target, &m.repo, &m.commit)
                .unwrap()
                .to_string(),
            format!(
                "localhost:5000/mirror/huggingface.co/org/model-a:{}",
                m.commit
            )
        );
        let layout = Target::Layout(PathBuf::from("out"));
        let place = model_place(&layout, &m.repo, &m.commit).unwrap();
        assert_eq!(
            ref_name(&place),
            format!("huggingface.co/org/model-a:{}", m.commit)
        );
    }

    #[test]
    fn media_types_follow_the_file_kind() {
        assert_eq!(layer_media_type("onnx/model.onnx"), WEIGHT);
        assert_eq!(layer_media_type("README.md"), DOC);
        assert_eq!(layer_media_type("LICENSE"), DOC);
        assert_eq!(layer_media_type("tokenizer.json"), WEIGHT_CONFIG);
        assert_eq!(layer_media_type("vocab.txt"), WEIGHT_CONFIG);
        assert_eq!(layer_media_type("modeling.py"), CODE);
    }
}
