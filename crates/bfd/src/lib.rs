//! BFD, Bidirectional Forwarding Detection: RFC 5880 asynchronous mode over single-hop
//! IPv4 (RFC 5881), as cic's edge runs it beside every BGP session (300 ms × 3 by
//! default, so a dead link is seen in under a second instead of a 90 s hold time).
//!
//! ```text
//!   packet  (pure)     bytes ⇄ `Packet`, every field and length checked
//!   session (sans-IO)  one session's state machine and timers: packets and `now` in,
//!                      packets to send and state changes out
//!   driver  (tokio)    one task per network namespace: a UDP socket on 3784 (TTL 255
//!                      checked on receive, RFC 5082), a socket per session sending from
//!                      49152–65535 with TTL 255, and the sessions' timers
//! ```
//!
//! Not implemented: demand mode and the echo function (RFC 5880 §6.6, §6.4; the
//! edge has no use for them), authentication (packets with the A bit are discarded), and
//! multihop (RFC 5883).

pub mod driver;
pub mod packet;
pub mod session;

pub use packet::{Diag, Packet, State};
pub use session::{Config, Grid, Output, Session, Snapshot};
