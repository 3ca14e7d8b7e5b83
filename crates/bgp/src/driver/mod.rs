//! The tokio driver: the only part of the BGP crate that does I/O.
//!
//! ```text
//!                     commands (bounded)            ┌───────────────────────┐
//!   caller ──────────────────────────────────────▶  │ instance task         │
//!   (cic edge)  ◀── watch: status, kernel routes ── │  Instance (sans-IO)   │
//!                                                   │  TcpListener :179     │
//!                                                   └─┬───────────────▲───┬─┘
//!            SessionCmd (bounded, try_send)           │               │   │ Chunk of UPDATEs,
//!            Stop / Incoming / Control                ▼               │   │ within the peer's
//!                                             ┌───────────────────┐   │   │ window (never full)
//!                             PeerEvent ◀──── │ session task      │   │   ▼
//!                        (bounded, awaited:   │ FSM, reader,      │ ┌─┴────────────────┐
//!                         TCP backpressure)   │ timers            ├▶│ writer task      │──▶ TCP
//!                                             └───────────────────┘ │ (send hold timer)│
//!                                                   Ctl (OPEN,       └──────────────────┘
//!                                                   KEEPALIVE, close)   room: chunk written
//! ```
//!
//! The instance task never awaits a session or a writer. What a peer is to be sent is
//! state in the instance (its outbox: an entry per prefix, see `instance::export`); the
//! instance hands the peer's writer a chunk of encoded UPDATEs only while the octets in
//! flight are under the window, and the writer says when it has written one. So nothing
//! is dropped, a slow peer costs memory per prefix and holds up no one, and the advertised
//! count is what reached the socket. Sessions await the instance, which pushes back on the
//! peer's TCP stream. Kernel routes leave as a level (`watch` of the whole desired table),
//! so a slow consumer coalesces bursts and never misses a change.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, warn};

use crate::fsm::{Negotiated, SessionConfig, State};
use crate::instance::{
    Action, Batch, Event, FEED_STEP, Instance, InstanceParams, PeerSpec, PeerStats, RouteSet,
};
use crate::policy::NeighborPolicy;
use crate::rib::{Path, PeerId};
use crate::wire::{
    self, Afi, Message, Notification, PathAttrs, Update, cease, encode_updates_within,
};

mod rtr;
mod session;
mod writer;

pub use rtr::{CacheSpec, start as start_rpki};

use session::SessionTask;
use writer::{CHUNK, Chunk, WINDOW, Wire};

/// Chunks handed to a peer's writer in one turn of the instance task, at most (a few
/// milliseconds of encoding: the task answers everything else between turns).
const PUMP_CHUNKS: usize = 4;

pub use session::default_send_hold;

pub const BGP_PORT: u16 = 179;
/// Commands for a session (stop, an incoming connection, …): a few at a time.
const SESSION_QUEUE: usize = 64;
/// Events from the sessions waiting for the instance. Kept short: an event holds up to
/// [`MAX_BATCH`] decoded UPDATEs, and a long queue let a fast feed decode its whole table
/// ahead of the instance (a million prefixes held twice at the peak); a session whose
/// event does not fit waits, and so does its peer's TCP stream.
const EVENT_QUEUE: usize = 64;
const COMMAND_QUEUE: usize = 64;
/// The status watch is refreshed at most this often (and always within this long).
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// After our restart, the longest we wait for the peers' End-of-RIBs before selecting
/// routes and sending our own (RFC 4724 §4.1 Selection_Deferral_Timer). Forwarding goes
/// on meanwhile on the kernel routes kept from before the restart.
pub const SELECTION_DEFERRAL: Duration = Duration::from_secs(60);

/// Makes an unbound TCP socket of the given family (IPv4 or IPv6) in the right place (for
/// cic edge: inside the routing instance's network namespace). The driver binds, keys
/// (TCP-MD5), connects, listens.
pub type SocketFactory = Arc<dyn Fn(socket2::Domain) -> io::Result<socket2::Socket> + Send + Sync>;

pub fn plain_sockets() -> SocketFactory {
    Arc::new(|domain| {
        socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
    })
}

/// Desired kernel routes of an instance: prefix → ECMP next hops.
pub type KernelRoutes = BTreeMap<IpNet, Vec<IpAddr>>;

/// The kernel table as the instance publishes it, numbered: a caller that programs it
/// acknowledges each `generation` it has put in the kernel (see
/// [`InstanceHandle::kernel_acks`]). Reads as the table itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelTable {
    pub generation: u64,
    pub routes: KernelRoutes,
}

impl std::ops::Deref for KernelTable {
    type Target = KernelRoutes;
    fn deref(&self) -> &KernelRoutes {
        &self.routes
    }
}

/// How long announcements wait for the kernel's acknowledgement at most, as the edge asks
/// (a route programmer that is stuck or failing must not silence the speaker).
pub const KERNEL_ACK_WAIT: Duration = Duration::from_secs(3);

#[derive(Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub spec: PeerSpec,
    pub session: SessionConfig,
    pub md5_key: Option<String>,
    /// GTSM (RFC 5082) for a directly connected peer: we send with TTL 255 and the kernel
    /// drops the peer's packets that arrive with less than 255 (a spoofer farther away).
    pub ttl_security: bool,
    /// The peer's TCP port (179 but for tests).
    pub port: u16,
    /// RFC 9687's send hold time (None: the greater of 8 minutes and twice the hold
    /// time; zero: off).
    pub send_hold_time: Option<Duration>,
}

/// The MD5 key never reaches a log line.
impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("spec", &self.spec)
            .field("session", &self.session)
            .field("md5_key", &self.md5_key.as_ref().map(|_| "********"))
            .field("ttl_security", &self.ttl_security)
            .field("port", &self.port)
            .field("send_hold_time", &self.send_hold_time)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub id: PeerId,
    pub spec: PeerSpec,
    pub state: State,
    pub established_at: Option<std::time::Instant>,
    /// Until when the session is held idle after a teardown (max-prefix).
    pub held_until: Option<std::time::Instant>,
    pub last_error: Option<String>,
    /// What stands in the way of the session now, as a fact (see `Session::last_failure`).
    pub last_failure: Option<crate::fsm::SessionFailure>,
    pub stats: PeerStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceStatus {
    pub peers: Vec<PeerStatus>,
    /// Why the listener is not running, if it is not.
    pub listen_error: Option<String>,
}

/// A route as the looking glass shows it: prefix, attributes, why it was refused.
pub type LookingGlassRoute = (IpNet, Arc<PathAttrs>, Option<String>);

enum Command {
    AddPeer(Box<PeerConfig>, oneshot::Sender<PeerId>),
    RemovePeer(PeerId, oneshot::Sender<Option<tokio::task::JoinHandle<()>>>),
    SetVpcPrefixes(Vec<IpNet>, oneshot::Sender<()>),
    SetVrps(Option<Arc<crate::rpki::Vrps>>, oneshot::Sender<()>),
    SetAnnounce(Vec<IpNet>, oneshot::Sender<()>),
    SetPolicy(PeerId, Option<Arc<NeighborPolicy>>, oneshot::Sender<()>),
    KernelAcks(watch::Receiver<u64>, Duration),
    Routes(PeerId, RouteSet, oneshot::Sender<Vec<LookingGlassRoute>>),
    SetGracefulShutdown(bool, oneshot::Sender<()>),
    SetStaticRoutes(PeerId, Vec<IpNet>, oneshot::Sender<Vec<(IpNet, String)>>),
    PeerDown(PeerId, String, oneshot::Sender<()>),
    SetDamping(PeerId, Option<Duration>, oneshot::Sender<()>),
    PathUp(PeerId),
    PeersAdded,
    BestRoutes(oneshot::Sender<Vec<(IpNet, Path)>>),
    RibSize(oneshot::Sender<usize>),
    Shutdown(Notification, oneshot::Sender<()>),
    Abort(oneshot::Sender<()>),
}

/// Timers of the instance task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceTimer {
    SelectionDeferral,
    Stale { peer: PeerId, generation: u64 },
}

enum SessionCmd {
    /// A message for the peer outside the UPDATE stream (a ROUTE-REFRESH request).
    Control(BytesMut),
    Stop {
        notification: Notification,
        restart_after: Option<Duration>,
    },
    Incoming(TcpStream),
    PathUp,
    /// Its BFD session went Down: see [`crate::fsm::Input::PathDown`].
    PathDown(String),
    SetDamping(Option<Duration>),
    /// Our restart is over: OPENs no longer carry the R and F bits.
    RestartDone,
    Exit(Notification),
}

impl PeerEvent {
    fn name(&self) -> &'static str {
        match self {
            PeerEvent::State { .. } => "state",
            PeerEvent::Up { .. } => "up",
            PeerEvent::Down { .. } => "down",
            PeerEvent::Updates { .. } => "updates",
            PeerEvent::RouteRefresh { .. } => "route-refresh",
        }
    }
}

enum PeerEvent {
    State {
        state: State,
        last_error: Option<String>,
        last_failure: Option<crate::fsm::SessionFailure>,
    },
    Up {
        epoch: u64,
        negotiated: Negotiated,
        /// Our end of the connection.
        local: Option<IpAddr>,
        /// Where the connection's UPDATEs go.
        wire: Wire,
    },
    Down {
        epoch: u64,
        graceful: bool,
    },
    /// UPDATEs in the order received (those decoded from one read, batched: one wakeup
    /// of the instance task rather than one each).
    Updates {
        epoch: u64,
        updates: Vec<Update>,
    },
    RouteRefresh {
        epoch: u64,
        afi: Afi,
        subtype: u8,
    },
}

/// A running routing instance. Dropping every clone without [`InstanceHandle::shutdown`]
/// stops the task when the command channel closes.
#[derive(Clone)]
pub struct InstanceHandle {
    cmd: mpsc::Sender<Command>,
    status: watch::Receiver<InstanceStatus>,
    routes: watch::Receiver<Arc<KernelTable>>,
}

impl InstanceHandle {
    /// Sends the instance task a command that answers on `tx`, and waits for the answer.
    async fn ask<R>(&self, command: impl FnOnce(oneshot::Sender<R>) -> Command) -> io::Result<R> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(command(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    pub async fn add_peer(&self, cfg: PeerConfig) -> io::Result<PeerId> {
        self.ask(|tx| Command::AddPeer(Box::new(cfg), tx)).await
    }

    /// Removes a peer: its session sends Cease / Peer De-configured and ends. Returns
    /// once the session has ended (at most 2 s), so what follows (a BFD AdminDown, a new
    /// session elsewhere) reaches the peer after the Cease.
    pub async fn remove_peer(&self, id: PeerId) -> io::Result<()> {
        if let Some(task) = self.ask(|tx| Command::RemovePeer(id, tx)).await? {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
        Ok(())
    }

    /// The path to a peer is back (its BFD session came Up): a session backing off after
    /// a failure connects now.
    pub async fn path_up(&self, id: PeerId) -> io::Result<()> {
        self.cmd.send(Command::PathUp(id)).await.map_err(|_| gone())
    }

    /// Every peer the instance has is added. A restarting instance waits for this and
    /// for each peer's End-of-RIB before it selects and sends routes (a peer added later
    /// is not waited for); without a restart it changes nothing.
    pub async fn peers_added(&self) -> io::Result<()> {
        self.cmd.send(Command::PeersAdded).await.map_err(|_| gone())
    }

    pub async fn set_vpc_prefixes(&self, p: Vec<IpNet>) -> io::Result<()> {
        self.ask(|tx| Command::SetVpcPrefixes(p, tx)).await
    }

    /// The RPKI data in force (see [`Instance::set_vrps`]).
    pub async fn set_vrps(&self, v: Option<Arc<crate::rpki::Vrps>>) -> io::Result<()> {
        self.ask(|tx| Command::SetVrps(v, tx)).await
    }

    /// Our own prefixes, anew (see [`Instance::set_announce`]).
    pub async fn set_announce(&self, p: Vec<IpNet>) -> io::Result<()> {
        self.ask(|tx| Command::SetAnnounce(p, tx)).await
    }

    /// Replaces a peer's policy without restarting its session (see
    /// [`Instance::set_policy`]).
    pub async fn set_policy(
        &self,
        id: PeerId,
        policy: Option<Arc<NeighborPolicy>>,
    ) -> io::Result<()> {
        self.ask(|tx| Command::SetPolicy(id, policy, tx)).await
    }

    /// Starts or ends a maintenance drain (RFC 8326 GRACEFUL_SHUTDOWN on every route).
    pub async fn set_graceful_shutdown(&self, on: bool) -> io::Result<()> {
        self.ask(|tx| Command::SetGracefulShutdown(on, tx)).await
    }

    /// A peer's routes for the looking glass.
    pub async fn looking_glass(
        &self,
        peer: PeerId,
        which: RouteSet,
    ) -> io::Result<Vec<LookingGlassRoute>> {
        self.ask(|tx| Command::Routes(peer, which, tx)).await
    }

    /// Sets a customer peer's static routes; returns the ones refused, with the reason.
    pub async fn set_static_routes(
        &self,
        peer: PeerId,
        p: Vec<IpNet>,
    ) -> io::Result<Vec<(IpNet, String)>> {
        self.ask(|tx| Command::SetStaticRoutes(peer, p, tx)).await
    }

    /// The path to a peer has failed (its BFD session went down): the session ends at
    /// once with Cease / BFD Down (RFC 9384) and reconnects a second later, or after its
    /// damped wait when it keeps flapping (see [`crate::fsm`]).
    pub async fn peer_down(&self, peer: PeerId, reason: String) -> io::Result<()> {
        self.ask(|tx| Command::PeerDown(peer, reason, tx)).await
    }

    /// A new longest damped wait for a running session (`None`: off), taken without
    /// restarting it; a hold under way keeps its length.
    pub async fn set_damping(&self, peer: PeerId, damping: Option<Duration>) -> io::Result<()> {
        self.ask(|tx| Command::SetDamping(peer, damping, tx)).await
    }

    /// Ends the instance the way a crash does: every connection closes without a
    /// NOTIFICATION (the kernel sends the FIN), so peers with graceful restart keep our
    /// routes. What `kill -9` of `cic edge` does, for tests in one process.
    pub async fn abort(&self) {
        let _ = self.ask(Command::Abort).await;
    }

    /// The best path of every prefix in the Loc-RIB, in prefix order.
    pub async fn best_routes(&self) -> io::Result<Vec<(IpNet, Path)>> {
        self.ask(Command::BestRoutes).await
    }

    /// The number of prefixes in the Loc-RIB.
    pub async fn rib_size(&self) -> io::Result<usize> {
        self.ask(Command::RibSize).await
    }

    /// Stops every session with Cease / Peer De-configured and ends the task.
    pub async fn shutdown(&self) {
        self.shutdown_with(Notification::new(
            wire::error_code::CEASE,
            cease::PEER_DECONFIGURED,
        ))
        .await
    }

    /// Stops every session with `notification` (e.g. [`crate::fsm::admin_shutdown`], an
    /// RFC 9003 shutdown communication) and ends the task.
    pub async fn shutdown_with(&self, notification: Notification) {
        let _ = self.ask(|tx| Command::Shutdown(notification, tx)).await;
    }

    pub fn status(&self) -> watch::Receiver<InstanceStatus> {
        self.status.clone()
    }

    pub fn routes(&self) -> watch::Receiver<Arc<KernelTable>> {
        self.routes.clone()
    }

    /// From now on, what peers are sent after a change of kernel routes waits until the
    /// caller acknowledges (on the returned sender) the [`KernelTable::generation`] that
    /// has the change in the kernel — a route is announced once traffic to it can be
    /// forwarded ("advertise after FIB install"); at most `wait` (the edge:
    /// [`KERNEL_ACK_WAIT`]).
    pub async fn kernel_acks(&self, wait: Duration) -> io::Result<watch::Sender<u64>> {
        let (tx, rx) = watch::channel(0);
        self.cmd
            .send(Command::KernelAcks(rx, wait))
            .await
            .map_err(|_| gone())?;
        Ok(tx)
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "BGP instance task has stopped")
}

/// Starts a routing instance; it accepts connections from its peers on each address of
/// `listen` (none: it only connects).
pub fn spawn_instance(
    params: InstanceParams,
    sockets: SocketFactory,
    listen: &[SocketAddr],
) -> InstanceHandle {
    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (routes_tx, routes_rx) = watch::channel(Arc::new(KernelTable::default()));
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let mut errors = Vec::new();
    let mut listeners = Vec::new();
    for a in listen {
        match bind_listener(&sockets, *a) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                warn!("BGP listener: {e}");
                errors.push(e.to_string());
            }
        }
    }
    let listen_error = (!errors.is_empty()).then(|| errors.join("; "));
    // The first status already says whether the listeners are up.
    let (status_tx, status_rx) = watch::channel(InstanceStatus {
        peers: vec![],
        listen_error: listen_error.clone(),
    });
    let mut timers = BTreeMap::new();
    if params.restarting {
        info!(
            "restarted with forwarding kept: routes are selected once every peer has sent End-of-RIB, or in {SELECTION_DEFERRAL:?}"
        );
        timers.insert(
            (Instant::now() + SELECTION_DEFERRAL, 0),
            InstanceTimer::SelectionDeferral,
        );
    }
    let task = InstanceTask {
        core: Instance::new(params),
        sockets,
        sessions: HashMap::new(),
        ev_tx,
        status_tx,
        routes_tx,
        listen_error,
        timers,
        timer_seq: 1,
        peers_added: false,
        routes_generation: 0,
        kernel_acks: None,
        kernel_ack_wait: KERNEL_ACK_WAIT,
        room: Arc::new(Notify::new()),
    };
    tokio::spawn(task.run(cmd_rx, ev_rx, listeners));
    InstanceHandle {
        cmd: cmd_tx,
        status: status_rx,
        routes: routes_rx,
    }
}

/// Whether `l` listens on an address of `peer`'s family.
fn same_family(l: &TcpListener, peer: &SocketAddr) -> bool {
    l.local_addr().is_ok_and(|a| a.is_ipv4() == peer.is_ipv4())
}

fn bind_listener(sockets: &SocketFactory, addr: SocketAddr) -> io::Result<TcpListener> {
    let s = sockets(socket2::Domain::for_address(addr))?;
    if addr.is_ipv6() {
        // IPv4 peers come to an IPv4 listener of their own, never as mapped addresses.
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

struct SessionEntry {
    task: tokio::task::JoinHandle<()>,
    cmd: mpsc::Sender<SessionCmd>,
    config: PeerConfig,
    state: State,
    epoch: u64,
    established_at: Option<std::time::Instant>,
    last_error: Option<String>,
    last_failure: Option<crate::fsm::SessionFailure>,
    /// Until when a teardown (max-prefix) keeps the session idle.
    held_until: Option<std::time::Instant>,
    /// The writer of the established connection.
    wire: Option<Wire>,
    /// What the peer is to be sent waits for the kernel to have this generation of the
    /// table (since then): a route is announced once it forwards.
    gate: Option<(u64, Instant)>,
}

struct InstanceTask {
    core: Instance,
    sockets: SocketFactory,
    sessions: HashMap<PeerId, SessionEntry>,
    ev_tx: mpsc::Sender<(PeerId, PeerEvent)>,
    status_tx: watch::Sender<InstanceStatus>,
    routes_tx: watch::Sender<Arc<KernelTable>>,
    listen_error: Option<String>,
    /// The generation of the last kernel table published.
    routes_generation: u64,
    /// The route programmer's acknowledgements, once it asked for them, and how long
    /// announcements wait for them at most.
    kernel_acks: Option<watch::Receiver<u64>>,
    kernel_ack_wait: Duration,
    /// Writers say here that they wrote a chunk: the peers with more get the next.
    room: Arc<Notify>,
    /// Due time (and a sequence number, for equal times) → timer.
    timers: BTreeMap<(Instant, u64), InstanceTimer>,
    timer_seq: u64,
    /// The caller has added every peer (see [`InstanceHandle::peers_added`]).
    peers_added: bool,
}

impl InstanceTask {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut ev_rx: mpsc::Receiver<(PeerId, PeerEvent)>,
        listeners: Vec<TcpListener>,
    ) {
        let mut last_publish = Instant::now() - PUBLISH_EVERY;
        let mut publish_due: Option<Instant> = None;
        let room = self.room.clone();
        loop {
            let gate_due = self.gate_due();
            let feeding = self.core.feeding();
            tokio::select! {
                biased;
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::AddPeer(cfg, reply)) => {
                        let id = self.add_peer(*cfg, &listeners);
                        let _ = reply.send(id);
                    }
                    Some(Command::RemovePeer(id, reply)) => {
                        let task = self.remove_peer(id, &listeners);
                        let _ = reply.send(task);
                    }
                    Some(Command::PathUp(id)) => {
                        if let Some(s) = self.sessions.get(&id) {
                            let _ = s.cmd.try_send(SessionCmd::PathUp);
                        }
                    }
                    Some(Command::PeersAdded) => {
                        self.peers_added = true;
                        self.maybe_end_restart(false);
                    }
                    Some(Command::SetVpcPrefixes(p, reply)) => {
                        let actions = self.core.set_vpc_prefixes(p);
                        self.act(actions);
                        let _ = reply.send(());
                    }
                    Some(Command::SetVrps(v, reply)) => {
                        let actions = self.core.set_vrps(v);
                        self.act(actions);
                        let _ = reply.send(());
                    }
                    Some(Command::SetAnnounce(p, reply)) => {
                        let actions = self.core.set_announce(p);
                        self.act(actions);
                        let _ = reply.send(());
                    }
                    Some(Command::SetPolicy(id, policy, reply)) => {
                        if let Some(s) = self.sessions.get_mut(&id) {
                            s.config.spec.policy = policy.clone();
                        }
                        let actions = self.core.set_policy(id, policy);
                        self.act(actions);
                        let _ = reply.send(());
                    }
                    Some(Command::KernelAcks(rx, wait)) => {
                        self.kernel_acks = Some(rx);
                        self.kernel_ack_wait = wait;
                    }
                    Some(Command::SetGracefulShutdown(on, reply)) => {
                        let actions = self.core.set_graceful_shutdown(on);
                        self.act(actions);
                        let _ = reply.send(());
                    }
                    Some(Command::Routes(peer, which, reply)) => {
                        let _ = reply.send(self.core.routes(peer, which));
                    }
                    Some(Command::BestRoutes(reply)) => {
                        let _ = reply.send(
                            self.core.best_routes().map(|(n, p)| (n, p.clone())).collect(),
                        );
                    }
                    Some(Command::RibSize(reply)) => {
                        let _ = reply.send(self.core.rib_len());
                    }
                    Some(Command::SetStaticRoutes(peer, p, reply)) => {
                        let actions = self.core.set_static_routes(peer, &p);
                        self.act(actions);
                        let _ = reply.send(self.core.rejected_statics(peer));
                    }
                    Some(Command::PeerDown(peer, reason, reply)) => {
                        self.peer_down(peer, reason);
                        let _ = reply.send(());
                    }
                    Some(Command::SetDamping(peer, damping, reply)) => {
                        if let Some(s) = self.sessions.get_mut(&peer) {
                            s.config.session.damping = damping;
                            let _ = s.cmd.try_send(SessionCmd::SetDamping(damping));
                        }
                        let _ = reply.send(());
                    }
                    Some(Command::Abort(reply)) => {
                        for (_, s) in self.sessions.drain() {
                            s.task.abort();
                            let _ = s.task.await;
                        }
                        let _ = reply.send(());
                        return;
                    }
                    Some(Command::Shutdown(notification, reply)) => {
                        self.exit_all(notification).await;
                        let _ = reply.send(());
                        return;
                    }
                    None => {
                        self.exit_all(Notification::new(
                            wire::error_code::CEASE,
                            cease::PEER_DECONFIGURED,
                        ))
                        .await;
                        return;
                    }
                },
                Some((peer, ev)) = ev_rx.recv() => {
                    self.peer_event(peer, ev);
                    self.maybe_end_restart(false);
                }
                Ok(()) = acked(&mut self.kernel_acks) => self.pump_all(),
                _ = sleep_until(gate_due) => self.pump_all(),
                // A writer wrote a chunk: the next for whoever has one.
                _ = room.notified() => self.pump_all(),
                Ok((stream, from)) = accept(&listeners) => self.incoming(stream, from),
                _ = sleep_until(self.timers.keys().next().map(|k| k.0)) => {
                    if let Some((_, t)) = self.timers.pop_first() {
                        self.timer(t);
                    }
                }
                _ = sleep_until(publish_due) => {}
                // Nothing else to do: a step of the full tables being sent (a few
                // milliseconds, so the instance answers everything else between steps).
                _ = std::future::ready(()), if feeding => {
                    for peer in self.core.step_feeds(FEED_STEP) {
                        self.pump(peer);
                    }
                    // A branch that is always ready never lets the task go: the other
                    // tasks of this thread (the control socket's, a session's) get theirs.
                    tokio::task::yield_now().await;
                }
            }
            // Status at most every PUBLISH_EVERY: building it walks every peer, and a
            // full table arrives in tens of thousands of events.
            let now = Instant::now();
            if now >= last_publish + PUBLISH_EVERY {
                self.publish();
                last_publish = now;
                publish_due = None;
            } else {
                publish_due = Some(last_publish + PUBLISH_EVERY);
            }
        }
    }

    fn timer(&mut self, t: InstanceTimer) {
        match t {
            InstanceTimer::SelectionDeferral => self.maybe_end_restart(true),
            InstanceTimer::Stale { peer, generation } => {
                let actions = self.core.handle(Event::StaleTimer { peer, generation });
                if let Some(s) = self.sessions.get(&peer)
                    && !actions.is_empty()
                {
                    info!(peer = %s.config.spec.address, "stale routes of a restarting peer dropped: no End-of-RIB in time");
                }
                self.act(actions);
            }
        }
    }

    /// After our restart: once every peer has sent its End-of-RIB (a peer held down by
    /// a teardown is not waited for), or when the deferral timer runs out (`now`),
    /// select and send routes, and hand the kernel table over.
    fn maybe_end_restart(&mut self, now: bool) {
        if !self.core.deferring() {
            return;
        }
        let t = std::time::Instant::now();
        let waiting: Vec<PeerId> = self
            .core
            .awaiting_end_of_rib()
            .into_iter()
            .filter(|p| {
                self.sessions
                    .get(p)
                    .is_some_and(|s| s.held_until.is_none_or(|h| h <= t))
            })
            .collect();
        if !(now || self.peers_added && waiting.is_empty()) {
            return;
        }
        if now {
            warn!(
                waiting = waiting.len(),
                "selection deferral ran out: selecting routes without every End-of-RIB"
            );
        } else {
            info!("every peer sent End-of-RIB: selecting and sending routes");
        }
        self.timers
            .retain(|_, t| *t != InstanceTimer::SelectionDeferral);
        let actions = self.core.end_restart();
        self.act(actions);
        for s in self.sessions.values() {
            let _ = s.cmd.try_send(SessionCmd::RestartDone);
        }
        self.publish_routes();
    }

    fn add_peer(&mut self, mut cfg: PeerConfig, listeners: &[TcpListener]) -> PeerId {
        if let Some(g) = &mut cfg.session.graceful_restart {
            g.restarting = self.core.deferring();
        }
        let id = self.core.add_peer(cfg.spec.clone());
        if let Some(key) = &cfg.md5_key {
            let peer = SocketAddr::new(cfg.spec.address, 0);
            // (A peer calls on a listener of its own family.)
            for l in listeners.iter().filter(|l| same_family(l, &peer)) {
                if let Err(e) = cic_sockopt::set_tcp_md5sig(l.as_fd(), peer, key.as_bytes()) {
                    warn!(peer = %cfg.spec.address, "TCP-MD5 key on listener: {e}");
                }
            }
        }
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        let task = SessionTask::new(
            id,
            cfg.clone(),
            self.sockets.clone(),
            self.ev_tx.clone(),
            self.room.clone(),
        );
        let span = tracing::info_span!("bgp", peer = %cfg.spec.address, session = %cfg.spec.name);
        let task = tokio::spawn(task.run(rx).instrument(span));
        self.sessions.insert(
            id,
            SessionEntry {
                task,
                cmd: tx,
                config: cfg,
                state: State::Idle,
                epoch: 0,
                established_at: None,
                last_error: None,
                last_failure: None,
                held_until: None,
                wire: None,
                gate: None,
            },
        );
        id
    }

    fn peer_down(&mut self, id: PeerId, reason: String) {
        let Some(s) = self.sessions.get_mut(&id) else {
            return;
        };
        if s.state == State::Idle {
            return;
        }
        info!(peer = %s.config.spec.address, "session down: {reason}");
        s.last_error = Some(reason.clone());
        let _ = s.cmd.try_send(SessionCmd::PathDown(reason));
    }

    /// Tells the session to end; returns its task, which ends once the Cease is sent.
    fn remove_peer(
        &mut self,
        id: PeerId,
        listeners: &[TcpListener],
    ) -> Option<tokio::task::JoinHandle<()>> {
        let task = self.sessions.remove(&id).map(|s| {
            let _ = s.cmd.try_send(SessionCmd::Exit(Notification::new(
                wire::error_code::CEASE,
                cease::PEER_DECONFIGURED,
            )));
            if s.config.md5_key.is_some() {
                let peer = SocketAddr::new(s.config.spec.address, 0);
                for l in listeners.iter().filter(|l| same_family(l, &peer)) {
                    let _ = cic_sockopt::set_tcp_md5sig(l.as_fd(), peer, b"");
                }
            }
            s.task
        });
        let actions = self.core.remove_peer(id);
        self.act(actions);
        task
    }

    /// Ends every session and waits (at most 2 s) until each has sent its Cease.
    async fn exit_all(&mut self, notification: Notification) {
        let mut tasks = Vec::new();
        for (_, s) in self.sessions.drain() {
            let _ = s.cmd.send(SessionCmd::Exit(notification.clone())).await;
            tasks.push(s.task);
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), futures_join(tasks)).await;
    }

    fn peer_event(&mut self, peer: PeerId, ev: PeerEvent) {
        let Some(s) = self.sessions.get_mut(&peer) else {
            return;
        };
        tracing::trace!(peer, "event {}", ev.name());
        let actions = match ev {
            PeerEvent::State {
                state,
                last_error,
                last_failure,
            } => {
                s.state = state;
                s.last_error = last_error;
                s.last_failure = last_failure;
                return;
            }
            PeerEvent::Up {
                epoch,
                negotiated,
                local,
                wire,
            } => {
                s.epoch = epoch;
                s.wire = Some(wire);
                s.gate = None;
                s.established_at = Some(std::time::Instant::now());
                s.held_until = None;
                // Configured without an address of ours: the next hop we announce is
                // whichever address the connection came to or from.
                if let (true, Some(local)) = (s.config.spec.local_address.is_unspecified(), local) {
                    self.core.set_local_address(peer, local);
                }
                self.core.handle(Event::PeerUp { peer, negotiated })
            }
            PeerEvent::Down { epoch, graceful } if epoch == s.epoch => {
                s.established_at = None;
                s.wire = None;
                s.gate = None;
                if graceful {
                    info!(peer = %s.config.spec.address, "peer restarting: its routes are kept, stale, until it is back");
                }
                self.core.handle(Event::PeerDown { peer, graceful })
            }
            PeerEvent::Updates { epoch, updates } if epoch == s.epoch => {
                let mut actions = Vec::new();
                for update in updates {
                    actions.extend(self.core.handle(Event::Update { peer, update }));
                }
                actions
            }
            PeerEvent::RouteRefresh {
                epoch,
                afi,
                subtype,
            } if epoch == s.epoch => self.core.handle(Event::RouteRefresh { peer, afi, subtype }),
            _ => return, // from an earlier life of the session
        };
        self.act(actions);
    }

    fn act(&mut self, actions: Vec<Action>) {
        // Kernel routes first: the route programmer is told before any peer is sent the
        // change, so a route we announce (to the fabric, say) is in the kernel as early
        // as can be — a peer that moves traffic to us at once finds it there.
        // While deferring after a restart, the kernel keeps what it has.
        if actions.iter().any(|a| matches!(a, Action::Route(_))) && !self.core.deferring() {
            self.publish_routes();
        }
        let mut ready = Vec::new();
        for a in actions {
            match a {
                Action::Output { peer } => {
                    // After a change of kernel routes the route programmer has not yet
                    // acknowledged, what the peer is to be sent waits for it.
                    let generation = self.routes_generation;
                    let unacked = self
                        .kernel_acks
                        .as_ref()
                        .is_some_and(|a| *a.borrow() < generation);
                    if let Some(s) = self.sessions.get_mut(&peer)
                        && unacked
                    {
                        let since = s.gate.map_or_else(Instant::now, |g| g.1);
                        s.gate = Some((generation, since));
                    }
                    ready.push(peer);
                }
                Action::TearDown {
                    peer,
                    notification,
                    restart_after,
                } => {
                    if let Some(s) = self.sessions.get_mut(&peer) {
                        info!(peer = %s.config.spec.address, "tearing down: {}", notification.describe());
                        s.held_until = Some(std::time::Instant::now() + restart_after);
                        let _ = s.cmd.try_send(SessionCmd::Stop {
                            notification,
                            restart_after: Some(restart_after),
                        });
                    }
                }
                Action::PrefixWarning {
                    peer,
                    afi,
                    prefixes,
                    limit,
                } => {
                    if let Some(s) = self.sessions.get(&peer) {
                        warn!(peer = %s.config.spec.address, ?afi, "{prefixes} prefixes received, near the limit of {limit}");
                    }
                }
                Action::RequestRefresh { peer, afi } => {
                    if let Some(s) = self.sessions.get(&peer) {
                        info!(peer = %s.config.spec.address, ?afi, "asking for the routes again (ROUTE-REFRESH)");
                        let m = Message::RouteRefresh {
                            afi: afi.code(),
                            safi: Afi::SAFI_UNICAST,
                            subtype: wire::refresh::REQUEST,
                        };
                        let _ = s.cmd.try_send(SessionCmd::Control(m.encode()));
                    }
                }
                Action::Ignored {
                    peer,
                    prefixes,
                    why,
                } => {
                    if let Some(s) = self.sessions.get(&peer) {
                        warn!(peer = %s.config.spec.address, "{} route(s) ignored ({why}): {}",
                            prefixes.len(),
                            prefixes.iter().take(5).map(|n| n.to_string()).collect::<Vec<_>>().join(", "));
                    }
                }
                Action::StaleTimer {
                    peer,
                    generation,
                    after,
                } => {
                    self.timers.retain(
                        |_, t| !matches!(t, InstanceTimer::Stale { peer: p, .. } if *p == peer),
                    );
                    self.timer_seq += 1;
                    self.timers.insert(
                        (Instant::now() + after, self.timer_seq),
                        InstanceTimer::Stale { peer, generation },
                    );
                }
                Action::Route(_) => {} // published above
            }
        }
        ready.sort_unstable();
        ready.dedup();
        for peer in ready {
            self.pump(peer);
        }
    }

    /// Hands `peer`'s writer what it is to be sent, chunk by chunk, while its window has
    /// room (and the kernel has what it waits for). Never waits: the writer says when it
    /// has written a chunk, and this goes on then.
    fn pump(&mut self, peer: PeerId) {
        let acked = self.kernel_acks.as_ref().map_or(u64::MAX, |a| *a.borrow());
        let wait = self.kernel_ack_wait;
        let Some(s) = self.sessions.get_mut(&peer) else {
            return;
        };
        let Some(w) = s.wire.clone() else {
            return;
        };
        if let Some((generation, since)) = s.gate {
            if acked < generation && since.elapsed() < wait {
                return;
            }
            if acked < generation {
                warn!(peer = %s.config.spec.address, "kernel routes not acknowledged in {wait:?}: announcing anyway");
            }
            s.gate = None;
        }
        let address = s.config.spec.address;
        let max = self.core.max_message_len(peer);
        // A window's worth at most, then back to the loop: a peer that reads as fast as
        // we write would otherwise keep this call going until its table is out.
        for _ in 0..PUMP_CHUNKS {
            let used = w
                .shared
                .in_flight
                .load(std::sync::atomic::Ordering::Acquire);
            if used >= WINDOW {
                return;
            }
            let Ok(permit) = w.data.try_reserve() else {
                return;
            };
            let Some(batch) = self.core.take(peer, CHUNK.min(WINDOW - used)) else {
                return;
            };
            if let Some((n, len)) = batch.too_large.first() {
                warn!(peer = %address, "{} route(s) not sent: an UPDATE of {len} octets for {n} is more than the {max} this peer takes", batch.too_large.len());
            }
            let msgs = encode(&batch, max);
            let bytes: usize = msgs.iter().map(|m| m.len()).sum();
            w.shared
                .in_flight
                .fetch_add(bytes, std::sync::atomic::Ordering::AcqRel);
            permit.send(Chunk {
                msgs,
                bytes,
                delta: batch.delta,
            });
        }
    }

    /// [`InstanceTask::pump`] for every peer with something to send.
    fn pump_all(&mut self) {
        let peers: Vec<PeerId> = self
            .sessions
            .iter()
            .filter(|(id, s)| s.wire.is_some() && self.core.has_output(**id))
            .map(|(id, _)| *id)
            .collect();
        for peer in peers {
            self.pump(peer);
        }
    }

    /// When the first gated peer stops waiting for the kernel.
    fn gate_due(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.gate.map(|g| g.1 + self.kernel_ack_wait))
            .min()
    }

    /// Publishes the kernel table under a new generation.
    fn publish_routes(&mut self) {
        self.routes_generation += 1;
        self.routes_tx.send_replace(Arc::new(KernelTable {
            generation: self.routes_generation,
            routes: self.core.kernel_routes().clone(),
        }));
    }

    fn incoming(&mut self, stream: TcpStream, from: SocketAddr) {
        let from_ip = from.ip().to_canonical();
        let hit = self
            .sessions
            .values()
            .find(|s| s.config.spec.address == from_ip);
        match hit {
            Some(s) => {
                debug!(%from, "incoming BGP connection");
                let _ = s.cmd.try_send(SessionCmd::Incoming(stream));
            }
            None => debug!(%from, "refusing BGP connection from an unknown address"),
        }
    }

    fn publish(&self) {
        let mut peers: Vec<PeerStatus> = self
            .sessions
            .iter()
            .filter_map(|(id, s)| {
                Some(PeerStatus {
                    id: *id,
                    spec: self.core.peer_spec(*id)?.clone(),
                    state: s.state,
                    established_at: s.established_at.filter(|_| s.state == State::Established),
                    held_until: s.held_until.filter(|t| *t > std::time::Instant::now()),
                    last_error: s.last_error.clone(),
                    last_failure: s.last_failure.clone(),
                    stats: PeerStats {
                        // What reached the socket, not what is on its way.
                        advertised: s.wire.as_ref().map_or(0, |w| {
                            w.shared
                                .confirmed
                                .load(std::sync::atomic::Ordering::Acquire)
                                .max(0) as u32
                        }),
                        ..self.core.peer_stats(*id)
                    },
                })
            })
            .collect();
        peers.sort_by_key(|p| p.id);
        let st = InstanceStatus {
            peers,
            listen_error: self.listen_error.clone(),
        };
        self.status_tx.send_if_modified(|old| {
            if *old == st {
                false
            } else {
                *old = st;
                true
            }
        });
    }
}

/// The next connection on any of `listeners` (none: never).
async fn accept(listeners: &[TcpListener]) -> io::Result<(TcpStream, SocketAddr)> {
    std::future::poll_fn(|cx| {
        for l in listeners {
            if let std::task::Poll::Ready(r) = l.poll_accept(cx) {
                return std::task::Poll::Ready(r);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// A batch as the messages on the wire: BoRR, withdrawals, announcements, EoRR,
/// End-of-RIB; none longer than `max`.
fn encode(b: &Batch, max: usize) -> Vec<BytesMut> {
    let marker = |afi: Afi, subtype| {
        Message::RouteRefresh {
            afi: afi.code(),
            safi: Afi::SAFI_UNICAST,
            subtype,
        }
        .encode()
    };
    let mut msgs: Vec<BytesMut> = b
        .begin_refresh
        .iter()
        .map(|a| marker(*a, wire::refresh::BEGIN))
        .collect();
    msgs.extend(encode_updates_within(&b.withdrawn, None, &[], max));
    for (attrs, nlri) in &b.announce {
        msgs.extend(encode_updates_within(&[], Some(attrs), nlri, max));
    }
    msgs.extend(b.end_refresh.iter().map(|a| marker(*a, wire::refresh::END)));
    for afi in &b.end_of_rib {
        msgs.push(match afi {
            Afi::Ipv4 => Message::Update(Update::default()).encode(),
            Afi::Ipv6 => wire::ipv6_end_of_rib(),
        });
    }
    msgs
}

/// The next acknowledgement of the route programmer (none: never).
async fn acked(rx: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
