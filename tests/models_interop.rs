//! Interop with the official `huggingface_hub` client (from PyPI): it loads what
//! `aisupply pull` wrote with `HF_HUB_OFFLINE=1`, finds nothing to load after a corrupted
//! download, and downloads from our Hub stand-in itself (so the stand-in speaks the real API).
//!
//! `scripts/test.sh` installs `huggingface_hub`; these tests fail, not skip, without it.

mod common;

use std::path::Path;
use std::process::Command;

use common::hub::{Faults, HubStandIn, MINILM};
use common::{Output, TestContext};

fn run(ctx: &TestContext, hub: &HubStandIn, args: &[&str]) -> Output {
    ctx.run_with_env(args, &[("HF_ENDPOINT", &hub.url())])
}

/// Runs `script` with python3, `huggingface_hub` importable, and `env`; returns its stdout.
fn python(script: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let probe = Command::new("python3")
        .args(["-c", "import huggingface_hub"])
        .status()
        .expect("python3 runs");
    assert!(
        probe.success(),
        "huggingface_hub is not installed: run scripts/test.sh, or `pip install huggingface_hub`"
    );
    let out = Command::new("python3")
        .args(["-c", script])
        .env_remove("HF_TOKEN")
        .env_remove("HF_HOME")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .envs(env.iter().copied())
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn locked(hub: &HubStandIn) -> TestContext {
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", format!("[[model]]\nrepo = \"{MINILM}\"\n"));
    let out = run(&ctx, hub, &["lock"]);
    assert_eq!(out.code, 0, "{out}");
    ctx
}

const LOAD_OFFLINE: &str = r#"
import hashlib, os, sys
from huggingface_hub import snapshot_download
path = snapshot_download(sys.argv[1] if len(sys.argv) > 1 else os.environ["REPO"],
                         revision="main", cache_dir=os.environ["CACHE"], local_files_only=True)
print(path)
for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    if os.path.isfile(full):
        print(name, hashlib.sha256(open(full, "rb").read()).hexdigest())
"#;

#[test]
fn huggingface_hub_loads_what_pull_wrote_offline() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    let cache = ctx.home().join(".cache/huggingface/hub");

    let (code, stdout, stderr) = python(
        LOAD_OFFLINE,
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("REPO", MINILM),
            ("CACHE", cache.to_str().expect("utf-8")),
        ],
    );

    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let repo = hub.repo(MINILM);
    let mut lines = stdout.lines();
    let snapshot = lines.next().expect("the snapshot path");
    let expected = cache
        .join("models--sentence-transformers--all-MiniLM-L6-v2/snapshots")
        .join(repo.main());
    assert_eq!(Path::new(snapshot), expected);
    let weights = format!(
        "model.safetensors {}",
        repo.file("model.safetensors").sha256
    );
    assert!(stdout.lines().any(|l| l == weights), "{stdout}");
    assert!(stdout.contains(&format!("config.json {}", repo.file("config.json").sha256)));
}

#[test]
fn a_corrupted_download_cannot_be_loaded_from_the_cache() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    hub.set_faults(Faults {
        flip_byte: Some("model.safetensors".to_owned()),
        ..Faults::default()
    });
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 1);
    let cache = ctx.home().join(".cache/huggingface/hub");
    let commit = hub.repo(MINILM).main().to_owned();

    let script = r#"
import os
from huggingface_hub import hf_hub_download
try:
    hf_hub_download(os.environ["REPO"], "model.safetensors", revision=os.environ["COMMIT"],
                    cache_dir=os.environ["CACHE"], local_files_only=True)
except Exception as e:
    print("refused:", type(e).__name__)
else:
    print("loaded")
"#;
    let (code, stdout, stderr) = python(
        script,
        &[
            ("HF_HUB_OFFLINE", "1"),
            ("REPO", MINILM),
            ("COMMIT", &commit),
            ("CACHE", cache.to_str().expect("utf-8")),
        ],
    );

    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("refused:"), "{stdout}\n{stderr}");
}

#[test]
fn huggingface_hub_downloads_from_the_stand_in() {
    let hub = HubStandIn::minilm();
    let cache = tempfile::tempdir().expect("a cache");
    let script = r#"
import hashlib, os
from huggingface_hub import snapshot_download
path = snapshot_download(os.environ["REPO"], cache_dir=os.environ["CACHE"])
name = os.path.join(path, "model.safetensors")
print(hashlib.sha256(open(name, "rb").read()).hexdigest())
"#;

    let (code, stdout, stderr) = python(
        script,
        &[
            ("HF_ENDPOINT", &hub.url()),
            ("REPO", MINILM),
            ("CACHE", cache.path().to_str().expect("utf-8")),
        ],
    );

    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        hub.repo(MINILM).file("model.safetensors").sha256
    );
    assert!(
        hub.requests().iter().any(|r| r.host == "cdn"),
        "LFS bytes came from the CDN host"
    );
}
