//! The value types settings are made of, and the parsers that read them from flags and
//! environment variables.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;

/// A value that must never reach a log line or a `Debug` dump.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_string()))
    }
}

/// A database URL; its password is redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The embedded SQLite database in `file`.
    pub fn sqlite_file(file: &std::path::Path) -> Self {
        Self(format!("sqlite://{}", file.display()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_postgres(&self) -> bool {
        self.0.starts_with("postgres://") || self.0.starts_with("postgresql://")
    }

    /// The URL with any password replaced, for logs.
    pub fn redacted(&self) -> String {
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                match userinfo.find(':') {
                    Some(colon) => format!(
                        "{}{}:***{}",
                        &self.0[..scheme_end + 3],
                        &userinfo[..colon],
                        &self.0[at..]
                    ),
                    None => self.0.clone(),
                }
            }
            _ => self.0.clone(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.starts_with("postgres://")
            || s.starts_with("postgresql://")
            || s.starts_with("sqlite:")
        {
            Ok(Self(s.to_string()))
        } else {
            Err("expected a postgres://, postgresql:// or sqlite: URL".into())
        }
    }
}

/// A duration written as `90`, `90s`, `500ms`, `15m`, `24h` or `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. 30s, 15m, 24h"))?;
        let seconds = match unit.trim() {
            "" | "s" => number,
            "ms" => return Ok(Self(Duration::from_millis(number))),
            "m" => number.saturating_mul(60),
            "h" => number.saturating_mul(3600),
            "d" => number.saturating_mul(86_400),
            other => return Err(format!("invalid duration unit {other:?}: use s, m, h or d")),
        };
        Ok(Self(Duration::from_secs(seconds)))
    }
}

/// Clap's parser for every duration setting, so that the settings hold plain `Duration`s.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<HumanDuration>().map(|d| d.0)
}

/// The address clients reach the server by, as an origin with an optional path prefix
/// (`https://api.example.com`, `https://example.com/taskstream`): http or https, a host, no
/// query or fragment. Returned without a trailing `/`, ready to have `/media/…` appended.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    let uri: axum::http::Uri = s
        .trim()
        .parse()
        .map_err(|err| format!("invalid URL {s:?}: {err}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("{s:?} must start with http:// or https://"));
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{s:?} names no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("{s:?} must not carry credentials"));
    }
    if uri.query().is_some() || s.contains('#') {
        return Err(format!("{s:?} must not have a query or fragment"));
    }
    let scheme = uri.scheme_str().unwrap_or("https");
    Ok(format!(
        "{scheme}://{authority}{}",
        uri.path().trim_end_matches('/')
    ))
}

/// An address to listen on, or `off` (also `none` or nothing) for no listener. Host names
/// resolve here, once, as binding to `host:port` did.
pub fn parse_optional_address(s: &str) -> Result<Option<SocketAddr>, String> {
    match s.trim() {
        "" | "off" | "none" => Ok(None),
        address => address
            .to_socket_addrs()
            .map_err(|err| format!("invalid address {address:?}: {err}"))?
            .next()
            .map(Some)
            .ok_or_else(|| format!("{address:?} resolves to no address")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How instances tell each other about new events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BusKind {
    /// In-process only: one instance (the default with SQLite).
    Memory,
    /// PostgreSQL LISTEN/NOTIFY (the default with PostgreSQL).
    Postgres,
    /// Redis pub/sub (REDIS_URL).
    Redis,
}
