//! The MongoDB features the durable order store relies on, checked against
//! the test MongoDB: `MONGO_URL` when set, otherwise a private FerretDB +
//! SQLite process (`tests::MongoServer`).

use std::net::TcpStream;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, DateTime as BsonDateTime, Document};
use mongodb::error::{Error, ErrorKind, WriteFailure};
use mongodb::options::{
    Acknowledgment, ClientOptions, CollectionOptions, Hint, IndexOptions, ReturnDocument,
    WriteConcern,
};
use mongodb::{Client, Collection, IndexModel};
use tests::MongoServer;

const DUPLICATE_KEY: i32 = 11000;
const INVALID_INDEX_SPECIFICATION_OPTION: i32 = 197;
const SALE_USER_INDEX: &str = "flashSaleId_1_userEmail_1";
const BY_SALE_INDEX: &str = "by_sale_newest_first";

/// The server's error code for a failed write or command.
fn error_code(err: &Error) -> Option<i32> {
    match &*err.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => Some(e.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(e)) => Some(e.code),
        ErrorKind::InsertMany(e) => e.write_errors.as_ref()?.first().map(|e| e.code),
        ErrorKind::Command(e) => Some(e.code),
        _ => None,
    }
}

/// FerretDB v1 reports an *update* that breaks a unique index as an
/// InternalError (code 1) carrying SQLite's message, not as 11000 (inserts
/// and upserts do get 11000). MongoDB answers 11000.
fn is_ferretdb_update_duplicate(err: &Error) -> bool {
    matches!(&*err.kind, ErrorKind::Command(e)
        if e.code == 1 && e.message.contains("UNIQUE constraint failed"))
}

fn majority_journaled() -> WriteConcern {
    WriteConcern::builder()
        .w(Acknowledgment::Majority)
        .journal(true)
        .build()
}

async fn orders(server: &MongoServer) -> Collection<Document> {
    server.database().await.collection("orders")
}

/// One order per (sale, user).
async fn create_order_indexes(orders: &Collection<Document>) {
    let created = orders
        .create_index(
            IndexModel::builder()
                .keys(doc! { "flashSaleId": 1, "userEmail": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect("create the unique (flashSaleId, userEmail) index");
    assert_eq!(created.index_name, SALE_USER_INDEX);
}

fn order(id: &str, sale: &str, email: &str, qty: i32) -> Document {
    doc! { "_id": id, "flashSaleId": sale, "userEmail": email, "qty": qty, "status": "pending" }
}

#[tokio::test]
async fn insert_and_find_documents() {
    let server = MongoServer::start().await;
    let orders = orders(&server).await;

    let inserted = orders
        .insert_many(vec![
            order("o1", "s1", "a@example.com", 1),
            order("o2", "s1", "b@example.com", 3),
            order("o3", "s2", "a@example.com", 2),
        ])
        .await
        .expect("insert_many");
    assert_eq!(inserted.inserted_ids.len(), 3);
    let one = orders
        .insert_one(doc! { "flashSaleId": "s3", "userEmail": "c@example.com" })
        .await
        .expect("insert_one without _id");
    assert!(
        matches!(one.inserted_id, Bson::ObjectId(_)),
        "server-side _id should be an ObjectId, got {:?}",
        one.inserted_id
    );

    assert_eq!(orders.count_documents(doc! {}).await.expect("count"), 4);
    assert_eq!(
        orders
            .count_documents(doc! { "flashSaleId": "s1" })
            .await
            .expect("count s1"),
        2
    );
    let o2 = orders
        .find_one(doc! { "_id": "o2" })
        .await
        .expect("find_one")
        .expect("o2 exists");
    assert_eq!(o2, order("o2", "s1", "b@example.com", 3));

    let mut cursor = orders
        .find(doc! { "userEmail": "a@example.com" })
        .sort(doc! { "qty": -1 })
        .await
        .expect("find");
    let mut ids = Vec::new();
    while cursor.advance().await.expect("cursor") {
        let doc = cursor.deserialize_current().expect("document");
        ids.push(doc.get_str("_id").expect("_id").to_string());
    }
    assert_eq!(ids, ["o3", "o1"]);
}

#[tokio::test]
async fn unique_indexes_reject_duplicates_with_code_11000() {
    let server = MongoServer::start().await;
    let orders = orders(&server).await;
    orders
        .insert_one(order("o1", "s1", "a@example.com", 1))
        .await
        .expect("first order");
    create_order_indexes(&orders).await;

    // `_id` is always uniquely indexed; asking for that index again is a
    // no-op, and `unique` is not a valid option for it (on MongoDB too).
    orders
        .create_index(IndexModel::builder().keys(doc! { "_id": 1 }).build())
        .await
        .expect("an {_id: 1} index is accepted");
    let unique_id = orders
        .create_index(
            IndexModel::builder()
                .keys(doc! { "_id": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await
        .expect_err("unique: true on an _id index is rejected");
    assert_eq!(
        error_code(&unique_id),
        Some(INVALID_INDEX_SPECIFICATION_OPTION),
        "{unique_id}"
    );
    let names = orders.list_index_names().await.expect("list indexes");
    assert!(names.iter().any(|n| n == "_id_"), "{names:?}");
    assert!(names.iter().any(|n| n == SALE_USER_INDEX), "{names:?}");

    // Same sale and user, another _id.
    let err = orders
        .insert_one(order("o2", "s1", "a@example.com", 5))
        .await
        .expect_err("a second order for (s1, a@example.com)");
    assert_eq!(error_code(&err), Some(DUPLICATE_KEY), "{err}");
    // Same _id, another sale.
    let err = orders
        .insert_one(order("o1", "s2", "b@example.com", 1))
        .await
        .expect_err("a duplicate _id");
    assert_eq!(error_code(&err), Some(DUPLICATE_KEY), "{err}");
    // An update that would make a duplicate.
    orders
        .insert_one(order("o3", "s1", "b@example.com", 1))
        .await
        .expect("another user in the same sale");
    let err = orders
        .update_one(
            doc! { "_id": "o3" },
            doc! { "$set": { "userEmail": "a@example.com" } },
        )
        .await
        .expect_err("an update onto an existing (sale, user)");
    assert!(
        error_code(&err) == Some(DUPLICATE_KEY) || is_ferretdb_update_duplicate(&err),
        "{err}"
    );
    // Ordered insert_many stops at the duplicate, keeping what came before.
    let err = orders
        .insert_many(vec![
            order("o4", "s2", "a@example.com", 1),
            order("o5", "s1", "a@example.com", 1),
            order("o6", "s3", "a@example.com", 1),
        ])
        .await
        .expect_err("insert_many with a duplicate");
    assert_eq!(error_code(&err), Some(DUPLICATE_KEY), "{err}");

    let mut ids = Vec::new();
    let mut cursor = orders
        .find(doc! {})
        .sort(doc! { "_id": 1 })
        .await
        .expect("find");
    while cursor.advance().await.expect("cursor") {
        let doc = cursor.deserialize_current().expect("document");
        ids.push(doc.get_str("_id").expect("_id").to_string());
    }
    assert_eq!(ids, ["o1", "o3", "o4"]);
    let o1 = orders
        .find_one(doc! { "_id": "o1" })
        .await
        .expect("find o1")
        .expect("o1");
    assert_eq!(o1.get_i32("qty").expect("qty"), 1, "o1 untouched");
}

#[tokio::test]
async fn upsert_with_set_on_insert_is_idempotent() {
    let server = MongoServer::start().await;
    let orders = orders(&server).await;
    create_order_indexes(&orders).await;
    let key = doc! { "flashSaleId": "s1", "userEmail": "a@example.com" };

    let first = orders
        .update_one(
            key.clone(),
            doc! { "$setOnInsert": { "_id": "order-1", "qty": 1, "status": "pending" } },
        )
        .upsert(true)
        .await
        .expect("first upsert");
    assert_eq!(first.matched_count, 0);
    assert_eq!(first.upserted_id, Some(Bson::String("order-1".into())));

    let again = orders
        .update_one(
            key.clone(),
            doc! { "$setOnInsert": { "_id": "order-2", "qty": 7, "status": "other" } },
        )
        .upsert(true)
        .await
        .expect("second upsert");
    assert_eq!(again.matched_count, 1);
    assert_eq!(again.modified_count, 0);
    assert_eq!(again.upserted_id, None);

    assert_eq!(orders.count_documents(doc! {}).await.expect("count"), 1);
    let stored = orders
        .find_one(key.clone())
        .await
        .expect("find")
        .expect("the order");
    assert_eq!(
        stored,
        doc! {
            "_id": "order-1", "flashSaleId": "s1", "userEmail": "a@example.com",
            "qty": 1, "status": "pending",
        }
    );

    // Retries racing each other: still one order. (A racing upsert may lose
    // with a duplicate-key error, never create a second document.)
    let mut tasks = Vec::new();
    for i in 0..8 {
        let orders = orders.clone();
        tasks.push(tokio::spawn(async move {
            orders
                .update_one(
                    doc! { "flashSaleId": "s2", "userEmail": "a@example.com" },
                    doc! { "$setOnInsert": { "qty": i, "attempt": i } },
                )
                .upsert(true)
                .await
        }));
    }
    for task in tasks {
        if let Err(err) = task.await.expect("task") {
            assert_eq!(error_code(&err), Some(DUPLICATE_KEY), "{err}");
        }
    }
    assert_eq!(
        orders
            .count_documents(doc! { "flashSaleId": "s2" })
            .await
            .expect("count"),
        1
    );
}

#[tokio::test]
async fn inc_is_atomic_under_concurrency() {
    let server = MongoServer::start().await;
    let sales = server.database().await.collection::<Document>("sales");
    sales
        .insert_one(doc! { "_id": "sale-1", "sold": 0, "stock": 1000_i64 })
        .await
        .expect("insert sale");

    let client = server.client().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let sales = client
            .database(&server.database_name())
            .collection::<Document>("sales");
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                let result = sales
                    .update_one(
                        doc! { "_id": "sale-1" },
                        doc! { "$inc": { "sold": 1, "stock": -1_i64, "attempts": 1 } },
                    )
                    .await
                    .expect("$inc");
                assert_eq!(result.modified_count, 1);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }

    let sale = sales
        .find_one(doc! { "_id": "sale-1" })
        .await
        .expect("find")
        .expect("sale");
    assert_eq!(sale.get("sold"), Some(&Bson::Int32(200)));
    assert_eq!(sale.get("stock"), Some(&Bson::Int64(800)), "stays an Int64");
    // A missing field starts from 0.
    assert_eq!(sale.get("attempts"), Some(&Bson::Int32(200)));
}

#[tokio::test]
async fn find_one_and_update_reserves_without_overselling() {
    let server = MongoServer::start().await;
    let sales = server.database().await.collection::<Document>("sales");
    sales
        .insert_one(doc! { "_id": "sale-1", "stock": 2 })
        .await
        .expect("insert sale");
    let reserve = || {
        sales
            .find_one_and_update(
                doc! { "_id": "sale-1", "stock": { "$gt": 0 } },
                doc! { "$inc": { "stock": -1 } },
            )
            .return_document(ReturnDocument::After)
    };

    let after = reserve().await.expect("reserve 1").expect("in stock");
    assert_eq!(after.get_i32("stock").expect("stock"), 1);
    let before = sales
        .find_one_and_update(
            doc! { "_id": "sale-1", "stock": { "$gt": 0 } },
            doc! { "$inc": { "stock": -1 } },
        )
        .return_document(ReturnDocument::Before)
        .await
        .expect("reserve 2")
        .expect("in stock");
    assert_eq!(before.get_i32("stock").expect("stock"), 1, "the old value");
    assert_eq!(reserve().await.expect("reserve 3"), None, "sold out");

    // Upsert through find_one_and_update: the new document comes back.
    let created = sales
        .find_one_and_update(
            doc! { "_id": "sale-2" },
            doc! { "$setOnInsert": { "stock": 3 }, "$set": { "name": "lamp" } },
        )
        .upsert(true)
        .return_document(ReturnDocument::After)
        .await
        .expect("upsert")
        .expect("the new document");
    assert_eq!(
        created,
        doc! { "_id": "sale-2", "stock": 3, "name": "lamp" }
    );

    // Ten buyers race for three items: exactly three win, stock never < 0.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let sales = sales.clone();
        tasks.push(tokio::spawn(async move {
            sales
                .find_one_and_update(
                    doc! { "_id": "sale-2", "stock": { "$gt": 0 } },
                    doc! { "$inc": { "stock": -1 } },
                )
                .return_document(ReturnDocument::After)
                .await
                .expect("reserve")
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(doc) = task.await.expect("task") {
            winners.push(doc.get_i32("stock").expect("stock"));
        }
    }
    winners.sort_unstable();
    assert_eq!(winners, [0, 1, 2]);
    let sale = sales
        .find_one(doc! { "_id": "sale-2" })
        .await
        .expect("find")
        .expect("sale");
    assert_eq!(sale.get_i32("stock").expect("stock"), 0);
}

#[tokio::test]
async fn write_concern_majority_with_journal_is_accepted() {
    let server = MongoServer::start().await;
    let db = server.database().await;
    let orders = db.collection_with_options::<Document>(
        "orders",
        CollectionOptions::builder()
            .write_concern(majority_journaled())
            .build(),
    );
    create_order_indexes(&orders).await;

    orders
        .insert_one(order("o1", "s1", "a@example.com", 1))
        .await
        .expect("insert with w: majority, j: true");
    let updated = orders
        .update_one(doc! { "_id": "o1" }, doc! { "$set": { "status": "paid" } })
        .await
        .expect("update with w: majority, j: true");
    assert_eq!(updated.modified_count, 1);
    let found = orders
        .find_one_and_update(doc! { "_id": "o1" }, doc! { "$inc": { "qty": 1 } })
        .write_concern(majority_journaled())
        .return_document(ReturnDocument::After)
        .await
        .expect("find_one_and_update with w: majority, j: true")
        .expect("o1");
    assert_eq!(found.get_i32("qty").expect("qty"), 2);
    assert_eq!(found.get_str("status").expect("status"), "paid");
    // A duplicate still fails as a write error, not a write-concern error.
    let err = orders
        .insert_one(order("o2", "s1", "a@example.com", 1))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(&*err.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == DUPLICATE_KEY),
        "{err}"
    );

    // The raw reply carries no writeConcernError.
    let reply = db
        .run_command(doc! {
            "insert": "orders",
            "documents": [order("o3", "s2", "a@example.com", 1)],
            "writeConcern": { "w": "majority", "j": true },
        })
        .await
        .expect("raw insert");
    assert_eq!(reply.get_i32("n").expect("n"), 1, "{reply}");
    assert!(!reply.contains_key("writeConcernError"), "{reply}");
    assert!(!reply.contains_key("writeErrors"), "{reply}");

    let deleted = orders
        .delete_one(doc! { "_id": "o3" })
        .await
        .expect("delete with w: majority, j: true");
    assert_eq!(deleted.deleted_count, 1);
    assert_eq!(orders.count_documents(doc! {}).await.expect("count"), 1);
}

/// A client that gives up quickly when no server answers.
async fn impatient_client(server: &MongoServer) -> Client {
    let mut options = ClientOptions::parse(server.url()).await.expect("url");
    options.server_selection_timeout = Some(Duration::from_millis(300));
    options.connect_timeout = Some(Duration::from_millis(300));
    Client::with_options(options).expect("client")
}

async fn write_durable_orders(server: &MongoServer) -> Collection<Document> {
    let orders = orders(server).await;
    create_order_indexes(&orders).await;
    for i in 0..20 {
        orders
            .insert_one(order(
                &format!("o{i}"),
                "s1",
                &format!("u{i}@example.com"),
                i,
            ))
            .write_concern(majority_journaled())
            .await
            .expect("insert");
    }
    orders
        .update_one(doc! { "_id": "o0" }, doc! { "$set": { "status": "paid" } })
        .write_concern(majority_journaled())
        .await
        .expect("update");
    orders
}

async fn assert_orders_intact(server: &MongoServer) {
    let orders = orders(server).await;
    assert_eq!(orders.count_documents(doc! {}).await.expect("count"), 20);
    let o0 = orders
        .find_one(doc! { "_id": "o0" })
        .await
        .expect("find o0")
        .expect("o0");
    assert_eq!(o0.get_str("status").expect("status"), "paid");
    let names = orders.list_index_names().await.expect("list indexes");
    assert!(names.iter().any(|n| n == SALE_USER_INDEX), "{names:?}");
    let err = orders
        .insert_one(order("dup", "s1", "u7@example.com", 1))
        .await
        .expect_err("the unique index still holds");
    assert_eq!(error_code(&err), Some(DUPLICATE_KEY), "{err}");
}

#[tokio::test]
async fn data_survives_stop_and_restart() {
    let mut server = MongoServer::start().await;
    if !server.is_local() {
        eprintln!("MONGO_URL is set: this test needs a server it can stop; skipped");
        return;
    }
    let port = server.port().expect("port");
    let pid = server.pid().expect("pid");
    // Connected before the stop; it must reconnect by itself afterwards.
    let orders = write_durable_orders(&server).await;

    server.stop();
    assert_eq!(server.pid(), None);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open after stop()"
    );
    let down = impatient_client(&server).await;
    let err = down
        .database(&server.database_name())
        .collection::<Document>("orders")
        .count_documents(doc! {})
        .await
        .expect_err("no server while stopped");
    assert!(
        matches!(&*err.kind, ErrorKind::ServerSelection { .. }),
        "{err}"
    );

    server.restart().await;
    assert_eq!(server.port(), Some(port), "same port");
    assert_ne!(server.pid(), Some(pid), "a new process");
    assert_orders_intact(&server).await;
    assert_eq!(
        orders
            .count_documents(doc! {})
            .await
            .expect("old client reconnects"),
        20
    );
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill() {
    let mut server = MongoServer::start().await;
    if !server.is_local() {
        eprintln!("MONGO_URL is set: this test needs a server it can kill; skipped");
        return;
    }
    write_durable_orders(&server).await;
    server.kill();
    server.restart().await;
    assert_orders_intact(&server).await;
}

/// One sale's orders newest first through `hint` (page by page), and their
/// count, against the same query without the hint.
async fn assert_hint_changes_nothing(orders: &Collection<Document>, sale: &str) {
    let filter = doc! { "flashSaleId": sale };
    let sort = doc! { "createdAt": -1, "_id": 1 };
    let hint = Hint::Name(BY_SALE_INDEX.to_string());
    let without = orders.count_documents(filter.clone()).await.expect("count");
    let with = orders
        .count_documents(filter.clone())
        .hint(hint.clone())
        .await
        .expect("hinted count");
    assert_eq!(with, without, "count of {sale}");
    for (skip, limit) in [(0, 1), (0, 5), (3, 4), (0, 100), (28, 10), (100, 5)] {
        let page = |hint: Option<Hint>| {
            let (filter, sort) = (filter.clone(), sort.clone());
            async move {
                let mut find = orders.find(filter).sort(sort).skip(skip).limit(limit);
                if let Some(hint) = hint {
                    find = find.hint(hint);
                }
                find.await
                    .expect("find")
                    .try_collect::<Vec<Document>>()
                    .await
                    .expect("find")
            }
        };
        assert_eq!(
            page(Some(hint.clone())).await,
            page(None).await,
            "{sale}, skip {skip}, limit {limit}"
        );
    }
}

/// The order list's queries name its index in `hint`. The test server
/// answers those from SQLite (tools/mongo-sqlite/indexed.go) and must
/// answer exactly as without the hint — including for documents it has to
/// leave to FerretDB: a sorted field of mixed types, a missing one, an
/// array where the filter compares a string, types it does not convert.
#[tokio::test]
async fn a_hint_changes_no_answer() {
    let server = MongoServer::start().await;
    let orders = orders(&server).await;
    orders
        .create_index(
            IndexModel::builder()
                .keys(doc! { "flashSaleId": 1, "createdAt": -1, "_id": 1 })
                .options(
                    IndexOptions::builder()
                        .name(BY_SALE_INDEX.to_string())
                        .build(),
                )
                .build(),
        )
        .await
        .expect("create the index");
    let at = BsonDateTime::from_millis;
    let mut docs = Vec::new();
    // Batches share a createdAt, so `_id` breaks ties ("a-10" < "a-9").
    for i in 0..30_i64 {
        docs.push(doc! { "_id": format!("a-{i}"), "flashSaleId": "a", "createdAt": at(1_000 + i / 4), "n": i });
    }
    for i in 0..10_i64 {
        docs.push(
            doc! { "_id": format!("b-{i}"), "flashSaleId": "b", "createdAt": at(1_000 + i / 3) },
        );
    }
    // Ids whose JSON text orders otherwise than they do ('!' < '"' < '<').
    for id in ["a", "a!", "a<&>\u{e9}", "a\"q", "a\\"] {
        docs.push(doc! { "_id": id, "flashSaleId": "a", "createdAt": at(1_003) });
    }
    docs.push(doc! {
        "_id": "a-types", "flashSaleId": "a", "createdAt": at(1_002),
        "int": 1_i32, "long": 2_i64, "double": 1.5, "negative": -0.25, "bool": true,
        "null": Bson::Null, "oid": ObjectId::from_bytes([7; 12]), "when": at(-5),
        "nested": { "array": [1_i32, "two", Bson::Null, { "x": false }], "empty": {} },
    });
    orders.insert_many(docs).await.expect("insert");
    for sale in ["a", "b", "none"] {
        assert_hint_changes_nothing(&orders, sale).await;
    }

    let more = [
        // A type the fast path does not convert.
        doc! { "_id": "a-bin", "flashSaleId": "a", "createdAt": at(1_001),
        "bin": Bson::Binary(Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2] }) },
        // No createdAt: sorts last.
        doc! { "_id": "b-none", "flashSaleId": "b" },
        // createdAt of another type in one sale.
        doc! { "_id": "a-text", "flashSaleId": "a", "createdAt": "yesterday" },
        // An array: MongoDB's equality matches an element.
        doc! { "_id": "ab", "flashSaleId": ["a", "b"], "createdAt": at(999) },
        // Another _id type.
        doc! { "_id": ObjectId::from_bytes([1; 12]), "flashSaleId": "b", "createdAt": at(1_000) },
    ];
    for doc in more {
        let id = doc.get("_id").cloned().unwrap_or(Bson::Null);
        orders.insert_one(doc).await.expect("insert");
        for sale in ["a", "b", "none"] {
            assert_hint_changes_nothing(&orders, sale).await;
        }
        orders.delete_one(doc! { "_id": id }).await.expect("delete");
    }
}
