//! This server's time as the API writes and reads it (RFC 3339, in UTC), and as the store
//! and the history keep it (unix seconds and milliseconds).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, as the API writes a time (`createdAt`, `modifiedAt`, a report's `reportedAt`).
pub fn now() -> String {
    text(OffsetDateTime::now_utc())
}

/// Now in unix seconds (what the store keeps of expiries and revocations).
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Now in unix milliseconds (the history's samples, the audit log's order).
pub fn unix_now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// This server's clock to the millisecond (what an `establishedAt` it keeps says).
pub fn now_ms() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}

/// `t` as the API writes a time.
pub fn text(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// A time in unix seconds as the API writes it (the number itself, if out of range).
pub fn of_unix(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// A time the API wrote (or a caller gave), if it is one.
pub fn parse(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &Rfc3339).ok()
}

/// Unix milliseconds of a time the API wrote, if it is one.
pub fn unix_ms(t: &str) -> Option<i64> {
    parse(t).map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_and_read_back_as_rfc_3339_utc() {
        assert_eq!(of_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(of_unix(i64::MAX), i64::MAX.to_string(), "out of range");
        assert_eq!(unix_ms("1970-01-01T00:00:01.250Z"), Some(1250));
        assert_eq!(unix_ms("yesterday"), None);
        let t = now_ms();
        assert_eq!(t.nanosecond() % 1_000_000, 0);
        assert_eq!(parse(&text(t)), Some(t));
        assert!(parse(&now()).is_some());
    }
}
