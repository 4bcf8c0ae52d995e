//! The boot id: which boot of this host wrote a segment (SPEC.md §5.3). A
//! segment from an earlier boot holds reader-clock values of a clock that
//! has since restarted from zero, so readers refuse it.

use std::io;

/// Where Linux publishes the boot id, a random UUID chosen at every boot.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// `/proc/sys/kernel/random/boot_id` as 16 bytes.
pub fn this_boot_id() -> io::Result<[u8; 16]> {
    let text = std::fs::read_to_string(BOOT_ID_PATH)?;
    parse_boot_id(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{BOOT_ID_PATH} is not a UUID")))
}

/// A UUID's 32 hex digits (dashes and whitespace ignored) as 16 bytes.
pub fn parse_boot_id(text: &str) -> Option<[u8; 16]> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b'-' && !b.is_ascii_whitespace()).collect();
    if digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let s = core::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_parses() {
        let id = parse_boot_id("6f1c2a3b-4c5d-4e6f-8091-a2b3c4d5e6f7\n").unwrap();
        assert_eq!(id[0], 0x6f);
        assert_eq!(id[15], 0xf7);
        assert_eq!(parse_boot_id("6f1c"), None);
        assert_eq!(parse_boot_id("zz1c2a3b-4c5d-4e6f-8091-a2b3c4d5e6f7"), None);
    }

    #[test]
    fn this_host_has_a_boot_id() {
        let id = this_boot_id().unwrap();
        assert_ne!(id, [0; 16]);
        assert_eq!(this_boot_id().unwrap(), id, "the boot id does not change within a boot");
    }
}
