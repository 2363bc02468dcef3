//! Bundle months: the anniversary-based billing periods of a resource (SPEC §4).
//!
//! Boundary *k* of a resource is its anchor (the provisioning instant) plus *k* calendar months,
//! the day clamped to the last day of a shorter month and the time of day kept. Every boundary
//! is computed from the anchor, never from the previous boundary, so a resource anchored on the
//! 31st comes back to the 31st after a short month (31 Jan → 28 Feb → 31 Mar). This module is
//! the only place that does calendar arithmetic.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};
use serde::Serialize;

/// An instant in UTC. Stored and compared with millisecond precision.
pub type Instant = DateTime<Utc>;

/// One bundle month: `[start, end)`, with its index counted from the anchor (0 = first month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BundleMonth {
    /// How many boundaries lie between the anchor and `start`.
    #[serde(skip)]
    pub index: u32,
    /// First instant of the bundle month (inclusive).
    pub start: Instant,
    /// First instant of the next bundle month (exclusive).
    pub end: Instant,
}

/// The number of days of `month` (1–12) in `year`.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    match (NaiveDate::from_ymd_opt(ny, nm, 1), NaiveDate::from_ymd_opt(year, month, 1)) {
        (Some(next), Some(first)) => (next - first).num_days() as u32,
        // Only reachable for years outside chrono's range; 28 is then as good as any.
        _ => 28,
    }
}

/// Boundary `k` of a resource anchored at `anchor`: anchor + k months, day clamped, time kept.
/// `None` only beyond the year 262,000 (chrono's range).
pub fn boundary(anchor: Instant, k: u32) -> Option<Instant> {
    let months = i64::from(anchor.year()) * 12 + i64::from(anchor.month0()) + i64::from(k);
    let year = i32::try_from(months.div_euclid(12)).ok()?;
    let month = u32::try_from(months.rem_euclid(12)).ok()? + 1;
    let day = anchor.day().min(days_in_month(year, month));
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let naive = date.and_hms_nano_opt(anchor.hour(), anchor.minute(), anchor.second(), anchor.nanosecond())?;
    Some(Utc.from_utc_datetime(&naive))
}

/// The bundle month of a resource anchored at `anchor` that contains `t`. Instants before the
/// anchor belong to the first bundle month.
pub fn bundle_month_at(anchor: Instant, t: Instant) -> Option<BundleMonth> {
    let whole_months =
        (i64::from(t.year()) - i64::from(anchor.year())) * 12 + i64::from(t.month0()) - i64::from(anchor.month0());
    // The calendar-month difference is either right or one too many (when t's day/time of day
    // lies before the anchor's); step back until boundary k <= t.
    let mut k = u32::try_from(whole_months.max(0)).ok()?;
    loop {
        let start = boundary(anchor, k)?;
        if start <= t || k == 0 {
            let end = boundary(anchor, k + 1)?;
            if t >= end {
                k += 1;
                continue;
            }
            return Some(BundleMonth { index: k, start, end });
        }
        k -= 1;
    }
}

/// The end of the bundle month containing `t`: the instant a deprovisioning or downgrade asked
/// for at `t` takes effect.
pub fn next_boundary(anchor: Instant, t: Instant) -> Option<Instant> {
    bundle_month_at(anchor, t).map(|m| m.end)
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when there are any.
pub fn format_instant(t: Instant) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// `t` truncated to whole milliseconds: the precision instants are stored with.
pub fn truncate_to_millis(t: Instant) -> Instant {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// Parses an RFC 3339 instant (any offset) into UTC.
pub fn parse_instant(s: &str) -> Option<Instant> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| truncate_to_millis(t.with_timezone(&Utc)))
}

/// A date for people: "12 Mar 2026".
pub fn format_day(t: Instant) -> String {
    t.format("%-d %b %Y").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Instant {
        parse_instant(s).unwrap_or_else(|| panic!("bad instant {s}"))
    }

    #[test]
    fn spec_examples() {
        let cases: &[(&str, &[&str])] = &[
            ("2025-01-31T00:00:00Z", &["2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z", "2025-04-30T00:00:00Z"]),
            ("2024-01-31T00:00:00Z", &["2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"]),
            ("2025-01-30T00:00:00Z", &["2025-02-28T00:00:00Z", "2025-03-30T00:00:00Z"]),
            ("2025-03-31T00:00:00Z", &["2025-04-30T00:00:00Z", "2025-05-31T00:00:00Z"]),
            ("2025-02-28T00:00:00Z", &["2025-03-28T00:00:00Z", "2025-04-28T00:00:00Z"]),
        ];
        for (anchor, expected) in cases {
            for (i, e) in expected.iter().enumerate() {
                assert_eq!(boundary(at(anchor), i as u32 + 1), Some(at(e)), "{anchor} k={}", i + 1);
            }
        }
        // The seed's example: started 12 Feb, downgrade asked 20 Feb, effective 12 Mar.
        let anchor = at("2026-02-12T08:00:00Z");
        assert_eq!(next_boundary(anchor, at("2026-02-20T00:00:00Z")), Some(at("2026-03-12T08:00:00Z")));
    }

    #[test]
    fn bundle_month_is_half_open() {
        let anchor = at("2026-01-31T10:00:00Z");
        let m = bundle_month_at(anchor, at("2026-02-28T09:59:59.999Z")).unwrap_or_else(|| panic!("none"));
        assert_eq!((m.index, m.start, m.end), (0, anchor, at("2026-02-28T10:00:00Z")));
        let m = bundle_month_at(anchor, at("2026-02-28T10:00:00Z")).unwrap_or_else(|| panic!("none"));
        assert_eq!((m.index, m.start, m.end), (1, at("2026-02-28T10:00:00Z"), at("2026-03-31T10:00:00Z")));
    }

    #[test]
    fn formats() {
        assert_eq!(format_instant(at("2026-03-12T09:30:00Z")), "2026-03-12T09:30:00Z");
        assert_eq!(format_instant(at("2026-03-12T09:30:00.250Z")), "2026-03-12T09:30:00.250Z");
        assert_eq!(format_day(at("2026-03-02T09:30:00Z")), "2 Mar 2026");
    }
}
