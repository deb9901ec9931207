//! The harness shared by aisupply's integration tests.
//!
//! Each test makes a [`TestContext`]: a temp working directory and a temp home, the servers the
//! test starts, and a way to run the built `aisupply` binary inside them. Everything it owns is
//! stopped and removed when it drops. Images are built by our own code ([`fixtures`]) and pushed
//! to a real CNCF distribution registry ([`Registry`]); [`FakeRegistry`] misbehaves on purpose.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

mod context;
pub mod fake;
pub mod fixtures;
pub mod http;
pub mod hub;
pub mod image;
mod lockfile;
pub mod proxy;
mod registry;

// Re-exports, so that tests write `common::push_oci_image`; each binary uses some of them.
#[allow(unused_imports)]
pub use context::{Output, TestContext};
#[allow(unused_imports)]
pub use fake::{FakeAuth, FakeConfig, FakeManifest, FakeRegistry, RecordedRequest};
#[allow(unused_imports)]
pub use fixtures::{
    ChildManifest, PushedImage, delete_manifest, push_docker_image, push_docker_list, push_image,
    push_oci_image, push_oci_index,
};
#[allow(unused_imports)]
pub use lockfile::assert_valid_lockfile;
#[allow(unused_imports)]
pub use registry::{Registry, skopeo_raw_digest};

/// Returns `127.0.0.1:PORT` where nothing listens: connections to it are refused.
pub fn unreachable_host() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener
        .local_addr()
        .expect("read the bound address")
        .port();
    drop(listener);
    format!("127.0.0.1:{port}")
}

/// Returns `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
