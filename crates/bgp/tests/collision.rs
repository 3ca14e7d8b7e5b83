//! Connection collisions with real sockets on loopback (127.0.28.1 is us, 127.0.28.2
//! the peer, a scripted TCP peer): which connection the session keeps when the peer
//! connects while a connection of ours is up, and what each connection is sent.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::BytesMut;
use cic_bgp::driver::{
    InstanceHandle, InstanceStatus, PeerConfig, plain_sockets, spawn_instance,
    spawn_instance_listening,
};
use cic_bgp::fsm::{SessionConfig, State};
use cic_bgp::instance::{InstanceParams, MaxPrefixAction, PeerSpec};
use cic_bgp::policy::Role;
use cic_bgp::wire::{self, DecodeContext, Message, Open, cease};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const US: Ipv4Addr = Ipv4Addr::new(127, 0, 28, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 28, 2);
const WAIT: Duration = Duration::from_secs(10);
const PEER_ASN: u32 = 65001;

fn params() -> InstanceParams {
    InstanceParams {
        local_asn: 200_350,
        vpc_prefixes: vec![],
        max_prefixes: 100,
        max_prefix_action: MaxPrefixAction::Teardown,
        max_prefix_idle: Duration::from_secs(1800),
        max_prefix_warning: 0,
        announce: vec![],
        accept_only: None,
        restarting: false,
        kernel: false,
        rpki_reject_invalid: false,
    }
}

/// One peer at `PEER:port + 2`, ours connecting to it.
fn peer_config(port: u16) -> PeerConfig {
    PeerConfig {
        spec: PeerSpec {
            name: "pc-1".into(),
            role: Role::Customer,
            address: PEER.into(),
            local_address: US.into(),
            local_address6: None,
            asn: PEER_ASN,
            policy: None,
        },
        session: SessionConfig {
            local_asn: 200_350,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            peer_asn: PEER_ASN,
            hold_time: 90,
            min_hold_time: 0,
            connect_retry: Duration::from_secs(30),
            passive: false,
            graceful_restart: None,
            ipv4: true,
            ipv6: false,
            role: None,
            damping: None,
        },
        md5_key: None,
        ttl_security: false,
        send_hold_time: None,
        port: port + 2,
    }
}

/// Our speaker, listening on `US:port`, with one active session to `PEER:port + 2`.
async fn speaker(port: u16) -> InstanceHandle {
    let h = spawn_instance(
        params(),
        plain_sockets(),
        &[SocketAddr::new(US.into(), port)],
    );
    h.add_peer(peer_config(port)).await.expect("add the peer");
    h.peers_added().await.expect("peers added");
    h
}

/// Whether something listens at `to`.
async fn listening(to: SocketAddr) -> bool {
    TcpStream::connect(to).await.is_ok()
}

/// An address listened on only with the first peer of its family: none before, the IPv4
/// one with an IPv4 peer, never the IPv6 one without an IPv6 peer.
#[tokio::test]
async fn a_familys_listener_is_bound_with_its_first_peer() {
    let port = 17300;
    let v4 = SocketAddr::new(US.into(), port);
    let v6 = SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), port);
    let h = spawn_instance_listening(params(), plain_sockets(), &[], &[v4, v6]);
    // A command answered: the task has started.
    h.peers_added().await.expect("the task");
    assert!(!listening(v4).await, "nothing before a peer");
    h.add_peer(peer_config(port)).await.expect("add the peer");
    assert!(listening(v4).await, "the IPv4 listener, with the IPv4 peer");
    assert!(
        !listening(v6).await,
        "no IPv6 listener without an IPv6 peer"
    );
    assert_eq!(h.status().borrow().listen_error, None);
    h.shutdown().await;
}

async fn wait_state(h: &InstanceHandle, want: State) -> InstanceStatus {
    let mut rx = h.status();
    let r = tokio::time::timeout(
        WAIT,
        rx.wait_for(|s| s.peers.iter().any(|p| p.state == want)),
    )
    .await
    .map(|r| r.map(|s| s.clone()));
    match r {
        Ok(Ok(s)) => s,
        _ => panic!("the session never reached {want:?}: {:#?}", *rx.borrow()),
    }
}

/// The next message on `s`, or None at its end.
async fn next_message(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Message> {
    let cx = DecodeContext {
        ibgp: false,
        extended: false,
    };
    loop {
        if let Some((m, n)) = wire::decode_message(buf, &cx).expect("a well-formed message") {
            let _ = buf.split_to(n);
            return Some(m);
        }
        let read = tokio::time::timeout(WAIT, s.read_buf(buf))
            .await
            .expect("the speaker to send or close")
            .ok()?;
        if read == 0 {
            return None;
        }
    }
}

/// The peer connects to the speaker from its own address.
async fn peer_connects(port: u16) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(PEER.into(), 0))
        .expect("bind the peer's address");
    sock.connect(SocketAddr::new(US.into(), port))
        .await
        .expect("connect to the speaker")
}

/// The peer's OPEN and KEEPALIVE on `s` (the speaker's OPEN read already).
async fn open_session(s: &mut TcpStream) {
    let open = Message::Open(Open::new(PEER_ASN, 90, Ipv4Addr::new(10, 0, 0, 2)));
    s.write_all(&open.encode()).await.expect("send OPEN");
    s.write_all(&Message::Keepalive.encode())
        .await
        .expect("send KEEPALIVE");
}

/// Our connection is up and in the peer's accept queue (OpenSent: our OPEN sent) when
/// the peer connects to us too. The peer will take ours when it gets to it, and a peer
/// with graceful restart (BIRD) takes a connection from a neighbor whose session is up
/// as that neighbor's restart: so the session must stay on ours and refuse theirs, not
/// come up on theirs while ours waits in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_s_connection_while_ours_is_up_is_refused_and_ours_kept() {
    let port = 17280;
    // The peer listens and does not accept yet: our handshake completes in its kernel.
    let queue = TcpListener::bind((PEER, port + 2))
        .await
        .expect("bind the peer's port");
    let h = speaker(port).await;
    wait_state(&h, State::OpenSent).await;

    // The peer connects to us from its own address.
    let mut theirs = peer_connects(port).await;
    let mut buf = BytesMut::new();
    match next_message(&mut theirs, &mut buf).await {
        Some(Message::Notification(n)) => assert_eq!(
            (n.code, n.subcode),
            (wire::error_code::CEASE, cease::COLLISION),
            "the peer's connection is refused as a collision"
        ),
        other => panic!(
            "the peer's connection was taken while ours was up and queued at the peer (it got {other:?}, not a Cease)"
        ),
    }
    assert!(
        next_message(&mut theirs, &mut buf).await.is_none(),
        "the refused connection is closed"
    );

    // The peer gets to our connection: it carries our OPEN, and the session comes up on it.
    let (mut ours, from) = tokio::time::timeout(WAIT, queue.accept())
        .await
        .expect("our connection in the queue")
        .expect("accept");
    assert_eq!(from.ip(), std::net::IpAddr::from(US));
    let mut buf = BytesMut::new();
    match next_message(&mut ours, &mut buf).await {
        Some(Message::Open(o)) => assert_eq!(o.hold_time, 90),
        other => panic!("our connection carries our OPEN first, not {other:?}"),
    }
    open_session(&mut ours).await;
    wait_state(&h, State::Established).await;
    match next_message(&mut ours, &mut buf).await {
        Some(Message::Keepalive) => {}
        other => panic!("the session answers on our connection, not {other:?}"),
    }
    // Up, the session's KEEPALIVEs and hold timer tell: the kernel's probes, on while our
    // connection waited for the OPEN, are off (`ss -o` shows a socket's keepalive timer).
    let ss = std::process::Command::new("ss")
        .args([
            "-tnoH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{}", ours.peer_addr().expect("peer").port()),
            "and",
            "dst",
            &format!("{PEER}:{}", port + 2),
        ])
        .output()
        .expect("ss");
    let ss = String::from_utf8_lossy(&ss.stdout).to_string();
    assert!(
        ss.contains(&format!("{PEER}:{}", port + 2)),
        "our connection in: {ss}"
    );
    assert!(
        !ss.contains("keepalive"),
        "kernel probes on an established session: {ss}"
    );
    h.shutdown().await;
}

/// Our attempt is still in its handshake when the peer connects (the peer's accept
/// queue is full, so its kernel drops our SYN): the session takes the peer's connection
/// and drops our attempt before it completes, so it never reaches the peer (had it
/// lived, its SYN would be sent again after a second and land in the freed queue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_s_connection_while_ours_is_in_its_handshake_is_taken_and_ours_dropped() {
    let port = 17285;
    let listener = TcpSocket::new_v4().expect("socket");
    // (The last run's connections to this port may still be in TIME_WAIT.)
    listener.set_reuseaddr(true).expect("SO_REUSEADDR");
    listener
        .bind(SocketAddr::new(PEER.into(), port + 2))
        .expect("bind the peer's port");
    // A backlog of 1 holds two connections (without SYN cookies too): another host's
    // two, left unaccepted, fill it.
    let queue = listener.listen(1).expect("listen");
    let other = Ipv4Addr::new(127, 0, 28, 3);
    let mut fillers = Vec::new();
    for _ in 0..2 {
        let filler = TcpSocket::new_v4().expect("socket");
        filler
            .bind(SocketAddr::new(other.into(), 0))
            .expect("bind another address");
        let connected =
            tokio::time::timeout(WAIT, filler.connect(SocketAddr::new(PEER.into(), port + 2)))
                .await
                .expect("the peer's queue takes two connections")
                .expect("fill the peer's queue");
        fillers.push(connected);
    }
    let h = speaker(port).await;
    wait_state(&h, State::Connect).await;

    let mut theirs = peer_connects(port).await;
    let mut buf = BytesMut::new();
    match next_message(&mut theirs, &mut buf).await {
        Some(Message::Open(_)) => {}
        other => panic!("the peer's connection gets our OPEN, not {other:?}"),
    }
    open_session(&mut theirs).await;
    wait_state(&h, State::Established).await;

    for _ in 0..2 {
        let (_, from) = queue.accept().await.expect("a filler");
        assert_eq!(from.ip(), std::net::IpAddr::from(other));
    }
    let late = tokio::time::timeout(Duration::from_secs(3), queue.accept()).await;
    assert!(
        late.is_err(),
        "our dropped attempt reached the peer after the session came up on the peer's connection: {late:?}"
    );
    h.shutdown().await;
}

/// Our connection waits for the peer's OPEN, its end held by the peer's kernel: in the
/// peer's accept queue for longer than the probes take, it is kept (the kernel answers
/// them; a busy BIRD has left ours there 13 s). Then the peer forgets it without a word
/// (a reboot, or a reset lost on the way; played with TCP_REPAIR, whose close sends
/// nothing): the probe that follows is answered with a reset, and the session leaves
/// OpenSent within seconds instead of waiting minutes for an OPEN that cannot come, the
/// peer's connections refused meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_of_ours_the_peer_forgot_is_given_up_within_seconds() {
    let port = 17295;
    // A socket can be put in repair mode only with CAP_NET_ADMIN: asked first, of a new one.
    let probe =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    if let Err(e) = nix::sys::socket::setsockopt(&probe, nix::sys::socket::sockopt::TcpRepair, &1) {
        assert!(
            std::env::var("CIC_REQUIRE_ROOT").is_err(),
            "TCP_REPAIR needs CAP_NET_ADMIN: {e}"
        );
        eprintln!("skipped: TCP_REPAIR needs CAP_NET_ADMIN ({e})");
        return;
    }
    drop(probe);
    let queue = TcpListener::bind((PEER, port + 2))
        .await
        .expect("bind the peer's port");
    let h = speaker(port).await;
    wait_state(&h, State::OpenSent).await;
    // Probed unanswered for 6 s at most (3 s idle, 3 probes a second apart): 8 s in the
    // queue, answered by the kernel, and still ours.
    tokio::time::sleep(Duration::from_secs(8)).await; // the span tested, not a wait for an event
    assert_eq!(
        h.status().borrow().peers[0].state,
        State::OpenSent,
        "our connection in a live peer's accept queue is kept"
    );
    let (mut ours, _) = tokio::time::timeout(WAIT, queue.accept())
        .await
        .expect("our connection in the queue")
        .expect("accept");
    let mut buf = BytesMut::new();
    assert!(
        matches!(
            next_message(&mut ours, &mut buf).await,
            Some(Message::Open(_))
        ),
        "our OPEN on it"
    );
    // Forgotten: in repair mode a socket closes without a FIN or a reset.
    nix::sys::socket::setsockopt(&ours, nix::sys::socket::sockopt::TcpRepair, &1)
        .expect("repair mode");
    drop(ours);
    drop(queue);
    let forgotten = tokio::time::Instant::now();
    let mut rx = h.status();
    tokio::time::timeout(
        WAIT,
        rx.wait_for(|s| s.peers.iter().all(|p| p.state != State::OpenSent)),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "still waiting for an OPEN on a connection the peer forgot, {:?} on",
            forgotten.elapsed()
        )
    })
    .expect("status");
    h.shutdown().await;
}
