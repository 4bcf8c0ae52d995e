//! The metrics endpoint's HTTP/1.1 server (hyper): `GET /metrics`, and
//! nothing that could hold the daemon up.
//!
//! * **Routes**: `/metrics` answers the latest snapshot in the format the
//!   `Accept` header asks for ([`Format::negotiate`]); `/` a line pointing
//!   there; any other path 404; a method other than GET or HEAD 405.
//! * **One request per connection** (no keep-alive): no idle connections
//!   to time out, and a request body is never read (a GET has none; any
//!   other method is refused before its body is looked at).
//! * **Bounded**: at most [`MAX_CONNECTIONS`] at once (`slots`: a silent
//!   connection gives its slot up to a newer one), the request head within
//!   [`HEADER_TIMEOUT`] and at most 8 KiB, every connection closed after
//!   [`CONNECTION_LIFETIME`] whatever it is doing.
//! * **No authentication**: whoever reaches the port can scrape; it
//!   listens on loopback unless configured otherwise (`config::metrics`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, warn};
use tsod_proto::observe::StatusSnapshot;

use super::error::MetricsError;
use super::render::{Format, render_as};
use super::slots::{Admission, Slots};

/// What the daemon hands the endpoint: the latest status snapshot (`None`
/// until the first), replaced about once a second.
pub type Snapshots = watch::Receiver<Option<Arc<StatusSnapshot>>>;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;

/// A connection that has not sent a complete request head this long after
/// it opened is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Every connection is closed this long after it opened (a scrape takes
/// milliseconds): a client that never reads its answer cannot hold a slot.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);

/// Longest request head read (hyper's smallest buffer).
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header lines in a request.
const MAX_HEADERS: usize = 32;

const INDEX: &str = "tsod: the metrics are at /metrics\n";

/// Listens on `listen`. Call it from within a Tokio runtime (the daemon's
/// `serve` is one).
pub fn bind(listen: SocketAddr) -> Result<TcpListener, MetricsError> {
    let bind_error = |source| MetricsError::Bind { listen, source };
    let listener = std::net::TcpListener::bind(listen).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    TcpListener::from_std(listener).map_err(bind_error)
}

/// Serves the metrics of the latest snapshot in `snapshots` on `listener`,
/// for ever. A scrape only clones the snapshot's `Arc` out of the watch
/// (the lock is held for that copy alone) and renders without any lock, so
/// it never waits for, or makes wait, the daemon's loop.
pub async fn serve(listener: TcpListener, snapshots: Snapshots) {
    let slots = Arc::new(Mutex::new(Slots::new(MAX_CONNECTIONS)));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, typically: wait, don't spin.
                warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admission = slots.lock().unwrap_or_else(PoisonError::into_inner).admit();
        match admission {
            Some(admission) => {
                tokio::spawn(connection(stream, snapshots.clone(), admission, Arc::clone(&slots)));
            }
            None => debug!("metrics endpoint: every connection is busy with a request; closing a new one"),
        }
    }
}

/// Releases a connection's slot when the connection ends, however it ends.
struct Release {
    slots: Arc<Mutex<Slots>>,
    id: u64,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner).release(self.id);
    }
}

/// One connection: one request, bounded in time.
async fn connection(stream: TcpStream, snapshots: Snapshots, admission: Admission, slots: Arc<Mutex<Slots>>) {
    let _release = Release { slots, id: admission.id };
    let asked = Arc::clone(&admission.asked);
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        asked.store(true, Ordering::Release);
        let snapshot = snapshots.borrow().clone();
        std::future::ready(Ok::<_, Infallible>(respond(&request, snapshot.as_deref())))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        ended = connection => {
            if let Err(e) = ended {
                debug!(error = %e, "metrics endpoint: connection ended with an error");
            }
        }
        () = admission.evict.notified() => debug!("metrics endpoint: closed a silent connection to make room"),
        () = tokio::time::sleep(CONNECTION_LIFETIME) => debug!("metrics endpoint: closed a connection open too long"),
    }
}

/// The answer to `request` from `snapshot`.
fn respond<B>(request: &Request<B>, snapshot: Option<&StatusSnapshot>) -> Response<Full<Bytes>> {
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        "/metrics" | "/" if !readable => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        "/metrics" => {
            let accept = request.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            match render_as(snapshot, format) {
                Ok(body) => {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
                    response
                }
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: cannot render the metrics");
                    text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render the metrics; see the daemon's log\n")
                }
            }
        }
        "/" => text(StatusCode::OK, INDEX),
        _ => text(StatusCode::NOT_FOUND, "not found; the metrics are at /metrics\n"),
    }
}

/// A plain-text response.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, path: &str, accept: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(accept) = accept {
            builder = builder.header(hyper::header::ACCEPT, accept);
        }
        builder.body(()).unwrap()
    }

    fn content_type(response: &Response<Full<Bytes>>) -> &str {
        response.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap()
    }

    #[test]
    fn routes_and_methods() {
        let ok = respond(&request(Method::GET, "/metrics", None), None);
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(content_type(&ok), "text/plain; version=0.0.4; charset=utf-8");
        let om = respond(&request(Method::GET, "/metrics?x=1", Some("application/openmetrics-text")), None);
        assert_eq!(om.status(), StatusCode::OK);
        assert_eq!(content_type(&om), "application/openmetrics-text; version=1.0.0; charset=utf-8");
        assert_eq!(respond(&request(Method::HEAD, "/metrics", None), None).status(), StatusCode::OK);
        assert_eq!(respond(&request(Method::GET, "/", None), None).status(), StatusCode::OK);
        for path in ["/metrics/", "/status", "/../metrics", "/favicon.ico"] {
            assert_eq!(respond(&request(Method::GET, path, None), None).status(), StatusCode::NOT_FOUND, "{path}");
        }
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let refused = respond(&request(method.clone(), "/metrics", None), None);
            assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(refused.headers().get(ALLOW).unwrap(), "GET, HEAD");
        }
    }
}
