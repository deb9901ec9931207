//! Manifest media types and the reading of image indexes.
//!
//! Parsing uses `oci-client`'s manifest types; what we add is the policy of which index entries
//! are platforms: attestation manifests (`unknown/unknown`, or carrying a
//! `vnd.docker.reference.type` annotation) are not.

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciImageIndex,
};

use crate::digest::Digest;
use crate::platform::Platform;

/// OCI image index.
pub const OCI_INDEX: &str = OCI_IMAGE_INDEX_MEDIA_TYPE;
/// OCI image manifest.
pub const OCI_MANIFEST: &str = OCI_IMAGE_MEDIA_TYPE;
/// Docker manifest list.
pub const DOCKER_LIST: &str = IMAGE_MANIFEST_LIST_MEDIA_TYPE;
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = IMAGE_MANIFEST_MEDIA_TYPE;

/// The `Accept` header for manifest requests: the four types we understand.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
                          application/vnd.oci.image.manifest.v1+json, \
                          application/vnd.docker.distribution.manifest.list.v2+json, \
                          application/vnd.docker.distribution.manifest.v2+json";

/// Whether `media_type` is an index (OCI index or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Whether `media_type` is one of the four manifest types aisupply understands.
pub fn is_known(media_type: &str) -> bool {
    [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].contains(&media_type)
}

/// The media type of a manifest: what its bytes declare (`mediaType`), else what the registry
/// said (`Content-Type`), else what its shape shows (an index lists `manifests`). `None` when
/// the bytes are not a manifest of a known type.
pub fn media_type_of(bytes: &[u8], content_type: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        layers: Option<serde::de::IgnoredAny>,
    }
    let shape: Shape = serde_json::from_slice(bytes).ok()?;
    let declared = shape.media_type.filter(|m| is_known(m));
    let served = Some(content_type.to_owned()).filter(|m| is_known(m));
    let guessed = match (shape.manifests, shape.layers) {
        (Some(_), None) => Some(OCI_INDEX.to_owned()),
        (None, Some(_)) => Some(OCI_MANIFEST.to_owned()),
        _ => None,
    };
    declared.or(served).or(guessed)
}

/// One platform-specific manifest listed by an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformManifest {
    /// The platform as the index states it.
    pub platform: Platform,
    /// The digest of the platform's manifest.
    pub digest: Digest,
    /// The media type of the platform's manifest.
    pub media_type: String,
}

/// Why an index cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The bytes are not an index.
    #[error("the index is not valid JSON of an OCI index or Docker manifest list")]
    Json(#[source] serde_json::Error),
    /// An entry carries a malformed digest.
    #[error("index entry `{digest}` has a malformed digest")]
    Digest {
        /// The digest as written.
        digest: String,
        /// Why it is malformed.
        #[source]
        source: crate::digest::DigestError,
    },
}

/// The platform manifests of an index, without attestations and other non-platform entries,
/// in index order.
pub fn platform_manifests(index_bytes: &[u8]) -> Result<Vec<PlatformManifest>, IndexError> {
    let index: OciImageIndex = serde_json::from_slice(index_bytes).map_err(IndexError::Json)?;
    let mut out = Vec::new();
    for entry in index.manifests {
        let Some(platform) = &entry.platform else {
            continue;
        };
        let is_attestation = entry
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("vnd.docker.reference.type"));
        let platform = Platform::new(
            &platform.os.to_string(),
            &platform.architecture.to_string(),
            platform.variant.as_deref(),
        );
        if is_attestation || platform.is_unknown() {
            continue;
        }
        let digest = entry.digest.parse().map_err(|source| IndexError::Digest {
            digest: entry.digest.clone(),
            source,
        })?;
        out.push(PlatformManifest {
            platform,
            digest,
            media_type: entry.media_type,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    #[test]
    fn attestations_are_not_platforms() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":1,
              "platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{B}","size":1,
              "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{C}","size":1,
              "platform":{{"os":"unknown","architecture":"unknown"}},
              "annotations":{{"vnd.docker.reference.type":"attestation-manifest",
                              "vnd.docker.reference.digest":"{A}"}}}}]}}"#
        );
        let found = platform_manifests(index.as_bytes()).unwrap();
        let platforms: Vec<String> = found.iter().map(|m| m.platform.to_string()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(found[1].digest.to_string(), B);
    }

    #[test]
    fn media_type_comes_from_the_bytes_then_the_header_then_the_shape() {
        let declared = format!(r#"{{"mediaType":"{DOCKER_LIST}","manifests":[]}}"#);
        assert_eq!(
            media_type_of(declared.as_bytes(), "").as_deref(),
            Some(DOCKER_LIST)
        );
        let bare = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            media_type_of(bare, DOCKER_LIST).as_deref(),
            Some(DOCKER_LIST)
        );
        assert_eq!(
            media_type_of(bare, "text/plain").as_deref(),
            Some(OCI_INDEX)
        );
        let image = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(media_type_of(image, "").as_deref(), Some(OCI_MANIFEST));
        assert_eq!(media_type_of(b"hello", "text/plain"), None);
    }

    #[test]
    fn malformed_indexes_are_errors() {
        assert!(platform_manifests(b"not json").is_err());
        let bad_digest = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}",
            "digest":"sha256:12","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        );
        assert!(matches!(
            platform_manifests(bad_digest.as_bytes()),
            Err(IndexError::Digest { .. })
        ));
    }
}
