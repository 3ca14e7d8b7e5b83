//! OPEN (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional parameters
//! length (RFC 9072).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+
//! |    Version    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     My Autonomous System      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Hold Time           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         BGP Identifier                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Opt Parm Len  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             Optional Parameters (variable)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::{AS_TRANS, BGP_VERSION, DecodeError, HEADER_LEN, Reader, error_code, open_err};

const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: a Non-Ext OP Len of 255 followed by a Non-Ext OP Type of 255.
const PARAM_EXTENDED: u8 = 255;

pub mod cap_code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const ROLE: u8 = 9;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const FOUR_OCTET_AS: u8 = 65;
}

/// A speaker's role on a session (RFC 9234 §3.1), which says where routes may go: a
/// route learned from a provider or a peer goes only down to customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BgpRole {
    Provider = 0,
    RouteServer = 1,
    RsClient = 2,
    Customer = 3,
    Peer = 4,
}

impl BgpRole {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => BgpRole::Provider,
            1 => BgpRole::RouteServer,
            2 => BgpRole::RsClient,
            3 => BgpRole::Customer,
            4 => BgpRole::Peer,
            _ => return None,
        })
    }

    /// The role the other side must have (RFC 9234 §4.2, table 2).
    pub fn counterpart(self) -> Self {
        match self {
            BgpRole::Provider => BgpRole::Customer,
            BgpRole::Customer => BgpRole::Provider,
            BgpRole::RouteServer => BgpRole::RsClient,
            BgpRole::RsClient => BgpRole::RouteServer,
            BgpRole::Peer => BgpRole::Peer,
        }
    }

    /// The config spelling (RFC 9234's names, lower case).
    pub fn name(self) -> &'static str {
        match self {
            BgpRole::Provider => "provider",
            BgpRole::RouteServer => "rs",
            BgpRole::RsClient => "rs-client",
            BgpRole::Customer => "customer",
            BgpRole::Peer => "peer",
        }
    }

    /// Parses the config spelling: provider, rs, rs-client, customer, peer.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "provider" => BgpRole::Provider,
            "rs" | "route-server" => BgpRole::RouteServer,
            "rs-client" => BgpRole::RsClient,
            "customer" => BgpRole::Customer,
            "peer" => BgpRole::Peer,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760: AFI, SAFI.
    Multiprotocol { afi: u16, safi: u8 },
    /// RFC 2918.
    RouteRefresh,
    /// RFC 7313: re-advertisements are framed by BoRR and EoRR.
    EnhancedRouteRefresh,
    /// RFC 9234: the sender's role on this session (a [`BgpRole`] code; kept as sent).
    Role(u8),
    /// RFC 8654: messages up to 65,535 octets.
    ExtendedMessage,
    /// RFC 6793: the speaker's real (4-octet) ASN.
    FourOctetAs(u32),
    /// RFC 4724.
    GracefulRestart(GracefulRestart),
    /// Any other capability, kept as received.
    Unknown { code: u8, data: Vec<u8> },
}

impl Capability {
    fn encode(&self, b: &mut BytesMut) {
        match self {
            Capability::Multiprotocol { afi, safi } => {
                b.put_slice(&[cap_code::MULTIPROTOCOL, 4]);
                b.put_u16(*afi);
                b.put_u8(0);
                b.put_u8(*safi);
            }
            Capability::RouteRefresh => b.put_slice(&[cap_code::ROUTE_REFRESH, 0]),
            Capability::EnhancedRouteRefresh => {
                b.put_slice(&[cap_code::ENHANCED_ROUTE_REFRESH, 0]);
            }
            Capability::Role(r) => b.put_slice(&[cap_code::ROLE, 1, *r]),
            Capability::ExtendedMessage => b.put_slice(&[cap_code::EXTENDED_MESSAGE, 0]),
            Capability::FourOctetAs(asn) => {
                b.put_slice(&[cap_code::FOUR_OCTET_AS, 4]);
                b.put_u32(*asn);
            }
            Capability::GracefulRestart(gr) => {
                b.put_u8(cap_code::GRACEFUL_RESTART);
                b.put_u8((2 + 4 * gr.families.len()) as u8);
                let mut flags_time = gr.restart_time & 0x0fff;
                if gr.restarting {
                    flags_time |= 0x8000;
                }
                if gr.notification {
                    flags_time |= 0x4000;
                }
                b.put_u16(flags_time);
                for f in &gr.families {
                    b.put_u16(f.afi);
                    b.put_u8(f.safi);
                    b.put_u8(if f.forwarding { 0x80 } else { 0 });
                }
            }
            Capability::Unknown { code, data } => {
                b.put_u8(*code);
                b.put_u8(data.len() as u8);
                b.put_slice(data);
            }
        }
    }
}

/// The Graceful Restart capability (RFC 4724 §3).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits) R N . . | Restart Time (12 bits, seconds) |
/// +--------------------------------------------------+
/// | AFI (16) | SAFI (8) | Flags for Address Family (8): F . . . . . . . |  repeated
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    /// R: the sender has restarted; the receiver should not wait for its End-of-RIB
    /// before sending its own routes.
    pub restarting: bool,
    /// N (RFC 8538): NOTIFICATIONs also start a graceful restart. Decoded, never set by us.
    pub notification: bool,
    /// How long the receiver should keep our routes while the session is down (≤ 4095 s).
    pub restart_time: u16,
    pub families: Vec<GrFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrFamily {
    pub afi: u16,
    pub safi: u8,
    /// F: forwarding for this family was preserved across the restart.
    pub forwarding: bool,
}

impl GracefulRestart {
    /// Whether `afi` (unicast) is covered, and with forwarding preserved.
    pub fn family(&self, afi: super::Afi) -> Option<bool> {
        self.families
            .iter()
            .find(|f| f.afi == afi.code() && f.safi == super::Afi::SAFI_UNICAST)
            .map(|f| f.forwarding)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// The 2-octet "My Autonomous System" field (AS_TRANS for 4-octet ASNs).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// An OPEN for `asn` with the capabilities cic always announces: IPv4 unicast,
    /// route refresh, 4-octet AS.
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr) -> Self {
        Open::for_families(asn, hold_time, bgp_id, &[super::Afi::Ipv4])
    }

    /// [`Open::new`] announcing `families` (unicast each) instead of IPv4 alone.
    pub fn for_families(
        asn: u32,
        hold_time: u16,
        bgp_id: Ipv4Addr,
        families: &[super::Afi],
    ) -> Self {
        let mut capabilities: Vec<Capability> = families
            .iter()
            .map(|afi| Capability::Multiprotocol {
                afi: afi.code(),
                safi: super::Afi::SAFI_UNICAST,
            })
            .collect();
        capabilities.extend([
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
            Capability::FourOctetAs(asn),
        ]);
        Open {
            version: BGP_VERSION,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS as u16),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The speaker's ASN: the 4-octet capability when present (RFC 6793 §3), else My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(self.my_as as u32)
    }

    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
    }

    pub fn has(&self, cap: &Capability) -> bool {
        self.capabilities.contains(cap)
    }

    /// IPv4 unicast is on when announced, or implicitly when no multiprotocol capability is
    /// announced at all (RFC 4760 §8).
    pub fn supports_ipv4_unicast(&self) -> bool {
        let mp: Vec<_> = self
            .capabilities
            .iter()
            .filter(|c| matches!(c, Capability::Multiprotocol { .. }))
            .collect();
        mp.is_empty() || self.has(&Capability::Multiprotocol { afi: 1, safi: 1 })
    }

    pub(super) fn encode_body(&self, b: &mut BytesMut) {
        b.put_u8(self.version);
        b.put_u16(self.my_as);
        b.put_u16(self.hold_time);
        b.put_slice(&self.bgp_id.octets());
        // All capabilities in one Capabilities parameter, as BIRD and FRR send them.
        let mut caps = BytesMut::new();
        for c in &self.capabilities {
            c.encode(&mut caps);
        }
        if caps.is_empty() {
            b.put_u8(0);
        } else {
            b.put_u8(caps.len() as u8 + 2);
            b.put_u8(PARAM_CAPABILITIES);
            b.put_u8(caps.len() as u8);
            b.put_slice(&caps);
        }
    }

    pub(super) fn decode_body(body: &[u8]) -> Result<Open, DecodeError> {
        let mut r = Reader::new(body, HEADER_LEN);
        let short = |off| {
            DecodeError::new(
                error_code::HEADER,
                super::header_err::BAD_LENGTH,
                vec![],
                off,
                "OPEN is truncated",
            )
        };
        let version = r.u8().ok_or_else(|| short(r.offset()))?;
        if version != BGP_VERSION {
            // RFC 4271 §6.2: data is the largest locally supported version number.
            return Err(DecodeError::new(
                error_code::OPEN,
                open_err::UNSUPPORTED_VERSION,
                vec![0, BGP_VERSION],
                HEADER_LEN,
                format!("BGP version {version} is not supported (only 4)"),
            ));
        }
        let my_as = r.u16().ok_or_else(|| short(r.offset()))?;
        let hold_time = r.u16().ok_or_else(|| short(r.offset()))?;
        let id = r.u32().ok_or_else(|| short(r.offset()))?;
        let mut opt_len = r.u8().ok_or_else(|| short(r.offset()))? as usize;
        let mut extended = false;
        if opt_len == 255 && r.remaining() >= 1 && body.get(10) == Some(&PARAM_EXTENDED) {
            r.u8();
            opt_len = r.u16().ok_or_else(|| short(r.offset()))? as usize;
            extended = true;
        }
        let malformed = |off, what: &str| {
            DecodeError::new(
                error_code::OPEN,
                0,
                vec![],
                off,
                format!("malformed optional parameters: {what}"),
            )
        };
        if r.remaining() != opt_len {
            return Err(malformed(r.offset(), "length does not match the message"));
        }
        let mut capabilities = Vec::new();
        while !r.is_empty() {
            let at = r.offset();
            let ty = r.u8().ok_or_else(|| malformed(at, "truncated parameter"))?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            }
            .ok_or_else(|| malformed(at, "truncated parameter length"))?;
            let val = r
                .take(len)
                .ok_or_else(|| malformed(at, "parameter overruns the message"))?;
            if ty != PARAM_CAPABILITIES {
                return Err(DecodeError::new(
                    error_code::OPEN,
                    open_err::UNSUPPORTED_OPT_PARAM,
                    vec![],
                    at,
                    format!("optional parameter type {ty} is not supported"),
                ));
            }
            let mut cr = Reader::new(val, at + if extended { 3 } else { 2 });
            while !cr.is_empty() {
                let cat = cr.offset();
                let code = cr
                    .u8()
                    .ok_or_else(|| malformed(cat, "truncated capability"))?;
                let clen = cr
                    .u8()
                    .ok_or_else(|| malformed(cat, "truncated capability"))?
                    as usize;
                let data = cr
                    .take(clen)
                    .ok_or_else(|| malformed(cat, "capability overruns its parameter"))?;
                let bad_len = || malformed(cat, &format!("capability {code} has length {clen}"));
                capabilities.push(match code {
                    cap_code::MULTIPROTOCOL => {
                        if clen != 4 {
                            return Err(bad_len());
                        }
                        Capability::Multiprotocol {
                            afi: u16::from_be_bytes([data[0], data[1]]),
                            safi: data[3],
                        }
                    }
                    cap_code::ROUTE_REFRESH => {
                        if clen != 0 {
                            return Err(bad_len());
                        }
                        Capability::RouteRefresh
                    }
                    cap_code::EXTENDED_MESSAGE => {
                        if clen != 0 {
                            return Err(bad_len());
                        }
                        Capability::ExtendedMessage
                    }
                    cap_code::ROLE => {
                        if clen != 1 {
                            return Err(bad_len());
                        }
                        Capability::Role(data[0])
                    }
                    cap_code::ENHANCED_ROUTE_REFRESH => {
                        if clen != 0 {
                            return Err(bad_len());
                        }
                        Capability::EnhancedRouteRefresh
                    }
                    cap_code::FOUR_OCTET_AS => {
                        if clen != 4 {
                            return Err(bad_len());
                        }
                        Capability::FourOctetAs(u32::from_be_bytes([
                            data[0], data[1], data[2], data[3],
                        ]))
                    }
                    cap_code::GRACEFUL_RESTART => {
                        if clen < 2 || !(clen - 2).is_multiple_of(4) {
                            return Err(bad_len());
                        }
                        let flags_time = u16::from_be_bytes([data[0], data[1]]);
                        Capability::GracefulRestart(GracefulRestart {
                            restarting: flags_time & 0x8000 != 0,
                            notification: flags_time & 0x4000 != 0,
                            restart_time: flags_time & 0x0fff,
                            families: data[2..]
                                .chunks_exact(4)
                                .map(|f| GrFamily {
                                    afi: u16::from_be_bytes([f[0], f[1]]),
                                    safi: f[2],
                                    forwarding: f[3] & 0x80 != 0,
                                })
                                .collect(),
                        })
                    }
                    _ => Capability::Unknown {
                        code,
                        data: data.to_vec(),
                    },
                });
            }
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
    }
}
