//! Route origin validation (RFC 6811) and the router's side of the RPKI to Router
//! protocol (RTR, RFC 8210 version 1, RFC 6810 version 0), sans-IO: bytes from the cache
//! go in, bytes to send and changes of the validated payloads come out. A task of the
//! driver owns the TCP connection and the timers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

mod pdu;
use pdu::error_name;
pub use pdu::{Intervals, Pdu, PduError, error_code, pdu_type};

// ---------------------------------------------------------------------------------------
// Validated ROA payloads and origin validation

/// A validated ROA payload: `asn` may originate `prefix` and its more-specifics up to
/// `max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vrp {
    pub prefix: IpNet,
    pub max_len: u8,
    pub asn: u32,
}

/// A route's origin validation state (RFC 6811 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    /// A VRP covers it and matches its origin and length.
    Valid,
    /// VRPs cover it, none matches.
    Invalid,
    /// No VRP covers it.
    NotFound,
}

impl Validity {
    pub fn name(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::NotFound => "not-found",
        }
    }

    pub fn parse(s: &str) -> Option<Validity> {
        match s {
            "valid" => Some(Validity::Valid),
            "invalid" => Some(Validity::Invalid),
            "not-found" | "notfound" | "unknown" => Some(Validity::NotFound),
            _ => None,
        }
    }
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The VRPs in force, indexed by prefix for the covering lookups of RFC 6811.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vrps {
    by_prefix: BTreeMap<IpNet, BTreeSet<(u8, u32)>>,
    len: usize,
}

impl Vrps {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn insert(&mut self, v: Vrp) -> bool {
        let new = self
            .by_prefix
            .entry(v.prefix.trunc())
            .or_default()
            .insert((v.max_len, v.asn));
        self.len += usize::from(new);
        new
    }

    pub fn remove(&mut self, v: &Vrp) -> bool {
        let p = v.prefix.trunc();
        let Some(set) = self.by_prefix.get_mut(&p) else {
            return false;
        };
        let gone = set.remove(&(v.max_len, v.asn));
        if set.is_empty() {
            self.by_prefix.remove(&p);
        }
        self.len -= usize::from(gone);
        gone
    }

    /// The prefixes whose VRPs differ between `self` and `other`, either way: only routes
    /// these cover can change state (RFC 6811 looks at covering VRPs alone). One walk of
    /// both sets in prefix order.
    pub fn changed_prefixes(&self, other: &Vrps) -> BTreeSet<IpNet> {
        let mut changed = BTreeSet::new();
        let (mut a, mut b) = (
            self.by_prefix.iter().peekable(),
            other.by_prefix.iter().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some((p, _)), None) => {
                    changed.insert(**p);
                    a.next();
                }
                (None, Some((p, _))) => {
                    changed.insert(**p);
                    b.next();
                }
                (Some((pa, sa)), Some((pb, sb))) => match pa.cmp(pb) {
                    std::cmp::Ordering::Less => {
                        changed.insert(**pa);
                        a.next();
                    }
                    std::cmp::Ordering::Greater => {
                        changed.insert(**pb);
                        b.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if sa != sb {
                            changed.insert(**pa);
                        }
                        a.next();
                        b.next();
                    }
                },
            }
        }
        changed
    }

    pub fn contains(&self, v: &Vrp) -> bool {
        self.by_prefix
            .get(&v.prefix.trunc())
            .is_some_and(|s| s.contains(&(v.max_len, v.asn)))
    }

    pub fn iter(&self) -> impl Iterator<Item = Vrp> + '_ {
        self.by_prefix.iter().flat_map(|(p, s)| {
            s.iter().map(|(max_len, asn)| Vrp {
                prefix: *p,
                max_len: *max_len,
                asn: *asn,
            })
        })
    }

    /// RFC 6811 §2: the state of a route to `prefix` originated by `origin` (`None`: its
    /// origin cannot be told, as when its AS_PATH ends in an AS_SET; such a route matches
    /// no VRP).
    pub fn validate(&self, prefix: &IpNet, origin: Option<u32>) -> Validity {
        let mut covered = false;
        for len in 0..=prefix.prefix_len() {
            let Some(cover) = truncate(prefix, len) else {
                continue;
            };
            let Some(set) = self.by_prefix.get(&cover) else {
                continue;
            };
            covered = true;
            if let Some(o) = origin
                && set
                    .iter()
                    .any(|(max_len, asn)| *asn == o && *asn != 0 && prefix.prefix_len() <= *max_len)
            {
                return Validity::Valid;
            }
        }
        if covered {
            Validity::Invalid
        } else {
            Validity::NotFound
        }
    }
}

/// Whether any of `prefixes` covers `n` (is `n` or less specific and contains it).
pub fn covered_by(prefixes: &BTreeSet<IpNet>, n: &IpNet) -> bool {
    (0..=n.prefix_len()).any(|len| truncate(n, len).is_some_and(|c| prefixes.contains(&c)))
}

fn truncate(p: &IpNet, len: u8) -> Option<IpNet> {
    match p {
        IpNet::V4(n) => Ipv4Net::new(n.addr(), len)
            .ok()
            .map(|n| IpNet::V4(n.trunc())),
        IpNet::V6(n) => Ipv6Net::new(n.addr(), len)
            .ok()
            .map(|n| IpNet::V6(n.trunc())),
    }
}

// ---------------------------------------------------------------------------------------
// The router's side of a session with one cache

/// What the client asks of its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to send to the cache.
    Send(Vec<u8>),
    /// The cache's data changed: these VRPs came, these went (the new set is
    /// [`Client::vrps`]).
    Changed {
        announced: Vec<Vrp>,
        withdrawn: Vec<Vrp>,
    },
    /// A full answer arrived (an End of Data): the data is fresh, and becomes too old to
    /// use after this long (the expire interval, counted from here only). Comes before
    /// its [`Output::PollIn`], and also when nothing changed (an empty first set counts
    /// as synced).
    Fresh(Duration),
    /// Ask again (a Serial Query) after this long: the cache's refresh interval, or its
    /// retry interval after "No Data Available".
    PollIn(Duration),
    /// Close the connection: `why` for the log. `reconnect` says to connect again at once
    /// (a lower protocol version; otherwise after the retry interval).
    Close { why: String, reconnect: bool },
}

/// Where a session with a cache is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing asked yet (a new connection).
    Idle,
    /// A query sent; waiting for the Cache Response.
    Asked,
    /// Between a Cache Response and its End of Data.
    Receiving,
    /// Synced; waiting for a Serial Notify or the refresh time.
    Synced,
}

/// One cache's session, across connections: what it told us (session id, serial, VRPs)
/// survives a reconnect, so the next connection asks only for what changed.
#[derive(Debug, Clone)]
pub struct Client {
    version: u8,
    phase: Phase,
    session: Option<u16>,
    serial: u32,
    intervals: Intervals,
    vrps: Vrps,
    /// Whether the payloads received so far replace everything (after a Reset Query).
    resetting: bool,
    /// The session the Cache Response being received names; it becomes ours only at its
    /// End of Data, so an answer cut off in the middle leaves us asking as before.
    receiving: Option<u16>,
    pending: Vec<(bool, Vrp)>,
    synced_once: bool,
    /// Whether the version is settled on this connection (a PDU of our version came);
    /// until then a cache of a lower version may take us down to it (RFC 8210 §7).
    negotiated: bool,
    /// Whether the cache has given its own retry interval (a version 1 End of Data).
    retry_given: bool,
    buf: Vec<u8>,
}

impl Default for Client {
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A client that speaks version 1 first (RFC 8210 §7: the router starts with the
    /// highest version it speaks).
    pub fn new() -> Client {
        Client {
            version: 1,
            phase: Phase::Idle,
            session: None,
            serial: 0,
            intervals: Intervals::default(),
            vrps: Vrps::default(),
            resetting: false,
            receiving: None,
            pending: Vec::new(),
            synced_once: false,
            negotiated: false,
            retry_given: false,
            buf: Vec::new(),
        }
    }

    pub fn version(&self) -> u8 {
        self.version
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn vrps(&self) -> &Vrps {
        &self.vrps
    }
    pub fn serial(&self) -> Option<(u16, u32)> {
        self.session.map(|s| (s, self.serial))
    }
    pub fn intervals(&self) -> Intervals {
        self.intervals
    }
    /// A full set has been received at least once (until then, nothing is judged by it).
    pub fn synced(&self) -> bool {
        self.synced_once
    }

    /// How long to wait before connecting again after a connection failed or ended:
    /// the cache's own retry interval once it has given one (RFC 8210 §6), else
    /// `otherwise` (a cache never reached yet is tried sooner than RFC 8210's default of
    /// ten minutes).
    pub fn retry_after(&self, otherwise: Duration) -> Duration {
        if self.retry_given {
            Duration::from_secs(self.intervals.retry.into())
        } else {
            otherwise
        }
    }

    /// Whether a query is out and its answer not yet complete.
    pub fn awaiting_answer(&self) -> bool {
        matches!(self.phase, Phase::Asked | Phase::Receiving)
    }

    /// A new connection is up: ask for what changed since our serial, or for everything.
    pub fn connected(&mut self) -> Vec<Output> {
        self.buf.clear();
        self.pending.clear();
        self.receiving = None;
        self.negotiated = false;
        self.phase = Phase::Idle;
        vec![self.ask()]
    }

    /// The refresh time has come.
    pub fn poll(&mut self) -> Vec<Output> {
        if self.phase == Phase::Synced || self.phase == Phase::Idle {
            vec![self.ask()]
        } else {
            vec![]
        }
    }

    /// The data is older than the cache's expire interval and no connection refreshed
    /// it (RFC 8210 §6): dropped, everything not found again.
    pub fn expire(&mut self) -> Vec<Output> {
        vec![self.flush()]
    }

    /// Everything learnt from the cache forgotten; the next query asks for everything.
    fn flush(&mut self) -> Output {
        let withdrawn: Vec<Vrp> = self.vrps.iter().collect();
        self.vrps = Vrps::default();
        self.session = None;
        self.synced_once = false;
        Output::Changed {
            announced: vec![],
            withdrawn,
        }
    }

    fn ask(&mut self) -> Output {
        self.phase = Phase::Asked;
        self.receiving = None;
        self.resetting = self.session.is_none();
        Output::Send(match self.session {
            Some(session) => Pdu::SerialQuery {
                session,
                serial: self.serial,
            }
            .encode(self.version),
            None => Pdu::ResetQuery.encode(self.version),
        })
    }

    /// Bytes from the cache.
    pub fn receive(&mut self, bytes: &[u8]) -> Vec<Output> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            match Pdu::decode(&self.buf) {
                Ok(None) => break,
                Ok(Some((pdu, version, len))) => {
                    let raw = self.buf[..len].to_vec();
                    self.buf.drain(..len);
                    let done = self.pdu(pdu, version, &raw, &mut out);
                    if done {
                        self.buf.clear();
                        break;
                    }
                }
                Err(e) => {
                    let raw = self.buf[..self.buf.len().min(64)].to_vec();
                    self.buf.clear();
                    // Never an Error Report about an Error Report (RFC 8210 §5.11).
                    if raw.get(1) != Some(&pdu_type::ERROR_REPORT) {
                        out.push(self.report(e.code, raw, &e.why));
                    }
                    out.push(Output::Close {
                        why: format!("{}: {}", error_name(e.code), e.why),
                        reconnect: false,
                    });
                    break;
                }
            }
        }
        out
    }

    fn report(&self, code: u16, pdu: Vec<u8>, why: &str) -> Output {
        Output::Send(
            Pdu::ErrorReport {
                code,
                pdu,
                text: why.to_string(),
            }
            .encode(self.version),
        )
    }

    /// Handles one PDU; true when the connection is to close.
    fn pdu(&mut self, pdu: Pdu, version: u8, raw: &[u8], out: &mut Vec<Output>) -> bool {
        if !self.negotiated && version < self.version {
            match pdu {
                // RFC 8210 §7: a cache that speaks only a lower version answers our
                // query in it (or with an Error Report): we go down to it and ask again,
                // for everything (a session belongs to its version).
                Pdu::ErrorReport { .. } | Pdu::CacheResponse { .. } | Pdu::CacheReset => {
                    self.version = version;
                    self.session = None;
                    out.push(Output::Close {
                        why: format!("the cache speaks RTR version {version}; asking again in it"),
                        reconnect: true,
                    });
                    return true;
                }
                // A notify may cross our first query; we are asking anyway.
                Pdu::SerialNotify { .. } => return false,
                _ => {}
            }
        }
        if version != self.version && !matches!(pdu, Pdu::ErrorReport { .. }) {
            out.push(self.report(
                error_code::UNEXPECTED_VERSION,
                raw.to_vec(),
                "a PDU of another version than the session's",
            ));
            out.push(Output::Close {
                why: format!(
                    "Unexpected Protocol Version: the cache sent version {version} in a version {} session",
                    self.version
                ),
                reconnect: false,
            });
            return true;
        }
        if version == self.version {
            self.negotiated = true;
        }
        match pdu {
            Pdu::SerialNotify { session, .. } => {
                if self.phase == Phase::Synced && self.session != Some(session) {
                    return self.session_changed(session, raw, out);
                }
                // Only when not already asking (RFC 8210 §8.2).
                if self.phase == Phase::Synced {
                    out.push(self.ask());
                }
            }
            Pdu::CacheResponse { session } => {
                if self.phase != Phase::Asked {
                    return self.unexpected("Cache Response", raw, out);
                }
                if !self.resetting && self.session != Some(session) {
                    // A cache that restarted answers a Serial Query with a Cache Reset;
                    // an answer in another session is corrupt (RFC 8210 §5.1).
                    return self.session_changed(session, raw, out);
                }
                self.receiving = Some(session);
                self.pending.clear();
                self.phase = Phase::Receiving;
            }
            Pdu::Prefix { announce, vrp } => {
                if self.phase != Phase::Receiving {
                    return self.unexpected("a prefix", raw, out);
                }
                self.pending.push((announce, vrp));
            }
            Pdu::RouterKey => {
                if self.phase != Phase::Receiving {
                    return self.unexpected("a Router Key", raw, out);
                }
            }
            Pdu::EndOfData {
                session,
                serial,
                intervals,
            } => {
                if self.phase != Phase::Receiving {
                    return self.unexpected("End of Data", raw, out);
                }
                if Some(session) != self.receiving {
                    return self.session_changed(session, raw, out);
                }
                match self.commit() {
                    Ok((announced, withdrawn)) => {
                        self.session = self.receiving.take();
                        self.serial = serial;
                        if let Some(i) = intervals {
                            self.intervals = i.bounded();
                            self.retry_given = true;
                        }
                        self.phase = Phase::Synced;
                        self.synced_once = true;
                        if !announced.is_empty() || !withdrawn.is_empty() {
                            out.push(Output::Changed {
                                announced,
                                withdrawn,
                            });
                        }
                        out.push(Output::Fresh(Duration::from_secs(
                            self.intervals.expire.into(),
                        )));
                        out.push(Output::PollIn(Duration::from_secs(
                            self.intervals.refresh.into(),
                        )));
                    }
                    Err((code, why)) => {
                        out.push(self.report(code, raw.to_vec(), &why));
                        // Nothing applied; everything asked for again, after the retry
                        // interval (a cache that says the same again is not hammered).
                        self.session = None;
                        self.receiving = None;
                        out.push(Output::Close {
                            why: format!("{}: {why}", error_name(code)),
                            reconnect: false,
                        });
                        return true;
                    }
                }
            }
            Pdu::CacheReset => {
                if self.phase != Phase::Asked {
                    return self.unexpected("Cache Reset", raw, out);
                }
                self.session = None;
                out.push(self.ask());
            }
            Pdu::ErrorReport { code, text, .. } => {
                if code == error_code::NO_DATA_AVAILABLE {
                    self.receiving = None;
                    self.phase = if self.synced_once {
                        Phase::Synced
                    } else {
                        Phase::Idle
                    };
                    out.push(Output::PollIn(Duration::from_secs(
                        self.intervals.retry.into(),
                    )));
                    return false;
                }
                if code == error_code::UNSUPPORTED_VERSION && self.version > 0 && !self.negotiated {
                    self.version -= 1;
                    self.session = None;
                    out.push(Output::Close {
                        why: format!(
                            "the cache does not speak RTR version {}; asking in version {}",
                            self.version + 1,
                            self.version
                        ),
                        reconnect: true,
                    });
                    return true;
                }
                out.push(Output::Close {
                    why: format!("the cache reported {}: {text}", error_name(code)),
                    reconnect: false,
                });
                return true;
            }
            Pdu::SerialQuery { .. } | Pdu::ResetQuery => {
                out.push(self.report(
                    error_code::INVALID_REQUEST,
                    raw.to_vec(),
                    "a query from the cache",
                ));
                out.push(Output::Close {
                    why: "the cache sent a query".into(),
                    reconnect: false,
                });
                return true;
            }
        }
        false
    }

    /// The cache names another session than ours: RFC 8210 §5.1 has the router report
    /// Corrupt Data, end the session and flush all it learnt from the cache. The next
    /// connection asks for everything: at once, unless the mismatch came in the answer
    /// to a Reset Query (then after the retry interval; a cache that contradicts itself
    /// is not asked again in a loop).
    fn session_changed(&mut self, got: u16, raw: &[u8], out: &mut Vec<Output>) -> bool {
        let ours = self.receiving.or(self.session);
        let at_once = !self.resetting;
        out.push(self.report(
            error_code::CORRUPT_DATA,
            raw.to_vec(),
            &format!("session {got}, not {}", ours.unwrap_or_default()),
        ));
        self.receiving = None;
        if self.synced_once || !self.vrps.is_empty() {
            out.push(self.flush());
        }
        self.session = None;
        out.push(Output::Close {
            why: format!(
                "Corrupt Data: the cache named session {got} in session {}; its data flushed, asking for everything",
                ours.unwrap_or_default()
            ),
            reconnect: at_once,
        });
        true
    }

    fn unexpected(&mut self, what: &str, raw: &[u8], out: &mut Vec<Output>) -> bool {
        out.push(self.report(
            error_code::CORRUPT_DATA,
            raw.to_vec(),
            &format!("{what} out of order"),
        ));
        out.push(Output::Close {
            why: format!("Corrupt Data: the cache sent {what} out of order"),
            reconnect: false,
        });
        true
    }

    /// Applies what arrived since the Cache Response, all or nothing (RFC 8210 §5.4:
    /// an announcement of what we hold, or a withdrawal of what we do not, is an error).
    #[allow(clippy::type_complexity)]
    fn commit(&mut self) -> Result<(Vec<Vrp>, Vec<Vrp>), (u16, String)> {
        let pending = std::mem::take(&mut self.pending);
        let mut next = if self.resetting {
            Vrps::default()
        } else {
            self.vrps.clone()
        };
        for (announce, v) in pending {
            if announce {
                if !next.insert(v) {
                    return Err((
                        error_code::DUPLICATE_ANNOUNCEMENT,
                        format!("{} max {} AS{} announced twice", v.prefix, v.max_len, v.asn),
                    ));
                }
            } else if !next.remove(&v) {
                return Err((
                    error_code::WITHDRAWAL_OF_UNKNOWN,
                    format!(
                        "{} max {} AS{} withdrawn, never announced",
                        v.prefix, v.max_len, v.asn
                    ),
                ));
            }
        }
        let announced: Vec<Vrp> = next.iter().filter(|v| !self.vrps.contains(v)).collect();
        let withdrawn: Vec<Vrp> = self.vrps.iter().filter(|v| !next.contains(v)).collect();
        self.vrps = next;
        self.resetting = false;
        Ok((announced, withdrawn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn vrp(p: &str, max_len: u8, asn: u32) -> Vrp {
        Vrp {
            prefix: n(p),
            max_len,
            asn,
        }
    }

    #[test]
    fn origin_validation_follows_rfc_6811() {
        let mut t = Vrps::default();
        t.insert(vrp("10.1.0.0/16", 24, 65001));
        t.insert(vrp("10.1.2.0/24", 24, 65002));
        t.insert(vrp("192.0.2.0/24", 24, 0)); // AS0: nobody may originate it
        t.insert(vrp("2001:db8::/32", 48, 65001));
        let v = |p: &str, o: Option<u32>| t.validate(&n(p), o);
        assert_eq!(v("10.1.0.0/16", Some(65001)), Validity::Valid);
        assert_eq!(v("10.1.5.0/24", Some(65001)), Validity::Valid);
        assert_eq!(
            v("10.1.5.0/25", Some(65001)),
            Validity::Invalid,
            "longer than max"
        );
        assert_eq!(
            v("10.1.5.0/24", Some(65009)),
            Validity::Invalid,
            "another origin"
        );
        // Either covering VRP may make it valid.
        assert_eq!(v("10.1.2.0/24", Some(65002)), Validity::Valid);
        assert_eq!(v("10.1.2.0/24", Some(65001)), Validity::Valid);
        assert_eq!(v("10.2.0.0/16", Some(65001)), Validity::NotFound);
        assert_eq!(
            v("10.0.0.0/8", Some(65001)),
            Validity::NotFound,
            "less specific"
        );
        assert_eq!(
            v("192.0.2.0/24", Some(0)),
            Validity::Invalid,
            "AS0 matches nothing"
        );
        assert_eq!(
            v("10.1.0.0/16", None),
            Validity::Invalid,
            "origin unknown (AS_SET)"
        );
        assert_eq!(v("2001:db8:1::/48", Some(65001)), Validity::Valid);
        assert_eq!(v("2001:db8:1::/64", Some(65001)), Validity::Invalid);
        assert_eq!(v("2001:db9::/32", Some(65001)), Validity::NotFound);
        assert!(t.remove(&vrp("10.1.2.0/24", 24, 65002)));
        assert!(!t.remove(&vrp("10.1.2.0/24", 24, 65002)));
        assert_eq!(t.len(), 3);
    }

    /// The PDUs as RFC 8210 §5 lays them out, byte by byte.
    #[test]
    fn a_change_of_the_data_names_the_prefixes_whose_routes_it_can_change() {
        let mut old = Vrps::default();
        old.insert(vrp("10.1.0.0/16", 24, 65001));
        old.insert(vrp("10.2.0.0/16", 16, 65002));
        old.insert(vrp("2001:db8::/32", 48, 65003));
        let mut new = old.clone();
        assert!(old.changed_prefixes(&new).is_empty());
        // A VRP added under a prefix, one removed, a new prefix.
        new.insert(vrp("10.2.0.0/16", 24, 65002));
        new.remove(&vrp("2001:db8::/32", 48, 65003));
        new.insert(vrp("10.9.0.0/16", 16, 65009));
        let changed = old.changed_prefixes(&new);
        assert_eq!(
            changed,
            [n("10.2.0.0/16"), n("10.9.0.0/16"), n("2001:db8::/32")]
                .into_iter()
                .collect()
        );
        assert_eq!(new.changed_prefixes(&old), changed, "either way");
        // Routes they cover, and only those.
        assert!(covered_by(&changed, &n("10.2.3.0/24")));
        assert!(covered_by(&changed, &n("10.9.0.0/16")));
        assert!(covered_by(&changed, &n("2001:db8:1::/48")));
        assert!(!covered_by(&changed, &n("10.1.0.0/24")));
        assert!(
            !covered_by(&changed, &n("10.0.0.0/8")),
            "less specific than the change"
        );
    }

    #[test]
    fn pdus_have_the_rfc_8210_layout() {
        assert_eq!(Pdu::ResetQuery.encode(1), [1, 2, 0, 0, 0, 0, 0, 8]);
        assert_eq!(
            Pdu::SerialQuery {
                session: 0x1234,
                serial: 7
            }
            .encode(1),
            [1, 1, 0x12, 0x34, 0, 0, 0, 12, 0, 0, 0, 7]
        );
        let p4 = Pdu::Prefix {
            announce: true,
            vrp: vrp("192.0.2.0/24", 26, 65001),
        };
        let bytes = [
            1, 4, 0, 0, 0, 0, 0, 20, 1, 24, 26, 0, 192, 0, 2, 0, 0, 0, 0xfd, 0xe9,
        ];
        assert_eq!(p4.encode(1), bytes);
        assert_eq!(Pdu::decode(&bytes), Ok(Some((p4, 1, 20))));
        let eod = [
            1, 7, 0, 5, 0, 0, 0, 24, 0, 0, 0, 9, 0, 0, 0, 60, 0, 0, 0, 30, 0, 0, 1, 44,
        ];
        assert_eq!(
            Pdu::decode(&eod),
            Ok(Some((
                Pdu::EndOfData {
                    session: 5,
                    serial: 9,
                    intervals: Some(Intervals {
                        refresh: 60,
                        retry: 30,
                        expire: 300
                    })
                },
                1,
                24
            )))
        );
        // Version 0's End of Data has no intervals.
        assert_eq!(
            Pdu::decode(&[0, 7, 0, 5, 0, 0, 0, 12, 0, 0, 0, 9]),
            Ok(Some((
                Pdu::EndOfData {
                    session: 5,
                    serial: 9,
                    intervals: None
                },
                0,
                12
            )))
        );
        let p6 = Pdu::Prefix {
            announce: false,
            vrp: vrp("2001:db8::/32", 48, 4_200_000_000),
        };
        assert_eq!(Pdu::decode(&p6.encode(1)), Ok(Some((p6, 1, 32))));
        let e = Pdu::ErrorReport {
            code: 2,
            pdu: vec![1, 2, 0, 0, 0, 0, 0, 8],
            text: "no data".into(),
        };
        assert_eq!(Pdu::decode(&e.encode(1)), Ok(Some((e, 1, 31))));
        // Not all there yet.
        assert_eq!(Pdu::decode(&bytes[..19]), Ok(None));
    }

    #[test]
    fn malformed_pdus_are_named_with_the_error_to_report() {
        let code = |b: &[u8]| Pdu::decode(b).map(|_| ()).unwrap_err().code;
        assert_eq!(
            code(&[2, 2, 0, 0, 0, 0, 0, 8]),
            error_code::UNSUPPORTED_VERSION
        );
        assert_eq!(
            code(&[1, 5, 0, 0, 0, 0, 0, 8]),
            error_code::UNSUPPORTED_PDU_TYPE
        );
        assert_eq!(
            code(&[1, 2, 0, 0, 0, 0, 0, 4]),
            error_code::CORRUPT_DATA,
            "short length"
        );
        assert_eq!(
            code(&[1, 2, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0]),
            error_code::CORRUPT_DATA
        );
        // Max length below the prefix's, host bits, lengths past the family's.
        for body in [[1u8, 24, 20, 0], [1, 33, 33, 0]] {
            let mut b = vec![1, 4, 0, 0, 0, 0, 0, 20];
            b.extend_from_slice(&body);
            b.extend_from_slice(&[192, 0, 2, 0, 0, 0, 0, 1]);
            assert_eq!(code(&b), error_code::CORRUPT_DATA, "{body:?}");
        }
        let mut b = vec![1, 4, 0, 0, 0, 0, 0, 20, 1, 16, 24, 0];
        b.extend_from_slice(&[192, 0, 2, 0, 0, 0, 0, 1]);
        assert_eq!(code(&b), error_code::CORRUPT_DATA, "host bits");
        // An Error Report whose inner lengths overrun it.
        assert_eq!(
            code(&[1, 10, 0, 2, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0]),
            error_code::CORRUPT_DATA
        );
    }

    fn sent(out: &[Output]) -> Vec<Pdu> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(b) => Pdu::decode(b).ok().flatten().map(|(p, _, _)| p),
                _ => None,
            })
            .collect()
    }

    fn cache(pdus: &[Pdu], version: u8) -> Vec<u8> {
        pdus.iter().flat_map(|p| p.encode(version)).collect()
    }

    fn eod(session: u16, serial: u32) -> Pdu {
        Pdu::EndOfData {
            session,
            serial,
            intervals: Some(Intervals {
                refresh: 60,
                retry: 30,
                expire: 600,
            }),
        }
    }

    fn ann(v: Vrp) -> Pdu {
        Pdu::Prefix {
            announce: true,
            vrp: v,
        }
    }

    #[test]
    fn a_session_resets_then_follows_serials_and_notifies() {
        let mut c = Client::new();
        assert_eq!(sent(&c.connected()), vec![Pdu::ResetQuery]);
        assert!(!c.synced());
        let a = vrp("10.1.0.0/16", 24, 65001);
        let b = vrp("10.2.0.0/16", 16, 65002);
        // The answer may arrive in pieces.
        let bytes = cache(
            &[Pdu::CacheResponse { session: 7 }, ann(a), ann(b), eod(7, 1)],
            1,
        );
        let (head, tail) = bytes.split_at(13);
        assert!(c.receive(head).is_empty());
        let out = c.receive(tail);
        assert_eq!(
            out,
            vec![
                Output::Changed {
                    announced: vec![a, b],
                    withdrawn: vec![]
                },
                Output::Fresh(Duration::from_secs(600)),
                Output::PollIn(Duration::from_secs(60))
            ]
        );
        assert!(c.synced());
        assert_eq!(c.serial(), Some((7, 1)));
        // A Serial Notify: we ask for what changed since serial 1.
        let out = c.receive(
            &Pdu::SerialNotify {
                session: 7,
                serial: 2,
            }
            .encode(1),
        );
        assert_eq!(
            sent(&out),
            vec![Pdu::SerialQuery {
                session: 7,
                serial: 1
            }]
        );
        let out = c.receive(&cache(
            &[
                Pdu::CacheResponse { session: 7 },
                Pdu::Prefix {
                    announce: false,
                    vrp: a,
                },
                eod(7, 2),
            ],
            1,
        ));
        assert_eq!(
            out[0],
            Output::Changed {
                announced: vec![],
                withdrawn: vec![a]
            }
        );
        assert_eq!(c.vrps().len(), 1);
        // A reconnect asks from our serial, not for everything.
        assert_eq!(
            sent(&c.connected()),
            vec![Pdu::SerialQuery {
                session: 7,
                serial: 2
            }]
        );
        // A Cache Reset: everything again, the new set replacing the old.
        let out = c.receive(&Pdu::CacheReset.encode(1));
        assert_eq!(sent(&out), vec![Pdu::ResetQuery]);
        let c2 = vrp("10.3.0.0/16", 16, 65003);
        let out = c.receive(&cache(
            &[Pdu::CacheResponse { session: 8 }, ann(c2), eod(8, 1)],
            1,
        ));
        assert_eq!(
            out[0],
            Output::Changed {
                announced: vec![c2],
                withdrawn: vec![b]
            }
        );
    }

    #[test]
    fn a_version_0_cache_is_spoken_to_in_version_0() {
        let mut c = Client::new();
        c.connected();
        let out = c.receive(
            &Pdu::ErrorReport {
                code: error_code::UNSUPPORTED_VERSION,
                pdu: Pdu::ResetQuery.encode(1),
                text: String::new(),
            }
            .encode(0),
        );
        assert!(
            matches!(
                out.last(),
                Some(Output::Close {
                    reconnect: true,
                    ..
                })
            ),
            "{out:?}"
        );
        assert_eq!(c.version(), 0);
        let out = c.connected();
        assert_eq!(out, vec![Output::Send(vec![0, 2, 0, 0, 0, 0, 0, 8])]);
        let out = c.receive(&cache(
            &[
                Pdu::CacheResponse { session: 1 },
                ann(vrp("10.1.0.0/16", 16, 65001)),
                Pdu::EndOfData {
                    session: 1,
                    serial: 4,
                    intervals: None,
                },
            ],
            0,
        ));
        assert!(matches!(out[0], Output::Changed { .. }));
        // Version 0 gives no intervals: RFC 8210's defaults.
        assert_eq!(out[1], Output::Fresh(Duration::from_secs(7200)));
        assert_eq!(out[2], Output::PollIn(Duration::from_secs(3600)));
        // No retry interval came from the cache: the caller's own wait.
        assert_eq!(
            c.retry_after(Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn a_cache_that_contradicts_itself_is_reported_and_asked_again() {
        let mut c = Client::new();
        c.connected();
        let a = vrp("10.1.0.0/16", 24, 65001);
        c.receive(&cache(
            &[Pdu::CacheResponse { session: 7 }, ann(a), eod(7, 1)],
            1,
        ));
        c.receive(&notify(7, 2));
        // Announcing again what we hold: Duplicate Announcement, nothing applied.
        let out = c.receive(&cache(
            &[Pdu::CacheResponse { session: 7 }, ann(a), eod(7, 2)],
            1,
        ));
        let reported: Vec<u16> = sent(&out)
            .into_iter()
            .filter_map(|p| match p {
                Pdu::ErrorReport { code, .. } => Some(code),
                _ => None,
            })
            .collect();
        assert_eq!(reported, vec![error_code::DUPLICATE_ANNOUNCEMENT]);
        // Asked again after the retry interval, not at once (a cache that says the same
        // again would have us reconnect in a loop).
        assert!(matches!(
            out.last(),
            Some(Output::Close {
                reconnect: false,
                ..
            })
        ));
        assert_eq!(
            c.retry_after(Duration::from_secs(5)),
            Duration::from_secs(30),
            "the cache's own retry interval"
        );
        assert_eq!(c.vrps().len(), 1, "the set as it was");
        // The next connection asks for everything.
        assert_eq!(sent(&c.connected()), vec![Pdu::ResetQuery]);
        // A prefix outside a response is out of order.
        let mut c = Client::new();
        let out = c.receive(&ann(a).encode(1));
        assert!(matches!(
            out.last(),
            Some(Output::Close {
                reconnect: false,
                ..
            })
        ));
        // No data yet at the cache: try again after the retry interval.
        let mut c = Client::new();
        c.connected();
        let out = c.receive(
            &Pdu::ErrorReport {
                code: error_code::NO_DATA_AVAILABLE,
                pdu: vec![],
                text: "starting".into(),
            }
            .encode(1),
        );
        assert_eq!(out, vec![Output::PollIn(Duration::from_secs(600))]);
        assert_eq!(sent(&c.poll()), vec![Pdu::ResetQuery]);
    }

    #[test]
    fn a_cache_s_intervals_are_held_to_the_rfc_s_ranges() {
        let mut c = Client::new();
        c.connected();
        let out = c.receive(&cache(
            &[
                Pdu::CacheResponse { session: 7 },
                Pdu::EndOfData {
                    session: 7,
                    serial: 1,
                    intervals: Some(Intervals {
                        refresh: 0,
                        retry: 0,
                        expire: 1,
                    }),
                },
            ],
            1,
        ));
        assert_eq!(
            out,
            vec![
                Output::Fresh(Duration::from_secs(600)),
                Output::PollIn(Duration::from_secs(1))
            ]
        );
        assert_eq!(
            c.intervals(),
            Intervals {
                refresh: 1,
                retry: 1,
                expire: 600
            }
        );
    }

    #[test]
    fn expired_data_is_dropped() {
        let mut c = Client::new();
        c.connected();
        let a = vrp("10.1.0.0/16", 24, 65001);
        c.receive(&cache(
            &[Pdu::CacheResponse { session: 7 }, ann(a), eod(7, 1)],
            1,
        ));
        assert_eq!(
            c.expire(),
            vec![Output::Changed {
                announced: vec![],
                withdrawn: vec![a]
            }]
        );
        assert!(!c.synced() && c.vrps().is_empty());
        assert_eq!(sent(&c.connected()), vec![Pdu::ResetQuery]);
    }

    fn errors_sent(out: &[Output]) -> Vec<u16> {
        sent(out)
            .into_iter()
            .filter_map(|p| match p {
                Pdu::ErrorReport { code, .. } => Some(code),
                _ => None,
            })
            .collect()
    }

    fn closes(out: &[Output]) -> Option<bool> {
        out.iter().find_map(|o| match o {
            Output::Close { reconnect, .. } => Some(*reconnect),
            _ => None,
        })
    }

    /// A version 1 Serial Notify.
    fn notify(session: u16, serial: u32) -> Vec<u8> {
        Pdu::SerialNotify { session, serial }.encode(1)
    }

    /// A client synced at session 7, serial 1, holding `set`.
    fn synced(set: &[Vrp]) -> Client {
        let mut c = Client::new();
        c.connected();
        let mut pdus = vec![Pdu::CacheResponse { session: 7 }];
        pdus.extend(set.iter().map(|v| ann(*v)));
        pdus.push(eod(7, 1));
        c.receive(&cache(&pdus, 1));
        assert!(c.synced());
        c
    }

    #[test]
    fn an_answer_cut_off_midway_leaves_the_client_asking_as_before() {
        let (a, b, d) = (
            vrp("10.1.0.0/16", 24, 65001),
            vrp("10.2.0.0/16", 16, 65002),
            vrp("10.3.0.0/16", 16, 65003),
        );
        // A reset's answer cut off after its Cache Response: the next connection asks
        // for everything again (the session was not ours yet).
        let mut c = Client::new();
        c.connected();
        c.receive(&cache(&[Pdu::CacheResponse { session: 7 }, ann(a)], 1));
        assert_eq!(sent(&c.connected()), vec![Pdu::ResetQuery]);
        assert!(c.vrps().is_empty() && !c.synced());
        // After a Cache Reset, the same: the answer then replaces the whole set.
        let mut c = synced(&[a, b]);
        c.receive(&notify(7, 2));
        c.receive(&Pdu::CacheReset.encode(1));
        c.receive(&cache(&[Pdu::CacheResponse { session: 8 }, ann(d)], 1));
        assert_eq!(sent(&c.connected()), vec![Pdu::ResetQuery]);
        c.receive(&cache(
            &[Pdu::CacheResponse { session: 8 }, ann(d), eod(8, 1)],
            1,
        ));
        assert_eq!(c.vrps().iter().collect::<Vec<_>>(), vec![d]);
        assert_eq!(c.serial(), Some((8, 1)));
        // A serial answer cut off: asked again from the same serial, nothing applied.
        let mut c = synced(&[a, b]);
        c.receive(&notify(7, 2));
        c.receive(&cache(
            &[
                Pdu::CacheResponse { session: 7 },
                Pdu::Prefix {
                    announce: false,
                    vrp: a,
                },
            ],
            1,
        ));
        assert_eq!(
            sent(&c.connected()),
            vec![Pdu::SerialQuery {
                session: 7,
                serial: 1
            }]
        );
        assert_eq!(c.vrps().len(), 2);
    }

    #[test]
    fn only_an_end_of_data_makes_the_data_fresh() {
        let a = vrp("10.1.0.0/16", 24, 65001);
        let mut c = synced(&[a]);
        c.receive(&notify(7, 2));
        // "No Data Available" asks again later; the data's age still counts from the
        // last End of Data (the driver's expire timer is not reset).
        let out = c.receive(
            &Pdu::ErrorReport {
                code: error_code::NO_DATA_AVAILABLE,
                pdu: vec![],
                text: String::new(),
            }
            .encode(1),
        );
        assert_eq!(out, vec![Output::PollIn(Duration::from_secs(30))]);
        // An empty first set counts as synced (a cache with no ROAs is an answer).
        let mut c = Client::new();
        c.connected();
        let out = c.receive(&cache(&[Pdu::CacheResponse { session: 3 }, eod(3, 1)], 1));
        assert_eq!(
            out,
            vec![
                Output::Fresh(Duration::from_secs(600)),
                Output::PollIn(Duration::from_secs(60))
            ]
        );
        assert!(c.synced() && c.vrps().is_empty());
    }

    #[test]
    fn another_session_id_is_corrupt_data_and_flushes_the_cache_s_data() {
        let a = vrp("10.1.0.0/16", 24, 65001);
        let flushed = Output::Changed {
            announced: vec![],
            withdrawn: vec![a],
        };
        // In the answer to a Serial Query.
        let mut c = synced(&[a]);
        c.receive(&notify(7, 2));
        let out = c.receive(&Pdu::CacheResponse { session: 9 }.encode(1));
        assert_eq!(errors_sent(&out), vec![error_code::CORRUPT_DATA]);
        assert!(out.contains(&flushed), "{out:?}");
        assert_eq!(closes(&out), Some(true));
        assert!(!c.synced() && c.vrps().is_empty());
        assert_eq!(sent(&c.connected()), vec![Pdu::ResetQuery]);
        // In a Serial Notify.
        let mut c = synced(&[a]);
        let out = c.receive(
            &Pdu::SerialNotify {
                session: 9,
                serial: 2,
            }
            .encode(1),
        );
        assert_eq!(errors_sent(&out), vec![error_code::CORRUPT_DATA]);
        assert!(out.contains(&flushed), "{out:?}");
        // An End of Data naming another session than its Cache Response, in the answer
        // to a reset: reported, and asked again only after the retry interval.
        let mut c = Client::new();
        c.connected();
        let out = c.receive(&cache(
            &[Pdu::CacheResponse { session: 3 }, ann(a), eod(4, 1)],
            1,
        ));
        assert_eq!(errors_sent(&out), vec![error_code::CORRUPT_DATA]);
        assert_eq!(closes(&out), Some(false));
        assert!(!c.synced() && c.vrps().is_empty());
    }

    #[test]
    fn the_version_is_negotiated_on_each_connection() {
        // A version 0 Serial Notify crossing our first version 1 query is read past.
        let mut c = Client::new();
        c.connected();
        let out = c.receive(
            &Pdu::SerialNotify {
                session: 1,
                serial: 5,
            }
            .encode(0),
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(c.version(), 1);
        // Its Cache Response in version 0 takes us down to it.
        let out = c.receive(&Pdu::CacheResponse { session: 1 }.encode(0));
        assert_eq!(closes(&out), Some(true));
        assert_eq!(c.version(), 0);
        // A cache replaced by an older one after we synced: on the next connection its
        // Error Report takes us down, and the new version's session starts afresh.
        let mut c = synced(&[vrp("10.1.0.0/16", 24, 65001)]);
        assert_eq!(
            sent(&c.connected()),
            vec![Pdu::SerialQuery {
                session: 7,
                serial: 1
            }]
        );
        let out = c.receive(
            &Pdu::ErrorReport {
                code: error_code::UNSUPPORTED_VERSION,
                pdu: vec![],
                text: String::new(),
            }
            .encode(0),
        );
        assert_eq!(closes(&out), Some(true));
        assert_eq!(c.version(), 0);
        assert_eq!(c.connected(), vec![Output::Send(Pdu::ResetQuery.encode(0))]);
        // Once a PDU of our version came, a lower one is an error.
        let mut c = Client::new();
        c.connected();
        c.receive(&Pdu::CacheResponse { session: 1 }.encode(1));
        let out = c.receive(&ann(vrp("10.1.0.0/16", 24, 65001)).encode(0));
        assert_eq!(errors_sent(&out), vec![error_code::UNEXPECTED_VERSION]);
        assert_eq!(c.version(), 1);
    }

    #[test]
    fn an_error_report_is_never_answered_with_one() {
        let mut c = Client::new();
        c.connected();
        // An Error Report whose lengths do not add up.
        let out = c.receive(&[1, 10, 0, 2, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0]);
        assert!(errors_sent(&out).is_empty(), "{out:?}");
        assert_eq!(closes(&out), Some(false));
    }

    #[test]
    fn router_keys_and_cache_resets_are_checked_for_length_and_order() {
        // A Router Key too short to hold its SKI, AS and key.
        let short = Pdu::RouterKey.encode(1);
        assert_eq!(
            Pdu::decode(&short).map(|_| ()).unwrap_err().code,
            error_code::CORRUPT_DATA
        );
        let mut key = vec![1, pdu_type::ROUTER_KEY, 0, 0, 0, 0, 0, 0];
        key.extend_from_slice(&[0xab; 20]);
        key.extend_from_slice(&65001u32.to_be_bytes());
        key.extend_from_slice(&[0x30; 91]);
        let len = key.len() as u32;
        key[4..8].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            Pdu::decode(&key),
            Ok(Some((Pdu::RouterKey, 1, _)))
        ));
        // Outside an answer it is out of order; inside one it is read past.
        let mut c = synced(&[]);
        let out = c.receive(&key);
        assert_eq!(errors_sent(&out), vec![error_code::CORRUPT_DATA]);
        let mut c = Client::new();
        c.connected();
        let mut answer = Pdu::CacheResponse { session: 2 }.encode(1);
        answer.extend_from_slice(&key);
        answer.extend(eod(2, 1).encode(1));
        let out = c.receive(&answer);
        assert!(errors_sent(&out).is_empty() && c.synced(), "{out:?}");
        // A Cache Reset nobody asked for is out of order too.
        let mut c = synced(&[]);
        let out = c.receive(&Pdu::CacheReset.encode(1));
        assert_eq!(errors_sent(&out), vec![error_code::CORRUPT_DATA]);
    }
}
