//! Real-time delivery.
//!
//! The event table is the truth: every write appends its events in its own transaction
//! (`service::commit`, the write funnel). After the commit the funnel hands them to
//! [`Realtime`] (its [`Publisher`]), which gives them to this instance's [`hub::Hub`] and
//! announces them on the [`bus`] so that other instances wake their connections too; what
//! a bus receives comes back through [`BusHandler`]. A connection that sees a gap reads it
//! from the table; a periodic check (and every bus reconnection) catches anything a bus
//! dropped. So whatever a bus loses, clients still see every event, in order, exactly once.
//!
//! Rooms: `hub` (user -> local sockets), `connection` (one socket), `protocol` (the wire),
//! `bus` (other instances). None of them knows the others' insides: the bus hands what it
//! receives to a handler, and the connection gets only what it needs ([`SocketContext`]).

pub mod bus;
pub mod connection;
pub mod hub;
pub mod presence;
pub mod protocol;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use self::bus::{BusHandler, EventBus};
pub use self::connection::SocketContext;
use self::hub::Hub;
use self::presence::ProjectPresence;
use crate::auth::Authenticator;
use crate::domain::{StreamKey, StreamUpdate};
use crate::service::Publisher;
use crate::store::{Store, StoreTx};

pub use crate::config::RealtimeSettings;

/// This instance's real-time node: the hub, the bus, and the background work that keeps
/// them honest (catch-up, pruning).
pub struct Realtime {
    sockets: SocketContext,
    bus: Arc<dyn EventBus>,
    /// This instance, as the bus and the presence table name it.
    instance: Uuid,
    /// Whether other instances share the database (any bus but the in-process one): then
    /// who is connected here is written down for them.
    cluster: bool,
    /// Wakes the catch-up at once when a bus reconnects.
    resync: Notify,
}

impl Realtime {
    pub fn new(
        bus: Arc<dyn EventBus>,
        instance: Uuid,
        settings: RealtimeSettings,
        store: Arc<dyn Store>,
        authenticator: Arc<Authenticator>,
    ) -> Self {
        let cluster = bus.name() != "memory";
        let hub = Hub::new(settings.limits);
        let hub = if cluster { hub.track_presence() } else { hub };
        Self {
            sockets: SocketContext {
                store,
                authenticator,
                hub: Arc::new(hub),
                presence: Arc::new(ProjectPresence::new(
                    settings.presence_max_members,
                    instance,
                )),
                settings: Arc::new(settings),
            },
            bus,
            instance,
            cluster,
            resync: Notify::new(),
        }
    }

    /// What the WebSocket upgrade hands each socket.
    pub fn sockets(&self) -> &SocketContext {
        &self.sockets
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.sockets.hub
    }

    pub fn settings(&self) -> &RealtimeSettings {
        &self.sockets.settings
    }

    pub fn bus_name(&self) -> &'static str {
        self.bus.name()
    }

    /// Starts the bus subscription, the periodic catch-up, the retention pruner and, with
    /// other instances, the presence record.
    pub fn spawn_background(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let settings = self.settings();
        let store = self.sockets.store.clone();
        let mut tasks = Vec::new();
        if self.cluster {
            tasks.push(tokio::spawn(self.clone().record_presence()));
        }
        tasks.extend([
            tokio::spawn(self.clone().announce_presence()),
            tokio::spawn(post_waiting_presence(self.sockets.hub.clone())),
            tokio::spawn(self.bus.clone().run(self.clone())),
            tokio::spawn(self.clone().catch_up(settings.catch_up_interval)),
            tokio::spawn(prune_events(
                store,
                settings.retention,
                settings.retention_min_events,
            )),
        ]);
        tasks
    }

    /// Writes down, every second, which users got their first socket here or lost their
    /// last, and marks this instance alive every few seconds; forgets instances that
    /// stopped doing so.
    async fn record_presence(self: Arc<Self>) {
        let (store, hub) = (&self.sockets.store, &self.sockets.hub);
        let mut tick = tokio::time::interval(PRESENCE_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        // Every user here is to be written, not only the changes: this instance was not
        // on record (its first mark, forgotten after a pause, or the tables emptied by a
        // crash or a failover) and that write has not succeeded yet.
        let mut all_due = false;
        loop {
            tick.tick().await;
            let changes = hub.take_presence_changes();
            if changes.is_empty() && !all_due && ticks % PRESENCE_ALIVE_TICKS != 0 {
                ticks += 1;
                continue;
            }
            let now = crate::domain::now();
            let recorded = if all_due {
                // The changes taken are in the hub's current counts.
                self.record_all_presence(now).await
            } else {
                let devices: Vec<(Uuid, i64)> = changes
                    .iter()
                    .map(|(&user, &devices)| (user, devices as i64))
                    .collect();
                store.record_presence(self.instance, &devices, now).await
            };
            let recorded = match recorded {
                // Off the record: only the changes are there now; everyone goes at once.
                Ok(false) if !all_due => {
                    all_due = true;
                    self.record_all_presence(now).await
                }
                other => other,
            };
            match recorded {
                Ok(_) => all_due = false,
                Err(err) => {
                    tracing::warn!(error = %err, "recording presence failed");
                    // Tried again at the next pass: everyone if that was due, else these
                    // changes with the next ones (a newer change of a user wins).
                    if !all_due {
                        for (user, devices) in changes {
                            hub.restore_presence_change(user, devices);
                        }
                    }
                }
            }
            if ticks % 600 == 0 {
                let stale = now - chrono::Duration::minutes(10);
                if let Err(err) = store.forget_instances(stale, None).await {
                    tracing::warn!(error = %err, "forgetting stopped instances failed");
                }
            }
            ticks += 1;
        }
    }

    /// Writes how many sockets every user has here (a change after the hub is read is in
    /// the next pass's changes).
    async fn record_all_presence(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::store::StoreResult<bool> {
        let all: Vec<(Uuid, i64)> = self
            .sockets
            .hub
            .all_devices()
            .into_iter()
            .map(|(user, devices)| (user, devices as i64))
            .collect();
        if !all.is_empty() {
            tracing::info!(users = all.len(), "writing this instance's presence anew");
        }
        self.sockets
            .store
            .record_presence(self.instance, &all, now)
            .await
    }

    /// Tells the sockets who came online or went offline in their projects, every second
    /// (see [`presence`]).
    async fn announce_presence(self: Arc<Self>) {
        let (hub, store) = (&self.sockets.hub, &self.sockets.store);
        let mut tick = tokio::time::interval(PRESENCE_FLUSH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What the last complete read started from, and how many passes ago it was.
        let mut read_from: Option<PresenceSources> = None;
        let mut passes_since_read = 0u32;
        loop {
            tick.tick().await;
            let projects = hub.watched_projects();
            metrics::gauge!(crate::metrics::PRESENCE_PROJECTS).set(projects.len() as f64);
            self.sockets.presence.forget_unwatched(&projects);
            // Taken before the reads, so that a change made while they run is seen as one
            // at the next pass.
            let sources = match self.presence_sources().await {
                Ok(sources) => Some(sources),
                Err(err) => {
                    tracing::warn!(error = %err, "reading presence marks failed");
                    None
                }
            };
            passes_since_read += 1;
            // Nothing moved since the last read, and all it found was announced: the
            // presence is what it was. Read anyway now and then, in case a change went by
            // unseen (a membership event a bus dropped).
            if sources.is_some()
                && sources == read_from
                && passes_since_read < PRESENCE_FULL_READ_EVERY
                && self.sockets.presence.is_settled()
            {
                continue;
            }
            passes_since_read = 0;
            read_from = sources;
            // Read and announced in steps over half the interval: every socket of every
            // changed project gets a message, and a socket with nothing else to send is
            // woken for it (after PRESENCE_HOLD); all in one instant, the reads and the
            // messages would queue the events behind them. Each project has its own step
            // (from its id), so its messages stay a whole interval apart from one pass to
            // the next, and a socket woken for one waiting in its mailbox normally sends it
            // before the project's next one is put in.
            let mut steps: Vec<Vec<Uuid>> = vec![Vec::new(); PRESENCE_SPREAD_STEPS];
            for project in projects {
                steps[(project.as_u128() % PRESENCE_SPREAD_STEPS as u128) as usize].push(project);
            }
            // No waiting past the last step that has projects.
            let used = steps
                .iter()
                .rposition(|batch| !batch.is_empty())
                .map_or(0, |last| last + 1);
            let pause = PRESENCE_FLUSH / 2 / PRESENCE_SPREAD_STEPS as u32;
            for (i, batch) in steps[..used].iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                if batch.is_empty() {
                    continue;
                }
                let now = match self.sockets.presence.read(batch, store.as_ref(), hub).await {
                    Ok(now) => now,
                    Err(err) => {
                        tracing::warn!(error = %err, "reading presence failed");
                        // Not complete: read again at the next pass.
                        read_from = None;
                        continue;
                    }
                };
                metrics::counter!(crate::metrics::PRESENCE_READS).increment(1);
                for (project, message) in self.sockets.presence.update(now) {
                    metrics::counter!(crate::metrics::PRESENCE_MESSAGES).increment(1);
                    hub.deliver_presence(project, &protocol::text_frame(&message));
                }
            }
        }
    }

    /// What the presence this node announces is made of, as marks that move when it
    /// changes: this hub's sockets and watched memberships, and each live instance's last
    /// recorded change (none without other instances).
    async fn presence_sources(&self) -> crate::store::StoreResult<PresenceSources> {
        let remote = if self.cluster {
            let fresh_since = crate::domain::now() - PRESENCE_STALE;
            let mut marks = self
                .sockets
                .store
                .presence_marks(self.instance, fresh_since)
                .await?;
            marks.sort_unstable();
            marks
        } else {
            Vec::new()
        };
        Ok(PresenceSources {
            local: self.sockets.hub.presence_generation(),
            remote,
        })
    }

    /// Removes this instance's presence (it is stopping; its sockets are closed).
    pub async fn leave(&self) {
        if self.cluster {
            let stale = crate::domain::now() - chrono::Duration::minutes(10);
            if let Err(err) = self
                .sockets
                .store
                .forget_instances(stale, Some(self.instance))
                .await
            {
                tracing::warn!(error = %err, "removing this instance's presence failed");
            }
        }
    }

    /// Compares the latest seq of every stream with local receivers with what the hub has
    /// seen, and wakes the connections of streams that are behind: the safety net under
    /// every bus. A stream is woken only when it is still behind what the previous pass
    /// found committed: a commit whose announcement is merely in flight on the bus (the
    /// common case at any pass) arrives inline a moment later, and waking its sockets to
    /// read it from the table would cost a query per socket for nothing. So what a bus
    /// drops is delivered within two and a half intervals (a pass's reads are spread over
    /// half of one: at 10,000 sockets, reading every stream's end at once every second
    /// doubled the p99 of event delivery); after a bus reconnection, at once.
    async fn catch_up(self: Arc<Self>, every: Duration) {
        let (hub, store) = (&self.sockets.hub, &self.sockets.store);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Streams found behind at the previous pass, and the seq they were behind.
        let mut suspects: HashMap<StreamKey, i64> = HashMap::new();
        loop {
            let resync = tokio::select! {
                _ = tick.tick() => false,
                () = self.resync.notified() => true,
            };
            // The time this pass spends reading the table (its pauses apart).
            let mut reading = Duration::ZERO;
            let mut behind: HashMap<StreamKey, i64> = HashMap::new();
            let streams = hub.connected_stream_keys();
            let chunks = streams.len().div_ceil(CATCH_UP_CHUNK);
            let pause = if resync || chunks < 2 {
                Duration::ZERO
            } else {
                every / 2 / chunks as u32
            };
            for (i, chunk) in streams.chunks(CATCH_UP_CHUNK).enumerate() {
                if i > 0 && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                // What the hub knows now, just before the table is read: a pass spread
                // over time compares each stream with the hub at its own moment.
                let known: HashMap<StreamKey, i64> = hub.known_seqs(chunk);
                let streams: Vec<StreamKey> = known.keys().copied().collect();
                let started = std::time::Instant::now();
                let read = store.latest_seqs(&streams).await;
                reading += started.elapsed();
                let latest = match read {
                    Ok(latest) => latest,
                    Err(err) => {
                        tracing::warn!(error = %err, "catch-up: cannot read latest seqs");
                        break;
                    }
                };
                for (stream, last_seq) in latest {
                    let Some(&seen) = known.get(&stream) else {
                        continue;
                    };
                    if last_seq <= seen {
                        continue;
                    }
                    let overdue = suspects.get(&stream).is_some_and(|&before| seen < before);
                    if resync || overdue {
                        metrics::counter!(crate::metrics::CATCH_UP_WAKEUPS).increment(1);
                        hub.deliver(&Arc::new(StreamUpdate::position(stream, last_seq)));
                    } else {
                        behind.insert(stream, last_seq);
                    }
                }
            }
            metrics::histogram!(crate::metrics::CATCH_UP_PASS).record(reading.as_secs_f64());
            suspects = behind;
        }
    }
}

#[async_trait]
impl Publisher for Realtime {
    async fn before_commit(
        &self,
        tx: &mut dyn StoreTx,
        update: &StreamUpdate,
    ) -> anyhow::Result<()> {
        self.bus.before_commit(tx, update).await
    }

    fn publish(&self, update: StreamUpdate) {
        let update = Arc::new(update);
        self.sockets.hub.deliver(&update);
        self.bus.clone().after_commit(&update);
    }
}

#[async_trait]
impl crate::delivery::Presence for Realtime {
    async fn is_connected(&self, user_id: Uuid) -> bool {
        if self.sockets.hub.is_connected(user_id) {
            return true;
        }
        if !self.cluster {
            return false;
        }
        let fresh_since = crate::domain::now() - PRESENCE_STALE;
        match self
            .sockets
            .store
            .connected_elsewhere(user_id, self.instance, fresh_since)
            .await
        {
            Ok(connected) => connected,
            // Unknown: pushing is the safer mistake (a buzz too many, not a missed one).
            Err(err) => {
                tracing::warn!(error = %err, "reading presence failed");
                false
            }
        }
    }
}

impl BusHandler for Realtime {
    fn on_update(&self, update: StreamUpdate) {
        self.sockets.authenticator.forget(&update.revoked);
        self.sockets.authenticator.forget(&update.rotated);
        self.sockets.hub.deliver(&Arc::new(update));
    }

    fn on_resync(&self) {
        metrics::counter!(crate::metrics::BUS_CONNECTS, "bus" => self.bus.name()).increment(1);
        // A revocation may have been announced while the bus was away.
        self.sockets.authenticator.forget_all();
        self.resync.notify_one();
    }
}

/// What a presence pass depends on (see [`Realtime::presence_sources`]): while it stays
/// the same, and all that was read is announced, there is nothing to read again.
#[derive(Debug, PartialEq, Eq)]
struct PresenceSources {
    local: u64,
    remote: Vec<(Uuid, Option<chrono::DateTime<chrono::Utc>>)>,
}

/// Streams checked per query of a catch-up pass; a pass's queries are spread over half
/// its interval, so that it never takes the database in one burst.
const CATCH_UP_CHUNK: usize = 100;
/// How often the presence record is written (what others see lags this much).
const PRESENCE_FLUSH: Duration = Duration::from_secs(1);
/// A presence pass reads only when its sources moved, and at least every this many passes.
const PRESENCE_FULL_READ_EVERY: u32 = 10;
/// A presence pass reads and announces its projects in this many steps over half a second.
const PRESENCE_SPREAD_STEPS: usize = 10;
/// A presence message waits this long in a socket's mailbox for another frame to go out
/// with (one write, and no wake-up of its own), then the socket is woken for it; with
/// `PRESENCE_POST_EVERY`, that is 0.8-0.9 s, ahead of the project's next message (1 s).
const PRESENCE_HOLD: Duration = Duration::from_millis(800);
const PRESENCE_POST_EVERY: Duration = Duration::from_millis(100);
/// Every this many flushes an instance marks itself alive even without changes.
const PRESENCE_ALIVE_TICKS: u64 = 2;
/// An instance not marked alive for this long is taken for dead.
const PRESENCE_STALE: chrono::Duration = presence::STALE;

/// Wakes the sockets whose presence messages have waited `PRESENCE_HOLD` in their mailbox.
async fn post_waiting_presence(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(PRESENCE_POST_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        hub.post_waiting_presence(PRESENCE_HOLD);
    }
}

/// Deletes events past retention (older than `retention` and not among their user's last
/// `keep`), hourly, in small batches so writers are never held up for long.
async fn prune_events(store: Arc<dyn Store>, retention: Duration, keep: i64) {
    const BATCH: i64 = 5_000;
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let Ok(retention) = chrono::Duration::from_std(retention) else {
            return;
        };
        let cutoff = crate::domain::now() - retention;
        let mut total = 0;
        loop {
            match store.prune_events(cutoff, keep, BATCH).await {
                Ok(n) => {
                    total += n;
                    if n < BATCH as u64 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "pruning events failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(pruned = total, "old events pruned");
        }
    }
}
