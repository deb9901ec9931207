//! Bad input gets one clear message naming the input, what is wrong and the fix, exit code 2,
//! and nothing written.

mod common;

use common::TestContext;

const LOCK: &str = "# generated\nversion = 1\n\n[[image]]\nname = \"app\"\n\
    reference = \"localhost:5000/app:1\"\n\
    digest = \"sha256:1111111111111111111111111111111111111111111111111111111111111111\"\n\
    media-type = \"application/vnd.oci.image.manifest.v1+json\"\n";

fn config_with_app(ctx: &TestContext) {
    ctx.write(
        "aisupply.toml",
        "[[image]]\nname = \"app\"\nref = \"localhost:5000/app:1\"\n",
    );
}

#[test]
fn a_malformed_reference_names_file_line_and_fix() {
    let ctx = TestContext::new();
    ctx.write(
        "aisupply.toml",
        "# images\n[[image]]\nref = \"Docker.io/Library/Ubuntu:22.04\"\n",
    );
    let out = ctx.run(&["lock"]);
    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!(out);
    });
    assert!(!ctx.path().join("aisupply.lock").exists());
}

#[test]
fn malformed_references_of_every_kind_are_exit_2() {
    let ctx = TestContext::new();
    let too_long_tag = format!("app:{}", "t".repeat(129));
    for reference in [
        "",
        "ubuntu:",
        "ubuntu@sha256:abc",
        "ubuntu@md5:d41d8cd98f00b204e9800998ecf8427e",
        "https://ghcr.io/org/app:1",
        "org//app",
        "-app",
        "[zz::1]:5000/app",
        too_long_tag.as_str(),
    ] {
        ctx.write(
            "aisupply.toml",
            format!("[[image]]\nref = \"{reference}\"\n"),
        );
        let out = ctx.run(&["lock"]);
        assert_eq!(out.code, 2, "{reference}: {out}");
        assert!(out.stderr.contains("line 2"), "{reference}: {out}");
        assert!(!ctx.path().join("aisupply.lock").exists());
    }
}

#[test]
fn unknown_config_keys_are_named_with_the_file() {
    let ctx = TestContext::new();
    ctx.write(
        "aisupply.toml",
        "[[image]]\nref = \"ubuntu\"\nplatform = [\"linux/amd64\"]\n",
    );
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("config `aisupply.toml` is invalid"),
        "{out}"
    );
    assert!(out.stderr.contains("unknown field `platform`"), "{out}");
    assert!(out.stderr.contains("line 3"), "{out}");
}

#[test]
fn duplicate_image_names_are_rejected() {
    let ctx = TestContext::new();
    ctx.write(
        "aisupply.toml",
        "[[image]]\nname = \"x\"\nref = \"a/x:1\"\n[[image]]\nname = \"x\"\nref = \"b/x:1\"\n",
    );
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("two images are named `x` (lines 3 and 6)"),
        "{out}"
    );
}

#[test]
fn a_missing_config_suggests_init() {
    let ctx = TestContext::new();
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("cannot read config `aisupply.toml`"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: create it with `aisupply init`"),
        "{out}"
    );
}

#[test]
fn a_hand_broken_lockfile_fails_verify_and_is_never_overwritten_by_lock() {
    let ctx = TestContext::new();
    config_with_app(&ctx);
    for broken in [
        LOCK.replace("sha256:1111", "sha256:11"),
        LOCK.replace("version = 1\n", ""),
        LOCK.replace("media-type", "mediatype"),
        LOCK.replace("[[image]]", "[[image]"),
        LOCK.replace("localhost:5000/app:1", "localhost:5000/App:1"),
    ] {
        ctx.write("aisupply.lock", &broken);
        let out = ctx.run(&["verify", "--offline"]);
        assert_eq!(out.code, 2, "{broken}\n{out}");
        assert!(
            out.stderr.contains("lockfile `aisupply.lock` is invalid"),
            "{out}"
        );
        assert!(
            out.stderr.contains("hint: the lockfile is generated"),
            "{out}"
        );

        let out = ctx.run(&["lock"]);
        assert_eq!(out.code, 2, "{out}");
        assert_eq!(
            ctx.read("aisupply.lock"),
            broken,
            "lock leaves a broken file alone"
        );
    }
}

#[test]
fn a_lockfile_from_a_newer_version_is_named_as_such() {
    let ctx = TestContext::new();
    config_with_app(&ctx);
    let newer = LOCK.replace("version = 1", "version = 2");
    ctx.write("aisupply.lock", &newer);
    for args in [&["verify", "--offline"][..], &["lock", "--update"][..]] {
        let out = ctx.run(args);
        assert_eq!(out.code, 2, "{out}");
        assert!(out.stderr.contains("has format version 2"), "{out}");
        assert!(out.stderr.contains("hint: upgrade aisupply"), "{out}");
        assert_eq!(ctx.read("aisupply.lock"), newer);
    }
}

#[test]
fn errors_are_json_too_with_format_json() {
    let ctx = TestContext::new();
    let out = ctx.run(&["verify", "--format", "json"]);
    assert_eq!(out.code, 2, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aisupply.toml")
    );
    assert!(
        doc["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("aisupply init")
    );
}

#[test]
fn unknown_flags_are_exit_2() {
    let ctx = TestContext::new();
    let out = ctx.run(&["verify", "--no-such-flag"]);
    assert_eq!(out.code, 2, "{out}");
}

/// Regression: with `--format json`, argument errors left stdout empty.
#[test]
fn argument_errors_are_json_with_format_json() {
    let ctx = TestContext::new();
    let out = ctx.run(&["verify", "--bogus", "--format", "json"]);
    assert_eq!(out.code, 2, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        doc["error"]["causes"][0]
            .as_str()
            .unwrap()
            .contains("--bogus")
    );
}
