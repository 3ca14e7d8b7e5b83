//! cic's resource model: types, validation rules and error codes. No I/O.

pub mod diagnose;
pub mod edge;
pub mod error;
pub mod iam;
pub mod metrics;
pub mod prefixes;
pub mod resource;
pub mod router_config;
pub mod routing;
pub mod validate;

pub use error::{ApiError, ApiResult, Code};

/// The characters of a made id's random tail.
pub const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// A made id: a 2-letter kind prefix and this many of [`ID_ALPHABET`].
pub const ID_TAIL: usize = 18;

/// Whether `s` has the shape of an id the server makes for a tenant resource (a
/// connection, a routing instance): 2 lowercase letters and [`ID_TAIL`] of
/// [`ID_ALPHABET`]. The edge names a namespace after such an id, and takes a namespace for
/// its own only when the rest of its name is one.
pub fn is_made_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 2 + ID_TAIL
        && b[..2].iter().all(u8::is_ascii_lowercase)
        && b[2..].iter().all(|c| ID_ALPHABET.contains(c))
}

#[cfg(test)]
mod id_tests {
    #[test]
    fn made_ids_are_told_from_other_names() {
        assert!(super::is_made_id("rifjgpu3lsvdzlupfqie"));
        assert!(super::is_made_id("pc0123456789abcdefgh"));
        for not in [
            "",
            "ri",
            "test",
            "rifjgpu3lsvdzlupfqi",   // one short
            "rifjgpu3lsvdzlupfqiex", // one long
            "Rifjgpu3lsvdzlupfqie",
            "r1fjgpu3lsvdzlupfqie",
            "ri-jgpu3lsvdzlupfqie",
            "lab-rifjgpu3lsvdzlup",
        ] {
            assert!(!super::is_made_id(not), "{not:?}");
        }
    }
}

/// How a secret is shown to a caller who may not read it. Written back (a client that
/// reads a resource, changes something else and sends it again), it means "unchanged".
pub const SECRET_MASK: &str = "********";

/// The JSON fields (anywhere in a document) that hold a [`Secret`]: the store seals their
/// values at rest.
pub const SECRET_FIELDS: &[&str] = &["peerBgpMd5Key"];

/// A secret (a BGP MD5 key): serialized as its value, never printed by `Debug`, so it
/// cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret: shown as \"********\" unless the caller holds secretViewer."
        })
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod secret_tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value_and_json_does() {
        let s = Secret::new("hunter2-hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", Some(&s)).contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2-hunter2\"");
        let back: Secret = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(back.expose(), "x");
    }
}

/// int64 fields as the modelled API's JSON has them (proto3 JSON mapping): written as
/// strings, read from a string or a number. `#[serde(with = "cic_model::int64")]`.
pub mod int64 {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de};

    pub fn serialize<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        U(u64),
        I(i64),
        S(String),
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr + TryFrom<i128>,
        D: Deserializer<'de>,
    {
        let raw = Raw::deserialize(d).map_err(|_| {
            de::Error::custom("expected an integer (a JSON number or a string of digits)")
        })?;
        let n: i128 = match raw {
            Raw::U(n) => n.into(),
            Raw::I(n) => n.into(),
            Raw::S(s) => s
                .trim()
                .parse()
                .map_err(|_| de::Error::custom(format!("{s:?} is not an integer")))?,
        };
        T::try_from(n).map_err(|_| de::Error::custom(format!("{n} is out of range")))
    }
}

/// [`int64`] for optional fields (`Option<T>`, absent or null = None).
pub mod int64_option {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    #[derive(Deserialize)]
    struct Wrap<T: FromStr + TryFrom<i128>>(#[serde(with = "crate::int64")] T);

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr + TryFrom<i128>,
        D: Deserializer<'de>,
    {
        Ok(Option::<Wrap<T>>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod int64_tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct X {
        #[serde(with = "crate::int64")]
        v: u32,
    }

    #[test]
    fn written_as_strings_read_from_either() {
        assert_eq!(serde_json::to_string(&X { v: 7 }).unwrap(), r#"{"v":"7"}"#);
        assert_eq!(
            serde_json::from_str::<X>(r#"{"v":"7"}"#).unwrap(),
            X { v: 7 }
        );
        assert_eq!(serde_json::from_str::<X>(r#"{"v":7}"#).unwrap(), X { v: 7 });
        for bad in [
            r#"{"v":-1}"#,
            r#"{"v":"x"}"#,
            r#"{"v":4294967296}"#,
            r#"{"v":1.5}"#,
            r#"{"v":null}"#,
        ] {
            assert!(serde_json::from_str::<X>(bad).is_err(), "{bad}");
        }
    }
}
