//! `cic edge`: the agent on an edge router.
//!
//! ```text
//!   server ──long poll──▶ sync loop ──apply(config)──▶ per routing instance:
//!     ▲                      │                           namespace, links, addresses,
//!     │                      │                           BGP speaker + route programmer
//!     └──── report ◀─────────┴── every 5 s and after each apply: applied revision,
//!                                sessions (state, uptime, prefixes), errors
//! ```
//!
//! The data plane is probed at start (802.1Q or VXLAN overlay) and named in reports.
//! Apply is idempotent: it reconciles what the kernel has with what the config says,
//! so a restart adopts the namespaces it finds and deletes only what is no longer wanted.

mod apply;
pub mod client;
pub mod instance;
mod report;
mod sync;
pub use cic_client::tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cic_dataplane::probe::Capabilities;
use cic_dataplane::{Netlink, probe};
use cic_model::edge::{
    Attachment, EdgeConfig, InstanceConfig, LinkFacts, NeighborState, ResourceError, RouteAnswer,
    RouteDirection, RouteEntry, RouteQuery, SessionFacts, SessionKind, TrunkConfig,
};
use cic_model::metrics::Exposition;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::client::SyncClient;
use crate::instance::Instance;
use crate::report::{Drops, session_statuses, tcp_drops};

/// IFLA_IFALIAS prefix of the bonds this agent made for LAG trunks.
const LAG_ALIAS: &str = "cic-lag:";

#[derive(Debug, Clone)]
pub struct EdgeOptions {
    pub server: String,
    /// An edge token; None when the edge authenticates by its certificate
    /// (`tls.identity`).
    pub token: Option<String>,
    /// The CA it trusts, its certificate, plain HTTP or not.
    pub tls: tls::ClientTls,
    /// The namespace holding this router's ports (trunk and fabric ports). `None`: the
    /// agent's own. The lab runs several edges on one machine this way.
    pub host_netns: Option<String>,
    /// Prefix of the namespaces this agent owns, one per routing instance.
    pub netns_prefix: String,
    pub report_every: Duration,
    pub poll_wait: Duration,
    /// Where to serve `GET /metrics` (Prometheus), if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where the agent keeps the last config the server gave it (`config.json`, readable
    /// by root only: it holds TCP-MD5 keys), to run on after a restart while the server
    /// cannot be reached. `None`: nothing is kept.
    pub state_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("{0}")]
    Tls(#[from] tls::TlsSetupError),
    #[error("data plane: {0}")]
    Dataplane(#[from] cic_dataplane::Error),
}

/// Namespaces whose interface counters a scrape reads at once.
const METRICS_IN_FLIGHT: usize = 32;

struct State {
    applied: u64,
    /// This edge's id, from its config (for metric labels).
    edge_id: String,
    /// Watches of each instance's BGP status, so a state change is reported at once;
    /// marked seen by each report sent (see `Agent::report`).
    watches: Vec<tokio::sync::watch::Receiver<cic_bgp::driver::InstanceStatus>>,
    errors: Vec<ResourceError>,
    instances: BTreeMap<String, Instance>,
    /// How long the last apply took, and how many there have been.
    last_apply: Duration,
    applies: u64,
    /// Instances the last apply reconciled (the others were unchanged).
    last_reconciled: usize,
    /// Whether the last apply was a full reconcile.
    last_full: bool,
    /// What each instance was last applied with, without an error, and the edge-wide
    /// inputs of that apply: a new revision reconciles only the instances whose part
    /// changed (with a thousand instances a full reconcile takes seconds).
    applied_instances: BTreeMap<String, InstanceConfig>,
    applied_context: Option<ApplyContext>,
    /// Each trunk's counters at the last scrape, for its rates at the next.
    trunk_readings: BTreeMap<String, (std::time::Instant, cic_model::metrics::Traffic)>,
    /// Each instance namespace's TCP-MD5 and GTSM drops at the last look, and when they
    /// last rose (see `tcp_drops`).
    tcp_drops: BTreeMap<String, Drops>,
    /// The RPKI caches the config names, the data in force from them, and the task that
    /// hands it to every instance.
    rpki: Option<Rpki>,
}

struct Rpki {
    caches: Vec<std::net::SocketAddr>,
    data: tokio::sync::watch::Receiver<Option<Arc<cic_bgp::rpki::Vrps>>>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Drop for Rpki {
    fn drop(&mut self) {
        self.forwarder.abort();
    }
}

/// The parts of the config, besides its own, that an instance's apply reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApplyContext {
    bgp: cic_model::edge::BgpSettings,
    local_asn: u32,
    router_id: std::net::Ipv4Addr,
    drain: bool,
    trunks: BTreeMap<String, (TrunkConfig, Option<String>)>,
}

pub struct Agent {
    /// Held for a whole apply: applies follow one another, while the state's lock is
    /// taken only for the steps that need it.
    applying: Mutex<()>,
    /// Held while a report is made and sent (reports reach the server in the order their
    /// state was read), with the last report the server took: the version it keeps it
    /// as, and its sessions by key (the next report is the changes since it).
    reporting: Mutex<Option<ReportBase>>,
    /// The ports' rates as last shaped without an error (see `Agent::shape_capacity`).
    shaped: Mutex<Option<BTreeMap<String, u64>>>,
    /// When the connections' counters were last read for a report.
    counters_read: std::sync::Mutex<Option<std::time::Instant>>,
    /// Reports the server took since the agent started.
    reports_sent: std::sync::atomic::AtomicU64,
    /// Of the reports taken, those sent as changes; and the bytes of all.
    reports_as_changes: std::sync::atomic::AtomicU64,
    report_bytes: std::sync::atomic::AtomicU64,
    /// The server's config answers since the agent started: whole, and as changes.
    config_answers: [std::sync::atomic::AtomicU64; 2],
    /// The bytes of those answers.
    config_bytes: std::sync::atomic::AtomicU64,
    /// Asks the reporter for a report now (see [`Agent::report_soon`]).
    report_due: tokio::sync::Notify,
    /// The latest config from the server and its hand-over number, to be written to the
    /// state directory by the next report (see [`Agent::keep_latest`]).
    keeping: std::sync::Mutex<(u64, Option<Arc<EdgeConfig>>)>,
    /// The hand-over number of the config last written; held while one is written.
    kept: std::sync::Mutex<u64>,
    opts: EdgeOptions,
    caps: Capabilities,
    underlay: Netlink,
    client: SyncClient,
    state: Arc<Mutex<State>>,
    /// Instances being reconciled now, and the most there have been at once.
    reconciling: apply::AtOnce,
    /// The BFD sessions' snapshots, for the agent that comes after this one.
    bfd_book: Arc<instance::BfdBook>,
}

/// Resolves when any of `watches` changes. One whose sender is gone (an instance's
/// speaker ended) never resolves it — it would at once, every time — and neither does an
/// empty list.
async fn first_change<T>(watches: &mut [tokio::sync::watch::Receiver<T>]) {
    let futs: Vec<_> = watches
        .iter_mut()
        .map(|w| {
            Box::pin(async move {
                if w.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
        })
        .collect();
    if futs.is_empty() {
        return std::future::pending().await;
    }
    let _ = futures::future::select_all(futs).await;
}

impl Agent {
    pub async fn new(opts: EdgeOptions) -> Result<Arc<Agent>, EdgeError> {
        let caps = probe::probe().await?;
        info!(
            dataplane = caps.mode(),
            "kernel probed: 802.1Q {}, VXLAN {}",
            if caps.vlan {
                "available"
            } else {
                "not available (physical trunks cannot be realised here)"
            },
            if caps.vxlan {
                "available"
            } else {
                "not available"
            }
        );
        match probe::raise_open_files() {
            Ok((was, now)) => {
                let room = now / probe::FILES_PER_INSTANCE;
                info!(
                    was,
                    now, "open-file limit: room for about {room} connections"
                );
            }
            Err(e) => warn!("open-file limit: {e}"),
        }
        let underlay = Netlink::open(opts.host_netns.as_deref())?;
        let client = SyncClient::new(&opts.server, opts.token.as_deref(), opts.tls.clone())?;
        // Read once, before anything runs (a few hundred kilobytes at most).
        let bfd_book = instance::BfdBook::open(
            std::path::Path::new(instance::BFD_STATE_DIR),
            &opts.netns_prefix,
        );
        Ok(Arc::new(Agent {
            applying: Mutex::new(()),
            reporting: Mutex::new(None),
            shaped: Mutex::new(None),
            counters_read: std::sync::Mutex::new(None),
            reports_sent: std::sync::atomic::AtomicU64::new(0),
            reports_as_changes: std::sync::atomic::AtomicU64::new(0),
            report_bytes: std::sync::atomic::AtomicU64::new(0),
            config_answers: Default::default(),
            config_bytes: std::sync::atomic::AtomicU64::new(0),
            report_due: tokio::sync::Notify::new(),
            keeping: std::sync::Mutex::new((0, None)),
            kept: std::sync::Mutex::new(0),
            opts,
            caps,
            underlay,
            client,
            reconciling: apply::AtOnce::default(),
            bfd_book,
            state: Arc::new(Mutex::new(State {
                applied: 0,
                edge_id: String::new(),
                watches: vec![],
                errors: vec![],
                instances: BTreeMap::new(),
                last_apply: Duration::ZERO,
                applies: 0,
                last_reconciled: 0,
                last_full: false,
                applied_instances: BTreeMap::new(),
                applied_context: None,
                trunk_readings: BTreeMap::new(),
                tcp_drops: BTreeMap::new(),
                rpki: None,
            })),
        }))
    }

    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// Reports every `report_every`, at once after an apply, and soon after any session
    /// changes state; after a report the server did not take, the next is sent after a
    /// pause that doubles up to the report interval (the operations an apply's report
    /// finishes should not wait a whole interval for a blip of the server).
    async fn report_loop(self: Arc<Self>) {
        let mut t = tokio::time::interval(self.opts.report_every);
        let mut again: Option<Duration> = None;
        loop {
            let mut watches = self.state.lock().await.watches.clone();
            let changed = async {
                first_change(&mut watches).await;
                tokio::time::sleep(Duration::from_millis(100)).await; // coalesce a burst
            };
            let retry = async {
                match again {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            // (An apply's report first: the periodic one waits for the counters.)
            let periodic = tokio::select! {
                biased;
                _ = self.report_due.notified() => false,
                _ = t.tick() => true,
                _ = changed => false,
                _ = retry => false,
            };
            again = if self.report(periodic).await {
                None
            } else {
                Some(again.map_or(Duration::from_millis(250), |d| {
                    (d * 2).min(self.opts.report_every)
                }))
            };
        }
    }

    /// Syncs and reports until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let reporter = tokio::spawn(self.clone().report_loop());
        let metrics = match self.opts.metrics_listen {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    info!("metrics on http://{addr}/metrics");
                    let me = self.clone();
                    let ready = self.clone();
                    let app = axum::Router::new()
                        .route("/healthz", axum::routing::get(|| async { "ok" }))
                        .route(
                            "/readyz",
                            axum::routing::get(move || {
                                let me = ready.clone();
                                async move {
                                    let (ok, v) = me.readiness().await;
                                    let code = if ok {
                                        axum::http::StatusCode::OK
                                    } else {
                                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                                    };
                                    (code, axum::Json(v))
                                }
                            }),
                        )
                        .route(
                            "/metrics",
                            axum::routing::get(move || {
                                let me = me.clone();
                                async move {
                                    (
                                        [("content-type", "text/plain; version=0.0.4")],
                                        me.metrics().await,
                                    )
                                }
                            }),
                        );
                    Some(tokio::spawn(async move {
                        let _ = axum::serve(l, app).await;
                    }))
                }
                Err(e) => {
                    warn!("metrics: cannot listen on {addr}: {e}");
                    None
                }
            },
            None => None,
        };
        tokio::select! {
            _ = self.sync_loop() => {}
            _ = self.query_loop() => {}
            _ = shutdown => {
                info!("edge agent stopping: sessions end with Administrative Shutdown; the data plane keeps forwarding");
                let st = self.state.lock().await;
                for i in st.instances.values() {
                    i.stop_announcing("cic edge stopping").await;
                }
            }
        }
        reporter.abort();
        // The latest config, in case no report wrote it yet.
        self.keep_latest();
        if let Some(m) = metrics {
            m.abort();
        }
    }

    /// Answers the server's looking-glass questions as they come (a long poll of its own,
    /// beside the config's).
    async fn query_loop(&self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.client.queries(self.opts.poll_wait).await {
                Ok(qs) => {
                    backoff = Duration::from_millis(500);
                    for q in qs {
                        let answer = self.answer(&q).await;
                        if let Err(e) = self.client.answer(&q.id, &answer).await {
                            warn!("looking glass: {e}");
                        }
                    }
                }
                Err(e) => {
                    debug!("looking glass: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn answer(&self, q: &RouteQuery) -> RouteAnswer {
        if q.diagnose {
            return RouteAnswer {
                routes: vec![],
                error: None,
                facts: Some(Box::new(self.diagnose(q).await)),
            };
        }
        let st = self.state.lock().await;
        let vrps = st.rpki.as_ref().and_then(|r| r.data.borrow().clone());
        for i in st.instances.values() {
            match i
                .looking_glass(&q.connection_id, q.family, q.direction, vrps.as_deref())
                .await
            {
                Some(Ok(routes)) => {
                    return RouteAnswer {
                        routes,
                        error: None,
                        facts: None,
                    };
                }
                Some(Err(e)) => {
                    return RouteAnswer {
                        routes: vec![],
                        error: Some(e),
                        facts: None,
                    };
                }
                None => {}
            }
        }
        RouteAnswer {
            facts: None,
            routes: vec![],
            error: Some(format!(
                "{} has no {} BGP session on this edge (it has no such peering, its link is not up, or a failover test holds it down)",
                q.connection_id,
                match q.family {
                    cic_model::edge::Family::Ipv4 => "IPv4",
                    cic_model::edge::Family::Ipv6 => "IPv6",
                }
            )),
        }
    }

    /// What this edge sees of one session of a connection, for `:diagnose`: the trunk's
    /// port and the connection's interface, the peer's ARP / ND entry, the session, and
    /// the first routes import refused.
    async fn diagnose(&self, q: &RouteQuery) -> SessionFacts {
        let mut st = self.state.lock().await;
        // The one session, as a report would say it (its namespace's drops read alone).
        let session = match st
            .applied_instances
            .values()
            .find(|ic| ic.connections.iter().any(|c| c.id == q.connection_id))
            .map(|ic| ic.id.clone())
        {
            Some(id) => {
                let (md5, gtsm) = tcp_drops(&mut st, Some(&id));
                st.instances.get(&id).and_then(|i| {
                    let status = i.status().borrow().clone();
                    session_statuses(i, &status, &md5, &gtsm)
                        .into_iter()
                        .find(|s| {
                            s.kind == SessionKind::Customer
                                && s.resource_id == q.connection_id
                                && s.family == q.family
                        })
                })
            }
            None => None,
        };
        let min_hold_time_secs = st
            .applied_context
            .as_ref()
            .map_or(0, |c| c.bgp.min_hold_time_secs);
        let mut facts = SessionFacts {
            port: None,
            missing_port: None,
            interface: None,
            neighbor: NeighborState::None,
            session,
            refused: vec![],
            refused_total: 0,
            min_hold_time_secs,
        };
        let Some((instance, c)) = st.applied_instances.values().find_map(|ic| {
            let c = ic.connections.iter().find(|c| c.id == q.connection_id)?;
            Some((st.instances.get(&ic.id)?, c))
        }) else {
            return facts;
        };
        let trunk = st
            .applied_context
            .as_ref()
            .and_then(|ctx| ctx.trunks.get(&c.trunk_id));
        let port = trunk.and_then(|(t, _)| match &t.attachment {
            Attachment::Vlan { port } => Some(port.clone()),
            Attachment::Lag { bond, .. } => Some(bond.clone()),
            Attachment::Vxlan { port, .. } => port.clone(),
        });
        let facts_of = |l: &cic_dataplane::Link| LinkFacts {
            name: l.name.clone(),
            up: l.up,
            carrier: l.carrier,
        };
        if let Some(port) = port {
            match self.underlay.link(&port).await {
                Ok(Some(l)) => facts.port = Some(facts_of(&l)),
                Ok(None) => facts.missing_port = Some(port),
                Err(e) => warn!("diagnose: {e}"),
            }
        }
        let nl = instance.netlink();
        if let Ok(Some(l)) = nl.link(&instance::ifname(&c.id)).await {
            facts.interface = Some(facts_of(&l));
            if let Some(p) = c.peerings.iter().find(|p| p.family() == q.family) {
                facts.neighbor = match nl.neighbor(l.index, p.peer_ip).await {
                    Ok(Some(cic_dataplane::Neighbor::Incomplete)) => NeighborState::Incomplete,
                    Ok(Some(cic_dataplane::Neighbor::Failed)) => NeighborState::Failed,
                    Ok(Some(cic_dataplane::Neighbor::Resolved)) => NeighborState::Resolved,
                    Ok(None) => NeighborState::None,
                    Err(e) => {
                        warn!("diagnose: {e}");
                        NeighborState::None
                    }
                };
            }
        }
        let vrps = st.rpki.as_ref().and_then(|r| r.data.borrow().clone());
        if let Some(Ok(routes)) = instance
            .looking_glass(&c.id, q.family, RouteDirection::Received, vrps.as_deref())
            .await
        {
            let refused: Vec<RouteEntry> = routes
                .into_iter()
                .filter(|r| r.rejected.is_some())
                .collect();
            facts.refused_total = refused.len() as u32;
            facts.refused = refused.into_iter().take(DIAGNOSE_REFUSED).collect();
        }
        facts
    }

    /// `GET /metrics`: the sessions from the speakers and the connections' interface
    /// counters from the kernel, read at the scrape.
    pub async fn metrics(&self) -> String {
        // Sessions and errors only: the scrape reads the counters itself, below.
        let report = self.report_state().await;
        let mut e = Exposition::default();
        // The counters are read after the lock is let go, many namespaces at a time.
        let (edge_id, sources, trunks, trunk_of, previous) = {
            let st = self.state.lock().await;
            let edge = || ("edge_id", st.edge_id.clone());
            e.sample(
                "cic_edge_applied_revision",
                "gauge",
                "The config revision this edge has applied.",
                vec![edge()],
                report.applied_revision as f64,
            );
            e.sample(
                "cic_edge_last_apply_seconds",
                "gauge",
                "How long the last apply of the config took (see cic_edge_last_apply_reconciled_instances for how much it reconciled).",
                vec![edge()],
                st.last_apply.as_secs_f64(),
            );
            e.sample(
                "cic_edge_last_apply_reconciled_instances",
                "gauge",
                "Routing instances the last apply reconciled; a new revision leaves unchanged ones alone.",
                vec![edge(), ("full", st.last_full.to_string())],
                st.last_reconciled as f64,
            );
            e.sample(
                "cic_edge_instances_reconciled_at_once_peak",
                "gauge",
                "The most instances (a routing instance's, or a lone connection's) reconciled at the same time since the agent started; they are reconciled several at once.",
                vec![edge()],
                self.reconciling.peak() as f64,
            );
            e.sample(
                "cic_edge_applies_total",
                "counter",
                "Applies of the config since the agent started: new revisions, retries and drift checks.",
                vec![edge()],
                st.applies as f64,
            );
            e.sample(
                "cic_edge_reports_total",
                "counter",
                "Reports the server took since the agent started: after applies, soon after sessions change state, and every report interval (asks that come while one is being made are answered by one more).",
                vec![edge()],
                self.reports_sent.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            e.sample(
                "cic_edge_reports_as_changes_total",
                "counter",
                "Of the reports the server took, those sent as the changes since the last one it took (the others whole: the first, after a failure, or to a server without versions).",
                vec![edge()],
                self.reports_as_changes.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            e.sample(
                "cic_edge_report_bytes_total",
                "counter",
                "The bytes of the reports the server took.",
                vec![edge()],
                self.report_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            for (kind, n) in ["whole", "changes"].iter().zip(&self.config_answers) {
                e.sample(
                    "cic_edge_config_answers_total",
                    "counter",
                    "The server's answers to the edge's config requests since the agent started: the config whole (the first, after a failed request, from a server without tags, or when the server no longer has the answer the edge holds) or the changes since the answer it holds.",
                    vec![edge(), ("kind", kind.to_string())],
                    n.load(std::sync::atomic::Ordering::Relaxed) as f64,
                );
            }
            e.sample(
                "cic_edge_config_bytes_total",
                "counter",
                "The bytes of the server's config answers since the agent started.",
                vec![edge()],
                self.config_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            e.sample(
                "cic_edge_resource_errors",
                "gauge",
                "Resources this edge could not realise.",
                vec![edge()],
                report.errors.len() as f64,
            );
            for s in &report.sessions {
                let id = match s.kind {
                    SessionKind::Customer => "connection_id",
                    SessionKind::Fabric => "routing_instance_id",
                };
                e.session(s, vec![edge(), (id, s.resource_id.clone())]);
            }
            let sources: Vec<_> = st.instances.values().map(|i| i.traffic_source()).collect();
            // Trunks: which connection rides which, where each trunk's port is, and its
            // counters at the last scrape (for its rates).
            let trunks: Vec<(TrunkConfig, bool)> = st
                .applied_context
                .iter()
                .flat_map(|c| c.trunks.values())
                .map(|(t, problem)| (t.clone(), problem.is_none()))
                .collect();
            let trunk_of: BTreeMap<String, String> = st
                .applied_instances
                .values()
                .flat_map(|ic| ic.connections.iter())
                .map(|c| (c.id.clone(), c.trunk_id.clone()))
                .collect();
            (
                st.edge_id.clone(),
                sources,
                trunks,
                trunk_of,
                st.trunk_readings.clone(),
            )
        };
        use futures::stream::{self, StreamExt};
        let mut traffic: Vec<_> = stream::iter(sources)
            .map(|s| async move { s.read().await })
            .buffer_unordered(METRICS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        traffic.sort_by(|a, b| a.0.cmp(&b.0));
        let mut per_trunk: BTreeMap<&str, cic_model::metrics::Traffic> = BTreeMap::new();
        for (conn, t) in &traffic {
            if let Some(trunk) = trunk_of.get(conn) {
                per_trunk.entry(trunk.as_str()).or_default().add(t);
            }
        }
        let ports = self.underlay.links().await.unwrap_or_default();
        let carrier = |name: &str| ports.iter().any(|l| l.name == name && l.carrier);
        let now = std::time::Instant::now();
        let mut readings = BTreeMap::new();
        for (t, realised) in &trunks {
            let own_port = match &t.attachment {
                Attachment::Vlan { port } => Some(port.as_str()),
                Attachment::Lag { bond, .. } => Some(bond.as_str()),
                Attachment::Vxlan { port, .. } => port.as_deref(),
            };
            let lag_health = match &t.attachment {
                Attachment::Lag { ports: members, .. } if !members.is_empty() => Some(
                    members.iter().filter(|m| carrier(m)).count() as f64 / members.len() as f64,
                ),
                _ => None,
            };
            let traffic = per_trunk.get(t.id.as_str()).copied().unwrap_or_default();
            // Rates against the previous scrape.
            let rates = previous.get(&t.id).and_then(|(then, before)| {
                cic_model::metrics::Rates::between(
                    before,
                    &traffic,
                    now.duration_since(*then).as_secs_f64(),
                )
            });
            readings.insert(t.id.clone(), (now, traffic));
            let trunk = cic_model::metrics::Trunk {
                up: *realised && own_port.is_none_or(carrier),
                lag_health,
                traffic,
                rates,
            };
            e.trunk(
                &trunk,
                vec![
                    ("edge_id", edge_id.clone()),
                    ("trunk_connection_id", t.id.clone()),
                ],
            );
        }
        // This scrape's counters, for the next one's rates.
        self.state.lock().await.trunk_readings = readings;
        for (conn, t) in traffic {
            e.traffic(
                &t,
                vec![("edge_id", edge_id.clone()), ("connection_id", conn)],
            );
        }
        e.render()
    }

    /// Hands `cfg` over to be kept (see [`Agent::keep_latest`]).
    fn hand_over(&self, cfg: &Arc<EdgeConfig>) {
        let mut k = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *k = (k.0 + 1, Some(cfg.clone()));
    }

    /// Writes the latest config handed over, unless it was written already: called by
    /// each report before it is sent (on a blocking thread), so the file is written off
    /// the path from a new revision to its apply (with a thousand instances half a
    /// megabyte written and synced each revision) and yet never behind what the server
    /// was told is applied — an operation the server finished (a deletion) does not come
    /// back from the file after a restart while the server is away. Writes follow one
    /// another, and one never replaces a later one.
    fn keep_latest(&self) {
        let (n, cfg) = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(cfg) = cfg else { return };
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *kept >= n {
            return;
        }
        self.keep_config(&cfg);
        *kept = n;
    }

    /// Whether a config handed over is not written yet (or a write is under way): only
    /// then does a report wait on a blocking thread for [`Agent::keep_latest`].
    fn keep_due(&self) -> bool {
        let handed = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        self.kept.try_lock().map_or(true, |kept| *kept < handed)
    }

    fn cached_config_path(&self) -> Option<std::path::PathBuf> {
        self.opts.state_dir.as_ref().map(|d| d.join("config.json"))
    }

    /// Keeps `cfg` for a restart while the server is away: written whole to a temporary
    /// file, then renamed over the old one, so a crash leaves one or the other.
    fn keep_config(&self, cfg: &EdgeConfig) {
        let Some(path) = self.cached_config_path() else {
            return;
        };
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec(cfg).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            warn!("keeping the config in {}: {e}", path.display());
        }
    }

    /// The config kept by [`Agent::keep_config`], if there is one that reads.
    fn kept_config(&self) -> Option<EdgeConfig> {
        let path = self.cached_config_path()?;
        let bytes = std::fs::read(&path).ok()?;
        serde_json::from_slice(&bytes)
            .map_err(|e| warn!("{} does not read: {e}", path.display()))
            .ok()
    }

    /// Has the reporter send a report now, while the sync loop goes on to the next
    /// revision: the report of an apply (which completes its operations) overlaps the
    /// next long poll and apply instead of delaying them. Asked again while a report is
    /// being made, it sends one more after it (which reads the state then), not one per
    /// ask.
    fn report_soon(&self) {
        self.report_due.notify_one();
    }

    fn ns_name(&self, instance_id: &str) -> String {
        format!("{}{}", self.opts.netns_prefix, instance_id)
    }

    /// Realises `cfg`, reconciling every instance with the kernel and its speaker;
    /// afterwards `applied` is its revision, `errors` what failed. Retries, the periodic
    /// drift check and the end of a failover test's hold use this.
    pub async fn apply(&self, cfg: &EdgeConfig) {
        self.apply_with(cfg, true).await
    }

    /// Realises a new revision: like [`Agent::apply`], but an instance whose part of the
    /// config (and the edge-wide inputs) is what it was last applied with, without an
    /// error, is left as it is.
    pub async fn apply_changes(&self, cfg: &EdgeConfig) {
        self.apply_with(cfg, false).await
    }

    /// `GET /readyz` of the metrics listener: ready once a config (the server's, or the
    /// one kept from it) is applied; with the sessions counted.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let st = self.state.lock().await;
        let (mut sessions, mut established) = (0, 0);
        for i in st.instances.values() {
            for p in &i.status().borrow().peers {
                sessions += 1;
                if p.established_at.is_some() {
                    established += 1;
                }
            }
        }
        let ready = st.applied > 0;
        (
            ready,
            serde_json::json!({"ready": ready, "appliedRevision": st.applied,
                "sessions": sessions, "established": established, "errors": st.errors.len()}),
        )
    }
}

/// The last report the server took: its version, and its sessions by key.
type ReportBase = (
    String,
    std::collections::HashMap<cic_model::edge::SessionKey, cic_model::edge::SessionStatus>,
);

/// How many refused routes a diagnosis names (the looking glass has them all).
const DIAGNOSE_REFUSED: usize = 5;

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use tokio::sync::watch;

    use super::first_change;

    #[tokio::test]
    async fn a_watch_whose_sender_is_gone_never_wakes_the_reporter() {
        let (gone, mut a) = watch::channel(0);
        let (live, mut b) = watch::channel(0);
        drop(gone);
        a.borrow_and_update();
        b.borrow_and_update();
        let mut watches = vec![a, b];
        // With the ended speaker's watch among them, nothing has changed yet.
        assert!(first_change(&mut watches).now_or_never().is_none());
        let mut none: Vec<watch::Receiver<i32>> = vec![];
        assert!(first_change(&mut none).now_or_never().is_none(), "no watch");
        // A change of a live one does.
        live.send_replace(1);
        assert!(first_change(&mut watches).now_or_never().is_some());
    }
}
