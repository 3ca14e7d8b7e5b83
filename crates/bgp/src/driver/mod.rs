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
//!
//! Here: the handle and what it carries (commands, statuses, peer configs); the instance
//! task is `task.rs`, a session's task `session.rs`, its writer `writer.rs`, the RPKI
//! caches' client `rtr.rs`.

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
mod task;
mod writer;

use task::{InstanceTask, sleep_until};

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
    /// The same moment by the wall clock: what a report says, unchanged while it is up.
    pub established_wall: Option<std::time::SystemTime>,
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
    /// Whether the session was told (false: no such peer, or its queue full).
    SetDamping(PeerId, Option<Duration>, oneshot::Sender<bool>),
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
    /// A connection the peer opened, and when the listener accepted it.
    Incoming(TcpStream, tokio::time::Instant),
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
    /// restarting it; a hold under way keeps its length. An error when the session could
    /// not be told (its command queue full): the caller tries again.
    pub async fn set_damping(&self, peer: PeerId, damping: Option<Duration>) -> io::Result<()> {
        if self
            .ask(|tx| Command::SetDamping(peer, damping, tx))
            .await?
        {
            Ok(())
        } else {
            Err(io::Error::other(
                "the session did not take the damping setting",
            ))
        }
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
    spawn_instance_listening(params, sockets, listen, &[])
}

/// [`spawn_instance`], with addresses listened on only once a peer of their family is
/// added (`with_first_peer`): an instance of IPv4 peers holds no IPv6 listener. A bind that
/// fails then is the status's `listen_error`, and the next peer of the family tries again.
pub fn spawn_instance_listening(
    params: InstanceParams,
    sockets: SocketFactory,
    listen: &[SocketAddr],
    with_first_peer: &[SocketAddr],
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
    let task = InstanceTask::new(
        Instance::new(params),
        sockets,
        ev_tx,
        (status_tx, routes_tx),
        listen_error,
        timers,
    );
    tokio::spawn(task.run(cmd_rx, ev_rx, listeners, with_first_peer.to_vec()));
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
