//! Pages of the newest-first histories (the cloud-token ledger, the audit log), for the API, the
//! CLI and the web pages alike.
//!
//! A page asks for at most `limit` entries (1 to [`MAX_LIMIT`]; none: all of them) after a
//! `cursor`, and answers `next_cursor` when more entries follow. The cursor names the last entry
//! of the previous page by its instant and id (`<milliseconds>.<id>`), so paging stays exact
//! while new entries are appended at the top and when several share a millisecond. Clients treat
//! it as opaque.

use crate::AppError;
use genai_core::Instant;
use genai_store::HistoryPage;
use serde_json::json;

/// The largest page.
pub const MAX_LIMIT: i64 = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The entries, newest first.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// The cursor that continues after the entry at `at` with `id`.
pub fn cursor(at: Instant, id: &str) -> String {
    format!("{}.{id}", at.timestamp_millis())
}

fn parse_cursor(text: &str) -> Option<(Instant, String)> {
    let (ms, id) = text.split_once('.')?;
    let at = chrono::DateTime::from_timestamp_millis(ms.parse().ok()?)?;
    let well_formed = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    well_formed.then(|| (at, id.to_string()))
}

/// Checks a page request: `limit` from 1 to [`MAX_LIMIT`] (422 `validation_failed` otherwise),
/// a `cursor` this server gave out (400 `invalid_request` otherwise). The page asks the store
/// for one entry more than the limit, to know whether another page follows.
pub fn history_page(limit: Option<i64>, cursor: Option<&str>) -> Result<HistoryPage, AppError> {
    if limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
        return Err(AppError::field("limit", format!("must be from 1 to {MAX_LIMIT}")));
    }
    let before = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(parse_cursor(c).ok_or_else(|| AppError::InvalidRequest {
            message: format!("\"{c}\" is not a cursor this server gave out"),
            details: json!({"field": "cursor"}),
        })?),
    };
    Ok(HistoryPage { before, limit: limit.map(|l| l + 1) })
}

/// Cuts what the store answered for `page` down to the limit asked for, with the cursor of
/// the next page when there is one.
pub fn into_page<T>(page: &HistoryPage, mut items: Vec<T>, key: impl Fn(&T) -> (Instant, &str)) -> Page<T> {
    let asked = page.limit.map(|l| l - 1);
    let next_cursor = match asked {
        Some(limit) if items.len() as i64 > limit => {
            items.truncate(usize::try_from(limit).unwrap_or(0));
            items.last().map(|last| {
                let (at, id) = key(last);
                cursor(at, id)
            })
        }
        _ => None,
    };
    Page { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_strangers_are_refused() {
        let at = chrono::DateTime::from_timestamp_millis(1_739_181_600_123).unwrap_or_default();
        let c = cursor(at, "txn_01J0ABC");
        assert_eq!(c, "1739181600123.txn_01J0ABC");
        let page = history_page(Some(10), Some(&c)).map_err(|e| e.to_string());
        assert_eq!(page, Ok(HistoryPage { before: Some((at, "txn_01J0ABC".into())), limit: Some(11) }));
        for bad in ["x", "12", "12.", "abc.txn", "1.txn;DROP", "99999999999999999999.txn"] {
            assert!(
                matches!(history_page(None, Some(bad)), Err(AppError::InvalidRequest { .. })),
                "{bad} must be refused"
            );
        }
        assert!(matches!(history_page(Some(0), None), Err(AppError::Domain(_))));
        assert!(matches!(history_page(Some(1001), None), Err(AppError::Domain(_))));
        assert_eq!(history_page(None, Some("")).map_err(|e| e.to_string()), Ok(HistoryPage::all()));
    }

    #[test]
    fn a_page_knows_whether_another_follows() {
        fn key(e: &(i64, String)) -> (Instant, &str) {
            (chrono::DateTime::from_timestamp_millis(e.0).unwrap_or_default(), e.1.as_str())
        }
        let entries: Vec<(i64, String)> = (0..3).map(|i| (100 - i, format!("e{i}"))).collect();
        let page = history_page(Some(2), None).unwrap_or_default();
        let p = into_page(&page, entries.clone(), key);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.next_cursor.as_deref(), Some("99.e1"));
        let exact = history_page(Some(3), None).unwrap_or_default();
        assert_eq!(into_page(&exact, entries.clone(), key).next_cursor, None, "no empty last page");
        assert_eq!(into_page(&HistoryPage::all(), entries, key).items.len(), 3);
    }
}
