//! The generated router configurations load in the software they are for: every golden
//! file of `cic_model::router_config` (single and dual stack, standby by prepend and by
//! community) through BIRD's parser (`bird -p`) and FRR's (`vtysh -C`). The lab runs the
//! generated BIRD config for real (tests/lab.rs).

use std::path::PathBuf;
use std::process::Command;

use cic_peers::{bird_or_skip, frr_available, peer_or_skip};

fn golden(ext: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../model/tests/golden/router_config");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    assert!(v.len() >= 3, "golden files of {ext} in {}", dir.display());
    v
}

/// A directory of this test run's own.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cic-router-config-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn generated_bird_configs_parse_in_bird_and_a_broken_one_does_not() {
    if !bird_or_skip("router configs: bird -p") {
        return;
    }
    let dir = scratch("bird");
    let check = |text: &str| {
        let f = dir.join("bird.conf");
        // The customer's own part: a router id (BIRD needs one to parse a BGP protocol).
        std::fs::write(&f, format!("router id 192.0.2.1;\n{text}")).expect("write");
        let o = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&f)
            .output()
            .expect("bird");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    for g in golden(".bird.conf") {
        let text = std::fs::read_to_string(&g).expect("read");
        let (ok, err) = check(&text);
        assert!(ok, "{}: {err}", g.display());
        // The check can fail: an undefined set in a filter does not parse.
        let (ok, _) = check(&text.replace("CIC_VPC4 then", "CIC_NOPE then"));
        assert!(!ok, "{}: a broken config parsed", g.display());
    }
}

#[test]
fn generated_frr_configs_pass_vtysh_dry_run_and_a_broken_one_does_not() {
    if !peer_or_skip("router configs: vtysh -C", frr_available(), "FRR", "frr") {
        return;
    }
    let dir = scratch("frr");
    let check = |text: &str| {
        let f = dir.join("frr.conf");
        std::fs::write(&f, text).expect("write");
        let o = Command::new("vtysh")
            .arg("-C")
            .arg("-f")
            .arg(&f)
            .output()
            .expect("vtysh");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    for g in golden(".frr.conf") {
        let text = std::fs::read_to_string(&g).expect("read");
        let (ok, out) = check(&text);
        assert!(ok, "{}: {out}", g.display());
        // The check can fail: a neighbor line with a word too many does not parse.
        let (ok, _) = check(&text.replacen(" remote-as ", " remote-as bogus ", 1));
        assert!(!ok, "{}: a broken config passed", g.display());
    }
}
