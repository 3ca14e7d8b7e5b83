//! cic's BGP speaker.
//!
//! ```text
//!   wire      pure codec: bytes ⇄ Message (RFC 4271, 5492, 6793, 7606, 9072)
//!    │
//!   fsm       sans-IO session state machine: Input → Vec<Output> (RFC 4271 §8)
//!   rib       Adj-RIB-In, Loc-RIB, best path and ECMP (RFC 4271 §9)
//!   policy    import/export rules of a routing instance (DESIGN.md §2)
//!   instance  sans-IO routing instance: peers + rib + policy → updates and kernel routes
//!   rpki      sans-IO RTR client (RFC 8210) and origin validation (RFC 6811)
//!    │
//!   driver    tokio: TCP sessions, timers, listener; the only module doing I/O
//! ```

pub mod driver;
pub mod fsm;
pub mod instance;
pub mod policy;
pub mod rib;
pub mod rpki;
pub mod wire;
