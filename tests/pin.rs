//! `aisupply init`, `aisupply pin` and check 2 of `aisupply verify`, over the corpus in
//! `testdata/pin/repo` (golden outputs in `testdata/pin/golden`) and over a sample repository
//! locked against a real CNCF distribution registry.
//!
//! Golden files are compared byte for byte; after an intended change, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test --test pin` and review the diff.

mod common;

use std::path::{Path, PathBuf};

use aisupply::config::Config;
use aisupply::digest::Digest;
use aisupply::lock::{LockFile, LockedImage};
use common::{TestContext, push_oci_image, push_oci_index};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pin/repo");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/pin/golden");

/// The corpus files, as paths relative to the corpus root.
fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read the corpus") {
        let path = entry.expect("read a corpus entry").path();
        if path.is_dir() {
            corpus_files(&path, out);
        } else {
            out.push(
                path.strip_prefix(CORPUS)
                    .expect("under the corpus")
                    .to_owned(),
            );
        }
    }
}

/// A context holding a copy of the corpus, plus a file that `.gitignore` hides.
fn corpus_context() -> (TestContext, Vec<PathBuf>) {
    let ctx = TestContext::new();
    let mut files = Vec::new();
    corpus_files(Path::new(CORPUS), &mut files);
    files.sort();
    for file in &files {
        let bytes = std::fs::read(Path::new(CORPUS).join(file)).expect("read a corpus file");
        ctx.write(file.to_str().expect("a UTF-8 path"), bytes);
    }
    ctx.write("build/Dockerfile", "FROM ignored-because-gitignored:1\n");
    (ctx, files)
}

/// Compare `actual` with the golden file `name`, or rewrite it under `UPDATE_GOLDEN=1`.
fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(GOLDEN).join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a golden directory"))
            .expect("create the golden directory");
        std::fs::write(&path, actual).expect("write a golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read golden `{}`: {e}", path.display()));
    assert!(
        expected == actual,
        "`{name}` differs from its golden file (regenerate with UPDATE_GOLDEN=1 and review)\n\
         ----- expected -----\n{expected}\n----- actual -----\n{actual}"
    );
}

/// A stand-in digest for an image of the corpus, which names no real registry.
fn fake_digest(name: &str) -> Digest {
    Digest::sha256(name.as_bytes())
}

/// Lock every image of the context's config to [`fake_digest`], as `aisupply lock` would.
fn write_fake_lock(ctx: &TestContext) {
    let config = Config::parse(Path::new("aisupply.toml"), &ctx.read("aisupply.toml"))
        .expect("the config parses");
    let mut images: Vec<LockedImage> = config
        .images
        .iter()
        .map(|spec| LockedImage {
            name: spec.name.clone(),
            reference: spec.reference.clone(),
            digest: fake_digest(&spec.name),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            platforms: None,
            manifests: Vec::new(),
        })
        .collect();
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let lock = LockFile {
        version: aisupply::lock::VERSION,
        images,
        models: Vec::new(),
    };
    ctx.write("aisupply.lock", lock.render());
}

/// The corpus with the golden config and a lock of fake digests.
fn locked_corpus() -> (TestContext, Vec<PathBuf>) {
    let (ctx, files) = corpus_context();
    let config = std::fs::read_to_string(Path::new(GOLDEN).join("aisupply.toml"))
        .expect("read the golden config");
    ctx.write("aisupply.toml", config);
    write_fake_lock(&ctx);
    (ctx, files)
}

#[test]
fn init_proposes_one_image_per_distinct_reference() {
    let (ctx, _) = corpus_context();
    let out = ctx.run(&["init"]);
    assert_eq!(out.code, 0, "{out}");
    assert_golden("aisupply.toml", &ctx.read("aisupply.toml"));
    assert_golden("init.out", &out.to_string());
    assert!(
        !ctx.read("aisupply.toml")
            .contains("ignored-because-gitignored")
    );
}

#[test]
fn init_output_is_a_config_that_loads() {
    let (ctx, _) = corpus_context();
    assert_eq!(ctx.run(&["init"]).code, 0);
    let config = Config::parse(Path::new("aisupply.toml"), &ctx.read("aisupply.toml")).unwrap();
    assert!(config.sources.is_some());
    assert!(
        config
            .images
            .iter()
            .any(|i| i.name == "nvidia/tritonserver")
    );
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let (ctx, _) = corpus_context();
    ctx.write("aisupply.toml", "# mine\n");
    let out = ctx.run(&["init"]);
    assert_eq!(out.code, 2, "{out}");
    insta::assert_snapshot!(out, @r"
    exit code: 2
    ----- stdout -----

    ----- stderr -----
    error: `aisupply.toml` already exists; nothing was written
      hint: pass `--force` to replace it, or `--stdout` to print the proposal instead
    ");
    assert_eq!(ctx.read("aisupply.toml"), "# mine\n");

    let out = ctx.run(&["init", "--force"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(ctx.read("aisupply.toml").contains("[[image]]"));
}

#[test]
fn init_json_lists_images_with_their_places() {
    let (ctx, _) = corpus_context();
    let out = ctx.run(&["init", "--format", "json"]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["written"], true);
    let busybox = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "busybox")
        .unwrap();
    assert_eq!(busybox["ref"], "busybox:1.36");
    assert_eq!(busybox["found_at"][0], "Dockerfile:14");
    assert_eq!(doc["unresolved"].as_array().unwrap().len(), 1);
}

#[test]
fn pin_prints_a_diff_and_changes_nothing() {
    let (ctx, files) = locked_corpus();
    let out = ctx.run(&["pin"]);
    assert_eq!(out.code, 0, "{out}");
    assert_golden("pin.diff", &out.stdout);
    assert_golden("pin.stderr", &out.stderr);
    for file in files {
        let name = file.to_str().unwrap();
        let original = std::fs::read(Path::new(CORPUS).join(&file)).unwrap();
        assert_eq!(
            std::fs::read(ctx.path().join(name)).unwrap(),
            original,
            "{name}"
        );
    }
}

#[test]
fn pin_write_rewrites_only_reference_bytes() {
    let (ctx, files) = locked_corpus();
    let out = ctx.run(&["pin", "--write"]);
    assert_eq!(out.code, 0, "{out}");
    assert_golden("pin-write.out", &out.to_string());
    for file in &files {
        let name = file.to_str().unwrap();
        let bytes = std::fs::read(ctx.path().join(name)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_golden(&format!("pinned/{name}"), &text);
    }

    // Pinning again changes nothing.
    let again = ctx.run(&["pin", "--write"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stdout.starts_with("pinned 0 references in 0 files"),
        "{again}"
    );
}

#[test]
fn verify_reports_what_pin_cannot_fix() {
    let (ctx, _) = locked_corpus();
    assert_eq!(ctx.run(&["pin", "--write"]).code, 0);
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "{out}");
    assert_golden("verify-after-pin.out", &out.to_string());
}

#[test]
fn verify_reports_unpinned_references_in_every_format() {
    let (ctx, _) = locked_corpus();
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "{out}");
    assert_golden("verify-before-pin.out", &out.to_string());

    let out = ctx.run(&["verify", "--offline", "--format", "json"]);
    assert_eq!(out.code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let triton = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "nvidia/tritonserver")
        .unwrap();
    assert_eq!(triton["code"], "unpinned-reference");
    assert_eq!(triton["location"]["file"], "deploy/base/app.yaml");
    assert_eq!(triton["location"]["line"], 14);

    let out = ctx.run(&["verify", "--offline", "--format", "github"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stdout.contains("file=deploy/base/app.yaml,line=14"),
        "{out}"
    );
    let out = ctx.run(&["verify", "--offline", "--format", "sarif"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("unpinned-reference"), "{out}");
}

#[test]
fn pin_with_paths_touches_only_those_files() {
    let (ctx, _) = locked_corpus();
    let out = ctx.run(&["pin", "--write", "deploy/crd"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        ctx.read("deploy/crd/inference-service.yaml")
            .contains("@sha256:")
    );
    assert!(!ctx.read("deploy/base/app.yaml").contains("@sha256:"));
    assert!(!ctx.read("compose.yaml").contains("@sha256:"));
}

#[test]
fn pin_refuses_references_missing_from_the_lock() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "k8s/extra.yaml",
        "kind: Pod\nspec:\n  containers:\n    - image: alpine:3.20\n",
    );
    ctx.write("Containerfile", "FROM quay.io/org/base:9\n");
    let out = ctx.run(&["pin", "--write"]);
    assert_eq!(out.code, 2, "{out}");
    insta::assert_snapshot!("pin_refuses_unlocked_references", out);
    assert!(!ctx.read("Dockerfile").contains("@sha256:"));
}

#[test]
fn pin_write_keeps_file_permissions() {
    use std::os::unix::fs::PermissionsExt as _;
    let (ctx, _) = locked_corpus();
    let path = ctx.path().join("deploy/crd/inference-service.yaml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    assert_eq!(ctx.run(&["pin", "--write"]).code, 0);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o664);
}

#[test]
fn pin_json_lists_changes_and_the_diff() {
    let (ctx, _) = locked_corpus();
    let out = ctx.run(&["pin", "--format", "json", "deploy/crd"]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["written"], false);
    let change = &doc["changes"][0];
    assert_eq!(change["file"], "deploy/crd/inference-service.yaml");
    assert_eq!(change["line"], 9);
    assert_eq!(change["from"], "kserve/huggingfaceserver:v0.14.0");
    let digest = fake_digest("kserve/huggingfaceserver");
    assert_eq!(
        change["to"],
        format!("kserve/huggingfaceserver:v0.14.0@{digest}")
    );
    assert!(
        doc["diff"]
            .as_str()
            .unwrap()
            .starts_with("--- a/deploy/crd/inference-service.yaml")
    );
}

// Layouts the default globs meet in real repositories.

/// A Helm chart under `deploy/`: its templates, its values and a rendered ConfigMap beside it.
fn write_helm_chart(ctx: &TestContext) {
    ctx.write(
        "deploy/chart/Chart.yaml",
        "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    );
    ctx.write(
        "deploy/chart/values.yaml",
        "image: {repository: app, tag: 1.0}\nsidecar: {image: reg/library/busybox}\n",
    );
    ctx.write(
        "deploy/chart/templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n\
         \x20       - image: busybox:1.36\n          {{- with .Values.resources }}\n\
         \x20         resources: {{ toYaml . | nindent 12 }}\n          {{- end }}\n",
    );
    ctx.write(
        "deploy/chart/templates/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: app\n",
    );
}

#[test]
fn helm_templates_and_values_are_skipped_with_a_note_not_an_error() {
    let (ctx, _) = locked_corpus();
    write_helm_chart(&ctx);

    let out = ctx.run(&["pin"]);
    assert_eq!(out.code, 0, "{out}");
    for file in ["deployment.yaml", "service.yaml"] {
        let note = format!("note: skipped `deploy/chart/templates/{file}`: it is a Helm template");
        assert!(out.stderr.contains(&note), "{out}");
    }
    assert!(
        out.stderr
            .contains("note: skipped `deploy/chart/values.yaml`: it holds a Helm chart's values"),
        "{out}"
    );
    assert!(!out.stdout.contains("deploy/chart"), "{out}");

    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "only the corpus's own findings: {out}");
    assert!(!out.stdout.contains("deploy/chart"), "{out}");
    assert!(!out.stdout.contains("unreadable-source"), "{out}");
    // verify says what it did not check, as pin does.
    let note = "note: skipped `deploy/chart/templates/deployment.yaml`: it is a Helm template";
    assert!(out.stderr.contains(note), "{out}");

    let out = ctx.run(&["init", "--stdout"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("reg/library/busybox"), "{out}");
}

#[test]
fn a_template_action_outside_a_chart_skips_the_file_with_a_note() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "k8s/job.yaml",
        "kind: Job\nspec:\n  template:\n    spec:\n      containers:\n\
         \x20       - image: {{ .Values.image }}\n",
    );
    let out = ctx.run(&["pin", "k8s"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stderr
            .contains("note: skipped `k8s/job.yaml`: it is a Helm template"),
        "{out}"
    );
}

#[test]
fn a_non_image_value_in_a_configmap_does_not_hide_the_pods_image() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "k8s/app.yaml",
        "kind: ConfigMap\nmetadata: {name: cfg}\ndata: {image: \"My Base Image\"}\n---\n\
         kind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - image: busybox:1.36\n",
    );
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(!out.stdout.contains("unreadable-source"), "{out}");
    assert!(out.stdout.contains("  --> k8s/app.yaml:9\n"), "{out}");

    // A container's image must still be a valid reference.
    ctx.write(
        "k8s/app.yaml",
        "kind: Pod\nspec:\n  initContainers:\n    - image: \"My Base Image\"\n",
    );
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stdout.contains("`k8s/app.yaml` line 4"), "{out}");
}

#[test]
fn sources_exclude_leaves_a_file_out_and_hints_name_it() {
    let (ctx, _) = locked_corpus();
    ctx.write("deploy/broken.yaml", "kind: Pod\nspec: [\n");
    let out = ctx.run(&["pin"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("`exclude = [\"<glob>\"]` under `[sources]`"),
        "{out}"
    );

    let config = ctx.read("aisupply.toml");
    let config = config.replacen(
        "[sources]\n",
        "[sources]\nexclude = [\"deploy/broken.yaml\"]\n",
        1,
    );
    assert!(
        config.contains("exclude"),
        "the golden config has `[sources]`"
    );
    ctx.write("aisupply.toml", &config);
    let out = ctx.run(&["pin"]);
    assert_eq!(out.code, 0, "{out}");

    ctx.write(
        "aisupply.toml",
        config.replace("deploy/broken.yaml", "deploy/[x"),
    );
    let out = ctx.run(&["pin"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("`exclude` glob `deploy/[x` is invalid"),
        "{out}"
    );
}

#[test]
fn a_dockerignore_next_to_a_dockerfile_is_not_read_as_one() {
    let (ctx, _) = locked_corpus();
    // Read as a Dockerfile, the trailing `\` would be a continuation the file never finishes.
    ctx.write(
        "svc/Dockerfile.dockerignore",
        "node_modules\n*.log\nbuild\\\n",
    );
    ctx.write("svc/api.Dockerfile.dockerignore", "from\n");
    let out = ctx.run(&["init", "--stdout"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("dockerignore"), "{out}");
    assert!(!out.stderr.contains("dockerignore"), "{out}");
}

#[test]
fn an_anchored_image_is_pinned_at_its_anchor_and_proposed_once() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "k8s/anchors.yaml",
        "kind: Pod\nspec:\n  containers:\n    - image: &busy busybox:1.36  # anchor\n  \
         initContainers:\n    - image: *busy\n    - image: >-\n        busybox:1.36\n",
    );
    let out = ctx.run(&["init", "--format", "json", "--stdout"]);
    assert_eq!(out.code, 0, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let busybox = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "busybox")
        .unwrap();
    let places: Vec<&str> = busybox["found_at"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .filter(|p| p.starts_with("k8s/"))
        .collect();
    assert_eq!(places, ["k8s/anchors.yaml:4", "k8s/anchors.yaml:8"]);

    let out = ctx.run(&["pin", "--write", "k8s"]);
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stderr.contains("cannot pin"), "{out}");
    let digest = fake_digest("busybox");
    assert_eq!(
        ctx.read("k8s/anchors.yaml"),
        format!(
            "kind: Pod\nspec:\n  containers:\n    \
             - image: &busy busybox:1.36@{digest}  # anchor\n  \
             initContainers:\n    - image: *busy\n    - image: >-\n        busybox:1.36@{digest}\n"
        )
    );
}

#[test]
fn paths_that_select_no_file_are_an_error_not_a_clean_pin() {
    let (ctx, _) = locked_corpus();
    let out = ctx.run(&["pin", "build"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("error: no source file was selected by `build`: `.gitignore` hides"),
        "{out}"
    );
    assert!(!out.stderr.contains("every reference is pinned"), "{out}");

    ctx.write("ops/notes.txt", "FROM x\n");
    let out = ctx.run(&["pin", "ops"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("no file there matches a `[sources]` glob"),
        "{out}"
    );
}

// Bad input: each gets one message with file, line and fix; the other files are still read.

#[test]
fn unparseable_yaml_names_file_and_line_and_other_files_are_still_checked() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "deploy/broken.yaml",
        "kind: Pod\nspec:\n  containers: [\n    image: x\n",
    );
    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stdout
            .contains("error[unreadable-source]: `deploy/broken.yaml` line 5"),
        "{out}"
    );
    assert!(out.stdout.contains("  --> deploy/broken.yaml:5\n"), "{out}");
    assert!(out.stdout.contains("the YAML does not parse"), "{out}");
    // Another file's finding is still there.
    assert!(
        out.stdout.contains("  --> deploy/base/app.yaml:14\n"),
        "{out}"
    );

    let before = ctx.read("compose.yaml");
    let out = ctx.run(&["pin", "--write"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains("error: `deploy/broken.yaml` line 5"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: fix the YAML at that line"),
        "{out}"
    );
    assert!(out.stderr.contains("nothing was written"), "{out}");
    assert_eq!(ctx.read("compose.yaml"), before);
    assert!(
        out.stdout.contains("+++ b/compose.yaml"),
        "the diff of the good files is shown: {out}"
    );
}

#[test]
fn an_unterminated_dockerfile_continuation_is_bad_input() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "svc/Dockerfile",
        "FROM busybox:1.36\nRUN apk add \\\n    curl \\\n",
    );
    let out = ctx.run(&["pin"]);
    assert_eq!(out.code, 2, "{out}");
    let first_lines = out.stderr.lines().take(2).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!("pin_unterminated_continuation", first_lines);
}

#[test]
fn an_invalid_reference_name_is_bad_input() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "compose.override.yaml",
        "services:\n  web:\n    image: Nginx:1.27\n",
    );
    let out = ctx.run(&["init", "--force"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr.contains(
            "error: `compose.override.yaml` line 3: `Nginx:1.27` is not a valid image reference\n  \
             caused by: image reference `Nginx:1.27` has uppercase letters"
        ),
        "{out}"
    );
    assert!(out.stderr.contains("nothing was written"), "{out}");
    assert!(
        ctx.read("aisupply.toml").contains("nvidia/tritonserver"),
        "the old config stays"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_bad_input() {
    let (ctx, _) = locked_corpus();
    ctx.write(
        "legacy/Dockerfile",
        b"FROM busybox:1.36\n# caf\xe9\n".as_slice(),
    );
    let out = ctx.run(&["verify", "--offline", "--format", "json"]);
    assert_eq!(out.code, 2, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "unreadable-source")
        .unwrap();
    assert_eq!(finding["location"]["file"], "legacy/Dockerfile");
    assert_eq!(finding["location"]["line"], 2);
    assert!(finding["hint"].as_str().unwrap().contains("UTF-8"));
}

// The whole workflow against a real registry.

/// A sample repository that uses `app` (an index) and `tool` and `base` (single manifests).
fn sample_repository(ctx: &TestContext, host: &str) {
    ctx.write(
        "Dockerfile",
        format!(
            "# syntax=docker/dockerfile:1\nARG BASE={host}/team/base:1.0\n\nFROM ${{BASE}} AS build\n\
             COPY --from={host}/team/tool:2.0 /bin/tool /bin/tool\n\nFROM {host}/team/app:1.0\n\
             COPY --from=build /out /out\n"
        ),
    );
    ctx.write(
        "compose.yaml",
        format!("services:\n  app:\n    image: \"{host}/team/app:1.0\" # served\n"),
    );
    ctx.write(
        "deploy/app.yaml",
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    \
             spec:\n      initContainers:\n        - name: tool\n          \
             image: {host}/team/tool:2.0\n      \
             containers:\n        - name: app\n          image: {host}/team/app:1.0\n"
        ),
    );
}

#[test]
fn init_lock_pin_verify_run_clean_and_a_hand_edited_tag_fails_at_its_line() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let app = push_oci_index(&host, "team/app", "1.0", 1);
    let tool = push_oci_image(&host, "team/tool", "2.0", 2);
    let base = push_oci_image(&host, "team/base", "1.0", 3);
    push_oci_image(&host, "team/app", "1.1", 4);
    sample_repository(&ctx, &host);

    for args in [&["init"][..], &["lock"], &["pin", "--write"]] {
        let out = ctx.run(args);
        assert_eq!(out.code, 0, "{args:?}: {out}");
    }
    assert!(
        ctx.read("Dockerfile")
            .contains(&format!("ARG BASE={host}/team/base:1.0@{}", base.digest))
    );
    assert!(
        ctx.read("compose.yaml")
            .contains(&format!("\"{host}/team/app:1.0@{}\" # served", app.digest))
    );
    assert!(
        ctx.read("deploy/app.yaml")
            .contains(&format!("image: {host}/team/tool:2.0@{}", tool.digest))
    );

    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 0, "{out}");
    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!(out, @r"
        exit code: 0
        ----- stdout -----
        verify passed: 3 images checked, no findings

        ----- stderr -----
        ");
    });

    // Someone bumps the tag by hand and keeps the old digest.
    let edited = ctx
        .read("deploy/app.yaml")
        .replace("team/app:1.0@", "team/app:1.1@");
    ctx.write("deploy/app.yaml", edited);
    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("error[not-locked]"), "{out}");
    assert!(out.stdout.contains("  --> deploy/app.yaml:13\n"), "{out}");

    // Or drops the digest.
    let edited = ctx
        .read("compose.yaml")
        .replace(&format!("@{}", app.digest), "");
    ctx.write("compose.yaml", edited);
    let out = ctx.run(&["verify", "--format", "json"]);
    assert_eq!(out.code, 1, "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let unpinned = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "unpinned-reference")
        .unwrap();
    assert_eq!(unpinned["location"]["file"], "compose.yaml");
    assert_eq!(unpinned["location"]["line"], 3);
    assert_eq!(unpinned["hint"], "run `aisupply pin --write compose.yaml`");
}

#[test]
fn a_reference_pinned_to_another_digest_is_a_mismatch_that_pin_updates() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    let old = push_oci_image(&host, "team/tool", "2.0", 2);
    ctx.write(
        "Dockerfile",
        format!("FROM {host}/team/tool:2.0@{}\n", old.digest),
    );
    assert_eq!(ctx.run(&["init"]).code, 0);
    let new = push_oci_image(&host, "team/tool", "2.0", 5);
    assert_eq!(ctx.run(&["lock"]).code, 0);

    let out = ctx.run(&["verify", "--offline"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("error[digest-mismatch]"), "{out}");
    assert!(
        out.stdout.contains(&format!(
            "  expected: {}\n  found:    {}",
            new.digest, old.digest
        )),
        "{out}"
    );
    assert!(out.stdout.contains("  --> Dockerfile:1\n"), "{out}");

    assert_eq!(ctx.run(&["pin", "--write"]).code, 0);
    assert_eq!(
        ctx.read("Dockerfile"),
        format!("FROM {host}/team/tool:2.0@{}\n", new.digest)
    );
    assert_eq!(ctx.run(&["verify", "--offline"]).code, 0);
}
