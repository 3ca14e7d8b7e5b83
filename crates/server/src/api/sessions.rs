//! A connection's BGP sessions (private and public connections alike): the failover test
//! and the session reset, and the history of their state and traffic.

use axum::Json;
use cic_model::ApiError;
use cic_model::resource::{FailoverTest, PrivateConnection, Status, TrunkConnection};
use cic_store::Action;

use super::{fetch, fetch_for, write_one};
use crate::AppState;
use crate::access::Need;
use crate::auth::Principal;
use crate::clock::text;
use crate::error::ApiResult;
use serde::Deserialize;
use serde_json::Value;

/// Body of `:startBgpFailoverTest` of a private connection (for the schema: the id is
/// taken out first, the rest read as [`FailoverTestBody`]).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct FailoverTestRequest {
    #[serde(default)]
    private_connection_id: Option<String>,
    /// How long the session stays down: 1 s to 3 days (default 5 minutes).
    #[serde(default)]
    duration_seconds: Option<u64>,
}

/// Body of `:startBgpFailoverTest` of a public connection (for the schema, as above).
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PublicFailoverTestRequest {
    #[serde(default)]
    public_connection_id: Option<String>,
    /// How long the session stays down: 1 s to 3 days (default 5 minutes).
    #[serde(default)]
    duration_seconds: Option<u64>,
}

/// What a session method's body says besides the connection's id.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FailoverTestBody {
    #[serde(default)]
    duration_seconds: Option<u64>,
}

/// A connection whose BGP session can be tested and reset: private and public ones.
pub(crate) trait Session: super::Tenant {
    /// `private connection`, `public connection`.
    const NOUN: &'static str;
    /// The body's optional repetition of the id: `privateConnectionId`, …
    const ID_FIELD: &'static str;
    fn tests_mut(&mut self) -> &mut Vec<FailoverTest>;
    fn tests(&self) -> &[FailoverTest];
    fn resets_mut(&mut self) -> &mut u64;
    fn trunk(&self) -> &str;
}

impl Session for PrivateConnection {
    const NOUN: &'static str = "private connection";
    const ID_FIELD: &'static str = "privateConnectionId";
    fn tests_mut(&mut self) -> &mut Vec<FailoverTest> {
        &mut self.bgp_failover_tests
    }
    fn tests(&self) -> &[FailoverTest] {
        &self.bgp_failover_tests
    }
    fn resets_mut(&mut self) -> &mut u64 {
        &mut self.bgp_session_resets
    }
    fn trunk(&self) -> &str {
        &self.trunk_connection_id
    }
}

impl Session for cic_model::resource::PublicConnection {
    const NOUN: &'static str = "public connection";
    const ID_FIELD: &'static str = "publicConnectionId";
    fn tests_mut(&mut self) -> &mut Vec<FailoverTest> {
        &mut self.bgp_failover_tests
    }
    fn tests(&self) -> &[FailoverTest] {
        &self.bgp_failover_tests
    }
    fn resets_mut(&mut self) -> &mut u64 {
        &mut self.bgp_session_resets
    }
    fn trunk(&self) -> &str {
        &self.trunk_connection_id
    }
}

/// Most failover tests kept in a connection's history.
const FAILOVER_HISTORY: usize = 20;

/// `POST …/privateConnections/{id}:startBgpFailoverTest` holds the session down for a
/// while (the edge brings it back by itself); `:stopBgpFailoverTest` ends a running test;
/// `:resetBgpSession` restarts the session at once, ending a max-prefix idle hold.
pub(crate) async fn session_method<T: Session>(
    st: &AppState,
    who: &Principal,
    id: &str,
    method: &str,
    body: &[u8],
) -> ApiResult<Json<Value>> {
    // The body's id field is the kind's own; the rest as in [`FailoverTestRequest`].
    let mut req: serde_json::Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Default::default()
    } else {
        crate::error::decode_json(body)?
    };
    let repeated = match req.remove(T::ID_FIELD) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ApiError::field(T::ID_FIELD, "must be a string").into()),
    };
    super::same_id(T::ID_FIELD, repeated.as_ref(), id)?;
    let req: FailoverTestBody =
        crate::error::decode_json(&serde_json::to_vec(&req).unwrap_or_default())?;
    let duration = req.duration_seconds.unwrap_or(300);
    if method == "startBgpFailoverTest" && !(1..=259_200).contains(&duration) {
        return Err(ApiError::field(
            "durationSeconds",
            format!("{duration} is out of range 1-259200 (3 days)"),
        )
        .into());
    }
    if method != "startBgpFailoverTest" && req.duration_seconds.is_some() {
        return Err(ApiError::field(
            "durationSeconds",
            format!("is for :startBgpFailoverTest, not :{method}"),
        )
        .into());
    }
    let _w = st.lock_writes().await?;
    let (old, view) = fetch_for::<T>(st, who, id, Need::Write).await?;
    if old.meta().status == Status::Deleting {
        return Err(ApiError::precondition(format!("{} {id} is being deleted", T::NOUN)).into());
    }
    let now = time::OffsetDateTime::now_utc();
    let running = old
        .tests()
        .last()
        .filter(|t| test_status(t, now) == "IN_PROGRESS")
        .cloned();
    let mut pc = old.clone();
    let description = match method {
        "startBgpFailoverTest" => {
            if let Some(t) = running {
                return Err(ApiError::precondition(format!(
                    "failover test {} is running until {}; stop it first",
                    t.id, t.ends_at
                ))
                .into());
            }
            let tests = pc.tests_mut();
            tests.push(FailoverTest {
                id: crate::new_id("ft"),
                started_at: text(now),
                ends_at: text(now + time::Duration::seconds(duration as i64)),
                stopped_at: None,
                started_by: who.subject().to_string(),
                status: String::new(),
            });
            let excess = tests.len().saturating_sub(FAILOVER_HISTORY);
            tests.drain(..excess);
            "Start BGP failover test"
        }
        "stopBgpFailoverTest" => {
            let Some(t) = pc
                .tests_mut()
                .last_mut()
                .filter(|t| test_status(t, now) == "IN_PROGRESS")
            else {
                return Err(ApiError::precondition(format!(
                    "{} {id} has no failover test running",
                    T::NOUN
                ))
                .into());
            };
            t.stopped_at = Some(text(now));
            "Stop BGP failover test"
        }
        _ => {
            *pc.resets_mut() += 1;
            "Reset BGP session"
        }
    };
    pc.meta_mut().status = Status::Updating;
    let edge = fetch::<TrunkConnection>(st, pc.trunk()).await?.edge_id;
    write_one(st, who, &view, &pc, description, Action::Update, vec![edge]).await
}

/// IN_PROGRESS, COMPLETED or STOPPED, at `now`.
pub(crate) fn test_status(t: &FailoverTest, now: time::OffsetDateTime) -> &'static str {
    let ends = crate::clock::parse(&t.ends_at).unwrap_or(now);
    match (&t.stopped_at, now < ends) {
        (Some(_), _) => "STOPPED",
        (None, true) => "IN_PROGRESS",
        (None, false) => "COMPLETED",
    }
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HistoryQuery {
    /// `hour` (every report of the last hour; the default) or `day` (a sample a minute).
    pub window: Option<String>,
}

/// `:history` of a connection: its BGP state, prefixes and traffic rates over the last
/// hour or day, and the events between, as this server took the edge's reports.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryAnswer {
    pub connection_id: String,
    pub window: String,
    /// Oldest first. Each: `at` (unix ms), `state` (BGP, IPv4's; `stateIpv6` beside it
    /// for a dual-stack connection), prefixes received/accepted/advertised, and bits and
    /// packets per second both ways since the sample before.
    #[schemars(with = "Vec<Value>")]
    pub samples: Vec<crate::history::Sample>,
    /// SESSION_DOWN (with the reason), SESSION_UP, BFD_DOWN, BFD_UP, PREFIX_LIMIT.
    #[schemars(with = "Vec<Value>")]
    pub events: Vec<crate::history::Event>,
}

pub(crate) async fn history(
    st: &AppState,
    who: &Principal,
    id: &str,
    q: HistoryQuery,
) -> ApiResult<Json<Value>> {
    let (pc, _) = super::fetch_for::<PrivateConnection>(st, who, id, Need::Read).await?;
    history_of(st, pc.meta.id, q)
}

/// The history of connection `id` (private or public), which the caller may read.
pub(crate) fn history_of(st: &AppState, id: String, q: HistoryQuery) -> ApiResult<Json<Value>> {
    let window = match q.window.as_deref() {
        None | Some("hour") => crate::history::Window::Hour,
        Some("day") => crate::history::Window::Day,
        Some(other) => {
            return Err(
                ApiError::field("window", format!("{other:?} is not one of hour, day")).into(),
            );
        }
    };
    let series = st.history.series(&id, window);
    let answer = HistoryAnswer {
        connection_id: id,
        window: q.window.unwrap_or_else(|| "hour".into()),
        samples: series.samples,
        events: series.events,
    };
    Ok(Json(serde_json::to_value(answer).unwrap_or_default()))
}
