//! An independent, deliberately naive bundle-month calendar shared by the property tests.
//!
//! It does no date arithmetic through chrono at all: month lengths come from a hard-coded table
//! with the Gregorian leap rule, boundaries are found by stepping a (year, month) counter one
//! month at a time, and the bundle month containing an instant by walking boundaries from the
//! anchor. chrono is used only to take an instant apart and to put one together. Being slow and
//! obvious is the point: it is the oracle `genai_core::calendar` is compared against.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

/// Days of each month in a common (non-leap) year.
const MONTH_DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// The Gregorian leap-year rule: every 4th year, except centuries, except every 400th year.
pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days of `month` (1–12) in `year`, from the table.
pub fn month_len(year: i32, month: u32) -> u32 {
    if month == 2 && is_leap(year) {
        29
    } else {
        MONTH_DAYS[(month - 1) as usize]
    }
}

/// Boundaries 0, 1, 2, … of `anchor`: step the (year, month) counter one month at a time,
/// clamp the anchor's day to the length of the month reached, keep the anchor's time of day.
pub fn naive_boundaries(anchor: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> {
    let (mut year, mut month) = (anchor.year(), anchor.month());
    let mut first = true;
    std::iter::from_fn(move || {
        if !first {
            month += 1;
            if month == 13 {
                month = 1;
                year += 1;
            }
        }
        first = false;
        let day = anchor.day().min(month_len(year, month));
        let naive = NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_nano_opt(anchor.hour(), anchor.minute(), anchor.second(), anchor.nanosecond()))
            .unwrap_or_else(|| panic!("naive boundary {year}-{month}-{day} of {anchor} is not a date"));
        Some(Utc.from_utc_datetime(&naive))
    })
}

/// Boundary `k` of `anchor`.
pub fn naive_boundary(anchor: DateTime<Utc>, k: u32) -> DateTime<Utc> {
    naive_boundaries(anchor).nth(k as usize).unwrap_or_else(|| panic!("boundary {k} of {anchor}"))
}

/// The index `k` of the bundle month containing `t` (`t >= anchor`): the largest `k` with
/// boundary `k <= t`, found by walking forward from the anchor.
pub fn naive_index(anchor: DateTime<Utc>, t: DateTime<Utc>) -> u32 {
    assert!(t >= anchor, "naive_index needs t >= anchor");
    let passed = naive_boundaries(anchor).take_while(|b| *b <= t).count();
    u32::try_from(passed - 1).unwrap_or_else(|_| panic!("index of {t} from {anchor}"))
}

/// The end of the bundle month containing `t` (`t >= anchor`): when a downgrade or a
/// deprovisioning asked for at `t` takes effect.
pub fn naive_next_boundary(anchor: DateTime<Utc>, t: DateTime<Utc>) -> DateTime<Utc> {
    naive_boundaries(anchor).find(|b| *b > t).unwrap_or_else(|| panic!("next boundary of {t} from {anchor}"))
}
