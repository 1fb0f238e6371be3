//! `users`: admin accounts (email, Argon2id hash, isAdmin, createdAt).

use mongodb::bson::{doc, oid::ObjectId, DateTime};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::IndexOptions;
use mongodb::{Collection, IndexModel};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: ObjectId,
    pub email: String,
    /// Empty (an account from before this API, e.g. with a bcrypt
    /// `password`) matches no password: such admins are seeded again.
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default = "epoch")]
    pub created_at: DateTime,
}

fn epoch() -> DateTime {
    DateTime::from_millis(0)
}

pub async fn ensure_indexes(users: &Collection<UserDoc>) -> mongodb::error::Result<()> {
    let index = IndexModel::builder()
        .keys(doc! { "email": 1 })
        .options(
            IndexOptions::builder()
                .name("email_unique".to_string())
                .unique(true)
                .build(),
        )
        .build();
    users.create_index(index).await.map(|_| ())
}

pub async fn find_by_email(
    users: &Collection<UserDoc>,
    email: &str,
) -> mongodb::error::Result<Option<UserDoc>> {
    users.find_one(doc! { "email": email }).await
}

pub async fn find_by_id(
    users: &Collection<UserDoc>,
    id: ObjectId,
) -> mongodb::error::Result<Option<UserDoc>> {
    users.find_one(doc! { "_id": id }).await
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
        ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000
    )
}
