//! Plumbing for the blocking helpers: a private tokio runtime and a plain-HTTP client.

use std::future::Future;

/// Runs `future` to completion on a fresh runtime in its own thread, so that blocking helpers
/// also work when called from inside an async test. A panic inside is passed on unchanged.
pub fn block_on<T: Send>(future: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a tokio runtime for a test helper");
            runtime.block_on(future)
        });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An HTTP client for talking to the loopback servers of a test: no proxy, short timeouts.
pub fn client() -> reqwest::Client {
    // reqwest is built without a bundled crypto provider; install ours once per process.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("build an HTTP client")
}
