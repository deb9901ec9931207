//! [`Proxy`]: a pass-through in front of a real registry that changes one behaviour on
//! purpose: it refuses cross-repository mounts, or asks for chunked uploads.

use std::future::IntoFuture as _;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::TryStreamExt as _;
use tokio::sync::oneshot;

/// How a [`Proxy`] departs from the registry behind it.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyConfig {
    /// Drop `mount` and `from` from upload requests, so every mount is refused and answered
    /// with a plain upload session, as registries that do not mount do.
    pub refuse_mounts: bool,
    /// Add `OCI-Chunk-Min-Length` to upload sessions, asking for chunked uploads.
    pub chunk_min_length: Option<usize>,
    /// Answer the referrers API (`GET /v2/<name>/referrers/<digest>`) with this OCI index, as
    /// OCI 1.1 registries do (the registry behind has no such API).
    pub referrers: Option<&'static [u8]>,
}

/// A proxy on `127.0.0.1`, served from a background thread until dropped.
pub struct Proxy {
    host: String,
    log: Arc<Mutex<Vec<String>>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    config: ProxyConfig,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// A proxy in front of the registry at `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str, config: ProxyConfig) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let host = listener.local_addr().expect("bound address").to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            upstream: upstream.to_owned(),
            config,
            client: super::http::client(),
            log: Arc::clone(&log),
        };
        let app = Router::new().fallback(forward).with_state(shared);
        let (shutdown, stop) = oneshot::channel();
        let server = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    result = axum::serve(listener, app).into_future() => {
                        result.expect("the proxy stopped serving");
                    }
                    _ = stop => {}
                }
            });
        });
        Self {
            host,
            log,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `METHOD path?query` of every request forwarded, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("proxy log").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut query = parts.uri.query().unwrap_or_default().to_owned();
    if shared.config.refuse_mounts {
        query = query
            .split('&')
            .filter(|pair| !pair.starts_with("mount=") && !pair.starts_with("from="))
            .collect::<Vec<_>>()
            .join("&");
    }
    let path = parts.uri.path();
    shared.log.lock().expect("proxy log").push(format!(
        "{} {path}?{}",
        parts.method,
        parts.uri.query().unwrap_or_default()
    ));

    if let (Some(index), true) = (shared.config.referrers, path.contains("/referrers/")) {
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/vnd.oci.image.index.v1+json")
            .body(Body::from(index))
            .expect("a response");
    }
    let url = format!("http://{}{path}?{query}", shared.upstream);
    let mut upstream = shared.client.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(body.into_data_stream().map_err(std::io::Error::other));
    let answer = match upstream.body(body).send().await {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .expect("a response");
        }
    };

    let mut response = Response::builder().status(answer.status().as_u16());
    let is_upload_session = answer.status() == reqwest::StatusCode::ACCEPTED;
    for (name, value) in answer.headers() {
        // Upload locations point at the registry; send the client back through the proxy.
        if name == "location" {
            let location = value
                .to_str()
                .unwrap_or_default()
                .replace(&shared.upstream, "PROXY");
            let location = location.replace("PROXY", &host_of(&parts.headers));
            response = response.header("location", location);
        } else {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    if let (true, Some(min)) = (is_upload_session, shared.config.chunk_min_length) {
        response = response.header(
            "oci-chunk-min-length",
            HeaderValue::from_str(&min.to_string()).expect("digits"),
        );
    }
    let stream = answer.bytes_stream();
    response
        .body(Body::from_stream(stream))
        .expect("a response")
}

fn host_of(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
