//! A private connection's static routes, added and removed by their own methods
//! (`:upsertStaticRoutes`, `:removeStaticRoutes`) within the rules of create.

use axum::Json;
use cic_model::resource::{
    Ipv6StaticRoute, PrivateConnection, StaticRoute, Status, TrunkConnection,
};
use cic_model::{ApiError, validate};
use cic_store::Action;

use super::connections::{check_statics_in_instance, fields_of, needs_family};
use super::{fetch, fetch_for, write_one};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::ApiResult;
use serde::Deserialize;
use serde_json::Value;

/// Body of `:upsertStaticRoutes` and `:removeStaticRoutes`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StaticRoutesRequest {
    #[serde(default)]
    private_connection_id: Option<String>,
    #[serde(default)]
    ipv4_static_routes: Vec<StaticRoute>,
    #[serde(default)]
    ipv6_static_routes: Vec<Ipv6StaticRoute>,
}

/// One family's routes after an upsert (adds the ones not there) or a remove (each must
/// be there); the quota holds for the result.
fn merge_routes<R: Clone + PartialEq>(
    field: &str,
    id: &str,
    old: &[R],
    asked: &[R],
    upsert: bool,
    max: usize,
    show: impl Fn(&R) -> String,
) -> ApiResult<Vec<R>> {
    let mut routes = old.to_vec();
    for (i, r) in asked.iter().enumerate() {
        let there = routes.contains(r);
        if upsert && !there {
            routes.push(r.clone());
        } else if !upsert && !there {
            return Err(ApiError::field(
                &format!("{field}[{i}].prefix"),
                format!(
                    "{} is not a static route of private connection {id}",
                    show(r)
                ),
            )
            .into());
        }
    }
    if !upsert {
        routes.retain(|r| !asked.contains(r));
    }
    if routes.len() > max {
        return Err(ApiError::field(
            field,
            format!(
                "would make {} routes; the quota is {max} per private connection",
                routes.len()
            ),
        )
        .into());
    }
    Ok(routes)
}

/// `POST …/privateConnections/{id}:upsertStaticRoutes` (adds the routes not there yet)
/// and `:removeStaticRoutes` (each named route must be there), of either family.
pub(super) async fn static_routes(
    st: &AppState,
    who: &Principal,
    id: &str,
    upsert: bool,
    body: &[u8],
) -> ApiResult<Json<Value>> {
    let req: StaticRoutesRequest = crate::error::decode_json(body)?;
    super::same_id(
        "privateConnectionId",
        req.private_connection_id.as_ref(),
        id,
    )?;
    if req.ipv4_static_routes.is_empty() && req.ipv6_static_routes.is_empty() {
        return Err(ApiError::field(
            "ipv4StaticRoutes",
            "names no route (nor does ipv6StaticRoutes)",
        )
        .into());
    }
    let max = st.config.max_static_routes_per_connection;
    let asked: Vec<_> = req.ipv4_static_routes.iter().map(|r| r.prefix).collect();
    validate::static_routes("ipv4StaticRoutes", &asked, max)?;
    let asked: Vec<_> = req.ipv6_static_routes.iter().map(|r| r.prefix).collect();
    validate::static_routes("ipv6StaticRoutes", &asked, max)?;
    let _w = st.lock_writes().await?;
    let (old, view) = fetch_for::<PrivateConnection>(st, who, id, Need::Write).await?;
    if old.meta.status == Status::Deleting {
        return Err(
            ApiError::precondition(format!("private connection {id} is being deleted")).into(),
        );
    }
    if upsert {
        needs_family(
            !req.ipv4_static_routes.is_empty(),
            old.ipv4_peering.is_some(),
            !req.ipv6_static_routes.is_empty(),
            old.ipv6_peering.is_some(),
        )?;
    }
    let routes4 = merge_routes(
        "ipv4StaticRoutes",
        id,
        &old.ipv4_static_routes,
        &req.ipv4_static_routes,
        upsert,
        max,
        |r| r.prefix.to_string(),
    )?;
    let routes6 = merge_routes(
        "ipv6StaticRoutes",
        id,
        &old.ipv6_static_routes,
        &req.ipv6_static_routes,
        upsert,
        max,
        |r| r.prefix.to_string(),
    )?;
    check_statics_in_instance(
        st,
        id,
        &fields_of(&req.ipv4_static_routes, &req.ipv6_static_routes),
    )
    .await?;
    let mut pc = old.clone();
    let mut edges = Vec::new();
    if routes4 != old.ipv4_static_routes || routes6 != old.ipv6_static_routes {
        pc.ipv4_static_routes = routes4;
        pc.ipv6_static_routes = routes6;
        pc.meta.status = Status::Updating;
        edges.push(
            fetch::<TrunkConnection>(st, &pc.trunk_connection_id)
                .await?
                .edge_id,
        );
    }
    let what = if upsert { "Upsert" } else { "Remove" };
    write_one(
        st,
        who,
        &view,
        &pc,
        &format!("{what} static routes of private connection"),
        Action::Update,
        edges,
    )
    .await
}
