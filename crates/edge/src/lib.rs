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
mod claim;
pub mod client;
pub mod failure;
pub mod instance;
mod keep;
mod looking_glass;
mod metrics;
mod report;
mod sync;
#[cfg(test)]
mod testing;
pub use cic_client::tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cic_dataplane::probe::Capabilities;
use cic_dataplane::{Netlink, probe};
use cic_model::edge::{EdgeConfig, InstanceConfig, ResourceError, TrunkConfig};
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use crate::client::SyncClient;
use crate::instance::Instance;
use crate::report::Drops;

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
    /// Another agent runs with the same namespace prefix.
    #[error("{0}")]
    Claimed(String),
}

struct State {
    applied: u64,
    /// This edge's id, from its config (for metric labels).
    edge_id: String,
    /// Watches of each instance's BGP status, so a state change is reported at once;
    /// marked seen by each report sent (see `Agent::report`).
    watches: Vec<tokio::sync::watch::Receiver<cic_bgp::driver::InstanceStatus>>,
    errors: Vec<ResourceError>,
    /// When each failing resource's run of failures began: a transient failure is
    /// reported as such for a bounded time from it (`cic_model::edge::age_transients`).
    failing_since: BTreeMap<String, std::time::Instant>,
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
    /// changed (with a thousand instances a full reconcile takes seconds). Shared with
    /// the config: an instance the sync made whole from the config before is the same
    /// allocation, told unchanged without comparing it field by field.
    applied_instances: BTreeMap<String, Arc<InstanceConfig>>,
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
    trunks: Trunks,
}

/// Each trunk of the config, and what keeps this edge from carrying it: a failure that
/// may pass when it is the last apply's, kept while the kernel does not answer.
pub(crate) type Trunks = BTreeMap<String, (TrunkConfig, Option<failure::Failure>)>;

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
    /// The hand-over number of the config last written, and what writes them (none
    /// without a state directory); held while one is written.
    kept: std::sync::Mutex<(u64, Option<keep::Keeper>)>,
    opts: EdgeOptions,
    caps: Capabilities,
    underlay: Netlink,
    client: SyncClient,
    state: Arc<Mutex<State>>,
    /// Instances being reconciled now, and the most there have been at once.
    reconciling: apply::AtOnce,
    /// The BFD sessions' snapshots, for the agent that comes after this one.
    bfd_book: Arc<instance::BfdBook>,
    /// This agent's hold on its namespace prefix (see [`claim`]).
    _claim: claim::Claim,
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
        // Before anything looks at the namespaces: another agent's would be taken for
        // leftovers. An agent a supervisor restarts may still be exiting: a few seconds.
        let prefix = opts.netns_prefix.clone();
        let claimed = tokio::task::spawn_blocking(move || {
            claim::claim(
                std::path::Path::new(claim::CLAIM_DIR),
                &prefix,
                Duration::from_secs(10),
            )
        })
        .await
        .map_err(|e| EdgeError::Claimed(format!("claiming the namespace prefix: {e}")))?
        .map_err(EdgeError::Claimed)?;
        info!(claim = %claimed.path.display(), "namespace prefix {:?} claimed", opts.netns_prefix);
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
            kept: std::sync::Mutex::new((0, opts.state_dir.clone().map(keep::Keeper::new))),
            opts,
            caps,
            underlay,
            client,
            reconciling: apply::AtOnce::default(),
            bfd_book,
            _claim: claimed,
            state: Arc::new(Mutex::new(State {
                applied: 0,
                edge_id: String::new(),
                watches: vec![],
                errors: vec![],
                failing_since: BTreeMap::new(),
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

    /// Hands `cfg` over to be kept (see [`Agent::keep_latest`]).
    fn hand_over(&self, cfg: &Arc<EdgeConfig>) {
        let mut k = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *k = (k.0 + 1, Some(cfg.clone()));
    }

    /// Writes the latest config handed over, unless it was written already: called by
    /// each report before it is sent (on a blocking thread), so it is written off the
    /// path from a new revision to its apply (its changes appended and synced, see
    /// [`keep`]) and yet never behind what the server was told is applied — an operation
    /// the server finished (a deletion) does not come back from the file after a restart
    /// while the server is away. Writes follow one another, and one never replaces a
    /// later one; one that failed is tried again by the next report.
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
        if kept.0 >= n {
            return;
        }
        if let Some(keeper) = &mut kept.1 {
            match keeper.keep(&cfg) {
                Ok(how) => debug!(revision = cfg.revision, ?how, "config kept"),
                // Not marked kept: the next report tries again (whole).
                Err(e) => {
                    warn!("keeping the config in the state directory: {e}");
                    return;
                }
            }
        }
        kept.0 = n;
    }

    /// Whether a config handed over is not written yet (or a write is under way): only
    /// then does a report wait on a blocking thread for [`Agent::keep_latest`].
    fn keep_due(&self) -> bool {
        let handed = self
            .keeping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        self.kept.try_lock().map_or(true, |kept| kept.0 < handed)
    }

    /// The config kept in the state directory, if there is one that reads.
    fn kept_config(&self) -> Option<EdgeConfig> {
        keep::kept_config(self.opts.state_dir.as_ref()?)
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
    /// afterwards `applied` is its revision, `errors` what failed. The periodic drift
    /// check, the end of a failover test's hold and the kept config at start use this.
    pub async fn apply(&self, cfg: &EdgeConfig) {
        self.apply_with(cfg, true).await
    }

    /// Realises a new revision, or the same again after errors: like [`Agent::apply`],
    /// but an instance whose part of the config (and the edge-wide inputs) is what it was
    /// last applied with, without an error, is left as it is.
    pub async fn apply_changes(&self, cfg: &EdgeConfig) {
        self.apply_with(cfg, false).await
    }

    /// `GET /readyz` of the metrics listener: ready once a config (the server's, or the
    /// one kept from it) is applied; with the sessions counted, in all and by kind
    /// (customer, fabric) and family. Cheap beside `/metrics` (no counters read, nothing
    /// rendered per session): what a watcher of the sessions coming up polls.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let st = self.state.lock().await;
        let (mut sessions, mut established) = (0, 0);
        // [customer, fabric] × [IPv4, IPv6]: (sessions, established).
        let mut by = [[(0u32, 0u32); 2]; 2];
        for i in st.instances.values() {
            for p in &i.status().borrow().peers {
                let up = p.established_at.is_some();
                sessions += 1;
                established += u32::from(up);
                let kind = usize::from(p.spec.role == cic_bgp::policy::Role::Fabric);
                let family = usize::from(p.spec.address.is_ipv6());
                let c = &mut by[kind][family];
                c.0 += 1;
                c.1 += u32::from(up);
            }
        }
        let ready = st.applied > 0;
        let counts = |k: [(u32, u32); 2]| {
            serde_json::json!({
                "ipv4": {"sessions": k[0].0, "established": k[0].1},
                "ipv6": {"sessions": k[1].0, "established": k[1].1},
            })
        };
        (
            ready,
            serde_json::json!({"ready": ready, "appliedRevision": st.applied,
                "sessions": sessions, "established": established, "errors": st.errors.len(),
                "customer": counts(by[0]), "fabric": counts(by[1])}),
        )
    }
}

/// The last report the server took: its version, its sessions by key, and whether the
/// server counts the uptime of a session a report of changes leaves out.
type ReportBase = (
    String,
    std::collections::HashMap<cic_model::edge::SessionKey, cic_model::edge::SessionStatus>,
    bool,
);

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
