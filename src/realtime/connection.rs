//! One WebSocket, from authentication to close.
//!
//! A single task owns the socket. It keeps `last_sent`, the seq of the last event the
//! client got, and only ever sends `last_sent + 1` next: events that arrive ahead of it
//! trigger a read of the gap from the table, events at or below it are dropped. That is
//! what makes delivery gap-free and duplicate-free whatever the bus does.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::Utc;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep_until, Instant};
use uuid::Uuid;

use super::hub::{ConnInbox, Hub, RegisterError, Signal, Slot, UnauthenticatedSlot};
use super::protocol::{ClientMessage, CloseKind, CloseReason, ServerMessage, MAX_CLIENT_MESSAGE};
use crate::auth::{Authenticated, Authenticator, Claims};
use crate::config::RealtimeSettings;
use crate::domain::{Event, EventKind, StreamUpdate};
use crate::store::{Store, TokenState};

/// A write that takes longer than this means the client is gone or hopelessly slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Events read from the table per query when catching up.
const PAGE: i64 = 500;
/// A `resume` replays up to the whole retained stream: a client may ask for this many at
/// once, then one per `RESUME_EVERY` (each is cheap to send and costly to answer).
const RESUME_BURST: NonZeroU32 = NonZeroU32::new(3).expect("not zero");
const RESUME_EVERY: Duration = Duration::from_secs(10);

type ResumeBudget = governor::DefaultDirectRateLimiter;

fn resume_budget() -> ResumeBudget {
    let quota = governor::Quota::with_period(RESUME_EVERY).expect("RESUME_EVERY is not zero");
    governor::RateLimiter::direct(quota.allow_burst(RESUME_BURST))
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// What a socket needs from the server, and nothing more.
#[derive(Clone)]
pub struct SocketContext {
    pub store: Arc<dyn Store>,
    pub authenticator: Arc<Authenticator>,
    pub hub: Arc<Hub>,
    pub settings: Arc<RealtimeSettings>,
}

/// Runs one upgraded socket. `auth` is set when the upgrade request carried a valid
/// token; otherwise the first message must authenticate.
pub async fn serve(
    socket: WebSocket,
    ctx: SocketContext,
    auth: Option<Authenticated>,
    waiting: Option<UnauthenticatedSlot>,
    since: Option<i64>,
    slot: Slot,
) {
    let (mut sink, mut stream) = socket.split();
    let (auth, since) = match auth {
        Some(auth) => (auth, since),
        None => match authenticate_first_message(
            &mut stream,
            &ctx.authenticator,
            ctx.settings.auth_timeout,
        )
        .await
        {
            Ok((auth, from_message)) => (auth, from_message.or(since)),
            Err(reason) => {
                drop(waiting);
                send_close(&mut sink, reason).await;
                return;
            }
        },
    };
    // Authenticated: no longer one of the waiting.
    drop(waiting);
    let (handle, inbox) = match ctx.hub.register(auth.user_id) {
        Ok(registered) => registered,
        Err(RegisterError::TooManyForUser) => {
            let limit = ctx.settings.limits.per_user;
            send_close(
                &mut sink,
                CloseReason::new(
                    CloseKind::TooManyConnections,
                    format!("This user already has {limit} open connections"),
                ),
            )
            .await;
            return;
        }
        Err(RegisterError::ShuttingDown) => {
            send_close(
                &mut sink,
                CloseReason::new(CloseKind::ServerRestarting, "The server is restarting"),
            )
            .await;
            return;
        }
    };
    let _registration = Registration {
        hub: &ctx.hub,
        user_id: auth.user_id,
        conn_id: handle.id,
    };
    let mut conn = Connection {
        sink,
        stream,
        inbox,
        ctx: &ctx,
        id: handle.id,
        user_id: auth.user_id,
        claims: auth.claims,
        last_sent: 0,
        resumes: resume_budget(),
        rotation_deadline: None,
    };
    let end = conn.run(since).await;
    let code = match &end {
        End::Close(reason) => reason.code(),
        End::PeerClosed(code) => *code,
        // The conventional code for a connection lost without a close frame.
        End::Gone => 1006,
    };
    metrics::counter!(crate::metrics::WS_DISCONNECTS, "code" => code.to_string()).increment(1);
    tracing::debug!(connection_id = %conn.id, code, last_sent = conn.last_sent, "websocket ending");
    if let End::Close(reason) = end {
        send_close(&mut conn.sink, reason).await;
    }
    drop(slot);
}

/// Removes the connection from the hub however the task ends.
struct Registration<'a> {
    hub: &'a Hub,
    user_id: Uuid,
    conn_id: Uuid,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.hub.unregister(self.user_id, self.conn_id);
    }
}

/// Waits for `{"type": "auth", "token", "since"?}`; anything else, or nothing in time,
/// is an authentication failure (4401).
async fn authenticate_first_message(
    stream: &mut Stream,
    authenticator: &Authenticator,
    timeout: Duration,
) -> Result<(Authenticated, Option<i64>), CloseReason> {
    let failed = |message: &str| CloseReason::new(CloseKind::AuthFailed, message);
    let deadline = Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let message = match next {
            Err(_) => {
                return Err(failed("No auth message arrived in time"));
            }
            Ok(None) | Ok(Some(Err(_))) => {
                return Err(CloseReason::silent(CloseKind::AuthFailed));
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Text(text) if text.len() <= MAX_CLIENT_MESSAGE => {
                return match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Auth { token, since }) => authenticator
                        .authenticate(&token)
                        .await
                        .map(|auth| (auth, since))
                        .map_err(|_| failed("The token is invalid, expired or revoked")),
                    _ => Err(failed(
                        "The first message must be {\"type\": \"auth\", \"token\": ...}",
                    )),
                };
            }
            _ => {
                return Err(failed(
                    "The first message must be {\"type\": \"auth\", \"token\": ...}",
                ))
            }
        }
    }
}

/// Sends the reason's error message (if any) and the close frame, giving up quietly on a
/// socket that is already gone.
async fn send_close(sink: &mut Sink, reason: CloseReason) {
    if let Some(message) = reason.error_message() {
        let text = json(&message);
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text))).await;
    }
    let frame = CloseFrame {
        code: reason.code(),
        reason: Utf8Bytes::from_static(""),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}

fn json(message: &impl serde::Serialize) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default())
}

/// How the loop ends: closed by us for a reason, or the peer is gone (a write failed or
/// timed out, or it closed), so there is no one to tell.
enum End {
    Close(CloseReason),
    Gone,
    /// The client closed the socket with this code.
    PeerClosed(u16),
}

struct Connection<'a> {
    sink: Sink,
    stream: Stream,
    inbox: ConnInbox,
    ctx: &'a SocketContext,
    id: Uuid,
    user_id: Uuid,
    claims: Claims,
    last_sent: i64,
    resumes: ResumeBudget,
    /// Set when a refresh replaced this socket's token: it closes with 4003 unless it
    /// moves to a new token (`auth.refresh`) by then.
    rotation_deadline: Option<Instant>,
}

impl Connection<'_> {
    /// Sends one frame. A client that stops reading blocks this; a close request (such
    /// as 4008 from the hub when the queue overflows) wins over the blocked write, and a
    /// write that does not finish within `WRITE_TIMEOUT` means the peer is gone.
    async fn send(&mut self, message: Message) -> Result<(), End> {
        tokio::select! {
                    biased;
                    Some(reason) = self.inbox.close.recv() => Err(End::Close(*reason)),
                    sent = tokio::time::timeout(WRITE_TIMEOUT, self.sink.send(message)) => match sent {
        Ok(Ok(())) => {
                            metrics::counter!(crate::metrics::WS_MESSAGES_SENT).increment(1);
                            Ok(())
                        }
                        _ => Err(End::Gone),
                    },
                }
    }

    async fn send_message(&mut self, message: &ServerMessage) -> Result<(), End> {
        self.send(Message::Text(json(message))).await
    }

    /// Runs until the socket ends, and says how.
    async fn run(&mut self, since: Option<i64>) -> End {
        let settings = self.ctx.settings.clone();
        let bounds = match self.bounds().await {
            Ok(bounds) => bounds,
            Err(end) => return end,
        };
        self.last_sent = bounds.last_seq;
        let ready = ServerMessage::Ready {
            connection_id: self.id,
            user_id: self.user_id,
            last_seq: bounds.last_seq,
            heartbeat_s: settings.heartbeat.as_secs(),
            token_expires_at: self.claims.expires_at(),
        };
        if let Err(end) = self.send_message(&ready).await {
            return end;
        }
        if let Some(since) = since {
            if let Err(end) = self.resume(since).await {
                return end;
            }
        }

        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + settings.heartbeat, settings.heartbeat);
        let mut awaiting_pong = false;
        let (mut warn_at, mut expire_at) = token_deadlines(&self.claims);
        let mut warned = false;
        loop {
            let rotation_deadline = self.rotation_deadline;
            tokio::select! {
                biased;
                Some(reason) = self.inbox.close.recv() => return End::Close(*reason),
                () = sleep_until(rotation_deadline.unwrap_or(expire_at)), if rotation_deadline.is_some() => {
                    return End::Close(revoked());
                }
                () = sleep_until(expire_at) => {
                    return End::Close(CloseReason::new(CloseKind::TokenExpired, "The token expired"));
                }
                () = sleep_until(warn_at), if !warned => {
                    warned = true;
                    let expiring = ServerMessage::AuthExpiring { token_expires_at: self.claims.expires_at() };
                    if let Err(end) = self.send_message(&expiring).await {
                        return end;
                    }
                }
                incoming = self.stream.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        // A frame the codec refused (over the size cap, not UTF-8): say so.
                        // On a dead socket this write fails at once and nothing is lost.
                        Some(Err(err)) => {
                            tracing::debug!(error = %err, "websocket: unreadable frame");
                            return bad_message("Unreadable frame (too large or not UTF-8)");
                        }
                        None => return End::Gone,
                    };
                    awaiting_pong = false;
                    match self.handle_client(message).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Refreshed) => {
                            (warn_at, expire_at) = token_deadlines(&self.claims);
                            warned = false;
                            self.rotation_deadline = None;
                        }
                        Ok(Flow::PeerClosed(code)) => return End::PeerClosed(code),
                        Err(end) => return end,
                    }
                }
                Some(signal) = self.inbox.signals.recv() => {
                    if let Err(end) = self.handle_signal(signal).await {
                        return end;
                    }
                }
                _ = heartbeat.tick() => {
                    if awaiting_pong {
                        return End::Close(CloseReason::silent(CloseKind::HeartbeatTimeout));
                    }
                    awaiting_pong = true;
                    if let Err(end) = self.send(Message::Ping(Default::default())).await {
                        return end;
                    }
                }
            }
        }
    }

    /// The user's stream bounds; a failure to read them closes the socket with 1012 (the
    /// client reconnects with `since`), a user who no longer exists with 4401.
    async fn bounds(&self) -> Result<crate::store::EventBounds, End> {
        match self.ctx.store.event_bounds(self.user_id).await {
            Ok(Some(bounds)) => Ok(bounds),
            Ok(None) => Err(End::Close(CloseReason::new(
                CloseKind::AuthFailed,
                "The account no longer exists",
            ))),
            Err(err) => {
                tracing::warn!(error = %err, "websocket: cannot read the event stream bounds");
                Err(unavailable())
            }
        }
    }

    /// Replays every stored event after `since`, or sends `reset` when some of them are
    /// no longer stored; live delivery continues from there.
    async fn resume(&mut self, since: i64) -> Result<(), End> {
        let bounds = self.bounds().await?;
        if bounds.can_replay_from(since) {
            metrics::counter!(crate::metrics::WS_RESUMES, "result" => "replayed").increment(1);
            self.last_sent = since;
            self.catch_up().await
        } else {
            metrics::counter!(crate::metrics::WS_RESUMES, "result" => "reset").increment(1);
            self.last_sent = bounds.last_seq;
            self.send_message(&ServerMessage::Reset {
                last_seq: bounds.last_seq,
            })
            .await?;
            // Anything committed since the bounds were read follows as live events.
            self.catch_up().await
        }
    }

    /// Sends every stored event after `last_sent`, page by page.
    async fn catch_up(&mut self) -> Result<(), End> {
        loop {
            self.absorb_queued_signals()?;
            let page = match self
                .ctx
                .store
                .events_after(self.user_id, self.last_sent, PAGE)
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "websocket: cannot read events");
                    return Err(unavailable());
                }
            };
            if page.first().is_some_and(|e| e.seq != self.last_sent + 1) {
                // Pruned under us: the client must reload.
                let bounds = self.bounds().await?;
                self.last_sent = bounds.last_seq;
                self.send_message(&ServerMessage::Reset {
                    last_seq: bounds.last_seq,
                })
                .await?;
                continue;
            }
            let full = page.len() as i64 == PAGE;
            self.send_events(&page).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends those of `events` that come next, in order; returns at the first gap.
    async fn send_events(&mut self, events: &[Event]) -> Result<(), End> {
        let mut logout_seen = false;
        for event in events {
            if event.seq <= self.last_sent {
                continue;
            }
            if event.seq != self.last_sent + 1 {
                break;
            }
            self.send(Message::Text(json(event))).await?;
            metrics::histogram!(crate::metrics::EVENT_DELIVERY)
                .record(crate::metrics::seconds_since(event.at));
            self.last_sent = event.seq;
            // Sessions end with a LOGOUT notification (a password change with
            // PROFILE_UPDATED).
            logout_seen |= event.kind == EventKind::NotificationCreated
                && matches!(
                    event.data["type"].as_str(),
                    Some("LOGOUT" | "PROFILE_UPDATED")
                );
        }
        // A logout of this user may have ended this very session; the bus says so too, but
        // the event is durable and the bus is not.
        if logout_seen {
            match self.ctx.authenticator.token_state(&self.claims).await {
                Ok(TokenState::UserGone) => return Err(End::Close(revoked())),
                // Replaced by a refresh while its session goes on: the grace applies.
                Ok(TokenState::Revoked) => {
                    if matches!(
                        self.ctx.authenticator.session_open(&self.claims).await,
                        Ok(true)
                    ) {
                        self.token_rotated();
                    } else {
                        return Err(End::Close(revoked()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// This socket's token was replaced by a refresh: it has `WS_REFRESH_GRACE` to move to
    /// the new one.
    fn token_rotated(&mut self) {
        if self.rotation_deadline.is_none() {
            self.rotation_deadline = Some(Instant::now() + self.ctx.settings.refresh_grace);
        }
    }

    /// What an update says of this socket's token: ended (close), or replaced (grace).
    fn check_token(&mut self, message: &StreamUpdate) -> Result<(), End> {
        if message.revoked.contains(&self.claims.jti) {
            return Err(End::Close(revoked()));
        }
        if message.rotated.contains(&self.claims.jti) {
            self.token_rotated();
        }
        Ok(())
    }

    /// Empties the wake-up queue while reading from the table: everything it announces is
    /// committed, so the read covers it. This keeps a socket that is replaying a long
    /// history from being taken for a slow consumer.
    fn absorb_queued_signals(&mut self) -> Result<(), End> {
        while let Ok(Signal::Events(message)) = self.inbox.signals.try_recv() {
            self.check_token(&message)?;
        }
        Ok(())
    }

    async fn handle_signal(&mut self, signal: Signal) -> Result<(), End> {
        let Signal::Events(message) = signal;
        self.check_token(&message)?;
        if message.last_seq <= self.last_sent {
            return Ok(());
        }
        self.send_events(&message.events).await?;
        if self.last_sent < message.last_seq {
            // A gap (an announcement lost or overtaken) or a reference-only message.
            if !message.events.is_empty() {
                metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
            }
            self.catch_up().await?;
        }
        Ok(())
    }

    async fn handle_client(&mut self, message: Message) -> Result<Flow, End> {
        let text = match message {
            Message::Text(text) => text,
            Message::Ping(_) | Message::Pong(_) => return Ok(Flow::Continue),
            Message::Close(frame) => {
                return Ok(Flow::PeerClosed(frame.map_or(1005, |f| f.code)));
            }
            Message::Binary(_) => return Err(bad_message("Binary frames are not accepted")),
        };
        if text.len() > MAX_CLIENT_MESSAGE {
            return Err(bad_message("Messages are limited to 64 KiB"));
        }
        let parsed = serde_json::from_str::<ClientMessage>(&text)
            .map_err(|e| bad_message(format!("Unrecognised message: {e}")))?;
        match parsed {
            ClientMessage::Ping => {
                self.send_message(&ServerMessage::Pong).await?;
            }
            ClientMessage::Resume { since } => {
                if self.resumes.check().is_ok() {
                    self.resume(since).await?;
                } else {
                    let error = ServerMessage::error(
                        "RATE_LIMITED",
                        "Too many resume requests; one more is allowed every 10 s",
                    );
                    self.send_message(&error).await?;
                }
            }
            ClientMessage::AuthRefresh { token } => return self.refresh(&token).await,
            ClientMessage::Auth { .. } => {
                let error = ServerMessage::error(
                    "ALREADY_AUTHENTICATED",
                    "This connection is already authenticated",
                );
                self.send_message(&error).await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Moves the socket to a new token of the same user.
    async fn refresh(&mut self, token: &str) -> Result<Flow, End> {
        match self.ctx.authenticator.authenticate(token).await {
            Ok(auth) if auth.user_id == self.user_id => {
                self.claims = auth.claims;
                let refreshed = ServerMessage::AuthRefreshed {
                    token_expires_at: self.claims.expires_at(),
                };
                self.send_message(&refreshed).await?;
                Ok(Flow::Refreshed)
            }
            Ok(_) => {
                let error =
                    ServerMessage::error("REFRESH_REJECTED", "The token belongs to another user");
                self.send_message(&error).await?;
                Ok(Flow::Continue)
            }
            Err(_) => {
                let error = ServerMessage::error(
                    "REFRESH_REJECTED",
                    "The token is invalid, expired or revoked",
                );
                self.send_message(&error).await?;
                Ok(Flow::Continue)
            }
        }
    }
}

enum Flow {
    Continue,
    Refreshed,
    /// The client closed, with this code.
    PeerClosed(u16),
}

fn bad_message(message: impl Into<String>) -> End {
    End::Close(CloseReason::new(CloseKind::BadMessage, message))
}

/// The stream cannot be read right now: close with 1012 so the client reconnects.
fn unavailable() -> End {
    End::Close(CloseReason::new(
        CloseKind::Unavailable,
        "The event stream cannot be read right now; reconnect with since",
    ))
}

fn revoked() -> CloseReason {
    CloseReason::new(CloseKind::TokenRevoked, "The token was revoked")
}

/// When to warn (`auth.expiring`: 60 s before expiry, or half-way for shorter tokens) and
/// when to close (at expiry), as instants.
fn token_deadlines(claims: &Claims) -> (Instant, Instant) {
    let now_unix = Utc::now().timestamp();
    let lifetime = (claims.exp - claims.iat).max(0) as u64;
    let lead = 60.min(lifetime / 2);
    let until_expiry = Duration::from_secs((claims.exp - now_unix).max(0) as u64);
    let now = Instant::now();
    let expire_at = now + until_expiry;
    let warn_at = expire_at
        .checked_sub(Duration::from_secs(lead))
        .unwrap_or(now)
        .max(now);
    (warn_at, expire_at)
}
