//! `aisupply mirror --models` and `pull --from`, against the Hub stand-in serving the real
//! all-MiniLM-L6-v2 and a real CNCF distribution registry: each model becomes a ModelPack
//! artifact whose layer digests are the lock's SHA-256s, and comes back byte-identical into an
//! empty Hugging Face cache without the Hub; a tampered or escaping artifact places nothing.

// Helpers of tests fail the test on anything unexpected, as the tests themselves do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::hub::{HubStandIn, MINILM};
use common::{Output, TestContext, sha256_digest, unreachable_host};

const REPO_PATH: &str = "huggingface.co/sentence-transformers/all-minilm-l6-v2";

fn locked(hub: &HubStandIn) -> TestContext {
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", format!("[[model]]\nrepo = \"{MINILM}\"\n"));
    let out = run(&ctx, hub, &["lock"]);
    assert_eq!(out.code, 0, "{out}");
    ctx
}

fn run(ctx: &TestContext, hub: &HubStandIn, args: &[&str]) -> Output {
    ctx.run_with_env(args, &[("HF_ENDPOINT", &hub.url())])
}

/// Runs with a Hub that refuses every connection, to prove the command does not need it.
fn run_without_hub(ctx: &TestContext, args: &[&str]) -> Output {
    let endpoint = format!("http://{}", unreachable_host());
    ctx.run_with_env(args, &[("HF_ENDPOINT", &endpoint)])
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}"))
}

/// The locked files: path → (size, sha256).
fn locked_files(ctx: &TestContext) -> Vec<(String, String)> {
    let lock: toml::Table = toml::from_str(&ctx.read("aisupply.lock")).unwrap();
    lock["model"][0]["file"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn commit(ctx: &TestContext) -> String {
    let lock: toml::Table = toml::from_str(&ctx.read("aisupply.lock")).unwrap();
    lock["model"][0]["commit"].as_str().unwrap().to_owned()
}

fn snapshot(cache: &Path, commit: &str) -> PathBuf {
    cache
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(commit)
}

/// Every locked file in `cache` has exactly the bytes the Hub serves.
fn assert_restored(ctx: &TestContext, hub: &HubStandIn, cache: &Path) {
    let repo = hub.repo(MINILM);
    let snapshot = snapshot(cache, &commit(ctx));
    for (path, sha256) in locked_files(ctx) {
        let bytes = std::fs::read(snapshot.join(&path))
            .unwrap_or_else(|e| panic!("read restored `{path}`: {e}"));
        assert_eq!(
            sha256_digest(&bytes),
            sha256,
            "`{path}` differs from the lock"
        );
        assert!(
            bytes == repo.file(&path).bytes(),
            "`{path}` differs from the Hub's"
        );
    }
}

/// Loads the model from `cache` with `huggingface_hub` and `HF_HUB_OFFLINE=1`; returns the
/// snapshot path, then `name sha256hex` per top-level file. `scripts/test.sh` installs
/// `huggingface_hub`; this fails, not skips, without it.
fn load_offline(cache: &Path) -> String {
    const SCRIPT: &str = r#"
import hashlib, os, sys
from huggingface_hub import snapshot_download
path = snapshot_download(sys.argv[1], revision="main", cache_dir=sys.argv[2],
                         local_files_only=True)
print(path)
for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    if os.path.isfile(full):
        print(name, hashlib.sha256(open(full, "rb").read()).hexdigest())
"#;
    let out = Command::new("python3")
        .args(["-c", SCRIPT, MINILM, cache.to_str().unwrap()])
        .env_remove("HF_TOKEN")
        .env_remove("HF_HOME")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .stdin(Stdio::null())
        .output()
        .expect("python3 runs (with huggingface_hub installed)");
    assert!(
        out.status.success(),
        "huggingface_hub could not load the restored cache:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The manifest `skopeo inspect --raw` prints for `docker://HOST/REFERENCE`.
fn skopeo_raw(image: &str) -> serde_json::Value {
    let output = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--no-creds",
            image,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("start `skopeo` (apt-get install skopeo): {err}"));
    assert!(
        output.status.success(),
        "skopeo inspect --raw {image} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The manifest is ModelPack, and each layer is one locked file under its own digest.
fn assert_modelpack(ctx: &TestContext, manifest: &serde_json::Value) {
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    let files = locked_files(ctx);
    assert_eq!(layers.len(), files.len(), "one layer per locked file");
    for (layer, (path, sha256)) in layers.iter().zip(&files) {
        assert_eq!(layer["annotations"]["org.cncf.model.filepath"], **path);
        assert_eq!(layer["digest"], **sha256, "layer of `{path}`");
        let media_type = layer["mediaType"].as_str().unwrap();
        assert!(
            media_type.starts_with("application/vnd.cncf.model.")
                && media_type.rsplit('.').next() == Some("raw"),
            "{media_type}"
        );
        if path == "model.safetensors" {
            assert_eq!(media_type, "application/vnd.cncf.model.weight.v1.raw");
        }
    }
}

#[test]
fn models_round_trip_through_a_registry_into_an_empty_cache() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let host = ctx.registry().host().to_owned();
    let to = format!("{host}/mirror");

    // The first run pulls the model from the Hub, then pushes every file.
    let out = run(
        &ctx,
        &hub,
        &["mirror", "--models", "--to", &to, "--format", "json"],
    );
    assert_eq!(out.code, 0, "{out}");
    let doc = json(&out);
    let model = &doc["models"][0];
    assert_eq!(model["up_to_date"], false);
    assert_eq!(model["blobs_copied"], locked_files(&ctx).len());
    let tag = commit(&ctx);
    let image = format!("docker://{to}/{REPO_PATH}:{tag}");
    let manifest = skopeo_raw(&image);
    assert_modelpack(&ctx, &manifest);
    assert_eq!(
        model["digest"],
        common::skopeo_raw_digest(&host, &format!("mirror/{REPO_PATH}:{tag}"))
    );

    // A second run copies nothing, and needs no Hub.
    let out = run_without_hub(&ctx, &["mirror", "--models", "--to", &to]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("up to date"), "{out}");

    // Restored into an empty cache without the Hub: byte-identical.
    let cache = ctx.path().join("fresh-cache");
    let cache_arg = cache.display().to_string();
    let args = ["pull", "--from", &to, "--cache-dir", &cache_arg];
    let out = run_without_hub(&ctx, &args);
    assert_eq!(out.code, 0, "{out}");
    assert_restored(&ctx, &hub, &cache);
    let refs = cache.join("models--sentence-transformers--all-MiniLM-L6-v2/refs/main");
    assert_eq!(std::fs::read_to_string(refs).unwrap(), tag);

    // Regression: the restored cache names its blobs as a pull from the Hub does (an LFS
    // file by its SHA-256, a file stored in git by its git SHA-1), so the two caches agree.
    let blob_names = |hub_dir: &std::path::Path| -> std::collections::BTreeSet<String> {
        let blobs = hub_dir.join("models--sentence-transformers--all-MiniLM-L6-v2/blobs");
        std::fs::read_dir(&blobs)
            .unwrap_or_else(|e| panic!("{}: {e}", blobs.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !name.starts_with('.'))
            .collect()
    };
    let from_hub = blob_names(&ctx.home().join(".cache/huggingface/hub"));
    assert_eq!(blob_names(&cache), from_hub);

    // The official client loads the restored cache offline.
    let loaded = load_offline(&cache);
    assert_eq!(
        loaded.lines().next(),
        Some(snapshot(&cache, &tag).to_str().unwrap())
    );
    let (_, weights) = locked_files(&ctx)
        .into_iter()
        .find(|(p, _)| p == "model.safetensors")
        .unwrap();
    assert!(
        loaded.contains(&format!(
            "model.safetensors {}",
            &weights["sha256:".len()..]
        )),
        "{loaded}"
    );

    // Pulling again keeps what is there.
    let out = run_without_hub(&ctx, &args);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("0 downloaded"), "{out}");
}

#[test]
fn models_round_trip_through_a_layout_and_a_dry_run_writes_nothing() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let dir = ctx.path().join("carry");
    let to = format!("oci:{}", dir.display());

    let out = run(
        &ctx,
        &hub,
        &["mirror", "--models", "--to", &to, "--dry-run"],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("would copy"), "{out}");
    assert!(!dir.exists(), "a dry run wrote {}", dir.display());

    // Models are split between shards like images: exactly one of two shards has it.
    let in_shard = |shard: &str| {
        let args = [
            "mirror",
            "--models",
            "--to",
            &to,
            "--dry-run",
            "--shard",
            shard,
        ];
        let out = run(&ctx, &hub, &args);
        assert_eq!(out.code, 0, "{out}");
        out.stdout.contains(MINILM)
    };
    assert!(in_shard("1/2") != in_shard("2/2"));

    let map = ctx.path().join("map.json");
    let map_arg = map.display().to_string();
    let out = run(
        &ctx,
        &hub,
        &["mirror", "--models", "--to", &to, "--map", &map_arg],
    );
    assert_eq!(out.code, 0, "{out}");
    let map: serde_json::Value = serde_json::from_slice(&std::fs::read(&map).unwrap()).unwrap();
    let tag = commit(&ctx);
    assert_eq!(
        map["models"][0]["mirror"],
        format!("{to}:{REPO_PATH}:{tag}"),
        "{map:#}"
    );

    // The layout holds each file as a blob named by its locked SHA-256.
    for (path, sha256) in locked_files(&ctx) {
        let blob = dir.join("blobs/sha256").join(&sha256["sha256:".len()..]);
        assert!(blob.is_file(), "no blob for `{path}`");
    }
    let image = format!("oci:{}:{REPO_PATH}:{tag}", dir.display());
    assert_modelpack(&ctx, &skopeo_raw(&image));

    let out = run_without_hub(&ctx, &["mirror", "--models", "--to", &to]);
    assert!(out.stdout.contains("up to date"), "{out}");

    let cache = ctx.path().join("fresh-cache");
    let cache_arg = cache.display().to_string();
    let out = run_without_hub(&ctx, &["pull", "--from", &to, "--cache-dir", &cache_arg]);
    assert_eq!(out.code, 0, "{out}");
    assert_restored(&ctx, &hub, &cache);

    // The far side of the air gap: the layout into a registry, then into production's cache.
    let far = format!("{}/far", ctx.registry().host());
    let out = run_without_hub(&ctx, &["mirror", "--from", &to, "--models", "--to", &far]);
    assert_eq!(out.code, 0, "{out}");
    let image = format!("docker://{far}/{REPO_PATH}:{tag}");
    let manifest = skopeo_raw(&image);
    assert_modelpack(&ctx, &manifest);
    let cache = ctx.path().join("production-cache");
    let cache_arg = cache.display().to_string();
    let out = run_without_hub(&ctx, &["pull", "--from", &far, "--cache-dir", &cache_arg]);
    assert_eq!(out.code, 0, "{out}");
    assert_restored(&ctx, &hub, &cache);
}

/// A layout with the model mirrored, for the bad-input tests.
fn mirrored_layout(hub: &HubStandIn) -> (TestContext, PathBuf) {
    let ctx = locked(hub);
    let dir = ctx.path().join("carry");
    let to = format!("oci:{}", dir.display());
    let out = run(&ctx, hub, &["mirror", "--models", "--to", &to]);
    assert_eq!(out.code, 0, "{out}");
    (ctx, dir)
}

#[test]
fn a_tampered_layer_fails_the_pull_and_places_nothing() {
    let hub = HubStandIn::minilm();
    let (ctx, dir) = mirrored_layout(&hub);
    let (_, sha256) = locked_files(&ctx)
        .into_iter()
        .find(|(p, _)| p == "config.json")
        .unwrap();
    let blob = dir.join("blobs/sha256").join(&sha256["sha256:".len()..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&blob, bytes).unwrap();

    let cache = ctx.path().join("fresh-cache");
    let from = format!("oci:{}", dir.display());
    let cache_arg = cache.display().to_string();
    let out = run_without_hub(&ctx, &["pull", "--from", &from, "--cache-dir", &cache_arg]);

    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("`config.json`"), "{out}");
    assert!(out.stderr.contains("expected: "), "{out}");
    let snapshot = snapshot(&cache, &commit(&ctx));
    assert!(
        !snapshot.exists() || std::fs::read_dir(&snapshot).unwrap().next().is_none(),
        "files were placed in {}",
        snapshot.display()
    );
}

#[test]
fn a_filepath_annotation_that_escapes_is_refused_with_exit_2() {
    let hub = HubStandIn::minilm();
    let (ctx, dir) = mirrored_layout(&hub);

    // Rewrite the artifact so that one layer names `../../outside`, and point the ref at it.
    let index_path = dir.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|n| n.starts_with(REPO_PATH))
        })
        .unwrap();
    let old = entry["digest"].as_str().unwrap().to_owned();
    let old_path = dir.join("blobs/sha256").join(&old["sha256:".len()..]);
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(old_path).unwrap()).unwrap();
    manifest["layers"][0]["annotations"]["org.cncf.model.filepath"] = "../../outside".into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256_digest(&bytes);
    std::fs::write(
        dir.join("blobs/sha256").join(&digest["sha256:".len()..]),
        &bytes,
    )
    .unwrap();
    entry["digest"] = digest.into();
    entry["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let cache = ctx.path().join("deep/fresh-cache");
    let from = format!("oci:{}", dir.display());
    let cache_arg = cache.display().to_string();
    let out = run_without_hub(&ctx, &["pull", "--from", &from, "--cache-dir", &cache_arg]);

    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("`../../outside`"), "{out}");
    assert!(out.stderr.contains("hint:"), "{out}");
    assert!(!cache.exists(), "something was written");
    assert!(!ctx.path().join("deep/outside").exists());
}

#[test]
fn a_model_missing_from_the_mirror_is_a_clear_error() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let dir = ctx.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    // An image-only mirror: an empty layout.
    let out = run(
        &ctx,
        &hub,
        &["mirror", "--to", &format!("oci:{}", dir.display())],
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("1 locked model not mirrored"), "{out}");

    let from = format!("oci:{}", dir.display());
    let cache_arg = ctx.path().join("c").display().to_string();
    let out = run_without_hub(&ctx, &["pull", "--from", &from, "--cache-dir", &cache_arg]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is not in the mirror"), "{out}");
    assert!(out.stderr.contains("aisupply mirror --models"), "{out}");
}
