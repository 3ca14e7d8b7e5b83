//! Private connections: a VLAN on a trunk, a peering subnet and a BGP session.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::edge::SessionKind;
use cic_model::resource::{
    CreatePrivateConnectionRequest, Ipv4Peering, PrivateConnection, RoutingInstance, Status,
    TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document};

use super::{
    ApiQuery, ListQuery, Mutation, check_meta, check_unique_name, fetch, fetch_for,
    finish_mutation, list_scope, new_meta, not_found, show_page,
};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiJson, ApiResult};
use serde_json::Value;

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreatePrivateConnectionRequest>,
) -> ApiResult<Json<Value>> {
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    validate::id_ref("trunkConnectionId", &req.trunk_connection_id)?;
    let vlan = validate::vlan_id("vlanId", req.vlan_id)?;
    let p = &req.ipv4_peering;
    validate::peering("ipv4Peering", &p.peering_subnet, p.peer_ip, p.cloud_ip)?;
    validate::peer_asn(
        "ipv4Peering.peerBgpAsn",
        p.peer_bgp_asn,
        st.config.cloud_asn,
    )?;
    validate::md5_key("ipv4Peering.peerBgpMd5Key", &p.peer_bgp_md5_key)?;
    let statics: Vec<_> = req.ipv4_static_routes.iter().map(|r| r.prefix).collect();
    validate::static_routes("ipv4StaticRoutes", &statics)?;
    if !statics.is_empty() {
        // Accepting them without programming them would look like it works; it does not yet.
        return Err(ApiError::new(
            Code::Unimplemented,
            "ipv4StaticRoutes are not supported yet; announce the prefixes over BGP",
        )
        .into());
    }

    let _w = st.lock_writes().await?;
    // A trunk of another folder is reported as missing, whether or not the caller could
    // see it there: ids of other tenants are not to be probed.
    let trunk = fetch::<TrunkConnection>(&st, &req.trunk_connection_id)
        .await
        .ok()
        .filter(|t| t.meta.folder_id == req.folder_id)
        .ok_or_else(|| not_found("trunk connection", &req.trunk_connection_id))?;
    if trunk.meta.status == Status::Deleting {
        return Err(ApiError::precondition(format!(
            "trunk connection {} is being deleted",
            trunk.meta.id
        ))
        .into());
    }
    let all = st.store.list::<PrivateConnection>(None).await?;
    let on_trunk: Vec<&PrivateConnection> = all
        .iter()
        .filter(|c| c.trunk_connection_id == trunk.meta.id)
        .collect();
    if let Some(c) = on_trunk.iter().find(|c| c.vlan_id == vlan) {
        return Err(ApiError::conflict(format!(
            "VLAN {vlan} is already used on trunk {} by private connection {}",
            trunk.meta.id, c.meta.id
        ))
        .into());
    }
    if on_trunk.len() >= st.config.max_connections_per_trunk {
        return Err(ApiError::new(
            Code::ResourceExhausted,
            format!(
                "trunk {} already has {} private connections (quota)",
                trunk.meta.id,
                on_trunk.len()
            ),
        )
        .into());
    }
    // VXLAN demultiplexes by VNI per UDP port on the edge: one VLAN id per overlay port.
    if let Some(o) = &trunk.overlay_joint {
        let trunks = st.store.list::<TrunkConnection>(None).await?;
        let clash = all.iter().find(|c| {
            c.vlan_id == vlan
                && trunks.iter().any(|t| {
                    t.meta.id == c.trunk_connection_id
                        && t.edge_id == trunk.edge_id
                        && t.overlay_joint
                            .as_ref()
                            .is_some_and(|x| x.udp_port == o.udp_port)
                })
        });
        if let Some(c) = clash {
            return Err(ApiError::conflict(format!(
                "VLAN {vlan} is already carried as VXLAN VNI {vlan} on UDP port {} of this edge (private connection {}); \
                 overlay trunks of one edge need distinct VLAN ids per UDP port",
                o.udp_port, c.meta.id
            ))
            .into());
        }
    }
    let in_folder: Vec<PrivateConnection> = all
        .iter()
        .filter(|c| c.meta.folder_id == req.folder_id)
        .cloned()
        .collect();
    check_unique_name(&in_folder, &req.name, "private connection")?;

    let pc = PrivateConnection {
        meta: new_meta("pc", req.folder_id, req.name, req.description, req.labels),
        trunk_connection_id: trunk.meta.id.clone(),
        vlan_id: vlan,
        ipv4_peering: Ipv4Peering {
            peering_subnet: p.peering_subnet,
            peer_ip: p.peer_ip,
            cloud_ip: p.cloud_ip,
            peer_bgp_asn: p.peer_bgp_asn,
            cloud_bgp_asn: st.config.cloud_asn,
            peer_bgp_md5_key: p.peer_bgp_md5_key.clone(),
        },
        ipv4_static_routes: req.ipv4_static_routes,
        routing_instance_id: None,
        bgp: None,
    };
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(&pc, rev).await?;
    let id = pc.meta.id.clone();
    let folder = pc.meta.folder_id.clone();
    let op = finish_mutation(
        &st,
        tx,
        rev,
        Mutation {
            description: "Create private connection",
            created_by: &who.name(),
            kind: PrivateConnection::KIND,
            resource_id: &id,
            folder_id: &folder,
            action: Action::Create,
            edges: vec![trunk.edge_id],
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}

/// What presenting connections needs, read once per request (not once per item).
struct Context {
    trunks: Vec<TrunkConnection>,
    ris: Vec<RoutingInstance>,
    live: std::collections::HashMap<String, crate::EdgeLiveState>,
}

impl Context {
    async fn load(st: &AppState) -> ApiResult<Context> {
        Ok(Context {
            trunks: st.store.list::<TrunkConnection>(None).await?,
            ris: st.store.list::<RoutingInstance>(None).await?,
            live: st.live().await?,
        })
    }

    /// Live BGP state from the edge's last report and the routing instance.
    fn present(&self, mut pc: PrivateConnection) -> PrivateConnection {
        let edge = self
            .trunks
            .iter()
            .find(|t| t.meta.id == pc.trunk_connection_id)
            .map(|t| &t.edge_id);
        if let Some(l) = edge.and_then(|e| self.live.get(e)) {
            pc.bgp = l
                .report
                .sessions
                .iter()
                .find(|s| s.kind == SessionKind::Customer && s.resource_id == pc.meta.id)
                .cloned();
        }
        pc.routing_instance_id = self
            .ris
            .iter()
            .find(|r| {
                r.cic_private_connection_info
                    .iter()
                    .any(|c| c.cic_private_connection_id == pc.meta.id)
            })
            .map(|r| r.meta.id.clone());
        pc
    }
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (folder, view) = list_scope(&st, &who, &q).await?;
    let mut page = q.page(
        st.store
            .list::<PrivateConnection>(folder.as_deref())
            .await?,
    )?;
    let cx = Context::load(&st).await?;
    page.items = page.items.into_iter().map(|pc| cx.present(pc)).collect();
    Ok(Json(show_page(&view, PrivateConnection::KIND, page)))
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (pc, view) = fetch_for::<PrivateConnection>(&st, &who, &id, Need::Read).await?;
    Ok(Json(view.show(&Context::load(&st).await?.present(pc))))
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let _w = st.lock_writes().await?;
    let (mut pc, view) = fetch_for::<PrivateConnection>(&st, &who, &id, Need::Write).await?;
    let ris = st.store.list::<RoutingInstance>(None).await?;
    if let Some(r) = ris.iter().find(|r| {
        r.meta.status != Status::Deleting
            && r.cic_private_connection_info
                .iter()
                .any(|c| c.cic_private_connection_id == id)
    }) {
        return Err(ApiError::precondition(format!(
            "private connection {id} belongs to routing instance {}; remove it from there first",
            r.meta.id
        ))
        .into());
    }
    let edge = st
        .store
        .get::<TrunkConnection>(&pc.trunk_connection_id)
        .await?
        .map(|t| t.edge_id);
    pc.meta.status = Status::Deleting;
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(&pc, rev).await?;
    let op = finish_mutation(
        &st,
        tx,
        rev,
        Mutation {
            description: "Delete private connection",
            created_by: &who.name(),
            kind: PrivateConnection::KIND,
            resource_id: &id,
            folder_id: &pc.meta.folder_id,
            action: Action::Delete,
            edges: edge.into_iter().collect(),
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}
