//! `aisupply verify` (checks 1 and 3) against a real CNCF distribution registry.

mod common;

use common::{TestContext, delete_manifest, push_oci_image, push_oci_index};

fn image(name: &str, reference: &str) -> String {
    format!("[[image]]\nname = \"{name}\"\nref = \"{reference}\"\n\n")
}

/// A context with `app` (an index) and `tool` (one manifest) pushed, configured and locked.
fn locked_context() -> (TestContext, String) {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    push_oci_index(&host, "team/app", "1.0", 1);
    push_oci_image(&host, "team/tool", "2.0", 2);
    ctx.write(
        "aisupply.toml",
        image("app", &format!("{host}/team/app:1.0"))
            + &image("tool", &format!("{host}/team/tool:2.0")),
    );
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    (ctx, host)
}

#[test]
fn verify_passes_on_a_fresh_lock() {
    let (ctx, _) = locked_context();
    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 0, "{out}");
    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!(out, @r"
        exit code: 0
        ----- stdout -----
        verify passed: 2 images checked, no findings

        ----- stderr -----
        ");
    });
}

#[test]
fn a_deleted_platform_manifest_fails_verify() {
    let (ctx, host) = locked_context();
    let lock: toml::Table = toml::from_str(&ctx.read("aisupply.lock")).unwrap();
    let app = lock["image"].as_array().unwrap()[0].as_table().unwrap();
    let arm = app["manifest"].as_array().unwrap()[1]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    delete_manifest(&host, "team/app", &arm);

    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("error[digest-missing]"), "{out}");
    assert!(out.stdout.contains(&arm), "{out}");
    assert!(out.stdout.contains("linux/arm64/v8"), "{out}");
}

#[test]
fn a_deleted_top_level_manifest_fails_verify() {
    let (ctx, host) = locked_context();
    let lock: toml::Table = toml::from_str(&ctx.read("aisupply.lock")).unwrap();
    let tool = lock["image"].as_array().unwrap()[1].as_table().unwrap();
    let digest = tool["digest"].as_str().unwrap().to_owned();
    delete_manifest(&host, "team/tool", &digest);

    let out = ctx.run(&["verify", "--format", "json"]);
    assert_eq!(out.code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["passed"], false);
    let codes: Vec<&str> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    // The tag went with the manifest, so the tag is reported as well.
    assert!(codes.contains(&"digest-missing"), "{codes:?}");
    assert!(codes.contains(&"tag-drift"), "{codes:?}");
}

#[test]
fn a_moved_tag_is_a_warning_and_fails_with_fail_on_drift() {
    let (ctx, host) = locked_context();
    let moved = push_oci_image(&host, "team/tool", "2.0", 99);

    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("warning[tag-drift]"), "{out}");
    assert!(out.stdout.contains(&moved.digest), "{out}");
    assert!(out.stdout.contains("aisupply lock --update tool"), "{out}");
    let tool_line = ctx
        .read("aisupply.lock")
        .lines()
        .position(|l| l == "name = \"tool\"")
        .unwrap()
        + 1;
    assert!(
        out.stdout
            .contains(&format!("--> aisupply.lock:{tool_line}\n")),
        "{out}"
    );

    let out = ctx.run(&["verify", "--fail-on-drift"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("error[tag-drift]"), "{out}");
}

#[test]
fn offline_verify_needs_no_registry() {
    let (ctx, host) = locked_context();
    // Stop answering: point the lock and config at a port where nothing listens.
    let gone = common::unreachable_host();
    for file in ["aisupply.toml", "aisupply.lock"] {
        let text = ctx.read(file).replace(&host, &gone);
        ctx.write(file, text);
    }
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stdout.contains("checked offline"), "{out}");

    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 2, "an unreachable registry is not a pass: {out}");
    assert!(
        out.stderr
            .contains(&format!("cannot reach registry `{gone}`")),
        "{out}"
    );
}

#[test]
fn config_and_lock_disagreements_are_findings_with_locations() {
    let (ctx, host) = locked_context();
    // `tool` removed, `app` re-pointed, `new` added.
    ctx.write(
        "aisupply.toml",
        image("app", &format!("{host}/team/app:1.1"))
            + &image("new", &format!("{host}/team/new:1")),
    );
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "{out}");
    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!(out);
    });
}

#[test]
fn changed_platforms_make_the_lock_stale() {
    let (ctx, host) = locked_context();
    ctx.write(
        "aisupply.toml",
        format!(
            "{}[[image]]\nname = \"tool\"\nref = \"{host}/team/tool:2.0\"\n",
            image("app", &format!("{host}/team/app:1.0"))
                .replace("ref = ", "platforms = [\"linux/amd64\"]\nref = ")
        ),
    );
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout
            .contains("locked for platforms all but the config asks for linux/amd64"),
        "{out}"
    );
}

/// Regression: platform entries were never checked against the locked index, so a hand-edited
/// lockfile passed.
#[test]
fn hand_edits_to_locked_platforms_or_media_types_fail_verify() {
    let (ctx, _) = locked_context();
    let original = ctx.read("aisupply.lock");
    let lock: toml::Table = toml::from_str(&original).unwrap();
    let app = lock["image"].as_array().unwrap()[0].as_table().unwrap();
    let manifests = app["manifest"].as_array().unwrap();
    let amd = manifests[0]["digest"].as_str().unwrap();
    let arm = manifests[1]["digest"].as_str().unwrap();
    let first_block = original.find("[[image.manifest]]").unwrap();
    let tool = original.find("[[image]]\nname = \"tool\"").unwrap();

    let edits = [
        original.replace(arm, amd),
        format!("{}{}", &original[..first_block], &original[tool..]),
        original.replace("linux/arm64/v8", "windows/amd64"),
        original.replacen(
            "media-type = \"application/vnd.oci.image.index.v1+json\"",
            "media-type = \"application/vnd.oci.image.manifest.v1+json\"",
            1,
        ),
    ];
    for edited in edits {
        ctx.write("aisupply.lock", &edited);
        let out = ctx.run(&["verify"]);
        assert_eq!(out.code, 1, "{edited}\n{out}");
        assert!(out.stdout.contains("error[index-mismatch]"), "{out}");
        assert!(out.stdout.contains("aisupply lock --update app"), "{out}");
    }
}
