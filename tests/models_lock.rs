//! `aisupply lock` for `[[model]]` entries, against the Hub stand-in serving the real
//! all-MiniLM-L6-v2: revisions resolve to commits, every selected file is pinned by size,
//! SHA-256 and git SHA-1, pins are kept until `--update`, and bad input gets one clear error.

mod common;

use std::path::Path;

use common::hub::{self, Faults, HubFile, HubRepo, HubStandIn, MINILM};
use common::{Output, TestContext};

fn config(repo: &str, extra: &str) -> String {
    format!("[[model]]\nrepo = \"{repo}\"\n{extra}")
}

fn run(ctx: &TestContext, hub: &HubStandIn, args: &[&str]) -> Output {
    ctx.run_with_env(args, &[("HF_ENDPOINT", &hub.url())])
}

/// The `[[model]]` tables of the lockfile.
fn locked_models(ctx: &TestContext) -> Vec<toml::Value> {
    let lock: toml::Value = toml::from_str(&ctx.read("aisupply.lock")).expect("TOML");
    lock.get("model")
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn file_entry<'a>(model: &'a toml::Value, path: &str) -> &'a toml::Value {
    model["file"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("no locked file `{path}`"))
}

fn paths(model: &toml::Value) -> Vec<&str> {
    model["file"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect()
}

#[test]
fn lock_pins_every_file_by_size_sha256_and_git_sha1() {
    let hub = HubStandIn::minilm();
    let repo = hub.repo(MINILM);
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, ""));

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains(&format!("+ {MINILM} main {}", repo.main())),
        "{out}"
    );
    let models = locked_models(&ctx);
    let model = &models[0];
    assert_eq!(model["commit"].as_str(), Some(repo.main()));
    assert_eq!(model["revision"].as_str(), Some("main"));
    assert_eq!(paths(model).len(), repo.files().len());
    for served in repo.files() {
        let locked = file_entry(model, &served.path);
        assert_eq!(
            locked["sha256"].as_str(),
            Some(served.digest().as_str()),
            "{}",
            served.path
        );
        assert_eq!(locked["git-sha1"].as_str(), Some(served.git_sha1.as_str()));
        assert_eq!(
            locked["size"].as_integer(),
            Some(i64::try_from(served.size).expect("a size"))
        );
    }
    let weights = file_entry(model, "model.safetensors");
    assert_eq!(
        weights["size"].as_integer(),
        Some(i64::try_from(hub::MINILM_WEIGHTS_SIZE).expect("a size"))
    );
    common::assert_valid_lockfile(&ctx.read("aisupply.lock"));
}

#[test]
fn small_files_are_hashed_from_their_bytes_not_taken_from_the_listing() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write(
        "aisupply.toml",
        config(MINILM, "include = [\"config.json\"]\n"),
    );

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 0, "{out}");
    let bytes = std::fs::read(hub::minilm_dir().join("config.json")).expect("the real file");
    let locked = file_entry(&locked_models(&ctx)[0], "config.json").clone();
    assert_eq!(
        locked["sha256"].as_str(),
        Some(common::sha256_digest(&bytes).as_str())
    );
    let at_commit = format!("/resolve/{}/config.json", hub.repo(MINILM).main());
    let fetched = hub
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path.ends_with(&at_commit));
    assert!(fetched, "config.json was downloaded at the locked commit");
}

#[test]
fn locking_twice_gives_the_same_bytes_and_check_passes() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, ""));
    assert_eq!(run(&ctx, &hub, &["lock"]).code, 0);
    let first = ctx.read("aisupply.lock");

    let again = run(&ctx, &hub, &["lock", "--update"]);
    let check = run(&ctx, &hub, &["lock", "--check"]);

    assert_eq!(again.code, 0, "{again}");
    assert_eq!(ctx.read("aisupply.lock"), first);
    assert_eq!(check.code, 0, "{check}");
}

#[test]
fn a_pin_is_kept_until_update_names_the_model() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, ""));
    assert_eq!(run(&ctx, &hub, &["lock"]).code, 0);
    let old = hub.repo(MINILM).main().to_owned();

    // Upstream, `main` moves to a commit with another config.json.
    let new = hub::commit_id("moved");
    hub.update_repo(MINILM, |repo| {
        let mut files = repo.files().to_vec();
        files.retain(|f| f.path != "config.json");
        files.push(HubFile::memory(
            "config.json",
            b"{\"changed\": true}\n".to_vec(),
            false,
        ));
        repo.commits.push((new.clone(), files));
        repo.refs.insert("main".to_owned(), new.clone());
    });

    let kept = run(&ctx, &hub, &["lock"]);
    assert_eq!(kept.code, 0, "{kept}");
    assert_eq!(
        locked_models(&ctx)[0]["commit"].as_str(),
        Some(old.as_str())
    );

    let updated = run(&ctx, &hub, &["lock", "--update", MINILM]);
    assert_eq!(updated.code, 0, "{updated}");
    assert!(
        updated.stdout.contains(&format!("~ {MINILM} main {new}")),
        "{updated}"
    );
    let model = &locked_models(&ctx)[0];
    assert_eq!(model["commit"].as_str(), Some(new.as_str()));
    let config_sha = common::sha256_digest(b"{\"changed\": true}\n");
    assert_eq!(
        file_entry(model, "config.json")["sha256"].as_str(),
        Some(config_sha.as_str())
    );
}

#[test]
fn tags_pull_requests_and_commits_resolve_to_commits() {
    let hub = HubStandIn::minilm();
    let main = hub.repo(MINILM).main().to_owned();
    let pr = hub::commit_id("pr");
    hub.update_repo(MINILM, |repo| {
        let files = repo.files().to_vec();
        repo.commits.push((pr.clone(), files[..3].to_vec()));
        repo.refs.insert("refs/pr/1".to_owned(), pr.clone());
        repo.refs.insert("v1.0".to_owned(), main.clone());
    });

    for (revision, commit) in [("refs/pr/1", &pr), ("v1.0", &main), (main.as_str(), &main)] {
        let ctx = TestContext::new();
        ctx.write(
            "aisupply.toml",
            config(MINILM, &format!("revision = \"{revision}\"\n")),
        );
        let out = run(&ctx, &hub, &["lock"]);
        assert_eq!(out.code, 0, "{revision}: {out}");
        assert_eq!(
            locked_models(&ctx)[0]["commit"].as_str(),
            Some(commit.as_str()),
            "{revision}"
        );
    }
}

#[test]
fn include_and_exclude_select_files_like_hf_download() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write(
        "aisupply.toml",
        config(
            MINILM,
            "include = [\"*.json\", \"*.safetensors\"]\nexclude = [\"1_Pooling/\"]\n",
        ),
    );

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 0, "{out}");
    let model = &locked_models(&ctx)[0];
    let repo = hub::minilm_repo();
    let selected = |p: &&str| {
        let ext = Path::new(p).extension().and_then(|e| e.to_str());
        matches!(ext, Some("json" | "safetensors")) && !p.starts_with("1_Pooling/")
    };
    let mut expected: Vec<&str> = repo
        .files()
        .iter()
        .map(|f| f.path.as_str())
        .filter(selected)
        .collect();
    expected.sort_unstable();
    assert_eq!(paths(model), expected);
    assert!(!paths(model).contains(&"vocab.txt"));
}

#[test]
fn lock_check_flags_changed_unlocked_and_stale_models() {
    let hub = HubStandIn::minilm();
    hub.add_repo(HubRepo::new(
        "org/tiny",
        vec![HubFile::memory("config.json", b"{}".to_vec(), false)],
    ));
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, ""));
    assert_eq!(run(&ctx, &hub, &["lock"]).code, 0);

    // The globs changed: the lock no longer describes the entry.
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));
    let changed = run(&ctx, &hub, &["lock", "--check"]);
    assert_eq!(changed.code, 1, "{changed}");
    assert!(changed.stdout.contains("error[lock-mismatch]"), "{changed}");

    // Another model is not locked, and the locked one is gone from the config.
    ctx.write("aisupply.toml", config("org/tiny", ""));
    let out = run(&ctx, &hub, &["lock", "--check"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("error[not-locked]: model `org/tiny`"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!(
            "error[stale-lock-entry]: the lockfile pins model `{MINILM}`"
        )),
        "{out}"
    );

    // `lock` fixes both.
    let fixed = run(&ctx, &hub, &["lock"]);
    assert_eq!(fixed.code, 0, "{fixed}");
    assert!(fixed.stdout.contains(&format!("- {MINILM}")), "{fixed}");
    assert_eq!(run(&ctx, &hub, &["lock", "--check"]).code, 0);
}

#[test]
fn unknown_repository_is_one_clear_error() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config("org/missing", ""));

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("error: model repository `org/missing` was not found"),
        "{out}"
    );
    assert!(out.stderr.contains("hint: check `repo`"), "{out}");
    assert!(!ctx.path().join("aisupply.lock").exists());
}

#[test]
fn unknown_revision_is_one_clear_error() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "revision = \"v9\"\n"));

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains(&format!("error: model `{MINILM}` has no revision `v9`")),
        "{out}"
    );
    assert!(out.stderr.contains("hint: use a branch, tag"), "{out}");
}

#[test]
fn malformed_repo_id_and_bad_glob_are_refused_before_any_request() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config("../etc", ""));
    let out = run(&ctx, &hub, &["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("`../etc` is not a Hugging Face repository id"),
        "{out}"
    );

    ctx.write("aisupply.toml", config(MINILM, "include = [\"a[\"]\n"));
    let out = run(&ctx, &hub, &["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("`a[` in model"), "{out}");
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());
}

#[test]
fn globs_that_select_nothing_list_what_there_is() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.gguf\"]\n"));

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("select no file"), "{out}");
    assert!(out.stderr.contains("`config.json`"), "{out}");
}

#[test]
fn a_listing_with_an_escaping_file_name_is_refused() {
    for evil in ["../escape.json", "/etc/escape.json", "a/../../escape.json"] {
        let hub = HubStandIn::start(vec![HubRepo::new(
            "org/evil",
            vec![
                HubFile::memory("config.json", b"{}".to_vec(), false),
                HubFile::memory(evil, b"{}".to_vec(), false),
            ],
        )]);
        let ctx = TestContext::new();
        ctx.write("aisupply.toml", config("org/evil", ""));

        let out = run(&ctx, &hub, &["lock"]);

        assert_eq!(out.code, 2, "{evil}: {out}");
        assert!(
            out.stderr
                .contains(&format!("names a file `{evil}` that aisupply refuses")),
            "{out}"
        );
        assert!(!ctx.path().join("aisupply.lock").exists());
    }
}

#[test]
fn gated_repository_names_the_repo_and_the_fix() {
    let hub = HubStandIn::minilm();
    hub.update_repo(MINILM, |repo| repo.gated = true);
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));

    let refused = run(&ctx, &hub, &["lock"]);
    assert_eq!(refused.code, 2, "{refused}");
    assert!(
        refused
            .stderr
            .contains(&format!("error: model `{MINILM}` is a gated repository")),
        "{refused}"
    );
    assert!(refused.stderr.contains("set `HF_TOKEN`"), "{refused}");

    // The token file under HF_HOME is read when HF_TOKEN is unset.
    let token_file = ctx.home().join(".cache/huggingface/token");
    std::fs::create_dir_all(token_file.parent().expect("a parent")).expect("HF_HOME");
    std::fs::write(&token_file, format!("{}\n", hub::TOKEN)).expect("write the token");
    let allowed = run(&ctx, &hub, &["lock", "-v"]);
    assert_eq!(allowed.code, 0, "{allowed}");
    assert!(!allowed.stderr.contains(hub::TOKEN) && !allowed.stdout.contains(hub::TOKEN));
}

#[test]
fn server_errors_are_retried_at_lock_time() {
    let hub = HubStandIn::minilm();
    hub.set_faults(Faults {
        server_errors: 2,
        ..Faults::default()
    });
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 0, "{out}");
    assert!(hub.requests().len() > 2);
}

#[test]
fn offline_mode_refuses_to_lock_a_model() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, ""));

    let out = ctx.run_with_env(
        &["lock"],
        &[("HF_ENDPOINT", &hub.url()), ("HF_HUB_OFFLINE", "1")],
    );

    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("`HF_HUB_OFFLINE` is set"), "{out}");
    assert!(hub.requests().is_empty());
}

#[test]
fn credentials_in_hf_endpoint_never_show_in_messages() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config("org/missing", ""));
    let endpoint = hub.url().replace("http://", "http://user:s3cr3t-pass@");

    let out = ctx.run_with_env(&["lock", "-v"], &[("HF_ENDPOINT", &endpoint)]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("was not found on `http://***@"),
        "{out}"
    );
    assert!(
        !out.stderr.contains("s3cr3t") && !out.stdout.contains("s3cr3t"),
        "{out}"
    );
}

#[test]
fn a_token_with_a_control_character_names_hf_token_not_builder_error() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));

    let out = ctx.run_with_env(
        &["lock"],
        &[("HF_ENDPOINT", &hub.url()), ("HF_TOKEN", "hf_ab\u{1}cdef")],
    );

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("error: the Hub token from `HF_TOKEN` holds a control"),
        "{out}"
    );
    assert!(out.stderr.contains("hint: set the token again"), "{out}");
    assert!(!out.stderr.contains("builder error"), "{out}");
    assert!(!out.stderr.contains("cdef"), "{out}");
    assert!(hub.requests().is_empty());
}

#[test]
fn verbose_lock_logs_requests_token_source_and_commit_but_no_token() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));

    let out = ctx.run_with_env(
        &["lock", "-v"],
        &[("HF_ENDPOINT", &hub.url()), ("HF_TOKEN", hub::TOKEN)],
    );

    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("token_source=\"env\""), "{out}");
    assert!(out.stderr.contains("method=GET"), "{out}");
    assert!(out.stderr.contains("status=200"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("commit={}", hub.repo(MINILM).main())),
        "{out}"
    );
    assert!(!out.stderr.contains(hub::TOKEN), "{out}");
}

#[test]
fn a_refused_token_from_the_token_file_is_named_as_such() {
    let hub = HubStandIn::minilm();
    hub.update_repo(MINILM, |repo| repo.gated = true);
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));
    let token_file = ctx.home().join(".cache/huggingface/token");
    std::fs::create_dir_all(token_file.parent().expect("a parent")).expect("HF_HOME");
    std::fs::write(&token_file, "hf_not_the_right_one\n").expect("write the token");

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("owns the token from the token file"),
        "{out}"
    );
    assert!(!out.stderr.contains("owns `HF_TOKEN`"), "{out}");
}

#[test]
fn an_empty_include_is_refused_with_the_fix() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = []\n"));

    let out = run(&ctx, &hub, &["lock"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("`include = []` selects no file; remove `include` to lock every file"),
        "{out}"
    );
    assert!(hub.requests().is_empty());
}

#[test]
fn update_of_an_unknown_name_mentions_models() {
    let hub = HubStandIn::minilm();
    let ctx = TestContext::new();
    ctx.write("aisupply.toml", config(MINILM, "include = [\"*.json\"]\n"));

    let out = run(&ctx, &hub, &["lock", "--update", "nosuch"]);

    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("`--update nosuch` names no image or model"),
        "{out}"
    );
    assert!(out.stderr.contains("`[[model]]`"), "{out}");
}
