//! Routing instances (Cloud Router): VPC prefixes by zone and the connections joined.

use super::*;

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
