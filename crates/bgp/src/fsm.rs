//! The BGP session state machine of RFC 4271 §8, sans-IO: [`Input`]s go in, [`Output`]s
//! come out, and a driver turns outputs into socket writes, connects and timers.
//!
//! ```text
//!            Start                 TcpConnected              OPEN ok
//!   Idle ───────────▶ Connect ─────────────────▶ OpenSent ─────────▶ OpenConfirm
//!    ▲  ◀── error ──   │  ▲ retry                                        │ KEEPALIVE
//!    │                 ▼  │                                              ▼
//!    │               Active ── TcpConnected (incoming) ──▶ OpenSent   Established
//!    └──────── NOTIFICATION / hold timer / TCP closed / decode error ────┘
//! ```
//!
//! After an error the session waits in Idle for the idle-hold time, which doubles on each
//! failure before Established (RFC 4271 §8.1.1 DampPeerOscillations) and resets once the
//! session is up; a Cease from the local side can ask for a fixed hold (max-prefix).
//!
//! With damping on ([`SessionConfig::damping`], the longest wait), a session that keeps
//! going down soon after coming up is held down: from the second time it goes down within
//! [`STABLE`] of becoming Established, it waits in Idle 2 s, then 4 s, doubling up to that
//! longest wait, refusing the peer's connections and not cut short by its BFD coming Up;
//! staying Established for [`STABLE`] forgives it. Each flap costs both sides a table
//! exchange: an edge whose peers flap because the machine is loaded (BFD packets late)
//! would otherwise keep itself loaded. An administrative Stop is never counted. Off by
//! default, as in the routers operators know (BIRD, FRR, Junos have no such hold; IOS XR
//! and VRP's BFD dampening is off until configured).

use std::net::Ipv4Addr;
use std::time::Duration;

mod open;
pub use open::Negotiated;

pub use cic_model::edge::SessionFailure;

use crate::wire::{
    Afi, BgpRole, Capability, DecodeError, GrFamily, GracefulRestart, Message as Msg, Notification,
    Open, Update, cease, error_code, open_err, refresh,
};

/// RFC 4271 §8: a large hold time while waiting for the peer's OPEN.
const OPEN_SENT_HOLD: Duration = Duration::from_secs(240);
const MAX_IDLE_HOLD: Duration = Duration::from_secs(120);
/// The first wait in Idle after a failure (RFC 4271's DampPeerOscillations, §8.1.1):
/// short, since the commonest failure is a peer that refused us for a moment (BIRD does
/// for a second after any error), then doubled each time up to [`MAX_IDLE_HOLD`]; never
/// longer than the connect retry time to begin with.
const FIRST_IDLE_HOLD: Duration = Duration::from_secs(1);
/// How long a session must stay Established for its earlier downs to be forgiven.
pub const STABLE: Duration = Duration::from_secs(60);
/// The wait of the first damped down (the second within [`STABLE`] of coming up), or
/// the longest wait configured if that is shorter.
pub const FIRST_DAMP: Duration = Duration::from_secs(2);
/// The wait after the path to the peer failed (its BFD went Down), undamped.
const PATH_DOWN_HOLD: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub router_id: Ipv4Addr,
    pub peer_asn: u32,
    pub hold_time: u16,
    /// Smaller hold times (including 0) are refused; 0 accepts any RFC-valid value.
    pub min_hold_time: u16,
    pub connect_retry: Duration,
    /// Never initiate a connection; wait for the peer's.
    pub passive: bool,
    /// Graceful restart (RFC 4724) for the families we announce: announced when set.
    pub graceful_restart: Option<GrConfig>,
    /// The families we announce (RFC 4760): at least one.
    pub ipv4: bool,
    pub ipv6: bool,
    /// Our BGP role on this session (RFC 9234), announced; with `strict`, a peer that
    /// announces none is refused too.
    pub role: Option<RoleConfig>,
    /// Damping of a session that keeps going down soon after coming up (see the module's
    /// doc): the longest it is held down. `None`: off.
    pub damping: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleConfig {
    pub role: BgpRole,
    pub strict: bool,
}

/// What we announce in the Graceful Restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrConfig {
    /// How long a peer should keep our routes while our session is down.
    pub restart_time: u16,
    /// We have restarted with our forwarding state kept (the R and F bits), until the
    /// driver says the restart is over.
    pub restarting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "IDLE",
            State::Connect => "CONNECT",
            State::Active => "ACTIVE",
            State::OpenSent => "OPEN_SENT",
            State::OpenConfirm => "OPEN_CONFIRM",
            State::Established => "ESTABLISHED",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    IdleHold,
    /// Runs for [`STABLE`] from Established: a session still up when it ends is stable.
    Stable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Administrative start (and automatic restart after the idle hold).
    Start,
    /// Administrative stop: the notification is sent if a connection is up. With
    /// `restart_after`, the session starts again by itself after that long.
    Stop {
        notification: Notification,
        restart_after: Option<Duration>,
    },
    /// A TCP connection to the peer is up (ours or the peer's, accepted).
    TcpConnected,
    /// The connection closed (or an attempt failed, when the driver cannot say why).
    TcpFailed,
    /// The connection timed out: the other end answered none of the kernel's probes (see
    /// the driver's `probe_while_opening`) or retransmissions. As [`Input::TcpFailed`], but
    /// said as a peer that stopped answering, not one that closed.
    TcpTimedOut,
    /// Our connection attempt failed, and how.
    ConnectFailed(SessionFailure),
    Message(Msg),
    /// The bytes from the peer could not be decoded.
    DecodeError(DecodeError),
    TimerExpired(Timer),
    /// The path to the peer is back (its BFD session came Up): a session waiting out the
    /// backoff after a failure starts now, with the backoff reset. A hold ordered by a
    /// Stop (a max-prefix teardown, a failover test) or by damping is not cut short.
    PathUp,
    /// The path to the peer failed (its BFD session went Down, RFC 5882 §4.3): a Cease
    /// (BFD Down) is sent and the session starts again after a second, or after its
    /// damped wait when it keeps flapping.
    PathDown {
        why: String,
    },
    /// The peer took none of our data for the send hold time (RFC 9687): the writer has
    /// attempted the NOTIFICATION and closed the connection.
    SendHoldTimerExpired,
    /// A new connection from the peer, already attached, while the session is
    /// Established, and graceful restart was negotiated: the peer restarted and its old
    /// connection is gone without our seeing it (RFC 4724 §4.2). The session goes down
    /// as a graceful restart and opens again on the new connection.
    PeerRestarted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Start an outgoing TCP connection attempt (dropping any attempt under way).
    Connect,
    Send(Msg),
    /// Close the connection (or abandon the attempt).
    Disconnect,
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    Established(Negotiated),
    /// The session left Established; the reason is for people. `graceful`: the
    /// connection ended without a NOTIFICATION and graceful restart was negotiated, so the
    /// peer's routes are kept as stale while it restarts (RFC 4724 §4.2).
    Down {
        why: String,
        graceful: bool,
    },
    Update(Update),
    /// A ROUTE-REFRESH of a family the session carries: the peer asks for our routes
    /// again (`subtype` [`refresh::REQUEST`], RFC 2918), or begins or ends sending its own
    /// again ([`refresh::BEGIN`], [`refresh::END`]; RFC 7313, only when negotiated).
    RouteRefresh {
        afi: Afi,
        subtype: u8,
    },
}

/// What a session waiting out its backoff in Idle failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backoff {
    /// An error either side found (a refused OPEN, a hold timer, a NOTIFICATION).
    AfterError,
    /// The connection closing under us (RFC 4271 §8.2.2: TcpConnectionFails, after which
    /// the FSM listens in Active).
    AfterClose,
    /// The session keeps going down soon after coming up (see the module's doc).
    Damped,
}

#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    state: State,
    started: bool,
    negotiated: Option<Negotiated>,
    idle_hold: Duration,
    /// Idle only because of the backoff after a failure (not a Stop's hold), and which.
    backoff: Option<Backoff>,
    /// The session being taken down qualifies for graceful restart (set around `fail`).
    graceful_down: bool,
    last_error: Option<String>,
    /// `last_error` as a fact (see [`Session::last_failure`]).
    failure: Option<SessionFailure>,
    /// Set just before `fail` by a caller that knows more than `why` says.
    next_failure: Option<SessionFailure>,
    /// Why our last connection attempt failed, since the last failure or connection.
    connect_failure: Option<SessionFailure>,
    /// Downs from Established with no stable period between them (see [`STABLE`]).
    flaps: u32,
}

fn first_idle_hold(cfg: &SessionConfig) -> Duration {
    FIRST_IDLE_HOLD.min(cfg.connect_retry)
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Self {
        let idle_hold = first_idle_hold(&cfg);
        Session {
            cfg,
            state: State::Idle,
            started: false,
            negotiated: None,
            idle_hold,
            backoff: None,
            graceful_down: false,
            last_error: None,
            failure: None,
            next_failure: None,
            connect_failure: None,
            flaps: 0,
        }
    }

    /// Downs from Established in a row, each within [`STABLE`] of coming up.
    pub fn flaps(&self) -> u32 {
        self.flaps
    }

    /// A new longest damped wait (`None`: off) for this session as it runs: the next down
    /// is judged by it; a hold under way keeps its length.
    pub fn set_damping(&mut self, damping: Option<Duration>) {
        self.cfg.damping = damping;
    }

    pub fn state(&self) -> State {
        self.state
    }
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }
    /// The last reason the session went down or could not come up.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
    /// What stands in the way now, as a fact: our last connection attempt's failure if
    /// one failed since, else why the session last went down or was refused.
    pub fn last_failure(&self) -> Option<&SessionFailure> {
        self.connect_failure.as_ref().or(self.failure.as_ref())
    }
    /// The restart is over: OPENs from now on say so (no R and F bits).
    pub fn restart_done(&mut self) {
        if let Some(g) = &mut self.cfg.graceful_restart {
            g.restarting = false;
        }
    }

    /// Whether the peer is in our AS (decides LOCAL_PREF handling and next hops).
    pub fn is_ibgp(&self) -> bool {
        self.cfg.peer_asn == self.cfg.local_asn
    }

    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.step(input, &mut out);
        out
    }

    fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        use Input::*;
        use State::*;
        match (self.state, input) {
            // -- administrative events, any state
            (_, Start) => {
                self.started = true;
                if self.state == Idle {
                    self.begin(out);
                }
            }
            (
                _,
                Stop {
                    notification,
                    restart_after,
                },
            ) => {
                if matches!(self.state, OpenSent | OpenConfirm | Established) {
                    self.notify(out, notification.clone());
                }
                let why = format!("stopped locally: {}", notification.describe());
                self.started = restart_after.is_some();
                self.go_idle(out, why, restart_after);
                self.backoff = None;
            }
            (Idle, PathDown { .. }) => {}
            (state, PathDown { why }) => {
                if matches!(state, OpenSent | OpenConfirm | Established) {
                    self.notify(out, Notification::new(error_code::CEASE, cease::BFD_DOWN));
                }
                let damp = self.flapped();
                let hold = damp.unwrap_or(PATH_DOWN_HOLD);
                self.go_idle(out, why, Some(hold));
                self.backoff = damp.map(|_| Backoff::Damped);
                self.say_damped(damp);
            }
            (Idle, TimerExpired(Timer::IdleHold)) => {
                if self.started {
                    self.begin(out);
                }
            }
            (Idle, PathUp) => {
                if self.started
                    && matches!(
                        self.backoff,
                        Some(Backoff::AfterError | Backoff::AfterClose)
                    )
                {
                    out.push(Output::StopTimer(Timer::IdleHold));
                    self.idle_hold = first_idle_hold(&self.cfg);
                    self.begin(out);
                }
            }
            (Connect | Active, PathUp) => {
                // Waiting for the connect-retry timer: try now.
                if !self.cfg.passive {
                    out.push(Output::StartTimer(
                        Timer::ConnectRetry,
                        self.cfg.connect_retry,
                    ));
                    out.push(Output::Connect);
                    self.state = Connect;
                }
            }
            (Idle, TcpConnected) if self.accepts_connection() => {
                // The connection closed under us and we wait out the backoff: the peer
                // connecting now is ready, so the session opens on its connection (RFC
                // 4271 §8.2.2 has a failed connection wait in Active, listening; the
                // backoff is ours, to keep from hammering a peer, not to turn it away).
                // After an error either side found (a refused OPEN, a hold timer, a
                // NOTIFICATION) Idle refuses, as the RFC's Idle does. The backoff keeps
                // its length until the session is Established.
                out.push(Output::StopTimer(Timer::IdleHold));
                self.backoff = None;
                self.connect_failure = None;
                out.push(Output::Send(Msg::Open(self.open())));
                out.push(Output::StartTimer(Timer::Hold, OPEN_SENT_HOLD));
                self.state = OpenSent;
            }
            (Idle, _) => {} // everything else is ignored in Idle (RFC 4271 §8.2.2)

            // -- waiting for TCP
            (Connect | Active, TcpConnected) => {
                self.connect_failure = None;
                out.push(Output::StopTimer(Timer::ConnectRetry));
                out.push(Output::Send(Msg::Open(self.open())));
                out.push(Output::StartTimer(Timer::Hold, OPEN_SENT_HOLD));
                self.state = OpenSent;
            }
            (Connect, ConnectFailed(f)) => {
                self.connect_failure = Some(f);
                out.push(Output::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.connect_retry,
                ));
                self.state = Active;
            }
            // An attempt of ours failing while the peer's connection is up means nothing.
            (_, ConnectFailed(_)) => {}
            (Connect, TcpFailed) => {
                out.push(Output::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.connect_retry,
                ));
                self.state = Active;
            }
            (Connect | Active, TimerExpired(Timer::ConnectRetry)) => {
                // Our attempt did not complete within the connect retry time (RFC 4271
                // §8.2.2: it is dropped for a new one). Said as the failure it is: the
                // attempt's own timeout, as long, may lose the race with this timer.
                if self.state == Connect {
                    self.connect_failure = Some(SessionFailure::ConnectTimedOut);
                }
                out.push(Output::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.connect_retry,
                ));
                if !self.cfg.passive {
                    out.push(Output::Connect);
                    self.state = Connect;
                }
            }
            (Connect | Active, _) => {}

            // -- connected, any of OpenSent / OpenConfirm / Established
            (_, PathUp) => {}
            (_, DecodeError(e)) => {
                self.notify(out, e.notification.clone());
                self.fail(
                    out,
                    format!("sent {}: {}", e.notification.describe(), e.reason),
                );
            }
            (state, input @ (TcpFailed | TcpTimedOut)) => {
                let timed_out = matches!(input, TcpTimedOut);
                self.graceful_down = self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.graceful_restart.is_some());
                if state != Established {
                    self.next_failure = Some(if timed_out {
                        SessionFailure::ConnectFailed {
                            error: "connected, then the peer answered nothing before the session \
                                    came up (no reply to TCP probes or retransmissions)"
                                .into(),
                        }
                    } else {
                        SessionFailure::ClosedBeforeOpen
                    });
                }
                let why = if timed_out {
                    "TCP connection timed out: the other end stopped answering"
                } else {
                    "TCP connection closed"
                };
                self.fail(out, why.into());
                if self.backoff != Some(Backoff::Damped) {
                    self.backoff = Some(Backoff::AfterClose);
                }
            }
            (_, SendHoldTimerExpired) => {
                self.fail(
                    out,
                    format!(
                        "sent {}: the peer took none of our data for the send hold time (RFC 9687)",
                        Notification::new(error_code::SEND_HOLD_TIMER_EXPIRED, 0).describe()
                    ),
                );
            }
            (_, TimerExpired(Timer::Hold)) => {
                self.notify(out, Notification::new(error_code::HOLD_TIMER_EXPIRED, 0));
                self.fail(out, "hold timer expired".into());
            }
            (OpenSent | OpenConfirm, Message(Msg::Notification(n)))
                if n.code == error_code::CEASE && n.subcode == cease::COLLISION =>
            {
                // The peer kept another connection (RFC 4271 §6.8): no failure of the
                // session, so no backoff. We wait in Active, where the peer's connection
                // is taken, until the connect retry timer (jittered by the driver, RFC
                // 4271 §10) says to try ours again: two speakers that each kept their own
                // connection and refused the other's do not come back in step.
                out.push(Output::Disconnect);
                for t in [Timer::Hold, Timer::Keepalive, Timer::IdleHold] {
                    out.push(Output::StopTimer(t));
                }
                out.push(Output::StartTimer(
                    Timer::ConnectRetry,
                    self.cfg.connect_retry,
                ));
                // Said as what happened, but no failure: the session opens on the peer's
                // connection, and a failure recorded before (a refused connect, say) is
                // no longer true either.
                self.last_error = Some(format!("received {}", n.describe()));
                self.failure = None;
                self.next_failure = None;
                self.connect_failure = None;
                self.negotiated = None;
                self.state = Active;
            }
            (_, Message(Msg::Notification(n))) => {
                // RFC 8538: with the N bit on both sides, anything but a Hard Reset (or
                // what we take as one, see `is_hard`) is a graceful restart for the routes.
                self.graceful_down = self.notification_gr() && !n.is_hard();
                let (code, subcode, notification) = (n.code, n.subcode, n.describe());
                self.next_failure = Some(if self.state == Established {
                    SessionFailure::PeerNotification {
                        code,
                        subcode,
                        notification,
                    }
                } else {
                    SessionFailure::PeerRefusedOpen {
                        code,
                        subcode,
                        notification,
                    }
                });
                self.fail(out, format!("received {}", n.describe()));
            }
            (OpenSent, Message(Msg::Open(o))) => match self.check_open(&o) {
                Ok(n) => {
                    out.push(Output::Send(Msg::Keepalive));
                    if n.hold_time > 0 {
                        out.push(Output::StartTimer(Timer::Hold, secs(n.hold_time)));
                        out.push(Output::StartTimer(Timer::Keepalive, secs(n.keepalive)));
                    } else {
                        out.push(Output::StopTimer(Timer::Hold));
                    }
                    self.negotiated = Some(n);
                    self.state = OpenConfirm;
                }
                Err(notification) => {
                    self.next_failure = Some(self.refusal(&o, &notification));
                    let why = format!("refused the peer's OPEN: {}", notification.describe());
                    out.push(Output::Send(Msg::Notification(notification)));
                    self.fail(out, why);
                }
            },
            (Established, TimerExpired(Timer::Stable)) => self.flaps = 0,
            (OpenConfirm | Established, TimerExpired(Timer::Keepalive)) => {
                out.push(Output::Send(Msg::Keepalive));
                if let Some(n) = &self.negotiated {
                    out.push(Output::StartTimer(Timer::Keepalive, secs(n.keepalive)));
                }
            }
            (OpenConfirm, Message(Msg::Keepalive)) => {
                self.restart_hold(out);
                self.state = Established;
                self.idle_hold = first_idle_hold(&self.cfg);
                out.push(Output::StartTimer(Timer::Stable, STABLE));
                self.last_error = None;
                self.failure = None;
                self.connect_failure = None;
                if let Some(n) = &self.negotiated {
                    out.push(Output::Established(n.clone()));
                }
            }
            (Established, Message(Msg::Keepalive)) => self.restart_hold(out),
            (Established, Message(Msg::Update(u))) => {
                self.restart_hold(out);
                out.push(Output::Update(u));
            }
            (Established, Message(Msg::RouteRefresh { afi, safi, subtype })) => {
                // A family not negotiated, a marker without RFC 7313, a subtype of no
                // meaning (RFC 7313 §5): ignored.
                let n = self.negotiated.as_ref();
                let known = match subtype {
                    refresh::REQUEST => true,
                    refresh::BEGIN | refresh::END => n.is_some_and(|n| n.enhanced_route_refresh),
                    _ => false,
                };
                if let Some(afi) = Afi::from_code(afi).filter(|a| {
                    known && safi == Afi::SAFI_UNICAST && n.is_some_and(|n| n.carries(*a))
                }) {
                    out.push(Output::RouteRefresh { afi, subtype });
                }
            }
            (state @ (OpenSent | OpenConfirm | Established), Message(m)) => {
                // RFC 6608 subcodes: unexpected message in OpenSent / OpenConfirm / Established.
                let sub = match state {
                    OpenSent => 1,
                    OpenConfirm => 2,
                    _ => 3,
                };
                let n = Notification::new(error_code::FSM, sub);
                let why = format!(
                    "unexpected {} in {}: sent {}",
                    m.kind(),
                    state.name(),
                    n.describe()
                );
                self.notify(out, n);
                self.fail(out, why);
            }
            // Connection collision (RFC 4271 §6.8), resolved by the driver: it closed the
            // old connection and hands us the one to keep, on which we open again.
            (OpenSent | OpenConfirm, TcpConnected) => {
                out.push(Output::StopTimer(Timer::Keepalive));
                out.push(Output::Send(Msg::Open(self.open())));
                out.push(Output::StartTimer(Timer::Hold, OPEN_SENT_HOLD));
                self.negotiated = None;
                self.state = OpenSent;
            }
            (Established, TcpConnected) => {} // the driver refuses the second connection
            (Established, PeerRestarted) => {
                let graceful = self
                    .negotiated
                    .as_ref()
                    .is_some_and(|n| n.graceful_restart.is_some());
                for t in [Timer::Hold, Timer::Keepalive, Timer::Stable] {
                    out.push(Output::StopTimer(t));
                }
                let why = "the peer connected again: it restarted".to_string();
                out.push(Output::Down {
                    why: why.clone(),
                    graceful,
                });
                self.failure = Some(SessionFailure::Ended { why: why.clone() });
                self.last_error = Some(why);
                self.negotiated = None;
                out.push(Output::Send(Msg::Open(self.open())));
                out.push(Output::StartTimer(Timer::Hold, OPEN_SENT_HOLD));
                self.state = OpenSent;
            }
            (OpenSent | OpenConfirm | Established, TimerExpired(_)) => {}
            // (Only an Established session is one the peer can have restarted from.)
            (OpenSent | OpenConfirm, PeerRestarted) => {}
        }
    }

    /// Whether a connection the peer opens now is taken: always but in Idle, where only
    /// a session waiting out its backoff after its connection closed takes one (not one
    /// that failed on an error, one stopped, one damped, or one held down by a Stop such as a
    /// max-prefix hold).
    pub fn accepts_connection(&self) -> bool {
        self.state != State::Idle || (self.started && self.backoff == Some(Backoff::AfterClose))
    }

    fn begin(&mut self, out: &mut Vec<Output>) {
        self.backoff = None;
        out.push(Output::StartTimer(
            Timer::ConnectRetry,
            self.cfg.connect_retry,
        ));
        if self.cfg.passive {
            self.state = State::Active;
        } else {
            out.push(Output::Connect);
            self.state = State::Connect;
        }
    }

    /// Both sides announced the N bit of graceful restart (RFC 8538) on this session.
    fn notification_gr(&self) -> bool {
        self.state == State::Established
            && self.cfg.graceful_restart.is_some()
            && self
                .negotiated
                .as_ref()
                .and_then(|n| n.graceful_restart.as_ref())
                .is_some_and(|g| g.notification)
    }

    /// Sends a NOTIFICATION. Under RFC 8538 one that means the session is gone for good
    /// goes as a Hard Reset (the peer drops our routes, and we its); any other leaves both
    /// sides' routes as a graceful restart does.
    fn notify(&mut self, out: &mut Vec<Output>, n: Notification) {
        let n = if self.notification_gr() {
            self.graceful_down = !n.is_hard();
            if n.is_hard() && n.subcode != cease::HARD_RESET {
                n.hard_reset()
            } else {
                n
            }
        } else {
            n
        };
        out.push(Output::Send(Msg::Notification(n)));
    }

    fn restart_hold(&self, out: &mut Vec<Output>) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            out.push(Output::StartTimer(Timer::Hold, secs(n.hold_time)));
        }
    }

    /// An error on a live connection: close it, go Idle, restart after the idle hold.
    fn fail(&mut self, out: &mut Vec<Output>, why: String) {
        let damp = self.flapped();
        let hold = damp.map_or(self.idle_hold, |d| d.max(self.idle_hold));
        self.idle_hold = (self.idle_hold * 2).min(MAX_IDLE_HOLD);
        self.go_idle(out, why, Some(hold));
        self.backoff = Some(if damp.is_some() {
            Backoff::Damped
        } else {
            Backoff::AfterError
        });
        self.say_damped(damp);
    }

    /// Counts a down from Established that came before the session was stable, and says
    /// how long to hold it when it is to be damped: not the first in a row, which may be
    /// a failure like any other, but each after it, 2 s doubling up to the configured
    /// longest wait (none with damping off).
    /// Called before the session leaves its state; nothing for a session not Established.
    fn flapped(&mut self) -> Option<Duration> {
        if self.state != State::Established {
            return None;
        }
        self.flaps = self.flaps.saturating_add(1);
        let max = self.cfg.damping.filter(|d| !d.is_zero())?;
        (self.flaps >= 2).then(|| {
            let doublings = (self.flaps - 2).min(16);
            (FIRST_DAMP * 2u32.pow(doublings)).min(max)
        })
    }

    /// Puts a damped wait into the reason the session is down, for the operator.
    fn say_damped(&mut self, damp: Option<Duration>) {
        if let (Some(d), Some(why)) = (damp, &self.last_error) {
            self.last_error = Some(format!(
                "{why}; held down {} s: down again within {} s of coming up ({} downs in a row)",
                d.as_secs(),
                STABLE.as_secs(),
                self.flaps
            ));
        }
    }

    fn go_idle(&mut self, out: &mut Vec<Output>, why: String, restart_after: Option<Duration>) {
        if self.state != State::Idle {
            out.push(Output::Disconnect);
        }
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::IdleHold,
            Timer::Stable,
        ] {
            out.push(Output::StopTimer(t));
        }
        if self.state == State::Established {
            out.push(Output::Down {
                why: why.clone(),
                graceful: self.graceful_down,
            });
        }
        // (Set by whoever took the session down, for this Down alone.)
        self.graceful_down = false;
        if let (true, Some(d)) = (self.started, restart_after) {
            out.push(Output::StartTimer(Timer::IdleHold, d));
        }
        self.failure = Some(
            self.next_failure
                .take()
                .unwrap_or_else(|| SessionFailure::Ended { why: why.clone() }),
        );
        self.connect_failure = None;
        self.last_error = Some(why);
        self.negotiated = None;
        self.state = State::Idle;
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(s as u64)
}

/// Notification for a local administrative shutdown with a reason (RFC 9003).
pub fn admin_shutdown(text: &str) -> Notification {
    Notification::cease_with_text(cease::ADMIN_SHUTDOWN, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Message as M, update_err};

    fn cfg() -> SessionConfig {
        SessionConfig {
            local_asn: 200_350,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            peer_asn: 65001,
            hold_time: 90,
            min_hold_time: 90,
            connect_retry: Duration::from_secs(5),
            passive: false,
            graceful_restart: None,
            ipv4: true,
            ipv6: false,
            role: None,
            damping: None,
        }
    }

    fn peer_open(asn: u32, hold: u16) -> M {
        M::Open(Open::new(asn, hold, Ipv4Addr::new(192, 168, 10, 1)))
    }

    fn sent(out: &[Output]) -> Vec<&M> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    fn notification(out: &[Output]) -> Option<(u8, u8)> {
        sent(out).into_iter().find_map(|m| match m {
            M::Notification(n) => Some((n.code, n.subcode)),
            _ => None,
        })
    }

    fn gr_open(restart_time: u16) -> M {
        let mut o = Open::new(65001, 90, Ipv4Addr::new(192, 168, 10, 1));
        o.capabilities
            .push(Capability::GracefulRestart(GracefulRestart {
                restarting: false,
                notification: false,
                restart_time,
                families: vec![],
            }));
        M::Open(o)
    }

    fn our_gr(out: &[Output]) -> Option<GracefulRestart> {
        sent(out).into_iter().find_map(|m| match m {
            M::Open(o) => o.graceful_restart().cloned(),
            _ => None,
        })
    }

    #[test]
    fn graceful_restart_is_announced_negotiated_and_a_closed_connection_is_a_graceful_down() {
        let mut c = cfg();
        c.graceful_restart = Some(GrConfig {
            restart_time: 120,
            restarting: true,
        });
        let mut s = Session::new(c);
        s.handle(Input::Start);
        let out = s.handle(Input::TcpConnected);
        let gr = our_gr(&out).expect("GR capability in our OPEN");
        assert!(gr.restarting);
        assert_eq!(gr.restart_time, 120);
        assert_eq!(gr.family(Afi::Ipv4), Some(true), "forwarding kept for IPv4");
        s.handle(Input::Message(gr_open(90)));
        let out = s.handle(Input::Message(M::Keepalive));
        let Some(Output::Established(n)) = out.iter().find(|o| matches!(o, Output::Established(_)))
        else {
            panic!("not established: {out:?}")
        };
        assert_eq!(
            n.graceful_restart.as_ref().map(|g| g.restart_time),
            Some(90)
        );

        // The peer's process died: its kernel closed the connection, no NOTIFICATION.
        let out = s.handle(Input::TcpFailed);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Down { graceful: true, .. })),
            "{out:?}"
        );

        // Once the restart is over, our OPENs no longer carry R and F.
        s.restart_done();
        s.handle(Input::TimerExpired(Timer::IdleHold));
        let out = s.handle(Input::TcpConnected);
        let gr = our_gr(&out).expect("still announced");
        assert!(!gr.restarting);
        assert_eq!(gr.family(Afi::Ipv4), Some(false));
    }

    /// RFC 8538 with the N bit on both sides: a NOTIFICATION sent or received, or the hold
    /// timer, is a graceful restart for the routes; what ends the session for good goes
    /// as Cease / Hard Reset and is not; a received Hard Reset is not either.
    #[test]
    fn with_the_n_bit_a_notification_is_a_graceful_restart_unless_it_is_a_hard_reset() {
        let mut c = cfg();
        c.graceful_restart = Some(GrConfig {
            restart_time: 120,
            restarting: false,
        });
        let n_open = || {
            let mut o = Open::new(65001, 90, Ipv4Addr::new(192, 168, 10, 1));
            o.capabilities
                .push(Capability::GracefulRestart(GracefulRestart {
                    restarting: false,
                    notification: true,
                    restart_time: 90,
                    families: vec![],
                }));
            M::Open(o)
        };
        let established = || {
            let mut s = Session::new(c.clone());
            s.handle(Input::Start);
            let out = s.handle(Input::TcpConnected);
            assert!(
                our_gr(&out).is_some_and(|g| g.notification),
                "N bit announced"
            );
            s.handle(Input::Message(n_open()));
            s.handle(Input::Message(M::Keepalive));
            assert_eq!(s.state(), State::Established);
            s
        };
        let down = |out: &[Output]| {
            out.iter().find_map(|o| match o {
                Output::Down { graceful, .. } => Some(*graceful),
                _ => None,
            })
        };
        let notification = |out: &[Output]| {
            sent(out).into_iter().find_map(|m| match m {
                M::Notification(n) => Some(n.clone()),
                _ => None,
            })
        };

        let mut s = established();
        let out = s.handle(Input::TimerExpired(Timer::Hold));
        assert_eq!(down(&out), Some(true), "hold timer: graceful");
        assert_eq!(
            notification(&out).map(|n| (n.code, n.subcode)),
            Some((error_code::HOLD_TIMER_EXPIRED, 0))
        );

        let mut s = established();
        let out = s.handle(Input::Stop {
            notification: Notification::new(error_code::CEASE, cease::ADMIN_SHUTDOWN),
            restart_after: None,
        });
        assert_eq!(down(&out), Some(false), "administrative shutdown: for good");
        let n = notification(&out).expect("sent");
        assert_eq!((n.code, n.subcode), (error_code::CEASE, cease::HARD_RESET));
        assert_eq!(n.data, vec![error_code::CEASE, cease::ADMIN_SHUTDOWN]);

        let mut s = established();
        let out = s.handle(Input::Stop {
            notification: Notification::new(error_code::CEASE, cease::OUT_OF_RESOURCES),
            restart_after: Some(Duration::from_secs(1)),
        });
        assert_eq!(down(&out), Some(true), "out of resources: graceful");
        assert_eq!(
            notification(&out).map(|n| n.subcode),
            Some(cease::OUT_OF_RESOURCES)
        );

        for (subcode, graceful) in [
            (cease::OTHER_CONFIG_CHANGE, true),
            (cease::HARD_RESET, false),
            (cease::BFD_DOWN, false),
        ] {
            let mut s = established();
            let out = s.handle(Input::Message(M::Notification(Notification::new(
                error_code::CEASE,
                subcode,
            ))));
            assert_eq!(down(&out), Some(graceful), "received Cease/{subcode}");
        }
    }

    /// RFC 4724 §4.2: the peer's new connection while Established (graceful restart
    /// negotiated) ends the session as a graceful restart and opens on the new one.
    #[test]
    fn a_peer_that_connects_again_while_established_has_restarted() {
        let mut c = cfg();
        c.graceful_restart = Some(GrConfig {
            restart_time: 120,
            restarting: false,
        });
        let mut s = Session::new(c);
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(gr_open(90)));
        s.handle(Input::Message(M::Keepalive));
        assert_eq!(s.state(), State::Established);
        let out = s.handle(Input::PeerRestarted);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Down { graceful: true, .. })),
            "{out:?}"
        );
        assert!(matches!(sent(&out)[..], [M::Open(_)]), "{out:?}");
        assert!(
            !out.contains(&Output::Disconnect),
            "the new connection stays"
        );
        assert_eq!(s.state(), State::OpenSent);
        s.handle(Input::Message(gr_open(90)));
        s.handle(Input::Message(M::Keepalive));
        assert_eq!(s.state(), State::Established);
        // Not from OpenSent: nothing to restart from.
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        assert!(s.handle(Input::PeerRestarted).is_empty());
    }

    #[test]
    fn a_down_is_not_graceful_after_a_notification_or_without_the_peers_capability() {
        let mut c = cfg();
        c.graceful_restart = Some(GrConfig {
            restart_time: 120,
            restarting: false,
        });
        // Hold timer: we send a NOTIFICATION.
        let mut s = Session::new(c.clone());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(gr_open(90)));
        s.handle(Input::Message(M::Keepalive));
        let out = s.handle(Input::TimerExpired(Timer::Hold));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Down {
                graceful: false,
                ..
            }
        )));
        // A peer that did not announce graceful restart.
        let mut s = Session::new(c);
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        let out = s.handle(Input::Message(M::Keepalive));
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Established(n) if n.graceful_restart.is_none()))
        );
        let out = s.handle(Input::TcpFailed);
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Down {
                graceful: false,
                ..
            }
        )));
        // And without our own capability, a peer's is not negotiated.
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        let out = s.handle(Input::TcpConnected);
        assert_eq!(our_gr(&out), None);
        s.handle(Input::Message(gr_open(90)));
        let out = s.handle(Input::Message(M::Keepalive));
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::Established(n) if n.graceful_restart.is_none()))
        );
    }

    /// Drives a session to Established and returns it.
    fn established() -> Session {
        established_with(cfg())
    }

    fn established_with(cfg: SessionConfig) -> Session {
        let mut s = Session::new(cfg);
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 240)));
        let out = s.handle(Input::Message(M::Keepalive));
        assert!(out.iter().any(|o| matches!(o, Output::Established(_))));
        s
    }

    #[test]
    fn start_connects_and_arms_the_retry_timer() {
        let mut s = Session::new(cfg());
        let out = s.handle(Input::Start);
        assert_eq!(s.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
        assert!(out.contains(&Output::StartTimer(
            Timer::ConnectRetry,
            Duration::from_secs(5)
        )));
    }

    #[test]
    fn passive_session_waits_in_active_without_connecting() {
        let mut s = Session::new(SessionConfig {
            passive: true,
            ..cfg()
        });
        let out = s.handle(Input::Start);
        assert_eq!(s.state(), State::Active);
        assert!(!out.contains(&Output::Connect));
        let out = s.handle(Input::TimerExpired(Timer::ConnectRetry));
        assert!(!out.contains(&Output::Connect));
    }

    #[test]
    fn failed_connect_goes_active_and_retries_on_timer() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpFailed);
        assert_eq!(s.state(), State::Active);
        let out = s.handle(Input::TimerExpired(Timer::ConnectRetry));
        assert_eq!(s.state(), State::Connect);
        assert!(out.contains(&Output::Connect));
    }

    #[test]
    fn tcp_up_sends_open_with_our_asn_and_hold_time() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        let out = s.handle(Input::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
        let [M::Open(o)] = sent(&out)[..] else {
            panic!("expected one OPEN, got {out:?}")
        };
        assert_eq!(o.asn(), 200_350);
        assert_eq!(
            o.my_as, 23456,
            "4-octet ASN goes in the capability, AS_TRANS in My AS"
        );
        assert_eq!(o.hold_time, 90);
        assert!(out.contains(&Output::StartTimer(Timer::Hold, Duration::from_secs(240))));
    }

    #[test]
    fn incoming_connection_in_active_also_opens() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpFailed);
        s.handle(Input::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
    }

    #[test]
    fn a_connection_from_the_peer_during_the_failure_backoff_opens_at_once() {
        // Our connection was taken and closed before any OPEN (BIRD does so while its
        // interface is not up yet): we back off, 1 s, 2 s, … up to two minutes. The peer
        // connecting in the meantime is ready: its connection is taken, not refused.
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        for _ in 0..5 {
            s.handle(Input::TcpConnected);
            s.handle(Input::TcpFailed);
            assert_eq!(s.state(), State::Idle);
            s.handle(Input::TimerExpired(Timer::IdleHold));
        }
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::TcpFailed);
        assert!(out.contains(&Output::StartTimer(
            Timer::IdleHold,
            Duration::from_secs(32)
        )));
        assert!(s.accepts_connection());
        let out = s.handle(Input::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
        assert!(out.contains(&Output::StopTimer(Timer::IdleHold)), "{out:?}");
        assert!(matches!(sent(&out)[..], [M::Open(_)]), "{out:?}");
        // Still failing: the backoff goes on growing from where it was.
        let out = s.handle(Input::TcpFailed);
        assert!(out.contains(&Output::StartTimer(
            Timer::IdleHold,
            Duration::from_secs(64)
        )));
        // Once up, it starts again from the first.
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        s.handle(Input::Message(M::Keepalive));
        assert_eq!(s.state(), State::Established);
        let out = s.handle(Input::TcpFailed);
        assert!(out.contains(&Output::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
    }

    #[test]
    fn after_an_error_found_on_the_connection_the_backoff_refuses_the_peer() {
        // The peer's OPEN refused (its AS is not the one configured): Idle refuses its
        // next connection until our backoff ends, as RFC 4271's Idle does.
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65099, 90)));
        assert_eq!(s.state(), State::Idle);
        assert!(!s.accepts_connection());
        assert!(s.handle(Input::TcpConnected).is_empty());
        assert_eq!(s.state(), State::Idle);
        // A hold timer run out is the same.
        let mut s = established();
        s.handle(Input::TimerExpired(Timer::Hold));
        assert!(!s.accepts_connection());
        // A connection closed under an Established session is taken again at once.
        let mut s = established();
        s.handle(Input::TcpFailed);
        assert!(s.accepts_connection());
    }

    /// From Idle after its hold (or from Connect): the peer's connection, OPEN and
    /// KEEPALIVE, to Established.
    fn come_up(s: &mut Session) {
        if s.state() == State::Idle {
            s.handle(Input::TimerExpired(Timer::IdleHold));
        }
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 240)));
        let out = s.handle(Input::Message(M::Keepalive));
        assert_eq!(s.state(), State::Established);
        assert!(
            out.contains(&Output::StartTimer(Timer::Stable, STABLE)),
            "{out:?}"
        );
    }

    fn idle_hold(out: &[Output]) -> Option<Duration> {
        out.iter().find_map(|o| match o {
            Output::StartTimer(Timer::IdleHold, d) => Some(*d),
            _ => None,
        })
    }

    fn bfd_down() -> Input {
        Input::PathDown {
            why: "BFD session down: control detection time expired".into(),
        }
    }

    /// Damping on, held down at most a minute.
    fn damped() -> SessionConfig {
        SessionConfig {
            damping: Some(Duration::from_secs(60)),
            ..cfg()
        }
    }

    #[test]
    fn a_session_that_keeps_going_down_soon_after_coming_up_is_held_longer_each_time() {
        let mut s = established_with(damped());
        // The first down is a failure like any other: Cease (BFD Down), a second's wait.
        let out = s.handle(bfd_down());
        let n = sent(&out)
            .into_iter()
            .find_map(|m| match m {
                M::Notification(n) => Some(n.clone()),
                _ => None,
            })
            .expect("a NOTIFICATION");
        assert_eq!((n.code, n.subcode), (error_code::CEASE, cease::BFD_DOWN));
        assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
        assert!(out.contains(&Output::StopTimer(Timer::Stable)), "{out:?}");
        assert_eq!(s.flaps(), 1);
        come_up(&mut s);
        // Down again before it was stable: held 2 s, then doubling up to a minute; the
        // peer's connections are refused and BFD coming Up does not cut the hold short.
        for want in [2, 4, 8, 16, 32, 60, 60] {
            let out = s.handle(bfd_down());
            assert_eq!(idle_hold(&out), Some(Duration::from_secs(want)), "{out:?}");
            assert!(!s.accepts_connection());
            assert!(s.handle(Input::PathUp).is_empty());
            assert!(s.handle(Input::TcpConnected).is_empty());
            assert_eq!(s.state(), State::Idle);
            let why = s.last_error().expect("why");
            assert!(
                why.starts_with("BFD session down") && why.contains(&format!("held down {want} s")),
                "{why}"
            );
            come_up(&mut s);
        }
        // A minute Established forgives it: the next down is a first again.
        s.handle(Input::TimerExpired(Timer::Stable));
        assert_eq!(s.flaps(), 0);
        let out = s.handle(bfd_down());
        assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
        assert!(!s.last_error().expect("why").contains("held down"));
    }

    #[test]
    fn flaps_by_errors_and_closed_connections_are_damped_too_but_not_stops() {
        // A closed connection, then a hold timer run out before the session was stable.
        let mut s = established_with(damped());
        let out = s.handle(Input::TcpFailed);
        assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
        assert!(s.accepts_connection(), "a first close takes the peer back");
        come_up(&mut s);
        let out = s.handle(Input::TimerExpired(Timer::Hold));
        assert_eq!(idle_hold(&out), Some(FIRST_DAMP));
        assert!(!s.accepts_connection());
        assert!(s.handle(Input::PathUp).is_empty(), "not cut short");
        come_up(&mut s);
        // A closed connection while damped refuses the peer's next one until the hold
        // ends (undamped, it would take it at once).
        let out = s.handle(Input::TcpFailed);
        assert_eq!(idle_hold(&out), Some(FIRST_DAMP * 2));
        assert!(!s.accepts_connection());

        // An administrative Stop (a config change, a failover test's hold) is not a flap.
        let mut s = established_with(damped());
        s.handle(Input::Stop {
            notification: Notification::new(error_code::CEASE, cease::OTHER_CONFIG_CHANGE),
            restart_after: Some(Duration::from_secs(1)),
        });
        come_up(&mut s);
        assert_eq!(s.flaps(), 0);
        let out = s.handle(bfd_down());
        assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
        // Nor does a down before Established count: only sessions that came up flap.
        let mut s = Session::new(damped());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(bfd_down());
        assert_eq!(s.flaps(), 0);
    }

    #[test]
    fn without_damping_a_flapping_session_waits_as_after_any_failure() {
        let mut s = established();
        for _ in 0..5 {
            let out = s.handle(bfd_down());
            assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
            come_up(&mut s);
            let out = s.handle(Input::TcpFailed);
            assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
            assert!(
                s.accepts_connection(),
                "the peer's connection is taken at once"
            );
            come_up(&mut s);
        }
        assert!(!s.last_error().unwrap_or_default().contains("held down"));
        // Damping turned on while it runs (the operator's setting changed): the downs
        // counted meanwhile count, the next is held.
        s.set_damping(Some(Duration::from_secs(60)));
        let out = s.handle(bfd_down());
        assert_eq!(
            idle_hold(&out),
            Some(Duration::from_secs(60)),
            "the 11th down in a row"
        );
        assert!(!s.accepts_connection());
        // A shorter longest wait than the first damped one caps it.
        let mut s = established_with(SessionConfig {
            damping: Some(Duration::from_secs(1)),
            ..cfg()
        });
        s.handle(bfd_down());
        come_up(&mut s);
        let out = s.handle(bfd_down());
        assert_eq!(idle_hold(&out), Some(Duration::from_secs(1)));
        assert!(!s.accepts_connection(), "still damped: the peer waits");
    }

    #[test]
    fn a_session_stopped_or_held_by_a_stop_refuses_the_peer_s_connection() {
        let s = Session::new(cfg());
        assert!(!s.accepts_connection(), "not started");
        let mut s = established();
        s.handle(Input::Stop {
            notification: Notification::new(error_code::CEASE, cease::MAX_PREFIXES),
            restart_after: Some(Duration::from_secs(1800)),
        });
        assert!(!s.accepts_connection(), "a max-prefix hold");
        assert!(s.handle(Input::TcpConnected).is_empty());
        assert_eq!(s.state(), State::Idle);
        let mut s = established();
        s.handle(Input::Stop {
            notification: admin_shutdown("deleted"),
            restart_after: None,
        });
        assert!(!s.accepts_connection(), "stopped");
    }

    #[test]
    fn open_exchange_reaches_established_with_the_smaller_hold_time() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::Message(peer_open(65001, 240)));
        assert_eq!(s.state(), State::OpenConfirm);
        assert_eq!(sent(&out), vec![&M::Keepalive]);
        assert!(out.contains(&Output::StartTimer(Timer::Hold, Duration::from_secs(90))));
        assert!(out.contains(&Output::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(30)
        )));
        let out = s.handle(Input::Message(M::Keepalive));
        assert_eq!(s.state(), State::Established);
        let n = out.iter().find_map(|o| match o {
            Output::Established(n) => Some(n.clone()),
            _ => None,
        });
        let n = n.expect("Established output");
        assert_eq!(
            (
                n.peer_asn,
                n.hold_time,
                n.keepalive,
                n.ibgp,
                n.route_refresh
            ),
            (65001, 90, 30, false, true)
        );
    }

    #[test]
    fn wrong_peer_as_is_refused_with_bad_peer_as() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::Message(peer_open(65002, 240)));
        assert_eq!(notification(&out), Some((2, 2)));
        assert!(out.contains(&Output::Disconnect));
        assert_eq!(s.state(), State::Idle);
        assert!(s.last_error().unwrap_or_default().contains("Bad Peer AS"));
        // The AS that arrived, as a fact (a 4-octet one, not AS_TRANS).
        assert_eq!(
            s.last_failure(),
            Some(&SessionFailure::WrongAsn {
                received: 65002,
                expected: 65001
            })
        );
    }

    #[test]
    fn failures_are_kept_as_facts_and_a_connect_failure_is_the_newest() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 30)));
        assert_eq!(
            s.last_failure(),
            Some(&SessionFailure::HoldTimeRefused {
                offered: 30,
                minimum: 90
            })
        );
        // After the idle hold, our connection attempt is refused: that is what stands in
        // the way now; the reason the session went down stays in `last_error`.
        s.handle(Input::TimerExpired(Timer::IdleHold));
        assert_eq!(s.state(), State::Connect);
        s.handle(Input::ConnectFailed(SessionFailure::ConnectRefused));
        assert_eq!(s.state(), State::Active);
        assert_eq!(s.last_failure(), Some(&SessionFailure::ConnectRefused));
        assert!(s.last_error().unwrap_or_default().contains("Hold Time"));
        // Connected, and the peer closes before its OPEN: it has no neighbor for us.
        s.handle(Input::TimerExpired(Timer::ConnectRetry));
        s.handle(Input::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
        s.handle(Input::TcpFailed);
        assert_eq!(s.last_failure(), Some(&SessionFailure::ClosedBeforeOpen));
        // Connected, then silence: the kernel's probes went unanswered. Not a close (the
        // diagnosis would send the customer to configure a neighbor it may well have).
        s.handle(Input::TimerExpired(Timer::IdleHold));
        s.handle(Input::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
        s.handle(Input::TcpTimedOut);
        assert_ne!(s.state(), State::OpenSent);
        assert!(s.last_error().is_some_and(|e| e.contains("timed out")));
        assert!(
            matches!(s.last_failure(), Some(SessionFailure::ConnectFailed { error }) if error.contains("answered nothing")),
            "{:?}",
            s.last_failure()
        );
        // The peer refuses our OPEN.
        s.handle(Input::TimerExpired(Timer::IdleHold));
        s.handle(Input::TcpConnected);
        let mut n = Notification::new(error_code::OPEN, open_err::BAD_PEER_AS);
        n.data = vec![0, 1];
        s.handle(Input::Message(M::Notification(n)));
        assert!(matches!(
            s.last_failure(),
            Some(SessionFailure::PeerRefusedOpen {
                code: 2,
                subcode: 2,
                ..
            })
        ));
        // Established clears every failure.
        s.handle(Input::TimerExpired(Timer::IdleHold));
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 240)));
        s.handle(Input::Message(M::Keepalive));
        assert_eq!(s.state(), State::Established);
        assert_eq!((s.last_failure(), s.last_error()), (None, None));
        // An attempt failing while a connection is up changes nothing.
        s.handle(Input::ConnectFailed(SessionFailure::ConnectTimedOut));
        assert_eq!(s.state(), State::Established);
        assert_eq!(s.last_failure(), None);
    }

    /// An attempt still pending when the connect retry timer expires has timed out,
    /// whichever of its own timeout and the timer comes first.
    #[test]
    fn an_attempt_outlived_by_the_connect_retry_timer_timed_out() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        assert_eq!(s.state(), State::Connect);
        let out = s.handle(Input::TimerExpired(Timer::ConnectRetry));
        assert!(out.contains(&Output::Connect), "a new attempt");
        assert_eq!(s.last_failure(), Some(&SessionFailure::ConnectTimedOut));
    }

    #[test]
    fn hold_time_below_the_minimum_is_refused() {
        for hold in [0, 1, 2, 30, 89] {
            let mut s = Session::new(cfg());
            s.handle(Input::Start);
            s.handle(Input::TcpConnected);
            let out = s.handle(Input::Message(peer_open(65001, hold)));
            assert_eq!(notification(&out), Some((2, 6)), "hold {hold}");
        }
    }

    #[test]
    fn zero_minimum_accepts_hold_time_zero_and_runs_no_timers() {
        let mut s = Session::new(SessionConfig {
            min_hold_time: 0,
            ..cfg()
        });
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::Message(peer_open(65001, 0)));
        assert_eq!(s.state(), State::OpenConfirm);
        assert!(out.contains(&Output::StopTimer(Timer::Hold)));
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::StartTimer(Timer::Keepalive, _)))
        );
    }

    #[test]
    fn peer_without_four_octet_as_capability_is_refused() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        let mut o = Open::new(65001, 90, Ipv4Addr::new(1, 1, 1, 1));
        o.capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        let out = s.handle(Input::Message(M::Open(o)));
        assert_eq!(notification(&out), Some((2, 7)));
    }

    #[test]
    fn ibgp_peer_with_our_router_id_is_refused() {
        let mut s = Session::new(SessionConfig {
            peer_asn: 200_350,
            ..cfg()
        });
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::Message(M::Open(Open::new(
            200_350,
            90,
            Ipv4Addr::new(10, 255, 0, 1),
        ))));
        assert_eq!(notification(&out), Some((2, 3)));
    }

    #[test]
    fn update_in_established_is_passed_up_and_restarts_hold() {
        let mut s = established();
        let out = s.handle(Input::Message(M::Update(Update::default())));
        assert!(out.contains(&Output::Update(Update::default())));
        assert!(out.contains(&Output::StartTimer(Timer::Hold, Duration::from_secs(90))));
    }

    #[test]
    fn keepalive_timer_sends_keepalive_and_rearms() {
        let mut s = established();
        let out = s.handle(Input::TimerExpired(Timer::Keepalive));
        assert_eq!(sent(&out), vec![&M::Keepalive]);
        assert!(out.contains(&Output::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(30)
        )));
    }

    #[test]
    fn hold_timer_expiry_sends_notification_and_goes_down() {
        let mut s = established();
        let out = s.handle(Input::TimerExpired(Timer::Hold));
        assert_eq!(notification(&out), Some((4, 0)));
        assert!(out.iter().any(
            |o| matches!(o, Output::Down { why: w, graceful: false } if w.contains("hold timer"))
        ));
        assert_eq!(s.state(), State::Idle);
        assert!(out.contains(&Output::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
    }

    #[test]
    fn idle_hold_doubles_on_repeated_failures_and_resets_when_up() {
        let mut s = Session::new(cfg());
        let mut holds = vec![];
        s.handle(Input::Start);
        for _ in 0..8 {
            s.handle(Input::TcpConnected);
            let out = s.handle(Input::TcpFailed);
            let d = out.iter().find_map(|o| match o {
                Output::StartTimer(Timer::IdleHold, d) => Some(d.as_secs()),
                _ => None,
            });
            holds.push(d.expect("idle hold armed"));
            s.handle(Input::TimerExpired(Timer::IdleHold));
        }
        assert_eq!(holds, vec![1, 2, 4, 8, 16, 32, 64, 120]);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        s.handle(Input::Message(M::Keepalive));
        let out = s.handle(Input::TcpFailed);
        assert!(out.contains(&Output::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
    }

    #[test]
    fn notification_from_peer_goes_down_with_its_reason() {
        let mut s = established();
        let n = Notification::cease_with_text(cease::ADMIN_SHUTDOWN, "bye");
        let out = s.handle(Input::Message(M::Notification(n)));
        assert!(
            sent(&out).is_empty(),
            "never answer a NOTIFICATION with one"
        );
        assert!(out.iter().any(|o| matches!(o, Output::Down { why: w, .. } if w.contains("Administrative Shutdown") && w.contains("bye"))));
    }

    #[test]
    fn open_in_established_is_an_fsm_error() {
        let mut s = established();
        let out = s.handle(Input::Message(peer_open(65001, 90)));
        assert_eq!(notification(&out), Some((5, 3)));
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn update_in_open_confirm_is_an_fsm_error() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        let out = s.handle(Input::Message(M::Update(Update::default())));
        assert_eq!(notification(&out), Some((5, 2)));
    }

    #[test]
    fn decode_error_sends_its_notification() {
        let mut s = established();
        let e = DecodeError::new(
            error_code::UPDATE,
            update_err::INVALID_NETWORK,
            vec![],
            30,
            "NLRI: bad",
        );
        let out = s.handle(Input::DecodeError(e));
        assert_eq!(notification(&out), Some((3, 10)));
        assert!(s.last_error().unwrap_or_default().contains("NLRI: bad"));
    }

    #[test]
    fn stop_sends_cease_and_stays_idle() {
        let mut s = established();
        let out = s.handle(Input::Stop {
            notification: admin_shutdown("deleted"),
            restart_after: None,
        });
        assert_eq!(notification(&out), Some((6, 2)));
        assert!(!out.iter().any(|o| matches!(o, Output::StartTimer(..))));
        assert_eq!(s.state(), State::Idle);
        assert!(s.handle(Input::TimerExpired(Timer::IdleHold)).is_empty());
    }

    #[test]
    fn path_up_ends_the_failure_backoff_but_not_a_stop_hold() {
        let mut s = established();
        s.handle(Input::TcpFailed);
        assert_eq!(s.state(), State::Idle);
        let out = s.handle(Input::PathUp);
        assert!(out.contains(&Output::Connect), "{out:?}");
        assert_eq!(s.state(), State::Connect);

        let mut s = established();
        s.handle(Input::Stop {
            notification: Notification::new(error_code::CEASE, cease::MAX_PREFIXES),
            restart_after: Some(Duration::from_secs(1800)),
        });
        assert!(s.handle(Input::PathUp).is_empty(), "max-prefix hold kept");
        assert_eq!(s.state(), State::Idle);
    }

    #[test]
    fn stop_with_restart_after_holds_idle_then_reconnects() {
        let mut s = established();
        let n = Notification::new(error_code::CEASE, cease::MAX_PREFIXES);
        let out = s.handle(Input::Stop {
            notification: n,
            restart_after: Some(Duration::from_secs(1800)),
        });
        assert_eq!(notification(&out), Some((6, 1)));
        assert!(out.contains(&Output::StartTimer(
            Timer::IdleHold,
            Duration::from_secs(1800)
        )));
        let out = s.handle(Input::TimerExpired(Timer::IdleHold));
        assert!(out.contains(&Output::Connect));
    }

    #[test]
    fn collision_winner_connection_restarts_the_open_exchange() {
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        assert_eq!(s.state(), State::OpenConfirm);
        let out = s.handle(Input::TcpConnected);
        assert_eq!(s.state(), State::OpenSent);
        assert!(matches!(sent(&out)[..], [M::Open(_)]));
        assert!(s.negotiated().is_none());
    }

    /// A Cease (connection collision) before Established says the peer kept another
    /// connection: no backoff that grows, and the peer's next connection is taken at
    /// once (Active), where any other NOTIFICATION is an error waited out in Idle.
    #[test]
    fn a_collision_lost_before_established_waits_in_active_without_a_backoff() {
        let collision = || {
            Input::Message(M::Notification(Notification::new(
                error_code::CEASE,
                cease::COLLISION,
            )))
        };
        let mut s = Session::new(cfg());
        s.handle(Input::Start);
        for _ in 0..3 {
            s.handle(Input::TcpConnected);
            assert_eq!(s.state(), State::OpenSent);
            let out = s.handle(collision());
            assert_eq!(s.state(), State::Active);
            assert!(out.contains(&Output::Disconnect));
            assert!(out.contains(&Output::StartTimer(
                Timer::ConnectRetry,
                Duration::from_secs(5)
            )));
            assert!(
                !out.iter()
                    .any(|o| matches!(o, Output::StartTimer(Timer::IdleHold, _)))
            );
            assert!(s.accepts_connection());
            assert_eq!(s.last_failure(), None, "a collision lost is no failure");
        }
        // In OpenConfirm too.
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        assert_eq!(s.state(), State::OpenConfirm);
        s.handle(collision());
        assert_eq!(s.state(), State::Active);
        // Any other Cease before Established is an error: Idle, and the wait grows.
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::Message(M::Notification(Notification::new(
            error_code::CEASE,
            cease::CONNECTION_REJECTED,
        ))));
        assert_eq!(s.state(), State::Idle);
        assert!(
            out.iter()
                .any(|o| matches!(o, Output::StartTimer(Timer::IdleHold, _)))
        );
        assert!(!s.accepts_connection());
    }

    fn rr(afi: u16, safi: u8, subtype: u8) -> Input {
        Input::Message(M::RouteRefresh { afi, safi, subtype })
    }

    #[test]
    fn route_refresh_is_passed_up_only_for_ipv4_unicast() {
        let mut s = established();
        assert_eq!(
            s.handle(rr(1, 1, refresh::REQUEST)),
            vec![Output::RouteRefresh {
                afi: Afi::Ipv4,
                subtype: refresh::REQUEST
            }]
        );
        assert!(s.handle(rr(2, 1, refresh::REQUEST)).is_empty());
        assert!(s.handle(rr(1, 2, refresh::REQUEST)).is_empty());
    }

    /// BoRR and EoRR (RFC 7313) are passed up only when both sides announced the
    /// capability; a subtype of no meaning is ignored, never an error.
    #[test]
    fn refresh_markers_are_passed_up_only_when_enhanced_refresh_was_negotiated() {
        let session_with = |theirs: Open| {
            let mut s = Session::new(cfg());
            s.handle(Input::Start);
            s.handle(Input::TcpConnected);
            s.handle(Input::Message(M::Open(theirs)));
            s.handle(Input::Message(M::Keepalive));
            assert_eq!(s.state(), State::Established);
            s
        };
        let mut theirs = Open::for_families(65001, 90, Ipv4Addr::new(10, 0, 0, 2), &[Afi::Ipv4]);
        assert!(
            theirs.has(&Capability::EnhancedRouteRefresh),
            "announced by default"
        );
        let mut s = session_with(theirs.clone());
        assert!(s.negotiated().is_some_and(|n| n.enhanced_route_refresh));
        for subtype in [refresh::BEGIN, refresh::END] {
            assert_eq!(
                s.handle(rr(1, 1, subtype)),
                vec![Output::RouteRefresh {
                    afi: Afi::Ipv4,
                    subtype
                }]
            );
        }
        assert!(s.handle(rr(1, 1, 3)).is_empty());
        assert!(s.handle(rr(1, 1, 255)).is_empty());
        assert_eq!(s.state(), State::Established);

        // Without it in their OPEN: not negotiated, and markers are ignored.
        theirs
            .capabilities
            .retain(|c| *c != Capability::EnhancedRouteRefresh);
        let mut s = session_with(theirs);
        assert!(s.negotiated().is_some_and(|n| !n.enhanced_route_refresh));
        assert!(s.handle(rr(1, 1, refresh::BEGIN)).is_empty());
        assert!(s.handle(rr(1, 1, refresh::END)).is_empty());
        assert_eq!(s.state(), State::Established);
    }

    /// RFC 9234 §4.2: roles that are not each other's counterpart, two different roles,
    /// or (strict) none, are an OPEN Message Error / Role Mismatch; a match is negotiated.
    #[test]
    fn roles_must_match_and_strict_mode_wants_one() {
        let with_role = |ours: BgpRole, strict: bool, theirs: &[u8]| {
            let mut s = Session::new(SessionConfig {
                role: Some(RoleConfig { role: ours, strict }),
                ..cfg()
            });
            s.handle(Input::Start);
            let out = s.handle(Input::TcpConnected);
            let sent_open = sent(&out)
                .into_iter()
                .find_map(|m| match m {
                    M::Open(o) => Some(o),
                    _ => None,
                })
                .expect("our OPEN");
            assert!(sent_open.has(&Capability::Role(ours.code())));
            let mut o = Open::for_families(65001, 90, Ipv4Addr::new(10, 0, 0, 2), &[Afi::Ipv4]);
            o.capabilities
                .extend(theirs.iter().map(|r| Capability::Role(*r)));
            let out = s.handle(Input::Message(M::Open(o)));
            let refused = sent(&out).into_iter().find_map(|m| match m {
                M::Notification(n) => Some((n.code, n.subcode)),
                _ => None,
            });
            (refused, s.negotiated().and_then(|n| n.local_role))
        };
        let mismatch = Some((error_code::OPEN, open_err::ROLE_MISMATCH));
        assert_eq!(
            with_role(BgpRole::Provider, false, &[BgpRole::Customer.code()]),
            (None, Some(BgpRole::Provider))
        );
        assert_eq!(
            with_role(BgpRole::Provider, false, &[BgpRole::Peer.code()]).0,
            mismatch
        );
        assert_eq!(with_role(BgpRole::Peer, false, &[4, 3]).0, mismatch);
        assert_eq!(
            with_role(BgpRole::Peer, false, &[]),
            (None, Some(BgpRole::Peer))
        );
        assert_eq!(with_role(BgpRole::Peer, true, &[]).0, mismatch);
        assert_eq!(
            with_role(BgpRole::RouteServer, true, &[BgpRole::RsClient.code()]).0,
            None
        );
        // The refusal is kept as a fact naming both roles (what onboarding diagnoses).
        let refused = |theirs: &[u8]| {
            let mut s = Session::new(SessionConfig {
                role: Some(RoleConfig {
                    role: BgpRole::Provider,
                    strict: true,
                }),
                ..cfg()
            });
            s.handle(Input::Start);
            s.handle(Input::TcpConnected);
            let mut o = Open::for_families(65001, 90, Ipv4Addr::new(10, 0, 0, 2), &[Afi::Ipv4]);
            o.capabilities
                .extend(theirs.iter().map(|r| Capability::Role(*r)));
            s.handle(Input::Message(M::Open(o)));
            s.last_failure().cloned()
        };
        assert_eq!(
            refused(&[BgpRole::Peer.code()]),
            Some(SessionFailure::RoleMismatch {
                expected: "customer".into(),
                received: Some("peer".into())
            })
        );
        assert_eq!(
            refused(&[]),
            Some(SessionFailure::RoleMismatch {
                expected: "customer".into(),
                received: None
            })
        );
    }

    /// The OPEN a session of `cfg` sends when its connection is up.
    fn our_open(cfg: SessionConfig) -> Open {
        let mut s = Session::new(cfg);
        s.handle(Input::Start);
        let out = s.handle(Input::TcpConnected);
        match sent(&out).first() {
            Some(M::Open(o)) => o.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn families_are_announced_and_negotiated_as_configured() {
        let mp = |afi| Capability::Multiprotocol { afi, safi: 1 };
        let v4 = our_open(cfg());
        assert!(v4.has(&mp(1)) && !v4.has(&mp(2)));
        let dual = our_open(SessionConfig {
            ipv6: true,
            ..cfg()
        });
        assert!(dual.has(&mp(1)) && dual.has(&mp(2)));
        let v6 = our_open(SessionConfig {
            ipv4: false,
            ipv6: true,
            ..cfg()
        });
        assert!(!v6.has(&mp(1)) && v6.has(&mp(2)), "{v6:?}");

        // A dual-stack session with a peer that has only IPv4: IPv4 alone.
        let mut s = Session::new(SessionConfig {
            ipv6: true,
            ..cfg()
        });
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        s.handle(Input::Message(peer_open(65001, 90)));
        let out = s.handle(Input::Message(M::Keepalive));
        let n = out.iter().find_map(|o| match o {
            Output::Established(n) => Some(n.clone()),
            _ => None,
        });
        assert_eq!(n.map(|n| (n.ipv4, n.ipv6)), Some((true, false)));
        // Route refresh for IPv6 is then not ours to answer.
        assert!(s.handle(rr(2, 1, refresh::REQUEST)).is_empty());

        // An IPv6-only session with that peer: nothing in common, Unsupported Capability
        // naming what we wanted (RFC 5492 §3).
        let mut s = Session::new(SessionConfig {
            ipv4: false,
            ipv6: true,
            ..cfg()
        });
        s.handle(Input::Start);
        s.handle(Input::TcpConnected);
        let out = s.handle(Input::Message(peer_open(65001, 90)));
        assert_eq!(notification(&out), Some((2, 7)));
        let data = out.iter().find_map(|o| match o {
            Output::Send(M::Notification(n)) => Some(n.data.clone()),
            _ => None,
        });
        assert_eq!(data, Some(vec![1, 4, 0, 2, 0, 1]));
    }
}
