//! Sending domains: proving a claim through DNS now and on a schedule, and what the checks
//! find. The HTTP layer and the scheduler share one `Domains` service.
//! May import `store`, `vault` and `domain`.

pub mod channel_health;
pub mod dkim;
pub mod health;
pub mod proof;
pub mod resolver;
pub mod settings;
pub mod watch;

pub use proof::{Domains, VerifyError};
pub use resolver::{Dns, LookupError};
pub use settings::DomainSettings;
