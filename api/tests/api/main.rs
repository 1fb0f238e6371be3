//! Integration tests of the HTTP API against real processes: redis-server
//! with the engine (module or Functions library) and a MongoDB-compatible
//! server, the API on a free port, called over HTTP. One binary (faster to
//! build); every test owns its servers, so they run in parallel.

mod admin;
mod admin_live;
mod auth;
mod bad_input;
mod buyers;
mod events;
mod journey;
mod limits;
mod lottery;
mod ops;
mod order_list;
mod pages;
mod pause;
mod rate_limit;
mod sales;
mod support;
