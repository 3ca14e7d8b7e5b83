//! Routing instances (Cloud Router): VPC prefixes and the private connections that reach
//! them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::{
    CreateRoutingInstanceRequest, Edge, PrivateConnection, RoutingInstance, Status, TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document, FabricSlot};

use super::{Mutation, check_meta, check_unique_name, fetch, fetch_for, finish_mutation, new_meta};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::compile::slot_capacity;
use crate::error::{ApiJson, ApiResult};
use serde_json::Value;

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateRoutingInstanceRequest>,
) -> ApiResult<Json<Value>> {
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    let mut vpcs = BTreeSet::new();
    for (i, v) in req.vpc_info.iter().enumerate() {
        validate::id_ref(&format!("vpcInfo[{i}].vpcNetworkId"), &v.vpc_network_id)?;
        if !vpcs.insert(v.vpc_network_id.as_str()) {
            return Err(
                ApiError::field(&format!("vpcInfo[{i}].vpcNetworkId"), "is listed twice").into(),
            );
        }
        for (j, az) in v.az_infos.iter().enumerate() {
            validate::id_ref(&format!("vpcInfo[{i}].azInfos[{j}].azId"), &az.az_id)?;
        }
    }
    let prefixes: Vec<_> = req.vpc_info.iter().flat_map(|v| v.prefixes()).collect();
    validate::vpc_prefixes(
        "vpcInfo.azInfos.prefixes",
        &prefixes,
        st.config.max_prefixes_per_instance,
    )?;
    let mut wanted = BTreeSet::new();
    for (i, c) in req.cic_private_connection_info.iter().enumerate() {
        let f = format!("cicPrivateConnectionInfo[{i}].cicPrivateConnectionId");
        validate::id_ref(&f, &c.cic_private_connection_id)?;
        if !wanted.insert(c.cic_private_connection_id.clone()) {
            return Err(ApiError::field(&f, "is listed twice").into());
        }
    }

    let _w = st.lock_writes().await?;
    let ris = st.store.list::<RoutingInstance>(None).await?;
    let live_ris: Vec<&RoutingInstance> = ris
        .iter()
        .filter(|r| r.meta.status != Status::Deleting)
        .collect();
    for v in &req.vpc_info {
        if let Some(r) = live_ris.iter().find(|r| {
            r.vpc_info
                .iter()
                .any(|x| x.vpc_network_id == v.vpc_network_id)
        }) {
            // Name the holder only to its own folder.
            let holder = if r.meta.folder_id == req.folder_id {
                format!("routing instance {}", r.meta.id)
            } else {
                "a routing instance of another folder".to_string()
            };
            return Err(ApiError::conflict(format!(
                "VPC network {} already belongs to {holder}",
                v.vpc_network_id
            ))
            .into());
        }
    }
    let trunks: BTreeMap<String, TrunkConnection> = st
        .store
        .list::<TrunkConnection>(None)
        .await?
        .into_iter()
        .map(|t| (t.meta.id.clone(), t))
        .collect();
    let mut members: Vec<PrivateConnection> = Vec::new();
    for (i, id) in req
        .cic_private_connection_info
        .iter()
        .map(|c| &c.cic_private_connection_id)
        .enumerate()
    {
        let f = format!("cicPrivateConnectionInfo[{i}].cicPrivateConnectionId");
        // Another folder's connection is reported as missing (ids are not to be probed).
        let pc = fetch::<PrivateConnection>(&st, id)
            .await
            .ok()
            .filter(|pc| pc.meta.folder_id == req.folder_id)
            .ok_or_else(|| {
                ApiError::new(
                    Code::NotFound,
                    format!("{f}: private connection {id:?} not found"),
                )
            })?;
        if pc.meta.status == Status::Deleting {
            return Err(ApiError::precondition(format!(
                "private connection {id} is being deleted"
            ))
            .into());
        }
        if let Some(r) = live_ris.iter().find(|r| {
            r.cic_private_connection_info
                .iter()
                .any(|x| &x.cic_private_connection_id == id)
        }) {
            return Err(ApiError::conflict(format!(
                "private connection {id} already belongs to routing instance {}",
                r.meta.id
            ))
            .into());
        }
        members.push(pc);
    }
    // They will share one routing table: peering subnets must not overlap.
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            if validate::overlaps(
                &a.ipv4_peering.peering_subnet,
                &b.ipv4_peering.peering_subnet,
            ) {
                return Err(ApiError::conflict(format!(
                    "private connections {} and {} have overlapping peering subnets ({} and {}) and cannot share a routing instance",
                    a.meta.id, b.meta.id, a.ipv4_peering.peering_subnet, b.ipv4_peering.peering_subnet
                ))
                .into());
            }
        }
    }
    // At most one private connection per VPC per point of presence.
    if !req.vpc_info.is_empty() {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for pc in &members {
            let pop = trunks
                .get(&pc.trunk_connection_id)
                .map(|t| t.point_of_presence_id.as_str())
                .unwrap_or("");
            if let Some(other) = seen.insert(pop, &pc.meta.id) {
                return Err(ApiError::precondition(format!(
                    "private connections {other} and {} are both at point of presence {pop}; a VPC allows one per point of presence",
                    pc.meta.id
                ))
                .into());
            }
        }
    }
    let in_folder: Vec<RoutingInstance> = ris
        .iter()
        .filter(|r| r.meta.folder_id == req.folder_id)
        .cloned()
        .collect();
    check_unique_name(&in_folder, &req.name, "routing instance")?;

    let ri = RoutingInstance {
        meta: new_meta("ri", req.folder_id, req.name, req.description, req.labels),
        vpc_info: req.vpc_info,
        cic_private_connection_info: req.cic_private_connection_info,
        deletion_protection: req.deletion_protection,
    };
    let edge_ids: BTreeSet<String> = members
        .iter()
        .filter_map(|c| trunks.get(&c.trunk_connection_id))
        .map(|t| t.edge_id.clone())
        .collect();

    // A fabric segment on every edge that carries one of the connections.
    let slots = st.store.list::<FabricSlot>(None).await?;
    let mut new_slots = Vec::new();
    for e in &edge_ids {
        let edge = fetch::<Edge>(&st, e).await?;
        let used: BTreeSet<u32> = slots
            .iter()
            .filter(|s| &s.edge_id == e)
            .map(|s| s.slot)
            .collect();
        let slot = (0..slot_capacity(&edge))
            .find(|s| !used.contains(s))
            .ok_or_else(|| {
                ApiError::new(
                    Code::ResourceExhausted,
                    format!(
                        "edge {} has no free fabric segment (transit pool exhausted)",
                        edge.name
                    ),
                )
            })?;
        new_slots.push(FabricSlot {
            edge_id: e.clone(),
            routing_instance_id: ri.meta.id.clone(),
            slot,
        });
    }
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    for s in &new_slots {
        tx.put_keyed(s, &FabricSlot::key(&s.edge_id, &s.routing_instance_id), rev)
            .await?;
    }
    tx.put(&ri, rev).await?;
    let id = ri.meta.id.clone();
    let folder = ri.meta.folder_id.clone();
    let op = finish_mutation(
        &st,
        tx,
        rev,
        Mutation {
            description: "Create routing instance",
            created_by: &who.name(),
            kind: RoutingInstance::KIND,
            resource_id: &id,
            folder_id: &folder,
            action: Action::Create,
            edges: edge_ids.into_iter().collect(),
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let _w = st.lock_writes().await?;
    let (mut ri, view) = fetch_for::<RoutingInstance>(&st, &who, &id, Need::Write).await?;
    if ri.deletion_protection {
        return Err(ApiError::precondition(format!(
            "routing instance {id} has deletionProtection set"
        ))
        .into());
    }
    let edges: Vec<String> = st
        .store
        .list::<FabricSlot>(None)
        .await?
        .into_iter()
        .filter(|s| s.routing_instance_id == id)
        .map(|s| s.edge_id)
        .collect();
    ri.meta.status = Status::Deleting;
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(&ri, rev).await?;
    let op = finish_mutation(
        &st,
        tx,
        rev,
        Mutation {
            description: "Delete routing instance",
            created_by: &who.name(),
            kind: RoutingInstance::KIND,
            resource_id: &id,
            folder_id: &ri.meta.folder_id,
            action: Action::Delete,
            edges,
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}
