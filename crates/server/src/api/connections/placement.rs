//! Where a private connection may go: the rules of its VLAN, peerings and static routes
//! on their own, and beside everything else on its trunk, its edge and its routing
//! instance (read from the store).

use cic_model::resource::{
    Ipv4PeeringSpec, Ipv6PeeringSpec, Ipv6StaticRoute, PrivateConnection, RoutingInstance,
    StaticRoute, Status, TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::rel;
use ipnet::IpNet;

use crate::AppState;
use crate::api::{fetch, not_found};
use crate::error::ApiResult;

/// What a connection carries: its peerings (one or both families) and the static routes
/// of each.
pub(crate) struct Spec<'a> {
    pub v4: Option<&'a Ipv4PeeringSpec>,
    pub v6: Option<&'a Ipv6PeeringSpec>,
    pub statics4: &'a [StaticRoute],
    pub statics6: &'a [Ipv6StaticRoute],
}

/// The request-level rules of a connection's VLAN, peerings and static routes.
pub(super) fn check_spec(st: &AppState, vlan: u32, spec: &Spec) -> ApiResult<u16> {
    let vlan = validate::vlan_id("vlanId", vlan)?;
    if spec.v4.is_none() && spec.v6.is_none() {
        return Err(ApiError::field(
            "ipv4Peering",
            "a private connection needs ipv4Peering, ipv6Peering or both",
        )
        .into());
    }
    let max = st.config.max_static_routes_per_connection;
    if let Some(p) = spec.v4 {
        validate::peering("ipv4Peering", &p.peering_subnet, p.peer_ip, p.cloud_ip)?;
        validate::peer_asn(
            "ipv4Peering.peerBgpAsn",
            p.peer_bgp_asn,
            st.config.cloud_asn,
        )?;
        validate::md5_key("ipv4Peering.peerBgpMd5Key", &p.peer_bgp_md5_key)?;
    }
    if let Some(p) = spec.v6 {
        validate::peering6("ipv6Peering", &p.peering_subnet, p.peer_ip, p.cloud_ip)?;
        validate::peer_asn(
            "ipv6Peering.peerBgpAsn",
            p.peer_bgp_asn,
            st.config.cloud_asn,
        )?;
        validate::md5_key("ipv6Peering.peerBgpMd5Key", &p.peer_bgp_md5_key)?;
    }
    validate::same_asn(
        spec.v4.map(|p| p.peer_bgp_asn),
        spec.v6.map(|p| p.peer_bgp_asn),
    )?;
    needs_family(
        !spec.statics4.is_empty(),
        spec.v4.is_some(),
        !spec.statics6.is_empty(),
        spec.v6.is_some(),
    )?;
    let statics: Vec<_> = spec.statics4.iter().map(|r| r.prefix).collect();
    validate::static_routes("ipv4StaticRoutes", &statics, max)?;
    let statics: Vec<_> = spec.statics6.iter().map(|r| r.prefix).collect();
    validate::static_routes("ipv6StaticRoutes", &statics, max)?;
    Ok(vlan)
}

/// Where a connection goes: its trunk (in `folder`), a VLAN free on it (among private
/// and public connections), room in the trunk's quota of that kind, and no VNI clash on
/// the edge's overlay port. `this` is the connection being changed, which does not
/// conflict with itself. Run under the write lock.
pub(crate) async fn check_placement(
    st: &AppState,
    folder: &str,
    trunk_id: &str,
    vlan: u16,
    this: Option<&str>,
    public: bool,
) -> ApiResult<TrunkConnection> {
    validate::id_ref("trunkConnectionId", trunk_id)?;
    // A trunk of another folder is reported as missing, whether or not the caller could
    // see it there: ids of other tenants are not to be probed.
    let trunk = fetch::<TrunkConnection>(st, trunk_id)
        .await
        .ok()
        .filter(|t| t.meta.folder_id == folder)
        .ok_or_else(|| not_found("trunk connection", trunk_id))?;
    if trunk.meta.status == Status::Deleting {
        return Err(ApiError::precondition(format!(
            "trunk connection {} is being deleted",
            trunk.meta.id
        ))
        .into());
    }
    // By index: who holds the VLAN on the trunk, how many the trunk holds, and who holds
    // it on the edge's other trunks on the same wire — never reading a connection.
    let users = st
        .store
        .linking(rel::VLAN, &rel::vlan_key(&trunk.meta.id, vlan))
        .await?;
    if let Some((kind, c)) = users.iter().find(|(_, c)| Some(c.as_str()) != this) {
        return Err(ApiError::conflict_at(
            "vlanId",
            format!(
                "VLAN {vlan} is already used on trunk {} by {} {c}",
                trunk.meta.id,
                crate::api::title(kind)
            ),
        )
        .into());
    }
    let (held, quota, kind) = if public {
        (
            st.store
                .count_children_except::<cic_model::resource::PublicConnection>(
                    &trunk.meta.id,
                    this,
                )
                .await?,
            st.config.max_public_connections_per_trunk,
            "public",
        )
    } else {
        (
            st.store
                .count_children_except::<PrivateConnection>(&trunk.meta.id, this)
                .await?,
            st.config.max_connections_per_trunk,
            "private",
        )
    };
    if held >= quota as u64 {
        return Err(ApiError::new(
            Code::ResourceExhausted,
            format!(
                "trunk {} already has {held} {kind} connections (quota)",
                trunk.meta.id
            ),
        )
        .into());
    }
    // Trunks of one edge on the same wire share its VLAN ids: a port (direct or a
    // partner's), or for overlay trunks the UDP port (VXLAN demultiplexes by VNI per UDP
    // port).
    if let Some(w) = trunk.wire() {
        // One indexed join over the trunks on that wire, however many there are.
        let users = st
            .store
            .vlan_on_wire(&rel::wire_key(&trunk.edge_id, &w), vlan)
            .await?;
        let clash = users
            .iter()
            .find(|(_, c, t)| *t != trunk.meta.id && Some(c.as_str()) != this);
        if let Some((kind, c, t)) = clash {
            let what = if trunk.overlay_joint.is_some() {
                format!("VXLAN VNI {vlan}")
            } else {
                format!("VLAN {vlan}")
            };
            return Err(ApiError::conflict_at(
                "vlanId",
                format!(
                    "{what} is already carried on {w} of this edge by {} {c} (trunk {t}); \
                     trunks on one wire need distinct VLAN ids",
                    crate::api::title(kind)
                ),
            )
            .into());
        }
    }
    Ok(trunk)
}

/// A static route's next hop is the peer's address of its family: routes of a family
/// need that family's peering.
pub(in crate::api) fn needs_family(
    routes4: bool,
    v4: bool,
    routes6: bool,
    v6: bool,
) -> ApiResult<()> {
    if routes4 && !v4 {
        return Err(ApiError::field(
            "ipv4StaticRoutes",
            "needs an ipv4Peering: an IPv4 static route goes via the peer's IPv4 address",
        )
        .into());
    }
    if routes6 && !v6 {
        return Err(ApiError::field(
            "ipv6StaticRoutes",
            "needs an ipv6Peering: an IPv6 static route goes via the peer's IPv6 address",
        )
        .into());
    }
    Ok(())
}

/// Static routes must not take traffic meant for the VPC: none may overlap a prefix of
/// the routing instance that `pc` belongs to. `statics`: (field, prefix) of each.
pub(in crate::api) async fn check_statics_in_instance(
    st: &AppState,
    pc: &str,
    statics: &[(String, IpNet)],
) -> ApiResult<()> {
    let Some(ri) = st
        .store
        .linked::<RoutingInstance>(rel::MEMBER, pc)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    for (field, r) in statics {
        if let Some(v) = ri.prefixes().into_iter().find(|v| validate::overlaps(v, r)) {
            return Err(ApiError::field(
                field,
                format!("{r} overlaps prefix {v} of routing instance {}", ri.meta.id),
            )
            .into());
        }
    }
    Ok(())
}

/// Each route's field and prefix, for [`check_statics_in_instance`].
pub(in crate::api) fn fields_of(
    statics4: &[StaticRoute],
    statics6: &[Ipv6StaticRoute],
) -> Vec<(String, IpNet)> {
    let v4 = statics4
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("ipv4StaticRoutes[{i}].prefix"), r.prefix.into()));
    let v6 = statics6
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("ipv6StaticRoutes[{i}].prefix"), r.prefix.into()));
    v4.chain(v6).collect()
}
