//! Realising a config: the steps of [`Agent::apply`], each named. The edge-wide work
//! (trunks, capacity, bonds, the kernel's neighbor table) needs no agent state and runs
//! before the state's lock is taken; the blocking parts of it (sysctls, `tc`, listing
//! namespaces) run on blocking threads. Applies follow one another (`applying`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use cic_dataplane::netns;
use cic_model::edge::{Attachment, EdgeConfig, InstanceConfig, ResourceError, TrunkConfig};
use futures::StreamExt;
use tracing::{info, warn};

use crate::failure::Failure;
use crate::instance::Instance;
use crate::{Agent, ApplyContext, LAG_ALIAS, Rpki, State, Trunks};

/// Instances reconciled at once.
const RECONCILE_AT_ONCE: usize = 16;

/// How many instances are being reconciled at once, and the most there have been.
#[derive(Debug, Default)]
pub(crate) struct AtOnce {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

impl AtOnce {
    /// One more until the guard is dropped.
    pub(crate) fn enter(&self) -> impl Drop + '_ {
        use std::sync::atomic::Ordering::Relaxed;
        let now = self.now.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
        Leave(self)
    }

    pub(crate) fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::Relaxed)
    }
}

struct Leave<'a>(&'a AtOnce);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0
            .now
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Agent {
    pub(crate) async fn apply_with(&self, cfg: &EdgeConfig, full: bool) {
        let _one = self.applying.lock().await;
        let started = Instant::now();
        make_neighbor_room(cfg).await;
        // What the last apply decided of each trunk (this apply alone changes it).
        let before = {
            let st = self.state.lock().await;
            st.applied_context
                .as_ref()
                .map(|c| c.trunks.clone())
                .unwrap_or_default()
        };
        let (trunks, mut errors) = self.realise_trunks(cfg, &before).await;
        errors.extend(self.shape_capacity(cfg, &trunks, full).await);
        self.remove_stale_bonds(cfg).await;

        let mut st = self.state.lock().await;
        self.follow_rpki(&mut st, cfg);
        let renamed = self.take_over_moved_connections(&mut st, cfg).await;
        self.remove_gone_instances(&mut st, cfg).await;
        let context = ApplyContext {
            bgp: cfg.bgp.clone(),
            local_asn: cfg.local_asn,
            router_id: cfg.router_id,
            drain: cfg.drain,
            trunks: trunks.clone(),
        };
        let skipped = self
            .reconcile_instances(&mut st, cfg, &context, full, &renamed, &mut errors)
            .await;
        st.applied_context = Some(context);
        for e in &errors {
            warn!(resource = %e.resource_id, "{}", e.message);
        }
        info!(revision = cfg.revision, instances = cfg.instances.len(), unchanged = skipped, errors = errors.len(), took = ?started.elapsed(), "config applied");
        st.applied = cfg.revision;
        st.edge_id = cfg.edge_id.clone();
        st.errors = errors;
        st.last_apply = started.elapsed();
        st.applies += 1;
        st.last_reconciled = cfg.instances.len() - skipped;
        st.last_full = full;
        st.watches = st.instances.values().map(|i| i.status()).collect();
    }

    /// RPKI caches: followed by a task of their own; each instance is handed the data in
    /// force whenever it changes (the agent's lock let go first).
    fn follow_rpki(&self, st: &mut State, cfg: &EdgeConfig) {
        let caches = &cfg.bgp.rpki_caches;
        if st.rpki.as_ref().map(|r| &r.caches) == Some(caches) {
            return;
        }
        st.rpki = (!caches.is_empty()).then(|| {
            let data = cic_bgp::driver::start_rpki(
                caches
                    .iter()
                    .enumerate()
                    .map(|(i, a)| cic_bgp::driver::CacheSpec {
                        address: *a,
                        preference: i.min(255) as u8,
                    })
                    .collect(),
            );
            let (mut changes, state) = (data.clone(), self.state.clone());
            let forwarder = tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    let v = changes.borrow_and_update().clone();
                    let speakers: Vec<_> = {
                        let st = state.lock().await;
                        st.instances.values().map(|i| i.speaker()).collect()
                    };
                    for s in speakers {
                        let _ = s.set_vrps(v.clone()).await;
                    }
                }
            });
            Rpki {
                caches: caches.clone(),
                data,
                forwarder,
            }
        });
    }

    /// Trunks: can this router carry them? A LAG trunk's bundle is made here (it lives
    /// with its ports, in the underlay). `before`: what the last apply decided.
    async fn realise_trunks(
        &self,
        cfg: &EdgeConfig,
        before: &Trunks,
    ) -> (Trunks, Vec<ResourceError>) {
        let mut trunks = Trunks::new();
        let mut errors = Vec::new();
        for t in &cfg.trunks {
            let mut problem = self.check_trunk(t).await;
            if let (None, Attachment::Lag { bond, ports }) = (&problem, &t.attachment)
                && let Err(e) = self
                    .underlay
                    .ensure_bond(bond, ports, &format!("{LAG_ALIAS}{}", t.id))
                    .await
            {
                problem = Some(e.into());
            }
            // Known of the same port(s) only: a trunk's capacity changed says nothing.
            let known = before
                .get(&t.id)
                .filter(|(was, _)| was.attachment == t.attachment)
                .and_then(|(_, p)| p.clone());
            let problem = trunk_problem(&t.id, problem, known, &mut errors);
            trunks.insert(t.id.clone(), (t.clone(), problem));
        }
        (trunks, errors)
    }

    /// Capacity: what a port sends toward customers is limited to the sum of the
    /// capacities of the trunks on it (a token bucket at its root). An overlay trunk
    /// without a port of its own is not shaped. A port that could not be unshaped (or a
    /// failure to read what is shaped) is this edge's error: reported, and the apply
    /// retried, like any other. The rates the ports were last shaped to without an
    /// error are not shaped again (`tc` is a process: spawned and reading every qdisc
    /// of the namespace at each apply, it took 3 % of the machine in a bring-up of 1,000
    /// connections, each round waiting for it) but by a full reconcile.
    async fn shape_capacity(
        &self,
        cfg: &EdgeConfig,
        trunks: &Trunks,
        full: bool,
    ) -> Vec<ResourceError> {
        let mut rates: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
        for (t, problem) in trunks.values() {
            let port = match &t.attachment {
                _ if problem.is_some() => continue,
                Attachment::Vlan { port } => port.clone(),
                Attachment::Lag { bond, .. } => bond.clone(),
                Attachment::Vxlan { port: Some(p), .. } => p.clone(),
                Attachment::Vxlan { port: None, .. } => continue,
            };
            let e = rates.entry(port).or_default();
            e.0 += t.capacity_mbps;
            e.1.push(t.id.clone());
        }
        let want: BTreeMap<String, u64> = rates.iter().map(|(p, (m, _))| (p.clone(), *m)).collect();
        let mut shaped = self.shaped.lock().await;
        if !shaping_due(shaped.as_ref(), &want, full) {
            return vec![];
        }
        let host = self.opts.host_netns.clone();
        let asked = want.clone();
        // `tc` runs as a process: on a blocking thread.
        let done = tokio::task::spawn_blocking(move || {
            cic_dataplane::tc::reconcile(host.as_deref(), &asked)
        })
        .await
        .unwrap_or_else(|e| {
            Err(cic_dataplane::Error::Io(format!(
                "shaping task failed: {e}"
            )))
        });
        let failed = match done {
            Ok(f) => f,
            Err(e) if want.is_empty() => vec![("(reading qdiscs)".to_string(), e)],
            Err(e) => want.keys().map(|p| (p.clone(), e.clone())).collect(),
        };
        *shaped = failed.is_empty().then(|| want.clone());
        let mut errors = Vec::new();
        for (port, e) in failed {
            match rates.get(&port) {
                Some((_, ids)) => errors.extend(ids.iter().map(|id| {
                    Failure::from(e.clone())
                        .within(&format!("capacity on {port}"))
                        .of(id)
                })),
                None => errors.push(
                    Failure::from(e)
                        .within(&format!("unshaping {port}"))
                        .of(&cfg.edge_id),
                ),
            }
        }
        errors
    }

    /// Bundles of LAG trunks no longer here.
    async fn remove_stale_bonds(&self, cfg: &EdgeConfig) {
        if !self.caps.bond {
            return;
        }
        let Ok(links) = self.underlay.links().await else {
            return;
        };
        for l in links {
            let Some(trunk) = l.alias.as_deref().and_then(|a| a.strip_prefix(LAG_ALIAS)) else {
                continue;
            };
            if !cfg.trunks.iter().any(|t| t.id == trunk)
                && let Err(e) = self.underlay.del_link(l.index).await
            {
                warn!("removing bond {}: {e}", l.name);
            }
        }
    }

    /// A connection whose instance goes away while an instance new on this edge takes
    /// it (a connection attached to a routing instance; a routing instance deleted, its
    /// connections each on their own again) keeps its namespace: the going instance
    /// becomes the new one ([`Instance::rename`]), so its links stay and its customer's
    /// session stays up, and the reconcile adds what the new one has more (the fabric
    /// segment, the VPC prefixes) and removes what it has not. Without this each joining
    /// connection's namespace was removed and another made, its session dropped, at a
    /// cost of tens of milliseconds. One going instance becomes one new one: when a
    /// routing instance is deleted, one of its connections keeps the namespace (and its
    /// session), the others move (as when several lone connections join one new
    /// routing instance). Returns the new ids of the instances renamed.
    async fn take_over_moved_connections(
        &self,
        st: &mut State,
        cfg: &EdgeConfig,
    ) -> BTreeSet<String> {
        let mut renamed = BTreeSet::new();
        let wanted: BTreeSet<&str> = cfg.instances.iter().map(|i| i.id.as_str()).collect();
        // Each connection of a going instance, and that instance.
        let mut going: BTreeMap<String, String> = BTreeMap::new();
        for (id, i) in st
            .instances
            .iter()
            .filter(|(k, _)| !wanted.contains(k.as_str()))
        {
            for c in i.connections() {
                going.insert(c.clone(), id.clone());
            }
        }
        if going.is_empty() {
            return renamed;
        }
        for ic in cfg.instances.iter() {
            if st.instances.contains_key(&ic.id) {
                continue;
            }
            let Some(from) = ic.connections.iter().find_map(|c| {
                let from = going.get(&c.id)?;
                let i = st.instances.get(from)?;
                (!i.needs_restart(ic)).then(|| from.clone())
            }) else {
                continue;
            };
            let Some(mut i) = st.instances.remove(&from) else {
                continue;
            };
            for c in i.connections() {
                going.remove(c);
            }
            match i.rename(&ic.id, &self.ns_name(&ic.id)).await {
                Ok(()) => {
                    st.applied_instances.remove(&from);
                    st.tcp_drops.remove(&from);
                    st.instances.insert(ic.id.clone(), i);
                    renamed.insert(ic.id.clone());
                }
                Err(e) => {
                    warn!(instance = %from, to = %ic.id, "taking the namespace over: {e}; making a new one");
                    st.instances.insert(from, i);
                }
            }
        }
        renamed
    }

    /// Routing instances no longer wanted go first (their VXLAN VNIs free up), including
    /// namespaces left by an earlier run.
    async fn remove_gone_instances(&self, st: &mut State, cfg: &EdgeConfig) {
        // (Sets: with a thousand instances, looking each up in a list is a million
        // compares.)
        let wanted: BTreeSet<&str> = cfg.instances.iter().map(|i| i.id.as_str()).collect();
        let gone: Vec<String> = st
            .instances
            .keys()
            .filter(|k| !wanted.contains(k.as_str()))
            .cloned()
            .collect();
        // Each is stopped on its own (a speaker's Cease, its links deleted): several at once.
        let stopping: Vec<Instance> = gone
            .iter()
            .filter_map(|k| {
                st.tcp_drops.remove(k);
                st.instances.remove(k)
            })
            .collect();
        futures::stream::iter(stopping)
            .for_each_concurrent(RECONCILE_AT_ONCE, Instance::stop)
            .await;
        let wanted_ns: BTreeSet<String> = wanted.iter().map(|i| self.ns_name(i)).collect();
        let prefix = self.opts.netns_prefix.clone();
        // Listing reads a directory: on a blocking thread.
        let present = tokio::task::spawn_blocking(move || {
            ours(&prefix, netns::list(&prefix).unwrap_or_default())
        })
        .await
        .unwrap_or_default();
        let unwanted = present.into_iter().filter(|ns| !wanted_ns.contains(ns));
        futures::stream::iter(unwanted)
            .for_each_concurrent(RECONCILE_AT_ONCE, |ns| async move {
                info!(netns = %ns, "removing a namespace no routing instance wants");
                if let Err(e) = cic_dataplane::purge(&ns).await {
                    warn!("{e}");
                }
            })
            .await;
    }

    /// Each wanted instance started (or restarted when what it announces or accepts
    /// changed) and reconciled with the kernel and its speaker; one whose part of the
    /// config and the edge-wide inputs are what it was last applied with, without an
    /// error, is left as it is unless `full`. Returns how many were left.
    async fn reconcile_instances(
        &self,
        st: &mut State,
        cfg: &EdgeConfig,
        context: &ApplyContext,
        full: bool,
        renamed: &BTreeSet<String>,
        errors: &mut Vec<ResourceError>,
    ) -> usize {
        let same_context = !full && st.applied_context.as_ref() == Some(context);
        if !same_context {
            st.applied_instances.clear();
        }
        let wanted: BTreeSet<&str> = cfg.instances.iter().map(|i| i.id.as_str()).collect();
        st.applied_instances
            .retain(|id, _| wanted.contains(id.as_str()));
        let mut skipped = 0usize;
        let mut todo = Vec::new();
        for ic in &cfg.instances {
            if same_context
                && st.instances.contains_key(&ic.id)
                && st
                    .applied_instances
                    .get(&ic.id)
                    .is_some_and(|a| Arc::ptr_eq(a, ic) || a == ic)
            {
                skipped += 1;
                continue;
            }
            st.applied_instances.remove(&ic.id);
            if st
                .instances
                .get(&ic.id)
                .is_some_and(|i| i.needs_restart(ic))
                && let Some(i) = st.instances.remove(&ic.id)
            {
                info!(instance = %ic.id, "announced or accepted prefixes changed: restarting its speaker");
                i.stop().await;
            }
            todo.push(ic);
        }
        // Instances are each other's strangers (a namespace, a speaker, links of their
        // own each): several are reconciled at once, so that one's netlink round trips
        // and its speaker's start overlap another's. Those that exist go first (a change
        // there may free what a new one needs, such as a connection's VNI), and before
        // them those just renamed: one may still hold a link of a connection that moved
        // to another instance (a routing instance deleted, its connections apart again).
        let (existing, new): (Vec<&Arc<InstanceConfig>>, Vec<&Arc<InstanceConfig>>) = todo
            .into_iter()
            .partition(|ic| st.instances.contains_key(&ic.id));
        let (renamed, existing): (Vec<&Arc<InstanceConfig>>, Vec<&Arc<InstanceConfig>>) = existing
            .into_iter()
            .partition(|ic| renamed.contains(&ic.id));
        let vrps = st.rpki.as_ref().and_then(|r| r.data.borrow().clone());
        for wave in [renamed, existing, new] {
            let held: Vec<(&Arc<InstanceConfig>, Option<Instance>)> = wave
                .into_iter()
                .map(|ic| (ic, st.instances.remove(&ic.id)))
                .collect();
            let jobs = held.into_iter().map(|(ic, held)| {
                let vrps = vrps.clone();
                async move {
                    let _counted = self.reconciling.enter();
                    let mut i = match held {
                        Some(i) => i,
                        None => match Instance::start(
                            &ic.id,
                            &self.ns_name(&ic.id),
                            cfg,
                            ic,
                            self.bfd_book.clone(),
                        )
                        .await
                        {
                            Ok(i) => {
                                if let Some(v) = vrps {
                                    i.set_vrps(Some(v)).await;
                                }
                                i
                            }
                            Err(e) => {
                                let mut own: Vec<ResourceError> =
                                    ic.connections.iter().map(|c| e.clone().of(&c.id)).collect();
                                own.push(e.of(&ic.id));
                                return (ic, None, own);
                            }
                        },
                    };
                    let mut own = i.apply(&self.underlay, cfg, ic, &context.trunks).await;
                    i.peers_added().await;
                    if let Err(e) = i.set_drain(cfg.drain).await {
                        own.push(Failure::from(e).within("drain").of(&ic.id));
                    }
                    (ic, Some(i), own)
                }
            });
            let done: Vec<_> = futures::stream::iter(jobs)
                .buffer_unordered(RECONCILE_AT_ONCE)
                .collect()
                .await;
            for (ic, i, own) in done {
                if let Some(i) = i {
                    if own.is_empty() {
                        st.applied_instances.insert(ic.id.clone(), ic.clone());
                    }
                    st.instances.insert(ic.id.clone(), i);
                }
                errors.extend(own);
            }
        }
        skipped
    }

    /// What keeps this edge from carrying trunk `t`, if anything (a kernel that did not
    /// answer about its port is a transient failure: it says nothing of the port).
    async fn check_trunk(&self, t: &TrunkConfig) -> Option<Failure> {
        let port = match &t.attachment {
            Attachment::Lag { ports, .. } => {
                if !self.caps.bond || !self.caps.vlan {
                    return Some(Failure::from(format!(
                        "this edge's kernel has no {} support ({} mode); a LAG trunk needs bonding and 802.1Q",
                        if self.caps.bond {
                            "802.1Q VLAN"
                        } else {
                            "bonding"
                        },
                        self.caps.mode()
                    )));
                }
                for p in ports {
                    if let Some(f) = self.port_problem(p).await {
                        return Some(f);
                    }
                }
                None
            }
            Attachment::Vlan { port } => {
                if !self.caps.vlan {
                    return Some(Failure::from(format!(
                        "this edge's kernel has no 802.1Q VLAN support ({} mode); use an overlay trunk here",
                        self.caps.mode()
                    )));
                }
                Some(port)
            }
            Attachment::Vxlan { port, .. } => {
                if !self.caps.vxlan {
                    return Some("this edge's kernel has no VXLAN support".into());
                }
                port.as_ref()
            }
        };
        match port {
            Some(p) => self.port_problem(p).await,
            None => None,
        }
    }

    /// Whether port `p` is missing from this edge (or the kernel did not say).
    async fn port_problem(&self, p: &str) -> Option<Failure> {
        match self.underlay.link(p).await {
            Ok(Some(_)) => None,
            Ok(None) => Some(format!("port {p} does not exist on this edge").into()),
            Err(e) => Some(e.into()),
        }
    }
}

/// What keeps trunk `id` from being carried, from its check (`checked`), its failure
/// added to `errors`. A kernel too busy to answer says nothing of the trunk: it stays as
/// the last apply left it (`known`: what kept the same trunk from being carried then, if
/// anything), so a trunk carried goes on being carried (its connections' links and
/// sessions stay) and one whose port was missing stays down, its connections' failures
/// then said to be ones that may pass, as the trunk's is; the apply is retried. Only a
/// trunk this edge cannot carry takes its connections down.
fn trunk_problem(
    id: &str,
    checked: Option<Failure>,
    known: Option<Failure>,
    errors: &mut Vec<ResourceError>,
) -> Option<Failure> {
    let f = checked?;
    errors.push(f.clone().of(id));
    if f.transient {
        known.map(|k| Failure {
            transient: true,
            ..k
        })
    } else {
        Some(f)
    }
}

/// The kernel's neighbor table is the host's, shared by every namespace: room for each
/// connection's and each fabric segment's peer before they need it (sysctl writes, on a
/// blocking thread).
async fn make_neighbor_room(cfg: &EdgeConfig) {
    let peers: usize = cfg
        .instances
        .iter()
        .map(|i| i.connections.len() + usize::from(i.fabric.is_some()))
        .sum();
    let raised =
        tokio::task::spawn_blocking(move || cic_dataplane::netns::ensure_neighbor_room(peers))
            .await;
    match raised {
        Ok(Ok(Some((from, to)))) => info!(
            peers,
            "raised the kernel's neighbor table limit (gc_thresh3) from {from} to {to}"
        ),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => warn!(
            peers,
            "cannot make room in the kernel's neighbor table: {e}"
        ),
        Err(e) => warn!("neighbor table task failed: {e}"),
    }
}

/// Whether the ports are to be shaped (by `tc`) at this apply: at a full reconcile (which
/// undoes drift), when their rates changed, or when the last shaping failed (`shaped`
/// holds the rates of the last one without an error).
fn shaping_due(
    shaped: Option<&BTreeMap<String, u64>>,
    want: &BTreeMap<String, u64>,
    full: bool,
) -> bool {
    full || shaped != Some(want)
}

/// Of the namespaces whose names start with `prefix`, those this agent may have made:
/// the prefix and an instance's id, nothing else. Another agent's whose prefix nests in
/// this one (`cic-lab-…` under `cic-`) and an operator's own (`cic-test`) are not touched.
fn ours(prefix: &str, names: Vec<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| n.strip_prefix(prefix).is_some_and(cic_model::is_made_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trunk_the_kernel_did_not_answer_about_is_carried_on_its_failure_reported() {
        let mut errors = vec![];
        assert_eq!(trunk_problem("t1", None, None, &mut errors), None);
        assert!(errors.is_empty());
        let busy = Failure::from(cic_dataplane::Error::Busy(
            "find link xc-site1 in cicl-pop1: no answer from the kernel in 10 s".into(),
        ));
        assert_eq!(
            trunk_problem("t1", Some(busy.clone()), None, &mut errors),
            None,
            "carried on: its connections keep their links"
        );
        assert_eq!(errors.len(), 1);
        assert!(errors[0].transient && errors[0].resource_id == "t1");
        let gone = "port eth9 does not exist on this edge";
        let missing = Failure::from(gone);
        let decided = trunk_problem("t2", Some(missing.clone()), None, &mut errors);
        assert_eq!(decided.as_ref(), Some(&missing), "a missing port: final");
        assert!(!errors[1].transient);
        // A trunk whose port was missing at the last apply stays down while the kernel
        // does not answer: its connections are not carried on a port not known to be,
        // and their failures, as the trunk's, may pass.
        let kept = trunk_problem("t2", Some(busy), decided, &mut errors).expect("kept down");
        assert_eq!(kept.message, gone);
        assert!(
            kept.transient,
            "what the last apply knew, now a failure that may pass"
        );
        assert!(errors[2].transient && errors[2].resource_id == "t2");
        // The port back: carried.
        assert_eq!(trunk_problem("t2", None, Some(kept), &mut errors), None);
    }

    #[test]
    fn only_the_namespaces_named_after_an_instance_are_taken_for_ours() {
        let names = [
            "cic-rifjgpu3lsvdzlupfqie",
            "cic-pc0123456789abcdefgh",
            "cic-lab-rifjgpu3lsvdzlupfqie",
            "cic-test",
            "cic-",
            "cic-rifjgpu3lsvdzlupfqie-old",
            "other-rifjgpu3lsvdzlupfqie",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            ours("cic-", names.clone()),
            ["cic-rifjgpu3lsvdzlupfqie", "cic-pc0123456789abcdefgh"]
        );
        assert_eq!(ours("cic-lab-", names), ["cic-lab-rifjgpu3lsvdzlupfqie"]);
    }

    #[test]
    fn ports_are_shaped_again_only_when_their_rates_change_or_at_a_full_reconcile() {
        let rates = |r: &[(&str, u64)]| -> BTreeMap<String, u64> {
            r.iter().map(|(p, m)| (p.to_string(), *m)).collect()
        };
        let now = rates(&[("xc0", 1000), ("xc1", 200)]);
        assert!(!shaping_due(Some(&now), &now, false), "nothing changed");
        assert!(
            shaping_due(Some(&now), &now, true),
            "the full reconcile undoes drift"
        );
        assert!(
            shaping_due(None, &now, false),
            "the last shaping failed, or none yet"
        );
        let more = rates(&[("xc0", 2000), ("xc1", 200)]);
        assert!(shaping_due(Some(&now), &more, false), "a rate changed");
        let fewer = rates(&[("xc0", 1000)]);
        assert!(shaping_due(Some(&now), &fewer, false), "a port to unshape");
        assert!(
            shaping_due(None, &BTreeMap::new(), false),
            "nothing shaped yet"
        );
        assert!(!shaping_due(
            Some(&BTreeMap::new()),
            &BTreeMap::new(),
            false
        ));
    }

    #[test]
    fn at_once_counts_those_inside_and_keeps_the_most() {
        let a = AtOnce::default();
        let one = a.enter();
        let two = a.enter();
        drop(one);
        let three = a.enter();
        assert_eq!(a.peak(), 2);
        drop((two, three));
        let _four = a.enter();
        assert_eq!(a.peak(), 2);
        assert_eq!(a.now.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
