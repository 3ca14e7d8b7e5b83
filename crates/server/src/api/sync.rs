//! Edge sync: the edge long-polls its desired config and reports what it applied.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use cic_model::ApiError;
use cic_model::edge::{EdgeConfig, EdgeConfigUpdate, EdgeReport, EdgeReportChanges, SessionStatus};
use serde::Deserialize;
use tracing::debug;

use super::{ApiQuery, not_found};
use crate::auth::Principal;
use crate::clock::now_ms;
use crate::compile::compile;
use crate::error::{ApiResult, StructJson};
use crate::{AppState, now};

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigQuery {
    /// Return when the store's revision is above this (0: at once).
    #[serde(default)]
    after_revision: u64,
    /// How long to wait for a newer revision, in seconds.
    #[serde(default)]
    wait_seconds: u64,
    /// The tag of the answer the edge holds: answer with the changes since it, when this
    /// server gave it (the whole config otherwise).
    #[serde(default)]
    changes_since: Option<String>,
}

pub async fn config(
    State(st): State<Arc<AppState>>,
    who: Principal,
    ApiQuery(q): ApiQuery<ConfigQuery>,
) -> ApiResult<Json<EdgeConfigUpdate>> {
    let edge_id = who.edge_id()?.to_string();
    let wait = Duration::from_secs(q.wait_seconds).min(st.config.max_wait);
    let mut rx = st.revision.subscribe();
    // Wait for a newer revision, or the timeout; either way answer with the current config.
    let _ = tokio::time::timeout(wait, rx.wait_for(|r| *r > q.after_revision)).await;
    let woke = Instant::now();
    let (snap, revision) = st.snapshot().await?;
    let read = woke.elapsed();
    let cfg = compile(&snap, &edge_id, revision, &st.settings())
        .ok_or_else(|| not_found("edge", &edge_id))?;
    let compiled = woke.elapsed() - read;
    let update = answer(&st, &edge_id, q.changes_since, cfg);
    debug!(
        edge = %edge_id, revision, snapshot = ?read, compile = ?compiled,
        whole = update.changes_since.is_none(), instances = update.config.instances.len(),
        removed = update.removed_instances.len(), "edge config compiled"
    );
    Ok(Json(update))
}

/// The answer to `edge_id`: the changes since the answer it holds when this server gave
/// that answer and still has it, the whole config otherwise; kept as the edge's next
/// base under a new tag. (Two requests of one edge at once — one abandoned by it — each
/// keep theirs, the later replacing the earlier: when the abandoned one is answered
/// last, the edge names a tag no longer kept and is answered whole next.)
fn answer(
    st: &AppState,
    edge_id: &str,
    since: Option<String>,
    cfg: EdgeConfig,
) -> EdgeConfigUpdate {
    let held = st
        .answered
        .lock()
        .ok()
        .and_then(|a| a.get(edge_id).cloned())
        .filter(|(tag, _)| since.as_ref() == Some(tag));
    let tag = crate::new_id("cf");
    let cfg = Arc::new(cfg);
    let update = match held {
        Some((since, old)) => cfg.changes_from(&old, tag.clone(), since),
        None => EdgeConfigUpdate {
            tag: tag.clone(),
            changes_since: None,
            removed_instances: vec![],
            config: EdgeConfig::clone(&cfg),
        },
    };
    if let Ok(mut a) = st.answered.lock() {
        a.insert(edge_id.to_string(), (tag, cfg));
    }
    update
}

/// What the server answers a report it took.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportTaken {
    /// The version the report is kept as: the edge's next report may be the changes
    /// since it (`changesSince`).
    pub version: String,
    /// This server counts the uptime of a session a report of changes leaves out (from
    /// its `establishedAt`): the edge need not send a session that only grew older.
    pub counts_uptime: bool,
}

/// `PUT …/edgeSync/status`: the edge's whole report.
pub async fn status(
    State(st): State<Arc<AppState>>,
    who: Principal,
    StructJson(report): StructJson<EdgeReport>,
) -> ApiResult<Json<ReportTaken>> {
    let edge_id = who.edge_id()?.to_string();
    let clock = now_ms();
    let mut report = report;
    reckon_established(&mut report.sessions, clock)?;
    take_report(&st, edge_id, report, clock).await
}

/// `PATCH …/edgeSync/status`: the edge's report as the changes since the last report the
/// server took from it, made whole onto that one; refused (ABORTED: send it whole) when
/// the last report taken is another.
pub async fn status_changes(
    State(st): State<Arc<AppState>>,
    who: Principal,
    StructJson(mut changes): StructJson<EdgeReportChanges>,
) -> ApiResult<Json<ReportTaken>> {
    let edge_id = who.edge_id()?.to_string();
    let since = changes.changes_since.clone();
    let clock = now_ms();
    reckon_established(&mut changes.sessions, clock)?;
    let mut base = st.kept_report(&edge_id);
    if base.as_ref().is_none_or(|b| b.version() != since) {
        // Another server (on the same database) may have taken the last one.
        base = st
            .live_of(Some(std::slice::from_ref(&edge_id)))
            .await?
            .remove(&edge_id);
    }
    let base = base.filter(|b| b.version() == since).ok_or_else(|| {
        ApiError::new(
            cic_model::Code::Aborted,
            format!(
                "changesSince {since:?} is not the last report taken from this edge: send the report whole"
            ),
        )
    })?;
    let report = changes
        .onto(&base.report)
        .map_err(|e| ApiError::field(&e.field, e.message))?;
    take_report(&st, edge_id, report, clock).await
}

/// The sessions an edge sent: each one's `establishedAt` by this server's clock, counted
/// back from the uptime the edge sent (its own steady count, whatever its wall clock
/// says). A session without one (an older agent's) is left as it is; one that is not a
/// time refuses the report.
fn reckon_established(
    sessions: &mut [SessionStatus],
    now: time::OffsetDateTime,
) -> Result<(), ApiError> {
    for s in sessions {
        let Some(at) = &s.established_at else {
            continue;
        };
        crate::clock::parse(at).ok_or_else(|| {
            ApiError::field(
                "sessions.establishedAt",
                format!(
                    "{at:?} (the {:?} session of {}) is not an RFC 3339 time",
                    s.kind, s.resource_id
                ),
            )
        })?;
        // An uptime going back before what RFC 3339 can write (the year 0) is refused,
        // not a panic or an empty time (an edge's report is input like any other).
        let since = i64::try_from(s.uptime_secs)
            .ok()
            .and_then(|up| now.checked_sub(time::Duration::seconds(up)))
            .filter(|t| t.year() >= 0)
            .ok_or_else(|| {
                ApiError::field(
                    "sessions.uptimeSecs",
                    format!(
                        "{} (the {:?} session of {}) goes back before the year 0",
                        s.uptime_secs, s.kind, s.resource_id
                    ),
                )
            })?;
        s.established_at = Some(crate::clock::text(since));
    }
    Ok(())
}

/// Each session's uptime from its `establishedAt` (reckoned just now for those the edge
/// sent, kept from before for those a report of changes left out); a clock gone back
/// gives 0. A session without one keeps the uptime it was sent with.
fn count_uptimes(report: &mut EdgeReport, now: time::OffsetDateTime) {
    for s in &mut report.sessions {
        if let Some(since) = s.established_at.as_deref().and_then(crate::clock::parse) {
            s.uptime_secs = u64::try_from((now - since).whole_seconds()).unwrap_or(0);
        }
    }
}

async fn take_report(
    st: &Arc<AppState>,
    edge_id: String,
    mut report: EdgeReport,
    clock: time::OffsetDateTime,
) -> ApiResult<Json<ReportTaken>> {
    count_uptimes(&mut report, clock);
    let current = st.store.revision().await?;
    if report.applied_revision > current {
        return Err(ApiError::field(
            "appliedRevision",
            format!(
                "{} is ahead of the server's revision {current}",
                report.applied_revision
            ),
        )
        .into());
    }
    let (at, version) = (now(), crate::new_id("rv"));
    let started = Instant::now();
    st.store
        .put_edge_report(&edge_id, &report, &at, &version)
        .await?;
    let stored = started.elapsed();
    let drained = st
        .store
        .get::<cic_model::resource::Edge>(&edge_id)
        .await?
        .is_some_and(|e| e.drain);
    st.history
        .record(&edge_id, crate::clock::unix_now_ms(), &report, drained);
    let revision = report.applied_revision;
    // Operations held by a failure that may pass wait for a later report at the same
    // revision: one with transient failures does not count as settled after, and undoes
    // the count of an earlier one at that revision (which may have let an operation on
    // several edges wait for another edge).
    let waiting = report.errors.iter().any(|e| e.transient);
    if waiting {
        st.unsettle(&edge_id, revision);
    }
    // Kept as decoded here: finishing operations next does not read it back.
    st.keep_report(&edge_id, report, at, version.clone());
    // Operations finish when their edges have applied their revision: a report at a
    // revision this server already settled after (a session's report, the periodic one)
    // finishes none, and does not queue for the writers' lock. A settle that failed, or
    // was cut short, is not counted: the next report settles again.
    if st.may_finish(&edge_id, revision) {
        st.settle().await?;
        if !waiting {
            st.settled_through(&edge_id, revision);
        }
    }
    debug!(edge = %edge_id, revision, stored = ?stored, settled = ?started.elapsed() - stored, "edge report taken");
    // The edge's next report may be the changes since this one.
    Ok(Json(ReportTaken {
        version,
        counts_uptime: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(established_at: Option<&str>, uptime_secs: u64) -> EdgeReport {
        let mut session = serde_json::json!({
            "resourceId": "pc1", "kind": "customer", "peer": "169.254.0.2", "peerAsn": 65001,
            "state": "ESTABLISHED", "uptimeSecs": uptime_secs, "prefixesReceived": 0,
            "prefixesAccepted": 0, "prefixesAdvertised": 0});
        if let Some(at) = established_at {
            session["establishedAt"] = at.into();
        }
        serde_json::from_value(serde_json::json!({
            "appliedRevision": 1, "dataplane": "vxlan", "errors": [], "sessions": [session]}))
        .unwrap()
    }

    fn at(s: &str) -> time::OffsetDateTime {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn an_uptime_beyond_the_calendar_is_refused_by_name_not_a_panic() {
        let now = at("2026-12-07T17:00:00Z");
        // Beyond the calendar's range, and within it but before the year 0.
        for up in [u64::MAX, i64::MAX as u64, 400_000_000_000, 100_000_000_000] {
            let mut r = report(Some("2026-12-07T15:58:00Z"), up);
            let e = reckon_established(&mut r.sessions, now).expect_err("refused");
            let text = serde_json::to_string(&e).unwrap();
            assert!(
                text.contains("sessions.uptimeSecs") && text.contains(&up.to_string()),
                "{text}"
            );
        }
        // Long, but within the calendar: taken.
        let mut r = report(Some("2026-12-07T15:58:00Z"), 3_000_000_000);
        reckon_established(&mut r.sessions, now).unwrap();
        assert!(
            r.sessions[0]
                .established_at
                .as_deref()
                .unwrap()
                .starts_with("1931-")
        );
    }

    #[test]
    fn a_sent_sessions_establishment_is_counted_back_from_its_uptime_by_our_clock() {
        let now = at("2026-12-07T17:00:00.250Z");
        // The edge's clock an hour behind: its uptime counts, not its clock.
        let mut r = report(Some("2026-12-07T15:58:00Z"), 120);
        reckon_established(&mut r.sessions, now).unwrap();
        count_uptimes(&mut r, now);
        assert_eq!(r.sessions[0].uptime_secs, 120);
        assert_eq!(
            r.sessions[0].established_at.as_deref(),
            Some("2026-12-07T16:58:00.25Z")
        );
    }

    #[test]
    fn a_session_left_out_grows_older_from_the_establishment_kept() {
        let now = at("2026-12-07T17:00:00Z");
        // Kept from an earlier report (by our clock) with the age it had then.
        let mut r = report(Some("2026-12-07T16:58:59.500Z"), 3);
        count_uptimes(&mut r, now);
        assert_eq!(r.sessions[0].uptime_secs, 60);
        assert_eq!(
            r.sessions[0].established_at.as_deref(),
            Some("2026-12-07T16:58:59.500Z")
        );
        // A clock that went back: not a negative age.
        let mut r = report(Some("2026-12-07T17:00:05Z"), 3);
        count_uptimes(&mut r, now);
        assert_eq!(r.sessions[0].uptime_secs, 0);
        // An older agent's session, without one: its own count stands.
        let mut r = report(None, 7);
        count_uptimes(&mut r, now);
        assert_eq!(r.sessions[0].uptime_secs, 7);
    }

    #[test]
    fn an_establishment_that_is_not_a_time_refuses_the_report_naming_it() {
        let mut r = report(Some("yesterday"), 3);
        let e = reckon_established(&mut r.sessions, at("2026-12-07T17:00:00Z")).unwrap_err();
        let text = format!("{e:?}");
        assert!(
            text.contains("sessions.establishedAt")
                && text.contains("yesterday")
                && text.contains("pc1"),
            "{text}"
        );
    }
}
