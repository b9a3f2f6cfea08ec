//! The hub: which connections this instance holds for each stream (each user's own, and
//! each project's), and fan-out to them.
//!
//! Delivery never waits: each connection has a bounded queue, filled with `try_send`; a
//! connection whose queue is full is told to close with 4008 (it resumes with `since`).
//! The map is only touched to add, remove or read senders; no lock is held across an
//! await.
//!
//! Presence messages do not wake a connection: they wait in its mailbox and go out ahead
//! of its next frame. Only a mailbox that waited [`Hub::post_waiting_presence`]'s `hold`
//! (the socket had nothing else to send) gets the connection woken for it. Under load most
//! sockets have an event to send within the second, so presence costs them no wake-up.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::protocol::{text_frame, CloseKind, CloseReason};
use crate::domain::{EventKind, StreamKey, StreamUpdate};

/// What a connection's queue carries.
#[derive(Debug, Clone)]
pub enum Signal {
    /// New events of a stream (inline, or only its latest seq).
    Events(Arc<Outgoing>),
    /// Presence messages have waited in the connection's mailbox for a while: send them.
    PresenceWaiting,
}

/// An update on its way to this instance's connections: each of its events is serialised
/// once, by the first connection that sends it, for all of them (the frame is the same
/// for every receiver; with 50 receivers the JSON work is a fiftieth).
#[derive(Debug)]
pub struct Outgoing {
    pub update: Arc<StreamUpdate>,
    frames: OnceLock<Vec<Utf8Bytes>>,
}

impl Outgoing {
    pub fn new(update: Arc<StreamUpdate>) -> Self {
        Self {
            update,
            frames: OnceLock::new(),
        }
    }

    /// The text frame of each event, in the update's order.
    pub fn frames(&self) -> &[Utf8Bytes] {
        self.frames
            .get_or_init(|| self.update.events.iter().map(text_frame).collect())
    }
}

/// The hub's handle on one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: Uuid,
    signals: mpsc::Sender<Signal>,
    // Boxed: a channel allocates room for 32 messages up front, per socket.
    close: mpsc::Sender<Box<CloseReason>>,
    mailbox: Arc<Mutex<Mailbox>>,
}

/// What the connection task keeps: its receivers.
pub struct ConnInbox {
    pub signals: mpsc::Receiver<Signal>,
    pub close: mpsc::Receiver<Box<CloseReason>>,
    mailbox: Arc<Mutex<Mailbox>>,
}

impl ConnInbox {
    /// The presence messages waiting for this connection, oldest first (each with its
    /// project).
    pub fn take_presence(&self) -> Vec<(Uuid, Utf8Bytes)> {
        let mut mailbox = lock(&self.mailbox);
        std::mem::take(&mut mailbox.mail)
    }
}

/// A connection's presence messages that have not been sent yet.
#[derive(Debug, Default)]
struct Mailbox {
    mail: Vec<(Uuid, Utf8Bytes)>,
    /// How many times the mailbox went from empty to not: tells the filling the postman
    /// noted from a later one.
    fillings: u64,
}

/// What depositing a message in a mailbox did.
enum Deposit {
    /// The mailbox was empty: this is its `fillings`-th filling.
    Filled(u64),
    Added,
    /// Added, and the mailbox is now half full: time to wake the connection.
    HalfFull,
    /// The mailbox holds as many messages as the connection may have waiting.
    Full,
}

impl ConnHandle {
    /// Asks the connection to close; returns false when it was already asked.
    pub fn close(&self, reason: CloseReason) -> bool {
        self.close.try_send(Box::new(reason)).is_ok()
    }

    /// Tells a connection that does not keep up to close (4008); counted once.
    fn close_slow(&self, message: &str) {
        if self.close(CloseReason::new(CloseKind::SlowConsumer, message)) {
            tracing::info!(connection_id = %self.id, "closing a slow consumer");
            metrics::counter!(crate::metrics::WS_SLOW_CONSUMER_CLOSES).increment(1);
        }
    }

    /// Puts a presence message in the mailbox, unless it already holds `capacity`.
    fn deposit(&self, project_id: Uuid, frame: &Utf8Bytes, capacity: usize) -> Deposit {
        let mut mailbox = lock(&self.mailbox);
        if mailbox.mail.len() >= capacity {
            return Deposit::Full;
        }
        mailbox.mail.push((project_id, frame.clone()));
        match mailbox.mail.len() {
            1 => {
                mailbox.fillings += 1;
                Deposit::Filled(mailbox.fillings)
            }
            len if len == capacity.div_ceil(2) => Deposit::HalfFull,
            _ => Deposit::Added,
        }
    }

    /// Wakes the connection to send the presence messages in its mailbox.
    fn wake_for_presence(&self) {
        match self.signals.try_send(Signal::PresenceWaiting) {
            Ok(()) => metrics::counter!(crate::metrics::PRESENCE_WAKEUPS).increment(1),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close_slow("Too many undelivered messages; reconnect with since")
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Whether the mailbox still holds the messages of its `filling`-th filling.
    fn still_waiting(&self, filling: u64) -> bool {
        let mailbox = lock(&self.mailbox);
        mailbox.fillings == filling && !mailbox.mail.is_empty()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct StreamEntry {
    conns: Vec<ConnHandle>,
    /// The highest seq this instance has been told about for the stream.
    known_seq: i64,
    /// Since when the hub has had receivers for the stream (and so kept `known_seq`).
    watched_since: tokio::time::Instant,
}

impl Default for StreamEntry {
    fn default() -> Self {
        Self {
            conns: Vec::new(),
            known_seq: 0,
            watched_since: tokio::time::Instant::now(),
        }
    }
}

pub use crate::config::HubLimits;

pub struct Hub {
    /// Every connection, under its user.
    users: DashMap<Uuid, StreamEntry>,
    /// The connections that receive a project's stream, under the project.
    projects: DashMap<Uuid, StreamEntry>,
    slots: Arc<Semaphore>,
    unauthenticated: Arc<Unauthenticated>,
    limits: HubLimits,
    connections: AtomicUsize,
    shutting_down: AtomicBool,
    emptied: Notify,
    stagger: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Users whose number of sockets here changed since the last
    /// [`Hub::take_presence_changes`], with that number now; kept only while other
    /// instances need to know ([`Hub::track_presence`]).
    presence_changes: Option<Mutex<std::collections::HashMap<Uuid, usize>>>,
    /// Moves whenever the presence this node announces may have changed here: a socket
    /// opened or closed, or a watched project's membership changed (or an update came
    /// that does not say what it holds). Unmoved, and with the other instances' marks
    /// unmoved, the presence pass has nothing to read.
    presence_generation: AtomicU64,
    /// Mailboxes that were empty when presence was put in them, in that order: when each
    /// was filled, and which filling it was.
    waiting_presence: Mutex<VecDeque<(tokio::time::Instant, u64, ConnHandle)>>,
}

/// A connection slot under the global limit; released when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// Admission of sockets that have not authenticated yet: at most so many in all and per
/// client address, so that tokenless sockets can neither fill the instance nor be held
/// by one address.
#[derive(Debug)]
pub struct Unauthenticated {
    per_ip: DashMap<IpAddr, usize>,
    total: AtomicUsize,
    limits: HubLimits,
}

/// Why a tokenless socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crowded {
    /// This address has too many sockets waiting to authenticate.
    Address,
    /// The instance has too many sockets waiting to authenticate.
    Instance,
}

/// One unauthenticated socket's place; given back when dropped (once it authenticated,
/// or gave up).
#[derive(Debug)]
pub struct UnauthenticatedSlot {
    admission: Arc<Unauthenticated>,
    ip: IpAddr,
}

impl Unauthenticated {
    pub fn new(limits: HubLimits) -> Self {
        Self {
            per_ip: DashMap::new(),
            total: AtomicUsize::new(0),
            limits,
        }
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<UnauthenticatedSlot, Crowded> {
        let total = self.total.fetch_add(1, Ordering::AcqRel);
        if total >= self.limits.unauthenticated {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Crowded::Instance);
        }
        let mut count = self.per_ip.entry(ip).or_insert(0);
        if *count >= self.limits.unauthenticated_per_ip {
            drop(count);
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(Crowded::Address);
        }
        *count += 1;
        Ok(UnauthenticatedSlot {
            admission: self.clone(),
            ip,
        })
    }
}

impl Drop for UnauthenticatedSlot {
    fn drop(&mut self) {
        self.admission.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(mut count) = self.admission.per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
        }
        self.admission
            .per_ip
            .remove_if(&self.ip, |_, count| *count == 0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    TooManyForUser,
    ShuttingDown,
}

impl Hub {
    pub fn new(limits: HubLimits) -> Self {
        Self {
            users: DashMap::new(),
            projects: DashMap::new(),
            slots: Arc::new(Semaphore::new(limits.total)),
            unauthenticated: Arc::new(Unauthenticated::new(limits)),
            limits,
            connections: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            emptied: Notify::new(),
            stagger: Mutex::new(None),
            presence_changes: None,
            presence_generation: AtomicU64::new(0),
            waiting_presence: Mutex::new(VecDeque::new()),
        }
    }

    /// Keeps the changes of who is connected here for [`Hub::take_presence_changes`] (when
    /// several instances share the database).
    pub fn track_presence(mut self) -> Self {
        self.presence_changes = Some(Mutex::new(std::collections::HashMap::new()));
        self
    }

    /// The users whose number of sockets here changed since the last call, with that
    /// number now.
    pub fn take_presence_changes(&self) -> std::collections::HashMap<Uuid, usize> {
        match &self.presence_changes {
            Some(changes) => std::mem::take(&mut *lock(changes)),
            None => std::collections::HashMap::new(),
        }
    }

    /// Puts back a change that could not be written (unless a newer one came meanwhile).
    pub fn restore_presence_change(&self, user_id: Uuid, devices: usize) {
        if let Some(changes) = &self.presence_changes {
            lock(changes).entry(user_id).or_insert(devices);
        }
    }

    fn presence_changed(&self, user_id: Uuid, devices: usize) {
        self.presence_generation.fetch_add(1, Ordering::Relaxed);
        if let Some(changes) = &self.presence_changes {
            lock(changes).insert(user_id, devices);
        }
    }

    /// See the field: compared from one presence pass to the next.
    pub fn presence_generation(&self) -> u64 {
        self.presence_generation.load(Ordering::Relaxed)
    }

    /// Every user with a socket here, and how many.
    pub fn all_devices(&self) -> Vec<(Uuid, usize)> {
        self.users
            .iter()
            .map(|entry| (*entry.key(), entry.conns.len()))
            .filter(|&(_, devices)| devices > 0)
            .collect()
    }

    /// How many sockets the user has open here.
    pub fn devices(&self, user_id: Uuid) -> usize {
        self.users
            .get(&user_id)
            .map_or(0, |entry| entry.conns.len())
    }

    /// Puts a presence message of a project in the mailbox of every connection that
    /// receives its stream, without waking them: it goes out ahead of each one's next
    /// frame, or when [`Hub::post_waiting_presence`] finds it waited long enough.
    pub fn deliver_presence(&self, project_id: Uuid, frame: &Utf8Bytes) {
        let Some(entry) = self.projects.get(&project_id) else {
            return;
        };
        let now = tokio::time::Instant::now();
        let mut filled = Vec::new();
        // The mailbox takes as many messages as the queue takes signals: a socket in many
        // busy projects is woken when it is half full, before the postman would.
        let capacity = self.limits.queue.max(2);
        for conn in entry.conns.iter().filter(|c| !c.signals.is_closed()) {
            match conn.deposit(project_id, frame, capacity) {
                Deposit::Filled(filling) => filled.push((now, filling, conn.clone())),
                Deposit::Added => {}
                Deposit::HalfFull => conn.wake_for_presence(),
                Deposit::Full => {
                    conn.close_slow("Too many undelivered messages; reconnect with since")
                }
            }
        }
        drop(entry);
        if !filled.is_empty() {
            lock(&self.waiting_presence).extend(filled);
        }
    }

    /// Wakes the connections whose presence messages have waited `hold` in their mailbox
    /// (they had no other frame to go out with).
    pub fn post_waiting_presence(&self, hold: Duration) {
        let now = tokio::time::Instant::now();
        let due: Vec<(u64, ConnHandle)> = {
            let mut waiting = lock(&self.waiting_presence);
            // Filled in order: the ripe ones come first.
            let ripe = waiting.partition_point(|(since, _, _)| now.duration_since(*since) >= hold);
            waiting
                .drain(..ripe)
                .map(|(_, filling, conn)| (filling, conn))
                .collect()
        };
        for (filling, conn) in due {
            if conn.still_waiting(filling) {
                conn.wake_for_presence();
            }
        }
    }

    /// A place for a socket that will authenticate with its first message.
    pub fn admit_unauthenticated(&self, ip: IpAddr) -> Result<UnauthenticatedSlot, Crowded> {
        self.unauthenticated.admit(ip)
    }

    /// A slot under the global connection limit, if one is free.
    pub fn try_slot(&self) -> Option<Slot> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return None;
        }
        self.slots.clone().try_acquire_owned().ok().map(Slot)
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Adds a connection of `user_id`, unless the user is at the per-user limit.
    pub fn register(&self, user_id: Uuid) -> Result<(ConnHandle, ConnInbox), RegisterError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(RegisterError::ShuttingDown);
        }
        let (signals_tx, signals) = mpsc::channel(self.limits.queue.max(1));
        let (close_tx, close) = mpsc::channel(1);
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        let handle = ConnHandle {
            id: Uuid::new_v4(),
            signals: signals_tx,
            close: close_tx,
            mailbox: mailbox.clone(),
        };
        let mut entry = self.users.entry(user_id).or_default();
        if entry.conns.len() >= self.limits.per_user {
            return Err(RegisterError::TooManyForUser);
        }
        entry.conns.push(handle.clone());
        let devices = entry.conns.len();
        drop(entry);
        self.presence_changed(user_id, devices);
        self.connections.fetch_add(1, Ordering::Relaxed);
        metrics::gauge!(crate::metrics::WS_CONNECTIONS).increment(1.0);
        metrics::counter!(crate::metrics::WS_OPENED).increment(1);
        let inbox = ConnInbox {
            signals,
            close,
            mailbox,
        };
        Ok((handle, inbox))
    }

    pub fn unregister(&self, user_id: Uuid, conn_id: Uuid) {
        let (removed, devices) = {
            let Some(mut entry) = self.users.get_mut(&user_id) else {
                return;
            };
            let before = entry.conns.len();
            entry.conns.retain(|c| c.id != conn_id);
            (before != entry.conns.len(), entry.conns.len())
        };
        self.users
            .remove_if(&user_id, |_, entry| entry.conns.is_empty());
        if removed {
            self.presence_changed(user_id, devices);
            metrics::gauge!(crate::metrics::WS_CONNECTIONS).decrement(1.0);
            if self.connections.fetch_sub(1, Ordering::Relaxed) == 1 {
                self.emptied.notify_waiters();
            }
        }
    }

    /// Adds a connection to the receivers of a project's stream. Returns the latest seq
    /// this instance has been told of the project if it has had receivers for it since
    /// before `since`: then every commit after `since` is either at or below that seq, or
    /// still to arrive (and will reach the new receiver). `None`: the hub may have missed
    /// announcements meanwhile (the stream's end must be read from the table).
    pub fn subscribe(
        &self,
        project_id: Uuid,
        conn: &ConnHandle,
        since: tokio::time::Instant,
    ) -> Option<i64> {
        let mut entry = self.projects.entry(project_id).or_default();
        if !entry.conns.iter().any(|c| c.id == conn.id) {
            entry.conns.push(conn.clone());
            metrics::gauge!(crate::metrics::PROJECT_SUBSCRIPTIONS).increment(1.0);
        }
        (entry.watched_since < since).then_some(entry.known_seq)
    }

    /// Removes a connection from the receivers of a project's stream.
    pub fn unsubscribe(&self, project_id: Uuid, conn_id: Uuid) {
        if let Some(mut entry) = self.projects.get_mut(&project_id) {
            let before = entry.conns.len();
            entry.conns.retain(|c| c.id != conn_id);
            let removed = before - entry.conns.len();
            metrics::gauge!(crate::metrics::PROJECT_SUBSCRIPTIONS).decrement(removed as f64);
        }
        self.projects
            .remove_if(&project_id, |_, entry| entry.conns.is_empty());
    }

    /// Hands an update to every local connection that receives its stream.
    pub fn deliver(&self, message: &Arc<StreamUpdate>) {
        let Some(mut entry) = self.receivers(message.stream).get_mut(&message.stream.id()) else {
            return;
        };
        entry.known_seq = entry.known_seq.max(message.last_seq);
        let outgoing = Arc::new(Outgoing::new(message.clone()));
        if message.stream.project().is_some() {
            let membership = message.events.is_empty()
                || message.events.iter().any(|e| {
                    matches!(
                        e.kind,
                        EventKind::MemberAdded
                            | EventKind::MemberUpdated
                            | EventKind::MemberRemoved
                    )
                });
            if membership {
                self.presence_generation.fetch_add(1, Ordering::Relaxed);
            }
            // A connection that ended without unsubscribing (it always does, short of a
            // panic) is dropped here.
            let before = entry.conns.len();
            entry.conns.retain(|c| !c.signals.is_closed());
            let removed = before - entry.conns.len();
            if removed > 0 {
                metrics::gauge!(crate::metrics::PROJECT_SUBSCRIPTIONS).decrement(removed as f64);
            }
        }
        for conn in &entry.conns {
            match conn.signals.try_send(Signal::Events(outgoing.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    conn.close_slow("Too many undelivered events; reconnect with since")
                }
                // The connection is going away; its task unregisters it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// The map that holds `stream`'s receivers: users' own streams, or projects'.
    fn receivers(&self, stream: StreamKey) -> &DashMap<Uuid, StreamEntry> {
        match stream {
            StreamKey::User(_) => &self.users,
            StreamKey::Project(_) => &self.projects,
        }
    }

    /// Whether the user has a socket open on this instance.
    pub fn is_connected(&self, user_id: Uuid) -> bool {
        self.users.contains_key(&user_id)
    }

    /// Connection `conn` read the end of `stream` from the table after it began to receive
    /// the stream's announcements here. When it is the stream's only receiver here, that
    /// end becomes what the hub knows: nobody here can lack an event up to it, and what
    /// comes after still arrives as an announcement or is found missing by the catch-up.
    /// (Otherwise a stream new here would look behind to the catch-up, which would wake
    /// its socket to read nothing.) With other receivers, one of them may be missing an
    /// announcement that the catch-up must still find: the hub is left as it is.
    pub fn read_end(&self, stream: StreamKey, conn: Uuid, last_seq: i64) {
        if let Some(mut entry) = self.receivers(stream).get_mut(&stream.id()) {
            if matches!(entry.conns.as_slice(), [only] if only.id == conn) {
                entry.known_seq = entry.known_seq.max(last_seq);
            }
        }
    }

    /// The streams with connections here.
    pub fn connected_stream_keys(&self) -> Vec<StreamKey> {
        let users = self.users.iter().map(|entry| StreamKey::User(*entry.key()));
        let projects = self
            .projects
            .iter()
            .map(|entry| StreamKey::Project(*entry.key()));
        users.chain(projects).collect()
    }

    /// The latest seq the hub knows for each of `streams` that still has connections here.
    pub fn known_seqs(&self, streams: &[StreamKey]) -> HashMap<StreamKey, i64> {
        streams
            .iter()
            .filter_map(|&stream| {
                let entry = self.receivers(stream).get(&stream.id())?;
                Some((stream, entry.known_seq))
            })
            .collect()
    }

    /// The projects whose stream some connection here receives.
    pub fn watched_projects(&self) -> Vec<Uuid> {
        self.projects.iter().map(|entry| *entry.key()).collect()
    }

    /// Closes every connection with 1012, spread over `spread` so that clients do not all
    /// reconnect at the same instant; new connections are refused from now on.
    pub fn begin_shutdown(self: &Arc<Self>, spread: Duration) {
        if self.shutting_down.swap(true, Ordering::Relaxed) {
            return;
        }
        let handles: Vec<ConnHandle> = self
            .users
            .iter()
            .flat_map(|entry| entry.conns.clone())
            .collect();
        let reason = CloseReason::new(
            CloseKind::ServerRestarting,
            "The server is restarting; reconnect with since",
        );
        tracing::info!(
            connections = handles.len(),
            ?spread,
            "closing WebSockets for shutdown"
        );
        let count = handles.len().max(1) as u32;
        let step = spread / count;
        let task = tokio::spawn(async move {
            for handle in handles {
                handle.close(reason.clone());
                if !step.is_zero() {
                    tokio::time::sleep(step).await;
                }
            }
        });
        if let Ok(mut stagger) = self.stagger.lock() {
            *stagger = Some(task);
        }
    }

    /// Waits until every connection has gone, or `timeout`.
    pub async fn wait_empty(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.connection_count() > 0 {
            let notified = self.emptied.notified();
            if self.connection_count() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                tracing::warn!(
                    remaining = self.connection_count(),
                    "shutdown: connections still open after the grace period"
                );
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn hub() -> Hub {
        Hub::new(HubLimits {
            total: 10,
            per_user: 5,
            queue: 8,
            unauthenticated: 10,
            unauthenticated_per_ip: 10,
        })
    }

    /// A moment later than any taken before (the clock is monotonic, not necessarily
    /// fine-grained).
    fn later() -> tokio::time::Instant {
        std::thread::sleep(Duration::from_millis(2));
        tokio::time::Instant::now()
    }

    #[test]
    fn a_streams_end_read_by_its_only_receiver_is_what_the_hub_knows() {
        let hub = hub();
        let user = Uuid::from_u128(1);
        let own = StreamKey::User(user);
        let project = StreamKey::Project(Uuid::from_u128(7));
        let (first, _first_inbox) = hub.register(user).expect("registered");
        assert_eq!(hub.known_seqs(&[own, project]), HashMap::from([(own, 0)]));

        // The only receiver: the hub takes its read, never going back.
        hub.read_end(own, first.id, 5);
        hub.read_end(own, first.id, 3);
        assert_eq!(hub.known_seqs(&[own]), HashMap::from([(own, 5)]));
        assert_eq!(hub.subscribe(project.id(), &first, later()), None);
        hub.read_end(project, first.id, 9);
        assert_eq!(hub.known_seqs(&[project]), HashMap::from([(project, 9)]));

        // Another receiver may be missing an announcement: the hub stays as it was.
        let (second, _second_inbox) = hub.register(user).expect("registered");
        hub.read_end(own, second.id, 8);
        hub.read_end(own, first.id, 8);
        assert_eq!(hub.known_seqs(&[own]), HashMap::from([(own, 5)]));
        // Nor does a connection that does not receive the stream count.
        hub.read_end(project, second.id, 12);
        assert_eq!(hub.known_seqs(&[project]), HashMap::from([(project, 9)]));
        assert_eq!(
            hub.connected_stream_keys()
                .into_iter()
                .collect::<HashSet<_>>(),
            HashSet::from([own, project])
        );
    }

    #[test]
    fn a_subscription_trusts_the_hubs_seq_only_if_it_watched_the_stream_since_the_read() {
        let hub = hub();
        let project = Uuid::from_u128(7);
        let (first, _first_inbox) = hub.register(Uuid::from_u128(1)).expect("registered");
        let (second, _second_inbox) = hub.register(Uuid::from_u128(2)).expect("registered");
        let (third, _third_inbox) = hub.register(Uuid::from_u128(3)).expect("registered");

        // Nobody watched the project before: the hub may have missed announcements.
        let read_at = later();
        later();
        assert_eq!(hub.subscribe(project, &first, read_at), None);
        hub.deliver(&Arc::new(StreamUpdate::position(
            StreamKey::Project(project),
            4,
        )));

        // Watched since before this read: what the hub was told counts.
        let read_at = later();
        assert_eq!(hub.subscribe(project, &second, read_at), Some(4));

        // Watched again only from after the read (every receiver left in between).
        let read_at = later();
        hub.unsubscribe(project, first.id);
        hub.unsubscribe(project, second.id);
        later();
        hub.subscribe(project, &first, later());
        assert_eq!(hub.subscribe(project, &third, read_at), None);
    }

    #[tokio::test]
    async fn presence_waits_in_the_mailbox_and_wakes_only_a_socket_that_had_nothing_to_send() {
        let hub = hub();
        let project = Uuid::from_u128(7);
        let (busy, mut busy_inbox) = hub.register(Uuid::from_u128(1)).expect("registered");
        let (idle, mut idle_inbox) = hub.register(Uuid::from_u128(2)).expect("registered");
        let since = tokio::time::Instant::now();
        hub.subscribe(project, &busy, since);
        hub.subscribe(project, &idle, since);
        let frame = Utf8Bytes::from_static(r#"{"type":"presence.joined"}"#);

        hub.deliver_presence(project, &frame);
        assert!(busy_inbox.signals.try_recv().is_err(), "no wake-up");
        assert!(idle_inbox.signals.try_recv().is_err(), "no wake-up");
        // Not waited long enough: nobody is woken.
        hub.post_waiting_presence(Duration::from_secs(3600));
        assert!(idle_inbox.signals.try_recv().is_err());

        // One socket sent a frame meanwhile, and its presence went with it.
        assert_eq!(busy_inbox.take_presence(), vec![(project, frame.clone())]);
        hub.post_waiting_presence(Duration::ZERO);
        assert!(
            busy_inbox.signals.try_recv().is_err(),
            "nothing left to send"
        );
        assert!(matches!(
            idle_inbox.signals.try_recv(),
            Ok(Signal::PresenceWaiting)
        ));
        assert_eq!(idle_inbox.take_presence(), vec![(project, frame.clone())]);

        // A mailbox emptied and filled again is woken for its new filling only when that
        // one has waited.
        hub.deliver_presence(project, &frame);
        hub.post_waiting_presence(Duration::from_secs(3600));
        assert!(idle_inbox.signals.try_recv().is_err());
        hub.post_waiting_presence(Duration::ZERO);
        assert!(matches!(
            idle_inbox.signals.try_recv(),
            Ok(Signal::PresenceWaiting)
        ));
    }

    #[test]
    fn a_filling_mailbox_wakes_its_socket_at_half_and_closes_it_when_full() {
        let hub = hub();
        let project = Uuid::from_u128(7);
        let (conn, mut inbox) = hub.register(Uuid::from_u128(1)).expect("registered");
        hub.subscribe(project, &conn, tokio::time::Instant::now());
        let frame = Utf8Bytes::from_static(r#"{"type":"presence.left"}"#);
        for _ in 0..3 {
            hub.deliver_presence(project, &frame);
        }
        assert!(inbox.signals.try_recv().is_err(), "not woken yet");
        hub.deliver_presence(project, &frame);
        assert!(
            matches!(inbox.signals.try_recv(), Ok(Signal::PresenceWaiting)),
            "woken at half the queue's size"
        );
        for _ in 0..4 {
            hub.deliver_presence(project, &frame);
        }
        assert!(inbox.close.try_recv().is_err(), "the queue's size fits");
        assert!(inbox.signals.try_recv().is_err(), "woken once");
        hub.deliver_presence(project, &frame);
        let reason = inbox.close.try_recv().expect("asked to close");
        assert_eq!(reason.code(), 4008);
        assert_eq!(
            inbox.take_presence().len(),
            8,
            "nothing past the limit is kept"
        );
    }

    #[tokio::test]
    async fn an_update_is_serialised_once_for_every_receiver() {
        let hub = hub();
        let user = Uuid::from_u128(1);
        let (_a, mut a) = hub.register(user).expect("registered");
        let (_b, mut b) = hub.register(user).expect("registered");
        let event = crate::domain::Event::new(
            1,
            crate::domain::EventKind::TaskCreated,
            chrono::Utc::now(),
            serde_json::json!({"id": 1}),
        );
        let mut update = StreamUpdate::position(StreamKey::User(user), 1);
        update.events.push(event);
        hub.deliver(&Arc::new(update));
        let (Some(Signal::Events(first)), Some(Signal::Events(second))) =
            (a.signals.recv().await, b.signals.recv().await)
        else {
            panic!("both connections get the update");
        };
        assert!(Arc::ptr_eq(&first, &second), "one update for both");
        let frame = &first.frames()[0];
        assert_eq!(frame.as_str(), second.frames()[0].as_str());
        let parsed: serde_json::Value = serde_json::from_str(frame.as_str()).expect("JSON");
        assert_eq!(parsed["seq"], 1);
    }
}
