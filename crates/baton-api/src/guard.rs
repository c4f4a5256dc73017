//! What every request passes before a handler sees it, in this order:
//!
//! 1. **Host**: it must name the loopback (`localhost`, `127.0.0.1` or `[::1]`, any port),
//!    or the request gets 403. A web page that rebinds its own DNS name to 127.0.0.1 sends
//!    its own name here, so this stops DNS rebinding.
//! 2. **Origin**: a request from a web page (an `Origin` header) gets 403 unless its origin
//!    is listed in `[api] allowed_origins`; listed origins get CORS headers, preflights
//!    (`OPTIONS` with `Access-Control-Request-Method`) included.
//! 3. **Rate limit**: a token bucket per client, the peer's IP address and the token it
//!    presented (every wrong or missing token of one address shares one bucket; the port
//!    is left out, as each connection of a program gets a new one); over it, 429 with
//!    `Retry-After` in seconds.
//! 4. **Bearer token**, compared in constant time: 401 without the right one.
//!
//! Every request, refused or not, leaves a row in the audit log ([`crate::audit`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::audit::{AuditBody, AuditNote, Pending};
use crate::{error, AppState};

/// A client as the rate limit tells them apart: its address, and the fingerprint of its
/// token when that token is the right one.
type ClientKey = (IpAddr, Option<u64>);

/// The per-client token buckets.
pub(crate) struct Limiter {
    buckets: DefaultKeyedRateLimiter<ClientKey>,
    per_minute: NonZeroU32,
    burst: NonZeroU32,
}

impl Limiter {
    /// Buckets refilled at `per_minute`, holding `burst` at most.
    pub(crate) fn new(per_minute: NonZeroU32, burst: NonZeroU32) -> Self {
        Self {
            buckets: DefaultKeyedRateLimiter::keyed(
                Quota::per_minute(per_minute).allow_burst(burst),
            ),
            per_minute,
            burst,
        }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is available.
    fn take(&self, key: &ClientKey) -> Result<(), Duration> {
        self.buckets
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.buckets.clock().now()))
    }

    /// Forgets the buckets of clients that are full again (called now and then, so
    /// the map does not grow with every address ever seen).
    pub(crate) fn forget_idle(&self) {
        self.buckets.retain_recent();
        self.buckets.shrink_to_fit();
    }
}

/// Whether a `Host` header names the loopback: `localhost` (any case), `127.0.0.1` or an
/// IPv6 loopback in brackets (`[::1]`), each with or without a port.
pub(crate) fn host_is_loopback(host: &str) -> bool {
    let (name_ok, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((addr, after)) => (
                addr.parse::<Ipv6Addr>().is_ok_and(|a| a.is_loopback()),
                after,
            ),
            None => return false,
        },
        None => {
            let (name, after) = host.find(':').map_or((host, ""), |i| host.split_at(i));
            (
                name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1",
                after,
            )
        }
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    name_ok && port_ok
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn refused_host(host: Option<&str>) -> Response {
    let message = match host {
        Some(host) => format!(
            "the Host header `{host}` does not name this machine's loopback: Baton's API answers only requests addressed to localhost, 127.0.0.1 or [::1] (this keeps web pages that rebind their DNS name from reaching it). Call it as http://127.0.0.1:PORT/v1"
        ),
        None => "the request has no readable Host header: Baton's API answers only requests addressed to localhost, 127.0.0.1 or [::1]. Call it as http://127.0.0.1:PORT/v1".to_owned(),
    };
    error(StatusCode::FORBIDDEN, "permission_error", message)
}

fn refused_origin(origin: &HeaderValue) -> Response {
    let origin = String::from_utf8_lossy(origin.as_bytes());
    error(
        StatusCode::FORBIDDEN,
        "permission_error",
        format!(
            "requests from web pages are refused, and this one came from `{origin}`. If you trust that page, add it under [api] in the config: allowed_origins = [\"{origin}\"] (`baton config path` shows the file), then restart `baton serve`"
        ),
    )
}

fn too_many(limiter: &Limiter, wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_error",
        format!(
            "too many requests from this client: at most {} a minute, {} at once. Retry after {secs} s (the Retry-After header); if this client needs more, raise requests_per_minute or burst under [api] in the config and restart `baton serve`",
            limiter.per_minute, limiter.burst
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// The answer to a CORS preflight from an allowed origin.
fn preflight(request_headers: &HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    let asked = request_headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("authorization, content-type"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(600u32));
    // Chrome's Private Network Access asks before a page reaches the loopback.
    if request_headers.contains_key("access-control-request-private-network") {
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// Adds the CORS headers of an allowed `origin` to a response.
fn allow_origin(response: &mut Response, origin: HeaderValue) {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.append(header::VARY, HeaderValue::from_static("origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
}

/// The middleware: checks a request (see the module's doc), runs the handler, and attaches
/// the audit row to the answer's body.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // The audit writer commits only while no request is being handled.
    let handling = state.audit.handling().await;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let note = Arc::new(AuditNote::default());
    let mut pending = Pending {
        sink: state.audit.clone(),
        started,
        at: chrono::Utc::now(),
        client: peer.map_or_else(|| "unknown".to_owned(), |p| p.to_string()),
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        status: 0,
        outcome: None,
        note: note.clone(),
    };
    let (mut response, outcome, origin) = check(&state, peer, request, note, next).await;
    drop(handling);
    if let Some(origin) = origin {
        allow_origin(&mut response, origin);
    }
    pending.status = response.status().as_u16();
    pending.outcome = outcome;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(AuditBody::new(body, pending)))
}

/// The checks and the handler: the answer, the refusal's outcome word (if refused) and the
/// allowed origin whose CORS headers the answer gets.
async fn check(
    state: &AppState,
    peer: Option<SocketAddr>,
    mut request: Request,
    note: Arc<AuditNote>,
    next: Next,
) -> (Response, Option<&'static str>, Option<HeaderValue>) {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !host.is_some_and(host_is_loopback) {
        tracing::debug!(host = ?host, "refused a request addressed to another host");
        return (refused_host(host), Some("host_refused"), None);
    }
    let origin = match headers.get(header::ORIGIN) {
        None => None,
        Some(origin) => {
            let allowed = origin.to_str().is_ok_and(|o| {
                state
                    .allowed_origins
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(o))
            });
            if !allowed {
                tracing::debug!(origin = ?origin, "refused a request from a web page");
                return (refused_origin(origin), Some("origin_refused"), None);
            }
            Some(origin.clone())
        }
    };
    let fingerprint = state.tokens.check(bearer(headers)).await;
    if let Some(limiter) = &state.limiter {
        let ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
        if let Err(wait) = limiter.take(&(ip, fingerprint)) {
            return (too_many(limiter, wait), Some("rate_limited"), origin);
        }
    }
    if origin.is_some()
        && request.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        return (preflight(headers), None, origin);
    }
    if fingerprint.is_none() {
        return (crate::denied(), Some("unauthorized"), origin);
    }
    request.extensions_mut().insert(note);
    (next.run(request).await, None, origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_pass_with_any_port() {
        for host in [
            "localhost",
            "LocalHost:8089",
            "127.0.0.1",
            "127.0.0.1:1",
            "127.0.0.1:65535",
            "[::1]",
            "[::1]:8089",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            assert!(host_is_loopback(host), "{host}");
        }
    }

    #[test]
    fn other_hosts_are_refused() {
        for host in [
            "",
            "evil.example",
            "evil.example:8089",
            "localhost.evil.example",
            "localhost.",
            "127.0.0.1.nip.io",
            "127.0.0.2",
            "127.1",
            "2130706433",
            "0.0.0.0:8089",
            "192.168.1.5:8089",
            "[::2]:8089",
            "[::1",
            "[::1]8089",
            "[::1]:",
            "localhost:",
            "localhost:65536",
            "localhost:80:80",
            "localhost:+80",
            "127.0.0.1:123456",
            "user@localhost",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(!host_is_loopback(host), "{host}");
        }
    }

    #[test]
    fn the_bearer_token_is_read_from_the_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn a_bucket_refuses_beyond_its_burst_and_says_how_long_to_wait() {
        let limiter = Limiter::new(NonZeroU32::new(60).unwrap(), NonZeroU32::new(3).unwrap());
        let a = (IpAddr::V4(Ipv4Addr::LOCALHOST), Some(1));
        let b = (IpAddr::V4(Ipv4Addr::LOCALHOST), None);
        for _ in 0..3 {
            limiter.take(&a).unwrap();
        }
        let wait = limiter.take(&a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        limiter.take(&b).expect("another client has its own bucket");
        let response = too_many(&limiter, wait);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
