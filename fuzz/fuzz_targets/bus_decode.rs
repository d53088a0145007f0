//! Fuzz target `bus_decode`: bytes "from another server" through the bus
//! message decoder. See `sockloop::cluster::checks::bus_round_trip` for
//! what is checked (no panic; what decodes re-encodes to the same bytes and
//! decodes again to the same message).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| sockloop::cluster::checks::bus_round_trip(data));
