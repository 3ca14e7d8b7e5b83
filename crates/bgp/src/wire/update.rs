//! UPDATE (RFC 4271 §4.3), path attributes, and the revised error handling of RFC 7606:
//! a malformed attribute costs the routes of that one UPDATE ("treat-as-withdraw") or
//! just the attribute ("attribute discard"), and resets the session only when the
//! message itself cannot be parsed.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! +-----------------------------------------------------+
//! |   Withdrawn Routes (variable)                       |
//! +-----------------------------------------------------+
//! |   Total Path Attribute Length (2 octets)            |
//! +-----------------------------------------------------+
//! |   Path Attributes (variable)                        |
//! +-----------------------------------------------------+
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::IpNet;

use super::prefix::{decode_prefixes, encode_prefix, prefix_wire_len};
use super::{
    Afi, DecodeContext, DecodeError, HEADER_LEN, MAX_MESSAGE_LEN, Reader, error_code, update_err,
};

mod decode;
use decode::{Seen, decode_attrs};

pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH: u8 = 14;
    pub const MP_UNREACH: u8 = 15;
    pub const EXT_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
    /// Only to Customer (RFC 9234 §5).
    pub const OTC: u8 = 35;
}

pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Origin {
    #[default]
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsPathSegment {
    Set(Vec<u32>),
    Sequence(Vec<u32>),
}

/// An attribute cic does not interpret but passes on (optional transitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttr {
    pub flags: u8,
    pub type_code: u8,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct PathAttrs {
    pub origin: Origin,
    pub as_path: Vec<AsPathSegment>,
    /// NEXT_HOP, for IPv4 NLRI.
    pub next_hop: Option<Ipv4Addr>,
    /// The global IPv6 next hop of MP_REACH_NLRI, for IPv6 NLRI (RFC 2545 §3).
    pub next_hop6: Option<Ipv6Addr>,
    /// The link-local IPv6 next hop, when the peer sent one beside the global.
    pub link_local6: Option<Ipv6Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<(u32, Ipv4Addr)>,
    pub communities: Vec<u32>,
    pub large_communities: Vec<[u32; 3]>,
    /// Only to Customer (RFC 9234): the AS that first sent the route down to a customer
    /// or across to a peer; a route carrying it must not go up or across again.
    pub otc: Option<u32>,
    /// Unrecognised optional transitive attributes and extended communities, in order.
    pub other: Vec<RawAttr>,
}

impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self as u8).hash(state)
    }
}

impl PathAttrs {
    /// AS_PATH length for best-path selection: an AS_SET counts as one (RFC 4271 §9.1.2.2).
    pub fn as_path_len(&self) -> usize {
        self.as_path
            .iter()
            .map(|s| match s {
                AsPathSegment::Sequence(v) => v.len(),
                AsPathSegment::Set(_) => 1,
            })
            .sum()
    }

    /// The neighbour AS: first AS of a leading AS_SEQUENCE.
    pub fn first_as(&self) -> Option<u32> {
        match self.as_path.first()? {
            AsPathSegment::Sequence(v) => v.first().copied(),
            AsPathSegment::Set(_) => None,
        }
    }

    pub fn path_asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.as_path.iter().flat_map(|s| match s {
            AsPathSegment::Sequence(v) | AsPathSegment::Set(v) => v.iter().copied(),
        })
    }

    /// Prepends `asn` as on export to an external peer (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32) {
        match self.as_path.first_mut() {
            Some(AsPathSegment::Sequence(v)) if v.len() < 255 => v.insert(0, asn),
            _ => self.as_path.insert(0, AsPathSegment::Sequence(vec![asn])),
        }
    }

    pub fn as_path_string(&self) -> String {
        self.as_path
            .iter()
            .map(|s| match s {
                AsPathSegment::Sequence(v) => v
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                AsPathSegment::Set(v) => {
                    format!(
                        "{{{}}}",
                        v.iter()
                            .map(|a| a.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    )
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Encodes the attributes; `mp` is what goes into MP_REACH_NLRI / MP_UNREACH_NLRI.
    /// NEXT_HOP is left out of an UPDATE that reaches only IPv6 NLRI (RFC 4760 §3).
    fn encode(&self, b: &mut BytesMut, mp: &Mp) {
        use attr_type::*;
        use flag::*;
        put_attr(b, TRANSITIVE, ORIGIN, &[self.origin as u8]);
        let mut path = BytesMut::new();
        for seg in &self.as_path {
            let (ty, v) = match seg {
                AsPathSegment::Set(v) => (1u8, v),
                AsPathSegment::Sequence(v) => (2u8, v),
            };
            // A segment holds at most 255 ASNs; longer runs are split.
            for chunk in v.chunks(255) {
                path.put_u8(ty);
                path.put_u8(chunk.len() as u8);
                for a in chunk {
                    path.put_u32(*a);
                }
            }
        }
        put_attr(b, TRANSITIVE, AS_PATH, &path);
        if let (Some(nh), false) = (self.next_hop, mp.ipv6_only) {
            put_attr(b, TRANSITIVE, NEXT_HOP, &nh.octets());
        }
        if let Some(med) = self.med {
            put_attr(b, OPTIONAL, MED, &med.to_be_bytes());
        }
        if let Some(lp) = self.local_pref {
            put_attr(b, TRANSITIVE, LOCAL_PREF, &lp.to_be_bytes());
        }
        if self.atomic_aggregate {
            put_attr(b, TRANSITIVE, ATOMIC_AGGREGATE, &[]);
        }
        if let Some((asn, id)) = self.aggregator {
            let mut v = asn.to_be_bytes().to_vec();
            v.extend_from_slice(&id.octets());
            put_attr(b, OPTIONAL | TRANSITIVE, AGGREGATOR, &v);
        }
        if !self.communities.is_empty() {
            let v: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            put_attr(b, OPTIONAL | TRANSITIVE, COMMUNITIES, &v);
        }
        self.encode_other(b, ..MP_REACH);
        if !mp.reach.is_empty() {
            // RFC 2545 §3: the global address, then the link-local one when there is one.
            let nh = self.next_hop6.unwrap_or(Ipv6Addr::UNSPECIFIED);
            let mut v = BytesMut::with_capacity(64);
            v.put_u16(Afi::Ipv6.code());
            v.put_u8(Afi::SAFI_UNICAST);
            match self.link_local6 {
                Some(ll) => {
                    v.put_u8(32);
                    v.put_slice(&nh.octets());
                    v.put_slice(&ll.octets());
                }
                None => {
                    v.put_u8(16);
                    v.put_slice(&nh.octets());
                }
            }
            v.put_u8(0); // reserved
            for p in mp.reach {
                encode_prefix(&mut v, p);
            }
            put_attr(b, OPTIONAL, MP_REACH, &v);
        }
        if !mp.unreach.is_empty() || mp.end_of_rib {
            put_mp_unreach(b, mp.unreach);
        }
        self.encode_other(b, MP_UNREACH + 1..LARGE_COMMUNITIES);
        if !self.large_communities.is_empty() {
            let v: Vec<u8> = self
                .large_communities
                .iter()
                .flatten()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            put_attr(b, OPTIONAL | TRANSITIVE, LARGE_COMMUNITIES, &v);
        }
        self.encode_other(b, LARGE_COMMUNITIES + 1..OTC);
        if let Some(otc) = self.otc {
            put_attr(b, OPTIONAL | TRANSITIVE, OTC, &otc.to_be_bytes());
        }
        self.encode_other(b, OTC + 1..);
    }

    /// The attributes passed on unrecognised whose type codes are in `types`, so that
    /// every attribute goes out in ascending order of type (RFC 4271 §5).
    fn encode_other(&self, b: &mut BytesMut, types: impl std::ops::RangeBounds<u8>) {
        for raw in self.other.iter().filter(|r| types.contains(&r.type_code)) {
            put_attr(
                b,
                raw.flags & !flag::EXTENDED_LENGTH,
                raw.type_code,
                &raw.data,
            );
        }
    }
}

/// MP_UNREACH_NLRI for IPv6 unicast with `withdrawn` (none: the End-of-RIB).
fn put_mp_unreach(b: &mut BytesMut, withdrawn: &[IpNet]) {
    let mut v = BytesMut::with_capacity(64);
    v.put_u16(Afi::Ipv6.code());
    v.put_u8(Afi::SAFI_UNICAST);
    for p in withdrawn {
        encode_prefix(&mut v, p);
    }
    put_attr(b, flag::OPTIONAL, attr_type::MP_UNREACH, &v);
}

/// The IPv6 part of an UPDATE, encoded among its attributes.
#[derive(Default)]
struct Mp<'a> {
    reach: &'a [IpNet],
    unreach: &'a [IpNet],
    /// An empty MP_UNREACH_NLRI: the IPv6 End-of-RIB (RFC 4724 §2).
    end_of_rib: bool,
    /// No IPv4 NLRI in this UPDATE.
    ipv6_only: bool,
}

fn put_attr(b: &mut BytesMut, flags: u8, ty: u8, v: &[u8]) {
    if v.len() > 255 {
        b.put_u8(flags | flag::EXTENDED_LENGTH);
        b.put_u8(ty);
        b.put_u16(v.len() as u16);
    } else {
        b.put_u8(flags);
        b.put_u8(ty);
        b.put_u8(v.len() as u8);
    }
    b.put_slice(v);
}

/// What RFC 7606 made the decoder do to an UPDATE that was not entirely well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateProblem {
    /// The update's NLRI were turned into withdrawals (RFC 7606 §2 "treat-as-withdraw").
    TreatAsWithdraw(String),
    /// One attribute was dropped (RFC 7606 §2 "attribute discard").
    AttributeDiscarded(String),
}

/// An UPDATE of either family: IPv4 prefixes travel in the classic Withdrawn Routes and
/// NLRI fields, IPv6 prefixes in MP_UNREACH_NLRI and MP_REACH_NLRI (with the next hop of
/// [`PathAttrs::next_hop6`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub withdrawn: Vec<IpNet>,
    pub attrs: Option<PathAttrs>,
    pub nlri: Vec<IpNet>,
    /// The IPv6 End-of-RIB: an MP_UNREACH_NLRI with no prefixes and nothing else.
    pub ipv6_end_of_rib: bool,
    /// Filled by the decoder only; ignored by the encoder.
    pub problems: Vec<UpdateProblem>,
}

impl Update {
    /// The family this UPDATE is the End-of-RIB marker of (RFC 4724 §2): an empty UPDATE
    /// for IPv4 unicast, an UPDATE with only an empty MP_UNREACH_NLRI for the others. (An
    /// UPDATE that RFC 7606 emptied is none.)
    pub fn end_of_rib(&self) -> Option<Afi> {
        if !self.withdrawn.is_empty()
            || self.attrs.is_some()
            || !self.nlri.is_empty()
            || !self.problems.is_empty()
        {
            return None;
        }
        Some(if self.ipv6_end_of_rib {
            Afi::Ipv6
        } else {
            Afi::Ipv4
        })
    }

    pub fn treated_as_withdraw(&self) -> bool {
        self.problems
            .iter()
            .any(|p| matches!(p, UpdateProblem::TreatAsWithdraw(_)))
    }

    pub(super) fn encode_body(&self, b: &mut BytesMut) {
        let v4 = |p: &&IpNet| matches!(p, IpNet::V4(_));
        let v6 = |p: &&IpNet| matches!(p, IpNet::V6(_));
        let at = b.len();
        b.put_u16(0);
        for p in self.withdrawn.iter().filter(v4) {
            encode_prefix(b, p);
        }
        let wlen = (b.len() - at - 2) as u16;
        b[at..at + 2].copy_from_slice(&wlen.to_be_bytes());
        let at = b.len();
        b.put_u16(0);
        let reach: Vec<IpNet> = self.nlri.iter().filter(v6).copied().collect();
        let unreach: Vec<IpNet> = self.withdrawn.iter().filter(v6).copied().collect();
        let mp = Mp {
            reach: &reach,
            unreach: &unreach,
            end_of_rib: self.ipv6_end_of_rib,
            ipv6_only: !reach.is_empty() && !self.nlri.iter().any(|p| v4(&p)),
        };
        match &self.attrs {
            Some(a) => a.encode(b, &mp),
            None if !unreach.is_empty() || mp.end_of_rib => put_mp_unreach(b, &unreach),
            None => {}
        }
        let alen = (b.len() - at - 2) as u16;
        b[at..at + 2].copy_from_slice(&alen.to_be_bytes());
        for p in self.nlri.iter().filter(v4) {
            encode_prefix(b, p);
        }
    }

    pub(super) fn decode_body(body: &[u8], cx: &DecodeContext) -> Result<Update, DecodeError> {
        let reset = |sub: u8, off: usize, why: String| {
            DecodeError::new(error_code::UPDATE, sub, vec![], off, why)
        };
        let mut r = Reader::new(body, HEADER_LEN);
        let wlen = r.u16().unwrap_or(0) as usize;
        // RFC 7606 §5.3 / RFC 4271 §6.3: lengths inconsistent with the message → reset.
        if wlen + 4 > body.len() {
            return Err(reset(
                update_err::MALFORMED_ATTR_LIST,
                HEADER_LEN,
                format!("withdrawn routes length {wlen} overruns the message"),
            ));
        }
        let wbase = r.offset();
        let wbytes = r.take(wlen).unwrap_or_default();
        let withdrawn = decode_prefixes(wbytes, wbase, Afi::Ipv4).map_err(|(off, why)| {
            reset(
                update_err::INVALID_NETWORK,
                off,
                format!("withdrawn routes: {why}"),
            )
        })?;
        let alen = r.u16().unwrap_or(0) as usize;
        if alen > r.remaining() {
            return Err(reset(
                update_err::MALFORMED_ATTR_LIST,
                r.offset() - 2,
                format!("total path attribute length {alen} overruns the message"),
            ));
        }
        let abase = r.offset();
        let abytes = r.take(alen).unwrap_or_default();
        let nbase = r.offset();
        let nbytes = r.take(r.remaining()).unwrap_or_default();
        let nlri = decode_prefixes(nbytes, nbase, Afi::Ipv4).map_err(|(off, why)| {
            reset(update_err::INVALID_NETWORK, off, format!("NLRI: {why}"))
        })?;

        let classic_nlri = !nlri.is_empty();
        let mut u = Update {
            withdrawn,
            attrs: None,
            nlri,
            ipv6_end_of_rib: false,
            problems: Vec::new(),
        };
        let mut seen = Seen::default();
        if alen > 0 {
            use attr_type::MP_UNREACH;
            let mut a = decode_attrs(abytes, abase, cx, &mut u, &mut seen)?;
            if !u.nlri.is_empty() && !u.nlri.iter().any(|p| matches!(p, IpNet::V4(_))) {
                // RFC 4760 §3: NEXT_HOP in an UPDATE that reaches only MP NLRI is ignored.
                a.next_hop = None;
            }
            if let (true, Some(afi)) = (seen.only(MP_UNREACH), seen.unreach) {
                // Withdrawals alone carry no path; an empty IPv6 one is its End-of-RIB (an
                // empty IPv4 one reads as the empty UPDATE, IPv4's).
                u.ipv6_end_of_rib = afi == Afi::Ipv6 && u.withdrawn.is_empty() && u.nlri.is_empty();
            } else {
                u.attrs = Some(a);
            }
        }
        if !u.nlri.is_empty() {
            // RFC 7606 §3.d: a missing well-known mandatory attribute → treat-as-withdraw.
            let mut missing = Vec::new();
            if !seen.has(attr_type::ORIGIN) {
                missing.push("ORIGIN");
            }
            if !seen.has(attr_type::AS_PATH) {
                missing.push("AS_PATH");
            }
            if classic_nlri && !seen.has(attr_type::NEXT_HOP) {
                missing.push("NEXT_HOP");
            }
            if !missing.is_empty() {
                u.problems.push(UpdateProblem::TreatAsWithdraw(format!(
                    "missing well-known attribute {}",
                    missing.join(", ")
                )));
            }
        }
        if u.treated_as_withdraw() {
            let nlri = std::mem::take(&mut u.nlri);
            u.withdrawn.extend(nlri);
            u.attrs = None;
        }
        Ok(u)
    }
}

/// Encodes withdrawals and announcements (all sharing `attrs`), of either family, into
/// as few UPDATEs as fit in 4096 bytes each; IPv4 and IPv6 travel in separate UPDATEs.
pub fn encode_updates(
    withdrawn: &[IpNet],
    attrs: Option<&PathAttrs>,
    nlri: &[IpNet],
) -> Vec<BytesMut> {
    encode_updates_within(withdrawn, attrs, nlri, MAX_MESSAGE_LEN)
}

/// [`encode_updates`] in UPDATEs of at most `max` octets (65,535 once RFC 8654 extended
/// messages are negotiated).
pub fn encode_updates_within(
    withdrawn: &[IpNet],
    attrs: Option<&PathAttrs>,
    nlri: &[IpNet],
    max: usize,
) -> Vec<BytesMut> {
    let mut out = Vec::new();
    // header 19 + withdrawn len 2 + attr len 2
    let room = max.clamp(MAX_MESSAGE_LEN, super::MAX_EXTENDED_LEN) - 23;
    // An MP attribute's header (4, extended length), AFI/SAFI (3), and for MP_REACH the
    // next hop's length, two addresses and the reserved octet.
    const MP_UNREACH_OVERHEAD: usize = 4 + 3;
    const MP_REACH_OVERHEAD: usize = 4 + 3 + 1 + 32 + 1;
    let (w4, w6) = by_family(withdrawn);
    for chunk in chunks(&w4, room).chain(chunks(&w6, room - MP_UNREACH_OVERHEAD)) {
        out.push(
            super::Message::Update(Update {
                withdrawn: chunk.to_vec(),
                ..Default::default()
            })
            .encode(),
        );
    }
    if let (Some(attrs), false) = (attrs, nlri.is_empty()) {
        let mut ab = BytesMut::new();
        attrs.encode(&mut ab, &Mp::default());
        let room = room.saturating_sub(ab.len());
        if nlri.iter().all(|p| matches!(p, IpNet::V4(_))) {
            // IPv4 alone (a table's usual case): the attributes encoded once, and each
            // UPDATE their octets and its prefixes'.
            for chunk in chunks(nlri, room.max(5)) {
                let len = 23 + ab.len() + chunk.iter().map(prefix_wire_len).sum::<usize>();
                let mut m = BytesMut::with_capacity(len);
                m.put_slice(&super::MARKER);
                m.put_u16(len as u16);
                m.put_u8(super::msg_type::UPDATE);
                m.put_u16(0);
                m.put_u16(ab.len() as u16);
                m.put_slice(&ab);
                for p in chunk {
                    encode_prefix(&mut m, p);
                }
                out.push(m);
            }
            let limit = max.clamp(MAX_MESSAGE_LEN, super::MAX_EXTENDED_LEN);
            out.retain(|m| m.len() <= limit);
            return out;
        }
        let (n4, n6) = by_family(nlri);
        let room6 = room.saturating_sub(MP_REACH_OVERHEAD);
        for chunk in chunks(&n4, room.max(5)).chain(chunks(&n6, room6.max(17))) {
            out.push(
                super::Message::Update(Update {
                    nlri: chunk.to_vec(),
                    attrs: Some(attrs.clone()),
                    ..Default::default()
                })
                .encode(),
            );
        }
    }
    // A route whose attributes leave no room for it in an UPDATE the peer takes is not
    // sent at all (the instance keeps such routes out, and says why): nothing longer than
    // `max` leaves here (RFC 8654 §4).
    let limit = max.clamp(MAX_MESSAGE_LEN, super::MAX_EXTENDED_LEN);
    debug_assert!(
        out.iter().all(|m| m.len() <= limit),
        "an UPDATE over {limit} octets"
    );
    out.retain(|m| m.len() <= limit);
    out
}

/// The length of an UPDATE carrying `attrs` and prefixes of `afi`, less its prefixes'
/// own octets ([`prefix_wire_len`] each) — within an octet for IPv6, whose MP_REACH_NLRI
/// header grows by one when it passes 255 octets (so a caller deciding by it near a limit
/// measures the UPDATE itself).
pub fn update_overhead(attrs: &PathAttrs, afi: Afi) -> usize {
    let mut b = BytesMut::new();
    match afi {
        Afi::Ipv4 => {
            attrs.encode(&mut b, &Mp::default());
            23 + b.len()
        }
        Afi::Ipv6 => {
            let one = [IpNet::V6(ipnet::Ipv6Net::default())];
            attrs.encode(
                &mut b,
                &Mp {
                    reach: &one,
                    ipv6_only: true,
                    ..Mp::default()
                },
            );
            23 + b.len() - prefix_wire_len(&one[0])
        }
    }
}

/// The IPv6 End-of-RIB marker (RFC 4724 §2; IPv4's is an empty UPDATE).
pub fn ipv6_end_of_rib() -> BytesMut {
    super::Message::Update(Update {
        ipv6_end_of_rib: true,
        ..Default::default()
    })
    .encode()
}

fn by_family(prefixes: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)))
}

/// `prefixes` cut into runs of at most `room` octets on the wire.
fn chunks(prefixes: &[IpNet], room: usize) -> impl Iterator<Item = &[IpNet]> {
    let mut rest = prefixes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut used = 0;
        let n = rest
            .iter()
            .take_while(|p| {
                used += prefix_wire_len(p);
                used <= room
            })
            .count()
            .max(1);
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}
