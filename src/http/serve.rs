//! The public listener's accept loop. `axum::serve` has no header-read timeout, so the
//! router is served through hyper's HTTP/1 connection builder directly: a client must
//! send its request headers within `HTTP_HEADER_TIMEOUT` (hyper's timer, which also runs
//! while a keep-alive connection waits for its next request), and a connection on which
//! no byte moves for `HTTP_IDLE_TIMEOUT` is closed (`IdleTimeout`). Slowloris clients
//! therefore cannot hold sockets open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// How each accepted connection is set up and bounded.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// SO_SNDBUF per socket; `None` keeps the kernel's.
    pub send_buffer: Option<usize>,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets
/// every connection finish its in-flight request and waits for them. Upgraded WebSockets
/// have left hyper by then: the hub closes them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    // Every connection task holds a receiver: `closed()` below waits for the last one.
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        configure(&tcp, settings.send_buffer);
        let io = TokioIo::new(IdleTimeout::new(tcp, settings.idle_timeout));
        let router = router.clone();
        // What `into_make_service_with_connect_info` would do: handlers read the peer.
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                // Timeouts and clients going away are routine here.
                tracing::debug!(error = %err, %peer, "connection ended");
            }
            drop(stopping);
        });
    }
    drop(listener);
    // No receiver left means no connection to wait for: nothing to report.
    let _ = stop.send(());
    drop(stopping);
    stop.closed().await;
}

fn configure(tcp: &TcpStream, send_buffer: Option<usize>) {
    // Events are small and latency matters more than packing them.
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(error = %err, "cannot set TCP_NODELAY");
    }
    if let Some(bytes) = send_buffer {
        if let Err(err) = socket2::SockRef::from(tcp).set_send_buffer_size(bytes) {
            tracing::debug!(error = %err, "cannot set SO_SNDBUF");
        }
    }
}

/// A failed accept: the client gave up (go on) or the process is out of descriptors or
/// memory (wait a little instead of spinning on the same error).
async fn accept_failed(err: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A socket that fails with `TimedOut` once no byte has been read or written for
/// `limit`, so the connection above it ends and the socket is closed. The timer is reset
/// lazily: each transfer only notes the time.
struct IdleTimeout {
    inner: TcpStream,
    limit: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
}

impl IdleTimeout {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            last_activity: Instant::now(),
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }

    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Called while an operation is pending: an error once the connection is idle.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last_activity + self.limit;
            if deadline <= Instant::now() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
            }
            self.timer.as_mut().reset(deadline);
        }
        Ok(())
    }

    /// The outcome of a write that moved `n` bytes or is pending.
    fn after_write(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
            ready => ready,
        }
    }
}

impl AsyncRead for IdleTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(err) => Poll::Ready(Err(err)),
            },
            ready => ready,
        }
    }
}

impl AsyncWrite for IdleTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after_write(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after_write(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
