//! Talking to taskstream: sign-up, the REST calls of the workload, the event-stream head
//! (`GET /events`), authenticated WebSockets (optionally from a chosen source address),
//! and the checker every client runs over its stream.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use crate::progress::{Progress, Ui};
use crate::sys::{letters_for, Rng};
use crate::workload::Call;

/// The password of every load-test account: upper, lower, digit, special, not common.
pub const PASSWORD: &str = "Load-Test-Pass-9!";

/// A signed-up user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub token: String,
}

/// The REST API of one instance (`http://host:port`, without `/api/v1`).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

/// How a REST call ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The HTTP status; `None` when no response came (connection error, timeout).
    pub status: Option<u16>,
    pub ok: bool,
    /// The id of a task a create made.
    pub created: Option<i64>,
    pub error: Option<String>,
}

impl Outcome {
    /// The key errors are counted under: the status, or the kind of transport failure.
    pub fn error_key(&self) -> String {
        match (self.status, &self.error) {
            (Some(status), _) => status.to_string(),
            (None, Some(error)) => error.clone(),
            (None, None) => "unknown".to_string(),
        }
    }
}

fn transport_error(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".into()
    } else if err.is_connect() {
        "connect".into()
    } else if err.is_decode() {
        "decode".into()
    } else {
        "transport".into()
    }
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Self::with_source(base, None)
    }

    /// A client whose connections come from `source` (a loopback address such as
    /// 127.0.3.7), so that the server's per-address limits see it as its own client.
    pub fn with_source(base: &str, source: Option<IpAddr>) -> anyhow::Result<Self> {
        let base = base.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("expected an http:// base URL, got {base:?}");
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .local_address(source)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { http, base })
    }

    /// One `Api` per address of `sources` (each its own connection pool).
    pub fn per_source(base: &str, sources: &[IpAddr]) -> anyhow::Result<Vec<Self>> {
        sources
            .iter()
            .map(|source| Self::with_source(base, Some(*source)))
            .collect()
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// `POST /auth/signup`.
    pub async fn signup(&self, name: &str, email: &str) -> anyhow::Result<Account> {
        #[derive(Deserialize)]
        struct User {
            id: String,
        }
        #[derive(Deserialize)]
        struct Session {
            token: String,
            user: User,
        }
        let response = self
            .http
            .post(self.url("/auth/signup"))
            .json(&json!({ "name": name, "email": email, "password": PASSWORD }))
            .send()
            .await
            .with_context(|| format!("POST {}", self.url("/auth/signup")))?;
        let status = response.status();
        if status.as_u16() != 201 {
            let body = response.text().await.unwrap_or_default();
            bail!("sign-up answered {status}: {body}");
        }
        let session: Session = response.json().await.context("sign-up response")?;
        Ok(Account {
            id: session.user.id,
            token: session.token,
        })
    }

    /// The user's latest seq: `GET /events?since=<since>&limit=1`.
    pub async fn latest_seq(&self, token: &str, since: i64) -> anyhow::Result<i64> {
        self.latest_stream_seq(token, None, since).await
    }

    /// The latest seq of `stream` (`project:<id>`; `None`: the user's own):
    /// `GET /events?stream=<stream>&since=<since>&limit=1`.
    pub async fn latest_stream_seq(
        &self,
        token: &str,
        stream: Option<&str>,
        since: i64,
    ) -> anyhow::Result<i64> {
        let mut query = vec![("since", since.to_string()), ("limit", "1".to_string())];
        if let Some(stream) = stream {
            query.push(("stream", stream.to_string()));
        }
        let response = self
            .http
            .get(self.url("/events"))
            .bearer_auth(token)
            .query(&query)
            .send()
            .await
            .context("GET /events")?;
        let status = response.status();
        let body: Value = response.json().await.context("GET /events response")?;
        // 200, or 410 (events past retention), carry the latest seq at the top level.
        body["last_seq"]
            .as_i64()
            .ok_or_else(|| anyhow!("GET /events answered {status} without last_seq: {body}"))
    }

    /// Makes one call of the workload; the body is read in full (it is part of the time).
    pub async fn perform(&self, token: &str, call: Call, rng_word: u64) -> Outcome {
        self.perform_in(token, call, rng_word, None).await
    }

    /// [`Api::perform`], with the tasks it creates in project `project_id` when given
    /// (calls on a task id are the same for personal and project tasks).
    pub async fn perform_in(
        &self,
        token: &str,
        call: Call,
        rng_word: u64,
        project_id: Option<&str>,
    ) -> Outcome {
        let http = &self.http;
        let priority = ["LOW", "MEDIUM", "HIGH"][(rng_word % 3) as usize];
        let request = match call {
            Call::ListTasks => http.get(self.url("/tasks")).query(&[("limit", "50")]),
            Call::CreateTask => {
                let mut body = json!({
                    "title": format!("Load task {rng_word:x}"),
                    "description": "Created by taskstream-load",
                    "priority": priority,
                });
                if let Some(project_id) = project_id {
                    body["project_id"] = json!(project_id);
                }
                http.post(self.url("/tasks")).json(&body)
            }
            Call::PatchTask(id) => http.patch(self.url(&format!("/tasks/{id}"))).json(&json!({
                "title": format!("Load task {rng_word:x} (edited)"),
                "priority": priority,
            })),
            // No body: toggles.
            Call::CompleteTask(id) => http.patch(self.url(&format!("/tasks/{id}/complete"))),
            Call::DeleteTask(id) => http.delete(self.url(&format!("/tasks/{id}"))),
            Call::ListNotifications => http
                .get(self.url("/notifications"))
                .query(&[("limit", "20")]),
            Call::UnreadCount => http.get(self.url("/notifications/unread/count")),
        };
        let response = match request.bearer_auth(token).send().await {
            Ok(response) => response,
            Err(err) => {
                return Outcome {
                    status: None,
                    ok: false,
                    created: None,
                    error: Some(transport_error(&err)),
                }
            }
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => {
                return Outcome {
                    status: Some(status.as_u16()),
                    ok: false,
                    created: None,
                    error: Some(transport_error(&err)),
                }
            }
        };
        let created = match call {
            Call::CreateTask if status.is_success() => serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["id"].as_i64()),
            _ => None,
        };
        Outcome {
            status: Some(status.as_u16()),
            ok: status.is_success(),
            created,
            error: None,
        }
    }
}

impl Api {
    /// `POST /projects`: a project owned by the caller; its id.
    pub async fn create_project(&self, token: &str, name: &str) -> anyhow::Result<String> {
        let response = self
            .http
            .post(self.url("/projects"))
            .bearer_auth(token)
            .json(&json!({ "name": name, "description": "Made by taskstream-load" }))
            .send()
            .await
            .context("POST /projects")?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match (status.as_u16(), body["id"].as_str()) {
            (201, Some(id)) => Ok(id.to_string()),
            _ => bail!("POST /projects answered {status}: {body}"),
        }
    }

    /// `POST /tasks` in project `project_id`: the outcome, with the new task's id.
    pub async fn create_project_task(
        &self,
        token: &str,
        project_id: &str,
        rng_word: u64,
    ) -> Outcome {
        self.perform_in(token, Call::CreateTask, rng_word, Some(project_id))
            .await
    }

    /// Sends `request` and reads the whole body; the status, or the transport failure.
    async fn outcome(request: reqwest::RequestBuilder) -> Outcome {
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                let read = response.bytes().await;
                Outcome {
                    status: Some(status.as_u16()),
                    ok: status.is_success() && read.is_ok(),
                    created: None,
                    error: read.err().map(|e| transport_error(&e)),
                }
            }
            Err(err) => Outcome {
                status: None,
                ok: false,
                created: None,
                error: Some(transport_error(&err)),
            },
        }
    }

    /// `POST /auth/signin`.
    pub async fn signin(&self, email: &str, password: &str) -> Outcome {
        let request = self
            .http
            .post(self.url("/auth/signin"))
            .json(&json!({ "email": email, "password": password }));
        Self::outcome(request).await
    }

    /// `POST /profile/upload-photo` with `bytes` as the multipart field `file`.
    pub async fn upload_photo(&self, token: &str, bytes: &[u8], filename: &str) -> Outcome {
        // Built by hand: reqwest's multipart feature is not in this crate's build.
        const BOUNDARY: &str = "taskstream-load-boundary-5f1c0a";
        let mut body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
        let request = self
            .http
            .post(self.url("/profile/upload-photo"))
            .bearer_auth(token)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        Self::outcome(request).await
    }
}

/// A notification as `GET /notifications` lists it (the fields the load tool reads).
#[derive(Debug, Clone, Deserialize)]
pub struct NotificationItem {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub task_id: Option<i64>,
}

impl Api {
    /// `POST /tasks` with a title and a due date; the outcome (with the new id) and the
    /// due date the server stored (it keeps microseconds).
    pub async fn create_task_due(
        &self,
        token: &str,
        title: &str,
        due: DateTime<Utc>,
    ) -> (Outcome, Option<DateTime<Utc>>) {
        let request = self
            .http
            .post(self.url("/tasks"))
            .bearer_auth(token)
            .json(&json!({
                "title": title,
                "due_date": due.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            }));
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                let outcome = Outcome {
                    status: None,
                    ok: false,
                    created: None,
                    error: Some(transport_error(&err)),
                };
                return (outcome, None);
            }
        };
        let status = response.status();
        let body: Option<Value> = response.json().await.ok();
        let id = body.as_ref().and_then(|b| b["id"].as_i64());
        let stored = body
            .as_ref()
            .and_then(|b| b["due_date"].as_str())
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let ok = status.is_success() && id.is_some();
        let outcome = Outcome {
            status: Some(status.as_u16()),
            ok,
            created: id,
            error: (status.is_success() && !ok).then(|| "decode".to_string()),
        };
        (outcome, stored)
    }

    /// One page of the user's notifications, oldest first (so that a notification made
    /// while paging cannot shift a page), and `X-Total-Count`.
    pub async fn notifications_page(
        &self,
        token: &str,
        offset: i64,
        limit: i64,
    ) -> anyhow::Result<(Vec<NotificationItem>, i64)> {
        let response = self
            .http
            .get(self.url("/notifications"))
            .bearer_auth(token)
            .query(&[
                ("sort", "asc".to_string()),
                ("offset", offset.to_string()),
                ("limit", limit.to_string()),
            ])
            .send()
            .await
            .context("GET /notifications")?;
        let status = response.status();
        if !status.is_success() {
            bail!("GET /notifications answered {status}");
        }
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or_else(|| anyhow!("GET /notifications without X-Total-Count"))?;
        let items = response
            .json()
            .await
            .context("GET /notifications response")?;
        Ok((items, total))
    }
}

/// Signs up `count` users, spread over `apis` round robin, `concurrency` at a time. Names
/// and e-mails carry a random tag so that runs never collide.
pub async fn sign_up_users(
    apis: &[Api],
    count: usize,
    concurrency: usize,
    ui: Ui,
) -> anyhow::Result<Vec<Account>> {
    if apis.is_empty() {
        bail!("no instance to sign up on");
    }
    let tag = Rng::from_entropy(count as u64).letters(8);
    let progress = Progress::new(ui, "signup", Some(count as u64));
    let done = Arc::new(AtomicU64::new(0));
    let results: Vec<anyhow::Result<Account>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            let tag = tag.clone();
            let done = done.clone();
            let progress = &progress;
            async move {
                let name = format!("Load {tag} {}", letters_for(i));
                let email = format!("load-{tag}-{i}@example.com");
                let mut attempt = 0;
                let account = loop {
                    match api.signup(&name, &email).await {
                        Ok(account) => break Ok(account),
                        Err(_) if attempt < 3 => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                        }
                        Err(err) => break Err(err),
                    }
                };
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.set_position(n);
                progress.set_message(format!("{n}/{count} users"));
                account
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let accounts = results
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
        .context("signing up the load-test users")?;
    progress.finish(format!("{count} users"));
    Ok(accounts)
}

/// Where a server's socket endpoint is.
#[derive(Debug, Clone)]
pub struct WsTarget {
    pub addr: SocketAddr,
    /// `host:port` as the URL names it (for the Host header).
    authority: String,
    path: String,
}

impl WsTarget {
    /// The `/api/v1/ws` endpoint of the server at `base` (`http://host:port`).
    pub async fn resolve(base: &str) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base.trim()).with_context(|| format!("URL {base:?}"))?;
        if url.scheme() != "http" {
            bail!("only http:// servers are supported (got {base})");
        }
        let host = url.host_str().ok_or_else(|| anyhow!("no host in {base}"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host, port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host} has no address"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let path = format!("{}/api/v1/ws", url.path().trim_end_matches('/'));
        Ok(Self {
            addr,
            authority,
            path,
        })
    }

    fn url(&self, since: Option<i64>) -> String {
        match since {
            Some(since) => self.url_with_query(&format!("since={since}")),
            None => self.url_with_query(""),
        }
    }

    /// The endpoint with `query` (`projects=true`, ...; empty: none).
    fn url_with_query(&self, query: &str) -> String {
        if query.is_empty() {
            format!("ws://{}{}", self.authority, self.path)
        } else {
            format!("ws://{}{}?{query}", self.authority, self.path)
        }
    }
}

pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers: tungstenite allocates its read buffer up front, 128 KiB by default,
/// which would be gigabytes at tens of thousands of sockets.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
}

/// Why a socket could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The upgrade was answered with this HTTP status.
    Refused(u16),
    Io(std::io::Error),
    Handshake(String),
    Timeout,
    /// Closed (with this code) before `ready`.
    Closed(Option<u16>),
    /// The server sent an `error` (with this code) instead of `ready`.
    Rejected(String),
    /// Something other than `ready` came first.
    NotReady(String),
}

impl ConnectError {
    /// The key failures are counted under.
    pub fn key(&self) -> String {
        match self {
            ConnectError::Refused(status) => format!("http {status}"),
            ConnectError::Io(err) => match err.raw_os_error() {
                Some(code) => format!("io {:?} (os error {code})", err.kind()),
                None => format!("io {:?}", err.kind()),
            },
            ConnectError::Handshake(_) => "handshake".into(),
            ConnectError::Timeout => "timeout".into(),
            ConnectError::Closed(Some(code)) => format!("closed {code}"),
            ConnectError::Closed(None) => "closed".into(),
            ConnectError::Rejected(code) => format!("error {code}"),
            ConnectError::NotReady(_) => "no ready".into(),
        }
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(err) => write!(f, "{}: {err}", self.key()),
            ConnectError::Handshake(err) => write!(f, "handshake: {err}"),
            ConnectError::NotReady(first) => write!(f, "expected ready, got {first}"),
            other => f.write_str(&other.key()),
        }
    }
}

/// Opens an authenticated socket (token in the `Authorization` header), from `source`
/// when given, and waits for `ready`; returns the socket and `ready.last_seq`.
pub async fn connect_ws(
    target: &WsTarget,
    token: &str,
    since: Option<i64>,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(Ws, i64), ConnectError> {
    tokio::time::timeout(timeout, connect_inner(target, token, since, source))
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

async fn connect_inner(
    target: &WsTarget,
    token: &str,
    since: Option<i64>,
    source: Option<IpAddr>,
) -> Result<(Ws, i64), ConnectError> {
    let mut ws = upgrade_ws(target, Some(token), since, source).await?;
    let ready = wait_ready(&mut ws).await?;
    let last_seq = ready
        .last_seq
        .ok_or_else(|| ConnectError::NotReady("ready without last_seq".into()))?;
    Ok((ws, last_seq))
}

/// Opens a socket authenticated by its `Authorization` header with `query` on the URL
/// (`projects=true`, `since=5&projects=true`), and waits for `ready`, which it returns
/// (with `streams` when the socket receives project streams).
pub async fn connect_ws_query(
    target: &WsTarget,
    token: &str,
    query: &str,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(Ws, Incoming), ConnectError> {
    tokio::time::timeout(timeout, async {
        let mut ws =
            upgrade_with(target, Some(token), &target.url_with_query(query), source).await?;
        let ready = wait_ready(&mut ws).await?;
        Ok((ws, ready))
    })
    .await
    .unwrap_or(Err(ConnectError::Timeout))
}

/// Opens a socket without a token and authenticates with `auth` as its first message
/// (`{"type": "auth", "token", "since", "projects", "positions"}`: the only way to give a
/// position in each project stream), then waits for `ready`.
pub async fn connect_ws_auth_message(
    target: &WsTarget,
    auth: &Value,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<(Ws, Incoming), ConnectError> {
    tokio::time::timeout(timeout, async {
        let mut ws = upgrade_with(target, None, &target.url_with_query(""), source).await?;
        ws.send(Message::Text(auth.to_string().into()))
            .await
            .map_err(|err| match err {
                tungstenite::Error::Io(err) => ConnectError::Io(err),
                other => ConnectError::Handshake(other.to_string()),
            })?;
        let ready = wait_ready(&mut ws).await?;
        Ok((ws, ready))
    })
    .await
    .unwrap_or(Err(ConnectError::Timeout))
}

/// Reads until the first text message, which must be `ready` (returned).
async fn wait_ready(ws: &mut Ws) -> Result<Incoming, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let message: Incoming = serde_json::from_str(&text)
                    .map_err(|_| ConnectError::NotReady(text.to_string()))?;
                return match message.kind.as_str() {
                    "ready" if message.last_seq.is_some() => Ok(message),
                    "error" => Err(ConnectError::Rejected(
                        message.code.unwrap_or_else(|| "unknown".into()),
                    )),
                    _ => Err(ConnectError::NotReady(text.to_string())),
                };
            }
            Some(Ok(Message::Close(frame))) => {
                return Err(ConnectError::Closed(frame.map(|f| u16::from(f.code))))
            }
            Some(Ok(_)) => continue,
            Some(Err(tungstenite::Error::Io(err))) => return Err(ConnectError::Io(err)),
            Some(Err(err)) => return Err(ConnectError::Handshake(err.to_string())),
            None => return Err(ConnectError::Closed(None)),
        }
    }
}

/// The TCP connection (from `source` when given) and the WebSocket upgrade, with the
/// token in the `Authorization` header when there is one; nothing read after it.
pub async fn upgrade_ws(
    target: &WsTarget,
    token: Option<&str>,
    since: Option<i64>,
    source: Option<IpAddr>,
) -> Result<Ws, ConnectError> {
    upgrade_with(target, token, &target.url(since), source).await
}

/// [`upgrade_ws`] to the endpoint URL `url` (the target's, with its query).
async fn upgrade_with(
    target: &WsTarget,
    token: Option<&str>,
    url: &str,
    source: Option<IpAddr>,
) -> Result<Ws, ConnectError> {
    let socket = match target.addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(ConnectError::Io)?;
    // Ports in TIME_WAIT from an earlier run may be reused.
    socket.set_reuseaddr(true).map_err(ConnectError::Io)?;
    if let Some(source) = source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(ConnectError::Io)?;
    }
    let stream = socket
        .connect(target.addr)
        .await
        .map_err(ConnectError::Io)?;
    stream.set_nodelay(true).map_err(ConnectError::Io)?;
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
    if let Some(token) = token {
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| ConnectError::Handshake("token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
    }
    let (ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
        .await
        .map_err(|err| match err {
            tungstenite::Error::Http(response) => ConnectError::Refused(response.status().as_u16()),
            tungstenite::Error::Io(err) => ConnectError::Io(err),
            other => ConnectError::Handshake(other.to_string()),
        })?;
    Ok(ws)
}

/// Closes a socket politely and waits (briefly) for the server's close.
pub async fn close_ws(mut ws: Ws) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        if ws.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// The fields of a server message the load generator looks at.
#[derive(Debug, Deserialize)]
pub struct Incoming {
    #[serde(rename = "type")]
    pub kind: String,
    /// The project stream (`project:<id>`) of an event, `reset` or presence message;
    /// absent for the user's own stream.
    pub stream: Option<String>,
    pub seq: Option<i64>,
    pub at: Option<String>,
    pub last_seq: Option<i64>,
    pub code: Option<String>,
    /// `ready` of a socket that receives project streams: every stream and its position.
    pub streams: Option<Vec<StreamPosition>>,
}

/// One stream of `ready.streams`.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamPosition {
    /// `user:<id>` or `project:<id>`.
    pub stream: String,
    pub last_seq: i64,
}

impl Incoming {
    /// The event's commit time.
    pub fn at(&self) -> Option<DateTime<Utc>> {
        let at = self.at.as_deref()?;
        DateTime::parse_from_rfc3339(at)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// What an event did to a client's view of its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The next one.
    InOrder,
    /// Ahead of the next one: the ones between are missing (for now).
    OutOfOrder,
    /// One that was missing, arriving late.
    Late,
    /// Seen before.
    Duplicate,
}

/// Most missing seqs one client remembers; a gap beyond this is counted, not listed.
const MAX_TRACKED_GAP: i64 = 100_000;

/// One client's accounting of its stream: seqs must arrive as start+1, start+2, ... with
/// no gaps and no repeats.
#[derive(Debug, Clone, Default)]
pub struct StreamChecker {
    /// The user's seq when the client first connected (from `ready`).
    pub start: i64,
    /// The highest seq seen.
    pub last: i64,
    /// Distinct new events received.
    pub delivered: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Missing seqs that arrived later (after an out-of-order one).
    pub late: u64,
    /// Seqs skipped by a `reset` (past retention: the client would have to reload).
    pub reset_skipped: u64,
    missing: BTreeSet<i64>,
    untracked_missing: u64,
}

impl StreamChecker {
    pub fn new(start: i64) -> Self {
        Self {
            start,
            last: start,
            ..Self::default()
        }
    }

    pub fn observe(&mut self, seq: i64) -> Seen {
        if seq == self.last + 1 {
            self.last = seq;
            self.delivered += 1;
            Seen::InOrder
        } else if seq > self.last + 1 {
            let gap_end = seq.min(self.last + 1 + MAX_TRACKED_GAP);
            self.missing.extend(self.last + 1..gap_end);
            self.untracked_missing += (seq - gap_end) as u64;
            self.last = seq;
            self.delivered += 1;
            self.out_of_order += 1;
            Seen::OutOfOrder
        } else if self.missing.remove(&seq) {
            self.delivered += 1;
            self.late += 1;
            Seen::Late
        } else {
            self.duplicated += 1;
            Seen::Duplicate
        }
    }

    /// A `reset` to `last_seq`: everything up to it is skipped.
    pub fn reset(&mut self, last_seq: i64) {
        if last_seq > self.last {
            self.reset_skipped += (last_seq - self.last) as u64;
            self.missing
                .extend(self.last + 1..=last_seq.min(self.last + MAX_TRACKED_GAP));
            self.last = last_seq;
        }
    }

    /// Whether every seq up to `final_seq` has arrived.
    pub fn caught_up(&self, final_seq: i64) -> bool {
        self.last >= final_seq && self.missing.is_empty() && self.untracked_missing == 0
    }

    /// Seqs in `(start, final_seq]` that never arrived.
    pub fn lost(&self, final_seq: i64) -> u64 {
        let gaps = self.missing.range(..=final_seq).count() as u64 + self.untracked_missing;
        gaps + (final_seq - self.last).max(0) as u64
    }

    /// Seqs beyond `final_seq` (the stream had more than the user's writes made).
    pub fn beyond(&self, final_seq: i64) -> u64 {
        (self.last - final_seq).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_stream_has_nothing_to_report() {
        let mut checker = StreamChecker::new(1);
        for seq in 2..=11 {
            assert_eq!(checker.observe(seq), Seen::InOrder);
        }
        assert_eq!(checker.delivered, 10);
        assert!(checker.caught_up(11));
        assert_eq!(checker.lost(11), 0);
        assert_eq!(checker.lost(13), 2);
    }

    #[test]
    fn gaps_duplicates_and_late_arrivals() {
        let mut checker = StreamChecker::new(0);
        assert_eq!(checker.observe(1), Seen::InOrder);
        assert_eq!(checker.observe(4), Seen::OutOfOrder);
        assert_eq!(checker.observe(1), Seen::Duplicate);
        assert_eq!(checker.observe(2), Seen::Late);
        assert_eq!(checker.out_of_order, 1);
        assert_eq!(checker.duplicated, 1);
        assert_eq!(checker.delivered, 3);
        assert!(!checker.caught_up(4));
        assert_eq!(checker.lost(4), 1); // 3 never came
        assert_eq!(checker.observe(3), Seen::Late);
        assert!(checker.caught_up(4));
        assert_eq!(checker.lost(4), 0);
        assert_eq!(checker.observe(3), Seen::Duplicate);
    }

    #[test]
    fn resets_count_as_lost() {
        let mut checker = StreamChecker::new(0);
        checker.observe(1);
        checker.reset(5);
        assert_eq!(checker.reset_skipped, 4);
        assert_eq!(checker.lost(5), 4);
    }

    #[test]
    fn server_messages_parse() {
        let event: Incoming = serde_json::from_str(
            r#"{"type":"event","seq":3,"event":"task.created","at":"2026-11-27T10:00:00.123456Z","data":{"id":1}}"#,
        )
        .unwrap();
        assert_eq!(event.seq, Some(3));
        assert!(event.at().is_some());
        let ready: Incoming =
            serde_json::from_str(r#"{"type":"ready","last_seq":7,"heartbeat_s":25}"#).unwrap();
        assert_eq!(ready.last_seq, Some(7));
    }
}
