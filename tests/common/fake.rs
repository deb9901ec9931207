//! [`FakeRegistry`]: a registry that misbehaves on purpose.
//!
//! It serves `/v2/` and `/v2/<name>/manifests/<reference>` (HEAD and GET) for the manifests it
//! is given, and `/token` when it demands bearer tokens. Switches in [`FakeConfig`] make it omit
//! headers, lie about content, demand credentials or refuse service; every request is recorded.

use std::future::IntoFuture as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use serde_json::json;
use tokio::sync::oneshot;

use super::image::{self, Format, LINUX_AMD64};

/// What a [`FakeRegistry`] serves and how it misbehaves.
#[derive(Clone, Debug, Default)]
pub struct FakeConfig {
    pub manifests: Vec<FakeManifest>,
    pub auth: FakeAuth,
    /// Leave out `Docker-Content-Digest` on manifest responses.
    pub omit_digest_header: bool,
    /// Leave out `Content-Type` on manifest responses.
    pub omit_content_type: bool,
    /// Serve manifest bodies with a byte appended, so they no longer hash to their digest.
    pub corrupt_body: bool,
    /// Answer the first N authorized manifest requests with `429` and `Retry-After: 1`.
    pub rate_limited: usize,
    /// Then answer the next N authorized manifest requests with `503`.
    pub unavailable: usize,
}

/// How a [`FakeRegistry`] authenticates.
#[derive(Clone, Debug, Default)]
pub enum FakeAuth {
    /// Everyone may pull.
    #[default]
    Anonymous,
    /// The bearer-token flow; `/token` demands these Basic credentials if given.
    Bearer {
        credentials: Option<(String, String)>,
    },
    /// Plain HTTP Basic on every request.
    Basic { username: String, password: String },
}

/// One manifest a [`FakeRegistry`] serves, by tag if it has one and always by digest.
#[derive(Clone, Debug)]
pub struct FakeManifest {
    pub name: String,
    pub tag: Option<String>,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// One request a [`FakeRegistry`] received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Whether it carried an `Authorization` header (its value is not kept).
    pub authorization: bool,
}

/// A misbehaving registry on `127.0.0.1`, served from a background thread until dropped.
pub struct FakeRegistry {
    host: String,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

impl FakeConfig {
    /// A well-behaved registry serving `manifests`; set the other fields to make it misbehave.
    pub fn serving(manifests: impl IntoIterator<Item = FakeManifest>) -> Self {
        Self {
            manifests: manifests.into_iter().collect(),
            ..Self::default()
        }
    }
}

impl FakeAuth {
    /// Bearer tokens for anyone who asks.
    pub fn bearer() -> Self {
        Self::Bearer { credentials: None }
    }

    /// Bearer tokens only for `username` and `password`.
    pub fn bearer_with_login(username: &str, password: &str) -> Self {
        Self::Bearer {
            credentials: Some((username.to_owned(), password.to_owned())),
        }
    }

    pub fn basic(username: &str, password: &str) -> Self {
        Self::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}

impl FakeManifest {
    pub fn new(name: &str, tag: Option<&str>, media_type: &str, bytes: Vec<u8>) -> Self {
        let (name, tag, media_type) = (name.to_owned(), tag.map(str::to_owned), media_type.into());
        Self {
            name,
            tag,
            media_type,
            bytes,
        }
    }

    /// The same single-platform OCI manifest that `push_oci_image` pushes for `seed`.
    pub fn oci_image(name: &str, tag: &str, seed: u64) -> Self {
        let manifest = image::image(Format::Oci, seed, LINUX_AMD64).manifest;
        Self::new(name, Some(tag), manifest.media_type, manifest.bytes)
    }

    /// The same OCI index that `push_oci_index` pushes for `seed`, tagged, and its children
    /// by digest.
    pub fn oci_index(name: &str, tag: &str, seed: u64) -> Vec<Self> {
        let index = image::oci_index(seed);
        let top = Self::new(
            name,
            Some(tag),
            index.manifest.media_type,
            index.manifest.bytes,
        );
        let children = index.children.into_iter().map(|(_, child)| {
            Self::new(name, None, child.manifest.media_type, child.manifest.bytes)
        });
        std::iter::once(top).chain(children).collect()
    }

    /// `sha256:` of the bytes.
    pub fn digest(&self) -> String {
        super::sha256_digest(&self.bytes)
    }
}

impl FakeRegistry {
    pub fn start(config: FakeConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("make the listener non-blocking");
        let port = listener
            .local_addr()
            .expect("read the bound address")
            .port();
        let host = format!("127.0.0.1:{port}");
        let shared = Arc::new(Shared::new(config, &host));

        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let (shutdown, stop) = oneshot::channel();
        let server = std::thread::spawn(move || serve(listener, app, stop));
        Self {
            host,
            shared,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// The bearer token `/token` hands out, to check that it never leaks.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().expect("requests lock").clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().expect("requests lock").len()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Runs the server until `stop` fires; dropping the runtime then ends every connection.
fn serve(listener: std::net::TcpListener, app: Router, stop: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build the fake registry's runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("adopt the listener");
        tokio::select! {
            result = axum::serve(listener, app).into_future() => {
                result.expect("the fake registry stopped serving");
            }
            _ = stop => {}
        }
    });
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.record(&request);
    let (method, path, headers) = (request.method(), request.uri().path(), request.headers());
    if path == "/token" {
        return shared.token_response(headers);
    }
    if method != Method::GET && method != Method::HEAD {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "only GET and HEAD",
        );
    }
    if path == "/v2/" || path == "/v2" {
        return shared.ping(headers);
    }
    match manifest_path(path) {
        Some((name, reference)) => shared.manifest(name, reference, method, headers),
        None => error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "not served by the fake",
        ),
    }
}

/// Splits `/v2/<name>/manifests/<reference>`.
fn manifest_path(path: &str) -> Option<(&str, &str)> {
    let (name, reference) = path.strip_prefix("/v2/")?.rsplit_once("/manifests/")?;
    (!name.is_empty() && !reference.is_empty()).then_some((name, reference))
}

/// What the request handler and the [`FakeRegistry`] handle share.
struct Shared {
    config: FakeConfig,
    realm: String,
    token: String,
    requests: Mutex<Vec<RecordedRequest>>,
    manifest_requests: AtomicUsize,
}

impl Shared {
    fn new(config: FakeConfig, host: &str) -> Self {
        Self {
            config,
            realm: format!("http://{host}/token"),
            token: format!("fake-secret-token-{}", host.replace(['.', ':'], "-")),
            requests: Mutex::new(Vec::new()),
            manifest_requests: AtomicUsize::new(0),
        }
    }

    fn record(&self, request: &Request) {
        let recorded = RecordedRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            authorization: request.headers().contains_key(header::AUTHORIZATION),
        };
        self.requests.lock().expect("requests lock").push(recorded);
    }

    fn ping(&self, headers: &HeaderMap) -> Response {
        if !self.authorized(headers) {
            return self.challenge(None);
        }
        json_response(StatusCode::OK, &json!({}))
    }

    fn manifest(
        &self,
        name: &str,
        reference: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Response {
        if !self.authorized(headers) {
            return self.challenge(Some(&format!("repository:{name}:pull")));
        }
        if let Some(refusal) = self.refusal() {
            return refusal;
        }
        let Some(manifest) = self.find(name, reference) else {
            return error(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            );
        };

        self.manifest_response(manifest, method == Method::HEAD)
    }

    /// The manifest with its headers, after the switches that spoil it.
    fn manifest_response(&self, manifest: &FakeManifest, head: bool) -> Response {
        let mut body = manifest.bytes.clone();
        if self.config.corrupt_body {
            body.push(b'\n');
        }
        let mut response = Response::builder().header(header::CONTENT_LENGTH, body.len());
        if !self.config.omit_content_type {
            response = response.header(header::CONTENT_TYPE, &manifest.media_type);
        }
        if !self.config.omit_digest_header {
            response = response.header("Docker-Content-Digest", manifest.digest());
        }
        let body = if head {
            Body::empty()
        } else {
            Body::from(body)
        };
        response.body(body).expect("a valid manifest response")
    }

    fn find(&self, name: &str, reference: &str) -> Option<&FakeManifest> {
        self.config.manifests.iter().find(|manifest| {
            manifest.name == name
                && (manifest.tag.as_deref() == Some(reference) || manifest.digest() == reference)
        })
    }

    /// The `429` or `503` this request gets, if it is one of the first ones.
    fn refusal(&self) -> Option<Response> {
        let seen = self.manifest_requests.fetch_add(1, Ordering::SeqCst);
        if seen < self.config.rate_limited {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "rate limit exceeded",
            );
            response.headers_mut().insert(header::RETRY_AFTER, 1.into());
            return Some(response);
        }
        if seen < self.config.rate_limited + self.config.unavailable {
            return Some(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "try again",
            ));
        }
        None
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        match &self.config.auth {
            FakeAuth::Anonymous => true,
            FakeAuth::Bearer { .. } => given == Some(format!("Bearer {}", self.token).as_str()),
            FakeAuth::Basic { username, password } => {
                given == Some(basic_authorization(username, password).as_str())
            }
        }
    }

    /// A `401` telling the client how to authenticate.
    fn challenge(&self, scope: Option<&str>) -> Response {
        let challenge = match (&self.config.auth, scope) {
            (FakeAuth::Bearer { .. }, Some(scope)) => {
                format!(
                    r#"Bearer realm="{}",service="fake",scope="{scope}""#,
                    self.realm
                )
            }
            (FakeAuth::Bearer { .. }, None) => {
                format!(r#"Bearer realm="{}",service="fake""#, self.realm)
            }
            _ => r#"Basic realm="fake""#.to_owned(),
        };
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        let challenge = challenge.parse().expect("a valid WWW-Authenticate value");
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
        response
    }

    /// `/token`: a token for anyone, or only for the configured Basic credentials.
    fn token_response(&self, headers: &HeaderMap) -> Response {
        let FakeAuth::Bearer { credentials } = &self.config.auth else {
            return error(
                StatusCode::NOT_FOUND,
                "UNSUPPORTED",
                "this fake hands out no tokens",
            );
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        let allowed = credentials.as_ref().is_none_or(|(username, password)| {
            given == Some(basic_authorization(username, password).as_str())
        });
        if !allowed {
            let mut response = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "bad credentials");
            let challenge = r#"Basic realm="fake""#.parse().expect("a valid header value");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
            return response;
        }
        json_response(StatusCode::OK, &json!({ "token": self.token }))
    }
}

fn basic_authorization(username: &str, password: &str) -> String {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {encoded}")
}

/// A distribution-style error envelope.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        &json!({ "errors": [{ "code": code, "message": message }] }),
    )
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::to_vec(body).expect("serialize JSON"),
        ))
        .expect("a valid JSON response")
}
