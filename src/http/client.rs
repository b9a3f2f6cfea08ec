//! Who is asking: the client's IP address, the origin it reached us by, and the rate
//! limits every API request passes.
//!
//! The client is the socket's peer, unless the peer is a trusted reverse proxy
//! (`TRUSTED_PROXIES`): then it is the nearest address in `X-Forwarded-For` that is not
//! one of those proxies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};
use crate::limits::{self, Limit, RateLimiter};

/// The client's address, as the middleware worked it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn key(&self) -> String {
        self.0.to_string()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no client address on the request")))
    }
}

/// The origin (with any path prefix) the client reached the API by, such as
/// `https://api.example.com`: `PUBLIC_URL` when set, else the request's `Host` with
/// `http`, or the scheme a trusted proxy put in `X-Forwarded-Proto`. Empty when the request
/// named no usable host: URLs built on it stay relative. Absolute URLs let a front-end on
/// another origin load what they point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOrigin(pub String);

impl RequestOrigin {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the middleware leaves for [`RequestOrigin`], which is worked out only by the
/// requests that need it.
#[derive(Debug, Clone)]
struct OriginHint {
    public_url: Option<Arc<str>>,
    peer_is_trusted_proxy: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let hint = parts
            .extensions
            .get::<OriginHint>()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("no origin hint on the request")))?;
        if let Some(url) = &hint.public_url {
            return Ok(Self(url.to_string()));
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(str::trim)
        };
        let scheme = match header("x-forwarded-proto") {
            Some(proto) if hint.peer_is_trusted_proxy && proto.eq_ignore_ascii_case("https") => {
                "https"
            }
            _ => "http",
        };
        let host = header("host").or_else(|| parts.uri.authority().map(|a| a.as_str()));
        // Only a plain host[:port]: anything else stays out of the URLs we hand out.
        let plain = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        };
        Ok(Self(match host {
            Some(host) if plain(host) => format!("{scheme}://{host}"),
            _ => String::new(),
        }))
    }
}

/// What the client middleware needs.
#[derive(Clone)]
pub struct ClientPolicy {
    pub limiter: Arc<RateLimiter>,
    pub trusted_proxies: Arc<[IpAddr]>,
    /// `PUBLIC_URL`, if set.
    pub public_url: Option<Arc<str>>,
}

impl ClientPolicy {
    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        // The right-most entries were added by our own proxies; the first one that is not
        // a trusted proxy is the client as far as anyone trustworthy saw it.
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        forwarded
            .iter()
            .rev()
            .filter_map(|a| a.parse::<IpAddr>().ok())
            .find(|a| !self.trusted_proxies.contains(a))
            .unwrap_or(peer)
    }
}

/// Notes the client's address, applies the per-IP budget of requests without a token,
/// and puts the tightest limit the request met into the `RateLimit-*` headers.
pub async fn client_middleware(
    State(policy): State<ClientPolicy>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(peer) = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
    else {
        return Error::Internal(anyhow::anyhow!("served without connect info")).into_response();
    };
    let client = ClientIp(policy.client_ip(peer, request.headers()));
    request.extensions_mut().insert(client);
    request.extensions_mut().insert(OriginHint {
        public_url: policy.public_url.clone(),
        peer_is_trusted_proxy: policy.trusted_proxies.contains(&peer),
    });
    let anonymous = !request.headers().contains_key(AUTHORIZATION);
    let limiter = policy.limiter.clone();
    let (mut response, tightest) = limits::scope(async move {
        if anonymous {
            if let Err(refused) = limiter.enforce(Limit::Anonymous, &client.key()).await {
                return refused.into_response();
            }
        }
        next.run(request).await
    })
    .await;
    if let Some(decision) = tightest {
        let headers = response.headers_mut();
        if !headers.contains_key(RATELIMIT_LIMIT) {
            headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.quota.count));
            headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
            headers.insert(
                RATELIMIT_RESET,
                HeaderValue::from(decision.reset.as_secs_f64().ceil() as u64),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Policy;

    fn policy(trusted: &[&str]) -> ClientPolicy {
        ClientPolicy {
            limiter: Arc::new(RateLimiter::new(Policy::Off, None).expect("limiter")),
            trusted_proxies: trusted.iter().map(|a| a.parse().expect("ip")).collect(),
            public_url: None,
        }
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("1.1.1.1, 203.0.113.7, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(policy(&[]).client_ip(peer, &headers), peer);
        assert_eq!(
            policy(&["10.0.0.1", "10.0.0.2"]).client_ip(peer, &headers),
            "203.0.113.7".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(
            policy(&["10.0.0.1"]).client_ip(peer, &HeaderMap::new()),
            peer
        );
    }
}
