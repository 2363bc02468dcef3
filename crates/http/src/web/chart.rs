//! The Portal's consumption charts, drawn by the server as SVG (RUNTIME.md §7): nothing is loaded
//! from another host and nothing needs JavaScript.
//!
//! **Design** (also in docs/portal.md): one chart per quantity (input tokens, output tokens, API
//! calls) over the days of the chosen period, on one linear axis that starts at zero:
//! - a **bar per UTC day**: what that day used (its exact figures are in the bar's tooltip and in
//!   the table under the charts);
//! - a **running total** line: the sum since the start of the bundle month the day belongs to,
//!   restarting on the day a new bundle month starts (the quota refills then). This is what the
//!   quota is checked against, so it is the line to compare with the limit;
//! - the **monthly limit** as a dashed line (token charts only: API calls have no limit). The
//!   axis always reaches the limit, so the distance between the running total and the dashed
//!   line reads as "how much is left"; a day's bar is small next to a monthly limit, which is
//!   true and the reason the running total is drawn.
//!
//! Days after today are left empty (no bar, no line), so a bundle month's chart shows how far
//! into the month the usage is. The view model is plain numbers and labels, rendered by askama
//! (escaped), never a string of SVG assembled here.

use super::views::thousands;

/// Width of the drawing, in SVG units (the `viewBox`; the page scales it to its column).
const WIDTH: f64 = 420.0;
/// Height of the drawing.
const HEIGHT: f64 = 210.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 22.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 24.0;

/// One day of a chart's data.
#[derive(Debug, Clone)]
pub struct ChartDay {
    /// Its label on the axis ("12 Feb").
    pub label: String,
    /// Its date for the tooltip ("12 Feb 2026").
    pub date: String,
    /// What it used; `None` for a day after today.
    pub value: Option<i64>,
    /// Whether a bundle month starts that day (the running total restarts).
    pub month_starts: bool,
    /// What earlier days of its bundle month used, when it is the first day shown (the running
    /// total of a period that starts inside a bundle month does not start at zero).
    pub carried: i64,
}

/// A bar of a chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// Left edge.
    pub x: String,
    /// Top edge.
    pub y: String,
    /// Width.
    pub w: String,
    /// Height.
    pub h: String,
    /// Tooltip.
    pub title: String,
}

/// A label on an axis.
#[derive(Debug, Clone)]
pub struct Tick {
    /// Position along the axis.
    pub pos: String,
    /// Text.
    pub label: String,
}

/// A chart ready to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The quantity's id (`input`, `output`, `calls`): the element ids and the tests' handle.
    pub id: &'static str,
    /// Heading.
    pub title: &'static str,
    /// What the chart shows, in words (the SVG's accessible name).
    pub summary: String,
    /// `viewBox` width.
    pub width: String,
    /// `viewBox` height.
    pub height: String,
    /// The plot area: left, right, top, bottom.
    pub left: String,
    /// Right edge of the plot.
    pub right: String,
    /// Top edge of the plot.
    pub top: String,
    /// Bottom edge of the plot (the zero line).
    pub bottom: String,
    /// One bar per day with usage.
    pub bars: Vec<Bar>,
    /// The running total: one polyline per bundle month (`points` attribute).
    pub lines: Vec<String>,
    /// The dashed limit line's height and label.
    pub limit: Option<Tick>,
    /// Horizontal grid lines with their labels.
    pub y_ticks: Vec<Tick>,
    /// Day labels.
    pub x_ticks: Vec<Tick>,
    /// The period's total.
    pub total: i64,
    /// Where the "no usage" note goes (the plot's centre), when the period has none.
    pub empty_at: Option<(String, String)>,
}

/// 2_500_000 → "2.5M"; 500_000 → "500k"; 950 → "950".
pub fn compact(n: i64) -> String {
    let (v, unit) = match n.unsigned_abs() {
        a if a >= 1_000_000_000 => (n as f64 / 1e9, "G"),
        a if a >= 1_000_000 => (n as f64 / 1e6, "M"),
        a if a >= 1_000 => (n as f64 / 1e3, "k"),
        _ => return n.to_string(),
    };
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

/// The smallest "nice" number (1, 2, 2.5 or 5 × 10ⁿ) at or above `v` (≥ 1).
fn nice_ceiling(v: i64) -> i64 {
    let v = v.max(1);
    let mut p: i64 = 1;
    loop {
        for m in [1, 2, 5, 10] {
            // 2.5 × 10ⁿ, for n ≥ 1, as a fourth step between 2 and 5.
            if m == 5 && p >= 10 && p / 2 * 5 >= v {
                return p / 2 * 5;
            }
            if let Some(c) = p.checked_mul(m) {
                if c >= v {
                    return c;
                }
            } else {
                return i64::MAX;
            }
        }
        p = match p.checked_mul(10) {
            Some(p) => p,
            None => return i64::MAX,
        };
    }
}

/// Whether a step reads well: 1, 2, 2.5 or 5 times a power of ten.
fn is_round(step: i64) -> bool {
    let mut s = step;
    while s >= 100 && s % 10 == 0 {
        s /= 10;
    }
    matches!(s, 1 | 2 | 5 | 10 | 20 | 25 | 50)
}

fn num(v: f64) -> String {
    format!("{v:.1}")
}

/// Builds a chart of `days` with the monthly `limit` (if any).
pub fn chart(id: &'static str, title: &'static str, unit: &str, days: &[ChartDay], limit: Option<i64>) -> Chart {
    // Running totals per day (None after today).
    let mut running = Vec::with_capacity(days.len());
    let mut sum = 0i64;
    for (i, d) in days.iter().enumerate() {
        if d.month_starts && i > 0 {
            sum = 0;
        }
        if i == 0 {
            sum = d.carried;
        }
        running.push(d.value.map(|v| {
            sum = sum.saturating_add(v);
            sum
        }));
    }
    let max_day = days.iter().filter_map(|d| d.value).max().unwrap_or(0);
    let max_run = running.iter().flatten().copied().max().unwrap_or(0);
    let top_value =
        nice_ceiling(max_day.max(max_run).max(limit.unwrap_or(0)).max(if id == "calls" { 10 } else { 1000 }));
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y_of = |v: i64| HEIGHT - BOTTOM - (v as f64 / top_value as f64) * plot_h;
    let n = days.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.7).max(1.0);
    let x_mid = |i: usize| LEFT + slot * (i as f64 + 0.5);

    let bars = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let v = d.value.filter(|v| *v > 0)?;
            let y = y_of(v);
            // A day with usage is at least one unit tall, so it never disappears next to the limit.
            let h = (HEIGHT - BOTTOM - y).max(1.0);
            Some(Bar {
                x: num(x_mid(i) - bar_w / 2.0),
                y: num(HEIGHT - BOTTOM - h),
                w: num(bar_w),
                h: num(h),
                title: format!(
                    "{}: {} {unit}; {} so far this bundle month",
                    d.date,
                    thousands(v),
                    thousands(running[i].unwrap_or(0))
                ),
            })
        })
        .collect();

    let mut lines = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for (i, d) in days.iter().enumerate() {
        if d.month_starts && i > 0 && !current.is_empty() {
            lines.push(current.join(" "));
            current.clear();
        }
        if let Some(r) = running[i] {
            current.push(format!("{},{}", num(x_mid(i)), num(y_of(r))));
        }
    }
    if !current.is_empty() {
        // A single day still shows as a short level stroke.
        if current.len() == 1 {
            if let Some(r) = running.iter().flatten().last() {
                let i = running.iter().rposition(Option::is_some).unwrap_or(0);
                current = vec![
                    format!("{},{}", num(x_mid(i) - slot * 0.35), num(y_of(*r))),
                    format!("{},{}", num(x_mid(i) + slot * 0.35), num(y_of(*r))),
                ];
            }
        }
        lines.push(current.join(" "));
    }

    // Four or five steps of a round size (2.5M: 500k each; 2M: 500k; 1k: 200).
    let steps = if top_value % 5 == 0 && is_round(top_value / 5) { 5 } else { 4 };
    let y_ticks = (0..=steps)
        .map(|k| {
            let v = top_value / steps * k;
            Tick { pos: num(y_of(v)), label: compact(v) }
        })
        .collect();
    let step = match days.len() {
        0..=10 => 1,
        11..=20 => 3,
        21..=45 => 7,
        _ => 14,
    };
    let x_ticks = days
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0)
        .map(|(i, d)| Tick { pos: num(x_mid(i)), label: d.label.clone() })
        .collect();
    let total: i64 = days.iter().filter_map(|d| d.value).sum();
    let summary = match limit {
        Some(l) => format!(
            "{title} per day over {} days: {} in all; running total against the monthly limit of {}",
            days.len(),
            thousands(total),
            thousands(l)
        ),
        None => format!("{title} per day over {} days: {} in all", days.len(), thousands(total)),
    };
    Chart {
        id,
        title,
        summary,
        width: num(WIDTH),
        height: num(HEIGHT),
        left: num(LEFT),
        right: num(WIDTH - RIGHT),
        top: num(TOP),
        bottom: num(HEIGHT - BOTTOM),
        bars,
        lines,
        limit: limit.map(|l| Tick { pos: num(y_of(l)), label: format!("limit {}", compact(l)) }),
        y_ticks,
        x_ticks,
        total,
        empty_at: (total == 0).then(|| (num(LEFT + plot_w / 2.0), num(TOP + plot_h / 2.0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(v: Option<i64>, starts: bool) -> ChartDay {
        ChartDay { label: "d".into(), date: "d".into(), value: v, month_starts: starts, carried: 0 }
    }

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(2_500_000), "2.5M");
        assert_eq!(compact(500_000), "500k");
        assert_eq!(compact(950), "950");
        assert_eq!(compact(1_000_000), "1M");
        assert_eq!(compact(1_250_000), "1.25M");
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(21), 25);
        assert_eq!(nice_ceiling(2_400_000), 2_500_000);
        assert_eq!(nice_ceiling(2_600_000), 5_000_000);
    }

    #[test]
    fn the_running_total_restarts_with_the_bundle_month_and_stops_today() {
        let days = vec![day(Some(10), false), day(Some(20), false), day(Some(5), true), day(None, false)];
        let c = chart("input", "Input tokens", "tokens", &days, Some(100));
        assert_eq!(c.lines.len(), 2, "{:?}", c.lines);
        assert_eq!(c.bars.len(), 3);
        assert_eq!(c.total, 35);
        // The axis reaches the limit; the limit line is drawn at its height.
        let labels: Vec<&str> = c.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "200", "400", "600", "800", "1k"]);
        let c = chart("input", "Input tokens", "tokens", &days, Some(2_500_000));
        let labels: Vec<&str> = c.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "500k", "1M", "1.5M", "2M", "2.5M"]);
        let c = chart("input", "Input tokens", "tokens", &days, Some(1_250_000));
        let labels: Vec<&str> = c.y_ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["0", "500k", "1M", "1.5M", "2M"]);
        assert!(c.limit.is_some());
        assert!(c.bars[1].title.contains("30 so far"), "{}", c.bars[1].title);
    }

    #[test]
    fn a_period_starting_inside_a_bundle_month_carries_its_earlier_use() {
        let mut days = vec![day(Some(10), false), day(Some(20), false)];
        days[0].carried = 500;
        let c = chart("input", "Input tokens", "tokens", &days, Some(1000));
        assert!(c.bars[1].title.contains("530 so far"), "{}", c.bars[1].title);
    }
}
