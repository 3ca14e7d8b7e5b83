//! The BFD session beside each BGP session: its timers, the task that takes BGP down when
//! it fails, and the snapshot a restarted agent resumes it from.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cic_bfd::Snapshot;
use cic_bfd::driver::Status as BfdState;
use cic_bgp::driver::InstanceHandle;
use cic_bgp::rib::PeerId;
use cic_model::edge::{BfdSettings, BfdStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::debug;

/// Where each Up BFD session leaves what a restarted agent needs to carry it on
/// (`<dir>/<namespace>/<peer>`): tmpfs, so it lives exactly as long as the namespaces.
pub(super) const BFD_STATE_DIR: &str = "/run/cic-edge/bfd";

pub(super) fn bfd_state_path(ns: &str, peer: IpAddr) -> std::path::PathBuf {
    std::path::Path::new(BFD_STATE_DIR)
        .join(ns)
        .join(peer.to_string())
}

pub(super) fn write_snapshot(path: &std::path::Path, s: Option<Snapshot>) {
    let r = match s {
        Some(s) => path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                std::fs::write(
                    path,
                    format!(
                        "{} {} {} {} {}\n",
                        s.local_disc,
                        s.remote_disc,
                        s.remote_min_rx,
                        s.remote_desired_min_tx,
                        s.remote_detect_mult
                    ),
                )
            }),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
    };
    if let Err(e) = r {
        debug!(path = %path.display(), "BFD state: {e}");
    }
}

pub(super) fn read_snapshot(path: &std::path::Path) -> Option<Snapshot> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Vec<u32> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match v[..] {
        [
            local_disc,
            remote_disc,
            remote_min_rx,
            remote_desired_min_tx,
            mult,
        ] => Some(Snapshot {
            local_disc,
            remote_disc,
            remote_min_rx,
            remote_desired_min_tx,
            remote_detect_mult: u8::try_from(mult).ok()?,
        }),
        _ => None,
    }
}

/// A BFD session beside a BGP session, and the task that takes BGP down when it fails.
pub(super) struct BfdLink {
    pub(super) state: watch::Receiver<BfdState>,
    pub(super) watcher: JoinHandle<()>,
    /// Where the watcher keeps the session's snapshot (it moves with a renamed namespace).
    pub(super) snapshot: SnapshotPath,
}

/// The file a BFD session's snapshot is kept in, shared by its watcher and the instance;
/// held while the file is written or moved.
pub(super) type SnapshotPath = Arc<Mutex<std::path::PathBuf>>;

impl BfdLink {
    pub(super) fn status(&self) -> BfdStatus {
        let s = self.state.borrow();
        BfdStatus {
            state: s.state.name().to_string(),
            detection_time_ms: s
                .detection_time
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
                .unwrap_or(0),
            downs: s.downs,
            last_diagnostic: s.last_failure.map(|d| d.text().to_string()),
        }
    }
}

/// Takes the BGP session down each time its BFD session leaves Up (RFC 5882 §4.3). A
/// count of failures, not the last state, so a Down followed at once by Up is not missed.
/// Keeps the session's snapshot at `state` for a restarted agent.
pub(super) async fn take_down_on_failure(
    bgp: InstanceHandle,
    peer: PeerId,
    mut rx: watch::Receiver<BfdState>,
    state: SnapshotPath,
) {
    let (mut seen, mut saved) = {
        let s = rx.borrow();
        (s.downs, s.snapshot)
    };
    let keep = |saved| {
        let path = state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        write_snapshot(&path, saved);
    };
    keep(saved);
    while rx.changed().await.is_ok() {
        let (downs, diag, snapshot) = {
            let s = rx.borrow_and_update();
            (s.downs, s.diag, s.snapshot)
        };
        if snapshot != saved {
            saved = snapshot;
            keep(saved);
        }
        if downs > seen {
            seen = downs;
            let _ = bgp
                .peer_down(peer, format!("BFD session down: {}", diag.text()))
                .await;
        }
    }
}

/// The BFD session's timers for `b`.
pub(super) fn bfd_config(b: &BfdSettings) -> cic_bfd::Config {
    cic_bfd::Config {
        desired_min_tx: Duration::from_millis(b.interval_ms.into()),
        required_min_rx: Duration::from_millis(b.interval_ms.into()),
        detect_mult: b.multiplier,
    }
}
