//! Private connections: their peerings (one definition for both families), BGP and BFD
//! options, static routes and the requests that make and change them.

use super::*;

/// A family's peering types: the spec a client sends, the peering as stored and shown
/// (with the cloud's ASN), and the PATCH that merges into it. One definition for IPv4 and
/// IPv6, which differ only in their address types.
macro_rules! peering_types {
    ($family:literal, $spec:ident, $peering:ident, $patch:ident, $net:ty, $addr:ty) => {
        #[doc = concat!("The ", $family, " peering of a connection, as a client sends it.")]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $spec {
            #[schemars(with = "String")]
            pub peering_subnet: $net,
            pub peer_ip: $addr,
            pub cloud_ip: $addr,
            #[serde(with = "crate::int64")]
            #[schemars(with = "String")]
            pub peer_bgp_asn: u32,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peer_bgp_md5_key: Option<crate::Secret>,
        }

        #[doc = concat!("The ", $family, " peering of a connection: its own BGP session.")]
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $peering {
            #[schemars(with = "String")]
            pub peering_subnet: $net,
            pub peer_ip: $addr,
            pub cloud_ip: $addr,
            #[serde(with = "crate::int64")]
            #[schemars(with = "String")]
            pub peer_bgp_asn: u32,
            #[serde(with = "crate::int64")]
            #[schemars(with = "String")]
            pub cloud_bgp_asn: u32,
            /// The secret; shown masked unless the caller may read secrets.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub peer_bgp_md5_key: Option<crate::Secret>,
        }

        impl From<&$peering> for $spec {
            fn from(p: &$peering) -> $spec {
                $spec {
                    peering_subnet: p.peering_subnet,
                    peer_ip: p.peer_ip,
                    cloud_ip: p.cloud_ip,
                    peer_bgp_asn: p.peer_bgp_asn,
                    peer_bgp_md5_key: p.peer_bgp_md5_key.clone(),
                }
            }
        }

        impl $spec {
            /// The peering as stored: with the cloud's ASN.
            pub fn with_cloud_asn(&self, cloud_asn: u32) -> $peering {
                $peering {
                    peering_subnet: self.peering_subnet,
                    peer_ip: self.peer_ip,
                    cloud_ip: self.cloud_ip,
                    peer_bgp_asn: self.peer_bgp_asn,
                    cloud_bgp_asn: cloud_asn,
                    peer_bgp_md5_key: self.peer_bgp_md5_key.clone(),
                }
            }
        }

        /// A peering in a PATCH: a merge. The fields present change, the others stay as
        /// they are; the MD5 key stays unless the patch says otherwise ([`SecretPatch`]).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $patch {
            #[serde(default, deserialize_with = "present")]
            #[schemars(with = "Option<String>")]
            pub peering_subnet: Option<$net>,
            #[serde(default, deserialize_with = "present")]
            #[schemars(with = "Option<String>")]
            pub peer_ip: Option<$addr>,
            #[serde(default, deserialize_with = "present")]
            #[schemars(with = "Option<String>")]
            pub cloud_ip: Option<$addr>,
            #[serde(default, deserialize_with = "present_int64")]
            #[schemars(with = "Option<String>")]
            pub peer_bgp_asn: Option<u32>,
            /// Absent, or the mask it is shown as (`"********"`): unchanged. `null` or
            /// `""`: removed. Anything else: the new key.
            #[serde(default)]
            #[schemars(with = "Option<crate::Secret>")]
            pub peer_bgp_md5_key: SecretPatch,
        }

        impl $patch {
            /// The peering `old` with this patch applied.
            pub fn apply(self, old: &$spec) -> $spec {
                $spec {
                    peering_subnet: self.peering_subnet.unwrap_or(old.peering_subnet),
                    peer_ip: self.peer_ip.unwrap_or(old.peer_ip),
                    cloud_ip: self.cloud_ip.unwrap_or(old.cloud_ip),
                    peer_bgp_asn: self.peer_bgp_asn.unwrap_or(old.peer_bgp_asn),
                    peer_bgp_md5_key: self.peer_bgp_md5_key.apply(old.peer_bgp_md5_key.as_ref()),
                }
            }

            /// The patch as a new peering (the connection had none of this family): every
            /// required field must be there; `Err` names the first one missing.
            pub fn complete(self) -> Result<$spec, &'static str> {
                Ok($spec {
                    peering_subnet: self.peering_subnet.ok_or("peeringSubnet")?,
                    peer_ip: self.peer_ip.ok_or("peerIp")?,
                    cloud_ip: self.cloud_ip.ok_or("cloudIp")?,
                    peer_bgp_asn: self.peer_bgp_asn.ok_or("peerBgpAsn")?,
                    peer_bgp_md5_key: self.peer_bgp_md5_key.apply(None),
                })
            }
        }
    };
}

peering_types!(
    "IPv4",
    Ipv4PeeringSpec,
    Ipv4Peering,
    Ipv4PeeringPatch,
    Ipv4Net,
    Ipv4Addr
);
peering_types!(
    "IPv6",
    Ipv6PeeringSpec,
    Ipv6Peering,
    Ipv6PeeringPatch,
    Ipv6Net,
    Ipv6Addr
);

/// What a PATCH does to a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SecretPatch {
    /// Left out, or written back as the mask it was read as.
    #[default]
    Keep,
    /// `null` or `""`: removed.
    Remove,
    Set(crate::Secret),
}

impl SecretPatch {
    pub fn apply(self, old: Option<&crate::Secret>) -> Option<crate::Secret> {
        match self {
            SecretPatch::Keep => old.cloned(),
            SecretPatch::Remove => None,
            SecretPatch::Set(s) => Some(s),
        }
    }
}

impl<'de> Deserialize<'de> for SecretPatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<String>::deserialize(d)? {
            None => SecretPatch::Remove,
            Some(s) if s.is_empty() => SecretPatch::Remove,
            Some(s) if s == crate::SECRET_MASK => SecretPatch::Keep,
            Some(s) => SecretPatch::Set(crate::Secret::new(s)),
        })
    }
}

/// A field of a PATCH that may be left out but not set to null (it cannot be removed).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)?.map(Some).ok_or_else(|| {
        serde::de::Error::custom("cannot be null: it is required (leave it out to keep it)")
    })
}

/// [`present`] for an int64 field (a string or a number).
fn present_int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(with = "crate::int64")] u32);
    present::<D, Wrap>(d).map(|w| w.map(|w| w.0))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StaticRoute {
    #[schemars(with = "String")]
    pub prefix: Ipv4Net,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ipv6StaticRoute {
    #[schemars(with = "String")]
    pub prefix: Ipv6Net,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePrivateConnectionRequest {
    pub folder_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub labels: Labels,
    pub trunk_connection_id: String,
    #[serde(with = "crate::int64")]
    #[schemars(with = "String")]
    pub vlan_id: u32,
    /// The IPv4 peering and its BGP session; a connection has this, `ipv6Peering`, or
    /// both.
    #[serde(default)]
    pub ipv4_peering: Option<Ipv4PeeringSpec>,
    /// The IPv6 peering: a BGP session of its own over its own addresses.
    #[serde(default)]
    pub ipv6_peering: Option<Ipv6PeeringSpec>,
    #[serde(default)]
    pub ipv4_static_routes: Vec<StaticRoute>,
    #[serde(default)]
    pub ipv6_static_routes: Vec<Ipv6StaticRoute>,
    /// GTSM (RFC 5082) on the connection's sessions: the cloud takes only BGP segments
    /// sent with TTL 255 (the customer's router sets `ttl-security hops 1`). Absent: the
    /// operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<bool>,
    /// BGP roles (RFC 9234) on the connection's sessions: `OFF`, `ANNOUNCE` or `STRICT`.
    /// Absent: the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_role: Option<crate::edge::BgpRoleMode>,
    /// BFD timers of the connection's sessions (e.g. 100 ms × 3 for a faster failover),
    /// down to the operator's minimum. Absent: the operator's default (300 ms × 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdTimers>,
}

/// BFD timers a connection asks for (RFC 5880): its Desired Min TX and Required Min RX
/// interval, and the detection multiplier. The session runs at the slower of the two
/// sides' intervals; it is declared down after `multiplier` intervals without a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BfdTimers {
    pub min_interval_ms: u32,
    pub multiplier: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivateConnection {
    #[serde(flatten)]
    pub meta: Meta,
    pub trunk_connection_id: String,
    #[serde(with = "crate::int64")]
    #[schemars(with = "String")]
    pub vlan_id: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_peering: Option<Ipv4Peering>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_peering: Option<Ipv6Peering>,
    #[serde(default)]
    pub ipv4_static_routes: Vec<StaticRoute>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ipv6_static_routes: Vec<Ipv6StaticRoute>,
    /// GTSM (RFC 5082) on the connection's sessions, as the customer chose; absent: the
    /// operator's default (`bgpSessionOptions` shows what is in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<bool>,
    /// BGP roles (RFC 9234) on the connection's sessions, as the customer chose; absent:
    /// the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_role: Option<crate::edge::BgpRoleMode>,
    /// BFD timers, as the customer chose; absent: the operator's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdTimers>,
    /// What is in force on the connection's sessions: its own choices, else the
    /// operator's defaults (output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_session_options: Option<BgpSessionOptions>,
    /// BGP failover tests, newest last (the last 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bgp_failover_tests: Vec<FailoverTest>,
    /// How many times the session was restarted on request (`:resetBgpSession`).
    #[serde(default, skip_serializing_if = "is_zero", with = "crate::int64")]
    #[schemars(with = "String")]
    pub bgp_session_resets: u64,
    /// The routing instance this connection belongs to, if any (output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_instance_id: Option<String>,
    /// Live state of the IPv4 BGP session as last reported by the edge (output, not
    /// stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<crate::edge::SessionStatus>,
    /// Live state of the IPv6 BGP session (output, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp_ipv6: Option<crate::edge::SessionStatus>,
}

/// The session options in force on a connection (output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpSessionOptions {
    pub ttl_security: bool,
    pub bgp_role: crate::edge::BgpRoleMode,
    /// BFD timers the cloud's side runs (the session negotiates the slower of its and the
    /// customer router's); absent: no BFD (the operator turned it off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdTimers>,
}

impl BgpSessionOptions {
    /// A connection's choices over the operator's defaults.
    pub fn of(c: &PrivateConnection, defaults: &crate::edge::BgpSettings) -> BgpSessionOptions {
        BgpSessionOptions {
            ttl_security: c.ttl_security.unwrap_or(defaults.ttl_security),
            bgp_role: c.bgp_role.unwrap_or(defaults.bgp_role),
            bfd: BfdTimers::in_force(c.bfd, &defaults.bfd),
        }
    }
}

impl BfdTimers {
    /// A connection's timers over the operator's BFD settings (none while BFD is off).
    pub fn in_force(own: Option<BfdTimers>, op: &crate::edge::BfdSettings) -> Option<BfdTimers> {
        op.enabled.then(|| {
            own.unwrap_or(BfdTimers {
                min_interval_ms: op.interval_ms,
                multiplier: op.multiplier,
            })
        })
    }
}
