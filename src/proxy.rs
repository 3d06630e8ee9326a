//! The client's address behind a trusted proxy: from a connection whose
//! peer is in `trusted_proxies`, the address the proxy says it serves, from
//! `Forwarded` (RFC 7239, its `for=`), or else `X-Forwarded-For`, or else
//! `X-Real-IP`. The chain of hops is read from the right (the nearest
//! proxy) and the first address that is not a trusted proxy is the
//! client's, so a client cannot pass itself off as another by sending the
//! header itself: only what trusted proxies appended counts. From any other
//! peer the headers are ignored.
//!
//! Pure code, run on a connection's thread during its upgrade. The address
//! found stands for the peer everywhere after: per-address limits, logs,
//! stats and what a backend sees.

use std::net::{IpAddr, SocketAddr};

/// The address of the client behind `peer`, given the request's headers
/// (`header(name)` gives every value of that header, in order).
pub(crate) fn client_address<'a>(
    peer: SocketAddr,
    header: impl Fn(&str) -> Vec<&'a str>,
    trusted: &[IpAddr],
) -> SocketAddr {
    let is_trusted = |ip: IpAddr| {
        trusted
            .iter()
            .any(|t| t.to_canonical() == ip.to_canonical())
    };
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let forwarded = header("forwarded");
    let hops: Vec<Option<SocketAddr>> = if !forwarded.is_empty() {
        forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect()
    } else {
        let xff = header("x-forwarded-for");
        let listed = match xff.is_empty() {
            true => header("x-real-ip"),
            false => xff,
        };
        listed
            .iter()
            .flat_map(|v| v.split(','))
            .map(|hop| plain(hop.trim()))
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            // A hop we cannot read (`unknown`, an obfuscated name,
            // garbage): the nearest address known is the client's.
            None => break,
            Some(addr) => {
                client = addr;
                if !is_trusted(addr.ip()) {
                    break;
                }
            }
        }
    }
    client
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.1;proto=https`,
/// `For="[2001:db8::1]:4711"`).
fn forwarded_for(element: &str) -> Option<SocketAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        plain(value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711` (port 0 when none).
fn plain(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 0));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bracketed = text.strip_prefix('[')?.strip_suffix(']')?;
    bracketed
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn from(peer: &str, headers: &[(&'static str, &'static str)]) -> SocketAddr {
        let trusted: Vec<IpAddr> = vec!["127.0.0.2".parse().unwrap(), "10.0.0.9".parse().unwrap()];
        client_address(
            addr(peer),
            |name| {
                headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| *v)
                    .collect()
            },
            &trusted,
        )
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let peer = "198.51.100.7:5000";
        assert_eq!(
            from(peer, &[("X-Forwarded-For", "203.0.113.1")]),
            addr(peer)
        );
        assert_eq!(from(peer, &[("Forwarded", "for=203.0.113.1")]), addr(peer));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let peer = "127.0.0.2:40000";
        // The client sent a forged first hop; proxies appended the rest.
        let xff = [("X-Forwarded-For", "1.1.1.1, 203.0.113.5, 10.0.0.9")];
        assert_eq!(from(peer, &xff), addr("203.0.113.5:0"));
        let split = [
            ("X-Forwarded-For", "1.1.1.1"),
            ("x-forwarded-for", "203.0.113.5"),
        ];
        assert_eq!(from(peer, &split), addr("203.0.113.5:0"));
        assert_eq!(
            from(peer, &[("X-Real-IP", "203.0.113.6")]),
            addr("203.0.113.6:0")
        );
    }

    #[test]
    fn forwarded_wins_and_is_read_as_rfc_7239_writes_it() {
        let peer = "127.0.0.2:40000";
        let both = [
            (
                "Forwarded",
                r#"for=192.0.2.60;proto=https, For="[2001:db8:cafe::17]:4711""#,
            ),
            ("X-Forwarded-For", "203.0.113.5"),
        ];
        assert_eq!(from(peer, &both), addr("[2001:db8:cafe::17]:4711"));
        let one = [("Forwarded", "proto=http;for=192.0.2.43")];
        assert_eq!(from(peer, &one), addr("192.0.2.43:0"));
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_nearest_known_address() {
        let peer = "127.0.0.2:40000";
        assert_eq!(
            from(peer, &[("Forwarded", "for=unknown")]),
            addr(peer),
            "the proxy itself"
        );
        assert_eq!(
            from(peer, &[("X-Forwarded-For", "junk, 10.0.0.9")]),
            addr("10.0.0.9:0")
        );
        assert_eq!(from(peer, &[]), addr(peer));
    }
}
