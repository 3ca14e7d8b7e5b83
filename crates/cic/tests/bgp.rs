//! `cic bgp run` and `cic bgp show`: the standalone speaker as a user runs it, against
//! three BIRDs on loopback addresses of this test's own (127.0.31.0/24). Skipped when
//! BIRD is not installed, unless CIC_REQUIRE_PEERS=1 (CI).

mod common;

use std::path::Path;
use std::process::Output;

use cic_peers::{Bird, bird_or_skip, wait_until};
use common::{WAIT, cic, count, neighbor, routes, run_speaker, show, stderr};

const US: &str = "127.0.31.1";
const PORT: u16 = 17310;

/// `cic bgp run --config CONF --socket SOCKET`, to its end (for runs that must not start).
fn bgp_run(conf: &Path, socket: &Path) -> Output {
    let mut args = vec!["bgp", "run", "--config", conf.to_str().expect("path")];
    args.extend(["--socket", socket.to_str().expect("path")]);
    cic(&args)
}

/// A BIRD at 127.0.`net`.`host` (port 17000 + 10·`net` + `host`, AS `asn`) that peers
/// with the speaker at 127.0.`net`.1 (port 17000 + 10·`net`) and announces `routes`;
/// `extra` goes into its BGP protocol. Each test has a `net` of its own.
fn bird_in(net: u8, host: u8, asn: u32, extra: &str, routes: &str) -> String {
    let port = 17000 + 10 * net as u16;
    format!(
        r#"
router id 127.0.{net}.{host};
protocol device {{}}
protocol static feed {{ ipv4; {routes} }}
protocol bgp speaker {{
  local 127.0.{net}.{host} port {bird_port} as {asn};
  neighbor 127.0.{net}.1 port {port} as 65002;
  multihop;
  connect retry time 1;
  {extra}
  ipv4 {{ import all; export where proto = "feed"; }};
}}
"#,
        bird_port = port + host as u16,
    )
}

/// A BIRD at 127.0.31.`host`, port PORT+`host`, peering with the speaker.
fn bird(host: u8, asn: u32, extra: &str, routes: &str) -> String {
    bird_in(31, host, asn, extra, routes)
}

fn speaker_config() -> String {
    format!(
        r#"
asn = 65002
router_id = "{US}"
listen = ["{US}:{PORT}"]
connect_retry = 1

# A feed: everything it sends is taken but what it tags 65001:666, nothing is sent back.
[[neighbor]]
address = "127.0.31.2"
remote_asn = 65001
passive = true
import = "feed-in"
export = "none"

# A 4-byte ASN over TCP-MD5, which we connect to: only on-prem space in, our own out.
[[neighbor]]
address = "127.0.31.3"
port = {p3}
local_address = "{US}"
remote_asn = 4200000002
md5_key = "a-long-shared-secret"
import = "onprem"
export = "originated"

# A collector: nothing in (no import policy: RFC 8212), everything out, with a MED and
# a community on on-prem's routes.
[[neighbor]]
address = "127.0.31.4"
remote_asn = 65003
passive = true
export = "to-collector"

[[originate]]
prefix = "198.51.100.0/24"

[[policy]]
name = "feed-in"
default = "accept"
rule = [{{ community = "65001:666", action = "reject" }}]

[[policy]]
name = "onprem"
default = "reject"
rule = [{{ prefix = "172.16.0.0/12", le = 24, action = "accept" }}]

[[policy]]
name = "to-collector"
default = "accept"
rule = [{{ prefix = "172.16.0.0/12", le = 24, action = "accept", set_med = 77, add_community = ["65002:172"] }}]
"#,
        p3 = PORT + 3,
    )
}

#[test]
fn the_standalone_speaker_takes_filters_and_serves_routes_as_configured() {
    if !bird_or_skip("the_standalone_speaker_takes_filters_and_serves_routes_as_configured") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cic-bgp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let feed_routes = "route 10.1.0.0/16 blackhole; route 10.2.0.0/16 blackhole; \
         route 192.168.7.0/24 blackhole; \
         route 10.3.0.0/16 blackhole { bgp_community.add((65001, 666)); };";
    let feed = Bird::start("feed", &bird(2, 65001, "", feed_routes), None, None).expect("feed");
    let onprem = Bird::start(
        "onprem",
        &bird(
            3,
            4_200_000_002,
            "password \"a-long-shared-secret\";",
            "route 172.16.1.0/24 blackhole; route 10.9.0.0/16 blackhole;",
        ),
        None,
        None,
    )
    .expect("onprem");
    let collector =
        Bird::start("collector", &bird(4, 65003, "", ""), None, None).expect("collector");
    let speaker = run_speaker(&dir, &speaker_config(), None);
    let sock = speaker.socket.clone();

    // Four prefixes: the feed's three untagged and the one on-prem prefix the policy lets in.
    wait_until(WAIT, "3 sessions up and 4 prefixes in the Loc-RIB", || {
        let up = show(&sock, &["summary"]).matches("ESTABLISHED").count();
        // (The summary is published at most every 50 ms: wait for the feed's row too.)
        let fed = neighbor(&sock, "127.0.31.2")["received"] == 4;
        (up == 3 && count(&sock) == 4 && fed).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    let feed_row = neighbor(&sock, "127.0.31.2");
    assert_eq!(
        (&feed_row["received"], &feed_row["accepted"]),
        (&serde_json::json!(4), &serde_json::json!(3)),
        "10.3.0.0/16 tagged 65001:666 refused by policy feed-in: {feed_row}"
    );
    // The looking glass of one neighbor: what it sent, the refused one with why.
    let received: Vec<serde_json::Value> = serde_json::from_str(&show(
        &sock,
        &["neighbor", "127.0.31.2", "received", "--json"],
    ))
    .expect("JSON");
    let refused: Vec<(&str, &str)> = received
        .iter()
        .filter_map(|r| Some((r["prefix"].as_str()?, r["refused"].as_str()?)))
        .collect();
    assert_eq!(
        refused,
        [("10.3.0.0/16", "refused by policy feed-in, rule 1")],
        "{received:?}"
    );
    assert_eq!(received.len(), 4);
    let accepted = show(&sock, &["neighbor", "127.0.31.2", "accepted"]);
    assert!(
        accepted.contains("10.1.0.0/16") && !accepted.contains("10.3.0.0/16"),
        "{accepted}"
    );
    let table = show(&sock, &["neighbor", "127.0.31.2"]);
    assert!(
        table.contains("(refused: refused by policy feed-in, rule 1)"),
        "{table}"
    );
    let unknown = cic(&[
        "bgp",
        "show",
        "neighbor",
        "127.0.31.99",
        "--socket",
        sock.to_str().expect("path"),
    ]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no neighbor 127.0.31.99"),
        "{}",
        stderr(&unknown)
    );
    let onprem_row = neighbor(&sock, "127.0.31.3");
    assert_eq!(onprem_row["remoteAsn"], 4_200_000_002u64);
    assert_eq!(onprem_row["received"], 2);
    assert_eq!(
        onprem_row["accepted"], 1,
        "10.9.0.0/16 refused by policy onprem"
    );

    let r = routes(&sock);
    let prefixes: Vec<&str> = r.iter().filter_map(|x| x["prefix"].as_str()).collect();
    assert_eq!(
        prefixes,
        [
            "10.1.0.0/16",
            "10.2.0.0/16",
            "172.16.1.0/24",
            "192.168.7.0/24"
        ]
    );
    let first = &r[0];
    assert_eq!(first["nextHop"], "127.0.31.2");
    assert_eq!(first["peer"], "127.0.31.2");
    assert_eq!(first["asPath"], serde_json::json!([65001]));
    let on = &r[2];
    assert_eq!(on["asPath"], serde_json::json!([4_200_000_002u64]));
    assert_eq!(on["peer"], "127.0.31.3");
    let table = show(&sock, &["routes"]);
    assert!(
        table.contains("172.16.1.0/24") && table.contains("4200000002"),
        "{table}"
    );

    // Exports: on-prem hears only our own prefix; the collector everything, via us.
    wait_until(WAIT, "our prefix at on-prem", || {
        onprem.has_route("198.51.100.0/24").then_some(())
    })
    .expect("originated");
    assert!(!onprem.has_route("10.1.0.0/16"), "export originated only");
    wait_until(WAIT, "the collector's table", || {
        ["10.1.0.0/16", "172.16.1.0/24", "198.51.100.0/24"]
            .iter()
            .all(|p| collector.has_route(p))
            .then_some(())
    })
    .expect("export all");
    let via = collector.route("10.1.0.0/16");
    assert!(via.contains("BGP.as_path: 65002 65001"), "{via}");
    assert!(!via.contains("BGP.med"), "{via}");
    // The export rule's changes, on on-prem's route only.
    let tagged = collector.route("172.16.1.0/24");
    assert!(tagged.contains("BGP.med: 77"), "{tagged}");
    assert!(tagged.contains("(65002,172)"), "{tagged}");
    assert!(
        !collector.has_route("10.9.0.0/16"),
        "refused routes are not exported"
    );
    assert!(!feed.has_route("198.51.100.0/24"), "export none");

    // A withdrawal goes through to the Loc-RIB and to the collector.
    feed.reconfigure(&bird(
        2,
        65001,
        "",
        "route 10.1.0.0/16 blackhole; route 192.168.7.0/24 blackhole;",
    ))
    .expect("reconfigure");
    wait_until(WAIT, "the withdrawal", || {
        (count(&sock) == 3 && !collector.has_route("10.2.0.0/16")).then_some(())
    })
    .expect("withdrawn");

    // A second speaker on the same socket is refused; the first keeps running.
    let conf = dir.join("speaker.toml");
    let again = bgp_run(&conf, &sock);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("another speaker answers"),
        "{}",
        stderr(&again)
    );
    assert_eq!(count(&sock), 3);

    // SIGTERM: every neighbor is told why (Cease / Administrative Shutdown with an RFC 9003
    // communication), and the socket goes.
    let mut speaker = speaker;
    let pid = nix::unistd::Pid::from_raw(speaker.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = speaker.child.wait().expect("wait");
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "control socket removed");
    let told = wait_until(WAIT, "the collector sees the Cease", || {
        collector
            .last_error("speaker")
            .filter(|e| e.contains("Received"))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", collector.last_error("speaker")));
    assert!(told.contains("Administrative shutdown"), "{told}");
    let shown = collector.cmd("show protocols all speaker").expect("birdc");
    assert!(
        shown.contains("Message:") && shown.contains("cic bgp run is stopping"),
        "{shown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_is_refused_with_the_key_named_and_nothing_starts() {
    let dir = std::env::temp_dir().join(format!("cic-bgp-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = dir.join("bad.toml");
    let socket = dir.join("bad.sock");
    std::fs::write(
        &conf,
        "asn = 65002\nrouter_id = \"10.99.0.1\"\n[[neighbor]]\naddress = \"10.99.1.1\"\nremote_asn = 65001\nexport = \"everything\"\n",
    )
    .expect("write");
    let o = bgp_run(&conf, &socket);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("neighbor[0].export: no policy named \"everything\""),
        "{}",
        stderr(&o)
    );
    assert!(!socket.exists(), "nothing started");

    // An address this machine does not have: refused before anything runs.
    std::fs::write(
        &conf,
        "asn = 65002\nrouter_id = \"10.99.0.1\"\nlisten = [\"192.0.2.1:17399\"]\n",
    )
    .expect("write");
    let o = bgp_run(&conf, &socket);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("listen: bind 192.0.2.1:17399"),
        "{}",
        stderr(&o)
    );
    assert!(!socket.exists(), "the control socket is removed again");
    let o = cic(&[
        "bgp",
        "show",
        "summary",
        "--socket",
        socket.to_str().expect("path"),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no speaker answers on"),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A BIRD at 127.0.32.`host` that announces `routes` to a speaker at 127.0.32.1:17320.
fn bird32(host: u8, asn: u32, routes: &str) -> String {
    bird_in(32, host, asn, "", routes)
}

/// The speaker's config with these neighbors (host, ASN) and originated prefixes.
fn config32(asn: u32, neighbors: &[(u8, u32)], originate: &[&str], extra: &str) -> String {
    let mut c = format!(
        "asn = {asn}\nrouter_id = \"127.0.32.1\"\nlisten = [\"127.0.32.1:17320\"]\nconnect_retry = 1\n"
    );
    for (host, asn) in neighbors {
        c += &format!(
            "[[neighbor]]\naddress = \"127.0.32.{host}\"\nport = {}\nremote_asn = {asn}\n\
             local_address = \"127.0.32.1\"\nimport = \"accept-all\"\nexport = \"originated\"\n{extra}\n",
            17320 + *host as u16
        );
    }
    for p in originate {
        c += &format!("[[originate]]\nprefix = \"{p}\"\n");
    }
    c
}

/// BIRD's "since" of its session with the speaker: the same value means the same session.
/// Whether two of BIRD's "up HH:MM:SS.mmm" lines are the same session. BIRD shows the
/// time in wall-clock time computed from its monotonic clock, which may move by a
/// millisecond between two reads; a restart moves it by a SIGHUP's round trip at least.
fn same_session(a: &str, b: &str) -> bool {
    let ms = |s: &str| -> Option<i64> {
        let t = s.strip_prefix("up ")?;
        let (hms, frac) = t.split_once('.').unwrap_or((t, "0"));
        let p: Vec<i64> = hms
            .split(':')
            .map(|x| x.parse().ok())
            .collect::<Option<_>>()?;
        let [h, m, sec] = p[..] else { return None };
        Some((h * 3600 + m * 60 + sec) * 1000 + frac.parse::<i64>().ok()?)
    };
    matches!((ms(a), ms(b)), (Some(x), Some(y)) if (x - y).abs() <= 5)
}

fn since(b: &Bird) -> String {
    b.cmd("show protocols speaker")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("speaker"))
        .map(|l| {
            l.split_whitespace()
                .skip(3)
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

#[test]
fn sighup_applies_what_changed_and_a_config_that_does_not_load_changes_nothing() {
    if !bird_or_skip("sighup_applies_what_changed") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cic-bgp-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let a = Bird::start(
        "hup-a",
        &bird32(2, 65001, "route 10.21.0.0/16 blackhole;"),
        None,
        None,
    )
    .expect("BIRD a");
    let b = Bird::start(
        "hup-b",
        &bird32(3, 65003, "route 10.23.0.0/16 blackhole;"),
        None,
        None,
    )
    .expect("BIRD b");
    let conf = |text: String| std::fs::write(dir.join("speaker.toml"), text).expect("write");
    let speaker = run_speaker(
        &dir,
        &config32(65002, &[(2, 65001)], &["198.51.100.0/24"], ""),
        None,
    );
    let sock = speaker.socket.clone();
    let pid = nix::unistd::Pid::from_raw(speaker.child.id() as i32);
    let hup = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
    let log = || std::fs::read_to_string(dir.join("speaker.log")).unwrap_or_default();
    // Each SIGHUP ends in one line saying what was done or why not: count them.
    let answered = |n: usize| {
        wait_until(WAIT, "the reload's answer", || {
            let l = log();
            (l.matches("reloaded ").count() + l.matches("reload refused").count() >= n)
                .then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {}", log()))
    };
    wait_until(WAIT, "A's prefix, and ours at A", || {
        (count(&sock) == 1 && a.has_route("198.51.100.0/24")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    let a_since = since(&a);
    assert!(!a_since.is_empty(), "{:?}", a.cmd("show protocols speaker"));

    // B added, our prefix changed; A's session carries on.
    conf(config32(
        65002,
        &[(2, 65001), (3, 65003)],
        &["203.0.113.0/24"],
        "",
    ));
    hup();
    answered(1);
    assert!(
        log().contains("1 added, 0 removed, 0 restarted"),
        "{}",
        log()
    );
    wait_until(
        WAIT,
        "B's prefix, and our new prefix at A instead of the old",
        || {
            (count(&sock) == 2
                && a.has_route("203.0.113.0/24")
                && !a.has_route("198.51.100.0/24")
                && b.has_route("203.0.113.0/24"))
            .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    let now_since = since(&a);
    assert!(
        same_session(&now_since, &a_since),
        "A's session was not restarted: since {a_since}, now {now_since}"
    );

    // A config that does not load, and one that changes the ASN: refused, nothing changes.
    conf("asn = 65002\nrouter_id = \"127.0.32.1\"\n[[neighbor]]\naddress = \"x\"\n".into());
    hup();
    answered(2);
    conf(config32(65009, &[(3, 65003)], &[], ""));
    hup();
    answered(3);
    assert!(
        log().contains("asn changed: restart the speaker"),
        "{}",
        log()
    );
    assert_eq!(count(&sock), 2);
    let now_since = since(&a);
    assert!(same_session(&now_since, &a_since), "{a_since} {now_since}");

    // A removed: it is told (Cease / Peer De-configured) and its route goes.
    conf(config32(65002, &[(3, 65003)], &["203.0.113.0/24"], ""));
    hup();
    answered(4);
    let told = wait_until(WAIT, "A told it was removed", || {
        a.last_error("speaker").filter(|e| e.contains("Received"))
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", a.last_error("speaker")));
    assert!(told.to_lowercase().contains("de-configured"), "{told}");
    wait_until(WAIT, "A's route gone", || (count(&sock) == 1).then_some(()))
        .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["routes"])));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `cic bench bgp` end to end on a small feed, both ways of timing it, for all four
/// speakers: polled (cic's JSON request and BIRD's `show protocols all` on their control
/// sockets, FRR's vty socket, GoBGP's gRPC API, each poll one call on a kept connection),
/// and at the monitor peer each exports to, which must get every prefix of the feed from
/// each. (One test: every run uses the bench's fixed loopback addresses.)
#[test]
fn the_ingest_benchmark_is_polled_on_sockets_and_timed_at_the_monitor_peer() {
    let test = "the_ingest_benchmark_is_polled_on_sockets_and_timed_at_the_monitor_peer";
    if !bird_or_skip(test) {
        return;
    }
    // cic and BIRD always; FRR and GoBGP where installed (required in CI).
    let mut speakers = vec!["cic", "BIRD"];
    if cic_peers::peer_or_skip(test, cic_peers::frr_available(), "FRR", "frr") {
        speakers.push("FRR");
    }
    if cic_peers::peer_or_skip(test, cic_peers::gobgp_available(), "GoBGP", "gobgpd") {
        speakers.push("GoBGP");
    }
    let list = speakers.join(",").to_lowercase();
    for mode in ["ingest", "monitor"] {
        let o = cic(&[
            "bench",
            "bgp",
            "--mode",
            mode,
            "--prefixes",
            "3000",
            "--peers",
            "3",
            "--speakers",
            &list,
        ]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let runs: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON report");
        let runs = runs.as_array().expect("one entry per speaker");
        let names: Vec<&str> = runs.iter().filter_map(|r| r["speaker"].as_str()).collect();
        assert_eq!(names, speakers, "{mode}");
        for r in runs {
            assert_eq!(r["prefixes"], 3000, "{r}");
            assert_eq!(r["peers"], 3, "{r}");
            assert!(
                r["seconds"].as_f64().is_some_and(|s| s > 0.0),
                "{mode}: {r}"
            );
            assert!(r["peakRssMib"].as_f64().is_some_and(|m| m > 0.0), "{r}");
            // Only the monitor counts UPDATEs: from one per 16-prefix run of the feed
            // (packed as it came) to one per prefix (GoBGP's way).
            match mode {
                "monitor" => assert!(
                    r["updates"]
                        .as_u64()
                        .is_some_and(|u| (3000 / 16..=3000).contains(&u)),
                    "{r}"
                ),
                _ => assert!(r["updates"].is_null(), "{r}"),
            }
        }
    }
}

/// A BIRD at 127.0.33.`host` (AS 6510`host`), with GTSM or without.
fn bird33(host: u8, gtsm: bool, routes: &str) -> String {
    let ttl = if gtsm { "ttl security on;" } else { "" };
    bird_in(33, host, 65100 + host as u32, ttl, routes)
}

/// GTSM (RFC 5082) on both of the speaker's neighbors: BIRD with `ttl security on` (its
/// packets leave with TTL 255) comes up and exchanges routes; BIRD without (TTL 64) gets a
/// TCP connection, but its OPEN never arrives, so that session stays in OpenSent.
#[test]
fn gtsm_takes_a_peer_that_sends_with_ttl_255_and_drops_one_that_does_not() {
    if !bird_or_skip("gtsm_takes_a_peer_that_sends_with_ttl_255") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cic-bgp-gtsm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let near = Bird::start(
        "gtsm-a",
        &bird33(2, true, "route 10.33.2.0/24 blackhole;"),
        None,
        None,
    )
    .expect("BIRD with GTSM");
    let far = Bird::start(
        "gtsm-b",
        &bird33(3, false, "route 10.33.3.0/24 blackhole;"),
        None,
        None,
    )
    .expect("BIRD without GTSM");
    let mut conf = "asn = 65002\nrouter_id = \"127.0.33.1\"\nlisten = [\"127.0.33.1:17330\"]\nconnect_retry = 1\n".to_string();
    for host in [2u16, 3] {
        conf += &format!(
            "[[neighbor]]\naddress = \"127.0.33.{host}\"\nport = {}\nremote_asn = 6510{host}\n\
             local_address = \"127.0.33.1\"\nimport = \"accept-all\"\nexport = \"originated\"\nttl_security = true\n",
            17330 + host
        );
    }
    conf += "[[originate]]\nprefix = \"198.51.100.0/24\"\n";
    let speaker = run_speaker(&dir, &conf, None);
    let sock = speaker.socket.clone();
    wait_until(WAIT, "the GTSM peer's route, and ours at it", || {
        (neighbor(&sock, "127.0.33.2")["state"] == "ESTABLISHED"
            && routes(&sock).iter().any(|r| r["prefix"] == "10.33.2.0/24")
            && near.has_route("198.51.100.0/24"))
        .then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    // The other one connects (its SYN reaches the listener) and sends its OPEN, which the
    // kernel drops: we wait in OpenSent for an OPEN that never comes.
    wait_until(WAIT, "the TTL-64 peer's connection", || {
        (neighbor(&sock, "127.0.33.3")["state"] == "OPEN_SENT").then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    assert!(
        !routes(&sock).iter().any(|r| r["prefix"] == "10.33.3.0/24"),
        "{}",
        show(&sock, &["routes"])
    );
    assert!(!far.has_route("198.51.100.0/24"));
    assert_eq!(count(&sock), 1);
}

/// The speaker's config for the policy test: one BIRD (127.0.34.2), our import and
/// export as given.
fn config34(import: &str, export: &str) -> String {
    format!(
        "asn = 65002\nrouter_id = \"127.0.34.1\"\nlisten = [\"127.0.34.1:17340\"]\nconnect_retry = 1\n\
         [[neighbor]]\naddress = \"127.0.34.2\"\nport = 17342\nremote_asn = 65001\n\
         local_address = \"127.0.34.1\"\nimport = \"{import}\"\nexport = \"{export}\"\n\
         [[originate]]\nprefix = \"198.51.100.0/24\"\n\
         [[policy]]\nname = \"only-1\"\ndefault = \"reject\"\n\
         rule = [{{ prefix = \"10.34.1.0/24\", action = \"accept\" }}]\n"
    )
}

/// SIGHUP with a neighbor's policies changed and nothing else: its session stays up
/// (BIRD's "since" does not move); the new export applies at once; the new import
/// applies to the routes the neighbor sends again when asked (ROUTE-REFRESH; with RFC
/// 7313 between its BoRR and EoRR): a route refused before is taken, then refused again.
#[test]
fn a_policy_change_keeps_the_session_and_asks_for_the_routes_again() {
    if !bird_or_skip("a_policy_change_keeps_the_session") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cic-bgp-policy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bird = Bird::start(
        "policy-a",
        &bird_in(
            34,
            2,
            65001,
            "",
            "route 10.34.1.0/24 blackhole; route 10.34.2.0/24 blackhole;",
        ),
        None,
        None,
    )
    .expect("BIRD");
    let speaker = run_speaker(&dir, &config34("only-1", "originated"), None);
    let sock = speaker.socket.clone();
    let pid = nix::unistd::Pid::from_raw(speaker.child.id() as i32);
    let log = || std::fs::read_to_string(dir.join("speaker.log")).unwrap_or_default();
    let reload = |import: &str, export: &str, n: usize| {
        std::fs::write(dir.join("speaker.toml"), config34(import, export)).expect("write");
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).expect("SIGHUP");
        wait_until(WAIT, "the reload", || {
            (log().matches("1 with new policies").count() >= n).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}: {}", log()));
    };
    let prefixes = || {
        routes(&sock)
            .iter()
            .filter_map(|r| r["prefix"].as_str().map(str::to_string))
            .collect::<Vec<_>>()
    };
    wait_until(WAIT, "10.34.1.0/24 alone, and ours at BIRD", || {
        (prefixes() == ["10.34.1.0/24"] && bird.has_route("198.51.100.0/24")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    let up_since = since(&bird);
    assert!(!up_since.is_empty());

    // Import everything: 10.34.2.0/24, refused before, comes when BIRD sends it again.
    reload("accept-all", "originated", 1);
    wait_until(WAIT, "both of BIRD's prefixes", || {
        (prefixes() == ["10.34.1.0/24", "10.34.2.0/24"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["routes"]), log()));
    assert!(log().contains("ROUTE-REFRESH"), "{}", log());
    // Export nothing: our prefix leaves BIRD.
    reload("accept-all", "none", 2);
    wait_until(WAIT, "our prefix gone from BIRD", || {
        (!bird.has_route("198.51.100.0/24")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", log()));
    // And back to the narrow import: 10.34.2.0/24 is refused again.
    reload("only-1", "none", 3);
    wait_until(WAIT, "10.34.1.0/24 alone again", || {
        (prefixes() == ["10.34.1.0/24"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}\n{}", show(&sock, &["routes"]), log()));
    // The session was never restarted: established once in our log. (BIRD's "since"
    // is no witness at this scale: a re-feed after a ROUTE-REFRESH moves it by a
    // millisecond.)
    assert_eq!(neighbor(&sock, "127.0.34.2")["state"], "ESTABLISHED");
    assert_eq!(log().matches("session established").count(), 1, "{}", log());
    assert!(
        since(&bird).starts_with(&up_since[..up_since.len().min(11)]),
        "{}",
        since(&bird)
    );
}

/// A BIRD at 127.0.35.`host` (AS 6510`host`) with this RFC 9234 role toward us.
fn bird35(host: u8, role: &str, routes: &str) -> String {
    bird_in(
        35,
        host,
        65100 + host as u32,
        &format!("local role {role};"),
        routes,
    )
}

/// BGP roles (RFC 9234) with BIRD: our customer's route goes up to our provider, our
/// provider's goes down to our customer marked ONLY_TO_CUSTOMER with the provider's AS (65103)
/// (BIRD shows the attribute); a neighbor whose role does not match ours is refused with
/// OPEN Message Error / Role Mismatch.
#[test]
fn roles_with_bird_route_down_and_up_and_refuse_a_mismatch() {
    if !bird_or_skip("roles_with_bird") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cic-bgp-roles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cust = Bird::start(
        "roles-c",
        &bird35(2, "customer", "route 10.35.2.0/24 blackhole;"),
        None,
        None,
    )
    .expect("BIRD customer");
    let prov = Bird::start(
        "roles-p",
        &bird35(3, "provider", "route 10.35.3.0/24 blackhole;"),
        None,
        None,
    )
    .expect("BIRD provider");
    let odd = Bird::start(
        "roles-o",
        &bird35(4, "peer", "route 10.35.4.0/24 blackhole;"),
        None,
        None,
    )
    .expect("BIRD peer");
    let mut conf = "asn = 65002\nrouter_id = \"127.0.35.1\"\nlisten = [\"127.0.35.1:17350\"]\nconnect_retry = 1\n".to_string();
    for (host, role) in [(2u16, "provider"), (3, "customer"), (4, "provider")] {
        conf += &format!(
            "[[neighbor]]\naddress = \"127.0.35.{host}\"\nport = {}\nremote_asn = 6510{host}\n\
             local_address = \"127.0.35.1\"\nimport = \"accept-all\"\nexport = \"all\"\nrole = \"{role}\"\n",
            17350 + host
        );
    }
    let speaker = run_speaker(&dir, &conf, None);
    let sock = speaker.socket.clone();
    wait_until(
        WAIT,
        "the customer's route at the provider, and back",
        || (prov.has_route("10.35.2.0/24") && cust.has_route("10.35.3.0/24")).then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));
    let at_cust = cust.cmd("show route 10.35.3.0/24 all").unwrap_or_default();
    assert!(
        at_cust.contains("otc") && at_cust.contains("65103"),
        "ONLY_TO_CUSTOMER 65103 expected: {at_cust}"
    );
    let at_prov = prov.cmd("show route 10.35.2.0/24 all").unwrap_or_default();
    assert!(
        !at_prov.contains("otc"),
        "nothing marks a route going up: {at_prov}"
    );
    // Whichever side reads the other's OPEN first refuses it (with both connecting, BIRD
    // may be first; it then waits its error time before trying again, and our side saw
    // only the connection closed).
    wait_until(WAIT, "the mismatched role refused", || {
        let row = neighbor(&sock, "127.0.35.4");
        let ours = row["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("Role Mismatch"));
        let birds = odd
            .cmd("show protocols all speaker")
            .is_ok_and(|t| t.contains("Role mismatch"));
        (row["state"] != "ESTABLISHED" && (ours || birds)).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{:?}",
            show(&sock, &["summary", "--json"]),
            odd.cmd("show protocols all speaker")
        )
    });
    assert!(!routes(&sock).iter().any(|r| r["prefix"] == "10.35.4.0/24"));
}

/// A BGP peer played by the test itself: a TCP connection from `local` (AS 65001).
struct TestPeer(std::net::TcpStream);

impl TestPeer {
    /// Connects to the speaker and exchanges OPENs (ours with graceful restart when
    /// `restarting` is given, its R bit set when true) and KEEPALIVEs. `rcvbuf`: a receive
    /// buffer this small (set before the connection, so the window stays small).
    fn connect(local: &str, to: &str, restarting: Option<bool>, rcvbuf: Option<usize>) -> TestPeer {
        TestPeer::connect_as(65001, local, to, restarting, rcvbuf)
    }

    /// `connect`, as AS `asn`.
    fn connect_as(
        asn: u32,
        local: &str,
        to: &str,
        restarting: Option<bool>,
        rcvbuf: Option<usize>,
    ) -> TestPeer {
        use cic_bgp::wire::{Afi, Capability, GrFamily, GracefulRestart, Message, Open};
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        if let Some(n) = rcvbuf {
            s.set_recv_buffer_size(n).expect("SO_RCVBUF");
        }
        let from: std::net::SocketAddr = format!("{local}:0").parse().expect("addr");
        s.bind(&from.into()).expect("bind");
        let to: std::net::SocketAddr = to.parse().expect("addr");
        let deadline = std::time::Instant::now() + WAIT;
        while let Err(e) = s.connect_timeout(&to.into(), std::time::Duration::from_secs(1)) {
            assert!(std::time::Instant::now() < deadline, "connect: {e}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let mut p = TestPeer(s.into());
        p.0.set_read_timeout(Some(WAIT)).expect("timeout");
        let mut open = Open::for_families(asn, 90, local.parse().expect("id"), &[Afi::Ipv4]);
        if let Some(restarting) = restarting {
            open.capabilities
                .push(Capability::GracefulRestart(GracefulRestart {
                    restarting,
                    notification: false,
                    restart_time: 120,
                    families: vec![GrFamily {
                        afi: 1,
                        safi: 1,
                        forwarding: restarting,
                    }],
                }));
        }
        p.send(&Message::Open(open));
        assert!(
            matches!(p.recv(), Some(Message::Open(_))),
            "the speaker's OPEN"
        );
        p.send(&Message::Keepalive);
        assert!(matches!(p.recv(), Some(Message::Keepalive)));
        p
    }

    /// A peer of the restart test, from 127.0.36.2.
    fn connect36(restarting: bool) -> TestPeer {
        TestPeer::connect("127.0.36.2", "127.0.36.1:17360", Some(restarting), None)
    }

    /// A thread that sends a KEEPALIVE every second on a clone of this connection until
    /// `stop` (the only writer meanwhile: the test writes nothing else on it).
    fn keepalives(&self, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        use std::io::Write;
        let mut w = self.0.try_clone().expect("clone");
        std::thread::spawn(move || {
            let ka = cic_bgp::wire::Message::Keepalive.encode();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if w.write_all(&ka).is_err() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        });
    }

    fn send(&mut self, m: &cic_bgp::wire::Message) {
        use std::io::Write;
        self.0.write_all(&m.encode()).expect("write");
    }

    /// The next message; `None` at the end of the connection (or after WAIT).
    fn recv(&mut self) -> Option<cic_bgp::wire::Message> {
        use std::io::Read;
        let mut head = [0u8; 19];
        self.0.read_exact(&mut head).ok()?;
        let len = u16::from_be_bytes([head[16], head[17]]) as usize;
        let mut msg = head.to_vec();
        msg.resize(len, 0);
        self.0.read_exact(&mut msg[19..]).ok()?;
        // (Our OPEN offers extended messages, as the speaker's does.)
        let cx = cic_bgp::wire::DecodeContext {
            extended: true,
            ..Default::default()
        };
        cic_bgp::wire::decode_message(&msg, &cx)
            .ok()
            .flatten()
            .map(|(m, _)| m)
    }

    fn announce(&mut self, prefixes: &[&str]) {
        use cic_bgp::wire::{AsPathSegment, Message, PathAttrs, Update, encode_updates};
        let attrs = PathAttrs {
            as_path: vec![AsPathSegment::Sequence(vec![65001])],
            next_hop: Some("127.0.36.2".parse().expect("nh")),
            ..Default::default()
        };
        let nlri: Vec<ipnet::IpNet> = prefixes
            .iter()
            .map(|p| p.parse().expect("prefix"))
            .collect();
        for m in encode_updates(&[], Some(&attrs), &nlri) {
            use std::io::Write;
            self.0.write_all(&m).expect("write");
        }
        self.send(&Message::Update(Update::default())); // End-of-RIB
    }
}

/// RFC 4724 §4.2: a peer that restarts without its old connection closing (a crash, a
/// power cut: no FIN reaches us, and the 90 s hold timer is far off) connects again while
/// its session is Established. The speaker takes the new connection as the peer's restart:
/// the old one is closed, the routes stay (stale) until the peer's End-of-RIB, and those it
/// does not send again go then.
#[test]
fn a_new_connection_from_an_established_peer_is_its_restart() {
    let dir = std::env::temp_dir().join(format!("cic-bgp-restart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = "asn = 65002\nrouter_id = \"127.0.36.1\"\nlisten = [\"127.0.36.1:17360\"]\n\
                graceful_restart_secs = 120\n\
                [[neighbor]]\naddress = \"127.0.36.2\"\nremote_asn = 65001\npassive = true\nimport = \"accept-all\"\n";
    let speaker = run_speaker(&dir, conf, None);
    let sock = speaker.socket.clone();
    let mut old = TestPeer::connect36(false);
    old.announce(&["10.36.1.0/24", "10.36.2.0/24"]);
    wait_until(WAIT, "both routes", || (count(&sock) == 2).then_some(()))
        .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary"])));

    // The old connection stays open, silent; a new one comes, restarting.
    let mut new = TestPeer::connect36(true);
    // (What the old connection still carries, our End-of-RIB, then its end.)
    while let Some(m) = old.recv() {
        assert!(
            matches!(
                m,
                cic_bgp::wire::Message::Update(_) | cic_bgp::wire::Message::Keepalive
            ),
            "the old connection is closed, not told {m:?}"
        );
    }
    let row = neighbor(&sock, "127.0.36.2");
    assert_eq!(
        count(&sock),
        2,
        "the routes kept through the restart: {row}"
    );
    new.announce(&["10.36.1.0/24"]);
    wait_until(
        WAIT,
        "the route not sent again gone at the End-of-RIB",
        || {
            let row = neighbor(&sock, "127.0.36.2");
            (count(&sock) == 1 && row["stale"] == 0 && row["state"] == "ESTABLISHED").then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary", "--json"])));
    assert!(
        routes(&sock).iter().any(|r| r["prefix"] == "10.36.1.0/24"),
        "{:?}",
        routes(&sock)
    );
}

/// RFC 9687 and the sending side: a peer that stops reading (its keepalives still come,
/// so its hold timer never runs out) holds up no one — a peer that reads is sent the whole
/// table, each route once, while the stuck one is still Established — and is closed when
/// the send hold time passes with none of our data taken, its error saying so.
#[test]
fn a_peer_that_stops_reading_holds_up_no_one_and_is_closed_by_the_send_hold_timer() {
    use cic_bgp::wire::{AsPathSegment, Message, PathAttrs, encode_updates};
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    const N: usize = 30_000;
    let dir = std::env::temp_dir().join(format!("cic-bgp-sendhold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let conf = "asn = 65002\nrouter_id = \"127.0.37.1\"\nlisten = [\"127.0.37.1:17370\"]\n\
                hold_time = 3\nsend_hold_time = 8\n\
                [[neighbor]]\naddress = \"127.0.37.2\"\nremote_asn = 65001\npassive = true\n\
                import = \"accept-all\"\nexport = \"none\"\n\
                [[neighbor]]\naddress = \"127.0.37.3\"\nremote_asn = 65001\npassive = true\nexport = \"all\"\n\
                [[neighbor]]\naddress = \"127.0.37.4\"\nremote_asn = 65001\npassive = true\nexport = \"all\"\n";
    let speaker = run_speaker(&dir, conf, None);
    let sock = speaker.socket.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let speaker_at = "127.0.37.1:17370";

    // The stuck peer: a receive window of a few kilobytes it never reads from.
    let stuck = TestPeer::connect("127.0.37.3", speaker_at, None, Some(4096));
    stuck.keepalives(stop.clone());
    let mut reader = TestPeer::connect("127.0.37.4", speaker_at, None, None);
    reader.keepalives(stop.clone());

    // The feed: N prefixes, each with an attribute set of its own (61 communities, one of
    // them the prefix's number), about 300 octets an UPDATE: 9 MB to each reader, more
    // than the stuck peer's socket buffers hold.
    let mut feeder = TestPeer::connect("127.0.37.2", speaker_at, None, None);
    let mut bytes = Vec::with_capacity(N * 300);
    for i in 0..N {
        let mut communities: Vec<u32> = (0..60).map(|k| (65001 << 16) | k).collect();
        communities.push((65000 << 16) | i as u32);
        let attrs = PathAttrs {
            as_path: vec![AsPathSegment::Sequence(vec![65001])],
            next_hop: Some("127.0.37.2".parse().expect("nh")),
            communities,
            ..Default::default()
        };
        let prefix: ipnet::IpNet = format!("10.{}.{}.0/24", i / 256, i % 256)
            .parse()
            .expect("prefix");
        for m in encode_updates(&[], Some(&attrs), &[prefix]) {
            bytes.extend_from_slice(&m);
        }
    }
    {
        use std::io::Write;
        feeder.0.write_all(&bytes).expect("feed");
    }
    feeder.send(&Message::Update(Default::default())); // End-of-RIB
    feeder.keepalives(stop.clone());

    // The reader takes everything, a little at a time, while the stuck peer takes nothing.
    let mut seen = std::collections::HashSet::new();
    let mut announced = 0usize;
    while seen.len() < N {
        match reader.recv() {
            Some(Message::Update(u)) => {
                announced += u.nlri.len();
                seen.extend(u.nlri);
            }
            Some(Message::Keepalive) => {}
            other => panic!(
                "the reader got {other:?} after {} of {N} prefixes: {}",
                seen.len(),
                show(&sock, &["summary", "--json"])
            ),
        }
        if announced.is_multiple_of(2048) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    assert_eq!(announced, N, "each prefix sent once");
    let stuck_row = neighbor(&sock, "127.0.37.3");
    assert_eq!(
        stuck_row["state"], "ESTABLISHED",
        "the reader was served while the stuck peer was still up: {stuck_row}"
    );
    wait_until(WAIT, "the reader's advertised count", || {
        (neighbor(&sock, "127.0.37.4")["advertised"] == N).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary", "--json"])));

    // The stuck peer goes when the send hold time has passed; meanwhile the reader's
    // session keeps its timers (our KEEPALIVEs come each second) and the speaker's memory
    // does not grow with the wait.
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", speaker.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let rss_served = rss();
    let (mut keepalives, deadline) = (0, std::time::Instant::now() + WAIT);
    let row = loop {
        let row = neighbor(&sock, "127.0.37.3");
        if row["state"] != "ESTABLISHED" && !row["lastError"].is_null() {
            break row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stuck peer not closed: {}",
            show(&sock, &["summary", "--json"])
        );
        match reader.recv() {
            Some(Message::Keepalive) => keepalives += 1,
            other => panic!("the reader got {other:?} while the stuck peer was up"),
        }
    };
    assert!(
        keepalives >= 3,
        "the reader was sent {keepalives} KEEPALIVEs in the send hold time"
    );
    let rss_closed = rss();
    assert!(
        rss_closed < rss_served + 8 * 1024,
        "RSS {rss_served} kB when the reader had the table, {rss_closed} kB at the close"
    );
    let why = row["lastError"].as_str().unwrap_or_default();
    assert!(why.contains("Send Hold Timer Expired"), "{row}");
    assert!(
        (row["advertised"].as_u64().unwrap_or(u64::MAX) as usize) < N,
        "the stuck peer cannot have taken the table: {row}"
    );
    for peer in ["127.0.37.2", "127.0.37.4"] {
        let row = neighbor(&sock, peer);
        assert_eq!(row["state"], "ESTABLISHED", "{row}");
    }
    assert_eq!(count(&sock), N as u64);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// RFC 8654 §4: a route whose UPDATE would be longer than the peer takes is not sent to
/// it (the session stays up), counted and shown with why; a peer that takes long messages
/// is sent the same route. BIRD, without extended messages, takes 4096 octets; the test's
/// own peers offer them: one sends a route with 1100 communities (an UPDATE of 4.5 kB),
/// the other (AS 65004) is sent it. And a route whose NEXT_HOP is our own address is
/// ignored (RFC 4271 §6.3), the session kept.
#[test]
fn too_large_routes_are_not_sent_and_our_own_next_hop_not_taken_each_shown_why() {
    use cic_bgp::wire::{AsPathSegment, Message, PathAttrs, encode_updates_within};
    if !bird_or_skip("too_large_routes_are_not_sent_and_our_own_next_hop_not_taken_each_shown_why")
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("cic-bgp-toolarge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bird = Bird::start("small", &bird_in(38, 2, 65003, "", ""), None, None).expect("bird");
    let conf = "asn = 65002\nrouter_id = \"127.0.38.1\"\nlisten = [\"127.0.38.1:17380\"]\n\
                [[neighbor]]\naddress = \"127.0.38.2\"\nremote_asn = 65003\npassive = true\nexport = \"all\"\n\
                [[neighbor]]\naddress = \"127.0.38.3\"\nremote_asn = 65001\npassive = true\n\
                import = \"accept-all\"\nexport = \"all\"\n\
                [[neighbor]]\naddress = \"127.0.38.4\"\nremote_asn = 65004\npassive = true\nexport = \"all\"\n";
    let speaker = run_speaker(&dir, conf, None);
    let sock = speaker.socket.clone();
    let mut peer = TestPeer::connect("127.0.38.3", "127.0.38.1:17380", None, None);
    let mut long = TestPeer::connect_as(65004, "127.0.38.4", "127.0.38.1:17380", None, None);
    let announce_via = |peer: &mut TestPeer, prefix: &str, communities: u32, nh: &str| {
        use std::io::Write;
        let attrs = PathAttrs {
            as_path: vec![AsPathSegment::Sequence(vec![65001])],
            next_hop: Some(nh.parse().expect("nh")),
            communities: (0..communities).map(|k| (65001 << 16) | k).collect(),
            ..Default::default()
        };
        let prefix: ipnet::IpNet = prefix.parse().expect("prefix");
        for m in encode_updates_within(&[], Some(&attrs), &[prefix], 65535) {
            peer.0.write_all(&m).expect("write");
        }
    };
    let announce = |peer: &mut TestPeer, prefix: &str, communities: u32| {
        announce_via(peer, prefix, communities, "127.0.38.3")
    };
    announce(&mut peer, "10.38.1.0/24", 3);
    announce(&mut peer, "10.38.2.0/24", 1100);
    peer.send(&Message::Update(Default::default()));

    let bird_routes = || bird.cmd("show route protocol speaker").unwrap_or_default();
    wait_until(
        WAIT,
        "BIRD has the small route over an Established session, the large one counted",
        || {
            // (BIRD and the speaker both connect: at the start a second connection may
            // replace the first, so the state is waited for, not read once.)
            let row = neighbor(&sock, "127.0.38.2");
            (bird_routes().contains("10.38.1.0/24")
                && row["tooLarge"] == 1
                && row["state"] == "ESTABLISHED"
                && row["advertised"] == 1)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            show(&sock, &["summary", "--json"]),
            bird_routes()
        )
    });
    assert!(!bird_routes().contains("10.38.2.0/24"), "{}", bird_routes());
    let row = neighbor(&sock, "127.0.38.2");
    assert_eq!(row["state"], "ESTABLISHED", "{row}");
    assert!(row["lastError"].is_null(), "{row}");
    assert_eq!(row["advertised"], 1, "{row}");
    let proto = bird.cmd("show protocols speaker").unwrap_or_default();
    assert!(proto.contains("Established"), "{proto}");

    // Why, where the user looks.
    let adv: Vec<serde_json::Value> = serde_json::from_str(&show(
        &sock,
        &["neighbor", "127.0.38.2", "advertised", "--json"],
    ))
    .expect("json");
    let big = adv
        .iter()
        .find(|r| r["prefix"] == "10.38.2.0/24")
        .unwrap_or_else(|| panic!("the large route listed: {adv:?}"));
    let why = big["refused"].as_str().unwrap_or_default();
    assert!(why.contains("more than the 4096"), "{big}");
    let table = show(&sock, &["summary"]);
    assert!(table.contains("1 route(s) not sent"), "{table}");

    // The peer that takes long messages is sent it, whole.
    let mut got = std::collections::HashMap::new();
    while got.len() < 2 {
        match long.recv() {
            Some(Message::Update(u)) => {
                let n = u.attrs.as_ref().map_or(0, |a| a.communities.len());
                got.extend(u.nlri.into_iter().map(|p| (p.to_string(), n)));
            }
            Some(Message::Keepalive) => {}
            other => panic!("AS 65004 got {other:?} after {got:?}"),
        }
    }
    assert_eq!(got.get("10.38.2.0/24"), Some(&1100), "{got:?}");
    assert_eq!(neighbor(&sock, "127.0.38.4")["tooLarge"], 0);

    // RFC 4271 §6.3: a NEXT_HOP that is our own address is ignored, without a NOTIFICATION.
    announce_via(&mut peer, "10.38.3.0/24", 0, "127.0.38.1");
    let received = || -> Vec<serde_json::Value> {
        serde_json::from_str(&show(
            &sock,
            &["neighbor", "127.0.38.3", "received", "--json"],
        ))
        .expect("json")
    };
    let ignored = wait_until(
        WAIT,
        "the route with our next hop in the looking glass",
        || {
            received()
                .into_iter()
                .find(|r| r["prefix"] == "10.38.3.0/24")
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}", received()));
    let why = ignored["refused"].as_str().unwrap_or_default();
    assert!(why.contains("our own address"), "{ignored}");
    assert_eq!(count(&sock), 2, "{:?}", routes(&sock));
    let row = neighbor(&sock, "127.0.38.3");
    assert_eq!(row["state"], "ESTABLISHED", "{row}");
    assert!(row["lastError"].is_null(), "{row}");

    // Withdrawn, the route leaves the count.
    {
        use std::io::Write;
        for m in encode_updates_within(&["10.38.2.0/24".parse().expect("p")], None, &[], 65535) {
            peer.0.write_all(&m).expect("write");
        }
    }
    wait_until(WAIT, "the count back to 0", || {
        (neighbor(&sock, "127.0.38.2")["tooLarge"] == 0).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {}", show(&sock, &["summary", "--json"])));
}
