//! Where the time of a full-table ingest goes, without sockets or threads: the feed of
//! `cic bench bgp` (a million /24s, 16 per UPDATE, 1,000 AS paths) encoded, then decoded,
//! then handed to an [`Instance`] as the driver does.
//!
//! `cargo run --release -p cic-bgp --example ingest [PREFIXES] [shuffled]`: with
//! `shuffled` the UPDATEs come in a random order (the Loc-RIB's worst case is not the
//! order of a table's dump).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_bgp::fsm::Negotiated;
use cic_bgp::instance::{Event, Instance, InstanceParams, MaxPrefixAction, PeerSpec};
use cic_bgp::policy::{Export, Filter, NeighborPolicy, Role};
use cic_bgp::wire::{
    AsPathSegment, DecodeContext, Message, Origin, PathAttrs, decode_message, encode_updates,
};
use ipnet::{IpNet, Ipv4Net};

fn main() {
    let prefixes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let shuffled = std::env::args().nth(2).is_some_and(|a| a == "shuffled");
    let per_update = 16;
    let mut runs: Vec<usize> = (0..prefixes.div_ceil(per_update)).collect();
    if shuffled {
        // Fisher–Yates with xorshift: the same order every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in (1..runs.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            runs.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }
    let mut wire = Vec::new();
    for run in runs {
        let chunk: Vec<usize> =
            (run * per_update..((run + 1) * per_update).min(prefixes)).collect();
        let g = run as u32;
        let attrs = PathAttrs {
            origin: Origin::Igp,
            as_path: vec![AsPathSegment::Sequence(vec![
                65001,
                10_000 + g % 1000,
                20_000 + g % 7,
            ])],
            next_hop: Some(Ipv4Addr::new(10, 42, 0, 1)),
            ..Default::default()
        };
        let nlri: Vec<IpNet> = chunk
            .iter()
            .map(|i| {
                let a = Ipv4Addr::from(0x0100_0000u32 + ((*i as u32) << 8));
                Ipv4Net::new(a, 24).expect("a /24").into()
            })
            .collect();
        for m in encode_updates(&[], Some(&attrs), &nlri) {
            wire.extend_from_slice(&m);
        }
    }
    let cx = DecodeContext {
        ibgp: false,
        extended: false,
    };
    let t = Instant::now();
    let mut updates = Vec::new();
    let mut at = 0;
    while let Ok(Some((m, n))) = decode_message(&wire[at..], &cx) {
        at += n;
        if let Message::Update(u) = m {
            updates.push(u);
        }
    }
    let decode = t.elapsed();
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
    let peer = i.add_peer(PeerSpec {
        name: "feed".into(),
        role: Role::Neighbor,
        address: Ipv4Addr::new(10, 42, 0, 1).into(),
        local_address: Ipv4Addr::UNSPECIFIED.into(),
        local_address6: None,
        asn: 65001,
        policy: Some(Arc::new(NeighborPolicy {
            import: Some(Filter::accept_all()),
            export: Export::Nothing,
            max_prefixes: None,
            prepend: 0,
        })),
    });
    i.handle(Event::PeerUp {
        peer,
        negotiated: Negotiated {
            peer_asn: 65001,
            peer_id: Ipv4Addr::new(10, 42, 0, 1),
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
        },
    });
    let n = updates.len();
    let t = Instant::now();
    for update in updates {
        i.handle(Event::Update { peer, update });
    }
    let ingest = t.elapsed();
    println!(
        "{prefixes} prefixes in {n} UPDATEs ({} bytes): decode {:.3} s, instance {:.3} s, Loc-RIB {}",
        wire.len(),
        decode.as_secs_f64(),
        ingest.as_secs_f64(),
        i.rib_len()
    );
}
