//! The MySQL client/server protocol as dbrouter speaks it: command codes, the packets
//! the router writes itself (greeting, OK, ERR, auth switch), the few fields it decodes
//! from relayed packets (terminator status flags), password verification, and the
//! response state machine that tells where a relayed response ends.
//!
//! Packet structs and scrambles come from `mysql_common`; framing is in [`crate::net`].

pub mod auth;
pub mod command;
pub mod execute;
pub mod handshake;
pub mod packets;
pub mod response;
pub mod resultset;
pub mod scanner;

/// Randomised robustness tests: every decoder that sees network bytes, fed garbage,
/// must return an error and never panic.
#[cfg(test)]
mod robustness_tests {
    use super::handshake::{offered_capabilities, parse_change_user, parse_handshake_response};
    use super::packets::{eof_status, ok_status, parse_err};
    use super::response::{ResponseKind, ResponseTracker, ResultFormat};

    use crate::test_rng::Rng;

    impl Rng {
        fn bytes(&mut self, max: usize) -> Vec<u8> {
            let len = (self.next() as usize) % (max + 1);
            // Bias towards protocol-significant bytes so branches get exercised.
            const SPECIAL: [u8; 8] = [0x00, 0x01, 0xfb, 0xfc, 0xfd, 0xfe, 0xff, 0x03];
            (0..len)
                .map(|_| {
                    let r = self.next();
                    if r.is_multiple_of(3) {
                        SPECIAL[(r >> 8) as usize % SPECIAL.len()]
                    } else {
                        (r >> 16) as u8
                    }
                })
                .collect()
        }
    }

    #[test]
    fn decoders_never_panic_on_garbage() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let kinds = [
            ResponseKind::Query,
            ResponseKind::Execute,
            ResponseKind::Prepare,
            ResponseKind::FieldList,
            ResponseKind::Fetch,
            ResponseKind::Single,
        ];
        for i in 0..50_000 {
            let data = rng.bytes(120);
            let _ = parse_handshake_response(&data);
            let _ = parse_change_user(
                &data,
                offered_capabilities(),
                mysql_common::constants::MariadbCapabilities::all(),
                8,
            );
            let _ = parse_err(&data);
            let _ = ok_status(&data);
            let _ = eof_status(&data);
            let format = ResultFormat {
                deprecate_eof: i % 4 >= 2,
                metadata_flag: i % 2 == 1,
                extended_metadata: false,
            };
            let mut tracker = ResponseTracker::new(kinds[i % kinds.len()], format);
            for _ in 0..8 {
                let packet = rng.bytes(40);
                let len = if rng.next().is_multiple_of(50) {
                    0xff_ffff
                } else {
                    packet.len()
                };
                if tracker.feed(&packet, len).is_err() {
                    break;
                }
            }
        }
    }
}
