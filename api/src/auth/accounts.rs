//! Creating admin accounts (sign-up and `seed-admin` share it).

use mongodb::bson::{self, oid::ObjectId};

use crate::auth::password::{check_new_password, Passwords};
use crate::domain::Email;
use crate::error::ApiError;
use crate::store::users::{self, InsertError, UserDoc};
use crate::store::Db;

/// Hashes the password and stores a new admin; 409 `email_taken` if the
/// address has an account.
pub async fn create_admin(
    db: &Db,
    passwords: &Passwords,
    email: &Email,
    password: String,
) -> Result<UserDoc, ApiError> {
    check_new_password(&password)?;
    let user = UserDoc {
        id: ObjectId::new(),
        email: email.to_string(),
        password_hash: passwords.hash(password).await?,
        is_admin: true,
        created_at: bson::DateTime::now(),
    };
    match users::insert(&db.users, &user).await {
        Ok(()) => Ok(user),
        Err(InsertError::Duplicate) => Err(ApiError::conflict(
            "email_taken",
            "an account with this email exists",
        )),
        Err(InsertError::Mongo(e)) => Err(e.into()),
    }
}
