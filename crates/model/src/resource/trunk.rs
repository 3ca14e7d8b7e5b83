//! Trunk connections: capacities, joints (a port, a LAG, a VXLAN overlay) and the
//! requests that make and change them.

use super::*;

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
