//! Where the time of sending a full table to a new peer goes, without sockets or threads:
//! a million /24s over 100,000 attribute sets scattered over the table (as the
//! `--sets` feed of `cic bench bgp`) loaded into an [`Instance`], then a neighbor that
//! takes everything comes up; the walk of the table (in the driver's steps), the
//! outbox's drain in chunks of the driver's size, and their encoding are timed apart.
//!
//! `cargo run --release -p cic-bgp --example export [PREFIXES] [SETS]`

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_bgp::fsm::Negotiated;
use cic_bgp::instance::{Event, FEED_STEP, Instance, InstanceParams, MaxPrefixAction, PeerSpec};
use cic_bgp::policy::{Export, Filter, NeighborPolicy, Role};
use cic_bgp::wire::{AsPathSegment, Origin, PathAttrs, Update, encode_updates_within};
use ipnet::{IpNet, Ipv4Net};

fn negotiated(asn: u32, id: Ipv4Addr) -> Negotiated {
    Negotiated {
        peer_asn: asn,
        peer_id: id,
        hold_time: 90,
        keepalive: 30,
        route_refresh: true,
        enhanced_route_refresh: false,
        extended_message: false,
        ibgp: false,
        graceful_restart: None,
        ipv4: true,
        ipv6: false,
        local_role: None,
    }
}

fn neighbor(addr: Ipv4Addr, asn: u32, import: Option<Filter>, export: Export) -> PeerSpec {
    PeerSpec {
        name: addr.to_string(),
        role: Role::Neighbor,
        address: addr.into(),
        local_address: Ipv4Addr::new(10, 42, 0, 100).into(),
        local_address6: None,
        asn,
        policy: Some(Arc::new(NeighborPolicy {
            import,
            export,
            max_prefixes: None,
            prepend: 0,
        })),
    }
}

/// The attribute set of prefix `i` among `sets` (the bench feed's: SplitMix64's finalizer).
fn set_of(i: usize, sets: usize) -> usize {
    let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % sets as u64) as usize
}

fn main() {
    let prefixes: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let sets: u32 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut i = Instance::new(InstanceParams {
        local_asn: 65000,
        vpc_prefixes: vec![],
        max_prefixes: 0,
        max_prefix_action: MaxPrefixAction::Teardown,
        max_prefix_idle: Duration::from_secs(1800),
        max_prefix_warning: 0,
        announce: vec![],
        accept_only: None,
        restarting: false,
        kernel: false,
        rpki_reject_invalid: false,
    });
    let feed = i.add_peer(neighbor(
        Ipv4Addr::new(10, 42, 0, 1),
        65001,
        Some(Filter::accept_all()),
        Export::Nothing,
    ));
    i.handle(Event::PeerUp {
        peer: feed,
        negotiated: negotiated(65001, Ipv4Addr::new(10, 42, 0, 1)),
    });
    let mut by_set: std::collections::BTreeMap<u32, Vec<IpNet>> = Default::default();
    for k in 0..prefixes {
        let n = Ipv4Net::new(Ipv4Addr::from(0x0100_0000 + (k << 8)), 24).expect("/24");
        by_set
            .entry(set_of(k as usize, sets as usize) as u32)
            .or_default()
            .push(n.into());
    }
    let t = Instant::now();
    for (s, nlri) in by_set {
        let attrs = PathAttrs {
            origin: Origin::Igp,
            as_path: vec![AsPathSegment::Sequence(vec![
                65001,
                100_000 + s,
                3_000 + s % 20_000,
            ])],
            next_hop: Some(Ipv4Addr::new(10, 42, 0, 1)),
            med: (s % 3 == 0).then_some(s % 1000),
            communities: if s % 2 == 0 {
                vec![(65001 << 16) | (s % 65_000)]
            } else {
                vec![]
            },
            ..Default::default()
        };
        i.handle(Event::Update {
            peer: feed,
            update: Update {
                attrs: Some(attrs),
                nlri,
                ..Default::default()
            },
        });
    }
    let load = t.elapsed();
    let rx = i.add_peer(neighbor(
        Ipv4Addr::new(10, 43, 0, 1),
        65100,
        None,
        Export::All,
    ));
    let t = Instant::now();
    i.handle(Event::PeerUp {
        peer: rx,
        negotiated: negotiated(65100, Ipv4Addr::new(10, 43, 0, 1)),
    });
    let mut steps = 0;
    while i.feeding() {
        i.step_feeds(FEED_STEP);
        steps += 1;
    }
    let walk = t.elapsed();
    let t = Instant::now();
    let mut batches = Vec::new();
    while let Some(b) = i.take(rx, 64 * 1024) {
        batches.push(b);
    }
    let drain = t.elapsed();
    let t = Instant::now();
    let (mut msgs, mut octets, mut sent) = (0, 0, 0);
    for b in &batches {
        for (a, nlri) in &b.announce {
            sent += nlri.len();
            for m in encode_updates_within(&[], Some(a), nlri, 4096) {
                msgs += 1;
                octets += m.len();
            }
        }
    }
    let encode = t.elapsed();
    println!(
        "{prefixes} prefixes over {sets} sets (loaded in {:.3} s): walk {:.3} s in {steps} steps, drain {:.3} s in {} batches, encode {:.3} s: {sent} routes in {msgs} UPDATEs, {:.1} MiB",
        load.as_secs_f64(),
        walk.as_secs_f64(),
        drain.as_secs_f64(),
        batches.len(),
        encode.as_secs_f64(),
        octets as f64 / 1048576.0
    );
}
