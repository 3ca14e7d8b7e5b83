//! What edges reported, over time: per connection, its BGP state, prefixes and traffic
//! rates, in two bounded rings — every report for the last `recent` (an hour by default,
//! at the edges' report interval) and one sample a minute for the last `day` — and the
//! events seen between reports (a session down or up with its reason, BFD down, the
//! max-prefix hold). The console draws its graphs from it; `:history` serves it.
//!
//! Kept in this server's memory (the reports of the edges that report to it): a restart
//! starts it empty, and with several servers each has the history of the reports it took.
//! Its cost is fixed per connection by the flags (see [`HistoryConfig::bytes_per_connection`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use cic_model::edge::{Counters, EdgeReport, Family, SessionKind, SessionStatus};
use serde::Serialize;

/// How much history is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryConfig {
    /// Every report, this far back.
    pub recent: Duration,
    /// One sample a minute, this far back.
    pub day: Duration,
    /// Events kept per connection.
    pub events: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            recent: Duration::from_secs(3600),
            day: Duration::from_secs(86_400),
            events: 100,
        }
    }
}

impl HistoryConfig {
    /// The most a connection's history takes, for edges reporting every `report_every`.
    /// Counted as allocated: a ring's buffer grows by doubling, so it holds the next
    /// power of two of its samples; an event's text is at most [`MAX_EVENT_TEXT`]
    /// characters (counted at 64 bytes, a typical one). Edges that report more often
    /// than `report_every` (a session changing) add samples up to one a second.
    pub fn bytes_per_connection(&self, report_every: Duration) -> usize {
        let ring = |n: f64| (n.ceil() as usize + 1).next_power_of_two();
        let recent = ring(self.recent.as_secs_f64() / report_every.as_secs_f64().max(1.0));
        let minutes = ring((self.day.as_secs() / 60) as f64);
        let events = ring(self.events as f64);
        (recent + minutes) * std::mem::size_of::<Sample>()
            + events * (std::mem::size_of::<Event>() + 64)
            + std::mem::size_of::<Connection>()
            + 64
    }
}

/// BGP state, as a number (compact; the API shows the word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BgpState {
    /// The edge reported no session (a failover test holds it down, its link is down,
    /// or it is being made or removed).
    #[default]
    NoSession,
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl BgpState {
    fn of(word: &str) -> BgpState {
        match word {
            "IDLE" => BgpState::Idle,
            "CONNECT" => BgpState::Connect,
            "ACTIVE" => BgpState::Active,
            "OPEN_SENT" => BgpState::OpenSent,
            "OPEN_CONFIRM" => BgpState::OpenConfirm,
            "ESTABLISHED" => BgpState::Established,
            _ => BgpState::NoSession,
        }
    }

    /// The worse of two (down beats up), for a minute's sample.
    fn worse(self, o: BgpState) -> BgpState {
        if self == BgpState::Established {
            o
        } else {
            self
        }
    }
}

/// One point of a connection's history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Unix milliseconds.
    pub at: i64,
    /// The IPv4 session's state (the IPv6 one's for an IPv6-only connection).
    pub state: BgpState,
    /// The IPv6 session's, for a dual-stack connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_ipv6: Option<BgpState>,
    pub prefixes_received: u32,
    pub prefixes_accepted: u32,
    pub prefixes_advertised: u32,
    /// Rates since the sample before (absent at the first, or when a counter went back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_to_cloud: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_from_cloud: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_to_cloud: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets_from_cloud: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub at: i64,
    /// SESSION_DOWN, SESSION_UP, BFD_DOWN, BFD_UP, PREFIX_LIMIT, DRAIN, UNDRAIN.
    pub kind: &'static str,
    pub text: String,
}

/// A minute being summed into one sample: its rates weighted by the seconds each covers.
#[derive(Debug, Default)]
struct Minute {
    start: i64,
    sample: Sample,
    /// Rate × seconds, summed (bits to and from the cloud, packets to and from).
    weighted: [f64; 4],
    secs: f64,
}

impl Minute {
    fn add_rates(&mut self, s: &Sample, secs: Option<f64>) {
        let (Some(secs), Some(a), Some(b), Some(c), Some(d)) = (
            secs,
            s.bits_to_cloud,
            s.bits_from_cloud,
            s.packets_to_cloud,
            s.packets_from_cloud,
        ) else {
            return;
        };
        for (w, r) in self.weighted.iter_mut().zip([a, b, c, d]) {
            *w += f64::from(r) * secs;
        }
        self.secs += secs;
    }
}

#[derive(Debug, Default)]
struct Connection {
    /// The edge that reported it last, and when (unix ms; what pruning goes by: an edge
    /// that no longer reports a connection records it as without a session, not alive).
    edge: String,
    seen_at: i64,
    recent: VecDeque<Sample>,
    minutes: VecDeque<Sample>,
    events: VecDeque<Event>,
    minute: Option<Minute>,
    /// The last report's counters and its time, for rates.
    counters: Option<(i64, Counters)>,
    /// The last report's session facts, for events (the IPv6 session's beside, for a
    /// dual-stack connection).
    last: Option<Seen>,
    last6: Option<Seen>,
}

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: BgpState,
    bfd_up: Option<bool>,
    held: bool,
}

/// The windows a history can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// Seconds between samples: the report interval (hour) or 60 (day).
    pub samples: Vec<Sample>,
    pub events: Vec<Event>,
}

#[derive(Debug, Default)]
pub struct History {
    config: HistoryConfig,
    connections: Mutex<HashMap<String, Connection>>,
    /// Each edge's drain (maintenance) as its last report found it, for its events.
    drains: Mutex<HashMap<String, bool>>,
    /// Reports taken (every so many, connections no report names any longer are dropped).
    taken: std::sync::atomic::AtomicU64,
}

/// How often the connections that are no longer reported are looked for.
const PRUNE_EVERY: u64 = 256;
/// Samples closer than this are one (edges report at once when a session changes).
const MIN_GAP_MS: i64 = 1000;
/// An event's text is cut to this many characters (a peer's message can be long).
const MAX_EVENT_TEXT: usize = 200;

impl History {
    pub fn new(config: HistoryConfig) -> History {
        History {
            config,
            connections: Mutex::new(HashMap::new()),
            drains: Mutex::new(HashMap::new()),
            taken: Default::default(),
        }
    }

    /// Takes the report of edge `edge` made at `at` (unix ms), the edge drained for
    /// maintenance or not. A connection this edge reported before and does not now has no
    /// session (a failover test holds it down); a drain begun or ended since its last
    /// report is an event of each of its connections.
    pub fn record(&self, edge: &str, at: i64, report: &EdgeReport, drained: bool) {
        if self.config.recent.is_zero() && self.config.day.is_zero() {
            return;
        }
        let drain_changed = self
            .drains
            .lock()
            .ok()
            .and_then(|mut d| d.insert(edge.to_string(), drained))
            .is_some_and(|was| was != drained);
        let mut by_id: HashMap<&str, (Option<&SessionStatus>, Option<&SessionStatus>)> =
            HashMap::new();
        for s in report
            .sessions
            .iter()
            .filter(|s| s.kind == SessionKind::Customer)
        {
            let e = by_id.entry(s.resource_id.as_str()).or_default();
            match s.family {
                Family::Ipv4 => e.0 = Some(s),
                Family::Ipv6 => e.1 = Some(s),
            }
        }
        let counters: HashMap<&str, &Counters> = report
            .traffic
            .iter()
            .map(|t| (t.resource_id.as_str(), &t.counters))
            .collect();
        let mut all = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (id, c) in all.iter_mut() {
            if c.edge == edge && !by_id.contains_key(id.as_str()) {
                c.take(
                    at,
                    None,
                    None,
                    counters.get(id.as_str()).copied(),
                    &self.config,
                );
            }
        }
        for (id, (v4, v6)) in by_id {
            let c = all.entry(id.to_string()).or_default();
            if c.edge != edge {
                // Another edge's counters and sessions: no rate or event across the two.
                c.edge = edge.to_string();
                c.counters = None;
                c.last = None;
                c.last6 = None;
            }
            c.seen_at = at;
            c.take(at, v4, v6, counters.get(id).copied(), &self.config);
        }
        if drain_changed {
            let (kind, text) = if drained {
                (
                    "DRAIN",
                    "the edge was drained for maintenance: its routes carry GRACEFUL_SHUTDOWN",
                )
            } else {
                ("UNDRAIN", "the edge's drain ended")
            };
            for c in all.values_mut().filter(|c| c.edge == edge) {
                c.push_event(at, kind, text.to_string(), self.config.events);
            }
        }
        // A connection no edge has reported for longer than the history reaches back
        // (deleted, or moved to another server's edges) is forgotten.
        let n = self
            .taken
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % PRUNE_EVERY == PRUNE_EVERY - 1 {
            let reach = self.config.recent.max(self.config.day).as_millis() as i64;
            all.retain(|_, c| c.seen_at >= at - reach);
        }
    }

    pub fn series(&self, id: &str, window: Window) -> Series {
        let Ok(all) = self.connections.lock() else {
            return Series {
                samples: vec![],
                events: vec![],
            };
        };
        let Some(c) = all.get(id) else {
            return Series {
                samples: vec![],
                events: vec![],
            };
        };
        let (samples, span) = match window {
            Window::Hour => (c.recent.iter().copied().collect::<Vec<_>>(), 3_600_000),
            Window::Day => {
                let mut v: Vec<Sample> = c.minutes.iter().copied().collect();
                if let Some(m) = &c.minute {
                    v.push(m.summary());
                }
                (v, 86_400_000)
            }
        };
        // The window, whatever the rings keep (`--history-minutes` may keep more).
        let from = samples.last().map(|s| s.at - span).unwrap_or(0);
        let samples: Vec<Sample> = samples.into_iter().filter(|s| s.at >= from).collect();
        Series {
            events: c.events.iter().filter(|e| e.at >= from).cloned().collect(),
            samples,
        }
    }

    /// Connections with a history (for the cost report).
    pub fn len(&self) -> usize {
        self.connections.lock().map(|a| a.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Minute {
    fn summary(&self) -> Sample {
        let mut s = self.sample;
        let avg = |i: usize| (self.secs > 0.0).then(|| (self.weighted[i] / self.secs) as f32);
        s.bits_to_cloud = avg(0);
        s.bits_from_cloud = avg(1);
        s.packets_to_cloud = avg(2);
        s.packets_from_cloud = avg(3);
        s.at = self.start;
        s
    }
}

impl Connection {
    fn take(
        &mut self,
        at: i64,
        v4: Option<&SessionStatus>,
        v6: Option<&SessionStatus>,
        counters: Option<&Counters>,
        cfg: &HistoryConfig,
    ) {
        let main = v4.or(v6);
        let other = v4.and(v6);
        let mut s = Sample {
            at,
            state: main.map_or(BgpState::NoSession, |m| BgpState::of(&m.state)),
            state_ipv6: other.map(|s| BgpState::of(&s.state)),
            prefixes_received: main
                .map_or(0, |m| m.prefixes_received)
                .saturating_add(other.map_or(0, |s| s.prefixes_received)),
            prefixes_accepted: main
                .map_or(0, |m| m.prefixes_accepted)
                .saturating_add(other.map_or(0, |s| s.prefixes_accepted)),
            prefixes_advertised: main
                .map_or(0, |m| m.prefixes_advertised)
                .saturating_add(other.map_or(0, |s| s.prefixes_advertised)),
            ..Default::default()
        };
        // Rates over at least a second: a report soon after another (edges report at
        // once when a session changes) is merged into the sample before it.
        let close = self.recent.back().is_some_and(|x| at - x.at < MIN_GAP_MS);
        let mut interval = None;
        match (counters, &self.counters) {
            (Some(now), Some((then, before))) if at - then >= MIN_GAP_MS => {
                let secs = (at - then) as f64 / 1000.0;
                if let Some(r) =
                    cic_model::metrics::Rates::between(&traffic(before), &traffic(now), secs)
                {
                    s.bits_to_cloud = Some(r.bits_to_cloud as f32);
                    s.bits_from_cloud = Some(r.bits_from_cloud as f32);
                    s.packets_to_cloud = Some(r.packets_to_cloud as f32);
                    s.packets_from_cloud = Some(r.packets_from_cloud as f32);
                    interval = Some(secs);
                }
                self.counters = Some((at, *now));
            }
            (Some(now), None) => self.counters = Some((at, *now)),
            // Too soon for a rate, or a report without counters (an edge sends them once
            // per report interval): the last ones stay for the next rate.
            (Some(_), Some(_)) | (None, _) => {}
        }
        self.events_of(at, main, other, cfg.events);
        // Every report (at most one a second), for the recent window.
        if !cfg.recent.is_zero() {
            match self.recent.back_mut() {
                Some(last) if close => {
                    last.state = last.state.worse(s.state);
                    last.state_ipv6 = match (last.state_ipv6, s.state_ipv6) {
                        (Some(a), Some(b)) => Some(a.worse(b)),
                        (a, b) => a.or(b),
                    };
                    last.prefixes_received = s.prefixes_received;
                    last.prefixes_accepted = s.prefixes_accepted;
                    last.prefixes_advertised = s.prefixes_advertised;
                    if s.bits_to_cloud.is_some() {
                        last.bits_to_cloud = s.bits_to_cloud;
                        last.bits_from_cloud = s.bits_from_cloud;
                        last.packets_to_cloud = s.packets_to_cloud;
                        last.packets_from_cloud = s.packets_from_cloud;
                    }
                }
                _ => self.recent.push_back(s),
            }
            let oldest = at - cfg.recent.as_millis() as i64;
            while self.recent.front().is_some_and(|x| x.at < oldest) {
                self.recent.pop_front();
            }
        }
        // A sample a minute, for the day.
        if !cfg.day.is_zero() {
            let start = at - at.rem_euclid(60_000);
            match &mut self.minute {
                Some(m) if m.start == start => {
                    m.add_rates(&s, interval);
                    m.sample.state = m.sample.state.worse(s.state);
                    m.sample.state_ipv6 = match (m.sample.state_ipv6, s.state_ipv6) {
                        (Some(a), Some(b)) => Some(a.worse(b)),
                        (a, b) => a.or(b),
                    };
                    m.sample.prefixes_received = s.prefixes_received;
                    m.sample.prefixes_accepted = s.prefixes_accepted;
                    m.sample.prefixes_advertised = s.prefixes_advertised;
                }
                _ => {
                    if let Some(done) = self.minute.take() {
                        self.minutes.push_back(done.summary());
                        let oldest = at - cfg.day.as_millis() as i64;
                        while self.minutes.front().is_some_and(|x| x.at < oldest) {
                            self.minutes.pop_front();
                        }
                    }
                    let mut m = Minute {
                        start,
                        sample: s,
                        ..Default::default()
                    };
                    m.add_rates(&s, interval);
                    self.minute = Some(m);
                }
            }
        }
    }

    fn push_event(&mut self, at: i64, kind: &'static str, mut text: String, keep: usize) {
        if let Some((cut, _)) = text.char_indices().nth(MAX_EVENT_TEXT) {
            text.truncate(cut);
            text.push('…');
        }
        self.events.push_back(Event { at, kind, text });
        while self.events.len() > keep {
            self.events.pop_front();
        }
    }

    /// Events: what changed since the last report, of the connection's session (`s`, if
    /// there is one) and of its IPv6 session beside it (`s6`, dual stack).
    fn events_of(
        &mut self,
        at: i64,
        s: Option<&SessionStatus>,
        s6: Option<&SessionStatus>,
        keep: usize,
    ) {
        let seen = Seen::of(s);
        let seen6 = s6.map(|x| Seen::of(Some(x)));
        let before = self.last.replace(seen.clone());
        let before6 = std::mem::replace(&mut self.last6, seen6.clone());
        let mut found = Vec::new();
        if let Some(before) = before {
            found.extend(changes(&before, &seen, s, ""));
        }
        if let (Some(before6), Some(seen6)) = (before6, seen6) {
            found.extend(changes(&before6, &seen6, s6, "IPv6 "));
        }
        for (kind, text) in found {
            self.push_event(at, kind, text, keep);
        }
    }
}

impl Seen {
    fn of(s: Option<&SessionStatus>) -> Seen {
        Seen {
            state: s.map_or(BgpState::NoSession, |s| BgpState::of(&s.state)),
            bfd_up: s
                .and_then(|s| s.bfd.as_ref())
                .map(|b| b.state.eq_ignore_ascii_case("up")),
            held: s.is_some_and(|s| s.prefix_limit_exceeded),
        }
    }
}

/// The events between two reports of one session (`family`: "" or "IPv6 ").
fn changes(
    before: &Seen,
    seen: &Seen,
    s: Option<&SessionStatus>,
    family: &str,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let up = |x: BgpState| x == BgpState::Established;
    if up(before.state) && !up(seen.state) {
        let why = match s {
            None => {
                ": the edge has no session (a failover test holds it down, or its link is down)"
                    .to_string()
            }
            Some(s) => s
                .last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
        };
        out.push(("SESSION_DOWN", format!("{family}BGP session down{why}")));
    } else if !up(before.state) && up(seen.state) {
        out.push(("SESSION_UP", format!("{family}BGP session established")));
    }
    match (before.bfd_up, seen.bfd_up) {
        (Some(true), Some(false)) => {
            let why = s
                .and_then(|s| s.bfd.as_ref())
                .and_then(|b| b.last_diagnostic.clone())
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            out.push(("BFD_DOWN", format!("{family}BFD down{why}")));
        }
        (Some(false), Some(true)) => out.push(("BFD_UP", format!("{family}BFD up"))),
        _ => {}
    }
    if !before.held && seen.held {
        out.push((
            "PREFIX_LIMIT",
            format!("{family}more prefixes than the limit: the session is held down"),
        ));
    }
    out
}

fn traffic(c: &Counters) -> cic_model::metrics::Traffic {
    cic_model::metrics::Traffic {
        bytes_to_cloud: c.bytes_to_cloud,
        bytes_from_cloud: c.bytes_from_cloud,
        packets_to_cloud: c.packets_to_cloud,
        packets_from_cloud: c.packets_from_cloud,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cic_model::edge::ConnectionCounters;

    fn session(state: &str, received: u32, error: Option<&str>) -> SessionStatus {
        serde_json::from_value(serde_json::json!({
            "resourceId": "pc1", "kind": "customer", "peer": "169.254.0.2", "peerAsn": 65001,
            "state": state, "uptimeSecs": 0, "prefixesReceived": received,
            "prefixesAccepted": received, "prefixesAdvertised": 2, "lastError": error,
            "bfd": {"state": if state == "ESTABLISHED" { "up" } else { "down" }}
        }))
        .expect("session")
    }

    fn report(s: SessionStatus, bytes: u64) -> EdgeReport {
        EdgeReport {
            applied_revision: 1,
            dataplane: "x".into(),
            sessions: vec![s],
            errors: vec![],
            traffic: vec![ConnectionCounters {
                resource_id: "pc1".into(),
                counters: Counters {
                    bytes_to_cloud: bytes,
                    bytes_from_cloud: bytes / 2,
                    packets_to_cloud: bytes / 100,
                    packets_from_cloud: bytes / 200,
                },
            }],
        }
    }

    #[test]
    fn reports_become_rates_states_and_events() {
        let h = History::new(HistoryConfig::default());
        let t0 = 1_700_000_000_000;
        h.record("e1", t0, &report(session("ESTABLISHED", 3, None), 0), false);
        h.record(
            "e1",
            t0 + 5_000,
            &report(session("ESTABLISHED", 4, None), 5_000_000),
            false,
        );
        h.record(
            "e1",
            t0 + 10_000,
            &report(session("IDLE", 0, Some("hold timer expired")), 5_000_000),
            false,
        );
        h.record(
            "e1",
            t0 + 15_000,
            &report(session("ESTABLISHED", 3, None), 5_000_000),
            false,
        );
        let s = h.series("pc1", Window::Hour);
        assert_eq!(s.samples.len(), 4);
        assert_eq!(
            s.samples[0].bits_to_cloud, None,
            "no rate at the first report"
        );
        assert_eq!(s.samples[1].bits_to_cloud, Some(8_000_000.0), "5 MB in 5 s");
        assert_eq!(s.samples[1].prefixes_received, 4);
        assert_eq!(s.samples[2].state, BgpState::Idle);
        let kinds: Vec<&str> = s.events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["SESSION_DOWN", "BFD_DOWN", "SESSION_UP", "BFD_UP"]);
        assert!(s.events[0].text.contains("hold timer expired"));
        assert!(h.series("other", Window::Hour).samples.is_empty());
    }

    #[test]
    fn a_session_the_edge_stops_reporting_is_down_until_it_returns() {
        let h = History::new(HistoryConfig::default());
        let t0 = 1_700_000_000_000;
        h.record("e1", t0, &report(session("ESTABLISHED", 3, None), 0), false);
        let mut none = report(session("ESTABLISHED", 3, None), 0);
        none.sessions.clear();
        h.record("e1", t0 + 5_000, &none, false);
        h.record("e2", t0 + 6_000, &none, false);
        h.record(
            "e1",
            t0 + 10_000,
            &report(session("ESTABLISHED", 3, None), 0),
            false,
        );
        let s = h.series("pc1", Window::Hour);
        let states: Vec<BgpState> = s.samples.iter().map(|x| x.state).collect();
        assert_eq!(
            states,
            [
                BgpState::Established,
                BgpState::NoSession,
                BgpState::Established
            ],
            "another edge's report says nothing of it"
        );
        assert!(s.events[0].text.contains("failover test"), "{:?}", s.events);
    }

    #[test]
    fn the_rings_are_bounded_and_the_day_is_down_sampled_by_minute() {
        let cfg = HistoryConfig {
            recent: Duration::from_secs(60),
            day: Duration::from_secs(600),
            events: 3,
        };
        let h = History::new(cfg);
        // On a minute.
        let t0: i64 = 1_700_000_040_000;
        for i in 0..(20 * 12) {
            // Every 5 s for 20 minutes, the session flapping every report.
            let state = if i % 2 == 0 { "ESTABLISHED" } else { "IDLE" };
            h.record(
                "e1",
                t0 + i * 5_000,
                &report(session(state, 1, None), i as u64 * 1000),
                false,
            );
        }
        let hour = h.series("pc1", Window::Hour);
        assert!(
            hour.samples.len() <= 13,
            "a minute of 5 s reports: {}",
            hour.samples.len()
        );
        assert!(hour.events.len() <= 3);
        let day = h.series("pc1", Window::Day);
        assert!(
            day.samples.len() <= 11,
            "ten minutes and the one being summed"
        );
        assert!(day.samples.len() >= 10);
        assert!(day.samples.iter().all(|s| s.at % 60_000 == 0));
        assert!(
            day.samples.iter().all(|s| s.state == BgpState::Idle),
            "a minute with a down report is down"
        );
        let rate = day.samples[1].bits_to_cloud.expect("a rate");
        assert!(
            (rate - 1600.0).abs() < 1.0,
            "1000 bytes per 5 s averaged: {rate}"
        );
        assert!(cfg.bytes_per_connection(Duration::from_secs(5)) > 0);
    }

    #[test]
    fn reports_a_moment_apart_are_one_sample_and_rates_span_a_second_at_least() {
        let h = History::new(HistoryConfig::default());
        let t0 = 1_700_000_000_000;
        h.record("e1", t0, &report(session("ESTABLISHED", 3, None), 0), false);
        // A burst of reports as a session flaps: one sample, the worse state kept.
        for (i, state) in ["IDLE", "ESTABLISHED", "ESTABLISHED"].iter().enumerate() {
            let at = t0 + 100 * (i as i64 + 1);
            h.record(
                "e1",
                at,
                &report(session(state, 3, Some("x".repeat(500).as_str())), 1000),
                false,
            );
        }
        let s = h.series("pc1", Window::Hour);
        assert_eq!(s.samples.len(), 1, "{:?}", s.samples);
        assert_eq!(s.samples[0].state, BgpState::Idle);
        assert!(
            s.events[0].text.chars().count() <= MAX_EVENT_TEXT + 1,
            "cut"
        );
        // The next rate spans from the first report: 1,000,000 bytes in 2 s.
        h.record(
            "e1",
            t0 + 2_000,
            &report(session("ESTABLISHED", 3, None), 1_000_000),
            false,
        );
        let s = h.series("pc1", Window::Hour);
        assert_eq!(s.samples[1].bits_to_cloud, Some(4_000_000.0));
        // Another edge reporting it (a move): no rate across the two edges' counters.
        h.record(
            "e2",
            t0 + 4_000,
            &report(session("ESTABLISHED", 3, None), 7),
            false,
        );
        let s = h.series("pc1", Window::Hour);
        assert_eq!(s.samples[2].bits_to_cloud, None);
    }

    #[test]
    fn a_report_without_counters_keeps_the_last_ones_for_the_next_rate() {
        let h = History::new(HistoryConfig::default());
        h.record("e1", 0, &report(session("ESTABLISHED", 1, None), 0), false);
        let mut bare = report(session("ESTABLISHED", 1, None), 0);
        bare.traffic.clear();
        h.record("e1", 2_000, &bare, false);
        h.record(
            "e1",
            5_000,
            &report(session("ESTABLISHED", 1, None), 5_000_000),
            false,
        );
        let s = h.series("pc1", Window::Hour);
        assert_eq!(s.samples[1].bits_to_cloud, None, "no counters, no rate");
        assert_eq!(
            s.samples[2].bits_to_cloud,
            Some(8_000_000.0),
            "over the 5 s since"
        );
    }

    #[test]
    fn a_minute_s_rate_is_weighted_by_the_seconds_each_report_covers() {
        let h = History::new(HistoryConfig::default());
        let t0: i64 = 1_700_000_040_000; // on a minute
        let at = |ms: i64| t0 + ms;
        h.record(
            "e1",
            at(0),
            &report(session("ESTABLISHED", 1, None), 0),
            false,
        );
        // 1 s at 8 Mbit/s, then 9 s at 0: 0.8 Mbit/s over the ten seconds.
        h.record(
            "e1",
            at(1_000),
            &report(session("ESTABLISHED", 1, None), 1_000_000),
            false,
        );
        h.record(
            "e1",
            at(10_000),
            &report(session("ESTABLISHED", 1, None), 1_000_000),
            false,
        );
        let day = h.series("pc1", Window::Day);
        let rate = day.samples[0].bits_to_cloud.expect("a rate");
        assert!((rate - 800_000.0).abs() < 1.0, "{rate}");
    }

    #[test]
    fn a_dual_stack_connection_s_ipv6_session_has_events_of_its_own() {
        let h = History::new(HistoryConfig::default());
        let both = |v6: &str| {
            let mut r = report(session("ESTABLISHED", 1, None), 0);
            let mut s6 = session(v6, 1, Some("hold timer expired"));
            s6.family = Family::Ipv6;
            r.sessions.push(s6);
            r
        };
        h.record("e1", 0, &both("ESTABLISHED"), false);
        h.record("e1", 5_000, &both("IDLE"), false);
        let s = h.series("pc1", Window::Hour);
        let texts: Vec<&str> = s.events.iter().map(|e| e.text.as_str()).collect();
        assert_eq!(
            texts[0], "IPv6 BGP session down: hold timer expired",
            "{texts:?}"
        );
        assert_eq!(s.samples[1].state, BgpState::Established);
        assert_eq!(s.samples[1].state_ipv6, Some(BgpState::Idle));
    }

    #[test]
    fn a_max_prefix_hold_is_an_event() {
        let h = History::new(HistoryConfig::default());
        h.record("e1", 0, &report(session("ESTABLISHED", 1, None), 0), false);
        let mut held = session("IDLE", 0, Some("Cease: maximum number of prefixes reached"));
        held.prefix_limit_exceeded = true;
        h.record("e1", 5_000, &report(held.clone(), 0), false);
        h.record("e1", 10_000, &report(held, 0), false);
        let kinds: Vec<&str> = h
            .series("pc1", Window::Hour)
            .events
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["SESSION_DOWN", "BFD_DOWN", "PREFIX_LIMIT"],
            "once, when it begins"
        );
    }

    #[test]
    fn a_drain_of_the_edge_is_an_event_of_its_connections() {
        let h = History::new(HistoryConfig::default());
        let up = report(session("ESTABLISHED", 1, None), 0);
        h.record("e1", 0, &up, false);
        h.record("e1", 5_000, &up, true);
        h.record("e1", 10_000, &up, true);
        h.record("e2", 12_000, &up, false);
        h.record("e1", 15_000, &up, false);
        let kinds: Vec<&str> = h
            .series("pc1", Window::Hour)
            .events
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["DRAIN", "UNDRAIN"]);
    }

    #[test]
    fn connections_no_longer_reported_are_forgotten() {
        let cfg = HistoryConfig {
            recent: Duration::from_secs(60),
            day: Duration::from_secs(120),
            events: 3,
        };
        let h = History::new(cfg);
        h.record("e1", 0, &report(session("ESTABLISHED", 1, None), 0), false);
        let mut other = report(session("ESTABLISHED", 1, None), 0);
        other.sessions[0].resource_id = "pc2".into();
        for i in 1..=PRUNE_EVERY as i64 {
            h.record("e1", i * 1_000, &other, false);
        }
        assert!(!h.series("pc2", Window::Hour).samples.is_empty());
        assert!(
            h.series("pc1", Window::Day).samples.is_empty(),
            "pc1 was last reported over two minutes before"
        );
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn the_default_cost_per_connection_is_as_documented() {
        let per = HistoryConfig::default().bytes_per_connection(Duration::from_secs(5));
        // README: about 190 KiB a connection with reports every 5 s (720 reports, 1,440
        // minutes, 100 events, in buffers of 1,024, 2,048 and 128).
        assert!((180 * 1024..200 * 1024).contains(&per), "{per}");
        let busy = HistoryConfig::default().bytes_per_connection(Duration::from_secs(1));
        // README: at most about 370 KiB when a connection's edge reports every second.
        assert!(busy < 380 * 1024, "{busy}");
        assert_eq!(
            std::mem::size_of::<Sample>(),
            56,
            "README's figure a sample"
        );
    }
}
