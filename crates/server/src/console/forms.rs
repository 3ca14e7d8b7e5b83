//! Forms: each is a list of fields named by their API path (`ipv4Peering.peerIp`), so a
//! form's values become the API's request body and the API's field errors land beside
//! the field that caused them.

use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Serialize)]
pub struct Field {
    /// The API field path; also the input's name.
    pub name: &'static str,
    pub label: &'static str,
    /// `text`, `number`, `password` or `select`.
    pub kind: &'static str,
    pub help: &'static str,
    pub required: bool,
    /// For `select`: (value, label).
    pub options: Vec<(String, String)>,
    /// Another path the API names this field by in its errors.
    pub also: Option<&'static str>,
}

impl Field {
    pub const fn text(name: &'static str, label: &'static str, help: &'static str) -> Field {
        Field {
            name,
            label,
            kind: "text",
            help,
            required: false,
            options: Vec::new(),
            also: None,
        }
    }

    /// A list: values separated by commas or spaces, sent as an array of strings.
    pub fn list(name: &'static str, label: &'static str, help: &'static str) -> Field {
        Field {
            kind: "list",
            ..Field::text(name, label, help)
        }
    }

    /// Errors the API reports under `path` are this field's too.
    pub fn errors_as(mut self, path: &'static str) -> Field {
        self.also = Some(path);
        self
    }

    pub fn number(name: &'static str, label: &'static str, help: &'static str) -> Field {
        Field {
            kind: "number",
            ..Field::text(name, label, help)
        }
    }

    pub fn secret(name: &'static str, label: &'static str, help: &'static str) -> Field {
        Field {
            kind: "password",
            ..Field::text(name, label, help)
        }
    }

    pub fn select(
        name: &'static str,
        label: &'static str,
        help: &'static str,
        options: Vec<(String, String)>,
    ) -> Field {
        Field {
            kind: "select",
            options,
            ..Field::text(name, label, help)
        }
    }

    pub const fn required(mut self) -> Field {
        self.required = true;
        self
    }
}

/// The values a form was sent with, by field name (the last of a repeated name).
pub fn values(form: &[(String, String)], fields: &[Field]) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|f| {
            form.iter()
                .rev()
                .find(|(k, _)| k == f.name)
                .map(|(_, v)| (f.name.to_string(), Value::String(v.clone())))
        })
        .collect()
}

/// The API request body of a form: empty fields left out (the API says which are
/// required), numbers as numbers when they are numbers (else as typed: the API names the
/// field and what it wants), nested by the dots of the names.
pub fn body(form: &[(String, String)], fields: &[Field], mut base: Map<String, Value>) -> Value {
    for f in fields {
        let Some((_, raw)) = form.iter().rev().find(|(k, _)| k == f.name) else {
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let v = match f.kind {
            "number" => raw
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.to_string())),
            "list" => Value::Array(
                raw.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|x| !x.is_empty())
                    .map(|x| Value::String(x.to_string()))
                    .collect(),
            ),
            _ => Value::String(raw.to_string()),
        };
        let parts: Vec<&str> = f.name.split('.').collect();
        put(&mut base, &parts, v);
    }
    Value::Object(base)
}

/// `vpcInfo[0]` → (`vpcInfo`, Some(0)); `name` → (`name`, None).
fn indexed(seg: &str) -> (&str, Option<usize>) {
    match seg.strip_suffix(']').and_then(|s| s.split_once('[')) {
        Some((k, i)) => match i.parse() {
            Ok(i) => (k, Some(i)),
            Err(_) => (seg, None),
        },
        None => (seg, None),
    }
}

/// Sets `v` at the path `parts` under `m`, making the objects (and arrays, for `[i]`)
/// on the way.
fn put(m: &mut Map<String, Value>, parts: &[&str], v: Value) {
    match parts {
        [] => {}
        [last] => {
            m.insert(last.to_string(), v);
        }
        [first, rest @ ..] => {
            let (key, index) = indexed(first);
            let next = match index {
                None => m
                    .entry(key.to_string())
                    .or_insert_with(|| Value::Object(Map::new())),
                Some(i) => {
                    let arr = m
                        .entry(key.to_string())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !arr.is_array() {
                        *arr = Value::Array(Vec::new());
                    }
                    let Value::Array(a) = arr else { return };
                    while a.len() <= i.min(63) {
                        a.push(Value::Object(Map::new()));
                    }
                    let Some(slot) = a.get_mut(i) else { return };
                    slot
                }
            };
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            if let Value::Object(inner) = next {
                put(inner, rest, v);
            }
        }
    }
}

/// The fields that are the same `name`s of the API's errors: the ones the form does not
/// show are returned apart (shown above the form).
pub fn split_errors(
    errors: Map<String, Value>,
    fields: &[Field],
) -> (Map<String, Value>, Vec<String>) {
    let mut at_field = Map::new();
    let mut others = Vec::new();
    for (k, v) in errors {
        let text = v.as_str().unwrap_or_default().to_string();
        // The field of that name or alias, else the one the path is inside of
        // (`…prefixes[1]` is the prefixes field's).
        let inside = |f: &&Field| {
            k.strip_prefix(f.name)
                .is_some_and(|r| r.starts_with('[') || r.starts_with('.'))
        };
        let field = fields
            .iter()
            .find(|f| f.name == k || f.also == Some(k.as_str()))
            .or_else(|| fields.iter().find(inside));
        match field {
            Some(f) => {
                at_field.insert(f.name.to_string(), Value::String(text));
            }
            None => others.push(format!("{k}: {text}")),
        }
    }
    (at_field, others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_becomes_the_api_s_body() {
        let fields = [
            Field::text("name", "Name", ""),
            Field::number("vlanId", "VLAN", ""),
            Field::text("ipv4Peering.peerIp", "Peer IP", ""),
            Field::number("ipv4Peering.peerBgpAsn", "ASN", ""),
            Field::text("description", "Description", ""),
        ];
        let mut base = Map::new();
        base.insert("folderId".into(), json!("f1"));
        let b = body(
            &form(&[
                ("_csrf", "x"),
                ("name", " pc "),
                ("vlanId", "100"),
                ("ipv4Peering.peerIp", "169.254.0.2"),
                ("ipv4Peering.peerBgpAsn", "65001x"),
                ("description", ""),
            ]),
            &fields,
            base,
        );
        assert_eq!(
            b,
            json!({"folderId": "f1", "name": "pc", "vlanId": 100,
                   "ipv4Peering": {"peerIp": "169.254.0.2", "peerBgpAsn": "65001x"}})
        );
    }

    #[test]
    fn errors_go_to_their_fields_or_above_the_form() {
        let fields = [
            Field::number("vlanId", "VLAN", ""),
            Field::list("vpcInfo[0].azInfos[0].prefixes", "Prefixes", "")
                .errors_as("vpcInfo.azInfos.prefixes"),
        ];
        let mut e = Map::new();
        e.insert("vlanId".into(), json!("must be 2-4094"));
        e.insert("trunkConnectionId".into(), json!("is required"));
        e.insert("vpcInfo.azInfos.prefixes".into(), json!("overlap"));
        let (at, others) = split_errors(e, &fields);
        assert_eq!(at["vlanId"], "must be 2-4094");
        assert_eq!(at["vpcInfo[0].azInfos[0].prefixes"], "overlap");
        assert_eq!(others, vec!["trunkConnectionId: is required".to_string()]);
        let mut e = Map::new();
        e.insert(
            "vpcInfo[0].azInfos[0].prefixes[1]".into(),
            json!("not a prefix"),
        );
        let (at, _) = split_errors(e, &fields);
        assert_eq!(at["vpcInfo[0].azInfos[0].prefixes"], "not a prefix");
    }

    #[test]
    fn indexed_names_make_arrays_and_lists_split() {
        let fields = [
            Field::text("vpcInfo[0].vpcNetworkId", "VPC", ""),
            Field::text("vpcInfo[0].azInfos[0].azId", "Zone", ""),
            Field::list("vpcInfo[0].azInfos[0].prefixes", "Prefixes", ""),
            Field::select(
                "cicPrivateConnectionInfo[0].cicPrivateConnectionId",
                "PC",
                "",
                vec![],
            ),
        ];
        let b = body(
            &form(&[
                ("vpcInfo[0].vpcNetworkId", "net1"),
                ("vpcInfo[0].azInfos[0].azId", "zone-a"),
                (
                    "vpcInfo[0].azInfos[0].prefixes",
                    "10.0.0.0/16, 10.1.0.0/16 fd00::/48",
                ),
                ("cicPrivateConnectionInfo[0].cicPrivateConnectionId", ""),
            ]),
            &fields,
            Map::new(),
        );
        assert_eq!(
            b,
            json!({"vpcInfo": [{"vpcNetworkId": "net1", "azInfos": [{"azId": "zone-a",
                   "prefixes": ["10.0.0.0/16", "10.1.0.0/16", "fd00::/48"]}]}]})
        );
    }
}
