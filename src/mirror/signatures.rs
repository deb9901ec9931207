//! Signatures, attestations, SBOMs and referrers, copied with the image they are about.
//!
//! cosign stores them under tags derived from the image digest (`sha256-<hex>.sig`, `.att`,
//! `.sbom`). OCI 1.1 registries list referrers through the referrers API; registries without
//! it (such as CNCF distribution 2.8) keep a referrers index under the tag `sha256-<hex>`.
//! Whatever the source has is copied, and for a destination without the API the index is
//! written under the fallback tag, so that cosign and notation find it there too.

use super::{Copy, ImageReport, Manifest, MirrorError};
use crate::digest::Digest;
use crate::registry::manifest::OCI_INDEX;

/// Copy what refers to `digest`; returns how many artifacts were copied.
pub(super) async fn copy(
    copy: &Copy<'_>,
    digest: &Digest,
    report: &mut ImageReport,
) -> Result<usize, MirrorError> {
    let base = format!("{}-{}", digest.algorithm().name(), digest.hex());
    let mut copied = 0;
    for suffix in ["sig", "att", "sbom"] {
        copied += tagged(copy, &format!("{base}.{suffix}"), report).await?;
    }
    match copy.source.referrers(&copy.from, digest).await? {
        Some(index) => copied += from_api(copy, digest, &base, index, report).await?,
        None => copied += tagged(copy, &base, report).await?,
    }
    Ok(copied)
}

/// Copy the artifact under `tag` when the source has it and the destination does not.
async fn tagged(
    copy: &Copy<'_>,
    tag: &str,
    report: &mut ImageReport,
) -> Result<usize, MirrorError> {
    let Some(artifact) = copy.source.tagged(&copy.from.with_tag(tag)).await? else {
        return Ok(0);
    };
    let current = copy.destination.tag_digest(&copy.to.with_tag(tag)).await?;
    if current.as_ref() == Some(&artifact.digest) {
        return Ok(0);
    }
    copy.tree(&artifact, Some(tag), report).await?;
    Ok(1)
}

/// Copy each referrer the referrers API listed; give a destination without the API the
/// fallback index.
async fn from_api(
    copy: &Copy<'_>,
    digest: &Digest,
    fallback_tag: &str,
    index: Vec<u8>,
    report: &mut ImageReport,
) -> Result<usize, MirrorError> {
    #[derive(serde::Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        digest: String,
    }
    let listed: Index = serde_json::from_slice(&index).map_err(|e| MirrorError::BadManifest {
        digest: Digest::sha256(&index),
        reason: format!("the referrers index of `{digest}` is not an OCI index: {e}"),
    })?;
    let mut copied = 0;
    for entry in listed.manifests {
        let Ok(referrer) = entry.digest.parse::<Digest>() else {
            continue;
        };
        if copy.destination.has_manifest(&copy.to, &referrer).await? {
            continue;
        }
        let artifact = copy.source.manifest(&copy.from, &referrer).await?;
        copy.tree(&artifact, None, report).await?;
        copied += 1;
    }
    if copied > 0
        && copy
            .destination
            .referrers(&copy.to, digest)
            .await?
            .is_none()
    {
        let fallback = Manifest {
            digest: Digest::sha256(&index),
            media_type: OCI_INDEX.to_owned(),
            bytes: index,
        };
        copy.destination
            .put_manifest(&copy.to, &fallback, Some(fallback_tag))
            .await?;
    }
    Ok(copied)
}
