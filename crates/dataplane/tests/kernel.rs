//! Kernel tests: real namespaces, links, addresses, routes and packets. They need root;
//! without it they skip, unless CIC_REQUIRE_ROOT=1 (CI), where skipping is a failure.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use cic_dataplane::netlink::PROTO_BGP;
use cic_dataplane::{Error, LinkKind, LinkSpec, Netlink, RouteChange, netns, probe};
use cic_peers::root_or_skip;
use ipnet::IpNet;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Namespaces of one test, deleted on drop.
struct Nets(Vec<String>);
impl Nets {
    fn new(n: usize) -> Nets {
        let base = format!(
            "cictest-dp{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let v: Vec<String> = (0..n).map(|i| format!("{base}-{i}")).collect();
        for ns in &v {
            netns::add(ns).expect("netns add");
        }
        Nets(v)
    }
    fn get(&self, i: usize) -> &str {
        &self.0[i]
    }
}
impl Drop for Nets {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = netns::del(ns);
        }
    }
}

/// Sysctl `key` (under /proc/sys) as namespace `ns` reads it.
fn sysctl_in(ns: &str, key: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", &format!("/proc/sys/{key}")])
        .output()
        .expect("ip netns exec");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn net(s: &str) -> IpNet {
    s.parse().expect("prefix")
}
fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}
fn ip4(s: &str) -> Ipv4Addr {
    s.parse().expect("address")
}

fn ping(ns: &str, to: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", ns, "ping", "-c", "1", "-W", "2", to])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn namespaces_are_created_idempotently_listed_and_deleted() {
    if !root_or_skip("namespaces") {
        return;
    }
    let nets = Nets::new(1);
    let ns = nets.get(0);
    assert!(netns::exists(ns));
    netns::add(ns).expect("second add is a no-op");
    assert!(
        netns::list("cictest-dp")
            .expect("list")
            .contains(&ns.to_string())
    );
    // `ip netns` sees it too: the same bind mount under /run/netns.
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ip", "link"])
        .output()
        .expect("ip");
    assert!(out.status.success());
    netns::del(ns).expect("del");
    assert!(!netns::exists(ns));
    netns::del(ns).expect("deleting a missing namespace is fine");
    assert!(netns::add("../etc").is_err(), "names are validated");
}

/// Another process may unmount a namespace between the moment it is seen mounted and
/// its deletion (an agent and `cic lab down` at once): the file left is deleted, and that
/// is no error.
#[tokio::test]
async fn a_namespace_someone_else_unmounted_is_deleted_without_error() {
    if !root_or_skip("unmounted by another") {
        return;
    }
    let nets = Nets::new(1);
    let ns = nets.get(0);
    let file = format!("{}/{ns}", netns::RUN_DIR);
    let out = Command::new("umount")
        .args(["-l", &file])
        .output()
        .expect("umount");
    assert!(out.status.success(), "{out:?}");
    assert!(std::path::Path::new(&file).exists(), "the file is left");
    netns::del(ns).expect("a file no longer mounted is deleted without error");
    assert!(!std::path::Path::new(&file).exists());
}

/// `ip netns add` after a namespace of ours leaves ours deletable. On a machine where no
/// namespace was made yet /run/netns is a plain directory; iproute2 makes it a mount point
/// of its own (a recursive bind on itself) when it finds it one, which put a copy of our
/// namespace's mount above the first: a delete took the copy away and then failed
/// (EBUSY) on the one beneath, which kept the namespace alive. Played in a mount
/// namespace of the test's own, with /run a fresh tmpfs, so that /run/netns is a plain
/// directory there whatever the machine's is, and nothing is seen outside.
#[test]
fn a_namespace_of_ours_stays_deletable_after_an_ip_netns_add() {
    use nix::mount::{MsFlags, mount};
    use nix::sched::{CloneFlags, unshare};
    if !root_or_skip("ip netns add after ours") {
        return;
    }
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let ours = format!("cictest-dp{}-ours{n}", std::process::id());
    let theirs = format!("cictest-dp{}-theirs{n}", std::process::id());
    std::thread::spawn(move || {
        // This thread's mounts are its own from here (and the `ip` it starts inherits them).
        unshare(CloneFlags::CLONE_NEWNS).expect("a mount namespace of its own");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("nothing propagates out");
        mount(
            Some("tmpfs"),
            "/run",
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("a fresh /run");
        netns::add(&ours).expect("ours");
        let out = Command::new("ip")
            .args(["netns", "add", &theirs])
            .output()
            .expect("ip netns add");
        assert!(out.status.success(), "ip netns add: {out:?}");
        assert!(netns::exists(&ours), "ours is still there");
        netns::del(&ours).expect("ours is deleted after an ip netns add");
        assert!(!netns::exists(&ours), "ours is gone");
        assert!(
            !std::path::Path::new(&format!("{}/{ours}", netns::RUN_DIR)).exists(),
            "its name is gone"
        );
        let out = Command::new("ip")
            .args(["netns", "del", &theirs])
            .output()
            .expect("ip netns del");
        assert!(out.status.success(), "ip netns del: {out:?}");
    })
    .join()
    .expect("the test's thread");
}

/// A link's neighbor probing set by netlink (`RTM_SETNEIGHTBL`) on the namespace's own
/// connection: what the sysctls under /proc/sys/net/ipv{4,6}/neigh/<link>/ read, for
/// that link only.
#[tokio::test]
async fn a_link_s_neighbor_probing_is_set_through_netlink() {
    if !root_or_skip("neighbor probing") {
        return;
    }
    let nets = Nets::new(1);
    let ns = nets.get(0);
    let nl = Netlink::open(Some(ns)).expect("netlink");
    nl.create_veth("np0", "np1", None).await.expect("veth");
    let index = nl.link("np0").await.expect("links").expect("np0").index;
    nl.set_neighbor_probes(index, std::time::Duration::from_millis(100), 30)
        .await
        .expect("neighbor probes");
    let read = |key: String| sysctl_in(ns, &key);
    for family in ["ipv4", "ipv6"] {
        for (dev, retrans, probes) in [("np0", "100", "30"), ("np1", "1000", "3")] {
            assert_eq!(
                read(format!("net/{family}/neigh/{dev}/retrans_time_ms")),
                retrans,
                "{family} {dev}"
            );
            assert_eq!(
                read(format!("net/{family}/neigh/{dev}/mcast_solicit")),
                probes,
                "{family} {dev}"
            );
        }
    }
}

/// A namespace made with its sysctls in one go has them set, and one that exists is
/// kept (its links with it) and given them.
#[tokio::test]
async fn a_namespace_is_made_with_its_sysctls_on_one_thread_or_kept() {
    if !root_or_skip("namespace with sysctls") {
        return;
    }
    let name = format!(
        "cictest-dp{}-ens{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let _cleanup = Nets(vec![name.clone(), format!("{name}-x")]);
    let read = |key: &str| sysctl_in(&name, key);
    let sysctls = [
        ("net/ipv4/ip_forward", "1"),
        ("net/ipv6/conf/all/forwarding", "1"),
    ];
    assert!(
        !netns::ensure(&name, &sysctls).expect("made"),
        "it was not there"
    );
    assert_eq!(read("net/ipv4/ip_forward"), "1");
    assert_eq!(read("net/ipv6/conf/all/forwarding"), "1");
    // The host's own are untouched by it.
    let nl = Netlink::open(Some(&name)).expect("netlink");
    nl.create_veth("keep0", "keep1", None).await.expect("veth");
    let off = [("net/ipv4/ip_forward", "0")];
    assert!(netns::ensure(&name, &off).expect("kept"), "it was there");
    assert_eq!(read("net/ipv4/ip_forward"), "0");
    assert!(
        nl.link("keep0").await.expect("links").is_some(),
        "links stay"
    );
    assert!(
        netns::ensure("bad/name", &sysctls).is_err(),
        "names are validated"
    );
    let bad = [("net/ipv4/no_such_sysctl", "1")];
    let other = format!("{name}-x");
    let e = netns::ensure(&other, &bad).expect_err("a sysctl that cannot be set");
    assert!(e.to_string().contains("no_such_sysctl"), "{e}");
    assert!(!netns::exists(&other), "nothing left behind");
}

/// Renaming a namespace keeps what is in it (links, addresses, a listening socket), and
/// what holds a handle on it — a netlink connection, sockets made through the handle —
/// follows it; the old name is gone, and a taken name is refused.
#[tokio::test]
async fn a_renamed_namespace_keeps_its_links_and_sockets_and_handles_follow_it() {
    if !root_or_skip("namespace rename") {
        return;
    }
    let nets = Nets::new(2);
    let (from, taken) = (nets.get(0).to_string(), nets.get(1).to_string());
    let to = format!("{from}-renamed");
    let _cleanup = Nets(vec![to.clone()]);
    let nl = Netlink::open(Some(&from)).expect("netlink");
    let lo = nl.link("lo").await.expect("links").expect("lo");
    nl.set_up(lo.index, None).await.expect("lo up");
    nl.create_veth("rn0", "rn1", None).await.expect("veth");
    let idx = nl.link("rn0").await.expect("links").expect("rn0").index;
    nl.add_address(idx, net("192.0.2.1/24"))
        .await
        .expect("address");
    nl.set_up(idx, None).await.expect("up");
    let handle = nl.namespace_handle().expect("named");
    let listener = netns::tcp_socket_in(&handle, socket2::Domain::IPV4).expect("socket");
    listener
        .bind(&std::net::SocketAddr::from(([192, 0, 2, 1], 1790)).into())
        .expect("bind");
    listener.listen(1).expect("listen");

    assert!(
        netns::rename(&from, &taken).is_err(),
        "a live namespace's name is refused"
    );
    netns::rename(&from, &to).expect("rename");
    nl.renamed(&to);
    assert!(!netns::exists(&from), "the old name is gone");
    assert!(netns::exists(&to));
    assert_eq!(nl.netns().as_deref(), Some(to.as_str()));
    let link = nl
        .link("rn0")
        .await
        .expect("links")
        .expect("rn0 is still there");
    assert!(
        nl.addresses(link.index)
            .await
            .expect("addresses")
            .contains(&net("192.0.2.1/24"))
    );
    // A socket made through the handle after the rename is in the renamed namespace: it
    // reaches the listener there.
    let client = netns::tcp_socket_in(&handle, socket2::Domain::IPV4).expect("socket");
    client
        .connect_timeout(
            &std::net::SocketAddr::from(([192, 0, 2, 1], 1790)).into(),
            std::time::Duration::from_secs(5),
        )
        .expect("connects to the listener in the renamed namespace");
    // `ip netns` sees the new name.
    let out = Command::new("ip")
        .args(["netns", "exec", &to, "ip", "-br", "addr", "show", "rn0"])
        .output()
        .expect("ip");
    assert!(String::from_utf8_lossy(&out.stdout).contains("192.0.2.1/24"));
    let e = netns::rename(&from, &to).expect_err("the old name is gone");
    assert!(e.to_string().contains("does not exist"), "{e}");
}

/// The neighbor table is host-wide: a few hundred connections' peers fill the default
/// 1,024 entries and the next cannot be resolved (ENOBUFS). After
/// `ensure_neighbor_room(n)` a namespace takes 2,000 neighbors; it never lowers the limit.
#[test]
fn the_neighbor_table_is_raised_for_many_connections_and_never_lowered() {
    if !root_or_skip("neighbor room") {
        return;
    }
    let thresh3 = || -> u64 {
        std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
            .expect("read")
            .trim()
            .parse()
            .expect("a number")
    };
    netns::ensure_neighbor_room(3000).expect("raise");
    assert!(thresh3() >= 12_000, "gc_thresh3 {}", thresh3());
    let before = thresh3();
    assert_eq!(netns::ensure_neighbor_room(10).expect("no-op"), None);
    assert_eq!(thresh3(), before, "never lowered");

    let nets = Nets::new(1);
    let n = nets.get(0);
    for cmd in [
        "link add v0 type veth peer name v1",
        "link set v0 up",
        "link set v1 up",
        "addr add 10.90.0.1/16 dev v0",
    ] {
        let args: Vec<&str> = ["-n", n].into_iter().chain(cmd.split(' ')).collect();
        assert!(
            Command::new("ip")
                .args(&args)
                .status()
                .expect("ip")
                .success()
        );
    }
    let batch: String = (0..2000)
        .map(|i| {
            format!(
                "neigh add 10.90.{}.{} lladdr 02:00:00:00:{:02x}:{:02x} dev v0 nud stale\n",
                1 + i / 250,
                1 + i % 250,
                i / 256,
                i % 256
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!("cic-neigh-{}.batch", std::process::id()));
    std::fs::write(&path, batch).expect("write");
    let out = Command::new("ip")
        .args(["-n", n, "-batch"])
        .arg(&path)
        .output()
        .expect("ip -batch");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn sysctl_is_per_namespace() {
    if !root_or_skip("sysctl") {
        return;
    }
    let nets = Nets::new(2);
    netns::sysctl(Some(nets.get(0)), "net/ipv4/ip_forward", "1").expect("sysctl");
    let read = |ns: &str| {
        netns::run_in(Some(ns), || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        })
        .expect("run")
        .expect("read")
    };
    assert_eq!(read(nets.get(0)).trim(), "1");
    assert_eq!(
        read(nets.get(1)).trim(),
        "0",
        "the other namespace is untouched"
    );
}

#[tokio::test]
async fn probe_agrees_with_what_ip_link_can_create() {
    if !root_or_skip("probe") {
        return;
    }
    let caps = probe::probe().await.expect("probe");
    let nets = Nets::new(1);
    let ns = nets.get(0);
    let ip_ns = |args: &[&str]| {
        let mut a = vec!["-n", ns];
        a.extend_from_slice(args);
        Command::new("ip")
            .args(&a)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    assert!(ip_ns(&[
        "link", "add", "pv0", "type", "veth", "peer", "name", "pv1"
    ]));
    let vlan = ip_ns(&[
        "link", "add", "link", "pv0", "name", "pv0.7", "type", "vlan", "id", "7",
    ]);
    let vxlan = ip_ns(&[
        "link",
        "add",
        "pvx",
        "type",
        "vxlan",
        "id",
        "7",
        "remote",
        "192.0.2.1",
        "dstport",
        "4789",
    ]);
    let bond = ip_ns(&["link", "add", "pbd", "type", "bond", "mode", "802.3ad"]);
    assert_eq!(
        (caps.vlan, caps.vxlan, caps.bond),
        (vlan, vxlan, bond),
        "probe says {caps:?}"
    );
    // Where the kernel has bonding, a LAG's bundle takes its ports; where it has not, the
    // attempt says so instead of pretending.
    let nl = Netlink::open(Some(ns)).expect("netlink");
    let made = nl
        .ensure_bond("pbd2", &["pv0".to_string()], "cic-lag:test")
        .await;
    if bond {
        let idx = made.expect("bond");
        let pv0 = nl.link("pv0").await.expect("links").expect("pv0");
        assert_eq!(pv0.controller, Some(idx), "pv0 is a member of the bond");
    } else {
        assert!(matches!(made, Err(Error::Unsupported(_))), "{made:?}");
    }
}

/// A probe's scratch namespace left by a prober killed in the middle is removed by the
/// next probe; a running prober's is not.
#[tokio::test]
async fn a_probe_removes_the_scratch_namespaces_of_probers_gone() {
    if !root_or_skip("probe sweep") {
        return;
    }
    let mut gone = Command::new("true").spawn().expect("true");
    let dead = gone.id();
    gone.wait().expect("wait");
    let left = format!("{}{dead}-0", probe::SCRATCH_PREFIX);
    // Pid 1 runs as long as the machine does.
    let running = format!("{}1-0", probe::SCRATCH_PREFIX);
    // A prober whose pid this /proc does not show (another pid namespace's) but which
    // holds its namespace's lock: probing still.
    let elsewhere = format!("{}{dead}-1", probe::SCRATCH_PREFIX);
    for ns in [&left, &running, &elsewhere] {
        netns::add(ns).expect("netns add");
    }
    let held = nix::fcntl::Flock::lock(
        netns::open(&elsewhere).expect("open"),
        nix::fcntl::FlockArg::LockExclusiveNonblock,
    )
    .expect("lock");
    probe::probe().await.expect("probe");
    let after = netns::list(probe::SCRATCH_PREFIX).expect("list");
    drop(held);
    for ns in [&left, &running, &elsewhere] {
        let _ = netns::del(ns);
    }
    assert!(!after.contains(&left), "{left} removed: {after:?}");
    assert!(after.contains(&running), "{running} kept: {after:?}");
    assert!(after.contains(&elsewhere), "{elsewhere} kept: {after:?}");
}

#[tokio::test]
async fn vxlan_placed_in_a_routing_namespace_carries_packets() {
    if !root_or_skip("vxlan") {
        return;
    }
    // underlay A ──veth── underlay B; the VXLAN socket lives in A, its device in R.
    let nets = Nets::new(3);
    let (a, b, r) = (nets.get(0), nets.get(1), nets.get(2));
    let nla = Netlink::open(Some(a)).expect("netlink a");
    let nlb = Netlink::open(Some(b)).expect("netlink b");
    let nlr = Netlink::open(Some(r)).expect("netlink r");
    nla.create_veth("ul0", "ul1", Some(b)).await.expect("veth");
    let ul0 = nla.link("ul0").await.expect("links").expect("ul0");
    nla.add_address(ul0.index, net("100.64.1.1/30"))
        .await
        .expect("addr");
    nla.set_up(ul0.index, Some(9000)).await.expect("up");
    let ul1 = nlb.link("ul1").await.expect("links").expect("ul1");
    nlb.add_address(ul1.index, net("100.64.1.2/30"))
        .await
        .expect("addr");
    nlb.set_up(ul1.index, Some(9000)).await.expect("up");

    let spec = LinkSpec {
        name: "pc1".into(),
        kind: LinkKind::Vxlan {
            vni: 100,
            remote: ip4("100.64.1.2"),
            port: 4789,
            underlay_dev: Some("ul0".into()),
        },
        mtu: 8910,
        alias: "pc-test fp1".into(),
    };
    nla.create_link_in(&spec, &nlr).await.expect("vxlan into r");
    assert!(
        nla.link("pc1").await.expect("links").is_none(),
        "the device is not left in the underlay"
    );
    let pc1 = nlr.link("pc1").await.expect("links").expect("pc1 in r");
    assert_eq!(
        (pc1.kind.as_deref(), pc1.mtu, pc1.alias.as_deref()),
        (Some("vxlan"), 8910, Some("pc-test fp1"))
    );
    nlr.add_address(pc1.index, net("169.254.100.1/30"))
        .await
        .expect("addr");
    nlr.set_up(pc1.index, None).await.expect("up");
    assert_eq!(
        nlr.addresses(pc1.index).await.expect("addrs"),
        vec![net("169.254.100.1/30")]
    );

    // The far end, in B, made by iproute2 as a customer's router would.
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip -n {b} link add vx100 type vxlan id 100 remote 100.64.1.1 dstport 4789 dev ul1 && \
             ip -n {b} addr add 169.254.100.2/30 dev vx100 && ip -n {b} link set vx100 up"
        ))
        .status()
        .expect("sh");
    assert!(ok.success());
    assert!(
        ping(r, "169.254.100.2"),
        "packets cross the VXLAN segment from the routing namespace"
    );

    // Same VNI and port again from the same underlay: the kernel refuses, clearly.
    let dup = LinkSpec {
        name: "pc2".into(),
        ..spec.clone()
    };
    let e = nla
        .create_link_in(&dup, &nlr)
        .await
        .expect_err("duplicate VNI");
    assert!(
        matches!(e, Error::Netlink(ref m) if m.contains("create pc2")),
        "{e}"
    );

    nlr.del_link(pc1.index).await.expect("del");
    assert!(nlr.link("pc1").await.expect("links").is_none());
}

/// A connection to the first of `nets`, with a link `r0` to the second on `addresses`, up.
async fn link_to_a_peer(nets: &Nets, addresses: &[&str]) -> Netlink {
    let nl = Netlink::open(Some(nets.get(0))).expect("netlink");
    nl.create_veth("r0", "r1", Some(nets.get(1)))
        .await
        .expect("veth");
    let r0 = nl.link("r0").await.expect("links").expect("r0");
    for a in addresses {
        nl.add_address(r0.index, net(a)).await.expect("address");
    }
    nl.set_up(r0.index, None).await.expect("up");
    nl
}

/// The links' counters alone (`RTM_GETSTATS`) say what a dump of the links says of them,
/// by index, for every link of the namespace and no other.
#[tokio::test]
async fn the_links_counters_are_read_alone_by_index() {
    if !root_or_skip("link counters") {
        return;
    }
    let nets = Nets::new(2);
    let nl = link_to_a_peer(&nets, &["10.9.0.1/30"]).await;
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip -n {0} addr add 10.9.0.2/30 dev r1 && ip -n {0} link set r1 up",
            nets.get(1)
        ))
        .status()
        .expect("sh");
    assert!(ok.success());
    assert!(ping(nets.get(0), "10.9.0.2"), "the pair carries packets");

    // Read between two reads of the counters alone (the link may carry the odd packet
    // of its own meanwhile: IPv6's, ARP's).
    let before = nl.counters().await.expect("counters");
    let links = nl.links().await.expect("links");
    let after = nl.counters().await.expect("counters");
    let mut indexes: Vec<u32> = links.iter().map(|l| l.index).collect();
    indexes.sort();
    assert_eq!(
        before.keys().copied().collect::<Vec<_>>(),
        indexes,
        "every link's counters, by index"
    );
    let r0 = links.iter().find(|l| l.name == "r0").expect("r0");
    let (b, a, l) = (before[&r0.index], after[&r0.index], r0.counters);
    assert!(
        b.tx_packets >= 1 && b.rx_packets >= 1,
        "the ping counted: {b:?}"
    );
    for (b, l, a) in [
        (b.tx_packets, l.tx_packets, a.tx_packets),
        (b.rx_packets, l.rx_packets, a.rx_packets),
        (b.tx_bytes, l.tx_bytes, a.tx_bytes),
        (b.rx_bytes, l.rx_bytes, a.rx_bytes),
    ] {
        assert!(b <= l && l <= a, "{b} <= {l} <= {a}");
    }
    nl.del_link(r0.index).await.expect("del");
    assert!(
        !nl.counters()
            .await
            .expect("counters")
            .contains_key(&r0.index),
        "a removed link has no counters"
    );
}

#[tokio::test]
async fn ecmp_routes_are_installed_read_back_replaced_and_removed() {
    if !root_or_skip("routes") {
        return;
    }
    let nets = Nets::new(2);
    let nl = link_to_a_peer(&nets, &["10.9.0.1/24"]).await;

    let p = net("192.168.10.0/24");
    nl.replace_route(p, &[ip("10.9.0.2"), ip("10.9.0.3")], PROTO_BGP)
        .await
        .expect("ecmp");
    let got = nl.routes(PROTO_BGP).await.expect("routes");
    assert_eq!(got.get(&p), Some(&vec![ip("10.9.0.2"), ip("10.9.0.3")]));
    let shown = Command::new("ip")
        .args(["-n", nets.get(0), "route", "show", "proto", "bgp"])
        .output()
        .expect("ip");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("nexthop via 10.9.0.2") && shown.contains("nexthop via 10.9.0.3"),
        "{shown}"
    );

    nl.replace_route(p, &[ip("10.9.0.3")], PROTO_BGP)
        .await
        .expect("replace");
    assert_eq!(
        nl.routes(PROTO_BGP).await.expect("routes").get(&p),
        Some(&vec![ip("10.9.0.3")])
    );
    nl.replace_route(net("0.0.0.0/0"), &[ip("10.9.0.2")], PROTO_BGP)
        .await
        .expect("default");
    assert_eq!(nl.routes(PROTO_BGP).await.expect("routes").len(), 2);

    // Only routes of our protocol are listed: a static route made by hand is not ours.
    Command::new("ip")
        .args([
            "-n",
            nets.get(0),
            "route",
            "add",
            "172.16.0.0/12",
            "via",
            "10.9.0.4",
        ])
        .status()
        .expect("ip");
    assert!(
        !nl.routes(PROTO_BGP)
            .await
            .expect("routes")
            .contains_key(&net("172.16.0.0/12"))
    );

    nl.del_route(p, PROTO_BGP).await.expect("del");
    nl.del_route(p, PROTO_BGP)
        .await
        .expect("deleting a missing route is fine");
    assert!(!nl.routes(PROTO_BGP).await.expect("routes").contains_key(&p));
    assert!(
        nl.replace_route(p, &[], PROTO_BGP).await.is_err(),
        "a route needs a next hop"
    );
}

/// A batch of routes larger than the socket's receive buffer could hold the answers of
/// at once (several datagrams), each refusal matched to its own route, the rest applied.
#[tokio::test]
async fn routes_are_applied_in_batches_each_refusal_matched_to_its_route() {
    if !root_or_skip("route batches") {
        return;
    }
    let nets = Nets::new(2);
    let nl = link_to_a_peer(&nets, &["10.9.0.1/24", "fd00:9::1/64"]).await;

    // 3,000 IPv4 routes (every third one ECMP) and 500 IPv6 ones; in the middle of a
    // datagram, one the kernel refuses (its next hop is on no connected network) and
    // one it is never asked (no next hop); a removal of a route that is not there.
    let v4 = |i: u32| IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + (i << 8))), 24).unwrap();
    let v6 = |i: u32| net(&format!("fd00:1:{i:x}::/48"));
    let mut changes: Vec<RouteChange> = (0..3000)
        .map(|i| {
            let hops = match i % 3 {
                0 => vec![ip("10.9.0.2"), ip("10.9.0.3")],
                _ => vec![ip("10.9.0.2")],
            };
            RouteChange::Replace(v4(i), hops)
        })
        .chain((0..500).map(|i| RouteChange::Replace(v6(i), vec![ip("fd00:9::2")])))
        .collect();
    let unreachable = net("198.51.100.0/24");
    let hopless = net("203.0.113.0/24");
    changes.insert(
        100,
        RouteChange::Replace(unreachable, vec![ip("192.0.2.1")]),
    );
    changes.insert(1500, RouteChange::Replace(hopless, vec![]));
    changes.insert(2000, RouteChange::Delete(net("192.0.2.0/24")));
    let failed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        nl.apply_routes(&changes, PROTO_BGP),
    )
    .await
    .expect("every answer came back (none dropped by a full receive buffer)");
    let failed: Vec<(IpNet, String)> = failed
        .into_iter()
        .map(|(p, e)| (p, e.to_string()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().any(|(p, e)| *p == unreachable
            && e.contains("install route 198.51.100.0/24")
            && e.contains("unreachable")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|(p, e)| *p == hopless && e.contains("no next hop")),
        "{failed:?}"
    );
    let got = nl.routes(PROTO_BGP).await.expect("routes");
    assert_eq!(got.len(), 3500);
    assert_eq!(got.get(&v4(0)), Some(&vec![ip("10.9.0.2"), ip("10.9.0.3")]));
    assert_eq!(got.get(&v4(2999)), Some(&vec![ip("10.9.0.2")]));
    assert_eq!(got.get(&v6(499)), Some(&vec![ip("fd00:9::2")]));
    assert!(!got.contains_key(&unreachable));

    // Removing them is a batch too; what is gone already is no error.
    let gone: Vec<RouteChange> = got.keys().map(|p| RouteChange::Delete(*p)).collect();
    assert!(nl.apply_routes(&gone, PROTO_BGP).await.is_empty());
    assert!(nl.apply_routes(&gone[..10], PROTO_BGP).await.is_empty());
    assert!(nl.routes(PROTO_BGP).await.expect("routes").is_empty());
}

#[tokio::test]
async fn ipv6_addresses_are_usable_at_once_and_ipv6_ecmp_routes_are_exact() {
    if !root_or_skip("ipv6 routes") {
        return;
    }
    let nets = Nets::new(2);
    let (a, b) = (nets.get(0), nets.get(1));
    let nl = Netlink::open(Some(a)).expect("netlink");
    let nlb = Netlink::open(Some(b)).expect("netlink b");
    nl.create_veth("r0", "r1", Some(b)).await.expect("veth");
    let r0 = nl.link("r0").await.expect("links").expect("r0");
    let r1 = nlb.link("r1").await.expect("links").expect("r1");
    // Both families on one link, as a dual-stack connection has them.
    nl.add_address(r0.index, net("fd00:9::1/64"))
        .await
        .expect("addr6");
    nl.add_address(r0.index, net("10.9.0.1/24"))
        .await
        .expect("addr4");
    nlb.add_address(r1.index, net("fd00:9::2/64"))
        .await
        .expect("addr6 b");
    nl.set_up(r0.index, None).await.expect("up");
    nlb.set_up(r1.index, None).await.expect("up b");
    assert_eq!(
        nl.addresses(r0.index).await.expect("addrs"),
        vec![net("10.9.0.1/24"), net("fd00:9::1/64")],
        "both families, without the kernel's link-local address"
    );
    // No duplicate address detection: not tentative, so a socket can bind it now.
    let shown = Command::new("ip")
        .args(["-n", a, "-6", "addr", "show", "dev", "r0"])
        .output()
        .expect("ip");
    let shown = String::from_utf8_lossy(&shown.stdout);
    let line = shown
        .lines()
        .find(|l| l.contains("fd00:9::1/64"))
        .unwrap_or_default();
    assert!(
        line.contains("nodad") && !line.contains("tentative"),
        "{shown}"
    );
    assert!(
        std::net::TcpListener::bind("[::]:0").is_ok()
            && netns::run_in(Some(a), || std::net::UdpSocket::bind("[fd00:9::1]:0")
                .is_ok())
            .expect("in a"),
        "the address is bindable at once"
    );
    nl.del_address(r0.index, net("fd00:9::1/64"))
        .await
        .expect("del addr6");
    assert_eq!(
        nl.addresses(r0.index).await.expect("addrs"),
        vec![net("10.9.0.1/24")]
    );
    nl.add_address(r0.index, net("fd00:9::1/64"))
        .await
        .expect("addr6 again");

    let p = net("fd00:77::/48");
    nl.replace_route(p, &[ip("fd00:9::2"), ip("fd00:9::3")], PROTO_BGP)
        .await
        .expect("ecmp6");
    let got = nl.routes(PROTO_BGP).await.expect("routes");
    assert_eq!(got.get(&p), Some(&vec![ip("fd00:9::2"), ip("fd00:9::3")]));
    // Replaced by one next hop: the other is gone, not appended to.
    nl.replace_route(p, &[ip("fd00:9::3")], PROTO_BGP)
        .await
        .expect("replace6");
    assert_eq!(
        nl.routes(PROTO_BGP).await.expect("routes").get(&p),
        Some(&vec![ip("fd00:9::3")])
    );
    nl.replace_route(p, &[ip("fd00:9::2"), ip("fd00:9::3")], PROTO_BGP)
        .await
        .expect("ecmp6 again");
    assert_eq!(
        nl.routes(PROTO_BGP).await.expect("routes").get(&p),
        Some(&vec![ip("fd00:9::2"), ip("fd00:9::3")])
    );
    // An IPv4 route beside it; each family listed with its own.
    nl.replace_route(net("192.168.10.0/24"), &[ip("10.9.0.2")], PROTO_BGP)
        .await
        .expect("v4");
    assert_eq!(nl.routes(PROTO_BGP).await.expect("routes").len(), 2);
    assert!(
        nl.replace_route(p, &[ip("10.9.0.2")], PROTO_BGP)
            .await
            .is_err(),
        "a next hop of the other family is refused"
    );
    nl.del_route(p, PROTO_BGP).await.expect("del6");
    nl.del_route(p, PROTO_BGP)
        .await
        .expect("deleting a missing route is fine");
    let left = nl.routes(PROTO_BGP).await.expect("routes");
    assert!(!left.contains_key(&p) && left.len() == 1, "{left:?}");
    // Packets cross: the far end answers on the address just made.
    assert!(ping(a, "fd00:9::2"), "ping6 across the veth");
}

#[tokio::test]
async fn sockets_made_in_a_namespace_stay_there() {
    if !root_or_skip("sockets") {
        return;
    }
    let nets = Nets::new(1);
    let ns = nets.get(0);
    netns::run_in(Some(ns), || {
        Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
    })
    .expect("run")
    .expect("ip");
    let s = netns::tcp_socket(Some(ns)).expect("socket");
    s.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .expect("addr")
            .into(),
    )
    .expect("bind");
    s.listen(1).expect("listen");
    let port = s
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet")
        .port();
    // Visible from inside the namespace, not from the host.
    let inside = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-ltn"])
        .output()
        .expect("ss");
    assert!(String::from_utf8_lossy(&inside.stdout).contains(&format!(":{port}")));
    let host = Command::new("ss").args(["-ltn"]).output().expect("ss");
    assert!(!String::from_utf8_lossy(&host.stdout).contains(&format!("127.0.0.1:{port} ")));
}

#[tokio::test]
async fn a_port_is_shaped_to_a_rate_and_unshaped_without_touching_other_qdiscs() {
    if !root_or_skip("tc") {
        return;
    }
    let nets = Nets::new(1);
    let ns = nets.get(0);
    let ip = |args: &[&str]| {
        let ok = Command::new("ip")
            .args(["-n", ns])
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip {args:?}");
    };
    ip(&["link", "add", "sa", "type", "veth", "peer", "name", "sb"]);
    use cic_dataplane::tc;
    tc::shape(Some(ns), "sa", 1000).expect("shape");
    assert_eq!(
        tc::shaped(Some(ns)).expect("list"),
        vec![("sa".to_string(), 125_000_000)]
    );
    tc::shape(Some(ns), "sa", 1000).expect("again: nothing to do");
    tc::shape(Some(ns), "sa", 50).expect("a new rate");
    assert_eq!(tc::shaped(Some(ns)).expect("list")[0].1, 6_250_000);
    // A qdisc somebody else put on another port is not cic's.
    let other = Command::new("tc")
        .args([
            "-n", ns, "qdisc", "add", "dev", "sb", "root", "tbf", "rate", "1mbit",
        ])
        .args(["burst", "32k", "latency", "50ms"])
        .status()
        .expect("tc");
    assert!(other.success());
    assert_eq!(tc::shaped(Some(ns)).expect("list").len(), 1);
    tc::unshape(Some(ns), "sa").expect("unshape");
    tc::unshape(Some(ns), "sb").expect("not ours: left alone");
    assert!(tc::shaped(Some(ns)).expect("list").is_empty());
    let left = Command::new("tc")
        .args(["-n", ns, "qdisc", "show", "dev", "sb"])
        .output()
        .expect("tc");
    assert!(String::from_utf8_lossy(&left.stdout).contains("tbf"));
    assert!(tc::shape(Some(ns), "nothere", 10).is_err());
}

/// Sets `lo` up in each namespace.
fn loopbacks_up(namespaces: &[&str]) {
    for ns in namespaces {
        Command::new("ip")
            .args(["-n", ns, "link", "set", "lo", "up"])
            .status()
            .expect("ip");
    }
}

/// A SYN below a listener's minimum TTL (GTSM) is dropped by the kernel, silently, and
/// counted in that namespace alone: what the edge reads to tell a customer's router that
/// does not send with TTL 255 from one that does not answer.
#[test]
fn gtsm_drops_are_counted_per_namespace() {
    use std::os::fd::AsFd;
    if !root_or_skip("gtsm_drops_are_counted_per_namespace") {
        return;
    }
    let nets = Nets::new(2);
    let (a, b) = (nets.0[0].as_str(), nets.0[1].as_str());
    loopbacks_up(&[a, b]);
    assert_eq!(netns::tcp_drops(Some(a)).expect("read").min_ttl, 0);
    let l = netns::tcp_socket(Some(a)).expect("socket");
    let at: std::net::SocketAddr = "127.0.0.1:17980".parse().expect("addr");
    l.bind(&at.into()).expect("bind");
    cic_sockopt::set_gtsm(l.as_fd(), false, 1).expect("gtsm");
    l.listen(8).expect("listen");
    // Sent with the default TTL (64), not 255.
    let c = netns::tcp_socket(Some(a)).expect("socket");
    let low = c.connect_timeout(&at.into(), std::time::Duration::from_millis(300));
    assert!(low.is_err(), "a SYN with TTL 64 is dropped");
    assert!(netns::tcp_drops(Some(a)).expect("read").min_ttl >= 1);
    assert_eq!(
        netns::tcp_drops(Some(b)).expect("read").min_ttl,
        0,
        "the other namespace"
    );
    // With TTL 255 it gets through.
    let c = netns::tcp_socket(Some(a)).expect("socket");
    cic_sockopt::set_gtsm(c.as_fd(), false, 1).expect("gtsm");
    c.connect_timeout(&at.into(), std::time::Duration::from_secs(2))
        .expect("a SYN with TTL 255 is taken");
}

/// A SYN without the key a listener requires is dropped by the kernel, silently, and
/// counted in that namespace alone: what the edge reads to tell a TCP-MD5 mismatch from
/// a peer that does not answer.
#[test]
fn tcp_md5_drops_are_counted_per_namespace() {
    use std::os::fd::AsFd;
    if !root_or_skip("tcp_md5_drops_are_counted_per_namespace") {
        return;
    }
    let nets = Nets::new(2);
    let (a, b) = (nets.0[0].as_str(), nets.0[1].as_str());
    loopbacks_up(&[a, b]);
    assert_eq!(netns::tcp_md5_drops(Some(a)).expect("read"), 0);
    let l = netns::tcp_socket(Some(a)).expect("socket");
    let at: std::net::SocketAddr = "127.0.0.1:17979".parse().expect("addr");
    l.bind(&at.into()).expect("bind");
    cic_sockopt::set_tcp_md5sig(l.as_fd(), "127.0.0.1:0".parse().expect("addr"), b"k3y")
        .expect("md5");
    l.listen(8).expect("listen");
    let c = netns::tcp_socket(Some(a)).expect("socket");
    let no_key = c.connect_timeout(&at.into(), std::time::Duration::from_millis(300));
    assert!(no_key.is_err(), "a SYN without the key is dropped");
    assert!(netns::tcp_md5_drops(Some(a)).expect("read") >= 1);
    assert_eq!(
        netns::tcp_md5_drops(Some(b)).expect("read"),
        0,
        "the other namespace"
    );
}

/// Echo requests of a family that reached namespace `ns` (`IcmpInEchos`,
/// `Icmp6InEchos`).
fn echoes_in(ns: &str, v6: bool) -> u64 {
    let key = if v6 { "Icmp6InEchos" } else { "IcmpInEchos" };
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nstat", "-az", key])
        .output()
        .expect("nstat");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

fn ping_from(ns: &str, from: &str, to: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", ns, "ping", "-c", "1", "-W", "1", "-I", from, to,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A public connection's source validation: on the customer's interface, only packets
/// from the allowed prefixes are forwarded, and none toward the denied destinations (the
/// edge's segment to the services routers); the rest never reach the far side (counted
/// there), in both families; neighbor discovery still works under the rules; they are
/// set idempotently and removed again.
#[tokio::test]
async fn source_rules_forward_only_allowed_sources_in_both_families() {
    use cic_dataplane::rules::wanted;
    if !root_or_skip("source_rules") {
        return;
    }
    // customer ──cx── edge ──sx── services (a service on 198.18.0.10 / 2a0c:18::10)
    let nets = Nets::new(3);
    let (c, e, s) = (nets.get(0), nets.get(1), nets.get(2));
    loopbacks_up(&[c, e, s]);
    let nlc = Netlink::open(Some(c)).expect("netlink");
    let nle = Netlink::open(Some(e)).expect("netlink");
    // IPv6 usable at once, link-local addresses too (set before the links are made).
    for n in [c, e, s] {
        netns::sysctl(Some(n), "net/ipv6/conf/all/accept_dad", "0").expect("sysctl");
        netns::sysctl(Some(n), "net/ipv6/conf/default/accept_dad", "0").expect("sysctl");
    }
    nlc.create_veth("cx0", "cx", Some(e)).await.expect("veth");
    nle.create_veth("sx", "sx0", Some(s)).await.expect("veth");
    netns::sysctl(Some(e), "net/ipv4/ip_forward", "1").expect("sysctl");
    netns::sysctl(Some(e), "net/ipv6/conf/all/forwarding", "1").expect("sysctl");
    let setup = |ns: &str, args: &[&str]| {
        let st = Command::new("ip")
            .args(["netns", "exec", ns, "ip"])
            .args(args)
            .status()
            .expect("ip");
        assert!(st.success(), "ip {args:?} in {ns}");
    };
    for (ns, dev, addrs) in [
        (
            c,
            "cx0",
            &[
                "198.19.10.10/24",
                "192.168.1.10/24",
                "2a0c:10::10/64",
                "fd00:1::10/64",
            ][..],
        ),
        (
            e,
            "cx",
            &[
                "198.19.10.1/24",
                "192.168.1.1/24",
                "2a0c:10::1/64",
                "fd00:1::1/64",
            ][..],
        ),
        (e, "sx", &["100.66.0.1/30", "2a0c:ff::1/64"][..]),
        (s, "sx0", &["100.66.0.2/30", "2a0c:ff::2/64"][..]),
        (s, "lo", &["198.18.0.10/32", "2a0c:18::10/128"][..]),
    ] {
        for a in addrs {
            setup(ns, &["addr", "add", a, "dev", dev, "nodad"]);
        }
        setup(ns, &["link", "set", dev, "up"]);
    }
    setup(c, &["route", "add", "default", "via", "198.19.10.1"]);
    setup(c, &["-6", "route", "add", "default", "via", "2a0c:10::1"]);
    setup(e, &["route", "add", "198.18.0.10/32", "via", "100.66.0.2"]);
    setup(
        e,
        &["-6", "route", "add", "2a0c:18::10/128", "via", "2a0c:ff::2"],
    );
    setup(s, &["route", "add", "default", "via", "100.66.0.1"]);
    setup(s, &["-6", "route", "add", "default", "via", "2a0c:ff::1"]);
    // Without rules every source gets through, to the service and to the segment.
    assert!(ping_from(c, "192.168.1.10", "198.18.0.10"));
    assert!(ping_from(c, "fd00:1::10", "2a0c:18::10"));
    assert!(ping_from(c, "198.19.10.10", "100.66.0.2"));

    let want = wanted(
        "cx",
        0,
        &[net("198.19.10.0/24"), net("2a0c:10::/64")],
        &[net("100.66.0.0/30"), net("2a0c:ff::/64")],
    );
    nle.set_source_rules(&want).await.expect("rules");
    nle.set_source_rules(&want).await.expect("the same again");
    assert_eq!(
        nle.source_rules().await.expect("read").len(),
        6,
        "a rule per denied destination and per allowed prefix, a blackhole per family"
    );
    // Neighbor discovery and ARP from scratch, under the rules.
    for n in [c, e, s] {
        setup(n, &["neigh", "flush", "all"]);
        setup(n, &["-6", "neigh", "flush", "all"]);
    }
    let (v4, v6) = (echoes_in(s, false), echoes_in(s, true));
    assert!(ping_from(c, "198.19.10.10", "198.18.0.10"), "allowed IPv4");
    assert!(ping_from(c, "2a0c:10::10", "2a0c:18::10"), "allowed IPv6");
    assert_eq!((echoes_in(s, false), echoes_in(s, true)), (v4 + 1, v6 + 1));
    assert!(!ping_from(c, "192.168.1.10", "198.18.0.10"), "spoofed IPv4");
    assert!(!ping_from(c, "fd00:1::10", "2a0c:18::10"), "spoofed IPv6");
    assert!(
        !ping_from(c, "198.19.10.10", "100.66.0.2"),
        "the segment, IPv4"
    );
    assert!(
        !ping_from(c, "2a0c:10::10", "2a0c:ff::2"),
        "the segment, IPv6"
    );
    assert_eq!(
        (echoes_in(s, false), echoes_in(s, true)),
        (v4 + 1, v6 + 1),
        "no spoofed echo and none to the segment reached the far side"
    );
    // The edge's own address still answers the customer (BGP, BFD).
    assert!(ping_from(c, "192.168.1.10", "192.168.1.1"));
    // Gone again: every source passes.
    nle.set_source_rules(&[]).await.expect("none");
    assert!(nle.source_rules().await.expect("read").is_empty());
    assert!(ping_from(c, "192.168.1.10", "198.18.0.10"));
}

/// Source rules go to the kernel in batches, the catch-all blackholes last and whatever
/// came before: one allowed source the kernel refuses (an interface name longer than it
/// takes) leaves that source shut, not every source open, and the error names the rule.
#[tokio::test]
async fn a_refused_allowed_source_fails_closed() {
    if !root_or_skip("rule batches") {
        return;
    }
    let nets = Nets::new(1);
    let nl = Netlink::open(Some(nets.get(0))).expect("netlink");
    let mut want = cic_dataplane::rules::wanted("cx0", 0, &[net("198.19.10.0/24")], &[]);
    let mut refused = cic_dataplane::rules::wanted(
        "an-interface-name-too-long",
        1,
        &[net("198.19.20.0/24")],
        &[],
    );
    refused.retain(|r| r.from.is_some());
    want.extend(refused);
    let e = nl
        .set_source_rules(&want)
        .await
        .expect_err("a refused rule");
    assert!(
        e.to_string().contains("add rule") && e.to_string().contains("an-interface-name-too-long"),
        "{e}"
    );
    let held = nl.source_rules().await.expect("read");
    assert!(
        held.iter().any(|(_, r)| r.iif == "cx0" && r.allow),
        "{held:?}"
    );
    assert_eq!(
        held.iter()
            .filter(|(_, r)| r.iif == "cx0" && !r.allow)
            .count(),
        2,
        "cx0's blackholes (both families) are in, though another rule was refused: {held:?}"
    );
    // Without the refused one, it is all done and nothing more is asked.
    want.retain(|r| r.iif == "cx0");
    nl.set_source_rules(&want).await.expect("rules");
    assert_eq!(nl.source_rules().await.expect("read"), held);
}

/// An instance's namespace is held open once, by its netlink connection: the handle
/// sockets are made through is that one, not another descriptor (an edge holds one per
/// instance; at thousands, descriptors are what runs out first).
#[tokio::test]
async fn a_namespace_handle_is_the_connection_s_own_not_another_open_file() {
    if !root_or_skip("namespace handle") {
        return;
    }
    let nets = Nets::new(1);
    let open_files = || std::fs::read_dir("/proc/self/fd").expect("fds").count();
    let nl = Netlink::open(Some(nets.get(0))).expect("netlink");
    let before = open_files();
    let (a, b) = (
        nl.namespace_handle().expect("named"),
        nl.namespace_handle().expect("named"),
    );
    assert_eq!(open_files(), before, "no descriptor opened for a handle");
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let s = netns::udp_socket_in(&a, socket2::Domain::IPV4).expect("a socket through it");
    drop(s);
}
