//! cic's BGP speaker on its own (`cic bgp run`): the routing instance of the edge with
//! neighbors and policies from a TOML file ([`config`]), read through a control socket
//! ([`control`]) by `cic bgp show`. It programs no kernel routes: it is a route server,
//! a route collector, and the thing the benchmarks measure.

pub mod bench;
pub mod config;
pub mod control;
mod gobgp_api;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use cic_bgp::driver::{InstanceHandle, PeerConfig, plain_sockets, spawn_instance};
use cic_bgp::rib::PeerId;
use tracing::{info, warn};

pub use config::Config;

/// A running speaker: its instance and its control socket.
pub struct Speaker {
    pub instance: InstanceHandle,
    socket: PathBuf,
    server: tokio::task::JoinHandle<()>,
    /// The config running, and each neighbor's session.
    cfg: Config,
    peers: BTreeMap<IpAddr, PeerId>,
}

impl Speaker {
    /// Starts the speaker: the listeners, every neighbor, and the control socket at
    /// `socket` (refused if another speaker answers there; a stale file is replaced).
    pub async fn start(cfg: Config, socket: &Path) -> Result<Speaker, String> {
        let listener = control::bind(socket).await?;
        let instance = spawn_instance(cfg.params.clone(), plain_sockets(), &cfg.listen);
        if let Some(e) = instance.status().borrow().listen_error.clone() {
            instance.shutdown().await;
            let _ = std::fs::remove_file(socket);
            return Err(format!("listen: {e}"));
        }
        let mut peers = BTreeMap::new();
        for n in cfg.neighbors.iter().cloned() {
            let address = n.spec.address;
            let id = instance
                .add_peer(n)
                .await
                .map_err(|e| format!("adding a neighbor: {e}"))?;
            peers.insert(address, id);
        }
        instance
            .peers_added()
            .await
            .map_err(|e| format!("starting: {e}"))?;
        info!(
            asn = cfg.params.local_asn,
            neighbors = cfg.neighbors.len(),
            socket = %socket.display(),
            "BGP speaker running"
        );
        // The RPKI data in force follows the caches; the instance judges again by it.
        let rpki = cic_bgp::driver::start_rpki(cfg.rpki_caches.clone());
        if !cfg.rpki_caches.is_empty() {
            let (mut changes, instance) = (rpki.clone(), instance.clone());
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    let v = changes.borrow_and_update().clone();
                    if instance.set_vrps(v).await.is_err() {
                        return;
                    }
                }
            });
        }
        let server = tokio::spawn(control::serve(
            listener,
            instance.clone(),
            cfg.clone(),
            rpki,
        ));
        Ok(Speaker {
            instance,
            socket: socket.to_path_buf(),
            server,
            cfg,
            peers,
        })
    }

    /// Applies a config read again (SIGHUP): neighbors that went are removed (Cease / Peer
    /// De-configured), new ones added, changed ones restarted with their new settings —
    /// but one whose policies alone changed keeps its session: what it is sent is judged
    /// again, and it is asked for its routes again (route refresh); the
    /// originated prefixes are announced and withdrawn as they changed. The sessions of
    /// unchanged neighbors are not touched. What only a restart can change (the ASN, the
    /// router id, the listeners, the max-prefix action) refuses the whole reload, and
    /// nothing changes. Returns what was done.
    pub async fn reload(&mut self, new: Config) -> Result<String, String> {
        let (old, now) = (&self.cfg.params, &new.params);
        let mut fixed = Vec::new();
        if now.local_asn != old.local_asn {
            fixed.push("asn");
        }
        if new.router_id != self.cfg.router_id {
            fixed.push("router_id");
        }
        if new.listen != self.cfg.listen {
            fixed.push("listen");
        }
        if new.rpki_caches != self.cfg.rpki_caches {
            fixed.push("rpki_cache");
        }
        if now.max_prefix_action != old.max_prefix_action
            || now.max_prefix_idle != old.max_prefix_idle
            || now.max_prefix_warning != old.max_prefix_warning
        {
            fixed.push("max_prefix_action/max_prefix_idle/max_prefix_warning");
        }
        if !fixed.is_empty() {
            return Err(format!(
                "{} changed: restart the speaker for that; nothing was applied",
                fixed.join(", ")
            ));
        }
        let gone = |e: std::io::Error| format!("the speaker's instance: {e}");
        let running: BTreeMap<IpAddr, &PeerConfig> = self
            .cfg
            .neighbors
            .iter()
            .map(|n| (n.spec.address, n))
            .collect();
        let wanted: BTreeMap<IpAddr, &PeerConfig> =
            new.neighbors.iter().map(|n| (n.spec.address, n)).collect();
        // A neighbor whose policies alone changed keeps its session (route refresh).
        let policy_only = |a: &PeerConfig, b: &PeerConfig| {
            a.spec.policy != b.spec.policy && {
                let mut a = a.clone();
                a.spec.policy = b.spec.policy.clone();
                a == *b
            }
        };
        let repolicied: Vec<(IpAddr, &PeerConfig)> = running
            .iter()
            .filter_map(|(a, n)| Some((*a, *wanted.get(a).filter(|w| policy_only(n, w))?)))
            .collect();
        let policies = repolicied.len();
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for (address, n) in &running {
            if wanted.get(address) == Some(n) || repolicied.iter().any(|(a, _)| a == address) {
                continue;
            }
            if let Some(id) = self.peers.remove(address) {
                self.instance.remove_peer(id).await.map_err(gone)?;
            }
            if wanted.contains_key(address) {
                changed += 1;
            } else {
                removed += 1;
            }
        }
        for (address, n) in &repolicied {
            if let Some(id) = self.peers.get(address) {
                self.instance
                    .set_policy(*id, n.spec.policy.clone())
                    .await
                    .map_err(gone)?;
            }
        }
        for (address, n) in &wanted {
            if running.get(address) == Some(n) || repolicied.iter().any(|(a, _)| a == address) {
                continue;
            }
            let id = self.instance.add_peer((*n).clone()).await.map_err(gone)?;
            self.peers.insert(*address, id);
            if !running.contains_key(address) {
                added += 1;
            }
        }
        let (was, now) = (&old.announce, &now.announce);
        let announced = now.iter().filter(|p| !was.contains(p)).count();
        let withdrawn = was.iter().filter(|p| !now.contains(p)).count();
        if was != now {
            self.instance
                .set_announce(now.clone())
                .await
                .map_err(gone)?;
        }
        self.cfg = new;
        Ok(format!(
            "neighbors: {added} added, {removed} removed, {changed} restarted with new settings, \
             {} with new policies (sessions kept, routes asked for again); \
             originated prefixes: {announced} added, {withdrawn} withdrawn",
            policies
        ))
    }

    /// Ends every session with Cease / Administrative Shutdown, saying why (RFC 9003,
    /// which updates RFC 8203), and removes the socket.
    pub async fn stop(self, why: &str) {
        self.server.abort();
        self.instance
            .shutdown_with(cic_bgp::fsm::admin_shutdown(why))
            .await;
        if let Err(e) = std::fs::remove_file(&self.socket) {
            warn!("removing {}: {e}", self.socket.display());
        }
    }
}
