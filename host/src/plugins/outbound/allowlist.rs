//! `allowed_outbound_hosts`: where a plugin's requests may go, in Spin's
//! form (`scheme://host[:port]`), and which addresses a host may resolve
//! to.
//!
//! Two checks, both before any byte is sent. The URL's scheme, host and
//! port must match an entry ([`AllowList::allows`]). Then every address
//! the connection may use must be public, unless an entry names that very
//! IP address ([`AllowList::may_connect`]): a DNS name, a `*.` wildcard or
//! `*` never leads to loopback, private, link-local (the cloud metadata
//! service), multicast, broadcast or unspecified addresses, so DNS cannot
//! be used to reach inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URL's scheme as the allowlist knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// What an entry's host part matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// `*`: any name.
    Any,
    /// `*.example.com`: names ending in `.example.com` (stored with the dot).
    Suffix(String),
    /// `api.example.com`, lower case.
    Name(String),
    /// `127.0.0.1`, `[::1]`: this address, special or not.
    Address(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: Scheme,
    host: HostPattern,
    /// `None`: any port (`:*`).
    port: Option<u16>,
}

/// A URL's host: a name (lower case) or an IP address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Name(String),
    Address(IpAddr),
}

impl Host {
    /// A URL's host as `http::Uri` gives it (IPv6 literals in brackets).
    pub fn parse(text: &str) -> Option<Host> {
        let bare = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or(text);
        if let Ok(address) = bare.parse::<IpAddr>() {
            return Some(Host::Address(address));
        }
        let name = text.to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 253
            && name
                .split('.')
                .all(|label| !label.is_empty() && label.len() <= 63)
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        valid.then_some(Host::Name(name))
    }
}

/// A plugin's allowlist; empty allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
    /// The entries as the manifest wrote them.
    written: Vec<String>,
}

impl AllowList {
    /// Parses the manifest's entries; `Err` names the entry and what is
    /// wrong with it.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, String> {
        let parsed = entries
            .iter()
            .map(|entry| {
                parse_entry(entry.as_ref()).map_err(|why| format!("{:?}: {why}", entry.as_ref()))
            })
            .collect::<Result<_, _>>()?;
        Ok(AllowList {
            entries: parsed,
            written: entries.iter().map(|e| e.as_ref().to_string()).collect(),
        })
    }

    /// The entries as written in the manifest.
    pub fn written(&self) -> &[String] {
        &self.written
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether some entry matches the URL's scheme, host and port.
    pub fn allows(&self, scheme: Scheme, host: &Host, port: u16) -> bool {
        self.entries.iter().any(|entry| {
            entry.scheme == scheme
                && entry.port.is_none_or(|p| p == port)
                && match (&entry.host, host) {
                    (HostPattern::Any, Host::Name(_)) => true,
                    (HostPattern::Any, Host::Address(address)) => is_public(*address),
                    (HostPattern::Suffix(suffix), Host::Name(name)) => {
                        name.ends_with(suffix.as_str())
                    }
                    (HostPattern::Name(allowed), Host::Name(name)) => allowed == name,
                    (HostPattern::Address(allowed), Host::Address(address)) => {
                        same_address(*allowed, *address)
                    }
                    _ => false,
                }
        })
    }

    /// Whether a connection for `scheme`/`port` may go to `address`: a
    /// public address always (the URL passed [`AllowList::allows`]), any
    /// other only if an entry names it literally.
    pub fn may_connect(&self, scheme: Scheme, address: IpAddr, port: u16) -> bool {
        is_public(address)
            || self.entries.iter().any(|entry| {
                entry.scheme == scheme
                    && entry.port.is_none_or(|p| p == port)
                    && matches!(entry.host, HostPattern::Address(allowed) if same_address(allowed, address))
            })
    }
}

fn parse_entry(text: &str) -> Result<Entry, String> {
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("expected scheme://host[:port]")?;
    let scheme = Scheme::parse(scheme).ok_or("the scheme must be http or https")?;
    if rest.contains(['/', '?', '#', '@']) {
        return Err("only scheme://host[:port]: no path, query or user".into());
    }
    let (host, port) = split_host_port(rest)?;
    let port = match port {
        None => Some(scheme.default_port()),
        Some("*") => None,
        Some(digits) => Some(
            digits
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("bad port {digits:?}"))?,
        ),
    };
    let host = if host == "*" {
        HostPattern::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        match Host::parse(suffix) {
            Some(Host::Name(name)) => HostPattern::Suffix(format!(".{name}")),
            _ => return Err(format!("bad wildcard host {host:?}")),
        }
    } else {
        match Host::parse(host) {
            Some(Host::Name(name)) => HostPattern::Name(name),
            Some(Host::Address(address)) => HostPattern::Address(address),
            None => return Err(format!("bad host {host:?}")),
        }
    };
    Ok(Entry { scheme, host, port })
}

/// `host[:port]`, with IPv6 literals in brackets.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), String> {
    if text.starts_with('[') {
        let end = text.find(']').ok_or("unclosed [ in an IPv6 address")?;
        let (host, rest) = text.split_at(end + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if rest.is_empty() => Ok((host, None)),
            None => Err(format!("unexpected {rest:?} after the address")),
        };
    }
    Ok(match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    })
}

/// One address, whether written as IPv4 or as IPv4-mapped IPv6.
fn same_address(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Whether `address` is an ordinary public unicast address: not loopback,
/// private, shared (carrier NAT), link-local, multicast, broadcast,
/// unspecified, or the IPv6 forms of those.
pub fn is_public(address: IpAddr) -> bool {
    match address.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, ..] = address.octets();
    let shared = a == 100 && (64..128).contains(&b);
    let this_network = a == 0;
    !(address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_multicast()
        || address.is_broadcast()
        || address.is_unspecified()
        || shared
        || this_network
        || a >= 240)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    let first = address.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    // 64:ff9b::/96 carries IPv4 addresses through NAT64: judge the IPv4 one.
    if address.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = address.octets();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || unique_local
        || link_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    fn name(text: &str) -> Host {
        Host::parse(text).unwrap()
    }

    #[test]
    fn entries_take_spins_form() {
        let allow = list(&[
            "https://api.example.com",
            "http://127.0.0.1:8080",
            "https://*.example.org:8443",
            "http://[::1]:*",
        ]);
        assert!(allow.allows(Scheme::Https, &name("api.example.com"), 443));
        assert!(allow.allows(Scheme::Https, &name("API.Example.COM"), 443));
        assert!(
            !allow.allows(Scheme::Http, &name("api.example.com"), 80),
            "other scheme"
        );
        assert!(
            !allow.allows(Scheme::Https, &name("api.example.com"), 8443),
            "other port"
        );
        assert!(
            !allow.allows(Scheme::Https, &name("example.com"), 443),
            "other host"
        );
        assert!(allow.allows(Scheme::Http, &name("127.0.0.1"), 8080));
        assert!(!allow.allows(Scheme::Http, &name("127.0.0.1"), 8081));
        assert!(allow.allows(Scheme::Https, &name("a.b.example.org"), 8443));
        assert!(
            !allow.allows(Scheme::Https, &name("example.org"), 8443),
            "the wildcard needs a label"
        );
        assert!(!allow.allows(Scheme::Https, &name("badexample.org"), 8443));
        assert!(allow.allows(Scheme::Http, &name("[::1]"), 1234));
        assert!(
            allow.allows(Scheme::Http, &name("[::ffff:127.0.0.1]"), 8080),
            "mapped IPv4"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        for (entry, says) in [
            ("api.example.com", "scheme://"),
            ("ftp://x", "http or https"),
            ("https://x/path", "no path"),
            ("https://x:99999", "bad port"),
            ("https://x:0", "bad port"),
            ("https://*.", "bad wildcard"),
            ("https://bad host", "bad host"),
            ("http://[::1", "unclosed"),
        ] {
            let error = AllowList::parse(&[entry]).unwrap_err();
            assert!(
                error.contains(entry) && error.contains(says),
                "{entry}: {error}"
            );
        }
    }

    #[test]
    fn an_empty_list_allows_nothing() {
        let allow = list(&[]);
        assert!(allow.is_empty());
        assert!(!allow.allows(Scheme::Https, &name("example.com"), 443));
    }

    #[test]
    fn special_addresses_only_when_named_literally() {
        let by_name = list(&[
            "http://localhost:8080",
            "http://*:8080",
            "http://*.internal:8080",
        ]);
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert!(!is_public(ip), "{address}");
            assert!(
                !by_name.may_connect(Scheme::Http, ip, 8080),
                "{address} through a name"
            );
            assert!(
                !by_name.allows(Scheme::Http, &Host::Address(ip), 8080),
                "{address} through *"
            );
        }
        let literal = list(&["http://127.0.0.1:8080", "http://169.254.169.254"]);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(literal.may_connect(Scheme::Http, loopback, 8080));
        assert!(
            !literal.may_connect(Scheme::Http, loopback, 9090),
            "another port"
        );
        assert!(
            !literal.may_connect(Scheme::Https, loopback, 8080),
            "another scheme"
        );
        assert!(literal.may_connect(Scheme::Http, "169.254.169.254".parse().unwrap(), 80));
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public}");
            assert!(by_name.may_connect(Scheme::Http, ip, 8080));
        }
    }
}
