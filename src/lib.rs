//! Switchboard: the send channels of a sales-engagement product. Tenancy, credentials,
//! routing and durable delivery behind one HTTP API.
//!
//! Dependency direction: `http → outbox → transport → store/vault → domain`; `domain`
//! imports none of the others.

pub mod clock;
pub mod commands;
pub mod config;
pub mod domain;
pub mod domains;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod oauth;
pub mod outbox;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod transport;
pub mod vault;
