//! The hub: which connections this instance holds for each stream (each user's own, and
//! each project's), and fan-out to them.
//!
//! Delivery never waits: each connection has a bounded queue, filled with `try_send`; a
//! connection whose queue is full is told to close with 4008 (it resumes with `since`).
//! The map is only touched to add, remove or read senders; no lock is held across an
//! await.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::protocol::{CloseKind, CloseReason, ServerMessage};
use crate::domain::{StreamKey, StreamUpdate};

/// What a connection's queue carries.
#[derive(Debug, Clone)]
pub enum Signal {
    /// New events of a stream (inline, or only its latest seq).
    Events(Arc<StreamUpdate>),
    /// Who came online or went offline in a project.
    Presence(Uuid, Arc<ServerMessage>),
}

/// The hub's handle on one connection.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub id: Uuid,
    signals: mpsc::Sender<Signal>,
    // Boxed: a channel allocates room for 32 messages up front, per socket.
    close: mpsc::Sender<Box<CloseReason>>,
}

impl ConnHandle {
    /// Asks the connection to close; returns false when it was already asked.
    pub fn close(&self, reason: CloseReason) -> bool {
        self.close.try_send(Box::new(reason)).is_ok()
    }
}

/// What the connection task keeps: its receivers.
pub struct ConnInbox {
    pub signals: mpsc::Receiver<Signal>,
    pub close: mpsc::Receiver<Box<CloseReason>>,
}

#[derive(Debug, Default)]
struct StreamEntry {
    conns: Vec<ConnHandle>,
    /// The highest seq this instance has been told about for the stream.
    known_seq: i64,
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
            Some(changes) => {
                std::mem::take(&mut *changes.lock().unwrap_or_else(|e| e.into_inner()))
            }
            None => std::collections::HashMap::new(),
        }
    }

    /// Puts back a change that could not be written (unless a newer one came meanwhile).
    pub fn restore_presence_change(&self, user_id: Uuid, devices: usize) {
        if let Some(changes) = &self.presence_changes {
            changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(user_id)
                .or_insert(devices);
        }
    }

    fn presence_changed(&self, user_id: Uuid, devices: usize) {
        if let Some(changes) = &self.presence_changes {
            changes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(user_id, devices);
        }
    }

    /// How many sockets the user has open here.
    pub fn devices(&self, user_id: Uuid) -> usize {
        self.users
            .get(&user_id)
            .map_or(0, |entry| entry.conns.len())
    }

    /// Hands a presence message of a project to the connections that receive its stream.
    pub fn deliver_presence(&self, project_id: Uuid, message: &Arc<ServerMessage>) {
        let Some(entry) = self.projects.get(&project_id) else {
            return;
        };
        for conn in &entry.conns {
            if let Err(mpsc::error::TrySendError::Full(_)) = conn
                .signals
                .try_send(Signal::Presence(project_id, message.clone()))
            {
                let first = conn.close(CloseReason::new(
                    CloseKind::SlowConsumer,
                    "Too many undelivered messages; reconnect with since",
                ));
                if first {
                    metrics::counter!(crate::metrics::WS_SLOW_CONSUMER_CLOSES).increment(1);
                }
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
        let handle = ConnHandle {
            id: Uuid::new_v4(),
            signals: signals_tx,
            close: close_tx,
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
        Ok((handle, ConnInbox { signals, close }))
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

    /// Adds a connection to the receivers of a project's stream; returns the latest seq
    /// this instance knows of the project (0 when none).
    pub fn subscribe(&self, project_id: Uuid, conn: &ConnHandle) -> i64 {
        let mut entry = self.projects.entry(project_id).or_default();
        if !entry.conns.iter().any(|c| c.id == conn.id) {
            entry.conns.push(conn.clone());
            metrics::gauge!(crate::metrics::PROJECT_SUBSCRIPTIONS).increment(1.0);
        }
        entry.known_seq
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
        let map = match message.stream {
            StreamKey::User(_) => &self.users,
            StreamKey::Project(_) => &self.projects,
        };
        let Some(mut entry) = map.get_mut(&message.stream.id()) else {
            return;
        };
        entry.known_seq = entry.known_seq.max(message.last_seq);
        if message.stream.project().is_some() {
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
            match conn.signals.try_send(Signal::Events(message.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let first = conn.close(CloseReason::new(
                        CloseKind::SlowConsumer,
                        "Too many undelivered events; reconnect with since",
                    ));
                    if first {
                        tracing::info!(stream = %message.stream, connection_id = %conn.id, "closing a slow consumer");
                        metrics::counter!(crate::metrics::WS_SLOW_CONSUMER_CLOSES).increment(1);
                    }
                }
                // The connection is going away; its task unregisters it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Whether the user has a socket open on this instance.
    pub fn is_connected(&self, user_id: Uuid) -> bool {
        self.users.contains_key(&user_id)
    }

    /// The streams with connections here, and the latest seq the hub knows for each.
    pub fn connected_streams(&self) -> Vec<(StreamKey, i64)> {
        let users = self
            .users
            .iter()
            .map(|entry| (StreamKey::User(*entry.key()), entry.known_seq));
        let projects = self
            .projects
            .iter()
            .map(|entry| (StreamKey::Project(*entry.key()), entry.known_seq));
        users.chain(projects).collect()
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
