//! `users`: admin accounts (email, Argon2id hash, isAdmin, createdAt).

use mongodb::bson::{doc, oid::ObjectId};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::Collection;
use records::user::field;

pub use records::user::UserDoc;

pub async fn ensure_indexes(users: &Collection<UserDoc>) -> mongodb::error::Result<()> {
    users
        .create_index(records::user::email_unique())
        .await
        .map(|_| ())
}

pub async fn find_by_email(
    users: &Collection<UserDoc>,
    email: &str,
) -> mongodb::error::Result<Option<UserDoc>> {
    users.find_one(doc! { field::EMAIL: email }).await
}

pub async fn find_by_id(
    users: &Collection<UserDoc>,
    id: ObjectId,
) -> mongodb::error::Result<Option<UserDoc>> {
    users.find_one(doc! { field::ID: id }).await
}

#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    #[error("an account with this email exists")]
    Duplicate,
    #[error(transparent)]
    Mongo(#[from] mongodb::error::Error),
}

pub async fn insert(users: &Collection<UserDoc>, user: &UserDoc) -> Result<(), InsertError> {
    match users.insert_one(user).await {
        Ok(_) => Ok(()),
        Err(e) if is_duplicate_key(&e) => Err(InsertError::Duplicate),
        Err(e) => Err(e.into()),
    }
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    matches!(
        &*error.kind,
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == records::DUPLICATE_KEY
    )
}
