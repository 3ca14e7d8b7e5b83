//! The operator's catalog: points of presence, their edge routers and fabric settings,
//! partners and their ports.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PointOfPresence {
    /// Operator-chosen id such as `ru-msk-m9-0`.
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub location_address: String,
    #[serde(default)]
    pub connection_points: Vec<String>,
    /// The PoP's network toward the cloud's public services: where its edges send what
    /// public connections carry. Without it a public connection's session comes up and
    /// its routes are judged, but nothing is announced to the customer (no packet could
    /// follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_services: Option<PublicServicesNetwork>,
}

/// How a PoP's edges reach the cloud's public services: a VXLAN segment per public
/// connection from the edge (its VNI and transit /31 from the edge's fabric slots, as a
/// routing instance's) to the services routers' VTEP, and the routing over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicServicesNetwork {
    /// The services routers' VTEP.
    pub remote_vtep: Ipv4Addr,
    /// The VXLAN UDP port (4789 unless the network says otherwise).
    #[serde(default = "default_vxlan_port")]
    pub udp_port: u16,
    pub routing: PublicServicesRouting,
    /// The services routers' ASN (BGP routing; equal to the cloud ASN means iBGP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

/// How routes cross a public-services segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PublicServicesRouting {
    /// A BGP session per segment: the services routers announce the services' prefixes
    /// (the edge takes only those a connection is allowed), the edge announces the
    /// customer's accepted prefixes; each side withdraws what it can no longer reach.
    Bgp,
    /// No session: the edge routes the allowed services' prefixes to the services
    /// router's address on the segment and announces them to the customer whatever the
    /// services routers' state (nothing tells the edge they are gone); the services
    /// routers route the customer's registered prefixes back to the edge's address
    /// (`…/publicServicesAttachments` says which).
    Static,
}

/// How an edge reaches the cloud fabric router of each routing instance: one VXLAN
/// segment per (routing instance, edge), addressed from `transitPool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FabricSettings {
    /// ASN of the fabric router; equal to the cloud ASN means iBGP.
    pub asn: u32,
    /// The fabric router's VTEP address.
    pub remote_vtep: Ipv4Addr,
    /// The edge's VTEP address, as the fabric must address it.
    pub local_vtep: Ipv4Addr,
    /// Underlay port toward the fabric (optional: the kernel routes to `remoteVtep`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// Pool of /31 transit subnets, one per routing instance on this edge.
    #[schemars(with = "String")]
    pub transit_pool: Ipv4Net,
    /// Pool of /127 transit subnets for the IPv6 side of the same segments (slot n has
    /// the n-th /127, as it has the n-th /31 of `transitPool`). Without it, each IPv4
    /// transit address is embedded in `fd63:6963::/96` (unique local; "cic" in ASCII):
    /// 100.127.0.6 becomes fd63:6963::647f:6 — distinct wherever the IPv4 pools are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub transit_pool6: Option<Ipv6Net>,
    /// First VNI used for fabric segments (must be above the VLAN range).
    #[serde(default = "default_vni_base")]
    pub vni_base: u32,
}

/// `fd63:6963::/96` (unique local; "cic" in ASCII): where the fabric's IPv6 transit
/// addresses are when the operator names no pool (the IPv4 ones embedded in it).
pub fn default_transit_pool6() -> Ipv6Net {
    Ipv6Net::new(Ipv6Addr::new(0xfd63, 0x6963, 0, 0, 0, 0, 0, 0), 96).unwrap_or_default()
}

fn default_vni_base() -> u32 {
    100_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateEdgeRequest {
    pub name: String,
    pub point_of_presence_id: String,
    pub router_id: Ipv4Addr,
    pub fabric: FabricSettings,
    /// Ports cic may hand out to LAG trunks with `lagAllocationSettings`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_ports: Vec<String>,
}

/// An edge router running `cic edge`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub id: String,
    pub name: String,
    pub point_of_presence_id: String,
    pub router_id: Ipv4Addr,
    pub fabric: FabricSettings,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub customer_ports: Vec<String>,
    /// Drained for maintenance (`:drain`): its sessions carry GRACEFUL_SHUTDOWN, so peers
    /// move traffic to other PoPs before the work starts.
    #[serde(default)]
    pub drain: bool,
    pub created_at: String,
    /// What the edge last reported (not stored; absent until the edge first reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<EdgeLive>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeLive {
    pub reported_at: String,
    pub applied_revision: u64,
    pub dataplane: String,
    pub errors: Vec<crate::edge::ResourceError>,
}

/// Returned once by `POST /cic/v1/edges`: the edge's own bearer token is never shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeRegistration {
    pub edge: Edge,
    pub token: String,
}

/// `:issueCertificate` and `:rotateCredentials` of an edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EdgeCredentialsRequest {
    /// What to issue: `certificate` (from the server's CA) or `token`. Default: a
    /// certificate when the server has a CA key, else a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A certificate signing request (PEM) whose key the certificate is for; without it
    /// the server makes a key pair and returns its private key once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csr: Option<String>,
    /// Days the certificate is valid (1–825; default 365).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<u32>,
    /// `:rotateCredentials`: when the edge's other credentials of this kind stop being
    /// accepted, in seconds from now (0: at once; default 3600). The edge picks the new
    /// files up meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_old_after_seconds: Option<u64>,
}

/// New credentials of an edge, shown once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EdgeCredentials {
    pub edge_id: String,
    /// `certificate` or `token`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// The private key the server made (absent when a CSR was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The CA that issued the certificate (what the server checks edges against).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `:rotateCredentials`: when the edge's previous credentials of this kind stop
    /// being accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_revoked_at: Option<String>,
}

/// A partner that brings customers to the PoPs (operator catalog; everyone reads it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Partner {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub pop_ids: Vec<String>,
    #[serde(default)]
    pub status: PartnerStatus,
    /// Where the partner's port meets each PoP's edge.
    #[serde(default)]
    pub joints: Vec<PartnerPort>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PartnerStatus {
    #[default]
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerPort {
    pub point_of_presence_id: String,
    /// The edge (by name).
    pub access_device_name: String,
    pub port_name: String,
}
