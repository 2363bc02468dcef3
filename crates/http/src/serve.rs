//! Serving the router over TCP with the limits a server on an open network needs.
//!
//! `axum::serve` has no timeouts and no connection limit: a client that sent half its headers
//! kept its connection (and a task) forever, and any number of them were accepted. This loop
//! serves HTTP/1.1 with hyper directly:
//! - **header-read timeout**: a connection must deliver a request's complete headers within
//!   [`ServeOptions::header_read_timeout`] of starting to read them, or it is closed. The same
//!   clock bounds an idle keep-alive connection waiting for its next request;
//! - **request timeout** (installed by [`crate::router`]): reading the body and producing the
//!   answer must finish within the request timeout, or the client gets a 503 (`request_timeout`
//!   in the API's envelope) and the work is dropped; here it bounds the wait at shutdown;
//! - **connection limit**: at most [`ServeOptions::max_connections`] connections are served at
//!   once (HTTP/1.1 serves one request at a time per connection, so this bounds concurrent
//!   requests too); further clients wait in the kernel's accept queue until one closes;
//! - **client address**: each request carries its [`ClientAddr`] (the TCP peer, or, behind a
//!   trusted proxy, the last hop of `X-Forwarded-For`), which the login throttle keys on;
//! - **graceful shutdown**: on the signal, the listener closes, every connection finishes its
//!   current request, and the loop waits for them (at most one request timeout).

use crate::error::ApiError;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// The limits of [`serve`].
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// How long a client has to send a request's headers (and how long an idle keep-alive
    /// connection stays open).
    pub header_read_timeout: Duration,
    /// How long reading a request's body and answering it may take (give [`crate::router`] the
    /// same); at shutdown, how long to wait for busy connections.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Take the client address from the last `X-Forwarded-For` hop (only behind a reverse proxy
    /// that sets it; otherwise any client could pick its own address).
    pub trust_forwarded_for: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            trust_forwarded_for: false,
        }
    }
}

/// The network address of the client that sent a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    /// The address [`serve`] recorded; `0.0.0.0` when the router runs without it (then every
    /// client shares one throttle entry, which is safe, merely strict).
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientAddr>().copied().unwrap_or(ClientAddr(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

/// The client's address: the peer, or the last `X-Forwarded-For` hop when the proxy is trusted.
fn client_addr(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> ClientAddr {
    let forwarded = trust_forwarded_for
        .then(|| {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|hop| hop.trim().parse::<IpAddr>().ok())
        })
        .flatten();
    ClientAddr(forwarded.unwrap_or(peer.ip()).to_canonical())
}

/// Middleware: answers 503 when the inner service takes longer than `limit` (installed by
/// [`crate::router`], inside the header middleware so the refusal carries the usual headers).
pub(crate) async fn request_timeout(limit: Duration, req: Request, next: Next) -> Response {
    if crate::gateway::is_runtime_path(req.uri().path()) {
        return next.run(req).await;
    }
    let api = crate::headers::is_api_path(req.uri().path());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) if api => ApiError::request_timeout(limit.as_secs()).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The request did not complete within {} s. Please try again.", limit.as_secs()),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes (see the module documentation).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let limit = options.request_timeout;
    let max = options.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: not fatal.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let trust = options.trust_forwarded_for;
        let header_timeout = options.header_read_timeout;
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                let addr = client_addr(peer, req.headers(), trust);
                req.extensions_mut().insert(addr);
                router.clone().oneshot(req.map(axum::body::Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let stopping = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stopping => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it ends: having them all back means all have ended.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(limit + Duration::from_secs(1), permits.acquire_many(all)).await;
    if drained.is_err() {
        tracing::warn!("some connections were still busy when the server stopped");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_address_is_the_peer_unless_the_proxy_is_trusted() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap_or_else(|e| panic!("{e}"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap_or_else(|e| panic!("{e:?}")));
        assert_eq!(client_addr(peer, &h, false).0.to_string(), "10.0.0.1");
        assert_eq!(client_addr(peer, &h, true).0.to_string(), "198.51.100.7");
        assert_eq!(client_addr(peer, &HeaderMap::new(), true).0.to_string(), "10.0.0.1");
        let mapped: SocketAddr = "[::ffff:127.0.0.2]:1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(client_addr(mapped, &HeaderMap::new(), false).0.to_string(), "127.0.0.2");
    }
}
