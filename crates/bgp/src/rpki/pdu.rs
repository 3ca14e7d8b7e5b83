//! The RPKI to Router protocol's PDUs (RFC 8210 §5; version 0, RFC 6810): their types,
//! the Error Report codes, and their decoding and encoding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::Vrp;

pub mod pdu_type {
    pub const SERIAL_NOTIFY: u8 = 0;
    pub const SERIAL_QUERY: u8 = 1;
    pub const RESET_QUERY: u8 = 2;
    pub const CACHE_RESPONSE: u8 = 3;
    pub const IPV4_PREFIX: u8 = 4;
    pub const IPV6_PREFIX: u8 = 6;
    pub const END_OF_DATA: u8 = 7;
    pub const CACHE_RESET: u8 = 8;
    pub const ROUTER_KEY: u8 = 9;
    pub const ERROR_REPORT: u8 = 10;
}

/// Error Report codes (RFC 8210 §12).
pub mod error_code {
    pub const CORRUPT_DATA: u16 = 0;
    pub const INTERNAL_ERROR: u16 = 1;
    pub const NO_DATA_AVAILABLE: u16 = 2;
    pub const INVALID_REQUEST: u16 = 3;
    pub const UNSUPPORTED_VERSION: u16 = 4;
    pub const UNSUPPORTED_PDU_TYPE: u16 = 5;
    pub const WITHDRAWAL_OF_UNKNOWN: u16 = 6;
    pub const DUPLICATE_ANNOUNCEMENT: u16 = 7;
    pub const UNEXPECTED_VERSION: u16 = 8;
}

pub(super) fn error_name(code: u16) -> &'static str {
    match code {
        error_code::CORRUPT_DATA => "Corrupt Data",
        error_code::INTERNAL_ERROR => "Internal Error",
        error_code::NO_DATA_AVAILABLE => "No Data Available",
        error_code::INVALID_REQUEST => "Invalid Request",
        error_code::UNSUPPORTED_VERSION => "Unsupported Protocol Version",
        error_code::UNSUPPORTED_PDU_TYPE => "Unsupported PDU Type",
        error_code::WITHDRAWAL_OF_UNKNOWN => "Withdrawal of Unknown Record",
        error_code::DUPLICATE_ANNOUNCEMENT => "Duplicate Announcement Received",
        error_code::UNEXPECTED_VERSION => "Unexpected Protocol Version",
        _ => "unknown error",
    }
}

/// The timers a version 1 cache gives in its End of Data (RFC 8210 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
}

impl Intervals {
    /// Within the ranges RFC 8210 §6 allows: a cache saying 0 must not make us poll it
    /// in a tight loop, nor one saying a year keep data that long.
    pub fn bounded(self) -> Intervals {
        Intervals {
            refresh: self.refresh.clamp(1, 86_400),
            retry: self.retry.clamp(1, 7_200),
            expire: self.expire.clamp(600, 172_800),
        }
    }
}

impl Default for Intervals {
    /// RFC 8210 §6's defaults.
    fn default() -> Self {
        Intervals {
            refresh: 3600,
            retry: 600,
            expire: 7200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    SerialNotify {
        session: u16,
        serial: u32,
    },
    SerialQuery {
        session: u16,
        serial: u32,
    },
    ResetQuery,
    CacheResponse {
        session: u16,
    },
    Prefix {
        announce: bool,
        vrp: Vrp,
    },
    EndOfData {
        session: u16,
        serial: u32,
        intervals: Option<Intervals>,
    },
    CacheReset,
    /// BGPsec router keys: read past, not used.
    RouterKey,
    ErrorReport {
        code: u16,
        pdu: Vec<u8>,
        text: String,
    },
}

/// Why bytes from the cache could not be read: the Error Report to send, and a line for
/// the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduError {
    pub code: u16,
    pub why: String,
}

/// Longest PDU we take (an Error Report with its text; RFC 8210 sets no limit).
const MAX_PDU: usize = 64 * 1024;

impl Pdu {
    pub fn encode(&self, version: u8) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        let header = |b: &mut Vec<u8>, t: u8, field: u16| {
            b.push(version);
            b.push(t);
            b.extend_from_slice(&field.to_be_bytes());
            b.extend_from_slice(&[0; 4]);
        };
        match self {
            Pdu::SerialNotify { session, serial } | Pdu::SerialQuery { session, serial } => {
                let t = match self {
                    Pdu::SerialNotify { .. } => pdu_type::SERIAL_NOTIFY,
                    _ => pdu_type::SERIAL_QUERY,
                };
                header(&mut b, t, *session);
                b.extend_from_slice(&serial.to_be_bytes());
            }
            Pdu::ResetQuery => header(&mut b, pdu_type::RESET_QUERY, 0),
            Pdu::CacheResponse { session } => header(&mut b, pdu_type::CACHE_RESPONSE, *session),
            Pdu::Prefix { announce, vrp } => {
                let (t, addr): (u8, Vec<u8>) = match vrp.prefix {
                    IpNet::V4(n) => (pdu_type::IPV4_PREFIX, n.addr().octets().to_vec()),
                    IpNet::V6(n) => (pdu_type::IPV6_PREFIX, n.addr().octets().to_vec()),
                };
                header(&mut b, t, 0);
                b.extend_from_slice(&[
                    u8::from(*announce),
                    vrp.prefix.prefix_len(),
                    vrp.max_len,
                    0,
                ]);
                b.extend_from_slice(&addr);
                b.extend_from_slice(&vrp.asn.to_be_bytes());
            }
            Pdu::EndOfData {
                session,
                serial,
                intervals,
            } => {
                header(&mut b, pdu_type::END_OF_DATA, *session);
                b.extend_from_slice(&serial.to_be_bytes());
                if version >= 1 {
                    let i = intervals.unwrap_or_default();
                    for v in [i.refresh, i.retry, i.expire] {
                        b.extend_from_slice(&v.to_be_bytes());
                    }
                }
            }
            Pdu::CacheReset => header(&mut b, pdu_type::CACHE_RESET, 0),
            Pdu::RouterKey => header(&mut b, pdu_type::ROUTER_KEY, 0),
            Pdu::ErrorReport { code, pdu, text } => {
                header(&mut b, pdu_type::ERROR_REPORT, *code);
                b.extend_from_slice(&(pdu.len() as u32).to_be_bytes());
                b.extend_from_slice(pdu);
                b.extend_from_slice(&(text.len() as u32).to_be_bytes());
                b.extend_from_slice(text.as_bytes());
            }
        }
        let len = b.len() as u32;
        b[4..8].copy_from_slice(&len.to_be_bytes());
        b
    }

    /// Reads one PDU from the front of `buf`: `Ok(None)` until it is all there, else the
    /// PDU, its version and its length.
    pub fn decode(buf: &[u8]) -> Result<Option<(Pdu, u8, usize)>, PduError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let (version, t) = (buf[0], buf[1]);
        let field = u16::from_be_bytes([buf[2], buf[3]]);
        let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
        let corrupt = |why: String| PduError {
            code: error_code::CORRUPT_DATA,
            why,
        };
        if version > 1 {
            return Err(PduError {
                code: error_code::UNSUPPORTED_VERSION,
                why: format!("protocol version {version} (we speak 0 and 1)"),
            });
        }
        if !(8..=MAX_PDU).contains(&len) {
            return Err(corrupt(format!("PDU type {t} of length {len}")));
        }
        if buf.len() < len {
            return Ok(None);
        }
        let body = &buf[8..len];
        let want = |n: usize| -> Result<(), PduError> {
            if body.len() == n {
                Ok(())
            } else {
                Err(corrupt(format!(
                    "PDU type {t} of length {len}, not {}",
                    n + 8
                )))
            }
        };
        let u32_at =
            |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
        let pdu = match t {
            pdu_type::SERIAL_NOTIFY | pdu_type::SERIAL_QUERY => {
                want(4)?;
                let (session, serial) = (field, u32_at(0));
                if t == pdu_type::SERIAL_NOTIFY {
                    Pdu::SerialNotify { session, serial }
                } else {
                    Pdu::SerialQuery { session, serial }
                }
            }
            pdu_type::RESET_QUERY => {
                want(0)?;
                Pdu::ResetQuery
            }
            pdu_type::CACHE_RESPONSE => {
                want(0)?;
                Pdu::CacheResponse { session: field }
            }
            pdu_type::IPV4_PREFIX | pdu_type::IPV6_PREFIX => {
                let v4 = t == pdu_type::IPV4_PREFIX;
                want(if v4 { 12 } else { 24 })?;
                let (flags, plen, max_len) = (body[0], body[1], body[2]);
                let alen = if v4 { 4 } else { 16 };
                let addr: IpAddr = if v4 {
                    Ipv4Addr::new(body[4], body[5], body[6], body[7]).into()
                } else {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(&body[4..20]);
                    Ipv6Addr::from(o).into()
                };
                let asn = u32_at(4 + alen);
                let max = if v4 { 32 } else { 128 };
                if plen > max_len || max_len > max {
                    return Err(corrupt(format!(
                        "prefix length {plen} and max length {max_len} (of at most {max})"
                    )));
                }
                let prefix =
                    IpNet::new(addr, plen).map_err(|_| corrupt(format!("prefix length {plen}")))?;
                if prefix.trunc() != prefix {
                    return Err(corrupt(format!("{prefix} has host bits set")));
                }
                Pdu::Prefix {
                    announce: flags & 1 == 1,
                    vrp: Vrp {
                        prefix,
                        max_len,
                        asn,
                    },
                }
            }
            pdu_type::END_OF_DATA => {
                let serial;
                let intervals = if version == 0 {
                    want(4)?;
                    serial = u32_at(0);
                    None
                } else {
                    want(16)?;
                    serial = u32_at(0);
                    Some(Intervals {
                        refresh: u32_at(4),
                        retry: u32_at(8),
                        expire: u32_at(12),
                    })
                };
                Pdu::EndOfData {
                    session: field,
                    serial,
                    intervals,
                }
            }
            pdu_type::CACHE_RESET => {
                want(0)?;
                Pdu::CacheReset
            }
            pdu_type::ROUTER_KEY if version >= 1 => {
                // RFC 8210 §5.10: a 20-octet SKI, a 4-octet AS, then the key itself.
                if body.len() < 25 {
                    return Err(corrupt(format!(
                        "a Router Key of length {len} (a key and its SKI take at least 33)"
                    )));
                }
                Pdu::RouterKey
            }
            pdu_type::ERROR_REPORT => {
                let bad = || corrupt("an Error Report whose lengths do not add up".into());
                if body.len() < 8 {
                    return Err(bad());
                }
                let plen = u32_at(0) as usize;
                let rest = body.get(4 + plen..).ok_or_else(bad)?;
                if rest.len() < 4 {
                    return Err(bad());
                }
                let tlen = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if rest.len() != 4 + tlen {
                    return Err(bad());
                }
                Pdu::ErrorReport {
                    code: field,
                    pdu: body[4..4 + plen].to_vec(),
                    text: String::from_utf8_lossy(&rest[4..]).into_owned(),
                }
            }
            other => {
                return Err(PduError {
                    code: error_code::UNSUPPORTED_PDU_TYPE,
                    why: format!("PDU type {other}"),
                });
            }
        };
        Ok(Some((pdu, version, len)))
    }
}
