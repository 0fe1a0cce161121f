//! RFC 3339 times (`2026-12-06T07:01:02Z`) for `creationTimestamp`s, from the system clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in UTC, to the second (hoist-oci's formatter, which image configs use too).
pub(super) fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    hoist_oci::format_rfc3339(i64::try_from(secs).unwrap_or(i64::MAX), 0)
}
