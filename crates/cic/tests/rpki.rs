//! Route origin validation against a real RPKI cache: Routinator (from crates.io) serving
//! the local assertions of a SLURM file (RFC 8416) over RTR, `cic bgp run` taking its
//! data, BIRD feeding the routes — and a second BIRD fed by the same cache, whose verdicts
//! ours must equal. Skipped without Routinator or BIRD unless CIC_REQUIRE_PEERS=1 (CI).

mod common;

use std::path::Path;
use std::time::Instant;

use cic_peers::{Bird, Routinator, bird_or_skip, routinator_or_skip, wait_until};
use common::{WAIT, neighbor, run_speaker, show};
use serde_json::Value;

const US: &str = "127.0.41.1";
const PORT: u16 = 17410;
const RTR_PORT: u16 = 17499;

/// Each received route of the feed: its prefix, RPKI state and why it was refused.
fn states(sock: &Path) -> Vec<(String, String, String)> {
    let v: Vec<Value> = serde_json::from_str(&show(
        sock,
        &["neighbor", "127.0.41.2", "received", "--json"],
    ))
    .unwrap_or_default();
    let mut out: Vec<(String, String, String)> = v
        .iter()
        .map(|r| {
            (
                r["prefix"].as_str().unwrap_or("").to_string(),
                r["rpki"].as_str().unwrap_or("").to_string(),
                r["refused"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The feed's summary row once it counts `accepted` (the summary is published at most
/// every 50 ms, after the looking glass already answers).
fn accepted(sock: &Path, n: u64) -> Value {
    wait_until(WAIT, &format!("the summary to count {n} accepted"), || {
        let row = neighbor(sock, "127.0.41.2");
        (row["accepted"] == n).then_some(row)
    })
    .unwrap_or_else(|e| panic!("{e}: {}", neighbor(sock, "127.0.41.2")))
}

/// BIRD's verdict on `prefix` from `asn`, by its ROA table filled by the same cache.
fn bird_verdict(b: &Bird, prefix: &str, asn: u32) -> String {
    let out = b
        .cmd(&format!("eval roa_check(r4, {prefix}, {asn})"))
        .unwrap_or_default();
    // "(enum 36)1": ROA_UNKNOWN 0, ROA_VALID 1, ROA_INVALID 2.
    match out.trim().chars().last() {
        Some('0') => "not-found",
        Some('1') => "valid",
        Some('2') => "invalid",
        _ => "?",
    }
    .to_string()
}

const FEED: [&str; 3] = ["10.41.1.0/24", "10.41.2.0/24", "10.41.3.0/24"];

#[test]
fn origins_are_validated_by_a_real_cache_and_judged_again_when_its_data_changes() {
    let test = "origins_are_validated_by_a_real_cache";
    if !bird_or_skip(test) {
        return;
    }
    let Some(bin) = routinator_or_skip(test) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("cic-rpki-{}", std::process::id()));
    // 10.41.1.0/24 belongs to AS 65009 (the feed's AS 65001 announcing it is invalid),
    // 10.41.2.0/24 to AS 65001 (valid); nothing covers 10.41.3.0/24 (not found).
    let cache = Routinator::start(
        &bin,
        &dir,
        RTR_PORT,
        &[(65009, "10.41.1.0/24", 24), (65001, "10.41.2.0/24", 24)],
    )
    .expect("routinator");

    let feed = Bird::start(
        "rpki-feed",
        &format!(
            r#"
router id 127.0.41.2;
protocol device {{}}
protocol static feed {{ ipv4; {routes} }}
protocol bgp speaker {{
  local 127.0.41.2 port {bird_port} as 65001;
  neighbor {US} port {PORT} as 65002;
  multihop;
  connect retry time 1;
  ipv4 {{ import none; export where proto = "feed"; }};
}}
"#,
            routes = FEED
                .iter()
                .map(|p| format!("route {p} blackhole;"))
                .collect::<String>(),
            bird_port = PORT + 2,
        ),
        None,
        None,
    )
    .expect("feed");
    // BIRD as a second relying party of the same cache.
    let rp = Bird::start(
        "rpki-rp",
        &format!(
            r#"
router id 127.0.41.3;
roa4 table r4;
protocol rpki cache {{
  roa4 {{ table r4; }};
  remote 127.0.0.1 port {RTR_PORT};
  retry keep 1; refresh keep 1;
}}
"#
        ),
        None,
        None,
    )
    .expect("BIRD RPKI");
    let speaker = run_speaker(
        &dir,
        &format!(
            r#"
asn = 65002
router_id = "{US}"
listen = ["{US}:{PORT}"]
connect_retry = 1

[[rpki_cache]]
address = "127.0.0.1:{RTR_PORT}"

[[neighbor]]
address = "127.0.41.2"
remote_asn = 65001
passive = true
import = "rov"

[[policy]]
name = "rov"
default = "accept"
rule = [{{ rpki = "invalid", action = "reject" }}]
"#
        ),
        None,
    );
    let sock = speaker.socket.clone();
    let expect = |one: &str| {
        vec![
            (
                FEED[0].to_string(),
                one.to_string(),
                if one == "invalid" {
                    "RPKI invalid: refused by policy rov, rule 1".to_string()
                } else {
                    String::new()
                },
            ),
            (FEED[1].to_string(), "valid".into(), String::new()),
            (FEED[2].to_string(), "not-found".into(), String::new()),
        ]
    };
    wait_until(WAIT, "the feed's routes judged by the cache's data", || {
        (states(&sock) == expect("invalid")).then_some(())
    })
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:?}\n{}\n{}",
            states(&sock),
            show(&sock, &["summary"]),
            cache.log()
        )
    });
    accepted(&sock, 2);
    let verdicts =
        |b: &Bird| -> Vec<String> { FEED.iter().map(|p| bird_verdict(b, p, 65001)).collect() };
    wait_until(WAIT, "BIRD to reach the same verdicts", || {
        (verdicts(&rp) == ["invalid", "valid", "not-found"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", verdicts(&rp)));

    // A ROA for the feed's AS added at the cache: the route becomes valid and is taken,
    // the session untouched.
    let t = Instant::now();
    cache
        .set(&[
            (65009, "10.41.1.0/24", 24),
            (65001, "10.41.1.0/24", 24),
            (65001, "10.41.2.0/24", 24),
        ])
        .expect("slurm");
    wait_until(WAIT, "10.41.1.0/24 valid after the ROA came", || {
        (states(&sock) == expect("valid")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", states(&sock)));
    eprintln!(
        "ROA added: our verdict changed {} ms after the file (the cache validates every second)",
        t.elapsed().as_millis()
    );
    accepted(&sock, 3);
    wait_until(WAIT, "BIRD to agree", || {
        (verdicts(&rp) == ["valid", "valid", "not-found"]).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", verdicts(&rp)));
    // And removed again: invalid, refused.
    cache
        .set(&[(65009, "10.41.1.0/24", 24), (65001, "10.41.2.0/24", 24)])
        .expect("slurm");
    wait_until(WAIT, "10.41.1.0/24 invalid again", || {
        (states(&sock) == expect("invalid")).then_some(())
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", states(&sock)));
    let row = accepted(&sock, 2);
    assert_eq!(row["state"], "ESTABLISHED", "{row}");
    drop(feed);
}
