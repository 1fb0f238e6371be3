//! The flashsale HTTP API: customers queue for a flash sale, watch their
//! place, confirm while they hold a unit, and see their order; admins manage
//! sales and watch queues. The sale engine in Redis decides every customer
//! outcome; MongoDB holds the catalogue, the admins and the recorded orders.
//!
//! [`startup::Application`] builds and serves it; `main.rs` only parses the
//! command line.

pub mod archived_sale;
pub mod auth;
pub mod buyer_claims;
pub mod buyer_token;
pub mod catalogue;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod live_sales;
pub mod openapi;
pub mod queue_drain;
pub mod routes;
pub mod sale_feed;
pub mod sale_lock;
pub mod seed_admin;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

pub use config::Settings;
pub use startup::Application;
