//! What the edge tells the server of itself: each session's status, with what the
//! instance namespaces' kernel counters add of the down ones (TCP-MD5 and GTSM drops),
//! and the errors of the last apply.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_dataplane::netns;
use cic_model::edge::{EdgeReport, ResourceError, SessionKind, SessionStatus};
use tracing::{debug, warn};

use crate::{Agent, State, instance};

impl Agent {
    /// The report, with the connections' interface counters when `counters` and they
    /// were not read less than a report interval ago.
    pub async fn report_now(&self, counters: bool) -> EdgeReport {
        // The counters go with the periodic report, once per report interval at most: a
        // session changing or a config applied sends a report at once, which must not
        // wait for them (with 1,000 instances reading them is 1,000 netlink dumps); the
        // server keeps the last ones it had for its rates.
        let due = counters && {
            let mut last = self
                .counters_read
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // (Half an interval: the tick's report may start a little later one time
            // than the next.)
            let due = last.is_none_or(|t| t.elapsed() >= self.opts.report_every / 2);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if !due {
            return self.report_state().await;
        }
        // The counters are read first, with the agent's lock released (a netlink dump per
        // routing instance), and the sessions and the applied revision after, so that
        // what the report says of those is as fresh as it can be.
        let sources: Vec<instance::TrafficSource> = {
            let st = self.state.lock().await;
            st.instances.values().map(|i| i.traffic_source()).collect()
        };
        use futures::stream::{self, StreamExt};
        let read: Vec<_> = stream::iter(sources)
            .map(|s| async move { s.read().await })
            .buffer_unordered(8)
            .collect()
            .await;
        let mut report = self.report_state().await;
        report.traffic = read
            .into_iter()
            .flatten()
            .map(|(resource_id, t)| cic_model::edge::ConnectionCounters {
                resource_id,
                counters: cic_model::edge::Counters {
                    bytes_to_cloud: t.bytes_to_cloud,
                    bytes_from_cloud: t.bytes_from_cloud,
                    packets_to_cloud: t.packets_to_cloud,
                    packets_from_cloud: t.packets_from_cloud,
                },
            })
            .collect();
        report
            .traffic
            .sort_by(|a, b| a.resource_id.cmp(&b.resource_id));
        report
    }

    /// The report's sessions and errors (no counters).
    pub(crate) async fn report_state(&self) -> EdgeReport {
        let mut st = self.state.lock().await;
        let (md5_mismatch, gtsm_drops) = tcp_drops(&mut st, None);
        let mut sessions = Vec::new();
        let mut errors = st.errors.clone();
        for i in st.instances.values() {
            if let Some(e) = i.route_error() {
                errors.push(e.within("routes").of(&i.id));
            }
            let status = i.status().borrow().clone();
            if let Some(e) = &status.listen_error {
                errors.push(ResourceError::new(&i.id, format!("BGP listener: {e}")));
            }
            if let Some(e) = i.bfd_error() {
                errors.push(ResourceError::new(&i.id, format!("BFD: {e}")));
            }
            sessions.extend(session_statuses(i, &status, &md5_mismatch, &gtsm_drops));
        }
        // A failure that may pass goes on being sent as such for a bounded time: the
        // operations waiting for it wait while the edge applies again.
        cic_model::edge::age_transients(
            &mut st.failing_since,
            &mut errors,
            std::time::Instant::now(),
        );
        EdgeReport {
            applied_revision: st.applied,
            dataplane: self.caps.mode().to_string(),
            sessions,
            errors,
            traffic: Vec::new(),
        }
    }

    /// Sends a report (see [`Agent::report_now`]); whether the server took it.
    pub(crate) async fn report(self: &Arc<Self>, counters: bool) -> bool {
        let mut base = self.reporting.lock().await;
        // What the sessions say from here on is this report's: the statuses are marked
        // seen before they are read (a change in between is read now and wakes the
        // reporter once more, never not at all), so the reporter wakes only for a change
        // that came after. (Without this every status that had ever changed woke it at
        // once, and an idle edge with a thousand sessions sent its whole report several
        // times a second.)
        for w in self.state.lock().await.watches.iter_mut() {
            w.borrow_and_update();
        }
        let r = self.report_now(counters).await;
        // The config applied is on disk before the server hears it is applied: written
        // after the report read the revision applied (a revision handed over and applied
        // while the counters were read is in the file too), before it is sent.
        if self.keep_due() {
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.keep_latest()).await;
        }
        // As the changes since the last report the server took, when it named one; the
        // base is taken out first: should this one fail, the next is whole.
        let changes = base
            .take()
            .and_then(|(version, sessions, counted)| r.changes_from(&sessions, &version, counted));
        let mut as_changes = changes.is_some();
        let mut sent = match &changes {
            Some(c) => self.client.report_changes(c).await,
            None => self.client.report(&r).await,
        };
        if let (true, Err(e)) = (as_changes, &sent) {
            // The last report taken is another (ABORTED), the server is older than
            // reports of changes, or they did not go: the report whole, once.
            debug!("report of changes: {e}; sending it whole");
            as_changes = false;
            sent = self.client.report(&r).await;
        }
        match sent {
            Ok((taken, bytes)) => {
                use std::sync::atomic::Ordering::Relaxed;
                self.reports_sent.fetch_add(1, Relaxed);
                self.report_bytes.fetch_add(bytes as u64, Relaxed);
                if as_changes {
                    self.reports_as_changes.fetch_add(1, Relaxed);
                }
                // (A report with a session key twice is no base: the next is whole.)
                let counted = taken.counts_uptime;
                *base = taken
                    .version
                    .zip(r.into_sessions_by_key())
                    .map(|(v, s)| (v, s, counted));
                true
            }
            Err(e) => {
                warn!("report: {e}");
                false
            }
        }
    }
}

/// Whether a session's last failure shows TCP segments passing both ways since (a
/// refused OPEN, a reset, a close by the peer): then the namespace's TCP-MD5 drops are
/// not this session's trouble, or no longer.
fn tcp_got_through(f: Option<&cic_model::edge::SessionFailure>) -> bool {
    use cic_model::edge::SessionFailure as F;
    matches!(
        f,
        Some(
            F::ConnectRefused
                | F::ClosedBeforeOpen
                | F::WrongAsn { .. }
                | F::HoldTimeRefused { .. }
                | F::OpenRefused { .. }
                | F::RoleMismatch { .. }
                | F::PeerRefusedOpen { .. }
                | F::PeerNotification { .. }
        )
    )
}

/// The status of each of an instance's sessions as the server is told it (`status`: the
/// speaker's, read once), with what the namespace's drop counters say of the down ones.
pub(crate) fn session_statuses(
    i: &instance::Instance,
    status: &cic_bgp::driver::InstanceStatus,
    md5_mismatch: &BTreeSet<String>,
    gtsm_drops: &BTreeSet<String>,
) -> Vec<SessionStatus> {
    let mut sessions = Vec::new();
    for p in &status.peers {
        let family = cic_model::edge::Family::of(p.spec.address);
        let key = match p.spec.role {
            // The edge makes no neighbors of the standalone speaker.
            cic_bgp::policy::Role::Customer | cic_bgp::policy::Role::Neighbor => {
                instance::peer_key(&p.spec.name, family)
            }
            cic_bgp::policy::Role::Fabric => {
                instance::peer_key(&format!("fabric:{}", p.spec.name), family)
            }
        };
        sessions.push(SessionStatus {
            resource_id: p.spec.name.clone(),
            kind: match p.spec.role {
                cic_bgp::policy::Role::Customer | cic_bgp::policy::Role::Neighbor => {
                    SessionKind::Customer
                }
                cic_bgp::policy::Role::Fabric => SessionKind::Fabric,
            },
            family,
            peer: p.spec.address,
            peer_asn: p.spec.asn,
            state: p.state.name().to_string(),
            uptime_secs: p.established_at.map(|t| t.elapsed().as_secs()).unwrap_or(0),
            established_at: p.established_wall.and_then(rfc3339_ms),
            prefixes_received: p.stats.received,
            prefixes_accepted: p.stats.accepted,
            prefixes_advertised: p.stats.advertised,
            prefix_limit_exceeded: p.stats.over_limit,
            prefix_limit_warning: p.stats.prefix_warning,
            idle_hold_remaining_secs: p
                .held_until
                .map(|t| t.saturating_duration_since(Instant::now()).as_secs()),
            last_error: match dropped(md5_mismatch, gtsm_drops, &key, p) {
                Some(cic_model::edge::SessionFailure::Md5Mismatch) => {
                    Some(MD5_MISMATCH.to_string())
                }
                Some(_) => Some(GTSM_DROPS.to_string()),
                None => p.last_error.clone(),
            },
            last_failure: dropped(md5_mismatch, gtsm_drops, &key, p)
                .or_else(|| p.last_failure.clone()),
            bfd: i.bfd_status(&key),
        });
    }
    sessions
}

/// Why the kernel, not the session, keeps a customer's session down, if its namespace's
/// counters say so: TCP-MD5 first, then GTSM. Not once the session's own last failure
/// shows the peer's segments passing since.
fn dropped(
    md5: &BTreeSet<String>,
    gtsm: &BTreeSet<String>,
    key: &str,
    p: &cic_bgp::driver::PeerStatus,
) -> Option<cic_model::edge::SessionFailure> {
    if p.spec.role != cic_bgp::policy::Role::Customer || tcp_got_through(p.last_failure.as_ref()) {
        return None;
    }
    if md5.contains(key) {
        Some(cic_model::edge::SessionFailure::Md5Mismatch)
    } else if gtsm.contains(key) {
        Some(cic_model::edge::SessionFailure::GtsmDrops)
    } else {
        None
    }
}

/// What a connection's status says when its namespace drops its segments for GTSM.
const GTSM_DROPS: &str = "GTSM: the customer router's BGP segments arrive with a TTL below 255 (dropped by the kernel); it must send with TTL 255 (ttl-security hops 1)";

/// What a connection's status says when its namespace drops TCP-MD5 segments.
const MD5_MISMATCH: &str = "TCP-MD5 signatures do not match: the customer router's key differs from the connection's, or only one side has a key (segments dropped by the kernel)";

/// The sessions that are not up (by peer key: the connection id, with `/ipv6` for its
/// IPv6 session) in namespaces whose kernel dropped segments within the last
/// [`DROPS_RECENT`]: for TCP-MD5 (a key mismatch), and for GTSM (only sessions with GTSM
/// on count: a customer's router that does not send with TTL 255). The kernel keeps both
/// to itself (the session only looks like a peer that does not answer). The first look
/// after a start only takes the counts. (Reports and scrapes both look: a rise is
/// remembered for a while, not only until the next look.) `only`: that instance alone.
pub(crate) fn tcp_drops(
    st: &mut State,
    only: Option<&str>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut looked = Vec::new();
    for (id, ic) in &st.applied_instances {
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let Some(i) = st.instances.get(id) else {
            continue;
        };
        let status = i.status().borrow().clone();
        // Each session down, by its peer key (a connection has one per family), with
        // whether it has GTSM on. One without a key counts for TCP-MD5 too (the
        // customer's router may sign when we do not), but a namespace with neither keys
        // nor GTSM is read at most every DROPS_UNKEYED_EVERY: most down sessions have
        // neither, and each read enters the namespace.
        let keyed = ic
            .connections
            .iter()
            .any(|c| c.ttl_security || c.peerings.iter().any(|p| p.md5_key.is_some()));
        let down: Vec<(String, bool)> = ic
            .connections
            .iter()
            .flat_map(|c| c.peerings.iter().map(move |p| (c, p)))
            .filter(|(c, p)| {
                !status.peers.iter().any(|s| {
                    s.spec.name == c.id
                        && s.spec.address == p.peer_ip
                        && s.state == cic_bgp::fsm::State::Established
                })
            })
            .map(|(c, p)| (instance::peer_key(&c.id, p.family()), c.ttl_security))
            .collect();
        if !down.is_empty() {
            let due = keyed
                || st
                    .tcp_drops
                    .get(id)
                    .is_none_or(|e| e.read.elapsed() >= DROPS_UNKEYED_EVERY);
            looked.push((id.clone(), i.ns.clone(), down, due));
        }
    }
    let (mut md5, mut gtsm) = (BTreeSet::new(), BTreeSet::new());
    for (id, ns, down, due) in looked {
        if due && let Ok(now) = netns::tcp_drops(Some(&ns)) {
            let e = st.tcp_drops.entry(id.clone()).or_insert(Drops {
                count: now,
                md5_rose: None,
                gtsm_rose: None,
                read: Instant::now(),
            });
            if now.md5 > e.count.md5 {
                e.md5_rose = Some(Instant::now());
            }
            if now.min_ttl > e.count.min_ttl {
                e.gtsm_rose = Some(Instant::now());
            }
            e.count = now;
            e.read = Instant::now();
        }
        let recent = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < DROPS_RECENT);
        let Some(e) = st.tcp_drops.get(&id) else {
            continue;
        };
        if recent(e.md5_rose) {
            md5.extend(down.iter().map(|(k, _)| k.clone()));
        }
        if recent(e.gtsm_rose) {
            gtsm.extend(down.iter().filter(|(_, g)| *g).map(|(k, _)| k.clone()));
        }
    }
    (md5, gtsm)
}

/// How long a rise of the drops keeps a down session's error saying so (peers retry
/// every few seconds; 120 s is BGP's usual connect retry).
const DROPS_RECENT: Duration = Duration::from_secs(150);

/// How often the drops of a namespace whose sessions have neither keys nor GTSM are read.
const DROPS_UNKEYED_EVERY: Duration = Duration::from_secs(5);

/// A namespace's drops at the last look, when each last rose, when looked at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drops {
    count: netns::TcpDrops,
    md5_rose: Option<Instant>,
    gtsm_rose: Option<Instant>,
    read: Instant,
}

/// A wall-clock time as RFC 3339 to the millisecond (a session's establishment).
fn rfc3339_ms(t: std::time::SystemTime) -> Option<String> {
    let t = time::OffsetDateTime::from(t);
    let t = t
        .replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}
