//! Interop: cic's speaker against BIRD 2 as the customer router and as the cloud fabric
//! router, over loopback addresses of the test's own (127.0.X.0/24, one X per test).
//! Skipped when BIRD is not installed, unless CIC_REQUIRE_PEERS=1 (CI).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use cic_bgp::driver::{InstanceHandle, InstanceStatus, PeerConfig, plain_sockets, spawn_instance};
use cic_bgp::fsm::{GrConfig, SessionConfig, State};
use cic_bgp::instance::{InstanceParams, MaxPrefixAction, PeerSpec};
use cic_bgp::policy::Role;
use cic_peers::{Bird, bird_or_skip, wait_until};
use ipnet::IpNet;

const CLOUD: u32 = 200_350;
const WAIT: Duration = Duration::from_secs(30);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}
fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}

/// Loopback plan of one test: we are .1 (listening on `base`), the customer BIRD .2
/// (port base+2), the fabric BIRD .3 (port base+3).
struct Plan {
    x: u8,
    base: u16,
}

impl Plan {
    fn us(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.x, 1)
    }
    fn customer(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.x, 2)
    }
    fn fabric(&self) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, self.x, 3)
    }
}

fn customer_bird(p: &Plan, extra: &str, routes: &str) -> String {
    format!(
        r#"
router id {c};
protocol device {{}}
protocol static announced {{ ipv4; {routes} }}
protocol bgp cloud {{
  local {c} port {cport} as 65001;
  neighbor {us} port {uport} as {CLOUD};
  multihop;
  hold time 240;
  connect retry time 1;
  {extra}
  ipv4 {{
    import all;
    export filter {{
      if net = 172.20.0.0/16 then bgp_path.prepend(64500);
      # "High preference, please" (the cloud's local-preference community).
      if net = 192.168.10.0/24 then bgp_large_community.add(({CLOUD}, 0, 7300));
      accept;
    }};
  }};
}}
"#,
        c = p.customer(),
        cport = p.base + 2,
        us = p.us(),
        uport = p.base,
    )
}

fn fabric_bird(p: &Plan) -> String {
    format!(
        r#"
router id {f};
protocol device {{}}
protocol static vpc {{ ipv4; route 10.128.0.0/24 blackhole; }}
protocol bgp edge {{
  local {f} port {fport} as {CLOUD};
  neighbor {us} port {uport} as {CLOUD};
  multihop;
  connect retry time 1;
  ipv4 {{ import all; export where proto = "vpc"; gateway recursive; igp table master4; }};
}}
"#,
        f = p.fabric(),
        fport = p.base + 3,
        us = p.us(),
        uport = p.base,
    )
}

fn session(peer_asn: u32, min_hold: u16) -> SessionConfig {
    SessionConfig {
        local_asn: CLOUD,
        router_id: ip("10.255.0.1"),
        peer_asn,
        hold_time: 90,
        min_hold_time: min_hold,
        connect_retry: Duration::from_secs(1),
        passive: false,
        graceful_restart: None,
        ipv4: true,
        ipv6: false,
        role: None,
        damping: None,
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
}

async fn start(
    p: &Plan,
    max_prefixes: u32,
    md5: Option<&str>,
    with_fabric: bool,
) -> InstanceHandle {
    start_with(p, max_prefixes, md5, with_fabric, None).await
}

/// `gr`: graceful restart with this restart time; `Some((t, true))` starts as a
/// restarting speaker.
async fn start_with(
    p: &Plan,
    max_prefixes: u32,
    md5: Option<&str>,
    with_fabric: bool,
    gr: Option<(u16, bool)>,
) -> InstanceHandle {
    let session = |asn, min_hold| SessionConfig {
        graceful_restart: gr.map(|(restart_time, _)| GrConfig {
            restart_time,
            restarting: false,
        }),
        ..session(asn, min_hold)
    };
    let params = InstanceParams {
        local_asn: CLOUD,
        vpc_prefixes: vec![net("10.128.0.0/24")],
        max_prefixes,
        max_prefix_action: MaxPrefixAction::Teardown,
        max_prefix_idle: Duration::from_secs(1800),
        max_prefix_warning: 0,
        announce: vec![],
        accept_only: None,
        restarting: gr.is_some_and(|(_, r)| r),
        kernel: true,
        rpki_reject_invalid: false,
    };
    init_tracing();
    let h = spawn_instance(
        params,
        plain_sockets(),
        &[SocketAddr::new(p.us().into(), p.base)],
    );
    h.add_peer(PeerConfig {
        spec: PeerSpec {
            name: "pc-1".into(),
            role: Role::Customer,
            address: p.customer().into(),
            local_address: p.us().into(),
            local_address6: None,
            asn: 65001,
            policy: None,
        },
        session: session(65001, 90),
        md5_key: md5.map(str::to_string),
        ttl_security: false,
        send_hold_time: None,
        port: p.base + 2,
    })
    .await
    .expect("add customer");
    if with_fabric {
        h.add_peer(PeerConfig {
            spec: PeerSpec {
                name: "ri-1".into(),
                role: Role::Fabric,
                address: p.fabric().into(),
                local_address: p.us().into(),
                local_address6: None,
                asn: CLOUD,
                policy: None,
            },
            session: session(CLOUD, 0),
            md5_key: None,
            ttl_security: false,
            send_hold_time: None,
            port: p.base + 3,
        })
        .await
        .expect("add fabric");
    }
    h.peers_added().await.expect("peers added");
    h
}

async fn wait_status(
    h: &InstanceHandle,
    what: &str,
    f: impl Fn(&InstanceStatus) -> bool,
) -> InstanceStatus {
    let mut rx = h.status();
    let r = tokio::time::timeout(WAIT, rx.wait_for(|s| f(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match r {
        Ok(Ok(s)) => s,
        _ => panic!("timed out waiting for {what}; status: {:#?}", *rx.borrow()),
    }
}

fn bird_wait(b: &Bird, what: &str, f: impl Fn(&Bird) -> bool) {
    if let Err(e) = wait_until(WAIT, what, || f(b).then_some(())) {
        panic!("{e}\n--- BIRD {} log ---\n{}", b.name(), b.log());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_flow_between_bird_customer_bird_fabric_and_the_kernel_table() {
    if !bird_or_skip("routes_flow") {
        return;
    }
    let p = Plan { x: 21, base: 17210 };
    let routes = "route 192.168.10.0/24 blackhole; route 192.0.2.0/24 blackhole; \
                  route 172.20.0.0/16 blackhole; route 10.128.0.0/25 blackhole;";
    let cust =
        Bird::start("customer", &customer_bird(&p, "", routes), None, None).expect("customer BIRD");
    let fab = Bird::start("fabric", &fabric_bird(&p), None, None).expect("fabric BIRD");
    let h = start(&p, 500, None, true).await;

    // Kernel table: exactly the acceptable customer route and the VPC route.
    let mut rx = h.routes();
    let want = [
        (net("10.128.0.0/24"), vec![IpAddr::from(p.fabric())]),
        (net("192.168.10.0/24"), vec![IpAddr::from(p.customer())]),
    ];
    let got = tokio::time::timeout(
        WAIT,
        rx.wait_for(|r| r.len() == 2 && want.iter().all(|(k, v)| r.get(k) == Some(v))),
    )
    .await
    .map(|r| r.is_ok());
    assert!(
        got.is_ok(),
        "kernel routes: {:?}\ncustomer BIRD log:\n{}",
        *rx.borrow(),
        cust.log()
    );

    // The VPC route reaches the kernel before the export toward the customer is counted:
    // wait for both counters rather than assume an order between the two.
    let st = wait_status(&h, "customer counters", |s| {
        s.peers
            .iter()
            .any(|p| p.stats.received == 4 && p.stats.advertised >= 1)
    })
    .await;
    let c = &st.peers[0];
    assert_eq!(c.state, State::Established);
    assert_eq!(
        (c.stats.received, c.stats.accepted, c.stats.advertised),
        (4, 1, 1),
        "{c:?}"
    );

    // The customer hears the VPC prefix from AS 200350 with our address as next hop, and
    // nothing else from us.
    bird_wait(&cust, "VPC prefix at the customer", |b| {
        b.has_route("10.128.0.0/24")
    });
    let r = cust.route("10.128.0.0/24");
    assert!(r.contains("BGP.as_path: 200350"), "{r}");
    assert!(r.contains(&format!("BGP.next_hop: {}", p.us())), "{r}");

    // The fabric hears the customer's prefix over iBGP with next hop self and the
    // LOCAL_PREF the customer asked for with CLOUD:0:7300 (high: 150).
    bird_wait(&fab, "customer prefix at the fabric", |b| {
        b.has_route("192.168.10.0/24")
    });
    let r = fab.route("192.168.10.0/24");
    assert!(r.contains("BGP.as_path: 65001"), "{r}");
    assert!(r.contains(&format!("BGP.next_hop: {}", p.us())), "{r}");
    assert!(r.contains("BGP.local_pref: 150"), "{r}");
    assert!(
        !fab.has_route("172.20.0.0/16"),
        "documentation ASN path must not reach the fabric"
    );

    // The fabric loses the VPC: the customer must stop hearing it.
    fab.cmd("disable edge").expect("disable");
    bird_wait(&cust, "VPC prefix withdrawn at the customer", |b| {
        !b.has_route("10.128.0.0/24")
    });
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_protected_session_comes_up_with_the_right_key() {
    if !bird_or_skip("md5") {
        return;
    }
    let p = Plan { x: 22, base: 17220 };
    let conf = customer_bird(
        &p,
        r#"password "s3cr3t-k3y";"#,
        "route 192.168.22.0/24 blackhole;",
    );
    let cust = Bird::start("customer-md5", &conf, None, None).expect("BIRD");
    let h = start(&p, 500, Some("s3cr3t-k3y"), false).await;
    wait_status(&h, "Established with MD5", |s| {
        s.peers.iter().any(|p| p.state == State::Established)
    })
    .await;
    bird_wait(&cust, "BIRD sees Established", |b| {
        b.bgp_state("cloud").as_deref() == Some("Established")
    });
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_prefix_limit_tears_the_session_down_and_bird_is_told_why() {
    if !bird_or_skip("max_prefix") {
        return;
    }
    let p = Plan { x: 23, base: 17230 };
    let routes = "route 192.168.1.0/24 blackhole; route 192.168.2.0/24 blackhole; route 192.168.3.0/24 blackhole;";
    let cust = Bird::start(
        "customer-maxpfx",
        &customer_bird(&p, "", routes),
        None,
        None,
    )
    .expect("BIRD");
    let h = start(&p, 2, None, false).await;
    let st = wait_status(&h, "teardown", |s| {
        s.peers.iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Maximum Number of Prefixes"))
        })
    })
    .await;
    assert_eq!(st.peers[0].state, State::Idle);
    // The state says why and for how long.
    assert!(st.peers[0].stats.over_limit, "{:?}", st.peers[0].stats);
    let held = st.peers[0]
        .held_until
        .expect("held idle")
        .saturating_duration_since(std::time::Instant::now());
    assert!(
        held > Duration::from_secs(1700) && held <= Duration::from_secs(1800),
        "the 30 min hold: {held:?}"
    );
    bird_wait(&cust, "BIRD reports the Cease", |b| {
        b.last_error("cloud")
            .is_some_and(|e| e.to_lowercase().contains("maximum number of prefixes"))
    });
    // BIRD keeps trying; the session is held idle and refuses it.
    assert_ne!(cust.bgp_state("cloud").as_deref(), Some("Established"));
    assert!(
        h.routes().borrow().is_empty(),
        "routes of a torn-down session are removed"
    );
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_time_below_the_minimum_is_refused_and_bird_is_told() {
    if !bird_or_skip("hold_time") {
        return;
    }
    let p = Plan { x: 24, base: 17240 };
    let conf = customer_bird(&p, "", "route 192.168.24.0/24 blackhole;")
        .replace("hold time 240;", "hold time 30;");
    let cust = Bird::start("customer-hold", &conf, None, None).expect("BIRD");
    let h = start(&p, 500, None, false).await;
    wait_status(&h, "OPEN refused", |s| {
        s.peers.iter().any(|p| {
            p.last_error
                .as_deref()
                .is_some_and(|e| e.contains("Unacceptable Hold Time"))
        })
    })
    .await;
    bird_wait(&cust, "BIRD reports the refusal", |b| {
        b.last_error("cloud")
            .is_some_and(|e| e.to_lowercase().contains("hold time"))
    });
    h.shutdown().await;
}

/// BIRD as the customer, with graceful restart on (it preserves forwarding).
fn gr_customer_bird(p: &Plan, routes: &str) -> String {
    customer_bird(p, "graceful restart on;", routes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_both_ways_with_bird_routes_stay_through_either_restart() {
    if !bird_or_skip("graceful_restart") {
        return;
    }
    let p = Plan { x: 25, base: 17250 };
    let routes = "route 192.168.10.0/24 blackhole; route 192.168.11.0/24 blackhole;";
    let mut cust =
        Bird::start("customer", &gr_customer_bird(&p, routes), None, None).expect("customer BIRD");
    let fab = Bird::start(
        "fabric",
        &fabric_bird(&p).replace(
            "connect retry time 1;",
            "connect retry time 1; graceful restart on;",
        ),
        None,
        None,
    )
    .expect("fabric BIRD");
    let h = start_with(&p, 500, None, true, Some((120, false))).await;
    let mut rx = h.routes();
    tokio::time::timeout(WAIT, rx.wait_for(|r| r.len() == 3))
        .await
        .expect("routes in")
        .expect("instance alive");
    bird_wait(&cust, "VPC prefix at the customer", |b| {
        b.has_route("10.128.0.0/24")
    });

    // -- We restart (a crash: no NOTIFICATION). Both BIRDs keep our routes, stale.
    h.abort().await;
    bird_wait(&cust, "customer BIRD sees our restart", |b| {
        b.cmd("show protocols all cloud")
            .is_ok_and(|o| o.contains("Neighbor graceful restart active"))
    });
    assert!(
        cust.has_route("10.128.0.0/24"),
        "the VPC route must stay while we restart"
    );
    assert!(
        fab.has_route("192.168.10.0/24"),
        "the customer route must stay at the fabric"
    );

    // Back as a restarting speaker: the kernel table is held back until both peers sent
    // their End-of-RIB, then it is complete at once. The fabric is kept away for a while
    // to see the wait.
    fab.cmd("disable edge").expect("disable");
    let h = start_with(&p, 500, None, true, Some((120, true))).await;
    let mut rx = h.routes();
    wait_status(&h, "the customer's routes in again", |s| {
        s.peers.iter().any(|p| {
            p.spec.role == Role::Customer && p.state == State::Established && p.stats.received == 2
        })
    })
    .await;
    assert!(
        !rx.has_changed().expect("instance alive") && rx.borrow().is_empty(),
        "no kernel table while the fabric's End-of-RIB is missing: {:?}",
        *rx.borrow()
    );
    assert!(
        cust.has_route("10.128.0.0/24"),
        "nor any withdrawal to the customer"
    );
    fab.cmd("enable edge").expect("enable");
    tokio::time::timeout(WAIT, rx.changed())
        .await
        .expect("table published")
        .expect("instance alive");
    assert_eq!(
        rx.borrow().len(),
        3,
        "the first table is the whole table: {:?}",
        *rx.borrow()
    );
    let st = wait_status(&h, "both up", |s| {
        s.peers.len() == 2 && s.peers.iter().all(|p| p.state == State::Established)
    })
    .await;
    assert!(st.peers.iter().all(|p| p.stats.stale == 0));
    bird_wait(&cust, "customer BIRD's restart help is over", |b| {
        b.cmd("show protocols all cloud").is_ok_and(|o| {
            o.contains("Established") && !o.contains("Neighbor graceful restart active")
        })
    });
    assert!(cust.has_route("10.128.0.0/24"));
    assert!(fab.has_route("192.168.10.0/24"));

    // -- BIRD restarts gracefully, and comes back without 192.168.11.0/24: we keep both
    // routes, stale, while it is away, then drop the one it did not send again.
    cust.shut_down_for_restart()
        .expect("birdc graceful restart");
    let st = wait_status(&h, "customer's routes kept, stale", |s| {
        s.peers
            .iter()
            .any(|p| p.spec.role == Role::Customer && p.state != State::Established)
    })
    .await;
    let c = st
        .peers
        .iter()
        .find(|p| p.spec.role == Role::Customer)
        .expect("customer");
    assert_eq!(c.stats.stale, 2, "{c:?}");
    assert_eq!(
        rx.borrow().len(),
        3,
        "kernel routes stay: {:?}",
        *rx.borrow()
    );
    cust.recover(&gr_customer_bird(&p, "route 192.168.10.0/24 blackhole;"))
        .expect("BIRD back in recovery mode");
    let st = wait_status(&h, "customer back", |s| {
        s.peers.iter().any(|p| {
            p.spec.role == Role::Customer
                && p.state == State::Established
                && p.stats.stale == 0
                && p.stats.received == 1
        })
    })
    .await;
    let routes = rx.borrow().clone();
    assert!(routes.contains_key(&net("192.168.10.0/24")), "{routes:?}");
    assert!(!routes.contains_key(&net("192.168.11.0/24")), "{routes:?}");
    assert_eq!(
        st.peers
            .iter()
            .filter(|p| p.state == State::Established)
            .count(),
        2
    );
    h.shutdown().await;
}

/// Advertise after FIB install: with a route programmer that acknowledges, the fabric is
/// sent the customer's route (and the customer the VPC route) only once the kernel
/// table's generation that has it is acknowledged — here by the test, which holds back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_announced_once_the_kernel_has_them() {
    if !bird_or_skip("routes_are_announced_once_the_kernel_has_them") {
        return;
    }
    let p = Plan { x: 26, base: 17260 };
    let cust = Bird::start(
        "customer-fib",
        &customer_bird(&p, "", "route 192.168.10.0/24 blackhole;"),
        None,
        None,
    )
    .expect("customer BIRD");
    let fab = Bird::start("fabric-fib", &fabric_bird(&p), None, None).expect("fabric BIRD");
    let h = start(&p, 500, None, true).await;
    // (Waiting a minute at most: the test decides when the kernel has them.)
    let acks = h.kernel_acks(Duration::from_secs(60)).await.expect("acks");

    // Both routes in the instance's kernel table…
    let mut rx = h.routes();
    let table = tokio::time::timeout(
        WAIT,
        rx.wait_for(|r| {
            r.contains_key(&net("192.168.10.0/24")) && r.contains_key(&net("10.128.0.0/24"))
        }),
    )
    .await
    .map(|r| r.map(|t| t.clone()))
    .expect("both routes in the table")
    .expect("instance");
    wait_status(&h, "both sessions up", |s| {
        s.peers.len() == 2 && s.peers.iter().all(|p| p.state == State::Established)
    })
    .await;
    // …but not acknowledged: neither router is sent its route (for a second, here).
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        assert!(
            !fab.has_route("192.168.10.0/24"),
            "sent before the kernel had it"
        );
        assert!(
            !cust.has_route("10.128.0.0/24"),
            "sent before the kernel had it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    acks.send_replace(table.generation);
    bird_wait(&fab, "the customer's route at the fabric", |b| {
        b.has_route("192.168.10.0/24")
    });
    bird_wait(&cust, "the VPC route at the customer", |b| {
        b.has_route("10.128.0.0/24")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_connecting_while_we_back_off_after_failures_is_taken_at_once() {
    if !bird_or_skip("backoff") {
        return;
    }
    let p = Plan { x: 27, base: 17270 };
    // At first the customer's port takes our connection and closes it before any OPEN,
    // as BIRD does while it has not yet seen the interface its neighbor is on: each
    // failure doubles our wait before the next attempt, 1, 2, 4, 8, then 16 s.
    let not_ready = tokio::net::TcpListener::bind((p.customer(), p.base + 2))
        .await
        .expect("bind the customer's port");
    let h = start(&p, 500, None, false).await;
    for attempt in 1..=5 {
        let (s, _) = tokio::time::timeout(WAIT, not_ready.accept())
            .await
            .unwrap_or_else(|_| panic!("attempt {attempt} of ours never came"))
            .expect("accept");
        drop(s);
    }
    // Our next attempt is due 16 s after this fifth failure.
    let failed = std::time::Instant::now();
    drop(not_ready);
    // The customer's router is ready now, and connects to us itself.
    let conf = customer_bird(
        &p,
        "connect delay time 1;",
        "route 192.168.27.0/24 blackhole;",
    );
    let cust = Bird::start("customer-backoff", &conf, None, None).expect("BIRD");
    wait_status(&h, "Established", |s| {
        s.peers.iter().any(|p| p.state == State::Established)
    })
    .await;
    let took = failed.elapsed();
    assert!(
        took < Duration::from_secs(14),
        "the session came up {took:?} after our last failure: the peer's connection waited for our backoff\n--- BIRD log ---\n{}",
        cust.log()
    );
    h.shutdown().await;
}
