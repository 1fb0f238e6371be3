//! The MongoDB records of flashsale — the durable side of the platform —
//! declared once for the API, the worker and the stress tool: the
//! collections, the documents, the names of the fields that queries use,
//! and the indexes. Queries stay with the program that runs them.

pub mod order;
pub mod sale;
pub mod user;

/// One document per sale (`_id` = the engine's sale id); the API writes
/// them, the worker keeps `currentQuantity`.
pub const SALES: &str = "flash_sales";
/// Admin accounts; the API's alone.
pub const USERS: &str = "users";
/// Confirmed orders, written by the worker from the engine's outbox.
pub const ORDERS: &str = "orders";

/// MongoDB's error code for a unique-index violation.
pub const DUPLICATE_KEY: i32 = 11000;
