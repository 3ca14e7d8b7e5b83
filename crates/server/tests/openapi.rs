//! `/openapi.json` is generated from the endpoint table that also builds the router. These
//! tests keep the checked-in copy (docs/openapi.json) current and prove every documented
//! path and method is served.

mod common;

use axum::http::{Method, StatusCode};
use common::{ADMIN, H};
use serde_json::Value;

const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[test]
fn the_checked_in_document_is_the_generated_one() {
    let doc = serde_json::to_string_pretty(&cic_server::api::openapi()).expect("json") + "\n";
    if std::env::var("CIC_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(CHECKED_IN, &doc).expect("write docs/openapi.json");
    }
    let have = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
    assert!(
        have == doc,
        "docs/openapi.json is stale; regenerate it with \
         `CIC_UPDATE_OPENAPI=1 cargo nextest run -p cic-server --test openapi` and commit it"
    );
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_is_openapi_3_1() {
    let h = H::new().await;
    let (s, v) = h.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, cic_server::api::openapi());
    assert_eq!(v["openapi"], "3.1.0");
    // Every $ref points at a schema that is there.
    let text = v.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let r = r.split('"').next().unwrap_or_default();
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            v["components"]["schemas"].get(name).is_some(),
            "dangling $ref {r}"
        );
    }
    // The modelled shapes are in it: int64 as strings, the secret, the joints.
    let pc = &v["components"]["schemas"]["PrivateConnection"];
    assert_eq!(pc["properties"]["vlanId"]["type"], "string", "{pc}");
    assert!(v["paths"]["/cic/v1/privateConnections/{id}:upsertStaticRoutes"]["post"].is_object());
}

#[tokio::test]
async fn every_documented_path_and_method_is_served() {
    let h = H::new().await;
    let doc = cic_server::api::openapi();
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, ops) in paths {
        let concrete = path
            .split('{')
            .enumerate()
            .map(|(i, s)| match (i, s.split_once('}')) {
                (0, _) | (_, None) => s.to_string(),
                (_, Some((_, rest))) => format!("x0{rest}"),
            })
            .collect::<String>();
        for method in ops.as_object().expect("ops").keys() {
            let m: Method = method.to_uppercase().parse().expect("method");
            let body = matches!(m, Method::POST | Method::PATCH | Method::PUT)
                .then(|| Value::Object(Default::default()));
            let (s, v) = h.call(m.clone(), &concrete, Some(ADMIN), body).await;
            let message = v["message"].as_str().unwrap_or_default();
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {v}");
            assert!(
                !message.contains("no such API path")
                    && !message.contains("no method")
                    && !message.contains("needs a method"),
                "{method} {path} is documented but not served: {v}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} endpoints documented");

    // And what is not documented is not served.
    for (m, p) in [
        (Method::PUT, "/cic/v1/trunkConnections/x0"),
        (Method::GET, "/cic/v1/nothing"),
    ] {
        let (s, _) = h.call(m.clone(), p, Some(ADMIN), None).await;
        assert!(
            s == StatusCode::METHOD_NOT_ALLOWED || s == StatusCode::NOT_FOUND,
            "{m} {p}: {s}"
        );
    }
    let (s, v) = h
        .call(
            Method::POST,
            "/cic/v1/trunkConnections/x0:explode",
            Some(ADMIN),
            Some(Value::Object(Default::default())),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no method")
    );
}
