//! Routing instances (Cloud Router): VPC prefixes and the private connections that reach
//! them.
//!
//! Every change (Create, Update, UpsertPrefixes, RemovePrefixes, AddPrivateConnection,
//! RemovePrivateConnection, UpdateNetworks) builds the desired instance and runs it
//! through the same checks ([`check_shape`], then [`check_in_store`] under the write
//! lock), so no method can produce an instance that Create would refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::resource::{
    CreateRoutingInstanceRequest, Edge, Labels, PrivateConnection, PrivateConnectionRef,
    RoutingInstance, Status, TrunkConnection, VpcInfo,
};
use cic_model::{ApiError, Code, validate};
use cic_store::{Action, Document, FabricSlot, rel};
use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::patch::{self, Clear::To, Field};
use super::{
    Mutation, check_meta, check_unique_name, fetch, fetch_for, finish_mutation, new_meta, write_one,
};
use crate::AppState;
use crate::access::{Need, View};
use crate::auth::Principal;
use crate::compile::slot_capacity;
use crate::error::{ApiJson, ApiResult, decode_json};

use cic_model::routing::{self as rules, AzPrefixes, NetworkSpec, check_shape};

/// What the checks against the store found: the member connections and the edges that
/// carry them.
struct Members {
    edges: BTreeSet<String>,
}

/// Checks of the desired instance against everything else (run under the write lock).
/// `this` is the instance being changed (None when creating); its current members may
/// stay whatever folder they are in, new ones must be in `folder`.
async fn check_in_store(
    st: &AppState,
    folder: &str,
    vpc_info: &[VpcInfo],
    conns: &[PrivateConnectionRef],
    this: Option<&RoutingInstance>,
) -> ApiResult<Members> {
    let this_id = this.map(|r| r.meta.id.as_str());
    // Another live instance that links to `target` by `rel` (by index).
    let other = async |rel: &str, target: &str| -> ApiResult<Option<RoutingInstance>> {
        Ok(st
            .store
            .linked::<RoutingInstance>(rel, target)
            .await?
            .into_iter()
            .find(|r| r.meta.status != Status::Deleting && Some(r.meta.id.as_str()) != this_id))
    };
    for v in vpc_info {
        if let Some(r) = other(rel::VPC, &v.vpc_network_id).await? {
            // Name the holder only to its own folder.
            let holder = if r.meta.folder_id == folder {
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
    let was_member = |id: &str| {
        this.is_some_and(|r| {
            r.cic_private_connection_info
                .iter()
                .any(|c| c.cic_private_connection_id == id)
        })
    };
    let mut members: Vec<PrivateConnection> = Vec::new();
    for (i, id) in conns
        .iter()
        .map(|c| &c.cic_private_connection_id)
        .enumerate()
    {
        let f = format!("cicPrivateConnectionInfo[{i}].cicPrivateConnectionId");
        // Another folder's connection is reported as missing (ids are not to be probed).
        let pc = fetch::<PrivateConnection>(st, id)
            .await
            .ok()
            .filter(|pc| pc.meta.folder_id == folder || was_member(id))
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
        if let Some(r) = other(rel::MEMBER, id).await? {
            return Err(ApiError::conflict(format!(
                "private connection {id} already belongs to routing instance {}",
                r.meta.id
            ))
            .into());
        }
        members.push(pc);
    }
    let trunk_ids: Vec<String> = members
        .iter()
        .map(|c| c.trunk_connection_id.clone())
        .collect();
    let trunks: BTreeMap<String, TrunkConnection> = st
        .store
        .get_many::<TrunkConnection>(&trunk_ids)
        .await?
        .into_iter()
        .map(|t| (t.meta.id.clone(), t))
        .collect();
    // They will share one routing table: peering subnets must not overlap (per family).
    let subnets = |c: &PrivateConnection| -> Vec<IpNet> {
        let v4 = c
            .ipv4_peering
            .as_ref()
            .map(|p| IpNet::from(p.peering_subnet));
        let v6 = c
            .ipv6_peering
            .as_ref()
            .map(|p| IpNet::from(p.peering_subnet));
        v4.into_iter().chain(v6).collect()
    };
    for (i, a) in members.iter().enumerate() {
        for b in &members[i + 1..] {
            for sa in subnets(a) {
                if let Some(sb) = subnets(b)
                    .into_iter()
                    .find(|sb| validate::overlaps(&sa, sb))
                {
                    return Err(ApiError::conflict(format!(
                        "private connections {} and {} have overlapping peering subnets ({sa} and {sb}) and cannot share a routing instance",
                        a.meta.id, b.meta.id
                    ))
                    .into());
                }
            }
        }
    }
    // A member's static routes must not take the instance's VPC traffic.
    let prefixes: Vec<IpNet> = vpc_info.iter().flat_map(|v| v.prefixes()).collect();
    for pc in &members {
        let statics = pc
            .ipv4_static_routes
            .iter()
            .map(|r| IpNet::from(r.prefix))
            .chain(pc.ipv6_static_routes.iter().map(|r| IpNet::from(r.prefix)));
        for r in statics {
            if let Some(v) = prefixes.iter().find(|v| validate::overlaps(*v, &r)) {
                return Err(ApiError::precondition(format!(
                    "static route {r} of private connection {} overlaps VPC prefix {v}; remove it first",
                    pc.meta.id
                ))
                .into());
            }
        }
    }
    // At most one private connection per VPC per point of presence.
    if !vpc_info.is_empty() {
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
    Ok(Members {
        edges: members
            .iter()
            .filter_map(|c| trunks.get(&c.trunk_connection_id))
            .map(|t| t.edge_id.clone())
            .collect(),
    })
}

/// A fabric slot of `edge` no instance holds, by index: the one after the highest in use,
/// or when the pool's end is reached, the first freed one below it (probed one by one) —
/// never a read of every slot of the edge.
async fn free_slot(st: &AppState, edge: &Edge) -> ApiResult<Option<u32>> {
    let capacity = slot_capacity(edge);
    let next = st
        .store
        .last_name::<FabricSlot>(&edge.id)
        .await?
        .and_then(|n| n.parse::<u32>().ok())
        .map_or(0, |n| n.saturating_add(1));
    if next < capacity {
        return Ok(Some(next));
    }
    for slot in 0..capacity {
        if !st
            .store
            .is_linked::<FabricSlot>(rel::SLOT, &rel::slot_key(&edge.id, slot))
            .await?
        {
            return Ok(Some(slot));
        }
    }
    Ok(None)
}

/// A free fabric slot of `edge` for `owner` (a routing instance or a public connection),
/// or why there is none.
pub(crate) async fn new_slot(st: &AppState, edge: &Edge, owner: &str) -> ApiResult<FabricSlot> {
    let slot = free_slot(st, edge).await?.ok_or_else(|| {
        ApiError::new(
            Code::ResourceExhausted,
            format!(
                "edge {} has no free fabric segment (transit pool exhausted)",
                edge.name
            ),
        )
    })?;
    Ok(FabricSlot {
        edge_id: edge.id.clone(),
        routing_instance_id: owner.to_string(),
        slot,
    })
}

/// Fabric segments for `ri` on `edges`: the ones to add (a free slot on each edge that
/// has none yet) and the ones to free (edges that no longer carry the instance).
async fn plan_slots(
    st: &AppState,
    ri: &str,
    edges: &BTreeSet<String>,
) -> ApiResult<(Vec<FabricSlot>, Vec<FabricSlot>)> {
    // By index: the instance's slots, and those of each edge it needs a new one on.
    let slots = st.store.children::<FabricSlot>(ri).await?;
    let mut add = Vec::new();
    for e in edges {
        if slots.iter().any(|s| &s.edge_id == e) {
            continue;
        }
        let edge = fetch::<Edge>(st, e).await?;
        add.push(new_slot(st, &edge, ri).await?);
    }
    let free = slots
        .into_iter()
        .filter(|s| !edges.contains(&s.edge_id))
        .collect();
    Ok((add, free))
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiJson(req): ApiJson<CreateRoutingInstanceRequest>,
) -> ApiResult<Json<Value>> {
    check_meta(&req.folder_id, &req.name, &req.description, &req.labels)?;
    let view = st.access_to_create(&who, &req.folder_id).await?;
    check_shape(
        &req.vpc_info,
        &req.cic_private_connection_info,
        st.config.max_prefixes_per_instance,
    )?;

    let _w = st.lock_writes().await?;
    let members = check_in_store(
        &st,
        &req.folder_id,
        &req.vpc_info,
        &req.cic_private_connection_info,
        None,
    )
    .await?;
    check_unique_name::<RoutingInstance>(&st, &req.folder_id, &req.name, None).await?;

    let ri = RoutingInstance {
        meta: new_meta("ri", req.folder_id, req.name, req.description, req.labels),
        vpc_info: req.vpc_info,
        cic_private_connection_info: req.cic_private_connection_info,
        deletion_protection: req.deletion_protection,
    };
    let (add, _) = plan_slots(&st, &ri.meta.id, &members.edges).await?;
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    for s in &add {
        tx.put_slot(s, rev).await?;
    }
    tx.put(&ri, rev).await?;
    let op = finish_mutation(
        &st,
        tx,
        rev,
        Mutation {
            description: "Create routing instance",
            created_by: &who.name(),
            kind: RoutingInstance::KIND,
            resource_id: &ri.meta.id,
            folder_id: &ri.meta.folder_id,
            action: Action::Create,
            edges: members.edges.into_iter().collect(),
        },
    )
    .await?;
    Ok(Json(view.show_operation(&op)))
}

/// `PATCH …/routingInstances/{id}`: name, description, labels, deletionProtection, and
/// (as the modelled API still allows) the whole vpcInfo / cicPrivateConnectionInfo —
/// under the PATCH rules of [`super::patch`].
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "UpdateRoutingInstanceRequest")]
pub struct UpdateRequest {
    // These two are documented in the schema; `patch::read` takes them out of the body.
    #[allow(dead_code)]
    #[serde(default)]
    routing_instance_id: Option<String>,
    /// The fields to change (`"name,vpcInfo"`); without it, the fields present.
    #[allow(dead_code)]
    #[serde(default)]
    update_mask: Option<String>,
    name: Option<String>,
    description: Option<String>,
    labels: Option<Labels>,
    deletion_protection: Option<bool>,
    vpc_info: Option<Vec<VpcInfo>>,
    cic_private_connection_info: Option<Vec<PrivateConnectionRef>>,
}

/// What a PATCH of a routing instance may name.
pub(crate) const PATCH: super::patch::Spec = super::patch::Spec {
    id_field: "routingInstanceId",
    fields: &[
        patch::META[0],
        patch::META[1],
        patch::META[2],
        Field("deletionProtection", To("false")),
        Field("vpcInfo", To("[]")),
        Field("cicPrivateConnectionInfo", To("[]")),
    ],
    output_only: &patch::META_OUTPUT,
    immutable: &["folderId"],
};

pub async fn update(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Value>> {
    let patch = patch::read::<UpdateRequest>(&body, &id, &PATCH)?;
    change(&st, &who, &id, "Update routing instance", move |ri| {
        patch.check_unchanged(&*ri)?;
        let req = patch.req;
        if let Some(n) = req.name {
            validate::name("name", &n)?;
            ri.meta.name = n;
        }
        if let Some(d) = req.description {
            validate::description("description", &d)?;
            ri.meta.description = d;
        }
        if let Some(l) = req.labels {
            validate::labels("labels", &l)?;
            ri.meta.labels = l;
        }
        if let Some(p) = req.deletion_protection {
            ri.deletion_protection = p;
        }
        if let Some(v) = req.vpc_info {
            ri.vpc_info = v;
        }
        if let Some(c) = req.cic_private_connection_info {
            ri.cic_private_connection_info = c;
        }
        Ok(())
    })
    .await
}

/// Prefixes of one VPC, per zone, as UpsertPrefixes/RemovePrefixes take them.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PrefixesRequest {
    #[serde(default)]
    routing_instance_id: Option<String>,
    vpc_network_id: String,
    #[serde(default)]
    vpc_az_info_prefixes: Vec<AzPrefixes>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConnectionRequest {
    #[serde(default)]
    routing_instance_id: Option<String>,
    cic_private_connection_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NetworksRequest {
    #[serde(default)]
    routing_instance_id: Option<String>,
    #[serde(default)]
    added_vpc_networks: Vec<NetworkSpec>,
    #[serde(default)]
    updated_vpc_networks: Vec<NetworkSpec>,
    #[serde(default)]
    deleted_vpc_network_ids: Vec<String>,
    /// Refuse to delete a VPC network the instance does not have (else ignore it).
    #[serde(default)]
    strict_remove: bool,
}

fn same_id(body: Option<&String>, id: &str) -> ApiResult<()> {
    super::same_id("routingInstanceId", body, id)
}

/// `POST …/routingInstances/{id}:method`.
pub async fn post_method(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id_method): Path<String>,
    crate::error::ApiBody(body): crate::error::ApiBody,
) -> ApiResult<Json<Value>> {
    let Some((id, method)) = id_method.split_once(':') else {
        return Err(ApiError::new(
            Code::NotFound,
            "POST on a routing instance needs a method, such as :upsertPrefixes",
        )
        .into());
    };
    match method {
        "upsertPrefixes" => {
            let r: PrefixesRequest = decode_json(&body)?;
            same_id(r.routing_instance_id.as_ref(), id)?;
            change(
                &st,
                &who,
                id,
                "Upsert routing instance prefixes",
                move |ri| {
                    Ok(rules::upsert_prefixes(
                        ri,
                        &r.vpc_network_id,
                        r.vpc_az_info_prefixes,
                    )?)
                },
            )
            .await
        }
        "removePrefixes" => {
            let r: PrefixesRequest = decode_json(&body)?;
            same_id(r.routing_instance_id.as_ref(), id)?;
            change(
                &st,
                &who,
                id,
                "Remove routing instance prefixes",
                move |ri| {
                    Ok(rules::remove_prefixes(
                        ri,
                        &r.vpc_network_id,
                        r.vpc_az_info_prefixes,
                    )?)
                },
            )
            .await
        }
        "addPrivateConnection" => {
            let r: ConnectionRequest = decode_json(&body)?;
            same_id(r.routing_instance_id.as_ref(), id)?;
            change(&st, &who, id, "Add private connection", move |ri| {
                Ok(rules::add_connection(ri, &r.cic_private_connection_id)?)
            })
            .await
        }
        "removePrivateConnection" => {
            let r: ConnectionRequest = decode_json(&body)?;
            same_id(r.routing_instance_id.as_ref(), id)?;
            change(&st, &who, id, "Remove private connection", move |ri| {
                Ok(rules::remove_connection(ri, &r.cic_private_connection_id)?)
            })
            .await
        }
        "updateNetworks" => {
            let r: NetworksRequest = decode_json(&body)?;
            same_id(r.routing_instance_id.as_ref(), id)?;
            change(
                &st,
                &who,
                id,
                "Update routing instance networks",
                move |ri| {
                    Ok(rules::update_networks(
                        ri,
                        r.added_vpc_networks,
                        r.updated_vpc_networks,
                        &r.deleted_vpc_network_ids,
                        r.strict_remove,
                    )?)
                },
            )
            .await
        }
        "move" => {
            super::post_method::<RoutingInstance>(
                State(st),
                who,
                Path(id_method.clone()),
                crate::error::ApiBody(body),
            )
            .await
        }
        other => Err(ApiError::new(
            Code::NotFound,
            format!("routing instances have no method {other:?}"),
        )
        .into()),
    }
}

/// Applies `edit` to routing instance `id` and, if the result passes every check of
/// Create, stores it (UPDATING until the edges that carried it or will carry it have
/// applied it).
async fn change(
    st: &AppState,
    who: &Principal,
    id: &str,
    description: &str,
    edit: impl FnOnce(&mut RoutingInstance) -> ApiResult<()>,
) -> ApiResult<Json<Value>> {
    let _w = st.lock_writes().await?;
    let (old, view) = fetch_for::<RoutingInstance>(st, who, id, Need::Write).await?;
    if old.meta.status == Status::Deleting {
        return Err(
            ApiError::precondition(format!("routing instance {id} is being deleted")).into(),
        );
    }
    let mut ri = old.clone();
    edit(&mut ri)?;
    check_shape(
        &ri.vpc_info,
        &ri.cic_private_connection_info,
        st.config.max_prefixes_per_instance,
    )?;
    if ri.meta.name != old.meta.name {
        check_unique_name::<RoutingInstance>(
            st,
            &ri.meta.folder_id,
            &ri.meta.name,
            Some(&ri.meta.id),
        )
        .await?;
    }
    let members = check_in_store(
        st,
        &ri.meta.folder_id,
        &ri.vpc_info,
        &ri.cic_private_connection_info,
        Some(&old),
    )
    .await?;
    let (add, free) = plan_slots(st, id, &members.edges).await?;
    // The edges that carry it now and the ones that will: all must apply the change.
    let mut edges: BTreeSet<String> = members.edges.clone();
    edges.extend(free.iter().map(|s| s.edge_id.clone()));
    edges.extend(
        st.store
            .children::<FabricSlot>(id)
            .await?
            .into_iter()
            .map(|s| s.edge_id),
    );
    let config_changed = ri.vpc_info != old.vpc_info
        || ri.cic_private_connection_info != old.cic_private_connection_info;
    if config_changed {
        ri.meta.status = Status::Updating;
    }
    let mut tx = st.store.begin().await?;
    let rev = tx.bump_revision().await?;
    for s in &add {
        tx.put_slot(s, rev).await?;
    }
    for s in &free {
        tx.delete::<FabricSlot>(&FabricSlot::key(&s.edge_id, &s.routing_instance_id))
            .await?;
    }
    tx.put(&ri, rev).await?;
    let op = finish_mutation(
        st,
        tx,
        rev,
        Mutation {
            description,
            created_by: &who.name(),
            kind: RoutingInstance::KIND,
            resource_id: id,
            folder_id: &ri.meta.folder_id,
            action: Action::Update,
            // Metadata only: nothing for an edge to apply.
            edges: if config_changed {
                edges.into_iter().collect()
            } else {
                vec![]
            },
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
        .children::<FabricSlot>(&id)
        .await?
        .into_iter()
        .map(|s| s.edge_id)
        .collect();
    ri.meta.status = Status::Deleting;
    write_one(
        &st,
        &who,
        &view,
        &ri,
        "Delete routing instance",
        Action::Delete,
        edges,
    )
    .await
}

/// `GET …/routingInstances:getByVpcNetworkId/{vpc}`.
pub async fn get_by_vpc(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(vpc): Path<String>,
) -> ApiResult<Json<Value>> {
    find_one(
        &st,
        &who,
        &format!("routing instance of VPC network {vpc:?}"),
        rel::VPC,
        &vpc,
    )
    .await
}

/// `GET …/routingInstances:getByCicPrivateConnectionId/{id}`.
pub async fn get_by_connection(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(pc): Path<String>,
) -> ApiResult<Json<Value>> {
    find_one(
        &st,
        &who,
        &format!("routing instance of private connection {pc:?}"),
        rel::MEMBER,
        &pc,
    )
    .await
}

/// The one instance that links to `target` by `rel` (by index) that the caller may read;
/// otherwise 404.
async fn find_one(
    st: &AppState,
    who: &Principal,
    what: &str,
    rel: &str,
    target: &str,
) -> ApiResult<Json<Value>> {
    who.require_user()?;
    let missing = || nothing(what);
    let ri = st
        .store
        .linked::<RoutingInstance>(rel, target)
        .await?
        .into_iter()
        .next()
        .ok_or_else(missing)?;
    let view: View = st
        .access(who, &ri.meta.folder_id, Need::Read, missing)
        .await?;
    Ok(Json(view.show(&ri)))
}

fn nothing(what: &str) -> crate::error::AppError {
    crate::error::AppError(ApiError::new(Code::NotFound, format!("{what} not found")))
}

/// `GET /cloudrouter/v1/routingInstances/{id}`, and `…/{id}:routerConfig`.
pub async fn get(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> ApiResult<Json<Value>> {
    if let Some(ri) = id.strip_suffix(":routerConfig") {
        let q = super::query_of(&uri)?;
        let c = super::router_config::of_instance(&st, &who, ri, q).await?;
        return Ok(Json(serde_json::to_value(c.0).unwrap_or_default()));
    }
    if let Some((_, m)) = id.split_once(':') {
        return Err(ApiError::new(
            cic_model::Code::NotFound,
            format!("routing instances have no GET method {m:?}; there is :routerConfig"),
        )
        .into());
    }
    super::get_one::<RoutingInstance>(State(st), who, Path(id)).await
}
