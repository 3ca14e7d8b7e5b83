//! What the edge reports back: the revision it applied, every session's and link's live
//! status, the counters, and what it could not realise; whole or as changes since the
//! last report.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{BfdStatus, Family, RouteEntry};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeReport {
    /// The revision of the last config the edge has fully applied (0: none yet).
    pub applied_revision: u64,
    /// Which data plane the edge uses, as probed at start (e.g. `vxlan-overlay`).
    pub dataplane: String,
    pub sessions: Vec<SessionStatus>,
    /// Resources the edge could not realise at `appliedRevision`.
    pub errors: Vec<ResourceError>,
    /// Each connection's interface counters when the report was made (the server keeps
    /// a history of rates from them). Absent from older edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<ConnectionCounters>,
}

/// A report as the changes since the last report the server took (`PATCH
/// /cic/v1/edgeSync/status`): every field of a report but the sessions whole, the sessions
/// changed or new, and the keys of those gone. (A separate method, so that a server that
/// does not know it refuses it rather than storing a part of the sessions as all.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeReportChanges {
    /// The version the server answered the report these changes are since with.
    pub changes_since: String,
    pub applied_revision: u64,
    pub dataplane: String,
    /// The sessions changed or new since.
    pub sessions: Vec<SessionStatus>,
    /// The sessions gone since.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_sessions: Vec<SessionKey>,
    pub errors: Vec<ResourceError>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<ConnectionCounters>,
}

/// Which of an edge's sessions a status is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionKey {
    pub resource_id: String,
    pub kind: SessionKind,
    #[serde(default, skip_serializing_if = "Family::is_ipv4")]
    pub family: Family,
}

impl SessionStatus {
    /// Whether `now` says what `self` said, but for an uptime grown in the same
    /// Established period (both name when it began, by the edge's clock): a server that
    /// counts the uptime of a session left out need not be sent it again.
    pub fn same_but_older(&self, now: &SessionStatus) -> bool {
        // Field by field (every field named: one added must be placed here), without a
        // copy of either (this runs for every session of every report).
        let SessionStatus {
            resource_id,
            kind,
            family,
            peer,
            peer_asn,
            state,
            uptime_secs,
            established_at,
            prefixes_received,
            prefixes_accepted,
            prefixes_advertised,
            prefix_limit_exceeded,
            prefix_limit_warning,
            idle_hold_remaining_secs,
            last_error,
            last_failure,
            bfd,
        } = self;
        *established_at == now.established_at
            && (*uptime_secs == now.uptime_secs
                || (established_at.is_some() && *uptime_secs <= now.uptime_secs))
            && *resource_id == now.resource_id
            && *kind == now.kind
            && *family == now.family
            && *peer == now.peer
            && *peer_asn == now.peer_asn
            && *state == now.state
            && *prefixes_received == now.prefixes_received
            && *prefixes_accepted == now.prefixes_accepted
            && *prefixes_advertised == now.prefixes_advertised
            && *prefix_limit_exceeded == now.prefix_limit_exceeded
            && *prefix_limit_warning == now.prefix_limit_warning
            && *idle_hold_remaining_secs == now.idle_hold_remaining_secs
            && *last_error == now.last_error
            && *last_failure == now.last_failure
            && *bfd == now.bfd
    }

    pub fn key(&self) -> SessionKey {
        SessionKey {
            resource_id: self.resource_id.clone(),
            kind: self.kind,
            family: self.family,
        }
    }
}

impl EdgeReport {
    /// This report as the changes since the report the server took as `version`, whose
    /// sessions were `base`; with `ages_counted` (the server said it counts the uptime of
    /// a session left out) a session that only grew older is left out. None when two of
    /// its sessions have one key (it is sent whole then).
    pub fn changes_from(
        &self,
        base: &std::collections::HashMap<SessionKey, SessionStatus>,
        version: &str,
        ages_counted: bool,
    ) -> Option<EdgeReportChanges> {
        let mut seen = std::collections::HashSet::new();
        let mut sessions = Vec::new();
        for s in &self.sessions {
            let key = s.key();
            let same = base
                .get(&key)
                .is_some_and(|b| b == s || (ages_counted && b.same_but_older(s)));
            if !same {
                sessions.push(s.clone());
            }
            if !seen.insert(key) {
                return None;
            }
        }
        let removed_sessions = base
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        Some(EdgeReportChanges {
            changes_since: version.to_string(),
            applied_revision: self.applied_revision,
            dataplane: self.dataplane.clone(),
            sessions,
            removed_sessions,
            errors: self.errors.clone(),
            traffic: self.traffic.clone(),
        })
    }

    /// Its sessions by key; None when two have one key.
    pub fn into_sessions_by_key(
        self,
    ) -> Option<std::collections::HashMap<SessionKey, SessionStatus>> {
        let n = self.sessions.len();
        let by_key: std::collections::HashMap<SessionKey, SessionStatus> =
            self.sessions.into_iter().map(|s| (s.key(), s)).collect();
        (by_key.len() == n).then_some(by_key)
    }
}

/// A report of changes that cannot be taken as it is: a session sent twice, or sent and
/// removed. (`sessions[i]`, what is wrong.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadChanges {
    pub field: String,
    pub message: String,
}

impl EdgeReportChanges {
    /// The whole report these changes give, onto `base` (the report they are since).
    /// Sessions keep `base`'s order (a key it holds twice, once); new ones come after.
    pub fn onto(self, base: &EdgeReport) -> Result<EdgeReport, BadChanges> {
        let gone: std::collections::HashSet<&SessionKey> = self.removed_sessions.iter().collect();
        let mut changed: std::collections::HashMap<SessionKey, SessionStatus> =
            std::collections::HashMap::new();
        let mut order = Vec::new();
        for (i, s) in self.sessions.into_iter().enumerate() {
            let key = s.key();
            let why = if gone.contains(&key) {
                Some("is also in removedSessions")
            } else if changed.contains_key(&key) {
                Some("is sent twice")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(BadChanges {
                    field: format!("sessions[{i}]"),
                    message: format!("the {:?} session of {} {why}", key.family, key.resource_id),
                });
            }
            order.push(key.clone());
            changed.insert(key, s);
        }
        let mut seen = std::collections::HashSet::new();
        let mut sessions = Vec::with_capacity(base.sessions.len() + changed.len());
        for s in &base.sessions {
            let key = s.key();
            if gone.contains(&key) || !seen.insert(key.clone()) {
                continue;
            }
            sessions.push(changed.remove(&key).unwrap_or_else(|| s.clone()));
        }
        // The new ones, in the order they were sent.
        sessions.extend(order.into_iter().filter_map(|k| changed.remove(&k)));
        Ok(EdgeReport {
            applied_revision: self.applied_revision,
            dataplane: self.dataplane,
            sessions,
            errors: self.errors,
            traffic: self.traffic,
        })
    }
}

/// A connection's interface counters on the edge, as the kernel counts them ("to cloud":
/// what the edge receives from the customer).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub bytes_to_cloud: u64,
    pub bytes_from_cloud: u64,
    pub packets_to_cloud: u64,
    pub packets_from_cloud: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCounters {
    /// The private or public connection.
    pub resource_id: String,
    #[serde(flatten)]
    pub counters: Counters,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceError {
    pub resource_id: String,
    pub message: String,
    /// The edge is trying again and the failure may pass (the kernel did not answer in
    /// time, or was busy): an operation waiting for the resource goes on waiting instead
    /// of failing with it, for at most [`HELD_AT_MOST`] by the server's count. The edge
    /// sends a failure as transient for a bounded time ([`TRANSIENT_FOR`]), then as it
    /// is. Absent (false) from older edges.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transient: bool,
}

/// How long an edge reports a failure that may pass as transient before it reports it
/// as final (the operations waiting for it fail then).
pub const TRANSIENT_FOR: std::time::Duration = std::time::Duration::from_secs(60);

/// How long an operation is waited through its failures that may pass before it fails
/// with them all the same: the edge's own bound ([`TRANSIENT_FOR`]) and two minutes more
/// for applies that take long. The edge's count does not outlive its agent (a restarted
/// agent counts anew), so without this bound an agent restarting again and again could
/// hold an operation without end.
pub const HELD_AT_MOST: std::time::Duration = std::time::Duration::from_secs(180);
const _: () = assert!(HELD_AT_MOST.as_secs() > TRANSIENT_FOR.as_secs());

/// Whether an operation whose failures on its edges are `errors` waits for its edges'
/// next word instead of finishing: it has failures, every one may pass, and it has been
/// held by them for less than [`HELD_AT_MOST`] (`held_for`; zero when first held).
pub fn holds<'a>(
    errors: impl IntoIterator<Item = &'a ResourceError>,
    held_for: std::time::Duration,
) -> bool {
    let mut any = false;
    for e in errors {
        if !e.transient {
            return false;
        }
        any = true;
    }
    any && held_for < HELD_AT_MOST
}

impl ResourceError {
    /// A failure that trying again will not mend.
    pub fn new(resource_id: impl Into<String>, message: impl Into<String>) -> ResourceError {
        ResourceError {
            resource_id: resource_id.into(),
            message: message.into(),
            transient: false,
        }
    }
}

/// Marks as final those of `errors` that are transient but whose resource has been
/// failing for [`TRANSIENT_FOR`] or longer. `since` holds when each resource's current
/// run of failures began (failing in one report and the next is one run): a resource
/// failing anew is entered at `now`, one without an error here leaves it.
pub fn age_transients<T: Copy + Ord + std::ops::Sub<Output = std::time::Duration>>(
    since: &mut std::collections::BTreeMap<String, T>,
    errors: &mut [ResourceError],
    now: T,
) {
    let failing: std::collections::BTreeSet<&str> =
        errors.iter().map(|e| e.resource_id.as_str()).collect();
    since.retain(|id, _| failing.contains(id.as_str()));
    for e in errors.iter_mut() {
        let began = *since.entry(e.resource_id.clone()).or_insert(now);
        if e.transient && now - began >= TRANSIENT_FOR {
            e.transient = false;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SessionKind {
    Customer,
    Fabric,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The private connection id, or the routing instance id for a fabric session.
    pub resource_id: String,
    pub kind: SessionKind,
    /// Which of the resource's sessions this is (a connection has one per family).
    #[serde(default, skip_serializing_if = "Family::is_ipv4")]
    pub family: Family,
    pub peer: IpAddr,
    pub peer_asn: u32,
    /// RFC 4271 state name: IDLE, CONNECT, ACTIVE, OPEN_SENT, OPEN_CONFIRM, ESTABLISHED.
    pub state: String,
    /// Seconds Established, when the server took the report (for a session the edge left
    /// out of a report of changes, counted by the server from `establishedAt`).
    pub uptime_secs: u64,
    /// When the session last became Established (RFC 3339): by the server's clock, counted
    /// back from the uptime the edge last sent for it. (An edge sends the time by its own
    /// clock: it tells one Established period from the next.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_at: Option<String>,
    pub prefixes_received: u32,
    pub prefixes_accepted: u32,
    pub prefixes_advertised: u32,
    /// The customer sent more prefixes than the limit allows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix_limit_exceeded: bool,
    /// Its prefixes reached the warning share of the limit (`maxPrefixWarningPercent`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix_limit_warning: bool,
    /// Seconds the session stays idle after a max-prefix teardown (`:resetBgpSession`
    /// ends it early).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_hold_remaining_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// `lastError` as a fact a program can act on (what `:diagnose` reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<SessionFailure>,
    /// BFD beside this session, when BFD is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdStatus>,
}

/// Why a BGP session last failed to come up or went down, as the speaker saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SessionFailure {
    /// Our TCP connection to the peer's port was refused (a RST came back).
    ConnectRefused,
    /// Our TCP connection to the peer's port got no answer.
    ConnectTimedOut,
    /// Our TCP connection failed otherwise (no route, unreachable, …).
    #[serde(rename_all = "camelCase")]
    ConnectFailed { error: String },
    /// The peer closed the TCP connection before the session came up.
    #[serde(rename_all = "camelCase")]
    ClosedBeforeOpen,
    /// We refused the peer's OPEN: it named another AS than the one configured.
    #[serde(rename_all = "camelCase")]
    WrongAsn { received: u32, expected: u32 },
    /// We refused the peer's OPEN: its hold time is below what we accept.
    #[serde(rename_all = "camelCase")]
    HoldTimeRefused { offered: u16, minimum: u16 },
    /// We refused the peer's OPEN for another reason (its NOTIFICATION described).
    #[serde(rename_all = "camelCase")]
    OpenRefused { notification: String },
    /// We refused the peer's OPEN: its BGP role (RFC 9234) is not the counterpart of ours
    /// (`received`), or it announced none where the session requires one.
    #[serde(rename_all = "camelCase")]
    RoleMismatch {
        expected: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        received: Option<String>,
    },
    /// The peer refused our OPEN with this NOTIFICATION (code, subcode, described).
    #[serde(rename_all = "camelCase")]
    PeerRefusedOpen {
        code: u8,
        subcode: u8,
        notification: String,
    },
    /// The peer ended an established session with this NOTIFICATION.
    #[serde(rename_all = "camelCase")]
    PeerNotification {
        code: u8,
        subcode: u8,
        notification: String,
    },
    /// The peer's TCP segments carry no TCP-MD5 signature, or one made with another key
    /// (the kernel drops them; seen in its counters).
    Md5Mismatch,
    /// GTSM is on and the peer's TCP segments arrive with a TTL below 255 (the kernel
    /// drops them; seen in its counters).
    GtsmDrops,
    /// We ended the session: max-prefix, hold timer, a malformed message, BFD, …
    #[serde(rename_all = "camelCase")]
    Ended { why: String },
}

/// Whether the edge's kernel has a link-layer address for a peer (ARP for IPv4, ND for
/// IPv6), by the kernel's neighbor states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NeighborState {
    /// No entry: the kernel has not needed the address yet.
    None,
    /// Asked, no answer yet.
    Incomplete,
    /// Asked and never answered.
    Failed,
    /// Answered (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP).
    Resolved,
}

/// A port's or interface's link state on the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkFacts {
    pub name: String,
    /// Configured up.
    pub up: bool,
    /// Carrier: the port's link is up (not only configured up).
    pub carrier: bool,
}

/// What an edge sees of one session of a private connection, for `:diagnose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionFacts {
    /// The trunk's port under the connection's interface (the 802.1Q parent, the VXLAN
    /// underlay port), when the trunk names one and the edge has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<LinkFacts>,
    /// The trunk names a port the edge does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_port: Option<String>,
    /// The connection's own interface; `None` when the edge has not made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<LinkFacts>,
    /// The peer address's link-layer resolution on that interface.
    pub neighbor: NeighborState,
    /// The session as the speaker reports it; `None` when the edge runs none for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionStatus>,
    /// Routes the customer sent that import policy refused (the first few, with why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RouteEntry>,
    /// How many the customer sent that were refused in all.
    #[serde(default)]
    pub refused_total: u32,
    /// The hold time the edge accepts at least.
    pub min_hold_time_secs: u16,
}
