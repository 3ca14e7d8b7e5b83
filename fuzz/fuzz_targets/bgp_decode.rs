//! Any bytes into the BGP decoder: no panic, and clean messages survive a re-encode.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cic_bgp::wire::check_decoder(data);
});
