//! The namespace's kernel routes: the speaker's table kept programmed, a public
//! connection's source validation, the static routes toward the services routers.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cic_bgp::driver::{KernelRoutes, KernelTable};
use cic_dataplane::{Netlink, PROTO_BGP, RouteChange};
use cic_model::edge::{FabricAttachment, InstanceConfig};
use ipnet::IpNet;
use tokio::sync::watch;
use tracing::warn;

use super::ifname;
use crate::failure::Failure;

/// Keeps the namespace's `proto bgp` routes equal to the speaker's desired table: on
/// every change, the difference from the table it last programmed (in batches, not a
/// route at a time). Against the kernel's own routes (read again) every 30 s (someone
/// may have touched them), at the next change or tick after an error, and at once when
/// the instance changed its links or addresses (the kernel removes the routes through a
/// link that goes away). After a restart (`restarting`), nothing is touched until the
/// speaker's first table.
pub(super) async fn program_routes(
    nl: Netlink,
    mut rx: watch::Receiver<Arc<KernelTable>>,
    acks: Option<watch::Sender<u64>>,
    error: Arc<Mutex<Option<Failure>>>,
    resync: Arc<tokio::sync::Notify>,
    ns: String,
    restarting: bool,
) {
    if restarting && rx.changed().await.is_err() {
        return;
    }
    let every = Duration::from_secs(30);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // What the kernel holds as far as this task knows: the table it last programmed
    // without an error; none when the kernel is to be read.
    let mut programmed: Option<Arc<KernelTable>> = None;
    loop {
        let want = rx.borrow_and_update().clone();
        let had = programmed.take();
        let r = sync_routes(&nl, &want, had.as_deref().map(|t| &t.routes), PROTO_BGP).await;
        if r.is_ok() {
            programmed = Some(want.clone());
        }
        // Acknowledged whether it worked or not: a route that cannot be programmed is
        // reported as the instance's error, and must not hold every announcement back.
        if let Some(a) = &acks {
            a.send_replace(want.generation);
        }
        if let Ok(mut g) = error.lock() {
            *g = r.err();
            if let Some(e) = g.as_ref() {
                warn!(netns = %ns, "routes: {e}");
            }
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => programmed = None,
            _ = resync.notified() => programmed = None,
        }
    }
}

/// The kernel's routing protocol number for routes an administrator set (`proto static`).
pub(super) const PROTO_STATIC: u8 = 4;

/// A public connection's source validation (none for other instances): on each
/// connection's interface, packets from the customer's registered prefixes and from the
/// connection's peering subnets are forwarded, the rest dropped; none toward the segment
/// to the services routers (their addresses there are not a service).
pub(super) fn source_rules(ic: &InstanceConfig) -> Vec<cic_dataplane::rules::SourceRule> {
    let Some(registered) = &ic.accept_only else {
        return vec![];
    };
    ic.connections
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let allowed: Vec<IpNet> = registered
                .iter()
                .copied()
                .chain(c.peerings.iter().map(|p| p.subnet))
                .collect();
            let segment: Vec<IpNet> = ic
                .fabric
                .iter()
                .flat_map(|f| {
                    std::iter::once(IpNet::V4(f.subnet))
                        .chain(f.ipv6.map(|v6| IpNet::V6(v6.subnet)))
                })
                .collect();
            cic_dataplane::rules::wanted(&ifname(&c.id), i as u32, &allowed, &segment)
        })
        .collect()
}

/// With static routing on a public-services segment: each allowed service's prefix via
/// the services router's address of its family.
pub(super) fn static_service_routes(ic: &InstanceConfig, f: &FabricAttachment) -> KernelRoutes {
    ic.vpc_prefixes
        .iter()
        .filter_map(|n| {
            let via: IpAddr = match n {
                IpNet::V4(_) => f.fabric_ip.into(),
                IpNet::V6(_) => f.ipv6?.fabric_ip.into(),
            };
            Some((*n, vec![via]))
        })
        .collect()
}

/// Makes the namespace's routes of `proto` exactly `want`, given that it holds `have`
/// (read from the kernel when `None`): what differs, in batches. The first error and how
/// many more, if any (the other changes are made).
pub(super) async fn sync_routes(
    nl: &Netlink,
    want: &KernelRoutes,
    have: Option<&KernelRoutes>,
    proto: u8,
) -> Result<(), Failure> {
    let read;
    let have = match have {
        Some(h) => h,
        None => {
            read = nl.routes(proto).await?;
            &read
        }
    };
    let changes = route_changes(want, have);
    if changes.is_empty() {
        return Ok(());
    }
    let failed = nl.apply_routes(&changes, proto).await;
    // Transient when every failure is (trying again may do them all).
    let transient = failed.iter().all(|(_, e)| e.is_transient());
    match failed.first() {
        None => Ok(()),
        Some((_, e)) => Err(Failure {
            message: match failed.len() {
                1 => e.to_string(),
                n => format!("{e} (and {} more)", n - 1),
            },
            transient,
        }),
    }
}

/// What turns `have` into `want`: prefixes whose next hops differ (in any order) are
/// replaced, those not wanted removed.
pub(super) fn route_changes(want: &KernelRoutes, have: &KernelRoutes) -> Vec<RouteChange> {
    let sorted = |hops: &[IpAddr]| {
        let mut v = hops.to_vec();
        v.sort();
        v
    };
    let mut out: Vec<RouteChange> = want
        .iter()
        .filter_map(|(p, hops)| {
            let hops = sorted(hops);
            match have.get(p) {
                Some(h) if sorted(h) == hops => None,
                _ => Some(RouteChange::Replace(*p, hops)),
            }
        })
        .collect();
    out.extend(
        have.keys()
            .filter(|p| !want.contains_key(*p))
            .map(|p| RouteChange::Delete(*p)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_changes_are_what_differs_whatever_the_order_of_next_hops() {
        let p = |s: &str| -> IpNet { s.parse().expect("prefix") };
        let a = |s: &str| -> IpAddr { s.parse().expect("address") };
        let have: KernelRoutes = [
            (p("10.1.0.0/16"), vec![a("10.9.0.2"), a("10.9.0.3")]),
            (p("10.2.0.0/16"), vec![a("10.9.0.2")]),
            (p("10.3.0.0/16"), vec![a("10.9.0.2")]),
        ]
        .into();
        let want: KernelRoutes = [
            // The same next hops in another order: nothing to do.
            (p("10.1.0.0/16"), vec![a("10.9.0.3"), a("10.9.0.2")]),
            // Another next hop: replaced, its hops in order.
            (p("10.2.0.0/16"), vec![a("10.9.0.4"), a("10.9.0.2")]),
            (p("fd00:1::/48"), vec![a("fd00:9::2")]),
        ]
        .into();
        assert_eq!(
            route_changes(&want, &have),
            vec![
                RouteChange::Replace(p("10.2.0.0/16"), vec![a("10.9.0.2"), a("10.9.0.4")]),
                RouteChange::Replace(p("fd00:1::/48"), vec![a("fd00:9::2")]),
                RouteChange::Delete(p("10.3.0.0/16")),
            ]
        );
        assert!(route_changes(&have, &have).is_empty());
    }
}
