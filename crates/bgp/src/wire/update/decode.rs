//! An UPDATE's path attributes read off the wire, with the revised error handling of
//! RFC 7606: per attribute, its expected flags and what a malformed one costs (the
//! UPDATE's routes, the attribute alone, or the session).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::super::prefix::decode_prefixes;
use super::super::{Afi, DecodeContext, DecodeError, Reader, error_code, update_err};
use super::{AsPathSegment, Origin, PathAttrs, RawAttr, Update, UpdateProblem, attr_type, flag};

/// The attribute types an UPDATE carried, and the family of its MP_UNREACH_NLRI.
#[derive(Default)]
pub(super) struct Seen {
    types: [u64; 4],
    pub(super) unreach: Option<Afi>,
}

impl Seen {
    pub(super) fn has(&self, t: u8) -> bool {
        self.types[(t / 64) as usize] & (1 << (t % 64)) != 0
    }
    fn set(&mut self, t: u8) {
        self.types[(t / 64) as usize] |= 1 << (t % 64);
    }
    /// `t` and no other type.
    pub(super) fn only(&self, t: u8) -> bool {
        self.has(t) && self.types.iter().map(|w| w.count_ones()).sum::<u32>() == 1
    }
}

/// What RFC 7606 says to do when an attribute is malformed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnError {
    TreatAsWithdraw,
    Discard,
    Reset,
}

/// Expected (optional, transitive) flag bits and the error action, per known attribute.
fn known(t: u8) -> Option<(u8, OnError)> {
    use OnError::*;
    use attr_type::*;
    use flag::*;
    Some(match t {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF => (TRANSITIVE, TreatAsWithdraw),
        ATOMIC_AGGREGATE => (TRANSITIVE, Discard),
        MED => (OPTIONAL, TreatAsWithdraw),
        AGGREGATOR | AS4_AGGREGATOR | AS4_PATH => (OPTIONAL | TRANSITIVE, Discard),
        COMMUNITIES | LARGE_COMMUNITIES | EXT_COMMUNITIES | OTC => {
            (OPTIONAL | TRANSITIVE, TreatAsWithdraw)
        }
        MP_REACH | MP_UNREACH => (OPTIONAL, Reset),
        _ => return None,
    })
}

fn attr_name(t: u8) -> String {
    use attr_type::*;
    match t {
        ORIGIN => "ORIGIN".into(),
        AS_PATH => "AS_PATH".into(),
        NEXT_HOP => "NEXT_HOP".into(),
        MED => "MULTI_EXIT_DISC".into(),
        LOCAL_PREF => "LOCAL_PREF".into(),
        ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE".into(),
        AGGREGATOR => "AGGREGATOR".into(),
        COMMUNITIES => "COMMUNITIES".into(),
        MP_REACH => "MP_REACH_NLRI".into(),
        MP_UNREACH => "MP_UNREACH_NLRI".into(),
        EXT_COMMUNITIES => "EXTENDED_COMMUNITIES".into(),
        AS4_PATH => "AS4_PATH".into(),
        AS4_AGGREGATOR => "AS4_AGGREGATOR".into(),
        LARGE_COMMUNITIES => "LARGE_COMMUNITY".into(),
        OTC => "ONLY_TO_CUSTOMER".into(),
        _ => format!("attribute {t}"),
    }
}

pub(super) fn decode_attrs(
    buf: &[u8],
    base: usize,
    cx: &DecodeContext,
    u: &mut Update,
    seen: &mut Seen,
) -> Result<PathAttrs, DecodeError> {
    use attr_type::*;
    let mut a = PathAttrs::default();
    let mut r = Reader::new(buf, base);
    while !r.is_empty() {
        let at = r.offset();
        let (Some(flags), Some(ty)) = (r.u8(), r.u8()) else {
            u.problems.push(UpdateProblem::TreatAsWithdraw(format!(
                "attribute header truncated at byte {at}"
            )));
            break;
        };
        let len = if flags & flag::EXTENDED_LENGTH != 0 {
            r.u16().map(usize::from)
        } else {
            r.u8().map(usize::from)
        };
        // RFC 7606 §4: an attribute overrunning the attribute field → treat-as-withdraw.
        let Some(v) = len.and_then(|l| r.take(l)) else {
            u.problems.push(UpdateProblem::TreatAsWithdraw(format!(
                "{} at byte {at} overruns the path attributes",
                attr_name(ty)
            )));
            break;
        };
        if seen.has(ty) {
            if ty == MP_REACH || ty == MP_UNREACH {
                return Err(DecodeError::new(
                    error_code::UPDATE,
                    update_err::MALFORMED_ATTR_LIST,
                    vec![],
                    at,
                    format!("{} appears twice", attr_name(ty)),
                ));
            }
            // RFC 7606 §3.g: keep the first, discard the rest.
            u.problems.push(UpdateProblem::AttributeDiscarded(format!(
                "duplicate {} at byte {at}",
                attr_name(ty)
            )));
            continue;
        }
        seen.set(ty);
        let Some((want_flags, on_error)) = known(ty) else {
            if flags & flag::OPTIONAL == 0 {
                // Unrecognised well-known attribute: RFC 4271 §6.3, data = the attribute.
                let mut data = vec![flags, ty];
                data.extend_from_slice(&buf[at - base + 2..r.offset() - base]);
                return Err(DecodeError::new(
                    error_code::UPDATE,
                    update_err::UNRECOGNIZED_WELL_KNOWN,
                    data,
                    at,
                    format!("unrecognised well-known attribute type {ty}"),
                ));
            }
            if flags & flag::TRANSITIVE != 0 {
                a.other.push(RawAttr {
                    flags: flags | flag::PARTIAL,
                    type_code: ty,
                    data: v.to_vec(),
                });
            }
            continue;
        };
        let fail = |u: &mut Update, why: String| -> Result<(), DecodeError> {
            let why = format!("{} at byte {at}: {why}", attr_name(ty));
            match on_error {
                OnError::TreatAsWithdraw => u.problems.push(UpdateProblem::TreatAsWithdraw(why)),
                OnError::Discard => u.problems.push(UpdateProblem::AttributeDiscarded(why)),
                OnError::Reset => {
                    return Err(optional_attr_error(at, why));
                }
            }
            Ok(())
        };
        if flags & (flag::OPTIONAL | flag::TRANSITIVE) != want_flags {
            fail(
                u,
                format!("flags {flags:#04x} are wrong for this attribute"),
            )?;
            continue;
        }
        let n = v.len();
        match ty {
            ORIGIN => match v {
                [0] => a.origin = Origin::Igp,
                [1] => a.origin = Origin::Egp,
                [2] => a.origin = Origin::Incomplete,
                _ => fail(u, format!("invalid value {v:?}"))?,
            },
            AS_PATH => match decode_as_path(v) {
                Ok(p) => a.as_path = p,
                Err(why) => fail(u, why)?,
            },
            NEXT_HOP => {
                if n != 4 {
                    fail(u, format!("length {n}, expected 4"))?;
                } else {
                    let nh = Ipv4Addr::new(v[0], v[1], v[2], v[3]);
                    // RFC 4271 §6.3: a semantically incorrect NEXT_HOP.
                    if nh.is_unspecified() || nh.is_multicast() || nh.is_broadcast() {
                        fail(u, format!("{nh} is not a usable next hop"))?;
                    } else {
                        a.next_hop = Some(nh);
                    }
                }
            }
            MED | LOCAL_PREF => {
                if n != 4 {
                    fail(u, format!("length {n}, expected 4"))?;
                } else {
                    let x = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                    if ty == MED {
                        a.med = Some(x);
                    } else if cx.ibgp {
                        a.local_pref = Some(x);
                    } else {
                        // RFC 7606 §7.5: LOCAL_PREF from an external peer is discarded.
                        u.problems.push(UpdateProblem::AttributeDiscarded(
                            "LOCAL_PREF from an external peer".into(),
                        ));
                    }
                }
            }
            ATOMIC_AGGREGATE => {
                if n != 0 {
                    fail(u, format!("length {n}, expected 0"))?;
                } else {
                    a.atomic_aggregate = true;
                }
            }
            AGGREGATOR => {
                if n != 8 {
                    fail(u, format!("length {n}, expected 8"))?;
                } else {
                    a.aggregator = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        Ipv4Addr::new(v[4], v[5], v[6], v[7]),
                    ));
                }
            }
            COMMUNITIES => {
                if n == 0 || n % 4 != 0 {
                    fail(u, format!("length {n} is not a positive multiple of 4"))?;
                } else {
                    a.communities = v
                        .chunks_exact(4)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                }
            }
            LARGE_COMMUNITIES => {
                if n == 0 || n % 12 != 0 {
                    fail(u, format!("length {n} is not a positive multiple of 12"))?;
                } else {
                    a.large_communities = v
                        .chunks_exact(12)
                        .map(|c| {
                            let w =
                                |i: usize| u32::from_be_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                            [w(0), w(4), w(8)]
                        })
                        .collect();
                }
            }
            OTC => {
                // RFC 9234 §5: a malformed OTC is treat-as-withdraw.
                if n != 4 {
                    fail(u, format!("length {n} is not 4"))?;
                } else {
                    a.otc = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                }
            }
            EXT_COMMUNITIES => {
                if n == 0 || n % 8 != 0 {
                    fail(u, format!("length {n} is not a positive multiple of 8"))?;
                } else {
                    a.other.push(RawAttr {
                        flags,
                        type_code: ty,
                        data: v.to_vec(),
                    });
                }
            }
            AS4_PATH | AS4_AGGREGATOR => {
                // RFC 6793 §4.1: between two 4-octet speakers these are discarded.
                u.problems.push(UpdateProblem::AttributeDiscarded(format!(
                    "{} from a 4-octet AS speaker",
                    attr_name(ty)
                )));
            }
            MP_REACH => decode_mp_reach(v, at, u, &mut a)?,
            MP_UNREACH => seen.unreach = decode_mp_unreach(v, at, u)?,
            _ => {}
        }
    }
    Ok(a)
}

/// 4-octet AS_PATH (RFC 6793): segments of (type, count, count × 4 octets).
pub(super) fn decode_as_path(v: &[u8]) -> Result<Vec<AsPathSegment>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let (Some(&ty), Some(&cnt)) = (v.get(i), v.get(i + 1)) else {
            return Err("segment header truncated".into());
        };
        if cnt == 0 {
            return Err("segment of zero length".into());
        }
        let body = v
            .get(i + 2..i + 2 + 4 * cnt as usize)
            .ok_or("segment overruns the attribute")?;
        let asns: Vec<u32> = body
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(match ty {
            1 => AsPathSegment::Set(asns),
            2 => AsPathSegment::Sequence(asns),
            // Confederation segments (RFC 5065) never come from outside a confederation.
            _ => return Err(format!("unsupported segment type {ty}")),
        });
        i += 2 + 4 * cnt as usize;
    }
    Ok(out)
}

/// MP_REACH_NLRI (RFC 4760 §3). IPv4 and IPv6 unicast are merged into the update (the
/// IPv6 next hop into the attributes, RFC 2545 §3); other address families were not
/// negotiated and are ignored.
pub(super) fn decode_mp_reach(
    v: &[u8],
    at: usize,
    u: &mut Update,
    a: &mut PathAttrs,
) -> Result<(), DecodeError> {
    let bad = |why: String| optional_attr_error(at, format!("MP_REACH_NLRI: {why}"));
    if v.len() < 5 {
        return Err(bad(format!("length {} is too short", v.len())));
    }
    let (afi, safi, nhlen) = (u16::from_be_bytes([v[0], v[1]]), v[2], v[3] as usize);
    let Some(afi) = Afi::from_code(afi).filter(|_| safi == Afi::SAFI_UNICAST) else {
        return Ok(());
    };
    let nh = v
        .get(4..4 + nhlen)
        .ok_or_else(|| bad("next hop overruns the attribute".into()))?;
    let rest = v
        .get(5 + nhlen..)
        .ok_or_else(|| bad("truncated before NLRI".into()))?;
    match afi {
        Afi::Ipv4 => {
            if nhlen != 4 {
                return Err(bad(format!("IPv4 next hop of length {nhlen}")));
            }
            let nlri = decode_prefixes(rest, at, afi).map_err(|(_, why)| bad(why))?;
            a.next_hop
                .get_or_insert(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]));
            u.nlri.extend(nlri);
        }
        Afi::Ipv6 => {
            let addr = |o: &[u8]| -> Ipv6Addr {
                let mut b = [0u8; 16];
                b.copy_from_slice(o);
                Ipv6Addr::from(b)
            };
            let (global, link_local) = match nhlen {
                16 => (addr(nh), None),
                32 => (addr(&nh[..16]), Some(addr(&nh[16..]))),
                _ => return Err(bad(format!("IPv6 next hop of length {nhlen}"))),
            };
            let nlri = decode_prefixes(rest, at, afi).map_err(|(_, why)| bad(why))?;
            // BIRD peering over link-local addresses sends `::` and its link-local one.
            if (global.is_unspecified() && link_local.is_none()) || global.is_multicast() {
                // Like a semantically wrong NEXT_HOP (RFC 7606 §7.3).
                u.problems.push(UpdateProblem::TreatAsWithdraw(format!(
                    "MP_REACH_NLRI at byte {at}: {global} is not a usable next hop"
                )));
            }
            a.next_hop6 = Some(global);
            a.link_local6 = link_local;
            u.nlri.extend(nlri);
        }
    }
    Ok(())
}

/// MP_UNREACH_NLRI: IPv4 and IPv6 unicast withdrawals join the update's. Returns the
/// family it was of, when cic speaks it.
pub(super) fn decode_mp_unreach(
    v: &[u8],
    at: usize,
    u: &mut Update,
) -> Result<Option<Afi>, DecodeError> {
    let bad = |why: String| optional_attr_error(at, format!("MP_UNREACH_NLRI: {why}"));
    if v.len() < 3 {
        return Err(bad(format!("length {} is too short", v.len())));
    }
    let Some(afi) =
        Afi::from_code(u16::from_be_bytes([v[0], v[1]])).filter(|_| v[2] == Afi::SAFI_UNICAST)
    else {
        return Ok(None);
    };
    let w = decode_prefixes(&v[3..], at, afi).map_err(|(_, why)| bad(why))?;
    u.withdrawn.extend(w);
    Ok(Some(afi))
}

/// An attribute so malformed the session is reset (RFC 7606 §7.3, §7.4: MP_REACH_NLRI,
/// MP_UNREACH_NLRI): UPDATE Message Error, Optional Attribute Error, at byte `at`.
fn optional_attr_error(at: usize, why: String) -> DecodeError {
    DecodeError::new(
        error_code::UPDATE,
        update_err::OPTIONAL_ATTR,
        vec![],
        at,
        why,
    )
}
