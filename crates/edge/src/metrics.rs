//! `GET /metrics` on the edge: the sessions from the speakers and the connections'
//! interface counters from the kernel, read at the scrape.

use std::collections::BTreeMap;

use cic_model::edge::{Attachment, SessionKind, TrunkConfig};
use cic_model::metrics::Exposition;

use crate::Agent;

/// Namespaces whose interface counters a scrape reads at once.
const METRICS_IN_FLIGHT: usize = 32;

impl Agent {
    /// `GET /metrics`: the sessions from the speakers and the connections' interface
    /// counters from the kernel, read at the scrape.
    pub async fn metrics(&self) -> String {
        // Sessions and errors only: the scrape reads the counters itself, below.
        let report = self.report_state().await;
        let mut e = Exposition::default();
        // The counters are read after the lock is let go, many namespaces at a time.
        let (edge_id, sources, trunks, trunk_of, previous) = {
            let st = self.state.lock().await;
            let edge = || ("edge_id", st.edge_id.clone());
            e.sample(
                "cic_edge_applied_revision",
                "gauge",
                "The config revision this edge has applied.",
                vec![edge()],
                report.applied_revision as f64,
            );
            e.sample(
                "cic_edge_last_apply_seconds",
                "gauge",
                "How long the last apply of the config took (see cic_edge_last_apply_reconciled_instances for how much it reconciled).",
                vec![edge()],
                st.last_apply.as_secs_f64(),
            );
            e.sample(
                "cic_edge_last_apply_reconciled_instances",
                "gauge",
                "Routing instances the last apply reconciled; a new revision leaves unchanged ones alone.",
                vec![edge(), ("full", st.last_full.to_string())],
                st.last_reconciled as f64,
            );
            e.sample(
                "cic_edge_instances_reconciled_at_once_peak",
                "gauge",
                "The most instances (a routing instance's, or a lone connection's) reconciled at the same time since the agent started; they are reconciled several at once.",
                vec![edge()],
                self.reconciling.peak() as f64,
            );
            e.sample(
                "cic_edge_applies_total",
                "counter",
                "Applies of the config since the agent started: new revisions, retries and drift checks.",
                vec![edge()],
                st.applies as f64,
            );
            e.sample(
                "cic_edge_reports_total",
                "counter",
                "Reports the server took since the agent started: after applies, soon after sessions change state, and every report interval (asks that come while one is being made are answered by one more).",
                vec![edge()],
                self.reports_sent.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            e.sample(
                "cic_edge_reports_as_changes_total",
                "counter",
                "Of the reports the server took, those sent as the changes since the last one it took (the others whole: the first, after a failure, or to a server without versions).",
                vec![edge()],
                self.reports_as_changes.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            e.sample(
                "cic_edge_report_bytes_total",
                "counter",
                "The bytes of the reports the server took.",
                vec![edge()],
                self.report_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            for (kind, n) in ["whole", "changes"].iter().zip(&self.config_answers) {
                e.sample(
                    "cic_edge_config_answers_total",
                    "counter",
                    "The server's answers to the edge's config requests since the agent started: the config whole (the first, after a failed request, from a server without tags, or when the server no longer has the answer the edge holds) or the changes since the answer it holds.",
                    vec![edge(), ("kind", kind.to_string())],
                    n.load(std::sync::atomic::Ordering::Relaxed) as f64,
                );
            }
            e.sample(
                "cic_edge_config_bytes_total",
                "counter",
                "The bytes of the server's config answers since the agent started.",
                vec![edge()],
                self.config_bytes.load(std::sync::atomic::Ordering::Relaxed) as f64,
            );
            e.sample(
                "cic_edge_resource_errors",
                "gauge",
                "Resources this edge could not realise.",
                vec![edge()],
                report.errors.len() as f64,
            );
            for s in &report.sessions {
                let id = match s.kind {
                    SessionKind::Customer => "connection_id",
                    SessionKind::Fabric => "routing_instance_id",
                };
                e.session(s, vec![edge(), (id, s.resource_id.clone())]);
            }
            let sources: Vec<_> = st.instances.values().map(|i| i.traffic_source()).collect();
            // Trunks: which connection rides which, where each trunk's port is, and its
            // counters at the last scrape (for its rates).
            let trunks: Vec<(TrunkConfig, bool)> = st
                .applied_context
                .iter()
                .flat_map(|c| c.trunks.values())
                .map(|(t, problem)| (t.clone(), problem.is_none()))
                .collect();
            let trunk_of: BTreeMap<String, String> = st
                .applied_instances
                .values()
                .flat_map(|ic| ic.connections.iter())
                .map(|c| (c.id.clone(), c.trunk_id.clone()))
                .collect();
            (
                st.edge_id.clone(),
                sources,
                trunks,
                trunk_of,
                st.trunk_readings.clone(),
            )
        };
        use futures::stream::{self, StreamExt};
        let mut traffic: Vec<_> = stream::iter(sources)
            .map(|s| async move { s.read().await })
            .buffer_unordered(METRICS_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .flatten()
            .collect();
        traffic.sort_by(|a, b| a.0.cmp(&b.0));
        let mut per_trunk: BTreeMap<&str, cic_model::metrics::Traffic> = BTreeMap::new();
        for (conn, t) in &traffic {
            if let Some(trunk) = trunk_of.get(conn) {
                per_trunk.entry(trunk.as_str()).or_default().add(t);
            }
        }
        let ports = self.underlay.links().await.unwrap_or_default();
        let carrier = |name: &str| ports.iter().any(|l| l.name == name && l.carrier);
        let now = std::time::Instant::now();
        let mut readings = BTreeMap::new();
        for (t, realised) in &trunks {
            let own_port = match &t.attachment {
                Attachment::Vlan { port } => Some(port.as_str()),
                Attachment::Lag { bond, .. } => Some(bond.as_str()),
                Attachment::Vxlan { port, .. } => port.as_deref(),
            };
            let lag_health = match &t.attachment {
                Attachment::Lag { ports: members, .. } if !members.is_empty() => Some(
                    members.iter().filter(|m| carrier(m)).count() as f64 / members.len() as f64,
                ),
                _ => None,
            };
            let traffic = per_trunk.get(t.id.as_str()).copied().unwrap_or_default();
            // Rates against the previous scrape.
            let rates = previous.get(&t.id).and_then(|(then, before)| {
                cic_model::metrics::Rates::between(
                    before,
                    &traffic,
                    now.duration_since(*then).as_secs_f64(),
                )
            });
            readings.insert(t.id.clone(), (now, traffic));
            let trunk = cic_model::metrics::Trunk {
                up: *realised && own_port.is_none_or(carrier),
                lag_health,
                traffic,
                rates,
            };
            e.trunk(
                &trunk,
                vec![
                    ("edge_id", edge_id.clone()),
                    ("trunk_connection_id", t.id.clone()),
                ],
            );
        }
        // This scrape's counters, for the next one's rates.
        self.state.lock().await.trunk_readings = readings;
        for (conn, t) in traffic {
            e.traffic(
                &t,
                vec![("edge_id", edge_id.clone()), ("connection_id", conn)],
            );
        }
        e.render()
    }
}
