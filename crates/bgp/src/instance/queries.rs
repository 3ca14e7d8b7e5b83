//! What the instance answers about itself: a peer's routes for the looking glass, its
//! counters, the Loc-RIB's best routes and the kernel routes it wants.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{Instance, PeerSpec, PeerStats, RouteSet};
use crate::rib::{Path, PeerId};
use crate::wire::{Afi, PathAttrs};

impl Instance {
    /// A peer's routes for the looking glass: everything it sent (`None`: accepted; else
    /// the reason it was refused), only the accepted ones, or what we announce to it.
    pub fn routes(
        &self,
        peer: PeerId,
        which: RouteSet,
    ) -> Vec<(IpNet, Arc<PathAttrs>, Option<String>)> {
        let Some(p) = self.peers.get(&peer) else {
            return vec![];
        };
        match which {
            RouteSet::Received => p
                .adj_in
                .received(&self.rib, peer)
                .into_iter()
                .map(|(n, a, why)| (n, a.clone(), why.map(|e| e.to_string())))
                .collect(),
            RouteSet::Accepted => self
                .rib
                .paths_of(peer)
                .map(|(n, path)| (n, path.attrs.clone(), None))
                .collect(),
            RouteSet::Advertised => {
                let max = self.max_message_len(peer);
                let mut v: Vec<_> = p
                    .adj_out
                    .iter()
                    .map(|(n, a)| (n, a.clone(), None))
                    .collect();
                // Routes policy would send but that no UPDATE the peer takes can carry.
                for (n, len) in self.too_large(peer) {
                    let attrs = self.desired(peer, &n).unwrap_or_default();
                    v.push((
                        n,
                        attrs,
                        Some(format!(
                            "not sent: its UPDATE would be {len} octets, more than the {max} this peer accepts"
                        )),
                    ));
                }
                v.sort_by_key(|(n, ..)| *n);
                v
            }
        }
    }

    /// Static routes that policy refused, with the reason.
    pub fn rejected_statics(&self, peer: PeerId) -> Vec<(IpNet, String)> {
        self.statics
            .get(&peer)
            .into_iter()
            .flatten()
            .filter_map(|(n, v)| v.as_ref().err().map(|e| (*n, e.to_string())))
            .collect()
    }

    /// The number of prefixes in the Loc-RIB.
    pub fn rib_len(&self) -> usize {
        self.rib.len()
    }

    /// The best path of every prefix in the Loc-RIB, in prefix order.
    pub fn best_routes(&self) -> impl Iterator<Item = (IpNet, &Path)> {
        self.rib
            .iter()
            .filter_map(|(n, paths)| paths.first().map(|p| (n, p)))
    }

    /// The families `peer`'s session carries (none while it is down).
    pub fn families(&self, peer: PeerId) -> Vec<Afi> {
        self.peers
            .get(&peer)
            .and_then(|p| p.up.as_ref())
            .map(|n| n.families().collect())
            .unwrap_or_default()
    }

    /// The longest message `peer` takes: 65,535 octets with RFC 8654, else 4,096.
    pub fn max_message_len(&self, peer: PeerId) -> usize {
        let extended = self
            .peers
            .get(&peer)
            .and_then(|p| p.up.as_ref())
            .is_some_and(|n| n.extended_message);
        if extended {
            crate::wire::MAX_EXTENDED_LEN
        } else {
            crate::wire::MAX_MESSAGE_LEN
        }
    }

    pub fn peer_spec(&self, peer: PeerId) -> Option<&PeerSpec> {
        self.peers.get(&peer).map(|p| &p.spec)
    }

    pub fn peer_stats(&self, peer: PeerId) -> PeerStats {
        let Some(p) = self.peers.get(&peer) else {
            return PeerStats::default();
        };
        PeerStats {
            received: p.adj_in.len() as u32,
            accepted: p.adj_in.accepted() as u32,
            advertised: p.adj_out.len() as u32,
            discarded: p.discarded,
            too_large: p.too_large.len() as u32,
            over_limit: p.over_limit,
            prefix_warning: p.near_limit.contains(&true),
            stale: p.stale.len() as u32,
            treated_as_withdraw: p.treated_as_withdraw,
            attributes_discarded: p.attributes_discarded,
            last_malformed: p.last_malformed.clone(),
        }
    }

    /// Received routes that policy refused, with the reason (for per-session visibility).
    pub fn rejected(&self, peer: PeerId) -> Vec<(IpNet, String)> {
        let Some(p) = self.peers.get(&peer) else {
            return vec![];
        };
        p.adj_in
            .refused
            .iter()
            .map(|(n, r)| (*n, r.why.to_string()))
            .collect()
    }

    pub fn advertised(&self, peer: PeerId) -> Vec<IpNet> {
        let mut v: Vec<IpNet> = self
            .peers
            .get(&peer)
            .map(|p| p.adj_out.keys().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The kernel routes this instance wants, as last emitted.
    pub fn kernel_routes(&self) -> &BTreeMap<IpNet, Vec<IpAddr>> {
        &self.kernel
    }
}
