//! What the server accepts (sans-IO): an NTP client request, mode 3,
//! version 1 … 4, at least the 48-byte header. Anything else is dropped
//! unanswered and counted; above all control (mode 6) and private (mode 7)
//! queries, the classic amplifiers, are never answered.

use crate::sources::ntp::packet::{NtpPacket, NtpTimestamp};
use crate::sources::ntp::{Mode, PacketError};

/// A request the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's version, echoed in the reply.
    pub version: u8,
    /// The client's poll exponent, echoed in the reply.
    pub poll: i8,
    /// The client's transmit timestamp, the reply's origin (whatever it is:
    /// a random cookie, its clock, or zero).
    pub transmit: NtpTimestamp,
}

/// Why a datagram gets no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than the 48-byte header.
    #[error("{0}")]
    TooShort(#[from] PacketError),
    /// Not a client request (control and private queries included).
    #[error("mode {0}: only client requests (mode 3) are answered")]
    Mode(Mode),
    /// Version 0, or above 4.
    #[error("NTP version {0}: only 1 … 4 are answered")]
    Version(u8),
}

/// The request in `bytes` (extension fields and MACs after the header are
/// ignored: the reply never carries them), or why it is not one.
pub fn parse(bytes: &[u8]) -> Result<Request, Malformed> {
    let packet = NtpPacket::decode(bytes)?;
    if packet.mode != Mode::Client {
        return Err(Malformed::Mode(packet.mode));
    }
    if !(1..=4).contains(&packet.version) {
        return Err(Malformed::Version(packet.version));
    }
    Ok(Request { version: packet.version, poll: packet.poll, transmit: packet.transmit })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a failed unwrap is a failed test")]

    use super::*;
    use crate::sources::ntp::packet::PACKET_LEN;
    use proptest::prelude::*;

    fn request(lvm: u8) -> [u8; PACKET_LEN] {
        let mut bytes = NtpPacket::client_request(0x0102_0304_0506_0708, 6).encode();
        bytes[0] = lvm;
        bytes
    }

    #[test]
    fn client_requests_of_every_version_are_accepted_and_the_rest_refused() {
        for version in 1..=4u8 {
            let r = parse(&request((version << 3) | 3)).unwrap();
            assert_eq!((r.version, r.poll, r.transmit.to_bits()), (version, 6, 0x0102_0304_0506_0708));
        }
        assert_eq!(parse(&request(3)), Err(Malformed::Version(0)));
        assert_eq!(parse(&request((5 << 3) | 3)), Err(Malformed::Version(5)));
        assert_eq!(parse(&request((4 << 3) | 6)), Err(Malformed::Mode(Mode::Control)));
        assert_eq!(parse(&request((2 << 3) | 7)), Err(Malformed::Mode(Mode::Private)));
        assert_eq!(parse(&request((4 << 3) | 4)), Err(Malformed::Mode(Mode::Server)));
        assert_eq!(parse(&request((4 << 3) | 1)), Err(Malformed::Mode(Mode::SymmetricActive)));
        assert!(matches!(parse(&request(0x23)[..47]), Err(Malformed::TooShort(_))));
        assert!(matches!(parse(&[]), Err(Malformed::TooShort(_))));
        // Zero origin and transmit are fine; trailing bytes are ignored.
        let mut long = request(0x23).to_vec();
        long[24..48].fill(0);
        long.extend_from_slice(&[0xAA; 20]);
        assert_eq!(parse(&long).unwrap().transmit, NtpTimestamp::ZERO);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
