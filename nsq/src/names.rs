//! Topic and channel name rules, exactly as nsqd's
//! (`^[.a-zA-Z0-9_-]+(#ephemeral)?$`, 1 to 64 bytes in all).

const EPHEMERAL_SUFFIX: &str = "#ephemeral";

/// Whether `name` is a valid topic or channel name.
pub fn is_valid_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 64 {
        return false;
    }
    let base = name.strip_suffix(EPHEMERAL_SUFFIX).unwrap_or(name);
    !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Ephemeral topics and channels vanish when their last consumer leaves.
pub fn is_ephemeral(name: &str) -> bool {
    name.ends_with(EPHEMERAL_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_nsqd() {
        for ok in ["t", "a.b_c-d", "x#ephemeral", &"a".repeat(64), "0"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        let too_long = "a".repeat(65);
        for bad in [
            "",
            "bad!name",
            "a b",
            "#ephemeral",
            "a#ephemeral#ephemeral",
            "a#eph",
            &too_long,
            "ü",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert!(is_ephemeral("c#ephemeral"));
        assert!(!is_ephemeral("c"));
    }
}
