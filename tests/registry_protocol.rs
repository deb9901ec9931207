//! How aisupply speaks the distribution protocol to registries that misbehave on purpose:
//! missing headers, content that does not match its digest, authentication challenges,
//! throttling, and the wrong scheme.

// Helpers of tests fail the test on anything unexpected, as the tests themselves do.
#![allow(clippy::unwrap_used)]

mod common;

use common::{FakeAuth, FakeConfig, FakeManifest, FakeRegistry, Registry, TestContext};

fn config_for(ctx: &TestContext, reference: &str) {
    ctx.write(
        "aisupply.toml",
        format!("[[image]]\nname = \"app\"\nref = \"{reference}\"\n"),
    );
}

/// A context whose config has one image, `team/app:1`, on a fake registry started with `config`.
fn on_fake(config: FakeConfig) -> (FakeRegistry, TestContext) {
    let fake = FakeRegistry::start(config);
    let ctx = TestContext::new();
    config_for(&ctx, &format!("{}/team/app:1", fake.host()));
    (fake, ctx)
}

fn locked_digest(ctx: &TestContext) -> String {
    let lock: toml::Table = toml::from_str(&ctx.read("aisupply.lock")).unwrap();
    lock["image"][0]["digest"].as_str().unwrap().to_owned()
}

#[test]
fn a_missing_digest_header_is_replaced_by_hashing_the_manifest() {
    let manifest = FakeManifest::oci_image("team/app", "1", 1);
    let (fake, ctx) = on_fake(FakeConfig {
        omit_digest_header: true,
        ..FakeConfig::serving([manifest.clone()])
    });

    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(locked_digest(&ctx), manifest.digest());
    let methods: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/manifests/"))
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[test]
fn content_that_does_not_match_the_pinned_digest_fails() {
    let manifest = FakeManifest::oci_image("team/app", "1", 2);
    let fake = FakeRegistry::start(FakeConfig {
        corrupt_body: true,
        ..FakeConfig::serving([manifest.clone()])
    });
    let ctx = TestContext::new();
    config_for(
        &ctx,
        &format!("{}/team/app:1@{}", fake.host(), manifest.digest()),
    );

    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("does not match its digest"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("expected: {}", manifest.digest())),
        "{out}"
    );
    assert!(out.stderr.contains("computed: sha256:"), "{out}");
    assert!(!ctx.path().join("aisupply.lock").exists());
}

#[test]
fn an_index_whose_bytes_do_not_match_its_digest_header_fails() {
    let manifests = FakeManifest::oci_index("team/app", "1", 3);
    let (_fake, ctx) = on_fake(FakeConfig {
        corrupt_body: true,
        ..FakeConfig::serving(manifests)
    });

    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("does not match its digest"), "{out}");
    assert!(!ctx.path().join("aisupply.lock").exists());
}

#[test]
fn a_bearer_challenge_is_answered_anonymously_without_credentials() {
    let manifest = FakeManifest::oci_image("team/app", "1", 4);
    let (fake, ctx) = on_fake(FakeConfig {
        auth: FakeAuth::bearer(),
        ..FakeConfig::serving([manifest.clone()])
    });

    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(locked_digest(&ctx), manifest.digest());
    assert!(fake.requests().iter().any(|r| r.path.starts_with("/token")));
}

#[test]
fn docker_config_credentials_are_sent_to_the_token_service_and_never_shown() {
    let manifest = FakeManifest::oci_image("team/app", "1", 5);
    let (fake, ctx) = on_fake(FakeConfig {
        auth: FakeAuth::bearer_with_login("robot", "s3cret-pass"),
        ..FakeConfig::serving([manifest.clone()])
    });

    // Without credentials the registry refuses, and the hint says how to log in.
    let out = ctx.run(&["lock", "-v"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("refused access to `team/app`"), "{out}");
    assert!(
        out.stderr
            .contains(&format!("docker login {}", fake.host())),
        "{out}"
    );

    // With `docker login`'s entry it works, and neither secret nor token is printed.
    ctx.write(
        ".docker-home-unused",
        "", // keeps the work dir non-empty; credentials live in DOCKER_CONFIG below
    );
    let auth = base64_encode("robot:s3cret-pass");
    std::fs::create_dir_all(ctx.docker_config()).unwrap();
    std::fs::write(
        ctx.docker_config().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, fake.host()),
    )
    .unwrap();
    let out = ctx.run(&["lock", "-vv"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(locked_digest(&ctx), manifest.digest());
    for secret in ["s3cret-pass", auth.as_str(), fake.token()] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "{out}"
        );
    }
}

#[test]
fn basic_auth_registries_get_basic_credentials() {
    let manifest = FakeManifest::oci_image("team/app", "1", 6);
    let (fake, ctx) = on_fake(FakeConfig {
        auth: FakeAuth::basic("user", "pw"),
        ..FakeConfig::serving([manifest.clone()])
    });
    std::fs::create_dir_all(ctx.docker_config()).unwrap();
    std::fs::write(
        ctx.docker_config().join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"username":"user","password":"pw"}}}}}}"#,
            fake.host()
        ),
    )
    .unwrap();
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(locked_digest(&ctx), manifest.digest());
}

#[test]
fn throttled_and_unavailable_answers_are_retried() {
    let manifest = FakeManifest::oci_image("team/app", "1", 7);
    let (fake, ctx) = on_fake(FakeConfig {
        rate_limited: 1,
        unavailable: 1,
        ..FakeConfig::serving([manifest.clone()])
    });

    let started = std::time::Instant::now();
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(locked_digest(&ctx), manifest.digest());
    let manifest_requests = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/manifests/"))
        .count();
    assert_eq!(manifest_requests, 3, "429, 503, then 200");
    // `Retry-After: 1` was honoured rather than retried at once.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

#[test]
fn an_unknown_tag_is_manifest_unknown_with_a_hint() {
    let fake = FakeRegistry::start(FakeConfig::serving([FakeManifest::oci_image(
        "team/app", "1", 8,
    )]));
    let ctx = TestContext::new();
    config_for(&ctx, &format!("{}/team/app:nope", fake.host()));
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!(out);
    });
    assert!(!ctx.path().join("aisupply.lock").exists());
}

#[test]
fn an_unreachable_registry_is_exit_2_naming_it() {
    let ctx = TestContext::new();
    let host = common::unreachable_host();
    config_for(&ctx, &format!("{host}/team/app:1"));
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains(&format!("cannot reach registry `{host}`")),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("hint: check that the registry is running"),
        "{out}"
    );
}

#[test]
fn plain_http_to_an_https_only_registry_is_named() {
    let registry = Registry::start_tls();
    let ctx = TestContext::new();
    config_for(&ctx, &format!("{}/team/app:1", registry.host()));
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("speaks HTTPS, but aisupply reached it over plain HTTP"),
        "{out}"
    );
    assert!(out.stderr.contains("insecure = false"), "{out}");
}

#[test]
fn https_to_a_plain_http_registry_is_named() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    ctx.write(
        "aisupply.toml",
        format!(
            "[[image]]\nref = \"{host}/team/app:1\"\n\n[registries.\"{host}\"]\ninsecure = false\n"
        ),
    );
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("answered plain HTTP to an HTTPS request"),
        "{out}"
    );
    assert!(out.stderr.contains("insecure = true"), "{out}");
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Writes an executable `docker-credential-<name>` into `dir` that answers `get` for `server`
/// with `robot` / `s3cret-pass`, and "not found" for anything else.
fn credential_helper(dir: &std::path::Path, name: &str, server: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nread server\n\
             if [ \"$1\" = get ] && [ \"$server\" = \"{server}\" ]; then\n\
               echo '{{\"ServerURL\":\"{server}\",\"Username\":\"robot\",\"Secret\":\"s3cret-pass\"}}'\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credential_helpers_and_stores_supply_credentials() {
    let manifest = FakeManifest::oci_image("team/app", "1", 9);
    let (fake, ctx) = on_fake(FakeConfig {
        auth: FakeAuth::bearer_with_login("robot", "s3cret-pass"),
        ..FakeConfig::serving([manifest.clone()])
    });
    let bin = ctx.home().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    credential_helper(&bin, "aisupplytest", fake.host());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    std::fs::create_dir_all(ctx.docker_config()).unwrap();

    for docker_config in [
        format!(r#"{{"credHelpers":{{"{}":"aisupplytest"}}}}"#, fake.host()),
        r#"{"credsStore":"aisupplytest"}"#.to_owned(),
    ] {
        std::fs::write(ctx.docker_config().join("config.json"), &docker_config).unwrap();
        let out = ctx.run_with_env(&["lock", "--update"], &[("PATH", &path)]);
        assert_eq!(out.code, 0, "{docker_config}: {out}");
        assert_eq!(locked_digest(&ctx), manifest.digest());
        assert!(!out.stderr.contains("s3cret-pass"), "{out}");
    }

    // A helper that is not installed is named, with what to do.
    std::fs::write(
        ctx.docker_config().join("config.json"),
        r#"{"credsStore":"not-installed-anywhere"}"#,
    )
    .unwrap();
    let out = ctx.run(&["lock", "--update"]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        out.stderr
            .contains("docker-credential-not-installed-anywhere"),
        "{out}"
    );
}

#[test]
fn a_connection_closed_before_the_answer_is_retried() {
    use std::io::{Read as _, Write as _};
    let manifest = FakeManifest::oci_image("team/app", "1", 10);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let digest = manifest.digest();
    let server = std::thread::spawn(move || {
        // The first connection is dropped mid-request; the second is answered.
        for attempt in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            if attempt == 0 {
                continue;
            }
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                 Docker-Content-Digest: {digest}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(answer.as_bytes()).unwrap();
        }
    });
    let ctx = TestContext::new();
    config_for(&ctx, &format!("{host}/team/app:1"));
    let out = ctx.run(&["lock"]);
    server.join().unwrap();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(locked_digest(&ctx), manifest.digest());
}

#[test]
fn lock_output_is_stable() {
    let ctx = TestContext::new();
    let host = ctx.registry().host().to_owned();
    common::push_oci_index(&host, "team/app", "1.0", 1);
    common::push_docker_image(&host, "team/tool", "2.0", 2);
    ctx.write(
        "aisupply.toml",
        format!(
            "[[image]]\nname = \"app\"\nref = \"{host}/team/app:1.0\"\n\n\
             [[image]]\nname = \"tool\"\nref = \"{host}/team/tool:2.0\"\n"
        ),
    );
    let out = ctx.run(&["lock"]);
    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!("lock_output", out);
        insta::assert_snapshot!("lockfile", ctx.read("aisupply.lock"));
    });
}

/// Regression: without `Content-Type` on HEAD, the media type was recorded as empty and an
/// index's platforms were never read.
#[test]
fn a_registry_without_content_type_still_gets_a_complete_lock() {
    let manifests = FakeManifest::oci_index("team/app", "1", 12);
    let index = manifests[0].clone();
    let (_fake, ctx) = on_fake(FakeConfig {
        omit_content_type: true,
        ..FakeConfig::serving(manifests)
    });
    let out = ctx.run(&["lock"]);
    assert_eq!(out.code, 0, "{out}");
    let text = ctx.read("aisupply.lock");
    common::assert_valid_lockfile(&text);
    assert!(
        text.contains("media-type = \"application/vnd.oci.image.index.v1+json\""),
        "{text}"
    );
    assert!(text.contains("platform = \"linux/arm64/v8\""), "{text}");
    assert_eq!(locked_digest(&ctx), index.digest());
}

/// Regression: `verify` only sent HEAD requests, so a registry serving altered bytes under the
/// right `Docker-Content-Digest` passed.
#[test]
fn verify_hashes_what_the_registry_serves_for_each_locked_digest() {
    let manifests = FakeManifest::oci_index("team/app", "1", 13);
    let good = FakeRegistry::start(FakeConfig::serving(manifests.clone()));
    let ctx = TestContext::new();
    config_for(&ctx, &format!("{}/team/app:1", good.host()));
    assert_eq!(ctx.run(&["lock"]).code, 0);

    let altered = FakeRegistry::start(FakeConfig {
        corrupt_body: true,
        ..FakeConfig::serving(manifests)
    });
    for file in ["aisupply.toml", "aisupply.lock"] {
        let text = ctx.read(file).replace(good.host(), altered.host());
        ctx.write(file, text);
    }
    let out = ctx.run(&["verify"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stdout.contains("error[digest-mismatch]"), "{out}");
    assert!(out.stdout.contains("computed `sha256:"), "{out}");
}

/// A registry that accepts connections and never answers must not stall CI: each request has a
/// deadline (`AISUPPLY_HTTP_TIMEOUT`), and a timeout is retried once, not until attempts run out.
#[test]
fn a_registry_that_never_answers_fails_within_its_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let holder = std::thread::spawn(move || {
        // Accept and hold connections without a word, until the test drops the listener.
        let mut held = Vec::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok((stream, _)) = listener.accept() {
                held.push(stream);
            }
            if held.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    });
    let ctx = TestContext::new();
    config_for(&ctx, &format!("{host}/team/app:1"));
    let started = std::time::Instant::now();
    let out = ctx.run_with_env(&["lock"], &[("AISUPPLY_HTTP_TIMEOUT", "1")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{out}"
    );
    assert!(out.stderr.contains("request to registry"), "{out}");
    holder.join().unwrap();

    let out = ctx.run_with_env(&["lock"], &[("AISUPPLY_HTTP_TIMEOUT", "soon")]);
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("`AISUPPLY_HTTP_TIMEOUT=soon`"), "{out}");
}
