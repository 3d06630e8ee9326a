//! permessage-deflate's negotiation (RFC 7692 §5 and §7.1): the client's
//! offers in, the parameters the hub accepts (and the header that says so)
//! out.
//!
//! Pure code, run by the upgrade on the connection's first thread.
//!
//! The hub always answers with `server_no_context_takeover` and
//! `client_no_context_takeover`, which RFC 7692 lets a server add whether or
//! not the client offered them (§7.1.1.1, §7.1.1.2): each message is then
//! compressed on its own, so one compressed frame serves every client of a
//! fan-out, and no connection keeps a 32 KiB window between messages.
//! `server_max_window_bits=N` (8 to 15) is honoured, and repeated in the
//! answer; `client_max_window_bits` needs nothing (the hub inflates with
//! the largest window) and is not answered. An offer the RFC says to
//! decline (an unknown parameter, a bad value, a parameter twice) is
//! declined and the next one is tried.

/// permessage-deflate as agreed with one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deflate {
    /// The base-2 logarithm of the largest window the hub's compressed
    /// messages may refer back into (8 to 15).
    pub(super) window_bits: u8,
    /// The client's offer named `server_max_window_bits`: the answer must too.
    pub(super) bounded: bool,
}

impl Default for Deflate {
    /// No `server_max_window_bits`: a 32 KiB window.
    fn default() -> Self {
        Deflate {
            window_bits: MAX_WINDOW_BITS,
            bounded: false,
        }
    }
}

/// The widest window DEFLATE has: 32 KiB.
pub(crate) const MAX_WINDOW_BITS: u8 = 15;
const MIN_WINDOW_BITS: u8 = 8;

impl Deflate {
    /// The base-2 logarithm of the largest window the client can inflate
    /// the hub's messages with (8 to 15; 15 unless it said otherwise).
    pub fn window_bits(&self) -> u8 {
        self.window_bits
    }

    /// The value of the `Sec-WebSocket-Extensions` header of the 101
    /// response.
    ///
    /// ```
    /// let agreed = wshub::websocket::negotiate(["permessage-deflate; server_max_window_bits=10"]);
    /// assert_eq!(
    ///     agreed.unwrap().response(),
    ///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
    /// );
    /// ```
    pub fn response(&self) -> String {
        let mut header = String::from(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        );
        if self.bounded {
            header.push_str(&format!("; server_max_window_bits={}", self.window_bits));
        }
        header
    }
}

/// The first permessage-deflate offer the hub can accept among the values
/// of the client's `Sec-WebSocket-Extensions` headers (in order), or `None`
/// when there is none (the connection goes uncompressed).
///
/// ```
/// use wshub::websocket::negotiate;
/// // What browsers send.
/// let agreed = negotiate(["permessage-deflate; client_max_window_bits"]).unwrap();
/// assert_eq!(agreed.window_bits(), 15);
/// // An offer with a parameter the RFC does not define is declined; the next one is taken.
/// let agreed = negotiate(["permessage-deflate; foo, permessage-deflate; server_max_window_bits=9"]);
/// assert_eq!(agreed.unwrap().window_bits(), 9);
/// assert_eq!(negotiate(["x-webkit-deflate-frame"]), None);
/// ```
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Deflate> {
    headers
        .into_iter()
        .flat_map(|value| split_quoted(value, ','))
        .find_map(accept)
}

/// One offer (`name; param; param=value`), accepted or not.
fn accept(offer: &str) -> Option<Deflate> {
    let mut parts = split_quoted(offer, ';');
    let name = parts.next()?.trim();
    if !name.eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut agreed = Deflate::default();
    let mut seen = [false; 4];
    for param in parts {
        let (key, value) = match param.split_once('=') {
            Some((key, value)) => (key.trim(), Some(unquote(value.trim())?)),
            None => (param.trim(), None),
        };
        let slot = match key {
            "server_no_context_takeover" => 0,
            "client_no_context_takeover" => 1,
            "server_max_window_bits" => 2,
            "client_max_window_bits" => 3,
            // A parameter the RFC does not define, or an empty one: decline.
            _ => return None,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return None;
        }
        match (slot, value) {
            // The hub never keeps a context, whatever the client says.
            (0 | 1, None) => {}
            (2, Some(value)) => {
                agreed.window_bits = window_bits(&value)?;
                agreed.bounded = true;
            }
            // The hub inflates with the widest window: any size will do,
            // but a value must still be a valid one.
            (3, None) => {}
            (3, Some(value)) => {
                window_bits(&value)?;
            }
            _ => return None,
        }
    }
    Some(agreed)
}

/// A window size: a decimal from 8 to 15, without leading zeroes.
fn window_bits(value: &str) -> Option<u8> {
    if value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// A parameter's value: a token, or a quoted string (whose content must be
/// a token, RFC 7692 §7.1).
fn unquote(value: &str) -> Option<String> {
    let inner = match value.strip_prefix('"') {
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return None,
                    c => out.push(c),
                }
            }
            out
        }
        None => value.to_owned(),
    };
    (!inner.is_empty() && inner.bytes().all(is_token_byte)).then_some(inner)
}

/// RFC 7230's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Splits `text` at `separator`s outside double quotes.
fn split_quoted(text: &str, separator: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == separator && !quoted => {
                    rest = Some(&text[i + 1..]);
                    return Some(&text[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(offers: &[&str]) -> Option<u8> {
        negotiate(offers.iter().copied()).map(|d| d.window_bits())
    }

    #[test]
    fn what_real_clients_offer_is_accepted() {
        // Chromium, Node's ws and Python's websockets, by default.
        assert_eq!(
            bits(&["permessage-deflate; client_max_window_bits"]),
            Some(15)
        );
        // A client that saves memory with small windows.
        assert_eq!(
            bits(&["permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"]),
            Some(12)
        );
        let agreed = negotiate(["permessage-deflate"]).unwrap();
        assert_eq!(
            agreed.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn offers_the_rfc_says_to_decline_are_declined_and_the_next_is_taken() {
        for declined in [
            "permessage-deflate; unknown",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=1x",
            "permessage-deflate; client_max_window_bits=20",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; ;",
        ] {
            assert_eq!(bits(&[declined]), None, "{declined}");
            let two = format!("{declined}, permessage-deflate; server_max_window_bits=11");
            assert_eq!(bits(&[&two]), Some(11), "{two}");
        }
        assert_eq!(bits(&["deflate-frame", "x-webkit-deflate-frame"]), None);
        // An unclosed quote swallows the rest of the header.
        assert_eq!(
            bits(&["permessage-deflate; server_max_window_bits=\"1\"0\", permessage-deflate"]),
            None
        );
        assert_eq!(bits(&[""]), None);
    }

    #[test]
    fn values_may_be_quoted_and_headers_repeated() {
        assert_eq!(
            bits(&["permessage-deflate; server_max_window_bits=\"10\""]),
            Some(10)
        );
        assert_eq!(
            bits(&[
                "foo; bar=\"a,b;c\"",
                "PerMessage-Deflate ; client_max_window_bits = 9"
            ]),
            Some(15)
        );
    }

    #[test]
    fn the_answer_repeats_a_bounded_window() {
        let agreed = negotiate(["permessage-deflate; server_max_window_bits=8"]).unwrap();
        assert!(agreed.response().ends_with("; server_max_window_bits=8"));
        assert_eq!(agreed.window_bits(), 8);
    }
}
