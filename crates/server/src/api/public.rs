//! Public connections — a VLAN on a trunk to the cloud's public services — and the
//! operator's catalogue of those services. The operator creates and deletes public
//! connections in a customer's folder; the customer reads (and may move) them.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::{
    CloudService, CreatePublicConnectionRequest, Edge, PublicConnection, TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document};
use serde_json::Value;

use super::catalog::{delete_catalog, put_catalog};
use super::connections::{check_placement, delete_on_trunk, peering_of};
use super::routing::new_slot;
use super::{
    ApiQuery, Mutation, PageQuery, check_meta, check_unique_name, fetch, fetch_for,
    finish_mutation, new_meta, show_page,
};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiJson, ApiResult};

/// Most prefixes a customer may register on one public connection.
const MAX_ANNOUNCED: usize = 100;

fn check_service(s: &CloudService, also: &[ipnet::IpNet]) -> ApiResult<()> {
    let ok = (s.id.starts_with("CLOUD_SERVICE_") || s.id.starts_with("CLOUD_SERVICES_"))
        && s.id.len() <= 64
        && s.id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(ApiError::field(
            "id",
            format!(
                "{:?} is not a service type (CLOUD_SERVICE_… in capitals, digits and _)",
                s.id
            ),
        )
        .into());
    }
    validate::description("description", &s.description)?;
    if s.prefixes.is_empty() || s.prefixes.len() > 1000 {
        return Err(ApiError::field("prefixes", "must hold 1-1000 prefixes").into());
    }
    for (i, p) in s.prefixes.iter().enumerate() {
        let f = format!("prefixes[{i}]");
        match p {
            ipnet::IpNet::V4(p) => validate::public_prefix(&f, p, also)?,
            ipnet::IpNet::V6(p) => validate::public_prefix6(&f, p, also)?,
        }
        if s.prefixes[..i].contains(p) {
            return Err(ApiError::field(&f, format!("{p} is listed twice")).into());
        }
    }
    Ok(())
}

/// `POST /cic/v1/cloudServices` (operator).
pub async fn create_service(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(s): ApiJson<CloudService>,
) -> ApiResult<Json<CloudService>> {
    who.require_admin()?;
    check_service(&s, &st.config.treat_as_public)?;
    let _w = st.lock_writes().await?;
    if st.store.get::<CloudService>(&s.id).await?.is_some() {
        return Err(ApiError::conflict(format!("cloud service {} already exists", s.id)).into());
    }
    put_catalog(&st, &s).await?;
    Ok(Json(s))
}

/// `PUT /cic/v1/cloudServices/{id}` (operator): new prefixes reach every public connection
/// that allows the service at the edges' next sync.
pub async fn replace_service(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(s): ApiJson<CloudService>,
) -> ApiResult<Json<CloudService>> {
    who.require_admin()?;
    super::same_id("id", Some(&s.id), &id)?;
    check_service(&s, &st.config.treat_as_public)?;
    let _w = st.lock_writes().await?;
    fetch::<CloudService>(&st, &id).await?;
    put_catalog(&st, &s).await?;
    Ok(Json(s))
}

/// `DELETE /cic/v1/cloudServices/{id}` (operator): refused while a public connection
/// allows it.
pub async fn delete_service(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    let _w = st.lock_writes().await?;
    fetch::<CloudService>(&st, &id).await?;
    if let Some(p) = st
        .store
        .list::<PublicConnection>(None)
        .await?
        .into_iter()
        .find(|p| {
            p.ipv4_allowed_service_types.contains(&id) || p.ipv6_allowed_service_types.contains(&id)
        })
    {
        return Err(ApiError::precondition(format!(
            "public connection {} still allows {id}",
            p.meta.id
        ))
        .into());
    }
    delete_catalog::<CloudService>(&st, &id).await?;
    Ok(Json(serde_json::json!({})))
}

/// `POST /cic/v1/publicConnections` (operator).
pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreatePublicConnectionRequest>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    validate::id_ref("trunkConnectionId", &req.trunk_connection_id)?;
    let vlan = validate::vlan_id("vlanId", req.vlan_id)?;
    let p = &req.ipv4_peering;
    let also = &st.config.treat_as_public;
    validate::public_peering(
        "ipv4Peering",
        &p.peering_subnet,
        p.peer_ip,
        p.cloud_ip,
        also,
    )?;
    validate::peer_asn(
        "ipv4Peering.peerBgpAsn",
        p.peer_bgp_asn,
        st.config.cloud_asn,
    )?;
    validate::md5_key("ipv4Peering.peerBgpMd5Key", &p.peer_bgp_md5_key)?;
    if req.ipv4_allowed_service_types.is_empty() {
        return Err(ApiError::field("ipv4AllowedServiceTypes", "names no service").into());
    }
    announced_prefixes(
        "ipv4PeerAnnouncedPrefixes",
        &req.ipv4_peer_announced_prefixes,
        |f, n| validate::public_prefix(f, n, also),
    )?;
    match &req.ipv6_peering {
        Some(p) => {
            validate::public_peering6(
                "ipv6Peering",
                &p.peering_subnet,
                p.peer_ip,
                p.cloud_ip,
                also,
            )?;
            validate::peer_asn(
                "ipv6Peering.peerBgpAsn",
                p.peer_bgp_asn,
                st.config.cloud_asn,
            )?;
            validate::md5_key("ipv6Peering.peerBgpMd5Key", &p.peer_bgp_md5_key)?;
            validate::same_asn(Some(req.ipv4_peering.peer_bgp_asn), Some(p.peer_bgp_asn))?;
            if req.ipv6_allowed_service_types.is_empty() {
                return Err(ApiError::field("ipv6AllowedServiceTypes", "names no service").into());
            }
            announced_prefixes(
                "ipv6PeerAnnouncedPrefixes",
                &req.ipv6_peer_announced_prefixes,
                |f, n| validate::public_prefix6(f, n, also),
            )?;
        }
        None => {
            for (field, empty) in [
                (
                    "ipv6AllowedServiceTypes",
                    req.ipv6_allowed_service_types.is_empty(),
                ),
                (
                    "ipv6PeerAnnouncedPrefixes",
                    req.ipv6_peer_announced_prefixes.is_empty(),
                ),
            ] {
                if !empty {
                    return Err(ApiError::field(field, "needs an ipv6Peering").into());
                }
            }
        }
    }

    let _w = st.lock_writes().await?;
    allowed_services(
        &st,
        "ipv4AllowedServiceTypes",
        &req.ipv4_allowed_service_types,
        false,
    )
    .await?;
    allowed_services(
        &st,
        "ipv6AllowedServiceTypes",
        &req.ipv6_allowed_service_types,
        true,
    )
    .await?;
    let trunk = check_placement(
        &st,
        &req.folder_id,
        &req.trunk_connection_id,
        vlan,
        None,
        true,
    )
    .await?;
    check_unique_name::<PublicConnection>(&st, &req.folder_id, &req.name, None).await?;
    let pc = PublicConnection {
        meta: new_meta("pu", req.folder_id, req.name, req.description, req.labels),
        trunk_connection_id: trunk.meta.id.clone(),
        vlan_id: vlan,
        ipv4_peering: peering_of(&req.ipv4_peering, st.config.cloud_asn),
        ipv4_allowed_service_types: req.ipv4_allowed_service_types,
        ipv4_peer_announced_prefixes: req.ipv4_peer_announced_prefixes,
        ipv6_peering: req
            .ipv6_peering
            .map(|p| p.with_cloud_asn(st.config.cloud_asn)),
        ipv6_allowed_service_types: req.ipv6_allowed_service_types,
        ipv6_peer_announced_prefixes: req.ipv6_peer_announced_prefixes,
        bgp: None,
        bgp_ipv6: None,
        bgp_failover_tests: vec![],
        bgp_session_resets: 0,
    };
    // Its segment toward the public services: a fabric slot of its edge (VNI and transit
    // /31), held from the start so that a PoP given a public-services network later has
    // every segment's addresses already.
    let edge = fetch::<Edge>(&st, &trunk.edge_id).await?;
    let slot = new_slot(&st, &edge, &pc.meta.id).await?;
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    tx.put_slot(&slot, rev).await?;
    tx.put(&pc, rev).await?;
    let op = finish_mutation(
        &st,
        tx,
        rev,
        Mutation {
            description: "Create public connection",
            created_by: &who.name(),
            kind: PublicConnection::KIND,
            resource_id: &pc.meta.id,
            folder_id: &pc.meta.folder_id,
            action: Action::Create,
            edges: vec![trunk.edge_id],
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}

/// The customer's registered prefixes of one family: at most [`MAX_ANNOUNCED`], each
/// public (by `check`) and listed once.
fn announced_prefixes<N: PartialEq + std::fmt::Display>(
    field: &str,
    announced: &[N],
    check: impl Fn(&str, &N) -> cic_model::ApiResult<()>,
) -> ApiResult<()> {
    if announced.len() > MAX_ANNOUNCED {
        return Err(ApiError::field(
            field,
            format!("has {}; at most {MAX_ANNOUNCED}", announced.len()),
        )
        .into());
    }
    for (i, n) in announced.iter().enumerate() {
        let f = format!("{field}[{i}]");
        check(&f, n)?;
        if announced[..i].contains(n) {
            return Err(ApiError::field(&f, format!("{n} is listed twice")).into());
        }
    }
    Ok(())
}

/// Each allowed service is in the catalogue, listed once, and has prefixes of the
/// family (`v6`) its list is for.
async fn allowed_services(st: &AppState, field: &str, types: &[String], v6: bool) -> ApiResult<()> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    for (i, t) in types.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let Some(s) = st
            .store
            .get::<CloudService>(t)
            .await?
            .filter(|_| !types[..i].contains(t))
        else {
            return Err(ApiError::field(
                &f,
                format!("{t:?} is not a service of the catalogue (GET /cic/v1/cloudServices), or is listed twice"),
            )
            .into());
        };
        if !s
            .prefixes
            .iter()
            .any(|p| matches!(p, ipnet::IpNet::V6(_)) == v6)
        {
            return Err(ApiError::field(&f, format!("{t} has no {family} prefixes")).into());
        }
    }
    Ok(())
}

/// `POST …/publicConnections/{id}:method`: the session's methods (as a private
/// connection's: a failover test, a reset), then `:move`.
pub async fn post_method(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id_method): Path<String>,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Value>> {
    match id_method.split_once(':') {
        Some((id, m @ ("startBgpFailoverTest" | "stopBgpFailoverTest" | "resetBgpSession"))) => {
            super::sessions::session_method::<PublicConnection>(&st, &who, id, m, &body).await
        }
        _ => {
            super::post_method::<PublicConnection>(
                State(st),
                who,
                Path(id_method),
                crate::error::ApiBody(body),
            )
            .await
        }
    }
}

/// `DELETE /cic/v1/publicConnections/{id}` (operator).
pub async fn delete(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    who.require_admin()?;
    let _w = st.lock_writes().await?;
    let (mut pc, view) = fetch_for::<PublicConnection>(&st, &who, &id, Need::Write).await?;
    let trunk = pc.trunk_connection_id.clone();
    delete_on_trunk(&st, &who, &view, &mut pc, &trunk).await
}

/// Live BGP state from the edge's last report.
async fn present(st: &AppState, mut pc: PublicConnection) -> ApiResult<PublicConnection> {
    if let Some(t) = st
        .store
        .get::<TrunkConnection>(&pc.trunk_connection_id)
        .await?
        && let Some(l) = st.live().await?.get(&t.edge_id)
    {
        use cic_model::edge::{Family, SessionKind};
        pc.bgp = l
            .session_of(SessionKind::Customer, &pc.meta.id, Family::Ipv4)
            .cloned();
        pc.bgp_ipv6 = l
            .session_of(SessionKind::Customer, &pc.meta.id, Family::Ipv6)
            .cloned();
    }
    let now = time::OffsetDateTime::now_utc();
    for t in &mut pc.bgp_failover_tests {
        t.status = super::sessions::test_status(t, now).to_string();
    }
    Ok(pc)
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    if let Some(pc) = id.strip_suffix(":routes") {
        let q = super::query_of(&uri)?;
        let (pc, _) = fetch_for::<PublicConnection>(&st, &who, pc, Need::Read).await?;
        let families = super::looking_glass::Families {
            ipv4: true,
            ipv6: pc.ipv6_peering.is_some(),
        };
        return super::looking_glass::routes_of(
            &st,
            "public connection",
            "publicConnectionId",
            &pc.meta.id,
            &pc.trunk_connection_id,
            families,
            q,
        )
        .await;
    }
    if let Some(pc) = id.strip_suffix(":history") {
        let q = super::query_of(&uri)?;
        let (pc, _) = fetch_for::<PublicConnection>(&st, &who, pc, Need::Read).await?;
        return super::sessions::history_of(&st, pc.meta.id, q);
    }
    if let Some((_, m)) = id.split_once(':') {
        return Err(ApiError::new(
            Code::NotFound,
            format!("public connections have no GET method {m:?}; there are :routes and :history"),
        )
        .into());
    }
    let (pc, view) = fetch_for::<PublicConnection>(&st, &who, &id, Need::Read).await?;
    Ok(Json(view.show(&present(&st, pc).await?)))
}

/// `GET /cic/v1/publicConnections?folderId=…`: each with its live state and its failover
/// tests' status, as a Get shows it.
pub async fn list(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<super::ListQuery>,
) -> ApiResult<Json<super::KeyedPage<crate::access::Shown<PublicConnection>>>> {
    let (folder, view) = super::list_scope(&st, &who, &q).await?;
    let mut page = q.fetch::<PublicConnection>(&st, folder.as_deref()).await?;
    let mut shown = Vec::with_capacity(page.items.len());
    for pc in page.items.drain(..) {
        shown.push(present(&st, pc).await?);
    }
    page.items = shown;
    Ok(Json(super::present_page(&view, page)))
}

/// `GET /cic/v1/trunkConnections/{id}/publicConnections`.
pub async fn of_trunk(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let (trunk, view) = fetch_for::<TrunkConnection>(&st, &who, &id, Need::Read).await?;
    let mut on_trunk = Vec::new();
    for pc in st
        .store
        .children::<PublicConnection>(&trunk.meta.id)
        .await?
    {
        on_trunk.push(present(&st, pc).await?);
    }
    let p = super::page_by(
        &st,
        &q,
        PublicConnection::KIND,
        id.as_str(),
        on_trunk,
        |c| c.meta.id.clone(),
        false,
    )?;
    Ok(Json(show_page(&view, PublicConnection::KIND, p)))
}
