//! A private Redis server per test, so that a test may stop it without touching the
//! machine's shared one.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Longest a `redis-server` may take to answer its first command.
const STARTUP: Duration = Duration::from_secs(10);

/// A `redis-server` child on a free loopback port, with nothing persisted and a temporary
/// folder of its own; killed when dropped (`kill_on_drop`).
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    url: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one; needs `redis-server` on the PATH.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // The free port is found by binding port 0 and letting go of it: another process
        // may take it first, in which case Redis exits and another port is tried.
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = spawn(port, dir.path()).await {
                return Self {
                    port,
                    url: format!("redis://127.0.0.1:{port}"),
                    dir,
                    child: Some(child),
                };
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Kills it (as a crash would); clients see their connections drop.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port (stopping it first if it runs), empty.
    pub async fn restart(&mut self) {
        self.stop().await;
        let child = spawn(self.port, self.dir.path()).await;
        assert!(
            child.is_some(),
            "redis-server did not start again on port {}",
            self.port
        );
        self.child = child;
    }
}

/// Spawns `redis-server` on `port`; the child once it answers.
async fn spawn(port: u16, dir: &Path) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server must be on the PATH for the tests (see README)");
    let pid = child.id();
    let deadline = tokio::time::Instant::now() + STARTUP;
    while tokio::time::Instant::now() < deadline {
        if pid.is_some() && pid == server_pid(port).await {
            return Some(child);
        }
        if let Ok(Some(_)) = child.try_wait() {
            // Exited: most likely the port was taken.
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill().await;
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// The process id of the Redis answering on `port`, if one does: the check that it is
/// ours, not another test's that took the port first.
async fn server_pid(port: u16) -> Option<u32> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    stream.write_all(b"INFO server\r\n").await.ok()?;
    let mut reply = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            reply.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&reply);
            if let Some(line) = text.split("\r\n").find(|l| l.starts_with("process_id:")) {
                if text.contains(&format!("{line}\r\n")) {
                    return line["process_id:".len()..].parse().ok();
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), read)
        .await
        .ok()
        .flatten()
}
