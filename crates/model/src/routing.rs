//! The routing instance's rules, as pure functions over the document: the shape every
//! instance must have, and what each method (UpsertPrefixes, RemovePrefixes,
//! AddPrivateConnection, RemovePrivateConnection, UpdateNetworks) does to it. The server
//! runs the result through the same checks as Create (the shape here, and the ones that
//! need the store: VPC and connection ownership, one connection per VPC per PoP).

use std::collections::BTreeSet;

use ipnet::IpNet;
use serde::Deserialize;

use crate::error::{ApiError, ApiResult, Code};
use crate::resource::{AzInfo, PrivateConnectionRef, RoutingInstance, VpcInfo};
use crate::validate;

/// Prefixes of one zone, as the methods take them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AzPrefixes {
    pub az_id: String,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub prefixes: Vec<IpNet>,
}

/// A VPC network with its prefixes per zone, as UpdateNetworks takes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    pub vpc_network_id: String,
    #[serde(default)]
    pub vpc_az_info_prefixes: Vec<AzPrefixes>,
}

impl NetworkSpec {
    pub fn into_vpc(self) -> VpcInfo {
        VpcInfo {
            vpc_network_id: self.vpc_network_id,
            az_infos: self
                .vpc_az_info_prefixes
                .into_iter()
                .map(|a| AzInfo {
                    az_id: a.az_id,
                    prefixes: a.prefixes,
                })
                .collect(),
        }
    }
}

/// What every instance must be, checked without the store: valid ids, no VPC or
/// connection twice, canonical prefixes that do not overlap, within the quota.
pub fn check_shape(
    vpc_info: &[VpcInfo],
    conns: &[PrivateConnectionRef],
    max_prefixes: usize,
) -> ApiResult<()> {
    let mut vpcs = BTreeSet::new();
    for (i, v) in vpc_info.iter().enumerate() {
        validate::id_ref(&format!("vpcInfo[{i}].vpcNetworkId"), &v.vpc_network_id)?;
        if !vpcs.insert(v.vpc_network_id.as_str()) {
            return Err(ApiError::field(
                &format!("vpcInfo[{i}].vpcNetworkId"),
                "is listed twice",
            ));
        }
        for (j, az) in v.az_infos.iter().enumerate() {
            validate::id_ref(&format!("vpcInfo[{i}].azInfos[{j}].azId"), &az.az_id)?;
        }
    }
    let prefixes: Vec<_> = vpc_info.iter().flat_map(|v| v.prefixes()).collect();
    validate::vpc_prefixes("vpcInfo.azInfos.prefixes", &prefixes, max_prefixes)?;
    let mut wanted = BTreeSet::new();
    for (i, c) in conns.iter().enumerate() {
        let f = format!("cicPrivateConnectionInfo[{i}].cicPrivateConnectionId");
        validate::id_ref(&f, &c.cic_private_connection_id)?;
        if !wanted.insert(c.cic_private_connection_id.clone()) {
            return Err(ApiError::field(&f, "is listed twice"));
        }
    }
    Ok(())
}

fn vpc_mut<'a>(ri: &'a mut RoutingInstance, vpc: &str) -> ApiResult<&'a mut VpcInfo> {
    let id = ri.meta.id.clone();
    ri.vpc_info
        .iter_mut()
        .find(|v| v.vpc_network_id == vpc)
        .ok_or_else(|| {
            ApiError::field(
                "vpcNetworkId",
                format!("VPC network {vpc} is not in routing instance {id}"),
            )
        })
}

/// UpsertPrefixes: each zone's prefixes added to VPC `vpc` (those there already stay once).
pub fn upsert_prefixes(
    ri: &mut RoutingInstance,
    vpc: &str,
    zones: Vec<AzPrefixes>,
) -> ApiResult<()> {
    let vpc = vpc_mut(ri, vpc)?;
    for a in zones {
        match vpc.az_infos.iter_mut().find(|z| z.az_id == a.az_id) {
            Some(z) => {
                for p in a.prefixes {
                    if !z.prefixes.contains(&p) {
                        z.prefixes.push(p);
                    }
                }
            }
            None => vpc.az_infos.push(AzInfo {
                az_id: a.az_id,
                prefixes: a.prefixes,
            }),
        }
    }
    Ok(())
}

/// RemovePrefixes: each named prefix must be there; a zone left empty goes.
pub fn remove_prefixes(
    ri: &mut RoutingInstance,
    vpc: &str,
    zones: Vec<AzPrefixes>,
) -> ApiResult<()> {
    let vpc = vpc_mut(ri, vpc)?;
    for (i, a) in zones.into_iter().enumerate() {
        let z = vpc
            .az_infos
            .iter_mut()
            .find(|z| z.az_id == a.az_id)
            .ok_or_else(|| {
                ApiError::field(
                    &format!("vpcAzInfoPrefixes[{i}].azId"),
                    format!("zone {} has no prefixes here", a.az_id),
                )
            })?;
        for p in a.prefixes {
            let before = z.prefixes.len();
            z.prefixes.retain(|x| *x != p);
            if z.prefixes.len() == before {
                return Err(ApiError::field(
                    &format!("vpcAzInfoPrefixes[{i}].prefixes"),
                    format!("{p} is not a prefix of zone {}", a.az_id),
                ));
            }
        }
    }
    vpc.az_infos.retain(|z| !z.prefixes.is_empty());
    Ok(())
}

/// AddPrivateConnection: not there yet.
pub fn add_connection(ri: &mut RoutingInstance, pc: &str) -> ApiResult<()> {
    if ri
        .cic_private_connection_info
        .iter()
        .any(|c| c.cic_private_connection_id == pc)
    {
        return Err(ApiError::new(
            Code::AlreadyExists,
            format!(
                "private connection {pc} is already in routing instance {}",
                ri.meta.id
            ),
        ));
    }
    ri.cic_private_connection_info.push(PrivateConnectionRef {
        cic_private_connection_id: pc.to_string(),
    });
    Ok(())
}

/// RemovePrivateConnection: it must be there.
pub fn remove_connection(ri: &mut RoutingInstance, pc: &str) -> ApiResult<()> {
    let before = ri.cic_private_connection_info.len();
    ri.cic_private_connection_info
        .retain(|c| c.cic_private_connection_id != pc);
    if ri.cic_private_connection_info.len() == before {
        return Err(ApiError::field(
            "cicPrivateConnectionId",
            format!(
                "private connection {pc} is not in routing instance {}",
                ri.meta.id
            ),
        ));
    }
    Ok(())
}

/// UpdateNetworks: deletions (of VPCs not there: ignored, or refused when `strict`), then
/// replacements (which must be there), then additions (which must not).
pub fn update_networks(
    ri: &mut RoutingInstance,
    added: Vec<NetworkSpec>,
    updated: Vec<NetworkSpec>,
    deleted: &[String],
    strict: bool,
) -> ApiResult<()> {
    for (i, d) in deleted.iter().enumerate() {
        let before = ri.vpc_info.len();
        ri.vpc_info.retain(|v| v.vpc_network_id != *d);
        if strict && ri.vpc_info.len() == before {
            return Err(ApiError::field(
                &format!("deletedVpcNetworkIds[{i}]"),
                format!("VPC network {d} is not in this routing instance"),
            ));
        }
    }
    for (i, u) in updated.into_iter().enumerate() {
        let v = u.into_vpc();
        let slot = ri
            .vpc_info
            .iter_mut()
            .find(|x| x.vpc_network_id == v.vpc_network_id)
            .ok_or_else(|| {
                ApiError::field(
                    &format!("updatedVpcNetworks[{i}].vpcNetworkId"),
                    format!(
                        "VPC network {} is not in this routing instance",
                        v.vpc_network_id
                    ),
                )
            })?;
        *slot = v;
    }
    for (i, a) in added.into_iter().enumerate() {
        let v = a.into_vpc();
        if ri
            .vpc_info
            .iter()
            .any(|x| x.vpc_network_id == v.vpc_network_id)
        {
            return Err(ApiError::field(
                &format!("addedVpcNetworks[{i}].vpcNetworkId"),
                format!(
                    "VPC network {} is already in this routing instance",
                    v.vpc_network_id
                ),
            ));
        }
        ri.vpc_info.push(v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Meta;

    fn n(s: &str) -> IpNet {
        s.parse().expect("prefix")
    }

    fn zone(az: &str, p: &[&str]) -> AzPrefixes {
        AzPrefixes {
            az_id: az.into(),
            prefixes: p.iter().map(|s| n(s)).collect(),
        }
    }

    fn instance() -> RoutingInstance {
        RoutingInstance {
            meta: Meta {
                id: "ri1".into(),
                ..Meta::default()
            },
            vpc_info: vec![VpcInfo {
                vpc_network_id: "vpc1".into(),
                az_infos: vec![AzInfo {
                    az_id: "a".into(),
                    prefixes: vec![n("10.128.0.0/24")],
                }],
            }],
            cic_private_connection_info: vec![PrivateConnectionRef {
                cic_private_connection_id: "pc1".into(),
            }],
            deletion_protection: false,
        }
    }

    #[test]
    fn upserting_adds_prefixes_and_zones_once() {
        let mut ri = instance();
        upsert_prefixes(
            &mut ri,
            "vpc1",
            vec![
                zone("a", &["10.128.0.0/24", "10.128.1.0/24"]),
                zone("b", &["10.129.0.0/24"]),
            ],
        )
        .expect("upsert");
        assert_eq!(
            ri.prefixes(),
            vec![n("10.128.0.0/24"), n("10.128.1.0/24"), n("10.129.0.0/24")]
        );
        let e = upsert_prefixes(&mut ri, "vpc9", vec![]).unwrap_err();
        assert_eq!(e.details[0].field, "vpcNetworkId");
    }

    #[test]
    fn removing_needs_each_prefix_and_drops_empty_zones() {
        let mut ri = instance();
        let e = remove_prefixes(&mut ri, "vpc1", vec![zone("a", &["10.9.0.0/24"])]).unwrap_err();
        assert_eq!(e.details[0].field, "vpcAzInfoPrefixes[0].prefixes");
        let e = remove_prefixes(&mut ri, "vpc1", vec![zone("z", &[])]).unwrap_err();
        assert_eq!(e.details[0].field, "vpcAzInfoPrefixes[0].azId");
        remove_prefixes(&mut ri, "vpc1", vec![zone("a", &["10.128.0.0/24"])]).expect("remove");
        assert!(ri.vpc_info[0].az_infos.is_empty());
    }

    #[test]
    fn connections_are_added_once_and_removed_when_there() {
        let mut ri = instance();
        assert_eq!(
            add_connection(&mut ri, "pc1").unwrap_err().code,
            Code::AlreadyExists
        );
        add_connection(&mut ri, "pc2").expect("add");
        remove_connection(&mut ri, "pc1").expect("remove");
        assert_eq!(ri.cic_private_connection_info.len(), 1);
        assert_eq!(
            remove_connection(&mut ri, "pc1").unwrap_err().details[0].field,
            "cicPrivateConnectionId"
        );
    }

    #[test]
    fn networks_are_deleted_replaced_and_added_in_that_order() {
        let spec = |id: &str, p: &str| NetworkSpec {
            vpc_network_id: id.into(),
            vpc_az_info_prefixes: vec![zone("a", &[p])],
        };
        let mut ri = instance();
        update_networks(
            &mut ri,
            vec![spec("vpc2", "10.130.0.0/24")],
            vec![spec("vpc1", "10.131.0.0/24")],
            &["nope".into()],
            false,
        )
        .expect("update");
        assert_eq!(ri.prefixes(), vec![n("10.131.0.0/24"), n("10.130.0.0/24")]);
        let e =
            update_networks(&mut ri.clone(), vec![], vec![], &["nope".into()], true).unwrap_err();
        assert_eq!(e.details[0].field, "deletedVpcNetworkIds[0]");
        let e = update_networks(
            &mut ri.clone(),
            vec![spec("vpc2", "10.1.0.0/24")],
            vec![],
            &[],
            false,
        )
        .unwrap_err();
        assert_eq!(e.details[0].field, "addedVpcNetworks[0].vpcNetworkId");
        let e = update_networks(
            &mut ri.clone(),
            vec![],
            vec![spec("vpc7", "10.1.0.0/24")],
            &[],
            false,
        )
        .unwrap_err();
        assert_eq!(e.details[0].field, "updatedVpcNetworks[0].vpcNetworkId");
        // Deleting first lets a network be replaced by an addition of the same id.
        update_networks(
            &mut ri,
            vec![spec("vpc2", "10.140.0.0/24")],
            vec![],
            &["vpc2".into()],
            true,
        )
        .expect("swap");
    }

    #[test]
    fn the_shape_refuses_twice_listed_vpcs_connections_and_overlaps() {
        let mut ri = instance();
        assert!(check_shape(&ri.vpc_info, &ri.cic_private_connection_info, 100).is_ok());
        ri.vpc_info.push(ri.vpc_info[0].clone());
        let e = check_shape(&ri.vpc_info, &[], 100).unwrap_err();
        assert_eq!(e.details[0].field, "vpcInfo[1].vpcNetworkId");
        let mut ri = instance();
        ri.cic_private_connection_info
            .push(ri.cic_private_connection_info[0].clone());
        let e = check_shape(&ri.vpc_info, &ri.cic_private_connection_info, 100).unwrap_err();
        assert_eq!(
            e.details[0].field,
            "cicPrivateConnectionInfo[1].cicPrivateConnectionId"
        );
        let mut ri = instance();
        upsert_prefixes(&mut ri, "vpc1", vec![zone("b", &["10.128.0.0/16"])]).expect("upsert");
        assert!(
            check_shape(&ri.vpc_info, &[], 100)
                .unwrap_err()
                .message
                .contains("overlap")
        );
        assert!(
            check_shape(&instance().vpc_info, &[], 0)
                .unwrap_err()
                .message
                .contains("quota")
        );
    }
}
