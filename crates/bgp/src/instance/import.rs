//! The import half of the instance: each peer's Adj-RIB-In (the routes policy refused,
//! with why, and the counts per family), an UPDATE judged and taken into the Loc-RIB,
//! what a peer sent judged again when its policy or the RPKI's answers change, and a
//! route refresh's stale routes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::{Action, Instance, MaxPrefixAction, STALE_PATH_TIME, Touched};
use crate::policy::{self, ImportContext, NeighborPolicy, Reject, Role};
use crate::rib::{LocRib, Path, PeerId};
use crate::wire::{Afi, Notification, PathAttrs, Update, UpdateProblem, cease, error_code};

/// A route a peer sent that policy refused, kept for the looking glass.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) attrs: Arc<PathAttrs>,
    pub(super) why: Reject,
}

/// A peer's Adj-RIB-In. Its accepted routes are not kept twice: they are the peer's paths
/// in the Loc-RIB (with the attributes as received), so this holds the refused ones, with
/// why, and counts both per family (the status reads them after every event; the limit
/// on prefixes counts per family). A full table costs one B-tree entry a prefix, not two.
#[derive(Debug, Default)]
pub(super) struct AdjIn {
    pub(super) refused: BTreeMap<IpNet, Refused>,
    /// The attributes as received of accepted routes an import rule changed (the
    /// Loc-RIB holds the changed ones): what they are judged by again.
    pub(super) rewritten: BTreeMap<IpNet, Arc<PathAttrs>>,
    pub(super) accepted_of: [u32; 2],
    pub(super) refused_of: [u32; 2],
}

impl AdjIn {
    pub(super) fn len(&self) -> usize {
        self.len_of(Afi::Ipv4) + self.len_of(Afi::Ipv6)
    }

    pub(super) fn accepted(&self) -> usize {
        (self.accepted_of[0] + self.accepted_of[1]) as usize
    }

    /// Routes of `afi` only.
    pub(super) fn len_of(&self, afi: Afi) -> usize {
        (self.accepted_of[afi as usize] + self.refused_of[afi as usize]) as usize
    }

    /// Takes `peer`'s route `n`: into the Loc-RIB with `path` when accepted (`verdict` Ok),
    /// among the refused otherwise. `as_received`: the attributes the peer sent, when an
    /// import rule changed them into `path`'s. Returns whether the Loc-RIB's selection
    /// changed.
    pub(super) fn receive(
        &mut self,
        rib: &mut LocRib,
        peer: PeerId,
        n: IpNet,
        path: &Path,
        verdict: Result<(), Reject>,
        as_received: Option<Arc<PathAttrs>>,
    ) -> bool {
        let afi = Afi::of(&n) as usize;
        match as_received.filter(|_| verdict.is_ok()) {
            Some(a) => {
                self.rewritten.insert(n, a);
            }
            None => {
                if !self.rewritten.is_empty() {
                    self.rewritten.remove(&n);
                }
            }
        }
        match verdict {
            Ok(()) => {
                if self.refused.remove(&n).is_some() {
                    self.refused_of[afi] -= 1;
                }
                let (changed, had) = rib.replace(n, peer, Some(path.clone()));
                self.accepted_of[afi] += u32::from(!had);
                changed
            }
            Err(why) => {
                let r = Refused {
                    attrs: path.attrs.clone(),
                    why,
                };
                self.refused_of[afi] += u32::from(self.refused.insert(n, r).is_none());
                let (changed, had) = rib.replace(n, peer, None);
                self.accepted_of[afi] -= u32::from(had);
                changed
            }
        }
    }

    /// Forgets `peer`'s route `n`; returns whether it had one, and whether the Loc-RIB's
    /// selection changed.
    pub(super) fn forget(&mut self, rib: &mut LocRib, peer: PeerId, n: IpNet) -> (bool, bool) {
        let afi = Afi::of(&n) as usize;
        if !self.rewritten.is_empty() {
            self.rewritten.remove(&n);
        }
        if self.refused.remove(&n).is_some() {
            self.refused_of[afi] -= 1;
            return (true, false);
        }
        let (changed, had) = rib.replace(n, peer, None);
        self.accepted_of[afi] -= u32::from(had);
        (had, changed)
    }

    pub(super) fn holds(&self, rib: &LocRib, peer: PeerId, n: &IpNet) -> bool {
        self.refused.contains_key(n) || rib.path_of(n, peer).is_some()
    }

    /// Everything `peer` sent, in prefix order: attributes as received, and why it was
    /// refused.
    pub(super) fn received<'a>(
        &'a self,
        rib: &'a LocRib,
        peer: PeerId,
    ) -> Vec<(IpNet, &'a Arc<PathAttrs>, Option<&'a Reject>)> {
        let mut all: Vec<_> = rib
            .paths_of(peer)
            .map(|(n, p)| (n, self.rewritten.get(&n).unwrap_or(&p.attrs), None))
            .chain(
                self.refused
                    .iter()
                    .map(|(n, r)| (*n, &r.attrs, Some(&r.why))),
            )
            .collect();
        all.sort_by_key(|(n, ..)| *n);
        all
    }
}

impl Instance {
    /// New VPC prefixes: every received route is judged again (we keep them all, so this
    /// needs no route refresh from the peers) and exports follow.
    /// Replaces a neighbor's policy (import, export, max-prefix, prepend) with its session
    /// up. What it is sent is judged again at once. What it sent is judged again as it
    /// sends it again: a ROUTE-REFRESH asks for that when the import side changed (with
    /// RFC 7313 its BoRR and EoRR also take out what it no longer has); a peer without
    /// route refresh is reset instead (Cease / Other Configuration Change).
    pub fn set_policy(&mut self, peer: PeerId, policy: Option<Arc<NeighborPolicy>>) -> Vec<Action> {
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        let old = std::mem::replace(&mut p.spec.policy, policy);
        fn import(
            x: &Option<Arc<NeighborPolicy>>,
        ) -> Option<(Option<&policy::Filter>, Option<u32>)> {
            x.as_deref().map(|x| (x.import.as_ref(), x.max_prefixes))
        }
        let import_changed = import(&old) != import(&p.spec.policy);
        let Some(up) = p.up.clone() else {
            return vec![]; // the next session starts with it
        };
        let mut out = Vec::new();
        if import_changed {
            if !up.route_refresh {
                out.push(Action::TearDown {
                    peer,
                    notification: Notification::new(error_code::CEASE, cease::OTHER_CONFIG_CHANGE),
                    restart_after: Duration::ZERO,
                });
                return out;
            }
            p.over_limit = false;
            out.extend(
                up.families()
                    .map(|afi| Action::RequestRefresh { peer, afi }),
            );
        }
        if !self.deferring {
            out.extend(self.start_feed(peer, false));
        }
        out
    }

    /// New prefixes of our own (a reloaded config): those that came are announced, those
    /// that went are withdrawn, where the export policies say so.
    pub fn set_announce(&mut self, prefixes: Vec<IpNet>) -> Vec<Action> {
        let mut touched: BTreeSet<IpNet> = self.params.announce.iter().copied().collect();
        touched.extend(prefixes.iter().copied());
        self.params.announce = prefixes;
        self.apply(touched)
    }

    /// New RPKI data (`None`: no cache synced any more): the routes of every neighbor
    /// whose import filter looks at origin validation are judged again, as received.
    pub fn set_vrps(&mut self, vrps: Option<Arc<crate::rpki::Vrps>>) -> Vec<Action> {
        // From one set to another, only the routes the changed VRPs cover can change
        // state; the first set, or none any more, concerns every route.
        let only = match (&self.vrps, &vrps) {
            (Some(old), Some(new)) if Arc::ptr_eq(old, new) => return vec![],
            (Some(old), Some(new)) => Some(old.changed_prefixes(new)),
            _ => None,
        };
        self.vrps = vrps;
        if only.as_ref().is_some_and(|c| c.is_empty()) {
            return vec![];
        }
        let mut touched = BTreeSet::new();
        let ids: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                (p.spec.role == Role::Customer && self.params.rpki_reject_invalid)
                    || p.spec
                        .policy
                        .as_ref()
                        .and_then(|x| x.import.as_ref())
                        .is_some_and(|f| f.uses_rpki())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            touched.extend(self.rejudge(id, only.as_ref()));
        }
        self.apply(touched)
    }

    /// Judges the routes `id` sent again (those `only` covers, or all), as received (what
    /// changed is the policy's context: the VPC prefixes, the RPKI data), an accepting
    /// import rule's changes made again as on receipt. Returns the prefixes judged.
    pub(super) fn rejudge(&mut self, id: PeerId, only: Option<&BTreeSet<IpNet>>) -> Vec<IpNet> {
        let received: Vec<(IpNet, Arc<PathAttrs>)> = self.peers[&id]
            .adj_in
            .received(&self.rib, id)
            .into_iter()
            .filter(|(n, ..)| only.is_none_or(|c| crate::rpki::covered_by(c, n)))
            .map(|(n, a, _)| (n, a.clone()))
            .collect();
        let import = self.peers[&id].spec.policy.clone().filter(|x| {
            x.import
                .as_ref()
                .is_some_and(|f| f.rules.iter().any(|r| !r.set.is_empty()))
        });
        let mut touched = Vec::with_capacity(received.len());
        for (n, attrs) in received {
            let verdict = self.judge(id, &n, &attrs);
            let changed = import
                .as_ref()
                .and_then(|x| {
                    let f = x.import.as_ref()?;
                    let (_, a) = f.actions_with(&n, Some(&attrs), self.validity(&n, &attrs))?;
                    let mut c = (*attrs).clone();
                    a.apply(&mut c, self.params.local_asn);
                    Some(c)
                })
                .filter(|_| verdict.is_ok());
            let (path, as_received) = match changed {
                Some(c) => {
                    let c = self.attrs.intern(c);
                    (self.path(id, c), Some(attrs))
                }
                None => (self.path(id, attrs), None),
            };
            let Instance { peers, rib, .. } = self;
            if let Some(p) = peers.get_mut(&id) {
                p.adj_in.receive(rib, id, n, &path, verdict, as_received);
            }
            touched.push(n);
        }
        touched
    }

    /// A route's origin validation state by the RPKI data in force (`None`: no cache has
    /// synced).
    pub fn validity(&self, n: &IpNet, attrs: &PathAttrs) -> Option<crate::rpki::Validity> {
        self.vrps
            .as_ref()
            .map(|v| v.validate(n, policy::rpki_origin(attrs, self.params.local_asn)))
    }

    /// The peer begins to send its routes of `afi` again (BoRR, RFC 7313 §4): they are
    /// all stale — still used — until sent again; the EoRR drops the rest, and so does
    /// the stale timer should no EoRR come.
    pub(super) fn begin_refresh(&mut self, peer: PeerId, afi: Afi) -> Vec<Action> {
        let Instance { peers, rib, .. } = self;
        let Some(p) = peers.get_mut(&peer) else {
            return vec![];
        };
        let had: Vec<IpNet> = p
            .adj_in
            .received(rib, peer)
            .into_iter()
            .map(|(n, _, _)| n)
            .filter(|n| Afi::of(n) == afi)
            .collect();
        p.stale.extend(had);
        p.stale_generation += 1;
        vec![Action::StaleTimer {
            peer,
            generation: p.stale_generation,
            after: STALE_PATH_TIME,
        }]
    }

    pub(super) fn update(&mut self, peer: PeerId, mut u: Update) -> Vec<Action> {
        let (action, idle) = (self.params.max_prefix_action, self.params.max_prefix_idle);
        let warning = self.params.max_prefix_warning;
        // Paths made by import rules with actions, by rule number, and which prefix took
        // which (see below).
        let mut by_rule: Vec<(usize, Path)> = Vec::new();
        let mut rule_of: BTreeMap<IpNet, usize> = BTreeMap::new();
        let mut ignored_out: Vec<Action> = Vec::new();
        let Some(p) = self.peers.get_mut(&peer) else {
            return vec![];
        };
        let role = p.spec.role;
        let limit = match role {
            Role::Customer => Some(self.params.max_prefixes),
            Role::Neighbor => p.spec.policy.as_ref().and_then(|x| x.max_prefixes),
            Role::Fabric => None,
        };
        let Some(up) = &p.up else {
            return vec![];
        };
        let (local_role, peer_asn) = (up.local_role, up.peer_asn);
        // Routes of a family the session did not negotiate are not ours to take.
        if u.nlri
            .iter()
            .chain(&u.withdrawn)
            .any(|n| !up.carries(Afi::of(n)))
        {
            u.nlri.retain(|n| up.carries(Afi::of(n)));
            u.withdrawn.retain(|n| up.carries(Afi::of(n)));
        }
        for problem in &u.problems {
            let why = match problem {
                UpdateProblem::TreatAsWithdraw(why) => {
                    p.treated_as_withdraw += 1;
                    why
                }
                UpdateProblem::AttributeDiscarded(why) => {
                    p.attributes_discarded += 1;
                    why
                }
            };
            p.last_malformed = Some(why.clone());
        }
        if let Some(afi) = u.end_of_rib() {
            // End-of-RIB (RFC 4724 §2): what is still stale of that family was not sent
            // again.
            p.end_of_rib[afi as usize] = true;
            let touched = self.flush_stale(peer, |a| a == afi);
            return self.apply(touched);
        }
        // Judged before anything changes: a verdict depends only on the route, the peer
        // and the parameters. Every prefix of the UPDATE shares one path.
        let (verdicts, path) = match u.attrs.take() {
            Some(mut attrs) => {
                // A customer's route may ask for its preference (LOCAL_PREF is not taken
                // from an external peer: RFC 7606 §7.5 had the decoder drop it).
                if role == Role::Customer {
                    attrs.local_pref = policy::requested_local_pref(self.params.local_asn, &attrs);
                }
                // RFC 9234: a leak is refused whatever the policy says.
                let leak = match local_role {
                    Some(r) => policy::otc_ingress(r, peer_asn, &mut attrs).err(),
                    None => None,
                };
                let attrs = self.attrs.intern(attrs);
                // RFC 4271 §6.3: a NEXT_HOP that is our own address is ignored (logged, no
                // NOTIFICATION); per family, as IPv6's comes in MP_REACH_NLRI.
                let own = |afi: Afi| {
                    let nh = match afi {
                        Afi::Ipv4 => attrs.next_hop.map(IpAddr::V4),
                        Afi::Ipv6 => attrs.next_hop6.map(IpAddr::V6),
                    };
                    nh.filter(|nh| self.own_address(peer, afi) == Some(*nh))
                };
                let v: Vec<Result<(), Reject>> = u
                    .nlri
                    .iter()
                    .map(|n| match (&leak, own(Afi::of(n))) {
                        (_, Some(nh)) => Err(Reject::OwnNextHop(nh)),
                        (Some(r), None) => Err(r.clone()),
                        (None, None) => self.judge(peer, n, &attrs),
                    })
                    .collect();
                let ignored: Vec<IpNet> = u
                    .nlri
                    .iter()
                    .zip(&v)
                    .filter(|(_, r)| matches!(r, Err(Reject::OwnNextHop(_))))
                    .map(|(n, _)| *n)
                    .collect();
                if let (Some(first), false) = (ignored.first(), ignored.is_empty()) {
                    let why = Reject::OwnNextHop(
                        own(Afi::of(first)).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    )
                    .to_string();
                    ignored_out.push(Action::Ignored {
                        peer,
                        prefixes: ignored,
                        why,
                    });
                }
                // Import rules that change what they accept give their routes paths of
                // their own (by rule); the others share the UPDATE's.
                // (Looked at through a reference first: a full feed's import changes
                // nothing, and the policy is cloned only when it does.)
                let policy = &self.peers[&peer].spec.policy;
                let changes = policy.as_deref().is_some_and(|x| {
                    x.import
                        .as_ref()
                        .is_some_and(|f| f.rules.iter().any(|r| !r.set.is_empty()))
                });
                let changing = if changes { policy.clone() } else { None };
                if let Some(policy) = changing
                    && let Some(filter) = &policy.import
                {
                    for (n, verdict) in u.nlri.iter().zip(&v) {
                        let rpki = self.vrps.as_ref().filter(|_| filter.uses_rpki()).map(|v| {
                            v.validate(n, policy::rpki_origin(&attrs, self.params.local_asn))
                        });
                        let Some((no, actions)) = filter
                            .actions_with(n, Some(&attrs), rpki)
                            .filter(|_| verdict.is_ok())
                        else {
                            continue;
                        };
                        if !by_rule.iter().any(|(r, _)| *r == no) {
                            let mut a = (*attrs).clone();
                            actions.apply(&mut a, self.params.local_asn);
                            let a = self.attrs.intern(a);
                            by_rule.push((no, self.path(peer, a)));
                        }
                        rule_of.insert(*n, no);
                    }
                }
                (v, Some(self.path(peer, attrs)))
            }
            None => (vec![], None),
        };
        let Instance { peers, rib, .. } = self;
        let Some(p) = peers.get_mut(&peer) else {
            return vec![];
        };
        let mut touched = Vec::with_capacity(u.withdrawn.len() + u.nlri.len());
        for n in &u.withdrawn {
            if !p.stale.is_empty() {
                p.stale.remove(n);
            }
            if p.adj_in.forget(rib, peer, *n).0 {
                touched.push(*n);
            }
        }
        let mut out = Vec::new();
        // (Without a path there are no verdicts either.)
        for (n, verdict) in u.nlri.iter().zip(verdicts) {
            let Some(path) = &path else { break };
            let afi = Afi::of(n);
            // Per family. (Looked up only when there is a limit: a full feed has none.)
            if let Some(limit) =
                limit.filter(|l| p.adj_in.len_of(afi) as u32 >= *l && !p.adj_in.holds(rib, peer, n))
            {
                match action {
                    MaxPrefixAction::Teardown => {
                        // RFC 4486 §4: data = AFI, SAFI, the upper bound.
                        let mut n = Notification::new(error_code::CEASE, cease::MAX_PREFIXES);
                        n.data = afi.code().to_be_bytes().to_vec();
                        n.data.push(Afi::SAFI_UNICAST);
                        n.data.extend_from_slice(&limit.to_be_bytes());
                        p.over_limit = true;
                        out.push(Action::TearDown {
                            peer,
                            notification: n,
                            restart_after: idle,
                        });
                        break;
                    }
                    MaxPrefixAction::Discard => {
                        p.discarded += 1;
                        p.over_limit = true;
                        continue;
                    }
                    MaxPrefixAction::Warn => p.over_limit = true,
                }
            }
            if !p.stale.is_empty() {
                p.stale.remove(n);
            }
            let (path, as_received) = match rule_of.get(n) {
                Some(no) => match by_rule.iter().find(|(r, _)| r == no) {
                    Some((_, changed)) => (changed, Some(path.attrs.clone())),
                    None => (path, None),
                },
                None => (path, None),
            };
            p.adj_in.receive(rib, peer, *n, path, verdict, as_received);
            touched.push(*n);
        }
        if let Some(limit) = limit.filter(|l| *l > 0 && warning > 0) {
            for afi in Afi::BOTH {
                // (Counted as the limit counts: every prefix received, refused or not.)
                let prefixes = p.adj_in.len_of(afi) as u32;
                let near = u64::from(prefixes) * 100 >= u64::from(limit) * u64::from(warning);
                let was = std::mem::replace(&mut p.near_limit[afi as usize], near);
                if near && !was {
                    out.push(Action::PrefixWarning {
                        peer,
                        afi,
                        prefixes,
                        limit,
                    });
                }
            }
        }
        let mut actions = self.apply(Touched::new(touched));
        actions.extend(out);
        actions.extend(ignored_out);
        actions
    }

    pub(super) fn judge(&self, peer: PeerId, n: &IpNet, attrs: &PathAttrs) -> Result<(), Reject> {
        let p = &self.peers[&peer];
        let cx = ImportContext {
            role: p.spec.role,
            local_asn: self.params.local_asn,
            peer_asn: p.spec.asn,
            vpc_prefixes: &self.params.vpc_prefixes,
            accept_only: self.params.accept_only.as_deref(),
            filter: p.spec.policy.as_ref().and_then(|x| x.import.as_ref()),
            vrps: self.vrps.as_deref(),
            reject_invalid: self.params.rpki_reject_invalid,
        };
        policy::import(&cx, n, attrs)
    }

    pub(super) fn path(&self, peer: PeerId, attrs: Arc<PathAttrs>) -> Path {
        let p = &self.peers[&peer];
        Path {
            peer,
            role: p.spec.role,
            // The edge forwards to the peer on the shared subnet whatever it says; a
            // neighbor's NEXT_HOP is taken as sent.
            nexthop: match (p.spec.role, attrs.next_hop, p.spec.address) {
                (Role::Neighbor, Some(nh), _) => nh,
                (_, _, IpAddr::V4(a)) => a,
                // Over IPv6 an IPv4 route has only the NEXT_HOP it came with.
                (_, nh, IpAddr::V6(_)) => nh.unwrap_or(Ipv4Addr::UNSPECIFIED),
            },
            peer_router_id: p
                .up
                .as_ref()
                .map(|n| n.peer_id)
                .unwrap_or(Ipv4Addr::UNSPECIFIED),
            ebgp: p.spec.asn != self.params.local_asn,
            attrs,
        }
    }
}
