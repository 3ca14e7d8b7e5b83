//! The pages that read: folders, connections with their graphs and looking glass, other
//! resources, operations, the operator's page.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

// ---------------------------------------------------------------------------------------
// Reading

pub async fn home(State(c): C, ctx: Ctx) -> Response {
    let folders = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/resourcemanager/v1/folders", "folders").await
    );
    c.render(
        Some(&ctx),
        "home.html",
        json!({"title": "Folders", "folders": folders}),
    )
}

/// A folder's connections as the tables show them: the API's item plus the names the
/// table needs (its trunk's PoP, its routing instance).
fn connection_rows(pcs: &[Value], trunks: &[Value], instances: &[Value]) -> Vec<Value> {
    pcs.iter()
        .map(|pc| {
            let mut row = pc.clone();
            let id = s(pc, "id");
            if let Some(t) = trunks
                .iter()
                .find(|t| s(t, "id") == s(pc, "trunkConnectionId"))
            {
                row["pop"] = json!(s(t, "pointOfPresenceId"));
            }
            if let Some(ri) = instances.iter().find(|ri| {
                ri["cicPrivateConnectionInfo"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|r| s(r, "cicPrivateConnectionId") == id))
            }) {
                row["instance"] = json!({"id": s(ri, "id"), "name": s(ri, "name")});
            }
            row
        })
        .collect()
}

pub async fn folder(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    check_id!(c, ctx, id);
    let folder = try_api!(
        c,
        ctx,
        c.api(
            &ctx,
            Method::GET,
            &format!("/resourcemanager/v1/folders/{id}"),
            None
        )
        .await
    );
    let q = format!("?folderId={id}");
    let trunks = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cic/v1/trunkConnections{q}"),
            "trunkConnections"
        )
        .await
    );
    let pcs = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cic/v1/privateConnections{q}"),
            "privateConnections"
        )
        .await
    );
    let public = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cic/v1/publicConnections{q}"),
            "publicConnections"
        )
        .await
    );
    let instances = try_api!(
        c,
        ctx,
        list(
            &c,
            &ctx,
            &format!("/cloudrouter/v1/routingInstances{q}"),
            "routingInstances"
        )
        .await
    );
    let drawing = topology::draw(&trunks, &pcs, &instances);
    let rows = connection_rows(&pcs, &trunks, &instances);
    c.render(
        Some(&ctx),
        "folder.html",
        json!({
            "title": format!("Folder {}", s(&folder, "name")),
            "folder": folder,
            "trunks": trunks,
            "connections": rows,
            "public": public,
            "instances": instances,
            "topology": drawing,
            "can_write": can_write(&c, &ctx, &id).await,
        }),
    )
}

#[derive(Deserialize, Default)]
pub struct WindowQuery {
    window: Option<String>,
}

/// The connection's graphs over `window` (hour or day): its history from the API, with
/// its failover tests among the events.
async fn graphs(
    c: &Console,
    ctx: &Ctx,
    base: &str,
    pc: &Value,
    window: &str,
) -> Result<Value, Failure> {
    use crate::console::chart::{self, Series, Span};
    let h = c
        .api(
            ctx,
            Method::GET,
            &format!("{base}/{}:history?window={window}", s(pc, "id")),
            None,
        )
        .await?;
    let samples = h["samples"].as_array().cloned().unwrap_or_default();
    let mut events = h["events"].as_array().cloned().unwrap_or_default();
    for t in pc["bgpFailoverTests"].as_array().into_iter().flatten() {
        if let Some(at) = crate::clock::unix_ms(s(t, "startedAt")) {
            events.push(json!({"at": at, "kind": "FAILOVER_TEST",
                               "text": format!("failover test started by {}", s(t, "startedBy"))}));
        }
        if let Some(at) = t
            .get("stoppedAt")
            .and_then(Value::as_str)
            .and_then(crate::clock::unix_ms)
        {
            events
                .push(json!({"at": at, "kind": "FAILOVER_TEST", "text": "failover test stopped"}));
        }
    }
    events.sort_by_key(|e| e["at"].as_i64().unwrap_or_default());
    // Now, to the millisecond (events are stamped so; a span ending at the second would
    // leave out what happened in this one).
    let to = crate::clock::unix_now_ms();
    let span = Span {
        from: to
            - if window == "day" {
                86_400_000
            } else {
                3_600_000
            },
        to,
    };
    let mut charts = vec![
        chart::states(&samples, span),
        chart::lines(
            "prefixes",
            "Prefixes",
            &samples,
            span,
            &[
                Series {
                    label: "received",
                    class: "a",
                    field: "prefixesReceived",
                },
                Series {
                    label: "advertised",
                    class: "b",
                    field: "prefixesAdvertised",
                },
            ],
        ),
        chart::lines(
            "bits",
            "Traffic, bits per second",
            &samples,
            span,
            &[
                Series {
                    label: "to the cloud",
                    class: "a",
                    field: "bitsToCloud",
                },
                Series {
                    label: "from the cloud",
                    class: "b",
                    field: "bitsFromCloud",
                },
            ],
        ),
        chart::lines(
            "packets",
            "Packets per second",
            &samples,
            span,
            &[
                Series {
                    label: "to the cloud",
                    class: "a",
                    field: "packetsToCloud",
                },
                Series {
                    label: "from the cloud",
                    class: "b",
                    field: "packetsFromCloud",
                },
            ],
        ),
    ];
    for ch in &mut charts {
        chart::mark(ch, &events, span);
    }
    let listed: Vec<Value> = events
        .iter()
        .rev()
        .filter(|e| e["at"].as_i64().is_some_and(|t| t >= span.from))
        .take(20)
        .map(|e| {
            let mut e = e.clone();
            e["time"] = json!(crate::clock::of_unix(
                e["at"].as_i64().unwrap_or_default() / 1000
            ));
            e
        })
        .collect();
    Ok(json!({"window": window, "charts": charts, "events": listed}))
}

/// A private or public connection's page: its sessions, graphs, failover tests and
/// operations, and an editor's actions.
pub async fn connection(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(w): Query<WindowQuery>,
) -> Response {
    let (base, pc) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let folder = s(&pc, "folderId").to_string();
    let trunk_id = s(&pc, "trunkConnectionId");
    let trunk = if plain_id(trunk_id) {
        try_api!(
            c,
            ctx,
            c.get_opt(&ctx, &format!("/cic/v1/trunkConnections/{trunk_id}"))
                .await
        )
    } else {
        None
    };
    let instance = match pc
        .get("routingInstanceId")
        .and_then(Value::as_str)
        .filter(|ri| plain_id(ri))
    {
        Some(ri) => try_api!(
            c,
            ctx,
            c.get_opt(&ctx, &format!("/cloudrouter/v1/routingInstances/{ri}"))
                .await
        ),
        None => None,
    };
    let ops = try_api!(
        c,
        ctx,
        list(&c, &ctx, &format!("{base}/{id}/operations"), "operations").await
    );
    let testing = pc["bgpFailoverTests"]
        .as_array()
        .is_some_and(|a| a.iter().any(|t| s(t, "status") == "IN_PROGRESS"));
    let window = if w.window.as_deref() == Some("day") {
        "day"
    } else {
        "hour"
    };
    // A page without its graphs rather than no page, if the history cannot be had.
    let graphs = graphs(&c, &ctx, base, &pc, window).await.unwrap_or_else(
        |f| json!({"window": window, "charts": [], "events": [], "error": f.error.message}),
    );
    let noun = if kind == "publicConnections" {
        "Public connection"
    } else {
        "Private connection"
    };
    c.render(
        Some(&ctx),
        "connection.html",
        json!({
            "title": format!("{noun} {}", if s(&pc, "name").is_empty() { &id } else { s(&pc, "name") }),
            "kind": kind,
            "pc": pc,
            "trunk": trunk,
            "instance": instance,
            "operations": ops.iter().take(10).collect::<Vec<_>>(),
            "testing": testing,
            "graphs": graphs,
            "can_write": can_write(&c, &ctx, &folder).await,
        }),
    )
}

#[derive(Deserialize, Default)]
pub struct RoutesQuery {
    direction: Option<String>,
    family: Option<String>,
}

/// The looking glass of a private or public connection.
pub async fn routes(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<RoutesQuery>,
) -> Response {
    let (base, pc) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let direction = q
        .direction
        .as_deref()
        .filter(|d| ["received", "accepted", "advertised"].contains(d))
        .unwrap_or("received");
    let family = match q.family.as_deref() {
        Some("ipv6") => "ipv6",
        Some("ipv4") => "ipv4",
        // The family the connection has (an IPv6-only one has no IPv4 session).
        _ if pc.get("ipv4Peering").is_none() && pc.get("ipv6Peering").is_some() => "ipv6",
        _ => "ipv4",
    };
    let answer = c
        .api(
            &ctx,
            Method::GET,
            &format!("{base}/{id}:routes?direction={direction}&family={family}"),
            None,
        )
        .await;
    let (routes, error) = match answer {
        Ok(v) => (v, None),
        Err(f) if f.status == StatusCode::NOT_FOUND => return c.not_found(&ctx),
        Err(f) => (Value::Null, Some(f.error.message)),
    };
    c.render(
        Some(&ctx),
        "routes.html",
        json!({
            "title": format!("Routes of {id}"),
            "kind": kind,
            "pc": pc,
            "direction": direction,
            "family": family,
            "answer": routes,
            "error": error,
        }),
    )
}

pub async fn trunk(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    resource(c, ctx, id, "trunkConnections", "Trunk").await
}

pub async fn routing_instance(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    resource(c, ctx, id, "routingInstances", "Routing instance").await
}

/// A resource shown as its fields (trunks, public connections, routing instances), with
/// its operations, and for an editor its delete button (and a routing instance's form to
/// attach a connection).
async fn resource(c: Arc<Console>, ctx: Ctx, id: String, kind: &str, noun: &str) -> Response {
    let (base, v) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let ops = c
        .api(&ctx, Method::GET, &format!("{base}/{id}/operations"), None)
        .await
        .ok()
        .and_then(|v| v.get("operations").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let mut fields: Vec<(String, String)> = Vec::new();
    flatten("", &v, &mut fields);
    let folder = s(&v, "folderId").to_string();
    let writable = !folder.is_empty() && can_write(&c, &ctx, &folder).await;
    // A routing instance: the folder's connections it does not have yet.
    let mut attachable = Vec::new();
    if kind == "routingInstances" && writable {
        let have: Vec<&str> = v["cicPrivateConnectionInfo"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| s(r, "cicPrivateConnectionId"))
            .collect();
        let pcs = list(
            &c,
            &ctx,
            &format!("/cic/v1/privateConnections?folderId={folder}"),
            "privateConnections",
        )
        .await
        .unwrap_or_default();
        attachable = pcs
            .into_iter()
            .filter(|pc| !have.contains(&s(pc, "id")) && pc.get("routingInstanceId").is_none())
            .map(|pc| json!({"id": s(&pc, "id"), "name": s(&pc, "name")}))
            .collect();
    }
    c.render(
        Some(&ctx),
        "resource.html",
        json!({
            "title": format!("{noun} {}", if s(&v, "name").is_empty() { &id } else { s(&v, "name") }),
            "noun": noun,
            "kind": kind,
            "item": v,
            "fields": fields,
            "operations": ops.iter().take(10).collect::<Vec<_>>(),
            "can_write": writable,
            "attachable": attachable,
        }),
    )
}

/// `{"a": {"b": 1}}` → `a.b = 1`, for a resource's table of fields.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            out.push((
                prefix.to_string(),
                a.iter()
                    .map(|x| x.as_str().map(str::to_string).unwrap_or(x.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::String(x) => out.push((prefix.to_string(), x.clone())),
        Value::Null => {}
        x => out.push((prefix.to_string(), x.to_string())),
    }
}

pub async fn operation(State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    check_id!(c, ctx, id);
    let op = try_api!(
        c,
        ctx,
        c.api(&ctx, Method::GET, &format!("/operations/{id}"), None)
            .await
    );
    // Where the operation's resource is shown (ids name their kind by prefix).
    let rid = s(&op["metadata"], "resourceId");
    let resource = resource_page(rid);
    c.render(
        Some(&ctx),
        "operation.html",
        json!({"title": format!("Operation {id}"), "op": op, "resource": resource}),
    )
}

/// The console page of a resource, by its id's kind prefix.
fn resource_page(id: &str) -> Option<String> {
    let kind = match id.get(..2)? {
        "pc" => "privateConnections",
        "pu" => "publicConnections",
        "ri" => "routingInstances",
        "tc" => "trunkConnections",
        _ => return None,
    };
    plain_id(id).then(|| format!("/console/{kind}/{id}"))
}

pub async fn operator(State(c): C, ctx: Ctx) -> Response {
    if !ctx.is_operator() {
        return c.not_found(&ctx);
    }
    let pops = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/cic/v1/pointOfPresences", "pointOfPresences").await
    );
    let edges = try_api!(c, ctx, list(&c, &ctx, "/cic/v1/edges", "edges").await);
    let partners = try_api!(c, ctx, list(&c, &ctx, "/cic/v1/partners", "partners").await);
    let services = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/cic/v1/cloudServices", "cloudServices").await
    );
    let folders = try_api!(
        c,
        ctx,
        list(&c, &ctx, "/resourcemanager/v1/folders", "folders").await
    );
    // Each edge's report: how old, and how many of its sessions are up.
    let live = c.st.live().await.unwrap_or_default();
    let now = time::OffsetDateTime::now_utc();
    let edges: Vec<Value> = edges
        .into_iter()
        .map(|mut e| {
            if let Some(l) = live.get(s(&e, "id")) {
                let age =
                    crate::clock::parse(&l.reported_at).map(|t| (now - t).whole_seconds().max(0));
                let up = l
                    .report
                    .sessions
                    .iter()
                    .filter(|x| x.state == "ESTABLISHED")
                    .count();
                e["report"] = json!({
                    "ageSecs": age,
                    "appliedRevision": l.report.applied_revision,
                    "sessions": l.report.sessions.len(),
                    "established": up,
                    "errors": l.report.errors.len(),
                });
            }
            e
        })
        .collect();
    c.render(
        Some(&ctx),
        "operator.html",
        json!({
            "title": "Operator",
            "pops": pops,
            "edges": edges,
            "partners": partners,
            "services": services,
            "folders": folders,
        }),
    )
}

pub async fn not_found(State(c): C, ctx: Ctx) -> Response {
    c.not_found(&ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_reads_as_a_list_of_fields() {
        let mut out = Vec::new();
        flatten(
            "",
            &json!({"id": "x", "joint": {"port": "ge-0/0/1"}, "tags": ["a", "b"], "n": 3,
                    "vpc": [{"id": "net1"}]}),
            &mut out,
        );
        let get = |k: &str| out.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("joint.port"), Some("ge-0/0/1"));
        assert_eq!(get("tags"), Some("a, b"));
        assert_eq!(get("n"), Some("3"));
        assert_eq!(get("vpc[0].id"), Some("net1"));
    }
}
