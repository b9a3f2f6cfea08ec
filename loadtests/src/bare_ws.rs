//! `bare-ws`: the cheapest WebSocket server this tool can run, to measure the machine's
//! floor under `presence-churn` (`--churn-url`).
//!
//! It accepts every upgrade on any path without looking at the token, answers
//! `{"type":"ready","last_seq":0}` (what the churn sockets wait for), discards what it
//! reads and closes when the client does. No database, no hub, no presence: what churn
//! costs with the sockets sent here is what the connects alone cost the machine (TCP,
//! the HTTP upgrade, two frames, the close), which no server can go below.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::client::ws_config;

/// A handshake that has not finished after this long is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct BareWsArgs {
    /// Where to listen (`--churn-url http://<this>` points presence-churn's churn here).
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub bind: SocketAddr,
}

/// What a [`serve`] did: sockets served to their close, and those that failed (a
/// handshake that was not WebSocket, a reset).
#[derive(Debug, Default)]
pub struct Served {
    pub sockets: AtomicU64,
    pub failed: AtomicU64,
}

/// Serves until ctrl-c or SIGTERM; prints the address it listens on first and what it
/// served last.
pub async fn run(args: &BareWsArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("binding {}", args.bind))?;
    println!("bare-ws listening on {}", listener.local_addr()?);
    let served = Arc::new(Served::default());
    serve(listener, served.clone(), crate::sys::shutdown_signal()).await;
    println!(
        "bare-ws served {} sockets ({} failed)",
        served.sockets.load(Ordering::Relaxed),
        served.failed.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Accepts sockets on `listener` until `shutdown` resolves, counting them in `served`.
pub async fn serve(listener: TcpListener, served: Arc<Served>, shutdown: impl Future<Output = ()>) {
    let accept = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of files, or reset before accept: keep serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let served = served.clone();
            tokio::spawn(async move {
                let counter = match serve_socket(stream).await {
                    Ok(()) => &served.sockets,
                    Err(_) => &served.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            });
        }
    };
    tokio::select! {
        () = accept => {}
        () = shutdown => {}
    }
}

async fn serve_socket(stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let handshake = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config()));
    let mut ws = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .context("handshake timed out")??;
    ws.send(Message::Text(r#"{"type":"ready","last_seq":0}"#.into()))
        .await?;
    // Reading answers the client's close (tungstenite replies to it) and its pings.
    while let Some(message) = ws.next().await {
        if message?.is_close() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{close_ws, connect_ws_query, WsTarget};

    /// The churn sockets' own connect gets its `ready` from the bare server, and the
    /// server counts the socket once the client has closed it.
    #[tokio::test]
    async fn answers_a_churn_socket_with_ready() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let served = Arc::new(Served::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, served.clone(), async {
            let _ = stopped.await;
        }));
        let target = WsTarget::resolve(&base).await.expect("target");
        let (ws, ready) = connect_ws_query(
            &target,
            "any",
            "projects=true",
            None,
            Duration::from_secs(5),
        )
        .await
        .expect("ready from the bare server");
        assert_eq!(ready.kind, "ready");
        assert_eq!(ready.last_seq, Some(0));
        close_ws(ws).await;
        for _ in 0..500 {
            if served.sockets.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(served.sockets.load(Ordering::Relaxed), 1);
        assert_eq!(served.failed.load(Ordering::Relaxed), 0);
        let _ = stop.send(());
        server.await.expect("the server ends when told");
    }
}
