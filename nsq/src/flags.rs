//! Command-line conventions of NSQ's Go daemons: `-flag` as well as
//! `--flag`, and listen addresses such as `:4150`.

use std::net::{SocketAddr, ToSocketAddrs};

/// Rewrites Go's `-flag` spelling to clap's `--flag`, leaving values alone.
///
/// Go's flag package treats `-name` and `--name` alike, and NSQ's docs use the
/// single dash, so scripts written for nsqd keep working.
pub fn normalize_go_flags(
    args: impl IntoIterator<Item = String>,
    switches: &[&str],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut expect_value = false;
    for (i, arg) in args.into_iter().enumerate() {
        let is_single_dash_flag = i > 0
            && !expect_value
            && arg.len() > 2
            && arg.starts_with('-')
            && !arg.starts_with("--")
            && arg.as_bytes()[1].is_ascii_alphabetic();
        let arg = if is_single_dash_flag {
            format!("-{arg}")
        } else {
            arg
        };
        // A flag without `=` takes the next argument as its value, unless it is
        // a switch; we only need to avoid rewriting a value that starts with '-'.
        expect_value =
            arg.starts_with("--") && !arg.contains('=') && !switches.contains(&arg.as_str());
        out.push(arg);
    }
    out
}

/// Parses a listen address as Go does: `:4150` means every interface.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_string()
    };
    full.to_socket_addrs()
        .map_err(|e| format!("invalid address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {text:?} resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_dash_flags_become_double() {
        let args = [
            "wasqd",
            "-tcp-address=:4150",
            "-msg-timeout",
            "-1",
            "--max-rdy-count",
            "5",
        ];
        let out = normalize_go_flags(args.iter().map(|s| s.to_string()), &["--version"]);
        assert_eq!(
            out,
            [
                "wasqd",
                "--tcp-address=:4150",
                "--msg-timeout",
                "-1",
                "--max-rdy-count",
                "5"
            ]
        );
    }

    #[test]
    fn listen_address_accepts_go_forms() {
        assert_eq!(
            parse_listen_address(":4150").unwrap().to_string(),
            "0.0.0.0:4150"
        );
        assert!(parse_listen_address("nonsense").is_err());
    }
}
