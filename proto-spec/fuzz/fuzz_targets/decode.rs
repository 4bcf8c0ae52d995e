//! Coverage-guided fuzzing of the message decoder: it must never panic, and
//! whatever it accepts must re-encode to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsod_proto::wire;

fuzz_target!(|data: &[u8]| {
    let _ = wire::frame_len(data);
    if let Ok(message) = wire::decode(data) {
        let again = message.to_vec().expect("a decoded message re-encodes");
        assert_eq!(again, data, "decode → encode is not the identity");
    }
});
