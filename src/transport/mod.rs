//! Reaching providers: the outbound-address policy (no SSRF into private networks), SMTP
//! sessions on our own sockets, the staged channel test, and the classification of failures
//! that the tester, retries and channel health share. May import `domain` and `vault`.

pub mod api_answer;
pub mod certificate;
pub mod classify;
pub mod dkim;
pub mod gmail;
pub mod graph;
pub mod outbound;
pub mod pool;
pub mod shared_pool;
pub mod smtp;
pub mod tester;
pub mod transaction;
pub mod trust;

pub use classify::FailureClass;
pub use outbound::{OutboundError, OutboundPolicy};
pub use shared_pool::SharedPool;
