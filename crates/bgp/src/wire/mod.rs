//! BGP-4 wire codec (RFC 4271 §4), pure: bytes in, messages out, and back.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                           Marker (16 x 0xff)                  +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Decoding never panics on any input: every length is checked before it is used, and
//! every error carries the NOTIFICATION the RFCs require plus a sentence for people.

mod notification;
mod open;
mod prefix;
mod update;

pub use notification::{Notification, cease, error_code, header_err, open_err, update_err};
pub use open::{BgpRole, Capability, GrFamily, GracefulRestart, Open, cap_code};
pub use prefix::{decode_prefixes, encode_prefix, prefix_wire_len};
pub use update::{
    AsPathSegment, Origin, PathAttrs, RawAttr, Update, UpdateProblem, encode_updates,
    encode_updates_within, ipv6_end_of_rib, update_overhead,
};

use bytes::{BufMut, BytesMut};

pub const MARKER: [u8; 16] = [0xff; 16];
pub const HEADER_LEN: usize = 19;
/// RFC 4271 maximum; RFC 8654 extended messages are not negotiated.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// The longest message once extended messages are negotiated (RFC 8654).
pub const MAX_EXTENDED_LEN: usize = 65535;
pub const BGP_VERSION: u8 = 4;
pub const AS_TRANS: u32 = 23456;

/// The address families cic speaks, each with SAFI 1 (unicast): IPv4 in the classic
/// UPDATE fields and optionally MP-BGP, IPv6 in MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760,
/// RFC 2545).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

impl Afi {
    pub const BOTH: [Afi; 2] = [Afi::Ipv4, Afi::Ipv6];
    pub const SAFI_UNICAST: u8 = 1;

    /// The IANA address family number.
    pub fn code(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
        }
    }

    pub fn from_code(afi: u16) -> Option<Afi> {
        match afi {
            1 => Some(Afi::Ipv4),
            2 => Some(Afi::Ipv6),
            _ => None,
        }
    }

    pub fn of(n: &ipnet::IpNet) -> Afi {
        match n {
            ipnet::IpNet::V4(_) => Afi::Ipv4,
            ipnet::IpNet::V6(_) => Afi::Ipv6,
        }
    }

    pub fn max_len(self) -> u8 {
        match self {
            Afi::Ipv4 => 32,
            Afi::Ipv6 => 128,
        }
    }
}

/// ROUTE-REFRESH message subtypes (RFC 7313 §3).
pub mod refresh {
    /// A request for the peer's routes (RFC 2918).
    pub const REQUEST: u8 = 0;
    /// Beginning of a re-advertisement (BoRR).
    pub const BEGIN: u8 = 1;
    /// End of a re-advertisement (EoRR).
    pub const END: u8 = 2;
}

/// ROUTE-REFRESH Message Error (RFC 7313 §5) and its one subcode.
pub const ROUTE_REFRESH_ERROR: u8 = 7;
pub const ROUTE_REFRESH_INVALID_LENGTH: u8 = 1;

pub mod msg_type {
    pub const OPEN: u8 = 1;
    pub const UPDATE: u8 = 2;
    pub const NOTIFICATION: u8 = 3;
    pub const KEEPALIVE: u8 = 4;
    pub const ROUTE_REFRESH: u8 = 5;
}

/// (UPDATE is the large variant and the one that matters: messages are decoded one at a
/// time and handed on, so boxing it would cost an allocation per UPDATE for nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    /// RFC 2918: (AFI, SAFI); RFC 7313's message subtype ([`refresh`]: a request, or
    /// the beginning or end of a re-advertisement).
    RouteRefresh {
        afi: u16,
        safi: u8,
        subtype: u8,
    },
}

impl Message {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Open(_) => "OPEN",
            Message::Update(_) => "UPDATE",
            Message::Notification(_) => "NOTIFICATION",
            Message::Keepalive => "KEEPALIVE",
            Message::RouteRefresh { .. } => "ROUTE-REFRESH",
        }
    }

    /// Encodes one message. An UPDATE larger than 4096 bytes must be split by the
    /// caller with [`encode_updates`]; here it is encoded as is.
    pub fn encode(&self) -> BytesMut {
        let mut b = BytesMut::with_capacity(64);
        b.put_slice(&MARKER);
        b.put_u16(0); // length, patched below
        match self {
            Message::Open(o) => {
                b.put_u8(msg_type::OPEN);
                o.encode_body(&mut b);
            }
            Message::Update(u) => {
                b.put_u8(msg_type::UPDATE);
                u.encode_body(&mut b);
            }
            Message::Notification(n) => {
                b.put_u8(msg_type::NOTIFICATION);
                b.put_u8(n.code);
                b.put_u8(n.subcode);
                b.put_slice(&n.data);
            }
            Message::Keepalive => b.put_u8(msg_type::KEEPALIVE),
            Message::RouteRefresh { afi, safi, subtype } => {
                b.put_u8(msg_type::ROUTE_REFRESH);
                b.put_u16(*afi);
                b.put_u8(*subtype);
                b.put_u8(*safi);
            }
        }
        let len = b.len() as u16;
        b[16..18].copy_from_slice(&len.to_be_bytes());
        b
    }
}

/// Why a message could not be decoded: the NOTIFICATION to send (RFC 4271 §6) and a
/// human-readable reason with the byte offset, for logs and status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (at byte {offset}; {})", notification.describe())]
pub struct DecodeError {
    pub notification: Notification,
    pub reason: String,
    pub offset: usize,
}

impl DecodeError {
    pub fn new(
        code: u8,
        subcode: u8,
        data: Vec<u8>,
        offset: usize,
        reason: impl Into<String>,
    ) -> Self {
        DecodeError {
            notification: Notification {
                code,
                subcode,
                data,
            },
            reason: reason.into(),
            offset,
        }
    }
}

/// Context a decoder needs from the session: whether the peer is internal (LOCAL_PREF is
/// honoured only from iBGP peers, RFC 7606 §7.5).
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeContext {
    pub ibgp: bool,
    /// Both sides announced RFC 8654: UPDATEs, NOTIFICATIONs and ROUTE-REFRESHes may be
    /// up to 65,535 octets (OPEN and KEEPALIVE stay within 4,096).
    pub extended: bool,
}

/// Looks for one whole message at the front of `buf`. `Ok(None)`: need more bytes.
/// `Ok(Some((msg, n)))`: a message of `n` bytes.
pub fn decode_message(
    buf: &[u8],
    cx: &DecodeContext,
) -> Result<Option<(Message, usize)>, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    if buf[..16] != MARKER {
        // RFC 4271 §6.1: "If the Marker field of the message header is not as expected,
        // then a synchronization error has occurred".
        return Err(DecodeError::new(
            error_code::HEADER,
            header_err::NOT_SYNCHRONIZED,
            vec![],
            0,
            "marker is not all ones",
        ));
    }
    let len = u16::from_be_bytes([buf[16], buf[17]]) as usize;
    let ty = buf[18];
    let bad_len = || {
        DecodeError::new(
            error_code::HEADER,
            header_err::BAD_LENGTH,
            (len as u16).to_be_bytes().to_vec(),
            16,
            format!("length {len} is invalid for message type {ty}"),
        )
    };
    let max = match ty {
        msg_type::OPEN | msg_type::KEEPALIVE => MAX_MESSAGE_LEN,
        _ if cx.extended => MAX_EXTENDED_LEN,
        _ => MAX_MESSAGE_LEN,
    };
    if !(HEADER_LEN..=max).contains(&len) {
        return Err(bad_len());
    }
    let min = match ty {
        msg_type::OPEN => 29,
        msg_type::UPDATE => 23,
        msg_type::NOTIFICATION => 21,
        msg_type::KEEPALIVE => 19,
        msg_type::ROUTE_REFRESH => 23,
        _ => {
            return Err(DecodeError::new(
                error_code::HEADER,
                header_err::BAD_TYPE,
                vec![ty],
                18,
                format!("unknown message type {ty}"),
            ));
        }
    };
    if len < min
        || (ty == msg_type::KEEPALIVE && len != 19)
        || (ty == msg_type::ROUTE_REFRESH && len < 23)
    {
        return Err(bad_len());
    }
    if buf.len() < len {
        return Ok(None);
    }
    if ty == msg_type::ROUTE_REFRESH && len != 23 {
        // Longer than 4 octets: a BoRR or EoRR is a ROUTE-REFRESH Message Error with the
        // whole message as data (RFC 7313 §5); a request with ORF entries (RFC 5291, not
        // negotiated) a bad length.
        return Err(match buf[21] {
            refresh::BEGIN | refresh::END => DecodeError::new(
                ROUTE_REFRESH_ERROR,
                ROUTE_REFRESH_INVALID_LENGTH,
                buf[..len].to_vec(),
                16,
                format!(
                    "a ROUTE-REFRESH of subtype {} is {len} octets, not 23",
                    buf[21]
                ),
            ),
            _ => bad_len(),
        });
    }
    let body = &buf[HEADER_LEN..len];
    let msg = match ty {
        msg_type::OPEN => Message::Open(Open::decode_body(body)?),
        msg_type::UPDATE => Message::Update(Update::decode_body(body, cx)?),
        msg_type::NOTIFICATION => Message::Notification(Notification {
            code: body[0],
            subcode: body[1],
            data: body[2..].to_vec(),
        }),
        msg_type::KEEPALIVE => Message::Keepalive,
        _ => Message::RouteRefresh {
            afi: u16::from_be_bytes([body[0], body[1]]),
            subtype: body[2],
            safi: body[3],
        },
    };
    Ok(Some((msg, len)))
}

/// A bounds-checked cursor over a message body; offsets are relative to the message.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let v = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let s = self.take(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.remaining() < n {
            return None;
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Some(s)
    }
}

/// The decoder's invariants on any input, for the fuzz target (`fuzz/`) and its bounded
/// run in the tests: decoding never panics, in either context; a message that decodes
/// cleanly (an UPDATE without RFC 7606 problems) encodes to bytes that decode to the same
/// message. Panics when an invariant breaks; returns whether a message decoded.
#[doc(hidden)]
pub fn check_decoder(data: &[u8]) -> bool {
    let mut decoded = false;
    for cx in [
        DecodeContext {
            ibgp: false,
            extended: false,
        },
        DecodeContext {
            ibgp: true,
            extended: false,
        },
    ] {
        let Ok(Some((m, n))) = decode_message(data, &cx) else {
            continue;
        };
        assert!(n <= data.len(), "consumed {n} of {} bytes", data.len());
        decoded = true;
        if matches!(&m, Message::Update(u) if !u.problems.is_empty()) {
            continue;
        }
        let again = m.encode();
        match decode_message(&again, &cx) {
            Ok(Some((m2, n2))) => {
                assert_eq!(n2, again.len(), "re-encoded {m:?}");
                assert_eq!(m2, m, "re-encoded {again:x?}");
            }
            other => panic!("{m:?} re-encoded as {again:x?} decodes to {other:?}"),
        }
    }
    decoded
}

#[cfg(test)]
mod tests;
