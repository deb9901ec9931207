//! `aisupply mirror` between real CNCF distribution registries and OCI layouts: digests stay
//! identical, tampered content never gets a name, signatures travel with their image.

// Helpers of tests fail the test on anything unexpected, as the tests themselves do.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::image::{Blob, Image};
use common::{Registry, TestContext, push_docker_image, push_docker_list, push_oci_index};
use common::{push_image, push_oci_image, skopeo_raw_digest};

fn image(name: &str, reference: &str) -> String {
    format!("[[image]]\nname = \"{name}\"\nref = \"{reference}\"\n\n")
}

/// The repository an image of `source_host` lands in under `dest/mirror`.
fn mirrored(source_host: &str, repo: &str) -> String {
    format!("mirror/{}/{repo}", source_host.replace(':', "-"))
}

fn lock_entries(ctx: &TestContext) -> Vec<toml::Table> {
    let lock: toml::Table = toml::from_str(&ctx.read("aisupply.lock")).unwrap();
    lock["image"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_table().unwrap().clone())
        .collect()
}

fn manifest_digests(entry: &toml::Table) -> Vec<String> {
    let mut digests = vec![entry["digest"].as_str().unwrap().to_owned()];
    if let Some(list) = entry.get("manifest").and_then(|m| m.as_array()) {
        digests.extend(
            list.iter()
                .map(|m| m["digest"].as_str().unwrap().to_owned()),
        );
    }
    digests
}

/// A context whose source registry holds an OCI index, a Docker image and a Docker list,
/// configured and locked.
fn locked_fixtures() -> (TestContext, String) {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    push_oci_index(&host, "team/app", "1.0", 1);
    push_docker_image(&host, "team/tool", "2.0", 2);
    push_docker_list(&host, "team/list", "3.0", 3);
    ctx.write(
        "aisupply.toml",
        image("app", &format!("{host}/team/app:1.0"))
            + &image("tool", &format!("{host}/team/tool:2.0"))
            + &image("list", &format!("{host}/team/list:3.0")),
    );
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    (ctx, host)
}

/// A context with the same image (same layers) pushed as `one/app:1` and `two/app:1`, locked.
fn two_repositories_sharing_layers(seed: u64) -> (TestContext, String) {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    push_oci_image(&host, "one/app", "1", seed);
    push_oci_image(&host, "two/app", "1", seed);
    ctx.write(
        "aisupply.toml",
        image("one", &format!("{host}/one/app:1")) + &image("two", &format!("{host}/two/app:1")),
    );
    assert_eq!(ctx.run(&["lock"]).code, 0);
    (ctx, host)
}

/// Every locked digest (top level and platforms) is served by `dest` under the mirror names.
fn assert_mirrored(ctx: &TestContext, source: &str, dest: &str) {
    for entry in lock_entries(ctx) {
        let reference = entry["reference"].as_str().unwrap();
        let path = reference.split_once('/').unwrap().1;
        let (repo, tag) = path.rsplit_once(':').unwrap();
        let mirror_repo = mirrored(source, repo);
        let top = skopeo_raw_digest(dest, &format!("{mirror_repo}:{tag}"));
        assert_eq!(top, entry["digest"].as_str().unwrap(), "{reference}");
        for digest in manifest_digests(&entry) {
            assert_eq!(
                skopeo_raw_digest(dest, &format!("{mirror_repo}@{digest}")),
                digest
            );
        }
    }
}

#[test]
fn mirror_keeps_every_digest_between_registries() {
    let (ctx, source) = locked_fixtures();
    let dest = Registry::start();
    let to = format!("{}/mirror", dest.host());

    let out = ctx.run(&["mirror", "--to", &to, "--map", "map.json"]);
    assert_eq!(out.code, 0, "{out}");
    assert_mirrored(&ctx, &source, dest.host());

    let map: serde_json::Value = serde_json::from_str(&ctx.read("map.json")).unwrap();
    let app = map["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "app")
        .unwrap();
    let locked_app = &lock_entries(&ctx)[0];
    assert_eq!(app["digest"].as_str(), locked_app["digest"].as_str());
    assert_eq!(
        app["mirror"].as_str().unwrap(),
        format!(
            "{}/{}:1.0@{}",
            dest.host(),
            mirrored(&source, "team/app"),
            locked_app["digest"].as_str().unwrap()
        )
    );

    // A second run copies nothing and says so.
    let again = ctx.run(&["mirror", "--to", &to]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again
            .stdout
            .contains("nothing to copy, all 3 images up to date"),
        "{again}"
    );
}

#[test]
fn a_layout_carries_every_digest_to_a_second_registry() {
    let (ctx, source) = locked_fixtures();
    let out = ctx.run(&["mirror", "--to", "oci:carry"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(ctx.path().join("carry/oci-layout").exists());

    let far = Registry::start();
    let to = format!("{}/mirror", far.host());
    let out = ctx.run(&["mirror", "--from", "oci:carry", "--to", &to]);
    assert_eq!(out.code, 0, "{out}");
    assert_mirrored(&ctx, &source, far.host());

    // skopeo reads our layout too, and keeps the digest.
    let app = &lock_entries(&ctx)[0];
    let name = format!("{source}/team/app:1.0");
    let status = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:{name}", ctx.path().join("carry").display()))
        .arg(format!("docker://{}/by-skopeo/app:1.0", far.host()))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        skopeo_raw_digest(far.host(), "by-skopeo/app:1.0"),
        app["digest"].as_str().unwrap()
    );
}

#[test]
fn a_tampered_source_blob_fails_and_nothing_is_tagged() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let pushed = push_oci_image(&host, "team/app", "1", 7);
    ctx.write("aisupply.toml", image("app", &format!("{host}/team/app:1")));
    assert_eq!(ctx.run(&["lock"]).code, 0);

    // Flip one byte of the layer behind the registry's back, keeping its size.
    let manifest: serde_json::Value =
        serde_json::from_str(&raw_manifest(&host, &format!("team/app@{}", pushed.digest))).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let file = ctx.registry().blob_file(layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    let dest = Registry::start();
    let out = ctx.run(&["mirror", "--to", &format!("{}/mirror", dest.host())]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("does not match its digest"), "{out}");
    assert!(out.stderr.contains(&format!("expected: {layer}")), "{out}");
    let tag = format!(
        "http://{}/v2/{}/manifests/1",
        dest.host(),
        mirrored(&host, "team/app")
    );
    assert_eq!(head_status(&tag), 404, "the destination never gets the tag");

    let out = ctx.run(&["mirror", "--to", "oci:out"]);
    assert_eq!(out.code, 2, "{out}");
    let hex = layer.trim_start_matches("sha256:");
    assert!(!ctx.path().join("out/blobs/sha256").join(hex).exists());
    assert!(!ctx.read("out/index.json").contains("team/app"));
}

#[test]
fn cosign_signatures_and_referrers_travel_and_still_verify() {
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::{Signature, SigningKey};

    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let pushed = push_oci_image(&host, "team/app", "1", 8);
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let (sig, payload) = cosign_signature(&host, &pushed.digest, &key);
    let base = pushed.digest.replace(':', "-");
    push_image(&host, "team/app", &format!("{base}.sig"), &sig);
    let (sbom, referrers) = referrers_fallback_index(&pushed.digest);
    push_image(&host, "team/app", &sbom.manifest.digest, &sbom);
    push_image(&host, "team/app", &base, &referrers);
    ctx.write("aisupply.toml", image("app", &format!("{host}/team/app:1")));
    assert_eq!(ctx.run(&["lock"]).code, 0);

    let dest = Registry::start();
    let out = ctx.run(&["mirror", "--to", &format!("{}/mirror", dest.host())]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("2 signature artifacts"), "{out}");

    // The signature at the mirror is the same manifest, and its signature still verifies
    // against the mirrored payload, which names the image's digest.
    let repo = mirrored(&host, "team/app");
    assert_eq!(
        skopeo_raw_digest(dest.host(), &format!("{repo}:{base}.sig")),
        sig.manifest.digest
    );
    let mirrored_sig: serde_json::Value =
        serde_json::from_str(&raw_manifest(dest.host(), &format!("{repo}:{base}.sig"))).unwrap();
    let layer = &mirrored_sig["layers"][0];
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    let signature = Signature::from_der(&base64_decode(signature)).unwrap();
    let payload_at_mirror = blob(dest.host(), &repo, layer["digest"].as_str().unwrap());
    assert_eq!(payload_at_mirror, payload);
    key.verifying_key()
        .verify(&payload_at_mirror, &signature)
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(&payload_at_mirror).unwrap();
    assert_eq!(
        claims["critical"]["image"]["docker-manifest-digest"],
        pushed.digest.as_str()
    );

    assert_eq!(
        skopeo_raw_digest(dest.host(), &format!("{repo}:{base}")),
        referrers.manifest.digest,
        "the referrers fallback index travels too"
    );
}

#[test]
fn dry_run_prints_the_plan_and_copies_nothing() {
    let (ctx, source) = locked_fixtures();
    let dest = Registry::start();
    let out = ctx.run(&[
        "mirror",
        "--dry-run",
        "--to",
        &format!("{}/mirror", dest.host()),
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("would copy"), "{out}");
    assert!(
        out.stdout.contains("would copy 6 blobs (4.8 KiB)"),
        "sizes are shown: {out}"
    );
    let tag = format!(
        "http://{}/v2/{}/manifests/1.0",
        dest.host(),
        mirrored(&source, "team/app")
    );
    assert_eq!(head_status(&tag), 404);

    let out = ctx.run(&["mirror", "--dry-run", "--to", "oci:not-yet"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!ctx.path().join("not-yet").exists());
}

#[test]
fn shards_split_the_lock_between_jobs() {
    let (ctx, _) = locked_fixtures();
    let mut names = Vec::new();
    for shard in ["1/2", "2/2"] {
        let out = ctx.run(&[
            "mirror",
            "--shard",
            shard,
            "--to",
            "oci:sharded",
            "--format",
            "json",
        ]);
        assert_eq!(out.code, 0, "{out}");
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        for entry in doc["images"].as_array().unwrap() {
            names.push(entry["name"].as_str().unwrap().to_owned());
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["app", "list", "tool"],
        "each image in exactly one shard"
    );
}

#[test]
fn shared_layers_are_mounted_from_another_mirrored_repository() {
    let (ctx, _) = two_repositories_sharing_layers(9);
    let dest = Registry::start();
    let out = ctx.run(&[
        "mirror",
        "--to",
        &format!("{}/m", dest.host()),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["images"][0]["blobs_copied"], 2);
    assert_eq!(doc["images"][1]["blobs_mounted"], 2, "{out}");
    assert_eq!(doc["images"][1]["blobs_copied"], 0);
}

#[test]
fn an_interrupted_mirror_resumes_and_ends_complete() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let big = large_image(96 * 1024 * 1024);
    push_image(&host, "team/big", "1", &big);
    ctx.write("aisupply.toml", image("big", &format!("{host}/team/big:1")));
    assert_eq!(ctx.run(&["lock"]).code, 0);
    let dest = Registry::start();
    let to = format!("{}/mirror", dest.host());

    // Kill the first run mid-transfer: once the small config blob has arrived, while the
    // large layer is still on its way.
    let config = format!(
        "http://{}/v2/{}/blobs/{}",
        dest.host(),
        mirrored(&host, "team/big"),
        big.blobs[0].digest
    );
    let mut child = ctx.command(&["mirror", "--to", &to]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while head_status(&config) != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let tag = format!(
        "http://{}/v2/{}/manifests/1",
        dest.host(),
        mirrored(&host, "team/big")
    );
    assert_eq!(
        head_status(&tag),
        404,
        "the first run was interrupted before the tag"
    );

    // The second run keeps what the first one stored and completes the image.
    let out = ctx.run(&["mirror", "--to", &to, "--format", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["images"][0]["blobs_present"], 1, "{out}");
    assert_eq!(doc["images"][0]["blobs_copied"], 1, "{out}");
    assert_eq!(
        skopeo_raw_digest(dest.host(), &format!("{}:1", mirrored(&host, "team/big"))),
        big.manifest.digest
    );
    let again = ctx.run(&["mirror", "--to", &to]);
    assert!(again.stdout.contains("nothing to copy"), "{again}");
}

#[test]
fn bad_targets_and_unusable_destinations_are_exit_2() {
    let (ctx, _) = locked_fixtures();
    for (args, expected) in [
        (vec!["--to", "mirror"], "is not a mirror target"),
        (vec!["--to", "https://r.example/m"], "drop the URL scheme"),
        (vec!["--to", "oci:"], "needs a directory"),
        (vec!["--shard", "3/2", "--to", "oci:x"], "`--shard 3/2`"),
        (
            vec!["--to", "r.example/Upper"],
            "the prefix `Upper` must be lowercase",
        ),
    ] {
        let mut full = vec!["mirror"];
        full.extend(args);
        let out = ctx.run(&full);
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains(expected), "{expected}: {out}");
    }

    ctx.write("not-a-layout/notes.txt", "hello");
    let out = ctx.run(&["mirror", "--to", "oci:not-a-layout"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is not an OCI image layout"), "{out}");
    let out = ctx.run(&["mirror", "--from", "oci:not-a-layout", "--to", "oci:y"]);
    assert_eq!(out.code, 2, "{out}");

    let down = common::unreachable_host();
    let out = ctx.run(&["mirror", "--to", &format!("{down}/m")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains(&format!("cannot reach registry `{down}`")),
        "{out}"
    );

    let guarded = common::FakeRegistry::start(common::FakeConfig {
        auth: common::FakeAuth::basic("u", "p"),
        ..common::FakeConfig::default()
    });
    let out = ctx.run(&["mirror", "--to", &format!("{}/m", guarded.host())]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("refused access"), "{out}");
    assert!(out.stderr.contains("docker login"), "{out}");
}

// ---- helpers -------------------------------------------------------------------------------

fn raw_manifest(host: &str, reference: &str) -> String {
    let output = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/{reference}"))
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

fn head_status(url: &str) -> u16 {
    common::http::block_on(async {
        common::http::client()
            .head(url)
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

fn blob(host: &str, repo: &str, digest: &str) -> Vec<u8> {
    let url = format!("http://{host}/v2/{repo}/blobs/{digest}");
    common::http::block_on(async {
        let response = common::http::client().get(url).send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap().to_vec()
    })
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// A cosign-format signature of `digest`: a simple-signing payload as the one layer, its
/// ECDSA P-256 signature in the layer's `dev.cosignproject.cosign/signature` annotation.
fn cosign_signature(host: &str, digest: &str, key: &p256::ecdsa::SigningKey) -> (Image, Vec<u8>) {
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    let payload = serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": { "docker-reference": format!("{host}/team/app") },
            "image": { "docker-manifest-digest": digest },
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap();
    let signature: p256::ecdsa::Signature = key.sign(&payload);
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes());
    let layer = Blob::new(
        "application/vnd.dev.cosign.simplesigning.v1+json",
        payload.clone(),
    );
    let config = Blob::new(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&serde_json::json!({
            "architecture": "", "os": "", "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] }
        }))
        .unwrap(),
    );
    let mut layer_descriptor = layer.descriptor();
    layer_descriptor["annotations"] =
        serde_json::json!({ "dev.cosignproject.cosign/signature": encoded });
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config.descriptor(),
        "layers": [layer_descriptor]
    });
    let manifest = Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&manifest).unwrap(),
    );
    (
        Image {
            manifest,
            blobs: vec![config, layer],
        },
        payload,
    )
}

/// An SBOM artifact about `digest`, and a referrers index in the tag-schema fallback form
/// listing it.
fn referrers_fallback_index(digest: &str) -> (Image, Image) {
    let sbom = Blob::new(
        "application/spdx+json",
        br#"{"spdxVersion":"SPDX-2.3"}"#.to_vec(),
    );
    let config = Blob::new("application/vnd.oci.empty.v1+json", b"{}".to_vec());
    let artifact = Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/spdx+json",
            "config": config.descriptor(),
            "layers": [sbom.descriptor()],
            "subject": { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1 }
        }))
        .unwrap(),
    );
    let mut entry = artifact.descriptor();
    entry["artifactType"] = serde_json::json!("application/spdx+json");
    let index = Blob::new(
        "application/vnd.oci.image.index.v1+json",
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry]
        }))
        .unwrap(),
    );
    let artifact = Image {
        manifest: artifact,
        blobs: vec![config, sbom],
    };
    let index = Image {
        manifest: index,
        blobs: Vec::new(),
    };
    (artifact, index)
}

/// A single-platform image with one layer of `size` pseudo-random bytes.
fn large_image(size: usize) -> Image {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect();
    let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", bytes);
    let config = Blob::new(
        "application/vnd.oci.image.config.v1+json",
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] }
        }))
        .unwrap(),
    );
    let manifest = Blob::new(
        "application/vnd.oci.image.manifest.v1+json",
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config.descriptor(),
            "layers": [layer.descriptor()]
        }))
        .unwrap(),
    );
    Image {
        manifest,
        blobs: vec![config, layer],
    }
}

#[test]
fn a_destination_that_refuses_mounts_gets_plain_uploads() {
    let (ctx, host) = two_repositories_sharing_layers(11);
    let dest = Registry::start();
    let proxy = common::proxy::Proxy::start(
        dest.host(),
        common::proxy::ProxyConfig {
            refuse_mounts: true,
            ..Default::default()
        },
    );
    let out = ctx.run(&[
        "mirror",
        "--to",
        &format!("{}/m", proxy.host()),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        proxy.requests().iter().any(|r| r.contains("mount=")),
        "a mount was tried"
    );
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["images"][1]["blobs_mounted"], 0, "{out}");
    assert_eq!(doc["images"][1]["blobs_copied"], 2, "{out}");
    let two = doc["images"][1]["digest"].as_str().unwrap();
    let repo = format!("m/{}/two/app:1", host.replace(':', "-"));
    assert_eq!(skopeo_raw_digest(dest.host(), &repo), two);
}

#[test]
fn a_registry_that_asks_for_chunks_gets_chunked_uploads() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let big = large_image(20 * 1024 * 1024);
    push_image(&host, "team/big", "1", &big);
    ctx.write("aisupply.toml", image("big", &format!("{host}/team/big:1")));
    assert_eq!(ctx.run(&["lock"]).code, 0);
    let dest = Registry::start();
    let proxy = common::proxy::Proxy::start(
        dest.host(),
        common::proxy::ProxyConfig {
            chunk_min_length: Some(5 * 1024 * 1024),
            ..Default::default()
        },
    );
    let out = ctx.run(&["mirror", "--to", &format!("{}/m", proxy.host())]);
    assert_eq!(out.code, 0, "{out}");
    let patches = proxy
        .requests()
        .iter()
        .filter(|r| r.starts_with("PATCH"))
        .count();
    // 20 MiB in chunks of at least 8 MiB (our floor): three PATCHes for the layer, one for
    // the small config.
    assert_eq!(patches, 4, "{:#?}", proxy.requests());
    let repo = format!("m/{}/team/big:1", host.replace(':', "-"));
    assert_eq!(skopeo_raw_digest(dest.host(), &repo), big.manifest.digest);
}

#[test]
fn pin_mirror_points_deployments_at_the_mirror() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let pushed = push_oci_index(&host, "team/app", "1", 12);
    ctx.write(
        "aisupply.toml",
        format!(
            "{}[sources]\nkubernetes = [\"deploy/*.yaml\"]\n",
            image("app", &format!("{host}/team/app:1"))
        ),
    );
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app  # the server\nspec:\n  containers:\n\
         \x20   - name: app\n      image: \"{host}/team/app:1\"\n"
    );
    ctx.write("deploy/app.yaml", &manifest);
    assert_eq!(ctx.run(&["lock"]).code, 0);
    let dest = Registry::start();
    let mirror = format!("{}/mirror", dest.host());
    assert_eq!(ctx.run(&["mirror", "--to", &mirror]).code, 0);

    let out = ctx.run(&["pin", "--write", "--mirror", &mirror]);
    assert_eq!(out.code, 0, "{out}");
    let mirrored_ref = format!(
        "{mirror}/{}/team/app:1@{}",
        host.replace(':', "-"),
        pushed.digest
    );
    let expected = manifest.replace(&format!("{host}/team/app:1"), &mirrored_ref);
    assert_eq!(
        ctx.read("deploy/app.yaml"),
        expected,
        "only the reference changed"
    );

    // Idempotent, and verify accepts mirrored references when told about the mirror.
    let again = ctx.run(&["pin", "--write", "--mirror", &mirror]);
    assert_eq!(again.code, 0, "{again}");
    assert_eq!(ctx.read("deploy/app.yaml"), expected);
    let out = ctx.run(&["verify", "--offline", "--mirror", &mirror]);
    assert_eq!(out.code, 0, "{out}");
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(
        out.code, 1,
        "without --mirror the reference is not the locked one: {out}"
    );

    // The deployment's reference resolves at the mirror to the locked digest.
    let path = mirrored_ref.split_once('/').unwrap().1;
    let (name, _) = path.split_once('@').unwrap();
    assert_eq!(skopeo_raw_digest(dest.host(), name), pushed.digest);

    let out = ctx.run(&["pin", "--mirror", "oci:carry"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("must be a registry"), "{out}");
}

#[test]
fn referrers_listed_by_the_referrers_api_travel_and_get_a_fallback_index() {
    let ctx = TestContext::new();
    let origin = ctx.registry().host().to_owned();
    let pushed = push_oci_image(&origin, "team/app", "1", 13);
    let (sbom, index) = referrers_fallback_index(&pushed.digest);
    push_image(&origin, "team/app", &sbom.manifest.digest, &sbom);
    // The source speaks the referrers API (through the proxy); no fallback tag exists there.
    let index_bytes: &'static [u8] = Box::leak(index.manifest.bytes.clone().into_boxed_slice());
    let source = common::proxy::Proxy::start(
        &origin,
        common::proxy::ProxyConfig {
            referrers: Some(index_bytes),
            ..Default::default()
        },
    );
    let host = source.host().to_owned();
    ctx.write("aisupply.toml", image("app", &format!("{host}/team/app:1")));
    assert_eq!(ctx.run(&["lock"]).code, 0);

    let dest = Registry::start();
    let out = ctx.run(&["mirror", "--to", &format!("{}/mirror", dest.host())]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("1 signature artifact"), "{out}");
    assert!(
        source.requests().iter().any(|r| r.contains("/referrers/")),
        "the API was asked"
    );

    // The destination (CNCF distribution 2.8) has no referrers API: the artifact is there by
    // digest, and the fallback index under `sha256-<hex>` lists it.
    let repo = mirrored(&host, "team/app");
    assert_eq!(
        skopeo_raw_digest(dest.host(), &format!("{repo}@{}", sbom.manifest.digest)),
        sbom.manifest.digest
    );
    let fallback = raw_manifest(
        dest.host(),
        &format!("{repo}:{}", pushed.digest.replace(':', "-")),
    );
    assert!(fallback.contains(&sbom.manifest.digest), "{fallback}");
}

/// Regression: concurrent runs into one layout each read, merged and replaced `index.json`
/// without a lock, so one run's names could be lost.
#[test]
fn shards_mirroring_into_one_layout_at_once_keep_every_name() {
    let (ctx, source) = locked_fixtures();
    let children: Vec<std::process::Child> = ["1/2", "2/2"]
        .iter()
        .map(|shard| {
            ctx.command(&["mirror", "-q", "--shard", shard, "--to", "oci:shared"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
    }
    let index = ctx.read("shared/index.json");
    for repo in ["team/app:1.0", "team/tool:2.0", "team/list:3.0"] {
        assert!(
            index.contains(&format!("{source}/{repo}")),
            "{repo} missing:\n{index}"
        );
    }
}

/// Regression: an image locked by digest alone was shown with a `latest` tag that was never
/// pushed, and got no name at all in a layout.
#[test]
fn an_image_locked_by_digest_alone_is_mirrored_and_named_by_its_digest() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let pushed = push_oci_image(&host, "team/app", "1", 14);
    ctx.write(
        "aisupply.toml",
        image("app", &format!("{host}/team/app@{}", pushed.digest)),
    );
    assert_eq!(ctx.run(&["lock"]).code, 0);

    let dest = Registry::start();
    let out = ctx.run(&[
        "mirror",
        "--to",
        &format!("{}/m", dest.host()),
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let repo = format!("m/{}/team/app", host.replace(':', "-"));
    let shown = format!("{}/{repo}@{}", dest.host(), pushed.digest);
    assert_eq!(doc["images"][0]["mirror"], shown.as_str());
    assert_eq!(
        skopeo_raw_digest(dest.host(), &format!("{repo}@{}", pushed.digest)),
        pushed.digest
    );

    let out = ctx.run(&["mirror", "--to", "oci:carry"]);
    assert_eq!(out.code, 0, "{out}");
    let name = format!("{host}/team/app:{}", pushed.digest.replace(':', "_"));
    assert!(
        ctx.read("carry/index.json").contains(&name),
        "{}",
        ctx.read("carry/index.json")
    );
    let again = ctx.run(&["mirror", "--to", "oci:carry"]);
    assert!(again.stdout.contains("nothing to copy"), "{again}");
}

/// Regression: a layout whose `index.json` named an image was taken as complete, so a deleted
/// blob was only found on the far side of the air gap.
#[test]
fn a_damaged_layout_is_repaired_by_the_next_run() {
    let (ctx, _) = locked_fixtures();
    assert_eq!(ctx.run(&["mirror", "--to", "oci:carry"]).code, 0);
    let blobs = ctx.path().join("carry/blobs/sha256");
    let mut largest: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (std::fs::metadata(&path).unwrap().len(), path)
        })
        .collect();
    largest.sort();
    let (_, removed) = largest.pop().unwrap();
    std::fs::remove_file(&removed).unwrap();

    let out = ctx.run(&["mirror", "--to", "oci:carry"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("nothing to copy"), "{out}");
    assert!(removed.exists(), "the missing blob is copied again");
    let again = ctx.run(&["mirror", "--to", "oci:carry"]);
    assert!(again.stdout.contains("nothing to copy"), "{again}");
}

#[test]
fn a_dry_run_leaves_an_existing_empty_directory_empty() {
    let (ctx, _) = locked_fixtures();
    std::fs::create_dir_all(ctx.path().join("empty")).unwrap();
    let out = ctx.run(&["mirror", "--dry-run", "--to", "oci:empty"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        std::fs::read_dir(ctx.path().join("empty")).unwrap().count(),
        0
    );
}
