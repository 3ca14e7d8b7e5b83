//! `cic server`: the control plane.
//!
//! ```text
//!  client ──REST──▶ handlers (api/*) ──validate──▶ one write transaction:
//!                                                   resource + Operation, revision+1
//!                                                        │ revision watch
//!  cic edge ◀── GET edgeSync/config (long poll) ◀── compile(snapshot, edge)
//!  cic edge ──▶ PUT edgeSync/status (applied revision, sessions, errors)
//!                     └──▶ settle(): operations whose edges applied them are done
//! ```
//!
//! Writes are serialised by one mutex (SQLite has one writer anyway); reads go straight
//! to the store.

pub mod access;
pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod compile;
pub mod console;
pub mod error;
pub mod headers;
pub mod history;
pub mod limits;
pub mod listen;
pub mod pki;
pub mod snapshot;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cic_model::edge::{
    BgpSettings, EdgeConfig, EdgeReport, Family, ResourceError, SessionKind, SessionStatus,
};
use cic_model::resource::{
    Operation, PrivateConnection, PublicConnection, RoutingInstance, Status, TrunkConnection,
};
use cic_model::{ApiError, Code};
use cic_store::{Action, FabricSlot, Pending, Store};
use rand::RngExt;
use tokio::sync::{Mutex, watch};
use tracing::info;

use crate::compile::{Settings, Snapshot};
use crate::error::ApiResult;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub cloud_asn: u32,
    pub bgp: BgpSettings,
    pub peering_mtu: u32,
    /// Quotas, with the modelled service's defaults; operators raise them.
    pub max_connections_per_trunk: usize,
    pub max_public_connections_per_trunk: usize,
    pub max_prefixes_per_instance: usize,
    pub max_static_routes_per_connection: usize,
    /// MTU of public connections.
    pub public_peering_mtu: u32,
    /// Space the public checks take as public besides the Internet's (a lab's range).
    pub treat_as_public: Vec<ipnet::IpNet>,
    /// The shortest BFD interval a connection may ask for.
    pub bfd_min_interval_ms: u32,
    /// Longest long-poll an edge may ask for.
    pub max_wait: Duration,
    /// How edges authenticate.
    pub edge_auth: auth::EdgeAuth,
    /// How long audit events are kept.
    pub audit_retention: Duration,
    /// What one credential may cost (none by default; `cic server` sets its own).
    pub limits: limits::Limits,
    /// How much of the edges' reports is kept for graphs.
    pub history: history::HistoryConfig,
    /// The console's session cookie is Secure even without TLS here (a proxy in front
    /// terminates it).
    pub console_secure_cookies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            cloud_asn: 200_350,
            bgp: BgpSettings::default(),
            peering_mtu: 8910,
            max_connections_per_trunk: 5,
            max_public_connections_per_trunk: 5,
            max_prefixes_per_instance: 100,
            max_static_routes_per_connection: 100,
            public_peering_mtu: 1500,
            treat_as_public: vec![],
            bfd_min_interval_ms: 50,
            max_wait: Duration::from_secs(60),
            edge_auth: auth::EdgeAuth::default(),
            audit_retention: Duration::from_secs(365 * 86_400),
            limits: limits::Limits::NONE,
            history: history::HistoryConfig::default(),
            console_secure_cookies: false,
        }
    }
}

/// An edge's last report as this server decoded it, with its sessions indexed; kept
/// until the edge reports again (the store's version of the report changes), so a Get
/// of one connection does not decode every edge's report.
#[derive(Debug)]
pub struct EdgeLiveState {
    pub report: EdgeReport,
    pub reported_at: String,
    version: String,
    sessions: HashMap<(SessionKind, String, Family), usize>,
}

impl EdgeLiveState {
    /// The version the report was stored under.
    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    fn new(report: EdgeReport, reported_at: String, version: String) -> EdgeLiveState {
        let sessions = report
            .sessions
            .iter()
            .enumerate()
            .map(|(i, s)| ((s.kind, s.resource_id.clone(), s.family), i))
            .collect();
        EdgeLiveState {
            report,
            reported_at,
            version,
            sessions,
        }
    }

    /// The IPv4 session of `resource_id` of this kind, as last reported.
    pub fn session(&self, kind: SessionKind, resource_id: &str) -> Option<&SessionStatus> {
        self.session_of(kind, resource_id, Family::Ipv4)
    }

    /// The session of `resource_id` of this kind and family, as last reported.
    pub fn session_of(
        &self,
        kind: SessionKind,
        resource_id: &str,
        family: Family,
    ) -> Option<&SessionStatus> {
        self.sessions
            .get(&(kind, resource_id.to_string(), family))
            .and_then(|i| self.report.sessions.get(*i))
    }
}

pub struct AppState {
    pub store: Store,
    pub config: ServerConfig,
    /// Serialises this server's mutations: validation and write see the same state.
    write: Mutex<()>,
    /// The store's revision as of the last change to what edges are given (made here,
    /// or told by the database of another server's): edges' config long polls wait on
    /// it. Operations finishing move the store's revision without sending here: that
    /// changes nothing an edge is given (a CREATING or UPDATING resource becomes ACTIVE;
    /// a DELETING one, already left out of every edge's config, is removed).
    pub revision: watch::Sender<u64>,
    /// Counts operations finishing (here, or told by the database, on another server):
    /// operation long polls wait on it, not on every change of the store.
    pub settled: watch::Sender<u64>,
    /// Looking-glass questions for the edges, and the callers waiting for answers.
    pub queries: api::looking_glass::Broker,
    /// Edges' reports as last decoded here (see [`EdgeLiveState`]).
    reports: std::sync::Mutex<HashMap<String, Arc<EdgeLiveState>>>,
    /// Each edge's highest applied revision after whose report this server settled
    /// operations successfully (see [`AppState::may_finish`]).
    settled_by_edge: std::sync::Mutex<HashMap<String, u64>>,
    /// Since when each operation held by failures that may pass has been held, as this
    /// server saw it (see [`cic_model::edge::holds`]).
    held_since: std::sync::Mutex<HashMap<String, tokio::time::Instant>>,
    /// The config this server last answered each edge with, under its answer's tag: the
    /// next answer to that edge is the changes since it (see [`api::sync::config`]).
    pub(crate) answered: std::sync::Mutex<HashMap<String, (String, Arc<EdgeConfig>)>>,
    /// Signs page tokens; shared by every server on the database.
    pub(crate) page_key: Vec<u8>,
    /// Audit events written by this server (old ones are pruned every so many).
    pub(crate) audit_writes: std::sync::atomic::AtomicU64,
    /// Rate and long-poll counts per credential.
    pub(crate) limiter: Arc<limits::Limiter>,
    /// When the server's TLS certificate expires (unix seconds; absent without TLS).
    pub tls_not_after: std::sync::Mutex<Option<Arc<std::sync::atomic::AtomicI64>>>,
    /// What SIGHUP may change without a restart (starts as `config` says).
    reloadable: std::sync::RwLock<Reloadable>,
    /// The edges' reports over time, per connection (graphs, `:history`).
    pub history: history::History,
    /// The compiler's snapshot of the store, kept for its revision: every edge fetching
    /// its config at one revision, and the fabric's attachments, share one read.
    pub snapshots: snapshot::Snapshots,
}

/// The settings a running server takes again on SIGHUP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reloadable {
    pub limits: limits::Limits,
    pub audit_retention: Duration,
}

/// Held by a mutation from its first read to its commit: this server's mutex, and on
/// PostgreSQL the database-wide lock that other servers take too.
pub struct WriteGuard<'a> {
    _db: cic_store::WriteLock,
    _local: tokio::sync::MutexGuard<'a, ()>,
}

impl AppState {
    pub async fn new(
        store: Store,
        config: ServerConfig,
    ) -> Result<Arc<AppState>, cic_store::Error> {
        let rev = store.revision().await?;
        let candidate: [u8; 32] = rand::random();
        let page_key = hex::decode(
            store
                .shared_secret("page-token-key", &hex::encode(candidate))
                .await?,
        )
        .unwrap_or_else(|_| candidate.to_vec());
        let history = config.history;
        let st = Arc::new(AppState {
            store,
            reloadable: std::sync::RwLock::new(Reloadable {
                limits: config.limits,
                audit_retention: config.audit_retention,
            }),
            config,
            write: Mutex::new(()),
            revision: watch::channel(rev).0,
            settled: watch::channel(0).0,
            queries: Default::default(),
            reports: Default::default(),
            settled_by_edge: Default::default(),
            held_since: Default::default(),
            answered: Default::default(),
            page_key,
            audit_writes: Default::default(),
            limiter: Default::default(),
            tls_not_after: Default::default(),
            history: history::History::new(history),
            snapshots: Default::default(),
        });
        st.follow_others();
        Ok(st)
    }

    /// The rate and long-poll limits in force (SIGHUP may have changed them).
    pub fn limits(&self) -> limits::Limits {
        self.reloadable
            .read()
            .map(|r| r.limits)
            .unwrap_or(self.config.limits)
    }

    /// How long audit events are kept now.
    pub fn audit_retention(&self) -> Duration {
        self.reloadable
            .read()
            .map(|r| r.audit_retention)
            .unwrap_or(self.config.audit_retention)
    }

    /// Puts settings read again (SIGHUP) in force.
    pub fn reload(&self, r: Reloadable) {
        if let Ok(mut cur) = self.reloadable.write() {
            *cur = r;
        }
    }

    pub async fn lock_writes(&self) -> ApiResult<WriteGuard<'_>> {
        let local = self.write.lock().await;
        let db = self.store.lock_writes().await?;
        Ok(WriteGuard {
            _db: db,
            _local: local,
        })
    }

    /// Whether a report from `edge` that applied `revision` may finish operations: not
    /// when this server already settled, successfully, after a report of `edge` at that
    /// revision or a later one (a session's report, the periodic one). Only a settle that
    /// succeeded counts (see [`AppState::settled_through`]); the reports this server
    /// keeps decoded are a cache any request fills and say nothing of it.
    pub(crate) fn may_finish(&self, edge: &str, revision: u64) -> bool {
        self.settled_by_edge
            .lock()
            .map(|s| s.get(edge).is_none_or(|done| revision > *done))
            .unwrap_or(true)
    }

    /// Forgets that `edge`'s reports at `revision` were settled after: one of them now
    /// holds a failure that may pass, and the operations it holds (this edge's alone, or
    /// shared with edges that reported before) finish with a later report at the same
    /// revision.
    pub(crate) fn unsettle(&self, edge: &str, revision: u64) {
        if let Ok(mut s) = self.settled_by_edge.lock()
            && let Some(done) = s.get_mut(edge)
        {
            *done = (*done).min(revision.saturating_sub(1));
        }
    }

    /// How long operation `op` has been held by failures that may pass, counted from the
    /// first time this server held it (zero then).
    fn held_for(&self, op: &str) -> Duration {
        let now = tokio::time::Instant::now();
        let Ok(mut held) = self.held_since.lock() else {
            return Duration::ZERO;
        };
        now - *held.entry(op.to_string()).or_insert(now)
    }

    /// Forgets how long operations `ops` were held (they are finished).
    fn release<'a>(&self, ops: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut held) = self.held_since.lock() {
            for op in ops {
                held.remove(op);
            }
        }
    }

    /// Records that a settle after `edge`'s report at `revision` succeeded.
    pub(crate) fn settled_through(&self, edge: &str, revision: u64) {
        if let Ok(mut s) = self.settled_by_edge.lock() {
            let done = s.entry(edge.to_string()).or_default();
            *done = (*done).max(revision);
        }
    }

    /// Forgets the config last answered to `edge` (a deleted edge).
    pub(crate) fn forget_answer(&self, edge: &str) {
        if let Ok(mut a) = self.answered.lock() {
            a.remove(edge);
        }
    }

    /// The report this server last took from `edge` (or read of it), as decoded.
    pub(crate) fn kept_report(&self, edge: &str) -> Option<Arc<EdgeLiveState>> {
        self.reports.lock().ok()?.get(edge).cloned()
    }

    /// Keeps a report this server just stored, as decoded, under its version.
    pub(crate) fn keep_report(&self, edge: &str, report: EdgeReport, at: String, version: String) {
        let live = Arc::new(EdgeLiveState::new(report, at, version));
        if let Ok(mut k) = self.reports.lock() {
            k.insert(edge.to_string(), live);
        }
    }

    /// Every edge's last report (shared through the store by all servers).
    pub async fn live(&self) -> ApiResult<HashMap<String, Arc<EdgeLiveState>>> {
        self.live_of(None).await
    }

    /// The last reports of `edges` (of every edge when None): each is read from the store
    /// and decoded only when it changed since this server last looked.
    pub async fn live_of(
        &self,
        edges: Option<&[String]>,
    ) -> ApiResult<HashMap<String, Arc<EdgeLiveState>>> {
        let versions = self.store.edge_report_versions(edges).await?;
        let mut out = HashMap::new();
        for (edge, version) in versions {
            let kept = self
                .reports
                .lock()
                .ok()
                .and_then(|k| k.get(&edge).cloned())
                .filter(|k| k.version == version);
            let live = match kept {
                Some(k) => k,
                None => {
                    let Some((report, at, version)) = self.store.edge_report(&edge).await? else {
                        continue;
                    };
                    let l = Arc::new(EdgeLiveState::new(report, at, version));
                    if let Ok(mut k) = self.reports.lock() {
                        k.insert(edge.clone(), l.clone());
                    }
                    l
                }
            };
            out.insert(edge, live);
        }
        Ok(out)
    }

    /// Other servers on the same database commit too: follow what they do, so that edges,
    /// operation waiters and looking-glass questions here wake up for their writes. On
    /// PostgreSQL LISTEN/NOTIFY tells (`cic_revision`, `cic_settled`, `cic_question`,
    /// `cic_answer`); when the listening connection is lost, the revision is read again
    /// and every waiter looks again. SQLite has one server: nothing to follow.
    fn follow_others(self: &Arc<Self>) {
        let Some(mut rx) = self.store.notices() else {
            return;
        };
        let st = Arc::downgrade(self);
        tokio::spawn(async move {
            use cic_store::channel;
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let notice = match rx.recv().await {
                    Ok(n) => Some(n),
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                };
                let Some(st) = st.upgrade() else { return };
                let rev = match &notice {
                    // Operations finished: their waiters look again; edges are not woken.
                    Some(n) if n.channel == channel::SETTLED => {
                        st.settled.send_modify(|n| *n += 1);
                        continue;
                    }
                    Some(n) if n.channel == channel::REVISION => n.payload.parse().ok(),
                    Some(n) if !n.channel.is_empty() => {
                        st.queries.wake.notify_waiters();
                        continue;
                    }
                    // Lost or lagged: every waiter looks again.
                    _ => {
                        st.queries.wake.notify_waiters();
                        st.settled.send_modify(|n| *n += 1);
                        st.store.revision().await.ok()
                    }
                };
                if let Some(r) = rev {
                    st.revision.send_if_modified(|cur| {
                        if r > *cur {
                            *cur = r;
                            true
                        } else {
                            false
                        }
                    });
                }
            }
        });
    }

    pub fn settings(&self) -> Settings {
        Settings {
            cloud_asn: self.config.cloud_asn,
            bgp: self.config.bgp.clone(),
            peering_mtu: self.config.peering_mtu,
            public_peering_mtu: self.config.public_peering_mtu,
        }
    }

    /// What the compiler reads, all as of one revision (returned with it): a config
    /// labelled with a revision must hold every change up to it, or an operation waiting
    /// for that revision would be finished by an edge that has not seen its change.
    ///
    /// Every committed change moves the store's revision (on PostgreSQL, another server's
    /// too), so a snapshot read at the revision the store is at now is the one to give:
    /// it is read once per revision, however many edges ask.
    pub async fn snapshot(&self) -> Result<(Arc<Snapshot>, u64), cic_store::Error> {
        self.snapshots.get(&self.store).await
    }

    /// Finishes every operation whose edges have all applied its revision.
    pub async fn settle(&self) -> ApiResult<()> {
        let _w = self.lock_writes().await?;
        self.settle_locked().await
    }

    pub(crate) async fn settle_locked(&self) -> ApiResult<()> {
        let pending = self.store.pending_operations().await?;
        // Operations no longer pending (finished by another server) are forgotten.
        if let Ok(mut held) = self.held_since.lock()
            && !held.is_empty()
        {
            let ids: std::collections::HashSet<&str> =
                pending.iter().map(|(o, _)| o.id.as_str()).collect();
            held.retain(|op, _| ids.contains(op.as_str()));
        }
        self.settle_these(pending).await
    }

    /// Finishes those of `pending` whose edges have all applied their revision (a new
    /// mutation settles only its own operation: the others cannot have changed).
    pub(crate) async fn settle_these(&self, pending: Vec<(Operation, Pending)>) -> ApiResult<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut edges: Vec<String> = pending.iter().flat_map(|(_, p)| p.edges.clone()).collect();
        edges.sort();
        edges.dedup();
        let live = self.live_of(Some(&edges)).await?;
        // Every operation the reports finish, in one transaction and one revision: a
        // report that completes sixty operations is one commit, not sixty.
        let mut finished = Vec::new();
        for (mut op, p) in pending {
            let applied = p.edges.iter().all(|e| {
                live.get(e)
                    .is_some_and(|l| l.report.applied_revision >= p.revision)
            });
            if !applied {
                continue;
            }
            // Reads first: a transaction must not wait on the pool it holds a connection of.
            let finish = Finish::read(&self.store, &p).await?;
            // A routing instance fails with its connections; a trunk with its port.
            let mut concerned = vec![p.resource_id.clone()];
            if let Finish::Instance(ri, ..) = &finish {
                concerned.extend(
                    ri.cic_private_connection_info
                        .iter()
                        .map(|c| c.cic_private_connection_id.clone()),
                );
            }
            let errors: Vec<(&String, &ResourceError)> = p
                .edges
                .iter()
                .flat_map(|e| {
                    live[e]
                        .report
                        .errors
                        .iter()
                        .filter(|x| concerned.contains(&x.resource_id))
                        .map(move |x| (e, x))
                })
                .collect();
            // Failures the edge says may pass (it is applying again) are waited through:
            // the operation finishes with the edge's next word on them, a success or a
            // failure as final. One final failure among them finishes it now, and so does
            // being held for too long.
            let mut held_too_long = None;
            if p.action != Action::Delete
                && !errors.is_empty()
                && errors.iter().all(|(_, x)| x.transient)
            {
                let held_for = self.held_for(&op.id);
                if cic_model::edge::holds(errors.iter().map(|(_, x)| *x), held_for) {
                    continue;
                }
                held_too_long = Some(held_for);
            }
            let mut errors: Vec<String> = errors
                .into_iter()
                .map(|(e, x)| format!("edge {e}: {}: {}", x.resource_id, x.message))
                .collect();
            if let Some(held_for) = held_too_long {
                errors.push(format!(
                    "still failing after {} s of trying again",
                    held_for.as_secs()
                ));
            }
            op.done = true;
            op.modified_at = now();
            let failed = !errors.is_empty() && p.action != Action::Delete;
            if failed {
                op.error = Some(ApiError::new(Code::FailedPrecondition, errors.join("; ")));
            }
            finished.push((op, p, finish, failed));
        }
        if finished.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        let rev = tx.bump_revision_settling().await?;
        let mut done = Vec::with_capacity(finished.len());
        for (mut op, p, finish, failed) in finished {
            let response = finish.write(&mut tx, rev).await?;
            if !failed {
                op.response = Some(response);
            }
            tx.put_operation(&op, &p.folder_id, None).await?;
            done.push((op.id.clone(), p.resource_id.clone(), op.error.is_none()));
        }
        tx.commit().await?;
        self.release(done.iter().map(|(op, ..)| op.as_str()));
        // Operation waiters wake; edges do not (see `AppState::revision`).
        self.settled.send_modify(|n| *n += 1);
        for (op, resource, ok) in done {
            info!(operation = %op, %resource, ok, "operation done");
        }
        Ok(())
    }
}

/// How an operation's resource ends: ACTIVE (create/update) or gone (delete).
enum Finish {
    Nothing,
    Trunk(Box<TrunkConnection>, Action),
    Connection(Box<PrivateConnection>, Action),
    Public(Box<PublicConnection>, Action, Vec<FabricSlot>),
    Instance(Box<RoutingInstance>, Action, Vec<FabricSlot>),
}

impl Finish {
    async fn read(store: &Store, p: &Pending) -> ApiResult<Finish> {
        Ok(match p.kind.as_str() {
            "trunkConnection" => match store.get::<TrunkConnection>(&p.resource_id).await? {
                Some(r) => Finish::Trunk(Box::new(r), p.action),
                None => Finish::Nothing,
            },
            "privateConnection" => match store.get::<PrivateConnection>(&p.resource_id).await? {
                Some(r) => Finish::Connection(Box::new(r), p.action),
                None => Finish::Nothing,
            },
            "publicConnection" => match store.get::<PublicConnection>(&p.resource_id).await? {
                Some(r) => {
                    let mine = Finish::slots_freed(store, p).await?;
                    Finish::Public(Box::new(r), p.action, mine)
                }
                None => Finish::Nothing,
            },
            "routingInstance" => match store.get::<RoutingInstance>(&p.resource_id).await? {
                Some(r) => {
                    let mine = Finish::slots_freed(store, p).await?;
                    Finish::Instance(Box::new(r), p.action, mine)
                }
                None => Finish::Nothing,
            },
            _ => Finish::Nothing,
        })
    }

    /// The fabric slots a finished delete frees: the resource's own; none for another
    /// action (no read).
    async fn slots_freed(store: &Store, p: &Pending) -> ApiResult<Vec<FabricSlot>> {
        if p.action != Action::Delete {
            return Ok(Vec::new());
        }
        Ok(store.children::<FabricSlot>(&p.resource_id).await?)
    }

    async fn write(self, tx: &mut cic_store::Tx, rev: u64) -> ApiResult<serde_json::Value> {
        macro_rules! end {
            ($t:ty, $r:expr, $action:expr) => {{
                let mut r = $r;
                if $action == Action::Delete {
                    tx.delete::<$t>(&r.meta.id).await?;
                    serde_json::json!({})
                } else if r.meta.status == Status::Deleting {
                    // A delete came after this change: the resource stays DELETING (out
                    // of every edge's config) until that delete finishes it.
                    serde_json::to_value(&*r).unwrap_or_default()
                } else {
                    r.meta.status = Status::Active;
                    tx.put(&*r, rev).await?;
                    serde_json::to_value(&*r).unwrap_or_default()
                }
            }};
        }
        Ok(match self {
            Finish::Nothing => serde_json::json!({}),
            Finish::Trunk(r, a) => end!(TrunkConnection, r, a),
            Finish::Connection(r, a) => end!(PrivateConnection, r, a),
            Finish::Public(r, a, slots) => {
                free_slots(tx, a, slots).await?;
                end!(PublicConnection, r, a)
            }
            Finish::Instance(r, a, slots) => {
                free_slots(tx, a, slots).await?;
                end!(RoutingInstance, r, a)
            }
        })
    }
}

/// A deleted resource's fabric slots are free again.
async fn free_slots(tx: &mut cic_store::Tx, a: Action, slots: Vec<FabricSlot>) -> ApiResult<()> {
    if a == Action::Delete {
        for s in slots {
            tx.delete::<FabricSlot>(&FabricSlot::key(&s.edge_id, &s.routing_instance_id))
                .await?;
        }
    }
    Ok(())
}

/// `GET /readyz`: 200 "ready" when the store answers and holds this binary's schema
/// (migrations done); 503 UNAVAILABLE with why otherwise. `/healthz` says only that the
/// process serves.
pub async fn readyz(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
) -> ApiResult<&'static str> {
    let why = match st.store.schema_version().await {
        Ok(v) if v == cic_store::SCHEMA_VERSION => return Ok("ready"),
        Ok(v) => format!(
            "the database's schema is version {v}, this server's is {}",
            cic_store::SCHEMA_VERSION
        ),
        Err(e) => format!("the database does not answer: {e}"),
    };
    Err(ApiError::new(Code::Unavailable, why).into())
}

pub use clock::now;

/// Ids as the modelled service makes them: a 2-letter kind prefix and 18 of [a-z0-9].
pub fn new_id(prefix: &str) -> String {
    use cic_model::{ID_ALPHABET, ID_TAIL};
    let mut rng = rand::rng();
    let tail: String = (0..ID_TAIL)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

#[cfg(test)]
mod id_tests {
    /// The edge takes a namespace for its own only when its name is its prefix and such
    /// an id ([`cic_model::is_made_id`]): every kind it makes instances of has one.
    #[test]
    fn the_ids_of_what_edges_run_have_the_shape_they_look_for() {
        for kind in ["pc", "ri", "pu", "tc"] {
            let id = super::new_id(kind);
            assert!(cic_model::is_made_id(&id), "{id}");
        }
    }
}

pub fn new_operation(description: &str, created_by: &str, resource_id: &str) -> Operation {
    let t = now();
    Operation {
        id: new_id("op"),
        description: description.to_string(),
        created_at: t.clone(),
        created_by: created_by.to_string(),
        modified_at: t,
        done: false,
        metadata: serde_json::json!({ "resourceId": resource_id }),
        error: None,
        response: None,
    }
}

/// The API, and beside it the console (`/console/`), which calls the API in process.
pub fn app(state: Arc<AppState>) -> Router {
    let api = api_app(state.clone());
    console::router(state, api.clone())
        .fallback_service(api)
        .layer(axum::middleware::from_fn(headers::layer))
}

/// The API's router with its layers, but for the response headers (added once, for the
/// console too, by [`app`]).
fn api_app(state: Arc<AppState>) -> Router {
    api::router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api::idempotency::layer,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(error::MAX_BODY))
        .layer(axum::middleware::from_fn(error::shape))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            audit::layer,
        ))
        .with_state(state)
}

/// Makes sure an admin token exists: `CIC_ADMIN_TOKEN` when set, else a new one, printed
/// once. Returns the token if one was generated.
pub async fn bootstrap_admin(
    store: &Store,
    from_env: Option<String>,
) -> Result<Option<String>, cic_store::Error> {
    match from_env {
        Some(t) => {
            let mut tx = store.begin().await?;
            tx.put_token(&auth::hash(&t), "admin", "bootstrap").await?;
            tx.commit().await?;
            Ok(None)
        }
        None if store.has_role("admin").await? => Ok(None),
        None => {
            let t = auth::new_token("cic-admin-");
            let mut tx = store.begin().await?;
            tx.put_token(&auth::hash(&t), "admin", "bootstrap").await?;
            tx.commit().await?;
            Ok(Some(t))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("open database {0}: {1}")]
    Store(String, cic_store::Error),
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error("serve: {0}")]
    Io(std::io::Error),
}

/// Runs the server until `shutdown` resolves. With TLS, SIGHUP reads the certificate,
/// key and client CA again (connections already open keep theirs).
/// What SIGHUP calls to read the settings again (the config file and flags, in the
/// binary); an error leaves those in force.
pub type OnReload = Box<dyn Fn() -> Result<Reloadable, String> + Send + Sync>;

pub async fn serve(
    opts: listen::ListenOptions,
    database: &str,
    secrets: cic_store::Sealer,
    config: ServerConfig,
    admin_token: Option<String>,
    on_reload: Option<OnReload>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // The socket's options are checked before anything is written to the database.
    let (listener, acceptor) = listen::bind(&opts).await?;
    let store = Store::open(database)
        .await
        .map_err(|e| ServeError::Store(database.into(), e))?
        .with_sealer(secrets);
    // Secrets written in clear (before sealing) or under an older key are sealed under
    // this one; a secret this server cannot open stops it here, not at a customer's GET.
    let resealed = store
        .reseal()
        .await
        .map_err(|e| ServeError::Store(database.into(), e))?;
    if resealed > 0 {
        info!(
            "sealed the secrets of {resealed} stored documents under key {}",
            store.sealing().0.as_ref().map(|s| s.key_id()).unwrap_or("")
        );
    }
    if let Some(t) = bootstrap_admin(&store, admin_token)
        .await
        .map_err(|e| ServeError::Store(database.into(), e))?
    {
        println!("Admin token (shown once, stored only as a hash): {t}");
    }
    let state = AppState::new(store, config)
        .await
        .map_err(|e| ServeError::Store(database.into(), e))?;
    let bound = listener.local_addr().map_err(ServeError::Io)?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    info!("cic server listening on {scheme}://{bound}, database {database}");
    if let Some(a) = &acceptor
        && let Ok(mut t) = state.tls_not_after.lock()
    {
        *t = Some(a.not_after());
    }
    reload_on_sighup(acceptor.clone(), on_reload, state.clone());
    listen::serve(listener, acceptor, &opts, app(state), shutdown)
        .await
        .map_err(ServeError::Io)
}

/// SIGHUP: the TLS files, and the settings `on_reload` reads again (limits, audit
/// retention; the binary also sets the log level there). What fails to load leaves what
/// was in force.
fn reload_on_sighup(
    acceptor: Option<listen::Acceptor>,
    on_reload: Option<OnReload>,
    state: Arc<AppState>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot watch SIGHUP: nothing will be reloaded");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Some(a) = &acceptor {
                match a.reload() {
                    Ok(()) => info!("SIGHUP: TLS certificate, key and client CA reloaded"),
                    Err(e) => {
                        tracing::error!("SIGHUP: TLS files not reloaded, the old ones stay: {e}")
                    }
                }
            }
            if let Some(f) = &on_reload {
                match f() {
                    Ok(r) => {
                        info!(
                            "SIGHUP: config reloaded: rate limit {}/s, burst {}, long-polls {}, audit kept {} days",
                            r.limits.rate,
                            r.limits.burst,
                            r.limits.long_polls,
                            r.audit_retention.as_secs() / 86_400
                        );
                        state.reload(r);
                    }
                    Err(e) => {
                        tracing::error!("SIGHUP: config not reloaded, the old one stays: {e}")
                    }
                }
            }
        }
    });
}
