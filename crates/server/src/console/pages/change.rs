//! The forms that change: create, edit, prefixes, delete, attach, failover tests; each is
//! checked for its CSRF token and becomes one API call whose errors go beside the fields.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};

use super::*;

// ---------------------------------------------------------------------------------------
// Changing

/// The fields of a new private connection; the trunks to choose from are the folder's.
fn connection_fields(trunks: &[Value]) -> Vec<Field> {
    vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens.").required(),
        Field::text("description", "Description", ""),
        Field::select(
            "trunkConnectionId",
            "Trunk",
            "The trunk that carries this connection.",
            trunks
                .iter()
                .map(|t| {
                    (
                        s(t, "id").to_string(),
                        format!(
                            "{} ({}, {})",
                            s(t, "name"),
                            s(t, "id"),
                            s(t, "pointOfPresenceId")
                        ),
                    )
                })
                .collect(),
        )
        .required(),
        Field::number(
            "vlanId",
            "VLAN",
            "2-4000, not used by another connection on the trunk.",
        )
        .required(),
        Field::text(
            "ipv4Peering.peeringSubnet",
            "IPv4 peering subnet",
            "A /30 or /31, e.g. 169.254.100.0/30.",
        )
        .required(),
        Field::text(
            "ipv4Peering.peerIp",
            "Your router's address",
            "Inside the subnet.",
        )
        .required(),
        Field::text(
            "ipv4Peering.cloudIp",
            "The cloud's address",
            "Inside the subnet.",
        )
        .required(),
        Field::number("ipv4Peering.peerBgpAsn", "Your BGP ASN", "1-4294967295.").required(),
        Field::secret(
            "ipv4Peering.peerBgpMd5Key",
            "BGP MD5 key",
            "Optional (TCP-MD5, RFC 2385).",
        ),
    ]
}

async fn folder_trunks(c: &Console, ctx: &Ctx, folder: &str) -> Result<Vec<Value>, Failure> {
    list(
        c,
        ctx,
        &format!("/cic/v1/trunkConnections?folderId={folder}"),
        "trunkConnections",
    )
    .await
}

/// A form's page: its title, where it posts, where Cancel leads, its fields.
struct FormPage<'a> {
    title: String,
    action: String,
    back: String,
    fields: &'a [Field],
}

impl FormPage<'_> {
    /// The form with `values`, and the API's errors beside the fields they name.
    fn show(
        &self,
        c: &Console,
        ctx: &Ctx,
        status: StatusCode,
        values: Map<String, Value>,
        failure: Option<Failure>,
    ) -> Response {
        let (errors, others, message) = match failure {
            Some(f) => {
                let message = f.error.message.clone();
                let (at, others) = forms::split_errors(f.field_errors(), self.fields);
                (at, others, Some(message))
            }
            None => (Map::new(), Vec::new(), None),
        };
        c.render_status(
            Some(ctx),
            status,
            "form.html",
            json!({
                "title": self.title,
                "action": self.action,
                "back": self.back,
                "fields": self.fields,
                "values": values,
                "errors": errors,
                "other_errors": others,
                "message": message,
            }),
        )
    }

    /// After the API answered the form sent: its operation's page, or the form again as
    /// it was sent, with what the API refused.
    fn answered(
        &self,
        c: &Console,
        ctx: &Ctx,
        answer: Result<Value, Failure>,
        form: &[(String, String)],
    ) -> Response {
        match answer {
            Ok(op) => to_operation(&op),
            Err(f) if f.status == StatusCode::BAD_REQUEST || f.status == StatusCode::CONFLICT => {
                self.show(c, ctx, f.status, forms::values(form, self.fields), Some(f))
            }
            Err(f) => c.failure(ctx, f),
        }
    }
}

/// What a folder's "New …" form makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewKind {
    Connection,
    Trunk,
    Instance,
}

impl NewKind {
    fn title(self) -> &'static str {
        match self {
            NewKind::Connection => "New private connection",
            NewKind::Trunk => "New trunk",
            NewKind::Instance => "New routing instance",
        }
    }

    /// The API collection it is created in.
    fn api(self) -> &'static str {
        match self {
            NewKind::Connection => "/cic/v1/privateConnections",
            NewKind::Trunk => "/cic/v1/trunkConnections",
            NewKind::Instance => "/cloudrouter/v1/routingInstances",
        }
    }

    /// The console's path under a folder.
    /// Its form's page in `folder`.
    fn page<'a>(self, folder: &str, fields: &'a [Field]) -> FormPage<'a> {
        FormPage {
            title: self.title().to_string(),
            action: format!("/console/folders/{folder}/{}", self.segment()),
            back: format!("/console/folders/{folder}"),
            fields,
        }
    }

    pub fn segment(self) -> &'static str {
        match self {
            NewKind::Connection => "privateConnections",
            NewKind::Trunk => "trunkConnections",
            NewKind::Instance => "routingInstances",
        }
    }

    async fn fields(self, c: &Console, ctx: &Ctx, folder: &str) -> Result<Vec<Field>, Failure> {
        Ok(match self {
            NewKind::Connection => connection_fields(&folder_trunks(c, ctx, folder).await?),
            NewKind::Trunk => {
                let pops = list(c, ctx, "/cic/v1/pointOfPresences", "pointOfPresences").await?;
                trunk_fields(&pops)
            }
            NewKind::Instance => {
                let pcs = list(
                    c,
                    ctx,
                    &format!("/cic/v1/privateConnections?folderId={folder}"),
                    "privateConnections",
                )
                .await?;
                instance_fields(&pcs)
            }
        })
    }
}

/// The capacities a trunk may have, as the API's schema lists them.
fn capacities() -> Vec<(String, String)> {
    let schema = serde_json::to_value(schemars::schema_for!(cic_model::resource::Capacity))
        .unwrap_or_default();
    let mut names: Vec<String> = schema["enum"]
        .as_array()
        .or_else(|| schema["oneOf"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v["const"].as_str().map(str::to_string))
                .or_else(|| v["enum"][0].as_str().map(str::to_string))
        })
        .collect();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            let label = n.trim_start_matches("CAPACITY_").replace('_', " ");
            (n, label)
        })
        .collect()
}

fn trunk_fields(pops: &[Value]) -> Vec<Field> {
    vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens.").required(),
        Field::text("description", "Description", ""),
        Field::select(
            "pointOfPresenceId",
            "Point of presence",
            "Where your router meets the cloud's.",
            pops.iter()
                .map(|p| {
                    let name = if s(p, "name").is_empty() {
                        s(p, "id")
                    } else {
                        s(p, "name")
                    };
                    (s(p, "id").to_string(), name.to_string())
                })
                .collect(),
        )
        .required(),
        Field::select("capacity", "Capacity", "", capacities()).required(),
        Field::text(
            "singlePortDirectJoint.portName",
            "Port (a direct joint)",
            "The cloud router's port your cross-connect lands on; or give a VXLAN peer below.",
        ),
        Field::text(
            "overlayJoint.remoteVtep",
            "Your VXLAN endpoint (an overlay joint)",
            "The IPv4 address of your router's VTEP.",
        ),
    ]
}

fn instance_fields(pcs: &[Value]) -> Vec<Field> {
    let mut options = vec![(String::new(), "(none yet)".to_string())];
    options.extend(pcs.iter().map(|pc| {
        let name = if s(pc, "name").is_empty() {
            s(pc, "id")
        } else {
            s(pc, "name")
        };
        (s(pc, "id").to_string(), name.to_string())
    }));
    vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens.").required(),
        Field::text("description", "Description", ""),
        Field::text(
            "vpcInfo[0].vpcNetworkId",
            "VPC network",
            "The VPC network to reach.",
        )
        .required(),
        Field::text(
            "vpcInfo[0].azInfos[0].azId",
            "Zone",
            "The VPC's availability zone.",
        )
        .required(),
        Field::list(
            "vpcInfo[0].azInfos[0].prefixes",
            "Prefixes",
            "The zone's prefixes announced to your routers, separated by commas or spaces.",
        )
        .errors_as("vpcInfo.azInfos.prefixes")
        .required(),
        Field::select(
            "cicPrivateConnectionInfo[0].cicPrivateConnectionId",
            "Private connection",
            "A connection to carry it (more can be attached later).",
            options,
        ),
    ]
}

/// `GET /console/folders/{id}/{kind}/new`.
pub async fn new_form(kind: NewKind, c: Arc<Console>, ctx: Ctx, folder: String) -> Response {
    check_id!(c, ctx, folder);
    let fields = try_api!(c, ctx, kind.fields(&c, &ctx, &folder).await);
    if !can_write(&c, &ctx, &folder).await {
        return c.error_page(
            Some(&ctx),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Creating in this folder needs the editor role.",
        );
    }
    kind.page(&folder, &fields)
        .show(&c, &ctx, StatusCode::OK, Map::new(), None)
}

/// `POST /console/folders/{id}/{kind}`: the API's create; its errors beside the fields.
pub async fn create(
    kind: NewKind,
    c: Arc<Console>,
    ctx: Ctx,
    headers: HeaderMap,
    folder: String,
    form: Vec<(String, String)>,
) -> Response {
    check_id!(c, ctx, folder);
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let fields = try_api!(c, ctx, kind.fields(&c, &ctx, &folder).await);
    let mut base = Map::new();
    base.insert("folderId".into(), json!(folder));
    let body = forms::body(&form, &fields, base);
    let answer = c.api(&ctx, Method::POST, kind.api(), Some(body)).await;
    kind.page(&folder, &fields)
        .answered(&c, &ctx, answer, &form)
}

/// What the edit form of a kind changes: name and description; a private connection's
/// VLAN and BFD timers too.
fn edit_fields(kind: &str) -> Vec<Field> {
    let mut f = vec![
        Field::text("name", "Name", "Lowercase letters, digits and hyphens."),
        Field::text("description", "Description", ""),
    ];
    if kind == "privateConnections" {
        f.extend([
            Field::number(
                "vlanId",
                "VLAN",
                "Change it on your router at the same time: the session moves to the new VLAN.",
            )
            .required(),
            Field::number(
                "bfd.minIntervalMs",
                "BFD interval (ms)",
                "Empty for the operator's default; at least the operator's minimum.",
            ),
            Field::number(
                "bfd.multiplier",
                "BFD multiplier",
                "Packets missed before the session is down (2-50).",
            ),
        ]);
    }
    f
}

/// The value of field path `name` (`bfd.multiplier`) in `v`, as a form shows it.
fn value_at(v: &Value, name: &str) -> Value {
    let mut at = v;
    for part in name.split('.') {
        at = &at[part];
    }
    match at {
        Value::Null => json!(""),
        Value::String(_) => at.clone(),
        other => json!(other.to_string()),
    }
}

/// `GET /console/{kind}/{id}/edit`: a private connection's, trunk's or routing instance's
/// name and description.
pub async fn edit_form(kind: &str, State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    let (_, v) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    if !can_write(&c, &ctx, s(&v, "folderId")).await {
        return c.error_page(
            Some(&ctx),
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Changing this folder's resources needs the editor role.",
        );
    }
    let fields = edit_fields(kind);
    let values: Map<String, Value> = fields
        .iter()
        .map(|f| (f.name.to_string(), value_at(&v, f.name)))
        .collect();
    edit_page(kind, &id, &fields).show(&c, &ctx, StatusCode::OK, values, None)
}

/// The edit form's page of resource `id` of `kind`.
fn edit_page<'a>(kind: &str, id: &str, fields: &'a [Field]) -> FormPage<'a> {
    FormPage {
        title: format!("Edit {id}"),
        action: format!("/console/{kind}/{id}/edit"),
        back: format!("/console/{kind}/{id}"),
        fields,
    }
}

/// `POST /console/{kind}/{id}/edit`: a PATCH of both fields (an emptied description is
/// cleared).
pub async fn edit(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let base = or_page!(base_of(&c, &ctx, kind, &id));
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let fields = edit_fields(kind);
    let mut body = forms::body(&form, &fields, Map::new());
    // Name and description as they stand (emptied: cleared); BFD back to the operator's
    // default when both timers are emptied.
    let mut mask = vec!["name", "description"];
    for k in ["name", "description"] {
        if body.get(k).is_none() {
            body[k] = json!("");
        }
    }
    if kind == "privateConnections" {
        mask.extend(["vlanId", "bfd"]);
        if body.get("bfd").is_none() {
            body["bfd"] = Value::Null;
        }
    }
    body["updateMask"] = json!(mask.join(","));
    let answer = c
        .api(&ctx, Method::PATCH, &format!("{base}/{id}"), Some(body))
        .await;
    edit_page(kind, &id, &fields).answered(&c, &ctx, answer, &form)
}

/// The fields of a routing instance's prefixes form: which VPC, add or remove, the zone,
/// the prefixes.
fn prefixes_fields(ri: &Value) -> Vec<Field> {
    let vpcs = ri["vpcInfo"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let id = s(v, "vpcNetworkId").to_string();
            (id.clone(), id)
        })
        .collect();
    vec![
        Field::select(
            "action",
            "Change",
            "",
            vec![
                ("upsertPrefixes".into(), "Add these prefixes".into()),
                ("removePrefixes".into(), "Remove these prefixes".into()),
            ],
        )
        .required(),
        Field::select("vpcNetworkId", "VPC network", "", vpcs).required(),
        Field::text("vpcAzInfoPrefixes[0].azId", "Zone", "").required(),
        Field::list(
            "vpcAzInfoPrefixes[0].prefixes",
            "Prefixes",
            "Separated by commas or spaces.",
        )
        .errors_as("vpcInfo.azInfos.prefixes")
        .required(),
    ]
}

/// `GET/POST /console/routingInstances/{id}/prefixes`: a VPC's prefixes added or removed
/// (`:upsertPrefixes`, `:removePrefixes`).
pub async fn prefixes_form(st: C, ctx: Ctx, id: Path<String>) -> Response {
    prefixes(st, ctx, Method::GET, HeaderMap::new(), id, None).await
}

pub async fn prefixes_post(
    st: C,
    ctx: Ctx,
    headers: HeaderMap,
    id: Path<String>,
    Form(form): FormData,
) -> Response {
    prefixes(st, ctx, Method::POST, headers, id, Some(form)).await
}

async fn prefixes(
    State(c): C,
    ctx: Ctx,
    method: Method,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Option<Vec<(String, String)>>,
) -> Response {
    check_id!(c, ctx, id);
    let ri = try_api!(
        c,
        ctx,
        c.api(
            &ctx,
            Method::GET,
            &format!("/cloudrouter/v1/routingInstances/{id}"),
            None
        )
        .await
    );
    let fields = prefixes_fields(&ri);
    let page = FormPage {
        title: format!(
            "Prefixes of {}",
            if s(&ri, "name").is_empty() {
                &id
            } else {
                s(&ri, "name")
            }
        ),
        action: format!("/console/routingInstances/{id}/prefixes"),
        back: format!("/console/routingInstances/{id}"),
        fields: &fields,
    };
    if method != Method::POST {
        return page.show(&c, &ctx, StatusCode::OK, Map::new(), None);
    }
    let form = form.unwrap_or_default();
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let what = form
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str())
        .filter(|v| ["upsertPrefixes", "removePrefixes"].contains(v))
        .unwrap_or("upsertPrefixes")
        .to_string();
    let body_fields: Vec<Field> = fields
        .iter()
        .filter(|f| f.name != "action")
        .cloned()
        .collect();
    let body = forms::body(&form, &body_fields, Map::new());
    let answer = c
        .api(
            &ctx,
            Method::POST,
            &format!("/cloudrouter/v1/routingInstances/{id}:{what}"),
            Some(body),
        )
        .await;
    page.answered(&c, &ctx, answer, &form)
}

/// `GET /console/{kind}/{id}/delete`: what is about to be deleted, and a button that does.
pub async fn confirm_delete(kind: &str, State(c): C, ctx: Ctx, Path(id): Path<String>) -> Response {
    let (_, v) = or_page!(fetch_of(&c, &ctx, kind, &id).await);
    let name = if s(&v, "name").is_empty() {
        id.as_str()
    } else {
        s(&v, "name")
    };
    c.render(
        Some(&ctx),
        "confirm.html",
        json!({
            "title": format!("Delete {name}?"),
            "message": format!("{name} ({id}) will be deleted: its sessions end and the edges remove what they made for it."),
            "action": format!("/console/{kind}/{id}/delete"),
            "back": format!("/console/{kind}/{id}"),
            "button": "Delete",
        }),
    )
}

/// `POST /console/{kind}/{id}/delete`.
pub async fn delete(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let base = or_page!(base_of(&c, &ctx, kind, &id));
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let op = try_api!(
        c,
        ctx,
        c.api(&ctx, Method::DELETE, &format!("{base}/{id}"), None)
            .await
    );
    to_operation(&op)
}

/// `POST /console/routingInstances/{id}/attach`: a private connection joins it.
pub async fn attach(
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    check_id!(c, ctx, id);
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let pc = form
        .iter()
        .find(|(k, _)| k == "cicPrivateConnectionId")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    match c
        .api(
            &ctx,
            Method::POST,
            &format!("/cloudrouter/v1/routingInstances/{id}:addPrivateConnection"),
            Some(json!({"cicPrivateConnectionId": pc})),
        )
        .await
    {
        Ok(op) => to_operation(&op),
        Err(f) if f.status == StatusCode::NOT_FOUND => c.not_found(&ctx),
        Err(f) => c.error_page(
            Some(&ctx),
            f.status,
            "The connection was not attached",
            &f.error.message,
        ),
    }
}

/// Starts or stops a private or public connection's failover test.
pub async fn failover_test(
    kind: &str,
    State(c): C,
    ctx: Ctx,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): FormData,
) -> Response {
    let base = or_page!(base_of(&c, &ctx, kind, &id));
    if let Some(r) = c.refuse_form(&ctx, &headers, &form) {
        return r;
    }
    let value = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let (method, body) = match value("action").as_str() {
        "start" => {
            let mut b = Map::new();
            let d = value("durationSeconds");
            if !d.is_empty() {
                b.insert(
                    "durationSeconds".into(),
                    d.parse::<u64>().map(Value::from).unwrap_or(json!(d)),
                );
            }
            ("startBgpFailoverTest", Value::Object(b))
        }
        "stop" => ("stopBgpFailoverTest", json!({})),
        _ => {
            return c.error_page(
                Some(&ctx),
                StatusCode::BAD_REQUEST,
                "Unknown action",
                "The form asked for neither start nor stop.",
            );
        }
    };
    match c
        .api(
            &ctx,
            Method::POST,
            &format!("{base}/{id}:{method}"),
            Some(body),
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/console/{kind}/{id}")).into_response(),
        Err(f) if f.status == StatusCode::NOT_FOUND => c.not_found(&ctx),
        Err(f) => c.error_page(
            Some(&ctx),
            f.status,
            "The failover test was not changed",
            &f.error.message,
        ),
    }
}
