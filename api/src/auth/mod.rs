//! Admin authentication: password hashing, tokens, sign-out, and the
//! extractor that guards admin routes.

pub mod accounts;
pub mod admin;
pub mod jwt;
pub mod password;
pub mod revocation;
pub mod secret;
pub mod throttle;

pub use admin::AdminUser;
