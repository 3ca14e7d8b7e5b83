//! The BGP benchmarks (`cic bench bgp`), over loopback addresses of their own (127.0.41.1
//! the speaker, 127.0.42.x the feeding peers, 127.0.43.1 the receiver), one speaker after
//! another — cic, BIRD, FRR, GoBGP:
//!
//! - **ingest**: a feeder sends pre-encoded UPDATEs as fast as TCP takes them; seconds
//!   from the moment every session is Established until the last prefix is in the
//!   speaker's Loc-RIB, and its peak RSS (VmHWM). Each speaker's count is polled every
//!   20 ms on a socket (GoBGP's through its gRPC API, `gobgp_api.rs`).
//! - **monitor**: the same feed, timed until a peer the speaker exports everything to
//!   (this process, as for export) holds every prefix of the feed; nothing is polled.
//! - **export**: the speaker is fed the table first; then a receiving peer connects and
//!   the time is taken from its session Established until it holds every prefix. The
//!   receiver is this process (the same code for every speaker): it decodes every UPDATE
//!   and counts the prefixes, so nothing is polled. Meanwhile the speaker's control
//!   socket is asked something every 100 ms and the slowest answer is reported.
//!
//! The feed is the same for every speaker: `prefixes` distinct /24s split evenly over
//! `peers` sessions, origin IGP, NEXT_HOP 10.42.0.x (the peer's number; unreachable,
//! which none of the speakers needs). Either in runs of `per_update` prefixes per UPDATE
//! with 1,000 distinct AS paths (a run's path depends on its number), or with `sets`
//! distinct attribute sets, as a real table has: each prefix takes a set by a hash of its
//! number, so a set's prefixes are scattered over the table, and the feeder sends each
//! set's prefixes together (AS paths of 2 to 5 ASNs, a community on half the sets, a MED
//! on a third).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cic_bgp::wire::{AsPathSegment, Message, Open, Origin, PathAttrs, encode_updates};
use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;

mod speakers;

const SPEAKER: Ipv4Addr = Ipv4Addr::new(127, 0, 41, 1);
const PORT: u16 = 17941;
const SPEAKER_ASN: u32 = 65000;
const FEED_ASN: u32 = 65001;
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct Feed {
    pub prefixes: usize,
    pub peers: usize,
    pub per_update: usize,
    /// Distinct attribute sets (0: runs of `per_update` with 1,000 AS paths).
    pub sets: usize,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ingest,
    /// Ingest timed at a monitor peer: the speaker exports everything to a peer of this
    /// process, which counts the feed's prefixes as they arrive; nothing is polled.
    Monitor,
    Export,
}

const RECEIVER: Ipv4Addr = Ipv4Addr::new(127, 0, 43, 1);
const RECEIVER_ASN: u32 = 65100;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub speaker: String,
    pub version: String,
    pub prefixes: usize,
    pub peers: usize,
    /// From every session Established to the last prefix in the Loc-RIB (monitor: in
    /// the monitor peer's hands).
    pub seconds: f64,
    /// Peak resident memory of the speaker's process, MiB.
    pub peak_rss_mib: f64,
    /// Bytes of peak RSS per prefix, above the idle process's RSS.
    pub bytes_per_prefix: f64,
    /// Export and monitor: the UPDATEs the receiving peer got, and their octets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub octets: Option<usize>,
    /// Export: the slowest answer of the control socket while sending, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slowest_control_ms: Option<f64>,
}

fn peer_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 42, 1 + i as u8)
}

/// The `i`-th prefix of the feed: consecutive /24s from 1.0.0.0.
fn prefix(i: usize) -> Ipv4Net {
    let base = 0x0100_0000u32 + ((i as u32) << 8);
    Ipv4Net::new(Ipv4Addr::from(base), 24).expect("a /24")
}

/// The attribute set of prefix `i` among `sets`: scattered over the table (SplitMix64's
/// finalizer, so every set is used about equally; a multiplicative hash alone left a
/// lattice that missed some sets).
fn set_of(i: usize, sets: usize) -> usize {
    let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % sets as u64) as usize
}

/// Attribute set `s` of peer `p`: each distinct (an ASN of its own), of the shapes a
/// real table has.
fn set_attrs(s: usize, p: usize) -> PathAttrs {
    let s32 = s as u32;
    let mut path = vec![FEED_ASN, 100_000 + s32];
    for k in 0..(s % 4) as u32 {
        path.push(3_000 + (s32 * 31 + k * 7) % 20_000);
    }
    PathAttrs {
        origin: Origin::Igp,
        as_path: vec![AsPathSegment::Sequence(path)],
        next_hop: Some(Ipv4Addr::new(10, 42, 0, 1 + p as u8)),
        med: s.is_multiple_of(3).then_some(s32 % 1000),
        communities: if s.is_multiple_of(2) {
            vec![(FEED_ASN << 16) | (s32 % 65_000)]
        } else {
            vec![]
        },
        ..Default::default()
    }
}

/// Pre-encoded UPDATEs of each peer, and its End-of-RIB after them.
fn encode_feed(feed: &Feed) -> Vec<Vec<u8>> {
    if feed.sets > 0 {
        return encode_diverse_feed(feed);
    }
    let per_peer = feed.prefixes.div_ceil(feed.peers);
    (0..feed.peers)
        .map(|p| {
            let lo = p * per_peer;
            let hi = ((p + 1) * per_peer).min(feed.prefixes);
            let mut wire = Vec::new();
            let all: Vec<usize> = (lo..hi).collect();
            for (run, chunk) in all.chunks(feed.per_update.max(1)).enumerate() {
                let g = (lo / feed.per_update.max(1) + run) as u32;
                let attrs = PathAttrs {
                    origin: Origin::Igp,
                    as_path: vec![AsPathSegment::Sequence(vec![
                        FEED_ASN,
                        10_000 + g % 1000,
                        20_000 + g % 7,
                    ])],
                    // Not the peer's loopback address: GoBGP refuses 127/8 next hops.
                    next_hop: Some(Ipv4Addr::new(10, 42, 0, 1 + p as u8)),
                    ..Default::default()
                };
                let nlri: Vec<IpNet> = chunk.iter().map(|i| prefix(*i).into()).collect();
                for m in encode_updates(&[], Some(&attrs), &nlri) {
                    wire.extend_from_slice(&m);
                }
            }
            wire.extend_from_slice(&Message::Update(Default::default()).encode());
            wire
        })
        .collect()
}

/// [`encode_feed`] with `sets` attribute sets: each set's prefixes together, as a router
/// sends its table.
fn encode_diverse_feed(feed: &Feed) -> Vec<Vec<u8>> {
    let per_peer = feed.prefixes.div_ceil(feed.peers);
    (0..feed.peers)
        .map(|p| {
            let lo = p * per_peer;
            let hi = ((p + 1) * per_peer).min(feed.prefixes);
            let mut by_set: std::collections::BTreeMap<usize, Vec<IpNet>> = Default::default();
            for i in lo..hi {
                by_set
                    .entry(set_of(i, feed.sets))
                    .or_default()
                    .push(prefix(i).into());
            }
            let mut wire = Vec::new();
            for (s, nlri) in by_set {
                for m in encode_updates(&[], Some(&set_attrs(s, p)), &nlri) {
                    wire.extend_from_slice(&m);
                }
            }
            wire.extend_from_slice(&Message::Update(Default::default()).encode());
            wire
        })
        .collect()
}

/// One BGP message off `s` (type, body).
fn read_msg(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 19];
    s.read_exact(&mut h)?;
    let len = u16::from_be_bytes([h[16], h[17]]) as usize;
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body)?;
    Ok((h[18], body))
}

/// Connects from `local` to `speaker` as AS `asn`, exchanges OPEN and KEEPALIVE, and
/// returns the stream.
fn establish(local: Ipv4Addr, speaker: Ipv4Addr, asn: u32) -> Result<TcpStream, String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| e.to_string())?;
    sock.bind(&SocketAddr::from((local, 0)).into())
        .map_err(|e| format!("bind {local}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sock.connect(&SocketAddr::from((speaker, PORT)).into()) {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => {
                return Err(format!("connect from {local}: {e}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let mut s: TcpStream = sock.into();
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    // A handshake the speaker never finishes fails the run rather than stalling it (the
    // other sessions would meanwhile run out of hold time).
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let open = Message::Open(Open::new(asn, 240, local)).encode();
    s.write_all(&open).map_err(|e| e.to_string())?;
    let mut got_open = false;
    loop {
        let (t, body) = read_msg(&mut s).map_err(|e| format!("from the speaker: {e}"))?;
        match t {
            1 => {
                got_open = true;
                s.write_all(&Message::Keepalive.encode())
                    .map_err(|e| e.to_string())?;
            }
            4 if got_open => return Ok(s),
            3 => {
                return Err(format!(
                    "NOTIFICATION {}/{} from the speaker",
                    body.first().unwrap_or(&0),
                    body.get(1).unwrap_or(&0)
                ));
            }
            _ => {}
        }
    }
}

/// A speaker under test.
trait Target: Sync {
    fn name(&self) -> String;
    fn version(&self) -> String;
    /// Starts the speaker with `peers` feeding neighbors (import everything, export
    /// nothing) and, for `export`, the receiver (import nothing, export everything).
    fn start(&mut self, dir: &Path, peers: usize, export: bool) -> Result<u32, String>;
    fn count(&self) -> Option<usize>;
    /// A question on the control socket that the speaker's routing task answers.
    fn probe(&self) -> Option<()> {
        self.count().map(|_| ())
    }
    fn stop(&mut self);
}

fn rss_kib(pid: u32, key: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// The ingest benchmark: timed by polling the speaker's own count, or (`monitor`) at a
/// peer the speaker exports everything to, which this process reads — the same reader
/// for every speaker, and nothing asked of the speaker while it works.
fn run_one(
    t: &mut dyn Target,
    feed: &Feed,
    wire: &[Vec<u8>],
    monitor: bool,
) -> Result<Measurement, String> {
    let dir =
        std::env::temp_dir().join(format!("cic-bench-bgp-{}-{}", t.name(), std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // (A speaker that started but did not come up is stopped, not left holding the
    // bench's addresses.)
    let pid = t
        .start(&dir, feed.peers, monitor)
        .inspect_err(|_| t.stop())?;
    let idle_kib = rss_kib(pid, "VmRSS:");
    // The monitor's session is up before the feed begins.
    let mut rx = match monitor {
        true => Some(establish(RECEIVER, SPEAKER, RECEIVER_ASN).inspect_err(|_| t.stop())?),
        false => None,
    };
    let up = Arc::new(Barrier::new(feed.peers + 1));
    let go = Arc::new(Barrier::new(feed.peers + 1));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut feeders = Vec::new();
    for (i, w) in wire.iter().enumerate() {
        let (up, go, w, failed) = (up.clone(), go.clone(), w.clone(), failed.clone());
        feeders.push(std::thread::spawn(move || -> Result<(), String> {
            let s = establish(peer_addr(i), SPEAKER, FEED_ASN);
            if let (Err(e), Ok(mut f)) = (&s, failed.lock()) {
                f.push(e.clone());
            }
            up.wait();
            // (Every thread passes both barriers, so a failed one cannot stall the rest.)
            go.wait();
            let mut s = s?;
            s.write_all(&w).map_err(|e| e.to_string())?;
            // Keep the session open (and drained) until the measurement is over.
            let mut sink = [0u8; 4096];
            s.set_read_timeout(Some(Duration::from_secs(600))).ok();
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            Ok(())
        }));
    }
    up.wait();
    let t0 = Instant::now();
    go.wait();
    if let Some(e) = failed.lock().ok().and_then(|f| f.first().cloned()) {
        t.stop();
        return Err(format!("{}: a session did not come up: {e}", t.name()));
    }
    let mut last = 0;
    let monitored = rx
        .as_mut()
        .map(|rx| receive(rx, feed.prefixes).map(|(u, o)| (u, o, t0.elapsed().as_secs_f64())));
    let seconds = loop {
        if let Some(r) = &monitored {
            match r {
                Ok((_, _, secs)) => break *secs,
                Err(e) => {
                    t.stop();
                    return Err(format!("{}: at the monitor: {e}", t.name()));
                }
            }
        }
        let n = t.count().unwrap_or(0);
        if n >= feed.prefixes {
            break t0.elapsed().as_secs_f64();
        }
        if t0.elapsed() > Duration::from_secs(600) {
            t.stop();
            return Err(format!(
                "{}: {n} of {} prefixes after 600 s",
                t.name(),
                feed.prefixes
            ));
        }
        if n == last && feeders.iter().all(|f| f.is_finished()) {
            t.stop();
            return Err(format!("{}: the feed ended with {n} prefixes", t.name()));
        }
        last = n;
        // Polling costs the speaker too (a control connection, and for BIRD a report
        // per protocol): every 20 ms, the resolution of the figures.
        std::thread::sleep(POLL);
    };
    let peak_kib = rss_kib(pid, "VmHWM:");
    t.stop();
    drop(rx);
    for f in feeders {
        match f.join() {
            Ok(Ok(())) | Ok(Err(_)) => {}
            Err(_) => return Err("a feeder thread panicked".into()),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Measurement {
        speaker: t.name(),
        version: t.version(),
        prefixes: feed.prefixes,
        peers: feed.peers,
        seconds,
        peak_rss_mib: peak_kib / 1024.0,
        bytes_per_prefix: (peak_kib - idle_kib) * 1024.0 / feed.prefixes as f64,
        updates: monitored
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.0),
        octets: monitored
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.1),
        slowest_control_ms: None,
    })
}

/// Feeds `t` the table, waits until it holds it, then times a new peer's receipt of it.
fn run_export(t: &mut dyn Target, feed: &Feed, wire: &[Vec<u8>]) -> Result<Measurement, String> {
    let dir = std::env::temp_dir().join(format!(
        "cic-bench-bgp-export-{}-{}",
        t.name(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let pid = t.start(&dir, feed.peers, true).inspect_err(|_| t.stop())?;
    let idle_kib = rss_kib(pid, "VmRSS:");
    // The feed, as fast as the speaker takes it; the sessions stay up.
    let mut feeders = Vec::new();
    for (i, w) in wire.iter().enumerate() {
        let w = w.clone();
        feeders.push(std::thread::spawn(move || -> Result<(), String> {
            let mut s = establish(peer_addr(i), SPEAKER, FEED_ASN)?;
            s.write_all(&w).map_err(|e| e.to_string())?;
            let mut sink = [0u8; 4096];
            s.set_read_timeout(Some(Duration::from_secs(900))).ok();
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
            Ok(())
        }));
    }
    let loaded = Instant::now();
    loop {
        if t.count().unwrap_or(0) >= feed.prefixes {
            break;
        }
        if loaded.elapsed() > Duration::from_secs(600) {
            t.stop();
            return Err(format!("{}: the table did not load in 600 s", t.name()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // The control socket, asked every 100 ms while the speaker sends.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slowest = Arc::new(std::sync::Mutex::new(Duration::ZERO));
    let t0 = Instant::now();
    let mut rx = establish(RECEIVER, SPEAKER, RECEIVER_ASN)?;
    let established = t0.elapsed();
    let start = Instant::now();
    let (d, sl) = (done.clone(), slowest.clone());
    let probe: &dyn Target = t;
    let (updates, octets, seconds) = std::thread::scope(|scope| {
        scope.spawn(move || {
            while !d.load(std::sync::atomic::Ordering::Acquire) {
                let q = Instant::now();
                let _ = probe.probe();
                let took = q.elapsed();
                if let Ok(mut s) = sl.lock() {
                    *s = (*s).max(took);
                }
                std::thread::sleep(Duration::from_millis(100).saturating_sub(took));
            }
        });
        let r = receive(&mut rx, feed.prefixes);
        done.store(true, std::sync::atomic::Ordering::Release);
        r.map(|(u, o)| (u, o, start.elapsed().as_secs_f64()))
    })?;
    let _ = established;
    let peak_kib = rss_kib(pid, "VmHWM:");
    t.stop();
    drop(rx);
    for f in feeders {
        let _ = f.join();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let slowest = slowest.lock().map(|s| *s).unwrap_or_default();
    Ok(Measurement {
        speaker: t.name(),
        version: t.version(),
        prefixes: feed.prefixes,
        peers: feed.peers,
        seconds,
        peak_rss_mib: peak_kib / 1024.0,
        bytes_per_prefix: (peak_kib - idle_kib) * 1024.0 / feed.prefixes as f64,
        updates: Some(updates),
        octets: Some(octets),
        slowest_control_ms: Some(slowest.as_secs_f64() * 1000.0),
    })
}

/// Reads UPDATEs off `s` until `want` distinct prefixes were announced; returns the
/// UPDATEs and octets read. (KEEPALIVEs are answered by the speaker's hold time of 240
/// s, longer than any run.)
fn receive(s: &mut TcpStream, want: usize) -> Result<(usize, usize), String> {
    let mut seen: std::collections::HashSet<IpNet> = std::collections::HashSet::with_capacity(want);
    let (mut updates, mut octets) = (0, 0);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 16];
    let cx = cic_bgp::wire::DecodeContext::default();
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut keepalive = Instant::now();
    while seen.len() < want {
        if Instant::now() > deadline {
            return Err(format!("{} of {want} prefixes after 600 s", seen.len()));
        }
        // Our KEEPALIVEs, so a long run is not ended by the speaker's hold timer (240 s).
        if keepalive.elapsed() > Duration::from_secs(30) {
            s.write_all(&Message::Keepalive.encode())
                .map_err(|e| format!("sending a KEEPALIVE: {e}"))?;
            keepalive = Instant::now();
        }
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(format!("receiving: {e}")),
        };
        if n == 0 {
            return Err(format!(
                "the speaker closed the session with {} of {want} prefixes sent",
                seen.len()
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut at = 0;
        while let Some((m, len)) = cic_bgp::wire::decode_message(&buf[at..], &cx)
            .map_err(|e| format!("a message from the speaker: {e}"))?
        {
            at += len;
            if let Message::Update(u) = m {
                updates += 1;
                octets += len;
                // The feed's /24s only: a speaker may export more (BIRD its static
                // route for the feed's next hops).
                seen.extend(u.nlri.into_iter().filter(|p| p.prefix_len() == 24));
            }
        }
        buf.drain(..at);
    }
    Ok((updates, octets))
}

/// Runs the benchmark `mode` with `feed` against each speaker in `speakers` ("cic",
/// "bird", "frr", "gobgp") in turn; `cic` is the binary to run for cic.
pub fn run(
    mode: Mode,
    feed: &Feed,
    speakers: &[String],
    cic: &Path,
) -> Result<Vec<Measurement>, String> {
    if feed.peers == 0 || feed.peers > 250 {
        return Err(format!("--peers {}: from 1 to 250", feed.peers));
    }
    if feed.prefixes == 0 || feed.prefixes > 1 << 23 {
        return Err(format!(
            "--prefixes {}: from 1 to {}",
            feed.prefixes,
            1 << 23
        ));
    }
    let wire = encode_feed(feed);
    let mut out = Vec::new();
    for s in speakers {
        let mut t = speakers::target(s, cic)
            .ok_or_else(|| format!("unknown speaker {s:?}; known: cic, bird, frr, gobgp"))?;
        let r = match mode {
            Mode::Ingest => run_one(t.as_mut(), feed, &wire, false)?,
            Mode::Monitor => run_one(t.as_mut(), feed, &wire, true)?,
            Mode::Export => run_export(t.as_mut(), feed, &wire)?,
        };
        eprintln!(
            "{:<6} {:>9} prefixes {:>4} peers  {:>7.3} s  peak RSS {:>7.1} MiB  {:>6.0} B/prefix{}",
            r.speaker,
            r.prefixes,
            r.peers,
            r.seconds,
            r.peak_rss_mib,
            r.bytes_per_prefix,
            match (r.updates, r.octets, r.slowest_control_ms) {
                (Some(u), Some(o), Some(c)) => format!(
                    "  {u} UPDATEs, {:.1} MiB  slowest control answer {c:.0} ms",
                    o as f64 / 1048576.0
                ),
                (Some(u), Some(o), None) => format!(
                    "  {u} UPDATEs, {:.1} MiB at the monitor",
                    o as f64 / 1048576.0
                ),
                _ => String::new(),
            }
        );
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_covers_every_prefix_once_and_ends_each_peer_with_end_of_rib() {
        let feed = Feed {
            prefixes: 1000,
            peers: 3,
            per_update: 16,
            sets: 0,
        };
        let wire = encode_feed(&feed);
        let mut seen = std::collections::BTreeSet::new();
        for w in &wire {
            let mut at = 0;
            let mut last_empty = false;
            while at < w.len() {
                let (m, len) = cic_bgp::wire::decode_message(
                    &w[at..],
                    &cic_bgp::wire::DecodeContext::default(),
                )
                .expect("decodes")
                .expect("a whole message");
                let Message::Update(u) = m else {
                    panic!("not an UPDATE")
                };
                last_empty = u.nlri.is_empty() && u.attrs.is_none();
                for n in u.nlri {
                    assert!(seen.insert(n), "{n} twice");
                }
                at += len;
            }
            assert!(last_empty, "End-of-RIB last");
        }
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen.first(), Some(&IpNet::from(prefix(0))));
    }

    #[test]
    fn the_diverse_feed_has_its_sets_each_prefix_once_and_each_set_together() {
        let feed = Feed {
            prefixes: 20_000,
            peers: 2,
            per_update: 16,
            sets: 2_000,
        };
        let wire = encode_diverse_feed(&feed);
        let mut seen = std::collections::BTreeSet::new();
        let mut sets = std::collections::HashSet::new();
        let mut updates = 0;
        for w in &wire {
            let mut at = 0;
            while at < w.len() {
                let (m, len) = cic_bgp::wire::decode_message(
                    &w[at..],
                    &cic_bgp::wire::DecodeContext::default(),
                )
                .expect("decodes")
                .expect("a whole message");
                let Message::Update(u) = m else {
                    panic!("not an UPDATE")
                };
                if let Some(a) = u.attrs {
                    sets.insert(a);
                    updates += 1;
                }
                for n in u.nlri {
                    assert!(seen.insert(n), "{n} twice");
                }
                at += len;
            }
        }
        assert_eq!(seen.len(), 20_000);
        // Each peer's sets are its own (the next hop is the peer's): 2 × 2,000 at most, and
        // with 5 prefixes a set on average about 2 × 2,000 × (1 − e⁻⁵) ≈ 3,973 are used.
        assert!(sets.len() > 3_900, "{} distinct sets", sets.len());
        assert_eq!(
            updates,
            sets.len(),
            "one UPDATE per set: a set's prefixes travel together"
        );
    }
}
