//! One WebSocket, from authentication to close.
//!
//! A single task owns the socket. For each stream it delivers (the user's own, and the
//! streams of their projects when the client asks for them) it keeps `last_sent`, the seq
//! of the last event the client got, and only ever sends `last_sent + 1` next: events that
//! arrive ahead of it trigger a read of the gap from the table, events at or below it are
//! dropped. That is what makes delivery gap-free and duplicate-free whatever the bus does.
//! Membership changes arrive in the user's own stream (`project.joined`, `project.left`)
//! and in the project's (`member.removed` of the user): each starts or stops a project
//! stream at an exact position.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use chrono::Utc;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep_until, Instant};
use uuid::Uuid;

use super::hub::{ConnHandle, ConnInbox, Hub, RegisterError, Signal, Slot, UnauthenticatedSlot};
use super::presence::{PresenceState, ProjectPresence};
use super::protocol::{
    text_frame, ClientMessage, CloseKind, CloseReason, ServerMessage, StreamPosition,
    MAX_CLIENT_MESSAGE,
};
use crate::auth::{Authenticated, Authenticator, Claims};
use crate::config::RealtimeSettings;
use crate::domain::{Event, EventKind, StreamKey, StreamUpdate};
use crate::store::{MembershipPosition, Store, TokenState};

/// A write that takes longer than this means the client is gone or hopelessly slow.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Events read from the table per query when catching up.
const PAGE: i64 = 500;
/// Signals handled one after the other before the frames they made are flushed.
const SIGNALS_PER_FLUSH: usize = 32;
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
    /// Who is online in each project its sockets watch.
    pub presence: Arc<ProjectPresence>,
    pub settings: Arc<RealtimeSettings>,
}

/// What the client asked for when it connected: where it stands in its own stream, and
/// whether (and from where) it receives its projects' streams.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Start {
    pub since: Option<i64>,
    pub projects: bool,
    pub positions: HashMap<StreamKey, i64>,
}

/// Runs one upgraded socket. `auth` is set when the upgrade request carried a valid
/// token; otherwise the first message must authenticate (and may add to `start`).
pub async fn serve(
    socket: WebSocket,
    ctx: SocketContext,
    auth: Option<Authenticated>,
    waiting: Option<UnauthenticatedSlot>,
    start: Start,
    slot: Slot,
) {
    let (mut sink, mut stream) = socket.split();
    let (auth, start) = match auth {
        Some(auth) => (auth, start),
        None => match authenticate_first_message(
            &mut stream,
            &ctx.authenticator,
            ctx.settings.auth_timeout,
        )
        .await
        {
            Ok((auth, from_message)) => (
                auth,
                Start {
                    since: from_message.since.or(start.since),
                    projects: from_message.projects || start.projects,
                    positions: from_message.positions,
                },
            ),
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
    let own = StreamKey::User(auth.user_id);
    let mut conn = Connection {
        sink,
        stream,
        inbox,
        ctx: &ctx,
        id: handle.id,
        handle,
        user_id: auth.user_id,
        claims: auth.claims,
        cursors: HashMap::from([(own, Cursor::default())]),
        projects: start.projects || !start.positions.is_empty(),
        behind: HashMap::new(),
        joined_presence: Vec::new(),
        unflushed: false,
        resumes: None,
        rotation_deadline: None,
    };
    let end = conn.run(start).await;
    conn.unsubscribe_all();
    let code = match &end {
        End::Close(reason) => reason.code(),
        End::PeerClosed(code) => *code,
        // The conventional code for a connection lost without a close frame.
        End::Gone => 1006,
    };
    metrics::counter!(crate::metrics::WS_DISCONNECTS, "code" => code.to_string()).increment(1);
    tracing::debug!(connection_id = %conn.id, code, last_sent = conn.last_sent(own), "websocket ending");
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

/// Waits for `{"type": "auth", "token", "since"?, "projects"?, "positions"?}`; anything
/// else, or nothing in time, is an authentication failure (4401).
async fn authenticate_first_message(
    stream: &mut Stream,
    authenticator: &Authenticator,
    timeout: Duration,
) -> Result<(Authenticated, Start), CloseReason> {
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
                    Ok(ClientMessage::Auth {
                        token,
                        since,
                        projects,
                        positions,
                    }) => authenticator
                        .authenticate(&token)
                        .await
                        .map(|auth| {
                            let start = Start {
                                since,
                                projects,
                                positions,
                            };
                            (auth, start)
                        })
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
        let text = text_frame(&message);
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text))).await;
    }
    let frame = CloseFrame {
        code: reason.code(),
        reason: Utf8Bytes::from_static(""),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}

/// How the loop ends: closed by us for a reason, or the peer is gone (a write failed or
/// timed out, or it closed), so there is no one to tell.
enum End {
    Close(CloseReason),
    Gone,
    /// The client closed the socket with this code.
    PeerClosed(u16),
}

/// Where the socket stands in one stream.
#[derive(Debug, Clone, Copy, Default)]
struct Cursor {
    /// The seq of the last event the client got.
    last_sent: i64,
    /// Events up to this seq are not the user's to replay (those of a project before they
    /// joined it); 0 on their own stream.
    floor: i64,
}

/// A change of the user's memberships, seen in their stream.
enum MembershipChange {
    Joined { project_id: Uuid, last_seq: i64 },
    Left(Uuid),
}

struct Connection<'a> {
    sink: Sink,
    stream: Stream,
    inbox: ConnInbox,
    ctx: &'a SocketContext,
    id: Uuid,
    handle: ConnHandle,
    user_id: Uuid,
    claims: Claims,
    /// Every stream the socket receives: the user's own, and (when `projects`) the
    /// streams of the projects they belong to.
    cursors: HashMap<StreamKey, Cursor>,
    /// Whether the client asked for project streams.
    projects: bool,
    /// Streams announced to be ahead of the socket while it was busy reading another
    /// (their latest seq): caught up next.
    behind: HashMap<StreamKey, i64>,
    /// Projects joined live whose presence snapshot is due once their catch-up is
    /// written; their announcements are dropped until then (the snapshot has them).
    joined_presence: Vec<Uuid>,
    /// Frames written to the socket's buffer since the last flush.
    unflushed: bool,
    /// Made on the first `resume`: most sockets never send one, and making it reads the
    /// clock's calibration (a `CPUID`, costly under virtualisation) at every connect.
    resumes: Option<ResumeBudget>,
    /// Set when a refresh replaced this socket's token: it closes with 4003 unless it
    /// moves to a new token (`auth.refresh`) by then.
    rotation_deadline: Option<Instant>,
}

impl Connection<'_> {
    fn own(&self) -> StreamKey {
        StreamKey::User(self.user_id)
    }

    fn last_sent(&self, stream: StreamKey) -> i64 {
        self.cursors.get(&stream).map_or(0, |c| c.last_sent)
    }

    /// Queues one frame, after the presence messages waiting in the mailbox; the serve
    /// loop flushes what was queued before it waits again (and [`Self::catch_up`] before
    /// each read), so the frames a turn makes leave in one write.
    async fn send(&mut self, message: Message) -> Result<(), End> {
        if !self.unflushed {
            self.write_presence().await?;
        }
        self.write_counted(message).await
    }

    /// Queues the presence messages waiting in the mailbox, of the projects the socket
    /// still receives and whose snapshot is not due (it will say all they say).
    async fn write_presence(&mut self) -> Result<(), End> {
        for (project_id, frame) in self.inbox.take_presence() {
            if self.cursors.contains_key(&StreamKey::Project(project_id))
                && !self.joined_presence.contains(&project_id)
            {
                self.write_counted(Message::Text(frame)).await?;
            }
        }
        Ok(())
    }

    /// Queues one frame, counted as sent.
    async fn write_counted(&mut self, message: Message) -> Result<(), End> {
        self.write(message).await?;
        metrics::counter!(crate::metrics::WS_MESSAGES_SENT).increment(1);
        Ok(())
    }

    /// A client that stops reading blocks a write (the socket's buffer fills up); a close
    /// request (such as 4008 from the hub when the queue overflows) wins over the blocked
    /// write, and one that does not finish within `WRITE_TIMEOUT` means the peer is gone.
    async fn write(&mut self, message: Message) -> Result<(), End> {
        tokio::select! {
            biased;
            Some(reason) = self.inbox.close.recv() => Err(End::Close(*reason)),
            written = tokio::time::timeout(WRITE_TIMEOUT, self.sink.feed(message)) => match written {
                Ok(Ok(())) => {
                    self.unflushed = true;
                    Ok(())
                }
                _ => Err(End::Gone),
            },
        }
    }

    /// Sends what was queued, if anything: before the socket waits for the database, so
    /// that no frame waits on a query.
    async fn flush_queued(&mut self) -> Result<(), End> {
        if self.unflushed {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what was queued.
    async fn flush(&mut self) -> Result<(), End> {
        tokio::select! {
            biased;
            Some(reason) = self.inbox.close.recv() => Err(End::Close(*reason)),
            flushed = tokio::time::timeout(WRITE_TIMEOUT, self.sink.flush()) => match flushed {
                Ok(Ok(())) => {
                    self.unflushed = false;
                    Ok(())
                }
                _ => Err(End::Gone),
            },
        }
    }

    async fn send_message(&mut self, message: &ServerMessage) -> Result<(), End> {
        self.send(Message::Text(text_frame(message))).await
    }

    /// Runs until the socket ends, and says how.
    async fn run(&mut self, start: Start) -> End {
        match self.start(start).await {
            Ok(()) => self.serve().await,
            Err(end) => end,
        }
    }

    /// Reads where every stream stands, sends `ready`, and replays what the client asked
    /// for.
    async fn start(&mut self, start: Start) -> Result<(), End> {
        let own = self.own();
        let read_at = Instant::now();
        let (bounds, memberships) = if self.projects {
            let positions = self
                .ctx
                .store
                .stream_positions(self.user_id)
                .await
                .map_err(|err| {
                    tracing::warn!(error = %err, "websocket: cannot read stream positions");
                    unavailable()
                })?
                .ok_or_else(account_gone)?;
            (positions.own, positions.projects)
        } else {
            (self.bounds(own).await?, Vec::new())
        };
        // Registered with the hub before this read (in `serve`).
        self.ctx.hub.read_end(own, self.id, bounds.last_seq);
        self.cursors.insert(
            own,
            Cursor {
                last_sent: bounds.last_seq,
                ..Cursor::default()
            },
        );
        let mut streams = None;
        if self.projects {
            let mut positions = vec![StreamPosition {
                stream: own,
                last_seq: bounds.last_seq,
                role: None,
                presence: None,
            }];
            let projects: Vec<Uuid> = memberships
                .iter()
                .map(|m| m.membership.project_id)
                .collect();
            // Subscribed before the presence snapshot, so a change after it is announced
            // to this socket. A commit after the positions were read was either announced
            // to the hub before the subscription (the hub's latest seq says so) or reaches
            // this socket after it; only the streams the hub may have missed meanwhile (it
            // had no receivers for them since before the read) have their ends read again.
            let mut unsure = Vec::new();
            for position in &memberships {
                let project_id = position.membership.project_id;
                match self.ctx.hub.subscribe(project_id, &self.handle, read_at) {
                    Some(known) if known > position.last_seq => {
                        self.behind.insert(StreamKey::Project(project_id), known);
                    }
                    Some(_) => {}
                    None => unsure.push(StreamKey::Project(project_id)),
                }
            }
            let presence = self.presence_of(&projects).await?;
            for (
                &MembershipPosition {
                    membership,
                    last_seq,
                },
                presence,
            ) in memberships.iter().zip(presence)
            {
                let stream = StreamKey::Project(membership.project_id);
                self.cursors.insert(
                    stream,
                    Cursor {
                        last_sent: last_seq,
                        floor: membership.joined_seq,
                    },
                );
                positions.push(StreamPosition {
                    stream,
                    last_seq,
                    role: Some(membership.role),
                    presence: Some(presence),
                });
            }
            if !unsure.is_empty() {
                let latest = self.ctx.store.latest_seqs(&unsure).await.map_err(|err| {
                    tracing::warn!(error = %err, "websocket: cannot read stream positions");
                    unavailable()
                })?;
                for (stream, last_seq) in latest {
                    self.ctx.hub.read_end(stream, self.id, last_seq);
                    if last_seq > self.last_sent(stream) {
                        self.behind.insert(stream, last_seq);
                    }
                }
            }
            streams = Some(positions);
        }
        let ready = ServerMessage::Ready {
            connection_id: self.id,
            user_id: self.user_id,
            last_seq: bounds.last_seq,
            heartbeat_s: self.ctx.settings.heartbeat.as_secs(),
            token_expires_at: self.claims.expires_at(),
            streams,
        };
        // Written as is: presence put in the mailbox since the subscriptions go after it.
        self.write_counted(Message::Text(text_frame(&ready)))
            .await?;
        if let Some(since) = start.since {
            self.resume(own, since).await?;
        }
        let mut positions: Vec<(StreamKey, i64)> = start.positions.into_iter().collect();
        positions.sort_unstable();
        for (stream, since) in positions {
            // Positions in projects the user is not in (any more) are ignored: their
            // stream says so (`project.left`).
            if stream != own && self.cursors.contains_key(&stream) {
                self.resume(stream, since).await?;
            }
        }
        self.settle_behind().await
    }

    async fn serve(&mut self) -> End {
        let settings = self.ctx.settings.clone();
        let mut heartbeat =
            tokio::time::interval_at(Instant::now() + settings.heartbeat, settings.heartbeat);
        let mut awaiting_pong = false;
        // The timers are made once and moved when their deadline does: a timer made in
        // the loop would be registered and dropped again for every frame sent.
        let (warn_at, expire_at) = token_deadlines(&self.claims);
        let warn = sleep_until(warn_at);
        let expire = sleep_until(expire_at);
        let rotation = sleep_until(expire_at);
        tokio::pin!(warn, expire, rotation);
        let mut warned = false;
        let mut rotation_armed = None;
        loop {
            // Woken for whatever reason: the presence waiting in the mailbox goes too.
            if let Err(end) = self.write_presence().await {
                return end;
            }
            if let Err(end) = self.flush_queued().await {
                return end;
            }
            if self.rotation_deadline != rotation_armed {
                rotation_armed = self.rotation_deadline;
                if let Some(deadline) = rotation_armed {
                    rotation.as_mut().reset(deadline);
                }
            }
            tokio::select! {
                biased;
                Some(reason) = self.inbox.close.recv() => return End::Close(*reason),
                () = &mut rotation, if rotation_armed.is_some() => {
                    return End::Close(revoked());
                }
                () = &mut expire => {
                    return End::Close(CloseReason::new(CloseKind::TokenExpired, "The token expired"));
                }
                () = &mut warn, if !warned => {
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
                            let (warn_at, expire_at) = token_deadlines(&self.claims);
                            warn.as_mut().reset(warn_at);
                            expire.as_mut().reset(expire_at);
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
                    // Whatever else is already queued goes out in the same write.
                    for _ in 1..SIGNALS_PER_FLUSH {
                        let Ok(signal) = self.inbox.signals.try_recv() else {
                            break;
                        };
                        if let Err(end) = self.handle_signal(signal).await {
                            return end;
                        }
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
    async fn bounds(&self, stream: StreamKey) -> Result<crate::store::EventBounds, End> {
        self.project_bounds(stream).await?.ok_or_else(account_gone)
    }

    /// A stream's bounds (`None`: no such stream any more); a failure to read them closes
    /// the socket with 1012.
    async fn project_bounds(
        &self,
        stream: StreamKey,
    ) -> Result<Option<crate::store::EventBounds>, End> {
        self.ctx.store.event_bounds(stream).await.map_err(|err| {
            tracing::warn!(error = %err, "websocket: cannot read the event stream bounds");
            unavailable()
        })
    }

    /// Replays every stored event of `stream` after `since`, or sends `reset` when some of
    /// them are no longer stored (or came before the user joined the project); live
    /// delivery continues from there.
    async fn resume(&mut self, stream: StreamKey, since: i64) -> Result<(), End> {
        let Some(floor) = self.cursors.get(&stream).map(|c| c.floor) else {
            return Ok(());
        };
        let Some(bounds) = self.stream_bounds(stream).await? else {
            return Ok(());
        };
        if bounds.can_replay_from(since) && since >= floor {
            metrics::counter!(crate::metrics::WS_RESUMES, "result" => "replayed").increment(1);
            self.set_last_sent(stream, since);
            self.catch_up(stream).await
        } else {
            metrics::counter!(crate::metrics::WS_RESUMES, "result" => "reset").increment(1);
            self.reset(stream, bounds.last_seq).await?;
            // Anything committed since the bounds were read follows as live events.
            self.catch_up(stream).await
        }
    }

    /// The bounds of a stream the socket receives; a project stream that is gone is
    /// dropped (`None`).
    async fn stream_bounds(
        &mut self,
        stream: StreamKey,
    ) -> Result<Option<crate::store::EventBounds>, End> {
        self.flush_queued().await?;
        if stream == self.own() {
            return self.bounds(stream).await.map(Some);
        }
        let bounds = self.project_bounds(stream).await?;
        if bounds.is_none() {
            self.leave(stream);
        }
        Ok(bounds)
    }

    /// Tells the client to reload `stream` through REST; it continues from `last_seq`.
    async fn reset(&mut self, stream: StreamKey, last_seq: i64) -> Result<(), End> {
        self.set_last_sent(stream, last_seq);
        let stream = (stream != self.own()).then_some(stream);
        self.send_message(&ServerMessage::Reset { stream, last_seq })
            .await
    }

    fn set_last_sent(&mut self, stream: StreamKey, seq: i64) {
        if let Some(cursor) = self.cursors.get_mut(&stream) {
            cursor.last_sent = seq;
        }
    }

    /// Sends every stored event of `stream` after its `last_sent`, page by page.
    async fn catch_up(&mut self, stream: StreamKey) -> Result<(), End> {
        loop {
            self.flush_queued().await?;
            self.absorb_queued_signals()?;
            let Some(last_sent) = self.cursors.get(&stream).map(|c| c.last_sent) else {
                return Ok(());
            };
            let page = match self.ctx.store.events_after(stream, last_sent, PAGE).await {
                Ok(page) => page,
                Err(err) => {
                    tracing::warn!(error = %err, "websocket: cannot read events");
                    return Err(unavailable());
                }
            };
            if page.first().is_some_and(|e| e.seq != last_sent + 1) {
                // Pruned under us: the client must reload.
                let Some(bounds) = self.stream_bounds(stream).await? else {
                    return Ok(());
                };
                self.reset(stream, bounds.last_seq).await?;
                continue;
            }
            let full = page.len() as i64 == PAGE;
            self.send_events(stream, &page, None).await?;
            if !full {
                return Ok(());
            }
        }
    }

    /// Sends those of `events` that come next in `stream`, in order; returns at the first
    /// gap, or where the stream ends for this user. `frames`, when given, are the events
    /// already serialised (a live update's, shared by every socket that receives it).
    async fn send_events(
        &mut self,
        stream: StreamKey,
        events: &[Event],
        frames: Option<&[Utf8Bytes]>,
    ) -> Result<(), End> {
        let own = stream == self.own();
        let mut logout_seen = false;
        let mut changes = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let Some(cursor) = self.cursors.get(&stream) else {
                break;
            };
            if event.seq <= cursor.last_sent {
                continue;
            }
            if event.seq != cursor.last_sent + 1 {
                break;
            }
            let frame = match frames.and_then(|frames| frames.get(i)) {
                Some(frame) => frame.clone(),
                None => text_frame(event),
            };
            self.send(Message::Text(frame)).await?;
            metrics::histogram!(crate::metrics::EVENT_DELIVERY)
                .record(crate::metrics::seconds_since(event.at));
            self.set_last_sent(stream, event.seq);
            if own {
                // Sessions end with a LOGOUT notification (a password change with
                // PROFILE_UPDATED).
                logout_seen |= event.kind == EventKind::NotificationCreated
                    && matches!(
                        event.data["type"].as_str(),
                        Some("LOGOUT" | "PROFILE_UPDATED")
                    );
                if let Some(change) = membership_change(event) {
                    changes.push(change);
                }
            } else if self.ends_here(event) {
                // Removed from the project, or it was deleted: nothing after this is theirs.
                self.leave(stream);
                break;
            }
        }
        if logout_seen || !changes.is_empty() {
            self.flush_queued().await?;
        }
        // A logout of this user may have ended this very session; the bus says so too, but
        // the event is durable and the bus is not.
        if logout_seen {
            self.check_session().await?;
        }
        for change in changes {
            self.apply(change).await?;
        }
        Ok(())
    }

    /// Whether a project event ends the project's stream for this user.
    fn ends_here(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::ProjectDeleted => true,
            EventKind::MemberRemoved => {
                event.data["user_id"].as_str() == Some(self.user_id.to_string().as_str())
            }
            _ => false,
        }
    }

    /// Starts or stops a project's stream as the user's own stream says they joined or
    /// left it (only for a socket that receives project streams).
    async fn apply(&mut self, change: MembershipChange) -> Result<(), End> {
        if !self.projects {
            return Ok(());
        }
        match change {
            MembershipChange::Left(project_id) => self.leave(StreamKey::Project(project_id)),
            MembershipChange::Joined {
                project_id,
                last_seq,
            } => {
                let stream = StreamKey::Project(project_id);
                if self.cursors.contains_key(&stream) {
                    return Ok(());
                }
                // The event may be old (a replay): only a membership that still holds
                // counts, and only from when it began.
                let membership = self
                    .ctx
                    .store
                    .membership(project_id, self.user_id)
                    .await
                    .map_err(|err| {
                        tracing::warn!(error = %err, "websocket: cannot read a membership");
                        unavailable()
                    })?;
                let Some(membership) = membership else {
                    return Ok(());
                };
                self.ctx
                    .hub
                    .subscribe(project_id, &self.handle, Instant::now());
                let from = last_seq.max(membership.joined_seq);
                self.cursors.insert(
                    stream,
                    Cursor {
                        last_sent: from,
                        floor: membership.joined_seq,
                    },
                );
                // Whatever the project wrote since: caught up once this batch is sent.
                self.behind.insert(stream, i64::MAX);
                // Who is online there goes out after the catch-up: the announcements
                // only say what changes, and this socket's `ready` did not have the
                // project.
                self.joined_presence.push(project_id);
            }
        }
        Ok(())
    }

    /// Stops delivering a project's stream.
    fn leave(&mut self, stream: StreamKey) {
        if let StreamKey::Project(project_id) = stream {
            if self.cursors.remove(&stream).is_some() {
                self.ctx.hub.unsubscribe(project_id, self.id);
            }
            self.behind.remove(&stream);
            self.joined_presence.retain(|p| *p != project_id);
        }
    }

    fn unsubscribe_all(&mut self) {
        let projects: Vec<StreamKey> = self
            .cursors
            .keys()
            .copied()
            .filter(|s| s.project().is_some())
            .collect();
        for stream in projects {
            self.leave(stream);
        }
    }

    /// Closes the socket if its session ended; starts the grace if its token was only
    /// replaced by a refresh.
    async fn check_session(&mut self) -> Result<(), End> {
        match self.ctx.authenticator.token_state(&self.claims).await {
            Ok(TokenState::UserGone) => Err(End::Close(revoked())),
            // Replaced by a refresh while its session goes on: the grace applies.
            Ok(TokenState::Revoked) => {
                if matches!(
                    self.ctx.authenticator.session_open(&self.claims).await,
                    Ok(true)
                ) {
                    self.token_rotated();
                    Ok(())
                } else {
                    Err(End::Close(revoked()))
                }
            }
            _ => Ok(()),
        }
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

    /// Empties the wake-up queue while reading from the table, noting which streams are
    /// ahead (read next). This keeps a socket that is replaying a long history from being
    /// taken for a slow consumer.
    fn absorb_queued_signals(&mut self) -> Result<(), End> {
        while let Ok(signal) = self.inbox.signals.try_recv() {
            match signal {
                Signal::Events(message) => {
                    self.check_token(&message.update)?;
                    self.note_behind(&message.update);
                }
                // Sent once the catch-up is: the serve loop empties the mailbox.
                Signal::PresenceWaiting => {}
            }
        }
        Ok(())
    }

    fn note_behind(&mut self, message: &StreamUpdate) {
        if self.cursors.contains_key(&message.stream) {
            let seen = self.behind.entry(message.stream).or_insert(0);
            *seen = (*seen).max(message.last_seq);
        }
    }

    /// Catches up every stream noted as ahead, until none is; then who is online in the
    /// projects joined meanwhile goes out next.
    async fn settle_behind(&mut self) -> Result<(), End> {
        while let Some(stream) = self.behind.keys().next().copied() {
            let latest = self.behind.remove(&stream).unwrap_or(0);
            if latest > self.last_sent(stream) && self.cursors.contains_key(&stream) {
                self.catch_up(stream).await?;
            }
        }
        if self.joined_presence.is_empty() {
            return Ok(());
        }
        // The announcements waiting for these projects are dropped here: they came before
        // the snapshot read next, which has them. Those that come after it go out after
        // it, and are as new or newer.
        self.write_presence().await?;
        self.flush_queued().await?;
        let joined = std::mem::take(&mut self.joined_presence);
        let snapshots = self.presence_of(&joined).await?;
        for (project_id, PresenceState { online, members }) in joined.into_iter().zip(snapshots) {
            let stream = StreamKey::Project(project_id);
            if online > 0 && self.cursors.contains_key(&stream) {
                let now = ServerMessage::PresenceJoined {
                    stream,
                    online,
                    members,
                };
                self.write_counted(Message::Text(text_frame(&now))).await?;
            }
        }
        Ok(())
    }

    /// Who is online in these projects, as this instance's sockets were last told.
    async fn presence_of(&self, projects: &[Uuid]) -> Result<Vec<PresenceState>, End> {
        let ctx = self.ctx;
        ctx.presence
            .snapshots(projects, ctx.store.as_ref(), &ctx.hub)
            .await
            .map_err(|err| {
                tracing::warn!(error = %err, "websocket: cannot read presence");
                unavailable()
            })
    }

    async fn handle_signal(&mut self, signal: Signal) -> Result<(), End> {
        let outgoing = match signal {
            Signal::Events(outgoing) => outgoing,
            // The serve loop empties the mailbox before it waits again.
            Signal::PresenceWaiting => return Ok(()),
        };
        let message = &outgoing.update;
        self.check_token(message)?;
        let stream = message.stream;
        if self.cursors.contains_key(&stream) && message.last_seq > self.last_sent(stream) {
            self.send_events(stream, &message.events, Some(outgoing.frames()))
                .await?;
            if self.cursors.contains_key(&stream) && self.last_sent(stream) < message.last_seq {
                // A gap (an announcement lost or overtaken) or a reference-only message.
                if !message.events.is_empty() {
                    metrics::counter!(crate::metrics::GAP_FILLS).increment(1);
                }
                self.catch_up(stream).await?;
            }
        }
        self.settle_behind().await
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
            ClientMessage::Resume { since, stream } => {
                let stream = stream.unwrap_or(self.own());
                if !self.cursors.contains_key(&stream) {
                    let error = ServerMessage::error(
                        "UNKNOWN_STREAM",
                        "This socket does not receive that stream",
                    );
                    self.send_message(&error).await?;
                } else if self
                    .resumes
                    .get_or_insert_with(resume_budget)
                    .check()
                    .is_ok()
                {
                    self.resume(stream, since).await?;
                    self.settle_behind().await?;
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

/// What an event of the user's own stream says of their memberships.
fn membership_change(event: &Event) -> Option<MembershipChange> {
    let project_id = || {
        event.data["project_id"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
    };
    match event.kind {
        EventKind::ProjectJoined => Some(MembershipChange::Joined {
            project_id: project_id()?,
            last_seq: event.data["last_seq"].as_i64()?,
        }),
        EventKind::ProjectLeft => Some(MembershipChange::Left(project_id()?)),
        _ => None,
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

fn account_gone() -> End {
    End::Close(CloseReason::new(
        CloseKind::AuthFailed,
        "The account no longer exists",
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
