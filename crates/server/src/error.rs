//! One place where errors become HTTP responses, and the reading of request bodies: every
//! refusal has the one shape `{code, message, details[{field, description}]}`, and a
//! message names the field in the API's own terms (`ipv4Peering.peerBgpAsn`) and says
//! what is allowed — never the parser's words (`at line 1 column 80`, `expected struct …`).
//!
//! A body is read once, with one limit ([`MAX_BODY`]: 413 above it), must be JSON when it
//! is not empty (415 otherwise), must hold exactly one JSON value with no key twice, and is
//! then turned into the request's type.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cic_model::{ApiError, Code};
use serde::Deserialize;
use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// The largest request body accepted, with or without an `Idempotency-Key`: requests are
/// small JSON documents (a batch of 1,000 ids is about 30 KiB).
pub const MAX_BODY: usize = 1 << 20;
/// An edge's report, which holds every session of the edge: room for 100,000.
pub const MAX_EDGE_REPORT: usize = 32 << 20;

#[derive(Debug)]
pub struct AppError(pub ApiError);

impl From<ApiError> for AppError {
    fn from(e: ApiError) -> Self {
        AppError(e)
    }
}

impl From<cic_store::Error> for AppError {
    fn from(e: cic_store::Error) -> Self {
        tracing::error!("store: {e}");
        AppError(ApiError::new(Code::Internal, "internal storage error"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0)).into_response()
    }
}

pub type ApiResult<T> = Result<T, AppError>;

/// A refusal whose HTTP status is not the one of its code: 405, 413 and 415 have no gRPC
/// code of their own, so they carry the nearest one in the usual shape.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub error: ApiError,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.error)).into_response()
    }
}

impl From<AppError> for HttpError {
    fn from(e: AppError) -> Self {
        HttpError {
            status: StatusCode::from_u16(e.0.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            error: e.0,
        }
    }
}

/// 413: the body is larger than [`MAX_BODY`].
pub fn too_large() -> HttpError {
    HttpError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        error: ApiError::new(
            Code::InvalidArgument,
            format!(
                "request body is too large: requests carry at most {} KiB (an edge's report {} MiB)",
                MAX_BODY / 1024,
                MAX_EDGE_REPORT >> 20
            ),
        ),
    }
}

/// A request body, read within [`MAX_BODY`] (413 above it).
pub struct ApiBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(ApiBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(_) => Err(AppError(ApiError::new(
                Code::InvalidArgument,
                "request body could not be read (the connection ended before it did)",
            ))
            .into()),
        }
    }
}

/// JSON body; a refusal names the field: `ipv4Peering.peerBgpAsn: must be …`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
        Ok(ApiJson(decode_json(&bytes)?))
    }
}

/// A JSON body of a type made of structs and lists alone (no maps, no free JSON values),
/// such as an edge's report (hundreds of KB at every report): decoded in one pass, since
/// serde's derive refuses a known field given twice in a struct (a key the type does not
/// know is ignored, even twice); only a refused body is read
/// again, strictly, to say what is wrong in [`ApiJson`]'s words.
pub struct StructJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StructJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ApiBody(bytes) = ApiBody::from_request(req, state).await?;
        match serde_json::from_slice(&bytes) {
            Ok(t) => Ok(StructJson(t)),
            Err(_) => Ok(StructJson(decode_json(&bytes)?)),
        }
    }
}

/// A JSON request body as `T`; errors name the field that is wrong.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    from_value(parse_body(bytes)?)
}

/// The one JSON value of a request body: not empty, valid JSON, nothing after it, no key
/// given twice in an object.
pub fn parse_body(bytes: &[u8]) -> Result<Value, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError(ApiError::new(
            Code::InvalidArgument,
            "request body is empty; a JSON object is required",
        )));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue::deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v.0))
        .map_err(|e| AppError(syntax_error(&e, bytes)))?;
    Ok(v)
}

/// `v` as `T`; a mismatch names the field (`ipv4StaticRoutes[2].prefix`) and what it
/// must be.
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, AppError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        AppError(data_error(&path, &inner))
    })
}

/// What a syntax error of the body means to its writer.
fn syntax_error(e: &serde_json::Error, bytes: &[u8]) -> ApiError {
    use serde_json::error::Category;
    let text = e.to_string();
    let what = text.split(" at line ").next().unwrap_or(&text).to_string();
    let at = char_offset(bytes, e.line(), e.column());
    let msg = match e.classify() {
        Category::Eof => "request body ends before its JSON is complete (was it cut short?)".into(),
        _ if what == "trailing characters" => format!(
            "request body holds something after its JSON object (at character {at}); send exactly one object"
        ),
        _ if what.starts_with("duplicate key ") => {
            let key = what.trim_start_matches("duplicate key ");
            return ApiError::field(
                key.trim_matches('`'),
                "is given twice in one object; give each field once",
            );
        }
        _ => format!(
            "request body is not valid JSON: {} (at character {at})",
            plain_syntax(&what)
        ),
    };
    ApiError::new(Code::InvalidArgument, msg)
}

/// serde_json's syntax messages in plainer words.
fn plain_syntax(what: &str) -> String {
    match what {
        "expected value" => "a value is missing or is not JSON (strings need double quotes)".into(),
        "expected `,` or `}`" => "expected , or } after a field".into(),
        "expected `,` or `]`" => "expected , or ] after an item".into(),
        "expected `:`" => "expected : after a field name".into(),
        "key must be a string" => "field names must be strings in double quotes".into(),
        "trailing comma" => "a comma is followed by nothing".into(),
        other => other.replace('`', ""),
    }
}

/// The 1-based character position of serde_json's line and column.
fn char_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let text = String::from_utf8_lossy(bytes);
    let before: usize = text
        .split('\n')
        .take(line.saturating_sub(1))
        .map(|l| l.chars().count() + 1)
        .sum();
    before + column
}

/// A field's mismatch with the request's type, in the API's terms.
pub(crate) fn data_error(path: &str, serde_message: &str) -> ApiError {
    let base = if path == "." || path == "?" {
        String::new()
    } else {
        path.replace(".?", "").replace("?.", "")
    };
    // The path ends at the parent for a missing field, at the field for an unknown one.
    let join = |f: &str| {
        if base.is_empty() || base == f {
            f.to_string()
        } else if base.ends_with(&format!(".{f}")) {
            base.clone()
        } else {
            format!("{base}.{f}")
        }
    };
    let m = serde_message;
    if let Some(f) = between(m, "missing field `", "`") {
        return ApiError::field(&join(f), "is required");
    }
    if let Some(f) = between(m, "unknown field `", "`") {
        let allowed = listed(m);
        let d = if allowed.is_empty() {
            "is not a field here".to_string()
        } else {
            format!("is not a field here; the fields are {allowed}")
        };
        return ApiError::field(&join(f), d);
    }
    if let Some(f) = between(m, "duplicate field `", "`") {
        return ApiError::field(&join(f), "is given twice; give each field once");
    }
    if let Some(v) = between(m, "unknown variant `", "`") {
        return field_or_body(
            &base,
            format!("{v:?} is not one of the allowed values: {}", listed(m)),
        );
    }
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        let (got, want) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        return field_or_body(
            &base,
            format!("must be {}, not {}", expected(want), unexpected(got)),
        );
    }
    if let Some(rest) = m.strip_prefix("invalid length ") {
        // A list where an object (or a shorter list) was expected.
        let want = rest.split_once(", expected ").map_or("", |(_, w)| w);
        return field_or_body(&base, format!("must be {}, not a list", expected(want)));
    }
    if let Some(rest) = m.strip_prefix("invalid value: ") {
        let (got, want) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another value"));
        return field_or_body(
            &base,
            format!("{} is not {}", unexpected(got), expected(want)),
        );
    }
    // The standard library's and ipnet's address errors, and our own messages.
    let d = match m {
        "invalid IPv4 address syntax" => "must be an IPv4 address such as 10.0.0.1".to_string(),
        "invalid IPv6 address syntax" => "must be an IPv6 address such as fd00::1".to_string(),
        "invalid IP address syntax" => {
            "must be a prefix such as 10.0.0.0/24 (an address, a slash, a length)".to_string()
        }
        other => other.to_string(),
    };
    field_or_body(&base, d)
}

fn field_or_body(field: &str, description: String) -> ApiError {
    if field.is_empty() {
        ApiError {
            code: Code::InvalidArgument,
            message: format!("request body {description}"),
            details: vec![],
        }
    } else {
        ApiError::field(field, description)
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let len = s[from..].find(end)?;
    Some(&s[from..from + len])
}

/// The names serde lists after "expected one of".
fn listed(m: &str) -> String {
    m.split_once("expected one of ")
        .map(|(_, l)| l.replace('`', ""))
        .unwrap_or_default()
}

/// serde's "expected …" in the API's terms.
fn expected(want: &str) -> String {
    let w = want.trim();
    if w.starts_with("struct ") || w == "a map" || w.starts_with("map") {
        return "a JSON object".into();
    }
    if w == "a sequence" || w.starts_with("a sequence") || w.starts_with("tuple") {
        return "a list".into();
    }
    if w.starts_with("enum ") {
        return "one of the allowed values (a string)".into();
    }
    match w {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" | "an integer" => {
            "a whole number".into()
        }
        "a boolean" => "true or false".into(),
        "a string" | "a borrowed string" => "a string".into(),
        "IPv4 address" | "an IPv4 address" => "an IPv4 address such as 10.0.0.1".into(),
        "IPv6 address" | "an IPv6 address" => "an IPv6 address such as fd00::1".into(),
        other => other.to_string(),
    }
}

/// serde's description of what it found, in the API's terms.
fn unexpected(got: &str) -> String {
    let g = got.trim();
    if let Some(n) = g
        .strip_prefix("integer `")
        .or_else(|| g.strip_prefix("floating point `"))
    {
        return format!("the number {}", n.trim_end_matches('`'));
    }
    if let Some(b) = g.strip_prefix("boolean `") {
        return b.trim_end_matches('`').to_string();
    }
    if let Some(s) = g.strip_prefix("string ") {
        return format!("the string {s}");
    }
    match g {
        "unit value" | "null" => "null".into(),
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        other => other.to_string(),
    }
}

/// A JSON value whose objects may not repeat a key: `{"vlanId": "100", "vlanId": "4095"}`
/// is refused, not read as its last value.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element_seed(StrictSeed)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut m = Map::new();
        let mut seen = BTreeSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !seen.insert(k.clone()) {
                return Err(serde::de::Error::custom(format!("duplicate key `{k}`")));
            }
            let v = map.next_value_seed(StrictSeed)?;
            m.insert(k, v);
        }
        Ok(Value::Object(m))
    }
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
}

/// Whether a Content-Type names JSON (`application/json`, `application/…+json`, with or
/// without parameters).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Middleware: a request that carries a body must say it is JSON (415 otherwise), and
/// every refusal leaves in the one JSON shape — also those made below the handlers
/// (405 from the router, a body over the limit), with the allowed methods named.
pub async fn shape(req: Request, next: Next) -> Response {
    use axum::body::HttpBody as _;
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let has_body = req.body().size_hint().exact() != Some(0);
    if has_body && !is_json(req.headers()) {
        let got = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| format!("Content-Type {v:?}"))
            .unwrap_or_else(|| "no Content-Type".to_string());
        return HttpError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error: ApiError::new(
                Code::InvalidArgument,
                format!("request body must be JSON (Content-Type: application/json); it has {got}"),
            ),
        }
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json {
        return resp;
    }
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = resp
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            ApiError::new(
                Code::Unimplemented,
                format!("{method} is not a method of {path}; it takes {allowed}"),
            )
        }
        StatusCode::PAYLOAD_TOO_LARGE => too_large().error,
        StatusCode::NOT_FOUND => ApiError::new(Code::NotFound, "no such API path"),
        s if s.is_server_error() => ApiError::new(Code::Internal, "internal error"),
        s => ApiError::new(
            Code::InvalidArgument,
            format!(
                "the request was refused: {}",
                s.canonical_reason().unwrap_or("bad request")
            ),
        ),
    };
    let mut out = HttpError { status, error }.into_response();
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use cic_model::resource::CreatePrivateConnectionRequest;

    fn refuse(body: &str) -> ApiError {
        match decode_json::<CreatePrivateConnectionRequest>(body.as_bytes()) {
            Err(AppError(e)) => e,
            Ok(_) => panic!("{body} was accepted"),
        }
    }

    const GOOD: &str = r#"{"folderId":"f1","trunkConnectionId":"t","vlanId":"100",
        "ipv4Peering":{"peeringSubnet":"10.0.0.0/30","peerIp":"10.0.0.2","cloudIp":"10.0.0.1","peerBgpAsn":"65001"}}"#;

    /// No refusal may show the parser's own words.
    fn plain(e: &ApiError) {
        for leak in [
            "line 1",
            "column",
            "expected struct",
            "with 8 elements",
            "CreatePrivateConnectionRequest",
            "Ipv4PeeringSpec",
            "?:",
            "`",
        ] {
            assert!(!e.message.contains(leak), "{leak:?} in {:?}", e.message);
        }
    }

    #[test]
    fn a_good_body_is_read() {
        let r: CreatePrivateConnectionRequest = decode_json(GOOD.as_bytes()).expect("good");
        assert_eq!(r.vlan_id, 100);
    }

    #[test]
    fn anything_after_the_object_is_refused() {
        for tail in [r#" {"vlanId":"4095"}"#, " garbage", " 1", "}"] {
            let e = refuse(&format!("{GOOD}{tail}"));
            plain(&e);
            assert!(
                e.message.contains("after its JSON"),
                "{tail}: {}",
                e.message
            );
        }
        // Whitespace after it is fine.
        assert!(
            decode_json::<CreatePrivateConnectionRequest>(format!("{GOOD}\n \n").as_bytes())
                .is_ok()
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_at_any_depth() {
        let e = refuse(&GOOD.replace(r#""vlanId":"100","#, r#""vlanId":"100","vlanId":"4095","#));
        assert_eq!(e.details[0].field, "vlanId", "{e:?}");
        let e = refuse(&GOOD.replace(
            r#""peerIp":"10.0.0.2","#,
            r#""peerIp":"10.0.0.2","peerIp":"10.0.0.3","#,
        ));
        assert_eq!(e.details[0].field, "peerIp", "{e:?}");
        plain(&e);
    }

    #[test]
    fn a_truncated_body_is_named_as_such() {
        for cut in [20, 60, GOOD.len() - 1] {
            let e = refuse(&GOOD[..cut]);
            plain(&e);
            assert!(
                e.message.contains("before its JSON is complete"),
                "{cut}: {}",
                e.message
            );
        }
    }

    #[test]
    fn type_mismatches_name_the_field_and_what_it_must_be() {
        let cases = [
            (GOOD.replace(r#""vlanId":"100""#, r#""vlanId":true"#), "vlanId", "integer"),
            (
                GOOD.replace(r#""peerIp":"10.0.0.2""#, r#""peerIp":7"#),
                "ipv4Peering.peerIp",
                "not the number 7",
            ),
            (
                GOOD.replace(r#""peerIp":"10.0.0.2""#, r#""peerIp":"ten""#),
                "ipv4Peering.peerIp",
                "IPv4 address",
            ),
            (
                GOOD.replace(r#""peeringSubnet":"10.0.0.0/30""#, r#""peeringSubnet":"10.0.0.0/33""#),
                "ipv4Peering.peeringSubnet",
                "prefix such as",
            ),
            (
                GOOD.replace(
                    r#""ipv4Peering":{"peeringSubnet":"10.0.0.0/30","peerIp":"10.0.0.2","cloudIp":"10.0.0.1","peerBgpAsn":"65001"}"#,
                    r#""ipv4Peering":["10.0.0.0/30"]"#,
                ),
                "ipv4Peering",
                "must be a JSON object, not a list",
            ),
            (GOOD.replace(r#""folderId":"f1","#, ""), "folderId", "is required"),
            (
                GOOD.replace(r#""folderId":"f1","#, r#""folderId":"f1","color":"red","#),
                "color",
                "the fields are",
            ),
            (
                GOOD.replace(r#""folderId":"f1","#, r#""ipv4StaticRoutes":[{"prefix":"10.9.0.0/16"},{"prefix":5}],"folderId":"f1","#),
                "ipv4StaticRoutes[1].prefix",
                "must be",
            ),
        ];
        for (body, field, says) in cases {
            let e = refuse(&body);
            plain(&e);
            assert_eq!(
                e.details.first().map(|d| d.field.as_str()),
                Some(field),
                "{body}: {e:?}"
            );
            assert!(e.message.contains(says), "{body}: {}", e.message);
            assert!(e.message.starts_with(field), "{}", e.message);
        }
    }

    #[test]
    fn the_body_must_be_an_object_and_not_empty() {
        for (body, says) in [
            ("[]", "must be a JSON object, not a list"),
            ("\"x\"", "must be a JSON object"),
            ("", "empty"),
            ("  ", "empty"),
            ("{\"folderId\": 'f1'}", "not valid JSON"),
            ("{folderId: 1}", "not valid JSON"),
        ] {
            let e = refuse(body);
            plain(&e);
            assert!(e.message.contains(says), "{body}: {}", e.message);
        }
    }
}
