//! The dashboard's page: its files, compiled into the binary (plain HTML,
//! CSS and JavaScript modules, no build step, nothing fetched from
//! elsewhere, so it works offline), and how the page learns whether it
//! needs a token.
//!
//! Pure data. The connection threads serve these files at `GET /admin`
//! and below (`conn/dashboard.rs`); the page then opens its own
//! WebSocket on `/admin` with the admin token as a subprotocol, and the
//! router pushes it the hub's numbers every second (`router/console.rs`).
//! The files hold no data: everything the page shows comes over that
//! connection, behind the admin token.

/// One file of the page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asset {
    /// Where it is served.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page's files: the shell at `/admin`, then what it loads.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        path: "/admin",
        content_type: "text/html; charset=utf-8",
        body: include_str!("assets/index.html"),
    },
    Asset {
        path: "/admin/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/app.js"),
    },
    Asset {
        path: "/admin/chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("assets/chart.js"),
    },
    Asset {
        path: "/admin/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("assets/style.css"),
    },
];

/// The file served at `path`, if there is one.
pub(crate) fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// Whether the page must ask for the admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// An admin token is set: the page asks for it.
    Token,
    /// Development mode (no client auth, no admin token): open, as the
    /// admin API is.
    Open,
    /// Client auth is on and no admin token is set: locked, as the admin
    /// API is.
    Locked,
}

impl Access {
    fn as_str(self) -> &'static str {
        match self {
            Access::Token => "token",
            Access::Open => "open",
            Access::Locked => "locked",
        }
    }
}

/// The placeholder of the shell that says how to get in.
const ACCESS_PLACEHOLDER: &str = "{{ACCESS}}";

/// The body of `asset`; the shell says how to get in (and nothing else).
pub(crate) fn body(asset: &Asset, access: Access) -> String {
    match asset.path {
        "/admin" => asset.body.replace(ACCESS_PLACEHOLDER, access.as_str()),
        _ => asset.body.to_owned(),
    }
}

/// The headers every file of the page goes with: nothing runs or loads
/// from elsewhere, nothing frames it, nothing sniffs it, no referrer.
pub(crate) const HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_says_how_to_get_in_and_holds_no_data() {
        let shell = asset("/admin").unwrap();
        let page = body(shell, Access::Token);
        assert!(page.contains(r#"content="token""#), "{page}");
        assert!(!page.contains(ACCESS_PLACEHOLDER));
        assert!(page.contains("admin/app.js"));
        for file in ASSETS {
            // SVG's namespace is a name, not a place anything is loaded from.
            let body = file.body.replace("http://www.w3.org/2000/svg", "");
            for far in ["http://", "https://", "//cdn", "@import"] {
                assert!(
                    !body.contains(far),
                    "{} loads from elsewhere ({far})",
                    file.path
                );
            }
        }
        assert!(asset("/admin/nothing.js").is_none());
    }
}
