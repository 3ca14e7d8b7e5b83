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
/// Between attempts to reach a cache that has not given its own retry interval yet.
const RECONNECT_AFTER: Duration = Duration::from_secs(30);
/// How long a cache may stay silent while a query of ours is unanswered (counted from
/// the query or from the last bytes of its answer) before we give up on the connection.
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

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

type Report = mpsc::Sender<(usize, Option<Arc<Vrps>>)>;

async fn run_cache(index: usize, address: SocketAddr, report: Report) {
    let mut cache = Cache {
        index,
        client: Client::new(),
        expire_at: None,
        published: false,
        report,
    };
    loop {
        let stream = tokio::select! {
            s = tokio::time::timeout(CONNECT_WITHIN, TcpStream::connect(address)) => s,
            _ = cache.report.closed() => return,
        };
        let again_at_once = match stream {
            Ok(Ok(stream)) => {
                info!(cache = %address, version = cache.client.version(), "RPKI cache connected");
                match cache.session(address, stream).await {
                    Some(at_once) => at_once,
                    None => return,
                }
            }
            Ok(Err(e)) => {
                warn!(cache = %address, "RPKI cache unreachable: {e}");
                false
            }
            Err(_) => {
                warn!(cache = %address, "RPKI cache unreachable: no answer within {CONNECT_WITHIN:?}");
                false
            }
        };
        if !again_at_once && !cache.wait().await {
            return;
        }
    }
}

/// One cache's client and what its task has told the chooser.
struct Cache {
    index: usize,
    client: Client,
    /// When the data we hold gets too old to use (RFC 8210 §6's expire interval, from
    /// the last End of Data).
    expire_at: Option<Instant>,
    /// Whether the chooser holds a set of ours.
    published: bool,
    report: Report,
}

impl Cache {
    /// Tells the chooser the set as it is now (`None` unless synced). False when no one
    /// listens any more.
    async fn publish(&mut self) -> bool {
        let set = self
            .client
            .synced()
            .then(|| Arc::new(self.client.vrps().clone()));
        self.published = set.is_some();
        self.report.send((self.index, set)).await.is_ok()
    }

    async fn expire(&mut self) -> bool {
        self.expire_at = None;
        warn!("RPKI data of cache {} expired", self.index);
        self.client.expire();
        self.publish().await
    }

    /// Runs one connection. `Some(true)`: connect again at once; `Some(false)`: after
    /// the retry interval; `None`: no one listens any more.
    async fn session(&mut self, address: SocketAddr, mut stream: TcpStream) -> Option<bool> {
        let mut poll_at: Option<Instant> = None;
        let mut answer_by: Option<Instant> = None;
        let mut outs = self.client.connected();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            for o in outs.drain(..) {
                match o {
                    Output::Send(b) => {
                        if let Err(e) = stream.write_all(&b).await {
                            warn!(cache = %address, "RPKI cache: {e}");
                            return Some(false);
                        }
                    }
                    Output::Changed {
                        announced,
                        withdrawn,
                    } => {
                        info!(
                            cache = %address,
                            vrps = self.client.vrps().len(),
                            "RPKI: {} VRPs came, {} went",
                            announced.len(),
                            withdrawn.len()
                        );
                        if !self.publish().await {
                            return None;
                        }
                    }
                    Output::Fresh(d) => {
                        self.expire_at = Some(Instant::now() + d);
                        // An empty first set, or the same set after an expiry, is news.
                        if !self.published && !self.publish().await {
                            return None;
                        }
                    }
                    Output::PollIn(d) => poll_at = Some(Instant::now() + d),
                    Output::Close { why, reconnect } => {
                        warn!(cache = %address, "RPKI cache session closed: {why}");
                        return Some(reconnect);
                    }
                }
            }
            if !self.client.awaiting_answer() {
                answer_by = None;
            } else if answer_by.is_none() {
                answer_by = Some(Instant::now() + ANSWER_WITHIN);
            }
            tokio::select! {
                n = stream.read(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        warn!(cache = %address, "RPKI cache closed the connection");
                        return Some(false);
                    }
                    Ok(n) => {
                        outs = self.client.receive(&buf[..n]);
                        // Progress: the answer's deadline counts from these bytes.
                        answer_by = None;
                    }
                },
                _ = sleep_until(poll_at.unwrap_or_else(far)) => {
                    poll_at = None;
                    outs = self.client.poll();
                }
                _ = sleep_until(answer_by.unwrap_or_else(far)) => {
                    warn!(cache = %address, "RPKI cache did not answer within {ANSWER_WITHIN:?}");
                    return Some(false);
                }
                _ = sleep_until(self.expire_at.unwrap_or_else(far)) => {
                    if !self.expire().await {
                        return None;
                    }
                }
                _ = self.report.closed() => return None,
            }
        }
    }

    /// Waits before the next attempt (the cache's retry interval once it has given
    /// one); the data expires meanwhile if its time comes. False when no one listens
    /// any more.
    async fn wait(&mut self) -> bool {
        let until = Instant::now() + self.client.retry_after(RECONNECT_AFTER);
        loop {
            let expiring = self.expire_at.filter(|e| *e < until);
            tokio::select! {
                _ = sleep_until(expiring.unwrap_or(until)) => {
                    if expiring.is_none() {
                        return true;
                    }
                    if !self.expire().await {
                        return false;
                    }
                }
                _ = self.report.closed() => return false,
            }
        }
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpki::Pdu;
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, Vec<CacheSpec>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let spec = CacheSpec {
            address: l.local_addr().expect("addr"),
            preference: 1,
        };
        (l, vec![spec])
    }

    /// Reads the router's query (8 octets for a Reset Query).
    async fn read_query(s: &mut TcpStream) -> Pdu {
        let mut b = [0u8; 8];
        s.read_exact(&mut b).await.expect("query");
        Pdu::decode(&b).expect("pdu").expect("whole").0
    }

    #[tokio::test]
    async fn a_cache_with_no_roas_is_synced_and_its_task_ends_with_its_follower() {
        let (l, caches) = listener().await;
        let mut rx = start(caches);
        let (mut s, _) = l.accept().await.expect("accept");
        assert_eq!(read_query(&mut s).await, Pdu::ResetQuery);
        let mut answer = Pdu::CacheResponse { session: 5 }.encode(1);
        answer.extend(
            Pdu::EndOfData {
                session: 5,
                serial: 1,
                intervals: None,
            }
            .encode(1),
        );
        s.write_all(&answer).await.expect("answer");
        let set = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.is_some()))
            .await
            .expect("synced within 10 s")
            .expect("a set")
            .clone()
            .expect("synced");
        assert!(set.is_empty(), "an empty set is a set");
        // No one follows the data any more: the cache's connection ends.
        drop(rx);
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
            .await
            .expect("the task ended the connection")
            .expect("read");
        assert_eq!(n, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cache_that_never_answers_is_left_and_tried_again() {
        let (l, caches) = listener().await;
        let _rx = start(caches);
        let (mut s, _) = l.accept().await.expect("accept");
        let asked = Instant::now();
        assert_eq!(read_query(&mut s).await, Pdu::ResetQuery);
        // Silence: the router gives up on the connection after ANSWER_WITHIN and
        // connects again after its wait.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.expect("closed");
        assert!(asked.elapsed() >= ANSWER_WITHIN, "{:?}", asked.elapsed());
        let (mut s, _) = l.accept().await.expect("again");
        assert!(asked.elapsed() >= ANSWER_WITHIN + RECONNECT_AFTER);
        assert_eq!(read_query(&mut s).await, Pdu::ResetQuery);
    }
}
