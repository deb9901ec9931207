//! Deterministic images built from a seed: tar layers, gzip, configs, manifests and indexes,
//! as the exact bytes a registry stores. The same seed always gives the same digests.

use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// Which family of media types an image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

impl Format {
    fn manifest(self) -> &'static str {
        match self {
            Self::Oci => OCI_MANIFEST,
            Self::Docker => DOCKER_MANIFEST,
        }
    }

    fn index(self) -> &'static str {
        match self {
            Self::Oci => OCI_INDEX,
            Self::Docker => DOCKER_LIST,
        }
    }

    fn config(self) -> &'static str {
        match self {
            Self::Oci => OCI_CONFIG,
            Self::Docker => DOCKER_CONFIG,
        }
    }

    fn layer(self) -> &'static str {
        match self {
            Self::Oci => OCI_LAYER,
            Self::Docker => DOCKER_LAYER,
        }
    }
}

/// Content with its media type and digest.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
    pub digest: String,
}

impl Blob {
    pub fn new(media_type: &'static str, bytes: Vec<u8>) -> Self {
        let digest = super::sha256_digest(&bytes);
        Self {
            media_type,
            bytes,
            digest,
        }
    }

    /// The descriptor that points at this blob from a manifest or index.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len() })
    }
}

/// An OS, architecture and optional variant, as in an index entry.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    pub os: &'static str,
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
}

pub const LINUX_AMD64: Platform = Platform {
    os: "linux",
    architecture: "amd64",
    variant: None,
};
pub const LINUX_ARM64_V8: Platform = Platform {
    os: "linux",
    architecture: "arm64",
    variant: Some("v8"),
};
pub const LINUX_ARM_V7: Platform = Platform {
    os: "linux",
    architecture: "arm",
    variant: Some("v7"),
};

impl Platform {
    /// `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
    pub fn name(&self) -> String {
        match self.variant {
            Some(variant) => format!("{}/{}/{variant}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }

    fn to_json(self) -> Value {
        let mut platform = json!({ "os": self.os, "architecture": self.architecture });
        if let Some(variant) = self.variant {
            platform["variant"] = json!(variant);
        }
        platform
    }
}

/// An image manifest and the blobs (config, then layers) it references.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub blobs: Vec<Blob>,
}

/// An index or manifest list and its child manifests, each with its platform name
/// (`unknown/unknown` for an attestation).
#[derive(Clone, Debug)]
pub struct Index {
    pub manifest: Blob,
    pub children: Vec<(String, Image)>,
}

/// A single-platform image whose one layer holds a file made from `seed` and `platform`.
pub fn image(format: Format, seed: u64, platform: Platform) -> Image {
    let text = format!(
        "aisupply test fixture\nseed: {seed}\nplatform: {}\n",
        platform.name()
    );
    let tar = tar_with_file("fixture.txt", text.as_bytes());
    let layer = Blob::new(format.layer(), gzip(&tar));
    let mut config = platform.to_json();
    config["config"] = json!({});
    config["rootfs"] = json!({ "type": "layers", "diff_ids": [super::sha256_digest(&tar)] });
    let config = Blob::new(format.config(), json_bytes(&config));

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": format.manifest(),
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    Image {
        manifest: Blob::new(format.manifest(), pretty_json(&manifest)),
        blobs: vec![config, layer],
    }
}

/// An OCI index for linux/amd64 and linux/arm64/v8, plus a buildkit-style attestation manifest
/// about the amd64 image.
pub fn oci_index(seed: u64) -> Index {
    let amd64 = image(Format::Oci, seed, LINUX_AMD64);
    let arm64 = image(Format::Oci, seed, LINUX_ARM64_V8);
    let attestation = attestation(seed, &amd64.manifest);
    let entries = [
        platform_entry(&amd64.manifest, LINUX_AMD64),
        platform_entry(&arm64.manifest, LINUX_ARM64_V8),
        attestation_entry(&attestation.manifest, &amd64.manifest),
    ];
    let children = vec![
        (LINUX_AMD64.name(), amd64),
        (LINUX_ARM64_V8.name(), arm64),
        ("unknown/unknown".to_owned(), attestation),
    ];
    Index {
        manifest: index_blob(Format::Oci, &entries),
        children,
    }
}

/// A Docker manifest list for linux/amd64 and linux/arm/v7.
pub fn docker_list(seed: u64) -> Index {
    let amd64 = image(Format::Docker, seed, LINUX_AMD64);
    let arm = image(Format::Docker, seed, LINUX_ARM_V7);
    let entries = [
        platform_entry(&amd64.manifest, LINUX_AMD64),
        platform_entry(&arm.manifest, LINUX_ARM_V7),
    ];
    let children = vec![(LINUX_AMD64.name(), amd64), (LINUX_ARM_V7.name(), arm)];
    Index {
        manifest: index_blob(Format::Docker, &entries),
        children,
    }
}

/// The manifest buildkit attaches to an image: one in-toto statement about `subject`.
fn attestation(seed: u64, subject: &Blob) -> Image {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{ "name": "fixture", "digest": { "sha256": &subject.digest[7..] } }],
        "predicate": { "seed": seed },
    });
    let statement = Blob::new(IN_TOTO, json_bytes(&statement));
    let mut layer = statement.descriptor();
    layer["annotations"] = json!({ "in-toto.io/predicate-type": "https://spdx.dev/Document" });
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [statement.digest] },
    });
    let config = Blob::new(OCI_CONFIG, json_bytes(&config));

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer],
    });
    Image {
        manifest: Blob::new(OCI_MANIFEST, pretty_json(&manifest)),
        blobs: vec![config, statement],
    }
}

fn platform_entry(manifest: &Blob, platform: Platform) -> Value {
    let mut entry = manifest.descriptor();
    entry["platform"] = platform.to_json();
    entry
}

fn attestation_entry(attestation: &Blob, subject: &Blob) -> Value {
    let mut entry = attestation.descriptor();
    entry["platform"] = json!({ "os": "unknown", "architecture": "unknown" });
    entry["annotations"] = json!({
        "vnd.docker.reference.digest": subject.digest,
        "vnd.docker.reference.type": "attestation-manifest",
    });
    entry
}

fn index_blob(format: Format, entries: &[Value]) -> Blob {
    let index = json!({ "schemaVersion": 2, "mediaType": format.index(), "manifests": entries });
    Blob::new(format.index(), pretty_json(&index))
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialize JSON")
}

/// Manifests are stored pretty-printed, as many registries serve them, so that anything that
/// re-serializes instead of keeping the received bytes gets a different digest.
fn pretty_json(value: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("serialize JSON")
}

/// A ustar archive holding one regular file, with fixed owner, mode and time.
pub fn tar_with_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put = |at: usize, bytes: &[u8]| header[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", contents.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\x0000");
    let checksum: u32 = header.iter().map(|&byte| u32::from(byte)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let mut tar = header.to_vec();
    tar.extend_from_slice(contents);
    tar.resize(tar.len().next_multiple_of(512) + 1024, 0);
    tar
}

/// A gzip stream of `data` in stored (uncompressed) deflate blocks: valid gzip without a
/// compressor, and deterministic.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut blocks = data.chunks(0xffff).peekable();
    if data.is_empty() {
        out.extend([1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let len = u16::try_from(block.len()).expect("a stored block holds at most 65535 bytes");
        out.push(u8::from(blocks.peek().is_none()));
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend(crc32(data).to_le_bytes());
    out.extend(
        u32::try_from(data.len())
            .expect("fixture layers are small")
            .to_le_bytes(),
    );
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
