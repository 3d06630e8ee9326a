//! The public keys that verify JWTs signed by an identity provider, and the
//! algorithms each accepts: parsing them (JWK, and with the `jwt-pem`
//! feature PEM public keys and X.509 certificates) and checking signatures
//! with `ring`.
//!
//! Pure code: keys are parsed on the main thread at start (and by the JWKS
//! fetcher thread, see `jwks`), and checked on connection threads at the
//! handshake and on the router for `refresh`.
//!
//! A key's algorithms come from the key, never from a token: an RSA key
//! accepts RS256/384/512 and PS256/384/512 (only its own when its JWK says
//! `alg`), an EC P-256 key only ES256, a P-384 key only ES384, an Ed25519
//! key only EdDSA. HS256 is never a public key's algorithm: an HS256 token
//! is checked against the shared secret alone. No key is read by hand: ASN.1
//! by `spki`/`der` and `rustls-webpki`, PEM by `rustls-pki-types`, JSON by
//! `serde_json`, and every signature by `ring`.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use ring::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A JWT signature algorithm the hub verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Alg {
    Hs256,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

/// The algorithms of an RSA key.
const RSA: &[Alg] = &[
    Alg::Rs256,
    Alg::Rs384,
    Alg::Rs512,
    Alg::Ps256,
    Alg::Ps384,
    Alg::Ps512,
];

impl Alg {
    /// The algorithm a JWT header's `alg` names (exactly, case included).
    /// `Ed25519` (RFC 9864's name) is EdDSA with an Ed25519 key.
    pub(crate) fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "HS256" => Alg::Hs256,
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" | "Ed25519" => Alg::EdDsa,
            _ => return None,
        })
    }

    /// Its name in a JWT header.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            _ => return None,
        })
    }
}

/// The key itself, in the form `ring` verifies with.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa { n: Box<[u8]>, e: Box<[u8]> },
    /// An uncompressed SEC1 point (`04 || x || y`) on P-256.
    P256(Box<[u8]>),
    /// The same on P-384.
    P384(Box<[u8]>),
    /// 32 bytes.
    Ed25519(Box<[u8]>),
}

impl Material {
    fn rsa(n: &[u8], e: &[u8]) -> Result<Material, String> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let bits = match n.first() {
            Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
            None => 0,
        };
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "an RSA key of {bits} bits: 2048 to 8192 bits are accepted"
            ));
        }
        if e.is_empty() || e.len() > 4 {
            return Err("an RSA key with an unusable exponent".into());
        }
        Ok(Material::Rsa {
            n: n.into(),
            e: e.into(),
        })
    }

    fn ec(curve: Curve, point: Vec<u8>) -> Result<Material, String> {
        let size = match curve {
            Curve::P256 => 32,
            Curve::P384 => 48,
        };
        if point.len() != 1 + 2 * size || point.first() != Some(&4) {
            return Err(format!(
                "an EC {} key must be an uncompressed point of {} bytes",
                curve.name(),
                1 + 2 * size
            ));
        }
        Ok(match curve {
            Curve::P256 => Material::P256(point.into()),
            Curve::P384 => Material::P384(point.into()),
        })
    }

    fn ed25519(key: &[u8]) -> Result<Material, String> {
        if key.len() != signature::ED25519_PUBLIC_KEY_LEN {
            return Err("an Ed25519 key must be 32 bytes".into());
        }
        Ok(Material::Ed25519(key.into()))
    }

    /// What kind of key this is, for messages.
    fn family(&self) -> &'static str {
        match self {
            Material::Rsa { .. } => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "Ed25519",
        }
    }

    /// Every algorithm a key of this kind can verify.
    fn algorithms(&self) -> &'static [Alg] {
        match self {
            Material::Rsa { .. } => RSA,
            Material::P256(_) => &[Alg::Es256],
            Material::P384(_) => &[Alg::Es384],
            Material::Ed25519(_) => &[Alg::EdDsa],
        }
    }

    fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        let checked = match (self, alg) {
            (Material::Rsa { n, e }, alg) => match alg.rsa_parameters() {
                Some(parameters) => {
                    RsaPublicKeyComponents { n, e }.verify(parameters, message, sig)
                }
                None => return false,
            },
            (Material::P256(point), Alg::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
            }
            (Material::P384(point), Alg::Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
            }
            (Material::Ed25519(key), Alg::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, key).verify(message, sig)
            }
            _ => return false,
        };
        checked.is_ok()
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

#[derive(Clone, Copy)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

/// A public key that verifies JWTs signed by an identity provider, with
/// its key id (`kid`) and the algorithms it accepts, which come from the
/// key: RS256/384/512 and PS256/384/512 for RSA (2048 to 8192 bits), ES256
/// for EC P-256, ES384 for EC P-384, EdDSA for Ed25519. A JWK's `alg`
/// narrows that to the one it names.
///
/// Give them to a hub with [`Config::jwt_public_keys`](crate::Config::jwt_public_keys);
/// the binary's `--jwt-public-key [KID=]PATH` reads them with [`JwtKey::load`].
///
/// ```
/// let key = wshub::JwtKey::from_jwk(r#"{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
///     "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)?;
/// assert_eq!(key.kid(), Some("k1"));
/// assert_eq!(key.algorithms(), ["EdDSA"]);
/// let config = wshub::Config::default().jwt_public_keys(vec![key]);
/// # let _ = config;
/// # Ok::<(), wshub::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct JwtKey {
    kid: Option<String>,
    material: Material,
    /// Never empty; a subset of `material.algorithms()`.
    algs: Vec<Alg>,
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("type", &self.material.family())
            .field("algorithms", &self.algorithms())
            .finish()
    }
}

impl JwtKey {
    fn new(kid: Option<String>, material: Material) -> JwtKey {
        JwtKey {
            kid,
            algs: material.algorithms().to_vec(),
            material,
        }
    }

    /// Parses one JSON Web Key (RFC 7517): `kty` `RSA` (`n`, `e`), `EC`
    /// (`crv` `P-256` or `P-384`, `x`, `y`) or `OKP` (`crv` `Ed25519`,
    /// `x`); `kid`, `alg`, `use` and `key_ops` are honoured.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] saying why the key cannot verify JWTs: not JSON, a
    /// symmetric (`oct`) or encryption key, an unsupported type or curve,
    /// an `alg` that does not fit the key, an RSA key under 2048 bits.
    pub fn from_jwk(jwk: &str) -> Result<JwtKey> {
        let jwk: Jwk = serde_json::from_str(jwk).map_err(|err| key_error(err.to_string()))?;
        jwk.into_key().map_err(key_error)
    }

    /// Parses the first public key or certificate of a PEM text: a
    /// `PUBLIC KEY` (SubjectPublicKeyInfo, what `openssl pkey -pubout`
    /// writes) or a `CERTIFICATE` (its key; the certificate's dates and
    /// issuer are not checked: it is only a wrapper for the key). Needs the
    /// `jwt-pem` feature.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] saying why: no such section (or only a private
    /// key), an unsupported key type or curve, an RSA key under 2048 bits.
    #[cfg(feature = "jwt-pem")]
    pub fn from_pem(pem: &[u8]) -> Result<JwtKey> {
        pem::parse(pem).map_err(key_error)
    }

    /// Reads the keys of a file: a JWK, a JWK Set (`{"keys": [...]}`,
    /// every signing key in it), or with the `jwt-pem` feature a PEM public
    /// key or certificate.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file and what is wrong with it.
    pub fn load(path: &Path) -> Result<Vec<JwtKey>> {
        let fail = |reason: String| key_error(format!("{}: {reason}", path.display()));
        let bytes = std::fs::read(path).map_err(|err| fail(err.to_string()))?;
        if bytes.trim_ascii_start().starts_with(b"{") {
            let text = std::str::from_utf8(&bytes).map_err(|err| fail(err.to_string()))?;
            let value: serde_json::Value =
                serde_json::from_str(text).map_err(|err| fail(err.to_string()))?;
            if value.get("keys").is_some() {
                let set = parse_set(&value).map_err(|err| fail(err.to_string()))?;
                return Ok(set.keys);
            }
            let jwk: Jwk = serde_json::from_value(value).map_err(|err| fail(err.to_string()))?;
            return jwk.into_key().map(|key| vec![key]).map_err(fail);
        }
        #[cfg(feature = "jwt-pem")]
        {
            pem::parse(&bytes).map(|key| vec![key]).map_err(fail)
        }
        #[cfg(not(feature = "jwt-pem"))]
        {
            Err(fail(
                "not a JWK (JSON); PEM keys need the `jwt-pem` feature".into(),
            ))
        }
    }

    /// The same key under the key id `kid`: it then verifies only tokens
    /// whose header names that `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> JwtKey {
        self.kid = Some(kid.into());
        self
    }

    /// Its key id, if it has one. A key without one verifies tokens of its
    /// algorithms whatever `kid` they name, if no key has that `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithms it accepts, by their JWT names.
    pub fn algorithms(&self) -> Vec<&'static str> {
        self.algs.iter().map(|a| a.name()).collect()
    }

    /// Whether it accepts tokens signed with `alg`.
    pub(crate) fn accepts(&self, alg: Alg) -> bool {
        self.algs.contains(&alg)
    }

    /// Whether `sig` is its signature of `message` with `alg` (one it accepts).
    pub(crate) fn verify(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        self.accepts(alg) && self.material.verify(alg, message, sig)
    }

    /// What it is, for messages: `RSA key "k1" (RS256, PS256, ...)`.
    pub(crate) fn describe(&self) -> String {
        let kid = match &self.kid {
            Some(kid) => format!(" {kid:?}"),
            None => String::new(),
        };
        format!(
            "{} key{kid} ({})",
            self.material.family(),
            self.algorithms().join(", ")
        )
    }
}

fn key_error(reason: String) -> Error {
    Error::Config {
        field: "jwt_public_keys",
        reason,
    }
}

/// A key set's usable keys, and why the others were left out.
#[derive(Debug)]
pub(crate) struct KeySetKeys {
    pub keys: Vec<JwtKey>,
    pub skipped: Vec<String>,
}

/// Most keys taken from one key set (a token without `kid` may be checked
/// against each).
pub(crate) const MAX_SET_KEYS: usize = 64;

/// Why a JWK Set document gave no key.
#[derive(Debug)]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) enum KeySetError {
    /// It is not JSON (an HTML error page, a cut body).
    NotJson(serde_json::Error),
    /// It is JSON without a `keys` array (an OpenID configuration, not its
    /// `jwks_uri`).
    NoKeys,
    /// None of its keys can verify signatures; why the first was left out.
    NoUsableKey(Option<String>),
}

impl std::fmt::Display for KeySetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySetError::NotJson(err) => write!(f, "not JSON: {err}"),
            KeySetError::NoKeys => f.write_str("not a JWK Set: no \"keys\" array"),
            KeySetError::NoUsableKey(None) => f.write_str("no key that can verify signatures"),
            KeySetError::NoUsableKey(Some(first)) => {
                write!(f, "no key that can verify signatures ({first})")
            }
        }
    }
}

impl std::error::Error for KeySetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KeySetError::NotJson(err) => Some(err),
            _ => None,
        }
    }
}

/// Parses a JWK Set document (`{"keys": [...]}`): every key that can
/// verify signatures; keys for encryption, symmetric keys and unsupported
/// types are left out (and said why). An error when it is no key set or
/// holds no usable key.
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) fn parse_key_set(text: &str) -> Result<KeySetKeys, KeySetError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(KeySetError::NotJson)?;
    parse_set(&value)
}

fn parse_set(value: &serde_json::Value) -> Result<KeySetKeys, KeySetError> {
    let Some(entries) = value.get("keys").and_then(|k| k.as_array()) else {
        return Err(KeySetError::NoKeys);
    };
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let parsed = Jwk::deserialize(entry)
            .map_err(|err| err.to_string())
            .and_then(Jwk::into_key);
        match parsed {
            Ok(_) if keys.len() == MAX_SET_KEYS => {
                skipped.push(format!("key {i}: more than {MAX_SET_KEYS} keys"));
            }
            Ok(key) => keys.push(key),
            Err(why) => skipped.push(format!("key {i}: {why}")),
        }
    }
    if keys.is_empty() {
        return Err(KeySetError::NoUsableKey(skipped.into_iter().next()));
    }
    Ok(KeySetKeys { keys, skipped })
}

/// A JSON Web Key, the members wshub reads.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// base64url, with or without padding (JWKs have none, but some servers pad).
const JWK_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Jwk {
    fn member(&self, value: &Option<String>, name: &str) -> Result<Vec<u8>, String> {
        let text = value
            .as_deref()
            .ok_or_else(|| format!("a {} key needs \"{name}\"", self.kty))?;
        JWK_BASE64
            .decode(text)
            .or_else(|_| general_purpose::STANDARD.decode(text))
            .map_err(|_| format!("\"{name}\" is not base64url"))
    }

    fn into_key(self) -> Result<JwtKey, String> {
        if let Some(usage) = self.usage.as_deref().filter(|u| *u != "sig") {
            return Err(format!("\"use\": {usage:?} (not a signing key)"));
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err("\"key_ops\" does not include \"verify\"".into());
        }
        let material = match self.kty.as_str() {
            "RSA" => Material::rsa(&self.member(&self.n, "n")?, &self.member(&self.e, "e")?)?,
            "EC" => {
                let curve = match self.crv.as_deref() {
                    Some("P-256") => Curve::P256,
                    Some("P-384") => Curve::P384,
                    other => {
                        return Err(format!(
                            "EC curve {other:?} is not supported (P-256, P-384)"
                        ));
                    }
                };
                let mut point = vec![4];
                point.extend(self.member(&self.x, "x")?);
                point.extend(self.member(&self.y, "y")?);
                Material::ec(curve, point)?
            }
            "OKP" => match self.crv.as_deref() {
                Some("Ed25519") => Material::ed25519(&self.member(&self.x, "x")?)?,
                other => return Err(format!("OKP curve {other:?} is not supported (Ed25519)")),
            },
            "oct" => {
                return Err(
                    "a symmetric key (kty \"oct\") is never accepted as a public key: HS256 uses the shared secret"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "key type {other:?} is not supported (RSA, EC, OKP)"
                ));
            }
        };
        let mut key = JwtKey::new(self.kid, material);
        if let Some(name) = &self.alg {
            match Alg::from_name(name).filter(|alg| key.material.algorithms().contains(alg)) {
                Some(alg) => key.algs = vec![alg],
                None => {
                    return Err(format!(
                        "\"alg\": {name:?} does not fit a {} key (it takes {})",
                        key.material.family(),
                        key.algorithms().join(", ")
                    ));
                }
            }
        }
        Ok(key)
    }
}

/// PEM public keys and certificates, parsed by libraries: the sections by
/// `rustls-pki-types`, a certificate by `rustls-webpki`, the
/// SubjectPublicKeyInfo and the RSA key inside it by `spki`/`der`.
#[cfg(feature = "jwt-pem")]
mod pem {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::{PemObject, SectionKind};
    use spki::der::asn1::UintRef;
    use spki::der::{Decode, Reader, SliceReader};
    use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};

    use super::{Curve, JwtKey, Material};

    const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

    pub(super) fn parse(pem: &[u8]) -> Result<JwtKey, String> {
        let mut private = false;
        for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
            let (kind, der) = section.map_err(|err| format!("not PEM: {err}"))?;
            match kind {
                SectionKind::PublicKey => return from_spki(&der).map(|m| JwtKey::new(None, m)),
                SectionKind::Certificate => {
                    let cert = CertificateDer::from(der);
                    let cert = webpki::EndEntityCert::try_from(&cert)
                        .map_err(|err| format!("an unreadable certificate: {err}"))?;
                    return from_spki(&cert.subject_public_key_info())
                        .map(|m| JwtKey::new(None, m));
                }
                SectionKind::PrivateKey
                | SectionKind::RsaPrivateKey
                | SectionKind::EcPrivateKey => {
                    private = true;
                }
                _ => {}
            }
        }
        Err(if private {
            "holds a private key, not a public one: give its public key (openssl pkey -in KEY -pubout)".into()
        } else if pem.windows(21).any(|w| w == b"BEGIN RSA PUBLIC KEY-") {
            "a PKCS#1 RSA PUBLIC KEY: convert it to a PUBLIC KEY (openssl rsa -RSAPublicKey_in -in KEY -pubout)".into()
        } else {
            "no PUBLIC KEY or CERTIFICATE in it (PEM, or a JWK in JSON, expected)".into()
        })
    }

    /// The key of a DER SubjectPublicKeyInfo.
    pub(super) fn from_spki(der: &[u8]) -> Result<Material, String> {
        let spki = SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|err| format!("an unreadable public key: {err}"))?;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or("an unreadable public key (a partial byte)")?;
        match spki.algorithm.oid {
            RSA_ENCRYPTION => {
                let (n, e) = rsa_components(key)
                    .map_err(|err| format!("an unreadable RSA public key: {err}"))?;
                Material::rsa(n, e)
            }
            EC_PUBLIC_KEY => {
                let curve = match spki.algorithm.parameters_oid() {
                    Ok(P256) => Curve::P256,
                    Ok(P384) => Curve::P384,
                    Ok(other) => {
                        return Err(format!("EC curve {other} is not supported (P-256, P-384)"));
                    }
                    Err(err) => return Err(format!("an EC key without its curve: {err}")),
                };
                Material::ec(curve, key.to_vec())
            }
            ED25519 => Material::ed25519(key),
            other => Err(format!(
                "key type {other} is not supported (RSA, EC P-256 or P-384, Ed25519)"
            )),
        }
    }

    /// The modulus and exponent of a PKCS#1 RSAPublicKey.
    fn rsa_components(der: &[u8]) -> spki::der::Result<(&[u8], &[u8])> {
        let mut reader = SliceReader::new(der)?;
        let (n, e) = reader
            .sequence(|r| Ok::<_, spki::der::Error>((UintRef::decode(r)?, UintRef::decode(r)?)))?;
        reader.finish()?;
        Ok((n.as_bytes(), e.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ed25519() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn ec(alg: &'static signature::EcdsaSigningAlgorithm) -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap()
    }

    fn ec_jwk(pair: &EcdsaKeyPair, crv: &str) -> serde_json::Value {
        let point = pair.public_key().as_ref();
        let size = (point.len() - 1) / 2;
        json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + size]), "y": b64(&point[1 + size..])})
    }

    #[test]
    fn the_algorithms_come_from_the_key_type() {
        let ed = ed25519();
        let key = JwtKey::from_jwk(
            &json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())})
                .to_string(),
        )
        .unwrap();
        assert_eq!(key.algorithms(), ["EdDSA"]);
        let p256 = ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING);
        let key = JwtKey::from_jwk(&ec_jwk(&p256, "P-256").to_string()).unwrap();
        assert_eq!(key.algorithms(), ["ES256"]);
        let p384 = ec(&signature::ECDSA_P384_SHA384_FIXED_SIGNING);
        let key = JwtKey::from_jwk(&ec_jwk(&p384, "P-384").to_string()).unwrap();
        assert_eq!(key.algorithms(), ["ES384"]);
        let rsa = json!({"kty": "RSA", "n": b64(&[0xc5; 256]), "e": "AQAB"});
        let key = JwtKey::from_jwk(&rsa.to_string()).unwrap();
        assert_eq!(
            key.algorithms(),
            ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
        );
        // A JWK's alg narrows it to that one.
        let mut ps = rsa.clone();
        ps["alg"] = json!("PS256");
        assert_eq!(
            JwtKey::from_jwk(&ps.to_string()).unwrap().algorithms(),
            ["PS256"]
        );
        // HS256 is never a public key's algorithm.
        for (key, alg) in [(rsa.clone(), "HS256"), (ec_jwk(&p256, "P-256"), "ES384")] {
            let mut key = key;
            key["alg"] = json!(alg);
            let err = JwtKey::from_jwk(&key.to_string()).unwrap_err().to_string();
            assert!(err.contains("does not fit"), "{err}");
        }
        assert!(
            !JwtKey::from_jwk(&rsa.to_string())
                .unwrap()
                .accepts(Alg::Hs256)
        );
    }

    #[test]
    fn a_key_verifies_only_its_own_algorithms_signatures() {
        let p256 = ec(&signature::ECDSA_P256_SHA256_FIXED_SIGNING);
        let key = JwtKey::from_jwk(&ec_jwk(&p256, "P-256").to_string()).unwrap();
        let sig = p256.sign(&SystemRandom::new(), b"message").unwrap();
        assert!(key.verify(Alg::Es256, b"message", sig.as_ref()));
        assert!(!key.verify(Alg::Es256, b"massage", sig.as_ref()));
        assert!(!key.verify(Alg::Es384, b"message", sig.as_ref()));
        assert!(!key.verify(Alg::Hs256, b"message", sig.as_ref()));
        let ed = ed25519();
        let key = JwtKey::from_jwk(
            &json!({"kty": "OKP", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())})
                .to_string(),
        )
        .unwrap();
        assert!(key.verify(Alg::EdDsa, b"m", ed.sign(b"m").as_ref()));
        assert!(!key.verify(Alg::Es256, b"m", ed.sign(b"m").as_ref()));
    }

    #[test]
    fn keys_that_cannot_verify_signatures_are_refused_with_the_reason() {
        let cases = [
            (json!({"kty": "oct", "k": "c2VjcmV0"}), "symmetric"),
            (
                json!({"kty": "RSA", "use": "enc", "n": b64(&[0xc5; 256]), "e": "AQAB"}),
                "not a signing key",
            ),
            (
                json!({"kty": "RSA", "key_ops": ["encrypt"], "n": b64(&[0xc5; 256]), "e": "AQAB"}),
                "verify",
            ),
            (
                json!({"kty": "RSA", "n": b64(&[0xc5; 128]), "e": "AQAB"}),
                "1024 bits",
            ),
            (json!({"kty": "RSA", "e": "AQAB"}), "needs \"n\""),
            (
                json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}),
                "P-521",
            ),
            (
                json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}),
                "65 bytes",
            ),
            (json!({"kty": "OKP", "crv": "X25519", "x": "AA"}), "X25519"),
            (
                json!({"kty": "OKP", "crv": "Ed25519", "x": "!!"}),
                "base64url",
            ),
            (json!({"kty": "DSA"}), "DSA"),
            (json!({"crv": "P-256"}), "kty"),
        ];
        for (jwk, why) in cases {
            let err = JwtKey::from_jwk(&jwk.to_string()).unwrap_err().to_string();
            assert!(err.contains(why), "{jwk}: {err}");
        }
    }

    #[test]
    fn a_key_set_keeps_its_signing_keys_and_says_why_it_left_the_others() {
        let ed = ed25519();
        let set = json!({"keys": [
            {"kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": b64(&[0xc5; 256]), "e": "AQAB"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(ed.public_key().as_ref())},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "rs", "alg": "RS256", "n": b64(&[0xc5; 256]), "e": "AQAB"},
        ]});
        let parsed = parse_key_set(&set.to_string()).unwrap();
        let kids: Vec<_> = parsed.keys.iter().map(|k| k.kid().unwrap()).collect();
        assert_eq!(kids, ["ed", "rs"]);
        assert_eq!(parsed.skipped.len(), 2);
        for (text, why) in [
            ("<html>", "not JSON"),
            ("{}", "no \"keys\""),
            (r#"{"keys": "x"}"#, "no \"keys\""),
            (r#"{"keys": []}"#, "no key"),
            (r#"{"keys": [{"kty": "oct", "k": "AA"}]}"#, "symmetric"),
        ] {
            let err = parse_key_set(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn algorithm_names_are_exact() {
        for name in ["HS256", "RS256", "PS512", "ES384", "EdDSA"] {
            assert_eq!(Alg::from_name(name).unwrap().name(), name);
        }
        assert_eq!(Alg::from_name("Ed25519"), Some(Alg::EdDsa));
        for name in ["none", "None", "hs256", "HS384", "ES512", "RSA-OAEP", ""] {
            assert_eq!(Alg::from_name(name), None, "{name}");
        }
    }

    #[cfg(feature = "jwt-pem")]
    #[test]
    fn pem_public_keys_are_read_and_private_keys_refused() {
        use base64::engine::general_purpose::STANDARD;
        let pem = |label: &str, der: &[u8]| {
            format!(
                "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
                STANDARD.encode(der)
            )
        };
        // An Ed25519 SubjectPublicKeyInfo: the algorithm, then the key.
        let ed = ed25519();
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(ed.public_key().as_ref());
        let key = JwtKey::from_pem(pem("PUBLIC KEY", &spki).as_bytes()).unwrap();
        assert_eq!(key.algorithms(), ["EdDSA"]);
        assert!(key.verify(Alg::EdDsa, b"m", ed.sign(b"m").as_ref()));

        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let err = JwtKey::from_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("private key"), "{err}");
        let err = JwtKey::from_pem(pem("RSA PUBLIC KEY", &[0x30, 0]).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("PKCS#1"), "{err}");
        let err = JwtKey::from_pem(b"hello").unwrap_err().to_string();
        assert!(err.contains("no PUBLIC KEY"), "{err}");
        let err = JwtKey::from_pem(pem("PUBLIC KEY", &[0x30, 0x03, 1, 2, 3]).as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("unreadable"), "{err}");
    }
}
