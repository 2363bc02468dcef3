//! Runtime API metrics in Prometheus's text format (written by hand: no dependency for a few
//! counters). Labels carry only what is safe to show anyone who can read `/metrics`: resource
//! type, wire format, status, provider name and failure kind. Never keys, resource ids, prompts
//! or answers.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram's buckets.
pub const BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    upstream_errors: Mutex<BTreeMap<(String, String), u64>>,
    quota_refusals: AtomicU64,
    lease_acquisitions: AtomicU64,
    commits: AtomicU64,
    committed_calls: AtomicU64,
    commit_micros: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// One answered request: `resource_type` (`text_generation`, …, or `unknown` when refused
    /// before the key was known), `format` (`openai`, `converse`, `converse_stream`, `invoke`,
    /// `resource`), its status and how long it took to answer (for a stream: its end).
    pub fn request(&self, resource_type: &'static str, format: &'static str, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((resource_type, format, status)).or_default() += 1;
        }
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(format).or_default();
            let secs = took.as_secs_f64();
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// An upstream call failed (`kind`: `timeout`, `connect`, `status`, `cut`, …).
    pub fn upstream_error(&self, provider: &str, kind: &str) {
        if let Ok(mut m) = self.upstream_errors.lock() {
            *m.entry((provider.to_owned(), kind.to_owned())).or_default() += 1;
        }
    }

    /// A call was refused for its quota.
    pub fn quota_refused(&self) {
        self.quota_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// A lease was asked of the database (a call its meter's local balance did not cover).
    pub fn lease_acquired(&self) {
        self.lease_acquisitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Lease requests so far.
    pub fn lease_acquisitions(&self) -> u64 {
        self.lease_acquisitions.load(Ordering::Relaxed)
    }

    /// A group commit of `calls` calls took `took`.
    pub fn commit(&self, took: Duration, calls: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_calls.fetch_add(calls as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Group commits so far and the calls they carried.
    pub fn commits(&self) -> (u64, u64) {
        (self.commits.load(Ordering::Relaxed), self.committed_calls.load(Ordering::Relaxed))
    }

    /// Everything, in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP genai_runtime_requests_total Runtime API requests answered.\n");
        out.push_str("# TYPE genai_runtime_requests_total counter\n");
        if let Ok(m) = self.requests.lock() {
            for ((rtype, format, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "genai_runtime_requests_total{{resource_type=\"{rtype}\",format=\"{format}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP genai_runtime_request_duration_seconds Time to answer a Runtime API request.\n");
        out.push_str("# TYPE genai_runtime_request_duration_seconds histogram\n");
        if let Ok(m) = self.latency.lock() {
            for (format, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "genai_runtime_request_duration_seconds_bucket{{format=\"{format}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "genai_runtime_request_duration_seconds_bucket{{format=\"{format}\",le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(out, "genai_runtime_request_duration_seconds_sum{{format=\"{format}\"}} {}", h.sum);
                let _ =
                    writeln!(out, "genai_runtime_request_duration_seconds_count{{format=\"{format}\"}} {}", h.count);
            }
        }
        out.push_str("# HELP genai_runtime_upstream_errors_total Upstream calls that failed or timed out.\n");
        out.push_str("# TYPE genai_runtime_upstream_errors_total counter\n");
        if let Ok(m) = self.upstream_errors.lock() {
            for ((provider, kind), n) in m.iter() {
                let provider = escape(provider);
                let _ =
                    writeln!(out, "genai_runtime_upstream_errors_total{{provider=\"{provider}\",kind=\"{kind}\"}} {n}");
            }
        }
        let counters = [
            ("genai_runtime_quota_refusals_total", "Calls refused with 429 quota_exceeded.", &self.quota_refusals),
            (
                "genai_runtime_lease_acquisitions_total",
                "Quota leases asked of the database (calls the local balance did not cover).",
                &self.lease_acquisitions,
            ),
            ("genai_runtime_usage_commits_total", "Group commits of usage.", &self.commits),
            ("genai_runtime_usage_committed_calls_total", "Calls whose usage was committed.", &self.committed_calls),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let secs = self.commit_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP genai_runtime_usage_commit_seconds_total Time spent in group commits.\n\
             # TYPE genai_runtime_usage_commit_seconds_total counter\ngenai_runtime_usage_commit_seconds_total {secs}"
        );
        out
    }
}

/// A label value with `\`, `"` and line breaks escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("text_generation", "openai", 200, Duration::from_millis(3));
        m.request("text_generation", "openai", 429, Duration::from_millis(1));
        m.upstream_error("fa\"ke", "timeout");
        m.quota_refused();
        let text = m.render();
        assert!(text.contains(
            "genai_runtime_requests_total{resource_type=\"text_generation\",format=\"openai\",status=\"200\"} 1"
        ));
        assert!(text.contains("genai_runtime_request_duration_seconds_bucket{format=\"openai\",le=\"0.0025\"} 1"));
        assert!(text.contains("genai_runtime_request_duration_seconds_bucket{format=\"openai\",le=\"0.005\"} 2"));
        assert!(text.contains("genai_runtime_request_duration_seconds_count{format=\"openai\"} 2"));
        assert!(text.contains("genai_runtime_upstream_errors_total{provider=\"fa\\\"ke\",kind=\"timeout\"} 1"));
        assert!(text.contains("genai_runtime_quota_refusals_total 1"));
    }
}
