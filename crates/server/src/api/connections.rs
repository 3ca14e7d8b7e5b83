//! Private connections: a VLAN on a trunk, a peering subnet and a BGP session.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::edge::{Family, SessionKind};
use cic_model::resource::ListResponse;
use cic_model::resource::{
    BgpSessionOptions, CreatePrivateConnectionRequest, Ipv4Peering, Ipv4PeeringPatch,
    Ipv4PeeringSpec, Ipv6PeeringPatch, Ipv6PeeringSpec, Ipv6StaticRoute, Labels, PrivateConnection,
    RoutingInstance, StaticRoute, Status, TrunkConnection,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document, InContext, rel};

use super::patch::Clear::{Required, To};
use super::patch::{Field, META};
use super::sessions::{history, session_method, test_status};
use super::static_routes::static_routes;
use super::{
    ApiQuery, ListQuery, check_meta, check_unique_name, fetch_for, list_scope, new_meta, not_found,
    show_page, write_one,
};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiBody, ApiJson, ApiResult};
use serde::Deserialize;
use serde_json::Value;

mod placement;
use placement::check_spec;
pub(crate) use placement::{Spec, check_placement};
pub(super) use placement::{check_statics_in_instance, fields_of, needs_family};

/// `POST …/privateConnections/{id}:method`: the connection's own methods, then the ones
/// every tenant resource has (`:move`), as routing instances do.
pub async fn post_method(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id_method): Path<String>,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Value>> {
    match id_method.split_once(':') {
        Some((id, m @ ("startBgpFailoverTest" | "stopBgpFailoverTest" | "resetBgpSession"))) => {
            session_method::<PrivateConnection>(&st, &who, id, m, &body).await
        }
        Some((id, m @ ("upsertStaticRoutes" | "removeStaticRoutes"))) => {
            static_routes(&st, &who, id, m == "upsertStaticRoutes", &body).await
        }
        _ => {
            super::post_method::<PrivateConnection>(
                State(st),
                who,
                Path(id_method),
                crate::error::ApiBody(body),
            )
            .await
        }
    }
}

pub(crate) fn peering_of(p: &Ipv4PeeringSpec, cloud_asn: u32) -> Ipv4Peering {
    p.with_cloud_asn(cloud_asn)
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreatePrivateConnectionRequest>,
) -> ApiResult<Json<Value>> {
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    check_bfd(&st, req.bfd.as_ref())?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    validate::id_ref("trunkConnectionId", &req.trunk_connection_id)?;
    let vlan = check_spec(
        &st,
        req.vlan_id,
        &Spec {
            v4: req.ipv4_peering.as_ref(),
            v6: req.ipv6_peering.as_ref(),
            statics4: &req.ipv4_static_routes,
            statics6: &req.ipv6_static_routes,
        },
    )?;

    let _w = st.lock_writes().await?;
    let trunk = check_placement(
        &st,
        &req.folder_id,
        &req.trunk_connection_id,
        vlan,
        None,
        false,
    )
    .await?;
    check_unique_name::<PrivateConnection>(&st, &req.folder_id, &req.name, None).await?;

    let pc = PrivateConnection {
        meta: new_meta("pc", req.folder_id, req.name, req.description, req.labels),
        trunk_connection_id: trunk.meta.id.clone(),
        vlan_id: vlan,
        ipv4_peering: req
            .ipv4_peering
            .map(|p| p.with_cloud_asn(st.config.cloud_asn)),
        ipv6_peering: req
            .ipv6_peering
            .map(|p| p.with_cloud_asn(st.config.cloud_asn)),
        ipv4_static_routes: req.ipv4_static_routes,
        ipv6_static_routes: req.ipv6_static_routes,
        ttl_security: req.ttl_security,
        bgp_role: req.bgp_role,
        bfd: req.bfd,
        bgp_session_options: None,
        bgp_failover_tests: vec![],
        bgp_session_resets: 0,
        routing_instance_id: None,
        bgp: None,
        bgp_ipv6: None,
    };
    write_one(
        &st,
        &who,
        &view,
        &pc,
        "Create private connection",
        Action::Create,
        vec![trunk.edge_id],
    )
    .await
}

/// `PATCH /cic/v1/privateConnections/{id}`: name, description, labels,
/// trunkConnectionId, vlanId, ipv4Peering (merged field by field), ipv4StaticRoutes —
/// under the PATCH rules of [`super::patch`].
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "UpdatePrivateConnectionRequest")]
pub struct UpdateRequest {
    // This and `update_mask` are documented in the schema; `patch::read` takes them out
    // of the body.
    #[allow(dead_code)]
    #[serde(default)]
    private_connection_id: Option<String>,
    /// The fields to change (`"description,ipv4Peering.peerBgpAsn"`); without it, the
    /// fields present.
    #[allow(dead_code)]
    #[serde(default)]
    update_mask: Option<String>,
    name: Option<String>,
    description: Option<String>,
    labels: Option<Labels>,
    trunk_connection_id: Option<String>,
    #[serde(default, with = "cic_model::int64_option")]
    #[schemars(with = "Option<String>")]
    vlan_id: Option<u32>,
    /// A merge into the IPv4 peering (a whole one when there is none); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<Ipv4PeeringPatch>")]
    ipv4_peering: Option<Option<Ipv4PeeringPatch>>,
    /// The same for the IPv6 peering.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<Ipv6PeeringPatch>")]
    ipv6_peering: Option<Option<Ipv6PeeringPatch>>,
    ipv4_static_routes: Option<Vec<StaticRoute>>,
    ipv6_static_routes: Option<Vec<Ipv6StaticRoute>>,
    /// GTSM on the connection's sessions; `null`: the operator's default again.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<bool>")]
    ttl_security: Option<Option<bool>>,
    /// BGP roles on the connection's sessions; `null`: the operator's default again.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<cic_model::edge::BgpRoleMode>")]
    bgp_role: Option<Option<cic_model::edge::BgpRoleMode>>,
    /// BFD timers of the connection's sessions; `null`: the operator's default again.
    #[serde(default, deserialize_with = "nullable")]
    #[schemars(with = "Option<cic_model::resource::BfdTimers>")]
    bfd: Option<Option<cic_model::resource::BfdTimers>>,
}

/// A connection's BFD timers: within the operator's bounds, and only where BFD runs.
fn check_bfd(st: &AppState, t: Option<&cic_model::resource::BfdTimers>) -> ApiResult<()> {
    let Some(t) = t else { return Ok(()) };
    if !st.config.bgp.bfd.enabled {
        return Err(
            ApiError::field("bfd", "BFD is off on this cloud (the operator's choice)").into(),
        );
    }
    validate::bfd_timers("bfd", t, st.config.bfd_min_interval_ms)?;
    Ok(())
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn nullable<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A family's peering after a PATCH: kept, removed (`null`), merged into the one there,
/// or — where there was none — made from the patch, which must then be whole.
fn patched<S: Clone, P>(
    field: &str,
    old: Option<S>,
    patch: Option<Option<P>>,
    apply: impl Fn(P, &S) -> S,
    complete: impl Fn(P) -> Result<S, &'static str>,
) -> ApiResult<Option<S>> {
    Ok(match (patch, old) {
        (None, old) => old,
        (Some(None), _) => None,
        (Some(Some(p)), Some(old)) => Some(apply(p, &old)),
        (Some(Some(p)), None) => Some(complete(p).map_err(|missing| {
            ApiError::field(
                &format!("{field}.{missing}"),
                format!(
                    "is required: the connection has no {field} yet, so the patch makes a whole one"
                ),
            )
        })?),
    })
}

/// What a PATCH of a private connection may name.
pub(crate) const PATCH: super::patch::Spec = super::patch::Spec {
    id_field: "privateConnectionId",
    fields: &[
        META[0],
        META[1],
        META[2],
        Field("trunkConnectionId", Required),
        Field("vlanId", Required),
        Field("ipv4Peering", To("null")),
        Field("ipv4Peering.peeringSubnet", Required),
        Field("ipv4Peering.peerIp", Required),
        Field("ipv4Peering.cloudIp", Required),
        Field("ipv4Peering.peerBgpAsn", Required),
        Field("ipv4Peering.peerBgpMd5Key", To("null")),
        Field("ipv6Peering", To("null")),
        Field("ipv6Peering.peeringSubnet", Required),
        Field("ipv6Peering.peerIp", Required),
        Field("ipv6Peering.cloudIp", Required),
        Field("ipv6Peering.peerBgpAsn", Required),
        Field("ipv6Peering.peerBgpMd5Key", To("null")),
        Field("ipv4StaticRoutes", To("[]")),
        Field("ipv6StaticRoutes", To("[]")),
        Field("ttlSecurity", To("null")),
        Field("bgpRole", To("null")),
        // Replaced whole (both timers given), or `null`.
        Field("bfd", To("null")),
    ],
    output_only: &[
        "id",
        "createdAt",
        "status",
        "ipv4Peering.cloudBgpAsn",
        "ipv6Peering.cloudBgpAsn",
        "bgpFailoverTests",
        "bgpSessionResets",
        "routingInstanceId",
        "bgp",
        "bgpIpv6",
        "bgpSessionOptions",
    ],
    immutable: &["folderId"],
};

pub async fn update(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiBody(body): ApiBody,
) -> ApiResult<Json<Value>> {
    let patch = super::patch::read::<UpdateRequest>(&body, &id, &PATCH)?;
    let _w = st.lock_writes().await?;
    let (old, view) = super::patch::fetch_for_update::<PrivateConnection>(&st, &who, &id).await?;
    patch.check_unchanged(&old)?;
    let req = patch.req;
    let mut pc = old.clone();
    let v4 = patched(
        "ipv4Peering",
        old.ipv4_peering.as_ref().map(Ipv4PeeringSpec::from),
        req.ipv4_peering,
        Ipv4PeeringPatch::apply,
        Ipv4PeeringPatch::complete,
    )?;
    let v6 = patched(
        "ipv6Peering",
        old.ipv6_peering.as_ref().map(Ipv6PeeringSpec::from),
        req.ipv6_peering,
        Ipv6PeeringPatch::apply,
        Ipv6PeeringPatch::complete,
    )?;
    let statics4 = req
        .ipv4_static_routes
        .unwrap_or_else(|| old.ipv4_static_routes.clone());
    let statics6 = req
        .ipv6_static_routes
        .unwrap_or_else(|| old.ipv6_static_routes.clone());
    let vlan = check_spec(
        &st,
        req.vlan_id.unwrap_or(u32::from(old.vlan_id)),
        &Spec {
            v4: v4.as_ref(),
            v6: v6.as_ref(),
            statics4: &statics4,
            statics6: &statics6,
        },
    )?;
    let trunk_id = req
        .trunk_connection_id
        .unwrap_or_else(|| old.trunk_connection_id.clone());
    pc.vlan_id = vlan;
    pc.ipv4_peering = v4.map(|p| p.with_cloud_asn(st.config.cloud_asn));
    pc.ipv6_peering = v6.map(|p| p.with_cloud_asn(st.config.cloud_asn));
    pc.ipv4_static_routes = statics4;
    pc.ipv6_static_routes = statics6;
    pc.trunk_connection_id = trunk_id.clone();
    if let Some(t) = req.ttl_security {
        pc.ttl_security = t;
    }
    if let Some(r) = req.bgp_role {
        pc.bgp_role = r;
    }
    if let Some(b) = req.bfd {
        // Judged when it changes: a Get sent back stays valid under new bounds.
        if b != old.bfd {
            check_bfd(&st, b.as_ref())?;
        }
        pc.bfd = b;
    }
    let subnet4 = |c: &PrivateConnection| c.ipv4_peering.as_ref().map(|p| p.peering_subnet);
    let subnet6 = |c: &PrivateConnection| c.ipv6_peering.as_ref().map(|p| p.peering_subnet);
    let moved = trunk_id != old.trunk_connection_id
        || subnet4(&pc) != subnet4(&old)
        || subnet6(&pc) != subnet6(&old);
    if moved && let Some(ri) = instance_of(&st, &id).await? {
        // Its routing instance's rules (one per PoP per VPC, disjoint subnets) were
        // checked for where it is now.
        return Err(ApiError::precondition(format!(
            "private connection {id} belongs to routing instance {ri}; remove it from there before changing its trunk or peering subnets"
        ))
        .into());
    }
    let new_trunk =
        check_placement(&st, &old.meta.folder_id, &trunk_id, vlan, Some(&id), false).await?;
    check_statics_in_instance(
        &st,
        &id,
        &fields_of(&pc.ipv4_static_routes, &pc.ipv6_static_routes),
    )
    .await?;
    super::patch::apply_meta::<PrivateConnection>(
        &st,
        &mut pc.meta,
        req.name,
        req.description,
        req.labels,
    )
    .await?;
    let config_changed = pc.trunk_connection_id != old.trunk_connection_id
        || pc.vlan_id != old.vlan_id
        || pc.ipv4_peering != old.ipv4_peering
        || pc.ipv6_peering != old.ipv6_peering
        || pc.ipv4_static_routes != old.ipv4_static_routes
        || pc.ipv6_static_routes != old.ipv6_static_routes
        || pc.ttl_security != old.ttl_security
        || pc.bgp_role != old.bgp_role
        || pc.bfd != old.bfd;
    let mut edges = Vec::new();
    if config_changed {
        pc.meta.status = Status::Updating;
        edges.push(new_trunk.edge_id.clone());
        if let Some(t) = st
            .store
            .get::<TrunkConnection>(&old.trunk_connection_id)
            .await?
        {
            edges.push(t.edge_id);
        }
    }
    write_one(
        &st,
        &who,
        &view,
        &pc,
        "Update private connection",
        Action::Update,
        edges,
    )
    .await
}

/// Presenting connections: each comes from the store with its trunk's edge and its
/// routing instance (one query for a page, [`cic_store::Store::list_after_in_context`]);
/// the live BGP state is the session in that edge's last report — decoded once per report,
/// not per request.
async fn present(
    st: &AppState,
    items: Vec<InContext<PrivateConnection>>,
) -> ApiResult<Vec<PrivateConnection>> {
    let mut edges: Vec<String> = items.iter().filter_map(|c| c.grandparent.clone()).collect();
    edges.sort();
    edges.dedup();
    let live = st.live_of(Some(&edges)).await?;
    let now = time::OffsetDateTime::now_utc();
    Ok(items
        .into_iter()
        .map(|c| {
            let mut pc = c.doc;
            if let Some(l) = c.grandparent.and_then(|e| live.get(&e)) {
                pc.bgp = l
                    .session_of(SessionKind::Customer, &pc.meta.id, Family::Ipv4)
                    .cloned();
                pc.bgp_ipv6 = l
                    .session_of(SessionKind::Customer, &pc.meta.id, Family::Ipv6)
                    .cloned();
            }
            for t in &mut pc.bgp_failover_tests {
                t.status = test_status(t, now).to_string();
            }
            pc.routing_instance_id = c.owner;
            pc.bgp_session_options = Some(BgpSessionOptions::of(&pc, &st.config.bgp));
            pc
        })
        .collect())
}

pub async fn list(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<super::KeyedPage<crate::access::Shown<PrivateConnection>>>> {
    let (folder, view) = list_scope(&st, &who, &q).await?;
    let page = q
        .fetch_in_context::<PrivateConnection>(
            &st,
            folder.as_deref(),
            rel::MEMBER,
            RoutingInstance::KIND,
        )
        .await?;
    let page = ListResponse {
        items: present(&st, page.items).await?,
        next_page_token: page.next_page_token,
    };
    Ok(Json(super::present_page(&view, page)))
}

/// `GET /cic/v1/trunkConnections/{id}/privateConnections`: the trunk's connections.
pub async fn of_trunk(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<super::PageQuery>,
) -> ApiResult<Json<Value>> {
    let (trunk, view) = fetch_for::<TrunkConnection>(&st, &who, &id, Need::Read).await?;
    let on_trunk = st
        .store
        .children::<PrivateConnection>(&trunk.meta.id)
        .await?;
    let page = super::page_by(
        &st,
        &q,
        PrivateConnection::KIND,
        &trunk.meta.id,
        on_trunk,
        |c| c.meta.id.clone(),
        false,
    )?;
    let ids: Vec<String> = page.items.iter().map(|c| c.meta.id.clone()).collect();
    let owners: HashMap<String, String> = st
        .store
        .linked_ids::<RoutingInstance>(rel::MEMBER, &ids)
        .await?
        .into_iter()
        .collect();
    let items = page
        .items
        .into_iter()
        .map(|c| InContext {
            grandparent: Some(trunk.edge_id.clone()),
            owner: owners.get(&c.meta.id).cloned(),
            doc: c,
        })
        .collect();
    let page = ListResponse {
        items: present(&st, items).await?,
        next_page_token: page.next_page_token,
    };
    Ok(Json(show_page(&view, PrivateConnection::KIND, page)))
}

/// The routing instance that holds private connection `pc`, by index.
pub(crate) async fn instance_of(st: &AppState, pc: &str) -> ApiResult<Option<String>> {
    Ok(st
        .store
        .linked_ids::<RoutingInstance>(rel::MEMBER, &[pc.to_string()])
        .await?
        .into_iter()
        .next()
        .map(|(_, ri)| ri))
}

pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    if let Some(pc) = id.strip_suffix(":routes") {
        let q = super::query_of(&uri)?;
        return super::looking_glass::routes(&st, &who, pc, q).await;
    }
    if let Some(pc) = id.strip_suffix(":diagnose") {
        let q = super::query_of(&uri)?;
        return super::looking_glass::diagnose(&st, &who, pc, q).await;
    }
    if let Some(pc) = id.strip_suffix(":routerConfig") {
        let q = super::query_of(&uri)?;
        let c = super::router_config::of_connection(&st, &who, pc, q).await?;
        return Ok(Json(serde_json::to_value(c.0).unwrap_or_default()));
    }
    if let Some(pc) = id.strip_suffix(":history") {
        let q = super::query_of(&uri)?;
        return history(&st, &who, pc, q).await;
    }
    if let Some((_, m)) = id.split_once(':') {
        return Err(ApiError::new(
            Code::NotFound,
            format!(
                "private connections have no GET method {m:?}; there are :routes, :routerConfig, :diagnose and :history"
            ),
        )
        .into());
    }
    if let Some(q) = uri.query().filter(|q| !q.is_empty()) {
        return Err(ApiError::new(
            Code::InvalidArgument,
            format!("query string {q:?}: a private connection's GET takes no parameters (…/{{id}}:routes, :routerConfig and :diagnose do)"),
        )
        .into());
    }
    let c = st
        .store
        .get_in_context::<PrivateConnection>(&id, rel::MEMBER, RoutingInstance::KIND)
        .await?
        .ok_or_else(|| not_found("private connection", &id))?;
    let view = st
        .access(&who, &c.doc.meta.folder_id, Need::Read, || {
            not_found("private connection", &id)
        })
        .await?;
    let shown = present(&st, vec![c]).await?;
    Ok(Json(view.show(&shown[0])))
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let _w = st.lock_writes().await?;
    let (mut pc, view) = fetch_for::<PrivateConnection>(&st, &who, &id, Need::Write).await?;
    let holder = st
        .store
        .linked::<RoutingInstance>(rel::MEMBER, &id)
        .await?
        .into_iter()
        .find(|r| r.meta.status != Status::Deleting);
    if let Some(r) = holder {
        return Err(ApiError::precondition(format!(
            "private connection {id} belongs to routing instance {}; remove it from there first",
            r.meta.id
        ))
        .into());
    }
    let trunk = pc.trunk_connection_id.clone();
    delete_on_trunk(&st, &who, &view, &mut pc, &trunk).await
}

/// Marks a connection (private or public) DELETING; its operation waits for the edge of
/// its trunk, and the connection goes when that edge has applied it.
pub(crate) async fn delete_on_trunk<T: super::Tenant>(
    st: &AppState,
    who: &Principal,
    view: &crate::access::View,
    c: &mut T,
    trunk: &str,
) -> ApiResult<Json<Value>> {
    let edge = st
        .store
        .get::<TrunkConnection>(trunk)
        .await?
        .map(|t| t.edge_id);
    c.meta_mut().status = Status::Deleting;
    write_one(
        st,
        who,
        view,
        c,
        &format!("Delete {}", super::title(T::KIND)),
        Action::Delete,
        edge.into_iter().collect(),
    )
    .await
}
