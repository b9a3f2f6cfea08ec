//! What instances say to each other on a bus is signed: `<hex HMAC-SHA256>.<json>`, with a
//! key derived from the JWT secret every instance already shares. Anyone else who can
//! PUBLISH to Redis or `pg_notify` on the database cannot put words in a user's stream:
//! what does not verify is dropped (and counted) before it is even parsed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Hex characters of the signature, and the separator after it.
pub const SEAL_LEN: usize = 64 + 1;

#[derive(Clone)]
pub struct BusKey(HmacSha256);

impl BusKey {
    /// The bus key of a deployment: derived from its JWT secret, never equal to it.
    pub fn derive(jwt_secret: &Secret) -> Self {
        let mut derive = hmac(jwt_secret.expose().as_bytes());
        derive.update(b"taskstream bus signing key v1");
        Self(hmac(&derive.finalize().into_bytes()))
    }

    pub fn seal(&self, json: &str) -> String {
        let mut mac = self.0.clone();
        mac.update(json.as_bytes());
        format!("{}.{json}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The JSON of a message signed with this key, or `None`.
    pub fn open<'a>(&self, payload: &'a str) -> Option<&'a str> {
        let (signature, json) = payload.split_once('.')?;
        let signature = hex::decode(signature).ok()?;
        let mut mac = self.0.clone();
        mac.update(json.as_bytes());
        // Constant time: the comparison reveals nothing about the expected signature.
        mac.verify_slice(&signature).ok().map(|()| json)
    }
}

fn hmac(key: &[u8]) -> HmacSha256 {
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes keys of any length")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_key_sealed_opens() {
        let key = BusKey::derive(&Secret::new("a".repeat(32)));
        let other = BusKey::derive(&Secret::new("b".repeat(32)));
        let sealed = key.seal(r#"{"u":1}"#);
        assert_eq!(sealed.len(), SEAL_LEN + 7);
        assert_eq!(key.open(&sealed), Some(r#"{"u":1}"#));
        assert_eq!(other.open(&sealed), None);
        assert_eq!(key.open(r#"{"u":1}"#), None);
        let tampered = sealed.replace(r#""u":1"#, r#""u":2"#);
        assert_eq!(key.open(&tampered), None);
        assert_eq!(key.open("zz.{}"), None);
    }
}
