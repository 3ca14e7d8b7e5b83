//! RPKI caches over TCP (RFC 8210): a task per cache runs its [`rpki::Client`], and the
//! set in force is that of the most preferred cache that is synced. Nothing is in force
//! (`None`) while no cache has synced, so nothing is judged invalid before the first
//! full set arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use crate::rpki::{Client, Output, Vrps};

/// One RPKI cache: where it listens, and its preference (lower is preferred, as RFC
/// 8210 §10 orders caches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub address: SocketAddr,
    pub preference: u8,
}

/// How long a connection attempt may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// Between attempts to reach a cache that does not answer (its own retry interval once
/// it has given one, at most this).
const RECONNECT_AFTER: Duration = Duration::from_secs(30);

/// Starts a task per cache and one choosing the set in force, published on the returned
/// receiver (`None`: no cache synced).
pub fn start(caches: Vec<CacheSpec>) -> watch::Receiver<Option<Arc<Vrps>>> {
    let (tx, rx) = watch::channel(None);
    if caches.is_empty() {
        return rx;
    }
    let (report, mut reports) = mpsc::channel::<(usize, Option<Arc<Vrps>>)>(64);
    for (i, c) in caches.iter().enumerate() {
        let report = report.clone();
        let address = c.address;
        tokio::spawn(async move { run_cache(i, address, report).await });
    }
    tokio::spawn(async move {
        let mut sets: Vec<Option<Arc<Vrps>>> = vec![None; caches.len()];
        // Ends when no one follows the data any more; the caches' tasks then end at
        // their next report.
        while let Some((i, set)) = tokio::select! {
            r = reports.recv() => r,
            _ = tx.closed() => None,
        } {
            sets[i] = set;
            let best = (0..caches.len())
                .filter(|j| sets[*j].is_some())
                .min_by_key(|j| (caches[*j].preference, *j));
            let now = best.and_then(|j| sets[j].clone());
            tx.send_if_modified(|cur| {
                let same = match (cur.as_ref(), now.as_ref()) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                };
                if !same {
                    *cur = now.clone();
                }
                !same
            });
        }
    });
    rx
}

async fn run_cache(
    index: usize,
    address: SocketAddr,
    report: mpsc::Sender<(usize, Option<Arc<Vrps>>)>,
) {
    let mut client = Client::new();
    // When the data we hold gets too old to use (RFC 8210 §6's expire interval).
    let mut expire_at: Option<Instant> = None;
    loop {
        let stream = tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(address)).await;
        let mut stream = match stream {
            Ok(Ok(s)) => s,
            other => {
                let why = match other {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".into(),
                };
                warn!(cache = %address, "RPKI cache unreachable: {why}");
                if wait_or_expire(&mut client, &mut expire_at, index, &report).await {
                    return;
                }
                continue;
            }
        };
        info!(cache = %address, version = client.version(), "RPKI cache connected");
        let mut poll_at: Option<Instant> = None;
        let mut again_at_once = false;
        let mut outs = client.connected();
        let mut buf = vec![0u8; 16 * 1024];
        'conn: loop {
            for o in outs.drain(..) {
                match o {
                    Output::Send(b) => {
                        if let Err(e) = stream.write_all(&b).await {
                            warn!(cache = %address, "RPKI cache: {e}");
                            break 'conn;
                        }
                    }
                    Output::Changed {
                        announced,
                        withdrawn,
                    } => {
                        info!(
                            cache = %address,
                            vrps = client.vrps().len(),
                            "RPKI: {} VRPs came, {} went",
                            announced.len(),
                            withdrawn.len()
                        );
                        let set = client.synced().then(|| Arc::new(client.vrps().clone()));
                        if report.send((index, set)).await.is_err() {
                            return;
                        }
                    }
                    Output::PollIn(d) => {
                        poll_at = Some(Instant::now() + d);
                        if client.synced() {
                            expire_at = Some(
                                Instant::now()
                                    + Duration::from_secs(client.intervals().expire.into()),
                            );
                        }
                    }
                    Output::Close { why, reconnect } => {
                        warn!(cache = %address, "RPKI cache session closed: {why}");
                        again_at_once = reconnect;
                        break 'conn;
                    }
                }
            }
            tokio::select! {
                n = stream.read(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        warn!(cache = %address, "RPKI cache closed the connection");
                        break 'conn;
                    }
                    Ok(n) => outs = client.receive(&buf[..n]),
                },
                _ = sleep_until(poll_at.unwrap_or_else(far)) => {
                    poll_at = None;
                    outs = client.poll();
                }
                _ = sleep_until(expire_at.unwrap_or_else(far)) => {
                    expire_at = None;
                    outs = client.expire();
                    if report.send((index, None)).await.is_err() {
                        return;
                    }
                }
            }
        }
        if !again_at_once && wait_or_expire(&mut client, &mut expire_at, index, &report).await {
            return;
        }
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// Waits before the next attempt; the data expires meanwhile if its time comes. True
/// when no one listens any more.
async fn wait_or_expire(
    client: &mut Client,
    expire_at: &mut Option<Instant>,
    index: usize,
    report: &mpsc::Sender<(usize, Option<Arc<Vrps>>)>,
) -> bool {
    let retry = Duration::from_secs(client.intervals().retry.into()).min(RECONNECT_AFTER);
    let until = Instant::now() + retry;
    match *expire_at {
        Some(e) if e < until => {
            sleep_until(e).await;
            *expire_at = None;
            client.expire();
            if report.send((index, None)).await.is_err() {
                return true;
            }
            sleep_until(until).await;
        }
        _ => sleep_until(until).await,
    }
    report.is_closed()
}
