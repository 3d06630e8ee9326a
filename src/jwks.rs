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
//! fetched before.
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

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, at, bounded, select};

use crate::keys::{JwtKey, KeySetKeys};
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
/// Why a fetch ended when the hub stopped.
const STOPPED: &str = "the hub is stopping";

/// The cache of an identity provider's keys, shared by every thread that
/// checks tokens and the fetcher thread that fills it.
#[derive(Debug)]
pub(crate) struct KeySet {
    url: String,
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
    error: Option<String>,
}

impl KeySet {
    /// An empty set of the keys at `url`, to be fetched as soon as the
    /// fetcher starts.
    pub(crate) fn new(url: &str) -> KeySet {
        let (wake, wakes) = bounded(1);
        KeySet {
            url: url.to_owned(),
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
    fn end(&self, result: Result<Vec<JwtKey>, String>) {
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
pub(crate) fn start(set: Arc<KeySet>) -> io::Result<Fetcher> {
    if is_plain(&set.url) {
        log::warn!(
            "the JWKS URL {} is plain http: only for tests on this machine; use https",
            set.url
        );
    }
    let client = Client::new(&set.url);
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
            set.end(Err(STOPPED.into()));
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
                next = now + retry(failures);
                warn_throttled!("JWKS: cannot fetch {}: {err}", set.url);
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

/// The HTTP client of the fetcher thread.
#[derive(Debug, Clone)]
struct Client {
    #[cfg(feature = "jwks")]
    agent: ureq::Agent,
}

impl Client {
    #[cfg(feature = "jwks")]
    fn new(url: &str) -> Client {
        let loopback = is_plain(url);
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .timeout_resolve(Some(RESOLVE_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .http_status_as_error(false)
            .https_only(!loopback)
            .max_redirects(5)
            .user_agent(concat!("wshub/", env!("CARGO_PKG_VERSION")));
        if loopback {
            // A test's server on this machine: never through a proxy.
            config = config.proxy(None);
        }
        Client {
            agent: config.build().new_agent(),
        }
    }

    /// Fetches and parses the key set, with its response's `max-age`.
    #[cfg(feature = "jwks")]
    fn fetch(&self, url: &str) -> Result<(KeySetKeys, Option<Duration>), String> {
        let mut response = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|err| err.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
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
            .map_err(|err| format!("reading the body: {err}"))?;
        let keys = crate::keys::parse_key_set(&text)
            .map_err(|err| format!("not a usable key set: {err}"))?;
        Ok((keys, max_age))
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
    fn new(_url: &str) -> Client {
        Client {}
    }

    #[cfg(not(feature = "jwks"))]
    fn interrupt(&self) {}

    #[cfg(not(feature = "jwks"))]
    fn fetch(&self, _url: &str) -> Result<(KeySetKeys, Option<Duration>), String> {
        Err("this build has no JWKS fetcher (the `jwks` feature)".into())
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
        let set = Arc::new(KeySet::new(&url));
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
        assert!(set.status().contains(STOPPED), "{}", set.status());
    }

    #[test]
    fn failed_fetches_are_retried_sooner_then_every_30_seconds() {
        let waits: Vec<u64> = (1..=8).map(|n| retry(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(retry(u32::MAX), LONGEST_RETRY);
    }

    #[test]
    fn a_token_asks_for_a_fetch_at_most_once_per_cooldown_and_waits_a_bounded_time() {
        let set = KeySet::new("https://example.com/jwks");
        // Nobody fetches here: the first fetch (asked for at start) never ends.
        let started = Instant::now();
        assert!(set.refresh(Duration::from_millis(50)).is_empty());
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(set.status().contains("being fetched"), "{}", set.status());
        set.end(Err("connection refused".into()));
        assert!(
            set.status().contains("connection refused"),
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
