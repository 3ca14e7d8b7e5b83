//! BFD with nothing failing: how many of the customer's sessions run at the interval
//! asked for, and the Down events counted while the metrics are scraped.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

/// BFD Down events the edge counted on the customer sessions, while nothing failed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BfdWatch {
    /// The interval every connection asked for (× 3).
    pub interval_ms: u32,
    /// The customer's BIRD's BFD sessions running at that interval (its `show bfd
    /// sessions`), of all of them.
    pub bird_sessions_at_interval: usize,
    pub bird_sessions: usize,
    /// Down events during the bring-up (counted once every session is up).
    pub downs_in_bring_up: u64,
    /// … and during the watch.
    pub watch_secs: u64,
    pub downs_in_watch: u64,
    /// Customer BGP sessions that went down during the watch (their lifetime shorter).
    pub bgp_sessions_lost_in_watch: usize,
    /// Scrapes of `GET /metrics` during the watch (one a second) and their median; and
    /// those that failed.
    pub scrapes: usize,
    pub failed_scrapes: usize,
    pub scrape_p50_secs: f64,
}

/// Whether a metric's line is of one of the benchmark's customer sessions (their peers
/// are in 169.254.128.0/17, see [`plan`]; the lab's own connection is not counted).
pub(super) fn scale_customer(line: &str) -> bool {
    line.contains("session=\"customer\"")
        && line
            .split("peer=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .is_some_and(|a| {
                let o = a.octets();
                o[0] == 169 && o[1] == 254 && o[2] >= 128
            })
}

/// The sum of a metric's samples over the benchmark's customer sessions.
pub(super) fn customer_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && scale_customer(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The customer's BIRD's BFD sessions: how many run at `interval_ms`, of how many.
pub(super) fn bird_bfd_sessions(socket: &str, interval_ms: u32) -> (usize, usize) {
    let out = crate::BirdCtl(socket.into())
        .ask(&["show", "bfd", "sessions"])
        .unwrap_or_default();
    // "169.254.128.1  vl1000  Up  21:06:07.465  0.100  0.300"
    let want = format!("{:.3}", f64::from(interval_ms) / 1000.0);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 6 && f[0].parse::<std::net::IpAddr>().is_ok())
        .collect();
    let at = rows.iter().filter(|f| f[f.len() - 2] == want).count();
    (at, rows.len())
}

/// Watches the customer sessions' BFD for `secs` with every session up, scraping the
/// metrics once a second; the Down events counted before and during.
pub(super) async fn bfd_watch(
    http: &reqwest::Client,
    metrics: &str,
    bird: &str,
    interval_ms: u32,
    secs: u64,
) -> Result<BfdWatch> {
    let (at, all) = bird_bfd_sessions(bird, interval_ms);
    let text = http.get(metrics).send().await?.text().await?;
    let before = customer_sum(&text, "bfd_session_downs_num");
    eprintln!(
        "BFD: {at} of the customer BIRD's {all} sessions at {interval_ms} ms; {before} Down events in the bring-up; watching for {secs} s"
    );
    let start = Instant::now();
    let (mut scrapes, mut failed_scrapes) = (Vec::new(), 0usize);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let t = Instant::now();
        match async { http.get(metrics).send().await?.text().await }.await {
            Ok(_) => scrapes.push(t.elapsed().as_secs_f64()),
            Err(_) => failed_scrapes += 1,
        }
    }
    let text = http.get(metrics).send().await?.text().await?;
    let after = customer_sum(&text, "bfd_session_downs_num");
    // A session that went down and came back is younger than the watch.
    let lost = text
        .lines()
        .filter(|l| l.starts_with("bgp_ipv4_session_lifetime_seconds{") && scale_customer(l))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .filter(|age| *age < secs as f64)
        .count();
    scrapes.sort_by(f64::total_cmp);
    let watch = BfdWatch {
        interval_ms,
        bird_sessions_at_interval: at,
        bird_sessions: all,
        downs_in_bring_up: before as u64,
        watch_secs: secs,
        downs_in_watch: (after - before).max(0.0) as u64,
        bgp_sessions_lost_in_watch: lost,
        scrapes: scrapes.len(),
        failed_scrapes,
        scrape_p50_secs: scrapes.get(scrapes.len() / 2).copied().unwrap_or(0.0),
    };
    eprintln!(
        "BFD: {} Down events and {} BGP sessions lost in {secs} s",
        watch.downs_in_watch, watch.bgp_sessions_lost_in_watch
    );
    Ok(watch)
}
