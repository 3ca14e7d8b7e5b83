//! Record and replay, in holo's manner: a scenario (`crates/bgp/tests/replay/*.json`) is a
//! sequence of the instance's inputs — sessions up and down, UPDATEs, End-of-RIBs, timers,
//! refreshes — and, after each, what the instance did: the kernel routes it changed, the
//! timers, teardowns and refreshes it asked for, and what each peer was sent, as the peer
//! would read it. The test replays the inputs on a new instance and compares the whole
//! record, so any change in what is decided or sent shows as a diff of the file.
//!
//! `CIC_REPLAY_RECORD=1 cargo test -p cic-bgp replay` writes what the code does now into
//! the scenarios' `out` (a new scenario needs only its `in`s); review the diff before
//! committing it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::*;
use crate::fsm::Negotiated;
use crate::policy::{Export, Filter, NeighborPolicy, Role};
use crate::wire::{AsPathSegment, GrFamily, GracefulRestart, Origin, PathAttrs, Update};

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    /// What the scenario shows, for the reader.
    about: String,
    instance: Setup,
    peers: Vec<PeerDef>,
    steps: Vec<Step>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Setup {
    asn: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    vpc_prefixes: Vec<IpNet>,
    /// Sent to every customer (the edge) or originated (the standalone speaker).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    announce: Vec<IpNet>,
    /// We restarted with the kernel's routes kept (RFC 4724 restarting speaker).
    #[serde(default)]
    restarting: bool,
    /// A customer's limit (the edge's default: 500); a neighbor has none here.
    #[serde(default = "default_max_prefixes")]
    max_prefixes: u32,
}

fn default_max_prefixes() -> u32 {
    500
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerDef {
    name: String,
    /// "customer" | "fabric" | "neighbor".
    role: String,
    address: Ipv4Addr,
    local_address: Ipv4Addr,
    asn: u32,
    /// A neighbor's: "accept-all" or absent (nothing taken, RFC 8212).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    import: Option<String>,
    /// A neighbor's: "none" | "originated" | "all".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    export: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(rename = "in")]
    input: Input,
    /// What the instance did, in order: kernel and other actions, then what each peer
    /// was sent (peers in the order declared).
    #[serde(default)]
    out: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Input {
    Up {
        peer: String,
        router_id: Ipv4Addr,
        /// The peer's graceful-restart capability: its restart time (forwarding kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        graceful_restart: Option<u16>,
        /// Its R bit: it is the one restarting.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        restarting: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        enhanced_route_refresh: bool,
    },
    Down {
        peer: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        graceful: bool,
    },
    Update {
        peer: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        withdraw: Vec<IpNet>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        announce: Vec<IpNet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attrs: Option<Attrs>,
    },
    EndOfRib {
        peer: String,
    },
    /// The stale timer the instance last asked for this peer runs out.
    StaleTimer {
        peer: String,
    },
    /// A ROUTE-REFRESH from the peer (subtype 0: a request; 1 BoRR, 2 EoRR).
    RouteRefresh {
        peer: String,
        #[serde(default)]
        subtype: u8,
    },
    /// Our own restart is over (every End-of-RIB came, or the deferral timer ran out).
    EndRestart,
    VpcPrefixes {
        prefixes: Vec<IpNet>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Attrs {
    as_path: Vec<u32>,
    next_hop: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    med: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    local_pref: Option<u32>,
    /// "asn:value".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    communities: Vec<String>,
    /// "asn:data1:data2".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    large_communities: Vec<String>,
}

impl Attrs {
    fn path_attrs(&self) -> PathAttrs {
        let nums = |s: &str| -> Vec<u32> {
            s.split(':')
                .map(|x| x.parse().expect("a community of numbers"))
                .collect()
        };
        PathAttrs {
            as_path: if self.as_path.is_empty() {
                vec![]
            } else {
                vec![AsPathSegment::Sequence(self.as_path.clone())]
            },
            next_hop: Some(self.next_hop),
            med: self.med,
            local_pref: self.local_pref,
            communities: self
                .communities
                .iter()
                .map(|c| match nums(c)[..] {
                    [a, v] => (a << 16) | v,
                    _ => panic!("community {c}"),
                })
                .collect(),
            large_communities: self
                .large_communities
                .iter()
                .map(|c| match nums(c)[..] {
                    [a, b, d] => [a, b, d],
                    _ => panic!("large community {c}"),
                })
                .collect(),
            ..Default::default()
        }
    }
}

/// Attributes as sent, in one line.
fn show_attrs(a: &PathAttrs) -> String {
    let mut parts = vec![format!(
        "origin {}",
        match a.origin {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    )];
    let path: Vec<String> = a
        .as_path
        .iter()
        .map(|s| match s {
            AsPathSegment::Sequence(v) => {
                v.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
            }
            AsPathSegment::Set(v) => format!(
                "{{{}}}",
                v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            ),
        })
        .collect();
    parts.push(format!("as-path [{}]", path.join(" ")));
    if let Some(nh) = a.next_hop {
        parts.push(format!("next-hop {nh}"));
    }
    if let Some(nh) = a.next_hop6 {
        parts.push(format!("next-hop6 {nh}"));
    }
    if let Some(m) = a.med {
        parts.push(format!("med {m}"));
    }
    if let Some(l) = a.local_pref {
        parts.push(format!("local-pref {l}"));
    }
    if !a.communities.is_empty() {
        let c: Vec<String> = a
            .communities
            .iter()
            .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
            .collect();
        parts.push(format!("communities {}", c.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let c: Vec<String> = a
            .large_communities
            .iter()
            .map(|[x, y, z]| format!("{x}:{y}:{z}"))
            .collect();
        parts.push(format!("large-communities {}", c.join(" ")));
    }
    if let Some(o) = a.otc {
        parts.push(format!("otc {o}"));
    }
    parts.join(", ")
}

fn prefixes(v: &[IpNet]) -> String {
    let mut v = v.to_vec();
    v.sort();
    v.iter().map(IpNet::to_string).collect::<Vec<_>>().join(" ")
}

struct Replayer {
    i: Instance,
    local_asn: u32,
    ids: HashMap<String, PeerId>,
    /// Peers in the order declared (what each was sent is recorded in this order).
    order: Vec<(PeerId, String)>,
    asns: HashMap<PeerId, u32>,
    stale_generation: HashMap<PeerId, u64>,
}

impl Replayer {
    fn new(s: &Scenario) -> Replayer {
        let mut i = Instance::new(InstanceParams {
            local_asn: s.instance.asn,
            vpc_prefixes: s.instance.vpc_prefixes.clone(),
            max_prefixes: s.instance.max_prefixes,
            max_prefix_action: MaxPrefixAction::Teardown,
            max_prefix_idle: Duration::from_secs(1800),
            max_prefix_warning: 0,
            announce: s.instance.announce.clone(),
            accept_only: None,
            restarting: s.instance.restarting,
            kernel: true,
            rpki_reject_invalid: false,
        });
        let (mut ids, mut order, mut asns) = (HashMap::new(), vec![], HashMap::new());
        for p in &s.peers {
            let role = match p.role.as_str() {
                "customer" => Role::Customer,
                "fabric" => Role::Fabric,
                "neighbor" => Role::Neighbor,
                other => panic!("peer {}: role {other:?}", p.name),
            };
            let policy = (role == Role::Neighbor).then(|| {
                Arc::new(NeighborPolicy {
                    import: match p.import.as_deref() {
                        Some("accept-all") => Some(Filter::accept_all()),
                        None => None,
                        Some(other) => panic!("peer {}: import {other:?}", p.name),
                    },
                    export: match p.export.as_deref() {
                        Some("none") | None => Export::Nothing,
                        Some("originated") => Export::Originated,
                        Some("all") => Export::All,
                        Some(other) => panic!("peer {}: export {other:?}", p.name),
                    },
                    max_prefixes: None,
                    prepend: 0,
                })
            });
            let id = i.add_peer(PeerSpec {
                name: p.name.clone(),
                role,
                address: p.address.into(),
                local_address: p.local_address.into(),
                local_address6: None,
                asn: p.asn,
                policy,
            });
            ids.insert(p.name.clone(), id);
            order.push((id, p.name.clone()));
            asns.insert(id, p.asn);
        }
        Replayer {
            i,
            local_asn: s.instance.asn,
            ids,
            order,
            asns,
            stale_generation: HashMap::new(),
        }
    }

    fn peer(&self, name: &str) -> PeerId {
        *self
            .ids
            .get(name)
            .unwrap_or_else(|| panic!("no peer named {name:?}"))
    }

    fn name(&self, id: PeerId) -> &str {
        self.order
            .iter()
            .find(|(p, _)| *p == id)
            .map(|(_, n)| n.as_str())
            .unwrap_or("?")
    }

    fn apply(&mut self, input: &Input) -> Vec<String> {
        let local_asn = self.local_asn;
        let actions = match input {
            Input::Up {
                peer,
                router_id,
                graceful_restart,
                restarting,
                enhanced_route_refresh,
            } => {
                let id = self.peer(peer);
                let asn = self.asns[&id];
                self.i.handle(Event::PeerUp {
                    peer: id,
                    negotiated: Negotiated {
                        peer_asn: asn,
                        peer_id: *router_id,
                        hold_time: 90,
                        keepalive: 30,
                        route_refresh: true,
                        enhanced_route_refresh: *enhanced_route_refresh,
                        extended_message: false,
                        local_role: None,
                        ibgp: asn == local_asn,
                        graceful_restart: graceful_restart.map(|t| GracefulRestart {
                            restarting: *restarting,
                            notification: false,
                            restart_time: t,
                            families: vec![GrFamily {
                                afi: 1,
                                safi: 1,
                                forwarding: true,
                            }],
                        }),
                        ipv4: true,
                        ipv6: false,
                    },
                })
            }
            Input::Down { peer, graceful } => {
                let id = self.peer(peer);
                self.i.handle(Event::PeerDown {
                    peer: id,
                    graceful: *graceful,
                })
            }
            Input::Update {
                peer,
                withdraw,
                announce,
                attrs,
            } => {
                let id = self.peer(peer);
                assert!(
                    announce.is_empty() || attrs.is_some(),
                    "an announcement needs attrs"
                );
                self.i.handle(Event::Update {
                    peer: id,
                    update: Update {
                        withdrawn: withdraw.clone(),
                        attrs: attrs.as_ref().map(Attrs::path_attrs),
                        nlri: announce.clone(),
                        ..Default::default()
                    },
                })
            }
            Input::EndOfRib { peer } => {
                let id = self.peer(peer);
                self.i.handle(Event::Update {
                    peer: id,
                    update: Update::default(),
                })
            }
            Input::StaleTimer { peer } => {
                let id = self.peer(peer);
                let generation = *self
                    .stale_generation
                    .get(&id)
                    .unwrap_or_else(|| panic!("no stale timer was asked for {peer}"));
                self.i.handle(Event::StaleTimer {
                    peer: id,
                    generation,
                })
            }
            Input::RouteRefresh { peer, subtype } => {
                let id = self.peer(peer);
                self.i.handle(Event::RouteRefresh {
                    peer: id,
                    afi: Afi::Ipv4,
                    subtype: *subtype,
                })
            }
            Input::EndRestart => self.i.end_restart(),
            Input::VpcPrefixes { prefixes } => self.i.set_vpc_prefixes(prefixes.clone()),
        };
        let mut out = Vec::new();
        for a in actions {
            match a {
                Action::Output { .. } => {}
                Action::Route(RouteChange::Replace { prefix, nexthops }) => {
                    let via: Vec<String> = nexthops.iter().map(|h| h.to_string()).collect();
                    out.push(format!("kernel + {prefix} via {}", via.join(" ")));
                }
                Action::Route(RouteChange::Remove { prefix }) => {
                    out.push(format!("kernel - {prefix}"));
                }
                Action::StaleTimer {
                    peer,
                    generation,
                    after,
                } => {
                    self.stale_generation.insert(peer, generation);
                    out.push(format!(
                        "{}: stale routes go in {} s unless its End-of-RIB comes",
                        self.name(peer),
                        after.as_secs()
                    ));
                }
                Action::TearDown {
                    peer,
                    notification,
                    restart_after,
                } => out.push(format!(
                    "{}: torn down ({}), held {} s",
                    self.name(peer),
                    notification.describe(),
                    restart_after.as_secs()
                )),
                Action::RequestRefresh { peer, afi } => out.push(format!(
                    "{}: asked for its {afi:?} routes again",
                    self.name(peer)
                )),
                Action::PrefixWarning {
                    peer,
                    afi,
                    prefixes,
                    limit,
                } => out.push(format!(
                    "{}: {prefixes} {afi:?} prefixes of {limit}",
                    self.name(peer)
                )),
                Action::Ignored {
                    peer,
                    prefixes: p,
                    why,
                } => out.push(format!(
                    "{}: ignored {} ({why})",
                    self.name(peer),
                    prefixes(&p)
                )),
            }
        }
        // Then what each peer takes (as its socket would, all of it).
        let order = self.order.clone();
        for (id, name) in &order {
            while self.i.has_output(*id) {
                let Some(b) = self.i.take(*id, usize::MAX) else {
                    continue;
                };
                for afi in &b.begin_refresh {
                    out.push(format!("{name}: BoRR {afi:?}"));
                }
                if !b.withdrawn.is_empty() {
                    out.push(format!("{name}: withdraw {}", prefixes(&b.withdrawn)));
                }
                let mut ann: Vec<String> = b
                    .announce
                    .iter()
                    .map(|(a, v)| format!("{name}: announce {} [{}]", prefixes(v), show_attrs(a)))
                    .collect();
                ann.sort();
                out.extend(ann);
                for (n, len) in &b.too_large {
                    out.push(format!("{name}: not sent {n}, its UPDATE {len} octets"));
                }
                for afi in &b.end_refresh {
                    out.push(format!("{name}: EoRR {afi:?}"));
                }
                for afi in &b.end_of_rib {
                    out.push(format!("{name}: End-of-RIB {afi:?}"));
                }
            }
        }
        out
    }
}

fn scenarios() -> Vec<PathBuf> {
    let dir = FsPath::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

/// Replays one scenario; returns it with `out` as the code does now.
fn replay(path: &FsPath) -> (Scenario, Scenario) {
    let text = std::fs::read_to_string(path).expect("read scenario");
    let recorded: Scenario =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut now: Scenario = serde_json::from_str(&text).expect("again");
    let mut r = Replayer::new(&now);
    for step in &mut now.steps {
        step.out = r.apply(&step.input);
    }
    (recorded, now)
}

#[test]
fn replay_recorded_scenarios() {
    let record = std::env::var_os("CIC_REPLAY_RECORD").is_some();
    let all = scenarios();
    assert!(!all.is_empty(), "no scenarios in tests/replay");
    let mut failed = Vec::new();
    for path in all {
        let (recorded, now) = replay(&path);
        if record {
            let mut text = serde_json::to_string_pretty(&now).expect("json");
            text.push('\n');
            std::fs::write(&path, text).expect("write scenario");
            continue;
        }
        for (k, (want, got)) in recorded.steps.iter().zip(&now.steps).enumerate() {
            if want.out != got.out {
                failed.push(format!(
                    "{} step {k} ({:?}):\n  recorded: {:#?}\n  now:      {:#?}",
                    path.display(),
                    want.input,
                    want.out,
                    got.out
                ));
                break;
            }
        }
    }
    assert!(
        failed.is_empty(),
        "the instance no longer does what was recorded (if the change is meant, \
         CIC_REPLAY_RECORD=1 cargo test -p cic-bgp replay, and review the diff):\n{}",
        failed.join("\n")
    );
}
