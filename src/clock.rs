//! Time as the handler sees it: Unix seconds, read in one place.
//!
//! Owns: the wall clock and the RFC 3339 rendering of a Unix time.
//! Must not: be read by the pure certificate rules (callers pass `now` in).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The wall clock in Unix seconds.
pub fn system_clock() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as RFC 3339 (UTC); out-of-range values fall back to the number.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}
