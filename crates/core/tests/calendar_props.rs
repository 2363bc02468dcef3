//! Bundle-month boundaries (SPEC §4) checked against an independent, naive calendar.
//!
//! `genai_core::calendar` is the only place that does calendar arithmetic, and every quota reset,
//! downgrade and deprovisioning lands on one of its boundaries, so an off-by-one-day there is an
//! off-by-one-day everywhere. This file compares it with the obviously correct oracle of
//! `common` (a month-length table, a month counter stepped one month at a time):
//!
//! - the examples of SPEC §4 and the seed, and the Gregorian century rule, as plain tests;
//! - exhaustively: every anchor day of 2023–2029 (leap years 2024 and 2028 included) at several
//!   times of day, boundaries 0..=40, against the oracle, plus the shape of each boundary (day
//!   clamped to the month, time of day kept, strictly increasing, never drifting after a short
//!   month) and the bundle month found at and just before each boundary;
//! - as properties over random anchors and instants: `bundle_month_at` returns the half-open
//!   `[start, end)` that contains `t`, whose `start` is boundary `index` and `end` boundary
//!   `index + 1`, with the index the oracle finds; `next_boundary` is that `end`; instants
//!   before the anchor belong to the first bundle month; nothing panics over chrono's range.

mod common;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use common::{is_leap, month_len, naive_boundaries, naive_boundary, naive_index, naive_next_boundary};
use genai_core::calendar::{boundary, bundle_month_at, days_in_month, next_boundary, parse_instant};
use genai_core::Instant;
use proptest::prelude::*;

fn at(s: &str) -> Instant {
    parse_instant(s).unwrap_or_else(|| panic!("bad instant {s}"))
}

fn ms(n: i64) -> Duration {
    Duration::milliseconds(n)
}

/// Checks everything `bundle_month_at` and `next_boundary` promise for `t >= anchor`.
fn check_month_at(anchor: Instant, t: Instant) {
    let m = bundle_month_at(anchor, t).unwrap_or_else(|| panic!("no bundle month for {t} from {anchor}"));
    let k = naive_index(anchor, t);
    assert_eq!(m.index, k, "index of {t} from {anchor}");
    assert!(m.start <= t && t < m.end, "{t} not in [{}, {}) (anchor {anchor})", m.start, m.end);
    assert_eq!(m.start, naive_boundary(anchor, k), "start of {t} from {anchor}");
    assert_eq!(m.end, naive_boundary(anchor, k + 1), "end of {t} from {anchor}");
    assert_eq!(Some(m.start), boundary(anchor, m.index), "start is boundary index");
    assert_eq!(Some(m.end), boundary(anchor, m.index + 1), "end is boundary index+1");
    assert_eq!(next_boundary(anchor, t), Some(m.end), "next_boundary of {t} from {anchor}");
    assert_eq!(m.end, naive_next_boundary(anchor, t), "oracle next boundary of {t} from {anchor}");
}

#[test]
fn spec_examples() {
    let cases: &[(&str, &[&str])] = &[
        ("2025-01-31T00:00:00Z", &["2025-02-28T00:00:00Z", "2025-03-31T00:00:00Z", "2025-04-30T00:00:00Z"]),
        ("2024-01-31T00:00:00Z", &["2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"]),
        ("2025-01-30T00:00:00Z", &["2025-02-28T00:00:00Z", "2025-03-30T00:00:00Z"]),
        ("2025-03-31T00:00:00Z", &["2025-04-30T00:00:00Z", "2025-05-31T00:00:00Z"]),
        ("2025-02-28T00:00:00Z", &["2025-03-28T00:00:00Z", "2025-04-28T00:00:00Z"]),
        // Century rule: 2000 is a leap year, 2100 is not.
        ("2000-01-31T06:00:00Z", &["2000-02-29T06:00:00Z", "2000-03-31T06:00:00Z"]),
        ("2100-01-29T06:00:00Z", &["2100-02-28T06:00:00Z", "2100-03-29T06:00:00Z"]),
    ];
    for (anchor, expected) in cases {
        let anchor = at(anchor);
        assert_eq!(boundary(anchor, 0), Some(anchor), "boundary 0 is the anchor");
        for (i, e) in expected.iter().enumerate() {
            let k = u32::try_from(i + 1).unwrap_or(u32::MAX);
            assert_eq!(boundary(anchor, k), Some(at(e)), "{anchor} k={k}");
            assert_eq!(naive_boundary(anchor, k), at(e), "oracle {anchor} k={k}");
        }
    }
    // The seed's example: started 12 February, downgrade asked 20 February → effective 12 March.
    let anchor = at("2026-02-12T08:00:00Z");
    assert_eq!(next_boundary(anchor, at("2026-02-20T00:00:00Z")), Some(at("2026-03-12T08:00:00Z")));
    // Asked at the very anchor or a millisecond before the boundary: still the first month.
    assert_eq!(next_boundary(anchor, anchor), Some(at("2026-03-12T08:00:00Z")));
    assert_eq!(next_boundary(anchor, at("2026-03-12T07:59:59.999Z")), Some(at("2026-03-12T08:00:00Z")));
    // Asked exactly at the boundary: the next bundle month has begun.
    assert_eq!(next_boundary(anchor, at("2026-03-12T08:00:00Z")), Some(at("2026-04-12T08:00:00Z")));
}

#[test]
fn days_in_month_matches_the_table() {
    for year in 1582..=2800 {
        for month in 1..=12 {
            assert_eq!(days_in_month(year, month), month_len(year, month), "{year}-{month}");
        }
    }
    assert!(is_leap(2024) && is_leap(2028) && is_leap(2000) && !is_leap(2100) && !is_leap(2025));
}

/// Every anchor day of 2023–2029 at several times of day, boundaries 0..=40.
#[test]
fn every_anchor_day_2023_to_2029() {
    let times = [(0, 0, 0, 0), (8, 0, 0, 0), (12, 34, 56, 789), (23, 59, 59, 999)];
    let first = NaiveDate::from_ymd_opt(2023, 1, 1).unwrap_or_else(|| panic!("date"));
    let last = NaiveDate::from_ymd_opt(2029, 12, 31).unwrap_or_else(|| panic!("date"));
    let mut anchors = 0;
    for date in first.iter_days().take_while(|d| *d <= last) {
        for (h, m, s, milli) in times {
            let naive = date.and_hms_milli_opt(h, m, s, milli).unwrap_or_else(|| panic!("time"));
            let anchor = Utc.from_utc_datetime(&naive);
            anchors += 1;
            let expected: Vec<Instant> = naive_boundaries(anchor).take(42).collect();
            let mut previous: Option<Instant> = None;
            for k in 0..=40u32 {
                let b = boundary(anchor, k).unwrap_or_else(|| panic!("no boundary {k} of {anchor}"));
                assert_eq!(b, expected[k as usize], "boundary {k} of {anchor}");
                // Shape: day clamped to the month reached, time of day kept.
                assert_eq!(b.day(), anchor.day().min(month_len(b.year(), b.month())), "{b}");
                assert_eq!(
                    (b.hour(), b.minute(), b.second(), b.nanosecond()),
                    (anchor.hour(), anchor.minute(), anchor.second(), anchor.nanosecond()),
                    "time of day of {b}"
                );
                // k calendar months after the anchor's month.
                let months = (b.year() - anchor.year()) * 12 + b.month() as i32 - anchor.month() as i32;
                assert_eq!(months, k as i32, "{b} is {k} months after {anchor}");
                if let Some(p) = previous {
                    assert!(p < b, "boundaries not increasing: {p} then {b}");
                }
                previous = Some(b);
                // The bundle month at the boundary starts there; just before it, it ends there.
                let m = bundle_month_at(anchor, b).unwrap_or_else(|| panic!("month at {b}"));
                assert_eq!((m.index, m.start, m.end), (k, b, expected[k as usize + 1]), "month at {b}");
                if k > 0 {
                    let m = bundle_month_at(anchor, b - ms(1)).unwrap_or_else(|| panic!("month before {b}"));
                    assert_eq!((m.index, m.end), (k - 1, b), "month just before {b}");
                }
            }
        }
    }
    assert_eq!(anchors, 2557 * times.len());
}

/// Anchors in 1900–2200 (three century years, only one of them leap), mostly with millisecond
/// precision (what the store keeps), some with nanoseconds (the calendar must keep them too).
fn anchor_strategy() -> impl Strategy<Value = Instant> {
    let lo = at("1900-01-01T00:00:00Z").timestamp_millis();
    let hi = at("2200-01-01T00:00:00Z").timestamp_millis();
    prop_oneof![
        // Anywhere.
        (lo..hi).prop_map(|n| DateTime::from_timestamp_millis(n).unwrap_or_else(|| panic!("{n}"))),
        // Late in a month, where clamping happens.
        (1900i32..2200, 1u32..=12, 28u32..=31, 0i64..86_400_000).prop_map(|(y, m, d, t)| {
            let d = d.min(month_len(y, m));
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("{y}-{m}-{d}"));
            Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_else(|| panic!("midnight"))) + ms(t)
        }),
        // Sub-millisecond time of day.
        (lo..hi, 0i64..1_000_000).prop_map(|(n, ns)| {
            DateTime::from_timestamp_millis(n).unwrap_or_else(|| panic!("{n}")) + Duration::nanoseconds(ns)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any instant up to 15 years after the anchor lies in the bundle month the oracle finds.
    #[test]
    fn bundle_month_contains_t(anchor in anchor_strategy(), offset in 0i64..15 * 366 * 86_400_000) {
        check_month_at(anchor, anchor + ms(offset));
    }

    /// Instants at and within two milliseconds of a boundary land on the right side of it.
    #[test]
    fn instants_next_to_a_boundary(anchor in anchor_strategy(), k in 0u32..400, delta in -2i64..=2) {
        let b = naive_boundary(anchor, k);
        let t = b + ms(delta);
        prop_assume!(t >= anchor);
        check_month_at(anchor, t);
        let m = bundle_month_at(anchor, t).unwrap_or_else(|| panic!("month at {t}"));
        let expected = if delta < 0 { k - 1 } else { k };
        prop_assert_eq!(m.index, expected);
    }

    /// Boundaries match the oracle far from the anchor too, and strictly increase.
    #[test]
    fn boundaries_match_the_oracle(anchor in anchor_strategy(), k in 0u32..2400) {
        let b = boundary(anchor, k);
        prop_assert_eq!(b, Some(naive_boundary(anchor, k)));
        let next = boundary(anchor, k + 1);
        prop_assert!(b < next, "boundary {} = {:?} not before boundary {} = {:?}", k, b, k + 1, next);
    }

    /// Instants before the anchor belong to the first bundle month.
    #[test]
    fn before_the_anchor_is_the_first_month(anchor in anchor_strategy(), back in 1i64..40 * 366 * 86_400_000) {
        let m = bundle_month_at(anchor, anchor - ms(back)).unwrap_or_else(|| panic!("month before {anchor}"));
        prop_assert_eq!((m.index, m.start, m.end), (0, anchor, naive_boundary(anchor, 1)));
    }

    /// Over chrono's whole range nothing panics; whatever is answered is still right.
    #[test]
    fn no_panic_over_the_whole_range(
        a in DateTime::<Utc>::MIN_UTC.timestamp_millis()..=DateTime::<Utc>::MAX_UTC.timestamp_millis(),
        b in DateTime::<Utc>::MIN_UTC.timestamp_millis()..=DateTime::<Utc>::MAX_UTC.timestamp_millis(),
        k in any::<u32>(),
    ) {
        let anchor = DateTime::from_timestamp_millis(a).unwrap_or_else(|| panic!("{a}"));
        let t = DateTime::from_timestamp_millis(b).unwrap_or_else(|| panic!("{b}"));
        if let Some(x) = boundary(anchor, k) {
            prop_assert!(x >= anchor);
            prop_assert_eq!(x.day(), anchor.day().min(month_len(x.year(), x.month())));
        }
        if let Some(m) = bundle_month_at(anchor, t) {
            prop_assert!(m.start < m.end);
            prop_assert_eq!(Some(m.start), boundary(anchor, m.index));
            prop_assert_eq!(Some(m.end), boundary(anchor, m.index + 1));
            if t >= anchor {
                prop_assert!(m.start <= t && t < m.end);
            } else {
                prop_assert_eq!(m.index, 0);
            }
        }
        let _ = next_boundary(anchor, t);
    }
}
