//! `GET /ws`: the WebSocket upgrade. A token in the `Authorization` header is checked
//! here (a bad one is refused with 401 before any upgrade); without one, the socket must
//! authenticate with its first message. The protocol itself is in `realtime::connection`
//! and documented in `protocol/`.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use std::sync::Arc;

use super::client::ClientIp;
use super::extract::{bearer_token, QueryPairs};
use super::parse_int;
use crate::domain::Violations;
use crate::error::{Error, Result};
use crate::limits::{Limit, RateLimiter};
use crate::realtime::hub::Crowded;
use crate::realtime::{connection, SocketContext};

/// The upgrade route, with its own state: a socket gets only what it needs.
pub fn router<S>(
    sockets: SocketContext,
    limits: Arc<RateLimiter>,
    origins: Arc<AllowedOrigins>,
) -> Router<S> {
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(UpgradeState {
            sockets,
            limits,
            origins,
        })
}

#[derive(Clone)]
struct UpgradeState {
    sockets: SocketContext,
    limits: Arc<RateLimiter>,
    origins: Arc<AllowedOrigins>,
}

/// The origins whose pages may open a socket (ALLOWED_ORIGINS). CORS does not guard
/// WebSockets: a browser opens one from any page, sending that page's `Origin` and the
/// user's cookies, so the server must check the header itself.
pub struct AllowedOrigins(Option<Vec<String>>);

impl AllowedOrigins {
    /// `*` among `origins` allows any.
    pub fn new(origins: &[String]) -> Self {
        let origins: Vec<String> = origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        if origins.iter().any(|o| o == "*") {
            Self(None)
        } else {
            Self(Some(origins))
        }
    }

    /// Whether an upgrade with these headers may go on. Without `Origin` the client is no
    /// browser (browsers always send it on upgrades), and nothing is at stake. A page of
    /// this server itself (the dashboard: `Origin` names the `Host` asked for) may always
    /// connect: same-origin is what the check is there to allow.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let (Some(origins), Some(origin)) = (&self.0, headers.get(ORIGIN)) else {
            return true;
        };
        origin.to_str().is_ok_and(|origin| {
            let origin = origin.trim().to_ascii_lowercase();
            origins.contains(&origin) || same_origin(&origin, headers)
        })
    }
}

/// Whether `origin` (lowercase) is the scheme plus the `Host` header of the request.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host.trim()))
}

/// tungstenite's own cap; messages between 64 KiB and this are refused by the protocol
/// (4400) rather than by a protocol error.
const MAX_FRAME: usize = 1024 * 1024;

async fn upgrade(
    State(UpgradeState {
        sockets: ctx,
        limits,
        origins,
    }): State<UpgradeState>,
    client: ClientIp,
    headers: HeaderMap,
    query: QueryPairs,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    if !origins.allows(&headers) {
        return Err(Error::Forbidden(
            "This origin may not open a WebSocket (ALLOWED_ORIGINS)".into(),
        ));
    }
    limits.enforce(Limit::WsUpgrade, &client.key()).await?;
    let mut v = Violations::new();
    let since = query.single_or_record("since", &mut v);
    let projects = query.single_or_record("projects", &mut v);
    let since = v.check(
        "since",
        since
            .map(|s| parse_int(Some(s), 0, 0, i64::MAX))
            .transpose(),
    );
    let projects = v.check(
        "projects",
        match projects {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err("must be true or false".to_string()),
        },
    );
    let start = v.finish(|| {
        Some(connection::Start {
            since: since?,
            projects: projects?,
            positions: Default::default(),
        })
    })?;
    let auth = if headers.contains_key(AUTHORIZATION) {
        Some(
            ctx.authenticator
                .authenticate(bearer_token(&headers)?)
                .await?,
        )
    } else {
        None
    };
    // A socket without a token holds a place among the unauthenticated until its first
    // message authenticates it.
    let waiting =
        match &auth {
            Some(_) => None,
            None => Some(ctx.hub.admit_unauthenticated(client.0).map_err(
                |crowded| match crowded {
                    Crowded::Address => Error::RateLimited {
                        limit: ctx.settings.limits.unauthenticated_per_ip as u32,
                        reset: ctx.settings.auth_timeout,
                        retry_after: ctx.settings.auth_timeout,
                    },
                    Crowded::Instance => Error::Unavailable(
                        "Too many sockets waiting to authenticate; try again later".into(),
                    ),
                },
            )?),
        };
    let ws = ws.map_err(|rejection| {
        Error::BadRequest(format!("Expected a WebSocket upgrade: {rejection}"))
    })?;
    let slot = ctx
        .hub
        .try_slot()
        .ok_or_else(|| Error::Unavailable("Too many open connections; try again later".into()))?;
    Ok(ws
        // Small buffers: most sockets are idle most of the time, and every byte counts
        // at tens of thousands of sockets. The socket flushes the frames of a turn
        // together (one write); past 4 KiB they are written as they come (the buffer
        // keeps its size: up to 4 KiB and a frame for a socket that once had a burst).
        .read_buffer_size(1024)
        .write_buffer_size(4096)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| connection::serve(socket, ctx, auth, waiting, start, slot)))
}
