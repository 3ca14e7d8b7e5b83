//! The BFD session beside each BGP session: its timers, the task that takes BGP down when
//! it fails, and the snapshot a restarted agent resumes it from.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::BfdBook;
use cic_bfd::driver::Status as BfdState;
use cic_bgp::driver::InstanceHandle;
use cic_bgp::rib::PeerId;
use cic_model::edge::{BfdSettings, BfdStatus};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A BFD session beside a BGP session, and the task that takes BGP down when it fails.
pub(super) struct BfdLink {
    pub(super) state: watch::Receiver<BfdState>,
    pub(super) watcher: JoinHandle<()>,
    /// The namespace the session's snapshot is kept under in the book, shared by its
    /// watcher and the instance: it changes with a renamed namespace, the snapshot moved
    /// while it is held.
    pub(super) ns: SessionNs,
}

/// See [`BfdLink::ns`].
pub(super) type SessionNs = Arc<Mutex<String>>;

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
/// Keeps the session's snapshot in `book`, under the namespace `ns` names, for a
/// restarted agent.
pub(super) async fn take_down_on_failure(
    bgp: InstanceHandle,
    peer: PeerId,
    mut rx: watch::Receiver<BfdState>,
    book: Arc<BfdBook>,
    ns: SessionNs,
    address: IpAddr,
) {
    let (mut seen, mut saved) = {
        let s = rx.borrow();
        (s.downs, s.snapshot)
    };
    let keep = |saved| {
        let ns = ns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        book.set(&ns, address, saved);
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
