//! Admin access tokens: HS256 JWTs with `iss`, `aud`, `sub` (the user id),
//! `email`, `iat`, `nbf`, `exp` (at most 15 minutes after `iat`) and a
//! random `jti` (what sign-out revokes). Verification pins the algorithm
//! to HS256 alone — `alg: none`, HS512, RS256 (the HMAC-with-a-public-key
//! confusion) are all refused — and checks `iss`, `aud`, `exp` and `nbf`.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::MAX_JWT_TTL_SECONDS;
use crate::error::ApiError;

/// Clock skew tolerated between API instances, in seconds.
pub const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub email: String,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl_seconds: u64,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl JwtKeys {
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl_seconds: u64) -> JwtKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl_seconds: ttl_seconds.clamp(1, MAX_JWT_TTL_SECONDS),
        }
    }

    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    pub fn issue(&self, user_id: &str, email: &str) -> Result<(String, Claims), ApiError> {
        let now = unix_now();
        let claims = Claims {
            sub: user_id.to_string(),
            email: email.to_string(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_seconds,
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, claims))
    }

    /// The claims of a genuine, current token of ours; 401 otherwise.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::InvalidIssuer => "the token was not issued here",
                    ErrorKind::InvalidAudience => "the token is not meant for this API",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    _ => "the token is malformed",
                };
                ApiError::unauthorized(why)
            })?
            .claims;
        // Tokens of ours never live longer than 15 minutes; one that claims
        // to was not made by this API, whatever its signature says.
        if claims.exp.saturating_sub(claims.iat) > MAX_JWT_TTL_SECONDS
            || claims.iat > unix_now() + LEEWAY_SECONDS
        {
            return Err(ApiError::unauthorized(
                "the token's lifetime is not accepted",
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> JwtKeys {
        JwtKeys::new(SECRET, "iss-a", "aud-a", 900)
    }

    #[test]
    fn round_trip_and_refusals() {
        let keys = keys();
        let (token, claims) = match keys.issue("u1", "a@b.co") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(keys.verify(&token).ok(), Some(claims.clone()));
        assert!(claims.exp - claims.iat <= 900);
        // Another issuer, audience or secret: refused.
        for other in [
            JwtKeys::new(SECRET, "iss-b", "aud-a", 900),
            JwtKeys::new(SECRET, "iss-a", "aud-b", 900),
            JwtKeys::new(b"another-secret-another-secret-xx", "iss-a", "aud-a", 900),
        ] {
            assert!(other.verify(&token).is_err());
        }
        // A forged long-lived token signed with the right secret.
        let forged = Claims {
            exp: claims.iat + 3600,
            ..claims
        };
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &forged,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap_or_default();
        assert!(keys.verify(&forged).is_err());
    }
}
