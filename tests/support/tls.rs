//! TLS for the tests: a certificate authority and server certificates made
//! by `rcgen` and written to a temporary directory, and rustls clients
//! (raw, HTTPS, and tungstenite over them) that trust that authority.

#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{Value, json};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

use crate::support::{DEADLINE, parse_response};

/// A rustls client stream over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// rustls's ring provider, as the hub uses (rustls deprecates it only for
/// lacking post-quantum key exchange).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test certificate authority and the directory its files go to (removed
/// when dropped).
pub struct Pki {
    pub dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

/// A server certificate written as PEM files.
pub struct Issued {
    /// The chain: the certificate, then the authority's (a full chain).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The server certificate itself, as a client sees it.
    pub der: CertificateDer<'static>,
    /// Its public key (DER SubjectPublicKeyInfo), for pinning.
    pub spki: Vec<u8>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wshub-tls-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "wshub test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let ca_pem = ca.pem();
        std::fs::write(dir.join("ca.pem"), &ca_pem).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
            ca_pem,
        }
    }

    /// The authority's certificate file (for `curl --cacert` and the like).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `localhost` and `127.0.0.1` named
    /// `common_name` with `serial`, and writes it (with the authority's, a
    /// full chain) and its key to `{stem}.pem` and `{stem}.key`.
    pub fn issue(&self, stem: &str, common_name: &str, serial: u64) -> Issued {
        self.issue_with(stem, common_name, serial, KeyPair::generate().unwrap())
    }

    /// The same with a key of the caller's (RSA, P-384...).
    pub fn issue_with(&self, stem: &str, common_name: &str, serial: u64, key: KeyPair) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let issued = Issued {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
            der: cert.der().clone(),
            spki: rcgen::PublicKeyData::subject_public_key_info(&key),
        };
        write_atomically(&issued.cert, &format!("{}{}", cert.pem(), self.ca_pem));
        write_atomically(&issued.key, &key.serialize_pem());
        issued
    }

    /// A client configuration that trusts this authority: TLS 1.2 and 1.3,
    /// ALPN `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_for(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// The same, offering only `versions`.
    pub fn client_config_for(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca = rustls::pki_types::pem::PemObject::from_pem_slice(self.ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a file whole under its name at once (as certbot's renewals do,
/// by a rename), so a reload never reads half of it.
pub fn write_atomically(path: &Path, contents: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, contents).unwrap();
    std::fs::rename(&partial, path).unwrap();
}

/// A TCP connection to `addr` with its TLS handshake done (as `localhost`),
/// reads and writes timing out after [`DEADLINE`].
pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> std::io::Result<TlsStream> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(DEADLINE))?;
    tcp.set_write_timeout(Some(DEADLINE))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// One HTTPS request (raw bytes); returns status, head and body. The
/// server's certificate as the client saw it comes along.
pub fn https(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    request: &[u8],
) -> (u16, String, String, CertificateDer<'static>) {
    let mut stream = connect(addr, config).expect("TLS handshake");
    let cert = stream.conn.peer_certificates().unwrap()[0].clone();
    stream.write_all(request).expect("send the request");
    stream.flush().unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            // rustls reads 0 only after close_notify: the hub ends its
            // answers cleanly (a TCP end without it is UnexpectedEof).
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(err) => panic!("reading the response: {err}"),
        }
    }
    let (status, head, body) = parse_response(&response);
    (status, head, body, cert)
}

/// `GET path` over HTTPS: status and JSON body.
pub fn https_get(addr: SocketAddr, config: &Arc<ClientConfig>, path: &str) -> (u16, Value) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\n\r\n",
        addr.port()
    );
    let (status, _, body, _) = https(addr, config, request.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// `POST path` over HTTPS with a JSON body.
pub fn https_post(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    let (status, _, body, _) = https(addr, config, request.as_bytes());
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

/// A WebSocket client over TLS (wss://).
pub struct Wss {
    pub ws: WebSocket<TlsStream>,
    /// The first message: the welcome.
    pub welcome: Value,
}

impl Wss {
    /// Connects to `path`, and reads the welcome (and, in the standard
    /// envelope, the `auth` message after it).
    pub fn connect(addr: SocketAddr, config: &Arc<ClientConfig>, path: &str) -> Wss {
        let mut ws =
            Wss::open(addr, config, path).unwrap_or_else(|err| panic!("wss {path}: {err}"));
        let welcome = read_json(&mut ws, DEADLINE).expect("a welcome");
        let mut client = Wss { ws, welcome };
        // The standard envelope's greeting goes on with how the token went.
        if client.welcome["type"] == "connection" && client.welcome["data"].is_object() {
            client.expect("auth");
        }
        client
    }

    /// The handshakes (TLS, then WebSocket) only.
    pub fn open(
        addr: SocketAddr,
        config: &Arc<ClientConfig>,
        path: &str,
    ) -> Result<WebSocket<TlsStream>, String> {
        let stream = connect(addr, config).map_err(|err| format!("TLS: {err}"))?;
        let url = format!("wss://localhost:{}{path}", addr.port());
        let ws_config =
            tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 * 1024);
        tungstenite::client::client_with_config(url.as_str(), stream, Some(ws_config))
            .map(|(ws, _)| ws)
            .map_err(|err| format!("WebSocket handshake: {err}"))
    }

    /// The certificate the hub showed this client.
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.ws.get_ref().conn.peer_certificates().unwrap()[0].clone()
    }

    pub fn send(&mut self, value: Value) {
        self.ws
            .send(Message::text(value.to_string()))
            .expect("send");
    }

    pub fn recv(&mut self, what: &str) -> Value {
        read_json(&mut self.ws, DEADLINE).unwrap_or_else(|err| panic!("expected {what}: {err}"))
    }

    pub fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv(kind);
        assert_eq!(message["type"], kind, "expected {kind}, got {message}");
        message
    }

    /// Skips messages until one of type `kind`.
    pub fn expect_eventually(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv(kind);
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Sends `request` and returns the reply with its `correlationId`.
    pub fn request(&mut self, mut request: Value, correlation: &str) -> Value {
        request["correlationId"] = json!(correlation);
        self.send(request);
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let message = read_json(&mut self.ws, left)
                .unwrap_or_else(|err| panic!("reply to {correlation}: {err}"));
            if message["correlationId"] == correlation {
                return message;
            }
        }
    }

    /// Reads until the hub's Close; returns its code and reason.
    pub fn expect_close(&mut self) -> (u16, String) {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            assert!(!left.is_zero(), "no Close frame within {DEADLINE:?}");
            self.ws.get_mut().sock.set_read_timeout(Some(left)).ok();
            match self.ws.read() {
                Ok(Message::Close(Some(CloseFrame { code, reason }))) => {
                    return (u16::from(code), reason.to_string());
                }
                Ok(Message::Close(None)) => return (1005, String::new()),
                Ok(_) => {}
                Err(err) => panic!("connection ended without a Close frame: {err}"),
            }
        }
    }
}

/// The next text message as JSON, within `wait`.
pub fn read_json(ws: &mut WebSocket<TlsStream>, wait: Duration) -> Result<Value, String> {
    let start = Instant::now();
    loop {
        let left = wait.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(format!("nothing within {wait:?}"));
        }
        ws.get_mut().sock.set_read_timeout(Some(left)).ok();
        match ws.read() {
            Ok(Message::Text(text)) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| format!("not JSON: {e}: {text}"));
            }
            Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}")),
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(err) => return Err(format!("read failed: {err}")),
        }
    }
}
