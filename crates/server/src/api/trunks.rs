//! Trunk connections: a port (or a VXLAN overlay) of an edge at a point of presence.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::{
    CreateTrunkConnectionRequest, Edge, LagDirectJoint, Partner, PartnerStatus, PointOfPresence,
    PrivateConnection, Status, TrunkConnection, UpdateTrunkConnectionRequest,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, rel};

use super::{check_meta, check_unique_name, fetch_for, new_meta, not_found, write_one};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiBody, ApiJson, ApiResult};
use serde_json::Value;

pub(crate) fn valid_ifname(field: &str, name: &str) -> ApiResult<()> {
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

/// The request-level rules of a LAG: 1-10 distinct ports, named or to be allocated.
fn check_lag(l: &LagDirectJoint) -> ApiResult<()> {
    match (&l.lag_allocation_settings, l.port_names.is_empty()) {
        (Some(a), true) => {
            if !(1..=10).contains(&a.lag_size) {
                return Err(ApiError::field(
                    "lagDirectJoint.lagAllocationSettings.lagSize",
                    format!("{} is out of range 1-10", a.lag_size),
                )
                .into());
            }
        }
        (None, false) => {
            if l.port_names.len() > 10 {
                return Err(ApiError::field("lagDirectJoint.portNames", "at most 10 ports").into());
            }
            for (i, p) in l.port_names.iter().enumerate() {
                let f = format!("lagDirectJoint.portNames[{i}]");
                valid_ifname(&f, p)?;
                if l.port_names[..i].contains(p) {
                    return Err(ApiError::field(&f, format!("{p} is listed twice")).into());
                }
            }
        }
        _ => {
            return Err(ApiError::field(
                "lagDirectJoint",
                "give exactly one of lagAllocationSettings and portNames",
            )
            .into());
        }
    }
    Ok(())
}

/// A trunk that holds a port.
struct Holder {
    id: String,
    lag: bool,
}

/// Which of `ports` of an edge trunks hold (single-port joints and LAG members), by
/// index: never a read of every trunk of the edge.
async fn held_ports(
    st: &AppState,
    edge: &str,
    ports: &[String],
) -> ApiResult<Vec<(String, Holder)>> {
    let mut held = Vec::new();
    for p in ports {
        for t in st
            .store
            .linked::<TrunkConnection>(rel::PORT, &rel::port_key(edge, p))
            .await?
        {
            let lag = t
                .lag_direct_joint
                .as_ref()
                .is_some_and(|l| l.port_names.contains(p));
            held.push((
                p.clone(),
                Holder {
                    id: t.meta.id.clone(),
                    lag,
                },
            ));
        }
    }
    Ok(held)
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateTrunkConnectionRequest>,
) -> ApiResult<Json<Value>> {
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    validate::id_ref("pointOfPresenceId", &req.point_of_presence_id)?;
    let joints = [
        req.single_port_direct_joint.is_some(),
        req.lag_direct_joint.is_some(),
        req.partner_joint_info.is_some(),
        req.overlay_joint.is_some(),
    ];
    if joints.iter().filter(|j| **j).count() != 1 {
        return Err(ApiError::new(
            Code::InvalidArgument,
            "exactly one joint is required: singlePortDirectJoint, lagDirectJoint, partnerJointInfo or overlayJoint",
        )
        .into());
    }
    let mut access_device = None;
    if let Some(j) = &req.single_port_direct_joint {
        valid_ifname("singlePortDirectJoint.portName", &j.port_name)?;
        access_device = j.access_device_name.clone();
    }
    if let Some(o) = &req.overlay_joint {
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
        access_device = o.access_device_name.clone();
    }
    if let Some(l) = &req.lag_direct_joint {
        check_lag(l)?;
        access_device = l.access_device_name.clone();
    }
    if let Some(p) = &req.partner_joint_info {
        validate::id_ref("partnerJointInfo.partnerId", &p.partner_id)?;
        let key_ok = (1..=256).contains(&p.service_key.len())
            && p.service_key.bytes().all(|b| b.is_ascii_graphic());
        if !key_ok {
            return Err(ApiError::field(
                "partnerJointInfo.serviceKey",
                "must be 1-256 printable characters without spaces, as the partner issued it",
            )
            .into());
        }
        if p.port_name.is_some() {
            return Err(ApiError::field(
                "partnerJointInfo.portName",
                "is output only: the partner's port at the PoP",
            )
            .into());
        }
    }

    let _w = st.lock_writes().await?;
    if st
        .store
        .get::<PointOfPresence>(&req.point_of_presence_id)
        .await?
        .is_none()
    {
        return Err(not_found("point of presence", &req.point_of_presence_id));
    }
    // A partner trunk goes where the partner's port meets the PoP.
    let mut partner_joint = req.partner_joint_info.clone();
    if let Some(pj) = partner_joint.as_mut() {
        let partner = st
            .store
            .get::<Partner>(&pj.partner_id)
            .await?
            .ok_or_else(|| not_found("partner", &pj.partner_id))?;
        if partner.status != PartnerStatus::Up {
            return Err(ApiError::precondition(format!("partner {} is DOWN", partner.id)).into());
        }
        let port = partner
            .joints
            .iter()
            .find(|j| j.point_of_presence_id == req.point_of_presence_id)
            .ok_or_else(|| {
                ApiError::precondition(format!(
                    "partner {} does not serve point of presence {}",
                    partner.id, req.point_of_presence_id
                ))
            })?;
        access_device = Some(port.access_device_name.clone());
        pj.port_name = Some(port.port_name.clone());
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
    // Ports a LAG holds are its own: not another LAG's, not a single-port trunk's.
    let mut asked: Vec<String> = Vec::new();
    if let Some(j) = &req.single_port_direct_joint {
        asked.push(j.port_name.clone());
    }
    if let Some(l) = &req.lag_direct_joint {
        if l.lag_allocation_settings.is_some() {
            asked.extend(edge.customer_ports.iter().cloned());
        } else {
            asked.extend(l.port_names.iter().cloned());
        }
    }
    let held = held_ports(&st, &edge.id, &asked).await?;
    if let Some(j) = &req.single_port_direct_joint
        && let Some((_, t)) = held.iter().find(|(p, t)| *p == j.port_name && t.lag)
    {
        return Err(ApiError::conflict_at(
            "singlePortDirectJoint.portName",
            format!(
                "port {} of edge {} is a member of LAG trunk {}",
                j.port_name, edge.name, t.id
            ),
        )
        .into());
    }
    let mut lag = req.lag_direct_joint.clone();
    if let Some(l) = lag.as_mut() {
        if let Some(a) = &l.lag_allocation_settings {
            let free: Vec<String> = edge
                .customer_ports
                .iter()
                .filter(|p| !held.iter().any(|(h, _)| h == *p))
                .cloned()
                .collect();
            if free.len() < a.lag_size as usize {
                return Err(ApiError::precondition(format!(
                    "edge {} has {} free customer ports, fewer than lagSize {}",
                    edge.name,
                    free.len(),
                    a.lag_size
                ))
                .into());
            }
            l.port_names = free.into_iter().take(a.lag_size as usize).collect();
        } else if let Some((p, t)) = held.iter().find(|(p, _)| l.port_names.contains(p)) {
            return Err(ApiError::conflict(format!(
                "port {p} of edge {} is already held by trunk {}",
                edge.name, t.id
            ))
            .into());
        }
    }

    let trunk = TrunkConnection {
        meta: new_meta("tc", req.folder_id, req.name, req.description, req.labels),
        point_of_presence_id: req.point_of_presence_id,
        capacity: req.capacity,
        deletion_protection: req.deletion_protection,
        single_port_direct_joint: req.single_port_direct_joint,
        overlay_joint: req.overlay_joint,
        lag_direct_joint: lag,
        partner_joint_info: partner_joint,
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

/// What a PATCH of a trunk may name (see [`super::patch`]).
pub(crate) const PATCH: super::patch::Spec = super::patch::Spec {
    id_field: "trunkConnectionId",
    fields: &[
        super::patch::META[0],
        super::patch::META[1],
        super::patch::META[2],
        super::patch::Field("deletionProtection", super::patch::Clear::To("false")),
    ],
    output_only: &["id", "createdAt", "status", "edgeId"],
    immutable: &[
        "folderId",
        "pointOfPresenceId",
        "capacity",
        "singlePortDirectJoint",
        "overlayJoint",
        "lagDirectJoint",
        "partnerJointInfo",
    ],
};

pub async fn update(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> ApiResult<Json<Value>> {
    let patch = super::patch::read::<UpdateTrunkConnectionRequest>(&body, &id, &PATCH)?;
    let _w = st.lock_writes().await?;
    let (mut t, view) = super::patch::fetch_for_update::<TrunkConnection>(&st, &who, &id).await?;
    patch.check_unchanged(&t)?;
    let req = patch.req;
    super::patch::apply_meta::<TrunkConnection>(
        &st,
        &mut t.meta,
        req.name,
        req.description,
        req.labels,
    )
    .await?;
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
