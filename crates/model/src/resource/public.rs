//! Public connections and the cloud services they reach.

use super::*;

/// A cloud service reachable over public connections (operator catalog), keyed by the
/// modelled API's service type, e.g. `CLOUD_SERVICE_S3`, with the prefixes it answers on
/// (IPv4 and IPv6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudService {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[schemars(with = "Vec<String>")]
    pub prefixes: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePublicConnectionRequest {
    pub folder_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Labels,
    pub trunk_connection_id: String,
    #[serde(with = "crate::int64")]
    #[schemars(with = "String")]
    pub vlan_id: u32,
    pub ipv4_peering: Ipv4PeeringSpec,
    pub ipv4_allowed_service_types: Vec<String>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub ipv4_peer_announced_prefixes: Vec<Ipv4Net>,
    /// An IPv6 session beside the IPv4 one, to the services' IPv6 prefixes.
    #[serde(default)]
    pub ipv6_peering: Option<Ipv6PeeringSpec>,
    #[serde(default)]
    pub ipv6_allowed_service_types: Vec<String>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub ipv6_peer_announced_prefixes: Vec<Ipv6Net>,
}

/// A VLAN on a trunk to the cloud's public services: the cloud announces the /32s of the
/// allowed services, and accepts the customer's public prefixes listed here (only those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublicConnection {
    #[serde(flatten)]
    pub meta: Meta,
    pub trunk_connection_id: String,
    #[serde(with = "crate::int64")]
    #[schemars(with = "String")]
    pub vlan_id: u16,
    pub ipv4_peering: Ipv4Peering,
    pub ipv4_allowed_service_types: Vec<String>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub ipv4_peer_announced_prefixes: Vec<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_peering: Option<Ipv6Peering>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_allowed_service_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "Vec<String>")]
    pub ipv6_peer_announced_prefixes: Vec<Ipv6Net>,
    /// Live BGP state as last reported by the edge (output, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::edge::SessionStatus>,
    /// Live state of the IPv6 session (output, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_ipv6: Option<crate::edge::SessionStatus>,
    /// BGP failover tests, newest last (the last 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_failover_tests: Vec<FailoverTest>,
    /// How many times the session was restarted on request (`:resetBgpSession`).
    #[serde(default, skip_serializing_if = "is_zero", with = "crate::int64")]
    #[schemars(with = "String")]
    pub bgp_session_resets: u64,
}

/// A BGP failover test: the connection's session is held down from `startedAt` until
/// `endsAt` (or until it is stopped), then comes back by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverTest {
    pub id: String,
    pub started_at: String,
    pub ends_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    pub started_by: String,
    /// IN_PROGRESS, COMPLETED or STOPPED (output, from the times).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
}
