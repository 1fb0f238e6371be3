//! `flashsale-api seed-admin`: creates the first admin, like the seed's
//! `npm run seed:admin`. In dev mode the defaults are admin@example.com /
//! admin123; otherwise the email and password must be given (flags or
//! ADMIN_EMAIL / ADMIN_PASSWORD). An existing account is left unchanged.

use anyhow::Context;

use crate::auth::accounts::create_admin;
use crate::auth::password::Passwords;
use crate::config::{SeedAdminArgs, Settings};
use crate::domain::Email;
use crate::error::ApiError;
use crate::store::{users, Db};

pub const DEV_ADMIN_EMAIL: &str = "admin@example.com";
pub const DEV_ADMIN_PASSWORD: &str = "admin123";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    Created(String),
    AlreadyExists(String),
}

pub async fn seed_admin(settings: &Settings, args: &SeedAdminArgs) -> anyhow::Result<Seeded> {
    let (email, password) = match (&args.email, &args.password, settings.dev_mode) {
        (Some(email), Some(password), _) => (email.clone(), password.clone()),
        (email, password, true) => (
            email.clone().unwrap_or_else(|| DEV_ADMIN_EMAIL.into()),
            password.clone().unwrap_or_else(|| DEV_ADMIN_PASSWORD.into()),
        ),
        _ => anyhow::bail!(
            "outside dev mode, give the admin's --email and --password (or ADMIN_EMAIL and ADMIN_PASSWORD)"
        ),
    };
    let email = Email::parse(&email).map_err(describe)?;
    let db = Db::connect(settings).await?;
    db.ensure_indexes()
        .await
        .context("cannot reach MongoDB to create the users index")?;
    if users::find_by_email(&db.users, email.as_str())
        .await?
        .is_some()
    {
        return Ok(Seeded::AlreadyExists(email.to_string()));
    }
    let passwords = Passwords::new(1).await.map_err(describe)?;
    match create_admin(&db, &passwords, &email, password).await {
        Ok(_) => Ok(Seeded::Created(email.to_string())),
        Err(e) if e.code() == "email_taken" => Ok(Seeded::AlreadyExists(email.to_string())),
        Err(e) => Err(describe(e)),
    }
}

fn describe(error: ApiError) -> anyhow::Error {
    match error {
        ApiError::Client(fault) => anyhow::anyhow!(fault.message),
        ApiError::Unavailable(e) | ApiError::Internal(e) => e,
    }
}
