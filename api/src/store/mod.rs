//! MongoDB: the durable record. The API owns `flash_sales` and `users`; it
//! only reads `orders`, which the worker writes from the engine's outbox.

pub mod orders;
pub mod sales;
pub mod users;

use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection, Database};

use crate::config::Settings;

#[derive(Clone, Debug)]
pub struct Db {
    database: Database,
    pub sales: Collection<sales::SaleDoc>,
    pub users: Collection<users::UserDoc>,
    /// Read leniently as documents: another program writes them.
    pub orders: Collection<Document>,
}

impl Db {
    /// A client for `MONGO_URL` (the driver connects lazily; [`Db::ping`]
    /// tells whether the server is there).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Db> {
        let mut options = ClientOptions::parse(&settings.mongo_url)
            .await
            .map_err(|e| anyhow::anyhow!("MONGO_URL is not a usable MongoDB URL: {e}"))?;
        options.app_name = Some("flashsale-api".into());
        // Fail a request quickly when MongoDB is away instead of holding it
        // for the driver's default 30 s.
        options.server_selection_timeout = Some(settings.mongo_timeout());
        options.connect_timeout = Some(settings.mongo_timeout());
        let client = Client::with_options(options)?;
        let database = client.database(&settings.mongo_db);
        Ok(Db {
            sales: database.collection(records::SALES),
            users: database.collection(records::USERS),
            orders: database.collection(records::ORDERS),
            database,
        })
    }

    pub async fn ping(&self) -> Result<(), mongodb::error::Error> {
        self.database
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
    }

    /// Indexes the API's own queries need on the collections it owns, and
    /// those of `orders` (the worker creates the same; the API may start
    /// first, and its order list names them in hints).
    pub async fn ensure_indexes(&self) -> Result<(), mongodb::error::Error> {
        users::ensure_indexes(&self.users).await?;
        // One at a time, as the worker does: FerretDB v1.24 panics on a
        // createIndexes of several indexes that all exist already.
        for index in records::order::indexes() {
            self.orders.create_index(index).await?;
        }
        Ok(())
    }
}
