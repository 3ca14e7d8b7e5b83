//! One session's task: the FSM, the connection's reading side and the timers. Its
//! connection's writing side is a task of its own ([`super::writer`]), so a peer that
//! stops reading stalls neither this task (its hold timer, its commands) nor anyone else.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::writer::{Ctl, Writer, WriterEnd};
use super::{PeerConfig, PeerEvent, SessionCmd, SocketFactory, sleep_until};
use crate::fsm::{Input, Output, Session, State, Timer};
use crate::rib::PeerId;
use crate::wire::{self, DecodeContext, Message, Notification, Update, cease};

/// Bytes a session reads from its connection at a time, at most (a full table arrives in
/// large reads).
const READ_CHUNK: usize = 64 * 1024;
/// Bytes a session reads at a time while reads are small: one message of the largest
/// size without extended messages (RFC 4271 §4.1). An edge holds two sessions a
/// connection, most of them passing a KEEPALIVE now and then; 64 KiB each was 131 MB
/// allocated at 1,000 connections (heaptrack, BENCHMARKS.md).
const READ_SMALL: usize = 4096;
/// UPDATEs handed to the instance in one event, at most.
const MAX_BATCH: usize = 64;
/// A NOTIFICATION on a connection we refuse goes within this, or not at all.
const REFUSE_WAIT: Duration = Duration::from_secs(1);
/// How long a connection of ours waits for the peer's OPEN before a new connection from the
/// peer is taken instead of refused (see `incoming`).
const OURS_WAIT_FOR_OPEN: Duration = Duration::from_secs(60);
/// RFC 9687 §5: the send hold time is the greater of 8 minutes and twice the hold time.
const MIN_SEND_HOLD: Duration = Duration::from_secs(8 * 60);
/// While a connection waits for the peer's OPEN, the kernel asks the other end whether it
/// still has the connection after this long idle, then every [`OPENING_PROBE_EVERY`], and
/// gives up after [`OPENING_PROBES`] unanswered: a peer that rebooted, or whose reset was
/// lost on the way, answers with a reset. Nothing else tells us (we send nothing in
/// OpenSent, and its hold time is 4 minutes); a live peer's kernel answers even while the
/// connection waits in its accept queue.
const OPENING_PROBE_IDLE: Duration = Duration::from_secs(3);
const OPENING_PROBE_EVERY: Duration = Duration::from_secs(1);
const OPENING_PROBES: u32 = 3;

/// A connection attempt of ours. The socket is the session task's while the handshake
/// runs (not hidden in a future), so that an incoming connection can ask whether the
/// kernel has already connected it (see [`SessionTask::incoming`]).
enum Attempt {
    /// Waiting for the handshake until `deadline` (the connect retry time).
    Connecting {
        stream: TcpStream,
        peer: SocketAddr,
        deadline: Instant,
    },
    /// The socket could not be made, or its connect failed at once (taken once).
    Failed(Option<io::Error>),
}

impl Attempt {
    /// Whether the kernel has completed our handshake (the socket has a peer address):
    /// the peer then has the connection in its accept queue, or will once our ACK is in.
    fn connected(&self) -> bool {
        matches!(self, Attempt::Connecting { stream, .. } if stream.peer_addr().is_ok())
    }

    /// The connection, if [`Attempt::connected`]; else the attempt is closed here.
    fn into_connected(self) -> Option<TcpStream> {
        match self {
            Attempt::Connecting { stream, .. } if stream.peer_addr().is_ok() => Some(stream),
            _ => None,
        }
    }
}

pub(super) struct SessionTask {
    id: PeerId,
    cfg: PeerConfig,
    fsm: Session,
    sockets: SocketFactory,
    events: mpsc::Sender<(PeerId, PeerEvent)>,
    /// Told when a writer has written a chunk (the instance hands the next).
    room: Arc<Notify>,
    timers: HashMap<Timer, Instant>,
    reader: Option<tokio::net::tcp::OwnedReadHalf>,
    writer: Option<Writer>,
    /// A NOTIFICATION the FSM sent, for the writer to put before it closes.
    closing_with: Option<Notification>,
    connecting: Option<Attempt>,
    /// Whether the connection held was opened by us (not accepted from the peer).
    ours: bool,
    /// When the connection held was taken.
    attached_at: Instant,
    /// When the session last became Established.
    established_at: Option<Instant>,
    buf: BytesMut,
    /// How much the next read asks room for: doubled when a read fills the room it had
    /// (READ_SMALL..=READ_CHUNK).
    read_size: usize,
    epoch: u64,
    /// UPDATEs decoded and not yet handed to the instance (see [`PeerEvent::Updates`]).
    pending: Vec<Update>,
}

impl SessionTask {
    pub(super) fn new(
        id: PeerId,
        cfg: PeerConfig,
        sockets: SocketFactory,
        events: mpsc::Sender<(PeerId, PeerEvent)>,
        room: Arc<Notify>,
    ) -> Self {
        let fsm = Session::new(cfg.session.clone());
        SessionTask {
            id,
            cfg,
            fsm,
            sockets,
            events,
            room,
            timers: HashMap::new(),
            reader: None,
            writer: None,
            closing_with: None,
            connecting: None,
            ours: false,
            attached_at: Instant::now(),
            established_at: None,
            buf: BytesMut::new(),
            read_size: READ_SMALL,
            epoch: 0,
            pending: Vec::new(),
        }
    }

    pub(super) async fn run(mut self, mut cmds: mpsc::Receiver<SessionCmd>) {
        self.input(Input::Start).await;
        loop {
            let deadline = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(t, at)| (*t, *at));
            let input = tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(SessionCmd::Control(m)) => {
                        if self.fsm.state() == State::Established {
                            self.send(m);
                        }
                        continue;
                    }
                    Some(SessionCmd::Stop { notification, restart_after }) => Input::Stop { notification, restart_after },
                    Some(SessionCmd::Incoming(stream, accepted)) => {
                        self.incoming(stream, accepted).await;
                        continue;
                    }
                    Some(SessionCmd::PathUp) => Input::PathUp,
                    Some(SessionCmd::PathDown(why)) => Input::PathDown { why },
                    Some(SessionCmd::SetDamping(d)) => {
                        self.fsm.set_damping(d);
                        continue;
                    }
                    Some(SessionCmd::RestartDone) => {
                        self.fsm.restart_done();
                        continue;
                    }
                    Some(SessionCmd::Exit(n)) => {
                        self.input(Input::Stop { notification: n, restart_after: None }).await;
                        return;
                    }
                    None => return,
                },
                _ = sleep_until(deadline.map(|d| d.1)) => {
                    let Some((t, _)) = deadline else { continue };
                    self.timers.remove(&t);
                    Input::TimerExpired(t)
                }
                res = connect_poll(&mut self.connecting) => {
                    self.connecting = None;
                    match res {
                        Ok(stream) => {
                            self.attach(stream, true);
                            Input::TcpConnected
                        }
                        Err(e) => {
                            debug!("connect: {e}");
                            Input::ConnectFailed(connect_failure(&e))
                        }
                    }
                }
                end = writer_done(&mut self.writer) => {
                    // The writer is gone; so is the connection.
                    self.writer = None;
                    match end {
                        WriterEnd::SendHoldExpired(d) => {
                            warn!(
                                "Send Hold Timer Expired (RFC 9687): the peer took no data for {} s; closing",
                                d.as_secs()
                            );
                            Input::SendHoldTimerExpired
                        }
                        WriterEnd::Failed(e) => {
                            debug!("write: {e}");
                            Input::TcpFailed
                        }
                        WriterEnd::Closed => Input::TcpFailed,
                    }
                }
                res = read_some(&mut self.reader, &mut self.buf, self.read_size) => match res {
                    // The kernel's probes (`probe_while_opening`) or retransmissions went
                    // unanswered.
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Input::TcpTimedOut,
                    Ok((0, _)) | Err(_) => Input::TcpFailed,
                    Ok((n, room)) => {
                        self.drain_messages().await;
                        self.read_size = next_read(self.read_size, n, room);
                        continue;
                    }
                },
            };
            self.input(input).await;
        }
    }

    /// A message to the peer, through the writer (between the UPDATEs the instance
    /// hands it). A full control queue means the peer reads nothing: a KEEPALIVE lost
    /// then changes nothing, and the send hold timer ends such a connection.
    fn send(&mut self, m: BytesMut) {
        if let Some(w) = &self.writer {
            let _ = w.ctl.try_send(Ctl::Msg(m));
        }
    }

    /// Hands the UPDATEs decoded so far to the instance.
    async fn flush_updates(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // Room for a batch as large as this one: a table's batches are full, and a
        // vector grown an UPDATE at a time was reallocated five times a batch.
        let room = self.pending.len();
        let updates = std::mem::replace(&mut self.pending, Vec::with_capacity(room));
        let _ = self
            .events
            .send((
                self.id,
                PeerEvent::Updates {
                    epoch: self.epoch,
                    updates,
                },
            ))
            .await;
    }

    /// Decodes every whole message in the buffer and feeds it to the FSM; the UPDATEs
    /// among them go to the instance together.
    async fn drain_messages(&mut self) {
        self.decode_all().await;
        self.flush_updates().await;
    }

    async fn decode_all(&mut self) {
        loop {
            let cx = DecodeContext {
                ibgp: self.fsm.is_ibgp(),
                extended: self.fsm.negotiated().is_some_and(|n| n.extended_message),
            };
            match wire::decode_message(&self.buf, &cx) {
                Ok(Some((m, n))) => {
                    let _ = self.buf.split_to(n);
                    tracing::trace!(len = n, "received {}", m.kind());
                    if let Message::Update(u) = &m {
                        for p in &u.problems {
                            warn!("UPDATE from the peer: {p:?} (RFC 7606)");
                        }
                    }
                    self.input(Input::Message(m)).await;
                    if self.reader.is_none() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    warn!("malformed message: {e}");
                    self.buf.clear();
                    self.input(Input::DecodeError(e)).await;
                    return;
                }
            }
        }
    }

    /// Connection collision (RFC 4271 §6.8). `accepted`: when the listener took it.
    async fn incoming(&mut self, stream: TcpStream, accepted: Instant) {
        // GTSM on a connection the peer opened: from here on its packets must arrive with
        // TTL 255 (its OPEN among them), and ours leave with 255.
        if self.cfg.ttl_security {
            let v6 = stream.peer_addr().is_ok_and(|a| a.is_ipv6());
            if let Err(e) = cic_sockopt::set_gtsm(stream.as_fd(), v6, 1) {
                warn!("GTSM on an incoming connection: {e}; connection refused");
                return;
            }
        }
        let collision = Notification::new(wire::error_code::CEASE, cease::COLLISION);
        match self.fsm.state() {
            State::Idle if !self.fsm.accepts_connection() => {
                // Administratively down, held down by a Stop or damped: refuse.
                let n = Notification::new(wire::error_code::CEASE, cease::CONNECTION_REJECTED);
                refuse(stream, n).await;
            }
            // Our own attempt, if connected already, is in the peer's accept queue and
            // will be taken as ours whenever the peer gets to it. Were the session to
            // come up on the peer's connection meanwhile, a peer with graceful restart
            // would then take ours as our restart (RFC 4724 §4.2; BIRD does) and drop
            // the session. So ours is kept, theirs refused. An attempt still in its
            // handshake is closed here, before anything waits: the peer never sees it.
            State::Idle | State::Connect | State::Active => {
                match self.connecting.take().and_then(Attempt::into_connected) {
                    Some(mine) => {
                        self.attach(mine, true);
                        self.input(Input::TcpConnected).await;
                        refuse(stream, collision).await;
                    }
                    None => {
                        self.attach(stream, false);
                        self.input(Input::TcpConnected).await;
                    }
                }
            }
            // Ours is up and the peer has it (see above): theirs is refused. (The peer's
            // OPEN decides a collision, RFC 4271 §6.8, but that needs both connections
            // kept until it comes, and BIRD may bring the session up on its own before
            // it has even accepted ours.)
            // (Unless ours has waited a minute for the peer's OPEN. A peer that lost our
            // connection without a reset — a reboot, a reset lost on the way — answers the
            // kernel's probes with one within seconds (`probe_while_opening`), and ours
            // is given up; the minute is for a live peer that never sends its OPEN. A busy
            // BIRD has left ours in its accept queue for 13 s, so not sooner.)
            State::OpenSent if self.ours && self.attached_at.elapsed() < OURS_WAIT_FOR_OPEN => {
                refuse(stream, collision).await
            }
            State::OpenSent => {
                // A second connection from the peer before its OPEN on the first: the
                // peer gave that one up (a restart between connecting and its OPEN).
                if let Some(w) = self.writer.take() {
                    w.close(Some(collision)).await;
                }
                self.attach(stream, false);
                self.input(Input::TcpConnected).await;
            }
            State::OpenConfirm => {
                let peer_id = self
                    .fsm
                    .negotiated()
                    .map(|n| n.peer_id)
                    .unwrap_or(Ipv4Addr::UNSPECIFIED);
                if self.cfg.session.router_id > peer_id {
                    // We win: keep the connection we have, refuse the new one.
                    refuse(stream, collision).await;
                } else {
                    if let Some(w) = self.writer.take() {
                        w.close(Some(collision)).await;
                    }
                    self.attach(stream, false);
                    self.input(Input::TcpConnected).await;
                }
            }
            State::Established
                if self
                    .fsm
                    .negotiated()
                    .is_some_and(|n| n.graceful_restart.is_some())
                    && restarted_by(accepted, self.established_at, self.ours) =>
            {
                // RFC 4724 §4.2: with graceful restart, a new connection from an
                // Established peer means it restarted and its old connection is dead (a
                // crash, a reboot: no FIN reached us, and the hold timer has not run
                // out). Its routes stay, stale, and the session opens on the new one.
                info!("the peer connected again while Established: taken as its restart");
                self.flush_updates().await;
                if let Some(w) = self.writer.take() {
                    w.close(None).await;
                }
                self.attach(stream, false);
                self.input(Input::PeerRestarted).await;
            }
            State::Established => refuse(stream, collision).await,
        }
    }

    /// Takes `stream` as the session's connection, with a writer task of its own; `ours`
    /// when we opened it.
    fn attach(&mut self, stream: TcpStream, ours: bool) {
        self.ours = ours;
        self.attached_at = Instant::now();
        let _ = stream.set_nodelay(true);
        probe_while_opening(&stream, true);
        let (r, w) = stream.into_split();
        self.reader = Some(r);
        self.writer = Some(Writer::spawn(w, self.room.clone()));
        self.closing_with = None;
        self.buf.clear();
    }

    /// Runs one input through the FSM and carries out its outputs.
    async fn input(&mut self, input: Input) {
        let before = (
            self.fsm.state(),
            self.fsm.last_error().map(str::to_string),
            self.fsm.last_failure().cloned(),
        );
        let outputs = self.fsm.handle(input);
        // The peer's OPEN came: from here its KEEPALIVEs and the hold timer tell.
        if before.0 == State::OpenSent
            && self.fsm.state() != State::OpenSent
            && let Some(r) = &self.reader
        {
            probe_while_opening(r.as_ref(), false);
        }
        for o in outputs {
            match o {
                // An attempt the kernel has connected is kept (the peer has it, see
                // `incoming`): its completion comes next.
                Output::Connect if self.connecting.as_ref().is_some_and(Attempt::connected) => {}
                Output::Connect => self.connecting = Some(self.connect()),
                // A NOTIFICATION goes with the close that follows it: the writer puts it
                // after the message it is writing, then closes.
                Output::Send(Message::Notification(n)) => self.closing_with = Some(n),
                Output::Send(m) => self.send(m.encode()),
                Output::Disconnect => {
                    if let Some(w) = self.writer.take() {
                        w.close(self.closing_with.take()).await;
                    }
                    self.closing_with = None;
                    self.reader = None;
                    self.connecting = None;
                }
                Output::StartTimer(t, d) => {
                    self.timers.insert(t, Instant::now() + jittered(t, d));
                }
                Output::StopTimer(t) => {
                    self.timers.remove(&t);
                }
                Output::Established(n) => {
                    self.established_at = Some(Instant::now());
                    self.flush_updates().await;
                    self.epoch += 1;
                    info!(hold = n.hold_time, "session established");
                    let Some(w) = &self.writer else { continue };
                    // RFC 9687: the greater of 8 minutes and twice the hold time, unless
                    // configured (and none when the hold time is 0).
                    let send_hold = (n.hold_time > 0).then(|| {
                        self.cfg.send_hold_time.unwrap_or_else(|| {
                            MIN_SEND_HOLD.max(Duration::from_secs(2 * u64::from(n.hold_time)))
                        })
                    });
                    let _ = w
                        .ctl
                        .try_send(Ctl::SendHold(send_hold.filter(|d| !d.is_zero())));
                    let local = self
                        .reader
                        .as_ref()
                        .and_then(|r| r.local_addr().ok())
                        .map(|a| a.ip().to_canonical());
                    let wire = w.wire.clone();
                    let _ = self
                        .events
                        .send((
                            self.id,
                            PeerEvent::Up {
                                epoch: self.epoch,
                                negotiated: n,
                                local,
                                wire,
                            },
                        ))
                        .await;
                }
                Output::Down { why, graceful } => {
                    self.flush_updates().await;
                    info!("session down: {why}");
                    let _ = self
                        .events
                        .send((
                            self.id,
                            PeerEvent::Down {
                                epoch: self.epoch,
                                graceful,
                            },
                        ))
                        .await;
                }
                Output::Update(u) => {
                    self.pending.push(u);
                    if self.pending.len() >= MAX_BATCH {
                        self.flush_updates().await;
                    }
                }
                Output::RouteRefresh { afi, subtype } => {
                    // (After the UPDATEs before it: a BoRR or EoRR frames them.)
                    self.flush_updates().await;
                    let _ = self
                        .events
                        .send((
                            self.id,
                            PeerEvent::RouteRefresh {
                                epoch: self.epoch,
                                afi,
                                subtype,
                            },
                        ))
                        .await;
                }
            }
        }
        let after = (
            self.fsm.state(),
            self.fsm.last_error().map(str::to_string),
            self.fsm.last_failure().cloned(),
        );
        if after != before {
            self.flush_updates().await;
            let _ = self
                .events
                .send((
                    self.id,
                    PeerEvent::State {
                        state: after.0,
                        last_error: after.1,
                        last_failure: after.2,
                    },
                ))
                .await;
        }
    }

    fn connect(&self) -> Attempt {
        let peer = SocketAddr::new(self.cfg.spec.address, self.cfg.port);
        let deadline = Instant::now() + self.cfg.session.connect_retry;
        match self.start_connect(peer) {
            Ok(stream) => Attempt::Connecting {
                stream,
                peer,
                deadline,
            },
            Err(e) => Attempt::Failed(Some(e)),
        }
    }

    /// A socket sourced from our address on the shared subnet, its handshake begun.
    fn start_connect(&self, peer: SocketAddr) -> io::Result<TcpStream> {
        let s = (self.sockets)(socket2::Domain::for_address(peer))?;
        s.set_nonblocking(true)?;
        if let Some(k) = &self.cfg.md5_key {
            cic_sockopt::set_tcp_md5sig(s.as_fd(), peer, k.as_bytes())?;
        }
        if self.cfg.ttl_security {
            cic_sockopt::set_gtsm(s.as_fd(), peer.is_ipv6(), 1)?;
        }
        s.bind(&SocketAddr::new(self.cfg.spec.local_address, 0).into())?;
        match s.connect(&peer.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        TcpStream::from_std(s.into())
    }
}

/// How a connection attempt failed, as the session keeps it.
fn connect_failure(e: &io::Error) -> crate::fsm::SessionFailure {
    use crate::fsm::SessionFailure;
    match e.kind() {
        io::ErrorKind::ConnectionRefused => SessionFailure::ConnectRefused,
        io::ErrorKind::TimedOut => SessionFailure::ConnectTimedOut,
        _ => SessionFailure::ConnectFailed {
            error: e.to_string(),
        },
    }
}

/// Refuses a connection with `n`: sent if it goes at once, then closed.
async fn refuse(mut s: TcpStream, n: Notification) {
    let m = Message::Notification(n).encode();
    let _ = tokio::time::timeout(REFUSE_WAIT, s.write_all(&m)).await;
}

async fn writer_done(w: &mut Option<Writer>) -> WriterEnd {
    match w {
        Some(w) => (&mut w.done).await.unwrap_or(WriterEnd::Closed),
        None => std::future::pending().await,
    }
}

/// RFC 4271 §10: the connect retry timer is jittered (0.75 to 1 of its length), so two
/// speakers that failed together do not try again together.
fn jittered(t: Timer, d: Duration) -> Duration {
    match t {
        Timer::ConnectRetry => d.mul_f64(0.75 + 0.25 * rand::random::<f64>()),
        _ => d,
    }
}

/// Our attempt's end: its connection, or why it failed. Cancel-safe: the attempt stays
/// until it ends.
async fn connect_poll(a: &mut Option<Attempt>) -> io::Result<TcpStream> {
    let ready = match a {
        None => std::future::pending().await,
        Some(Attempt::Failed(e)) => Err(e
            .take()
            .unwrap_or_else(|| io::Error::other("the connection attempt failed"))),
        Some(Attempt::Connecting {
            stream,
            peer,
            deadline,
        }) => match tokio::time::timeout_at(*deadline, stream.writable()).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {peer} timed out"),
            )),
        },
    };
    let attempt = a.take();
    ready?;
    match attempt {
        Some(Attempt::Connecting { stream, .. }) => match stream.take_error()? {
            Some(e) => Err(e),
            None => Ok(stream),
        },
        _ => Err(io::Error::other("the connection attempt failed")),
    }
}

/// Reads what the connection has into `buf`, with room for `size` bytes made first:
/// how many bytes came, and the room they had.
async fn read_some(
    r: &mut Option<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut BytesMut,
    size: usize,
) -> io::Result<(usize, usize)> {
    match r {
        Some(r) => {
            if buf.capacity() - buf.len() < size / 4 {
                buf.reserve(size);
            }
            let room = buf.capacity() - buf.len();
            r.read_buf(buf).await.map(|n| (n, room))
        }
        None => std::future::pending().await,
    }
}

/// The read size after a read of `n` bytes into a room of `room`: doubled (up to
/// READ_CHUNK) when the read filled it — a table is arriving. It does not shrink: one that
/// shrank after reads that left the buffer empty slowed a full table's ingest by a quarter
/// (the reads of a table are of every size, and a session that got one will again).
fn next_read(size: usize, n: usize, room: usize) -> usize {
    if n >= room {
        (size * 2).min(READ_CHUNK)
    } else {
        size
    }
}

/// TCP keepalive probes on a connection while it waits for the peer's OPEN (`on`), or
/// none once the OPEN came (see [`OPENING_PROBE_IDLE`]).
fn probe_while_opening(stream: &TcpStream, on: bool) {
    let sock = socket2::SockRef::from(stream);
    let done = if on {
        let probes = socket2::TcpKeepalive::new()
            .with_time(OPENING_PROBE_IDLE)
            .with_interval(OPENING_PROBE_EVERY)
            .with_retries(OPENING_PROBES);
        sock.set_tcp_keepalive(&probes)
    } else {
        sock.set_keepalive(false)
    };
    if let Err(e) = done {
        debug!("TCP keepalive while waiting for the OPEN: {e}");
    }
}

/// How long after a session comes up on our connection a connection from the peer is
/// still its own attempt crossing ours, not its restart (see [`restarted_by`]).
const RESTART_NOT_BEFORE: Duration = Duration::from_secs(5);

/// Whether a connection the listener accepted at `accepted` is the peer's restart, the
/// session having come up at `established` on our connection (`ours`) or the peer's.
/// RFC 4724 §4.2 lets a new connection from a peer whose session is Established stand for
/// its restart: its old connection died without a word (a reboot: seconds at the very
/// least; a peer process that merely exits has its kernel close the old one). We depart
/// from it for a session's first 5 s on our connection. Then a connection from the peer
/// is, far likelier, its own attempt crossing ours: its handshake done while ours was
/// opening (or held up by ARP while the interface was being made), accepted and handed
/// to this task just after ours came up (the task reads its connection and its commands
/// in no fixed order; `accepted` is when the listener got to it, not when the handshake
/// ended). That is refused as a collision with an Established session (RFC 4271 §6.8).
/// BIRD refuses an OPEN on such a second connection the same way, though it takes any
/// connection it accepts while Established as a restart. Taken for a restart here, it
/// cost the session: both ends closed the one they had agreed on, and BIRD connected
/// again after its 5 s connect delay (seen in `cic bench scale`, 4 times in one cold
/// start, once in a bring-up with the handshake 2 ms before the session came up and the
/// accept after). On the peer's own connection there is no attempt of its left to cross:
/// a new one is its restart at once. A genuine restart refused in the window is taken at
/// the peer's next attempt, or ends with our hold timer.
fn restarted_by(accepted: Instant, established: Option<Instant>, ours: bool) -> bool {
    established.is_some_and(|e| !ours || accepted >= e + RESTART_NOT_BEFORE)
}

/// The send hold time RFC 9687 §5 suggests for a hold time (seconds).
pub fn default_send_hold(hold_time: u16) -> Duration {
    MIN_SEND_HOLD.max(Duration::from_secs(2 * u64::from(hold_time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_at_one_message_and_grow_while_they_fill() {
        // A session passing KEEPALIVEs reads little: the size stays the smallest.
        assert_eq!(next_read(READ_SMALL, 19, READ_SMALL), READ_SMALL);
        // A table arriving fills each read: the size doubles up to READ_CHUNK, and stays.
        let mut size = READ_SMALL;
        for _ in 0..10 {
            size = next_read(size, size, size);
        }
        assert_eq!(size, READ_CHUNK);
        assert_eq!(next_read(size, 19, READ_CHUNK), READ_CHUNK);
    }

    #[test]
    fn the_send_hold_time_is_eight_minutes_or_twice_the_hold_time() {
        assert_eq!(default_send_hold(90), Duration::from_secs(480));
        assert_eq!(default_send_hold(300), Duration::from_secs(600));
    }

    /// The next message on `s` (None at its end).
    async fn next_message(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Message> {
        loop {
            if let Some((m, n)) =
                wire::decode_message(buf, &DecodeContext::default()).expect("a well-formed message")
            {
                let _ = buf.split_to(n);
                return Some(m);
            }
            let read = tokio::time::timeout(Duration::from_secs(10), s.read_buf(buf))
                .await
                .expect("the session to send or close")
                .ok()?;
            if read == 0 {
                return None;
            }
        }
    }

    /// Waits until the session tells of `want` (any other event passed over).
    async fn wait_for_state(
        events: &mut mpsc::Receiver<(PeerId, PeerEvent)>,
        want: State,
        wait: Duration,
    ) {
        loop {
            match tokio::time::timeout(wait, events.recv()).await {
                Ok(Some((_, PeerEvent::State { state, .. }))) if state == want => return,
                Ok(Some(_)) => {}
                Ok(None) => panic!("the session ended before {want:?}"),
                Err(_) => panic!("no {want:?} within {wait:?}"),
            }
        }
    }

    /// The states the session has told of so far.
    fn states(events: &mut mpsc::Receiver<(PeerId, PeerEvent)>) -> Vec<State> {
        std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|(_, e)| match e {
                PeerEvent::State { state, .. } => Some(state),
                _ => None,
            })
            .collect()
    }

    /// A session with graceful restart up on our connection is handed a connection the
    /// peer opened: accepted before the session came up or just after (the peer's attempt
    /// crossing ours), it is refused as a collision and the session stays; accepted once
    /// it has been up a while, it is the peer's restart and the session opens on it. Real sockets on loopback; the
    /// listener's part (when it accepted) is played by the test.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_s_connection_as_the_session_comes_up_is_a_collision_not_its_restart() {
        use crate::fsm::{GrConfig, SessionConfig};
        use crate::instance::PeerSpec;
        use crate::policy::Role;
        use crate::wire::{Capability, GrFamily, GracefulRestart, Open};
        use tokio::net::{TcpListener, TcpSocket};

        let us = Ipv4Addr::new(127, 0, 29, 1);
        let peer = Ipv4Addr::new(127, 0, 29, 2);
        let port = 17290;
        let peer_side = TcpListener::bind((peer, port))
            .await
            .expect("bind the peer");
        let our_side = TcpListener::bind((us, port)).await.expect("bind ours");
        let cfg = PeerConfig {
            spec: PeerSpec {
                name: "pc-1".into(),
                role: Role::Customer,
                address: peer.into(),
                local_address: us.into(),
                local_address6: None,
                asn: 65001,
                policy: None,
            },
            session: SessionConfig {
                local_asn: 200_350,
                router_id: Ipv4Addr::new(10, 255, 0, 1),
                peer_asn: 65001,
                hold_time: 90,
                min_hold_time: 0,
                connect_retry: Duration::from_secs(30),
                passive: false,
                graceful_restart: Some(GrConfig {
                    restart_time: 120,
                    restarting: false,
                }),
                ipv4: true,
                ipv6: false,
                role: None,
                damping: None,
            },
            md5_key: None,
            ttl_security: false,
            port,
            send_hold_time: None,
        };
        let (events_tx, mut events) = mpsc::channel(1024);
        let (cmds, cmds_rx) = mpsc::channel(8);
        let task = SessionTask::new(
            1,
            cfg,
            super::super::plain_sockets(),
            events_tx,
            Arc::new(Notify::new()),
        );
        tokio::spawn(task.run(cmds_rx));

        // The peer takes our connection and the session comes up on it.
        let wait = Duration::from_secs(10);
        let (mut ours, _) = tokio::time::timeout(wait, peer_side.accept())
            .await
            .expect("our connection in time")
            .expect("our connection");
        let mut buf = BytesMut::new();
        assert!(matches!(
            next_message(&mut ours, &mut buf).await,
            Some(Message::Open(_))
        ));
        let mut open = Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 2));
        open.capabilities
            .push(Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: 120,
                families: vec![GrFamily {
                    afi: 1,
                    safi: 1,
                    forwarding: true,
                }],
            }));
        let before_up = Instant::now();
        ours.write_all(&Message::Open(open).encode()).await.unwrap();
        ours.write_all(&Message::Keepalive.encode()).await.unwrap();
        wait_for_state(&mut events, State::Established, wait).await;

        // A connection from the peer, handed over as the listener would.
        let theirs = || async {
            let s = TcpSocket::new_v4().unwrap();
            s.bind(SocketAddr::new(peer.into(), 0)).unwrap();
            let peer_end = tokio::time::timeout(wait, s.connect(SocketAddr::new(us.into(), port)))
                .await
                .expect("connected in time")
                .unwrap();
            let (our_end, _) = tokio::time::timeout(wait, our_side.accept())
                .await
                .expect("accepted in time")
                .unwrap();
            (peer_end, our_end)
        };

        // Accepted while the session was opening, or just after it came up: the peer's
        // attempt crossing ours, refused, the session kept.
        for accepted in [before_up, Instant::now()] {
            let (mut crossing, our_end) = theirs().await;
            cmds.send(SessionCmd::Incoming(our_end, accepted))
                .await
                .unwrap();
            let mut buf = BytesMut::new();
            match next_message(&mut crossing, &mut buf).await {
                Some(Message::Notification(n)) => assert_eq!(
                    (n.code, n.subcode),
                    (wire::error_code::CEASE, cease::COLLISION)
                ),
                other => panic!(
                    "a connection the peer opened as the session came up was taken (it got {other:?}, not a Cease)"
                ),
            }
            assert!(next_message(&mut crossing, &mut buf).await.is_none());
            assert_eq!(states(&mut events), vec![], "the session stays up");
        }

        // Accepted once the session has been up a while (the listener's stamp says so
        // here rather than the test waiting): the peer's restart, the session opens on it.
        let (mut again, our_end) = theirs().await;
        cmds.send(SessionCmd::Incoming(
            our_end,
            Instant::now() + RESTART_NOT_BEFORE,
        ))
        .await
        .unwrap();
        let mut buf = BytesMut::new();
        assert!(
            matches!(
                next_message(&mut again, &mut buf).await,
                Some(Message::Open(_))
            ),
            "a connection opened once the session had been up a while is the peer's restart"
        );
        // The OPEN goes to the writer before the state is told: wait for it.
        wait_for_state(&mut events, State::OpenSent, wait).await;
        drop(cmds);
    }

    #[tokio::test]
    async fn a_writer_done_with_nothing_never_ends() {
        let mut none: Option<Writer> = None;
        let r = tokio::time::timeout(Duration::from_millis(10), writer_done(&mut none)).await;
        assert!(r.is_err());
    }
}
