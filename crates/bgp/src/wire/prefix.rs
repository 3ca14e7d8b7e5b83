//! Prefixes as they appear in Withdrawn Routes, NLRI (RFC 4271 §4.3) and the NLRI of
//! MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 4760 §5): a length in bits, then the fewest
//! octets that hold it.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::Afi;

pub fn prefix_wire_len(p: &IpNet) -> usize {
    1 + (p.prefix_len() as usize).div_ceil(8)
}

pub fn encode_prefix(b: &mut BytesMut, p: &IpNet) {
    let len = p.prefix_len();
    let n = (len as usize).div_ceil(8);
    b.put_u8(len);
    match p {
        IpNet::V4(p) => b.put_slice(&p.network().octets()[..n]),
        IpNet::V6(p) => b.put_slice(&p.network().octets()[..n]),
    }
}

/// Decodes a run of prefixes of one address family. Trailing bits beyond the length are
/// cleared, as RFC 4271 says they are irrelevant. Err: (offset, reason).
pub fn decode_prefixes(buf: &[u8], base: usize, afi: Afi) -> Result<Vec<IpNet>, (usize, String)> {
    let max = afi.max_len();
    // Counted first: one allocation for the run (an UPDATE of a full table carries tens
    // of prefixes; growing the vector reallocated it several times an UPDATE). At most
    // one per octet, however malformed.
    let mut count = 0;
    let mut j = 0;
    while j < buf.len() {
        j += 1 + (buf[j] as usize).div_ceil(8);
        count += 1;
    }
    let mut out = Vec::with_capacity(count);
    let mut i = 0;
    while i < buf.len() {
        let len = buf[i];
        if len > max {
            return Err((
                base + i,
                format!("prefix length {len} is longer than {max}"),
            ));
        }
        let n = (len as usize).div_ceil(8);
        let Some(bytes) = buf.get(i + 1..i + 1 + n) else {
            return Err((
                base + i,
                format!(
                    "a /{len} prefix needs {n} octets, {} remain",
                    buf.len() - i - 1
                ),
            ));
        };
        // The constructors only fail for a length beyond the family's, excluded above.
        let net = match afi {
            Afi::Ipv4 => {
                let mut oct = [0u8; 4];
                oct[..n].copy_from_slice(bytes);
                Ipv4Net::new(Ipv4Addr::from(oct), len).map(|p| IpNet::V4(p.trunc()))
            }
            Afi::Ipv6 => {
                let mut oct = [0u8; 16];
                oct[..n].copy_from_slice(bytes);
                Ipv6Net::new(Ipv6Addr::from(oct), len).map(|p| IpNet::V6(p.trunc()))
            }
        }
        .map_err(|e| (base + i, e.to_string()))?;
        out.push(net);
        i += 1 + n;
    }
    Ok(out)
}
