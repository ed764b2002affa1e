//! Times are stored as microseconds since the Unix epoch (BIGINT on both backends).

use chrono::{DateTime, Utc};

use super::StoreError;

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn from_micros(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::corrupt(format!("timestamp {micros} out of range")))
}
