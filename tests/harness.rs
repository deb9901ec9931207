//! Tests of the test harness itself: the real registry starts and stops, the fixture pushers
//! report the digests a third-party client (skopeo) reads back, and the fake registry serves and
//! misbehaves as configured.

mod common;

use std::net::TcpStream;

use common::image::{self, Format, LINUX_AMD64};
use common::{
    FakeAuth, FakeConfig, FakeManifest, FakeRegistry, PushedImage, RecordedRequest, Registry,
    TestContext,
};
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

// --- The real registry and the fixture pushers ---

/// Checks that skopeo reads the top-level manifest and every child at the digests we reported.
fn assert_skopeo_agrees(host: &str, repo: &str, tag: &str, pushed: &PushedImage) {
    assert_eq!(
        common::skopeo_raw_digest(host, &format!("{repo}:{tag}")),
        pushed.digest
    );
    assert_eq!(
        common::skopeo_raw_digest(host, &format!("{repo}@{}", pushed.digest)),
        pushed.digest
    );
    for child in &pushed.children {
        let reference = format!("{repo}@{}", child.digest);
        assert_eq!(
            common::skopeo_raw_digest(host, &reference),
            child.digest,
            "{}",
            child.platform
        );
    }
}

fn platforms(pushed: &PushedImage) -> Vec<&str> {
    pushed
        .children
        .iter()
        .map(|child| child.platform.as_str())
        .collect()
}

#[test]
fn oci_image_digest_is_what_skopeo_reads() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();

    let pushed = common::push_oci_image(host, "fixtures/oci", "v1", 1);

    assert_eq!(pushed.media_type, image::OCI_MANIFEST);
    assert_eq!(pushed.reference, format!("{host}/fixtures/oci:v1"));
    assert!(pushed.children.is_empty());
    assert_skopeo_agrees(host, "fixtures/oci", "v1", &pushed);
}

#[test]
fn docker_image_digest_is_what_skopeo_reads() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();

    let pushed = common::push_docker_image(host, "fixtures/docker", "v1", 1);

    assert_eq!(pushed.media_type, image::DOCKER_MANIFEST);
    assert_skopeo_agrees(host, "fixtures/docker", "v1", &pushed);
}

#[test]
fn oci_index_and_its_children_are_what_skopeo_reads() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();

    let pushed = common::push_oci_index(host, "fixtures/index", "v1", 1);

    assert_eq!(pushed.media_type, image::OCI_INDEX);
    assert_eq!(
        platforms(&pushed),
        ["linux/amd64", "linux/arm64/v8", "unknown/unknown"]
    );
    assert_skopeo_agrees(host, "fixtures/index", "v1", &pushed);
}

#[test]
fn docker_list_and_its_children_are_what_skopeo_reads() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();

    let pushed = common::push_docker_list(host, "fixtures/list", "v1", 1);

    assert_eq!(pushed.media_type, image::DOCKER_LIST);
    assert_eq!(platforms(&pushed), ["linux/amd64", "linux/arm/v7"]);
    assert_skopeo_agrees(host, "fixtures/list", "v1", &pushed);
}

#[test]
fn attestation_entry_points_at_the_amd64_manifest() {
    let index = image::oci_index(1);
    let index: serde_json::Value = serde_json::from_slice(&index.manifest.bytes).expect("JSON");
    let entries = index["manifests"].as_array().expect("manifests");

    let attestation = &entries[2];
    assert_eq!(attestation["platform"]["os"], "unknown");
    assert_eq!(
        attestation["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        attestation["annotations"]["vnd.docker.reference.digest"],
        entries[0]["digest"]
    );
    assert_eq!(entries[1]["platform"]["variant"], "v8");
}

#[test]
fn same_seed_gives_same_digests_and_another_seed_does_not() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();

    let first = common::push_oci_index(host, "fixtures/a", "v1", 7);
    let again = common::push_oci_index(host, "fixtures/b", "v1", 7);
    let other = common::push_oci_index(host, "fixtures/a", "v2", 8);

    assert_eq!(first.digest, again.digest);
    assert_eq!(first.child("linux/arm64/v8"), again.child("linux/arm64/v8"));
    assert_ne!(first.digest, other.digest);
    assert_ne!(first.child("linux/amd64"), other.child("linux/amd64"));
}

#[test]
fn pushing_another_seed_to_a_tag_moves_the_tag() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();

    common::push_oci_image(host, "fixtures/moving", "latest", 1);
    let moved = common::push_oci_image(host, "fixtures/moving", "latest", 2);

    assert_eq!(
        common::skopeo_raw_digest(host, "fixtures/moving:latest"),
        moved.digest
    );
}

#[tokio::test]
async fn deleted_manifest_no_longer_resolves() {
    let ctx = TestContext::new();
    let host = ctx.registry().host();
    let pushed = common::push_oci_image(host, "fixtures/gone", "v1", 1);

    common::delete_manifest(host, "fixtures/gone", &pushed.digest);

    let url = format!("http://{host}/v2/fixtures/gone/manifests/{}", pushed.digest);
    let (status, _, _) = fetch(Method::HEAD, &url, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn fixture_layers_are_gzipped_tars_that_tar_can_list() {
    let ctx = TestContext::new();
    let image = image::image(Format::Docker, 3, LINUX_AMD64);
    ctx.write("layer.tar.gz", &image.blobs[1].bytes);

    let listing = std::process::Command::new("tar")
        .args(["-tzf", "layer.tar.gz"])
        .current_dir(ctx.path())
        .output()
        .expect("run tar");

    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "fixture.txt\n");
}

#[test]
fn gzip_of_more_than_one_block_round_trips() {
    let ctx = TestContext::new();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    ctx.write("data.gz", image::gzip(&data));

    let unpacked = std::process::Command::new("gzip")
        .args(["-dc", "data.gz"])
        .current_dir(ctx.path())
        .output()
        .expect("run gzip");

    assert!(
        unpacked.status.success(),
        "{}",
        String::from_utf8_lossy(&unpacked.stderr)
    );
    assert!(unpacked.stdout == data, "gzip -d gave back different bytes");
}

#[test]
fn registry_process_ends_when_dropped() {
    let registry = Registry::start();
    let host = registry.host().to_owned();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert!(TcpStream::connect(&host).is_ok());

    drop(registry);

    assert!(
        TcpStream::connect(&host).is_err(),
        "something still listens on {host}"
    );
}

#[test]
fn unreachable_host_refuses_connections() {
    let host = common::unreachable_host();

    assert!(TcpStream::connect(&host).is_err());
}

// --- TestContext ---

#[test]
fn context_isolates_home_and_docker_config() {
    let ctx = TestContext::new();
    let command = ctx.command(&["lock"]);
    let env: Vec<_> = command.get_envs().collect();
    let value = |name: &str| {
        let found = env
            .iter()
            .find(|(key, _)| *key == name)
            .expect("variable is set or removed");
        found.1.map(|value| value.to_string_lossy().into_owned())
    };

    assert_eq!(command.get_current_dir(), Some(ctx.path()));
    assert_eq!(value("HOME"), Some(ctx.home().display().to_string()));
    assert_eq!(
        value("DOCKER_CONFIG"),
        Some(ctx.docker_config().display().to_string())
    );
    assert!(ctx.docker_config().starts_with(ctx.home()));
    assert_eq!(value("NO_COLOR").as_deref(), Some("1"));
    assert_eq!(value("HF_TOKEN"), None);
}

#[test]
fn context_runs_the_built_binary() {
    let ctx = TestContext::new();

    let output = ctx.run(&["--help"]);

    assert_eq!(output.code, 0, "{output}");
}

#[test]
fn context_writes_and_reads_files_under_its_directory() {
    let ctx = TestContext::new();

    ctx.write("deploy/app/Dockerfile", "FROM ubuntu:22.04\n");

    assert_eq!(ctx.read("deploy/app/Dockerfile"), "FROM ubuntu:22.04\n");
    assert!(ctx.path().join("deploy/app/Dockerfile").is_file());
}

#[test]
fn filters_hide_temp_paths_ports_and_durations() {
    let ctx = TestContext::new();
    let text = format!(
        "wrote {}/aisupply.lock\nread {}/.docker/config.json\npulled 127.0.0.1:41234/app in 1.25s \
         (then 80ms)\nkept sha256:0123abcd",
        ctx.path().display(),
        ctx.home().display(),
    );

    insta::with_settings!({ filters => ctx.filters() }, {
        insta::assert_snapshot!(text, @r"
        wrote [TEMP]/aisupply.lock
        read [HOME]/.docker/config.json
        pulled 127.0.0.1:[PORT]/app in [TIME] (then [TIME])
        kept sha256:0123abcd
        ");
    });
}

// --- The fake registry ---

/// Sends one request and returns its status, headers and body.
async fn fetch(
    method: Method,
    url: &str,
    authorization: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = common::http::client().request(method, url);
    if let Some(authorization) = authorization {
        request = request.header(AUTHORIZATION, authorization);
    }
    let response = request.send().await.expect("send the request");
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.bytes().await.expect("read the body").to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map_or("", |value| value.to_str().expect("ASCII header"))
}

fn basic(credentials: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

#[tokio::test]
async fn fake_serves_a_manifest_by_tag_and_by_digest_over_head_and_get() {
    let manifest = FakeManifest::oci_image("library/app", "v1", 1);
    let digest = manifest.digest();
    let fake = FakeRegistry::start(FakeConfig::serving([manifest.clone()]));

    for reference in ["v1", digest.as_str()] {
        let url = format!("{}/v2/library/app/manifests/{reference}", fake.url());
        let (status, headers, body) = fetch(Method::GET, &url, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, CONTENT_TYPE.as_str()), image::OCI_MANIFEST);
        assert_eq!(header(&headers, "docker-content-digest"), digest);
        assert_eq!(body, manifest.bytes);

        let (status, headers, body) = fetch(Method::HEAD, &url, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "docker-content-digest"), digest);
        assert_eq!(
            header(&headers, CONTENT_LENGTH.as_str()),
            manifest.bytes.len().to_string()
        );
        assert!(body.is_empty());
    }
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn fake_serves_the_same_index_the_pusher_pushes() {
    let manifests = FakeManifest::oci_index("library/multi", "v1", 5);
    let fake = FakeRegistry::start(FakeConfig::serving(manifests.clone()));
    let index = image::oci_index(5);

    assert_eq!(manifests[0].digest(), index.manifest.digest);
    for (_, child) in &index.children {
        let url = format!(
            "{}/v2/library/multi/manifests/{}",
            fake.url(),
            child.manifest.digest
        );
        let (status, _, body) = fetch(Method::GET, &url, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, child.manifest.bytes);
    }
}

#[tokio::test]
async fn fake_answers_an_unknown_tag_with_manifest_unknown() {
    let fake = FakeRegistry::start(FakeConfig::serving([FakeManifest::oci_image(
        "app", "v1", 1,
    )]));

    let url = format!("{}/v2/app/manifests/v2", fake.url());
    let (status, _, body) = fetch(Method::GET, &url, None).await;

    assert_eq!(status, StatusCode::NOT_FOUND);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("an error envelope");
    assert_eq!(body["errors"][0]["code"], "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn fake_bearer_flow_gives_a_token_only_for_the_configured_login() {
    let fake = FakeRegistry::start(FakeConfig {
        auth: FakeAuth::bearer_with_login("alice", "wonderland"),
        ..FakeConfig::serving([FakeManifest::oci_image("team/app", "v1", 1)])
    });
    let manifest_url = format!("{}/v2/team/app/manifests/v1", fake.url());
    let token_url = format!(
        "{}/token?service=fake&scope=repository:team/app:pull",
        fake.url()
    );

    // The challenge names the realm, service and scope.
    let (status, headers, _) = fetch(Method::HEAD, &manifest_url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let expected = format!(
        r#"Bearer realm="{}/token",service="fake",scope="repository:team/app:pull""#,
        fake.url()
    );
    assert_eq!(header(&headers, WWW_AUTHENTICATE.as_str()), expected);

    // Only the right login gets a token.
    let (status, _, _) = fetch(Method::GET, &token_url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = fetch(Method::GET, &token_url, Some(&basic("alice:wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = fetch(Method::GET, &token_url, Some(&basic("alice:wonderland"))).await;
    assert_eq!(status, StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a token response");
    assert_eq!(body["token"], fake.token());

    // The token opens the manifest.
    let bearer = format!("Bearer {}", fake.token());
    let (status, _, _) = fetch(Method::GET, &manifest_url, Some(&bearer)).await;
    assert_eq!(status, StatusCode::OK);
    let sent: Vec<bool> = fake
        .requests()
        .iter()
        .map(|request| request.authorization)
        .collect();
    assert_eq!(sent, [false, false, true, true, true]);
}

#[tokio::test]
async fn fake_anonymous_bearer_flow_gives_anyone_a_token() {
    let fake = FakeRegistry::start(FakeConfig {
        auth: FakeAuth::bearer(),
        ..FakeConfig::default()
    });

    let (status, headers, _) = fetch(Method::GET, &format!("{}/v2/", fake.url()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = format!(r#"Bearer realm="{}/token",service="fake""#, fake.url());
    assert_eq!(header(&headers, WWW_AUTHENTICATE.as_str()), challenge);

    let (status, _, _) = fetch(Method::GET, &format!("{}/token", fake.url()), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn fake_basic_auth_challenges_then_accepts_the_login() {
    let fake = FakeRegistry::start(FakeConfig {
        auth: FakeAuth::basic("bob", "builder"),
        ..FakeConfig::serving([FakeManifest::oci_image("app", "v1", 1)])
    });
    let url = format!("{}/v2/app/manifests/v1", fake.url());

    let (status, headers, _) = fetch(Method::GET, &url, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&headers, WWW_AUTHENTICATE.as_str()),
        r#"Basic realm="fake""#
    );

    let (status, _, _) = fetch(Method::GET, &url, Some(&basic("bob:builder"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn fake_refuses_the_first_requests_with_429_then_503_then_serves() {
    let fake = FakeRegistry::start(FakeConfig {
        rate_limited: 2,
        unavailable: 1,
        ..FakeConfig::serving([FakeManifest::oci_image("app", "v1", 1)])
    });
    let url = format!("{}/v2/app/manifests/v1", fake.url());

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, headers, _) = fetch(Method::GET, &url, None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(header(&headers, RETRY_AFTER.as_str()), "1");
        }
        statuses.push(status.as_u16());
    }

    assert_eq!(statuses, [429, 429, 503, 200]);
}

#[tokio::test]
async fn fake_can_omit_the_digest_header_and_corrupt_the_body() {
    let manifest = FakeManifest::oci_image("app", "v1", 1);
    let fake = FakeRegistry::start(FakeConfig {
        omit_digest_header: true,
        corrupt_body: true,
        ..FakeConfig::serving([manifest.clone()])
    });

    let url = format!("{}/v2/app/manifests/{}", fake.url(), manifest.digest());
    let (status, headers, body) = fetch(Method::GET, &url, None).await;

    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("docker-content-digest").is_none());
    assert_ne!(common::sha256_digest(&body), manifest.digest());
}

#[tokio::test]
async fn fake_records_method_path_and_whether_authorization_was_sent() {
    let fake = FakeRegistry::start(FakeConfig::default());

    fetch(
        Method::GET,
        &format!("{}/v2/", fake.url()),
        Some("Bearer x"),
    )
    .await;
    fetch(
        Method::HEAD,
        &format!("{}/v2/a/b/manifests/v1", fake.url()),
        None,
    )
    .await;

    let expected = [
        RecordedRequest {
            method: "GET".into(),
            path: "/v2/".into(),
            authorization: true,
        },
        RecordedRequest {
            method: "HEAD".into(),
            path: "/v2/a/b/manifests/v1".into(),
            authorization: false,
        },
    ];
    assert_eq!(fake.requests(), expected);
}
