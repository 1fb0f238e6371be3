//! `users`: admin accounts (email, Argon2id hash, isAdmin, createdAt).

use mongodb::bson::{doc, oid::ObjectId, DateTime};
use mongodb::options::IndexOptions;
use mongodb::IndexModel;
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
    #[serde(default = "crate::sale::epoch")]
    pub created_at: DateTime,
}

pub mod field {
    pub const ID: &str = "_id";
    pub const EMAIL: &str = "email";
}

/// One account per e-mail address.
pub fn email_unique() -> IndexModel {
    IndexModel::builder()
        .keys(doc! { field::EMAIL: 1 })
        .options(
            IndexOptions::builder()
                .name("email_unique".to_string())
                .unique(true)
                .build(),
        )
        .build()
}
