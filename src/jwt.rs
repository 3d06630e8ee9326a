//! JSON Web Tokens: checking them (HS256 with a shared secret; RS256/384/512,
//! PS256/384/512, ES256, ES384 and EdDSA with an identity provider's public
//! keys, given or fetched as a JWKS), and signing HS256 ones for tests and
//! tools.
//!
//! Pure code, run on connection threads at the handshake and on the router
//! for `refresh`. The header's `alg` only picks among what the keys allow:
//! HS256 is checked against the secret alone (never a public key), every
//! other algorithm against the public keys that accept it (see `keys`), and
//! anything else (`none` included) and any `crit` extension are refused
//! before a signature is looked at. Every signature is checked by `ring`
//! (HMAC in constant time); the claims are read only once it matches.
//!
//! A token whose `kid` no key has may wait for the JWKS fetcher thread
//! (see `jwks`) to fetch the set again: up to a bound at the handshake,
//! not at all on the router.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::jwks::KeySet;
use crate::keys::{Alg, JwtKey};

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
    /// An `alg` no configured key takes (`none` included), or one the key
    /// named by `kid` does not take.
    Algorithm {
        /// The header's `alg`.
        alg: String,
        /// Why it is not accepted.
        reason: String,
    },
    /// No key to check the token with: its `kid` is unknown, or the key
    /// set could not be fetched. Says which, and when the set was fetched.
    UnknownKey(String),
    /// The signature does not match.
    Signature,
    /// `exp` (plus leeway) is in the past.
    Expired,
    /// `nbf` (minus leeway) is in the future.
    NotYetValid,
    /// `aud` names none of the accepted audiences.
    Audience,
    /// `iss` is not the accepted issuer.
    Issuer,
    /// A claim is missing or of the wrong type.
    Claims(String),
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwtError::Malformed(what) => write!(f, "malformed token: {what}"),
            JwtError::Algorithm { alg, reason } => {
                write!(f, "token algorithm {alg:?} is not accepted: {reason}")
            }
            JwtError::UnknownKey(why) => write!(f, "no key to check the token: {why}"),
            JwtError::Signature => f.write_str("token signature does not match"),
            JwtError::Expired => f.write_str("token expired"),
            JwtError::NotYetValid => f.write_str("token not valid yet (nbf)"),
            JwtError::Audience => f.write_str("token audience (aud) is not accepted here"),
            JwtError::Issuer => f.write_str("token issuer (iss) is not accepted here"),
            JwtError::Claims(what) => write!(f, "token claims: {what}"),
        }
    }
}

/// How long a check may wait for the key set to be fetched again, when a
/// token names a key it does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not at all (the router): a fetch is asked for, the token refused.
    No,
    /// Up to this long (a connection thread at the handshake).
    UpTo(Duration),
}

/// Everything that checks a JWT: the keys and the claims it must carry.
pub(crate) struct Verifier {
    /// HS256's shared secret.
    secret: Option<hmac::Key>,
    /// Public keys given at start.
    keys: Vec<JwtKey>,
    /// An identity provider's key set, kept fresh by the fetcher thread.
    key_set: Option<Arc<KeySet>>,
    /// `aud` must name one of these, if any.
    audiences: Vec<String>,
    /// `iss` must be this, if set.
    issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    leeway: Duration,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secret", &self.secret.as_ref().map(|_| ".."))
            .field("keys", &self.keys)
            .field("key_set", &self.key_set.as_ref().map(|s| s.url()))
            .field("audiences", &self.audiences)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish()
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    crit: Option<IgnoredAny>,
}

/// `aud`: one audience or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    aud: Option<Audience>,
    iss: Option<String>,
    channels: Option<Vec<String>>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    service: bool,
    meta: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Verifier {
    /// A verifier of tokens signed with `secret` (HS256), one of `keys`, or
    /// a key of `key_set`, that must carry one of `audiences` (if any) and
    /// `issuer` (if set).
    pub(crate) fn new(
        secret: Option<&[u8]>,
        keys: Vec<JwtKey>,
        key_set: Option<Arc<KeySet>>,
        audiences: Vec<String>,
        issuer: Option<String>,
        leeway: Duration,
    ) -> Verifier {
        Verifier {
            secret: secret.map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)),
            keys,
            key_set,
            audiences,
            issuer,
            leeway,
        }
    }

    /// The identity provider's key set, if there is one (for its fetcher).
    pub(crate) fn key_set(&self) -> Option<&Arc<KeySet>> {
        self.key_set.as_ref()
    }

    /// Verifies a token at `now`, allowing the leeway of clock skew on
    /// `exp` and `nbf`. `exp` and `sub` are required.
    pub(crate) fn verify(
        &self,
        token: &str,
        now: SystemTime,
        wait: Wait,
    ) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("a JWT has three dot-separated parts"));
        };
        let header: Header = serde_json::from_slice(&decode(header_b64, "header")?)
            .map_err(|_| JwtError::Malformed("the header is not a JSON object with an alg"))?;
        let refused = |reason: String| JwtError::Algorithm {
            alg: header.alg.clone(),
            reason,
        };
        let Some(alg) = Alg::from_name(&header.alg) else {
            return Err(refused(self.accepted()));
        };
        if header.crit.is_some() {
            return Err(JwtError::Malformed("crit extensions are not supported"));
        }
        let signature = decode(signature_b64, "signature")?;
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if alg == Alg::Hs256 {
            // Checked against the shared secret alone, never a public key.
            let Some(secret) = &self.secret else {
                return Err(refused(self.accepted()));
            };
            hmac::verify(secret, signing_input, &signature).map_err(|_| JwtError::Signature)?;
        } else {
            self.verify_signature(alg, header.kid.as_deref(), signing_input, &signature, wait)
                .map_err(|err| match err {
                    Refusal::Algorithm(reason) => refused(reason),
                    Refusal::Other(err) => err,
                })?;
        }
        self.claims(payload_b64, now)
    }

    /// Checks a signature with the public keys that `kid` selects (see
    /// [`candidates`]), fetching the key set again (within its limits) when
    /// the token names a key it does not hold.
    fn verify_signature(
        &self,
        alg: Alg,
        kid: Option<&str>,
        message: &[u8],
        signature: &[u8],
        wait: Wait,
    ) -> Result<(), Refusal> {
        if self.keys.is_empty() && self.key_set.is_none() {
            return Err(Refusal::Algorithm(self.accepted()));
        }
        let fetched = self.key_set.as_ref().map(|set| set.keys());
        let (mut keys, known) = candidates(
            self.keys
                .iter()
                .chain(fetched.iter().flat_map(|k| k.iter())),
            kid,
        );
        let refetched;
        if let Some(set) = &self.key_set
            && !known
        {
            refetched = set.refresh(match wait {
                Wait::No => Duration::ZERO,
                Wait::UpTo(wait) => wait,
            });
            keys = candidates(self.keys.iter().chain(refetched.iter()), kid).0;
        }
        if keys.is_empty() {
            let named = match kid {
                Some(kid) => format!("no key has the kid {kid:?}"),
                None => "no key".to_owned(),
            };
            return Err(Refusal::Other(JwtError::UnknownKey(match &self.key_set {
                Some(set) => format!("{named}; the key set {}", set.status()),
                None => named,
            })));
        }
        let accepting: Vec<&JwtKey> = keys.iter().copied().filter(|k| k.accepts(alg)).collect();
        if accepting.is_empty() {
            let keys: Vec<String> = keys.iter().map(|k| k.describe()).collect();
            return Err(Refusal::Algorithm(format!(
                "the key does not take it: {}",
                keys.join("; ")
            )));
        }
        if accepting.iter().any(|k| k.verify(alg, message, signature)) {
            Ok(())
        } else {
            Err(Refusal::Other(JwtError::Signature))
        }
    }

    /// What is accepted, for a refusal.
    fn accepted(&self) -> String {
        let public = !self.keys.is_empty() || self.key_set.is_some();
        match (self.secret.is_some(), public) {
            (true, false) => "only HS256 (no public key is configured)".into(),
            (false, true) => {
                "only RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA, as the keys allow (no HS256 secret is configured)".into()
            }
            _ => "only HS256, or RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA as the keys allow".into(),
        }
    }

    /// The claims of a token whose signature matched.
    fn claims(&self, payload_b64: &str, now: SystemTime) -> Result<Claims, JwtError> {
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
        let leeway = self.leeway.as_secs_f64();
        if now > exp + leeway {
            return Err(JwtError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return Err(JwtError::NotYetValid);
        }
        if !self.audiences.is_empty() {
            let named = match &claims.aud {
                Some(Audience::One(aud)) => self.audiences.contains(aud),
                Some(Audience::Many(auds)) => auds.iter().any(|a| self.audiences.contains(a)),
                None => false,
            };
            if !named {
                return Err(JwtError::Audience);
            }
        }
        if let Some(issuer) = &self.issuer
            && claims.iss.as_ref() != Some(issuer)
        {
            return Err(JwtError::Issuer);
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
}

/// The keys to check a token with: those with its `kid`, or when no key
/// has it (or it names none), those without a kid; every key for a token
/// without a `kid`. And whether that is all it can be: `false` when the
/// token names a `kid` no key has (or no key is there at all), which is
/// when a key set is worth fetching again.
fn candidates<'a>(
    keys: impl Iterator<Item = &'a JwtKey> + Clone,
    kid: Option<&str>,
) -> (Vec<&'a JwtKey>, bool) {
    let Some(kid) = kid else {
        let all: Vec<&JwtKey> = keys.collect();
        let known = !all.is_empty();
        return (all, known);
    };
    let named: Vec<&JwtKey> = keys.clone().filter(|k| k.kid() == Some(kid)).collect();
    if named.is_empty() {
        (keys.filter(|k| k.kid().is_none()).collect(), false)
    } else {
        (named, true)
    }
}

/// Why the public keys refused a signature.
enum Refusal {
    /// The algorithm, with the reason.
    Algorithm(String),
    Other(JwtError),
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
/// [`Error::Json`](crate::Error::Json) if the claims cannot be serialised.
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
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let signature = URL_SAFE_NO_PAD.encode(hmac::sign(&key, signing_input.as_bytes()));
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

    /// Checks an HS256 token with `secret`.
    fn verify(
        token: &str,
        secret: &[u8],
        leeway: Duration,
        now: SystemTime,
    ) -> Result<Claims, JwtError> {
        Verifier::new(Some(secret), Vec::new(), None, Vec::new(), None, leeway).verify(
            token,
            now,
            Wait::No,
        )
    }

    fn forged(header: &str, claims: serde_json::Value, secret: &[u8]) -> String {
        let h = URL_SAFE_NO_PAD.encode(header);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let mac = hmac::sign(&key, format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(mac))
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
            let kind = kind(&err);
            assert!(why.contains(kind), "{token}: expected {why}, got {err}");
        }
    }

    fn kind(err: &JwtError) -> &'static str {
        match err {
            JwtError::Malformed(_) => "malformed",
            JwtError::Algorithm { .. } => "algorithm",
            JwtError::UnknownKey(_) => "unknown key",
            JwtError::Signature => "signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "nbf",
            JwtError::Audience => "audience",
            JwtError::Issuer => "issuer",
            JwtError::Claims(_) => "claims",
        }
    }

    #[test]
    fn absurd_expiry_values_do_not_panic() {
        for exp in [json!(1e300), json!(-1e300), json!(u64::MAX), json!(-1)] {
            let t = token(json!({"sub": "a", "exp": exp}));
            let _ = verify(&t, SECRET, Duration::from_secs(u32::MAX as u64), at(1000));
        }
    }

    mod public_keys {
        use super::*;
        use ring::rand::SystemRandom;
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

        struct Signer {
            pair: EcdsaKeyPair,
            key: JwtKey,
        }

        fn signer(kid: Option<&str>) -> Signer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let point = pair.public_key().as_ref();
            let mut jwk = json!({"kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
            if let Some(kid) = kid {
                jwk["kid"] = json!(kid);
            }
            let key = JwtKey::from_jwk(&jwk.to_string()).unwrap();
            Signer { pair, key }
        }

        impl Signer {
            fn sign(&self, header: serde_json::Value, claims: serde_json::Value) -> String {
                let h = URL_SAFE_NO_PAD.encode(header.to_string());
                let p = URL_SAFE_NO_PAD.encode(claims.to_string());
                let input = format!("{h}.{p}");
                let sig = self
                    .pair
                    .sign(&SystemRandom::new(), input.as_bytes())
                    .unwrap();
                format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
            }
        }

        fn verifier(secret: Option<&[u8]>, keys: Vec<JwtKey>) -> Verifier {
            Verifier::new(secret, keys, None, Vec::new(), None, Duration::ZERO)
        }

        fn check(v: &Verifier, token: &str) -> Result<Claims, JwtError> {
            v.verify(token, at(1000), Wait::No)
        }

        const CLAIMS: fn() -> serde_json::Value = || json!({"sub": "alice", "exp": 2000});

        #[test]
        fn the_key_named_by_kid_checks_the_token() {
            let (k1, k2, anon) = (signer(Some("k1")), signer(Some("k2")), signer(None));
            let v = verifier(None, vec![k1.key.clone(), k2.key.clone()]);
            let good = k1.sign(json!({"alg": "ES256", "kid": "k1"}), CLAIMS());
            assert_eq!(check(&v, &good).unwrap().sub, "alice");
            // Named k1, signed by k2: checked against k1 alone.
            let wrong = k2.sign(json!({"alg": "ES256", "kid": "k1"}), CLAIMS());
            assert_eq!(check(&v, &wrong), Err(JwtError::Signature));
            // A kid nobody has, and no key without a kid to fall back on.
            let unknown = k1.sign(json!({"alg": "ES256", "kid": "k3"}), CLAIMS());
            let err = check(&v, &unknown).unwrap_err();
            assert!(
                err.to_string().contains("no key has the kid \"k3\""),
                "{err}"
            );
            // No kid: every key of its algorithm may check it.
            let bare = k2.sign(json!({"alg": "ES256"}), CLAIMS());
            assert!(check(&v, &bare).is_ok());
            // A key given without a kid checks tokens whose kid no key has.
            let v = verifier(None, vec![k1.key.clone(), anon.key.clone()]);
            let other = anon.sign(json!({"alg": "ES256", "kid": "rotated"}), CLAIMS());
            assert!(check(&v, &other).is_ok());
            let stolen_name = anon.sign(json!({"alg": "ES256", "kid": "k1"}), CLAIMS());
            assert_eq!(check(&v, &stolen_name), Err(JwtError::Signature));
        }

        #[test]
        fn the_algorithm_comes_from_the_key_never_from_the_token() {
            let k1 = signer(Some("k1"));
            let v = verifier(None, vec![k1.key.clone()]);
            for alg in ["ES384", "RS256", "PS256", "EdDSA"] {
                let token = k1.sign(json!({"alg": alg, "kid": "k1"}), CLAIMS());
                let err = check(&v, &token).unwrap_err();
                assert_eq!(kind(&err), "algorithm", "{alg}: {err}");
                assert!(
                    err.to_string().contains("EC P-256 key \"k1\" (ES256)"),
                    "{err}"
                );
            }
            for alg in ["none", "HS512", "ES512", "es256"] {
                let token = k1.sign(json!({"alg": alg, "kid": "k1"}), CLAIMS());
                assert_eq!(kind(&check(&v, &token).unwrap_err()), "algorithm", "{alg}");
            }
        }

        #[test]
        fn an_hs256_token_is_checked_against_the_secret_alone() {
            let k1 = signer(Some("k1"));
            // The public key as the HMAC secret: its JWK, its raw point.
            let point = k1.pair.public_key().as_ref().to_vec();
            let jwk = json!({"kty": "EC", "crv": "P-256", "kid": "k1",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])})
            .to_string();
            for public in [point.as_slice(), jwk.as_bytes()] {
                let token = forged(r#"{"alg":"HS256","kid":"k1"}"#, CLAIMS(), public);
                let only_keys = verifier(None, vec![k1.key.clone()]);
                let err = check(&only_keys, &token).unwrap_err();
                assert_eq!(kind(&err), "algorithm", "{err}");
                assert!(err.to_string().contains("no HS256 secret"), "{err}");
                let both = verifier(Some(SECRET), vec![k1.key.clone()]);
                assert_eq!(check(&both, &token), Err(JwtError::Signature));
            }
            // And a public key's token is never checked against the secret.
            let both = verifier(Some(SECRET), vec![]);
            let token = k1.sign(json!({"alg": "ES256"}), CLAIMS());
            let err = check(&both, &token).unwrap_err();
            assert!(err.to_string().contains("only HS256"), "{err}");
        }

        #[test]
        fn audience_and_issuer_are_checked_when_set() {
            let k1 = signer(None);
            let v = Verifier::new(
                None,
                vec![k1.key.clone()],
                None,
                vec!["wshub".into(), "chat".into()],
                Some("https://idp.example/".into()),
                Duration::ZERO,
            );
            let token = |claims: serde_json::Value| k1.sign(json!({"alg": "ES256"}), claims);
            let iss = "https://idp.example/";
            for aud in [json!("chat"), json!(["other", "wshub"])] {
                let ok = token(json!({"sub": "a", "exp": 2000, "aud": aud, "iss": iss}));
                assert!(check(&v, &ok).is_ok(), "{aud}");
            }
            for (claims, why) in [
                (json!({"sub": "a", "exp": 2000, "iss": iss}), "audience"),
                (
                    json!({"sub": "a", "exp": 2000, "aud": "api", "iss": iss}),
                    "audience",
                ),
                (
                    json!({"sub": "a", "exp": 2000, "aud": [], "iss": iss}),
                    "audience",
                ),
                (
                    json!({"sub": "a", "exp": 2000, "aud": 5, "iss": iss}),
                    "claims",
                ),
                (json!({"sub": "a", "exp": 2000, "aud": "chat"}), "issuer"),
                (
                    json!({"sub": "a", "exp": 2000, "aud": "chat", "iss": "https://evil/"}),
                    "issuer",
                ),
                (
                    json!({"sub": "a", "exp": 999, "aud": "chat", "iss": iss}),
                    "expired",
                ),
            ] {
                let err = check(&v, &token(claims.clone())).unwrap_err();
                assert_eq!(kind(&err), why, "{claims}: {err}");
            }
        }
    }
}
