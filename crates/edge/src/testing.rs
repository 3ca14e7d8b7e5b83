//! What the crate's unit tests share: a scratch directory, and configs made short.

use std::path::PathBuf;
use std::sync::Arc;

use cic_model::edge::{BgpSettings, EdgeConfig, InstanceConfig};

/// A directory of its own under the system's temporary one (made empty), removed at the
/// end.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("cic-edge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An instance with nothing but its id and VPC prefixes.
pub(crate) fn instance(id: &str, vpc_prefixes: &[&str]) -> InstanceConfig {
    InstanceConfig {
        id: id.to_string(),
        routing_instance_id: None,
        vpc_prefixes: vpc_prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        fabric: None,
        connections: vec![],
        announce: vec![],
        accept_only: None,
    }
}

/// An edge's config at `revision` holding `instances`, the rest the defaults.
pub(crate) fn edge_config(revision: u64, instances: Vec<InstanceConfig>) -> EdgeConfig {
    EdgeConfig {
        revision,
        edge_id: "e1".into(),
        router_id: "10.255.0.1".parse().unwrap(),
        local_asn: 200_350,
        bgp: BgpSettings::default(),
        trunks: vec![],
        instances: instances.into_iter().map(Arc::new).collect(),
        drain: false,
    }
}
