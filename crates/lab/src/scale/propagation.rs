//! Propagation: a VPC subnet added to every routing instance, then removed, timed at the
//! customer's router for each.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;

use super::WAIT;
use crate::api::Api;

/// A second VPC subnet (10.129.0.0/24, which the fabric router is given for it) added to
/// every routing instance, one API call each with `--in-flight` (16) at once, then
/// removed the same way: for each routing instance, milliseconds from its API call until
/// the customer's BIRD has the route from that connection's session (or, removed, no longer has it).
/// The customer's table is read again as soon as a read ends (`birdc show route`); a
/// route is taken to arrive when the read that first shows it ends.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Propagation {
    pub changes: usize,
    pub add_p50_ms: f64,
    pub add_p99_ms: f64,
    pub add_max_ms: f64,
    pub remove_p50_ms: f64,
    pub remove_p99_ms: f64,
    pub remove_max_ms: f64,
    /// Seconds for all the calls (each to its operation's end).
    pub add_calls_secs: f64,
    pub remove_calls_secs: f64,
    /// The median time of one read of the customer's table.
    pub read_p50_ms: f64,
}

/// The prefix [`Propagation`] adds and removes, and the fabric router's address in it
/// (on its VPC interface, so it announces the subnet to every routing instance, which
/// takes it only once it is one of its VPC prefixes).
pub(super) const PROPAGATED: &str = "10.129.0.0/24";

pub(super) const PROPAGATED_FABRIC_IP: &str = "10.129.0.1/24";

/// The scale connections (by index) whose session gave the customer's BIRD a route to
/// `prefix`; `None` when BIRD did not answer with its table (a failed read is not taken
/// for routes gone).
pub(super) fn sessions_with(socket: &str, prefix: &str) -> Option<BTreeSet<usize>> {
    let out = crate::BirdCtl(socket.into())
        .ask(&["show", "route", prefix])
        .ok()?;
    // ("Network not found" is an answer.)
    if !(out.contains("Table ") || out.contains("Network not found")) {
        return None;
    }
    // "10.128.0.0/16  unicast [c1000 21:06:07.465 from 169.254.128.1] * (100) [AS200350i]"
    let have = out
        .split("[c")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let vlan: usize = digits.parse().ok()?;
            rest[digits.len()..]
                .starts_with(' ')
                .then_some(vlan.checked_sub(1000)?)
        })
        .collect();
    Some(have)
}

/// One half of [`Propagation`]: `method` (`upsertPrefixes` or `removePrefixes`) on
/// every routing instance; each one's latency (ms) until the route is `present` (or
/// not) on its connection's session, the seconds the calls took, and the reads' times.
pub(super) async fn propagate(
    api: &Api,
    bird: &str,
    instances: &[String],
    method: &str,
    present: bool,
    in_flight: usize,
) -> Result<(Vec<f64>, f64, Vec<f64>)> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    use std::sync::atomic::{AtomicBool, Ordering};
    let n = instances.len();
    // Set when the calls are over; `failed` when one of them failed (nothing to wait for).
    let (done, failed) = (AtomicBool::new(false), AtomicBool::new(false));
    // When each routing instance's call was sent: a read that began before it says
    // nothing of it.
    let sent: std::sync::Mutex<Vec<Option<Instant>>> = std::sync::Mutex::new(vec![None; n]);
    let deadline = Instant::now() + WAIT;
    let body = json!({"vpcNetworkId": "", "vpcAzInfoPrefixes": [{"azId": "zone-a", "prefixes": [PROPAGATED]}]});
    let (seen, reads, called, calls) = std::thread::scope(|s| -> Result<_> {
        let watcher = s.spawn(|| {
            let mut seen: Vec<Option<Instant>> = vec![None; n];
            let mut reads = Vec::new();
            while seen.iter().any(Option::is_none)
                && Instant::now() < deadline
                && !failed.load(Ordering::Relaxed)
            {
                let began = Instant::now();
                let Some(have) = sessions_with(bird, PROPAGATED) else {
                    continue;
                };
                let at = Instant::now();
                reads.push((at - began).as_secs_f64() * 1000.0);
                let sent = sent
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                for (i, s) in seen.iter_mut().enumerate() {
                    if s.is_none()
                        && sent[i].is_some_and(|c| began >= c)
                        && have.contains(&i) == present
                    {
                        *s = Some(at);
                    }
                }
                if done.load(Ordering::Relaxed) && seen.iter().all(Option::is_some) {
                    break;
                }
            }
            (seen, reads)
        });
        let t = Instant::now();
        let called: Result<Vec<(usize, Instant)>> = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(
                stream::iter(instances.iter().enumerate())
                    .map(|(i, id)| {
                        let mut body = body.clone();
                        body["vpcNetworkId"] = json!(format!("vpc-scale-{i}"));
                        let sent = &sent;
                        async move {
                            let at = Instant::now();
                            sent.lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(at);
                            let op = api
                                .call(
                                    reqwest::Method::POST,
                                    &format!("/cloudrouter/v1/routingInstances/{id}:{method}"),
                                    Some(body),
                                )
                                .await?;
                            api.done(op).await?;
                            Ok::<_, anyhow::Error>((i, at))
                        }
                    })
                    .buffer_unordered(in_flight)
                    .try_collect(),
            )
        });
        let calls = t.elapsed().as_secs_f64();
        failed.store(called.is_err(), Ordering::Relaxed);
        done.store(true, Ordering::Relaxed);
        let (seen, reads) = watcher
            .join()
            .map_err(|_| anyhow::anyhow!("the watcher panicked"))?;
        Ok((seen, reads, called?, calls))
    })?;
    let mut latencies = Vec::with_capacity(n);
    for (i, at) in called {
        let Some(seen) = seen[i] else {
            bail!(
                "{method} on {}: the customer's session c{} {} {PROPAGATED} after {WAIT:?}",
                instances[i],
                1000 + i,
                if present { "never had" } else { "still had" }
            );
        };
        latencies.push(seen.saturating_duration_since(at).as_secs_f64() * 1000.0);
    }
    Ok((latencies, calls, reads))
}

/// [`Propagation`] over these routing instances (connection `i`'s is `instances[i]`).
pub(super) async fn propagation(
    api: &Api,
    bird: &str,
    instances: &[String],
    in_flight: usize,
) -> Result<Propagation> {
    let q = crate::api::quantile;
    let (mut add, add_calls, mut reads) =
        propagate(api, bird, instances, "upsertPrefixes", true, in_flight).await?;
    eprintln!(
        "{PROPAGATED} added to {} routing instances: at the customer p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms after each call",
        instances.len(),
        q(&mut add, 0.5),
        q(&mut add, 0.99),
        q(&mut add, 1.0)
    );
    let (mut remove, remove_calls, more) =
        propagate(api, bird, instances, "removePrefixes", false, in_flight).await?;
    reads.extend(more);
    eprintln!(
        "{PROPAGATED} removed: gone at the customer p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms after each call",
        q(&mut remove, 0.5),
        q(&mut remove, 0.99),
        q(&mut remove, 1.0)
    );
    Ok(Propagation {
        changes: instances.len(),
        add_p50_ms: q(&mut add, 0.5),
        add_p99_ms: q(&mut add, 0.99),
        add_max_ms: q(&mut add, 1.0),
        remove_p50_ms: q(&mut remove, 0.5),
        remove_p99_ms: q(&mut remove, 0.99),
        remove_max_ms: q(&mut remove, 1.0),
        add_calls_secs: add_calls,
        remove_calls_secs: remove_calls,
        read_p50_ms: q(&mut reads, 0.5),
    })
}
