//! The WebSocket protocol's messages and close codes; `protocol/` documents them
//! (AsyncAPI + JSON Schemas) and the tests check every server message against those.

use std::collections::HashMap;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::presence::{MemberPresence, PresenceState};
use crate::domain::{Role, StreamKey};

/// Close codes the server uses.
pub mod close {
    /// The token expired.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The token was revoked (logout).
    pub const TOKEN_REVOKED: u16 = 4003;
    /// The client did not keep up with its events; resume with `since`.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The user already has the maximum number of connections.
    pub const TOO_MANY_CONNECTIONS: u16 = 4009;
    /// Authentication failed (bad token in the first message, or none within the timeout).
    pub const AUTH_FAILED: u16 = 4401;
    /// A message the server cannot accept (malformed, unknown type, binary, too large).
    pub const BAD_MESSAGE: u16 = 4400;
    /// The server is restarting; reconnect (to any instance) with `since`.
    pub const SERVER_RESTARTING: u16 = 1012;
    /// No pong arrived in time.
    pub const HEARTBEAT_TIMEOUT: u16 = 1011;
}

/// Why the server closes a socket: the WebSocket counterpart of `Error::code()`. Each
/// kind has its close code and the code of the `error` message sent just before the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    TokenExpired,
    TokenRevoked,
    SlowConsumer,
    TooManyConnections,
    BadMessage,
    AuthFailed,
    ServerRestarting,
    /// The event stream cannot be read right now (the database): reconnect with `since`.
    Unavailable,
    HeartbeatTimeout,
}

impl CloseKind {
    pub const fn code(self) -> u16 {
        match self {
            Self::TokenExpired => close::TOKEN_EXPIRED,
            Self::TokenRevoked => close::TOKEN_REVOKED,
            Self::SlowConsumer => close::SLOW_CONSUMER,
            Self::TooManyConnections => close::TOO_MANY_CONNECTIONS,
            Self::BadMessage => close::BAD_MESSAGE,
            Self::AuthFailed => close::AUTH_FAILED,
            Self::ServerRestarting | Self::Unavailable => close::SERVER_RESTARTING,
            Self::HeartbeatTimeout => close::HEARTBEAT_TIMEOUT,
        }
    }

    /// The `code` of the `error` message that precedes the close.
    pub const fn error_code(self) -> &'static str {
        match self {
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::TokenRevoked => "TOKEN_REVOKED",
            Self::SlowConsumer => "SLOW_CONSUMER",
            Self::TooManyConnections => "TOO_MANY_CONNECTIONS",
            Self::BadMessage => "BAD_MESSAGE",
            Self::AuthFailed => "AUTH_FAILED",
            Self::ServerRestarting => "SERVER_RESTARTING",
            Self::Unavailable => "UNAVAILABLE",
            Self::HeartbeatTimeout => "HEARTBEAT_TIMEOUT",
        }
    }
}

/// A close the server decided: its kind and the text of the `error` message sent first
/// (`None`: close without one, when nobody would read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub kind: CloseKind,
    pub message: Option<String>,
}

impl CloseReason {
    pub fn new(kind: CloseKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: Some(message.into()),
        }
    }

    pub fn silent(kind: CloseKind) -> Self {
        Self {
            kind,
            message: None,
        }
    }

    pub fn code(&self) -> u16 {
        self.kind.code()
    }

    /// The `error` message to send before the close frame, if any.
    pub fn error_message(&self) -> Option<ServerMessage> {
        let text = self.message.as_ref()?;
        Some(ServerMessage::error(self.kind.error_code(), text.clone()))
    }
}

/// Largest client message accepted (bigger ones close the socket with 4400).
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Messages the server sends, besides events (see [`crate::domain::Event`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ServerMessage {
    #[serde(rename = "ready")]
    Ready {
        connection_id: Uuid,
        user_id: Uuid,
        last_seq: i64,
        heartbeat_s: u64,
        token_expires_at: DateTime<Utc>,
        /// Only for a socket that asked for project streams: every stream it receives
        /// (its own first), with its current position.
        #[serde(skip_serializing_if = "Option::is_none")]
        streams: Option<Vec<StreamPosition>>,
    },
    #[serde(rename = "reset")]
    Reset {
        /// Absent for the user's own stream.
        #[serde(skip_serializing_if = "Option::is_none")]
        stream: Option<StreamKey>,
        last_seq: i64,
    },
    #[serde(rename = "pong")]
    Pong,
    #[serde(rename = "auth.refreshed")]
    AuthRefreshed { token_expires_at: DateTime<Utc> },
    #[serde(rename = "auth.expiring")]
    AuthExpiring { token_expires_at: DateTime<Utc> },
    #[serde(rename = "error")]
    Error { code: &'static str, message: String },
    /// Members of a project who came online, or whose number of sockets changed.
    #[serde(rename = "presence.joined")]
    PresenceJoined {
        stream: StreamKey,
        online: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        members: Option<Vec<MemberPresence>>,
    },
    /// Members of a project who went offline (`devices` 0).
    #[serde(rename = "presence.left")]
    PresenceLeft {
        stream: StreamKey,
        online: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        members: Option<Vec<MemberPresence>>,
    },
}

/// A stream a socket receives, and where it stands, as `ready` lists them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamPosition {
    pub stream: StreamKey,
    pub last_seq: i64,
    /// The user's role in the project (project streams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Who is online in the project (project streams only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceState>,
}

impl ServerMessage {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }
}

/// Messages a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type")]
pub enum ClientMessage {
    #[serde(rename = "auth")]
    Auth {
        token: String,
        since: Option<i64>,
        /// Asks for the streams of the user's projects besides their own.
        #[serde(default)]
        projects: bool,
        /// Where the client stands in each project stream (`{"project:<id>": seq}`); any
        /// position implies `projects`.
        #[serde(default)]
        positions: HashMap<StreamKey, i64>,
    },
    #[serde(rename = "ping")]
    Ping,
    #[serde(rename = "resume")]
    Resume {
        since: i64,
        /// A project stream; absent for the user's own.
        #[serde(default)]
        stream: Option<StreamKey>,
    },
    #[serde(rename = "auth.refresh")]
    AuthRefresh { token: String },
}

/// A message as a WebSocket text frame.
pub fn text_frame(message: &impl Serialize) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_by_type() {
        let parse = |s: &str| serde_json::from_str::<ClientMessage>(s);
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientMessage::Ping);
        assert_eq!(
            parse(r#"{"type":"resume","since":7}"#).unwrap(),
            ClientMessage::Resume {
                since: 7,
                stream: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"auth","token":"t"}"#).unwrap(),
            ClientMessage::Auth {
                token: "t".into(),
                since: None,
                projects: false,
                positions: HashMap::new(),
            }
        );
        let project = Uuid::from_u128(7);
        assert_eq!(
            parse(&format!(
                r#"{{"type":"auth","token":"t","positions":{{"project:{project}":3}}}}"#
            ))
            .unwrap(),
            ClientMessage::Auth {
                token: "t".into(),
                since: None,
                projects: false,
                positions: HashMap::from([(StreamKey::Project(project), 3)]),
            }
        );
        assert!(parse(r#"{"type":"auth","token":"t","positions":{"nope":3}}"#).is_err());
        assert!(parse(r#"{"type":"dance"}"#).is_err());
        assert!(parse(r#"{"type":"resume"}"#).is_err());
        // Unknown fields are ignored, for forward compatibility.
        assert_eq!(
            parse(r#"{"type":"ping","extra":1}"#).unwrap(),
            ClientMessage::Ping
        );
        assert!(parse("not json").is_err());
    }

    #[test]
    fn server_messages_carry_their_type() {
        let ready = serde_json::to_value(ServerMessage::Pong).unwrap();
        assert_eq!(ready, serde_json::json!({"type": "pong"}));
        let error = serde_json::to_value(ServerMessage::error("BAD_MESSAGE", "nope")).unwrap();
        assert_eq!(
            error,
            serde_json::json!({"type": "error", "code": "BAD_MESSAGE", "message": "nope"})
        );
    }
}
