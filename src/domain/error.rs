/// A value from outside did not satisfy a rule of the domain. `reason` is written for the
/// person who sent the value: it says what is wrong and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DomainError {
    pub reason: String,
}

impl DomainError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}
