//! Operator catalog: points of presence and edges (admin only).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::{
    CreateEdgeRequest, Edge, EdgeCredentialsRequest, EdgeLive, EdgeRegistration, Partner,
    PointOfPresence, TrunkConnection,
};
use cic_model::{ApiError, validate};
use cic_store::Document;

use super::{ApiQuery, ListQuery, commit, fetch, not_found, show_page};
use crate::access::View;
use crate::auth::{Principal, hash, new_token};
use crate::compile::{self, FabricAttachmentView};
use crate::error::{ApiBody, ApiJson, ApiResult, decode_json};
use crate::{AppState, EdgeLiveState, new_id, now};
use serde_json::Value;
use std::collections::HashMap;

/// Writes one catalog document at a new revision (edges see it at their next sync).
pub(crate) async fn put_catalog<T: Document>(st: &AppState, doc: &T) -> ApiResult<()> {
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(doc, rev).await?;
    commit(st, tx, rev).await
}

/// Deletes one catalog document at a new revision.
pub(crate) async fn delete_catalog<T: Document>(st: &AppState, id: &str) -> ApiResult<()> {
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.delete::<T>(id).await?;
    commit(st, tx, rev).await
}

/// `GET` of an operator catalog every user may read: points of presence, partners, cloud
/// services.
pub(crate) async fn list_catalog<T: Document + Clone>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.require_user()?;
    let page = q.page(&st, st.store.list::<T>(None).await?)?;
    Ok(Json(show_page(&View::default(), T::KIND, page)))
}

pub(crate) async fn get_catalog<T: Document>(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<T>> {
    who.require_user()?;
    Ok(Json(fetch::<T>(&st, &id).await?))
}

pub async fn create_pop(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(pop): ApiJson<PointOfPresence>,
) -> ApiResult<Json<PointOfPresence>> {
    who.require_admin()?;
    check_pop(&pop)?;
    let _w = st.lock_writes().await?;
    if st.store.get::<PointOfPresence>(&pop.id).await?.is_some() {
        return Err(
            ApiError::conflict(format!("point of presence {:?} already exists", pop.id)).into(),
        );
    }
    put_catalog(&st, &pop).await?;
    Ok(Json(pop))
}

fn check_pop(pop: &PointOfPresence) -> ApiResult<()> {
    validate::id_ref("id", &pop.id)?;
    validate::description("locationAddress", &pop.location_address)?;
    if let Some(n) = &pop.public_services {
        validate::public_services("publicServices", n)?;
    }
    Ok(())
}

/// `PUT /cic/v1/pointOfPresences/{id}` (operator): a new public-services network reaches
/// the PoP's edges at their next sync (each public connection's segment made anew).
pub async fn replace_pop(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(pop): ApiJson<PointOfPresence>,
) -> ApiResult<Json<PointOfPresence>> {
    who.require_admin()?;
    super::same_id("id", Some(&pop.id), &id)?;
    check_pop(&pop)?;
    let _w = st.lock_writes().await?;
    fetch::<PointOfPresence>(&st, &id).await?;
    // Every public connection at the PoP has its segment's slot (one that somehow has
    // none — made by an older server — is given one now).
    let (snap, _) = st.snapshot().await?;
    let mut add = Vec::new();
    for e in snap.edges.iter().filter(|e| e.point_of_presence_id == id) {
        let on_edge = snap
            .public_connections
            .iter()
            .filter(|p| {
                snap.trunks
                    .iter()
                    .any(|t| t.meta.id == p.trunk_connection_id && t.edge_id == e.id)
            })
            .filter(|p| {
                !snap
                    .slots
                    .iter()
                    .any(|s| s.edge_id == e.id && s.routing_instance_id == p.meta.id)
            });
        let mut taken: std::collections::BTreeSet<u32> = snap
            .slots
            .iter()
            .filter(|s| s.edge_id == e.id)
            .map(|s| s.slot)
            .collect();
        for p in on_edge {
            let slot = (0..compile::slot_capacity(e))
                .find(|n| !taken.contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        cic_model::Code::ResourceExhausted,
                        format!(
                            "edge {} has no free fabric segment for public connection {}",
                            e.name, p.meta.id
                        ),
                    )
                })?;
            taken.insert(slot);
            add.push(cic_store::FabricSlot {
                edge_id: e.id.clone(),
                routing_instance_id: p.meta.id.clone(),
                slot,
            });
        }
    }
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    for s in &add {
        tx.put_slot(s, rev).await?;
    }
    tx.put(&pop, rev).await?;
    commit(&st, tx, rev).await?;
    Ok(Json(pop))
}

/// `GET` of the points of presence: their public-services network (the operator's
/// internal addressing) is the operator's to see.
pub(crate) async fn list_pops(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.require_user()?;
    let mut all = st.store.list::<PointOfPresence>(None).await?;
    if who.require_admin().is_err() {
        for p in &mut all {
            p.public_services = None;
        }
    }
    let page = q.page(&st, all)?;
    Ok(Json(show_page(
        &View::default(),
        PointOfPresence::KIND,
        page,
    )))
}

pub(crate) async fn get_pop(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<PointOfPresence>> {
    who.require_user()?;
    let mut p = fetch::<PointOfPresence>(&st, &id).await?;
    if who.require_admin().is_err() {
        p.public_services = None;
    }
    Ok(Json(p))
}

pub async fn delete_pop(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require_admin()?;
    let _w = st.lock_writes().await?;
    fetch::<PointOfPresence>(&st, &id).await?;
    if st
        .store
        .list::<Edge>(None)
        .await?
        .iter()
        .any(|e| e.point_of_presence_id == id)
    {
        return Err(ApiError::precondition(format!(
            "point of presence {id:?} still has edges; delete them first"
        ))
        .into());
    }
    delete_catalog::<PointOfPresence>(&st, &id).await?;
    Ok(Json(serde_json::json!({})))
}

pub async fn create_edge(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateEdgeRequest>,
) -> ApiResult<Json<EdgeRegistration>> {
    who.require_admin()?;
    validate::name("name", &req.name)?;
    if req.name.is_empty() {
        return Err(ApiError::field("name", "is required").into());
    }
    validate::id_ref("pointOfPresenceId", &req.point_of_presence_id)?;
    if req.router_id.is_unspecified() || req.router_id.is_multicast() {
        return Err(ApiError::field(
            "routerId",
            format!("{} is not a usable BGP identifier", req.router_id),
        )
        .into());
    }
    for (i, p) in req.customer_ports.iter().enumerate() {
        let f = format!("customerPorts[{i}]");
        crate::api::trunks::valid_ifname(&f, p)?;
        if req.customer_ports[..i].contains(p) {
            return Err(ApiError::field(&f, format!("{p} is listed twice")).into());
        }
    }
    let f = &req.fabric;
    if f.vni_base <= 4095 || f.vni_base >= (1 << 24) {
        return Err(ApiError::field(
            "fabric.vniBase",
            "must be above the VLAN range (4096) and below 2^24",
        )
        .into());
    }
    validate::canonical("fabric.transitPool", &f.transit_pool)?;
    if f.transit_pool.prefix_len() > 31 {
        return Err(ApiError::field("fabric.transitPool", "must hold at least one /31").into());
    }
    if let Some(p6) = &f.transit_pool6 {
        validate::canonical("fabric.transitPool6", p6)?;
        if p6.prefix_len() > 127 {
            return Err(
                ApiError::field("fabric.transitPool6", "must hold at least one /127").into(),
            );
        }
        if !p6.addr().is_unique_local() && (p6.addr().segments()[0] & 0xe000) != 0x2000 {
            return Err(ApiError::field(
                "fabric.transitPool6",
                format!("{p6} is neither unique local (fc00::/7) nor global unicast (2000::/3)"),
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
    if st
        .store
        .list::<Edge>(None)
        .await?
        .iter()
        .any(|e| e.name == req.name)
    {
        return Err(
            ApiError::conflict(format!("an edge named {:?} already exists", req.name)).into(),
        );
    }
    let edge = Edge {
        id: new_id("ed"),
        name: req.name,
        point_of_presence_id: req.point_of_presence_id,
        router_id: req.router_id,
        fabric: req.fabric,
        customer_ports: req.customer_ports,
        drain: false,
        created_at: now(),
        live: None,
    };
    let token = new_token("cic-edge-");
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put(&edge, rev).await?;
    tx.put_token(&hash(&token), "edge", &edge.id).await?;
    commit(&st, tx, rev).await?;
    Ok(Json(EdgeRegistration { edge, token }))
}

fn with_live(live: &HashMap<String, Arc<EdgeLiveState>>, mut e: Edge) -> Edge {
    if let Some(l) = live.get(&e.id) {
        e.live = Some(EdgeLive {
            reported_at: l.reported_at.clone(),
            applied_revision: l.report.applied_revision,
            dataplane: l.report.dataplane.clone(),
            errors: l.report.errors.clone(),
        });
    }
    e
}

pub async fn list_edges(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    let mut page = q.page(&st, st.store.list::<Edge>(None).await?)?;
    let live = st.live().await?;
    page.items = page
        .items
        .into_iter()
        .map(|e| with_live(&live, e))
        .collect();
    Ok(Json(show_page(&View::default(), Edge::KIND, page)))
}

pub async fn get_edge(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Edge>> {
    who.require_admin()?;
    let e = fetch::<Edge>(&st, &id).await?;
    let live = st.live_of(Some(std::slice::from_ref(&e.id))).await?;
    Ok(Json(with_live(&live, e)))
}

/// `POST /cic/v1/edges/{id}:drain` and `:undrain` (operator): maintenance drain. The edge
/// sends every route again with GRACEFUL_SHUTDOWN (RFC 8326) at its next sync.
pub async fn edge_method(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id_method): Path<String>,
    ApiBody(body): ApiBody,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    who.require_admin()?;
    let (id, method) = id_method.split_once(':').unwrap_or((&id_method, ""));
    let drain = match method {
        "drain" => true,
        "undrain" => false,
        "issueCertificate" | "rotateCredentials" => {
            let req: EdgeCredentialsRequest = if body.iter().all(u8::is_ascii_whitespace) {
                EdgeCredentialsRequest::default()
            } else {
                decode_json(&body)?
            };
            let rotate = method == "rotateCredentials";
            let out = super::credentials::issue(&st, id, req, rotate).await?;
            return Ok(Json(out).into_response());
        }
        _ => {
            return Err(ApiError::new(
                cic_model::Code::NotFound,
                format!(
                    "edges have no method {id_method:?}; there are :drain, :undrain, :issueCertificate and :rotateCredentials"
                ),
            )
            .into());
        }
    };
    let _w = st.lock_writes().await?;
    let mut e = fetch::<Edge>(&st, id).await?;
    if e.drain != drain {
        e.drain = drain;
        put_catalog(&st, &e).await?;
    }
    let live = st.live_of(Some(std::slice::from_ref(&e.id))).await?;
    Ok(Json(with_live(&live, e)).into_response())
}

pub async fn delete_edge(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require_admin()?;
    let _w = st.lock_writes().await?;
    fetch::<Edge>(&st, &id).await?;
    if let Some(t) = st
        .store
        .list::<TrunkConnection>(None)
        .await?
        .iter()
        .find(|t| t.edge_id == id)
    {
        return Err(ApiError::precondition(format!(
            "edge {id} still carries trunk {}; delete it first",
            t.id()
        ))
        .into());
    }
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.delete::<Edge>(&id).await?;
    tx.delete_edge_tokens(&id).await?;
    tx.revoke_edge_certificates(&id, crate::clock::unix_now(), "")
        .await?;
    tx.delete_edge_report(&id).await?;
    commit(&st, tx, rev).await?;
    st.forget_answer(&id);
    Ok(Json(serde_json::json!({})))
}

/// What the operator's fabric must build for each routing instance on this edge.
pub async fn fabric_attachments_handler(
    st: &AppState,
    id: &str,
) -> ApiResult<Vec<FabricAttachmentView>> {
    fetch::<Edge>(st, id).await?;
    let (snap, _) = st.snapshot().await?;
    Ok(compile::fabric_attachments(&snap, id, st.config.cloud_asn))
}

pub async fn fabric_attachments(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require_admin()?;
    let items = fabric_attachments_handler(&st, &id).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// What the PoP's public-services network must build for each public connection on this
/// edge.
pub async fn public_services_attachments(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    who.require_admin()?;
    fetch::<Edge>(&st, &id).await?;
    let (snap, _) = st.snapshot().await?;
    let items = compile::public_services_attachments(&snap, &id, st.config.cloud_asn);
    Ok(Json(serde_json::json!({ "items": items })))
}

/// `POST /cic/v1/partners` (operator).
pub async fn create_partner(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(p): ApiJson<Partner>,
) -> ApiResult<Json<Partner>> {
    who.require_admin()?;
    validate::id_ref("id", &p.id)?;
    validate::description("name", &p.name)?;
    check_url(&p.url)?;
    let _w = st.lock_writes().await?;
    if st.store.get::<Partner>(&p.id).await?.is_some() {
        return Err(ApiError::conflict(format!("partner {:?} already exists", p.id)).into());
    }
    for (i, pop) in p.pop_ids.iter().enumerate() {
        if st.store.get::<PointOfPresence>(pop).await?.is_none() || p.pop_ids[..i].contains(pop) {
            return Err(ApiError::field(
                &format!("popIds[{i}]"),
                format!("{pop:?} is not a point of presence, or is listed twice"),
            )
            .into());
        }
    }
    let edges = st.store.list::<Edge>(None).await?;
    for (i, j) in p.joints.iter().enumerate() {
        let f = format!("joints[{i}]");
        if !p.pop_ids.contains(&j.point_of_presence_id) {
            return Err(ApiError::field(
                &format!("{f}.pointOfPresenceId"),
                format!("{} is not in popIds", j.point_of_presence_id),
            )
            .into());
        }
        if p.joints[..i]
            .iter()
            .any(|k| k.point_of_presence_id == j.point_of_presence_id)
        {
            return Err(ApiError::field(
                &format!("{f}.pointOfPresenceId"),
                "one port per point of presence",
            )
            .into());
        }
        if !edges.iter().any(|e| {
            e.name == j.access_device_name && e.point_of_presence_id == j.point_of_presence_id
        }) {
            return Err(ApiError::field(
                &format!("{f}.accessDeviceName"),
                format!(
                    "no edge named {:?} at {}",
                    j.access_device_name, j.point_of_presence_id
                ),
            )
            .into());
        }
        crate::api::trunks::valid_ifname(&format!("{f}.portName"), &j.port_name)?;
    }
    put_catalog(&st, &p).await?;
    Ok(Json(p))
}

/// `DELETE /cic/v1/partners/{id}` (operator): refused while a trunk goes through it.
pub async fn delete_partner(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    let _w = st.lock_writes().await?;
    fetch::<Partner>(&st, &id).await?;
    if let Some(t) = st
        .store
        .list::<TrunkConnection>(None)
        .await?
        .into_iter()
        .find(|t| {
            t.partner_joint_info
                .as_ref()
                .is_some_and(|p| p.partner_id == id)
        })
    {
        return Err(ApiError::precondition(format!(
            "trunk connection {} still goes through partner {id}",
            t.meta.id
        ))
        .into());
    }
    delete_catalog::<Partner>(&st, &id).await?;
    Ok(Json(serde_json::json!({})))
}

/// `PATCH /cic/v1/partners/{id}` (operator): name, url, status. A partner that is DOWN
/// takes no new trunks; those it carries stay.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePartnerRequest {
    // These two are documented in the schema; `patch::read` takes them out of the body.
    #[allow(dead_code)]
    #[serde(default)]
    partner_id: Option<String>,
    /// The fields to change (`"status"`); without it, the fields present.
    #[allow(dead_code)]
    #[serde(default)]
    update_mask: Option<String>,
    name: Option<String>,
    url: Option<String>,
    status: Option<cic_model::resource::PartnerStatus>,
}

/// What a PATCH of a partner may name (see [`super::patch`]).
const PARTNER_PATCH: super::patch::Spec = super::patch::Spec {
    id_field: "partnerId",
    fields: &[
        super::patch::Field("name", super::patch::Clear::To("\"\"")),
        super::patch::Field("url", super::patch::Clear::To("\"\"")),
        super::patch::Field("status", super::patch::Clear::Required),
    ],
    output_only: &[],
    immutable: &["popIds", "joints"],
};

pub async fn update_partner(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Partner>> {
    who.require_admin()?;
    let patch = super::patch::read::<UpdatePartnerRequest>(&body, &id, &PARTNER_PATCH)?;
    let _w = st.lock_writes().await?;
    let mut p = fetch::<Partner>(&st, &id).await?;
    patch.check_unchanged(&p)?;
    let req = patch.req;
    if let Some(n) = req.name {
        validate::description("name", &n)?;
        p.name = n;
    }
    if let Some(u) = req.url {
        check_url(&u)?;
        p.url = u;
    }
    if let Some(s) = req.status {
        p.status = s;
    }
    put_catalog(&st, &p).await?;
    Ok(Json(p))
}

fn check_url(u: &str) -> ApiResult<()> {
    if u.is_empty() || (u.len() <= 256 && (u.starts_with("https://") || u.starts_with("http://"))) {
        Ok(())
    } else {
        Err(ApiError::field(
            "url",
            "must be an http:// or https:// URL of at most 256 characters",
        )
        .into())
    }
}

/// `GET /cic/v1/edges/{id}/config` (operator): the desired config the edge is given, as it
/// would fetch it now — to compare with what the edge realised.
pub async fn edge_config(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<cic_model::edge::EdgeConfig>> {
    who.require_admin()?;
    fetch::<Edge>(&st, &id).await?;
    let (snap, revision) = st.snapshot().await?;
    compile::compile(&snap, &id, revision, &st.settings())
        .map(Json)
        .ok_or_else(|| not_found("edge", &id))
}
