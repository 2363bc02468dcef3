//! What a plan allows per bundle month, and how a Runtime API call reserves against it
//! (RUNTIME.md §5).
//!
//! A text or embeddings resource has a monthly quota of input and output tokens (embeddings:
//! output 0), reset at every bundle-month boundary (SPEC §4) and following the plan in force: an
//! upgrade raises it at once, a downgrade lowers it when it takes effect. Before a call is
//! forwarded it **reserves** an upper bound of what it can use:
//!
//! * input: an upper bound of the prompt's tokens (the wire layer's estimate);
//! * output: the explicit `max_tokens` of the request, else `min(4096, output remaining)`.
//!
//! An explicit `max_tokens` above the output that remains, no output left at all (for a call
//! that produces output), or a prompt bound above the input that remains is refused with 429;
//! the refusal names the quota, what remains and when it refills ([`refills_at`], the bundle
//! month's end). The runtime holds these amounts in memory and leases them from the database
//! in chunks; this module is only the arithmetic every instance agrees on. Amounts are `i64`
//! token counts and every step is checked.
//!
//! Consumption is read per UTC day ([`DayRange`]): a Portal query names a range of at most
//! [`MAX_RANGE_DAYS`] days.

use crate::calendar::{self, Instant};
use crate::catalog::{Plan, ResourceType};
use chrono::{Duration, NaiveDate};
use std::fmt;

/// The output reserved for a call that names no `max_tokens`, unless less remains.
pub const DEFAULT_OUTPUT_RESERVATION: i64 = 4096;

/// The longest range of days a consumption query may span (inclusive): a bit more than a year,
/// so that "this bundle month against the same one last year" fits in one query.
pub const MAX_RANGE_DAYS: i64 = 400;

/// Input and output token amounts (output is 0 for embeddings). Used for quotas, usage,
/// reservations and leases alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: i64,
    /// Output (completion) tokens.
    pub output: i64,
}

impl Tokens {
    /// Nothing.
    pub const ZERO: Tokens = Tokens { input: 0, output: 0 };

    /// Both amounts.
    pub const fn new(input: i64, output: i64) -> Tokens {
        Tokens { input, output }
    }

    /// `self + other` per kind, or `None` on overflow.
    pub fn checked_add(self, other: Tokens) -> Option<Tokens> {
        Some(Tokens { input: self.input.checked_add(other.input)?, output: self.output.checked_add(other.output)? })
    }

    /// `self − other` per kind, or `None` on overflow.
    pub fn checked_sub(self, other: Tokens) -> Option<Tokens> {
        Some(Tokens { input: self.input.checked_sub(other.input)?, output: self.output.checked_sub(other.output)? })
    }

    /// `self − other` per kind, never below zero (what remains of a quota after a use that may
    /// have gone beyond it).
    pub fn saturating_remaining(self, used: Tokens) -> Tokens {
        Tokens {
            input: self.input.saturating_sub(used.input).max(0),
            output: self.output.saturating_sub(used.output).max(0),
        }
    }

    /// Per kind, the smaller amount.
    pub fn min(self, other: Tokens) -> Tokens {
        Tokens { input: self.input.min(other.input), output: self.output.min(other.output) }
    }

    /// Per kind, the larger amount.
    pub fn max(self, other: Tokens) -> Tokens {
        Tokens { input: self.input.max(other.input), output: self.output.max(other.output) }
    }

    /// Whether both amounts fit within `limit` (`self ≤ limit` per kind).
    pub fn fits_in(self, limit: Tokens) -> bool {
        self.input <= limit.input && self.output <= limit.output
    }

    /// Whether both amounts are zero.
    pub fn is_zero(self) -> bool {
        self == Tokens::ZERO
    }
}

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} input and {} output tokens", self.input, self.output)
    }
}

/// The monthly token quota of a plan: input and output (embeddings: output 0). `None` for a
/// plan without a token quota (knowledge bases, which are bounded by stored bytes instead).
pub fn plan_quota(plan: &Plan) -> Option<Tokens> {
    match plan.resource_type {
        ResourceType::KnowledgeBase => None,
        ResourceType::EmbeddingsGeneration => Some(Tokens::new(plan.input_tokens.unwrap_or(0), 0)),
        ResourceType::TextGeneration => {
            Some(Tokens::new(plan.input_tokens.unwrap_or(0), plan.output_tokens.unwrap_or(0)))
        }
    }
}

/// The instant a resource's quota refills: the end of the bundle month containing `now` (its
/// next boundary). `None` only beyond chrono's range.
pub fn refills_at(anchor: Instant, now: Instant) -> Option<Instant> {
    calendar::next_boundary(anchor, now.max(anchor))
}

/// Why a call cannot reserve what it needs: 429 `quota_exceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// The plan's monthly quota.
    pub quota: Tokens,
    /// What remains of it this bundle month.
    pub remaining: Tokens,
    /// What the call asked for (input bound, output reservation).
    pub requested: Tokens,
    /// Which limit refused it.
    pub reason: ExceededBy,
}

/// Which rule of RUNTIME.md §5 refused a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceededBy {
    /// The prompt's bound is above the input that remains.
    Input,
    /// An explicit `max_tokens` is above the output that remains.
    MaxTokens,
    /// No output is left at all (and the call did not name a `max_tokens`).
    NoOutputLeft,
}

impl fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (quota, remaining) = (self.quota, self.remaining);
        match self.reason {
            ExceededBy::Input => write!(
                f,
                "the prompt may use up to {} input tokens but only {} of the monthly {} remain",
                self.requested.input, remaining.input, quota.input
            ),
            ExceededBy::MaxTokens => write!(
                f,
                "max_tokens is {} but only {} of the monthly {} output tokens remain",
                self.requested.output, remaining.output, quota.output
            ),
            ExceededBy::NoOutputLeft => {
                write!(f, "all {} output tokens of this bundle month's quota are used", quota.output)
            }
        }
    }
}

/// The output a call reserves: its explicit `max_tokens`, else `min(4096, output remaining)`.
pub fn output_reservation(max_tokens: Option<i64>, output_remaining: i64) -> i64 {
    match max_tokens {
        Some(m) => m.max(0),
        None => DEFAULT_OUTPUT_RESERVATION.min(output_remaining.max(0)),
    }
}

/// What a call reserves against `remaining` of `quota`: `input_bound` input tokens and the
/// [`output_reservation`]; refused as RUNTIME.md §5 says. `produces_output` is false for
/// embeddings (whose quota has no output part: nothing is reserved for it and its absence is no
/// refusal).
pub fn reserve(
    quota: Tokens,
    remaining: Tokens,
    input_bound: i64,
    max_tokens: Option<i64>,
    produces_output: bool,
) -> Result<Tokens, QuotaExceeded> {
    let output = if produces_output { output_reservation(max_tokens, remaining.output) } else { 0 };
    let requested = Tokens::new(input_bound.max(0), output);
    let refuse = |reason| Err(QuotaExceeded { quota, remaining, requested, reason });
    if requested.input > remaining.input {
        return refuse(ExceededBy::Input);
    }
    if produces_output {
        if max_tokens.is_some() && requested.output > remaining.output {
            return refuse(ExceededBy::MaxTokens);
        }
        if remaining.output <= 0 {
            return refuse(ExceededBy::NoOutputLeft);
        }
    }
    Ok(requested)
}

/// A range of UTC days, both ends included, at most [`MAX_RANGE_DAYS`] long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    /// First day.
    pub from: NaiveDate,
    /// Last day (≥ `from`).
    pub to: NaiveDate,
}

/// Why a day range was refused, naming the query parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DayRangeError {
    /// Not a `YYYY-MM-DD` date (400 `invalid_request`): the parameter and what was sent.
    Malformed(&'static str, String),
    /// A rule of the range (422 `validation_failed`): the parameter and the rule.
    Invalid(&'static str, String),
}

/// `YYYY-MM-DD`, strictly (no time, no offset, no shortened form).
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    (s.len() == 10).then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()).flatten()
}

/// A day as `YYYY-MM-DD`.
pub fn format_day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The UTC day of an instant.
pub fn day_of(t: Instant) -> NaiveDate {
    t.date_naive()
}

impl DayRange {
    /// The days of a bundle month `[start, end)`: from the day of `start` to the day of the
    /// last millisecond before `end`.
    pub fn of_bundle_month(start: Instant, end: Instant) -> DayRange {
        let last = (end - Duration::milliseconds(1)).max(start);
        DayRange { from: day_of(start), to: day_of(last) }
    }

    /// A range from a query's `from` and `to`: neither → `default`; only `from` → from that day
    /// to `today`; only `to` is refused (`from` is required with it); `from` after `to`, or a
    /// range longer than [`MAX_RANGE_DAYS`], is refused naming the parameter.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        default: DayRange,
        today: NaiveDate,
    ) -> Result<DayRange, DayRangeError> {
        let day = |name: &'static str, value: &str| {
            parse_day(value).ok_or_else(|| {
                DayRangeError::Malformed(name, format!("{name} must be a date written YYYY-MM-DD; got \"{value}\""))
            })
        };
        let (from, to) = match (from, to) {
            (None, None) => return Ok(default),
            (Some(f), None) => {
                let f = day("from", f)?;
                if f > today {
                    return Err(DayRangeError::Invalid(
                        "from",
                        format!("is after today ({}); give `to` as well for a range in the future", format_day(today)),
                    ));
                }
                (f, today)
            }
            (None, Some(_)) => {
                return Err(DayRangeError::Invalid("from", "is required when `to` is given".into()));
            }
            (Some(f), Some(t)) => (day("from", f)?, day("to", t)?),
        };
        if from > to {
            return Err(DayRangeError::Invalid(
                "from",
                format!("must not be after `to` ({} is after {})", format_day(from), format_day(to)),
            ));
        }
        let range = DayRange { from, to };
        if range.len() > MAX_RANGE_DAYS {
            return Err(DayRangeError::Invalid(
                "to",
                format!("the range may span at most {MAX_RANGE_DAYS} days; this one spans {}", range.len()),
            ));
        }
        Ok(range)
    }

    /// How many days it spans.
    pub fn len(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    /// Never empty (`from ≤ to`); here for the `len`/`is_empty` pair.
    pub fn is_empty(&self) -> bool {
        self.to < self.from
    }

    /// Every day, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        let from = self.from;
        (0..self.len().max(0)).filter_map(move |i| from.checked_add_signed(Duration::days(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_instant;
    use crate::catalog::{Catalog, PlanSize};

    fn at(s: &str) -> Instant {
        parse_instant(s).unwrap_or_else(|| panic!("bad instant {s}"))
    }

    fn d(s: &str) -> NaiveDate {
        parse_day(s).unwrap_or_else(|| panic!("bad day {s}"))
    }

    #[test]
    fn quotas_follow_the_catalog() {
        let c = Catalog::builtin();
        let quota = |t, s| c.plan(t, s).and_then(plan_quota);
        assert_eq!(quota(ResourceType::TextGeneration, PlanSize::Medium), Some(Tokens::new(5_000_000, 2_500_000)));
        assert_eq!(quota(ResourceType::EmbeddingsGeneration, PlanSize::Small), Some(Tokens::new(5_000_000, 0)));
        assert_eq!(quota(ResourceType::KnowledgeBase, PlanSize::Standard), None);
    }

    #[test]
    fn output_reservation_defaults_to_4096_or_what_remains() {
        assert_eq!(output_reservation(None, 1_000_000), 4096);
        assert_eq!(output_reservation(None, 100), 100);
        assert_eq!(output_reservation(None, -5), 0);
        assert_eq!(output_reservation(Some(7), 100), 7);
        assert_eq!(output_reservation(Some(700), 100), 700, "explicit is kept; reserve refuses it");
    }

    #[test]
    fn reservations_are_refused_as_runtime_5_says() {
        let quota = Tokens::new(1000, 500);
        let ok = reserve(quota, Tokens::new(1000, 500), 200, None, true);
        assert_eq!(ok, Ok(Tokens::new(200, 500)), "no max_tokens: min(4096, 500)");
        assert_eq!(reserve(quota, Tokens::new(1000, 500), 200, Some(50), true), Ok(Tokens::new(200, 50)));

        let input = reserve(quota, Tokens::new(100, 500), 200, None, true).err().map(|e| e.reason);
        assert_eq!(input, Some(ExceededBy::Input));
        let max = reserve(quota, Tokens::new(1000, 40), 10, Some(50), true);
        assert_eq!(max.err().map(|e| e.reason), Some(ExceededBy::MaxTokens));
        let none_left = reserve(quota, Tokens::new(1000, 0), 10, None, true);
        assert_eq!(none_left.err().map(|e| e.reason), Some(ExceededBy::NoOutputLeft));
        let text = reserve(quota, Tokens::new(1000, 40), 10, Some(50), true).err().map(|e| e.to_string());
        assert_eq!(text.as_deref(), Some("max_tokens is 50 but only 40 of the monthly 500 output tokens remain"));

        // Embeddings: no output part at all.
        let emb = Tokens::new(1000, 0);
        assert_eq!(reserve(emb, emb, 999, None, false), Ok(Tokens::new(999, 0)));
        assert_eq!(reserve(emb, emb, 1000, None, false), Ok(Tokens::new(1000, 0)), "exactly what remains");
        assert!(reserve(emb, emb, 1001, None, false).is_err());
    }

    #[test]
    fn arithmetic_is_checked() {
        let big = Tokens::new(i64::MAX, 0);
        assert_eq!(big.checked_add(Tokens::new(1, 0)), None);
        assert_eq!(Tokens::new(5, 5).checked_sub(Tokens::new(2, 7)), Some(Tokens::new(3, -2)));
        assert_eq!(Tokens::new(5, 5).saturating_remaining(Tokens::new(2, 7)), Tokens::new(3, 0));
        assert_eq!(Tokens::new(i64::MIN, 0).saturating_remaining(Tokens::new(1, 0)), Tokens::new(0, 0));
        assert!(Tokens::new(1, 2).fits_in(Tokens::new(1, 2)) && !Tokens::new(1, 3).fits_in(Tokens::new(9, 2)));
    }

    #[test]
    fn refills_at_the_end_of_the_bundle_month() {
        let anchor = at("2026-01-31T10:00:00Z");
        assert_eq!(refills_at(anchor, at("2026-02-10T00:00:00Z")), Some(at("2026-02-28T10:00:00Z")));
        assert_eq!(refills_at(anchor, at("2026-02-28T10:00:00Z")), Some(at("2026-03-31T10:00:00Z")));
        assert_eq!(refills_at(anchor, at("2025-12-01T00:00:00Z")), Some(at("2026-02-28T10:00:00Z")));
    }

    #[test]
    fn day_ranges() {
        let default = DayRange::of_bundle_month(at("2026-01-31T10:00:00Z"), at("2026-02-28T10:00:00Z"));
        assert_eq!((default.from, default.to, default.len()), (d("2026-01-31"), d("2026-02-28"), 29));
        let midnight = DayRange::of_bundle_month(at("2026-03-01T00:00:00Z"), at("2026-04-01T00:00:00Z"));
        assert_eq!(midnight.to, d("2026-03-31"), "the end instant belongs to the next month");
        let today = d("2026-02-10");
        assert_eq!(DayRange::parse(None, None, default, today), Ok(default));
        assert_eq!(
            DayRange::parse(Some("2026-02-01"), Some("2026-02-03"), default, today).map(|r| r.days().count()),
            Ok(3)
        );
        assert_eq!(
            DayRange::parse(Some("2026-02-01"), None, default, today),
            Ok(DayRange { from: d("2026-02-01"), to: today })
        );
        let err = |f: Option<&str>, t: Option<&str>| DayRange::parse(f, t, default, today).err();
        assert!(matches!(err(Some("2026-2-1"), None), Some(DayRangeError::Malformed("from", _))));
        assert!(matches!(err(Some("2026-02-01"), Some("tomorrow")), Some(DayRangeError::Malformed("to", _))));
        assert!(matches!(err(Some("2026-02-30"), Some("2026-03-01")), Some(DayRangeError::Malformed("from", _))));
        assert!(matches!(err(None, Some("2026-02-01")), Some(DayRangeError::Invalid("from", _))));
        assert!(matches!(err(Some("2026-02-05"), Some("2026-02-01")), Some(DayRangeError::Invalid("from", _))));
        assert!(matches!(err(Some("2026-03-01"), None), Some(DayRangeError::Invalid("from", _))));
        assert!(matches!(err(Some("2025-01-01"), Some("2026-02-05")), Some(DayRangeError::Invalid("to", _))));
        let longest = DayRange::parse(Some("2025-01-01"), Some("2026-02-04"), default, today);
        assert_eq!(longest.map(|r| r.len()), Ok(MAX_RANGE_DAYS));
    }
}
