//! What every HTTP client of cic shares (the CLI, the edge agent, the lab): one TLS
//! configuration, in [`tls`].

pub mod tls;
