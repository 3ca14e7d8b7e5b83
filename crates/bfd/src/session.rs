//! One BFD session, sans-IO (RFC 5880 §6.8, asynchronous mode): received packets and the
//! time go in, packets to send and state changes come out. The caller owns sockets and
//! timers; [`Session::deadline`] says when to call [`Session::on_timer`] next.
//!
//! Timing rules kept here:
//! - While the session is not Up, the advertised Desired Min TX is at least one second
//!   (§6.8.3); once Up it drops to the configured rate, announced with a Poll Sequence.
//! - Periodic packets go out every max(Desired Min TX, the peer's Required Min RX), less
//!   0–25 % jitter (10–25 % with Detect Mult 1) (§6.8.7); none while the peer asks for 0.
//! - Detection time is the peer's Detect Mult × max(our Required Min RX, the peer's
//!   Desired Min TX) (§6.8.4); its expiry takes an Init or Up session Down with diag 1.
//! - With a [`Grid`], each periodic packet's time (jittered as above) is moved to a tick of
//!   a clock shared by the caller's sessions, staying inside the jitter's window, so that
//!   many sessions' packets leave together and wake the sender and each peer once per tick
//!   instead of once per packet. Jitter stays random per packet (the window's ticks).
//! - A Poll is answered at once with Final; a state change is announced at once rather
//!   than at the next periodic packet, as BIRD and FRR do, so the three-way handshake
//!   and a signalled Down take one round trip instead of one interval.

use std::time::{Duration, Instant};

use crate::packet::{Diag, Packet, State};

/// The slow rate of a session that is not Up (§6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub desired_min_tx: Duration,
    pub required_min_rx: Duration,
    pub detect_mult: u8,
}

impl Default for Config {
    /// 300 ms × 3, the modelled service's setting.
    fn default() -> Self {
        Config {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        }
    }
}

/// Ticks of a clock that several sessions share: periodic packets go out on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Tick 0; the same for every session that should send together.
    pub origin: Instant,
}

impl Grid {
    /// The ticks tried, coarsest first; each divides the one before, so sessions at
    /// different intervals still meet on the coarser ticks.
    const TICKS_NS: [u128; 4] = [10_000_000, 5_000_000, 2_000_000, 1_000_000];

    /// The tick in `[lo, hi]` nearest below `t` (or the first after `lo`), with the
    /// coarsest tick that leaves at least four choices in the window; `t` itself when the
    /// window is narrower than four of the finest ticks or lies before the origin.
    pub fn snap(&self, t: Instant, lo: Instant, hi: Instant) -> Instant {
        let (Some(from_lo), Some(from_t)) = (
            lo.checked_duration_since(self.origin),
            t.checked_duration_since(self.origin),
        ) else {
            return t;
        };
        let window = hi.saturating_duration_since(lo).as_nanos();
        let Some(tick) = Self::TICKS_NS.into_iter().find(|k| window >= 4 * k) else {
            return t;
        };
        // To the nanosecond: a tick a fraction of a microsecond before `lo` is outside.
        let (lo_ns, t_ns) = (from_lo.as_nanos(), from_t.as_nanos());
        let snapped = (t_ns / tick * tick).max(lo_ns.div_ceil(tick) * tick);
        let Ok(snapped) = u64::try_from(snapped) else {
            return t;
        };
        let at = self.origin + Duration::from_nanos(snapped);
        if at > hi { t } else { at }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send(Packet),
    StateChanged { from: State, to: State, diag: Diag },
}

/// What an Up session must remember for a new process to carry it on without the peer
/// noticing (see [`Session::resume`]): the discriminators and the peer's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub local_disc: u32,
    pub remote_disc: u32,
    /// The peer's Required Min RX, Desired Min TX (µs) and Detect Mult.
    pub remote_min_rx: u32,
    pub remote_desired_min_tx: u32,
    pub remote_detect_mult: u8,
}

#[derive(Debug, Clone)]
pub struct Session {
    cfg: Config,
    state: State,
    remote_state: State,
    local_disc: u32,
    remote_disc: u32,
    local_diag: Diag,
    /// What we advertise now (µs): the configured rate once Up, at least 1 s before.
    desired_min_tx: u32,
    /// The interval actually used for periodic packets until a Poll Sequence ends.
    tx_in_use: u32,
    required_min_rx: u32,
    /// The Required Min RX detection is computed from: the advertised one, except after a
    /// reduction, until its Poll Sequence ends (§6.8.3: the peer may still send at the old
    /// rate until it has seen the new value).
    detect_rx: u32,
    remote_min_rx: u32,
    remote_desired_min_tx: u32,
    remote_detect_mult: u8,
    poll_pending: bool,
    /// The parameters changed again while a Poll was pending: the Final that comes may
    /// answer the older values, so a new Poll follows it before the change counts.
    poll_again: bool,
    next_tx: Instant,
    detect_at: Option<Instant>,
    rng: u64,
    grid: Option<Grid>,
}

fn us(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl Session {
    /// A new session in Down, sending its first packet at once. `local_disc` must be
    /// nonzero and unique among the caller's sessions.
    pub fn new(local_disc: u32, cfg: Config, now: Instant) -> Session {
        let cfg = Config {
            detect_mult: cfg.detect_mult.max(1),
            ..cfg
        };
        let slow = us(cfg.desired_min_tx.max(SLOW_TX));
        Session {
            cfg,
            state: State::Down,
            remote_state: State::Down,
            local_disc,
            remote_disc: 0,
            local_diag: Diag::None,
            desired_min_tx: slow,
            tx_in_use: slow,
            required_min_rx: us(cfg.required_min_rx),
            detect_rx: us(cfg.required_min_rx),
            // §6.8.1: initialised to 1 µs, so the first packets go at our own rate.
            remote_min_rx: 1,
            remote_desired_min_tx: 0,
            remote_detect_mult: 0,
            poll_pending: false,
            poll_again: false,
            next_tx: now,
            detect_at: None,
            rng: u64::from(local_disc) | 1,
            grid: None,
        }
    }

    /// Periodic packets from now on go out on `grid`'s ticks (see [`Grid`]).
    pub fn with_grid(mut self, grid: Grid) -> Session {
        self.grid = Some(grid);
        self
    }

    /// Carries on an Up session from a [`Snapshot`] taken by an earlier process (the
    /// agent restarted): Up at once, sending now, detection running from now. As long as
    /// the restart took less than the peer's detection time, the peer sees nothing but a
    /// late packet. A Poll Sequence confirms the parameters with the peer.
    pub fn resume(snap: Snapshot, cfg: Config, now: Instant) -> Session {
        let mut s = Session::new(snap.local_disc, cfg, now);
        s.state = State::Up;
        s.remote_state = State::Up;
        s.remote_disc = snap.remote_disc;
        s.desired_min_tx = us(s.cfg.desired_min_tx);
        s.tx_in_use = s.desired_min_tx;
        s.remote_min_rx = snap.remote_min_rx;
        s.remote_desired_min_tx = snap.remote_desired_min_tx;
        s.remote_detect_mult = snap.remote_detect_mult;
        s.poll_pending = true;
        s.detect_at = s.detection_time().map(|d| now + d);
        s
    }

    /// New timers for a running session, without taking it down (§6.8.3): a Poll Sequence
    /// announces them. A faster transmit rate is used at once, a slower one once the peer
    /// has answered; a lower Required Min RX counts for detection only then too (the
    /// peer may go on sending at the old rate until it has seen it).
    pub fn reconfigure(&mut self, cfg: Config, now: Instant, out: &mut Vec<Output>) {
        let cfg = Config {
            detect_mult: cfg.detect_mult.max(1),
            ..cfg
        };
        if cfg == self.cfg {
            return;
        }
        self.cfg = cfg;
        let rx = us(cfg.required_min_rx);
        // A higher Required Min RX is safe for detection at once; a lower one only after
        // the Poll Sequence (the larger of the two counts meanwhile).
        self.detect_rx = self.detect_rx.max(rx);
        self.required_min_rx = rx;
        let want = if self.state == State::Up {
            us(cfg.desired_min_tx)
        } else {
            us(cfg.desired_min_tx.max(SLOW_TX))
        };
        self.desired_min_tx = want;
        if want < self.tx_in_use || self.state != State::Up {
            self.tx_in_use = want;
        }
        // Out of Up the new values simply go out; while Up a Poll Sequence confirms them,
        // carried by the periodic packets (§6.5: no extra packets for it).
        if self.state == State::Up {
            self.start_poll();
        } else {
            self.detect_rx = rx;
        }
        let _ = (now, out);
    }

    /// Starts a Poll Sequence, or, while one is pending, another after it.
    fn start_poll(&mut self) {
        if self.poll_pending {
            self.poll_again = true;
        }
        self.poll_pending = true;
    }

    /// The state to resume this session from, while it is Up.
    pub fn snapshot(&self) -> Option<Snapshot> {
        (self.state == State::Up).then_some(Snapshot {
            local_disc: self.local_disc,
            remote_disc: self.remote_disc,
            remote_min_rx: self.remote_min_rx,
            remote_desired_min_tx: self.remote_desired_min_tx,
            remote_detect_mult: self.remote_detect_mult,
        })
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    pub fn diag(&self) -> Diag {
        self.local_diag
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_disc
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_disc
    }

    /// The detection time now in force, once the peer has been heard.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult > 0).then(|| {
            Duration::from_micros(
                u64::from(self.remote_detect_mult)
                    * u64::from(self.detect_rx.max(self.remote_desired_min_tx)),
            )
        })
    }

    /// The periodic transmit interval now in force (before jitter); `None` while the peer
    /// asks for no packets.
    pub fn tx_interval(&self) -> Option<Duration> {
        (self.remote_min_rx > 0)
            .then(|| Duration::from_micros(u64::from(self.tx_in_use.max(self.remote_min_rx))))
    }

    /// When [`Session::on_timer`] must run next.
    pub fn deadline(&self) -> Instant {
        let tx = if self.remote_min_rx > 0 || self.state == State::AdminDown {
            self.next_tx
        } else {
            // No periodic packets: only the detection timer (or a far wake-up).
            self.next_tx + Duration::from_secs(3600)
        };
        self.detect_at.map_or(tx, |d| d.min(tx))
    }

    /// Runs the timers due at `now`.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<Output>) {
        if let Some(at) = self.detect_at
            && now >= at
        {
            self.detect_at = None;
            self.remote_disc = 0;
            self.remote_state = State::Down;
            self.remote_detect_mult = 0;
            if matches!(self.state, State::Init | State::Up) {
                self.go(State::Down, Diag::ControlDetectionTimeExpired, now, out);
            }
        }
        if now >= self.next_tx && (self.remote_min_rx > 0 || self.state == State::AdminDown) {
            out.push(Output::Send(self.packet(false)));
            self.schedule_tx(now);
        }
    }

    /// Handles a packet already checked by [`Packet::decode`] and matched to this session
    /// (by Your Discriminator, or by address when that is zero).
    pub fn on_packet(&mut self, p: &Packet, now: Instant, out: &mut Vec<Output>) {
        // §6.8.6: Your Discriminator zero is only valid from a peer in Down or AdminDown.
        if p.your_discriminator == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return;
        }
        if p.your_discriminator != 0 && p.your_discriminator != self.local_disc {
            return;
        }
        self.remote_disc = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_desired_min_tx = p.desired_min_tx_us;
        self.remote_detect_mult = p.detect_mult;
        let old_remote_rx = self.remote_min_rx;
        self.remote_min_rx = p.required_min_rx_us;
        if p.final_ && self.poll_pending {
            if self.poll_again {
                // It answers an older Poll: ask again, and keep the safe values meanwhile.
                self.poll_again = false;
            } else {
                self.poll_pending = false;
                self.tx_in_use = self.desired_min_tx;
                self.detect_rx = self.required_min_rx;
            }
        }
        if self.state == State::AdminDown {
            return;
        }
        self.detect_at = self
            .detection_time()
            .map(|d| now + d.max(Duration::from_millis(1)));
        match (self.state, p.state) {
            (s, State::AdminDown) if s != State::Down => {
                self.go(State::Down, Diag::NeighborSignaledSessionDown, now, out)
            }
            (_, State::AdminDown) => {}
            (State::Down, State::Down) => self.go(State::Init, Diag::None, now, out),
            (State::Down, State::Init) => self.go(State::Up, Diag::None, now, out),
            (State::Init, State::Init | State::Up) => self.go(State::Up, Diag::None, now, out),
            (State::Up, State::Down) => {
                self.go(State::Down, Diag::NeighborSignaledSessionDown, now, out)
            }
            _ => {}
        }
        if p.poll {
            out.push(Output::Send(self.packet(true)));
        }
        // The peer now wants packets sooner than the next one is due (or wanted none
        // before): send on the new schedule.
        if let Some(iv) = self.tx_interval()
            && (old_remote_rx == 0 || self.next_tx > now + iv)
        {
            self.schedule_tx(now);
        }
    }

    /// Takes the session AdminDown (diag 7) and sends that once, so the peer knows the
    /// session is being removed rather than failing (RFC 5882 §3.2).
    pub fn admin_down(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state != State::AdminDown {
            self.go(State::AdminDown, Diag::AdministrativelyDown, now, out);
        }
    }

    fn go(&mut self, to: State, diag: Diag, now: Instant, out: &mut Vec<Output>) {
        let from = self.state;
        self.state = to;
        if diag != Diag::None || to == State::Up {
            self.local_diag = diag;
        }
        out.push(Output::StateChanged { from, to, diag });
        let want = if to == State::Up {
            us(self.cfg.desired_min_tx)
        } else {
            us(self.cfg.desired_min_tx.max(SLOW_TX))
        };
        if want != self.desired_min_tx {
            self.desired_min_tx = want;
            // §6.8.3: a faster rate may be used at once; a slower one only after the
            // Poll Sequence, while Up. Out of Up the slow rate applies now.
            if want < self.tx_in_use || to != State::Up {
                self.tx_in_use = want;
            }
            self.start_poll();
        }
        // Announce the change now instead of at the next periodic packet.
        out.push(Output::Send(self.packet(false)));
        self.schedule_tx(now);
    }

    fn packet(&self, final_: bool) -> Packet {
        Packet {
            diag: self.local_diag,
            state: self.state,
            poll: self.poll_pending && !final_,
            final_,
            cpi: false,
            demand: false,
            detect_mult: self.cfg.detect_mult,
            my_discriminator: self.local_disc,
            your_discriminator: self.remote_disc,
            desired_min_tx_us: self.desired_min_tx,
            required_min_rx_us: self.required_min_rx,
            required_min_echo_rx_us: 0,
        }
    }

    fn schedule_tx(&mut self, now: Instant) {
        let iv = u64::from(self.tx_in_use.max(self.remote_min_rx));
        // §6.8.7 jitter: 75–100 % of the interval (75–90 % with Detect Mult 1).
        let top = if self.cfg.detect_mult == 1 { 90 } else { 100 };
        let pct = 75 + self.next_random() % (top - 75 + 1);
        let at = |pct: u64| now + Duration::from_micros(iv * pct / 100);
        self.next_tx = match self.grid {
            Some(g) => g.snap(at(pct), at(75), at(top)),
            None => at(pct),
        };
    }

    /// xorshift64: jitter needs spread, not secrecy.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sends(out: &[Output]) -> Vec<Packet> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(p) => Some(*p),
                _ => None,
            })
            .collect()
    }

    fn changes(out: &[Output]) -> Vec<(State, State)> {
        out.iter()
            .filter_map(|o| match o {
                Output::StateChanged { from, to, .. } => Some((*from, *to)),
                _ => None,
            })
            .collect()
    }

    /// A packet from a peer (discriminator 44) that does not know ours yet, 300 ms × 3.
    fn peer_packet(state: State) -> Packet {
        Packet {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 44,
            your_discriminator: 0,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    /// Two sessions wired to each other: delivers every packet either sends.
    struct Pair {
        a: Session,
        b: Session,
        now: Instant,
        a_changes: Vec<(State, State)>,
        b_changes: Vec<(State, State)>,
        /// Packets are dropped while the link is cut.
        cut: bool,
    }

    impl Pair {
        fn new() -> Pair {
            let now = Instant::now();
            Pair {
                a: Session::new(0x1111, Config::default(), now),
                b: Session::new(0x2222, Config::default(), now),
                now,
                a_changes: vec![],
                b_changes: vec![],
                cut: false,
            }
        }

        /// Runs both sessions' timers up to `until`, delivering packets instantly.
        fn run(&mut self, d: Duration) {
            let until = self.now + d;
            loop {
                let next = self.a.deadline().min(self.b.deadline());
                if next > until {
                    self.now = until;
                    return;
                }
                self.now = next.max(self.now);
                let mut oa = vec![];
                self.a.on_timer(self.now, &mut oa);
                let mut ob = vec![];
                self.b.on_timer(self.now, &mut ob);
                self.exchange(oa, ob);
            }
        }

        fn exchange(&mut self, mut oa: Vec<Output>, mut ob: Vec<Output>) {
            // Deliver until quiet (answers to polls, announcements of changes).
            for _ in 0..10 {
                self.a_changes.extend(changes(&oa));
                self.b_changes.extend(changes(&ob));
                let (pa, pb) = (sends(&oa), sends(&ob));
                if pa.is_empty() && pb.is_empty() {
                    return;
                }
                oa = vec![];
                ob = vec![];
                if self.cut {
                    return;
                }
                for p in pa {
                    self.b.on_packet(&p, self.now, &mut ob);
                }
                for p in pb {
                    self.a.on_packet(&p, self.now, &mut oa);
                }
            }
        }
    }

    #[test]
    fn three_way_handshake_brings_both_up_then_the_fast_rate_applies() {
        let mut p = Pair::new();
        p.run(Duration::from_millis(10));
        assert_eq!(p.a.state(), State::Up);
        assert_eq!(p.b.state(), State::Up);
        assert_eq!(p.a.remote_discriminator(), 0x2222);
        assert!(
            p.a_changes.contains(&(State::Down, State::Init))
                || p.a_changes.contains(&(State::Down, State::Up))
        );
        // Once Up and the Poll Sequence is over: 300 ms × 3 on both sides.
        p.run(Duration::from_secs(2));
        assert_eq!(p.a.tx_interval(), Some(Duration::from_millis(300)));
        assert_eq!(p.a.detection_time(), Some(Duration::from_millis(900)));
        assert_eq!(p.b.detection_time(), Some(Duration::from_millis(900)));
        assert!(!p.a.poll_pending && !p.b.poll_pending);
    }

    fn timers(ms: u64, mult: u8) -> Config {
        Config {
            desired_min_tx: Duration::from_millis(ms),
            required_min_rx: Duration::from_millis(ms),
            detect_mult: mult,
        }
    }

    #[test]
    fn new_timers_on_both_sides_take_effect_by_poll_without_going_down() {
        let mut p = Pair::new();
        p.run(Duration::from_secs(3));
        assert_eq!(p.a.detection_time(), Some(Duration::from_millis(900)));
        // 100 ms × 3 on both sides, one after the other, as a customer and the edge would.
        let mut out = vec![];
        p.a.reconfigure(timers(100, 3), p.now, &mut out);
        assert!(out.is_empty(), "no extra packet (§6.5)");
        assert!(
            p.a.poll_pending,
            "the next periodic packet carries the Poll"
        );
        // The peer still asks for 300 ms: nothing is faster yet, nothing has expired.
        p.run(Duration::from_secs(1));
        assert_eq!(p.a.tx_interval(), Some(Duration::from_millis(300)));
        let mut out = vec![];
        p.b.reconfigure(timers(100, 3), p.now, &mut out);
        p.exchange(vec![], out);
        p.run(Duration::from_secs(1));
        assert_eq!(p.a.tx_interval(), Some(Duration::from_millis(100)));
        assert_eq!(p.a.detection_time(), Some(Duration::from_millis(300)));
        assert_eq!(p.b.detection_time(), Some(Duration::from_millis(300)));
        assert!(!p.a.poll_pending && !p.b.poll_pending);
        assert!(
            !p.a_changes.contains(&(State::Up, State::Down))
                && !p.b_changes.contains(&(State::Up, State::Down)),
            "{:?} {:?}",
            p.a_changes,
            p.b_changes
        );
        // The same timers again change nothing (no Poll).
        let mut out = vec![];
        p.a.reconfigure(timers(100, 3), p.now, &mut out);
        assert!(out.is_empty());
        // And 100 ms × 3 detects a cut in at most 300 ms.
        p.cut = true;
        let mut waited = Duration::ZERO;
        while p.a.state() == State::Up {
            p.run(Duration::from_millis(10));
            waited += Duration::from_millis(10);
            assert!(
                waited <= Duration::from_millis(310),
                "still Up after {waited:?}"
            );
        }
        assert!(
            waited >= Duration::from_millis(200),
            "down after {waited:?}"
        );
    }

    #[test]
    fn a_lower_required_rx_counts_for_detection_only_once_the_peer_has_answered() {
        // The peer transmits at 300 ms while we ask for it; we lower our Required Min RX to
        // 50 ms (its own desired rate is 50 ms): until its Final, it may still send every
        // 300 ms, and detection must allow for it.
        let now = Instant::now();
        let mut s = Session::new(7, Config::default(), now);
        let mut out = vec![];
        let mut pk = peer_packet(State::Init);
        pk.your_discriminator = 7;
        pk.desired_min_tx_us = 50_000;
        pk.required_min_rx_us = 50_000;
        s.on_packet(&pk, now, &mut out);
        assert_eq!(s.state(), State::Up);
        let mut fin = peer_packet(State::Up);
        fin.your_discriminator = 7;
        fin.desired_min_tx_us = 50_000;
        fin.required_min_rx_us = 50_000;
        fin.final_ = true;
        // The Poll of going Up answered.
        s.on_packet(&fin, now, &mut out);
        assert!(!s.poll_pending);
        assert_eq!(s.detection_time(), Some(Duration::from_millis(900)));
        s.reconfigure(timers(50, 3), now, &mut out);
        assert_eq!(
            s.detection_time(),
            Some(Duration::from_millis(900)),
            "the old value until the Poll Sequence ends"
        );
        s.on_packet(&fin, now, &mut out);
        assert_eq!(s.detection_time(), Some(Duration::from_millis(150)));

        // Two changes in one Poll: a Final may answer the first; only a second Poll's
        // Final makes the lower value count.
        s.reconfigure(timers(300, 3), now, &mut out);
        s.on_packet(&fin, now, &mut out);
        s.reconfigure(timers(50, 3), now, &mut out);
        s.reconfigure(timers(100, 3), now, &mut out);
        s.on_packet(&fin, now, &mut out);
        assert_eq!(
            s.detection_time(),
            Some(Duration::from_millis(900)),
            "a Final that may answer the older Poll changes nothing"
        );
        assert!(s.poll_pending, "a new Poll follows");
        s.on_packet(&fin, now, &mut out);
        assert_eq!(s.detection_time(), Some(Duration::from_millis(300)));
    }

    #[test]
    fn before_up_the_rate_is_at_most_one_packet_a_second() {
        let now = Instant::now();
        let mut s = Session::new(7, Config::default(), now);
        let mut out = vec![];
        s.on_timer(now, &mut out);
        let p = sends(&out)[0];
        assert_eq!(p.state, State::Down);
        assert_eq!(p.desired_min_tx_us, 1_000_000);
        assert_eq!(p.required_min_rx_us, 300_000);
        assert_eq!(p.your_discriminator, 0);
        let gap = s.deadline() - now;
        assert!(
            gap >= Duration::from_millis(750) && gap <= Duration::from_secs(1),
            "{gap:?}"
        );
    }

    #[test]
    fn a_cut_link_goes_down_within_900_ms_with_diag_1() {
        let mut p = Pair::new();
        p.run(Duration::from_secs(3));
        assert_eq!(p.a.state(), State::Up);
        p.cut = true;
        // Step in 10 ms and find when A goes Down.
        let mut t = Duration::ZERO;
        while p.a.state() == State::Up && t < Duration::from_secs(5) {
            p.run(Duration::from_millis(10));
            t += Duration::from_millis(10);
        }
        assert!(t <= Duration::from_millis(910), "took {t:?}");
        assert_eq!(p.a.state(), State::Down);
        assert_eq!(p.a.diag(), Diag::ControlDetectionTimeExpired);
        assert_eq!(p.a.remote_discriminator(), 0);
        assert_eq!(p.a_changes.last(), Some(&(State::Up, State::Down)));
    }

    #[test]
    fn the_link_returning_brings_the_session_up_again() {
        let mut p = Pair::new();
        p.run(Duration::from_secs(3));
        p.cut = true;
        p.run(Duration::from_secs(2));
        assert_eq!(p.b.state(), State::Down);
        p.cut = false;
        p.run(Duration::from_secs(3));
        assert_eq!(p.a.state(), State::Up);
        assert_eq!(p.b.state(), State::Up);
    }

    #[test]
    fn admin_down_takes_the_peer_down_with_diag_3() {
        let mut p = Pair::new();
        p.run(Duration::from_secs(3));
        let mut oa = vec![];
        p.a.admin_down(p.now, &mut oa);
        assert_eq!(sends(&oa)[0].state, State::AdminDown);
        assert_eq!(sends(&oa)[0].diag, Diag::AdministrativelyDown);
        p.exchange(oa, vec![]);
        assert_eq!(p.b.state(), State::Down);
        assert_eq!(p.b.diag(), Diag::NeighborSignaledSessionDown);
    }

    #[test]
    fn a_poll_is_answered_at_once_with_final() {
        let now = Instant::now();
        let mut s = Session::new(9, Config::default(), now);
        let mut out = vec![];
        let poll = Packet {
            poll: true,
            desired_min_tx_us: 1_000_000,
            required_min_rx_us: 100_000,
            ..peer_packet(State::Down)
        };
        s.on_packet(&poll, now, &mut out);
        let f: Vec<Packet> = sends(&out).into_iter().filter(|p| p.final_).collect();
        assert_eq!(f.len(), 1);
        assert!(!f[0].poll, "a Final never carries Poll");
        assert_eq!(f[0].your_discriminator, 44);
    }

    #[test]
    fn packets_for_another_discriminator_or_premature_zero_are_ignored() {
        let now = Instant::now();
        let mut s = Session::new(9, Config::default(), now);
        let mut out = vec![];
        let p = peer_packet(State::Up);
        s.on_packet(&p, now, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.remote_discriminator(), 0);
        s.on_packet(
            &Packet {
                your_discriminator: 10,
                ..p
            },
            now,
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn the_peers_slower_rate_sets_our_transmit_interval_and_detection_time() {
        let mut p = Pair::new();
        p.b = Session::new(
            0x2222,
            Config {
                desired_min_tx: Duration::from_millis(500),
                required_min_rx: Duration::from_millis(700),
                detect_mult: 5,
            },
            p.now,
        );
        p.run(Duration::from_secs(4));
        assert_eq!(p.a.state(), State::Up);
        assert_eq!(p.a.tx_interval(), Some(Duration::from_millis(700)));
        // A hears B every ≥ 500 ms, B's multiplier is 5.
        assert_eq!(p.a.detection_time(), Some(Duration::from_millis(2500)));
        assert_eq!(p.b.detection_time(), Some(Duration::from_millis(2100)));
    }

    #[test]
    fn jitter_keeps_every_gap_between_75_and_100_percent() {
        let now = Instant::now();
        let mut s = Session::new(12345, Config::default(), now);
        let mut t = now;
        for _ in 0..200 {
            let mut out = vec![];
            s.on_timer(t, &mut out);
            let next = s.deadline();
            let gap = next - t;
            assert!(
                gap >= Duration::from_millis(750) && gap <= Duration::from_millis(1000),
                "{gap:?}"
            );
            t = next;
        }
    }

    /// Up at `iv` × 3 with the peer asking for the same, on `grid` when given.
    fn up_at(disc: u32, iv: Duration, now: Instant, grid: Option<Grid>) -> Session {
        let cfg = Config {
            desired_min_tx: iv,
            required_min_rx: iv,
            detect_mult: 3,
        };
        let mut s = Session::resume(
            Snapshot {
                local_disc: disc,
                remote_disc: 7,
                remote_min_rx: us(iv),
                remote_desired_min_tx: us(iv),
                remote_detect_mult: 3,
            },
            cfg,
            now,
        );
        if let Some(g) = grid {
            s = s.with_grid(g);
        }
        s
    }

    /// The times of `n` periodic packets after `start`, the peer's packets arriving just
    /// before each (so detection never expires).
    fn send_times(s: &mut Session, start: Instant, n: usize) -> Vec<Instant> {
        let iv = s.tx_interval().expect("an interval");
        let from_peer = Packet {
            state: State::Up,
            my_discriminator: 7,
            your_discriminator: s.local_discriminator(),
            desired_min_tx_us: us(iv),
            required_min_rx_us: us(iv),
            ..peer_packet(State::Up)
        };
        let mut t = start;
        let mut times = vec![];
        while times.len() < n {
            let mut out = vec![];
            s.on_packet(&from_peer, t, &mut out);
            out.clear();
            s.on_timer(t, &mut out);
            if out.iter().any(|o| matches!(o, Output::Send(_))) {
                times.push(t);
            }
            t = s.deadline();
        }
        times
    }

    #[test]
    fn on_a_grid_every_gap_stays_in_the_jitter_window_and_lands_on_a_tick() {
        let origin = Instant::now();
        let grid = Grid { origin };
        for (iv_ms, tick_us) in [(300, 10_000), (100, 5_000), (50, 2_000), (10, 0)] {
            let iv = Duration::from_millis(iv_ms);
            // Started off the grid, as a session added at any moment is.
            let start = origin + Duration::from_micros(1_234_567);
            let mut s = up_at(99, iv, start, Some(grid));
            let times = send_times(&mut s, start, 300);
            let mut gaps = std::collections::BTreeSet::new();
            for w in times.windows(2) {
                let gap = w[1] - w[0];
                assert!(gap >= iv * 3 / 4 && gap <= iv, "{iv_ms} ms: gap {gap:?}");
                gaps.insert(gap);
            }
            for t in &times[1..] {
                let us = (*t - origin).as_micros() as u64;
                if tick_us > 0 {
                    assert_eq!(us % tick_us, 0, "{iv_ms} ms: {us} µs is not on a tick");
                } else {
                    // A window narrower than four 1 ms ticks is not snapped.
                    assert_ne!(us % 1_000, 0, "{iv_ms} ms: snapped to {us} µs");
                }
            }
            assert!(gaps.len() >= 3, "{iv_ms} ms: jitter gone, gaps {gaps:?}");
        }
    }

    #[test]
    fn a_snap_never_leaves_the_window() {
        let origin = Instant::now();
        let g = Grid { origin };
        let ms = Duration::from_millis;
        // `lo` a few nanoseconds after a tick: the tick before it is outside.
        let lo = origin + ms(20) + Duration::from_nanos(3);
        let hi = lo + ms(75);
        for t in [lo, lo + Duration::from_nanos(500), lo + ms(33), hi] {
            let at = g.snap(t, lo, hi);
            assert!(at >= lo && at <= hi, "{:?}", at - origin);
        }
        assert_eq!(g.snap(lo, lo, hi) - origin, ms(30));
        // Detect Mult 1 at 100 ms: a 15 ms window, 2 ms ticks.
        let (lo, hi) = (origin + ms(75), origin + ms(90));
        assert_eq!(g.snap(origin + ms(81), lo, hi) - origin, ms(80));
        // A window before the origin, or narrower than four 1 ms ticks: left as it is.
        let late = Grid {
            origin: origin + ms(500),
        };
        let t = origin + ms(40);
        assert_eq!(late.snap(t, origin + ms(30), origin + ms(100)), t);
        let t = origin + ms(41) + Duration::from_micros(7);
        assert_eq!(g.snap(t, origin + ms(40), origin + ms(43)), t);
    }

    #[test]
    fn sessions_on_one_grid_send_together() {
        let origin = Instant::now();
        let grid = Grid { origin };
        let iv = Duration::from_millis(300);
        let count = |grid: Option<Grid>| {
            let mut instants = std::collections::BTreeSet::new();
            for disc in 1..=200u32 {
                // Sessions that came up at scattered moments.
                let start = origin + Duration::from_micros(u64::from(disc) * 7_919);
                let mut s = up_at(disc, iv, start, grid);
                instants.extend(send_times(&mut s, start, 20).into_iter().skip(1));
            }
            instants.len()
        };
        // 200 sessions × 19 packets: on their own nearly every packet is a wake-up of its
        // own; on 10 ms ticks they share a few hundred.
        let alone = count(None);
        let together = count(Some(grid));
        assert!(alone > 3_000, "{alone}");
        assert!(together < 700, "{together}");
    }
}
