//! `aisupply pull` and `verify`'s check 4, against the Hub stand-in serving the real
//! all-MiniLM-L6-v2: files land in the Hugging Face cache layout (or `--local-dir`) only once
//! they hash to the lock, downloads resume, faults are survived or reported, the token stays on
//! the Hub host, and nothing escapes the target directory.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::hub::{self, Faults, HubStandIn, MINILM};
use common::{Output, TestContext};

const WEIGHTS: &str = "model.safetensors";

/// A context whose `aisupply.lock` pins the real model, locked against `hub`.
fn locked(hub: &HubStandIn) -> TestContext {
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", format!("[[model]]\nrepo = \"{MINILM}\"\n"));
    let out = run(&ctx, hub, &["lock"]);
    assert_eq!(out.code, 0, "{out}");
    hub.clear_requests();
    ctx
}

fn run(ctx: &TestContext, hub: &HubStandIn, args: &[&str]) -> Output {
    ctx.run_with_env(args, &[("HF_ENDPOINT", &hub.url())])
}

/// `models--sentence-transformers--all-MiniLM-L6-v2` in the context's default cache.
fn model_cache(ctx: &TestContext) -> PathBuf {
    ctx.home()
        .join(".cache/huggingface/hub/models--sentence-transformers--all-MiniLM-L6-v2")
}

fn snapshot(ctx: &TestContext, hub: &HubStandIn) -> PathBuf {
    model_cache(ctx)
        .join("snapshots")
        .join(hub.repo(MINILM).main())
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {out}"))
}

fn status_of(doc: &serde_json::Value, path: &str) -> serde_json::Value {
    doc["models"][0]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == path)
        .cloned()
        .unwrap_or_else(|| panic!("no `{path}` in {doc:#}"))
}

/// Every file below `dir`, relative.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries {
            let path = entry.expect("entry").path();
            let name = path.strip_prefix(dir).expect("below").display().to_string();
            if path.is_dir() && !path.is_symlink() {
                out.extend(tree(&path).into_iter().map(|p| format!("{name}/{p}")));
            } else {
                out.push(name);
            }
        }
    }
    out.sort();
    out
}

fn cdn_bytes_requested(hub: &HubStandIn) -> u64 {
    let size = hub::MINILM_WEIGHTS_SIZE;
    hub.requests()
        .iter()
        .filter(|r| r.host == "cdn" && r.method == "GET")
        .map(
            |r| match r.range.as_deref().and_then(|v| v.strip_prefix("bytes=")) {
                None => size,
                Some(range) => {
                    let (a, b) = range.split_once('-').expect("a range");
                    let a: u64 = a.parse().expect("a start");
                    let b: u64 = if b.is_empty() {
                        size - 1
                    } else {
                        b.parse().expect("an end")
                    };
                    b - a + 1
                }
            },
        )
        .sum()
}

#[test]
fn pull_places_verified_files_in_the_hugging_face_cache_layout() {
    let hub = HubStandIn::minilm();
    let repo = hub.repo(MINILM);
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull"]);

    assert_eq!(out.code, 0, "{out}");
    let cache = model_cache(&ctx);
    assert_eq!(
        std::fs::read_to_string(cache.join("refs/main")).expect("refs/main"),
        repo.main()
    );
    for file in repo.files() {
        let in_snapshot = snapshot(&ctx, &hub).join(&file.path);
        let link = std::fs::read_link(&in_snapshot).expect("a symlink in the snapshot");
        assert!(link.is_relative(), "{}", link.display());
        let blob_name = if file.lfs {
            &file.sha256
        } else {
            &file.git_sha1
        };
        assert!(
            link.ends_with(Path::new("blobs").join(blob_name)),
            "{}",
            link.display()
        );
        assert_eq!(
            std::fs::read(&in_snapshot).expect("read"),
            file.bytes(),
            "{}",
            file.path
        );
    }
    assert!(
        tree(&cache.join(".aisupply-partial")).is_empty(),
        "no partial file is left"
    );

    // Bytes of the weights came from the CDN host, always at the locked commit.
    let requests = hub.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.host == "cdn" && r.path.ends_with(&repo.file(WEIGHTS).sha256))
    );
    for r in requests.iter().filter(|r| r.path.contains("/resolve/")) {
        assert!(
            r.path.contains(&format!("/resolve/{}/", repo.main())),
            "{}",
            r.path
        );
    }
}

#[test]
fn pull_reports_every_file_as_json() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull", "--format", "json", MINILM]);

    assert_eq!(out.code, 0, "{out}");
    let doc = json(&out);
    assert_eq!(doc["passed"], true);
    assert_eq!(doc["models"][0]["commit"], hub.repo(MINILM).main());
    assert_eq!(status_of(&doc, WEIGHTS)["status"], "downloaded");
    assert_eq!(
        status_of(&doc, WEIGHTS)["sha256"],
        hub.repo(MINILM).file(WEIGHTS).digest()
    );
    assert_eq!(doc["mismatches"].as_array().map(Vec::len), Some(0));
}

#[test]
fn large_files_are_fetched_as_parallel_range_requests() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull", "--connections", "4"]);

    assert_eq!(out.code, 0, "{out}");
    let ranged: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.host == "cdn" && r.range.as_deref().is_some_and(|v| v.starts_with("bytes=")))
        .collect();
    assert!(ranged.len() >= 20, "{ranged:?}");
    assert_eq!(cdn_bytes_requested(&hub), hub::MINILM_WEIGHTS_SIZE);
}

#[test]
fn a_second_pull_rehashes_and_downloads_nothing() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    hub.clear_requests();

    let out = run(&ctx, &hub, &["pull", "--format", "json"]);

    assert_eq!(out.code, 0, "{out}");
    assert_eq!(status_of(&json(&out), WEIGHTS)["status"], "present");
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
}

#[test]
fn a_corrupted_cached_file_of_the_right_size_is_not_trusted() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    let blob = model_cache(&ctx)
        .join("blobs")
        .join(&hub.repo(MINILM).file(WEIGHTS).sha256);
    flip_a_byte(&blob);

    // `--trust-existing` opts out of re-hashing: the size matches, so the copy is kept ...
    let trusted = run(
        &ctx,
        &hub,
        &["pull", "--trust-existing", "--format", "json"],
    );
    assert_eq!(
        status_of(&json(&trusted), WEIGHTS)["status"],
        "present",
        "{trusted}"
    );
    // ... and `verify` catches it.
    let caught = run(&ctx, &hub, &["verify", "--offline"]);
    assert_eq!(caught.code, 1, "{caught}");

    // By default the copy is re-hashed, found wrong, and replaced.
    let out = run(&ctx, &hub, &["pull", "--format", "json"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(status_of(&json(&out), WEIGHTS)["status"], "downloaded");
    assert_eq!(
        std::fs::read(&blob).expect("blob"),
        hub.repo(MINILM).file(WEIGHTS).bytes()
    );
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    // The blob may be read-only in a real cache; ours is not.
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn flipped_byte_fails_with_both_digests_and_leaves_nothing_loadable() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let weights = hub.repo(MINILM).file(WEIGHTS).clone();
    hub.set_faults(Faults {
        flip_byte: Some(WEIGHTS.to_owned()),
        ..Faults::default()
    });

    let out = run(&ctx, &hub, &["pull"]);

    assert_eq!(out.code, 1, "{out}");
    let expected = format!("  expected: {}\n  computed: sha256:", weights.digest());
    assert!(
        out.stderr.contains(&format!(
            "error: `{WEIGHTS}` of model `{MINILM}` does not match"
        )),
        "{out}"
    );
    assert!(out.stderr.contains(&expected), "{out}");
    let cache = model_cache(&ctx);
    assert!(!snapshot(&ctx, &hub).join(WEIGHTS).exists());
    assert!(!cache.join("blobs").join(&weights.sha256).exists());
    assert!(
        tree(&cache.join(".aisupply-partial")).is_empty(),
        "the bad bytes are removed"
    );
    assert!(
        !cache.join("refs/main").exists(),
        "no ref names an incomplete snapshot"
    );
    assert!(
        snapshot(&ctx, &hub).join("config.json").exists(),
        "other files are verified"
    );
}

#[test]
fn body_cut_short_is_resumed_from_where_it_stopped() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    // Only the weights are left to download, in one stream.
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    let weights = hub.repo(MINILM).file(WEIGHTS).clone();
    std::fs::remove_file(model_cache(&ctx).join("blobs").join(&weights.sha256)).expect("rm");
    std::fs::remove_file(snapshot(&ctx, &hub).join(WEIGHTS)).expect("rm");
    hub.clear_requests();
    hub.set_faults(Faults {
        cut_short: 1,
        ..Faults::default()
    });

    let out = run(&ctx, &hub, &["pull", "--connections", "1"]);

    assert_eq!(out.code, 0, "{out}");
    let cdn: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.host == "cdn")
        .collect();
    assert_eq!(cdn.len(), 2, "one cut-off request, one resumed: {cdn:?}");
    assert_eq!(cdn[0].range, None);
    let resumed = cdn[1].range.clone().expect("a ranged retry");
    let start: u64 = resumed["bytes=".len()..resumed.len() - 1]
        .parse()
        .expect("an offset");
    // The stand-in cut the body off halfway; the retry starts where the bytes stopped.
    assert!(start > 0 && start <= weights.size / 2, "{resumed}");
    let file = snapshot(&ctx, &hub).join(WEIGHTS);
    assert_eq!(
        std::fs::read(file).expect("read"),
        hub.repo(MINILM).file(WEIGHTS).bytes()
    );
}

#[test]
fn server_errors_are_retried() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    hub.set_faults(Faults {
        server_errors: 3,
        ..Faults::default()
    });

    let out = run(&ctx, &hub, &["pull"]);

    assert_eq!(out.code, 0, "{out}");
    assert!(snapshot(&ctx, &hub).join(WEIGHTS).exists());
}

#[test]
fn ignored_range_falls_back_to_one_full_stream() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    // A partial download left by an earlier run, which the server will not resume.
    let weights = hub.repo(MINILM).file(WEIGHTS).clone();
    let partial_dir = model_cache(&ctx).join(".aisupply-partial");
    std::fs::create_dir_all(&partial_dir).expect("partial dir");
    let path_hash = &common::sha256_digest(WEIGHTS.as_bytes())["sha256:".len()..][..16];
    let part = partial_dir.join(format!("{}-{path_hash}", weights.sha256));
    std::fs::write(&part, &weights.bytes()[..10_000_000]).expect("a partial file");
    hub.set_faults(Faults {
        ignore_range: true,
        ..Faults::default()
    });

    let out = run(&ctx, &hub, &["pull", "--format", "json"]);

    assert_eq!(out.code, 0, "{out}");
    assert_eq!(status_of(&json(&out), WEIGHTS)["resumed_from"], 10_000_000);
    let placed = snapshot(&ctx, &hub).join(WEIGHTS);
    assert_eq!(std::fs::read(placed).expect("read"), weights.bytes());
}

#[test]
fn killed_pull_resumes_without_downloading_again() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    hub.set_faults(Faults {
        bandwidth: Some(3 * 1024 * 1024),
        ..Faults::default()
    });

    // Start a slow pull and kill it once a good part of the weights is on disk.
    let mut child = ctx
        .command(&["pull", "--connections", "2"])
        .env("HF_ENDPOINT", hub.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start aisupply pull");
    let partial_dir = model_cache(&ctx).join(".aisupply-partial");
    let deadline = Instant::now() + Duration::from_secs(50);
    let mut killed_at = 0;
    while Instant::now() < deadline {
        let size = tree(&partial_dir)
            .iter()
            .filter_map(|p| std::fs::metadata(partial_dir.join(p)).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if size >= 16 * 1024 * 1024 {
            killed_at = size;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().expect("reap the pull");
    assert!(killed_at > 0, "the partial file never grew");
    assert!(
        !snapshot(&ctx, &hub).join(WEIGHTS).exists(),
        "nothing unverified at the final path"
    );

    // Run again at full speed: it continues from the partial file.
    hub.set_faults(Faults::default());
    hub.clear_requests();
    let out = run(&ctx, &hub, &["pull", "--format", "json"]);

    assert_eq!(out.code, 0, "{out}");
    let weights = status_of(&json(&out), WEIGHTS);
    assert_eq!(weights["status"], "resumed", "{weights}");
    let resumed_from = weights["resumed_from"].as_u64().expect("an offset");
    assert!(resumed_from >= killed_at, "{resumed_from} < {killed_at}");
    assert_eq!(
        cdn_bytes_requested(&hub),
        hub::MINILM_WEIGHTS_SIZE - resumed_from
    );
    let placed = snapshot(&ctx, &hub).join(WEIGHTS);
    assert_eq!(
        std::fs::read(placed).expect("read"),
        hub.repo(MINILM).file(WEIGHTS).bytes()
    );
}

#[test]
fn token_goes_to_the_hub_but_never_to_the_cdn() {
    let hub = HubStandIn::minilm();
    hub.update_repo(MINILM, |repo| repo.gated = true);
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", format!("[[model]]\nrepo = \"{MINILM}\"\n"));
    let env = [
        ("HF_ENDPOINT", hub.url()),
        ("HF_TOKEN", hub::TOKEN.to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let lock = ctx.run_with_env(&["lock", "-vv"], &env);
    let pull = ctx.run_with_env(&["pull", "-vv"], &env);

    assert_eq!(lock.code, 0, "{lock}");
    assert_eq!(pull.code, 0, "{pull}");
    let requests = hub.requests();
    assert!(requests.iter().any(|r| r.host == "cdn"));
    for r in &requests {
        match r.host {
            "hub" => assert!(r.token, "the Hub gets the token: {r:?}"),
            _ => assert!(!r.authorization, "the CDN gets no credentials: {r:?}"),
        }
    }
    for out in [&lock, &pull] {
        assert!(
            !out.stdout.contains(hub::TOKEN) && !out.stderr.contains(hub::TOKEN),
            "{out}"
        );
    }
}

#[test]
fn gated_pull_without_a_token_names_the_repo_and_the_fix() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    hub.update_repo(MINILM, |repo| repo.gated = true);

    let out = run(&ctx, &hub, &["pull"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains(&format!("error: model `{MINILM}` is a gated repository")),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: accept the conditions at"),
        "{out}"
    );
}

#[test]
fn pull_into_a_local_dir_lays_files_out_as_in_the_repository() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull", MINILM, "--local-dir", "out"]);

    assert_eq!(out.code, 0, "{out}");
    for file in hub.repo(MINILM).files() {
        let placed = ctx.path().join("out").join(&file.path);
        assert!(!placed.is_symlink());
        assert_eq!(
            std::fs::read(&placed).expect("read"),
            file.bytes(),
            "{}",
            file.path
        );
    }
    let verify = run(
        &ctx,
        &hub,
        &[
            "verify",
            "--offline",
            "--local-dir",
            "out",
            "--require-models",
        ],
    );
    assert_eq!(verify.code, 0, "{verify}");
}

#[test]
fn a_symlink_in_the_local_dir_cannot_redirect_a_write() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let outside = tempfile::tempdir().expect("a dir outside");
    std::fs::create_dir_all(ctx.path().join("out")).expect("out");
    std::os::unix::fs::symlink(outside.path(), ctx.path().join("out/1_Pooling")).expect("link");

    let out = run(&ctx, &hub, &["pull", "--local-dir", "out"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("is a symbolic link"), "{out}");
    assert!(
        tree(outside.path()).is_empty(),
        "nothing was written through the link"
    );
}

#[test]
fn a_hand_edited_lock_with_an_escaping_path_is_refused_before_any_write() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let lock = ctx
        .read("aisupply.lock")
        .replace("path = \"config.json\"", "path = \"../../escape.json\"");
    ctx.write("aisupply.lock", lock);

    let out = run(&ctx, &hub, &["pull", "--local-dir", "out/model"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("names a file `../../escape.json` that aisupply refuses"),
        "{out}"
    );
    assert!(!ctx.path().join("out").exists());
    assert!(!ctx.path().join("escape.json").exists());
    assert!(hub.requests().is_empty());
}

#[test]
fn unknown_model_and_local_dir_for_several_models_are_refused() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull", "org/other"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("error: model `org/other` is not in lockfile"),
        "{out}"
    );
    assert!(out.stderr.contains("hint: add `[[model]]`"), "{out}");

    let out = run(&ctx, &hub, &["pull", MINILM, MINILM, "--local-dir", "x"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("`--local-dir` holds one model"),
        "{out}"
    );
}

#[test]
fn offline_pull_verifies_what_is_there_and_refuses_to_download() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let env = [
        ("HF_ENDPOINT", hub.url()),
        ("HF_HUB_OFFLINE", "1".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let missing = ctx.run_with_env(&["pull"], &env);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(
        missing.stderr.contains("`HF_HUB_OFFLINE` is set"),
        "{missing}"
    );

    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    hub.clear_requests();
    let present = ctx.run_with_env(&["pull"], &env);
    assert_eq!(present.code, 0, "{present}");
    assert!(hub.requests().is_empty());
}

#[test]
fn verify_rehashes_model_files_on_disk() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    // Nothing pulled: reported, and fatal only with --require-models.
    let missing = run(&ctx, &hub, &["verify", "--offline"]);
    assert_eq!(missing.code, 0, "{missing}");
    assert!(
        missing.stdout.contains("warning[model-file-missing]"),
        "{missing}"
    );
    let required = run(&ctx, &hub, &["verify", "--offline", "--require-models"]);
    assert_eq!(required.code, 1, "{required}");
    assert!(
        required.stdout.contains("error[model-file-missing]"),
        "{required}"
    );

    // Pulled: passes.
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    let clean = run(&ctx, &hub, &["verify", "--offline", "--require-models"]);
    assert_eq!(clean.code, 0, "{clean}");

    // One byte changed on disk: fails, naming the file and both digests.
    let weights = hub.repo(MINILM).file(WEIGHTS).clone();
    flip_a_byte(&model_cache(&ctx).join("blobs").join(&weights.sha256));
    let tampered = run(&ctx, &hub, &["verify", "--offline"]);
    assert_eq!(tampered.code, 1, "{tampered}");
    assert!(
        tampered.stdout.contains(&format!(
            "error[model-file-mismatch]: `{WEIGHTS}` of model `{MINILM}`"
        )),
        "{tampered}"
    );
    assert!(
        tampered.stdout.contains(&format!(
            "\n  expected: {}\n  computed: sha256:",
            weights.digest()
        )),
        "{tampered}"
    );
}

#[test]
fn concurrent_pulls_into_one_cache_place_an_uncorrupted_blob() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    hub.set_faults(Faults {
        bandwidth: Some(12 * 1024 * 1024),
        ..Faults::default()
    });

    // Two pulls at once share the cache, and so the partial file of the weights.
    let start = || {
        ctx.command(&["pull", "-v"])
            .env("HF_ENDPOINT", hub.url())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start aisupply pull")
    };
    let first = start();
    std::thread::sleep(Duration::from_millis(300));
    let second = start();
    let first = first.wait_with_output().expect("first pull");
    let second = second.wait_with_output().expect("second pull");

    for out in [&first, &second] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The second one waited for the first, and said so with `-v`.
    assert!(
        [&first, &second]
            .iter()
            .any(|out| String::from_utf8_lossy(&out.stderr)
                .contains("another pull is downloading this file; waiting")),
        "neither pull waited"
    );
    let weights = hub.repo(MINILM).file(WEIGHTS).clone();
    let blob = model_cache(&ctx).join("blobs").join(&weights.sha256);
    assert_eq!(
        std::fs::metadata(&blob).expect("the blob").len(),
        weights.size
    );
    assert!(
        std::fs::read(&blob).expect("read") == weights.bytes(),
        "the placed blob is not the locked file"
    );
    assert!(
        tree(&model_cache(&ctx).join(".aisupply-partial")).is_empty(),
        "no partial file is left"
    );
}

#[test]
fn a_corrupted_blob_is_removed_not_only_unlinked() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    let blob = model_cache(&ctx)
        .join("blobs")
        .join(&hub.repo(MINILM).file(WEIGHTS).sha256);
    flip_a_byte(&blob);
    let offline = [
        ("HF_ENDPOINT", hub.url()),
        ("HF_HUB_OFFLINE", "1".to_owned()),
    ];
    let offline: Vec<(&str, &str)> = offline.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Offline, the corrupt copy is found and cannot be replaced: it must not stay behind.
    let out = ctx.run_with_env(&["pull"], &offline);
    assert_eq!(out.code, 2, "{out}");
    assert!(!blob.exists(), "the corrupt blob is still there: {out}");
    assert!(
        out.stderr.contains("does not match the lockfile; removed"),
        "{out}"
    );

    // So a pull that trusts sizes has nothing to link back.
    let trusted = ctx.run_with_env(&["pull", "--trust-existing"], &offline);
    assert_eq!(trusted.code, 2, "{trusted}");
    assert!(!snapshot(&ctx, &hub).join(WEIGHTS).exists());
}

/// A pull of a complete cache rewrites nothing, so it works on a read-only cache. (Tests may run
/// as root, who can write anyway: the files must keep their inodes.)
#[test]
fn a_complete_cache_is_pulled_without_writing_refs_or_links() {
    use std::os::unix::fs::MetadataExt as _;

    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    assert_eq!(run(&ctx, &hub, &["pull"]).code, 0);
    let cache = model_cache(&ctx);
    let inode = |p: &Path| std::fs::symlink_metadata(p).expect("inode").ino();
    let refs = cache.join("refs/main");
    let link = snapshot(&ctx, &hub).join(WEIGHTS);
    let before = (inode(&refs), inode(&link));

    set_read_only(&cache, true);
    let out = ctx.run_with_env(
        &["pull"],
        &[("HF_ENDPOINT", &hub.url()), ("HF_HUB_OFFLINE", "1")],
    );
    set_read_only(&cache, false);

    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        (inode(&refs), inode(&link)),
        before,
        "the cache was rewritten"
    );
}

/// Take write permission from (or give it back to) `dir` and everything below it.
fn set_read_only(dir: &Path, read_only: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    if meta.is_dir() && !read_only {
        let mode = meta.permissions().mode() | 0o200;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
            set_read_only(&entry.path(), read_only);
        }
    }
    let mode = if read_only {
        meta.permissions().mode() & !0o222
    } else {
        meta.permissions().mode() | 0o200
    };
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode));
}

#[test]
fn verify_refuses_a_lockfile_path_that_escapes_the_cache() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);
    let lock = ctx
        .read("aisupply.lock")
        .replace("path = \"config.json\"", "path = \"../../../../pwned.md\"");
    ctx.write("aisupply.lock", lock);

    let out = run(&ctx, &hub, &["verify", "--offline"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("names a file `../../../../pwned.md` that aisupply refuses"),
        "{out}"
    );
}

#[test]
fn connections_above_the_memory_bound_are_refused() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull", "--connections", "9"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("--connections"), "{out}");
    assert!(hub.requests().is_empty());
}

#[test]
fn quiet_pull_still_prints_the_result_line() {
    let hub = HubStandIn::minilm();
    let ctx = locked(&hub);

    let out = run(&ctx, &hub, &["pull", "-q"]);

    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains(&format!("{MINILM} {}: ", hub.repo(MINILM).main())),
        "{out}"
    );
}
