//! How nsqd (Go) reads numbers from and writes names into its protocol
//! texts, reproduced so Wasq's parameters and error messages match byte
//! for byte: `ByteToBase10`, `%q`, and lossy UTF-8 for client bytes.

/// nsqd's `ByteToBase10`: digits only (no sign), empty is 0, wraps on
/// overflow. `None` for any other byte.
pub fn parse_base10(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(d - b'0')))
    })
}

/// Renders client bytes for an error message.
pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Quotes a name as Go's `%q` does for the error texts that use it.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for ch in String::from_utf8_lossy(bytes).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base10_is_nsqds() {
        assert_eq!(parse_base10(b"123"), Some(123));
        assert_eq!(parse_base10(b""), Some(0));
        assert!(parse_base10(b"-1").is_none());
        assert!(parse_base10(b"1x").is_none());
        // Wraps on overflow, as Go's uint64 arithmetic.
        assert_eq!(parse_base10(b"18446744073709551616"), Some(0));
    }

    #[test]
    fn quotes_as_go_does() {
        assert_eq!(go_quote(b"a\"b\n\x01"), r#""a\"b\n\x01""#);
    }
}
