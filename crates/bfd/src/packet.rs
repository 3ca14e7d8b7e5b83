//! The BFD Control packet (RFC 5880 §4.1), decoded with every check of §6.8.6 that does
//! not need a session.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```

use thiserror::Error;

/// The length of a Control packet without an authentication section.
pub const LEN: usize = 24;
pub const VERSION: u8 = 1;

/// Session state (RFC 5880 §4.1 "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    AdminDown = 0,
    Down = 1,
    Init = 2,
    Up = 3,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    /// The name cic shows: ADMIN_DOWN, DOWN, INIT, UP.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "ADMIN_DOWN",
            State::Down => "DOWN",
            State::Init => "INIT",
            State::Up => "UP",
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1 "Diag"): why the sender's session last left Up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// 9–31, reserved.
    Other(u8),
}

impl Diag {
    fn from_bits(b: u8) -> Diag {
        match b & 0x1f {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            n => Diag::Other(n),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Other(n) => n & 0x1f,
        }
    }

    /// A short English reason, for status and logs.
    pub fn text(self) -> &'static str {
        match self {
            Diag::None => "no diagnostic",
            Diag::ControlDetectionTimeExpired => "control detection time expired",
            Diag::EchoFunctionFailed => "echo function failed",
            Diag::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diag::ForwardingPlaneReset => "forwarding plane reset",
            Diag::PathDown => "path down",
            Diag::ConcatenatedPathDown => "concatenated path down",
            Diag::AdministrativelyDown => "administratively down",
            Diag::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diag::Other(_) => "reserved diagnostic",
        }
    }
}

/// A Control packet. Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub diag: Diag,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// Control Plane Independent.
    pub cpi: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx_us: u32,
    pub required_min_rx_us: u32,
    pub required_min_echo_rx_us: u32,
}

/// Why a received packet is discarded (RFC 5880 §6.8.6); each names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("BFD packet of {0} bytes is shorter than the 24-byte Control packet")]
    TooShort(usize),
    #[error("BFD version {0} is not 1")]
    Version(u8),
    #[error("BFD Length field {field} is invalid for a {received}-byte datagram")]
    Length { field: u8, received: usize },
    #[error("BFD Detect Mult is zero")]
    ZeroDetectMult,
    #[error("BFD Multipoint bit is set")]
    Multipoint,
    #[error("BFD My Discriminator is zero")]
    ZeroMyDiscriminator,
    #[error("BFD authentication is not configured, but the packet carries an auth section")]
    Authenticated,
}

impl Packet {
    /// Decodes and checks one datagram.
    pub fn decode(b: &[u8]) -> Result<Packet, DecodeError> {
        if b.len() < LEN {
            return Err(DecodeError::TooShort(b.len()));
        }
        let version = b[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let flags = b[1];
        let auth = flags & 0x04 != 0;
        let length = b[3];
        let min = if auth { LEN + 2 } else { LEN };
        if usize::from(length) < min || usize::from(length) > b.len() {
            return Err(DecodeError::Length {
                field: length,
                received: b.len(),
            });
        }
        if b[2] == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if flags & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let my = word(4);
        if my == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        if auth {
            return Err(DecodeError::Authenticated);
        }
        Ok(Packet {
            diag: Diag::from_bits(b[0]),
            state: State::from_bits(flags >> 6),
            poll: flags & 0x20 != 0,
            final_: flags & 0x10 != 0,
            cpi: flags & 0x08 != 0,
            demand: flags & 0x02 != 0,
            detect_mult: b[2],
            my_discriminator: my,
            your_discriminator: word(8),
            desired_min_tx_us: word(12),
            required_min_rx_us: word(16),
            required_min_echo_rx_us: word(20),
        })
    }

    pub fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0] = (VERSION << 5) | self.diag.bits();
        b[1] = ((self.state as u8) << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.cpi) << 3)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = LEN as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx_us.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx_us.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx_us.to_be_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Packet {
        Packet {
            diag: Diag::ControlDetectionTimeExpired,
            state: State::Init,
            poll: true,
            final_: false,
            cpi: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: 0x2f1c_8a4d,
            your_discriminator: 0x1b2c_3d4e,
            desired_min_tx_us: 300_000,
            required_min_rx_us: 300_000,
            required_min_echo_rx_us: 0,
        }
    }

    #[test]
    fn encodes_the_fields_where_rfc_5880_puts_them() {
        let b = sample().encode();
        assert_eq!(b[0], 0x21, "version 1, diag 1");
        assert_eq!(b[1], 0xa0, "state Init (2) and the Poll bit");
        assert_eq!(b[2], 3);
        assert_eq!(b[3], 24);
        assert_eq!(&b[4..8], &[0x2f, 0x1c, 0x8a, 0x4d]);
        assert_eq!(&b[12..16], &300_000u32.to_be_bytes());
        assert_eq!(Packet::decode(&b), Ok(sample()));
    }

    #[test]
    fn round_trips_every_state_diag_and_flag() {
        for st in [State::AdminDown, State::Down, State::Init, State::Up] {
            for d in 0..32u8 {
                for flags in 0..8u8 {
                    let p = Packet {
                        diag: Diag::from_bits(d),
                        state: st,
                        poll: flags & 1 != 0,
                        final_: flags & 2 != 0,
                        cpi: flags & 4 != 0,
                        ..sample()
                    };
                    assert_eq!(Packet::decode(&p.encode()), Ok(p));
                }
            }
        }
    }

    #[test]
    fn refuses_what_section_6_8_6_discards() {
        let good = sample().encode();
        let with = |i: usize, v: u8| {
            let mut b = good;
            b[i] = v;
            b
        };
        assert_eq!(Packet::decode(&good[..23]), Err(DecodeError::TooShort(23)));
        assert_eq!(Packet::decode(&with(0, 0x41)), Err(DecodeError::Version(2)));
        assert_eq!(
            Packet::decode(&with(2, 0)),
            Err(DecodeError::ZeroDetectMult)
        );
        assert_eq!(
            Packet::decode(&with(1, good[1] | 1)),
            Err(DecodeError::Multipoint)
        );
        assert_eq!(
            Packet::decode(&with(3, 25)),
            Err(DecodeError::Length {
                field: 25,
                received: 24
            })
        );
        assert_eq!(
            Packet::decode(&with(3, 20)),
            Err(DecodeError::Length {
                field: 20,
                received: 24
            })
        );
        let mut b = good;
        b[4..8].copy_from_slice(&[0; 4]);
        assert_eq!(Packet::decode(&b), Err(DecodeError::ZeroMyDiscriminator));
        // The A bit needs an auth section (length ≥ 26) and a configured key; we have none.
        let mut a = [0u8; 26];
        a[..24].copy_from_slice(&good);
        a[1] |= 0x04;
        a[3] = 26;
        assert_eq!(Packet::decode(&a), Err(DecodeError::Authenticated));
        let mut a = good;
        a[1] |= 0x04;
        assert!(matches!(
            Packet::decode(&a),
            Err(DecodeError::Length { .. })
        ));
        assert!(
            DecodeError::ZeroDetectMult
                .to_string()
                .contains("Detect Mult")
        );
    }

    #[test]
    fn a_longer_datagram_is_read_by_its_length_field() {
        let mut b = sample().encode().to_vec();
        b.extend_from_slice(&[0xee; 8]);
        assert_eq!(Packet::decode(&b), Ok(sample()));
    }

    #[test]
    fn every_accepted_packet_survives_a_re_encode() {
        // The bounded run of fuzz/fuzz_targets/bfd_decode.rs: random corruptions of a
        // good packet (two bytes at a time), each accepted one encoded and read back.
        let good = sample().encode();
        let mut accepted = 0;
        for i in 0..LEN {
            for j in (i..LEN).step_by(3) {
                for v in [0u8, 1, 0x20, 0x7f, 0x80, 0xff] {
                    let mut b = good;
                    b[i] = v;
                    b[j] ^= v.rotate_left(3);
                    if let Ok(p) = Packet::decode(&b) {
                        accepted += 1;
                        assert_eq!(Packet::decode(&p.encode()), Ok(p), "{b:x?}");
                    }
                }
            }
        }
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn no_input_panics() {
        // Every 1- and 2-byte corruption of a good packet, and every truncation.
        let good = sample().encode();
        for n in 0..=good.len() {
            let _ = Packet::decode(&good[..n]);
        }
        for i in 0..LEN {
            for v in 0..=255u8 {
                let mut b = good;
                b[i] = v;
                let _ = Packet::decode(&b);
            }
        }
    }
}
