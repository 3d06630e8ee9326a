//! JSON Web Tokens signed with HS256 (HMAC-SHA256 and a shared secret):
//! verifying them, and signing them for tests and tools.
//!
//! Pure code, run on connection threads at the handshake and on the router
//! for `refresh`. Only HS256 is accepted: `alg: none`, every other algorithm
//! and any `crit` extension are refused before the signature is even looked
//! at. The signature is compared in constant time by the `hmac` crate; the
//! claims are read only once it matches.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// The claims wshub reads from a verified token.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claims {
    /// `sub`: the user id.
    pub sub: String,
    /// `exp` plus the leeway: when the token stops being accepted, if that
    /// instant can be represented.
    pub valid_until: Option<SystemTime>,
    /// `channels`: the channel patterns the token may subscribe to.
    pub channels: Option<Vec<String>>,
    /// `admin`: full rights.
    pub admin: bool,
    /// `publish`: may publish to the channels it may read.
    pub publish: bool,
    /// `service`: a backend's service connection.
    pub service: bool,
    /// `meta`: key/values about the client, for the backend's filters.
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Why a token was refused. The text is sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwtError {
    /// Not three base64url parts of JSON.
    Malformed(&'static str),
    /// An `alg` other than HS256 (including `none`).
    Algorithm(String),
    /// The signature does not match.
    Signature,
    /// `exp` (plus leeway) is in the past.
    Expired,
    /// `nbf` (minus leeway) is in the future.
    NotYetValid,
    /// A claim is missing or of the wrong type.
    Claims(String),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(what) => write!(f, "malformed token: {what}"),
            JwtError::Algorithm(alg) => {
                write!(f, "token algorithm {alg:?} is not accepted (only HS256)")
            }
            JwtError::Signature => f.write_str("token signature does not match"),
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not valid yet (nbf)"),
            JwtError::Claims(what) => write!(f, "token claims: {what}"),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    channels: Option<Vec<String>>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    service: bool,
    meta: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Verifies an HS256 token at `now`, allowing `leeway` of clock skew on
/// `exp` and `nbf`. `exp` and `sub` are required.
pub(crate) fn verify(
    token: &str,
    secret: &[u8],
    leeway: Duration,
    now: SystemTime,
) -> Result<Claims, JwtError> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("a JWT has three dot-separated parts"));
    };
    let header: Header = serde_json::from_slice(&decode(header_b64, "header")?)
        .map_err(|_| JwtError::Malformed("the header is not a JSON object with an alg"))?;
    if header.alg != "HS256" {
        return Err(JwtError::Algorithm(header.alg));
    }
    if header.crit.is_some() {
        return Err(JwtError::Malformed("crit extensions are not supported"));
    }
    let signature = decode(signature_b64, "signature")?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| JwtError::Signature)?;
    mac.update(signing_input.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::Signature)?;

    let claims: RawClaims = serde_json::from_slice(&decode(payload_b64, "payload")?)
        .map_err(|err| JwtError::Claims(err.to_string()))?;
    let sub = match claims.sub {
        Some(sub) if !sub.is_empty() && sub.len() <= 255 => sub,
        Some(_) => return Err(JwtError::Claims("sub must be 1 to 255 bytes".into())),
        None => return Err(JwtError::Claims("sub (the user id) is required".into())),
    };
    let exp = claims
        .exp
        .ok_or_else(|| JwtError::Claims("exp (the expiry) is required".into()))?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let leeway = leeway.as_secs_f64();
    if now > exp + leeway {
        return Err(JwtError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| now + leeway < nbf) {
        return Err(JwtError::NotYetValid);
    }
    let valid_until = Duration::try_from_secs_f64(exp + leeway)
        .ok()
        .and_then(|d| UNIX_EPOCH.checked_add(d));
    Ok(Claims {
        sub,
        valid_until,
        channels: claims.channels,
        admin: claims.admin,
        publish: claims.publish,
        service: claims.service,
        meta: claims.meta,
    })
}

fn decode(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        JwtError::Malformed(match what {
            "header" => "the header is not base64url",
            "payload" => "the payload is not base64url",
            _ => "the signature is not base64url",
        })
    })
}

/// Signs `claims` as an HS256 JWT with `secret`.
///
/// For tests, tools and backends that mint tokens for their users; the hub
/// itself only verifies. Include `sub` (the user id) and `exp` (expiry, in
/// seconds since 1970); `channels`, `admin`, `publish`, `service` and `meta`
/// (an object of key/values about the client) are optional.
///
/// # Errors
///
/// [`Error::Json`] if the claims cannot be serialised.
///
/// # Example
///
/// ```
/// use std::time::{SystemTime, UNIX_EPOCH};
/// let exp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
/// let token = wshub::sign_jwt(b"a long random secret", &serde_json::json!({
///     "sub": "alice", "exp": exp, "channels": ["private-team-*"],
/// }))?;
/// assert_eq!(token.split('.').count(), 3);
/// # Ok::<(), wshub::Error>(())
/// ```
pub fn sign_jwt(secret: &[u8], claims: &impl Serialize) -> Result<String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    let signing_input = format!("{header}.{payload}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| Error::Config {
        field: "jwt_secret",
        reason: "unusable as an HMAC key".into(),
    })?;
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{signature}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"test secret of a decent length!!";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn token(claims: serde_json::Value) -> String {
        sign_jwt(SECRET, &claims).unwrap()
    }

    fn forged(header: &str, claims: serde_json::Value, secret: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(format!("{h}.{p}").as_bytes());
        format!(
            "{h}.{p}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn a_good_token_yields_its_claims() {
        let t = token(
            json!({"sub": "alice", "exp": 2000, "channels": ["private-a*"], "publish": true}),
        );
        let claims = verify(&t, SECRET, Duration::from_secs(5), at(1000)).unwrap();
        assert_eq!(claims.sub, "alice");
        assert_eq!(claims.channels, Some(vec!["private-a*".to_owned()]));
        assert!(claims.publish && !claims.admin);
        assert_eq!(claims.valid_until, Some(at(2005)));
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let leeway = Duration::from_secs(10);
        let t = token(json!({"sub": "a", "exp": 1000, "nbf": 500}));
        assert!(verify(&t, SECRET, leeway, at(1009)).is_ok());
        assert_eq!(verify(&t, SECRET, leeway, at(1011)), Err(JwtError::Expired));
        assert!(verify(&t, SECRET, leeway, at(491)).is_ok());
        assert_eq!(
            verify(&t, SECRET, leeway, at(489)),
            Err(JwtError::NotYetValid)
        );
    }

    #[test]
    fn every_forgery_is_refused() {
        let now = at(1000);
        let leeway = Duration::ZERO;
        let claims = json!({"sub": "alice", "exp": 2000});
        let good = token(claims.clone());
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let admin_payload =
            URL_SAFE_NO_PAD.encode(json!({"sub": "alice", "exp": 2000, "admin": true}).to_string());
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "malformed"),
            ("abc".into(), "malformed"),
            (format!("{h}.{p}"), "malformed"),
            (format!("{h}.{p}.{s}.x"), "malformed"),
            (format!("{h}.{p}."), "signature"),
            (format!("{none_header}.{p}."), "algorithm"),
            (format!("{h}.{admin_payload}.{s}"), "signature"),
            (format!("{h}.{p}.{}", &s[1..]), "signature-or-malformed"),
            (format!("!!.{p}.{s}"), "malformed"),
            (
                forged(r#"{"alg":"HS512"}"#, claims.clone(), SECRET),
                "algorithm",
            ),
            (
                forged(r#"{"alg":"RS256"}"#, claims.clone(), SECRET),
                "algorithm",
            ),
            (
                forged(r#"{"alg":"hs256"}"#, claims.clone(), SECRET),
                "algorithm",
            ),
            (
                forged(r#"{"alg":"HS256","crit":["exp"]}"#, claims.clone(), SECRET),
                "malformed",
            ),
            (
                forged(r#"{"alg":"HS256"}"#, claims.clone(), b"another secret"),
                "signature",
            ),
            (
                forged(r#"{"alg":"HS256"}"#, json!({"exp": 2000}), SECRET),
                "claims",
            ),
            (
                forged(r#"{"alg":"HS256"}"#, json!({"sub": "a"}), SECRET),
                "claims",
            ),
            (
                forged(r#"{"alg":"HS256"}"#, json!({"sub": 5, "exp": 2000}), SECRET),
                "claims",
            ),
            (
                forged(
                    r#"{"alg":"HS256"}"#,
                    json!({"sub": "", "exp": 2000}),
                    SECRET,
                ),
                "claims",
            ),
            (
                forged(
                    r#"{"alg":"HS256"}"#,
                    json!({"sub": "a", "exp": "soon"}),
                    SECRET,
                ),
                "claims",
            ),
            (
                forged(
                    r#"{"alg":"HS256"}"#,
                    json!({"sub": "a", "exp": 999}),
                    SECRET,
                ),
                "expired",
            ),
            (forged("[]", claims.clone(), SECRET), "malformed"),
        ];
        for (token, why) in cases {
            let err = verify(&token, SECRET, leeway, now).expect_err(&token);
            let kind = match err {
                JwtError::Malformed(_) => "malformed",
                JwtError::Algorithm(_) => "algorithm",
                JwtError::Signature => "signature",
                JwtError::Expired => "expired",
                JwtError::NotYetValid => "nbf",
                JwtError::Claims(_) => "claims",
            };
            assert!(why.contains(kind), "{token}: expected {why}, got {err}");
        }
    }

    #[test]
    fn absurd_expiry_values_do_not_panic() {
        for exp in [json!(1e300), json!(-1e300), json!(u64::MAX), json!(-1)] {
            let t = token(json!({"sub": "a", "exp": exp}));
            let _ = verify(&t, SECRET, Duration::from_secs(u32::MAX as u64), at(1000));
        }
    }
}
