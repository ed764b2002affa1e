//! Telling people: signed webhooks and emails through the shared pool, delivered from a
//! durable queue (`store::notifications`) with retries.

pub mod destination;
mod email;
pub mod settings;
pub mod signature;
pub mod webhook_client;
pub mod worker;
