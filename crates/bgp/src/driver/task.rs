//! The instance task: the sans-IO [`Instance`] driven by the handle's commands, the
//! sessions' events, its timers and the writers' room; it pumps each peer's outbox to its
//! writer within the window and publishes the status and the kernel routes.

use super::*;

pub(super) struct SessionEntry {
    task: tokio::task::JoinHandle<()>,
    cmd: mpsc::Sender<SessionCmd>,
    config: PeerConfig,
    state: State,
    epoch: u64,
    established_at: Option<std::time::Instant>,
    established_wall: Option<std::time::SystemTime>,
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

pub(super) struct InstanceTask {
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
    /// The task of a new instance: no peers yet, `timers` already set (the selection
    /// deferral of a restart).
    pub(super) fn new(
        core: Instance,
        sockets: SocketFactory,
        ev_tx: mpsc::Sender<(PeerId, PeerEvent)>,
        (status_tx, routes_tx): (
            watch::Sender<InstanceStatus>,
            watch::Sender<Arc<KernelTable>>,
        ),
        listen_error: Option<String>,
        timers: BTreeMap<(Instant, u64), InstanceTimer>,
    ) -> Self {
        InstanceTask {
            core,
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
        }
    }

    pub(super) async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut ev_rx: mpsc::Receiver<(PeerId, PeerEvent)>,
        mut listeners: Vec<TcpListener>,
        mut later: Vec<SocketAddr>,
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
                        self.listen_for(cfg.spec.address, &mut listeners, &mut later);
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
                        let told = self.sessions.get_mut(&peer).is_some_and(|s| {
                            let told = s.cmd.try_send(SessionCmd::SetDamping(damping)).is_ok();
                            if told {
                                s.config.session.damping = damping;
                            }
                            told
                        });
                        let _ = reply.send(told);
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

    /// Binds the listeners of `later` of `peer`'s family (see
    /// [`super::spawn_instance_listening`]); those that fail stay for the next peer, and
    /// the status says why until one binds.
    fn listen_for(
        &mut self,
        peer: IpAddr,
        listeners: &mut Vec<TcpListener>,
        later: &mut Vec<SocketAddr>,
    ) {
        let mut errors = Vec::new();
        let mut bound = false;
        later.retain(|a| {
            if a.is_ipv4() != peer.is_ipv4() {
                return true;
            }
            match super::bind_listener(&self.sockets, *a) {
                Ok(l) => {
                    // Peers of the family added while it would not bind: their keys.
                    for s in self.sessions.values() {
                        key_on_listeners(std::slice::from_ref(&l), &s.config);
                    }
                    listeners.push(l);
                    bound = true;
                    false
                }
                Err(e) => {
                    warn!("BGP listener: {e}");
                    errors.push(e.to_string());
                    true
                }
            }
        });
        if !errors.is_empty() {
            self.listen_error = Some(errors.join("; "));
            self.publish();
        } else if bound && self.listen_error.is_some() && later.is_empty() {
            self.listen_error = None;
            self.publish();
        }
    }

    fn add_peer(&mut self, mut cfg: PeerConfig, listeners: &[TcpListener]) -> PeerId {
        if let Some(g) = &mut cfg.session.graceful_restart {
            g.restarting = self.core.deferring();
        }
        let id = self.core.add_peer(cfg.spec.clone());
        key_on_listeners(listeners, &cfg);
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
                established_wall: None,
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
                s.established_wall = Some(std::time::SystemTime::now());
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
                s.established_wall = None;
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
                let accepted = tokio::time::Instant::now();
                let _ = s.cmd.try_send(SessionCmd::Incoming(stream, accepted));
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
                    established_wall: s.established_wall.filter(|_| s.state == State::Established),
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

/// `cfg`'s TCP-MD5 key, if it has one, on those of `listeners` of its family (a peer calls
/// on a listener of its own family).
fn key_on_listeners(listeners: &[TcpListener], cfg: &PeerConfig) {
    let Some(key) = &cfg.md5_key else {
        return;
    };
    let peer = SocketAddr::new(cfg.spec.address, 0);
    for l in listeners.iter().filter(|l| same_family(l, &peer)) {
        if let Err(e) = cic_sockopt::set_tcp_md5sig(l.as_fd(), peer, key.as_bytes()) {
            warn!(peer = %cfg.spec.address, "TCP-MD5 key on listener: {e}");
        }
    }
}

/// The next connection on any of `listeners` (none: never).
pub(super) async fn accept(listeners: &[TcpListener]) -> io::Result<(TcpStream, SocketAddr)> {
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
pub(super) fn encode(b: &Batch, max: usize) -> Vec<BytesMut> {
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
pub(super) async fn acked(
    rx: &mut Option<watch::Receiver<u64>>,
) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
