//! Buyer tokens: the proof that a request comes from the person who took a
//! place in a sale's queue. A buyer is an unverified e-mail address, so
//! without a token anyone who knows an address could watch that buyer's
//! place, confirm for them, or read their order. The buy that puts an
//! identity into a sale's queue hands out one token; every later request
//! about that buyer (position, confirm, by-email, events) must carry it.
//!
//! A token is `<kid>.<payload>.<mac>`: the payload (base64url JSON) names the
//! sale, the buyer's normalised identity and an expiry (at least the sale's
//! end); the MAC is HMAC-SHA256 over the key id and the payload, with the
//! secret named by the key id. Several keys may be configured: the first
//! signs, all verify, so a secret can be rotated without logging buyers out
//! in the middle of a sale. Nothing is stored per token: the server checks
//! the signature, the expiry and that the token names this sale and buyer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{Email, SaleId};
use crate::error::ApiError;

/// The request header that carries a buyer token (never the URL, which
/// proxies log and browsers keep).
pub const HEADER: &str = "x-buyer-token";

/// The error codes of this module, as clients see them.
pub mod code {
    /// 401: the request has no token.
    pub const REQUIRED: &str = "buyer_token_required";
    /// 401: malformed, expired, an unknown key or a bad signature.
    pub const INVALID: &str = "invalid_buyer_token";
    /// 403: a good token, but of another buyer or another sale.
    pub const MISMATCH: &str = "buyer_token_mismatch";
    /// 400: a buy's `clientKey` that is not 16 to 64 of `A-Z a-z 0-9 _ -`.
    pub const INVALID_CLIENT_KEY: &str = "invalid_client_key";
}

/// The length range of a buy's `clientKey`: long enough not to be guessed.
pub const CLIENT_KEY_LEN: std::ops::RangeInclusive<usize> = 16..=64;

/// A buy's `clientKey`: a random string the client makes once per sale and
/// buyer and sends with each buy. The server keeps its digest with the
/// first buy; a repeated buy with the same key gets the token again (the
/// first answer may have been lost on the way), any other buy gets none.
pub struct ClientKey(String);

impl ClientKey {
    pub fn parse(raw: &str) -> Result<ClientKey, ApiError> {
        let ok = CLIENT_KEY_LEN.contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if ok {
            Ok(ClientKey(raw.to_string()))
        } else {
            Err(ApiError::bad_request(
                code::INVALID_CLIENT_KEY,
                "clientKey must be 16 to 64 characters from A-Z a-z 0-9 _ -",
            ))
        }
    }

    /// What the server stores: the key's SHA-256, hex (never the key).
    pub fn digest(&self) -> String {
        Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `stored` is this key's digest (in constant time).
    pub fn matches(&self, stored: &str) -> bool {
        let mine = self.digest();
        mine.len() == stored.len()
            && mine
                .bytes()
                .zip(stored.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

/// Key ids: short, and free of the token's `.` separator.
pub const MAX_KID_LEN: usize = 16;
/// Longer tokens are refused unread (the payload is at most a sale id, a
/// 128-byte identity and a number).
const MAX_TOKEN_LEN: usize = 1024;
/// Domain separation: a MAC made for anything else never verifies here.
const CONTEXT: &[u8] = b"flashsale buyer token v1\0";

type HmacSha256 = Hmac<Sha256>;

/// Secret bytes that never print (`Debug` says `<redacted>`).
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A key for another purpose drawn from this secret (HMAC as a key
    /// derivation function), so one secret can serve two uses without a
    /// MAC of one ever being valid for the other.
    pub fn derive(&self, purpose: &[u8]) -> Secret {
        let mut mac = mac_with(self.bytes());
        mac.update(purpose);
        Secret(mac.finalize().into_bytes().to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One `kid:secret` entry of `BUYER_TOKEN_SECRETS` as given, checked later
/// ([`SigningKey::parse`]) so that a bad entry is reported without echoing
/// the secret (clap prints the value of an argument it cannot parse).
#[derive(Clone)]
pub struct SecretSpec(String);

impl std::str::FromStr for SecretSpec {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretSpec(s.to_string()))
    }
}

impl SecretSpec {
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_once(':') {
            Some((kid, _)) => write!(f, "{}:<redacted>", kid.trim()),
            None => f.write_str("<redacted>"),
        }
    }
}

/// A key id and its secret.
#[derive(Debug, Clone)]
pub struct SigningKey {
    kid: String,
    secret: Secret,
    /// The MAC with the secret keyed in and the token's fixed start
    /// (context, key id, `.`) absorbed, made once: each token's MAC starts
    /// from a copy instead of hashing the key's pads again.
    prefix: MacPrefix,
}

/// A keyed MAC state (never printed: it is as good as the secret).
#[derive(Clone)]
struct MacPrefix(HmacSha256);

impl fmt::Debug for MacPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MacPrefix(<redacted>)")
    }
}

/// Why a configured key is refused (never containing the secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("an entry is not `kid:secret`")]
    NotKidSecret,
    #[error("key id {0:?} must be 1 to 16 letters, digits, '-' or '_'")]
    BadKid(String),
    #[error("key id {0:?} is given twice")]
    DuplicateKid(String),
    #[error("the secret of key id {0:?} is empty")]
    EmptySecret(String),
    #[error("no key")]
    NoKey,
}

impl SigningKey {
    pub fn new(kid: &str, secret: Secret) -> Result<SigningKey, KeyError> {
        let kid_ok = !kid.is_empty()
            && kid.len() <= MAX_KID_LEN
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !kid_ok {
            return Err(KeyError::BadKid(kid.to_string()));
        }
        if secret.is_empty() {
            return Err(KeyError::EmptySecret(kid.to_string()));
        }
        let mut mac = mac_with(secret.bytes());
        mac.update(CONTEXT);
        mac.update(kid.as_bytes());
        mac.update(b".");
        Ok(SigningKey {
            kid: kid.to_string(),
            secret,
            prefix: MacPrefix(mac),
        })
    }

    /// `kid:secret` (the secret is everything after the first colon).
    pub fn parse(spec: &SecretSpec) -> Result<SigningKey, KeyError> {
        let (kid, secret) = spec
            .0
            .trim()
            .split_once(':')
            .ok_or(KeyError::NotKidSecret)?;
        SigningKey::new(kid.trim(), Secret::new(secret.as_bytes()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn secret_len(&self) -> usize {
        self.secret.len()
    }
}

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not three parts, bad base64, bad JSON, too long.
    Malformed,
    /// A key id that is not configured (any more).
    UnknownKey,
    BadSignature,
    Expired,
    /// Genuine, but for another sale or another buyer.
    Mismatch,
}

impl From<TokenError> for ApiError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Mismatch => ApiError::forbidden(
                code::MISMATCH,
                "this buyer token belongs to another buyer or another sale",
            ),
            // One answer for every kind of bad token: telling a forger which
            // check failed would only help them.
            _ => ApiError::client(
                StatusCode::UNAUTHORIZED,
                code::INVALID,
                "the buyer token is invalid or expired",
            ),
        }
    }
}

/// A refusal for a request that carries no token.
pub fn required() -> ApiError {
    ApiError::client(
        StatusCode::UNAUTHORIZED,
        code::REQUIRED,
        "this request needs the buyer token from your buy (X-Buyer-Token header)",
    )
}

/// What a token says, as it is signed (borrowing: nothing copied).
#[derive(Serialize)]
struct ClaimsOf<'a> {
    s: &'a str,
    u: &'a str,
    x: u64,
}

/// What a token says.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Claims {
    /// The sale.
    s: String,
    /// The buyer's normalised identity.
    u: String,
    /// Expiry, Unix seconds.
    x: u64,
}

/// Signs and verifies buyer tokens; also remembers each sale's end for a
/// moment, so that issuing a token does not cost an engine call per buy.
#[derive(Debug)]
pub struct BuyerTokens {
    /// The first signs; all verify.
    keys: Vec<SigningKey>,
    /// How long after the sale's end a token stays good (to look at the
    /// order afterwards; and a sale may be extended a little).
    grace: Duration,
    ends: SaleEnds,
}

impl BuyerTokens {
    pub fn new(keys: Vec<SigningKey>, grace: Duration) -> Result<BuyerTokens, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::NoKey);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid.clone()));
            }
        }
        Ok(BuyerTokens {
            keys,
            grace,
            ends: SaleEnds::default(),
        })
    }

    /// The expiry of a token for a sale ending at `ends_at_ms` (Unix ms).
    pub fn expiry_for(&self, ends_at_ms: u64) -> u64 {
        ends_at_ms
            .div_ceil(1000)
            .saturating_add(self.grace.as_secs())
    }

    /// A token for `identity` in `sale`, good until `expires_at` (Unix s).
    pub fn sign(&self, sale: &SaleId, identity: &Email, expires_at: u64) -> String {
        let key = &self.keys[0];
        let claims = ClaimsOf {
            s: sale.as_str(),
            u: identity.as_str(),
            x: expires_at,
        };
        // Serialising three plain fields cannot fail; an empty payload would
        // only make a token that never verifies.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        // `<kid>.<payload>.<tag>`, written into one string.
        let mut token = String::with_capacity(key.kid.len() + 2 + json.len() * 4 / 3 + 4 + 43);
        token.push_str(&key.kid);
        token.push('.');
        let payload_at = token.len();
        URL_SAFE_NO_PAD.encode_string(json, &mut token);
        let tag = mac_for(key, &token[payload_at..]).finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }

    /// Checks `token` for `identity` in `sale` at `now` (Unix s). The
    /// signature is checked (in constant time) before anything the token
    /// says is believed.
    pub fn verify(
        &self,
        token: &str,
        sale: &SaleId,
        identity: &Email,
        now: u64,
    ) -> Result<(), TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(kid), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::UnknownKey)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| TokenError::Malformed)?;
        mac_for(key, payload)
            .verify_slice(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.x <= now {
            return Err(TokenError::Expired);
        }
        if claims.s != sale.as_str() || claims.u != identity.as_str() {
            return Err(TokenError::Mismatch);
        }
        Ok(())
    }

    /// [`BuyerTokens::verify`] at the current time, as the API answers it:
    /// 401 without a token or with a bad one, 403 with another buyer's.
    pub fn check(
        &self,
        presented: Option<&str>,
        sale: &SaleId,
        identity: &Email,
    ) -> Result<(), ApiError> {
        let token = presented.ok_or_else(required)?;
        Ok(self.verify(token, sale, identity, unix_now())?)
    }

    /// The sale's end (Unix ms) as seen within the last moment, if any.
    pub fn cached_end(&self, sale: &SaleId) -> Option<u64> {
        self.ends.get(sale)
    }

    pub fn remember_end(&self, sale: &SaleId, ends_at_ms: u64) {
        self.ends.put(sale, ends_at_ms);
    }
}

fn mac_with(key: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length; this cannot fail.
    match <HmacSha256 as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// The MAC of a token: over the context, the key id, `.` and the payload.
fn mac_for(key: &SigningKey, payload: &str) -> HmacSha256 {
    let mut mac = key.prefix.0.clone();
    mac.update(payload.as_bytes());
    mac
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The token a request carries in the `X-Buyer-Token` header; a value that
/// is not visible ASCII counts as none (and is refused as missing).
pub fn from_headers(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// How long a sale's end is reused without asking the engine again.
const ENDS_TTL: Duration = Duration::from_secs(2);

/// Each sale's end as last seen (bounded by the number of real sales: only
/// sales the engine answered for are kept).
#[derive(Debug, Default)]
struct SaleEnds(Mutex<HashMap<String, (Instant, u64)>>);

impl SaleEnds {
    fn get(&self, sale: &SaleId) -> Option<u64> {
        let map = self.0.lock().ok()?;
        map.get(sale.as_str())
            .filter(|(at, _)| at.elapsed() < ENDS_TTL)
            .map(|(_, end)| *end)
    }

    fn put(&self, sale: &SaleId, ends_at_ms: u64) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() > 10_000 {
                map.retain(|_, (at, _)| at.elapsed() < ENDS_TTL);
            }
            map.insert(sale.as_str().to_string(), (Instant::now(), ends_at_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn key(kid: &str, secret: &[u8]) -> SigningKey {
        SigningKey::new(kid, Secret::new(secret)).expect("a key")
    }

    fn tokens(keys: Vec<SigningKey>) -> BuyerTokens {
        BuyerTokens::new(keys, Duration::from_secs(60)).expect("keys")
    }

    fn sale(id: &str) -> SaleId {
        SaleId::parse(id).expect("a sale id")
    }

    fn who(email: &str) -> Email {
        Email::parse(email).expect("an email")
    }

    #[test]
    fn a_signed_token_verifies_for_its_sale_and_buyer_only() {
        let t = tokens(vec![key("k1", SECRET)]);
        let (s, ann) = (sale("shoes"), who("ann@x.io"));
        let token = t.sign(&s, &ann, NOW + 10);
        assert!(token.starts_with("k1."));
        assert_eq!(t.verify(&token, &s, &ann, NOW), Ok(()));
        assert_eq!(
            t.verify(&token, &s, &who("bob@x.io"), NOW),
            Err(TokenError::Mismatch)
        );
        assert_eq!(
            t.verify(&token, &sale("hats"), &ann, NOW),
            Err(TokenError::Mismatch)
        );
    }

    /// The token is HMAC-SHA256, keyed with the secret, over the context,
    /// the key id, `.` and the base64url JSON of the claims: made here step
    /// by step, it is byte for byte the one `sign` hands out.
    #[test]
    fn a_token_is_the_mac_of_context_kid_and_payload() {
        let t = tokens(vec![key("k1", SECRET)]);
        let (s, ann) = (sale("shoes"), who("ann@x.io"));
        let payload = URL_SAFE_NO_PAD.encode(r#"{"s":"shoes","u":"ann@x.io","x":1800000010}"#);
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(SECRET).expect("a key");
        mac.update(b"flashsale buyer token v1\0k1.");
        mac.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(t.sign(&s, &ann, NOW + 10), format!("k1.{payload}.{tag}"));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let t = tokens(vec![key("k1", SECRET)]);
        let (s, ann) = (sale("shoes"), who("ann@x.io"));
        let token = t.sign(&s, &ann, NOW);
        assert_eq!(t.verify(&token, &s, &ann, NOW - 1), Ok(()));
        assert_eq!(t.verify(&token, &s, &ann, NOW), Err(TokenError::Expired));
        assert_eq!(
            t.verify(&token, &s, &ann, NOW + 100),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn expiry_is_the_sale_end_plus_the_grace() {
        let t = tokens(vec![key("k1", SECRET)]);
        assert_eq!(t.expiry_for(1_000_000_001), 1_000_001 + 60);
    }

    #[test]
    fn a_tampered_token_is_refused() {
        let t = tokens(vec![key("k1", SECRET)]);
        let (s, ann) = (sale("shoes"), who("ann@x.io"));
        let token = t.sign(&s, &ann, NOW + 10);
        let parts: Vec<&str> = token.split('.').collect();
        // Another buyer's claims under ann's signature.
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                s: "shoes".into(),
                u: "bob@x.io".into(),
                x: NOW + 10,
            })
            .expect("json"),
        );
        let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(
            t.verify(&forged, &s, &who("bob@x.io"), NOW),
            Err(TokenError::BadSignature)
        );
        // A longer expiry under the same signature.
        let later = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                s: "shoes".into(),
                u: "ann@x.io".into(),
                x: NOW + 10_000,
            })
            .expect("json"),
        );
        let extended = format!("{}.{later}.{}", parts[0], parts[2]);
        assert_eq!(
            t.verify(&extended, &s, &ann, NOW + 100),
            Err(TokenError::BadSignature)
        );
        // One flipped character of the MAC.
        let mut tag = parts[2].to_string();
        let last = if tag.ends_with('A') { "B" } else { "A" };
        tag.replace_range(tag.len() - 1.., last);
        let flipped = format!("{}.{}.{tag}", parts[0], parts[1]);
        assert!(t.verify(&flipped, &s, &ann, NOW).is_err());
        // Signed with another secret under the same key id.
        let other = tokens(vec![key("k1", b"another-secret-another-secret-xx")]);
        assert_eq!(
            t.verify(&other.sign(&s, &ann, NOW + 10), &s, &ann, NOW),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "k1", "k1..", "k1.a.b.c", "k1.!!.??", "nokey.a.b"] {
            assert!(t.verify(junk, &s, &ann, NOW).is_err(), "{junk:?}");
        }
        let huge = format!("k1.{}.x", "A".repeat(2000));
        assert_eq!(t.verify(&huge, &s, &ann, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn rotation_the_first_key_signs_and_every_configured_key_verifies() {
        let (s, ann) = (sale("shoes"), who("ann@x.io"));
        let old = tokens(vec![key("old", SECRET)]);
        let issued_before = old.sign(&s, &ann, NOW + 10);
        let rotated = tokens(vec![
            key("new", b"the-new-secret-the-new-secret-xx"),
            key("old", SECRET),
        ]);
        assert_eq!(rotated.verify(&issued_before, &s, &ann, NOW), Ok(()));
        let fresh = rotated.sign(&s, &ann, NOW + 10);
        assert!(fresh.starts_with("new."));
        assert_eq!(rotated.verify(&fresh, &s, &ann, NOW), Ok(()));
        // Once the old key is dropped, its tokens stop working.
        let retired = tokens(vec![key("new", b"the-new-secret-the-new-secret-xx")]);
        assert_eq!(
            retired.verify(&issued_before, &s, &ann, NOW),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn keys_parse_and_never_print() {
        let spec: SecretSpec = "k2:very-secret-value".parse().expect("infallible");
        assert_eq!(format!("{spec:?}"), "k2:<redacted>");
        let key = SigningKey::parse(&spec).expect("a key");
        assert_eq!(key.kid(), "k2");
        assert_eq!(key.secret_len(), "very-secret-value".len());
        let shown = format!("{key:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        let all = tokens(vec![key]);
        assert!(!format!("{all:?}").contains("very-secret"));
        for bad in [
            "no-colon",
            ":secret",
            "k.1:secret",
            "k1:",
            "a-very-long-key-id-x:s",
        ] {
            let spec: SecretSpec = bad.parse().expect("infallible");
            assert!(SigningKey::parse(&spec).is_err(), "{bad}");
        }
        assert_eq!(
            BuyerTokens::new(vec![key_of("a"), key_of("a")], Duration::from_secs(1)).err(),
            Some(KeyError::DuplicateKid("a".into()))
        );
        assert_eq!(
            BuyerTokens::new(vec![], Duration::from_secs(1)).err(),
            Some(KeyError::NoKey)
        );
    }

    fn key_of(kid: &str) -> SigningKey {
        key(kid, SECRET)
    }

    #[test]
    fn errors_map_to_401_and_403() {
        let mismatch: ApiError = TokenError::Mismatch.into();
        assert_eq!(mismatch.status(), StatusCode::FORBIDDEN);
        assert_eq!(mismatch.code(), code::MISMATCH);
        for e in [
            TokenError::Malformed,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::Expired,
        ] {
            let e: ApiError = e.into();
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(e.code(), code::INVALID);
        }
        assert_eq!(required().code(), code::REQUIRED);
    }

    #[test]
    fn client_keys() {
        let key = ClientKey::parse("abcdefghij0123456789").expect("a key");
        assert!(key.matches(&key.digest()));
        assert!(!key.matches(""));
        let other = ClientKey::parse("abcdefghij0123456780").expect("a key");
        assert!(!key.matches(&other.digest()));
        assert!(!format!("{key:?}").contains("abcdef"));
        for bad in [
            "short",
            "has space in it 123",
            &"x".repeat(65),
            "ünïcødé-ünïcødé-x",
        ] {
            assert!(ClientKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_secrets_differ_by_purpose() {
        let base = Secret::new(SECRET);
        assert_ne!(base.derive(b"a").bytes(), base.derive(b"b").bytes());
        assert_eq!(base.derive(b"a").len(), 32);
    }
}
