//! cic's resource model: types, validation rules and error codes. No I/O.

pub mod edge;
pub mod error;
pub mod iam;
pub mod resource;
pub mod validate;

pub use error::{ApiError, ApiResult, Code};

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
