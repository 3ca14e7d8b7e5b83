//! The looking glass: the server asks an edge for a session's routes, and what comes back.

use serde::{Deserialize, Serialize};

use super::{Family, SessionFacts};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteDirection {
    /// Everything the customer announced, with the reason for each refused route.
    Received,
    /// What import policy accepted.
    Accepted,
    /// What the cloud announces to the customer.
    Advertised,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteQuery {
    pub id: String,
    pub connection_id: String,
    /// Which of the connection's sessions.
    #[serde(default, skip_serializing_if = "Family::is_ipv4")]
    pub family: Family,
    pub direction: RouteDirection,
    /// Asks for the session's [`SessionFacts`] instead of its routes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diagnose: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteEntry {
    #[schemars(with = "String")]
    pub prefix: ipnet::IpNet,
    /// NEXT_HOP for an IPv4 route, the MP_REACH_NLRI next hop for an IPv6 one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<std::net::IpAddr>,
    pub as_path: Vec<u32>,
    /// IGP, EGP or INCOMPLETE.
    pub origin: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Standard communities as `ASN:value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Why import policy refused it (received routes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<String>,
    /// Its origin validation state (RFC 6811): valid, invalid or not-found; absent when
    /// the edge has no RPKI data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpki: Option<String>,
}

/// An edge's answer to a [`RouteQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteAnswer {
    #[serde(default)]
    pub routes: Vec<RouteEntry>,
    /// Why there are no routes to show (the session is not on this edge, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The answer to a `diagnose` question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Box<SessionFacts>>,
}
