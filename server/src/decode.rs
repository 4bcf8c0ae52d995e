//! `tsod decode`: turn a message's bytes into readable JSON, for debugging
//! captures and checking other implementations against SPEC.md.

use tsod_proto::wire::{self, DecodeError};

/// Why a hex string could not be shown as a message.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The input is not hexadecimal.
    #[error("input is not hex: {0}")]
    NotHex(#[from] hex::FromHexError),
    /// The bytes are not a valid message.
    #[error("not a valid tsod message ({name}): {0}", name = .0.name())]
    Decode(#[from] DecodeError),
    /// Serialization failed (a bug).
    #[error("cannot render message as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a message given as hex (whitespace ignored) and renders it as
/// pretty JSON, the same representation the test vectors use.
pub fn decode_hex_to_json(input: &str) -> Result<String, InspectError> {
    let compact: String = input.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(compact)?;
    let message = wire::decode(&bytes)?;
    Ok(serde_json::to_string_pretty(&message)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_now_request() {
        let json = decode_hex_to_json("01 10 0000 00000010 00000000000000 2a").unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kind"], "now-request");
        assert_eq!(v["request-id"], 42);
    }

    #[test]
    fn reports_typed_errors() {
        assert!(matches!(decode_hex_to_json("zz"), Err(InspectError::NotHex(_))));
        let err = decode_hex_to_json("02 10 0000 00000010 00000000000000 2a").unwrap_err();
        assert!(matches!(err, InspectError::Decode(DecodeError::UnsupportedVersion { version: 2 })));
        assert!(err.to_string().contains("unsupported-version"));
    }
}
