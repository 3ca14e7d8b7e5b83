//! IPv4 prefixes as they appear in Withdrawn Routes and NLRI (RFC 4271 §4.3):
//! a length in bits, then the fewest octets that hold it.

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use ipnet::Ipv4Net;

pub fn prefix_wire_len(p: &Ipv4Net) -> usize {
    1 + (p.prefix_len() as usize).div_ceil(8)
}

pub fn encode_prefix(b: &mut BytesMut, p: &Ipv4Net) {
    let len = p.prefix_len();
    b.put_u8(len);
    b.put_slice(&p.network().octets()[..(len as usize).div_ceil(8)]);
}

/// Decodes a run of prefixes. Trailing bits beyond the length are cleared, as RFC 4271
/// says they are irrelevant. Err: (offset, reason).
pub fn decode_prefixes(buf: &[u8], base: usize) -> Result<Vec<Ipv4Net>, (usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < buf.len() {
        let len = buf[i];
        if len > 32 {
            return Err((base + i, format!("prefix length {len} is longer than 32")));
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
        let mut oct = [0u8; 4];
        oct[..n].copy_from_slice(bytes);
        // Ipv4Net::new only fails for len > 32, excluded above.
        let net = Ipv4Net::new(Ipv4Addr::from(oct), len).map_err(|e| (base + i, e.to_string()))?;
        out.push(net.trunc());
        i += 1 + n;
    }
    Ok(out)
}
