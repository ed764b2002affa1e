//! Reaching providers: the outbound-address policy (no SSRF into private networks), and,
//! next, SMTP and the Gmail API. May import `domain` and `vault`.

pub mod outbound;

pub use outbound::{OutboundError, OutboundPolicy};
