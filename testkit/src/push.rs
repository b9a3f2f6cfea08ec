//! A real Web Push receiver for tests: an HTTP server on `127.0.0.1`, port 0, playing both
//! the push service and the browser behind it. It checks each push as a push service would
//! (`Content-Encoding: aes128gcm`, `TTL`, a VAPID token signed by the key in `k`, for this
//! origin, expiring within 24 hours, with a contact), then decrypts it with the
//! subscription's private key and auth secret as the browser would, and keeps the
//! plaintext.
//!
//! The decryption here is written from RFC 8291 and RFC 8188 on the primitives alone,
//! independently of the library the server encrypts with, and is itself tested on the
//! RFC's example ([`decrypt`]); the VAPID check is `jsonwebtoken`'s, not the server's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::rand_core::RngCore as _;
use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{Aes128Gcm, Key, Nonce};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use sha2::Sha256;
use tokio::sync::Notify;

/// Largest body a push service must take (RFC 8030 §7.2); more is answered 413.
pub const MAX_BODY: usize = 4096;

/// A subscription as a browser's `PushSubscription.toJSON()` gives it.
#[derive(Debug, Clone)]
pub struct TestSubscription {
    pub id: String,
    /// `http://127.0.0.1:PORT/push/<id>`.
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed, base64url.
    pub p256dh: String,
    /// The 16-byte auth secret, base64url.
    pub auth: String,
}

impl TestSubscription {
    /// The body of `POST /push/subscribe`: `{endpoint, keys: {p256dh, auth}}`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "endpoint": self.endpoint,
            "keys": { "p256dh": self.p256dh, "auth": self.auth },
        })
    }
}

/// One push received and decrypted, with what came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPush {
    pub plaintext: Vec<u8>,
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    /// The `k` of the VAPID header: the sender's public key.
    pub vapid_key: String,
    /// The token's `sub` claim.
    pub subject: String,
    /// The token's `exp` claim.
    pub expires_at: u64,
}

struct Mailbox {
    secret: p256::SecretKey,
    auth: [u8; 16],
    /// Answered instead of accepting, while set.
    status: Option<StatusCode>,
    /// Never answers, while set.
    hang: bool,
    requests: usize,
    received: Vec<ReceivedPush>,
    rejections: Vec<String>,
}

struct Shared {
    origin: String,
    mailboxes: Mutex<HashMap<String, Mailbox>>,
    arrived: Notify,
}

impl Shared {
    fn mailboxes(&self) -> MutexGuard<'_, HashMap<String, Mailbox>> {
        self.mailboxes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The receiver; stops when dropped.
pub struct PushReceiver {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl PushReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the push receiver");
        let address: SocketAddr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            origin: format!("http://{address}"),
            mailboxes: Mutex::new(HashMap::new()),
            arrived: Notify::new(),
        });
        let router = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { shared, server }
    }

    /// `http://127.0.0.1:PORT`: the audience VAPID tokens must name.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// A new subscription, with a fresh key pair and auth secret.
    pub fn subscribe(&self) -> TestSubscription {
        let auth = random_auth();
        self.add(auth, auth)
    }

    /// A subscription whose advertised auth secret is not the one this receiver decrypts
    /// with, so every push to it fails to decrypt (and is answered 400).
    pub fn subscribe_with_mismatched_auth(&self) -> TestSubscription {
        self.add(random_auth(), random_auth())
    }

    fn add(&self, advertised_auth: [u8; 16], auth: [u8; 16]) -> TestSubscription {
        let secret = p256::SecretKey::random(&mut OsRng);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let subscription = TestSubscription {
            endpoint: format!("{}/push/{id}", self.shared.origin),
            p256dh: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false)),
            auth: URL_SAFE_NO_PAD.encode(advertised_auth),
            id: id.clone(),
        };
        self.shared.mailboxes().insert(
            id,
            Mailbox {
                secret,
                auth,
                status: None,
                hang: false,
                requests: 0,
                received: Vec::new(),
                rejections: Vec::new(),
            },
        );
        subscription
    }

    /// Forgets a subscription: pushes to it are answered 410, as for an unsubscribed
    /// browser.
    pub fn unsubscribe(&self, id: &str) {
        self.shared.mailboxes().remove(id);
    }

    /// Answers every push to `id` with `status` (without reading it), until
    /// [`PushReceiver::accept`]: 410 for a browser gone, 500 for an outage, 429, 413…
    /// A 3xx answer carries a `Location` back to the same endpoint.
    pub fn set_status(&self, id: &str, status: StatusCode) {
        self.with(id, |mailbox| mailbox.status = Some(status));
    }

    /// Back to checking, decrypting and answering 201.
    pub fn accept(&self, id: &str) {
        self.with(id, |mailbox| {
            mailbox.status = None;
            mailbox.hang = false;
        });
    }

    /// Pushes to `id` are read but never answered, until [`PushReceiver::accept`].
    pub fn hang(&self, id: &str) {
        self.with(id, |mailbox| mailbox.hang = true);
    }

    fn with<T>(&self, id: &str, change: impl FnOnce(&mut Mailbox) -> T) -> T {
        let mut mailboxes = self.shared.mailboxes();
        let mailbox = mailboxes
            .get_mut(id)
            .unwrap_or_else(|| panic!("no subscription {id} at the push receiver"));
        change(mailbox)
    }

    /// The plaintexts received for `id`, in arrival order.
    pub fn messages(&self, id: &str) -> Vec<Vec<u8>> {
        self.received(id)
            .into_iter()
            .map(|push| push.plaintext)
            .collect()
    }

    /// The pushes received for `id`, with their headers and token claims.
    pub fn received(&self, id: &str) -> Vec<ReceivedPush> {
        self.shared
            .mailboxes()
            .get(id)
            .map(|mailbox| mailbox.received.clone())
            .unwrap_or_default()
    }

    /// Why pushes to `id` were refused (bad headers, token, or decryption), in order.
    pub fn rejections(&self, id: &str) -> Vec<String> {
        self.shared
            .mailboxes()
            .get(id)
            .map(|mailbox| mailbox.rejections.clone())
            .unwrap_or_default()
    }

    /// Every POST that reached `id`, whatever its answer.
    pub fn requests(&self, id: &str) -> usize {
        self.shared
            .mailboxes()
            .get(id)
            .map_or(0, |mailbox| mailbox.requests)
    }

    /// Pushes received and decrypted, all subscriptions together.
    pub fn count_all(&self) -> usize {
        self.shared
            .mailboxes()
            .values()
            .map(|mailbox| mailbox.received.len())
            .sum()
    }

    /// Waits until `id` has received `n` pushes or `timeout` passed, and returns what it
    /// has then (the caller asserts on it).
    pub async fn wait_for(&self, id: &str, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            // Registered before looking, so an arrival in between is not missed.
            arrived.as_mut().enable();
            let messages = self.messages(id);
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages(id);
            }
        }
    }
}

fn random_auth() -> [u8; 16] {
    let mut auth = [0u8; 16];
    OsRng.fill_bytes(&mut auth);
    auth
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (secret, auth, status, hang) = {
        let mut mailboxes = shared.mailboxes();
        let Some(mailbox) = mailboxes.get_mut(&id) else {
            return StatusCode::GONE.into_response();
        };
        mailbox.requests += 1;
        (
            mailbox.secret.clone(),
            mailbox.auth,
            mailbox.status,
            mailbox.hang,
        )
    };
    if hang {
        std::future::pending::<()>().await;
    }
    if let Some(status) = status {
        if status.is_redirection() {
            let location = format!("{}/push/{id}", shared.origin);
            return (status, [(header::LOCATION, location)]).into_response();
        }
        // Like some push services, the answer names the endpoint: the sender must keep
        // that path (a capability) out of its errors.
        return (status, format!("{status} for /push/{id}")).into_response();
    }
    match check_and_decrypt(&shared.origin, &headers, &body, &secret, &auth) {
        Ok(push) => {
            if let Some(mailbox) = shared.mailboxes().get_mut(&id) {
                mailbox.received.push(push);
            }
            shared.arrived.notify_waiters();
            (
                StatusCode::CREATED,
                [(header::LOCATION, format!("{}/message/{id}", shared.origin))],
            )
                .into_response()
        }
        Err((status, reason)) => {
            if let Some(mailbox) = shared.mailboxes().get_mut(&id) {
                mailbox.rejections.push(reason.clone());
            }
            (status, reason).into_response()
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// What a push service and then the browser check, in that order.
fn check_and_decrypt(
    origin: &str,
    headers: &HeaderMap,
    body: &[u8],
    secret: &p256::SecretKey,
    auth: &[u8; 16],
) -> Result<ReceivedPush, (StatusCode, String)> {
    let bad = |reason: &str| (StatusCode::BAD_REQUEST, reason.to_string());
    if header_text(headers, "content-encoding") != Some("aes128gcm") {
        return Err(bad("Content-Encoding must be aes128gcm"));
    }
    let ttl = header_text(headers, "ttl")
        .and_then(|ttl| ttl.parse::<u64>().ok())
        .ok_or_else(|| bad("TTL must be a number of seconds"))?;
    let urgency = header_text(headers, "urgency").map(str::to_owned);
    if let Some(urgency) = &urgency {
        if !["very-low", "low", "normal", "high"].contains(&urgency.as_str()) {
            return Err(bad("Urgency must be very-low, low, normal or high"));
        }
    }
    let topic = header_text(headers, "topic").map(str::to_owned);
    if let Some(topic) = &topic {
        let valid = topic.len() <= 32
            && topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(bad("Topic must be at most 32 base64url characters"));
        }
    }
    let (subject, expires_at, vapid_key) = check_vapid(origin, headers)?;
    if body.len() > MAX_BODY {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} bytes is more than {MAX_BODY}", body.len()),
        ));
    }
    let plaintext =
        decrypt(body, secret, auth).map_err(|reason| bad(&format!("cannot decrypt: {reason}")))?;
    Ok(ReceivedPush {
        plaintext,
        ttl,
        urgency,
        topic,
        vapid_key,
        subject,
        expires_at,
    })
}

/// RFC 8292: `Authorization: vapid t=<JWT>, k=<public key>`; the JWT is ES256, signed
/// by `k`, for this origin, expiring within 24 hours, with a `mailto:` or `https:` subject.
fn check_vapid(
    origin: &str,
    headers: &HeaderMap,
) -> Result<(String, u64, String), (StatusCode, String)> {
    let unauthorized = |reason: &str| (StatusCode::UNAUTHORIZED, reason.to_string());
    let forbidden = |reason: &str| (StatusCode::FORBIDDEN, reason.to_string());
    let authorization = header_text(headers, header::AUTHORIZATION.as_str())
        .ok_or_else(|| unauthorized("no Authorization header"))?;
    let (scheme, parameters) = authorization
        .split_once(' ')
        .ok_or_else(|| unauthorized("Authorization is not vapid"))?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(unauthorized("Authorization is not vapid"));
    }
    let mut token = None;
    let mut key = None;
    for parameter in parameters.split(',') {
        match parameter.trim().split_once('=') {
            Some(("t", value)) => token = Some(value),
            Some(("k", value)) => key = Some(value),
            _ => return Err(unauthorized("vapid takes t and k only")),
        }
    }
    let (Some(token), Some(key)) = (token, key) else {
        return Err(unauthorized("vapid needs t and k"));
    };
    let point = URL_SAFE_NO_PAD
        .decode(key)
        .ok()
        .filter(|point| point.len() == 65 && point[0] == 0x04)
        .ok_or_else(|| unauthorized("k is not an uncompressed P-256 key"))?;
    let decoding = jsonwebtoken::DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&point[1..33]),
        &URL_SAFE_NO_PAD.encode(&point[33..]),
    )
    .map_err(|_| unauthorized("k is not a P-256 key"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
        .map_err(|err| forbidden(&format!("VAPID token refused: {err}")))?
        .claims;
    let expires_at = claims["exp"]
        .as_u64()
        .ok_or_else(|| forbidden("exp is not a number"))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    if expires_at > now + 24 * 3600 {
        return Err(forbidden("exp is more than 24 hours ahead"));
    }
    let subject = claims["sub"].as_str().unwrap_or_default().to_owned();
    if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
        return Err(forbidden("sub must be a mailto: or https: URI"));
    }
    Ok((subject, expires_at, key.to_owned()))
}

/// Decrypts a Web Push message as a browser does (RFC 8291 §3.4, one RFC 8188 record):
/// the header's key id is the sender's ephemeral public key; ECDH with the browser's
/// private key, keyed with the auth secret, gives the input keying material, from which
/// the header's salt derives the content key and nonce.
pub fn decrypt(body: &[u8], secret: &p256::SecretKey, auth: &[u8; 16]) -> Result<Vec<u8>, String> {
    const HEADER: usize = 16 + 4 + 1 + 65;
    if body.len() < HEADER {
        return Err("shorter than the aes128gcm header".into());
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes([body[16], body[17], body[18], body[19]]) as usize;
    if body[20] != 65 {
        return Err("the key id is not a 65-byte public key".into());
    }
    let sender_public = p256::PublicKey::from_sec1_bytes(&body[21..HEADER])
        .map_err(|_| "the key id is not a P-256 public key")?;
    let record = &body[HEADER..];
    if record_size < 18 {
        return Err("record size below 18".into());
    }
    // RFC 8291 §4: one record, so all of it fits in the record size.
    if record.len() > record_size {
        return Err("more than one record".into());
    }

    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), sender_public.as_affine());
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(secret.public_key().to_encoded_point(false).as_bytes());
    key_info.extend_from_slice(sender_public.to_encoded_point(false).as_bytes());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(&auth[..]), &shared.raw_secret_bytes()[..])
        .expand(&key_info, &mut ikm)
        .map_err(|_| "HKDF")?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut content_key = [0u8; 16];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut content_key)
        .map_err(|_| "HKDF")?;
    // The first record's sequence number is 0, so the nonce is the derived one as is.
    let mut nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .map_err(|_| "HKDF")?;

    let mut padded = Aes128Gcm::new(&Key::<Aes128Gcm>::from(content_key))
        .decrypt(&Nonce::from(nonce), record)
        .map_err(|_| "authentication failed (wrong keys or a corrupted message)")?;
    // Plaintext, then the last record's delimiter 0x02, then zero padding.
    let delimiter = padded
        .iter()
        .rposition(|&byte| byte != 0)
        .ok_or("no padding delimiter")?;
    if padded[delimiter] != 2 {
        return Err("the last record's delimiter is not 2".into());
    }
    padded.truncate(delimiter);
    Ok(padded)
}
