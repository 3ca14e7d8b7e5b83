//! The tokio driver: the only part of the BFD crate that does I/O.
//!
//! One task per network namespace (for cic edge: per routing instance) runs every session
//! of that namespace:
//! - one socket per address family on UDP 3784 receives for all sessions; `IP_RECVTTL`
//!   (`IPV6_RECVHOPLIMIT`) gives each datagram's TTL (hop limit), and anything below 255
//!   is dropped (RFC 5881 §5, RFC 5082);
//! - each session sends from its own socket, bound to its local address and a port in
//!   49152–65535 (RFC 5881 §4), with TTL (hop limit) 255;
//! - timers sit in one ordered set, so a tick costs O(log n) in the number of sessions.
//!
//! A received packet finds its session by Your Discriminator, or by source address while
//! the peer does not know our discriminator yet; either way the source must be the
//! session's peer. Each session's state is published on a `watch`, with a count of the
//! times it left Up, so a client (BGP) misses no failure even when changes coalesce.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt,
    sockopt::{Ipv4RecvTtl, Ipv6RecvHopLimit},
};
use socket2::Domain;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::packet::{Diag, Packet, State};
use crate::session::{Config, Grid, Output, Session, Snapshot};

/// RFC 5881 §4: single-hop Control packets go to this port.
pub const PORT: u16 = 3784;
const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
const COMMAND_QUEUE: usize = 64;

/// Makes an unbound UDP socket of a family (IPv4 or IPv6) in the right place (for cic
/// edge: inside a routing instance's network namespace).
pub type SocketFactory = Arc<dyn Fn(Domain) -> io::Result<socket2::Socket> + Send + Sync>;

pub fn plain_sockets() -> SocketFactory {
    Arc::new(|domain| {
        socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))
    })
}

/// A session as its client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    pub remote_state: State,
    /// Why the session last went down (our diagnostic).
    pub diag: Diag,
    pub local_discriminator: u32,
    pub remote_discriminator: u32,
    pub detection_time: Option<Duration>,
    pub tx_interval: Option<Duration>,
    /// How many times the session has left Up: a client compares counts, so a Down
    /// followed at once by Up again is not lost in a coalesced `watch`.
    pub downs: u64,
    /// Why it last left Up (the diagnostic of that change; `diag` is cleared once Up).
    pub last_failure: Option<Diag>,
    /// While Up: what a new process needs to carry the session on ([`Bfd::add_resumed`]).
    pub snapshot: Option<Snapshot>,
}

enum Command {
    Add {
        local: IpAddr,
        peer: IpAddr,
        cfg: Config,
        resume: Option<Snapshot>,
        reply: oneshot::Sender<io::Result<watch::Receiver<Status>>>,
    },
    Remove(IpAddr, oneshot::Sender<()>),
    Reconfigure(IpAddr, Config, oneshot::Sender<bool>),
    Shutdown(oneshot::Sender<()>),
}

/// The BFD task of one namespace. Cloning shares the task.
#[derive(Clone)]
pub struct Bfd {
    cmd: mpsc::Sender<Command>,
}

impl Bfd {
    /// Binds the IPv4 receive socket on `port` (3784 but for tests) and starts the task.
    /// The IPv6 one is bound with the first IPv6 session (a namespace of IPv4 sessions
    /// holds none); without it (IPv6 off in the namespace) an IPv6 session cannot be
    /// added, and the task says why.
    pub fn spawn(sockets: SocketFactory, port: u16) -> io::Result<Bfd> {
        let rx4 = receiver(&sockets, Domain::IPV4, port)?;
        let rx6 = None;
        let (tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let engine = Engine {
            sockets,
            rx4,
            rx6,
            port,
            sessions: HashMap::new(),
            by_peer: HashMap::new(),
            timers: BTreeSet::new(),
            next_disc: rand::random::<u32>() | 1,
            next_port: *SOURCE_PORTS.start() + rand::random::<u16>() % 1024,
        };
        tokio::spawn(engine.run(cmd_rx));
        Ok(Bfd { cmd: tx })
    }

    /// Starts a session from `local` to `peer` (one per peer address). The receiver
    /// follows its state.
    pub async fn add(
        &self,
        local: IpAddr,
        peer: IpAddr,
        cfg: Config,
    ) -> io::Result<watch::Receiver<Status>> {
        self.add_resumed(local, peer, cfg, None).await
    }

    /// [`Bfd::add`], carrying on the session an earlier process had Up (its
    /// [`Status::snapshot`]), so that the peer does not see a failure.
    pub async fn add_resumed(
        &self,
        local: IpAddr,
        peer: IpAddr,
        cfg: Config,
        resume: Option<Snapshot>,
    ) -> io::Result<watch::Receiver<Status>> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Add {
                local,
                peer,
                cfg,
                resume,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Ends the session to `peer`, telling it AdminDown first.
    pub async fn remove(&self, peer: IpAddr) -> io::Result<()> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Remove(peer, reply))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// New timers for the session to `peer`, without taking it down (a Poll Sequence
    /// announces them, RFC 5880 §6.8.3). False when there is no session to `peer`.
    pub async fn reconfigure(&self, peer: IpAddr, cfg: Config) -> io::Result<bool> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Reconfigure(peer, cfg, reply))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Ends every session (AdminDown to each) and the task.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The receive socket of a family on `port`, with the TTL (hop limit) of each datagram.
fn receiver(sockets: &SocketFactory, domain: Domain, port: u16) -> io::Result<UdpSocket> {
    let s = sockets(domain)?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    let addr = if domain == Domain::IPV6 {
        s.set_only_v6(true)?;
        setsockopt(&s, Ipv6RecvHopLimit, &true)?;
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))
    } else {
        setsockopt(&s, Ipv4RecvTtl, &true)?;
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
    };
    s.bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("BFD: bind UDP {addr}: {e}")))?;
    UdpSocket::from_std(s.into())
}

/// The ticks every session of this process sends on, whichever engine (namespace) it is
/// in: a thousand sessions' packets leave in a few hundred batches a second, not
/// thousands of wake-ups (see [`Grid`]).
fn grid() -> Grid {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    Grid {
        origin: *ORIGIN.get_or_init(Instant::now),
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "BFD task has stopped")
}

struct Entry {
    session: Session,
    peer: IpAddr,
    tx: UdpSocket,
    status: watch::Sender<Status>,
    /// The deadline this session has in `timers`.
    scheduled: Instant,
    downs: u64,
    last_failure: Option<Diag>,
}

struct Engine {
    sockets: SocketFactory,
    rx4: UdpSocket,
    /// The IPv6 receive socket, once an IPv6 session wanted one.
    rx6: Option<UdpSocket>,
    port: u16,
    sessions: HashMap<u32, Entry>,
    by_peer: HashMap<IpAddr, u32>,
    timers: BTreeSet<(Instant, u32)>,
    next_disc: u32,
    next_port: u16,
}

impl Engine {
    async fn run(mut self, mut cmd_rx: mpsc::Receiver<Command>) {
        let mut buf = [0u8; 128];
        let mut buf6 = [0u8; 128];
        loop {
            let next = self.timers.first().map(|(t, _)| *t);
            let sleep = async {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(Command::Add { local, peer, cfg, resume, reply }) => {
                        let _ = reply.send(self.add(local, peer, cfg, resume));
                    }
                    Some(Command::Remove(peer, reply)) => {
                        self.remove(peer);
                        let _ = reply.send(());
                    }
                    Some(Command::Reconfigure(peer, cfg, reply)) => {
                        let _ = reply.send(self.reconfigure(peer, cfg));
                    }
                    Some(Command::Shutdown(reply)) => {
                        let peers: Vec<IpAddr> = self.by_peer.keys().copied().collect();
                        for p in peers {
                            self.remove(p);
                        }
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                got = recv(&self.rx4, &mut buf) => match got {
                    Ok((n, from, ttl)) => self.received(&buf[..n], from, ttl),
                    Err(e) => {
                        warn!("BFD receive: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                got = recv6(&self.rx6, &mut buf6) => match got {
                    Ok((n, from, ttl)) => self.received(&buf6[..n], from, ttl),
                    Err(e) => {
                        warn!("BFD receive (IPv6): {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = sleep => self.fire(Instant::now()),
            }
        }
    }

    fn add(
        &mut self,
        local: IpAddr,
        peer: IpAddr,
        cfg: Config,
        resume: Option<Snapshot>,
    ) -> io::Result<watch::Receiver<Status>> {
        if self.by_peer.contains_key(&peer) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("BFD: a session to {peer} already exists"),
            ));
        }
        if local.is_ipv4() != peer.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("BFD: {local} and {peer} are of different address families"),
            ));
        }
        if peer.is_ipv6() && self.rx6.is_none() {
            let rx6 = receiver(&self.sockets, Domain::IPV6, self.port).map_err(|e| {
                io::Error::new(e.kind(), format!("BFD: no IPv6 sessions here ({e})"))
            })?;
            self.rx6 = Some(rx6);
        }
        let tx = self.bind_source(local)?;
        let now = Instant::now();
        let resume =
            resume.filter(|r| r.local_disc != 0 && !self.sessions.contains_key(&r.local_disc));
        let session = match resume {
            Some(snap) => {
                debug!(%peer, disc = snap.local_disc, "BFD session resumed");
                Session::resume(snap, cfg, now).with_grid(grid())
            }
            None => {
                let disc = loop {
                    let d = self.next_disc;
                    self.next_disc = self.next_disc.wrapping_add(1).max(1);
                    if !self.sessions.contains_key(&d) {
                        break d;
                    }
                };
                Session::new(disc, cfg, now).with_grid(grid())
            }
        };
        let disc = session.local_discriminator();
        let (status, rx) = watch::channel(status_of(&session, 0, None));
        let scheduled = session.deadline();
        self.timers.insert((scheduled, disc));
        self.sessions.insert(
            disc,
            Entry {
                session,
                peer,
                tx,
                status,
                scheduled,
                downs: 0,
                last_failure: None,
            },
        );
        self.by_peer.insert(peer, disc);
        debug!(%peer, %local, disc, "BFD session added");
        Ok(rx)
    }

    /// A socket bound to `local` and a free port of 49152–65535, TTL (hop limit) 255.
    /// `IP_FREEBIND` lets it bind before the address is configured (a link being built).
    fn bind_source(&mut self, local: IpAddr) -> io::Result<UdpSocket> {
        let s = (self.sockets)(match local {
            IpAddr::V4(_) => Domain::IPV4,
            IpAddr::V6(_) => Domain::IPV6,
        })?;
        s.set_nonblocking(true)?;
        match local {
            IpAddr::V4(_) => {
                s.set_ttl_v4(255)?;
                s.set_freebind_v4(true)?;
            }
            IpAddr::V6(_) => {
                s.set_only_v6(true)?;
                s.set_unicast_hops_v6(255)?;
                s.set_freebind_v6(true)?;
            }
        }
        let span = u32::from(*SOURCE_PORTS.end() - *SOURCE_PORTS.start()) + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == *SOURCE_PORTS.end() {
                *SOURCE_PORTS.start()
            } else {
                port + 1
            };
            let addr = SocketAddr::new(local, port);
            match s.bind(&addr.into()) {
                Ok(()) => return UdpSocket::from_std(s.into()),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(e) => {
                    return Err(io::Error::new(e.kind(), format!("BFD: bind {addr}: {e}")));
                }
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "BFD: no free source port in 49152-65535",
        ))
    }

    fn remove(&mut self, peer: IpAddr) {
        let Some(disc) = self.by_peer.remove(&peer) else {
            return;
        };
        if let Some(mut e) = self.sessions.remove(&disc) {
            self.timers.remove(&(e.scheduled, disc));
            let mut out = vec![];
            e.session.admin_down(Instant::now(), &mut out);
            for o in out {
                if let Output::Send(p) = o {
                    let _ = e.tx.try_send_to(&p.encode(), (peer, self.port).into());
                }
            }
            debug!(%peer, "BFD session removed");
        }
    }

    fn fire(&mut self, now: Instant) {
        while let Some(&(t, disc)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let mut out = vec![];
            if let Some(e) = self.sessions.get_mut(&disc) {
                e.session.on_timer(now, &mut out);
            }
            self.after(disc, out);
        }
    }

    fn reconfigure(&mut self, peer: IpAddr, cfg: Config) -> bool {
        let Some(&disc) = self.by_peer.get(&peer) else {
            return false;
        };
        let mut out = vec![];
        if let Some(e) = self.sessions.get_mut(&disc) {
            e.session.reconfigure(cfg, Instant::now(), &mut out);
        }
        self.after(disc, out);
        true
    }

    fn received(&mut self, b: &[u8], from: IpAddr, ttl: Option<u8>) {
        if ttl != Some(255) {
            debug!(%from, ?ttl, "BFD packet dropped: TTL is not 255 (RFC 5881 §5)");
            return;
        }
        let p = match Packet::decode(b) {
            Ok(p) => p,
            Err(e) => {
                debug!(%from, "BFD packet dropped: {e}");
                return;
            }
        };
        let disc = if p.your_discriminator != 0 {
            p.your_discriminator
        } else {
            match self.by_peer.get(&from) {
                Some(d) => *d,
                None => return,
            }
        };
        let now = Instant::now();
        let mut out = vec![];
        match self.sessions.get_mut(&disc) {
            Some(e) if e.peer == from => e.session.on_packet(&p, now, &mut out),
            _ => {
                debug!(%from, disc, "BFD packet for no session of this peer");
                return;
            }
        }
        self.after(disc, out);
    }

    /// Sends what a session produced, publishes its state and reschedules its timer.
    fn after(&mut self, disc: u32, out: Vec<Output>) {
        let Some(e) = self.sessions.get_mut(&disc) else {
            return;
        };
        for o in out {
            match o {
                Output::Send(p) => {
                    if let Err(err) = e.tx.try_send_to(&p.encode(), (e.peer, self.port).into()) {
                        debug!(peer = %e.peer, "BFD send: {err}");
                    }
                }
                Output::StateChanged { from, to, diag } => {
                    if from == State::Up {
                        e.downs += 1;
                        e.last_failure = Some(diag);
                    }
                    if from == State::Up || to == State::Up {
                        info!(peer = %e.peer, "BFD {} → {} ({})", from.name(), to.name(), diag.text());
                    } else {
                        debug!(peer = %e.peer, "BFD {} → {}", from.name(), to.name());
                    }
                }
            }
        }
        let st = status_of(&e.session, e.downs, e.last_failure);
        e.status.send_if_modified(|s| {
            if *s == st {
                false
            } else {
                *s = st;
                true
            }
        });
        let next = e.session.deadline();
        if next != e.scheduled {
            self.timers.remove(&(e.scheduled, disc));
            e.scheduled = next;
        }
        self.timers.insert((next, disc));
    }
}

fn status_of(s: &Session, downs: u64, last_failure: Option<Diag>) -> Status {
    Status {
        state: s.state(),
        remote_state: s.remote_state(),
        diag: s.diag(),
        local_discriminator: s.local_discriminator(),
        remote_discriminator: s.remote_discriminator(),
        detection_time: s.detection_time(),
        tx_interval: s.tx_interval(),
        downs,
        last_failure,
        snapshot: s.snapshot(),
    }
}

/// One datagram with its source and TTL (hop limit).
async fn recv(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, IpAddr, Option<u8>)> {
    sock.async_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let mut cmsg = nix::cmsg_space!(i32);
        let msg = recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let mut ttl = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                match c {
                    ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                        ttl = u8::try_from(t).ok();
                    }
                    _ => {}
                }
            }
        }
        let from = msg
            .address
            .and_then(|a| {
                a.as_sockaddr_in()
                    .map(|a| IpAddr::V4(a.ip()))
                    .or_else(|| a.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok((msg.bytes, from, ttl))
    })
    .await
}

/// [`recv`] on the IPv6 socket; never ready when there is none.
async fn recv6(
    sock: &Option<UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, IpAddr, Option<u8>)> {
    match sock {
        Some(s) => recv(s, buf).await,
        None => std::future::pending().await,
    }
}
