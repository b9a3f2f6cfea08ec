//! A measured client's socket, kept the same way by every scenario that checks streams
//! (`fanout`, `team-fanout`, `presence-churn`, `reminders`): read until the run stops or
//! the socket ends, then resume as the protocol asks. After 1012 (this instance is going
//! away) the next instance is tried; after 4008 (too slow) the first attempt is at once;
//! otherwise, and between failed attempts, the client waits 50 ms doubling to 2 s (plus a
//! per-client jitter, so that thousands of clients do not come back in one instant). A
//! refusal of the token, or an error instead of `ready`, ends the client: trying again
//! cannot help; so do 30 failures in a row. Each scenario says what a frame means to it
//! and how it resumes (its positions), through [`MeasuredClient`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{close_ws, ConnectError, Ws, WsTarget};
use crate::progress::{Progress, Ui};
use crate::report::{bump, Counts};

/// How long a socket may take from connect to `ready`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection attempts in a row before a client gives up.
const MAX_RECONNECT_ATTEMPTS: u32 = 30;
/// Close codes after which a client resumes as the protocol asks.
const SLOW_CONSUMER: u16 = 4008;
const SERVER_RESTARTING: u16 = 1012;

/// How one client's sockets ended and came back.
#[derive(Debug, Default)]
pub struct Resumes {
    /// Why sockets ended: the close code, `no close frame` or `transport`.
    pub closes: Counts,
    pub reconnects: u64,
    pub reconnect_failures: u64,
}

/// What a scenario's client does with its socket.
pub trait MeasuredClient: Sync {
    /// A text frame arrived.
    fn on_text(&self, text: &str);
    /// Opens the socket again on `target`, resuming from what was received.
    fn reconnect(&self, target: &WsTarget)
        -> impl Future<Output = Result<Ws, ConnectError>> + Send;
    /// Counts an end or a return: `f` gets the client's [`Resumes`] and its counts of
    /// errors (where a failed reconnection goes as `reconnect: why`).
    fn count(&self, f: impl FnOnce(&mut Resumes, &mut Counts));
    /// A socket came back: for what all the clients count together.
    fn on_reconnect(&self) {}
}

/// Reads `ws` and every socket after it until `stop` says so (or the client gives up).
/// `instance` is the index in `targets` that `ws` is connected to.
pub async fn keep_reading(
    mut ws: Ws,
    client: &impl MeasuredClient,
    targets: &[WsTarget],
    mut instance: usize,
    jitter_ms: u64,
    stop: &mut watch::Receiver<bool>,
) {
    loop {
        let code = match read_until_end(&mut ws, client, stop).await {
            End::Stop => {
                close_ws(ws).await;
                return;
            }
            End::Closed(code) => {
                let how = code.map_or_else(|| "no close frame".into(), |c| c.to_string());
                client.count(|resumes, _| bump(&mut resumes.closes, how));
                code
            }
            End::Transport => {
                client.count(|resumes, _| bump(&mut resumes.closes, "transport"));
                None
            }
        };
        if code == Some(SERVER_RESTARTING) {
            instance = (instance + 1) % targets.len();
        }
        let mut attempt = 0u32;
        ws = loop {
            if *stop.borrow() {
                return;
            }
            if code != Some(SLOW_CONSUMER) || attempt > 0 {
                let backoff = (50u64 << attempt.min(5)).min(2_000) + jitter_ms;
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            match client.reconnect(&targets[instance]).await {
                Ok(ws) => {
                    client.count(|resumes, _| resumes.reconnects += 1);
                    client.on_reconnect();
                    break ws;
                }
                Err(err) => {
                    client.count(|resumes, errors| {
                        resumes.reconnect_failures += 1;
                        bump(errors, format!("reconnect: {}", err.key()));
                    });
                    attempt += 1;
                    let hopeless = matches!(
                        err,
                        ConnectError::Refused(401 | 403) | ConnectError::Rejected(_)
                    );
                    if hopeless || attempt >= MAX_RECONNECT_ATTEMPTS {
                        return;
                    }
                    instance = (instance + 1) % targets.len();
                }
            }
        };
    }
}

enum End {
    Stop,
    Closed(Option<u16>),
    Transport,
}

async fn read_until_end(
    ws: &mut Ws,
    client: &impl MeasuredClient,
    stop: &mut watch::Receiver<bool>,
) -> End {
    if *stop.borrow() {
        return End::Stop;
    }
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return End::Stop;
                }
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => client.on_text(&text),
                Some(Ok(Message::Close(frame))) => {
                    return End::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => return End::Transport,
                None => return End::Closed(None),
            }
        }
    }
}

/// Shows the sockets opening until all of `clients` are open or failed.
pub async fn wait_connected(connected: &AtomicU64, failed: &AtomicU64, clients: usize, ui: Ui) {
    let progress = Progress::new(ui, "connect", Some(clients as u64));
    loop {
        let open = connected.load(Ordering::Relaxed);
        let refused = failed.load(Ordering::Relaxed);
        progress.set_position(open + refused);
        progress.set_message(format!("{open} open, {refused} failed"));
        if open + refused >= clients as u64 {
            progress.finish(format!("{open} open, {refused} failed"));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
