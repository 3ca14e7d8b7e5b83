//! Raw socket options with no safe wrapper in libc, nix or socket2.
//!
//! This is the only crate of cic with `unsafe` code: `setsockopt(2)` calls, one with a
//! byte buffer laid out as the kernel's `struct tcp_md5sig` (include/uapi/linux/tcp.h),
//! the others with an `int` (the GTSM options).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Linux `TCP_MD5SIG_MAXKEYLEN`.
pub const TCP_MD5SIG_MAXKEYLEN: usize = 80;

/// `struct tcp_md5sig` is 216 bytes:
/// `tcpm_addr` (sockaddr_storage, 128) · `tcpm_flags` u8 · `tcpm_prefixlen` u8 ·
/// `tcpm_keylen` u16 · `tcpm_ifindex` i32 · `tcpm_key` [u8; 80].
const MD5SIG_LEN: usize = 216;

fn md5sig_bytes(peer: SocketAddr, key: &[u8]) -> io::Result<[u8; MD5SIG_LEN]> {
    if key.len() > TCP_MD5SIG_MAXKEYLEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP-MD5 key is {} bytes; Linux allows at most {TCP_MD5SIG_MAXKEYLEN}",
                key.len()
            ),
        ));
    }
    let mut b = [0u8; MD5SIG_LEN];
    match peer {
        SocketAddr::V4(a) => {
            // struct sockaddr_in: family (host order), port, address (network order).
            b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[4..8].copy_from_slice(&a.ip().octets());
        }
        SocketAddr::V6(a) => {
            // struct sockaddr_in6: family, port, flowinfo, address, scope id.
            b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[8..24].copy_from_slice(&a.ip().octets());
        }
    }
    b[130..132].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    b[136..136 + key.len()].copy_from_slice(key);
    Ok(b)
}

/// Installs (or, with an empty key, removes) the RFC 2385 TCP-MD5 key for `peer` on a
/// socket: on a listener it applies to connections from `peer`, on a connecting socket
/// to the connection it makes.
pub fn set_tcp_md5sig(fd: BorrowedFd<'_>, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    let buf = md5sig_bytes(peer, key)?;
    // SAFETY: `buf` is a live, initialised buffer of exactly `MD5SIG_LEN` bytes laid out
    // as `struct tcp_md5sig`; the kernel only reads `optlen` bytes from it, and `fd` is a
    // valid descriptor for the duration of the call (it is borrowed).
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            buf.as_ptr().cast(),
            MD5SIG_LEN as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `v` is a live `c_int` and `optlen` is its size; `fd` is valid while borrowed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// GTSM, the Generalized TTL Security Mechanism (RFC 5082), for a peer `hops` hops away
/// (1: directly connected): the socket sends with TTL (IPv6: hop limit) 255 and the kernel
/// drops whatever arrives with less than 256 − `hops`, which a packet from farther away
/// cannot have. `ipv6`: the socket's family.
pub fn set_gtsm(fd: BorrowedFd<'_>, ipv6: bool, hops: u8) -> io::Result<()> {
    let min = 256 - libc::c_int::from(hops.max(1));
    if ipv6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, 255)?;
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min)
    } else {
        set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, 255)?;
        set_int(fd, libc::IPPROTO_IP, libc::IP_MINTTL, min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn layout_places_address_and_key() {
        let b = md5sig_bytes("10.1.2.3:179".parse().unwrap(), b"secret").unwrap();
        assert_eq!(&b[4..8], &[10, 1, 2, 3]);
        assert_eq!(u16::from_ne_bytes([b[130], b[131]]), 6);
        assert_eq!(&b[136..142], b"secret");
    }

    /// A listener with GTSM takes no connection from a socket with the default TTL (64),
    /// and takes one from a socket that sends with 255.
    #[test]
    fn kernel_enforces_the_minimum_ttl_on_loopback() {
        for (bind, ipv6) in [("127.0.0.1:0", false), ("[::1]:0", true)] {
            let Ok(l) = TcpListener::bind(bind) else {
                continue; // (no IPv6 loopback on this machine)
            };
            let addr = l.local_addr().unwrap();
            set_gtsm(l.as_fd(), ipv6, 1).unwrap();
            let far = TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300));
            assert!(far.is_err(), "{bind}: a TTL-64 SYN must be dropped");
            let domain = socket2::Domain::for_address(addr);
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).unwrap();
            set_gtsm(s.as_fd(), ipv6, 1).unwrap();
            s.connect_timeout(&addr.into(), std::time::Duration::from_secs(5))
                .unwrap();
            l.accept().unwrap();
        }
    }

    #[test]
    fn rejects_keys_longer_than_the_kernel_allows() {
        let e = md5sig_bytes("10.1.2.3:179".parse().unwrap(), &[b'k'; 81]).unwrap_err();
        assert!(e.to_string().contains("at most 80"));
    }

    /// The kernel accepts the option on a real socket, and MD5 is enforced: a client
    /// without the key cannot connect to a listener that requires it.
    #[test]
    fn kernel_enforces_the_key_on_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        set_tcp_md5sig(l.as_fd(), "127.0.0.1:0".parse().unwrap(), b"k3y").unwrap();
        // Without a key the SYN is dropped by the listener: the connect times out.
        let no_key = TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300));
        assert!(
            no_key.is_err(),
            "connection without MD5 key must not be accepted"
        );
        // With the same key on the client, the handshake completes.
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        set_tcp_md5sig(s.as_fd(), addr, b"k3y").unwrap();
        s.connect_timeout(&addr.into(), std::time::Duration::from_secs(5))
            .unwrap();
        let (_conn, from) = l.accept().unwrap();
        assert_eq!(from.ip(), addr.ip());
    }
}
