//! An identity provider's key set (JWKS, `--jwks-url`): the cache of its
//! keys, and the fetcher thread that keeps it fresh.
//!
//! The **fetcher thread** (`wshub-jwks`, started by [`Hub::run`](crate::Hub::run)
//! when a URL is set) owns the HTTP client and is the only one that fetches:
//! at start, then every 5 minutes (or the response's `Cache-Control:
//! max-age`, kept between 1 minute and 1 hour), after a failure again after
//! 1, 2, 4 ... up to 30 s, and when a token names a `kid` the set does not
//! hold: at most once every 30 s for that, however many such tokens come.
//! A fetch has 10 s in all and 1 MiB of body; a failed one keeps the keys
//! fetched before, is logged ([`FetchError`] says why) and told to the
//! tokens refused for it. The server's certificate chains to the Mozilla
//! roots built in or, with `--jwks-ca`, to that file's CAs only.
//!
//! Nothing is fetched before the hub starts: a key set that cannot be
//! fetched never stops the start, it is logged and tried again. What
//! stops it is a setting that cannot work (a URL that is not `https://`,
//! a CA file that is not one: [`CaError`]), found by `Config::validate`.
//!
//! **How it ends.** [`Hub::run`](crate::Hub::run) stops it when its accept
//! loop ends (no new connection comes to need the keys) and does not wait
//! for it: the stop disconnects a channel the thread waits on, so an idle
//! thread returns at once, and shuts down the HTTP client's connections,
//! so a fetch in flight (a read, a write or a TLS handshake) fails at once
//! and the thread returns without keeping, logging or retrying anything;
//! handshakes still waiting for that fetch are told the hub is stopping.
//! A name lookup or TCP connect under way cannot be interrupted: it runs
//! out (5 s at most each) and the thread returns then, fetching nothing.
//!
//! The **cache** is shared read-mostly: a check takes the current keys (an
//! `Arc` cloned under a read lock, never held while verifying) and never
//! fetches. Connection threads checking a token with an unknown `kid` ask
//! for a fetch and wait for it a bounded time (at most 3 s, never beyond the
//! handshake timeout); the router never waits. The accept loop never comes
//! here. So a key set that is slow or unreachable delays only the
//! handshakes that need a key it has not got, each by at most that bound,
//! and costs the rest of the hub nothing.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, at, bounded, select};

use crate::error::{Error, Result};
use crate::keys::{JwtKey, KeySetError, KeySetKeys};
use crate::throttle::warn_throttled;

/// Least time between two fetches asked for by tokens with an unknown `kid`.
pub(crate) const COOLDOWN: Duration = Duration::from_secs(30);
/// Most time a handshake waits for a fetch.
pub(crate) const MOST_WAIT: Duration = Duration::from_secs(3);
/// How often the set is fetched when its response says nothing.
const PERIOD: Duration = Duration::from_secs(300);
/// Bounds on a `Cache-Control: max-age`.
const SHORTEST_PERIOD: Duration = Duration::from_secs(60);
const LONGEST_PERIOD: Duration = Duration::from_secs(3600);
/// Longest wait before trying again after a failed fetch.
const LONGEST_RETRY: Duration = Duration::from_secs(30);
/// Most time one fetch may take, connecting included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Most time of a fetch for finding and reaching the server (the name
/// lookup, then the TCP connect and the TLS handshake): the parts a stop
/// cannot interrupt are bounded by these.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set document.
const MOST_BYTES: u64 = 1024 * 1024;

/// The cache of an identity provider's keys, shared by every thread that
/// checks tokens and the fetcher thread that fills it.
#[derive(Debug)]
pub(crate) struct KeySet {
    url: String,
    /// The CA certificates its server must chain to, instead of the
    /// built-in roots (`--jwks-ca`).
    ca: Option<PathBuf>,
    keys: RwLock<Arc<Vec<JwtKey>>>,
    fetch: Mutex<Fetch>,
    /// Notified when a fetch ends.
    fetched: Condvar,
    /// Asks the fetcher for a fetch (holds one request).
    wake: Sender<()>,
    wakes: Receiver<()>,
}

/// Where fetching stands.
#[derive(Debug)]
struct Fetch {
    /// A fetch is under way, or asked for.
    busy: bool,
    /// Fetches ended so far (waiters wait for this to move).
    ended: u64,
    /// When a token with an unknown `kid` last asked for a fetch.
    last_asked: Option<Instant>,
    /// When the keys were last fetched.
    fetched_at: Option<Instant>,
    /// Why the last fetch failed, if it did.
    error: Option<FetchError>,
}

impl KeySet {
    /// An empty set of the keys at `url`, to be fetched as soon as the
    /// fetcher starts, from a server whose certificate chains to a CA in
    /// the PEM file `ca` (or, without one, to the built-in roots).
    pub(crate) fn new(url: &str, ca: Option<&Path>) -> KeySet {
        let (wake, wakes) = bounded(1);
        KeySet {
            url: url.to_owned(),
            ca: ca.map(Path::to_path_buf),
            keys: RwLock::new(Arc::new(Vec::new())),
            fetch: Mutex::new(Fetch {
                busy: true,
                ended: 0,
                last_asked: None,
                fetched_at: None,
                error: None,
            }),
            fetched: Condvar::new(),
            wake,
            wakes,
        }
    }

    /// Where the keys come from.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The keys as last fetched (none before the first fetch).
    pub(crate) fn keys(&self) -> Arc<Vec<JwtKey>> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// A token names a key the set does not hold: asks for a fetch, unless
    /// one is under way or a token asked for one less than [`COOLDOWN`]
    /// ago, and waits up to `wait` for the fetch under way to end. The keys
    /// after that.
    pub(crate) fn refresh(&self, wait: Duration) -> Arc<Vec<JwtKey>> {
        let mut fetch = self.lock();
        if !fetch.busy {
            let now = Instant::now();
            if fetch
                .last_asked
                .is_some_and(|asked| now.duration_since(asked) < COOLDOWN)
            {
                drop(fetch);
                return self.keys();
            }
            fetch.last_asked = Some(now);
            fetch.busy = true;
            let _ = self.wake.try_send(());
        }
        let seen = fetch.ended;
        let deadline = Instant::now() + wait;
        while fetch.ended == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            fetch = match self.fetched.wait_timeout(fetch, left) {
                Ok((fetch, _)) => fetch,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(fetch);
        self.keys()
    }

    /// How the set stands, for a refusal: `from URL was fetched 12 s ago`.
    pub(crate) fn status(&self) -> String {
        let fetch = self.lock();
        let url = &self.url;
        let ago = |at: Instant| format!("{} s ago", at.elapsed().as_secs());
        let mut status = match (&fetch.fetched_at, &fetch.error) {
            (Some(at), None) => format!("from {url} was fetched {}", ago(*at)),
            (Some(at), Some(err)) => format!(
                "from {url} could not be fetched again ({err}); the keys fetched {} are used",
                ago(*at)
            ),
            (None, Some(err)) => format!("from {url} could not be fetched ({err})"),
            (None, None) => format!("from {url} has not been fetched yet"),
        };
        if fetch.busy {
            status.push_str("; it is being fetched: try again in a moment");
        } else if fetch
            .last_asked
            .is_some_and(|asked| asked.elapsed() < COOLDOWN)
        {
            status.push_str(&format!(
                "; it is fetched for an unknown kid at most every {} s",
                COOLDOWN.as_secs()
            ));
        }
        status
    }

    fn lock(&self) -> MutexGuard<'_, Fetch> {
        self.fetch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fetch begins.
    fn begin(&self) {
        self.lock().busy = true;
        // A request that came meanwhile is served by this fetch.
        while self.wakes.try_recv().is_ok() {}
    }

    /// A fetch ended: keeps its keys, or its error (and the keys as they were).
    fn end(&self, result: Result<Vec<JwtKey>, FetchError>) {
        let mut fetch = self.lock();
        match result {
            Ok(keys) => {
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
                fetch.fetched_at = Some(Instant::now());
                fetch.error = None;
            }
            Err(err) => fetch.error = Some(err),
        }
        fetch.busy = false;
        fetch.ended += 1;
        drop(fetch);
        self.fetched.notify_all();
    }
}

/// The fetcher thread of a key set, running until [`Fetcher::stop`] (or
/// until dropped, which stops it the same way).
#[derive(Debug)]
pub(crate) struct Fetcher {
    /// Dropped to stop the thread: its wait for the next fetch ends at once.
    stop: Option<Sender<()>>,
    /// The thread's HTTP client (a clone sharing its connections): shut
    /// down to interrupt a fetch in flight.
    client: Client,
}

impl Fetcher {
    /// Stops the thread without waiting for it: a fetch in flight is
    /// interrupted, and the thread returns as soon as it sees the stop.
    pub(crate) fn stop(self) {
        drop(self);
    }
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        // The stop is seen first, so the interrupted fetch is not taken for
        // a failure of the key set.
        drop(self.stop.take());
        self.client.interrupt();
    }
}

/// Starts the fetcher thread of `set`, which runs until the [`Fetcher`] is
/// stopped or dropped.
///
/// # Errors
///
/// [`Error::Config`] when the CA file cannot be used (it changed since the
/// settings were checked), [`Error::Io`] when the thread cannot start.
/// A key set that cannot be fetched is no error here: the thread logs it
/// and tries again.
pub(crate) fn start(set: Arc<KeySet>) -> Result<Fetcher> {
    if is_plain(&set.url) {
        log::warn!(
            "the JWKS URL {} is plain http: only for tests on this machine; use https",
            set.url
        );
    }
    let client = Client::new(&set.url, set.ca.as_deref()).map_err(|err| Error::Config {
        field: "jwks_ca",
        reason: err.to_string(),
    })?;
    let (stop, stopped) = bounded::<()>(0);
    // Not joined: a stop never waits for the thread. It holds `set` until
    // it returns.
    let thread_client = client.clone();
    thread::Builder::new()
        .name("wshub-jwks".into())
        .spawn(move || run(&set, &thread_client, &stopped))?;
    Ok(Fetcher {
        stop: Some(stop),
        client,
    })
}

/// Whether the fetcher was told to stop.
fn stopping(stopped: &Receiver<()>) -> bool {
    matches!(stopped.try_recv(), Err(TryRecvError::Disconnected))
}

/// The fetcher's loop: waits for the next fetch (its time, or a token's
/// request), fetches, keeps what it got, until it is stopped.
fn run(set: &KeySet, client: &Client, stopped: &Receiver<()>) {
    let mut next = Instant::now();
    let mut failures: u32 = 0;
    let mut kids: Vec<Option<String>> = Vec::new();
    loop {
        select! {
            recv(stopped) -> _ => return,
            recv(set.wakes) -> _ => {}
            recv(at(next)) -> _ => {}
        }
        set.begin();
        let fetched = client.fetch(&set.url);
        if stopping(stopped) {
            // The stop interrupted the fetch (or came as it ended): nobody
            // needs its keys now, and handshakes waiting for them are told.
            set.end(Err(FetchError::Stopped));
            return;
        }
        let now = Instant::now();
        match fetched {
            Ok((KeySetKeys { keys, skipped }, max_age)) => {
                failures = 0;
                next = now + period(max_age);
                let fetched_kids: Vec<Option<String>> =
                    keys.iter().map(|k| k.kid().map(str::to_owned)).collect();
                if fetched_kids != kids {
                    log::info!(
                        "JWKS: {} keys from {} ({})",
                        keys.len(),
                        set.url,
                        keys.iter()
                            .map(JwtKey::describe)
                            .collect::<Vec<_>>()
                            .join("; ")
                    );
                    kids = fetched_kids;
                }
                for why in skipped {
                    log::debug!("JWKS: left out {why}");
                }
                set.end(Ok(keys));
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                let wait = retry(failures);
                next = now + wait;
                let refused = match set.keys().is_empty() {
                    true => "tokens signed with its keys are refused until a fetch works",
                    false => "the keys fetched before are used",
                };
                warn_throttled!(
                    "JWKS: cannot fetch {}: {err}; {refused}; trying again in {} s",
                    set.url,
                    wait.as_secs()
                );
                set.end(Err(err));
            }
        }
    }
}

/// How long until the next fetch after one that worked.
fn period(max_age: Option<Duration>) -> Duration {
    max_age.map_or(PERIOD, |age| age.clamp(SHORTEST_PERIOD, LONGEST_PERIOD))
}

/// How long until the next try after `failures` failed fetches in a row.
fn retry(failures: u32) -> Duration {
    (Duration::from_secs(1) * 2u32.saturating_pow(failures.saturating_sub(1).min(5)))
        .min(LONGEST_RETRY)
}

/// The `max-age` of a `Cache-Control` header.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .filter_map(|directive| directive.trim().strip_prefix("max-age="))
        .find_map(|age| age.trim_matches('"').parse().ok())
        .map(Duration::from_secs)
}

/// What a JWKS URL is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheme {
    Https,
    /// `http://` to this authority (host and port): the settings allow it
    /// to this machine only, for tests (see `Config::validate`).
    Http(String),
}

/// Parses a JWKS URL: `https://` or `http://`, with a host and no
/// credentials.
pub(crate) fn parse_url(url: &str) -> Result<Scheme, String> {
    let uri: tungstenite::http::Uri = url.parse().map_err(|_| {
        format!("{url:?} is not a URL like https://example.com/.well-known/jwks.json")
    })?;
    let Some(authority) = uri.authority() else {
        return Err(format!("{url:?} has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(format!("{url:?}: credentials in the URL are not supported"));
    }
    match uri.scheme_str() {
        Some("https") => Ok(Scheme::Https),
        Some("http") => Ok(Scheme::Http(authority.as_str().to_owned())),
        _ => Err(format!(
            "{url:?} must be an https:// URL (http:// only to this machine, for tests)"
        )),
    }
}

/// Whether the URL is plain `http://` (which the settings allow to this
/// machine only).
fn is_plain(url: &str) -> bool {
    matches!(parse_url(url), Ok(Scheme::Http(_)))
}

/// Whether the URL's host is this machine (`localhost` or a loopback
/// address): fetched without a proxy.
fn is_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<tungstenite::http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a fetch of the key set failed. Kept until the next fetch ends: a
/// refused token is told it, and the fetcher logs it.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The server could not be reached or the exchange failed: the name
    /// lookup, the connection, the TLS handshake, a timeout, a redirect.
    #[cfg(feature = "jwks")]
    Request(ureq::Error),
    /// The server's certificate was refused: it does not chain to a CA
    /// trusted (the CA file's, or without one the built-in roots), or it
    /// does not name the host, or it has expired.
    #[cfg(feature = "jwks")]
    Certificate {
        /// Why the TLS client refused it.
        refused: rustls::CertificateError,
        /// The CA file trusted instead of the built-in roots (`--jwks-ca`).
        ca: Option<PathBuf>,
    },
    /// The server answered with this status, not a success.
    Status(u16),
    /// The body could not be read: more than 1 MiB, cut short, not UTF-8.
    #[cfg(feature = "jwks")]
    Body(ureq::Error),
    /// The body is not a key set with a key that can verify tokens.
    KeySet(KeySetError),
    /// The hub stopped during the fetch.
    Stopped,
    /// This build has no fetcher (the `jwks` feature is off).
    #[cfg(not(feature = "jwks"))]
    NotBuilt,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "jwks")]
            FetchError::Request(err) => write!(f, "{err}"),
            #[cfg(feature = "jwks")]
            FetchError::Certificate { refused, ca } => {
                match refused {
                    rustls::CertificateError::UnknownIssuer => {
                        f.write_str("TLS: the server's certificate is not issued by a trusted CA")?
                    }
                    other => write!(f, "TLS: the server's certificate is refused: {other}")?,
                }
                match ca {
                    Some(ca) => write!(
                        f,
                        "; only the CA certificates in {} are trusted (--jwks-ca)",
                        ca.display()
                    ),
                    None => f.write_str(
                        "; the Mozilla roots built in are trusted: \
                         a private CA's certificate goes in --jwks-ca",
                    ),
                }
            }
            FetchError::Status(code) => write!(f, "HTTP {code}"),
            #[cfg(feature = "jwks")]
            FetchError::Body(err) => write!(f, "reading the body: {err}"),
            FetchError::KeySet(why) => write!(f, "not a usable key set: {why}"),
            FetchError::Stopped => f.write_str("the hub is stopping"),
            #[cfg(not(feature = "jwks"))]
            FetchError::NotBuilt => {
                f.write_str("this build has no JWKS fetcher (the `jwks` feature)")
            }
        }
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "jwks")]
            FetchError::Request(err) | FetchError::Body(err) => Some(err),
            FetchError::KeySet(err) => Some(err),
            _ => None,
        }
    }
}

/// Why a CA file (`--jwks-ca`) cannot be used.
#[derive(Debug)]
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
pub(crate) enum CaError {
    /// It cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// It is not PEM.
    #[cfg(feature = "jwks")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        source: ureq::Error,
    },
    /// A certificate in it cannot be a trust anchor (it does not parse).
    #[cfg(feature = "jwks")]
    NotACa {
        /// The file.
        path: PathBuf,
        /// Which certificate, from 1.
        index: usize,
        /// What the TLS library said.
        source: rustls::Error,
    },
    /// It has a private key and no certificate.
    PrivateKeyOnly {
        /// The file.
        path: PathBuf,
    },
    /// It has no certificate.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// This build has no fetcher (the `jwks` feature is off).
    #[cfg(not(feature = "jwks"))]
    NotBuilt {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for CaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaError::Read { path, source } => write!(f, "{}: {source}", path.display()),
            #[cfg(feature = "jwks")]
            CaError::NotPem { path, source } => {
                write!(f, "{} is not a PEM file: {source}", path.display())
            }
            #[cfg(feature = "jwks")]
            CaError::NotACa {
                path,
                index,
                source,
            } => write!(
                f,
                "{}: certificate {index} is not usable as a CA: {source}",
                path.display()
            ),
            CaError::PrivateKeyOnly { path } => write!(
                f,
                "{} holds a private key and no certificate: give the CA's certificate",
                path.display()
            ),
            CaError::NoCertificate { path } => write!(
                f,
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
            #[cfg(not(feature = "jwks"))]
            CaError::NotBuilt { path } => write!(
                f,
                "{}: this build has no JWKS fetcher (the `jwks` feature)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaError::Read { source, .. } => Some(source),
            #[cfg(feature = "jwks")]
            CaError::NotPem { source, .. } => Some(source),
            #[cfg(feature = "jwks")]
            CaError::NotACa { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks a CA file (`--jwks-ca`): PEM, with at least one certificate,
/// each usable as a trust anchor.
pub(crate) fn check_ca(path: &Path) -> Result<(), CaError> {
    #[cfg(feature = "jwks")]
    return load_ca(path).map(drop);
    #[cfg(not(feature = "jwks"))]
    return Err(CaError::NotBuilt {
        path: path.to_path_buf(),
    });
}

/// The certificates of a CA file: every `CERTIFICATE` of the PEM bundle
/// (other sections are left out), each checked as rustls will take it.
#[cfg(feature = "jwks")]
fn load_ca(path: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>, CaError> {
    use ureq::tls::PemItem;

    let pem = std::fs::read(path).map_err(|source| CaError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = Vec::new();
    let mut private_key = false;
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|source| CaError::NotPem {
            path: path.to_path_buf(),
            source,
        })? {
            PemItem::Certificate(cert) => {
                let der = rustls::pki_types::CertificateDer::from(cert.der());
                rustls::RootCertStore::empty()
                    .add(der)
                    .map_err(|source| CaError::NotACa {
                        path: path.to_path_buf(),
                        index: certs.len() + 1,
                        source,
                    })?;
                certs.push(cert.to_owned());
            }
            PemItem::PrivateKey(_) => private_key = true,
            // Whatever else a bundle holds is not a CA.
            _ => {}
        }
    }
    match (certs.is_empty(), private_key) {
        (false, _) => Ok(certs),
        (true, true) => Err(CaError::PrivateKeyOnly {
            path: path.to_path_buf(),
        }),
        (true, false) => Err(CaError::NoCertificate {
            path: path.to_path_buf(),
        }),
    }
}

/// The HTTP client of the fetcher thread.
#[derive(Debug, Clone)]
struct Client {
    #[cfg(feature = "jwks")]
    agent: ureq::Agent,
    /// The CA file its TLS client trusts instead of the built-in roots.
    #[cfg(feature = "jwks")]
    ca: Option<PathBuf>,
}

impl Client {
    /// A client of `url`, trusting the CA certificates in `ca` or, without
    /// it, the Mozilla roots built in.
    #[cfg(feature = "jwks")]
    fn new(url: &str, ca: Option<&Path>) -> Result<Client, CaError> {
        use ureq::tls::{RootCerts, TlsConfig};

        let roots = match ca {
            Some(ca) => RootCerts::new_with_certs(&load_ca(ca)?),
            None => RootCerts::WebPki,
        };
        let mut config = ureq::Agent::config_builder()
            .tls_config(TlsConfig::builder().root_certs(roots).build())
            .timeout_global(Some(FETCH_TIMEOUT))
            .timeout_resolve(Some(RESOLVE_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .https_only(!is_plain(url))
            .max_redirects(5)
            .user_agent(concat!("wshub/", env!("CARGO_PKG_VERSION")));
        if is_loopback(url) {
            // A server on this machine: never through a proxy.
            config = config.proxy(None);
        }
        Ok(Client {
            agent: config.build().new_agent(),
            ca: ca.map(Path::to_path_buf),
        })
    }

    /// Fetches and parses the key set, with its response's `max-age`.
    #[cfg(feature = "jwks")]
    fn fetch(&self, url: &str) -> Result<(KeySetKeys, Option<Duration>), FetchError> {
        let mut response = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|err| self.refused(err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max_age = response
            .headers()
            .get("cache-control")
            .and_then(|value| value.to_str().ok())
            .and_then(max_age);
        let text = response
            .body_mut()
            .with_config()
            .limit(MOST_BYTES)
            .read_to_string()
            .map_err(FetchError::Body)?;
        let keys = crate::keys::parse_key_set(&text).map_err(FetchError::KeySet)?;
        Ok((keys, max_age))
    }

    /// A failed request as a [`FetchError`]: a certificate the TLS client
    /// refused is told apart, with the CAs it trusts.
    #[cfg(feature = "jwks")]
    fn refused(&self, err: ureq::Error) -> FetchError {
        // rustls's error comes as it is, or inside the I/O error of the
        // handshake.
        let tls = match &err {
            ureq::Error::Rustls(tls) => Some(tls),
            ureq::Error::Io(io) => io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        match tls {
            Some(rustls::Error::InvalidCertificate(refused)) => FetchError::Certificate {
                refused: refused.clone(),
                ca: self.ca.clone(),
            },
            _ => FetchError::Request(err),
        }
    }

    /// Interrupts a fetch in flight (its socket is shut down, so a read,
    /// a write or a TLS handshake fails at once) and refuses later ones. A
    /// name lookup or TCP connect under way runs to its end (within
    /// [`RESOLVE_TIMEOUT`] and [`CONNECT_TIMEOUT`]) and then fails.
    #[cfg(feature = "jwks")]
    fn interrupt(&self) {
        self.agent.clone().shutdown();
    }

    #[cfg(not(feature = "jwks"))]
    fn new(_url: &str, _ca: Option<&Path>) -> Result<Client, CaError> {
        Ok(Client {})
    }

    #[cfg(not(feature = "jwks"))]
    fn interrupt(&self) {}

    #[cfg(not(feature = "jwks"))]
    fn fetch(&self, _url: &str) -> Result<(KeySetKeys, Option<Duration>), FetchError> {
        Err(FetchError::NotBuilt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_http_with_a_host_and_no_credentials() {
        for url in [
            "https://tenant.auth0.com/.well-known/jwks.json",
            "https://sso.example.com:8443/realms/main/protocol/openid-connect/certs",
        ] {
            assert_eq!(parse_url(url), Ok(Scheme::Https), "{url}");
        }
        for (url, authority) in [
            ("http://127.0.0.1:8080/jwks", "127.0.0.1:8080"),
            ("http://localhost/jwks", "localhost"),
            ("http://[::1]:1/k", "[::1]:1"),
            ("http://example.com/jwks", "example.com"),
        ] {
            assert_eq!(parse_url(url), Ok(Scheme::Http(authority.into())), "{url}");
        }
        for url in [
            "ftp://example.com/jwks",
            "example.com/jwks",
            "https://",
            "https://user:pw@example.com/jwks",
            "",
            "https://exa mple.com/",
        ] {
            assert!(parse_url(url).is_err(), "{url}");
        }
    }

    #[test]
    fn urls_to_this_machine_are_told_apart_and_never_go_through_a_proxy() {
        for url in [
            "https://127.0.0.1:8443/jwks",
            "http://localhost/jwks",
            "https://LOCALHOST:1/k",
            "http://[::1]:1/k",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in [
            "https://tenant.auth0.com/.well-known/jwks.json",
            "https://127.example.com/jwks",
            "https://10.0.0.1/jwks",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url}");
        }
    }

    #[test]
    fn the_period_follows_max_age_within_bounds() {
        assert_eq!(
            max_age("public, max-age=15, stale-while-revalidate=15"),
            Some(Duration::from_secs(15))
        );
        assert_eq!(max_age("max-age=\"600\""), Some(Duration::from_secs(600)));
        assert_eq!(max_age("no-store"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(period(None), PERIOD);
        assert_eq!(period(Some(Duration::from_secs(15))), SHORTEST_PERIOD);
        assert_eq!(
            period(Some(Duration::from_secs(600))),
            Duration::from_secs(600)
        );
        assert_eq!(period(Some(Duration::from_secs(86_400))), LONGEST_PERIOD);
    }

    #[test]
    fn a_stop_interrupts_the_fetch_in_flight_and_the_thread_ends_without_being_waited_for() {
        use std::io::{ErrorKind, Read as _};
        use std::net::TcpListener;

        // A server that takes the request and never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let set = Arc::new(KeySet::new(&url, None));
        let fetcher = start(Arc::clone(&set)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut conn = loop {
            match listener.accept() {
                Ok((conn, _)) => break conn,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no fetch came");
                    thread::sleep(Duration::from_millis(5));
                }
                Err(err) => panic!("{err}"),
            }
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut buf = [0; 512];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).expect("the request");
            assert!(n > 0, "the fetcher hung up before asking");
            head.extend_from_slice(&buf[..n]);
        }

        // The fetch is in flight: a stop returns at once, and the fetch's
        // connection is closed long before its 10 s are up.
        fetcher.stop();
        match conn.read(&mut buf) {
            Ok(0) => {}
            Err(err) => assert!(
                !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                "the fetch is still in flight: {err}"
            ),
            Ok(n) => panic!("{n} more bytes"),
        }
        // The thread ends (it holds the set until it returns), and a
        // handshake looking at the set learns why it was not fetched.
        while Arc::strong_count(&set) > 1 {
            assert!(Instant::now() < deadline, "the fetcher thread lingers");
            thread::sleep(Duration::from_millis(5));
        }
        assert!(
            set.status().contains("the hub is stopping"),
            "{}",
            set.status()
        );
    }

    #[test]
    fn failed_fetches_are_retried_sooner_then_every_30_seconds() {
        let waits: Vec<u64> = (1..=8).map(|n| retry(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry(u32::MAX), LONGEST_RETRY);
    }

    #[test]
    fn a_token_asks_for_a_fetch_at_most_once_per_cooldown_and_waits_a_bounded_time() {
        let set = KeySet::new("https://example.com/jwks", None);
        // Nobody fetches here: the first fetch (asked for at start) never ends.
        let started = Instant::now();
        assert!(set.refresh(Duration::from_millis(50)).is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(set.status().contains("being fetched"), "{}", set.status());
        set.end(Err(FetchError::Status(503)));
        assert!(
            set.status().contains("could not be fetched (HTTP 503)"),
            "{}",
            set.status()
        );
        // A token asks: one request for the fetcher, and it is busy.
        let _ = set.refresh(Duration::ZERO);
        assert!(set.wakes.try_recv().is_ok());
        set.begin();
        set.end(Ok(Vec::new()));
        // Another within the cooldown asks for nothing and does not wait.
        let started = Instant::now();
        let _ = set.refresh(Duration::from_secs(5));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(set.wakes.try_recv().is_err());
        assert!(
            set.status().contains("at most every 30 s"),
            "{}",
            set.status()
        );
    }
}
