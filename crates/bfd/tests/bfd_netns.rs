//! BFD over real UDP between network namespaces joined by a veth: our sessions with each
//! other and with BIRD's, a cut link, and the TTL rule. Needs root (namespaces).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::{Duration, Instant};

use cic_bfd::driver::{Bfd, PORT, SocketFactory, Status};
use cic_bfd::{Config, Diag, Packet, State};
use cic_dataplane::netns;
use cic_peers::{Bird, Frr, bird_or_skip, frr_available, peer_or_skip, wait_until};
use tokio::sync::watch;

const A: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const A6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
const B6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);

/// Two namespaces `<tag>-a` (10.77.0.1) and `<tag>-b` (10.77.0.2) joined by veth `v0`;
/// removed on drop.
struct Wire {
    a: String,
    b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Wire {
    fn new(tag: &str) -> Wire {
        let w = Wire {
            a: format!("cicbfd-{tag}-a"),
            b: format!("cicbfd-{tag}-b"),
        };
        for n in [&w.a, &w.b] {
            let _ = netns::del(n);
            netns::add(n).expect("netns add");
            ip(&["-n", n, "link", "set", "lo", "up"]);
            // IPv6 addresses stay through a cut (the kernel drops them on link down
            // otherwise), as on a router's port.
            netns::sysctl(Some(n), "net/ipv6/conf/default/keep_addr_on_down", "1").expect("sysctl");
        }
        ip(&[
            "link", "add", "v0", "netns", &w.a, "type", "veth", "peer", "name", "v0", "netns", &w.b,
        ]);
        ip(&["-n", &w.a, "addr", "add", "10.77.0.1/24", "dev", "v0"]);
        ip(&["-n", &w.b, "addr", "add", "10.77.0.2/24", "dev", "v0"]);
        ip(&[
            "-n",
            &w.a,
            "addr",
            "add",
            "fd77::1/64",
            "dev",
            "v0",
            "nodad",
        ]);
        ip(&[
            "-n",
            &w.b,
            "addr",
            "add",
            "fd77::2/64",
            "dev",
            "v0",
            "nodad",
        ]);
        for n in [&w.a, &w.b] {
            ip(&["-n", n, "link", "set", "v0", "up"]);
        }
        w
    }

    fn sockets(ns: &str) -> SocketFactory {
        let ns = ns.to_string();
        std::sync::Arc::new(move |domain| netns::udp_socket_of(Some(&ns), domain))
    }

    /// Cuts (or restores) the link: b's end goes down, so nothing crosses either way.
    fn set_b_link(&self, up: bool) {
        ip(&[
            "-n",
            &self.b,
            "link",
            "set",
            "v0",
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = netns::del(&self.a);
        let _ = netns::del(&self.b);
    }
}

async fn until(rx: &mut watch::Receiver<Status>, what: &str, f: impl Fn(&Status) -> bool) {
    let done = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s)))
        .await
        .map(|r| r.is_ok());
    assert!(
        done.is_ok(),
        "timed out waiting for {what}: {:?}",
        *rx.borrow()
    );
    assert_eq!(done, Ok(true), "BFD task stopped");
}

#[tokio::test]
async fn two_speakers_come_up_detect_a_cut_link_in_the_detection_time_and_recover() {
    let w = Wire::new("own");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd a");
    let b = Bfd::spawn(Wire::sockets(&w.b), PORT).expect("bfd b");
    let mut sa = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add a");
    let mut sb = b
        .add(B.into(), A.into(), Config::default())
        .await
        .expect("add b");
    until(&mut sa, "a Up", |s| s.state == State::Up).await;
    until(&mut sb, "b Up", |s| s.state == State::Up).await;
    // After the Poll Sequence both run at 300 ms × 3.
    until(&mut sa, "a at 900 ms detection", |s| {
        s.detection_time == Some(Duration::from_millis(900))
    })
    .await;
    assert_eq!(
        sa.borrow().remote_discriminator,
        sb.borrow().local_discriminator
    );

    let cut = Instant::now();
    w.set_b_link(false);
    until(&mut sa, "a Down after the cut", |s| s.state != State::Up).await;
    let took = cut.elapsed();
    let st = sa.borrow().clone();
    assert_eq!(st.state, State::Down);
    assert_eq!(st.diag, Diag::ControlDetectionTimeExpired);
    assert_eq!(st.downs, 1);
    assert_eq!(st.last_failure, Some(Diag::ControlDetectionTimeExpired));
    // 900 ms after the last packet heard, which came at most one interval before the cut.
    assert!(
        took <= Duration::from_millis(1500),
        "detected after {took:?}"
    );
    eprintln!("cut detected after {} ms", took.as_millis());

    w.set_b_link(true);
    until(&mut sa, "a Up again", |s| s.state == State::Up).await;
    until(&mut sb, "b Up again", |s| s.state == State::Up).await;

    // Removing a session tells the peer AdminDown: it goes Down with diag 3, not 1.
    a.remove(B.into()).await.expect("remove");
    until(&mut sb, "b Down by signal", |s| s.state == State::Down).await;
    assert_eq!(sb.borrow().diag, Diag::NeighborSignaledSessionDown);
    a.shutdown().await;
    b.shutdown().await;
}

/// Whether namespace `ns` has a UDP socket of `family`'s table (`udp` or `udp6`) bound to
/// BFD's port.
fn bound_to_bfd(ns: &str, table: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", &format!("/proc/net/{table}")])
        .output()
        .expect("read the namespace's sockets");
    let port = format!(":{PORT:04X} ");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .any(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|local| format!("{local} ").ends_with(&port))
        })
}

/// A namespace of IPv4 sessions holds no IPv6 socket: the IPv6 receiver is bound with the
/// first IPv6 session.
#[tokio::test]
async fn the_ipv6_receiver_is_bound_with_the_first_ipv6_session() {
    let w = Wire::new("lazy");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let _s4 = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add v4");
    assert!(bound_to_bfd(&w.a, "udp"), "the IPv4 receiver");
    assert!(
        !bound_to_bfd(&w.a, "udp6"),
        "no IPv6 receiver without an IPv6 session"
    );
    let _s6 = a
        .add(A6.into(), B6.into(), Config::default())
        .await
        .expect("add v6");
    assert!(
        bound_to_bfd(&w.a, "udp6"),
        "the IPv6 receiver, with the IPv6 session"
    );
}

#[tokio::test]
async fn a_packet_with_ttl_below_255_is_ignored() {
    let w = Wire::new("ttl");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd a");
    let mut sa = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add a");
    let s = netns::udp_socket(Some(&w.b)).expect("socket");
    s.bind(&std::net::SocketAddr::from((B, 49999)).into())
        .expect("bind");
    let to: std::net::SocketAddr = (A, PORT).into();
    let packet = |state, your, tx_us| Packet {
        diag: Diag::None,
        state,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 222,
        your_discriminator: your,
        desired_min_tx_us: tx_us,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    };
    s.set_ttl_v4(255).expect("ttl");
    s.send_to(&packet(State::Down, 0, 1_000_000).encode(), &to.into())
        .expect("send");
    until(&mut sa, "Init", |s| s.state == State::Init).await;
    let ours = sa.borrow().local_discriminator;
    // With TTL 64 an Init from the peer would take us Up: it must be dropped.
    s.set_ttl_v4(64).expect("ttl");
    s.send_to(&packet(State::Init, ours, 1_000_000).encode(), &to.into())
        .expect("send");
    // Then a TTL 255 packet that changes only the detection time (3 × 2 s): once it is
    // seen, the one before it has been handled too.
    s.set_ttl_v4(255).expect("ttl");
    s.send_to(&packet(State::Down, ours, 2_000_000).encode(), &to.into())
        .expect("send");
    until(&mut sa, "the TTL 255 packet", |s| {
        s.detection_time == Some(Duration::from_secs(6))
    })
    .await;
    assert_eq!(
        sa.borrow().state,
        State::Init,
        "the TTL 64 packet was acted on"
    );
    a.shutdown().await;
}

/// Cuts the link and checks our session goes Down for the detection time (900 ms at the
/// peer's 300 ms × 3), within 1.5 s.
async fn cut_is_detected(w: &Wire, s: &mut watch::Receiver<Status>, peer: &str) {
    let cut = Instant::now();
    w.set_b_link(false);
    until(s, "Down after the cut", |s| s.state != State::Up).await;
    let took = cut.elapsed();
    assert_eq!(s.borrow().diag, Diag::ControlDetectionTimeExpired);
    assert!(
        took <= Duration::from_millis(1500),
        "detected after {took:?}"
    );
    eprintln!("cut detected after {} ms ({peer} peer)", took.as_millis());
}

#[tokio::test]
async fn ipv6_sessions_come_up_with_bird_detect_a_cut_and_drop_a_hop_limit_below_255() {
    if !bird_or_skip("bfd ipv6") {
        return;
    }
    let w = Wire::new("six");
    let conf = r#"
router id 10.77.0.2;
protocol device {}
protocol bfd {
  interface "v0" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };
  neighbor fd77::1 dev "v0" local fd77::2;
}
"#;
    let bird = Bird::start("bfd6", conf, Some(&w.b), None).expect("start BIRD");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    // Both families at once in one task: BIRD runs only the IPv6 one.
    let s4 = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add v4");
    let mut s = a
        .add(A6.into(), B6.into(), Config::default())
        .await
        .expect("add v6");
    until(&mut s, "Up with BIRD over IPv6", |s| s.state == State::Up).await;
    until(&mut s, "BIRD's fast rate", |s| {
        s.detection_time == Some(Duration::from_millis(900))
    })
    .await;
    wait_until(Duration::from_secs(10), "BIRD to show Up", || {
        let out = bird.cmd("show bfd sessions").ok()?;
        out.lines()
            .find(|l| l.trim_start().starts_with("fd77::1"))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
            .filter(|s| s == "Up")
    })
    .expect("BIRD Up");
    assert_ne!(s4.borrow().state, State::Up, "no IPv4 peer answers");

    // A packet from the peer's address with hop limit 64 is not acted on: a Down with
    // our discriminator would take the session down if it were.
    let ours = s.borrow().local_discriminator;
    let raw = netns::udp_socket_of(Some(&w.b), socket2::Domain::IPV6).expect("socket");
    raw.set_only_v6(true).expect("v6 only");
    raw.bind(&std::net::SocketAddr::from((B6, 49998)).into())
        .expect("bind");
    raw.set_unicast_hops_v6(64).expect("hops");
    let down = Packet {
        diag: Diag::NeighborSignaledSessionDown,
        state: State::AdminDown,
        poll: false,
        final_: false,
        cpi: false,
        demand: false,
        detect_mult: 3,
        my_discriminator: 999,
        your_discriminator: ours,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
    };
    let to: std::net::SocketAddr = (A6, PORT).into();
    for _ in 0..3 {
        raw.send_to(&down.encode(), &to.into()).expect("send");
    }
    let moved = tokio::time::timeout(
        Duration::from_millis(1000),
        s.wait_for(|st| st.state != State::Up),
    )
    .await
    .map(|r| r.is_ok());
    assert!(moved.is_err(), "a hop limit 64 packet was acted on");

    let cut = Instant::now();
    w.set_b_link(false);
    until(&mut s, "Down after the cut", |s| s.state != State::Up).await;
    let took = cut.elapsed();
    assert_eq!(s.borrow().diag, Diag::ControlDetectionTimeExpired);
    assert!(
        took <= Duration::from_millis(1500),
        "detected after {took:?}"
    );
    w.set_b_link(true);
    until(&mut s, "Up again", |s| s.state == State::Up).await;
    a.remove(IpAddr::V6(B6)).await.expect("remove");
    a.shutdown().await;
}

fn bird_conf() -> String {
    r#"
router id 10.77.0.2;
protocol device {}
protocol bfd {
  interface "v0" { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; };
  neighbor 10.77.0.1 dev "v0" local 10.77.0.2;
}
"#
    .to_string()
}

/// BIRD's session state for 10.77.0.1 from `show bfd sessions`.
fn bird_state(bird: &Bird) -> Option<String> {
    let out = bird.cmd("show bfd sessions").ok()?;
    out.lines()
        .find(|l| l.trim_start().starts_with("10.77.0.1"))
        .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
}

#[tokio::test]
async fn interop_with_bird_up_bytes_cut_and_admin_down() {
    if !bird_or_skip("bfd interop_with_bird") {
        return;
    }
    let w = Wire::new("bird");
    let mut bird = Bird::start("bfd", &bird_conf(), Some(&w.b), None).expect("start BIRD");
    bird.keep_dir();

    // Golden bytes, live: BIRD's first packets, read before our speaker runs.
    let raw = netns::udp_socket(Some(&w.a)).expect("socket");
    raw.bind(&std::net::SocketAddr::from((A, PORT)).into())
        .expect("bind 3784");
    raw.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let raw: std::net::UdpSocket = raw.into();
    let mut buf = [0u8; 128];
    let (n, from) = raw.recv_from(&mut buf).expect("a packet from BIRD");
    let bytes = buf[..n].to_vec();
    drop(raw);
    let p = Packet::decode(&bytes).expect("BIRD's packet decodes");
    assert_eq!(from.ip(), std::net::IpAddr::V4(B));
    assert_eq!(p.state, State::Down);
    assert_eq!(p.detect_mult, 3);
    assert_eq!(p.required_min_rx_us, 300_000);
    assert!(p.desired_min_tx_us >= 1_000_000, "slow rate before Up");
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(
        p.encode().as_slice(),
        &bytes[..24],
        "re-encodes to BIRD's bytes"
    );

    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let mut s = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add");
    until(&mut s, "Up with BIRD", |s| s.state == State::Up).await;
    wait_until(Duration::from_secs(10), "BIRD to show Up", || {
        bird_state(&bird).filter(|s| s == "Up")
    })
    .expect("BIRD Up");
    until(&mut s, "BIRD's fast rate", |s| {
        s.detection_time == Some(Duration::from_millis(900))
    })
    .await;

    cut_is_detected(&w, &mut s, "BIRD").await;
    w.set_b_link(true);
    until(&mut s, "Up again with BIRD", |s| s.state == State::Up).await;

    a.remove(B.into()).await.expect("remove");
    wait_until(Duration::from_secs(10), "BIRD to leave Up", || {
        bird_state(&bird).filter(|s| s != "Up")
    })
    .expect("BIRD Down");
    a.shutdown().await;
}

/// BIRD's "Since" for 10.77.0.1 (when its session last changed state), in seconds of the
/// day. BIRD derives it from a relative time, so two readings of one instant can differ
/// by a millisecond.
fn bird_since(bird: &Bird) -> Option<f64> {
    let out = bird.cmd("show bfd sessions").ok()?;
    let t = out
        .lines()
        .find(|l| l.trim_start().starts_with("10.77.0.1"))?
        .split_whitespace()
        .nth(3)?
        .to_string();
    let mut parts = t.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    Some(
        h.parse::<f64>().ok()? * 3600.0
            + m.parse::<f64>().ok()? * 60.0
            + sec.parse::<f64>().ok()?,
    )
}

#[tokio::test]
async fn a_session_resumed_by_a_new_process_within_the_detection_time_stays_up_at_bird() {
    if !bird_or_skip("bfd resume") {
        return;
    }
    let w = Wire::new("resume");
    let bird = Bird::start("bfd", &bird_conf(), Some(&w.b), None).expect("start BIRD");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let mut s = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add");
    until(&mut s, "Up at the fast rate", |s| {
        s.state == State::Up && s.detection_time == Some(Duration::from_millis(900))
    })
    .await;
    wait_until(Duration::from_secs(10), "BIRD to show Up", || {
        bird_state(&bird).filter(|s| s == "Up")
    })
    .expect("BIRD Up");
    let snap = s.borrow().snapshot.expect("a snapshot while Up");
    let since = bird_since(&bird).expect("since");

    // The process ends without a word (kill -9): no AdminDown reaches BIRD.
    drop(s);
    drop(a);
    // The agent takes 300 ms to come back, well inside BIRD's 900 ms detection time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd again");
    let mut s = a
        .add_resumed(A.into(), B.into(), Config::default(), Some(snap))
        .await
        .expect("resume");
    assert_eq!(s.borrow().state, State::Up, "Up from the first packet");
    // Three detection times in which neither side may see the session fail.
    let failed = tokio::time::timeout(
        Duration::from_millis(2700),
        s.wait_for(|st| st.state != State::Up || st.downs > 0),
    )
    .await
    .map(|r| r.is_ok());
    assert!(
        failed.is_err(),
        "the resumed session failed: {:?}",
        *s.borrow()
    );
    assert_eq!(s.borrow().local_discriminator, snap.local_disc);
    assert_eq!(bird_state(&bird).as_deref(), Some("Up"));
    // A change of state would date from after the restart, 300 ms or more later.
    let after = bird_since(&bird).expect("since");
    assert!(
        (after - since).abs() < 0.05,
        "BIRD's session must not have changed state: since {since} s, now since {after} s"
    );
    a.shutdown().await;
}

fn frr_conf() -> String {
    "bfd
 peer 10.77.0.1 local-address 10.77.0.2
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 !
!
"
    .to_string()
}

/// FRR bfdd's status of its session with 10.77.0.1 ("up", "down", "init", …).
fn frr_status(frr: &Frr) -> Option<String> {
    let peers = frr.json("show bfd peers json").ok()?;
    peers
        .as_array()?
        .iter()
        .find(|p| p["peer"] == "10.77.0.1")
        .and_then(|p| p["status"].as_str().map(str::to_string))
}

#[tokio::test]
async fn interop_with_frr_bfdd_up_cut_and_admin_down() {
    if !peer_or_skip("bfd interop_with_frr", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frr");
    let frr = Frr::bfdd("bfd", &frr_conf(), Some(&w.b)).expect("start bfdd");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let mut s = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add");
    until(&mut s, "Up with FRR", |s| s.state == State::Up).await;
    wait_until(Duration::from_secs(10), "bfdd to show up", || {
        frr_status(&frr).filter(|s| s == "up")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", frr.log()));
    until(&mut s, "FRR's fast rate", |s| {
        s.detection_time == Some(Duration::from_millis(900))
    })
    .await;

    cut_is_detected(&w, &mut s, "FRR").await;
    wait_until(Duration::from_secs(10), "bfdd to see the cut", || {
        frr_status(&frr).filter(|s| s == "down")
    })
    .expect("bfdd down");
    w.set_b_link(true);
    until(&mut s, "Up again with FRR", |s| s.state == State::Up).await;
    wait_until(Duration::from_secs(10), "bfdd up again", || {
        frr_status(&frr).filter(|s| s == "up")
    })
    .expect("bfdd up");

    // Removing our session tells bfdd (AdminDown), which leaves Up.
    a.remove(B.into()).await.expect("remove");
    wait_until(Duration::from_secs(10), "bfdd to leave up", || {
        frr_status(&frr).filter(|s| s != "up")
    })
    .expect("bfdd down");
    a.shutdown().await;
}

/// The same with FRR's bfdd over IPv6: a dual-stack connection's second BFD session.
#[tokio::test]
async fn interop_with_frr_bfdd_over_ipv6_up_cut_and_admin_down() {
    if !peer_or_skip("bfd interop_with_frr ipv6", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frr6");
    let conf = "bfd
 peer fd77::1 local-address fd77::2
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 !
!
";
    let frr = Frr::bfdd("bfd6", conf, Some(&w.b)).expect("start bfdd");
    let status = || -> Option<String> {
        let peers = frr.json("show bfd peers json").ok()?;
        peers
            .as_array()?
            .iter()
            .find(|p| p["peer"] == "fd77::1")
            .and_then(|p| p["status"].as_str().map(str::to_string))
    };
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let mut s = a
        .add(A6.into(), B6.into(), Config::default())
        .await
        .expect("add");
    until(&mut s, "Up with FRR over IPv6", |s| s.state == State::Up).await;
    wait_until(Duration::from_secs(10), "bfdd to show up", || {
        status().filter(|s| s == "up")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", frr.log()));
    until(&mut s, "FRR's fast rate", |s| {
        s.detection_time == Some(Duration::from_millis(900))
    })
    .await;
    cut_is_detected(&w, &mut s, "FRR over IPv6").await;
    w.set_b_link(true);
    until(&mut s, "Up again with FRR", |s| s.state == State::Up).await;
    a.remove(IpAddr::V6(B6)).await.expect("remove");
    wait_until(Duration::from_secs(10), "bfdd to leave up", || {
        status().filter(|s| s != "up")
    })
    .expect("bfdd down");
    a.shutdown().await;
}

fn fast() -> Config {
    Config {
        desired_min_tx: Duration::from_millis(100),
        required_min_rx: Duration::from_millis(100),
        detect_mult: 3,
    }
}

/// A customer asks for 100 ms × 3 on a session that runs at 300 ms × 3: BIRD (configured
/// for 100 ms) and FRR's bfdd (the same) go on at the slower rate while we ask for it,
/// move to 100 ms when our Poll Sequence tells them, without the session leaving Up on
/// either side, and a cut is then detected in 300 ms (within 600 ms here).
#[tokio::test]
async fn new_timers_reach_bird_and_frr_by_poll_and_a_cut_is_detected_at_100_ms() {
    if !bird_or_skip("bfd new timers with BIRD") {
        return;
    }
    // BIRD, configured for 100 ms × 3.
    let w = Wire::new("bird100");
    let conf = bird_conf().replace("300 ms", "100 ms");
    let bird = Bird::start("bfd100", &conf, Some(&w.b), None).expect("start BIRD");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let mut s = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add");
    until(&mut s, "Up at our 300 ms", |s| {
        s.state == State::Up && s.detection_time == Some(Duration::from_millis(900))
    })
    .await;
    let since = bird_since(&bird).expect("BIRD's session");
    assert!(a.reconfigure(B.into(), fast()).await.expect("reconfigure"));
    until(&mut s, "100 ms × 3 negotiated", |s| {
        s.detection_time == Some(Duration::from_millis(300))
            && s.tx_interval == Some(Duration::from_millis(100))
    })
    .await;
    assert_eq!(s.borrow().downs, 0, "never left Up");
    assert_eq!(
        bird_since(&bird),
        Some(since),
        "BIRD's session did not change state"
    );
    fast_cut_is_detected(&w, &mut s, "BIRD").await;
    a.shutdown().await;
    drop(bird);

    if !peer_or_skip("bfd new timers with FRR", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frr100");
    let conf = frr_conf().replace(" 300", " 100");
    let frr = Frr::bfdd("bfd100", &conf, Some(&w.b)).expect("start bfdd");
    let a = Bfd::spawn(Wire::sockets(&w.a), PORT).expect("bfd");
    let mut s = a
        .add(A.into(), B.into(), Config::default())
        .await
        .expect("add");
    until(&mut s, "Up with FRR at our 300 ms", |s| {
        s.state == State::Up && s.detection_time == Some(Duration::from_millis(900))
    })
    .await;
    wait_until(Duration::from_secs(10), "bfdd up", || {
        frr_status(&frr).filter(|s| s == "up")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", frr.log()));
    assert!(a.reconfigure(B.into(), fast()).await.expect("reconfigure"));
    until(&mut s, "100 ms × 3 negotiated with FRR", |s| {
        s.detection_time == Some(Duration::from_millis(300))
            && s.tx_interval == Some(Duration::from_millis(100))
    })
    .await;
    assert_eq!(s.borrow().downs, 0, "never left Up");
    let peer = frr
        .json("show bfd peers json")
        .expect("bfdd")
        .as_array()
        .and_then(|p| p.iter().find(|p| p["peer"] == "10.77.0.1").cloned())
        .expect("the session");
    assert_eq!(
        (
            peer["status"].as_str(),
            peer["remote-receive-interval"].as_u64()
        ),
        (Some("up"), Some(100)),
        "bfdd sees our new Required Min RX: {peer}"
    );
    fast_cut_is_detected(&w, &mut s, "FRR").await;
    a.shutdown().await;
}

async fn fast_cut_is_detected(w: &Wire, s: &mut watch::Receiver<Status>, peer: &str) {
    let cut = Instant::now();
    w.set_b_link(false);
    until(s, "Down after the cut", |s| s.state != State::Up).await;
    let took = cut.elapsed();
    assert!(
        took <= Duration::from_millis(600),
        "detected after {took:?} at 100 ms × 3 ({peer})"
    );
    eprintln!(
        "cut detected after {} ms at 100 ms × 3 ({peer} peer)",
        took.as_millis()
    );
}
