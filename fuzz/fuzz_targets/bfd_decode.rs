//! Any datagram into the BFD decoder: no panic, and a packet it accepts encodes to bytes
//! it decodes to the same packet.
#![no_main]

use cic_bfd::packet::Packet;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::decode(data) {
        assert_eq!(Packet::decode(&p.encode()).ok(), Some(p));
    }
});
