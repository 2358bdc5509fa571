//! The admin HTTP/1.1 server (hyper): a bounded number of connections, each with a
//! header-read timeout and a lifetime cap, fixed GET routes and `POST /reload`, and nothing that can
//! fail loudly: malformed requests get hyper's 400 and the connection closes; unknown
//! paths 404; other methods 405.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use super::{status, Admin};

/// Concurrent admin connections; more are closed at once (scrapers and browsers need few).
const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest an admin connection may stay open (keep-alive included).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(120);

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
/// The page has inline CSS and nothing else: no scripts, images, frames or forms.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Serves admin connections from `listener` for the life of the process.
pub(super) fn spawn(listener: TcpListener, admin: Arc<Admin>) {
    tokio::spawn(async move {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(a) => a,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
                debug!(%peer, "admin connection refused: too many open");
                continue; // dropping the stream closes it
            };
            let admin = Arc::clone(&admin);
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let admin = Arc::clone(&admin);
                    // Only the method, path and credentials matter; the request (and its
                    // body) is dropped.
                    let (method, path) = (req.method().clone(), req.uri().path().to_string());
                    let authorized = admin.authorized(
                        req.headers()
                            .get(hyper::header::AUTHORIZATION)
                            .and_then(|v| v.to_str().ok()),
                    );
                    drop(req);
                    async move { Ok::<_, Infallible>(handle(&admin, &method, &path, authorized).await) }
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(64 * 1024);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                match tokio::time::timeout(CONNECTION_LIFETIME, conn).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(%peer, error = %e, "admin connection ended with an error"),
                    Err(_) => debug!(%peer, "admin connection closed after its lifetime"),
                }
                drop(permit);
            });
        }
    });
}

/// 405 with the `Allow` header naming the methods the path takes.
fn method_not_allowed(allow: &'static str, text: &'static str) -> Response<Full<Bytes>> {
    let mut r = response(StatusCode::METHOD_NOT_ALLOWED, TEXT, text);
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Answers one request. Without `authorized` (a configured `server.admin_token` that the
/// request did not present) only `/healthz` and `/readyz` answer: load balancers probe
/// them without credentials, and they tell nothing about the data.
pub async fn handle(
    admin: &Admin,
    method: &Method,
    path: &str,
    authorized: bool,
) -> Response<Full<Bytes>> {
    if !authorized && path != "/healthz" && path != "/readyz" {
        let mut r = response(
            StatusCode::UNAUTHORIZED,
            TEXT,
            "unauthorized: send the admin token (Authorization: Bearer <server.admin_token>)\n",
        );
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"dbrouter admin\""),
        );
        return r;
    }
    if path == "/reload" {
        return reload(admin, method).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed(
            "GET, HEAD",
            "method not allowed: the admin endpoints are read-only (GET)\n",
        );
    }
    match path {
        "/healthz" => response(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => match admin.readiness() {
            Ok(()) => response(StatusCode::OK, TEXT, "ready\n"),
            Err(reason) => response(
                StatusCode::SERVICE_UNAVAILABLE,
                TEXT,
                format!("not ready: {reason}\n"),
            ),
        },
        "/metrics" => response(StatusCode::OK, PROMETHEUS, admin.metrics_text().await),
        "/" | "/status" => {
            let page = status::render_html(&admin.status(true).await);
            let mut r = response(StatusCode::OK, HTML, page);
            r.headers_mut()
                .insert("content-security-policy", HeaderValue::from_static(CSP));
            r
        }
        "/status.json" => match serde_json::to_vec_pretty(&admin.status(true).await) {
            Ok(body) => response(StatusCode::OK, JSON, body),
            Err(e) => response(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("cannot encode the status: {e}\n"),
            ),
        },
        _ => response(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found; try /, /status.json, /metrics, /healthz, /readyz or POST /reload\n",
        ),
    }
}

/// `POST /reload`: re-reads the config file and answers with the outcome as JSON: 200
/// applied, 422 refused (the file failed validation; nothing changed), 503 before the
/// router serves.
async fn reload(admin: &Admin, method: &Method) -> Response<Full<Bytes>> {
    if method != Method::POST {
        return method_not_allowed(
            "POST",
            "method not allowed: POST /reload re-reads the config file\n",
        );
    }
    let Some(outcome) = admin.reloads.run("admin").await else {
        return response(
            StatusCode::SERVICE_UNAVAILABLE,
            TEXT,
            "not serving yet: the config can be reloaded once the router serves\n",
        );
    };
    let status = if outcome.ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    match serde_json::to_vec_pretty(&outcome) {
        Ok(body) => response(status, JSON, body),
        Err(e) => response(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("cannot encode the outcome: {e}\n"),
        ),
    }
}
