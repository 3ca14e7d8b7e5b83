//! cic's BGP speaker on its own (`cic bgp run`): the routing instance of the edge with
//! neighbors and policies from a TOML file ([`config`]), read through a control socket
//! ([`control`]) by `cic bgp show`. It programs no kernel routes: it is a route server,
//! a route collector, and the thing the benchmarks measure.

pub mod bench;
pub mod config;
pub mod control;

use std::path::{Path, PathBuf};

use cic_bgp::driver::{InstanceHandle, plain_sockets, spawn_instance};
use tracing::{info, warn};

pub use config::Config;

/// A running speaker: its instance and its control socket.
pub struct Speaker {
    pub instance: InstanceHandle,
    socket: PathBuf,
    server: tokio::task::JoinHandle<()>,
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
        for n in cfg.neighbors.iter().cloned() {
            instance
                .add_peer(n)
                .await
                .map_err(|e| format!("adding a neighbor: {e}"))?;
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
        let server = tokio::spawn(control::serve(listener, instance.clone(), cfg));
        Ok(Speaker {
            instance,
            socket: socket.to_path_buf(),
            server,
        })
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
