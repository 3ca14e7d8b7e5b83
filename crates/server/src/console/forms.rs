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
        }
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
        let v = if f.kind == "number" {
            raw.parse::<u64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.to_string()))
        } else {
            Value::String(raw.to_string())
        };
        let parts: Vec<&str> = f.name.split('.').collect();
        put(&mut base, &parts, v);
    }
    Value::Object(base)
}

/// Sets `v` at the path `parts` under `m`, making the objects on the way.
fn put(m: &mut Map<String, Value>, parts: &[&str], v: Value) {
    match parts {
        [] => {}
        [last] => {
            m.insert(last.to_string(), v);
        }
        [first, rest @ ..] => {
            let next = m
                .entry(first.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
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
        if fields.iter().any(|f| f.name == k) {
            at_field.insert(k, Value::String(text));
        } else {
            others.push(format!("{k}: {text}"));
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
        let fields = [Field::number("vlanId", "VLAN", "")];
        let mut e = Map::new();
        e.insert("vlanId".into(), json!("must be 2-4094"));
        e.insert("trunkConnectionId".into(), json!("is required"));
        let (at, others) = split_errors(e, &fields);
        assert_eq!(at["vlanId"], "must be 2-4094");
        assert_eq!(others, vec!["trunkConnectionId: is required".to_string()]);
    }
}
