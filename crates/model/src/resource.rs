//! Public resources, shaped like the modelled service's REST API (camelCase JSON).
//!
//! Output-only fields (ids, statuses, live state) are in the resource types; what a client
//! may send is in the `Create…Request` types, which reject unknown fields so that a typo
//! is an error instead of a silently ignored setting.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub type Labels = BTreeMap<String, String>;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    #[default]
    Creating,
    Updating,
    Deleting,
    Active,
}

/// Fields common to every tenant resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub id: String,
    pub folder_id: String,
    pub name: String,
    pub description: String,
    pub labels: Labels,
    pub created_at: String,
    pub status: Status,
}

// ---------------------------------------------------------------------------------------
// Catalog (operator-managed)

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

// ---------------------------------------------------------------------------------------
// Trunk connections

/// Trunk capacity; the enforced rate of the trunk port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Capacity {
    #[serde(rename = "CAPACITY_50_MBPS")]
    Capacity50Mbps,
    #[serde(rename = "CAPACITY_100_MBPS")]
    Capacity100Mbps,
    #[serde(rename = "CAPACITY_200_MBPS")]
    Capacity200Mbps,
    #[serde(rename = "CAPACITY_300_MBPS")]
    Capacity300Mbps,
    #[serde(rename = "CAPACITY_400_MBPS")]
    Capacity400Mbps,
    #[serde(rename = "CAPACITY_500_MBPS")]
    Capacity500Mbps,
    #[serde(rename = "CAPACITY_1_GBPS")]
    Capacity1Gbps,
    #[serde(rename = "CAPACITY_2_GBPS")]
    Capacity2Gbps,
    #[serde(rename = "CAPACITY_3_GBPS")]
    Capacity3Gbps,
    #[serde(rename = "CAPACITY_4_GBPS")]
    Capacity4Gbps,
    #[serde(rename = "CAPACITY_5_GBPS")]
    Capacity5Gbps,
    #[serde(rename = "CAPACITY_10_GBPS")]
    Capacity10Gbps,
    #[serde(rename = "CAPACITY_20_GBPS")]
    Capacity20Gbps,
    #[serde(rename = "CAPACITY_30_GBPS")]
    Capacity30Gbps,
    #[serde(rename = "CAPACITY_40_GBPS")]
    Capacity40Gbps,
    #[serde(rename = "CAPACITY_50_GBPS")]
    Capacity50Gbps,
    #[serde(rename = "CAPACITY_100_GBPS")]
    Capacity100Gbps,
    #[serde(rename = "CAPACITY_200_GBPS")]
    Capacity200Gbps,
}

impl Capacity {
    pub fn mbps(self) -> u64 {
        use Capacity::*;
        match self {
            Capacity50Mbps => 50,
            Capacity100Mbps => 100,
            Capacity200Mbps => 200,
            Capacity300Mbps => 300,
            Capacity400Mbps => 400,
            Capacity500Mbps => 500,
            Capacity1Gbps => 1_000,
            Capacity2Gbps => 2_000,
            Capacity3Gbps => 3_000,
            Capacity4Gbps => 4_000,
            Capacity5Gbps => 5_000,
            Capacity10Gbps => 10_000,
            Capacity20Gbps => 20_000,
            Capacity30Gbps => 30_000,
            Capacity40Gbps => 40_000,
            Capacity50Gbps => 50_000,
            Capacity100Gbps => 100_000,
            Capacity200Gbps => 200_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransceiverType {
    #[serde(rename = "TRANSCEIVER_TYPE_1000BASE_LX")]
    T1000BaseLx,
    #[serde(rename = "TRANSCEIVER_TYPE_10GBASE_LR")]
    T10GBaseLr,
    #[serde(rename = "TRANSCEIVER_TYPE_10GBASE_ER")]
    T10GBaseEr,
    #[serde(rename = "TRANSCEIVER_TYPE_100GBASE_LR4")]
    T100GBaseLr4,
    #[serde(rename = "TRANSCEIVER_TYPE_100GBASE_ER4")]
    T100GBaseEr4,
}

/// A physical port of an edge router; connections are 802.1Q subinterfaces of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SinglePortDirectJoint {
    pub transceiver_type: TransceiverType,
    /// The edge's port, e.g. `eth3`.
    pub port_name: String,
    /// Name of the edge router (an edge of the PoP); chosen by cic when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_device_name: Option<String>,
}

/// Several ports of one edge bundled with LACP (802.3ad); connections are 802.1Q
/// subinterfaces of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LagDirectJoint {
    pub transceiver_type: TransceiverType,
    /// Let cic pick this many free ports of the edge (from its `customerPorts`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_allocation_settings: Option<LagAllocationSettings>,
    /// …or name them. In a trunk, the ports it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_device_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LagAllocationSettings {
    #[serde(with = "crate::int64")]
    #[schemars(with = "String")]
    pub lag_size: u32,
}

/// A trunk through a partner: the partner's port at the PoP carries it (802.1Q), and the
/// partner's service key names the customer's order with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartnerJointInfo {
    pub partner_id: String,
    pub service_key: String,
    /// The partner's port on the edge (output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
}

/// A virtual cross-connect through a partner's IP network: each connection is a VXLAN
/// segment with VNI = its VLAN id toward `remoteVtep`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverlayJoint {
    pub remote_vtep: Ipv4Addr,
    /// Underlay port of the edge; the kernel routes to `remoteVtep` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    #[serde(default = "default_vxlan_port")]
    pub udp_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_device_name: Option<String>,
}

pub fn default_vxlan_port() -> u16 {
    4789
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTrunkConnectionRequest {
    pub folder_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Labels,
    pub point_of_presence_id: String,
    pub capacity: Capacity,
    #[serde(default)]
    pub deletion_protection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_port_direct_joint: Option<SinglePortDirectJoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_joint: Option<OverlayJoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_direct_joint: Option<LagDirectJoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_joint_info: Option<PartnerJointInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrunkConnection {
    #[serde(flatten)]
    pub meta: Meta,
    pub point_of_presence_id: String,
    pub capacity: Capacity,
    pub deletion_protection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_port_direct_joint: Option<SinglePortDirectJoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_joint: Option<OverlayJoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_direct_joint: Option<LagDirectJoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_joint_info: Option<PartnerJointInfo>,
    /// The edge that carries this trunk (output).
    pub edge_id: String,
}

impl TrunkConnection {
    /// What the trunk's frames share on its edge with other trunks, whose connections then
    /// need distinct VLAN ids: its port (its own, or a partner's), or for an overlay trunk
    /// the VXLAN UDP port (VXLAN demultiplexes by VNI per UDP port). A LAG is a wire of its
    /// own (None).
    pub fn wire(&self) -> Option<String> {
        if let Some(o) = &self.overlay_joint {
            return Some(format!("VXLAN UDP port {}", o.udp_port));
        }
        if self.lag_direct_joint.is_some() {
            return None;
        }
        if let Some(port) = self
            .partner_joint_info
            .as_ref()
            .and_then(|p| p.port_name.as_ref())
        {
            return Some(format!("port {port}"));
        }
        self.single_port_direct_joint
            .as_ref()
            .map(|j| format!("port {}", j.port_name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTrunkConnectionRequest {
    #[serde(default)]
    pub trunk_connection_id: Option<String>,
    /// The fields to change (`"name,deletionProtection"`); without it, the fields present.
    #[serde(default)]
    pub update_mask: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub labels: Option<Labels>,
    #[serde(default)]
    pub deletion_protection: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// Private connections

/// A family's peering types: the spec a client sends, the peering as stored and shown
/// (with the cloud's ASN), and the PATCH that merges into it. One definition for IPv4 and
/// IPv6, which differ only in their address types.
macro_rules! peering_types {
    ($family:literal, $spec:ident, $peering:ident, $patch:ident, $net:ty, $addr:ty) => {
        #[doc = concat!("The ", $family, " peering of a connection, as a client sends it.")]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $spec {
            #[schemars(with = "String")]
            pub peering_subnet: $net,
            pub peer_ip: $addr,
            pub cloud_ip: $addr,
            #[serde(with = "crate::int64")]
            #[schemars(with = "String")]
            pub peer_bgp_asn: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peer_bgp_md5_key: Option<crate::Secret>,
        }

        #[doc = concat!("The ", $family, " peering of a connection: its own BGP session.")]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $peering {
            #[schemars(with = "String")]
            pub peering_subnet: $net,
            pub peer_ip: $addr,
            pub cloud_ip: $addr,
            #[serde(with = "crate::int64")]
            #[schemars(with = "String")]
            pub peer_bgp_asn: u32,
            #[serde(with = "crate::int64")]
            #[schemars(with = "String")]
            pub cloud_bgp_asn: u32,
            /// The secret; shown masked unless the caller may read secrets.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peer_bgp_md5_key: Option<crate::Secret>,
        }

        impl From<&$peering> for $spec {
            fn from(p: &$peering) -> $spec {
                $spec {
                    peering_subnet: p.peering_subnet,
                    peer_ip: p.peer_ip,
                    cloud_ip: p.cloud_ip,
                    peer_bgp_asn: p.peer_bgp_asn,
                    peer_bgp_md5_key: p.peer_bgp_md5_key.clone(),
                }
            }
        }

        impl $spec {
            /// The peering as stored: with the cloud's ASN.
            pub fn with_cloud_asn(&self, cloud_asn: u32) -> $peering {
                $peering {
                    peering_subnet: self.peering_subnet,
                    peer_ip: self.peer_ip,
                    cloud_ip: self.cloud_ip,
                    peer_bgp_asn: self.peer_bgp_asn,
                    cloud_bgp_asn: cloud_asn,
                    peer_bgp_md5_key: self.peer_bgp_md5_key.clone(),
                }
            }
        }

        /// A peering in a PATCH: a merge. The fields present change, the others stay as
        /// they are; the MD5 key stays unless the patch says otherwise ([`SecretPatch`]).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $patch {
            #[serde(default, deserialize_with = "present")]
            #[schemars(with = "Option<String>")]
            pub peering_subnet: Option<$net>,
            #[serde(default, deserialize_with = "present")]
            #[schemars(with = "Option<String>")]
            pub peer_ip: Option<$addr>,
            #[serde(default, deserialize_with = "present")]
            #[schemars(with = "Option<String>")]
            pub cloud_ip: Option<$addr>,
            #[serde(default, deserialize_with = "present_int64")]
            #[schemars(with = "Option<String>")]
            pub peer_bgp_asn: Option<u32>,
            /// Absent, or the mask it is shown as (`"********"`): unchanged. `null` or
            /// `""`: removed. Anything else: the new key.
            #[serde(default)]
            #[schemars(with = "Option<crate::Secret>")]
            pub peer_bgp_md5_key: SecretPatch,
        }

        impl $patch {
            /// The peering `old` with this patch applied.
            pub fn apply(self, old: &$spec) -> $spec {
                $spec {
                    peering_subnet: self.peering_subnet.unwrap_or(old.peering_subnet),
                    peer_ip: self.peer_ip.unwrap_or(old.peer_ip),
                    cloud_ip: self.cloud_ip.unwrap_or(old.cloud_ip),
                    peer_bgp_asn: self.peer_bgp_asn.unwrap_or(old.peer_bgp_asn),
                    peer_bgp_md5_key: self.peer_bgp_md5_key.apply(old.peer_bgp_md5_key.as_ref()),
                }
            }

            /// The patch as a new peering (the connection had none of this family): every
            /// required field must be there; `Err` names the first one missing.
            pub fn complete(self) -> Result<$spec, &'static str> {
                Ok($spec {
                    peering_subnet: self.peering_subnet.ok_or("peeringSubnet")?,
                    peer_ip: self.peer_ip.ok_or("peerIp")?,
                    cloud_ip: self.cloud_ip.ok_or("cloudIp")?,
                    peer_bgp_asn: self.peer_bgp_asn.ok_or("peerBgpAsn")?,
                    peer_bgp_md5_key: self.peer_bgp_md5_key.apply(None),
                })
            }
        }
    };
}

peering_types!(
    "IPv4",
    Ipv4PeeringSpec,
    Ipv4Peering,
    Ipv4PeeringPatch,
    Ipv4Net,
    Ipv4Addr
);
peering_types!(
    "IPv6",
    Ipv6PeeringSpec,
    Ipv6Peering,
    Ipv6PeeringPatch,
    Ipv6Net,
    Ipv6Addr
);

/// What a PATCH does to a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SecretPatch {
    /// Left out, or written back as the mask it was read as.
    #[default]
    Keep,
    /// `null` or `""`: removed.
    Remove,
    Set(crate::Secret),
}

impl SecretPatch {
    pub fn apply(self, old: Option<&crate::Secret>) -> Option<crate::Secret> {
        match self {
            SecretPatch::Keep => old.cloned(),
            SecretPatch::Remove => None,
            SecretPatch::Set(s) => Some(s),
        }
    }
}

impl<'de> Deserialize<'de> for SecretPatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<String>::deserialize(d)? {
            None => SecretPatch::Remove,
            Some(s) if s.is_empty() => SecretPatch::Remove,
            Some(s) if s == crate::SECRET_MASK => SecretPatch::Keep,
            Some(s) => SecretPatch::Set(crate::Secret::new(s)),
        })
    }
}

/// A field of a PATCH that may be left out but not set to null (it cannot be removed).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)?.map(Some).ok_or_else(|| {
        serde::de::Error::custom("cannot be null: it is required (leave it out to keep it)")
    })
}

/// [`present`] for an int64 field (a string or a number).
fn present_int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(with = "crate::int64")] u32);
    present::<D, Wrap>(d).map(|w| w.map(|w| w.0))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticRoute {
    #[schemars(with = "String")]
    pub prefix: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ipv6StaticRoute {
    #[schemars(with = "String")]
    pub prefix: Ipv6Net,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePrivateConnectionRequest {
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
    /// The IPv4 peering and its BGP session; a connection has this, `ipv6Peering`, or
    /// both.
    #[serde(default)]
    pub ipv4_peering: Option<Ipv4PeeringSpec>,
    /// The IPv6 peering: a BGP session of its own over its own addresses.
    #[serde(default)]
    pub ipv6_peering: Option<Ipv6PeeringSpec>,
    #[serde(default)]
    pub ipv4_static_routes: Vec<StaticRoute>,
    #[serde(default)]
    pub ipv6_static_routes: Vec<Ipv6StaticRoute>,
    /// GTSM (RFC 5082) on the connection's sessions: the cloud takes only BGP segments
    /// sent with TTL 255 (the customer's router sets `ttl-security hops 1`). Absent: the
    /// operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<bool>,
    /// BGP roles (RFC 9234) on the connection's sessions: `OFF`, `ANNOUNCE` or `STRICT`.
    /// Absent: the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_role: Option<crate::edge::BgpRoleMode>,
    /// BFD timers of the connection's sessions (e.g. 100 ms × 3 for a faster failover),
    /// down to the operator's minimum. Absent: the operator's default (300 ms × 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdTimers>,
}

/// BFD timers a connection asks for (RFC 5880): its Desired Min TX and Required Min RX
/// interval, and the detection multiplier. The session runs at the slower of the two
/// sides' intervals; it is declared down after `multiplier` intervals without a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdTimers {
    pub min_interval_ms: u32,
    pub multiplier: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateConnection {
    #[serde(flatten)]
    pub meta: Meta,
    pub trunk_connection_id: String,
    #[serde(with = "crate::int64")]
    #[schemars(with = "String")]
    pub vlan_id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_peering: Option<Ipv4Peering>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_peering: Option<Ipv6Peering>,
    #[serde(default)]
    pub ipv4_static_routes: Vec<StaticRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_static_routes: Vec<Ipv6StaticRoute>,
    /// GTSM (RFC 5082) on the connection's sessions, as the customer chose; absent: the
    /// operator's default (`bgpSessionOptions` shows what is in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<bool>,
    /// BGP roles (RFC 9234) on the connection's sessions, as the customer chose; absent:
    /// the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_role: Option<crate::edge::BgpRoleMode>,
    /// BFD timers, as the customer chose; absent: the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdTimers>,
    /// What is in force on the connection's sessions: its own choices, else the
    /// operator's defaults (output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_session_options: Option<BgpSessionOptions>,
    /// BGP failover tests, newest last (the last 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_failover_tests: Vec<FailoverTest>,
    /// How many times the session was restarted on request (`:resetBgpSession`).
    #[serde(default, skip_serializing_if = "is_zero", with = "crate::int64")]
    #[schemars(with = "String")]
    pub bgp_session_resets: u64,
    /// The routing instance this connection belongs to, if any (output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_instance_id: Option<String>,
    /// Live state of the IPv4 BGP session as last reported by the edge (output, not
    /// stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::edge::SessionStatus>,
    /// Live state of the IPv6 BGP session (output, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_ipv6: Option<crate::edge::SessionStatus>,
}

/// The session options in force on a connection (output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpSessionOptions {
    pub ttl_security: bool,
    pub bgp_role: crate::edge::BgpRoleMode,
    /// BFD timers the cloud's side runs (the session negotiates the slower of its and the
    /// customer router's); absent: no BFD (the operator turned it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdTimers>,
}

impl BgpSessionOptions {
    /// A connection's choices over the operator's defaults.
    pub fn of(c: &PrivateConnection, defaults: &crate::edge::BgpSettings) -> BgpSessionOptions {
        BgpSessionOptions {
            ttl_security: c.ttl_security.unwrap_or(defaults.ttl_security),
            bgp_role: c.bgp_role.unwrap_or(defaults.bgp_role),
            bfd: BfdTimers::in_force(c.bfd, &defaults.bfd),
        }
    }
}

impl BfdTimers {
    /// A connection's timers over the operator's BFD settings (none while BFD is off).
    pub fn in_force(own: Option<BfdTimers>, op: &crate::edge::BfdSettings) -> Option<BfdTimers> {
        op.enabled.then(|| {
            own.unwrap_or(BfdTimers {
                min_interval_ms: op.interval_ms,
                multiplier: op.multiplier,
            })
        })
    }
}

// ---------------------------------------------------------------------------------------
// Public connections and the cloud services they reach

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

fn is_zero(n: &u64) -> bool {
    *n == 0
}

// ---------------------------------------------------------------------------------------
// Routing instances (Cloud Router)

/// The prefixes of a VPC network in one zone. Written as the modelled API does,
/// `{"manualInfo": {"azId", "prefixes"}}`; read from that or from the flat
/// `{"azId", "prefixes"}` (cic's first shape, still in older databases and scripts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AzInfoWire", into = "AzInfoOut")]
pub struct AzInfo {
    pub az_id: String,
    /// IPv4 and IPv6 prefixes of the zone.
    pub prefixes: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VpcManualInfo {
    pub az_id: String,
    /// IPv4 and IPv6 prefixes.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub prefixes: Vec<IpNet>,
}

#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "AzInfo")]
struct AzInfoOut {
    manual_info: VpcManualInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AzInfoWire {
    #[serde(default)]
    manual_info: Option<VpcManualInfo>,
    #[serde(default)]
    az_id: Option<String>,
    #[serde(default)]
    prefixes: Option<Vec<IpNet>>,
}

impl TryFrom<AzInfoWire> for AzInfo {
    type Error = String;
    fn try_from(w: AzInfoWire) -> Result<AzInfo, String> {
        match (w.manual_info, w.az_id) {
            (Some(m), None) if w.prefixes.is_none() => Ok(AzInfo {
                az_id: m.az_id,
                prefixes: m.prefixes,
            }),
            (None, Some(az_id)) => Ok(AzInfo {
                az_id,
                prefixes: w.prefixes.unwrap_or_default(),
            }),
            _ => Err("an azInfo is {\"manualInfo\": {\"azId\": …, \"prefixes\": […]}}".into()),
        }
    }
}

impl From<AzInfo> for AzInfoOut {
    fn from(a: AzInfo) -> AzInfoOut {
        AzInfoOut {
            manual_info: VpcManualInfo {
                az_id: a.az_id,
                prefixes: a.prefixes,
            },
        }
    }
}

impl schemars::JsonSchema for AzInfo {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AzInfo".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        AzInfoOut::json_schema(g)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VpcInfo {
    pub vpc_network_id: String,
    #[serde(default)]
    pub az_infos: Vec<AzInfo>,
}

impl VpcInfo {
    pub fn prefixes(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.az_infos
            .iter()
            .flat_map(|az| az.prefixes.iter().copied())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrivateConnectionRef {
    pub cic_private_connection_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoutingInstanceRequest {
    pub folder_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub vpc_info: Vec<VpcInfo>,
    #[serde(default)]
    pub cic_private_connection_info: Vec<PrivateConnectionRef>,
    #[serde(default)]
    pub deletion_protection: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingInstance {
    #[serde(flatten)]
    pub meta: Meta,
    pub vpc_info: Vec<VpcInfo>,
    pub cic_private_connection_info: Vec<PrivateConnectionRef>,
    pub deletion_protection: bool,
}

impl RoutingInstance {
    pub fn prefixes(&self) -> Vec<IpNet> {
        self.vpc_info.iter().flat_map(|v| v.prefixes()).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Operations

/// A long-running operation. `done=false` → neither `error` nor `response`;
/// `done=true` → exactly one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
    pub modified_at: String,
    pub done: bool,
    pub metadata: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: Option<&str>) -> Ipv4PeeringSpec {
        Ipv4PeeringSpec {
            peering_subnet: "10.0.0.0/30".parse().expect("net"),
            peer_ip: "10.0.0.2".parse().expect("ip"),
            cloud_ip: "10.0.0.1".parse().expect("ip"),
            peer_bgp_asn: 65001,
            peer_bgp_md5_key: key.map(crate::Secret::from),
        }
    }

    fn patch(json: &str) -> Result<Ipv4PeeringPatch, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_peering_patch_changes_the_fields_it_holds_and_keeps_the_key() {
        let old = spec(Some("s3cret"));
        let p = patch(r#"{"peerBgpAsn": "65010"}"#)
            .expect("patch")
            .apply(&old);
        assert_eq!(p.peer_bgp_asn, 65010);
        assert_eq!(p.peering_subnet, old.peering_subnet);
        assert_eq!(p.peer_bgp_md5_key, old.peer_bgp_md5_key);
        // The mask written back is "unchanged", never the new key.
        let p =
            patch(r#"{"peerIp": "10.0.0.1", "cloudIp": "10.0.0.2", "peerBgpMd5Key": "********"}"#)
                .expect("patch")
                .apply(&old);
        assert_eq!(
            p.peer_bgp_md5_key.as_ref().map(|k| k.expose()),
            Some("s3cret")
        );
        assert_eq!(p.peer_ip.to_string(), "10.0.0.1");
        // With no key, the mask keeps it absent.
        let p = patch(r#"{"peerBgpMd5Key": "********"}"#)
            .expect("patch")
            .apply(&spec(None));
        assert_eq!(p.peer_bgp_md5_key, None);
    }

    #[test]
    fn removing_the_key_is_explicit() {
        let old = spec(Some("s3cret"));
        for remove in [r#"{"peerBgpMd5Key": null}"#, r#"{"peerBgpMd5Key": ""}"#] {
            assert_eq!(
                patch(remove).expect(remove).apply(&old).peer_bgp_md5_key,
                None,
                "{remove}"
            );
        }
        let p = patch(r#"{"peerBgpMd5Key": "n3w"}"#)
            .expect("patch")
            .apply(&old);
        assert_eq!(p.peer_bgp_md5_key.as_ref().map(|k| k.expose()), Some("n3w"));
        assert_eq!(patch("{}").expect("empty").apply(&old), old);
    }

    #[test]
    fn required_peering_fields_cannot_be_nulled_or_misspelt() {
        for bad in [
            r#"{"peeringSubnet": null}"#,
            r#"{"peerBgpAsn": null}"#,
            r#"{"peerIP": "10.0.0.2"}"#,
            r#"{"peerBgpAsn": "x"}"#,
        ] {
            assert!(patch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zones_are_written_as_the_modelled_api_and_read_in_both_shapes() {
        let modelled = r#"{"manualInfo":{"azId":"ru-central1-a","prefixes":["10.128.0.0/24"]}}"#;
        let flat = r#"{"azId":"ru-central1-a","prefixes":["10.128.0.0/24"]}"#;
        let a: AzInfo = serde_json::from_str(modelled).expect("modelled");
        let b: AzInfo = serde_json::from_str(flat).expect("flat");
        assert_eq!(a, b);
        assert_eq!(serde_json::to_string(&a).expect("json"), modelled);
        for bad in [
            r#"{"manualInfo":{"azId":"a"},"azId":"b"}"#,
            r#"{"prefixes":["10.0.0.0/8"]}"#,
            r#"{"manualInfo":{"azId":"a","prefixes":["10.0.0.0/33"]}}"#,
            r#"{"azId":"a","zone":"b"}"#,
        ] {
            assert!(serde_json::from_str::<AzInfo>(bad).is_err(), "{bad}");
        }
    }
}
