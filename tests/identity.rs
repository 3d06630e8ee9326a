//! Identity providers over real sockets: JWTs signed RS256/384/512,
//! PS256/384/512, ES256, ES384 and EdDSA with keys made here (by `openssl`,
//! signed with `ring`), given as PEM public keys, certificates, JWKs or a
//! JWK Set served over HTTP on 127.0.0.1. The attack matrix for the new
//! algorithms, a rotated key picked up with one fetch while unknown kids do
//! not fetch again, `refresh` on the router, and a key set that is
//! unreachable, serves garbage or hangs: each refused with its reason, the
//! hub unaffected. With `--redis` (a real `redis-server`, ignored here and
//! run by `.ci/run`), each hub checks its own clients' tokens.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use support::{Client, DEADLINE, TestHub, get, read_json, start};
use wshub::{Config, JwtKey};

const SECRET: &str = "an hs256 secret for the id tests!";
const AUD: &str = "wshub-tests";
const ISS: &str = "https://idp.test/";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What a provider puts in a token for `user`.
fn claims(user: &str) -> Value {
    json!({"sub": user, "exp": now() + 3600, "aud": AUD, "iss": ISS})
}

fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "typ": "JWT", "kid": kid})
}

// ---------------------------------------------------------------------------
// Keys, made by openssl and used by ring to sign

/// A key pair made for this run: its private half signs, its public half
/// is in `public_pem` (SubjectPublicKeyInfo), `cert_pem` (a self-signed
/// certificate) and `jwk` (without a kid).
struct TestKey {
    signer: Signer,
    public_pem: PathBuf,
    cert_pem: PathBuf,
    jwk: Value,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct Keys {
    rsa: TestKey,
    rsa_other: TestKey,
    p256: TestKey,
    p256_other: TestKey,
    p384: TestKey,
    ed: TestKey,
    /// A private key in PEM, for the file that must be refused.
    private_pem: PathBuf,
}

/// This test run's directory of keys and certificates.
fn keys_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wshub-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The keys of this test run, made once.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = keys_dir();
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let p384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
        Keys {
            rsa: TestKey::make(&dir, "rsa", &rsa),
            rsa_other: TestKey::make(&dir, "rsa-other", &rsa),
            p256: TestKey::make(&dir, "p256", &p256),
            p256_other: TestKey::make(&dir, "p256-other", &p256),
            p384: TestKey::make(&dir, "p384", &p384),
            ed: TestKey::make(&dir, "ed25519", &["-algorithm", "ED25519"]),
            private_pem: dir.join("p256.key.pem"),
        }
    })
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (part of the machine image) makes the test keys");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestKey {
    fn make(dir: &Path, name: &str, genpkey: &[&str]) -> TestKey {
        let path = |suffix: &str| dir.join(format!("{name}.{suffix}"));
        let (key, der, public_pem, cert_pem) = (
            path("key.pem"),
            path("key.der"),
            path("pub.pem"),
            path("cert.pem"),
        );
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        let mut args = vec!["genpkey".to_owned()];
        args.extend(genpkey.iter().map(|a| a.to_string()));
        args.extend(["-out".into(), s(&key)]);
        openssl(&args.iter().map(String::as_str).collect::<Vec<_>>());
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &s(&key),
            "-outform",
            "DER",
            "-out",
            &s(&der),
        ]);
        openssl(&["pkey", "-in", &s(&key), "-pubout", "-out", &s(&public_pem)]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            &s(&key),
            "-subj",
            "/CN=wshub test idp",
            "-days",
            "2",
            "-out",
            &s(&cert_pem),
        ]);
        let pkcs8 = std::fs::read(&der).unwrap();
        let rng = SystemRandom::new();
        let (signer, jwk) = if name.starts_with("rsa") {
            let pair = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
            let public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
            let jwk = json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)});
            (Signer::Rsa(pair), jwk)
        } else if name.starts_with("ed") {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8).unwrap();
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key())});
            (Signer::Ed(pair), jwk)
        } else {
            let (alg, crv) = match name.starts_with("p384") {
                true => (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384"),
                false => (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256"),
            };
            let pair = EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng).unwrap();
            let point = pair.public_key().as_ref();
            let size = (point.len() - 1) / 2;
            let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=size]), "y": b64(&point[1 + size..])});
            (Signer::Ec(pair), jwk)
        };
        TestKey {
            signer,
            public_pem,
            cert_pem,
            jwk,
        }
    }

    /// A token with this header and these claims, signed with this key (by
    /// the header's RSA algorithm for an RSA key, whatever it names
    /// otherwise).
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let rng = SystemRandom::new();
        let sig = match &self.signer {
            Signer::Rsa(pair) => {
                let padding: &dyn signature::RsaEncoding = match header["alg"].as_str() {
                    Some("RS384") => &signature::RSA_PKCS1_SHA384,
                    Some("RS512") => &signature::RSA_PKCS1_SHA512,
                    Some("PS256") => &signature::RSA_PSS_SHA256,
                    Some("PS384") => &signature::RSA_PSS_SHA384,
                    Some("PS512") => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ec(pair) => pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(pair) => pair.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(sig))
    }

    /// Its JWK, named `kid`.
    fn jwk(&self, kid: &str) -> Value {
        let mut jwk = self.jwk.clone();
        jwk["kid"] = json!(kid);
        jwk
    }

    fn load(path: &Path, kid: &str) -> JwtKey {
        let mut keys = JwtKey::load(path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
        assert_eq!(keys.len(), 1);
        keys.remove(0).with_kid(kid)
    }
}

/// A JWK Set of `keys`, each with its kid.
fn jwks(keys: &[(&TestKey, &str)]) -> String {
    json!({"keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>()}).to_string()
}

/// A certificate authority made for this run (`ca_pem`, what `--jwks-ca`
/// is given) and a server certificate it issued to 127.0.0.1.
struct TestCa {
    ca_pem: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl TestCa {
    fn make(name: &str) -> TestCa {
        let dir = keys_dir();
        let path = |suffix: &str| dir.join(format!("{name}.{suffix}"));
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        let (ca_key, ca_pem) = (path("ca.key"), path("ca.pem"));
        let (server_key, server_cert) = (path("server.key"), path("server.pem"));
        let (csr, ext) = (path("server.csr"), path("server.ext"));
        let p256 = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let subject = format!("/CN=wshub test CA {name}");
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subject];
        args.extend(p256);
        let (ca_key_s, ca_pem_s) = (s(&ca_key), s(&ca_pem));
        args.extend(["-keyout", &ca_key_s, "-out", &ca_pem_s]);
        openssl(&args);
        let (server_key_s, csr_s) = (s(&server_key), s(&csr));
        let mut args = vec!["req", "-subj", "/CN=127.0.0.1"];
        args.extend(p256);
        args.extend(["-keyout", &server_key_s, "-out", &csr_s]);
        openssl(&args);
        std::fs::write(
            &ext,
            "basicConstraints = critical, CA:FALSE\n\
             keyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\n\
             subjectAltName = IP:127.0.0.1\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            "1",
            "-in",
            &csr_s,
            "-CA",
            &ca_pem_s,
            "-CAkey",
            &ca_key_s,
            "-extfile",
            &s(&ext),
            "-out",
            &s(&server_cert),
        ]);
        TestCa {
            ca_pem,
            server_cert,
            server_key,
        }
    }
}

/// A token signed with HMAC-SHA256 by `key`, whatever the header says.
fn hmac_signed(header: &Value, claims: &Value, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    format!("{input}.{}", b64(ring::hmac::sign(&key, input.as_bytes())))
}

// ---------------------------------------------------------------------------
// A JWK Set server on 127.0.0.1

#[derive(Clone)]
enum Serve {
    Json(String),
    Status(u16),
    /// Reads the request and never answers (until the server is dropped).
    Hang,
}

/// An HTTP server of one document, counting the requests it gets.
struct JwksServer {
    url: String,
    addr: SocketAddr,
    serve: Arc<Mutex<Serve>>,
    fetches: Arc<AtomicUsize>,
    /// Hung requests whose client closed the connection.
    abandoned: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Dropped with the server: hung requests end.
    _release: Sender<()>,
}

impl JwksServer {
    fn start(serve: Serve) -> JwksServer {
        JwksServer::start_with(serve, None)
    }

    /// The server over HTTPS, with the certificate `ca` issued to 127.0.0.1.
    fn start_tls(serve: Serve, ca: &TestCa) -> JwksServer {
        let chain = CertificateDer::pem_file_iter(&ca.server_cert)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&ca.server_key).unwrap();
        // ring, the one provider built in.
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let mut server = JwksServer::start_with(serve, Some(Arc::new(config)));
        server.url = server.url.replace("http://", "https://");
        server
    }

    fn start_with(serve: Serve, tls: Option<Arc<rustls::ServerConfig>>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = Arc::new(Mutex::new(serve));
        let fetches = Arc::new(AtomicUsize::new(0));
        let abandoned = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (release, released) = bounded::<()>(0);
        let (s, f, a, st) = (
            Arc::clone(&serve),
            Arc::clone(&fetches),
            Arc::clone(&abandoned),
            Arc::clone(&stop),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (s, f, a, released, tls) = (
                    Arc::clone(&s),
                    Arc::clone(&f),
                    Arc::clone(&a),
                    released.clone(),
                    tls.clone(),
                );
                thread::spawn(move || {
                    stream.set_read_timeout(Some(DEADLINE)).ok();
                    let tcp = stream.try_clone().unwrap();
                    match tls {
                        None => answer(stream, &tcp, &s, &f, &a, &released),
                        Some(config) => {
                            let tls = rustls::ServerConnection::new(config).unwrap();
                            let stream = rustls::StreamOwned::new(tls, stream);
                            answer(stream, &tcp, &s, &f, &a, &released);
                        }
                    }
                });
            }
        });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            addr,
            serve,
            fetches,
            abandoned,
            stop,
            _release: release,
        }
    }

    fn set(&self, serve: Serve) {
        *self.serve.lock().unwrap() = serve;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Acquire)
    }

    /// Waits up to `within` until `n` hung requests have been given up by
    /// their client (the connection closed).
    fn wait_abandoned(&self, n: usize, within: Duration) {
        let start = Instant::now();
        while self.abandoned.load(Ordering::Acquire) < n {
            assert!(
                start.elapsed() < within,
                "{} hung requests given up in {within:?}, expected {n}",
                self.abandoned.load(Ordering::Acquire)
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until `n` requests have come.
    fn wait_fetches(&self, n: usize) {
        let start = Instant::now();
        while self.fetches() < n {
            assert!(
                start.elapsed() < DEADLINE,
                "{} fetches, expected {n}",
                self.fetches()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Answers one request on `stream` (plain or TLS over `tcp`).
fn answer(
    mut stream: impl Read + Write,
    tcp: &TcpStream,
    serve: &Mutex<Serve>,
    fetches: &AtomicUsize,
    abandoned: &AtomicUsize,
    released: &Receiver<()>,
) {
    let mut head = Vec::new();
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.first() == Some(&0x16) {
            // A TLS ClientHello: this server speaks plain HTTP only.
            fetches.fetch_add(1, Ordering::AcqRel);
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            return;
        }
    }
    fetches.fetch_add(1, Ordering::AcqRel);
    let serve = serve.lock().unwrap().clone();
    let response = match serve {
        Serve::Json(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        Serve::Status(code) => {
            format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Serve::Hang => {
            // Until the client gives up (counted) or the server is dropped;
            // bounded: the test ends long before.
            tcp.set_read_timeout(Some(Duration::from_millis(20))).ok();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err)
                        if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                    {
                        if released.try_recv() == Err(TryRecvError::Disconnected) {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            abandoned.fetch_add(1, Ordering::AcqRel);
            return;
        }
    };
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

// ---------------------------------------------------------------------------
// Hubs and clients

/// A hub that checks audience and issuer, with an HS256 secret beside.
fn idp_config() -> Config {
    support::config()
        .jwt_secret(Some(SECRET.into()))
        .jwt_audiences(vec![AUD.into()])
        .jwt_issuer(Some(ISS.into()))
        .jwt_leeway(Duration::ZERO)
}

fn jwks_hub(server: &JwksServer) -> TestHub {
    start(idp_config().jwks_url(Some(server.url.clone())))
}

/// Connects with `token` and expects to be refused: `unauthorized`, then
/// close 1008, nothing else. Returns the error message.
fn expect_unauthorized(hub: &TestHub, token: &str) -> String {
    let mut ws = Client::open(hub.addr, &format!("/ws?token={token}")).expect("the handshake");
    let first = read_json(&mut ws, DEADLINE).expect("an error message");
    assert_eq!(first["type"], "error", "refused first: {first}");
    assert_eq!(first["data"]["code"], "unauthorized", "{first}");
    assert_eq!(
        support::expect_close(&mut ws),
        (1008, "Unauthorized".to_owned())
    );
    first["data"]["error"].as_str().unwrap().to_owned()
}

/// Connects with `token` and expects to be let in as `user`.
fn expect_user(hub: &TestHub, token: &str, user: &str) -> Client {
    let client = hub.client(&format!("/ws?token={token}"));
    assert_eq!(client.welcome["data"]["userId"], user, "{}", client.welcome);
    client
}

// ---------------------------------------------------------------------------
// The tests

#[test]
fn tokens_of_every_algorithm_are_accepted_with_keys_from_pem_certificates_and_jwks() {
    let k = keys();
    let jwk_file =
        std::env::temp_dir().join(format!("wshub-identity-{}/ed.jwk", std::process::id()));
    std::fs::write(&jwk_file, k.ed.jwk("ed").to_string()).unwrap();
    let hub = start(idp_config().jwt_public_keys(vec![
        TestKey::load(&k.rsa.public_pem, "rsa"),
        TestKey::load(&k.p256.cert_pem, "p256"),
        TestKey::load(&k.p384.public_pem, "p384"),
        JwtKey::load(&jwk_file).unwrap().remove(0),
    ]));
    let cases = [
        (&k.rsa, "RS256", "rsa"),
        (&k.rsa, "RS384", "rsa"),
        (&k.rsa, "RS512", "rsa"),
        (&k.rsa, "PS256", "rsa"),
        (&k.rsa, "PS384", "rsa"),
        (&k.rsa, "PS512", "rsa"),
        (&k.p256, "ES256", "p256"),
        (&k.p384, "ES384", "p384"),
        (&k.ed, "EdDSA", "ed"),
    ];
    for (i, (key, alg, kid)) in cases.into_iter().enumerate() {
        let user = format!("user-{i}-{alg}");
        let token = key.sign(&header(alg, kid), &claims(&user));
        let mut client = expect_user(&hub, &token, &user);
        // Its user channel is its own: a verified identity.
        let reply = client.request(
            json!({"type": "subscribe", "channel": format!("user:{user}")}),
            "s",
        );
        assert_eq!(reply["type"], "subscribed", "{alg}: {reply}");
    }
    // Every envelope greets them, and refuses a bad one in its own shape.
    let token = k.ed.sign(&header("EdDSA", "ed"), &claims("enveloped"));
    let forged = k
        .p256_other
        .sign(&header("ES256", "p256"), &claims("enveloped"));
    for envelope in ["standard", "flat", "payload"] {
        let mut ws =
            Client::open(hub.addr, &format!("/ws?envelope={envelope}&token={token}")).unwrap();
        let welcome = read_json(&mut ws, DEADLINE).unwrap();
        assert!(
            welcome["type"].as_str().unwrap().starts_with("connection"),
            "{envelope}: {welcome}"
        );
        let mut ws =
            Client::open(hub.addr, &format!("/ws?envelope={envelope}&token={forged}")).unwrap();
        let refusal = read_json(&mut ws, DEADLINE).unwrap();
        assert_eq!(refusal["type"], "error", "{envelope}: {refusal}");
        assert!(
            refusal.to_string().contains("signature does not match"),
            "{refusal}"
        );
        assert_eq!(support::expect_close(&mut ws).0, 1008);
    }
}

#[test]
fn the_attack_matrix_for_public_keys_is_refused_with_reasons_and_reaches_no_data() {
    let k = keys();
    let hub = start(idp_config().jwt_public_keys(vec![
        TestKey::load(&k.rsa.public_pem, "rsa"),
        TestKey::load(&k.p256.public_pem, "ec"),
    ]));
    // A real user with something to steal.
    let mut alice = expect_user(
        &hub,
        &k.rsa.sign(&header("RS256", "rsa"), &claims("alice")),
        "alice",
    );
    alice.request(
        json!({"type": "subscribe", "sessionId": "alice-session"}),
        "s",
    );
    alice.request(json!({"type": "subscribe", "channel": "user:alice"}), "s");

    let good = claims("alice");
    let pem = std::fs::read(&k.rsa.public_pem).unwrap();
    let jwk = k.rsa.jwk("rsa").to_string();
    let token = k.rsa.sign(&header("RS256", "rsa"), &good);
    let (h, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let admin = b64(
        json!({"sub": "alice", "exp": now() + 3600, "aud": AUD, "iss": ISS, "admin": true})
            .to_string(),
    );
    let with = |extra: Value| {
        let mut c = good.clone();
        for (key, value) in extra.as_object().unwrap() {
            if value.is_null() {
                c.as_object_mut().unwrap().remove(key);
            } else {
                c[key] = value.clone();
            }
        }
        k.rsa.sign(&header("RS256", "rsa"), &c)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong key",
            k.rsa_other.sign(&header("RS256", "rsa"), &good),
            "signature does not match",
        ),
        (
            "wrong key, EC",
            k.p256_other.sign(&header("ES256", "ec"), &good),
            "signature does not match",
        ),
        (
            "wrong kid",
            k.rsa.sign(&header("ES256", "ec"), &good),
            "signature does not match",
        ),
        (
            "unknown kid",
            k.rsa.sign(&header("RS256", "rotated"), &good),
            "no key has the kid \"rotated\"",
        ),
        (
            "HS256 with the public key (PEM) as secret",
            hmac_signed(&header("HS256", "rsa"), &good, &pem),
            "signature does not match",
        ),
        (
            "HS256 with the public key (JWK) as secret",
            hmac_signed(&header("HS256", "rsa"), &good, jwk.as_bytes()),
            "signature does not match",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "kid": "rsa"}).to_string()),
                b64(good.to_string())
            ),
            "algorithm \"none\"",
        ),
        (
            "alg None",
            format!(
                "{}.{}.",
                b64(json!({"alg": "None"}).to_string()),
                b64(good.to_string())
            ),
            "algorithm \"None\"",
        ),
        (
            "alg ES256 naming the RSA key",
            k.p256.sign(&header("ES256", "rsa"), &good),
            "RSA key \"rsa\"",
        ),
        (
            "alg RS256 naming the EC key",
            k.rsa.sign(&header("RS256", "ec"), &good),
            "EC P-256 key \"ec\" (ES256)",
        ),
        (
            "alg PS256 naming the EC key",
            k.rsa.sign(&header("PS256", "ec"), &good),
            "does not take it",
        ),
        (
            "alg ES384 naming the P-256 key",
            k.p384.sign(&header("ES384", "ec"), &good),
            "does not take it",
        ),
        (
            "alg ES512",
            k.p256.sign(&header("ES512", "ec"), &good),
            "algorithm \"ES512\"",
        ),
        ("expired", with(json!({"exp": now() - 10})), "expired"),
        (
            "not yet valid",
            with(json!({"nbf": now() + 600})),
            "not valid yet",
        ),
        (
            "wrong audience",
            with(json!({"aud": "another-api"})),
            "audience",
        ),
        ("no audience", with(json!({"aud": null})), "audience"),
        (
            "wrong issuer",
            with(json!({"iss": "https://evil.test/"})),
            "issuer",
        ),
        ("no issuer", with(json!({"iss": null})), "issuer"),
        ("no exp", with(json!({"exp": null})), "exp"),
        (
            "tampered payload",
            format!("{h}.{admin}.{sig}"),
            "signature does not match",
        ),
        (
            "signature of another alg",
            format!("{h}.{}.{}", b64(good.to_string()), b64([0u8; 64])),
            "signature does not match",
        ),
        (
            "crit",
            k.rsa.sign(
                &json!({"alg": "RS256", "kid": "rsa", "crit": ["exp"]}),
                &good,
            ),
            "crit",
        ),
    ];
    for (name, token, reason) in &cases {
        let message = expect_unauthorized(&hub, token);
        assert!(message.contains(reason), "{name}: {message}");
    }
    // Nothing reached Alice, who noticed nothing; every refusal was counted.
    alice.expect_nothing_pending();
    let stats = hub.handle().stats().unwrap();
    assert_eq!(stats.active_connections, 1);
    assert_eq!(stats.rejected_connections, cases.len() as u64);

    // Without an HS256 secret, an HS256 token is refused for its algorithm.
    let keys_only = start(
        idp_config()
            .jwt_secret(None)
            .jwt_public_keys(vec![TestKey::load(&k.rsa.public_pem, "rsa")]),
    );
    let message = expect_unauthorized(
        &keys_only,
        &hmac_signed(&header("HS256", "rsa"), &good, &pem),
    );
    assert!(
        message.contains("algorithm \"HS256\" is not accepted")
            && message.contains("no HS256 secret"),
        "{message}"
    );
    // And HS256 tokens still work beside public keys.
    let hs = wshub::sign_jwt(SECRET.as_bytes(), &claims("hs-user")).unwrap();
    expect_user(&hub, &hs, "hs-user");
}

#[test]
fn a_rotated_key_is_fetched_once_and_unknown_kids_within_30_s_fetch_nothing() {
    let k = keys();
    let server = JwksServer::start(Serve::Json(jwks(&[(&k.rsa, "k1")])));
    let hub = jwks_hub(&server);
    // The fetch at start: a token of k1 gets in, waiting for it if needed.
    let mut alice = expect_user(
        &hub,
        &k.rsa.sign(&header("RS256", "k1"), &claims("alice")),
        "alice",
    );
    assert_eq!(server.fetches(), 1);

    // The provider rotates to k2 (Ed25519) and signs with it: one fetch.
    server.set(Serve::Json(jwks(&[(&k.rsa, "k1"), (&k.ed, "k2")])));
    expect_user(
        &hub,
        &k.ed.sign(&header("EdDSA", "k2"), &claims("bob")),
        "bob",
    );
    assert_eq!(server.fetches(), 2, "the new key came with one fetch");

    // Unknown kids within 30 s: refused at once, and nothing is fetched.
    for kid in ["k3", "k4", "k3"] {
        let message =
            expect_unauthorized(&hub, &k.ed.sign(&header("EdDSA", kid), &claims("mallory")));
        assert!(
            message.contains(&format!("no key has the kid \"{kid}\"")),
            "{message}"
        );
        assert!(message.contains("at most every 30 s"), "{message}");
    }
    assert_eq!(
        server.fetches(),
        2,
        "unknown kids within 30 s fetch nothing"
    );
    // Known keys still work, and the router's refresh takes the new key.
    expect_user(
        &hub,
        &k.rsa.sign(&header("RS256", "k1"), &claims("carol")),
        "carol",
    );
    let token = k.ed.sign(&header("EdDSA", "k2"), &claims("alice"));
    let reply = alice.request(json!({"type": "refresh", "data": {"token": token}}), "r1");
    assert_eq!(reply["type"], "ack", "{reply}");
    assert_eq!(server.fetches(), 2);
}

#[test]
fn a_refresh_naming_a_new_key_asks_for_it_without_waiting_and_is_taken_once_fetched() {
    let k = keys();
    let server = JwksServer::start(Serve::Json(jwks(&[(&k.p256, "k1")])));
    let hub = jwks_hub(&server);
    let mut alice = expect_user(
        &hub,
        &k.p256.sign(&header("ES256", "k1"), &claims("alice")),
        "alice",
    );
    server.set(Serve::Json(jwks(&[(&k.p256, "k1"), (&k.p384, "k2")])));
    // The router does not wait for the fetch: refused, with the reason.
    let token = k.p384.sign(&header("ES384", "k2"), &claims("alice"));
    let refresh = json!({"type": "refresh", "data": {"token": token}});
    let reply = alice.request(refresh.clone(), "r1");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["data"]["code"], "unauthorized", "{reply}");
    let message = reply["data"]["error"].as_str().unwrap();
    assert!(
        message.contains("no key has the kid \"k2\"") && message.contains("try again"),
        "{message}"
    );
    // It asked for the fetch; a handshake with k2 waits for it to end.
    server.wait_fetches(2);
    expect_user(
        &hub,
        &k.p384.sign(&header("ES384", "k2"), &claims("bob")),
        "bob",
    );
    // The same refresh again: taken.
    let reply = alice.request(refresh, "r2");
    assert_eq!(reply["type"], "ack", "{reply}");
    assert_eq!(server.fetches(), 2);
    alice.expect_nothing_pending();
}

#[test]
fn an_unreachable_key_set_refuses_its_tokens_clearly_and_the_hub_carries_on() {
    let k = keys();
    // A port nobody listens on (kept so while `_bound` lives).
    let (_bound, port) = support::port_nobody_listens_on();
    let hub = start(
        idp_config()
            .jwks_url(Some(format!("http://127.0.0.1:{port}/jwks")))
            .jwt_public_keys(vec![TestKey::load(&k.p384.public_pem, "static")]),
    );
    let message = expect_unauthorized(&hub, &k.rsa.sign(&header("RS256", "k1"), &claims("alice")));
    assert!(message.contains("no key has the kid \"k1\""), "{message}");
    assert!(
        message.contains(&format!(
            "from http://127.0.0.1:{port}/jwks could not be fetched"
        )),
        "{message}"
    );
    // HS256 tokens, keys given at start, the HTTP API: all unaffected.
    let hs = wshub::sign_jwt(SECRET.as_bytes(), &claims("hs-user")).unwrap();
    expect_user(&hub, &hs, "hs-user");
    expect_user(
        &hub,
        &k.p384.sign(&header("ES384", "static"), &claims("bob")),
        "bob",
    );
    assert_eq!(get(hub.addr, "/health").0, 200);

    // An https:// URL is fetched over TLS: a server that does not speak it
    // is a failed fetch like any other.
    let plain = JwksServer::start(Serve::Json(jwks(&[(&k.rsa, "k1")])));
    let url = plain.url.replace("http://", "https://");
    let hub = start(idp_config().jwks_url(Some(url.clone())));
    let message = expect_unauthorized(&hub, &k.rsa.sign(&header("RS256", "k1"), &claims("alice")));
    assert!(
        message.contains(&format!("from {url} could not be fetched")),
        "{message}"
    );
}

#[test]
fn a_key_set_over_https_is_trusted_through_its_private_ca_and_refused_without_it() {
    let k = keys();
    let ca = TestCa::make("private");
    let other = TestCa::make("other");
    let server = JwksServer::start_tls(Serve::Json(jwks(&[(&k.rsa, "k1")])), &ca);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let token = k.rsa.sign(&header("RS256", "k1"), &claims("alice"));

    // --jwks-ca names the CA that issued the server's certificate: fetched
    // over TLS, its keys let a token in.
    let hub = start(
        idp_config()
            .jwks_url(Some(server.url.clone()))
            .jwks_ca(Some(ca.ca_pem.clone())),
    );
    expect_user(&hub, &token, "alice");
    assert_eq!(server.fetches(), 1);

    // Without it, the Mozilla roots built in do not know the CA: refused,
    // saying which CAs are trusted and how to trust a private one.
    let hub = start(idp_config().jwks_url(Some(server.url.clone())));
    let message = expect_unauthorized(&hub, &token);
    assert!(
        message.contains("could not be fetched")
            && message.contains("not issued by a trusted CA")
            && message.contains("a private CA's certificate goes in --jwks-ca"),
        "{message}"
    );
    assert_eq!(get(hub.addr, "/health").0, 200);

    // Another CA's file replaces the built-in roots and trusts only that CA.
    let hub = start(
        idp_config()
            .jwks_url(Some(server.url.clone()))
            .jwks_ca(Some(other.ca_pem.clone())),
    );
    let message = expect_unauthorized(&hub, &token);
    assert!(
        message.contains("not issued by a trusted CA")
            && message.contains(&format!(
                "only the CA certificates in {} are trusted",
                other.ca_pem.display()
            )),
        "{message}"
    );
    assert_eq!(
        server.fetches(),
        1,
        "a refused certificate sends the server no request"
    );
}

#[test]
fn a_key_set_serving_garbage_is_refused_with_the_reason_and_good_keys_stay() {
    let k = keys();
    for (serve, reason) in [
        (
            Serve::Json("<html>Service Unavailable</html>".into()),
            "not JSON",
        ),
        (
            Serve::Json(r#"{"issuer": "https://idp.test/"}"#.into()),
            "no \"keys\"",
        ),
        (
            Serve::Json(r#"{"keys": []}"#.into()),
            "no key that can verify",
        ),
        (
            Serve::Json(r#"{"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}"#.into()),
            "symmetric",
        ),
        (
            Serve::Json(
                json!({"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"}]})
                    .to_string(),
            ),
            "bits",
        ),
        (Serve::Status(500), "HTTP 500"),
        (Serve::Status(404), "HTTP 404"),
    ] {
        let server = JwksServer::start(serve);
        let hub = jwks_hub(&server);
        let message =
            expect_unauthorized(&hub, &k.rsa.sign(&header("RS256", "k1"), &claims("alice")));
        assert!(
            message.contains("could not be fetched") && message.contains(reason),
            "{reason}: {message}"
        );
        assert_eq!(get(hub.addr, "/health").0, 200);
    }

    // A set that turns to garbage later: the keys fetched before stay.
    let server = JwksServer::start(Serve::Json(jwks(&[(&k.rsa, "k1")])));
    let hub = jwks_hub(&server);
    expect_user(
        &hub,
        &k.rsa.sign(&header("RS256", "k1"), &claims("alice")),
        "alice",
    );
    server.set(Serve::Json("garbage".into()));
    let message = expect_unauthorized(&hub, &k.ed.sign(&header("EdDSA", "k9"), &claims("mallory")));
    assert!(
        message.contains("could not be fetched again") && message.contains("are used"),
        "{message}"
    );
    assert_eq!(server.fetches(), 2);
    expect_user(
        &hub,
        &k.rsa.sign(&header("RS256", "k1"), &claims("bob")),
        "bob",
    );
}

#[test]
fn a_key_set_that_hangs_never_stalls_other_handshakes_or_the_hub() {
    let k = keys();
    let server = JwksServer::start(Serve::Hang);
    // A long handshake timeout: the wait for the key set has its own bound.
    let hub = start(
        idp_config()
            .jwks_url(Some(server.url.clone()))
            .handshake_timeout(Duration::from_secs(60)),
    );
    server.wait_fetches(1);
    // Handshakes that need the set wait for the fetch under way, each a
    // bounded time (3 s here), then are refused with the reason; they ask
    // for no more fetches.
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let addr = hub.addr;
            let token = k
                .rsa
                .sign(&header("RS256", "k1"), &claims(&format!("u{i}")));
            thread::spawn(move || {
                let mut ws =
                    Client::open(addr, &format!("/ws?token={token}")).expect("the handshake");
                let first = read_json(&mut ws, DEADLINE).expect("the refusal within the deadline");
                first["data"]["error"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
        })
        .collect();
    // Meanwhile the rest of the hub answers: the HTTP API, HS256 clients,
    // publishing to them.
    assert_eq!(get(hub.addr, "/health").0, 200);
    let hs = wshub::sign_jwt(SECRET.as_bytes(), &claims("hs-user")).unwrap();
    let mut client = expect_user(&hub, &hs, "hs-user");
    client.request(json!({"type": "subscribe", "channel": "news"}), "s");
    hub.handle()
        .publish(wshub::Target::channel("news"), "event", json!({"n": 1}))
        .unwrap();
    assert_eq!(client.expect_eventually("event")["data"]["n"], 1);
    for waiting in waiting {
        let message = waiting.join().unwrap();
        assert!(
            message.contains("being fetched") && message.contains("try again"),
            "{message}"
        );
    }
    assert_eq!(
        server.fetches(),
        1,
        "one fetch under way serves every waiting handshake"
    );
    // The hub stops without waiting for the fetch.
    drop(client);
    let TestHub {
        server: running, ..
    } = hub;
    running.shutdown().unwrap();
}

#[test]
fn a_hub_that_stops_interrupts_its_fetch_in_flight_without_waiting_for_it() {
    let server = JwksServer::start(Serve::Hang);
    let hub = jwks_hub(&server);
    server.wait_fetches(1);
    let TestHub {
        server: running, ..
    } = hub;
    running.shutdown().unwrap();
    // The fetcher gives its fetch up at once: not after the fetch's own
    // 10 s, as it did when a stop waited for the fetch to end by itself.
    server.wait_abandoned(1, Duration::from_secs(5));
}

#[test]
fn a_hub_that_stops_during_its_fetch_s_tls_handshake_gives_it_up_at_once() {
    // A server that takes the ClientHello and never answers it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}/jwks", listener.local_addr().unwrap());
    let (hello, hellos) = bounded::<()>(1);
    let (gone, gones) = bounded::<()>(1);
    thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        // Bounded: the test ends long before.
        conn.set_read_timeout(Some(Duration::from_secs(60))).ok();
        let mut buf = [0; 1024];
        if matches!(conn.read(&mut buf), Ok(n) if n > 0 && buf[0] == 0x16) {
            let _ = hello.send(());
        }
        // Until the client hangs up.
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        let _ = gone.send(());
    });
    let hub = start(idp_config().jwks_url(Some(url)));
    hellos
        .recv_timeout(DEADLINE)
        .expect("the fetcher's TLS ClientHello");
    let TestHub {
        server: running, ..
    } = hub;
    running.shutdown().unwrap();
    // Given up at once, not after the fetch's own 10 s.
    gones
        .recv_timeout(Duration::from_secs(5))
        .expect("the fetch's connection closed when the hub stopped");
}

#[test]
fn the_binary_refuses_an_unusable_key_file_jwks_url_or_ca_file_with_exit_2() {
    let k = keys();
    let private = k.private_pem.to_str().unwrap();
    let text = std::env::temp_dir().join(format!("wshub-identity-{}/note.txt", std::process::id()));
    std::fs::write(&text, "not a key\n").unwrap();
    let ca = TestCa::make("binary");
    let ca_pem = ca.ca_pem.to_str().unwrap();
    let idp = "https://idp.example.com/jwks";
    let cases: [(&[&str], &str); 8] = [
        (
            &["--jwt-public-key", "/nonexistent/idp.pem"],
            "/nonexistent/idp.pem",
        ),
        (&["--jwt-public-key", private], "private key"),
        (
            &["--jwks-url", "http://idp.example.com/jwks"],
            "must be an https:// URL",
        ),
        (&["--jwks-url", "https://"], "jwks_url"),
        (
            &["--jwt-public-key", text.to_str().unwrap()],
            "no PUBLIC KEY or CERTIFICATE",
        ),
        (
            &["--jwks-ca", ca_pem],
            "it is for an https:// jwks_url, and there is none",
        ),
        (
            &["--jwks-url", idp, "--jwks-ca", text.to_str().unwrap()],
            "holds no PEM certificate",
        ),
        (
            &["--jwks-url", idp, "--jwks-ca", private],
            "holds a private key and no certificate",
        ),
    ];
    for (args, reason) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_wshub"))
            .args(args)
            .args(["--port", "0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

/// A `redis-server` of this test's own, on a Unix socket (no port to race
/// for), gone when dropped.
struct Redis {
    child: std::process::Child,
    socket: PathBuf,
}

impl Redis {
    fn start() -> Redis {
        let socket =
            std::env::temp_dir().join(format!("wshub-identity-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("needs redis-server; .ci/run installs it");
        let start = Instant::now();
        // Polls a process starting up: no message to wait on.
        while !Redis::answers(&socket) {
            assert!(start.elapsed() < DEADLINE, "redis-server did not answer");
            thread::sleep(Duration::from_millis(20));
        }
        Redis { child, socket }
    }

    fn answers(socket: &Path) -> bool {
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) else {
            return false;
        };
        let mut reply = [0; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

#[test]
#[ignore = "needs redis-server; .ci/run installs it"]
fn with_redis_each_hub_checks_its_own_tokens_and_deliveries_cross() {
    let k = keys();
    let redis = Redis::start();
    let server = JwksServer::start(Serve::Json(jwks(&[(&k.rsa, "k1"), (&k.ed, "k2")])));
    let on_redis = || {
        let hub = start(
            idp_config()
                .redis(Some(redis.url()))
                .jwks_url(Some(server.url.clone())),
        );
        hub.wait_stats("the hub to join Redis", |s| {
            s.cluster.as_ref().is_some_and(|c| c.redis_up)
        });
        hub
    };
    let (one, two) = (on_redis(), on_redis());
    for hub in [&one, &two] {
        hub.wait_stats("both hubs to know each other", |s| {
            s.cluster.as_ref().is_some_and(|c| c.hubs.len() == 2)
        });
    }
    let mut alice = expect_user(
        &one,
        &k.rsa.sign(&header("RS256", "k1"), &claims("alice")),
        "alice",
    );
    // A forged token for alice on the other hub: refused there, by that hub.
    let forged = k.rsa_other.sign(&header("RS256", "k1"), &claims("alice"));
    let message = expect_unauthorized(&two, &forged);
    assert!(message.contains("signature does not match"), "{message}");
    let _bob = expect_user(
        &two,
        &k.ed.sign(&header("EdDSA", "k2"), &claims("bob")),
        "bob",
    );
    // What the other hub publishes to alice reaches her.
    two.handle()
        .publish(
            wshub::Target::user("alice"),
            "notification",
            json!({"n": 1}),
        )
        .unwrap();
    assert_eq!(alice.expect_eventually("notification")["data"]["n"], 1);
    assert_eq!(server.fetches(), 2, "each hub fetched the key set itself");
}
