//! `tsod decode HEX`: one protocol message as JSON.

use std::io::Read;

use anyhow::Context;

pub(crate) fn run(hex: &str) -> anyhow::Result<()> {
    let input = if hex == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).context("reading hex from standard input")?;
        s
    } else {
        hex.to_owned()
    };
    super::print_line(&tsod::decode::decode_hex_to_json(&input)?)
}
