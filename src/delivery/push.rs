//! Web Push: a browser's subscription, the server's VAPID key, and a sender that
//! encrypts a message for one subscription (RFC 8291, `aes128gcm` of RFC 8188), signs it
//! for the push service (VAPID, RFC 8292) and POSTs it there (RFC 8030).
//!
//! Crates, chosen for the smallest sound tree:
//! - Encryption is `web-push-native` (with its sibling `ece-native`), built on RustCrypto's
//!   `p256`, `hkdf` and `sha2`, which the tree already holds for `jsonwebtoken`; it adds
//!   only `aes-gcm` and its few RustCrypto crates, all MIT OR Apache-2.0. The `web-push`
//!   crate would add `ece` (MPL-2.0, which deny.toml does not allow, and OpenSSL as its only
//!   backend: a system library to build and ship), `jwt-simple` with a second set of
//!   curves, `http` 0.2 and, for sending, hyper 0.14 with native-tls; `ece` alone still
//!   brings MPL-2.0 and OpenSSL. Its VAPID part stays off (it would bring `jwt-simple`, and
//!   its audience drops the endpoint's port): the token is signed here with `p256`.
//! - Sending is hyper's client (hyper and hyper-util are already the server's) with rustls
//!   on ring and the system's CA certificates. Not reqwest (only the tests' client so
//!   far): its TLS features would reach every reqwest client of the workspace (features
//!   unify), and both are costly there: `rustls` brings aws-lc-rs, a large C build, and
//!   `rustls-no-provider` makes every `reqwest::Client` panic at build time unless a
//!   process-wide crypto provider was installed first.
//!
//! The endpoint's path is a capability (whoever knows it can push to that browser), so
//! only its origin is ever logged or put in an error, and `Debug` shows nothing else.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use argon2::password_hash::rand_core::OsRng;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_rustls::ConfigBuilderExt as _;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use url::{Host, Url};

/// Longest endpoint accepted (push services' URLs are a few hundred characters).
pub const MAX_ENDPOINT_LEN: usize = 2048;

/// The most plaintext one push carries: push services must accept 4096 bytes of body
/// (RFC 8030 §7.2), and RFC 8291 §4 takes the 86-byte header, the 16-byte tag and the
/// padding delimiter from it. (4078 is the older `aesgcm` scheme's figure.)
pub const MAX_PAYLOAD_LEN: usize = 3993;

/// Lifetime of a VAPID token; RFC 8292 §2 allows at most 24 hours.
const VAPID_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A signed token is reused for this long, so a burst of pushes to one push service signs
/// once rather than per message, and never goes out with less than 11 hours left.
const VAPID_TOKEN_REUSE: Duration = Duration::from_secs(3600);

/// Distinct push services whose tokens are kept; beyond it the cache starts over.
const VAPID_TOKEN_CACHE: usize = 64;

/// Push services keep a message at most about four weeks (FCM's limit); a longer TTL
/// would be refused rather than shortened.
const MAX_TTL: Duration = Duration::from_secs(28 * 24 * 3600);

/// How much of a push service's answer is read, for the error's text.
const RESPONSE_SNIPPET_LEN: usize = 512;

/// Base64url as browsers give it (`PushSubscription.toJSON()`): unpadded, though a padded
/// value is taken too.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `p256dh` key: base64url of 65 bytes is 87 characters (88 padded).
const MAX_P256DH_LEN: usize = 88;

/// The `auth` secret: base64url of 16 bytes is 22 characters (24 padded).
const MAX_AUTH_LEN: usize = 24;

/// A browser's subscription, as the Push API gives it (base64url strings as received).
///
/// [`PushSubscription::parse`] validates it; [`PushSender::send`] decodes the fields
/// again (and refuses what does not decode), so a value read back from storage needs no
/// second validation.
#[derive(Clone, PartialEq, Eq)]
pub struct PushSubscription {
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// Why a subscription was refused: the request field (`endpoint`, `keys.p256dh`,
/// `keys.auth`) and what is wrong with it. The API answers it as 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidSubscription {
    pub field: &'static str,
    pub message: String,
}

impl InvalidSubscription {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl From<InvalidSubscription> for crate::error::Error {
    fn from(invalid: InvalidSubscription) -> Self {
        Self::invalid(invalid.field, invalid.message)
    }
}

impl PushSubscription {
    /// Validates a subscription: the endpoint is an absolute `https` URL (`http` too when
    /// `allow_http`, which tests use), without credentials or fragment, at most
    /// [`MAX_ENDPOINT_LEN`] long and, unless `allow_http`, not on a loopback, private or
    /// otherwise non-public address (the server must not be made to POST into its own
    /// network); `p256dh` is an uncompressed P-256 point on the curve, `auth` 16 bytes.
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        allow_http: bool,
    ) -> Result<Self, InvalidSubscription> {
        check_endpoint(endpoint, allow_http)
            .map_err(|message| InvalidSubscription::new("endpoint", message))?;
        decode_p256dh(p256dh)
            .map_err(|message| InvalidSubscription::new("keys.p256dh", message))?;
        decode_auth(auth).map_err(|message| InvalidSubscription::new("keys.auth", message))?;
        Ok(Self {
            endpoint: endpoint.to_owned(),
            p256dh: p256dh.to_owned(),
            auth: auth.to_owned(),
        })
    }

    /// `scheme://host[:port]` of the endpoint: what may be logged about it.
    pub fn origin(&self) -> String {
        Url::parse(&self.endpoint)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_else(|_| "(invalid endpoint)".to_owned())
    }
}

impl fmt::Debug for PushSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSubscription")
            .field("origin", &self.origin())
            .finish_non_exhaustive()
    }
}

fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<Url, String> {
    if endpoint.is_empty() {
        return Err("is required".into());
    }
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(format!("must be at most {MAX_ENDPOINT_LEN} characters"));
    }
    // The URL parser would quietly trim these; a browser never sends them.
    if endpoint.trim() != endpoint {
        return Err("must not start or end with spaces".into());
    }
    let url = Url::parse(endpoint).map_err(|_| "must be an absolute URL".to_string())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err("must be an https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not contain a fragment".into());
    }
    let public = match url.host() {
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            name != "localhost" && !name.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        None => return Err("must name a host".into()),
    };
    if !public && !allow_http {
        return Err("must be on a public address".into());
    }
    Ok(url)
}

fn decode_p256dh(p256dh: &str) -> Result<p256::PublicKey, String> {
    if p256dh.len() > MAX_P256DH_LEN {
        return Err("is too long for a P-256 public key".into());
    }
    let bytes = BASE64URL
        .decode(p256dh)
        .map_err(|_| "must be base64url".to_string())?;
    if bytes.len() != 65 || bytes[0] != 0x04 {
        return Err("must be an uncompressed P-256 public key (65 bytes)".into());
    }
    p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| "is not a point on the P-256 curve".into())
}

fn decode_auth(auth: &str) -> Result<[u8; 16], String> {
    if auth.len() > MAX_AUTH_LEN {
        return Err("must be 16 bytes".into());
    }
    let bytes = BASE64URL
        .decode(auth)
        .map_err(|_| "must be base64url".to_string())?;
    bytes.try_into().map_err(|_| "must be 16 bytes".into())
}

/// Whether an address is on the public internet: not loopback, private, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, reserved or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = ip.segments();
            // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., hi, lo] = segments;
                return is_public_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
            }
            !(ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (segments[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (segments[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || a >= 240 // reserved
        || (a == 100 && (b & 0xc0) == 64) // shared address space 100.64.0.0/10
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || (a == 192 && b == 0 && c == 0)) // IETF protocol assignments
}

/// The server's VAPID key: an ES256 (P-256) private key. `Debug` shows the public key only.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
}

/// A VAPID private key that is not a base64url P-256 scalar (the message holds no key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid VAPID private key: {0}")]
pub struct InvalidVapidKey(&'static str);

impl VapidKey {
    pub fn generate() -> Self {
        Self {
            signing: SigningKey::random(&mut OsRng),
        }
    }

    /// The raw 32-byte private scalar in base64url, the usual web-push format (what
    /// `web-push generate-vapid-keys` prints as the private key).
    pub fn from_base64url(private: &str) -> Result<Self, InvalidVapidKey> {
        let bytes = BASE64URL
            .decode(private.trim())
            .map_err(|_| InvalidVapidKey("not base64url"))?;
        if bytes.len() != 32 {
            return Err(InvalidVapidKey("not 32 bytes"));
        }
        let signing = SigningKey::from_slice(&bytes)
            .map_err(|_| InvalidVapidKey("not a valid P-256 scalar"))?;
        Ok(Self { signing })
    }

    /// The private key, in the format [`VapidKey::from_base64url`] reads. A secret.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.to_bytes())
    }

    /// The key kept in `path` (created with mode 0600 if missing), like the JWT secret of
    /// the embedded database.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        // Two instances starting together on one data folder may both find no file: the
        // one that loses the exclusive create reads what the winner wrote.
        for _ in 0..2 {
            match std::fs::read_to_string(path) {
                Ok(existing) => {
                    return Self::from_base64url(&existing)
                        .with_context(|| format!("reading {}", path.display()));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let key = Self::generate();
            match crate::config::write_private_file(path, &key.to_base64url()) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated a VAPID key for web push");
                    return Ok(key);
                }
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(err).with_context(|| format!("writing {}", path.display())),
            }
        }
        anyhow::bail!(
            "{} is being created and removed concurrently",
            path.display()
        )
    }

    /// The public key as the 65-byte uncompressed point in base64url without padding:
    /// what the browser's `applicationServerKey` takes, and the `k` of the VAPID header.
    pub fn public_key_base64url(&self) -> String {
        let point = self.signing.verifying_key().to_encoded_point(false);
        URL_SAFE_NO_PAD.encode(point.as_bytes())
    }

    /// A VAPID token (an ES256 JWT) for `audience` (a push service's origin), valid
    /// until `expires_at` (seconds since the epoch), naming `subject` as the contact.
    pub fn sign_token(&self, audience: &str, subject: &str, expires_at: u64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": expires_at, "sub": subject });
        let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
        // JWS ES256 is the raw r || s, which is what `to_bytes` gives.
        let signature: Signature = self.signing.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// The `Authorization` header value of RFC 8292: `vapid t=<token>, k=<public key>`.
    pub fn authorization(&self, audience: &str, subject: &str, expires_at: u64) -> String {
        format!(
            "vapid t={}, k={}",
            self.sign_token(audience, subject, expires_at),
            self.public_key_base64url()
        )
    }
}

impl fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_key_base64url())
            .finish_non_exhaustive()
    }
}

/// What became of a push that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// 404 or 410: the browser unsubscribed, or the subscription expired. Remove it.
    #[error("the push subscription is gone")]
    Gone,
    /// Retrying cannot help: any other 4xx but 429, a redirect, a payload too large, a
    /// subscription that does not decode or is not allowed.
    #[error("push refused: {0}")]
    Permanent(String),
    /// Worth retrying later: 429, 5xx, a network failure or a timeout.
    #[error("push failed: {0}")]
    Transient(String),
}

/// How soon the push service should deliver (RFC 8030 §5.3); a phone may wait to wake
/// up for `VeryLow` and `Low`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VeryLow => "very-low",
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

/// Options of one push beyond its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushOptions {
    /// How long the push service keeps the message for a browser that is offline (0:
    /// deliver now or drop). Capped at 28 days.
    pub ttl: Duration,
    pub urgency: Option<Urgency>,
    /// A message with the same topic replaces one still waiting at the push service
    /// (RFC 8030 §5.4): at most 32 base64url characters.
    pub topic: Option<String>,
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector<PublicResolver>>, Full<Bytes>>;

/// Sends pushes: one per call, each with its own deadline. Cheap to share (`Arc`); its
/// HTTP client keeps connections to push services open between sends.
pub struct PushSender {
    vapid: VapidKey,
    subject: String,
    allow_http: bool,
    timeout: Duration,
    client: HttpsClient,
    /// Signed tokens by audience, and when to sign a fresh one.
    tokens: Mutex<HashMap<String, (HeaderValue, Instant)>>,
}

impl fmt::Debug for PushSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushSender")
            .field("vapid", &self.vapid)
            .field("subject", &self.subject)
            .field("allow_http", &self.allow_http)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PushSender {
    /// `subject` is the contact push services may use (`mailto:` address or `https` URL);
    /// `allow_http` lets pushes go to `http` endpoints and to loopback and private
    /// addresses (the tests' receiver), never to be set in production; `timeout` bounds
    /// each send from connecting to reading the answer.
    pub fn new(
        vapid: VapidKey,
        subject: String,
        allow_http: bool,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        check_subject(&subject)?;
        anyhow::ensure!(!timeout.is_zero(), "the push timeout must be positive");

        let mut http = HttpConnector::new_with_resolver(PublicResolver {
            allow_private: allow_http,
        });
        // The TLS layer in front takes `https`; whether plain `http` may pass is its call.
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let tls = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config()?);
        let tls = if allow_http {
            tls.https_or_http()
        } else {
            tls.https_only()
        };
        let connector = tls.enable_http1().wrap_connector(http);
        // hyper's client never follows redirects: a push service that redirects is
        // answered as a refusal, not chased to wherever it points.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(connector);

        Ok(Self {
            vapid,
            subject,
            allow_http,
            timeout,
            client,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The VAPID public key, for `GET /push/vapid-public-key`.
    pub fn public_key_base64url(&self) -> String {
        self.vapid.public_key_base64url()
    }

    /// Encrypts `payload` for the subscription (RFC 8291 `aes128gcm`, one RFC 8188 record)
    /// and POSTs it with VAPID (RFC 8292), `TTL` and `Content-Encoding: aes128gcm`.
    pub async fn send(
        &self,
        subscription: &PushSubscription,
        payload: &[u8],
        ttl: Duration,
    ) -> Result<(), PushError> {
        let options = PushOptions {
            ttl,
            ..PushOptions::default()
        };
        self.send_with(subscription, payload, &options).await
    }

    /// [`PushSender::send`] with urgency and topic.
    pub async fn send_with(
        &self,
        subscription: &PushSubscription,
        payload: &[u8],
        options: &PushOptions,
    ) -> Result<(), PushError> {
        let request = self.build_request(subscription, payload, options)?;
        let origin = subscription.origin();
        let path = request.uri().path().to_owned();
        let exchange = async {
            let response = self
                .client
                .request(request.map(Full::new))
                .await
                .map_err(|err| connect_error(&err))?;
            let status = response.status();
            let snippet = read_snippet(response.into_body()).await;
            Ok::<_, PushError>((status, snippet))
        };
        let (status, snippet) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(PushError::Transient(format!(
                    "{origin} did not answer within {:?}",
                    self.timeout
                )))
            }
        };
        let snippet = redact(snippet, &path);
        let outcome = classify(status, || {
            if snippet.is_empty() {
                format!("{origin} answered {status}")
            } else {
                format!("{origin} answered {status}: {snippet}")
            }
        });
        tracing::debug!(origin = %origin, status = status.as_u16(), "push service answered");
        outcome
    }

    /// The request [`PushSender::send_with`] sends: encrypted body and headers, the
    /// endpoint re-checked. Public for tests that take a request apart.
    pub fn build_request(
        &self,
        subscription: &PushSubscription,
        payload: &[u8],
        options: &PushOptions,
    ) -> Result<Request<Bytes>, PushError> {
        let url = check_endpoint(&subscription.endpoint, self.allow_http)
            .map_err(|message| PushError::Permanent(format!("endpoint {message}")))?;
        let ua_public = decode_p256dh(&subscription.p256dh)
            .map_err(|message| PushError::Permanent(format!("keys.p256dh {message}")))?;
        let auth = decode_auth(&subscription.auth)
            .map_err(|message| PushError::Permanent(format!("keys.auth {message}")))?;
        if payload.is_empty() {
            // An empty record would be shorter than RFC 8188's smallest record size.
            return Err(PushError::Permanent("the payload is empty".into()));
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(PushError::Permanent(format!(
                "the payload is {} bytes, more than the {MAX_PAYLOAD_LEN} a push carries",
                payload.len()
            )));
        }
        if let Some(topic) = &options.topic {
            let valid = !topic.is_empty()
                && topic.len() <= 32
                && topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(PushError::Permanent(
                    "the topic must be 1 to 32 base64url characters".into(),
                ));
            }
        }
        let body = web_push_native::encrypt(
            payload.to_vec(),
            &ua_public,
            &web_push_native::Auth::from(auth),
        )
        .map_err(|err| PushError::Permanent(format!("encrypting the payload: {err}")))?;

        let origin = url.origin().ascii_serialization();
        let ttl = options.ttl.min(MAX_TTL).as_secs();
        let mut request = Request::post(url.as_str())
            .header("TTL", ttl)
            .header(header::CONTENT_ENCODING, "aes128gcm")
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::AUTHORIZATION, self.authorization(&origin)?);
        if let Some(urgency) = options.urgency {
            request = request.header("Urgency", urgency.as_str());
        }
        if let Some(topic) = &options.topic {
            request = request.header("Topic", topic.as_str());
        }
        request
            .body(Bytes::from(body))
            .map_err(|err| PushError::Permanent(format!("building the request: {err}")))
    }

    /// The VAPID header for an audience, signed afresh once the cached one is an hour old.
    fn authorization(&self, audience: &str) -> Result<HeaderValue, PushError> {
        let now = Instant::now();
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((value, renew_at)) = tokens.get(audience) {
            if now < *renew_at {
                return Ok(value.clone());
            }
        }
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(VAPID_TOKEN_LIFETIME)
            .as_secs();
        let value = HeaderValue::try_from(self.vapid.authorization(
            audience,
            &self.subject,
            expires_at,
        ))
        .map_err(|_| PushError::Permanent("the VAPID header is not a header value".into()))?;
        if tokens.len() >= VAPID_TOKEN_CACHE {
            tokens.clear();
        }
        tokens.insert(
            audience.to_owned(),
            (value.clone(), now + VAPID_TOKEN_REUSE),
        );
        Ok(value)
    }
}

fn check_subject(subject: &str) -> anyhow::Result<()> {
    let valid = if let Some(address) = subject.strip_prefix("mailto:") {
        address.contains('@') && !address.chars().any(char::is_whitespace)
    } else {
        Url::parse(subject).is_ok_and(|url| url.scheme() == "https" && url.host().is_some())
    };
    anyhow::ensure!(
        valid,
        "the VAPID subject must be a mailto: address or an https URL, not {subject:?}"
    );
    Ok(())
}

fn tls_config() -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || {
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("configuring TLS for web push")
    };
    Ok(match builder()?.with_native_roots() {
        Ok(roots) => roots.with_no_client_auth(),
        Err(err) => {
            // Without CA certificates the server still runs (the tests' receiver is plain
            // HTTP); pushes to https endpoints fail, and are retried, until some exist.
            tracing::warn!(error = %err, "no CA certificates found: web pushes over https will fail");
            builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    })
}

/// The outcome of a push service's answer (RFC 8030 §5, RFC 8292 §4).
fn classify(status: StatusCode, detail: impl FnOnce() -> String) -> Result<(), PushError> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        Err(PushError::Gone)
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Err(PushError::Transient(detail()))
    } else {
        Err(PushError::Permanent(detail()))
    }
}

/// A failed request: refused at once when the endpoint's name leads only to addresses the
/// server may not reach, otherwise worth retrying.
fn connect_error(err: &hyper_util::client::legacy::Error) -> PushError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        let private = current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .is_some_and(|inner| inner.is::<PrivateAddress>());
        if private || current.is::<PrivateAddress>() {
            return PushError::Permanent(PrivateAddress.to_string());
        }
        source = current.source();
    }
    // The chain names the host at most (never the path): "client error (Connect): …".
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    PushError::Transient(message)
}

/// The start of a push service's answer, printable characters only; the rest is left
/// unread (the connection is then dropped rather than reused).
async fn read_snippet(mut body: Incoming) -> String {
    let mut collected = Vec::new();
    while collected.len() < RESPONSE_SNIPPET_LEN {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    collected.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    collected.truncate(RESPONSE_SNIPPET_LEN);
    String::from_utf8_lossy(&collected)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// A push service's answer without the endpoint's path or its last segment (the token),
/// which some services echo in their errors.
fn redact(mut text: String, path: &str) -> String {
    let token = path.rsplit('/').next().unwrap_or_default();
    for secret in [path, token] {
        if secret.len() >= 8 {
            text = text.replace(secret, "…");
        }
    }
    text
}

/// The endpoint's name resolved only to addresses the server may not push to.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the push endpoint resolves only to non-public addresses")]
struct PrivateAddress;

/// DNS for the push client that drops loopback, private and other non-public addresses
/// (unless `allow_private`), so that a subscription naming a host that resolves into the
/// server's own network is never POSTed to. Literal addresses in an endpoint never reach
/// a resolver: [`check_endpoint`] handles those.
#[derive(Debug, Clone, Copy)]
struct PublicResolver {
    allow_private: bool,
}

impl tower::Service<Name> for PublicResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if usable.is_empty() && !found.is_empty() {
                return Err(io::Error::other(PrivateAddress));
            }
            Ok(usable.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use std::str::FromStr;
    use tower::Service as _;

    fn browser_keys() -> (p256::SecretKey, String, String) {
        let secret = p256::SecretKey::random(&mut OsRng);
        let p256dh = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false));
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        (secret, p256dh, auth)
    }

    fn sender(allow_http: bool) -> PushSender {
        PushSender::new(
            VapidKey::generate(),
            "mailto:ops@example.com".into(),
            allow_http,
            Duration::from_secs(5),
        )
        .expect("a push sender")
    }

    #[test]
    fn parse_accepts_a_browser_subscription_as_given() {
        let (_, p256dh, auth) = browser_keys();
        let endpoint = "https://fcm.googleapis.com/fcm/send/dGVzdA:APA91b";
        let subscription = PushSubscription::parse(endpoint, &p256dh, &auth, false).expect("valid");
        assert_eq!(subscription.endpoint, endpoint);
        assert_eq!(subscription.p256dh, p256dh);
        assert_eq!(subscription.auth, auth);
        assert_eq!(subscription.origin(), "https://fcm.googleapis.com");
        // Padded base64url is taken too.
        PushSubscription::parse(endpoint, &format!("{p256dh}="), &format!("{auth}=="), false)
            .expect("padded keys");
    }

    #[test]
    fn parse_refuses_http_unless_allowed() {
        let (_, p256dh, auth) = browser_keys();
        let endpoint = "http://push.example.com/abc";
        let refused = PushSubscription::parse(endpoint, &p256dh, &auth, false).unwrap_err();
        assert_eq!(refused.field, "endpoint");
        assert_eq!(refused.message, "must be an https URL");
        PushSubscription::parse(endpoint, &p256dh, &auth, true).expect("http allowed");
    }

    #[test]
    fn parse_refuses_malformed_endpoints() {
        let (_, p256dh, auth) = browser_keys();
        let long = format!("https://push.example.com/{}", "a".repeat(MAX_ENDPOINT_LEN));
        for (endpoint, message) in [
            ("", "is required"),
            ("/push/abc", "must be an absolute URL"),
            ("push.example.com/abc", "must be an absolute URL"),
            ("ftp://push.example.com/abc", "must be an https URL"),
            (
                "https://user:pw@push.example.com/abc",
                "must not contain credentials",
            ),
            (
                "https://user@push.example.com/abc",
                "must not contain credentials",
            ),
            (
                "https://push.example.com/abc#x",
                "must not contain a fragment",
            ),
            (
                " https://push.example.com/abc",
                "must not start or end with spaces",
            ),
            (long.as_str(), "must be at most 2048 characters"),
        ] {
            let refused =
                PushSubscription::parse(endpoint, &p256dh, &auth, true).expect_err(endpoint);
            assert_eq!(
                (refused.field, refused.message.as_str()),
                ("endpoint", message)
            );
        }
        let longest = format!(
            "https://push.example.com/{}",
            "a".repeat(MAX_ENDPOINT_LEN - "https://push.example.com/".len())
        );
        PushSubscription::parse(&longest, &p256dh, &auth, false).expect("2048 characters");
    }

    #[test]
    fn parse_refuses_local_addresses_unless_http_is_allowed() {
        let (_, p256dh, auth) = browser_keys();
        for endpoint in [
            "https://127.0.0.1/push",
            "https://10.1.2.3/push",
            "https://192.168.0.10:8443/push",
            "https://169.254.169.254/latest",
            "https://[::1]/push",
            "https://[fd00::1]/push",
            "https://[::ffff:127.0.0.1]/push",
            "https://localhost/push",
            "https://localhost./push",
            "https://api.localhost/push",
            "https://0.0.0.0/push",
        ] {
            let refused =
                PushSubscription::parse(endpoint, &p256dh, &auth, false).expect_err(endpoint);
            assert_eq!(refused.message, "must be on a public address", "{endpoint}");
            PushSubscription::parse(endpoint, &p256dh, &auth, true).expect(endpoint);
        }
        PushSubscription::parse("https://93.184.215.14/push", &p256dh, &auth, false)
            .expect("a public address");
    }

    #[test]
    fn parse_refuses_a_p256dh_that_is_not_an_uncompressed_point_on_the_curve() {
        let (secret, p256dh, auth) = browser_keys();
        let endpoint = "https://push.example.com/abc";
        PushSubscription::parse(endpoint, &p256dh, &auth, false).expect("a point on the curve");

        // x = 1, y = 1: y² = 1 but x³ - 3x + b = b - 2, so not on the curve.
        let mut off_curve = [0u8; 65];
        off_curve[0] = 0x04;
        off_curve[32] = 1;
        off_curve[64] = 1;
        let compressed = secret.public_key().to_encoded_point(true);
        let mut wrong_tag = secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        wrong_tag[0] = 0x05;
        for (key, message) in [
            (
                URL_SAFE_NO_PAD.encode(off_curve),
                "is not a point on the P-256 curve",
            ),
            (
                URL_SAFE_NO_PAD.encode([0u8; 65]),
                "must be an uncompressed P-256 public key (65 bytes)",
            ),
            (
                URL_SAFE_NO_PAD.encode(compressed.as_bytes()),
                "must be an uncompressed P-256 public key (65 bytes)",
            ),
            (
                URL_SAFE_NO_PAD.encode(wrong_tag),
                "must be an uncompressed P-256 public key (65 bytes)",
            ),
            ("not base64!".to_string(), "must be base64url"),
            ("A".repeat(200), "is too long for a P-256 public key"),
        ] {
            let refused = PushSubscription::parse(endpoint, &key, &auth, false).unwrap_err();
            assert_eq!(
                (refused.field, refused.message.as_str()),
                ("keys.p256dh", message)
            );
        }
    }

    #[test]
    fn parse_refuses_an_auth_secret_that_is_not_16_bytes() {
        let (_, p256dh, _) = browser_keys();
        let endpoint = "https://push.example.com/abc";
        for (auth, message) in [
            (URL_SAFE_NO_PAD.encode([1u8; 15]), "must be 16 bytes"),
            (URL_SAFE_NO_PAD.encode([1u8; 17]), "must be 16 bytes"),
            (String::new(), "must be 16 bytes"),
            ("+/+/+/+/+/+/+/+/+/+/+w".to_string(), "must be base64url"),
        ] {
            let refused = PushSubscription::parse(endpoint, &p256dh, &auth, false).unwrap_err();
            assert_eq!(
                (refused.field, refused.message.as_str()),
                ("keys.auth", message)
            );
        }
    }

    #[test]
    fn an_invalid_subscription_is_a_422_on_its_field() {
        let error =
            crate::error::Error::from(InvalidSubscription::new("keys.auth", "must be 16 bytes"));
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        match error {
            crate::error::Error::Validation { details, .. } => {
                assert_eq!(
                    details,
                    vec![crate::error::FieldError::new(
                        "keys.auth",
                        "must be 16 bytes"
                    )]
                );
            }
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn debug_output_shows_neither_the_endpoint_path_nor_keys() {
        let (_, p256dh, auth) = browser_keys();
        let subscription = PushSubscription::parse(
            "https://push.example.com/secret-token",
            &p256dh,
            &auth,
            false,
        )
        .expect("valid");
        let shown = format!("{subscription:?}");
        assert!(shown.contains("https://push.example.com"), "{shown}");
        assert!(
            !shown.contains("secret-token") && !shown.contains(&p256dh) && !shown.contains(&auth)
        );

        let key = VapidKey::generate();
        let sender = PushSender::new(
            key.clone(),
            "mailto:ops@example.com".into(),
            false,
            Duration::from_secs(1),
        )
        .expect("a push sender");
        let shown = format!("{key:?} {sender:?}");
        assert!(shown.contains(&key.public_key_base64url()), "{shown}");
        assert!(!shown.contains(&key.to_base64url()), "{shown}");
    }

    #[test]
    fn a_vapid_key_round_trips_through_base64url() {
        let key = VapidKey::generate();
        let private = key.to_base64url();
        assert_eq!(private.len(), 43);
        let again = VapidKey::from_base64url(&private).expect("round trip");
        assert_eq!(again.public_key_base64url(), key.public_key_base64url());
        let public = URL_SAFE_NO_PAD
            .decode(key.public_key_base64url())
            .expect("base64url");
        assert_eq!((public.len(), public[0]), (65, 0x04));
        p256::PublicKey::from_sec1_bytes(&public).expect("a point on the curve");

        assert_eq!(
            VapidKey::from_base64url(&URL_SAFE_NO_PAD.encode([0u8; 32])).unwrap_err(),
            InvalidVapidKey("not a valid P-256 scalar")
        );
        assert_eq!(
            VapidKey::from_base64url(&URL_SAFE_NO_PAD.encode([1u8; 31])).unwrap_err(),
            InvalidVapidKey("not 32 bytes")
        );
        assert_eq!(
            VapidKey::from_base64url("***").unwrap_err(),
            InvalidVapidKey("not base64url")
        );
    }

    #[test]
    fn load_or_create_keeps_the_key_in_a_private_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("data").join("vapid_private_key");
        let created = VapidKey::load_or_create(&path).expect("created");
        let stored = std::fs::read_to_string(&path).expect("written");
        assert_eq!(stored, created.to_base64url());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = VapidKey::load_or_create(&path).expect("loaded");
        assert_eq!(
            loaded.public_key_base64url(),
            created.public_key_base64url()
        );

        std::fs::write(&path, "not a key").expect("overwrite");
        let error = VapidKey::load_or_create(&path).unwrap_err();
        assert!(
            format!("{error:#}").contains("invalid VAPID private key"),
            "{error:#}"
        );
    }

    fn verify_token(
        token: &str,
        key: &VapidKey,
    ) -> jsonwebtoken::errors::Result<serde_json::Value> {
        let public = URL_SAFE_NO_PAD
            .decode(key.public_key_base64url())
            .expect("base64url");
        let decoding = jsonwebtoken::DecodingKey::from_ec_components(
            &URL_SAFE_NO_PAD.encode(&public[1..33]),
            &URL_SAFE_NO_PAD.encode(&public[33..]),
        )?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
            .map(|data| data.claims)
    }

    #[test]
    fn the_vapid_token_is_an_es256_jwt_of_the_key() {
        let key = VapidKey::generate();
        let expires_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 600;
        let token = key.sign_token(
            "https://push.example.com:8443",
            "mailto:ops@example.com",
            expires_at,
        );
        let claims = verify_token(&token, &key).expect("verifies with the key's public half");
        assert_eq!(
            claims,
            serde_json::json!({"aud": "https://push.example.com:8443", "exp": expires_at, "sub": "mailto:ops@example.com"})
        );
        verify_token(&token, &VapidKey::generate()).expect_err("another key's public half");
    }

    fn header<'a>(request: &'a Request<Bytes>, name: &str) -> &'a str {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn a_request_is_encrypted_for_the_subscription_and_signed_for_the_origin() {
        let sender = sender(false);
        let (secret, p256dh, auth) = browser_keys();
        let subscription = PushSubscription::parse(
            "https://push.example.com:8443/wpush/v2/abc",
            &p256dh,
            &auth,
            false,
        )
        .expect("valid");
        let options = PushOptions {
            ttl: Duration::from_secs(3600),
            urgency: Some(Urgency::High),
            topic: Some("task-42".into()),
        };
        let request = sender
            .build_request(&subscription, b"{\"hello\":1}", &options)
            .expect("a request");

        assert_eq!(request.method(), hyper::Method::POST);
        assert_eq!(request.uri(), "https://push.example.com:8443/wpush/v2/abc");
        assert_eq!(header(&request, "ttl"), "3600");
        assert_eq!(header(&request, "content-encoding"), "aes128gcm");
        assert_eq!(header(&request, "urgency"), "high");
        assert_eq!(header(&request, "topic"), "task-42");
        assert_eq!(
            header(&request, "content-length"),
            request.body().len().to_string()
        );

        let authorization = header(&request, "authorization");
        let (token, k) = authorization
            .strip_prefix("vapid t=")
            .and_then(|rest| rest.split_once(", k="))
            .expect("vapid t=…, k=…");
        assert_eq!(k, sender.public_key_base64url());
        let claims = verify_token(token, &sender.vapid).expect("signed by the VAPID key");
        assert_eq!(claims["aud"], "https://push.example.com:8443");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let exp = claims["exp"].as_u64().expect("exp");
        assert!(
            exp > now + 11 * 3600 && exp <= now + 12 * 3600 + 5,
            "exp {exp}, now {now}"
        );

        let auth_secret = web_push_native::Auth::from([7u8; 16]);
        let plaintext = web_push_native::decrypt(request.body().to_vec(), &secret, &auth_secret)
            .expect("decrypts with the browser's keys");
        assert_eq!(plaintext, b"{\"hello\":1}");

        // The token is reused for the same push service.
        let again = sender
            .build_request(&subscription, b"x", &PushOptions::default())
            .expect("a request");
        assert_eq!(header(&again, "authorization"), authorization);
        assert_eq!(header(&again, "ttl"), "0");
    }

    #[test]
    fn the_payload_size_the_topic_and_the_ttl_are_bounded() {
        let sender = sender(false);
        let (_, p256dh, auth) = browser_keys();
        let subscription =
            PushSubscription::parse("https://push.example.com/abc", &p256dh, &auth, false)
                .expect("valid");
        let options = PushOptions::default();
        let largest = sender
            .build_request(&subscription, &[b'a'; MAX_PAYLOAD_LEN], &options)
            .expect("the largest payload");
        assert_eq!(largest.body().len(), 4096);
        for payload in [&[b'a'; MAX_PAYLOAD_LEN + 1][..], &[][..]] {
            assert!(matches!(
                sender.build_request(&subscription, payload, &options),
                Err(PushError::Permanent(_))
            ));
        }
        for topic in ["", "has space", &"a".repeat(33)] {
            let options = PushOptions {
                topic: Some(topic.to_string()),
                ..PushOptions::default()
            };
            assert!(matches!(
                sender.build_request(&subscription, b"x", &options),
                Err(PushError::Permanent(_))
            ));
        }
        let options = PushOptions {
            ttl: Duration::from_secs(365 * 24 * 3600),
            ..PushOptions::default()
        };
        let request = sender
            .build_request(&subscription, b"x", &options)
            .expect("a request");
        assert_eq!(header(&request, "ttl"), MAX_TTL.as_secs().to_string());
    }

    #[test]
    fn the_sender_rechecks_the_endpoint_it_is_given() {
        let (_, p256dh, _) = browser_keys();
        let subscription = PushSubscription {
            endpoint: "http://127.0.0.1:9/push".into(),
            p256dh,
            auth: URL_SAFE_NO_PAD.encode([1u8; 8]),
        };
        let refused = sender(false)
            .build_request(&subscription, b"x", &PushOptions::default())
            .unwrap_err();
        assert_eq!(
            refused,
            PushError::Permanent("endpoint must be an https URL".into())
        );
        let refused = sender(true)
            .build_request(&subscription, b"x", &PushOptions::default())
            .unwrap_err();
        assert_eq!(
            refused,
            PushError::Permanent("keys.auth must be 16 bytes".into())
        );
    }

    /// RFC 8291 Appendix A: the library decrypts the RFC's message with the RFC's keys.
    #[test]
    fn the_rfc_8291_example_decrypts() {
        let decode = |text: &str| URL_SAFE_NO_PAD.decode(text).expect("base64url");
        let body = decode("DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN");
        let ua_private =
            p256::SecretKey::from_slice(&decode("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
                .expect("key");
        let auth: [u8; 16] = decode("BTBZMqHH6r4Tts7J_aSIgg")
            .try_into()
            .expect("16 bytes");
        let auth = web_push_native::Auth::from(auth);
        let plaintext = web_push_native::decrypt(body, &ua_private, &auth).expect("decrypts");
        assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
    }

    #[test]
    fn the_endpoint_path_is_kept_out_of_error_text() {
        let path = "/wpush/v2/gAAAAABk-secret-token";
        assert_eq!(
            redact(format!("no subscription at {path}"), path),
            "no subscription at …"
        );
        assert_eq!(
            redact("token gAAAAABk-secret-token expired".into(), path),
            "token … expired"
        );
        assert_eq!(redact("a/b/c".into(), "/"), "a/b/c");
    }

    #[test]
    fn answers_are_classified_for_the_outbox() {
        let detail = || "detail".to_string();
        for status in [200, 201, 202] {
            assert_eq!(
                classify(StatusCode::from_u16(status).expect("status"), detail),
                Ok(())
            );
        }
        for status in [404, 410] {
            assert_eq!(
                classify(StatusCode::from_u16(status).expect("status"), detail),
                Err(PushError::Gone)
            );
        }
        for status in [429, 500, 502, 503] {
            assert_eq!(
                classify(StatusCode::from_u16(status).expect("status"), detail),
                Err(PushError::Transient("detail".into())),
                "{status}"
            );
        }
        for status in [301, 307, 400, 401, 403, 413] {
            assert_eq!(
                classify(StatusCode::from_u16(status).expect("status"), detail),
                Err(PushError::Permanent("detail".into())),
                "{status}"
            );
        }
    }

    #[test]
    fn public_addresses_are_told_from_the_rest() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(IpAddr::from_str(ip).expect("ip")), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "240.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(IpAddr::from_str(ip).expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn the_resolver_drops_loopback_addresses_unless_allowed() {
        let name = Name::from_str("localhost").expect("name");
        let refused = PublicResolver {
            allow_private: false,
        }
        .call(name.clone())
        .await
        .expect_err("localhost is loopback");
        assert!(refused
            .get_ref()
            .is_some_and(|inner| inner.is::<PrivateAddress>()));
        let found: Vec<SocketAddr> = PublicResolver {
            allow_private: true,
        }
        .call(name)
        .await
        .expect("resolves")
        .collect();
        assert!(
            found.iter().any(|addr| addr.ip().is_loopback()),
            "{found:?}"
        );
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_for_good() {
        let (_, p256dh, auth) = browser_keys();
        let sender = sender(false);
        let subscription = PushSubscription {
            endpoint: "https://localhost/push".into(),
            p256dh,
            auth,
        };
        // The endpoint check refuses the name itself...
        assert_eq!(
            sender.send(&subscription, b"x", Duration::ZERO).await,
            Err(PushError::Permanent(
                "endpoint must be on a public address".into()
            ))
        );
        // ...and the resolver what a name leads to, found through a real connection attempt.
        let request = Request::post("https://localhost:9/push")
            .body(Full::new(Bytes::from_static(b"x")))
            .expect("request");
        let error = sender.client.request(request).await.expect_err("refused");
        assert_eq!(
            connect_error(&error),
            PushError::Permanent(PrivateAddress.to_string())
        );
    }

    #[test]
    fn the_subject_is_a_mailto_address_or_an_https_url() {
        for subject in ["mailto:ops@example.com", "https://example.com/contact"] {
            PushSender::new(
                VapidKey::generate(),
                subject.into(),
                false,
                Duration::from_secs(1),
            )
            .expect(subject);
        }
        for subject in [
            "ops@example.com",
            "mailto:",
            "mailto:ops",
            "http://example.com",
            "",
        ] {
            PushSender::new(
                VapidKey::generate(),
                subject.into(),
                false,
                Duration::from_secs(1),
            )
            .expect_err(subject);
        }
    }
}
