//! The standalone speaker (`cic bgp run`) against FRR 8, GoBGP 3 and ExaBGP 4 from
//! Debian's packages. Each test makes two network namespaces joined by a veth: the
//! speaker at 10.78.N.1, the other router at 10.78.N.2 (FRR refuses loopback next hops,
//! so these cannot run on 127.0.0.0/8). Needs root; skipped when a router is not
//! installed, unless CIC_REQUIRE_PEERS=1 (CI). Each test first reads the peer's OPEN off
//! the wire with a listener of its own, and decodes those real bytes. One has no other
//! router: the path going silent while our connection waits for an OPEN.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cic_dataplane::netns;
use cic_peers::{
    ExaBgp, Frr, GoBgp, exabgp_available, frr_available, gobgp_available, peer_or_skip, wait_until,
};
use common::{WAIT, count, neighbor, routes, run_speaker, show};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces `cicx-<tag>-s` (the speaker, 10.78.`n`.1) and `cicx-<tag>-p` (the peer,
/// 10.78.`n`.2) joined by veth `v0`, and a scratch directory; removed on drop.
struct Wire {
    s: String,
    p: String,
    n: u8,
    dir: PathBuf,
}

impl Wire {
    fn new(tag: &str, n: u8) -> Wire {
        let w = Wire {
            s: format!("cicx-{tag}-s"),
            p: format!("cicx-{tag}-p"),
            n,
            dir: std::env::temp_dir().join(format!("cic-interop-{tag}-{}", std::process::id())),
        };
        std::fs::create_dir_all(&w.dir).expect("dir");
        for ns in [&w.s, &w.p] {
            let _ = netns::del(ns);
            netns::add(ns).expect("netns add");
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&[
            "link", "add", "v0", "netns", &w.s, "type", "veth", "peer", "name", "v0", "netns", &w.p,
        ]);
        ip(&[
            "-n",
            &w.s,
            "addr",
            "add",
            &format!("{}/24", w.us()),
            "dev",
            "v0",
        ]);
        ip(&[
            "-n",
            &w.p,
            "addr",
            "add",
            &format!("{}/24", w.peer()),
            "dev",
            "v0",
        ]);
        for ns in [&w.s, &w.p] {
            ip(&["-n", ns, "link", "set", "v0", "up"]);
        }
        w
    }

    fn us(&self) -> String {
        format!("10.78.{}.1", self.n)
    }

    fn peer(&self) -> String {
        format!("10.78.{}.2", self.n)
    }

    /// The speaker's config: one neighbor, the peer, with `neighbor` keys added, and our
    /// prefix 198.51.100.0/24 to originate.
    fn speaker_config(&self, remote_asn: u32, neighbor: &str) -> String {
        format!(
            r#"
asn = 65002
router_id = "{us}"
listen = ["{us}:179"]
connect_retry = 1

[[neighbor]]
address = "{peer}"
remote_asn = {remote_asn}
import = "accept-all"
export = "originated"
{neighbor}

[[originate]]
prefix = "198.51.100.0/24"
"#,
            us = self.us(),
            peer = self.peer(),
        )
    }
}

impl Wire {
    /// IPv6 addresses beside the IPv4 ones: fd78:`n`::1 ours, fd78:`n`::2 the peer's
    /// (without duplicate address detection, so they are usable at once).
    fn with_ipv6(self) -> Wire {
        for (ns, addr) in [(&self.s, self.us6()), (&self.p, self.peer6())] {
            ip(&[
                "-n",
                ns,
                "-6",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                "v0",
                "nodad",
            ]);
        }
        self
    }

    fn us6(&self) -> String {
        format!("fd78:{}::1", self.n)
    }

    fn peer6(&self) -> String {
        format!("fd78:{}::2", self.n)
    }

    /// [`Wire::speaker_config`] with IPv6 on the session (our next hop fd78:`n`::1) and
    /// 2001:db8:100::/48 to originate too.
    fn speaker_config6(&self, remote_asn: u32) -> String {
        let nb = format!("ipv6 = true\nnext_hop6 = \"{}\"", self.us6());
        self.speaker_config(remote_asn, &nb) + "\n[[originate]]\nprefix = \"2001:db8:100::/48\"\n"
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = netns::del(&self.s);
        let _ = netns::del(&self.p);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first message the peer sends when it connects to us, read by a listener of the
/// test's own on our address (port 179, with the TCP-MD5 key if given) before the speaker
/// runs: the peer's real bytes, as it sends them.
fn capture_first_message(w: &Wire, md5: Option<&str>) -> Vec<u8> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let sock = netns::tcp_socket(Some(&w.s)).expect("socket");
    sock.set_reuse_address(true).expect("SO_REUSEADDR");
    let us: SocketAddr = format!("{}:179", w.us()).parse().expect("address");
    sock.bind(&us.into()).expect("bind port 179");
    if let Some(key) = md5 {
        let peer: SocketAddr = format!("{}:0", w.peer()).parse().expect("address");
        cic_sockopt::set_tcp_md5sig(sock.as_fd(), peer, key.as_bytes()).expect("TCP_MD5SIG");
    }
    sock.listen(1).expect("listen");
    let listener: std::net::TcpListener = sock.into();
    listener.set_nonblocking(true).expect("nonblocking");
    // A connection the peer drops before a whole message (a retry racing an old one)
    // does not count: the next one is read.
    let mut dropped = Vec::new();
    wait_until(WAIT, "a whole message from the peer", || {
        let (mut s, _) = listener.accept().ok()?;
        s.set_nonblocking(false).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut msg = vec![0u8; 19];
        if let Err(e) = s.read_exact(&mut msg) {
            dropped.push(format!("header: {e}"));
            return None;
        }
        let len = usize::from(u16::from_be_bytes([msg[16], msg[17]]));
        assert!((19..=4096).contains(&len), "length {len}");
        msg.resize(len, 0);
        if let Err(e) = s.read_exact(&mut msg[19..]) {
            dropped.push(format!("body: {e}"));
            return None;
        }
        Some(msg)
    })
    .unwrap_or_else(|e| panic!("{e}; connections dropped: {dropped:?}"))
}

/// `bytes` are an OPEN from `asn` that our decoder reads, with the capabilities every
/// peer here announces, and that keep the decoder's invariants (it re-encodes to a
/// message that decodes the same).
fn check_open(bytes: &[u8], asn: u32, who: &str) -> cic_bgp::wire::Open {
    use cic_bgp::wire::{Capability, DecodeContext, Message, check_decoder, decode_message};
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let (m, n) = decode_message(
        bytes,
        &DecodeContext {
            ibgp: false,
            extended: false,
        },
    )
    .unwrap_or_else(|e| panic!("{who}'s OPEN {hex}: {e}"))
    .unwrap_or_else(|| panic!("{who}'s OPEN {hex}: incomplete"));
    assert_eq!(n, bytes.len());
    let Message::Open(o) = m else {
        panic!("{who} sent {} first: {hex}", m.kind());
    };
    assert_eq!(o.asn(), asn, "{who}: {o:?}");
    if asn > 65535 {
        assert_eq!(o.my_as, 23456, "{who}: AS_TRANS in My AS (RFC 6793)");
    }
    for want in [
        Capability::Multiprotocol { afi: 1, safi: 1 },
        Capability::FourOctetAs(asn),
    ] {
        assert!(
            o.capabilities.contains(&want),
            "{who}: no {want:?} in {o:?}"
        );
    }
    assert!(check_decoder(bytes), "{who}'s OPEN {hex}");
    eprintln!("{who}'s OPEN ({} bytes): {hex}", bytes.len());
    o
}

fn prefixes(socket: &std::path::Path) -> Vec<String> {
    routes(socket)
        .iter()
        .filter_map(|r| r["prefix"].as_str().map(str::to_string))
        .collect()
}

// -- FRR

fn frr_config(w: &Wire, networks: &[&str]) -> String {
    let networks: String = networks
        .iter()
        .map(|n| format!("  network {n}\n"))
        .collect();
    format!(
        "frr defaults traditional
hostname frr
router bgp 4200000010
 bgp router-id {peer}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {us} remote-as 65002
 neighbor {us} password a-long-shared-secret
 neighbor {us} timers connect 1
 address-family ipv4 unicast
{networks} exit-address-family
",
        us = w.us(),
        peer = w.peer(),
    )
}

/// FRR's view of its session with us (`show bgp neighbors X json`).
fn frr_neighbor(frr: &Frr, us: &str) -> serde_json::Value {
    frr.json(&format!("show bgp neighbors {us} json"))
        .map(|j| j[us].clone())
        .unwrap_or_default()
}

fn frr_stat(frr: &Frr, us: &str, key: &str) -> u64 {
    frr_neighbor(frr, us)["messageStats"][key]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn frr_exchanges_routes_over_md5_answers_route_refresh_and_is_held_off_past_max_prefix() {
    if !peer_or_skip("frr interop", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frr", 1);
    let us = w.us();
    let speaker_conf = w.speaker_config(
        4_200_000_010,
        "md5_key = \"a-long-shared-secret\"\nmax_prefixes = 3",
    );
    // A short idle hold after a max-prefix teardown, to see it honoured.
    let speaker_conf = speaker_conf.replace(
        "connect_retry = 1",
        "connect_retry = 1\nmax_prefix_idle = 4",
    );
    let frr = Frr::bgpd(
        "frr",
        &frr_config(&w, &["10.50.0.0/16", "10.51.0.0/16"]),
        Some(&w.p),
    )
    .expect("bgpd");
    check_open(
        &capture_first_message(&w, Some("a-long-shared-secret")),
        4_200_000_010,
        "FRR",
    );
    let speaker = run_speaker(&w.dir, &speaker_conf, Some(&w.s));
    let sock = speaker.socket.clone();

    // Up over TCP-MD5 with a 4-byte ASN; FRR's two prefixes in (and our own, which FRR
    // sends back, refused for the AS loop).
    wait_until(WAIT, "FRR's two prefixes", || {
        (prefixes(&sock) == ["10.50.0.0/16", "10.51.0.0/16"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["summary"]), frr.log()));
    let r = routes(&sock);
    assert_eq!(r[0]["asPath"], serde_json::json!([4_200_000_010u64]));
    assert_eq!(r[0]["nextHop"], w.peer());
    let row = neighbor(&sock, &w.peer());
    assert_eq!(row["state"], "ESTABLISHED");
    assert_eq!(row["remoteAsn"], 4_200_000_010u64);
    // Three prefixes received of a limit of 3 (ours comes back, refused, and counts):
    // past the 75 % warning, not over the limit.
    wait_until(WAIT, "the prefix-limit warning", || {
        let row = neighbor(&sock, &w.peer());
        (row["received"] == 3 && row["prefixWarning"] == true && row["overLimit"] == false)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary", "--json"])));
    assert_eq!(frr_neighbor(&frr, &us)["bgpState"], "Established");

    // Our prefix at FRR, with our AS path and our address as its next hop.
    let ours = wait_until(WAIT, "198.51.100.0/24 at FRR", || {
        let j = frr
            .json("show bgp ipv4 unicast 198.51.100.0/24 json")
            .ok()?;
        j["paths"].as_array().filter(|p| !p.is_empty()).cloned()
    })
    .expect("our prefix at FRR");
    assert_eq!(ours[0]["aspath"]["string"], "65002");
    assert_eq!(ours[0]["nexthops"][0]["ip"], us);

    // A withdrawal.
    frr.configure(&[
        "router bgp 4200000010",
        "address-family ipv4 unicast",
        "no network 10.51.0.0/16",
    ])
    .expect("no network");
    wait_until(WAIT, "the withdrawal", || (count(&sock) == 1).then_some(())).expect("withdrawn");

    // Route refresh (RFC 2918): FRR asks, we send our routes again — between BoRR and
    // EoRR (RFC 7313), which both sides announced: FRR marks our routes stale at the
    // BoRR and drops those not sent again at the EoRR, so our prefix must still be there.
    let caps = &frr_neighbor(&frr, &us)["neighborCapabilities"];
    assert_eq!(
        caps["enhancedRouteRefresh"], "advertisedAndReceived",
        "{caps}"
    );
    let before = frr_stat(&frr, &us, "updatesRecv");
    frr.vtysh(&format!("clear bgp ipv4 unicast {us} soft in"))
        .expect("soft in");
    // (FRR counts the BoRR and the EoRR as ROUTE-REFRESH messages received.)
    wait_until(
        WAIT,
        "our answer to the ROUTE-REFRESH, between BoRR and EoRR",
        || {
            (frr_stat(&frr, &us, "routeRefreshSent") == 1
                && frr_stat(&frr, &us, "updatesRecv") > before
                && frr_stat(&frr, &us, "routeRefreshRecv") == 2)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", frr_neighbor(&frr, &us)["messageStats"]));
    assert_eq!(frr_neighbor(&frr, &us)["bgpState"], "Established");
    let after = frr
        .json("show bgp ipv4 unicast 198.51.100.0/24 json")
        .expect("show bgp");
    assert_eq!(after["paths"][0]["aspath"]["string"], "65002", "{after}");

    // Over the limit of 3: Cease / Maximum Number of Prefixes Reached (RFC 4486), and
    // the session held off for max_prefix_idle although FRR retries every second.
    let before = frr_neighbor(&frr, &us)["connectionsEstablished"]
        .as_u64()
        .expect("connectionsEstablished");
    frr.configure(&[
        "router bgp 4200000010",
        "address-family ipv4 unicast",
        "network 10.52.0.0/16",
        "network 10.53.0.0/16",
        "network 10.54.0.0/16",
    ])
    .expect("more networks");
    let err = wait_until(WAIT, "the teardown", || {
        let r = neighbor(&sock, &w.peer());
        (r["overLimit"] == true).then(|| r["lastError"].as_str().unwrap_or_default().to_string())
    })
    .expect("teardown");
    let torn_down = Instant::now();
    assert!(
        err.contains("Cease / Maximum Number of Prefixes Reached"),
        "{err}"
    );
    wait_until(WAIT, "FRR to log the NOTIFICATION", || {
        frr.log()
            .contains("Maximum Number of Prefixes Reached")
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", frr.log()));
    wait_until(WAIT, "the session back after the hold", || {
        (frr_neighbor(&frr, &us)["connectionsEstablished"].as_u64() > Some(before)).then_some(())
    })
    .expect("re-established");
    let held = torn_down.elapsed();
    assert!(
        held >= Duration::from_millis(3500),
        "held off for only {held:?} (max_prefix_idle = 4 s)"
    );
}

/// Extended messages (RFC 8654) with FRR, both ways: both announce the capability; our
/// 3,000 originated prefixes reach FRR in one UPDATE (at 4,096 octets they need three),
/// and FRR's 3,000 come to us in UPDATEs longer than 4,096 octets, which we take.
#[test]
fn frr_and_we_exchange_updates_longer_than_4096_octets() {
    if !peer_or_skip("frr extended messages", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frrx", 8);
    let us = w.us();
    let theirs: Vec<String> = (0..3000u32)
        .map(|i| format!("10.{}.{}.0/24", 100 + i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = theirs.iter().map(String::as_str).collect();
    let frr = Frr::bgpd("frrx", &frr_config(&w, &refs), Some(&w.p)).expect("bgpd");
    let mut conf = w.speaker_config(4_200_000_010, "md5_key = \"a-long-shared-secret\"");
    for i in 0..3000u32 {
        conf += &format!(
            "[[originate]]\nprefix = \"172.{}.{}.0/24\"\n",
            16 + i / 256,
            i % 256
        );
    }
    let speaker = run_speaker(&w.dir, &conf, Some(&w.s));
    let sock = speaker.socket.clone();
    wait_until(WAIT, "FRR's 3,000 prefixes", || {
        (count(&sock) == 3000).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["summary"]), frr.log()));
    let caps = &frr_neighbor(&frr, &us)["neighborCapabilities"];
    assert_eq!(caps["extendedMessage"], "advertisedAndReceived", "{caps}");
    wait_until(WAIT, "our 3,000 prefixes at FRR", || {
        let j = frr.json("show bgp ipv4 unicast summary json").ok()?;
        let got = j["peers"][&us]["pfxRcd"].as_u64()?;
        // (And 198.51.100.0/24, which every speaker config of these tests originates.)
        (got == 3001).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{:?}",
            frr_neighbor(&frr, &us)["messageStats"],
            frr.json("show bgp ipv4 unicast summary json")
        )
    });
    // One UPDATE with the 3,000 (12,000 octets of NLRI; with 198.51.100.0/24, whose
    // attributes are the same), and the End-of-RIB.
    let updates = frr_stat(&frr, &us, "updatesRecv");
    assert!(updates <= 2, "{updates} UPDATEs for 3,000 prefixes");
    assert_eq!(neighbor(&sock, &w.peer())["state"], "ESTABLISHED");
}

/// RFC 8538 with FRR: both announce the N bit; FRR resets the session with a Cease /
/// Other Configuration Change (a changed `ebgp-multihop`), which is not a Hard Reset, so
/// we keep its routes as for a graceful restart while it comes back.
#[test]
fn frr_reset_by_a_notification_is_a_graceful_restart_with_the_n_bit() {
    if !peer_or_skip("frr rfc 8538", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frrn", 10);
    let us = w.us();
    let conf = frr_config(&w, &["10.60.0.0/16"]).replace(
        " bgp log-neighbor-changes\n",
        " bgp log-neighbor-changes\n bgp graceful-restart\n bgp graceful-restart notification\n",
    );
    let frr = Frr::bgpd("frrn", &conf, Some(&w.p)).expect("bgpd");
    let speaker_conf = w
        .speaker_config(4_200_000_010, "md5_key = \"a-long-shared-secret\"")
        .replace(
            "connect_retry = 1",
            "connect_retry = 1\ngraceful_restart_secs = 120",
        );
    let speaker = run_speaker(&w.dir, &speaker_conf, Some(&w.s));
    let sock = speaker.socket.clone();
    wait_until(WAIT, "FRR's prefix", || {
        (prefixes(&sock) == ["10.60.0.0/16"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["summary"]), frr.log()));
    let log = || std::fs::read_to_string(w.dir.join("speaker.log")).unwrap_or_default();
    frr.configure(&[
        "router bgp 4200000010",
        &format!("neighbor {us} ebgp-multihop 2"),
    ])
    .expect("ebgp-multihop");
    wait_until(WAIT, "the reset, taken as a restart", || {
        let l = log();
        (l.contains("received Cease / Other Configuration Change")
            && l.contains("peer restarting: its routes are kept"))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", log(), frr.log()));
    // Back, with the route sent again. (Kept until then: FRR's new OPEN does not say it
    // kept its forwarding, so the stale routes go at the new session's start, RFC 4724
    // §4.2, and its UPDATE brings the route back.)
    wait_until(
        WAIT,
        "the session back with the route, nothing stale",
        || {
            let row = neighbor(&sock, &w.peer());
            (row["state"] == "ESTABLISHED"
                && row["stale"] == 0
                && prefixes(&sock) == ["10.60.0.0/16"])
            .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary", "--json"])));
}

// -- GoBGP

/// GoBGP as AS 4200000020 with TCP-MD5, IPv4 unicast (GoBGP's default family).
fn gobgp_config(w: &Wire) -> String {
    gobgp_conf(
        w,
        4_200_000_020,
        65002,
        "\n    auth-password = \"a-long-shared-secret\"",
        "",
    )
}

/// GoBGP (AS `asn`) peering with us (AS `peer_as`); `neighbor` and `after` are extra lines
/// of its neighbor's config and after its timers.
fn gobgp_conf(w: &Wire, asn: u32, peer_as: u32, neighbor: &str, after: &str) -> String {
    format!(
        r#"
[global.config]
  as = {asn}
  router-id = "{peer}"
  port = 179
  local-address-list = ["{peer}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "{us}"
    peer-as = {peer_as}{neighbor}
  [neighbors.timers.config]
    connect-retry = 1
{after}"#,
        us = w.us(),
        peer = w.peer(),
    )
}

#[test]
fn gobgp_exchanges_routes_and_communities_over_md5_with_a_4_byte_asn() {
    if !peer_or_skip("gobgp interop", gobgp_available(), "GoBGP", "gobgpd") {
        return;
    }
    let w = Wire::new("gobgp", 2);
    let gobgp = GoBgp::start("gobgp", &gobgp_config(&w), Some(&w.p), 50051).expect("gobgpd");
    check_open(
        &capture_first_message(&w, Some("a-long-shared-secret")),
        4_200_000_020,
        "GoBGP",
    );
    let speaker = run_speaker(
        &w.dir,
        &w.speaker_config(4_200_000_020, "md5_key = \"a-long-shared-secret\""),
        Some(&w.s),
    );
    let sock = speaker.socket.clone();
    wait_until(WAIT, "the session", || {
        (neighbor(&sock, &w.peer())["state"] == "ESTABLISHED").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["summary"]), gobgp.log()));

    gobgp
        .cli(&[
            "global",
            "rib",
            "add",
            "10.70.0.0/16",
            "-a",
            "ipv4",
            "community",
            "65020:7",
            "large-community",
            "4200000020:1:2",
        ])
        .expect("rib add");
    gobgp
        .cli(&["global", "rib", "add", "10.71.0.0/16", "-a", "ipv4"])
        .expect("rib add");
    wait_until(WAIT, "GoBGP's two prefixes", || {
        (prefixes(&sock) == ["10.70.0.0/16", "10.71.0.0/16"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    let r = routes(&sock);
    assert_eq!(r[0]["asPath"], serde_json::json!([4_200_000_020u64]));
    assert_eq!(r[0]["nextHop"], w.peer());
    assert_eq!(r[0]["communities"], serde_json::json!(["65020:7"]));
    assert_eq!(
        r[0]["largeCommunities"],
        serde_json::json!(["4200000020:1:2"])
    );

    // Ours at GoBGP, AS path 65002, next hop our address.
    let ours = wait_until(WAIT, "198.51.100.0/24 at GoBGP", || {
        let rib = gobgp.json(&["global", "rib", "-a", "ipv4"]).ok()?;
        rib["198.51.100.0/24"].as_array().cloned()
    })
    .expect("our prefix at GoBGP");
    let attrs = ours[0]["attrs"].as_array().expect("attrs");
    let path = attrs
        .iter()
        .find(|a| a["type"] == 2)
        .expect("AS_PATH")
        .to_string();
    assert!(path.contains("65002"), "{path}");
    let nh = attrs.iter().find(|a| a["type"] == 3).expect("NEXT_HOP");
    assert_eq!(nh["nexthop"], w.us());

    gobgp
        .cli(&["global", "rib", "del", "10.71.0.0/16", "-a", "ipv4"])
        .expect("rib del");
    wait_until(WAIT, "the withdrawal", || {
        (prefixes(&sock) == ["10.70.0.0/16"]).then_some(())
    })
    .expect("withdrawn");
    assert_eq!(neighbor(&sock, &w.peer())["state"], "ESTABLISHED");
}

/// GoBGP (AS `asn`) with IPv4 and IPv6 unicast on its session with us (AS `peer_as`).
fn gobgp_dual_stack_config(w: &Wire, asn: u32, peer_as: u32) -> String {
    let families = ["ipv4-unicast", "ipv6-unicast"]
        .map(|f| {
            format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\"\n"
            )
        })
        .concat();
    gobgp_conf(w, asn, peer_as, "", &families)
}

/// GoBGP on a dual-stack session: IPv6 routes both ways with each side's next hop, a
/// withdrawal; and route refresh the other way round — a new import policy (SIGHUP) asks
/// GoBGP for its routes again, and the route the old policy refused arrives over the same
/// session.
#[test]
fn gobgp_exchanges_ipv6_routes_and_answers_our_route_refresh() {
    if !peer_or_skip("gobgp ipv6 interop", gobgp_available(), "GoBGP", "gobgpd") {
        return;
    }
    let w = Wire::new("gobgp6", 7).with_ipv6();
    let conf = gobgp_dual_stack_config(&w, 65020, 65002);
    let gobgp = GoBgp::start("gobgp6", &conf, Some(&w.p), 50053).expect("gobgpd");
    let speaker_conf = |import: &str| {
        w.speaker_config6(65020)
            .replace("import = \"accept-all\"", &format!("import = \"{import}\""))
            + "\n[[policy]]\nname = \"no-71\"\ndefault = \"accept\"\n\
               rule = [{ prefix = \"2001:db8:71::/48\", action = \"reject\" }]\n"
    };
    let speaker = run_speaker(&w.dir, &speaker_conf("no-71"), Some(&w.s));
    let sock = speaker.socket.clone();
    let nh6 = w.peer6();
    for p in ["2001:db8:70::/48", "2001:db8:71::/48"] {
        gobgp
            .cli(&["global", "rib", "add", p, "nexthop", &nh6, "-a", "ipv6"])
            .expect("rib add");
    }
    let log = || gobgp.log();
    wait_routes6(&w, &sock, &["2001:db8:70::/48"], &log);

    // Ours at GoBGP, with our IPv6 next hop.
    let ours = wait_until(WAIT, "2001:db8:100::/48 at GoBGP", || {
        let rib = gobgp.json(&["global", "rib", "-a", "ipv6"]).ok()?;
        rib["2001:db8:100::/48"].as_array().cloned()
    })
    .unwrap_or_else(|e| panic!("{e}: {}", log()));
    let mp = ours[0]["attrs"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == 14).cloned())
        .expect("MP_REACH_NLRI");
    assert!(mp.to_string().contains(&w.us6()), "{mp}");

    // A new import policy: GoBGP is asked again and 2001:db8:71::/48 comes.
    std::fs::write(w.dir.join("speaker.toml"), speaker_conf("accept-all")).expect("write");
    let pid = nix::unistd::Pid::from_raw(speaker.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    wait_routes6(&w, &sock, &["2001:db8:70::/48", "2001:db8:71::/48"], &log);
    let ours_log = std::fs::read_to_string(w.dir.join("speaker.log")).unwrap_or_default();
    assert!(ours_log.contains("1 with new policies"), "{ours_log}");
    assert!(ours_log.contains("ROUTE-REFRESH"), "{ours_log}");
    assert_eq!(
        ours_log.matches("session established").count(),
        1,
        "{ours_log}"
    );

    gobgp
        .cli(&["global", "rib", "del", "2001:db8:70::/48", "-a", "ipv6"])
        .expect("rib del");
    wait_routes6(&w, &sock, &["2001:db8:71::/48"], &log);
    assert_eq!(neighbor(&sock, &w.peer())["state"], "ESTABLISHED");
}

// -- ExaBGP: malformed attributes (RFC 7606)

fn exabgp_neighbor(w: &Wire) -> String {
    format!(
        "neighbor {us} {{
  router-id {peer};
  local-address {peer};
  local-as 65010;
  peer-as 65002;
  api {{ processes [ feed ]; }}
  api {{ processes [ watch ]; receive {{ notification; }} }}
}}",
        us = w.us(),
        peer = w.peer(),
    )
}

#[test]
fn exabgp_malformed_attributes_are_withdrawn_or_discarded_without_a_reset_unless_the_rfc_says_reset()
 {
    if !peer_or_skip("exabgp interop", exabgp_available(), "ExaBGP", "exabgp") {
        return;
    }
    let w = Wire::new("exa", 3);
    let exa = ExaBgp::start("exa", &exabgp_neighbor(&w), Some(&w.p)).expect("exabgp");
    check_open(&capture_first_message(&w, None), 65010, "ExaBGP");
    let speaker = run_speaker(
        &w.dir,
        &w.speaker_config(65010, "passive = true"),
        Some(&w.s),
    );
    let sock = speaker.socket.clone();
    let peer = w.peer();
    let row = || neighbor(&sock, &peer);
    wait_until(WAIT, "the session", || {
        (row()["state"] == "ESTABLISHED").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["summary"]), exa.log()));
    let nh = format!("next-hop {peer}");
    for p in ["10.60.1.0/24", "10.60.2.0/24"] {
        exa.send(&format!("announce route {p} {nh} community [65010:100]"))
            .expect("send");
    }
    wait_until(WAIT, "two good routes", || {
        (prefixes(&sock) == ["10.60.1.0/24", "10.60.2.0/24"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", exa.log()));

    // COMMUNITIES of 3 bytes (§7.8): treat-as-withdraw. 10.60.2.0/24, announced well
    // before, is withdrawn by it.
    exa.send(&format!(
        "announce route 10.60.2.0/24 {nh} attribute [0x08 0xc0 0x000102]"
    ))
    .expect("send");
    // MULTI_EXIT_DISC of 2 bytes (§7.4): treat-as-withdraw; the route never enters.
    exa.send(&format!(
        "announce route 10.60.4.0/24 {nh} attribute [0x04 0x80 0x0001]"
    ))
    .expect("send");
    // ATOMIC_AGGREGATE of 1 byte (§7.6): the attribute is discarded, the route kept.
    exa.send(&format!(
        "announce route 10.60.3.0/24 {nh} attribute [0x06 0x40 0x01]"
    ))
    .expect("send");
    // An unknown optional transitive attribute: kept and accepted (RFC 4271 §5).
    exa.send(&format!(
        "announce route 10.60.5.0/24 {nh} attribute [0xf0 0xc0 0x0102030405]"
    ))
    .expect("send");
    // (The summary is published at most every 50 ms: wait for it too.)
    let r = wait_until(WAIT, "the malformed UPDATEs judged", || {
        let r = row();
        (prefixes(&sock) == ["10.60.1.0/24", "10.60.3.0/24", "10.60.5.0/24"] && r["received"] == 3)
            .then_some(r)
    })
    .unwrap_or_else(|e| panic!("{e}: {:?} {}", prefixes(&sock), row()));
    assert_eq!(r["state"], "ESTABLISHED", "no reset: {r}");
    assert_eq!(r["lastError"], serde_json::Value::Null);
    assert_eq!(r["treatedAsWithdraw"], 2, "{r}");
    assert_eq!(r["attributesDiscarded"], 1, "{r}");
    assert!(
        r["lastMalformed"]
            .as_str()
            .is_some_and(|m| m.contains("ATOMIC_AGGREGATE")),
        "{r}"
    );
    assert!(
        exa.received().is_empty(),
        "no NOTIFICATION: {:?}",
        exa.received()
    );

    // MP_REACH_NLRI too short to read (§7.11, it cannot be located): the session is reset,
    // with an UPDATE Message Error sent, not silently.
    exa.send(&format!(
        "announce route 10.60.6.0/24 {nh} attribute [0x0e 0x80 0x0001]"
    ))
    .expect("send");
    let err = wait_until(WAIT, "the reset", || {
        row()["lastError"].as_str().map(str::to_string)
    })
    .expect("reset");
    assert!(
        err.contains("sent UPDATE Message Error / Optional Attribute Error")
            && err.contains("MP_REACH_NLRI"),
        "{err}"
    );
    assert_eq!(count(&sock), 0, "its routes went with the session");

    // Once ExaBGP stops sending the broken route, the session comes back.
    exa.send("withdraw route 10.60.6.0/24").expect("send");
    wait_until(WAIT, "the session back", || {
        let r = row();
        (r["state"] == "ESTABLISHED" && count(&sock) == 3).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", row(), exa.log()));
}

// -- IPv6 unicast over one IPv4 session (RFC 4760 MP-BGP, RFC 2545 next hops)

/// `(prefix, nextHop)` of the speaker's IPv6 routes.
fn routes6(socket: &std::path::Path) -> Vec<(String, String)> {
    routes(socket)
        .iter()
        .filter(|r| r["prefix"].as_str().is_some_and(|p| p.contains(':')))
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("prefix"), s("nextHop"))
        })
        .collect()
}

/// Reads `who`'s OPEN off the wire (it must announce IPv6 unicast beside IPv4), then runs
/// the speaker with IPv6 on its session with `who`.
fn dual_stack_speaker(w: &Wire, asn: u32, who: &str) -> common::Running {
    let open = check_open(&capture_first_message(w, None), asn, who);
    assert!(
        open.has(&cic_bgp::wire::Capability::Multiprotocol { afi: 2, safi: 1 }),
        "{who} announces IPv6 unicast: {open:?}"
    );
    run_speaker(&w.dir, &w.speaker_config6(asn), Some(&w.s))
}

/// Waits until the speaker's IPv6 routes are `prefixes`, each through the peer's IPv6
/// address; `log` tells what the peer said when they are not.
fn wait_routes6(w: &Wire, sock: &std::path::Path, prefixes: &[&str], log: &dyn Fn() -> String) {
    let want: Vec<(String, String)> = prefixes
        .iter()
        .map(|p| (p.to_string(), w.peer6()))
        .collect();
    wait_until(WAIT, &format!("IPv6 routes {prefixes:?}"), || {
        (routes6(sock) == want).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}\n{}",
            routes(sock),
            show(sock, &["summary"]),
            log()
        )
    });
}

#[test]
fn frr_exchanges_ipv6_routes_over_an_ipv4_session_and_refreshes_them() {
    if !peer_or_skip("frr ipv6 interop", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frr6", 4).with_ipv6();
    let us = w.us();
    // bgpd runs without zebra here, so it cannot pick an IPv6 next hop from the
    // interface: a route map gives it its address on the link.
    let conf = format!(
        "frr defaults traditional
hostname frr6
route-map NH6 permit 10
 set ipv6 next-hop global {peer6}
exit
router bgp 4200000040
 bgp router-id {peer}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {us} remote-as 65002
 neighbor {us} timers connect 1
 address-family ipv4 unicast
  network 10.60.0.0/16
 exit-address-family
 address-family ipv6 unicast
  neighbor {us} activate
  neighbor {us} route-map NH6 out
  network 2001:db8:60::/48
  network 2001:db8:61::/48
 exit-address-family
",
        peer = w.peer(),
        peer6 = w.peer6(),
    );
    let frr = Frr::bgpd("frr6", &conf, Some(&w.p)).expect("bgpd");
    let speaker = dual_stack_speaker(&w, 4_200_000_040, "FRR");
    let sock = speaker.socket.clone();

    // FRR's IPv6 prefixes in, with the next hop it set; its IPv4 one beside them.
    wait_routes6(
        &w,
        &sock,
        &["2001:db8:60::/48", "2001:db8:61::/48"],
        &|| frr.log(),
    );
    assert!(prefixes(&sock).contains(&"10.60.0.0/16".to_string()));

    // Ours at FRR, with our IPv6 next hop: both families on one session.
    let ours = wait_until(WAIT, "2001:db8:100::/48 at FRR", || {
        let j = frr
            .json("show bgp ipv6 unicast 2001:db8:100::/48 json")
            .ok()?;
        j["paths"].as_array().filter(|p| !p.is_empty()).cloned()
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            frr.vtysh("show bgp ipv6 unicast").unwrap_or_default()
        )
    });
    assert_eq!(ours[0]["aspath"]["string"], "65002");
    assert_eq!(ours[0]["nexthops"][0]["ip"], w.us6());
    let v4 = frr
        .json("show bgp ipv4 unicast 198.51.100.0/24 json")
        .expect("show");
    assert_eq!(v4["paths"][0]["nexthops"][0]["ip"], us, "IPv4 as before");

    // An IPv6 withdrawal (MP_UNREACH_NLRI).
    frr.configure(&[
        "router bgp 4200000040",
        "address-family ipv6 unicast",
        "no network 2001:db8:61::/48",
    ])
    .expect("no network");
    wait_routes6(&w, &sock, &["2001:db8:60::/48"], &|| frr.log());

    // Route refresh for IPv6 (AFI 2): we answer with our routes again.
    let before = frr_stat(&frr, &us, "updatesRecv");
    frr.vtysh(&format!("clear bgp ipv6 unicast {us} soft in"))
        .expect("soft in");
    wait_until(WAIT, "our answer to the IPv6 ROUTE-REFRESH", || {
        (frr_stat(&frr, &us, "routeRefreshSent") >= 1
            && frr_stat(&frr, &us, "updatesRecv") > before)
            .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", frr_neighbor(&frr, &us)["messageStats"]));
    assert_eq!(frr_neighbor(&frr, &us)["bgpState"], "Established");
}

#[test]
fn bird_exchanges_ipv6_routes_over_an_ipv4_session() {
    if !peer_or_skip(
        "bird ipv6 interop",
        cic_peers::bird_available(),
        "BIRD",
        "bird2",
    ) {
        return;
    }
    let w = Wire::new("bird6", 5).with_ipv6();
    let conf = format!(
        r#"
router id {peer};
protocol device {{}}
protocol static s4 {{ ipv4; route 10.65.0.0/16 unreachable; }}
protocol static s6 {{ ipv6; route 2001:db8:65::/48 unreachable; route 2001:db8:66::/48 unreachable; }}
protocol bgp speaker {{
  local {peer} as 4200000050;
  neighbor {us} as 65002;
  connect retry time 1;
  ipv4 {{ import all; export where proto = "s4"; }};
  ipv6 {{ import all; export where proto = "s6"; next hop address {peer6}; }};
}}
"#,
        peer = w.peer(),
        us = w.us(),
        peer6 = w.peer6(),
    );
    let mut bird = cic_peers::Bird::start("bird6", &conf, Some(&w.p), Some(&w.dir)).expect("BIRD");
    let speaker = dual_stack_speaker(&w, 4_200_000_050, "BIRD");
    let sock = speaker.socket.clone();
    wait_routes6(
        &w,
        &sock,
        &["2001:db8:65::/48", "2001:db8:66::/48"],
        &|| bird.log(),
    );
    assert!(prefixes(&sock).contains(&"10.65.0.0/16".to_string()));
    let r = routes(&sock);
    let r6 = r
        .iter()
        .find(|r| r["prefix"] == "2001:db8:65::/48")
        .expect("route");
    assert_eq!(r6["asPath"], serde_json::json!([4_200_000_050u64]));

    // Ours at BIRD, by our IPv6 next hop on the link.
    wait_until(WAIT, "2001:db8:100::/48 at BIRD", || {
        bird.has_route("2001:db8:100::/48").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", bird.cmd("show route all").unwrap_or_default()));
    let at_bird = bird.route("2001:db8:100::/48");
    assert!(at_bird.contains(&format!("via {}", w.us6())), "{at_bird}");
    assert!(at_bird.contains("BGP.as_path: 65002"), "{at_bird}");

    // A withdrawal, then BIRD stopping: its routes of both families go.
    bird.reconfigure(&conf.replace(" route 2001:db8:66::/48 unreachable;", ""))
        .expect("reconfigure");
    wait_routes6(&w, &sock, &["2001:db8:65::/48"], &|| bird.log());
    bird.stop();
    wait_until(WAIT, "BIRD's routes gone", || {
        (count(&sock) == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", routes(&sock)));
}

// -- Golden bytes

/// Reads `peer`'s session with a BGP speaker of the test's own (AS 200350, IPv4 and IPv6
/// unicast) on our address and returns every message it sends, in order, until it has
/// sent End-of-RIB for both families and then been quiet for a second (or 20 s pass).
fn capture_session(w: &Wire) -> Vec<Vec<u8>> {
    use cic_bgp::wire::{Afi, Capability, DecodeContext, Message, Open, decode_message};
    use std::io::{Read, Write};
    let sock = netns::tcp_socket(Some(&w.s)).expect("socket");
    sock.set_reuse_address(true).expect("SO_REUSEADDR");
    let us: SocketAddr = format!("{}:179", w.us()).parse().expect("address");
    sock.bind(&us.into()).expect("bind port 179");
    sock.listen(1).expect("listen");
    let listener: std::net::TcpListener = sock.into();
    let (mut s, _) = listener.accept().expect("the peer connects");
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut open = Open::for_families(
        200_350,
        90,
        w.us().parse().expect("address"),
        &[Afi::Ipv4, Afi::Ipv6],
    );
    // Graceful restart, so that every peer sends its End-of-RIBs (FRR sends none without).
    open.capabilities.push(Capability::GracefulRestart(
        cic_bgp::wire::GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: 120,
            families: [1, 2]
                .map(|afi| cic_bgp::wire::GrFamily {
                    afi,
                    safi: 1,
                    forwarding: false,
                })
                .to_vec(),
        },
    ));
    s.write_all(&Message::Open(open).encode())
        .expect("our OPEN");
    let (mut buf, mut out, mut eor) = (Vec::new(), Vec::new(), Vec::new());
    let (start, mut quiet) = (Instant::now(), Instant::now());
    while start.elapsed() < Duration::from_secs(20) {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                quiet = Instant::now();
            }
            // Quiet after both End-of-RIBs; or for three seconds after anything at all
            // (a peer that sends no End-of-RIB).
            Err(_)
                if eor.len() >= 2
                    || (quiet.elapsed() > Duration::from_secs(3) && out.len() > 2) =>
            {
                break;
            }
            Err(_) => continue,
        }
        while let Ok(Some((m, n))) = decode_message(&buf, &DecodeContext::default()) {
            match &m {
                Message::Open(_) => s
                    .write_all(&Message::Keepalive.encode())
                    .expect("KEEPALIVE"),
                Message::Update(u) => eor.extend(u.end_of_rib()),
                _ => {}
            }
            out.push(buf.drain(..n).collect());
        }
    }
    eprintln!("End-of-RIB for {eor:?} in {} messages", out.len());
    assert!(out.len() > 2, "an OPEN, a KEEPALIVE and UPDATEs");
    out
}

/// Writes `messages` to crates/bgp/tests/golden/`dir`/: `open`, `keepalive`, `update-N`,
/// `eor-ipv4`, `eor-ipv6`.
fn write_golden(dir: &str, messages: &[Vec<u8>]) {
    use cic_bgp::wire::{Afi, DecodeContext, Message, decode_message};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../bgp/tests/golden")
        .join(dir);
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("golden dir");
    let mut updates = 0;
    for m in messages {
        let Ok(Some((msg, _))) = decode_message(m, &DecodeContext::default()) else {
            panic!("{dir}: undecodable {m:x?}");
        };
        let name = match msg {
            Message::Open(_) => "open".to_string(),
            Message::Keepalive => "keepalive".to_string(),
            Message::Update(u) => match u.end_of_rib() {
                Some(Afi::Ipv4) => "eor-ipv4".to_string(),
                Some(Afi::Ipv6) => "eor-ipv6".to_string(),
                None => {
                    updates += 1;
                    format!("update-{updates}")
                }
            },
            other => other.kind().to_lowercase(),
        };
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(path.join(format!("{name}.hex")), hex + "\n").expect("write");
    }
    eprintln!("{dir}: {} messages, {updates} UPDATEs", messages.len());
}

/// What each router announces for the golden files: two IPv4 and two IPv6 prefixes, one
/// of each with MED and communities (standard and large).
#[test]
#[ignore = "writes crates/bgp/tests/golden/{frr,gobgp,exabgp,bird-dual}; run by hand as root"]
fn capture_golden_bytes() {
    // FRR
    {
        let w = Wire::new("gold-frr", 9).with_ipv6();
        let conf = format!(
            "frr defaults traditional
hostname gold
route-map TAG permit 10
 set metric 50
 set community 65001:100 65001:200
 set large-community 65001:1:2
exit
route-map NH6 permit 10
 set ipv6 next-hop global {peer6}
exit
router bgp 65001
 bgp router-id {peer}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {us} remote-as 200350
 neighbor {us} timers connect 1
 address-family ipv4 unicast
  network 192.168.10.0/24
  network 10.20.0.0/16 route-map TAG
 exit-address-family
 address-family ipv6 unicast
  neighbor {us} activate
  neighbor {us} route-map NH6 out
  network 2001:db8:10::/48
  network 2001:db8:20::/48 route-map TAG
 exit-address-family
",
            us = w.us(),
            peer = w.peer(),
            peer6 = w.peer6(),
        );
        let _frr = Frr::bgpd("gold", &conf, Some(&w.p)).expect("bgpd");
        write_golden("frr", &capture_session(&w));
    }
    // GoBGP
    {
        let w = Wire::new("gold-gobgp", 9).with_ipv6();
        let conf = gobgp_dual_stack_config(&w, 65001, 200_350);
        let g = GoBgp::start("gold", &conf, Some(&w.p), 50052).expect("gobgpd");
        let nh6 = w.peer6();
        for args in [
            vec!["global", "rib", "add", "192.168.10.0/24", "-a", "ipv4"],
            vec![
                "global",
                "rib",
                "add",
                "10.20.0.0/16",
                "-a",
                "ipv4",
                "med",
                "50",
                "community",
                "65001:100,65001:200",
                "large-community",
                "65001:1:2",
            ],
            vec![
                "global",
                "rib",
                "add",
                "2001:db8:10::/48",
                "nexthop",
                &nh6,
                "-a",
                "ipv6",
            ],
            vec![
                "global",
                "rib",
                "add",
                "2001:db8:20::/48",
                "nexthop",
                &nh6,
                "-a",
                "ipv6",
                "med",
                "50",
                "community",
                "65001:100,65001:200",
                "large-community",
                "65001:1:2",
            ],
        ] {
            g.cli(&args).expect("rib add");
        }
        write_golden("gobgp", &capture_session(&w));
    }
    // ExaBGP
    {
        let w = Wire::new("gold-exa", 9).with_ipv6();
        let neighbors = format!(
            "neighbor {us} {{
  router-id {peer};
  local-address {peer};
  local-as 65001;
  peer-as 200350;
  family {{ ipv4 unicast; ipv6 unicast; }}
  static {{
    route 192.168.10.0/24 next-hop {peer};
    route 10.20.0.0/16 next-hop {peer} med 50 community [65001:100 65001:200] large-community [65001:1:2];
    route 2001:db8:10::/48 next-hop {peer6};
    route 2001:db8:20::/48 next-hop {peer6} med 50 community [65001:100 65001:200] large-community [65001:1:2];
  }}
}}
",
            us = w.us(),
            peer = w.peer(),
            peer6 = w.peer6(),
        );
        let _exa = ExaBgp::start("gold", &neighbors, Some(&w.p)).expect("exabgp");
        write_golden("exabgp", &capture_session(&w));
    }
    // BIRD, dual stack (tests/golden/bird has its IPv4-only session)
    {
        let w = Wire::new("gold-bird", 9).with_ipv6();
        let conf = format!(
            r#"
router id {peer};
protocol device {{}}
protocol static s4 {{ ipv4; route 192.168.10.0/24 blackhole; route 10.20.0.0/16 blackhole; }}
protocol static s6 {{ ipv6; route 2001:db8:10::/48 blackhole; route 2001:db8:20::/48 blackhole; }}
filter tagged {{
  if net = 10.20.0.0/16 || net = 2001:db8:20::/48 then {{
    bgp_med = 50;
    bgp_community.add((65001,100));
    bgp_community.add((65001,200));
    bgp_large_community.add((65001,1,2));
  }}
  accept;
}}
protocol bgp speaker {{
  local {peer} as 65001;
  neighbor {us} as 200350;
  connect retry time 1;
  ipv4 {{ import all; export filter tagged; }};
  ipv6 {{ import all; export filter tagged; next hop address {peer6}; }};
}}
"#,
            us = w.us(),
            peer = w.peer(),
            peer6 = w.peer6(),
        );
        let _bird = cic_peers::Bird::start("gold", &conf, Some(&w.p), Some(&w.dir)).expect("BIRD");
        write_golden("bird-dual", &capture_session(&w));
    }
}

#[test]
fn frr_exchanges_ipv6_routes_over_an_ipv6_session_to_our_ipv6_listener() {
    if !peer_or_skip("frr ipv6 session interop", frr_available(), "FRR", "frr") {
        return;
    }
    let w = Wire::new("frr6s", 6).with_ipv6();
    let (us6, peer6) = (w.us6(), w.peer6());
    let conf = format!(
        "frr defaults traditional
hostname frr6s
router bgp 4200000060
 bgp router-id {peer}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {us6} remote-as 65002
 neighbor {us6} timers connect 1
 neighbor {us6} password a-long-shared-secret
 address-family ipv6 unicast
  neighbor {us6} activate
  network 2001:db8:70::/48
 exit-address-family
",
        peer = w.peer(),
    );
    let frr = Frr::bgpd("frr6s", &conf, Some(&w.p)).expect("bgpd");
    // We only listen, on our IPv4 and IPv6 addresses: FRR comes to us over IPv6, with
    // TCP-MD5 (its key set on the IPv6 listener only).
    let speaker_conf = format!(
        r#"
asn = 65002
router_id = "{us}"
listen = ["{us}:179", "[{us6}]:179"]
connect_retry = 1

[[neighbor]]
address = "{peer6}"
remote_asn = 4200000060
passive = true
md5_key = "a-long-shared-secret"
import = "accept-all"
export = "originated"

[[originate]]
prefix = "2001:db8:100::/48"

[[originate]]
prefix = "198.51.100.0/24"
"#,
        us = w.us(),
    );
    let speaker = run_speaker(&w.dir, &speaker_conf, Some(&w.s));
    let sock = speaker.socket.clone();
    wait_routes6(&w, &sock, &["2001:db8:70::/48"], &|| frr.log());
    let row = neighbor(&sock, &peer6);
    assert_eq!(row["state"], "ESTABLISHED", "{row}");
    // Ours at FRR with our session address as the next hop; our IPv4 prefix is not sent
    // (the session carries IPv6 unicast only).
    let ours = wait_until(WAIT, "2001:db8:100::/48 at FRR", || {
        let j = frr
            .json("show bgp ipv6 unicast 2001:db8:100::/48 json")
            .ok()?;
        j["paths"].as_array().filter(|p| !p.is_empty()).cloned()
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}",
            frr.vtysh("show bgp ipv6 unicast").unwrap_or_default()
        )
    });
    assert_eq!(ours[0]["nexthops"][0]["ip"], us6);
    assert_eq!(ours[0]["aspath"]["string"], "65002");
    let v4 = frr
        .json("show bgp ipv4 unicast 198.51.100.0/24 json")
        .expect("show");
    assert!(
        v4["paths"].as_array().is_none_or(|p| p.is_empty()),
        "no IPv4 over this session: {v4}"
    );
    let log = std::fs::read_to_string(w.dir.join("speaker.log")).unwrap_or_default();
    assert!(!log.contains("TCP-MD5 key on listener"), "{log}");
}

/// Our connection is up and waits for the peer's OPEN when the path goes silent (the
/// peer's port down: nothing crosses, no reset comes). The kernel's probes go unanswered,
/// and the session gives the connection up within seconds, saying it timed out — not
/// that the peer closed it (which would read as a router with no neighbor for us) — where
/// it would otherwise wait for the OPEN hold time, minutes. (Needs root: namespaces.)
#[test]
fn a_connection_gone_silent_before_the_peer_s_open_is_given_up_as_timed_out() {
    if !cic_peers::root_or_skip("silent connection") {
        return;
    }
    let w = Wire::new("silent", 11);
    // The peer listens and never accepts: our handshake completes in its kernel.
    let sock = netns::tcp_socket(Some(&w.p)).expect("socket");
    let peer: SocketAddr = format!("{}:179", w.peer()).parse().expect("address");
    sock.bind(&peer.into()).expect("bind the peer's port 179");
    sock.listen(1).expect("listen");
    let speaker = run_speaker(&w.dir, &w.speaker_config(65001, ""), Some(&w.s));
    let state = || neighbor(&speaker.socket, &w.peer());
    wait_until(WAIT, "our OPEN sent on our connection", || {
        (state()["state"] == "OPEN_SENT").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", state()));
    ip(&["-n", &w.p, "link", "set", "v0", "down"]);
    let cut = Instant::now();
    wait_until(
        Duration::from_secs(15),
        "the silent connection given up",
        || (state()["state"] != "OPEN_SENT").then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e} ({:?} after the cut): {}", cut.elapsed(), state()));
    let why = state()["lastError"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("timed out"), "{why}");
    drop(sock);
}
