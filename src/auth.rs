//! Who a client is and what it may do: static tokens, JWTs (HS256, or an
//! identity provider's public keys: see `jwt`), the admin token, the
//! browser Origin allow-list and channel permissions.
//!
//! Pure code. Connection threads call [`Authenticator::authenticate`] at the
//! handshake (which may wait a bounded time for the JWKS fetcher, see
//! `jwks`) and [`Authenticator::admin`] on admin HTTP requests; the router
//! asks an [`Identity`] for permissions and calls
//! [`Authenticator::verify`] for `refresh` (which never waits). Every
//! comparison of a client-given token with a secret runs in constant time.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::jwt::{JwtError, Verifier, Wait};
use crate::protocol;

/// A secret (a token, the JWT key) that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret's SHA-256 digest, what client-given values are compared with.
    fn digest(&self) -> Digest {
        Digest::of(&self.0)
    }
}

/// The SHA-256 digest of a token. Tokens are compared through their digests
/// in constant time: equal lengths, so not even a token's length leaks.
#[derive(Clone, Copy)]
struct Digest([u8; 32]);

impl Digest {
    fn of(value: &str) -> Digest {
        let digest = ring::digest::digest(&ring::digest::SHA256, value.as_bytes());
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Digest(bytes)
    }

    fn matches(&self, other: &Digest) -> bool {
        bool::from(self.0.ct_eq(&other.0))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Digest(..)")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Secret {
        Secret::new(secret)
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Secret {
        Secret(secret)
    }
}

/// What a static token grants: one entry of the tokens file.
///
/// ```json
/// {"s3cr3t-token": {"userId": "alice", "channels": ["private-team-*"], "publish": true},
///  "ops-token":    {"userId": "ops", "admin": true}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TokenGrant {
    /// The user the token belongs to.
    pub user_id: String,
    /// Full rights: every channel and session, publishing anywhere.
    #[serde(default)]
    pub admin: bool,
    /// Channel patterns it may subscribe to (`name` or `prefix*`); absent
    /// means every public channel. `user:<its own id>` is always allowed.
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// May publish to the channels it may read, even without
    /// `allow_client_publish`.
    #[serde(default)]
    pub publish: bool,
    /// A backend's service connection: it receives other clients'
    /// application messages and may publish to every target.
    #[serde(default)]
    pub service: bool,
    /// Key/values about the client (visible to publish filters and stats).
    #[serde(default)]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

impl TokenGrant {
    /// A grant for `user_id` with no extra rights.
    pub fn user(user_id: impl Into<String>) -> TokenGrant {
        TokenGrant {
            user_id: user_id.into(),
            admin: false,
            channels: None,
            publish: false,
            service: false,
            meta: None,
        }
    }
}

/// Reads a tokens file: a JSON object mapping each token to its [`TokenGrant`].
///
/// # Errors
///
/// [`Error::Config`] naming the file and what is wrong with it (missing,
/// unreadable, not JSON, an unknown field, a bad channel pattern).
pub fn load_tokens(path: &Path) -> Result<HashMap<Secret, TokenGrant>> {
    let fail = |reason: String| Error::Config {
        field: "tokens",
        reason: format!("{}: {reason}", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|err| fail(err.to_string()))?;
    let tokens: HashMap<String, TokenGrant> =
        serde_json::from_str(&text).map_err(|err| fail(err.to_string()))?;
    let tokens: HashMap<Secret, TokenGrant> =
        tokens.into_iter().map(|(k, v)| (Secret(k), v)).collect();
    check_tokens(&tokens).map_err(fail)?;
    Ok(tokens)
}

/// Checks every grant of a token table.
pub(crate) fn check_tokens(tokens: &HashMap<Secret, TokenGrant>) -> Result<(), String> {
    for (token, grant) in tokens {
        if token.0.is_empty() {
            return Err("a token is empty".into());
        }
        if grant.user_id.is_empty() || grant.user_id.len() > protocol::MAX_NAME_LEN {
            return Err(format!("userId {:?} must be 1 to 255 bytes", grant.user_id));
        }
        for pattern in grant.channels.iter().flatten() {
            Pattern::parse(pattern)?;
        }
    }
    Ok(())
}

/// A channel pattern: an exact name, `prefix*`, or `*` for every channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Box<str>);

impl Pattern {
    pub(crate) fn parse(pattern: &str) -> Result<Pattern, String> {
        let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
        if !(prefix.is_empty() && pattern == "*") {
            protocol::check_name(prefix, "channel pattern").map_err(|(_, message)| message)?;
        }
        Ok(Pattern(pattern.into()))
    }

    pub(crate) fn matches(&self, channel: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => *self.0 == *channel,
        }
    }
}

/// Whether anyone allowed public channels may read `channel`: everything but
/// `private-*` and `user:*`.
pub(crate) fn is_public(channel: &str) -> bool {
    !channel.starts_with(protocol::PRIVATE_PREFIX) && !channel.starts_with(protocol::USER_PREFIX)
}

/// A client's identity, settled at the handshake (and by `refresh`).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub user_id: Option<String>,
    pub access: Access,
    /// When its token stops being valid (expiry plus leeway), if ever.
    pub expires_at: Option<SystemTime>,
    /// Key/values the token carried (`meta`).
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// Why the token given was refused, for a client let in as anonymous
    /// instead (`allow_anonymous`).
    pub refused_token: Option<String>,
}

/// What kind of client this is.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// No client auth configured (development): the user id is whatever
    /// the query says; everything is open but client publishing (a flag).
    Open,
    /// Let in without a token by `allow_anonymous`: public channels and
    /// broadcasts only.
    Anonymous,
    /// A verified token and what it grants.
    Verified(Grants),
}

/// The rights a verified token carries.
#[derive(Debug, Clone)]
pub(crate) struct Grants {
    pub admin: bool,
    pub publish: bool,
    pub service: bool,
    pub channels: Option<Vec<Pattern>>,
}

impl Grants {
    /// Every right: an admin, or a backend's service connection.
    pub(crate) fn full(&self) -> bool {
        self.admin || self.service
    }
}

impl Identity {
    /// A development-mode client with the user id from the query.
    pub(crate) fn open(user_id: Option<String>) -> Identity {
        Identity {
            user_id,
            access: Access::Open,
            expires_at: None,
            meta: None,
            refused_token: None,
        }
    }

    /// Whether this is a backend's service connection (the admin token, or
    /// a token with the `service` grant).
    pub(crate) fn is_service(&self) -> bool {
        matches!(&self.access, Access::Verified(g) if g.service)
    }

    /// Whether a token vouched for this client.
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self.access, Access::Verified(_))
    }

    /// Whether the client may subscribe to (and so read) `channel`.
    pub(crate) fn may_read_channel(&self, channel: &str) -> bool {
        match &self.access {
            Access::Open => true,
            Access::Anonymous => is_public(channel),
            Access::Verified(grants) => {
                grants.full()
                    || self.user_id.as_deref().is_some_and(|user| {
                        channel.strip_prefix(protocol::USER_PREFIX) == Some(user)
                    })
                    || match &grants.channels {
                        None => is_public(channel),
                        Some(patterns) => patterns.iter().any(|p| p.matches(channel)),
                    }
            }
        }
    }

    /// Whether the client may publish at all, given the server's flag.
    pub(crate) fn may_publish(&self, allowed_by_flag: bool) -> bool {
        match &self.access {
            Access::Open => allowed_by_flag,
            Access::Anonymous => false,
            Access::Verified(grants) => grants.full() || grants.publish || allowed_by_flag,
        }
    }

    /// Whether the client may see sessions, user events and presence.
    pub(crate) fn sees_private_events(&self) -> bool {
        !matches!(self.access, Access::Anonymous)
    }

    /// Whether sessions this client opens belong to its user (with auth on,
    /// for non-admin users).
    pub(crate) fn owns_sessions(&self) -> bool {
        matches!(&self.access, Access::Verified(g) if !g.full())
    }

    fn verified(
        user_id: Option<String>,
        grants: Grants,
        expires_at: Option<SystemTime>,
        meta: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Identity {
        Identity {
            user_id,
            access: Access::Verified(grants),
            expires_at,
            meta,
            refused_token: None,
        }
    }
}

/// Why a client was not let in. The text goes into the `unauthorized` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// Auth is on and no token was given.
    MissingToken,
    /// The token matches nothing.
    InvalidToken,
    /// A JWT that failed verification.
    Jwt(JwtError),
    /// The `userId` query parameter names someone else.
    UserMismatch,
    /// A `userId` without a token, when auth is on.
    UserWithoutToken,
    /// The token's grants are unusable (a bad channel pattern).
    BadGrant(String),
    /// The dashboard's connection without the admin token.
    NotAdmin,
    /// The dashboard's connection while client auth is on and no admin
    /// token is set: locked, as the admin API is.
    AdminLocked,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::MissingToken => {
                f.write_str("Unauthorized: a token is required (?token= or Authorization: Bearer)")
            }
            Denied::InvalidToken => f.write_str("Unauthorized: invalid token"),
            Denied::Jwt(err) => write!(f, "Unauthorized: {err}"),
            Denied::UserMismatch => f.write_str("Unauthorized: userId does not match the token"),
            Denied::UserWithoutToken => {
                f.write_str("Unauthorized: a userId needs a token that vouches for it")
            }
            Denied::BadGrant(reason) => write!(f, "Unauthorized: {reason}"),
            Denied::NotAdmin => f.write_str(
                "Unauthorized: the dashboard needs the admin token (in the subprotocol wshub.bearer.<base64url token>, or Authorization: Bearer)",
            ),
            Denied::AdminLocked => f.write_str(
                "Unauthorized: client auth is on and no admin token is set, so the dashboard is locked: start the hub with --admin-token",
            ),
        }
    }
}

/// The result of checking an admin HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminCheck {
    /// Go ahead.
    Allowed,
    /// No or a wrong `Authorization: Bearer` token.
    Refused,
    /// Client auth is on but no admin token is configured: locked.
    Locked,
}

/// Everything needed to decide who gets in, built once from the settings
/// (see `Config::authenticator`).
#[derive(Debug)]
pub(crate) struct Authenticator {
    tokens: Vec<(Digest, TokenGrant)>,
    /// JWTs, when configured (a secret, public keys or a key set).
    jwt: Option<Verifier>,
    /// How long a handshake may wait for the key set to be fetched again.
    key_set_wait: Duration,
    admin_token: Option<Digest>,
    allow_anonymous: bool,
    origins: Vec<String>,
}

impl Authenticator {
    pub(crate) fn new(
        tokens: &HashMap<Secret, TokenGrant>,
        jwt: Option<Verifier>,
        key_set_wait: Duration,
        admin_token: Option<&Secret>,
        allow_anonymous: bool,
        allowed_origins: &[String],
    ) -> Authenticator {
        Authenticator {
            tokens: tokens
                .iter()
                .map(|(k, v)| (k.digest(), v.clone()))
                .collect(),
            jwt,
            key_set_wait,
            admin_token: admin_token.map(Secret::digest),
            allow_anonymous,
            origins: allowed_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether clients must authenticate (a tokens table, or JWTs).
    pub(crate) fn client_auth(&self) -> bool {
        !self.tokens.is_empty() || self.jwt.is_some()
    }

    /// The JWT checks, if any (the hub starts the key set's fetcher).
    pub(crate) fn jwt(&self) -> Option<&Verifier> {
        self.jwt.as_ref()
    }

    /// Decides who a connecting client is.
    pub(crate) fn authenticate(
        &self,
        token: Option<&str>,
        user_param: Option<&str>,
        now: SystemTime,
    ) -> Result<Identity, Denied> {
        if !self.client_auth() {
            // Development: tokens are not checked (the Code Cloud Agents clients
            // always send one), except the admin token, which opens a
            // service connection.
            return Ok(match token.and_then(|t| self.service(&Digest::of(t))) {
                Some(service) => service,
                None => Identity::open(user_param.map(str::to_owned)),
            });
        }
        let anonymous = |refused: Option<String>| Identity {
            user_id: None,
            access: Access::Anonymous,
            expires_at: None,
            meta: None,
            refused_token: refused,
        };
        let identity = match token {
            Some(token) => match self.check(token, now, Wait::UpTo(self.key_set_wait)) {
                Ok(identity) => identity,
                // Let in as anonymous, told why (the Code Cloud Agents
                // clients: unauthenticated clients connect but get no
                // sensitive updates).
                Err(denied) if self.allow_anonymous && user_param.is_none() => {
                    anonymous(Some(denied.to_string()))
                }
                Err(denied) => return Err(denied),
            },
            None if self.allow_anonymous && user_param.is_none() => anonymous(None),
            None if self.allow_anonymous => return Err(Denied::UserWithoutToken),
            None => return Err(Denied::MissingToken),
        };
        if let Some(user) = user_param
            && identity.user_id.as_deref() != Some(user)
        {
            return Err(Denied::UserMismatch);
        }
        Ok(identity)
    }

    /// Checks a token on its own, without waiting (`refresh`, on the router).
    pub(crate) fn verify(&self, token: &str, now: SystemTime) -> Result<Identity, Denied> {
        self.check(token, now, Wait::No)
    }

    /// Checks a token on its own, waiting for a key set as `wait` says.
    fn check(&self, token: &str, now: SystemTime, wait: Wait) -> Result<Identity, Denied> {
        let given = Digest::of(token);
        if let Some(service) = self.service(&given) {
            return Ok(service);
        }
        // Compare with every entry, so the time taken says nothing about
        // which (if any) matched.
        let grant = self.tokens.iter().fold(None, |found, (digest, grant)| {
            if digest.matches(&given) {
                Some(grant)
            } else {
                found
            }
        });
        if let Some(grant) = grant {
            return Ok(Identity::verified(
                Some(grant.user_id.clone()),
                grants(
                    grant.admin,
                    grant.publish,
                    grant.service,
                    grant.channels.as_deref(),
                )?,
                None,
                grant.meta.clone(),
            ));
        }
        if let Some(jwt) = &self.jwt
            && token.bytes().filter(|b| *b == b'.').count() == 2
        {
            let claims = jwt.verify(token, now, wait).map_err(Denied::Jwt)?;
            return Ok(Identity::verified(
                Some(claims.sub),
                grants(
                    claims.admin,
                    claims.publish,
                    claims.service,
                    claims.channels.as_deref(),
                )?,
                claims.valid_until,
                claims.meta,
            ));
        }
        Err(Denied::InvalidToken)
    }

    /// The admin token used as a WebSocket token: a service connection
    /// with full rights and no user.
    fn service(&self, given: &Digest) -> Option<Identity> {
        let admin = self.admin_token.as_ref()?;
        admin.matches(given).then(admin_identity)
    }

    /// The dashboard's own connection (`/admin`): the admin token makes it
    /// a service identity with full rights and no user; without an admin
    /// token it needs none in development mode (as the admin API), and is
    /// locked when client auth is on.
    pub(crate) fn console(&self, token: Option<&str>) -> Result<Identity, Denied> {
        match (&self.admin_token, token) {
            (None, _) if self.client_auth() => Err(Denied::AdminLocked),
            (None, _) => Ok(admin_identity()),
            (Some(admin), Some(given)) if admin.matches(&Digest::of(given)) => Ok(admin_identity()),
            (Some(_), _) => Err(Denied::NotAdmin),
        }
    }

    /// Checks `Authorization` on an admin HTTP request.
    pub(crate) fn admin(&self, authorization: Option<&str>) -> AdminCheck {
        match &self.admin_token {
            None if self.client_auth() => AdminCheck::Locked,
            None => AdminCheck::Allowed,
            Some(admin) => match authorization.and_then(bearer) {
                Some(given) if admin.matches(&Digest::of(given)) => AdminCheck::Allowed,
                _ => AdminCheck::Refused,
            },
        }
    }

    /// Whether a browser from `origin` may open a WebSocket. Requests without
    /// an Origin (not from a browser) always may. With an allow-list, the
    /// listed origins may. Without one, every origin may when clients need
    /// tokens (a page elsewhere has none), and only pages on this machine in
    /// development mode, where connecting is all it takes.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(origin) if !self.origins.is_empty() => self.origin_listed(origin),
            Some(_) if self.client_auth() => true,
            Some(origin) => is_loopback_origin(origin),
        }
    }

    /// Whether `origin` is on the allow-list (an empty list allows nobody).
    pub(crate) fn origin_listed(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins
            .iter()
            .any(|rule| origin_matches(rule, &origin))
    }
}

/// The identity the admin token gives: a service with every right and no user.
fn admin_identity() -> Identity {
    Identity::verified(
        None,
        Grants {
            admin: true,
            publish: true,
            service: true,
            channels: None,
        },
        None,
        None,
    )
}

/// Whether `origin` is a page on this machine: `http(s)://localhost`,
/// `127.x.x.x` or `[::1]`, any port.
pub(crate) fn is_loopback_origin(origin: &str) -> bool {
    let origin = origin.to_ascii_lowercase();
    match origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    {
        Some(authority) => is_loopback_host(authority),
        None => false,
    }
}

/// Whether a `Host` header (or an origin's authority) names this machine:
/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
pub(crate) fn is_loopback_host(authority: &str) -> bool {
    let authority = authority.to_ascii_lowercase();
    let host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, rest)) if rest.is_empty() || rest.starts_with(':') => host,
            _ => return false,
        },
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn grants(
    admin: bool,
    publish: bool,
    service: bool,
    channels: Option<&[String]>,
) -> Result<Grants, Denied> {
    let channels = channels
        .map(|patterns| {
            patterns
                .iter()
                .map(|p| Pattern::parse(p))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()
        .map_err(Denied::BadGrant)?;
    Ok(Grants {
        admin,
        publish,
        service,
        channels,
    })
}

/// Whether an allowed-origin rule matches: `*`, an exact origin, or
/// `scheme://*.domain` for every subdomain.
fn origin_matches(rule: &str, origin: &str) -> bool {
    if rule == "*" || rule == origin {
        return true;
    }
    match rule.split_once("://*.") {
        Some((scheme, domain)) => origin
            .strip_prefix(scheme)
            .and_then(|rest| rest.strip_prefix("://"))
            .is_some_and(|host| host.ends_with(&format!(".{domain}"))),
        None => false,
    }
}

/// Checks an allowed-origin rule's form.
pub(crate) fn check_origin_rule(rule: &str) -> Result<(), String> {
    if rule == "*" || rule == "null" {
        return Ok(());
    }
    let (scheme, host) = rule
        .split_once("://")
        .ok_or_else(|| format!("{rule:?} is not an origin like https://app.example.com"))?;
    if scheme.is_empty() || host.is_empty() || host.contains('/') {
        return Err(format!(
            "{rule:?} is not an origin like https://app.example.com (no path)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;
    use std::time::UNIX_EPOCH;

    const SECRET: &str = "a secret for the tests, 32 bytes";

    fn auth(config: Config) -> Authenticator {
        config.authenticator()
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000)
    }

    fn jwt(claims: serde_json::Value) -> String {
        crate::jwt::sign_jwt(SECRET.as_bytes(), &claims).unwrap()
    }

    fn with_auth() -> Authenticator {
        auth(Config {
            tokens: HashMap::from([
                (Secret::new("alice-token"), TokenGrant::user("alice")),
                (
                    Secret::new("ops-token"),
                    TokenGrant {
                        admin: true,
                        ..TokenGrant::user("ops")
                    },
                ),
            ]),
            jwt_secret: Some(SECRET.into()),
            admin_token: Some("service-token".into()),
            ..Config::default()
        })
    }

    #[test]
    fn without_auth_everyone_is_open_and_tokens_are_ignored() {
        let a = auth(Config::default());
        let id = a.authenticate(Some("whatever"), Some("u1"), now()).unwrap();
        assert!(matches!(id.access, Access::Open));
        assert_eq!(id.user_id.as_deref(), Some("u1"));
        assert!(!id.authenticated());
        assert_eq!(a.admin(None), AdminCheck::Allowed);
    }

    #[test]
    fn static_tokens_jwts_and_the_admin_token_each_identify() {
        let a = with_auth();
        let alice = a.authenticate(Some("alice-token"), None, now()).unwrap();
        assert_eq!(alice.user_id.as_deref(), Some("alice"));
        let is_admin = |id: &Identity| matches!(&id.access, Access::Verified(g) if g.admin);
        assert!(alice.authenticated() && !is_admin(&alice));
        let ops = a
            .authenticate(Some("ops-token"), Some("ops"), now())
            .unwrap();
        assert!(is_admin(&ops));
        let service = a.authenticate(Some("service-token"), None, now()).unwrap();
        assert!(is_admin(&service) && service.user_id.is_none());

        let token = jwt(json!({"sub": "bob", "exp": 1_000_100}));
        let bob = a.authenticate(Some(&token), Some("bob"), now()).unwrap();
        assert_eq!(bob.user_id.as_deref(), Some("bob"));
        assert_eq!(
            bob.expires_at,
            Some(UNIX_EPOCH + Duration::from_secs(1_000_130))
        );
    }

    #[test]
    fn every_way_in_without_the_right_token_is_denied() {
        let a = with_auth();
        assert_eq!(
            a.authenticate(None, None, now()).unwrap_err(),
            Denied::MissingToken
        );
        assert_eq!(
            a.authenticate(Some("nope"), None, now()).unwrap_err(),
            Denied::InvalidToken
        );
        assert_eq!(
            a.authenticate(Some("alice-token "), None, now())
                .unwrap_err(),
            Denied::InvalidToken
        );
        assert_eq!(
            a.authenticate(Some("alice-token"), Some("bob"), now())
                .unwrap_err(),
            Denied::UserMismatch
        );
        let expired = jwt(json!({"sub": "bob", "exp": 1}));
        assert_eq!(
            a.authenticate(Some(&expired), None, now()).unwrap_err(),
            Denied::Jwt(JwtError::Expired)
        );
        let bad_grant = jwt(json!({"sub": "bob", "exp": 2_000_000, "channels": ["bad pattern"]}));
        assert!(matches!(
            a.authenticate(Some(&bad_grant), None, now()).unwrap_err(),
            Denied::BadGrant(_)
        ));
    }

    #[test]
    fn anonymous_clients_get_in_only_when_allowed_and_without_a_user() {
        let a = auth(Config {
            jwt_secret: Some(SECRET.into()),
            allow_anonymous: true,
            ..Config::default()
        });
        let anon = a.authenticate(None, None, now()).unwrap();
        assert!(matches!(anon.access, Access::Anonymous));
        assert!(anon.may_read_channel("news") && !anon.may_read_channel("private-x"));
        assert!(!anon.may_read_channel("user:x") && !anon.sees_private_events());
        assert!(!anon.may_publish(true));
        assert_eq!(
            a.authenticate(None, Some("u"), now()).unwrap_err(),
            Denied::UserWithoutToken
        );
    }

    #[test]
    fn channel_permissions_follow_the_grants() {
        let a = with_auth();
        let token =
            jwt(json!({"sub": "carol", "exp": 2_000_000, "channels": ["private-team-*", "files"]}));
        let carol = a.verify(&token, now()).unwrap();
        assert!(carol.may_read_channel("private-team-x"));
        assert!(carol.may_read_channel("files"));
        assert!(carol.may_read_channel("user:carol"), "own user channel");
        assert!(
            !carol.may_read_channel("git"),
            "the claim is the whole list"
        );
        assert!(!carol.may_read_channel("private-other"));
        assert!(!carol.may_read_channel("user:dave"));
        let alice = a.verify("alice-token", now()).unwrap();
        assert!(alice.may_read_channel("git") && !alice.may_read_channel("private-team-x"));
        assert!(alice.owns_sessions());
        let ops = a.verify("ops-token", now()).unwrap();
        assert!(ops.may_read_channel("private-anything") && ops.may_read_channel("user:dave"));
        assert!(ops.may_publish(false) && !ops.owns_sessions());
        assert!(!alice.may_publish(false) && alice.may_publish(true));
    }

    #[test]
    fn the_admin_api_needs_the_bearer_token_and_locks_without_one() {
        let a = with_auth();
        assert_eq!(a.admin(Some("Bearer service-token")), AdminCheck::Allowed);
        assert_eq!(a.admin(Some("bearer  service-token ")), AdminCheck::Allowed);
        assert_eq!(a.admin(Some("Bearer wrong")), AdminCheck::Refused);
        assert_eq!(a.admin(Some("Basic service-token")), AdminCheck::Refused);
        assert_eq!(a.admin(None), AdminCheck::Refused);
        let locked = auth(Config {
            jwt_secret: Some(SECRET.into()),
            ..Config::default()
        });
        assert_eq!(locked.admin(Some("Bearer anything")), AdminCheck::Locked);
    }

    #[test]
    fn the_dashboard_needs_the_admin_token_and_is_locked_without_one() {
        let a = with_auth();
        let console = a.console(Some("service-token")).unwrap();
        assert!(console.is_service() && console.user_id.is_none());
        assert_eq!(
            a.console(Some("alice-token")).unwrap_err(),
            Denied::NotAdmin
        );
        assert_eq!(a.console(None).unwrap_err(), Denied::NotAdmin);
        let locked = auth(Config {
            jwt_secret: Some(SECRET.into()),
            ..Config::default()
        });
        assert_eq!(locked.console(Some("x")).unwrap_err(), Denied::AdminLocked);
        let dev = auth(Config::default());
        assert!(
            dev.console(None).unwrap().is_service(),
            "development mode, as the admin API"
        );
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let a = auth(Config {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ],
            ..Config::default()
        });
        assert!(a.origin_allowed(None));
        assert!(a.origin_allowed(Some("https://app.example.com")));
        assert!(a.origin_allowed(Some("HTTPS://APP.EXAMPLE.COM")));
        assert!(a.origin_allowed(Some("https://x.example.org")));
        assert!(!a.origin_allowed(Some("https://example.org")));
        assert!(!a.origin_allowed(Some("http://app.example.com")));
        assert!(!a.origin_allowed(Some("https://app.example.com.evil.io")));
        assert!(!a.origin_allowed(Some("https://evil-example.org")));
        assert!(!a.origin_allowed(Some("null")));
        assert!(!auth(Config::default()).origin_allowed(Some("https://anywhere")));
        assert!(check_origin_rule("https://a.b:8443").is_ok());
        assert!(check_origin_rule("a.b").is_err());
        assert!(check_origin_rule("https://a.b/path").is_err());
    }

    #[test]
    fn without_a_list_development_mode_admits_only_pages_on_this_machine() {
        let dev = auth(Config::default());
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:8080",
            "https://LOCALHOST",
            "http://[::1]:3000",
        ] {
            assert!(dev.origin_allowed(Some(origin)), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
            "null",
            "file://",
            "http://[::1",
        ] {
            assert!(!dev.origin_allowed(Some(origin)), "{origin}");
        }
        assert!(dev.origin_allowed(None), "not a browser");
        // With tokens required, a page elsewhere has none: any origin may try.
        assert!(with_auth().origin_allowed(Some("https://evil.example")));
        assert!(
            is_loopback_host("localhost:3000")
                && is_loopback_host("127.0.0.1")
                && is_loopback_host("[::1]:80")
        );
        assert!(!is_loopback_host("evil.example:3000") && !is_loopback_host("192.168.1.2"));
    }

    #[test]
    fn patterns_are_exact_prefix_or_everything() {
        assert!(Pattern::parse("*").unwrap().matches("private-x"));
        assert!(Pattern::parse("team-*").unwrap().matches("team-1"));
        assert!(!Pattern::parse("team").unwrap().matches("team-1"));
        assert!(Pattern::parse("bad name*").is_err());
        assert!(Pattern::parse("**").is_err());
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = Config {
            jwt_secret: Some("hunter2".into()),
            admin_token: Some("topsecret".into()),
            tokens: HashMap::from([(Secret::new("tok-123"), TokenGrant::user("u"))]),
            ..Config::default()
        };
        let shown = format!("{config:?} {:?}", config.authenticator());
        for secret in ["hunter2", "topsecret", "tok-123"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }
}
