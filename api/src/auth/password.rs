//! Password hashing: Argon2id with the OWASP parameters (m = 19456 KiB,
//! t = 2, p = 1). One hash costs ~19 MiB and tens of ms of CPU, so hashes run
//! on the blocking pool and at most `PASSWORD_HASH_CONCURRENCY` at once: a
//! burst of sign-ins queues here instead of taking the CPUs and memory the
//! buy path needs.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;

pub const MEMORY_KIB: u32 = 19_456;
pub const ITERATIONS: u32 = 2;
pub const PARALLELISM: u32 = 1;
/// How long a request may wait for a hashing slot before it is told to come
/// back later.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Argon2 accepts any length, but hashing megabytes is a cheap DoS.
/// Characters, not bytes, so that the OpenAPI `maxLength` is the rule.
pub const MAX_PASSWORD_CHARS: usize = 256;

#[derive(Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    /// Verified against when the account does not exist, so that "no such
    /// user" takes as long as "wrong password".
    dummy_hash: Arc<str>,
}

fn argon2() -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_now(password: &[u8]) -> Result<String, ApiError> {
    // 16 bytes from the OS's CSPRNG (uuid v4 draws them from getrandom).
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2 salt: {e}")))?;
    argon2::PasswordHasher::hash_password(&argon2()?, password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::internal(anyhow::anyhow!("argon2 hash: {e}")))
}

fn verify_now(password: &[u8], stored: &str) -> bool {
    // A stored hash that does not parse verifies nothing.
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored hash, so older hashes still verify.
    Argon2::default().verify_password(password, &parsed).is_ok()
}

/// Checks a new password's length (in characters, and in bytes for the cost).
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
        return Err(ApiError::bad_request(
            "invalid_password",
            format!(
                "password must be at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_CHARS}"
            ),
        ));
    }
    Ok(())
}

impl Passwords {
    pub async fn new(concurrency: usize) -> Result<Passwords, ApiError> {
        let dummy = uuid::Uuid::new_v4().to_string();
        let dummy_hash = tokio::task::spawn_blocking(move || hash_now(dummy.as_bytes())).await??;
        Ok(Passwords {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: dummy_hash.into(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(QUEUE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::client(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many sign-ins at once; try again shortly",
                )
                .with_retry_after(1)
            })?
            .map_err(ApiError::internal)?;
        let result = tokio::task::spawn_blocking(move || {
            let result = work();
            drop(permit);
            result
        })
        .await?;
        Ok(result)
    }

    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_now(password.as_bytes())).await?
    }

    /// Whether `password` matches `stored`; with no stored hash (unknown
    /// account) it does the same work and answers false.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        if password.chars().count() > MAX_PASSWORD_CHARS {
            return Ok(false);
        }
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self
            .run(move || verify_now(password.as_bytes(), &stored))
            .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_required_parameters() {
        let passwords = match Passwords::new(1).await {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let hash = match passwords.hash("correct horse".into()).await {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        };
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(matches!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await,
            Ok(true)
        ));
        assert!(matches!(
            passwords.verify("wrong".into(), Some(hash)).await,
            Ok(false)
        ));
        assert!(matches!(
            passwords.verify("x".into(), None).await,
            Ok(false)
        ));
        assert!(matches!(
            passwords.verify("x".into(), Some("garbage".into())).await,
            Ok(false)
        ));
    }
}
