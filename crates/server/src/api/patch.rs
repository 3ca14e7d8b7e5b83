//! PATCH, the same way for every resource:
//!
//! - **Without `updateMask`** the fields present change and the others stay. A nested
//!   object (a private connection's `ipv4Peering`) is merged the same way: the fields it
//!   holds change, the rest of it stays — so a client may change the ASN without sending
//!   the MD5 key. Lists (`ipv4StaticRoutes`, `vpcInfo`) and maps (`labels`) are replaced
//!   whole.
//! - **With `updateMask`** (the modelled API's FieldMask: camelCase paths separated by
//!   commas, `"description,ipv4Peering.peerAsn"`; snake_case paths and `{"paths": […]}`
//!   are read too) only the named fields change; others in the body are ignored (but
//!   must still be valid). A named field the body leaves out is cleared: to its empty
//!   value (`""`, `{}`, `[]`, `false`), the MD5 key to none, and a field that cannot be
//!   empty (`vlanId`) is refused. An unknown path is a 400 that lists the paths.
//! - **Secrets**: the mask a secret is shown as (`"********"`), written back, means
//!   "unchanged" — read-modify-write never stores the mask. `null` or `""` removes the
//!   key: removal is explicit.
//! - A resource read with GET may be sent back as it is: the id (which must be the one in
//!   the path), output-only fields (`status`, `createdAt`, `bgp`,
//!   `ipv4Peering.cloudBgpAsn`, …) are ignored, and fields that cannot change after
//!   Create (`folderId`, a trunk's `capacity` and joint, …) must hold their current value
//!   — a different one is a 400 naming the field (`folderId`: use `:move`).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use cic_model::ApiError;
use cic_model::resource::Meta;
use cic_store::Document;

use super::{check_unique_name, fetch_for, title};
use crate::AppState;
use crate::access::{Need, View};
use crate::auth::Principal;
use crate::error::{ApiResult, from_value, parse_body};

/// What a masked field the body leaves out becomes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clear {
    /// This JSON value (the field's empty value).
    To(&'static str),
    /// Nothing: the field cannot be empty.
    Required,
}

/// A path a PATCH of a kind may name, in the modelled form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field(pub &'static str, pub Clear);

use Clear::{Required, To};

/// The metadata every tenant resource's PATCH may change.
pub(crate) const META: [Field; 3] = [
    Field("name", To("\"\"")),
    Field("description", To("\"\"")),
    Field("labels", To("{}")),
];

/// What a kind's PATCH may hold.
pub(crate) struct Spec {
    /// The resource's id as the body may repeat it (`privateConnectionId`).
    pub id_field: &'static str,
    /// What may change.
    pub fields: &'static [Field],
    /// What a GET shows that changes on its own: ignored (paths, `a.b` for nested).
    pub output_only: &'static [&'static str],
    /// What cannot change after Create: accepted only with its current value.
    pub immutable: &'static [&'static str],
}

/// A PATCH as read: the request, and the immutable fields it repeated, to be compared
/// with the resource ([`Patch::check_unchanged`]) once it is fetched.
pub(crate) struct Patch<T> {
    pub req: T,
    fixed: Vec<(&'static str, Value)>,
}

impl<T> Patch<T> {
    /// Refuses the PATCH if it gives an immutable field a value other than `current`'s.
    pub fn check_unchanged<R: serde::Serialize>(&self, current: &R) -> ApiResult<()> {
        let cur = serde_json::to_value(current).unwrap_or(Value::Null);
        for (field, given) in &self.fixed {
            let now = cur.get(*field).cloned().unwrap_or(Value::Null);
            if !same(given, &now) {
                let how = if *field == "folderId" {
                    " (:move moves a resource to another folder)"
                } else {
                    ""
                };
                return Err(ApiError::field(
                    field,
                    format!("cannot be changed after the resource is created{how}"),
                )
                .into());
            }
        }
        Ok(())
    }
}

/// Two JSON values alike, int64 fields read either way (`"100"` and `100`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
        }
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            n.to_string() == *s
        }
        _ => a == b,
    }
}

/// The output-only fields of every tenant resource.
pub(crate) const META_OUTPUT: [&str; 3] = ["id", "createdAt", "status"];

/// A PATCH body as `T`, under the rules above.
pub(crate) fn read<T: DeserializeOwned>(body: &[u8], id: &str, spec: &Spec) -> ApiResult<Patch<T>> {
    let Spec {
        id_field,
        fields,
        output_only,
        immutable,
    } = *spec;
    let Value::Object(mut m) = parse_body(body)? else {
        return Err(ApiError::new(
            cic_model::Code::InvalidArgument,
            "request body must be a JSON object of the fields to change",
        )
        .into());
    };
    let mask = m.remove("updateMask");
    for id_key in [id_field, "id"] {
        match m.remove(id_key) {
            None => {}
            Some(Value::String(s)) if s == id => {}
            Some(_) => {
                return Err(ApiError::field(id_key, "differs from the id in the path").into());
            }
        }
    }
    for p in output_only {
        match p.split_once('.') {
            None => {
                m.remove(*p);
            }
            Some((a, b)) => {
                if let Some(Value::Object(o)) = m.get_mut(a) {
                    o.remove(b);
                }
            }
        }
    }
    let fixed: Vec<(&'static str, Value)> = immutable
        .iter()
        .filter_map(|f| m.remove(*f).map(|v| (*f, v)))
        .collect();
    // Every field must be valid, masked or not: a typo is an error, not ignored.
    let all: T = from_value(Value::Object(m.clone()))?;
    let req = match mask_paths(mask, fields)? {
        None => all,
        Some(paths) => from_value(Value::Object(masked(&m, &paths, fields)?))?,
    };
    Ok(Patch { req, fixed })
}

/// The paths of `updateMask` (None: no mask, or an empty one, which means "the fields
/// present", as in the modelled API).
fn mask_paths(mask: Option<Value>, fields: &[Field]) -> ApiResult<Option<Vec<String>>> {
    let raw: Vec<String> = match mask {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
        Some(Value::Array(a)) => strings(a)?,
        Some(Value::Object(mut o)) if o.len() == 1 && o.contains_key("paths") => {
            match o.remove("paths") {
                Some(Value::Array(a)) => strings(a)?,
                _ => return Err(mask_error("its paths must be a list of strings")),
            }
        }
        Some(_) => {
            return Err(mask_error(
                "must be a string of field paths separated by commas, such as \"name,description\"",
            ));
        }
    };
    let raw: Vec<String> = raw.into_iter().filter(|p| !p.is_empty()).collect();
    if raw.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for p in raw {
        let camel = camel_path(&p);
        if !fields.iter().any(|f| f.0 == camel) {
            let known: Vec<&str> = fields.iter().map(|f| f.0).collect();
            return Err(mask_error(&format!(
                "{p:?} is not a field that can be changed here; the fields are {}",
                known.join(", ")
            )));
        }
        if !out.contains(&camel) {
            out.push(camel);
        }
    }
    Ok(Some(out))
}

fn strings(a: Vec<Value>) -> ApiResult<Vec<String>> {
    a.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s),
            _ => Err(mask_error("its paths must be strings")),
        })
        .collect()
}

fn mask_error(description: &str) -> crate::error::AppError {
    ApiError::field("updateMask", description).into()
}

/// `ipv4_peering.peer_bgp_md5_key` → `ipv4Peering.peerBgpMd5Key`; camelCase stays.
fn camel_path(p: &str) -> String {
    p.split('.')
        .map(|seg| {
            let mut out = String::new();
            let mut up = false;
            for c in seg.chars() {
                if c == '_' {
                    up = true;
                } else if up {
                    out.extend(c.to_uppercase());
                    up = false;
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The body cut down to the masked `paths`, with those it leaves out cleared.
fn masked(
    body: &Map<String, Value>,
    paths: &[String],
    fields: &[Field],
) -> ApiResult<Map<String, Value>> {
    let mut out = Map::new();
    for p in paths {
        let clear = fields
            .iter()
            .find(|f| f.0 == p)
            .map(|f| f.1)
            .unwrap_or(Required);
        let (parent, leaf) = match p.split_once('.') {
            Some((a, b)) => (Some(a), b),
            None => (None, p.as_str()),
        };
        let given = match parent {
            None => body.get(leaf),
            Some(a) => body.get(a).and_then(|o| o.get(leaf)),
        };
        let value = match (given, clear) {
            (Some(v), _) => v.clone(),
            (None, To(empty)) => serde_json::from_str(empty).unwrap_or(Value::Null),
            (None, Required) => {
                return Err(ApiError::field(
                    p,
                    "is named in updateMask but not given; it cannot be cleared",
                )
                .into());
            }
        };
        match parent {
            None => {
                out.insert(leaf.to_string(), value);
            }
            Some(a) => {
                let o = out
                    .entry(a.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(o) = o
                    && !o.contains_key(leaf)
                {
                    o.insert(leaf.to_string(), value);
                }
            }
        }
    }
    Ok(out)
}

/// The resource a PATCH changes, if `who` may change it and it is not being deleted.
pub(crate) async fn fetch_for_update<T: super::Tenant>(
    st: &AppState,
    who: &Principal,
    id: &str,
) -> ApiResult<(T, View)> {
    let (x, view) = fetch_for::<T>(st, who, id, Need::Write).await?;
    if x.meta().status == cic_model::resource::Status::Deleting {
        return Err(
            ApiError::precondition(format!("{} {id} is being deleted", title(T::KIND))).into(),
        );
    }
    Ok((x, view))
}

/// The metadata fields of a PATCH applied to `meta`, each checked as Create checks it (a
/// new name must be free in the folder).
pub(crate) async fn apply_meta<T: Document>(
    st: &AppState,
    meta: &mut Meta,
    name: Option<String>,
    description: Option<String>,
    labels: Option<cic_model::resource::Labels>,
) -> ApiResult<()> {
    use cic_model::validate;
    if let Some(n) = name.filter(|n| *n != meta.name) {
        validate::name("name", &n)?;
        check_unique_name::<T>(st, &meta.folder_id, &n, Some(&meta.id)).await?;
        meta.name = n;
    }
    if let Some(d) = description {
        validate::description("description", &d)?;
        meta.description = d;
    }
    if let Some(l) = labels {
        validate::labels("labels", &l)?;
        meta.labels = l;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Req {
        name: Option<String>,
        description: Option<String>,
        vlan_id: Option<u32>,
        peering: Option<Map<String, Value>>,
    }

    const FIELDS: [Field; 6] = [
        Field("name", To("\"\"")),
        Field("description", To("\"\"")),
        Field("vlanId", Required),
        Field("peering", Required),
        Field("peering.key", To("null")),
        Field("peering.asn", Required),
    ];

    const SPEC: Spec = Spec {
        id_field: "thingId",
        fields: &FIELDS,
        output_only: &["status", "peering.out"],
        immutable: &["folderId", "capacity"],
    };

    fn read_req(body: &str) -> Result<Req, ApiError> {
        read::<Req>(body.as_bytes(), "t1", &SPEC)
            .map(|p| p.req)
            .map_err(|e| e.0)
    }

    #[test]
    fn without_a_mask_the_fields_present_change() {
        let r = read_req(r#"{"description": "d2", "vlanId": 120}"#).expect("read");
        assert_eq!(r.description.as_deref(), Some("d2"));
        assert_eq!(r.vlan_id, Some(120));
        assert_eq!(r.name, None);
        let r = read_req(r#"{"updateMask": "", "name": "n"}"#).expect("empty mask");
        assert_eq!(r.name.as_deref(), Some("n"));
    }

    #[test]
    fn with_a_mask_only_the_masked_fields_change() {
        let r = read_req(r#"{"updateMask": "description", "description": "d2", "vlanId": 120}"#)
            .expect("read");
        assert_eq!(
            r,
            Req {
                description: Some("d2".into()),
                ..Req::default()
            }
        );
        // Snake case, the paths object and a list are read too.
        for mask in [r#""vlan_id""#, r#"{"paths": ["vlanId"]}"#, r#"["vlanId"]"#] {
            let r = read_req(&format!(
                r#"{{"updateMask": {mask}, "description": "x", "vlanId": 7}}"#
            ))
            .expect(mask);
            assert_eq!(
                r,
                Req {
                    vlan_id: Some(7),
                    ..Req::default()
                },
                "{mask}"
            );
        }
    }

    #[test]
    fn a_masked_field_left_out_is_cleared_or_refused() {
        let r = read_req(r#"{"updateMask": "name,description"}"#).expect("read");
        assert_eq!(r.name.as_deref(), Some(""));
        assert_eq!(r.description.as_deref(), Some(""));
        let e = read_req(r#"{"updateMask": "vlanId"}"#).unwrap_err();
        assert_eq!(e.details[0].field, "vlanId");
        // A nested leaf: the key left out is removed (null), the ASN cannot be.
        let r = read_req(r#"{"updateMask": "peering.key", "peering": {"asn": 5}}"#).expect("read");
        assert_eq!(r.peering.expect("peering").get("key"), Some(&Value::Null));
        let e = read_req(r#"{"updateMask": "peering.asn"}"#).unwrap_err();
        assert_eq!(e.details[0].field, "peering.asn");
        // Masking one leaf of an object keeps only that leaf of it.
        let r = read_req(r#"{"updateMask": "peering.asn", "peering": {"asn": 5, "key": "k"}}"#)
            .expect("read");
        let p = r.peering.expect("peering");
        assert_eq!(p.get("asn"), Some(&Value::from(5)));
        assert_eq!(p.get("key"), None);
    }

    #[test]
    fn unknown_paths_bad_masks_and_typos_outside_the_mask_are_refused() {
        for (body, says) in [
            (r#"{"updateMask": "color"}"#, "\"color\" is not a field"),
            (r#"{"updateMask": "peering.nope"}"#, "not a field"),
            (r#"{"updateMask": 7}"#, "must be a string"),
            (r#"{"updateMask": ["name", 1]}"#, "must be strings"),
            (r#"{"updateMask": "name", "nmae": "x"}"#, "nmae"),
        ] {
            let e = read_req(body).unwrap_err();
            assert!(e.message.contains(says), "{body}: {}", e.message);
        }
        let e = read_req(r#"{"thingId": "t2", "name": "x"}"#).unwrap_err();
        assert_eq!(e.details[0].field, "thingId");
        let e = read_req(r#"{"id": "t2", "name": "x"}"#).unwrap_err();
        assert_eq!(e.details[0].field, "id");
        assert!(read_req(r#"{"thingId": "t1", "id": "t1", "name": "x"}"#).is_ok());
    }

    #[test]
    fn output_only_fields_are_ignored_so_a_read_resource_can_be_sent_back() {
        let r = read_req(
            r#"{"id": "t1", "status": "ACTIVE", "name": "n", "peering": {"asn": 1, "out": 7}}"#,
        )
        .expect("read");
        assert_eq!(r.name.as_deref(), Some("n"));
        assert_eq!(r.peering.expect("peering").get("out"), None);
    }

    #[test]
    fn immutable_fields_pass_with_their_value_and_are_refused_with_another() {
        let current =
            serde_json::json!({"folderId": "f1", "capacity": "CAPACITY_1_GBPS", "vlanId": "100"});
        let p = read::<Req>(
            br#"{"folderId": "f1", "capacity": "CAPACITY_1_GBPS", "name": "n"}"#,
            "t1",
            &SPEC,
        )
        .map_err(|e| e.0)
        .expect("read");
        assert!(p.check_unchanged(&current).is_ok());
        for (body, field) in [
            (r#"{"folderId": "f2"}"#, "folderId"),
            (r#"{"capacity": "CAPACITY_2_GBPS"}"#, "capacity"),
        ] {
            let p = read::<Req>(body.as_bytes(), "t1", &SPEC)
                .map_err(|e| e.0)
                .expect(body);
            let e = p.check_unchanged(&current).unwrap_err().0;
            assert_eq!(e.details[0].field, field, "{body}");
        }
        assert!(same(&Value::from(100), &Value::from("100")));
    }

    #[test]
    fn paths_are_read_in_either_case() {
        assert_eq!(
            camel_path("ipv4_peering.peer_bgp_md5_key"),
            "ipv4Peering.peerBgpMd5Key"
        );
        assert_eq!(
            camel_path("ipv4Peering.peerBgpAsn"),
            "ipv4Peering.peerBgpAsn"
        );
        assert_eq!(camel_path("deletion_protection"), "deletionProtection");
    }
}
