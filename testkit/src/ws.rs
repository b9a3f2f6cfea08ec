//! A WebSocket test client that checks every server message against the JSON Schemas in
//! `protocol/schemas/server`.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Longest a test waits for one message before failing.
const PATIENCE: Duration = Duration::from_secs(15);

fn validators() -> &'static HashMap<String, jsonschema::Validator> {
    static VALIDATORS: OnceLock<HashMap<String, jsonschema::Validator>> = OnceLock::new();
    VALIDATORS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../protocol/schemas/server");
        std::fs::read_dir(dir)
            .expect("protocol/schemas/server")
            .map(|entry| {
                let path = entry.expect("entry").path();
                let schema: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).expect("schema"))
                        .expect("schema JSON");
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .expect("name")
                    .to_string();
                let validator = jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()));
                (name, validator)
            })
            .collect()
    })
}

/// Panics unless `message` matches the schema of its `type`.
pub fn assert_valid_server_message(message: &Value) {
    let kind = message["type"]
        .as_str()
        .unwrap_or_else(|| panic!("message without type: {message}"));
    let validator = validators()
        .get(kind)
        .unwrap_or_else(|| panic!("no schema for server message type {kind:?}: {message}"));
    let errors: Vec<String> = validator
        .iter_errors(message)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} message does not match its schema: {errors:?}\n{message}"
    );
}

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection attempt ended.
pub enum Connect {
    Open(Box<WsClient>),
    /// The upgrade was refused with this HTTP status and body.
    Refused(u16, Value),
}

/// The URL of the socket endpoint of a server at `http://host:port`.
pub fn ws_url(base: &str, since: Option<i64>) -> String {
    let mut url = format!("{}/api/v1/ws", base.replacen("http://", "ws://", 1));
    if let Some(since) = since {
        url.push_str(&format!("?since={since}"));
    }
    url
}

impl WsClient {
    /// Opens a socket, with the token in the Authorization header when given.
    pub async fn try_connect(url: &str, token: Option<&str>) -> Connect {
        let mut request = url.into_client_request().expect("request");
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((ws, _)) => Connect::Open(Box::new(Self { ws })),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                Connect::Refused(status, body)
            }
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }

    pub async fn connect(url: &str, token: Option<&str>) -> Self {
        match Self::try_connect(url, token).await {
            Connect::Open(client) => *client,
            Connect::Refused(status, body) => panic!("upgrade refused with {status}: {body}"),
        }
    }

    /// Connects with a small receive buffer and does not read: a client that cannot keep
    /// up.
    pub async fn connect_slow(url: &str, token: &str) -> Self {
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let host = request.uri().host().expect("host").to_string();
        let port = request.uri().port_u16().expect("port");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let addr = format!("{host}:{port}").parse().expect("address");
        let stream = socket.connect(addr).await.expect("connect");
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            request,
            MaybeTlsStream::Plain(stream),
            Some(WebSocketConfig::default()),
        )
        .await
        .expect("handshake");
        Self { ws }
    }

    /// Connects with the token in the header and returns the `ready` message too.
    pub async fn ready(url: &str, token: &str) -> (Self, Value) {
        let mut client = Self::connect(url, Some(token)).await;
        let ready = client.next().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        (client, ready)
    }

    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// The next frame of any kind (pings are answered by tungstenite as they are read).
    async fn frame(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .unwrap_or_else(|_| panic!("no message within {PATIENCE:?}"))
    }

    /// Waits for the server's next heartbeat ping (its pong goes out with the next read or
    /// send).
    pub async fn next_heartbeat(&mut self) {
        loop {
            match self.frame().await {
                Some(Ok(Message::Ping(_))) => return,
                Some(Ok(Message::Pong(_))) => continue,
                other => panic!("expected a heartbeat ping, got {other:?}"),
            }
        }
    }

    /// The next text message, schema-checked. Panics on close.
    pub async fn next(&mut self) -> Value {
        loop {
            match self.frame().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("server sent JSON");
                    assert_valid_server_message(&value);
                    return value;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }

    /// The next text message, or `None` once the socket is gone (closed, reset, ended).
    pub async fn next_or_gone(&mut self) -> Option<Value> {
        loop {
            match self.frame().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("server sent JSON");
                    assert_valid_server_message(&value);
                    return Some(value);
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                _ => return None,
            }
        }
    }

    /// The next `n` messages, which must all be events.
    pub async fn events(&mut self, n: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            let message = self.next().await;
            assert_eq!(message["type"], "event", "expected an event: {message}");
            events.push(message);
        }
        events
    }

    /// Reads until the server closes; returns the `error` messages seen and the close code.
    pub async fn closed(&mut self) -> (Vec<Value>, u16) {
        let mut errors = Vec::new();
        loop {
            match self.frame().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("server sent JSON");
                    assert_valid_server_message(&value);
                    if value["type"] == "error" {
                        errors.push(value);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    return (errors, code);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket failed before a close frame: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Reads until the close and returns (every event seen, error codes, close code).
    pub async fn drain_until_closed(&mut self) -> (Vec<Value>, Vec<String>, u16) {
        let mut events = Vec::new();
        let mut errors = Vec::new();
        loop {
            match self.frame().await {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("server sent JSON");
                    assert_valid_server_message(&value);
                    match value["type"].as_str() {
                        Some("event") => events.push(value),
                        Some("error") => {
                            errors.push(value["code"].as_str().unwrap_or("").to_string())
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return (events, errors, frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket failed before a close frame: {e}"),
                None => panic!("socket ended without a close frame"),
            }
        }
    }

    /// Sends `ping` and waits for `pong`, collecting any events that come first.
    pub async fn roundtrip(&mut self) -> Vec<Value> {
        self.send(serde_json::json!({"type": "ping"})).await;
        let mut before = Vec::new();
        loop {
            let message = self.next().await;
            if message["type"] == "pong" {
                return before;
            }
            before.push(message);
        }
    }

    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
    }
}

/// Asserts the events are consecutive from `first` and returns the last seq.
pub fn assert_consecutive(events: &[Value], first: i64) -> i64 {
    let mut expected = first;
    for event in events {
        assert_eq!(
            event["seq"].as_i64(),
            Some(expected),
            "gap, duplicate or reorder at {event}"
        );
        expected += 1;
    }
    expected - 1
}
