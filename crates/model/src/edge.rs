//! The edge-sync contract: what the server compiles for one edge (desired config at a
//! revision) and what the edge reports back (applied revision, live status: [`report`]),
//! and the looking glass's questions ([`routes`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

pub mod kept;
mod report;
mod routes;
pub use report::*;
pub use routes::*;

/// Everything one edge must realise, as of `revision` of the whole store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeConfig {
    pub revision: u64,
    pub edge_id: String,
    pub router_id: Ipv4Addr,
    /// The cloud's ASN: local AS of every session of this edge.
    pub local_asn: u32,
    pub bgp: BgpSettings,
    pub trunks: Vec<TrunkConfig>,
    /// One per routing instance, plus one per private connection not (yet) in a routing
    /// instance, so that its BGP session can come up and be seen.
    // Shared (not in the API's words: the wire carries each whole): a config made whole
    // from the changes since the one before takes the unchanged instances from it
    // without copying them, and an edge tells an unchanged instance by its pointer.
    pub instances: Vec<Arc<InstanceConfig>>,
    /// Maintenance drain: every route sent with GRACEFUL_SHUTDOWN (RFC 8326).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
}

/// What `GET /cic/v1/edgeSync/config` answers: the edge's config whole, or — when the edge
/// names the answer it holds (`changesSince`) and this server gave it — the config with
/// only the instances that changed since then, and the ids of those gone. A few kilobytes
/// a round instead of the whole config (half a megabyte at 1,000 instances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeConfigUpdate {
    /// Names this answer: the edge sends it back as `changesSince`. (Empty from a server
    /// older than this field, which knows no `changesSince`.)
    #[serde(default)]
    pub tag: String,
    /// When set, `instances` holds only the instances added or changed since the answer
    /// with this tag, and `removedInstances` those gone; when absent, the config is whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_since: Option<String>,
    /// With `changesSince`: the ids of the instances gone since that answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_instances: Vec<String>,
    #[serde(flatten)]
    pub config: EdgeConfig,
}

/// An update that changes a config the edge does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server sent changes since its answer {since}, which this edge does not hold")]
pub struct NotHeld {
    pub since: String,
}

impl EdgeConfig {
    /// The update that turns `old` into `self`: every field but the instances whole, the
    /// instances added or changed, and the ids of those gone.
    pub fn changes_from(&self, old: &EdgeConfig, tag: String, since: String) -> EdgeConfigUpdate {
        let before: std::collections::HashMap<&str, &Arc<InstanceConfig>> =
            old.instances.iter().map(|i| (i.id.as_str(), i)).collect();
        let now: std::collections::HashSet<&str> =
            self.instances.iter().map(|i| i.id.as_str()).collect();
        let changed = self
            .instances
            .iter()
            .filter(|i| before.get(i.id.as_str()) != Some(i))
            .cloned()
            .collect();
        let removed_instances = old
            .instances
            .iter()
            .filter(|i| !now.contains(i.id.as_str()))
            .map(|i| i.id.clone())
            .collect();
        EdgeConfigUpdate {
            tag,
            changes_since: Some(since),
            removed_instances,
            config: EdgeConfig {
                instances: changed,
                ..self.without_instances()
            },
        }
    }

    /// Everything but the instances (which are most of a config).
    fn without_instances(&self) -> EdgeConfig {
        EdgeConfig {
            revision: self.revision,
            edge_id: self.edge_id.clone(),
            router_id: self.router_id,
            local_asn: self.local_asn,
            bgp: self.bgp.clone(),
            trunks: self.trunks.clone(),
            instances: vec![],
            drain: self.drain,
        }
    }

    /// Instances in the order the server compiles them: by id.
    pub fn sort_instances(&mut self) {
        self.instances.sort_by(|a, b| a.id.cmp(&b.id));
    }
}

impl EdgeConfigUpdate {
    /// The whole config this update gives, given the config of the answer tagged
    /// `held.0` (`None`: the edge holds none).
    pub fn into_config(self, held: Option<(&str, &EdgeConfig)>) -> Result<EdgeConfig, NotHeld> {
        let Some(since) = self.changes_since else {
            return Ok(self.config);
        };
        let Some((_, old)) = held.filter(|(tag, _)| *tag == since) else {
            return Err(NotHeld { since });
        };
        let gone: std::collections::HashSet<&str> =
            self.removed_instances.iter().map(String::as_str).collect();
        let mut config = self.config;
        let changed: std::collections::HashSet<String> =
            config.instances.iter().map(|i| i.id.clone()).collect();
        config.instances.extend(
            old.instances
                .iter()
                .filter(|i| !gone.contains(i.id.as_str()) && !changed.contains(&i.id))
                .cloned(),
        );
        config.sort_instances();
        Ok(config)
    }
}

/// Operator-wide BGP settings; defaults are the modelled service's numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpSettings {
    pub hold_time_secs: u16,
    /// Hold times below this are refused (OPEN Message Error / Unacceptable Hold Time).
    pub min_hold_time_secs: u16,
    pub connect_retry_secs: u16,
    pub max_prefixes: u32,
    pub max_prefix_action: MaxPrefixAction,
    /// How long a session stays idle after the prefix limit tore it down.
    pub max_prefix_idle_secs: u32,
    /// A connection's prefixes reaching this share of `maxPrefixes` (percent; 0: never)
    /// show as `prefixLimitWarning` before the limit's action comes.
    #[serde(default = "default_max_prefix_warning_percent")]
    pub max_prefix_warning_percent: u8,
    /// BFD beside every session (customer and fabric).
    #[serde(default)]
    pub bfd: BfdSettings,
    /// Graceful restart (RFC 4724): the restart time the edge announces, i.e. how long
    /// peers keep its routes while `cic edge` restarts; 0 turns graceful restart off.
    #[serde(default = "default_graceful_restart_secs")]
    pub graceful_restart_secs: u16,
    /// RPKI caches the edge validates customers' origins by (RTR, RFC 8210), in order of
    /// preference. Public connections refuse what RPKI finds invalid (RFC 6811).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub rpki_caches: Vec<std::net::SocketAddr>,
    /// Private connections refuse RPKI invalids too (the operator's choice).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rpki_reject_invalid_private: bool,
    /// GTSM (RFC 5082) on customers' sessions unless a private connection says otherwise:
    /// the edge takes only segments that arrive with TTL 255 (sent from the link itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ttl_security: bool,
    /// BGP roles (RFC 9234) on customers' sessions unless a private connection says
    /// otherwise.
    #[serde(default, skip_serializing_if = "BgpRoleMode::is_off")]
    pub bgp_role: BgpRoleMode,
    /// Damping of sessions (customer and fabric) that keep going down soon after coming
    /// up: from the second down within a minute of coming up, the session is held down
    /// 2 s, then 4 s, doubling up to this many seconds; 0: off.
    #[serde(default, skip_serializing_if = "is_zero_u16")]
    pub flap_damping_max_secs: u16,
}

/// BGP roles (RFC 9234) on a customer's session. The cloud is the customer's provider:
/// the edge announces the role Provider, expects Customer, and with roles agreed marks
/// and checks Only-to-Customer (OTC), so a route leaked by the customer is refused.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BgpRoleMode {
    /// No Role capability in the edge's OPEN.
    #[default]
    Off,
    /// The edge announces Provider; a customer's router that announces no role is
    /// still taken, one that announces another role than Customer is refused.
    Announce,
    /// As `ANNOUNCE`, and a customer's router that announces no role is refused too
    /// (RFC 9234's strict mode).
    Strict,
}

impl BgpRoleMode {
    pub fn is_off(&self) -> bool {
        *self == BgpRoleMode::Off
    }
}

fn default_graceful_restart_secs() -> u16 {
    120
}

fn default_max_prefix_warning_percent() -> u8 {
    75
}

/// BFD (RFC 5880/5881) on every session: a failure seen in `intervalMs × multiplier`
/// takes the BGP session down at once. A peer that runs no BFD is not affected: only a
/// BFD session that was Up and fails resets BGP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BfdSettings {
    pub enabled: bool,
    /// Desired Min TX and Required Min RX.
    pub interval_ms: u32,
    pub multiplier: u8,
}

impl Default for BfdSettings {
    /// The modelled service's 300 ms × 3.
    fn default() -> Self {
        BfdSettings {
            enabled: true,
            interval_ms: 300,
            multiplier: 3,
        }
    }
}

/// A session's BFD as the edge last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BfdStatus {
    /// RFC 5880 state: ADMIN_DOWN, DOWN, INIT, UP. DOWN with no `lastDiagnostic` is a
    /// peer that has not answered (it may run no BFD).
    pub state: String,
    /// Detection time in force: the peer's multiplier × the agreed receive interval.
    #[serde(default, skip_serializing_if = "is_zero32")]
    pub detection_time_ms: u32,
    /// How many times the session has failed (left UP); each one reset BGP.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub downs: u64,
    /// Why it last failed (the RFC 5880 diagnostic of its last change from UP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_diagnostic: Option<String>,
}

fn is_zero32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u16(n: &u16) -> bool {
    *n == 0
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Default for BgpSettings {
    fn default() -> Self {
        BgpSettings {
            hold_time_secs: 90,
            min_hold_time_secs: 90,
            connect_retry_secs: 5,
            max_prefixes: 500,
            max_prefix_action: MaxPrefixAction::Teardown,
            max_prefix_idle_secs: 30 * 60,
            max_prefix_warning_percent: default_max_prefix_warning_percent(),
            bfd: BfdSettings::default(),
            graceful_restart_secs: default_graceful_restart_secs(),
            rpki_caches: vec![],
            rpki_reject_invalid_private: false,
            ttl_security: false,
            bgp_role: BgpRoleMode::Off,
            flap_damping_max_secs: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum MaxPrefixAction {
    /// Cease/1 to the peer, session held idle for `maxPrefixIdleSecs`.
    Teardown,
    /// Keep the session; ignore prefixes beyond the limit.
    Discard,
    /// Keep everything; report the excess.
    Warn,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceConfig {
    /// Stable id; the edge derives the namespace name from it.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_instance_id: Option<String>,
    /// VPC prefixes (IPv4 and IPv6) announced to customers while the fabric covers
    /// them.
    #[schemars(with = "Vec<String>")]
    pub vpc_prefixes: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<FabricAttachment>,
    pub connections: Vec<ConnectionConfig>,
    /// Announced to the customer unconditionally (each family's on its session): a
    /// public connection's service prefixes when its segment has static routing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub announce: Vec<IpNet>,
    /// When set, only customer routes inside these are accepted, and only packets from
    /// inside these (or the peering subnets) are forwarded from the customer: a public
    /// connection's registered prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Vec<String>>")]
    pub accept_only: Option<Vec<IpNet>>,
}

/// The segment between a routing instance's namespace on this edge and the fabric router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FabricAttachment {
    pub vni: u32,
    pub remote_vtep: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    pub udp_port: u16,
    #[schemars(with = "String")]
    pub subnet: Ipv4Net,
    pub edge_ip: Ipv4Addr,
    pub fabric_ip: Ipv4Addr,
    pub fabric_asn: u32,
    /// The segment's IPv6 addresses: a second session, IPv6 unicast, beside the IPv4 one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<FabricIpv6>,
    /// No session on the segment: the instance's VPC prefixes are routed to `fabricIp`
    /// (a public-services network with static routing) and announced to customers
    /// unconditionally (`announce`): nothing tells the edge that the services routers
    /// are gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub static_routing: bool,
}

/// The IPv6 side of a fabric segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FabricIpv6 {
    #[schemars(with = "String")]
    pub subnet: Ipv6Net,
    pub edge_ip: Ipv6Addr,
    pub fabric_ip: Ipv6Addr,
}

/// An address family: each has its own BGP session over its own addresses.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(a: IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    pub fn is_ipv4(&self) -> bool {
        *self == Family::Ipv4
    }

    /// `ipv4` / `ipv6`, as in metric names and labels.
    pub fn name(&self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// How a connection's frames reach the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum Attachment {
    /// 802.1Q subinterface `port.vlan` of a physical trunk port.
    Vlan { port: String },
    /// 802.1Q subinterface of `bond`, an 802.3ad (LACP) bundle of `ports`.
    Lag { bond: String, ports: Vec<String> },
    /// VXLAN segment, VNI = VLAN id, toward the trunk's remote VTEP.
    Vxlan {
        remote_vtep: Ipv4Addr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<String>,
        udp_port: u16,
    },
}

/// A trunk this edge carries: where its connections' frames go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrunkConfig {
    pub id: String,
    pub attachment: Attachment,
    /// Capacity in Mbit/s (shaping: not yet enforced by the data plane).
    pub capacity_mbps: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionConfig {
    pub id: String,
    pub trunk_id: String,
    pub vlan_id: u16,
    pub mtu: u32,
    /// One per address family the connection has (IPv4 first): each its own addresses
    /// on the connection's interface and its own BGP session.
    pub peerings: Vec<PeeringConfig>,
    /// The session is held down until this time (RFC 3339): a BGP failover test. The edge
    /// brings it back by itself when the time has come.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_down_until: Option<String>,
    /// A change restarts the session at once (and ends a max-prefix idle hold).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reset_seq: u64,
    /// GTSM (RFC 5082) on its sessions: segments with a TTL below 255 are dropped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ttl_security: bool,
    /// BGP roles (RFC 9234) on its sessions.
    #[serde(default, skip_serializing_if = "BgpRoleMode::is_off")]
    pub bgp_role: BgpRoleMode,
    /// BFD timers of its own (over `bgp.bfd`'s interval and multiplier; BFD runs only
    /// while `bgp.bfd` is enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<ConnectionBfd>,
}

/// A connection's own BFD timers, as the edge is sent them (open to new fields: an
/// older edge must not refuse a newer server's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionBfd {
    pub min_interval_ms: u32,
    pub multiplier: u8,
}

impl ConnectionConfig {
    pub fn peering(&self, family: Family) -> Option<&PeeringConfig> {
        self.peerings.iter().find(|p| p.family() == family)
    }

    /// Whether any of its sessions has a TCP-MD5 key.
    pub fn has_md5_key(&self) -> bool {
        self.peerings.iter().any(|p| p.md5_key.is_some())
    }
}

/// One family's peering of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeeringConfig {
    #[schemars(with = "String")]
    pub subnet: IpNet,
    pub cloud_ip: IpAddr,
    pub peer_ip: IpAddr,
    pub peer_asn: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5_key: Option<crate::Secret>,
    /// Prefixes routed to `peerIp` whether or not the BGP session is up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub static_routes: Vec<IpNet>,
}

impl PeeringConfig {
    pub fn family(&self) -> Family {
        Family::of(self.peer_ip)
    }

    /// The cloud's address on the connection's interface, with the subnet's length.
    pub fn cloud_address(&self) -> IpNet {
        IpNet::new(self.cloud_ip, self.subnet.prefix_len()).unwrap_or(self.subnet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn instance(id: &str, prefix: &str) -> InstanceConfig {
        InstanceConfig {
            id: id.into(),
            routing_instance_id: Some(format!("ri-{id}")),
            vpc_prefixes: vec![prefix.parse().unwrap()],
            fabric: None,
            connections: vec![],
            announce: vec![],
            accept_only: None,
        }
    }

    pub(super) fn config(revision: u64, instances: Vec<InstanceConfig>) -> EdgeConfig {
        let instances = instances.into_iter().map(Arc::new).collect();
        let mut c = EdgeConfig {
            revision,
            edge_id: "e1".into(),
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            local_asn: 200350,
            bgp: BgpSettings::default(),
            trunks: vec![],
            instances,
            drain: false,
        };
        c.sort_instances();
        c
    }

    #[test]
    fn an_update_carries_only_what_changed_and_gives_the_whole_config_back() {
        let old = config(
            7,
            vec![
                instance("a", "10.0.0.0/24"),
                instance("b", "10.0.1.0/24"),
                instance("c", "10.0.2.0/24"),
            ],
        );
        let mut new = config(
            9,
            vec![
                instance("a", "10.0.0.0/24"),  // the same
                instance("b", "10.9.1.0/24"),  // changed
                instance("aa", "10.0.3.0/24"), // added
            ],
        );
        new.drain = true;
        let update = new.changes_from(&old, "t2".into(), "t1".into());
        let ids: Vec<&str> = update
            .config
            .instances
            .iter()
            .map(|i| i.id.as_str())
            .collect();
        assert_eq!(ids, ["aa", "b"], "the changed and added instances alone");
        assert_eq!(update.removed_instances, ["c"]);
        assert_eq!(update.config.revision, 9);
        assert!(update.config.drain, "every other field whole");
        let got = update.clone().into_config(Some(("t1", &old))).unwrap();
        assert_eq!(got, new);
        // Nothing changed: no instance sent, the config the same.
        let same = new.changes_from(&new, "t3".into(), "t2".into());
        assert!(same.config.instances.is_empty() && same.removed_instances.is_empty());
        assert_eq!(same.into_config(Some(("t2", &new))).unwrap(), new);
    }

    #[test]
    fn a_config_made_whole_shares_the_instances_that_did_not_change() {
        let old = config(
            1,
            vec![instance("a", "10.0.0.0/24"), instance("b", "10.0.1.0/24")],
        );
        let new = config(
            2,
            vec![instance("a", "10.0.0.0/24"), instance("b", "10.9.1.0/24")],
        );
        let got = new
            .changes_from(&old, "t2".into(), "t1".into())
            .into_config(Some(("t1", &old)))
            .unwrap();
        assert_eq!(got, new);
        assert!(
            Arc::ptr_eq(&got.instances[0], &old.instances[0]),
            "a, unchanged, is the one held (not a copy)"
        );
        assert!(!Arc::ptr_eq(&got.instances[1], &old.instances[1]));
    }

    #[test]
    fn changes_since_an_answer_the_edge_does_not_hold_are_refused() {
        let old = config(1, vec![instance("a", "10.0.0.0/24")]);
        let new = config(2, vec![instance("b", "10.0.1.0/24")]);
        let update = new.changes_from(&old, "t2".into(), "t1".into());
        let err = update.clone().into_config(Some(("t0", &old))).unwrap_err();
        assert_eq!(err.since, "t1");
        assert!(err.to_string().contains("does not hold"), "{err}");
        assert_eq!(update.into_config(None).unwrap_err().since, "t1");
    }

    #[test]
    fn a_whole_answer_reads_as_a_config_for_an_edge_that_knows_no_updates() {
        let whole = EdgeConfigUpdate {
            tag: "t1".into(),
            changes_since: None,
            removed_instances: vec![],
            config: config(3, vec![instance("a", "10.0.0.0/24")]),
        };
        let json = serde_json::to_value(&whole).unwrap();
        assert_eq!(json["tag"], "t1");
        assert!(json.get("changesSince").is_none());
        let read: EdgeConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(read, whole.config);
        let back: EdgeConfigUpdate = serde_json::from_value(json).unwrap();
        assert_eq!(back.clone().into_config(None).unwrap(), whole.config);
        assert_eq!(back, whole);
        // A server older than tags answers a plain config: read as whole, with no tag.
        let plain: EdgeConfigUpdate =
            serde_json::from_value(serde_json::to_value(&whole.config).unwrap()).unwrap();
        assert_eq!(plain.tag, "");
        assert_eq!(plain.into_config(None).unwrap(), whole.config);
    }

    fn session(id: &str, family: Family, state: &str, uptime: u64) -> SessionStatus {
        serde_json::from_value(serde_json::json!({
            "resourceId": id, "kind": "customer", "family": family, "peer": "169.254.0.2",
            "peerAsn": 65001, "state": state, "uptimeSecs": uptime, "prefixesReceived": 0,
            "prefixesAccepted": 0, "prefixesAdvertised": 0}))
        .unwrap()
    }

    fn report(sessions: Vec<SessionStatus>) -> EdgeReport {
        EdgeReport {
            applied_revision: 5,
            dataplane: "x".into(),
            sessions,
            errors: vec![],
            traffic: vec![],
        }
    }

    #[test]
    fn a_report_of_changes_carries_what_changed_and_makes_the_whole_report_back() {
        let before = report(vec![
            session("a", Family::Ipv4, "ESTABLISHED", 10),
            session("a", Family::Ipv6, "ESTABLISHED", 10),
            session("b", Family::Ipv4, "ACTIVE", 0),
        ]);
        let base = before
            .sessions
            .iter()
            .map(|s| (s.key(), s.clone()))
            .collect();
        let now = report(vec![
            session("a", Family::Ipv4, "ESTABLISHED", 10),
            session("b", Family::Ipv4, "ESTABLISHED", 1),
            session("c", Family::Ipv4, "CONNECT", 0),
        ]);
        let changes = now.changes_from(&base, "v1", true).unwrap();
        assert_eq!(changes.changes_since, "v1");
        let sent: Vec<(&str, &str)> = changes
            .sessions
            .iter()
            .map(|s| (s.resource_id.as_str(), s.state.as_str()))
            .collect();
        assert_eq!(sent, [("b", "ESTABLISHED"), ("c", "CONNECT")]);
        assert_eq!(
            changes.removed_sessions,
            [SessionKey {
                resource_id: "a".into(),
                kind: SessionKind::Customer,
                family: Family::Ipv6
            }]
        );
        let made = changes.clone().onto(&before).unwrap();
        assert_eq!(made, now, "the whole report, in its order");
        // A session sent twice, or sent and removed: refused, by name.
        let mut twice = changes.clone();
        twice.sessions.push(twice.sessions[0].clone());
        assert_eq!(twice.onto(&before).unwrap_err().field, "sessions[2]");
        let mut both = changes.clone();
        both.removed_sessions.push(both.sessions[1].key());
        let err = both.onto(&before).unwrap_err();
        assert_eq!(err.field, "sessions[1]");
        assert!(err.to_string().contains("removedSessions"), "{err}");
        // A base that holds a key twice: once in what is made.
        let mut doubled = before.clone();
        doubled.sessions.push(session("b", Family::Ipv4, "IDLE", 0));
        let made = changes.onto(&doubled).unwrap();
        assert_eq!(made, now);
        // The same key twice: no changes to make, it goes whole.
        let twice = report(vec![
            session("a", Family::Ipv4, "ESTABLISHED", 10),
            session("a", Family::Ipv4, "IDLE", 0),
        ]);
        assert!(twice.changes_from(&base, "v1", true).is_none());
        assert!(twice.into_sessions_by_key().is_none());
        assert_eq!(now.into_sessions_by_key().map(|m| m.len()), Some(3));
    }

    #[test]
    fn a_session_that_only_grew_older_is_left_out_of_the_changes() {
        let up = |uptime: u64, since: Option<&str>| SessionStatus {
            established_at: since.map(str::to_string),
            ..session("a", Family::Ipv4, "ESTABLISHED", uptime)
        };
        let t1 = Some("2026-12-07T17:00:00.250Z");
        let t2 = Some("2026-12-07T17:01:30.000Z");
        let sent = |base: SessionStatus, now: SessionStatus| {
            let base = [(base.key(), base)].into_iter().collect();
            let r = report(vec![now]);
            let counted = r.changes_from(&base, "v1", true).unwrap().sessions.len();
            // A server that does not count ages is sent every session whose age changed.
            let uncounted = r.changes_from(&base, "v1", false).unwrap().sessions;
            assert_eq!(
                uncounted.len(),
                usize::from(r.sessions[0] != base[&r.sessions[0].key()])
            );
            counted
        };
        // The same Established period, older: not sent (the server counts the age).
        assert_eq!(sent(up(10, t1), up(95, t1)), 0);
        // Anything else changed with it: sent, with its age.
        let mut more = up(95, t1);
        more.prefixes_received = 3;
        assert_eq!(sent(up(10, t1), more), 1);
        // Up again since (a flap between two reports): sent.
        assert_eq!(sent(up(10, t1), up(2, t2)), 1);
        assert_eq!(sent(up(10, t1), up(12, t2)), 1);
        // Younger in the same period cannot be: sent.
        assert_eq!(sent(up(10, t1), up(9, t1)), 1);
        // An edge that does not say when (an older agent): its age is the news.
        assert_eq!(sent(up(10, None), up(11, None)), 1);
        assert_eq!(sent(up(10, None), up(10, None)), 0);
    }

    #[test]
    fn a_session_with_anything_but_its_age_changed_is_not_only_older() {
        let base = serde_json::to_value(SessionStatus {
            established_at: Some("2026-12-07T17:00:00.250Z".into()),
            ..session("a", Family::Ipv4, "ESTABLISHED", 10)
        })
        .unwrap();
        let older = |v: &serde_json::Value| {
            let mut v = v.clone();
            v["uptimeSecs"] = 95.into();
            serde_json::from_value::<SessionStatus>(v).unwrap()
        };
        let was: SessionStatus = serde_json::from_value(base.clone()).unwrap();
        assert!(was.same_but_older(&older(&base)));
        // Each field but the age, changed alone (every field the schema names is here).
        let changes = serde_json::json!({
            "resourceId": "b", "kind": "fabric", "family": "ipv6", "peer": "169.254.0.6",
            "peerAsn": 65002, "state": "IDLE", "establishedAt": "2026-12-07T17:01:00.000Z",
            "prefixesReceived": 1, "prefixesAccepted": 1, "prefixesAdvertised": 1,
            "prefixLimitExceeded": true, "prefixLimitWarning": true,
            "idleHoldRemainingSecs": 30, "lastError": "hold timer expired",
            "lastFailure": {"kind": "connectRefused"}, "bfd": {"state": "UP"}});
        let schema = serde_json::to_value(schemars::schema_for!(SessionStatus)).unwrap();
        let mut named: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        named.retain(|k| *k != "uptimeSecs");
        let mut changed: Vec<&String> = changes.as_object().unwrap().keys().collect();
        named.sort();
        changed.sort();
        assert_eq!(named, changed, "a case for each field");
        for (field, value) in changes.as_object().unwrap() {
            let mut v = base.clone();
            v[field.as_str()] = value.clone();
            assert!(!was.same_but_older(&older(&v)), "{field} changed");
        }
    }

    #[test]
    fn a_transient_failure_is_sent_as_final_once_it_has_lasted_the_bound() {
        use std::collections::BTreeMap;
        use std::time::Duration;
        let t = |s: u64| Duration::from_secs(s);
        let busy = |id: &str| ResourceError {
            transient: true,
            ..ResourceError::new(id, "no answer from the kernel in 10 s")
        };
        let mut since = BTreeMap::new();
        let mut errors = vec![busy("c1"), ResourceError::new("c2", "port eth9 not found")];
        age_transients(&mut since, &mut errors, t(100));
        assert!(errors[0].transient, "new: still transient");
        assert!(!errors[1].transient, "a final failure stays final");
        // Failing again and again: the run began at the first.
        let mut errors = vec![busy("c1")];
        age_transients(&mut since, &mut errors, t(100) + TRANSIENT_FOR - t(1));
        assert!(errors[0].transient, "within the bound");
        assert!(
            !since.contains_key("c2"),
            "c2 no longer fails: its run ended"
        );
        let mut errors = vec![busy("c1")];
        age_transients(&mut since, &mut errors, t(100) + TRANSIENT_FOR);
        assert!(!errors[0].transient, "the bound reached: final");
        // An apply without the failure ends its run; the next begins anew.
        age_transients(&mut since, &mut [], t(200));
        assert!(since.is_empty());
        let mut errors = vec![busy("c1")];
        age_transients(&mut since, &mut errors, t(300));
        assert!(errors[0].transient, "a new run");
    }

    #[test]
    fn an_operation_is_held_by_failures_that_may_pass_and_for_a_bounded_time() {
        use std::time::Duration;
        let busy = ResourceError {
            transient: true,
            ..ResourceError::new("c1", "no answer from the kernel in 10 s")
        };
        let gone = ResourceError::new("c1", "port eth9 not found");
        let zero = Duration::ZERO;
        assert!(holds([&busy], zero), "a failure that may pass holds it");
        assert!(holds(
            [&busy, &busy],
            HELD_AT_MOST - Duration::from_millis(1)
        ));
        assert!(!holds([&busy], HELD_AT_MOST), "held long enough: it fails");
        assert!(
            !holds([&busy, &gone], zero),
            "one final failure finishes it"
        );
        assert!(!holds([], zero), "no failure: it finishes, done");
    }

    #[test]
    fn a_failure_is_final_unless_it_says_otherwise() {
        let e: ResourceError =
            serde_json::from_value(serde_json::json!({"resourceId": "c1", "message": "m"}))
                .unwrap();
        assert!(!e.transient, "an older edge's failure is final");
        assert!(serde_json::to_value(&e).unwrap().get("transient").is_none());
        let busy = ResourceError {
            transient: true,
            ..e
        };
        assert_eq!(serde_json::to_value(&busy).unwrap()["transient"], true);
    }
}
