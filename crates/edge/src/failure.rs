//! Why a part of the config was not realised, and whether applying it again may: a
//! kernel that did not answer in time or was busy (transient) against one that refused
//! what was asked. The edge reports a transient failure as such for a bounded time
//! ([`cic_model::edge::TRANSIENT_FOR`]): an operation waits through it, as the edge
//! applies again, instead of failing at the first overloaded moment.

use cic_model::edge::ResourceError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub transient: bool,
}

impl Failure {
    /// The same failure, said to be of `what` ("drain: …").
    pub fn within(self, what: &str) -> Failure {
        Failure {
            message: format!("{what}: {}", self.message),
            ..self
        }
    }

    /// The failure as resource `id`'s.
    pub fn of(self, id: &str) -> ResourceError {
        ResourceError {
            resource_id: id.to_string(),
            message: self.message,
            transient: self.transient,
        }
    }
}

impl From<cic_dataplane::Error> for Failure {
    fn from(e: cic_dataplane::Error) -> Failure {
        Failure {
            transient: e.is_transient(),
            message: e.to_string(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            transient: false,
        }
    }
}

/// A namespace made, entered or renamed (a file system's answer: final).
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::from(e.to_string())
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::from(message.to_string())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_kernel_s_error_stays_transient_through_its_context() {
        let busy = cic_dataplane::Error::Busy("find link fab0: no answer".into());
        let e = Failure::from(busy).within("drain").of("c1");
        assert!(e.transient);
        assert_eq!(e.message, "drain: find link fab0: no answer");
        let refused = cic_dataplane::Error::Netlink("add link: File exists".into());
        assert!(!Failure::from(refused).of("c1").transient);
        assert!(!Failure::from("namespace task: panicked").transient);
    }
}
