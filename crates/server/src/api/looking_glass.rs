//! The looking glass: a session's received (with the reason for each refused route),
//! accepted and advertised routes. Routes live on the edge, so the server asks it: the
//! question waits for the edge's long poll (`/cic/v1/edgeSync/queries`), the edge
//! answers with `PUT …/queries/{id}`, and the caller gets that answer.
//!
//! Questions and answers go through the store, so with several servers behind a load
//! balancer the edge may poll any of them: the server asked writes the question, the one
//! the edge polls hands it out, the one it answers records the answer, and the asker reads
//! it. Waits are woken by this server's own writes and, on PostgreSQL, by LISTEN/NOTIFY
//! of every server's (`cic_question`, `cic_answer`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use cic_model::diagnose::{Diagnosis, Step};
use cic_model::edge::{Family, RouteAnswer, RouteDirection, RouteQuery, SessionFacts};
use cic_model::resource::{PrivateConnection, TrunkConnection};
use cic_model::{ApiError, Code};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{ApiQuery, fetch, fetch_for};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::error::{ApiJson, ApiResult};

/// How long a caller waits for the edge.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// A question older than this has no one waiting for it.
const FORGET_AFTER_SECS: i64 = 60;

/// Wakes this server's waiters: a question for an edge or an answer arrived (here, or
/// at another server, as PostgreSQL told us).
#[derive(Default)]
pub struct Broker {
    pub(crate) wake: Notify,
}

/// Waits until the broker is woken, at most until `deadline` and at most a second (in
/// case a wake-up was missed); `woken` was enabled before the caller last looked.
async fn nap(
    woken: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    deadline: tokio::time::Instant,
) {
    let now = tokio::time::Instant::now();
    let nap = deadline
        .saturating_duration_since(now)
        .min(Duration::from_secs(1));
    let _ = tokio::time::timeout(nap, woken).await;
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutesQuery {
    /// received (default), accepted or advertised.
    #[serde(default)]
    pub direction: Option<RouteDirection>,
    /// ipv4 or ipv6: which of the connection's sessions (default: its IPv4 one, or its
    /// only one).
    #[serde(default)]
    pub family: Option<Family>,
}

/// `GET /cic/v1/privateConnections/{id}:routes?direction=received|accepted|advertised`.
pub async fn routes(
    st: &AppState,
    who: &Principal,
    id: &str,
    q: RoutesQuery,
) -> ApiResult<Json<Value>> {
    let (pc, _) = fetch_for::<PrivateConnection>(st, who, id, Need::Read).await?;
    let families = Families {
        ipv4: pc.ipv4_peering.is_some(),
        ipv6: pc.ipv6_peering.is_some(),
    };
    routes_of(
        st,
        "private connection",
        "privateConnectionId",
        &pc.meta.id,
        &pc.trunk_connection_id,
        families,
        q,
    )
    .await
}

/// Which families a connection has sessions of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

/// The looking glass of connection `id` (a `noun`, named in the answer by `id_field`) on
/// trunk `trunk`, read by the caller already.
pub(crate) async fn routes_of(
    st: &AppState,
    noun: &str,
    id_field: &str,
    id: &str,
    trunk: &str,
    families: Families,
    q: RoutesQuery,
) -> ApiResult<Json<Value>> {
    let direction = q.direction.unwrap_or(RouteDirection::Received);
    let family = match q.family {
        Some(Family::Ipv4) if !families.ipv4 => {
            return Err(
                ApiError::field("family", format!("{noun} {id} has no ipv4Peering")).into(),
            );
        }
        Some(Family::Ipv6) if !families.ipv6 => {
            return Err(
                ApiError::field("family", format!("{noun} {id} has no ipv6Peering")).into(),
            );
        }
        Some(f) => f,
        None if !families.ipv4 => Family::Ipv6,
        None => Family::Ipv4,
    };
    let edge = fetch::<TrunkConnection>(st, trunk).await?.edge_id;
    let a = ask(
        st,
        &edge,
        RouteQuery {
            id: crate::new_id("lg"),
            connection_id: id.to_string(),
            family,
            direction,
            diagnose: false,
        },
    )
    .await?;
    if let Some(e) = a.error {
        return Err(ApiError::precondition(e).into());
    }
    Ok(Json(json!({
        id_field: id,
        "direction": direction,
        "routes": a.routes,
    })))
}

/// Puts `query` to `edge` and waits for its answer (at most [`ANSWER_WITHIN`]).
async fn ask(st: &AppState, edge: &str, query: RouteQuery) -> ApiResult<RouteAnswer> {
    let body = serde_json::to_string(&query).unwrap_or_default();
    st.store
        .put_route_query(&query.id, edge, &body, crate::clock::unix_now())
        .await?;
    st.queries.wake.notify_waiters();
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    let answer = loop {
        let woken = st.queries.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        match st.store.route_query_answer(&query.id).await {
            Ok(None) if tokio::time::Instant::now() < deadline => nap(woken, deadline).await,
            other => break other,
        }
    };
    st.store
        .drop_route_query(&query.id, crate::clock::unix_now() - FORGET_AFTER_SECS)
        .await?;
    match answer?.map(|a| serde_json::from_str(&a)) {
        Some(Ok(a)) => Ok(a),
        _ => Err(ApiError::new(
            Code::Unavailable,
            format!(
                "edge {edge} did not answer within {} s; what it sees of the connection cannot be shown now",
                ANSWER_WITHIN.as_secs()
            ),
        )
        .into()),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiagnoseQuery {
    /// ipv4 or ipv6: one of the connection's sessions (default: each it has).
    #[serde(default)]
    pub family: Option<Family>,
}

/// The answer of `:diagnose`: per session, the step of bringing it up that is missing.
#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiagnoseAnswer {
    pub private_connection_id: String,
    pub sessions: Vec<SessionDiagnosis>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDiagnosis {
    #[serde(flatten)]
    pub diagnosis: Diagnosis,
    /// What the edge sees, the diagnosis's input.
    pub facts: SessionFacts,
}

/// `GET /cic/v1/privateConnections/{id}:diagnose?family=`: from what the edge sees of
/// each session (the trunk's carrier, the peer's ARP / ND, TCP, the OPEN exchange,
/// prefixes), which step of bringing it up is missing and what to change.
pub async fn diagnose(
    st: &AppState,
    who: &Principal,
    id: &str,
    q: DiagnoseQuery,
) -> ApiResult<Json<Value>> {
    let (pc, _) = fetch_for::<PrivateConnection>(st, who, id, Need::Read).await?;
    let peerings: Vec<(Family, std::net::IpAddr, std::net::IpAddr, u32)> = pc
        .ipv4_peering
        .iter()
        .map(|p| {
            (
                Family::Ipv4,
                p.peer_ip.into(),
                p.cloud_ip.into(),
                p.peer_bgp_asn,
            )
        })
        .chain(pc.ipv6_peering.iter().map(|p| {
            (
                Family::Ipv6,
                p.peer_ip.into(),
                p.cloud_ip.into(),
                p.peer_bgp_asn,
            )
        }))
        .filter(|p| q.family.is_none_or(|f| f == p.0))
        .collect();
    if let (Some(f), true) = (q.family, peerings.is_empty()) {
        return Err(ApiError::field(
            "family",
            format!("private connection {id} has no {}Peering", f.name()),
        )
        .into());
    }
    let edge = fetch::<TrunkConnection>(st, &pc.trunk_connection_id)
        .await?
        .edge_id;
    let options = cic_model::resource::BgpSessionOptions::of(&pc, &st.config.bgp);
    let mut sessions = Vec::new();
    for (family, peer_ip, cloud_ip, peer_asn) in peerings {
        let a = ask(
            st,
            &edge,
            RouteQuery {
                id: crate::new_id("lg"),
                connection_id: pc.meta.id.clone(),
                family,
                direction: RouteDirection::Received,
                diagnose: true,
            },
        )
        .await?;
        let Some(facts) = a.facts else {
            return Err(ApiError::new(
                Code::Unavailable,
                format!("edge {edge} runs an older cic that cannot diagnose a connection"),
            )
            .into());
        };
        let ctx = cic_model::diagnose::Context {
            family,
            peer_ip,
            cloud_ip,
            vlan: pc.vlan_id,
            peer_asn,
            cloud_asn: st.config.cloud_asn,
            max_prefixes: st.config.bgp.max_prefixes,
            ttl_security: options.ttl_security,
            bgp_role: options.bgp_role,
        };
        let mut diagnosis = cic_model::diagnose::diagnose(&ctx, &facts);
        // A running failover test holds the session down on purpose: say that first.
        if let Some(t) = pc
            .bgp_failover_tests
            .last()
            .filter(|t| t.stopped_at.is_none() && diagnosis.step != Step::Ok)
        {
            diagnosis = Diagnosis {
                family,
                step: Step::FailoverTest,
                ok: false,
                summary: format!(
                    "a BGP failover test holds the session down until {}",
                    t.ends_at
                ),
                fix: Some("wait for its end, or stop it (`:stopBgpFailoverTest`)".into()),
                warnings: vec![],
            };
        }
        sessions.push(SessionDiagnosis {
            diagnosis,
            facts: *facts,
        });
    }
    Ok(Json(
        serde_json::to_value(DiagnoseAnswer {
            private_connection_id: pc.meta.id.clone(),
            sessions,
        })
        .unwrap_or_default(),
    ))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QueriesQuery {
    #[serde(default)]
    wait_seconds: u64,
}

/// `GET /cic/v1/edgeSync/queries?waitSeconds=N` (edge): its pending questions.
pub async fn queries(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<QueriesQuery>,
) -> ApiResult<Json<Value>> {
    let edge = who.edge_id()?.to_string();
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs(q.wait_seconds).min(st.config.max_wait);
    let mine = loop {
        let woken = st.queries.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let taken = st.store.take_route_queries(&edge).await?;
        if !taken.is_empty() || tokio::time::Instant::now() >= deadline {
            break taken;
        }
        nap(woken, deadline).await;
    };
    let queries: Vec<RouteQuery> = mine
        .iter()
        .filter_map(|b| serde_json::from_str(b).ok())
        .collect();
    Ok(Json(json!({ "queries": queries })))
}

/// `PUT /cic/v1/edgeSync/queries/{id}` (edge): the answer to one of its questions.
pub async fn answer(
    State(st): State<Arc<AppState>>,
    who: Principal,
    Path(id): Path<String>,
    ApiJson(a): ApiJson<RouteAnswer>,
) -> ApiResult<Json<Value>> {
    let edge = who.edge_id()?.to_string();
    let body = serde_json::to_string(&a).unwrap_or_default();
    if st.store.answer_route_query(&id, &edge, &body).await? {
        st.queries.wake.notify_waiters();
        Ok(Json(json!({})))
    } else {
        // Unknown, answered, timed out, or another edge's: nothing to do with it.
        Err(super::not_found("looking-glass query", &id))
    }
}
