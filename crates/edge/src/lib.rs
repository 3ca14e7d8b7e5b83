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

pub mod client;
pub mod instance;
pub use cic_client::tls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_dataplane::probe::Capabilities;
use cic_dataplane::{Netlink, netns, probe};
use cic_model::edge::{
    Attachment, EdgeConfig, EdgeReport, InstanceConfig, LinkFacts, NeighborState, ResourceError,
    RouteAnswer, RouteDirection, RouteEntry, RouteQuery, SessionFacts, SessionKind, SessionStatus,
    TrunkConfig,
};
use cic_model::metrics::Exposition;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::client::SyncClient;
use crate::instance::Instance;

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
    /// Watches of each instance's BGP status, so a state change is reported at once.
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
    opts: EdgeOptions,
    caps: Capabilities,
    underlay: Netlink,
    client: SyncClient,
    state: Arc<Mutex<State>>,
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
        let underlay = Netlink::open(opts.host_netns.as_deref())?;
        let client = SyncClient::new(&opts.server, opts.token.as_deref(), opts.tls.clone())?;
        Ok(Arc::new(Agent {
            opts,
            caps,
            underlay,
            client,
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

    /// Syncs and reports until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let reporter = {
            let me = self.clone();
            tokio::spawn(async move {
                let mut t = tokio::time::interval(me.opts.report_every);
                loop {
                    // Every `report_every`, and soon after any session changes state.
                    let mut watches = me.state.lock().await.watches.clone();
                    let changed = async {
                        if watches.is_empty() {
                            return std::future::pending().await;
                        }
                        let futs = watches.iter_mut().map(|w| Box::pin(w.changed()));
                        let _ = futures::future::select_all(futs).await;
                        tokio::time::sleep(Duration::from_millis(100)).await; // coalesce a burst
                    };
                    tokio::select! {
                        _ = t.tick() => {}
                        _ = changed => {}
                    }
                    me.report().await;
                }
            })
        };
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
        let report = self.report_now().await;
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
                "cic_edge_applies_total",
                "counter",
                "Applies of the config since the agent started: new revisions, retries and drift checks.",
                vec![edge()],
                st.applies as f64,
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

    /// Applies each new revision; while the last apply left errors, applies it again with
    /// a growing pause (a busy kernel object, a port that appears later), and every
    /// minute anyway, to undo drift (a link or route removed by hand).
    ///
    /// Started while the server cannot be reached, the agent runs the last config it was
    /// given (kept in its state directory) rather than nothing, so its sessions come back
    /// and its routes stay; the server's config replaces it once it answers.
    async fn sync_loop(&self) {
        let mut backoff = Duration::from_millis(500);
        let mut retry = Duration::from_millis(250);
        let mut last: Option<(EdgeConfig, Instant)> = None;
        // (A server that answers, even to refuse us, is not for a kept config to argue.)
        if let Some(kept) = self.kept_config()
            && let Err(e @ client::ClientError::Transport(..)) =
                self.client.config(0, Duration::ZERO).await
        {
            warn!(
                revision = kept.revision,
                "{e}: running the last config it gave until it answers"
            );
            self.apply(&kept).await;
            self.report().await;
            last = Some((kept, Instant::now()));
        }
        loop {
            let (after, failing) = {
                let st = self.state.lock().await;
                (st.applied, !st.errors.is_empty())
            };
            // A failover test ending brings its session back: apply again then.
            let hold_end = last.as_ref().and_then(|(cfg, _)| next_hold_end(cfg));
            if let Some((cfg, at)) = &last {
                let due = if failing {
                    *at + retry
                } else {
                    *at + Duration::from_secs(60)
                };
                if Instant::now() >= due {
                    retry = if failing {
                        (retry * 2).min(Duration::from_secs(30))
                    } else {
                        Duration::from_millis(250)
                    };
                    self.apply(cfg).await;
                    self.report().await;
                    last = Some((cfg.clone(), Instant::now()));
                    continue;
                }
            }
            let wait = match &last {
                Some((_, at)) if failing => (*at + retry)
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
                _ => self.opts.poll_wait,
            };
            // The server's long poll counts whole seconds: the last second of a hold is
            // slept here.
            if let Some(h) = hold_end
                && h.saturating_duration_since(Instant::now()) < Duration::from_secs(1)
            {
                tokio::time::sleep_until(h.into()).await;
                if let Some((cfg, _)) = last.take() {
                    info!("a failover test ended: bringing its session back");
                    self.apply(&cfg).await;
                    self.report().await;
                    last = Some((cfg, Instant::now()));
                }
                continue;
            }
            let wait = hold_end.map_or(wait, |h| {
                wait.min(h.saturating_duration_since(Instant::now()))
            });
            match self
                .client
                .config(after, wait.min(self.opts.poll_wait))
                .await
            {
                Ok(cfg) => {
                    backoff = Duration::from_millis(500);
                    if cfg.revision != after {
                        self.keep_config(&cfg);
                        retry = Duration::from_millis(250);
                        self.apply_changes(&cfg).await;
                        self.report().await;
                        last = Some((cfg, Instant::now()));
                    }
                }
                Err(e) => {
                    warn!("sync: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
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

    async fn apply_with(&self, cfg: &EdgeConfig, full: bool) {
        let started = Instant::now();
        let mut st = self.state.lock().await;
        let mut errors = Vec::new();

        // RPKI caches: followed by a task of their own; each instance is handed the data
        // in force whenever it changes.
        let caches = &cfg.bgp.rpki_caches;
        if st.rpki.as_ref().map(|r| &r.caches) != Some(caches) {
            st.rpki = (!caches.is_empty()).then(|| {
                let data = cic_bgp::driver::start_rpki(
                    caches
                        .iter()
                        .enumerate()
                        .map(|(i, a)| cic_bgp::driver::CacheSpec {
                            address: *a,
                            preference: i.min(255) as u8,
                        })
                        .collect(),
                );
                let (mut changes, state) = (data.clone(), self.state.clone());
                let forwarder = tokio::spawn(async move {
                    while changes.changed().await.is_ok() {
                        let v = changes.borrow_and_update().clone();
                        // The speakers' handles, and the agent's lock let go: each
                        // instance judges its routes again in its own task.
                        let speakers: Vec<_> = {
                            let st = state.lock().await;
                            st.instances.values().map(|i| i.speaker()).collect()
                        };
                        for s in speakers {
                            let _ = s.set_vrps(v.clone()).await;
                        }
                    }
                });
                Rpki {
                    caches: caches.clone(),
                    data,
                    forwarder,
                }
            });
        }

        // The kernel's neighbor table is the host's, shared by every namespace: make room
        // for each connection's and each fabric segment's peer before they need it.
        let peers: usize = cfg
            .instances
            .iter()
            .map(|i| i.connections.len() + usize::from(i.fabric.is_some()))
            .sum();
        match cic_dataplane::netns::ensure_neighbor_room(peers) {
            Ok(Some((from, to))) => info!(
                peers,
                "raised the kernel's neighbor table limit (gc_thresh3) from {from} to {to}"
            ),
            Ok(None) => {}
            Err(e) => warn!(
                peers,
                "cannot make room in the kernel's neighbor table: {e}"
            ),
        }

        // Trunks: can this router carry them?
        let mut trunks: BTreeMap<String, (TrunkConfig, Option<String>)> = BTreeMap::new();
        for t in &cfg.trunks {
            let mut problem = self.check_trunk(t).await;
            // A LAG trunk's bundle lives with its ports, in the underlay.
            if let (None, Attachment::Lag { bond, ports }) = (&problem, &t.attachment)
                && let Err(e) = self
                    .underlay
                    .ensure_bond(bond, ports, &format!("{LAG_ALIAS}{}", t.id))
                    .await
            {
                problem = Some(e.to_string());
            }
            if let Some(p) = &problem {
                errors.push(ResourceError {
                    resource_id: t.id.clone(),
                    message: p.clone(),
                });
            }
            trunks.insert(t.id.clone(), (t.clone(), problem));
        }

        // Capacity: what a port sends toward customers is limited to the sum of the
        // capacities of the trunks on it (a token bucket at its root). An overlay trunk
        // without a port of its own is not shaped.
        let mut rates: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
        for (t, problem) in trunks.values() {
            let port = match &t.attachment {
                _ if problem.is_some() => continue,
                Attachment::Vlan { port } => port.clone(),
                Attachment::Lag { bond, .. } => bond.clone(),
                Attachment::Vxlan { port: Some(p), .. } => p.clone(),
                Attachment::Vxlan { port: None, .. } => continue,
            };
            let e = rates.entry(port).or_default();
            e.0 += t.capacity_mbps;
            e.1.push(t.id.clone());
        }
        let want: BTreeMap<String, u64> = rates.iter().map(|(p, (m, _))| (p.clone(), *m)).collect();
        // A port that could not be unshaped (or a failure to read what is shaped) is this
        // edge's error: reported, and the apply retried, like any other.
        let failed = match cic_dataplane::tc::reconcile(self.opts.host_netns.as_deref(), &want) {
            Ok(f) => f,
            Err(e) if want.is_empty() => vec![("(reading qdiscs)".to_string(), e)],
            Err(e) => want.keys().map(|p| (p.clone(), e.clone())).collect(),
        };
        for (port, e) in failed {
            match rates.get(&port) {
                Some((_, ids)) => errors.extend(ids.iter().map(|id| ResourceError {
                    resource_id: id.clone(),
                    message: format!("capacity on {port}: {e}"),
                })),
                None => errors.push(ResourceError {
                    resource_id: cfg.edge_id.clone(),
                    message: format!("unshaping {port}: {e}"),
                }),
            }
        }

        // Bundles of LAG trunks no longer here.
        if self.caps.bond
            && let Ok(links) = self.underlay.links().await
        {
            for l in links {
                let Some(trunk) = l.alias.as_deref().and_then(|a| a.strip_prefix(LAG_ALIAS)) else {
                    continue;
                };
                if !cfg.trunks.iter().any(|t| t.id == trunk)
                    && let Err(e) = self.underlay.del_link(l.index).await
                {
                    warn!("removing bond {}: {e}", l.name);
                }
            }
        }

        // Routing instances no longer wanted go first (their VXLAN VNIs free up), including
        // namespaces left by an earlier run.
        // (Sets: with a thousand instances, looking each up in a list is a million compares.)
        let wanted: BTreeSet<&str> = cfg.instances.iter().map(|i| i.id.as_str()).collect();
        let gone: Vec<String> = st
            .instances
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        for k in gone {
            if let Some(i) = st.instances.remove(&k) {
                i.stop().await;
            }
        }
        let wanted_ns: BTreeSet<String> = wanted.iter().map(|i| self.ns_name(i)).collect();
        for ns in netns::list(&self.opts.netns_prefix).unwrap_or_default() {
            if !wanted_ns.contains(&ns) {
                info!(netns = %ns, "removing a namespace no routing instance wants");
                if let Err(e) = cic_dataplane::purge(&ns).await {
                    warn!("{e}");
                }
            }
        }

        let context = ApplyContext {
            bgp: cfg.bgp.clone(),
            local_asn: cfg.local_asn,
            router_id: cfg.router_id,
            drain: cfg.drain,
            trunks: trunks.clone(),
        };
        let same_context = !full && st.applied_context.as_ref() == Some(&context);
        if !same_context {
            st.applied_instances.clear();
        }
        st.applied_instances
            .retain(|id, _| wanted.contains(id.as_str()));
        let mut skipped = 0usize;
        for ic in &cfg.instances {
            if same_context
                && st.instances.contains_key(&ic.id)
                && st.applied_instances.get(&ic.id) == Some(ic)
            {
                skipped += 1;
                continue;
            }
            st.applied_instances.remove(&ic.id);
            if st
                .instances
                .get(&ic.id)
                .is_some_and(|i| i.needs_restart(ic))
                && let Some(i) = st.instances.remove(&ic.id)
            {
                info!(instance = %ic.id, "announced or accepted prefixes changed: restarting its speaker");
                i.stop().await;
            }
            if !st.instances.contains_key(&ic.id) {
                match Instance::start(&ic.id, &self.ns_name(&ic.id), cfg, ic).await {
                    Ok(i) => {
                        if let Some(v) = st.rpki.as_ref().and_then(|r| r.data.borrow().clone()) {
                            i.set_vrps(Some(v)).await;
                        }
                        st.instances.insert(ic.id.clone(), i);
                    }
                    Err(e) => {
                        for c in &ic.connections {
                            errors.push(ResourceError {
                                resource_id: c.id.clone(),
                                message: e.clone(),
                            });
                        }
                        errors.push(ResourceError {
                            resource_id: ic.id.clone(),
                            message: e,
                        });
                        continue;
                    }
                }
            }
            if let Some(i) = st.instances.get_mut(&ic.id) {
                let mut own = i.apply(&self.underlay, cfg, ic, &trunks).await;
                i.peers_added().await;
                if let Err(e) = i.set_drain(cfg.drain).await {
                    own.push(ResourceError {
                        resource_id: ic.id.clone(),
                        message: format!("drain: {e}"),
                    });
                }
                if own.is_empty() {
                    st.applied_instances.insert(ic.id.clone(), ic.clone());
                }
                errors.extend(own);
            }
        }
        st.applied_context = Some(context);
        for e in &errors {
            warn!(resource = %e.resource_id, "{}", e.message);
        }
        info!(revision = cfg.revision, instances = cfg.instances.len(), unchanged = skipped, errors = errors.len(), took = ?started.elapsed(), "config applied");
        st.applied = cfg.revision;
        st.edge_id = cfg.edge_id.clone();
        st.errors = errors;
        st.last_apply = started.elapsed();
        st.applies += 1;
        st.last_reconciled = cfg.instances.len() - skipped;
        st.last_full = full;
        st.watches = st.instances.values().map(|i| i.status()).collect();
    }

    async fn check_trunk(&self, t: &TrunkConfig) -> Option<String> {
        let port = match &t.attachment {
            Attachment::Lag { ports, .. } => {
                if !self.caps.bond || !self.caps.vlan {
                    return Some(format!(
                        "this edge's kernel has no {} support ({} mode); a LAG trunk needs bonding and 802.1Q",
                        if self.caps.bond {
                            "802.1Q VLAN"
                        } else {
                            "bonding"
                        },
                        self.caps.mode()
                    ));
                }
                for p in ports {
                    match self.underlay.link(p).await {
                        Ok(Some(_)) => {}
                        Ok(None) => return Some(format!("port {p} does not exist on this edge")),
                        Err(e) => return Some(e.to_string()),
                    }
                }
                None
            }
            Attachment::Vlan { port } => {
                if !self.caps.vlan {
                    return Some(format!(
                        "this edge's kernel has no 802.1Q VLAN support ({} mode); use an overlay trunk here",
                        self.caps.mode()
                    ));
                }
                Some(port)
            }
            Attachment::Vxlan { port, .. } => {
                if !self.caps.vxlan {
                    return Some("this edge's kernel has no VXLAN support".into());
                }
                port.as_ref()
            }
        };
        match port {
            Some(p) => match self.underlay.link(p).await {
                Ok(Some(_)) => None,
                Ok(None) => Some(format!("port {p} does not exist on this edge")),
                Err(e) => Some(e.to_string()),
            },
            None => None,
        }
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

    pub async fn report_now(&self) -> EdgeReport {
        let mut st = self.state.lock().await;
        let (md5_mismatch, gtsm_drops) = tcp_drops(&mut st, None);
        let mut sessions = Vec::new();
        let mut errors = st.errors.clone();
        for i in st.instances.values() {
            if let Some(e) = i.route_error() {
                errors.push(ResourceError {
                    resource_id: i.id.clone(),
                    message: format!("routes: {e}"),
                });
            }
            let status = i.status().borrow().clone();
            if let Some(e) = &status.listen_error {
                errors.push(ResourceError {
                    resource_id: i.id.clone(),
                    message: format!("BGP listener: {e}"),
                });
            }
            if let Some(e) = i.bfd_error() {
                errors.push(ResourceError {
                    resource_id: i.id.clone(),
                    message: format!("BFD: {e}"),
                });
            }
            sessions.extend(session_statuses(i, &status, &md5_mismatch, &gtsm_drops));
        }
        EdgeReport {
            applied_revision: st.applied,
            dataplane: self.caps.mode().to_string(),
            sessions,
            errors,
        }
    }

    async fn report(&self) {
        let r = self.report_now().await;
        if let Err(e) = self.client.report(&r).await {
            warn!("report: {e}");
        }
    }
}

/// How many refused routes a diagnosis names (the looking glass has them all).
const DIAGNOSE_REFUSED: usize = 5;

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
fn session_statuses(
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
fn tcp_drops(st: &mut State, only: Option<&str>) -> (BTreeSet<String>, BTreeSet<String>) {
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
struct Drops {
    count: netns::TcpDrops,
    md5_rose: Option<Instant>,
    gtsm_rose: Option<Instant>,
    read: Instant,
}

/// The soonest end of a hold-down (failover test) still ahead, as an `Instant`.
fn next_hold_end(cfg: &EdgeConfig) -> Option<Instant> {
    let now = std::time::SystemTime::now();
    cfg.instances
        .iter()
        .flat_map(|i| &i.connections)
        .filter_map(instance::hold_down_end)
        .filter_map(|end| end.duration_since(now).ok())
        .min()
        .map(|d| Instant::now() + d)
}
