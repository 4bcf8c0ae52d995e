//! Reference IDs for an upstream named by its address (RFC 5905 §7.3): an
//! IPv4 server's four octets; for IPv6, the first four octets of the MD5
//! digest of its address, the hash chrony and ntpd compute too, so a
//! client whose own address it is can see the loop. MD5 serves here only
//! as that agreed identifier, never for security; it is written out
//! (RFC 1321) rather than pulled in as a crate for these 16 bytes.

use std::net::IpAddr;

use crate::sources::ntp::ReferenceId;

/// The reference ID of an upstream at `address`.
pub fn address_refid(address: IpAddr) -> ReferenceId {
    match address {
        IpAddr::V4(v4) => ReferenceId(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => ReferenceId(v4.octets()),
            None => {
                let [a, b, c, d, ..] = md5(&v6.octets());
                ReferenceId([a, b, c, d])
            }
        },
    }
}

/// Per-round shift amounts (RFC 1321 §3.4).
const SHIFTS: [u32; 16] = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

/// The MD5 digest of `message` (RFC 1321).
pub(crate) fn md5(message: &[u8]) -> [u8; 16] {
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let bit_len = u64::try_from(message.len()).unwrap_or(u64::MAX).wrapping_mul(8);
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&bit_len.to_le_bytes());
    for block in padded.chunks_exact(64) {
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64usize {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let shift = SHIFTS[(i / 16) * 4 + i % 4];
            let sum = a.wrapping_add(f).wrapping_add(sine(i)).wrapping_add(words[g]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(sum.rotate_left(shift));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut digest = [0u8; 16];
    for (out, word) in digest.chunks_exact_mut(4).zip(state) {
        out.copy_from_slice(&word.to_le_bytes());
    }
    digest
}

/// ⌊2³² · |sin(i + 1)|⌋, RFC 1321's table T, computed rather than listed.
fn sine(i: usize) -> u32 {
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a value in 0 … 2³², floored")]
    let value = ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// RFC 1321 appendix A.5.
    #[test]
    fn md5_matches_the_rfc_test_suite() {
        for (input, digest) in [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ] {
            assert_eq!(hex(&md5(input.as_bytes())), digest, "{input:?}");
        }
    }

    #[test]
    fn refids_are_the_ipv4_address_or_the_ipv6_hash() {
        assert_eq!(address_refid("192.0.2.1".parse().unwrap()), ReferenceId([192, 0, 2, 1]));
        assert_eq!(address_refid("::ffff:192.0.2.1".parse().unwrap()), ReferenceId([192, 0, 2, 1]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let IpAddr::V6(octets) = v6 else { unreachable!() };
        assert_eq!(address_refid(v6).0, md5(&octets.octets())[..4]);
    }
}
