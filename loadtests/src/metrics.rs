//! The server's own numbers: its Prometheus endpoint (`METRICS_BIND`, `GET /metrics`), or,
//! where that is absent and the server's pid is known, `/proc/<pid>`. Anything unknown
//! stays `None` and is reported as "n/a".

use std::time::Duration;

use serde::Serialize;

/// One reading of the server process.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerSample {
    /// Where the numbers came from: "metrics", "proc" or "none".
    pub source: &'static str,
    pub rss_bytes: Option<f64>,
    pub open_fds: Option<f64>,
    pub cpu_seconds: Option<f64>,
    /// `taskstream_ws_connections` (metrics only).
    pub ws_connections: Option<f64>,
}

/// Where to read the server's numbers.
#[derive(Debug, Clone)]
pub struct ServerProbe {
    http: reqwest::Client,
    metrics_url: Option<String>,
    pid: Option<u32>,
}

impl ServerProbe {
    /// `metrics_base` is the metrics listener (`http://127.0.0.1:9091`); an empty string
    /// disables it. `pid` is the fallback for when the endpoint does not answer.
    pub fn new(metrics_base: &str, pid: Option<u32>) -> Self {
        let metrics_url = (!metrics_base.trim().is_empty()).then(|| {
            let base = metrics_base.trim().trim_end_matches('/');
            if base.ends_with("/metrics") {
                base.to_string()
            } else {
                format!("{base}/metrics")
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            http,
            metrics_url,
            pid,
        }
    }

    /// Reads the endpoint, falling back to /proc; a sample of "none" when neither works.
    pub async fn sample(&self) -> ServerSample {
        if let Some(sample) = self.read_metrics().await {
            return sample;
        }
        if let Some(sample) = self.pid.and_then(from_proc) {
            return sample;
        }
        ServerSample {
            source: "none",
            ..ServerSample::default()
        }
    }

    async fn read_metrics(&self) -> Option<ServerSample> {
        let url = self.metrics_url.as_ref()?;
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let text = response.text().await.ok()?;
        let sample = ServerSample {
            source: "metrics",
            rss_bytes: metric(&text, "process_resident_memory_bytes"),
            open_fds: metric(&text, "process_open_fds"),
            cpu_seconds: metric(&text, "process_cpu_seconds_total"),
            ws_connections: metric(&text, "taskstream_ws_connections"),
        };
        // An endpoint that answers without any of these is not the one we want.
        let any = sample.rss_bytes.is_some()
            || sample.open_fds.is_some()
            || sample.cpu_seconds.is_some()
            || sample.ws_connections.is_some();
        any.then_some(sample)
    }
}

/// The value of `name` in a Prometheus text exposition, summed over its label sets.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // `name value`, `name{labels} value`, optionally followed by a timestamp.
        let rest = if let Some(labelled) = rest.strip_prefix('{') {
            match labelled.rfind('}') {
                Some(end) => &labelled[end + 1..],
                None => continue,
            }
        } else if rest.starts_with(char::is_whitespace) {
            rest
        } else {
            continue; // another metric whose name starts with `name`
        };
        let Some(value) = rest.split_whitespace().next() else {
            continue;
        };
        if let Ok(value) = value.parse::<f64>() {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

/// RSS, open files and CPU time of a local process, from /proc (Linux).
fn from_proc(pid: u32) -> Option<ServerSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok());
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|dir| dir.count() as f64);
    // Fields 14 and 15 of /proc/<pid>/stat, in clock ticks (USER_HZ, 100 on Linux),
    // counted after the command name, which may hold spaces.
    let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        });
    Some(ServerSample {
        source: "proc",
        rss_bytes: rss_kib.map(|k| k * 1024.0),
        open_fds,
        cpu_seconds,
        ws_connections: None,
    })
}

/// `after - before` when both are known.
pub fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_text() {
        let text = "\
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 1.2345e7
process_open_fds 42
process_cpu_seconds_total{mode=\"user\"} 1.5
process_cpu_seconds_total{mode=\"system\"} 0.5
taskstream_ws_connections{instance=\"a\"} 10 1700000000000
taskstream_ws_connections_opened_total 99
";
        assert_eq!(
            metric(text, "process_resident_memory_bytes"),
            Some(12_345_000.0)
        );
        assert_eq!(metric(text, "process_open_fds"), Some(42.0));
        assert_eq!(metric(text, "process_cpu_seconds_total"), Some(2.0));
        assert_eq!(metric(text, "taskstream_ws_connections"), Some(10.0));
        assert_eq!(metric(text, "missing"), None);
    }

    #[test]
    fn reads_this_process_from_proc() {
        let sample = from_proc(std::process::id()).expect("/proc");
        assert!(sample.rss_bytes.is_some_and(|rss| rss > 0.0));
        assert!(sample.open_fds.is_some_and(|fds| fds >= 3.0));
    }
}
