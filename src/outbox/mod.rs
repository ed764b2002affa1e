//! Durable delivery: the stored form of accepted messages, the router's view of a tenant,
//! the delivery loop (claim with a lease, route, send, record), the heartbeat that lets live
//! processes take over a dead one's messages, retries and rendering.
//! May import `transport`, `store`, `vault` and `domain`.

mod checks;
mod connected;
pub mod content;
pub mod dkim;
mod gmail;
mod host;
mod microsoft;
mod outcome;
mod presence;
pub mod render;
pub mod retry;
pub mod route;
pub mod settings;
mod suppressed;
mod worker;

pub use worker::{Outbox, Running};
