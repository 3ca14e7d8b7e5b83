//! Trunk connections: a port (or a VXLAN overlay) of an edge at a point of presence.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::{
    CreateTrunkConnectionRequest, Edge, PointOfPresence, PrivateConnection, Status,
    TrunkConnection, UpdateTrunkConnectionRequest,
};
use cic_model::{ApiError, Code, validate};
use cic_store::Action;

use super::{check_meta, check_unique_name, fetch_for, new_meta, not_found, write_one};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiJson, ApiResult};
use serde_json::Value;

fn valid_ifname(field: &str, name: &str) -> ApiResult<()> {
    // Linux IFNAMSIZ - 1; no '/', ':' or whitespace.
    let ok = (1..=15).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            format!("{name:?} is not an interface name (1-15 of [-_.a-zA-Z0-9])"),
        )
        .into())
    }
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateTrunkConnectionRequest>,
) -> ApiResult<Json<Value>> {
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    validate::id_ref("pointOfPresenceId", &req.point_of_presence_id)?;
    if req.lag_direct_joint.is_some() || req.partner_joint_info.is_some() {
        return Err(ApiError::new(
            Code::Unimplemented,
            "lagDirectJoint and partnerJointInfo are not supported yet; use singlePortDirectJoint or overlayJoint",
        )
        .into());
    }
    let access_device = match (&req.single_port_direct_joint, &req.overlay_joint) {
        (Some(j), None) => {
            valid_ifname("singlePortDirectJoint.portName", &j.port_name)?;
            j.access_device_name.clone()
        }
        (None, Some(o)) => {
            if o.remote_vtep.is_unspecified()
                || o.remote_vtep.is_multicast()
                || o.remote_vtep.is_broadcast()
            {
                return Err(ApiError::field(
                    "overlayJoint.remoteVtep",
                    format!("{} is not a unicast address", o.remote_vtep),
                )
                .into());
            }
            if o.udp_port == 0 {
                return Err(ApiError::field("overlayJoint.udpPort", "must not be 0").into());
            }
            if let Some(p) = &o.port_name {
                valid_ifname("overlayJoint.portName", p)?;
            }
            o.access_device_name.clone()
        }
        _ => {
            return Err(ApiError::new(
                Code::InvalidArgument,
                "exactly one joint is required: singlePortDirectJoint or overlayJoint",
            )
            .into());
        }
    };

    let _w = st.lock_writes().await?;
    if st
        .store
        .get::<PointOfPresence>(&req.point_of_presence_id)
        .await?
        .is_none()
    {
        return Err(not_found("point of presence", &req.point_of_presence_id));
    }
    let edges: Vec<Edge> = st
        .store
        .list::<Edge>(None)
        .await?
        .into_iter()
        .filter(|e| e.point_of_presence_id == req.point_of_presence_id)
        .collect();
    let edge = match access_device {
        Some(name) => edges.iter().find(|e| e.name == name).ok_or_else(|| {
            ApiError::field(
                "accessDeviceName",
                format!("no edge named {name:?} at {}", req.point_of_presence_id),
            )
        })?,
        // The edge of the PoP that carries the fewest trunks.
        None => {
            let mut load = Vec::with_capacity(edges.len());
            for e in &edges {
                load.push((st.store.count_children::<TrunkConnection>(&e.id).await?, e));
            }
            load.into_iter()
                .min_by_key(|(n, _)| *n)
                .map(|(_, e)| e)
                .ok_or_else(|| {
                    ApiError::precondition(format!(
                        "no edge is registered at point of presence {}",
                        req.point_of_presence_id
                    ))
                })?
        }
    };
    check_unique_name::<TrunkConnection>(&st, &req.folder_id, &req.name, None).await?;

    let trunk = TrunkConnection {
        meta: new_meta("tc", req.folder_id, req.name, req.description, req.labels),
        point_of_presence_id: req.point_of_presence_id,
        capacity: req.capacity,
        deletion_protection: req.deletion_protection,
        single_port_direct_joint: req.single_port_direct_joint,
        overlay_joint: req.overlay_joint,
        edge_id: edge.id.clone(),
    };
    write_one(
        &st,
        &who,
        &view,
        &trunk,
        "Create trunk connection",
        Action::Create,
        vec![trunk.edge_id.clone()],
    )
    .await
}

pub async fn update(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateTrunkConnectionRequest>,
) -> ApiResult<Json<Value>> {
    if let Some(n) = &req.name {
        validate::name("name", n)?;
    }
    if let Some(d) = &req.description {
        validate::description("description", d)?;
    }
    if let Some(l) = &req.labels {
        validate::labels("labels", l)?;
    }
    let _w = st.lock_writes().await?;
    let (mut t, view) = fetch_for::<TrunkConnection>(&st, &who, &id, Need::Write).await?;
    if t.meta.status == Status::Deleting {
        return Err(
            ApiError::precondition(format!("trunk connection {id} is being deleted")).into(),
        );
    }
    if let Some(n) = req.name.filter(|n| *n != t.meta.name) {
        check_unique_name::<TrunkConnection>(&st, &t.meta.folder_id, &n, Some(&t.meta.id)).await?;
        t.meta.name = n;
    }
    if let Some(d) = req.description {
        t.meta.description = d;
    }
    if let Some(l) = req.labels {
        t.meta.labels = l;
    }
    if let Some(p) = req.deletion_protection {
        t.deletion_protection = p;
    }
    // Metadata only: no edge has anything to apply.
    write_one(
        &st,
        &who,
        &view,
        &t,
        "Update trunk connection",
        Action::Update,
        vec![],
    )
    .await
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require_user()?;
    let _w = st.lock_writes().await?;
    let (mut t, view) = fetch_for::<TrunkConnection>(&st, &who, &id, Need::Write).await?;
    if t.deletion_protection {
        return Err(ApiError::precondition(format!(
            "trunk connection {id} has deletionProtection set"
        ))
        .into());
    }
    let private = st.store.children::<PrivateConnection>(&id).await?;
    let public = st
        .store
        .children::<cic_model::resource::PublicConnection>(&id)
        .await?;
    if let Some((kind, c)) = private
        .first()
        .map(|c| ("private", &c.meta.id))
        .or(public.first().map(|c| ("public", &c.meta.id)))
    {
        return Err(ApiError::precondition(format!(
            "trunk connection {id} still carries {kind} connection {c}"
        ))
        .into());
    }
    t.meta.status = Status::Deleting;
    write_one(
        &st,
        &who,
        &view,
        &t,
        "Delete trunk connection",
        Action::Delete,
        vec![t.edge_id.clone()],
    )
    .await
}
