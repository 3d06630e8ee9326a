//! Plain HTTP/1.1 on the WebSocket port: parsing a request head (with
//! `httparse`), building JSON responses, percent-decoding.
//!
//! Pure code run on connection threads. One request per connection
//! (`Connection: close`): the API is for status checks and publishing, not
//! for serving pages.

use std::fmt::Write as _;

use serde::Serialize;

/// A parsed request. Header names are kept as sent; look them up with
/// [`Request::header`], which ignores case.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (any case), trimmed.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header called `name` (any case), in order.
    pub(crate) fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the comma-separated header `name` holds `token` (any case).
    pub(crate) fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The first query parameter called `name`, decoded.
    ///
    /// # Errors
    ///
    /// When the query is not valid percent-encoded UTF-8.
    pub(crate) fn query_param(&self, name: &str) -> Result<Option<String>, BadRequest> {
        for pair in self.query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(key)? == name {
                return percent_decode(value).map(Some);
            }
        }
        Ok(None)
    }

    /// The `Content-Length`, if there is one.
    ///
    /// # Errors
    ///
    /// When it is not a number.
    ///
    /// Strict, as RFC 9112 asks: digits only, and several `Content-Length`
    /// headers must agree, or the request is refused.
    pub(crate) fn content_length(&self) -> Result<Option<usize>, BadRequest> {
        let bad = BadRequest("Content-Length must be one number");
        let mut length = None;
        for (_, value) in self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            for part in value.split(',') {
                let part = part.trim();
                if part.is_empty() || part.len() > 18 || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad);
                }
                let parsed: usize = part.parse().map_err(|_| bad)?;
                if length.is_some_and(|seen| seen != parsed) {
                    return Err(bad);
                }
                length = Some(parsed);
            }
        }
        Ok(length)
    }
}

/// Why a request could not be read, as a 400 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadRequest(pub &'static str);

/// Most header lines a request may have; more is answered 431.
const MAX_HEADERS: usize = 64;

/// Why a head could not be parsed yet or at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// Malformed: answered 400 with this message.
    Bad(BadRequest),
    /// More header lines than [`MAX_HEADERS`]: answered 431.
    TooManyHeaders,
}

/// Parses a request head with `httparse`. `Ok(None)` while the head is
/// incomplete; otherwise the request and the length of its head (the body,
/// or a WebSocket's first frames, start there).
///
/// # Errors
///
/// A [`HeadError`] saying what is malformed.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let bad = |why| HeadError::Bad(BadRequest(why));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let end = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => {
            return Err(bad("only HTTP/1.0 and HTTP/1.1 are spoken here"));
        }
        Err(httparse::Error::HeaderName) => return Err(bad("malformed header name")),
        Err(httparse::Error::Token) => return Err(bad("malformed method")),
        Err(_) => return Err(bad("malformed request")),
    };
    let (Some(method), Some(target)) = (parsed.method, parsed.path) else {
        return Err(bad("malformed request line"));
    };
    if !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("malformed method"));
    }
    if !target.starts_with('/') {
        return Err(bad("the request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut fields = Vec::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let value =
            std::str::from_utf8(header.value).map_err(|_| bad("a header value is not UTF-8"))?;
        fields.push((header.name.to_owned(), value.trim().to_owned()));
    }
    let request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers: fields,
        body: Vec::new(),
    };
    Ok(Some((request, end)))
}

/// Decodes `%XX` escapes and `+` (as space) of a query component.
///
/// # Errors
///
/// A bad escape or a result that is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Result<String, BadRequest> {
    let bad = BadRequest("malformed percent-encoding in the query");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(bad)?;
                let hex = std::str::from_utf8(hex).map_err(|_| bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad)?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad)
}

/// An HTTP response with a JSON (or Prometheus text) body.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The body of every error response: `{"success":false,"code":...,"error":...}`.
#[derive(Serialize)]
struct ErrorBody<'a> {
    success: bool,
    code: &'a str,
    error: &'a str,
}

impl Response {
    /// A JSON response.
    pub(crate) fn json<T: Serialize>(status: u16, body: &T) -> Response {
        let body = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_owned());
        Response {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    /// A JSON error: `code` is machine-readable, `message` says what to do.
    pub(crate) fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &ErrorBody {
                success: false,
                code,
                error: message,
            },
        )
    }

    /// A plain-text response (Prometheus metrics).
    pub(crate) fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The bytes on the wire; `head_only` for HEAD requests.
    pub(crate) fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_parses_into_method_path_query_and_headers() {
        let head = b"GET /ws?userId=u%201&sessionId=s+1 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n";
        let (req, end) = parse_head(head).unwrap().unwrap();
        assert_eq!(end, head.len());
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/ws");
        assert_eq!(req.header("upgrade"), Some("WebSocket"));
        assert!(req.header_has_token("connection", "upgrade"));
        assert_eq!(req.query_param("userId").unwrap().as_deref(), Some("u 1"));
        assert_eq!(
            req.query_param("sessionId").unwrap().as_deref(),
            Some("s 1")
        );
        assert_eq!(req.query_param("token").unwrap(), None);
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        for head in [
            &b"GET\r\n\r\n"[..],
            b"GET /a HTTP/2\r\n\r\n",
            b"get /a HTTP/1.1\r\n\r\n",
            b"GET a HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1 extra\r\n\r\n",
            b"GET /a HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /a HTTP/1.1\r\nbad name: x\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(head), Err(HeadError::Bad(_))),
                "{:?}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn content_length_is_strict() {
        let length = |headers: &[&str]| {
            let mut head = String::from("POST /api/publish HTTP/1.1\r\n");
            for h in headers {
                head.push_str(&format!("Content-Length: {h}\r\n"));
            }
            head.push_str("\r\n");
            parse_head(head.as_bytes())
                .unwrap()
                .unwrap()
                .0
                .content_length()
        };
        assert_eq!(length(&[]), Ok(None));
        assert_eq!(length(&["12"]), Ok(Some(12)));
        assert_eq!(length(&["12", "12"]), Ok(Some(12)), "repeats that agree");
        assert_eq!(length(&["12, 12"]), Ok(Some(12)));
        for bad in [
            &["+5"][..],
            &["-1"],
            &["5 5"],
            &["0x10"],
            &["12", "13"],
            &["12, 13"],
            &[""],
            &["99999999999999999999"],
        ] {
            assert!(length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn percent_decoding_refuses_broken_escapes() {
        assert_eq!(percent_decode("a%2Fb").unwrap(), "a/b");
        assert_eq!(percent_decode("%C3%A9").unwrap(), "é");
        assert!(percent_decode("%").is_err());
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%ff").is_err(), "not UTF-8");
    }

    #[test]
    fn responses_carry_length_and_close() {
        let bytes = Response::error(404, "not_found", "No such path").to_bytes(false);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["success"], false);
        assert_eq!(json["code"], "not_found");
        let head = Response::json(200, &1).to_bytes(true);
        assert!(String::from_utf8(head).unwrap().ends_with("\r\n\r\n"));
    }
}
