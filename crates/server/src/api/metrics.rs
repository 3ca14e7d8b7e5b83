//! `GET /metrics` of the server (operator token): every connection's session as its edge
//! last reported it, with its folder, and the control plane's own state. The edges serve
//! the same session metrics live (`cic edge --metrics-listen`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use cic_model::edge::SessionKind;
use cic_model::metrics::Exposition;
use cic_model::resource::{PrivateConnection, PublicConnection, RoutingInstance};

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiResult;

pub async fn metrics(
    State(st): State<Arc<AppState>>,
    who: Principal,
) -> ApiResult<impl IntoResponse> {
    who.require_admin()?;
    let mut folders: HashMap<String, String> = HashMap::new();
    for c in st.store.list::<PrivateConnection>(None).await? {
        folders.insert(c.meta.id, c.meta.folder_id);
    }
    for c in st.store.list::<PublicConnection>(None).await? {
        folders.insert(c.meta.id, c.meta.folder_id);
    }
    for r in st.store.list::<RoutingInstance>(None).await? {
        folders.insert(r.meta.id, r.meta.folder_id);
    }
    let mut e = Exposition::default();
    e.sample(
        "cic_store_revision",
        "gauge",
        "The revision of the desired state.",
        vec![],
        st.store.revision().await? as f64,
    );
    e.sample(
        "cic_operations_running",
        "gauge",
        "Operations waiting for edges to apply them.",
        vec![],
        st.store.count_pending_operations().await? as f64,
    );
    let expiry = st.tls_not_after.lock().ok().and_then(|t| {
        t.as_ref()
            .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
    });
    if let Some(t) = expiry {
        e.sample(
            "cic_tls_certificate_not_after_seconds",
            "gauge",
            "When the server's TLS certificate expires (unix seconds; re-read on SIGHUP).",
            vec![],
            t as f64,
        );
    }
    let now = time::OffsetDateTime::now_utc();
    let mut live: Vec<_> = st.live().await?.into_iter().collect();
    live.sort_by(|a, b| a.0.cmp(&b.0));
    for (edge, l) in &live {
        let at = crate::clock::parse(&l.reported_at);
        e.sample(
            "cic_edge_applied_revision",
            "gauge",
            "The config revision each edge has applied.",
            vec![("edge_id", edge.clone())],
            l.report.applied_revision as f64,
        );
        e.sample(
            "cic_edge_report_age_seconds",
            "gauge",
            "Seconds since each edge last reported.",
            vec![("edge_id", edge.clone())],
            at.map(|t| (now - t).as_seconds_f64().max(0.0))
                .unwrap_or(f64::NAN),
        );
        for s in &l.report.sessions {
            let id = match s.kind {
                SessionKind::Customer => "connection_id",
                SessionKind::Fabric => "routing_instance_id",
            };
            let folder = folders.get(&s.resource_id).cloned().unwrap_or_default();
            e.session(
                s,
                vec![
                    ("edge_id", edge.clone()),
                    ("folder_id", folder),
                    (id, s.resource_id.clone()),
                ],
            );
        }
    }
    Ok(([("content-type", "text/plain; version=0.0.4")], e.render()))
}
