//! The command line of the `wshub` binary: flags, `WSHUB_*` environment
//! variables and their defaults, turned into a [`Config`].
//!
//! Pure code (arguments and environment in, settings or an error out), run
//! once on the main thread. Every setting is one entry of [`FLAGS`]; the
//! parser, the environment and `--help` all read that table, so a flag is
//! added in one place.

use std::ffi::OsString;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use wshub::{Config, Secret};

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Run a hub with these settings.
    Run(Box<Options>),
    /// Print the help text.
    Help,
    /// Print the version.
    Version,
    /// Validate the settings and print them, secrets masked (`--check-config`).
    Check(Box<Options>),
}

/// Settings for a run.
#[derive(Debug)]
pub struct Options {
    pub config: Config,
    pub log_level: LevelFilter,
    /// On SIGTERM or SIGINT, how long `GET /ready` answers 503 before the
    /// hub shuts down (see [`wshub::Handle::drain`]).
    pub drain_delay: Duration,
}

/// A command line that cannot be run; the binary prints it and exits with 2.
#[derive(Debug, PartialEq, Eq)]
pub enum CliError {
    /// A flag nobody knows.
    UnknownFlag(String),
    /// A flag that needs a value got none.
    MissingValue(&'static str),
    /// A value that does not fit its flag.
    InvalidValue {
        flag: &'static str,
        value: String,
        expected: &'static str,
    },
    /// A switch (like `--allow-client-publish`) given a value with `=`.
    UnexpectedValue(&'static str),
    /// Settings that parse but do not fit together.
    Invalid(String),
    /// A file named by a flag cannot be used.
    File { flag: &'static str, reason: String },
    /// An argument or variable that is not UTF-8 (shown lossily).
    NotUnicode(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownFlag(flag) => write!(f, "unknown option {flag} (see --help)"),
            CliError::MissingValue(flag) => write!(f, "{flag} needs a value (see --help)"),
            CliError::InvalidValue {
                flag,
                value,
                expected,
            } => {
                write!(f, "invalid value {value:?} for {flag}: expected {expected}")
            }
            CliError::UnexpectedValue(flag) => write!(f, "{flag} takes no value"),
            CliError::Invalid(reason) => f.write_str(reason),
            CliError::File { flag, reason } => write!(f, "{flag}: {reason}"),
            CliError::NotUnicode(what) => write!(f, "{what} is not valid UTF-8"),
        }
    }
}

/// Where a flag is listed in `--help`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Server,
    Auth,
    Limits,
}

/// What the flags build up before it becomes [`Options`].
#[derive(Default)]
struct Settings {
    config: Config,
    log_level: Option<LevelFilter>,
    drain_delay: Option<Duration>,
    origins_from_env: Vec<String>,
    origins_from_flags: Vec<String>,
    proxies_from_env: Option<Vec<IpAddr>>,
    proxies_from_flags: Vec<IpAddr>,
    endpoints_from_env: Option<Vec<wshub::Endpoint>>,
    endpoints_from_flags: Vec<wshub::Endpoint>,
    history_off_from_env: Option<Vec<String>>,
    history_off_from_flags: Vec<String>,
    keys_from_env: Option<Vec<wshub::JwtKey>>,
    keys_from_flags: Vec<wshub::JwtKey>,
    audiences_from_env: Option<Vec<String>>,
    audiences_from_flags: Vec<String>,
}

/// Applies one flag's value (`from_env` when it came from its variable).
type Apply = fn(&mut Settings, &'static str, String, bool) -> Result<(), CliError>;

/// One setting: flag, environment variable, value, help and what it sets.
struct Flag {
    name: &'static str,
    env: &'static str,
    /// The value's placeholder in `--help`; `None` for a switch.
    value: Option<&'static str>,
    section: Section,
    help: &'static str,
    /// The default as `--help` shows it, if it has one worth showing.
    default: Option<&'static str>,
    apply: Apply,
}

/// The table of [`Flag`]s, by section. Each entry: the flag, its value's
/// placeholder (`-`: a switch), the default `--help` shows (`-`: none worth
/// showing) and its variable; how its value applies; what it does.
macro_rules! flags {
    ( $( $section:ident: [
        $( $name:literal $value:tt $default:tt $env:ident, $apply:expr, $help:expr; )*
    ] )* ) => {
        &[ $( $( Flag {
            name: $name,
            env: stringify!($env),
            value: given!($value),
            section: Section::$section,
            help: $help,
            default: given!($default),
            apply: $apply,
        }, )* )* ]
    };
}

/// `-` for nothing, or a text.
macro_rules! given {
    (-) => {
        None
    };
    ($text:literal) => {
        Some($text)
    };
}

/// How a flag's value sets its field of the [`Config`]: as given (text),
/// through a parser (`number`, `seconds`...), and into an `Option` with
/// `Some`.
macro_rules! set {
    ($field:ident) => {
        |s, _, v, _| {
            s.config.$field = v;
            Ok(())
        }
    };
    ($field:ident: $parse:ident) => {
        |s, f, v, _| {
            s.config.$field = $parse(f, &v)?;
            Ok(())
        }
    };
    ($field:ident: Some $parse:ident) => {
        |s, f, v, _| {
            s.config.$field = Some($parse(f, &v)?);
            Ok(())
        }
    };
}

/// Every setting of the binary. The parser, the environment and `--help`
/// read it; `--help` lists the sections in this order.
#[rustfmt::skip]
const FLAGS: &[Flag] = flags! {
    Server: [
        "--config" "<FILE>" - WSHUB_CONFIG,
            |_, _, _, _| Ok(()),
            "A TOML file of settings, a key per flag (port = 3000); variables and flags win over it";
        "--check-config" - - WSHUB_CHECK_CONFIG,
            |_, _, _, _| Ok(()),
            "Check the settings, print them (secrets masked) and exit: 0 if they are good, 2 if not";
        "--host" "<ADDR>" "127.0.0.1" WSHUB_HOST,
            set!(host),
            "Interface to listen on";
        "--port" "<PORT>" "3000" WSHUB_PORT,
            set!(port: number),
            "TCP port, 0 for any free one";
        "--path" "<PATH>" "/ws" WSHUB_PATH,
            set!(path),
            "WebSocket endpoint (/ works too)";
        "--tls-cert" "<FILE>" - WSHUB_TLS_CERT,
            set!(tls_cert: Some file),
            concat!("PEM certificate chain (the hub's first): the port then speaks wss:// and ",
                "https:// only, TLS 1.2 and 1.3; SIGHUP reads it again");
        "--tls-key" "<FILE>" - WSHUB_TLS_KEY,
            set!(tls_key: Some file),
            "PEM private key of --tls-cert (PKCS#8, RSA or SEC1)";
        "--heartbeat-interval" "<SECS>" "30" WSHUB_HEARTBEAT_INTERVAL,
            set!(heartbeat_interval: seconds),
            "Protocol Ping period";
        "--client-timeout" "<SECS>" "60" WSHUB_CLIENT_TIMEOUT,
            set!(client_timeout: seconds_or_zero),
            "Silence (and a Ping unanswered for this less the heartbeat) before a client is terminated; 0 keeps them (debugging)";
        "--allow-client-publish" - - WSHUB_ALLOW_CLIENT_PUBLISH,
            set!(allow_client_publish: boolean),
            "Let clients publish to channels and sessions";
        "--presence-grace" "<SECS>" "2" WSHUB_PRESENCE_GRACE,
            set!(presence_grace: seconds_or_zero),
            "Wait before announcing a user offline; a reconnection cancels it";
        "--writer-threads" "<N>" "one per CPU" WSHUB_WRITER_THREADS,
            set!(writer_threads: number),
            "Threads that write to every client, non-blocking";
        "--envelope" "<NAME>" "standard" WSHUB_ENVELOPE,
            set!(envelope: envelope),
            "How messages look: standard, flat or payload (a client may ask with ?envelope=)";
        "--endpoint" "<PATH=NAME>" - WSHUB_ENDPOINTS,
            endpoints,
            concat!("One more WebSocket path with its own envelope, like /agents=payload; ",
                "repeat for more (the variable: comma-separated)");
        "--compression" - - WSHUB_COMPRESSION,
            set!(compression: boolean),
            "Offer permessage-deflate to clients that ask for it (CPU for bandwidth)";
        "--compression-min-size" "<BYTES>" "256" WSHUB_COMPRESSION_MIN_SIZE,
            set!(compression_min_size: number),
            "Messages shorter than this go uncompressed";
        "--json-heartbeat" - - WSHUB_JSON_HEARTBEAT,
            set!(json_heartbeat: boolean),
            "Also send {\"type\":\"heartbeat\"} messages every heartbeat interval";
        "--batch-window" "<SECS>" "0.1" WSHUB_BATCH_WINDOW,
            set!(batch_window: seconds),
            "How long batched publications wait for others of their target";
        "--batch-max" "<N>" "64" WSHUB_BATCH_MAX,
            set!(batch_max: number),
            "A batch of this many messages goes at once";
        "--batch-type" "<TYPE>" "batch_update" WSHUB_BATCH_TYPE,
            set!(batch_type),
            "The type of a batch message (batchUpdate for the Cursor Chat Agent clients)";
        "--request-queue" "<N>" "1024" WSHUB_REQUEST_QUEUE,
            set!(request_queue: number),
            "Application requests waiting for the embedding program, then the error busy";
        "--history-size" "<N>" "1000" WSHUB_HISTORY_SIZE,
            set!(history_size: number),
            "Publications kept per stream for clients that come back (0: none)";
        "--history-ttl" "<SECS>" "300" WSHUB_HISTORY_TTL,
            set!(history_ttl: seconds),
            "How long a publication is kept for recovery";
        "--history-bytes" "<BYTES>" "67108864" WSHUB_HISTORY_BYTES,
            set!(max_history_bytes: number),
            "Most bytes of history, every stream together (the oldest go first)";
        "--history-off" "<PATTERN>" - WSHUB_HISTORY_OFF,
            history_off,
            concat!("Channels that keep no history, like typing-*; session:* and user:* ",
                "too; repeat for more (the variable: comma-separated)");
        "--redis" "<URL>" "none: this hub alone" WSHUB_REDIS,
            redis,
            concat!("A Redis shared with other hubs (redis://host:6379/0, rediss:// for TLS): ",
                "together they serve one set of clients");
        "--redis-ca" "<FILE>" "the system's authorities" WSHUB_REDIS_CA,
            redis_ca,
            concat!("PEM file of the CAs a rediss:// Redis server's certificate must chain to ",
                "(a Redis with a certificate of its own CA); replaces the system's authorities");
        "--redis-prefix" "<PREFIX>" "wshub" WSHUB_REDIS_PREFIX,
            set!(redis_prefix),
            "The prefix of the hubs' keys and channels in Redis";
        "--redis-timeout" "<SECS>" "5" WSHUB_REDIS_TIMEOUT,
            set!(redis_timeout: seconds),
            "How long Redis may take to answer before it is taken for gone (a stall is a fault)";
        "--redis-required" - - WSHUB_REDIS_REQUIRED,
            set!(redis_required: boolean),
            "Refuse to start (exit 1) when --redis does not answer within --redis-timeout";
        "--drain-delay" "<SECS>" "0" WSHUB_DRAIN_DELAY,
            drain_delay,
            "On SIGTERM, answer GET /ready with 503 this long (clients stay) before shutting down";
        "--log-level" "<LEVEL>" "info" WSHUB_LOG_LEVEL,
            log_level,
            "off, error, warn, info, debug or trace";
    ]
    Auth: [
        "--tokens" "<FILE>" - WSHUB_TOKENS,
            tokens,
            "JSON file: {\"<token>\": {\"userId\", \"admin\"?, \"channels\"?, \"publish\"?}}";
        "--jwt-secret" "<SECRET>" - WSHUB_JWT_SECRET,
            set!(jwt_secret: Some secret),
            "HS256 secret for JWTs";
        "--jwt-secret-file" "<FILE>" - WSHUB_JWT_SECRET_FILE,
            set!(jwt_secret: Some secret_file),
            "The same, read from a file (keeps it out of ps)";
        "--jwt-public-key" "<[KID=]FILE>" - WSHUB_JWT_PUBLIC_KEYS,
            public_keys,
            concat!("An identity provider's public key for RS/PS/ES/EdDSA JWTs: PEM (public ",
                "key or certificate) or JWK/JWKS JSON, KID= to name its kid; repeat for more ",
                "(the variable: comma-separated)");
        "--jwks-url" "<URL>" - WSHUB_JWKS_URL,
            jwks_url,
            concat!("An identity provider's JWK Set, fetched over HTTPS and kept fresh ",
                "(https://TENANT.auth0.com/.well-known/jwks.json)");
        "--jwks-ca" "<FILE>" "the built-in roots" WSHUB_JWKS_CA,
            jwks_ca,
            concat!("PEM file of the CAs the --jwks-url server's certificate must chain to ",
                "(a provider behind a company CA); replaces the built-in roots");
        "--jwt-audience" "<AUD>" "not checked" WSHUB_JWT_AUDIENCES,
            audiences,
            "A JWT's aud must name one of these; repeat or comma-separate for more";
        "--jwt-issuer" "<ISS>" "not checked" WSHUB_JWT_ISSUER,
            jwt_issuer,
            "A JWT's iss must be this (https://TENANT.auth0.com/)";
        "--jwt-leeway" "<SECS>" "30" WSHUB_JWT_LEEWAY,
            set!(jwt_leeway: seconds_or_zero),
            "Clock skew allowed on exp and nbf";
        "--admin-token" "<TOKEN>" - WSHUB_ADMIN_TOKEN,
            set!(admin_token: Some secret),
            "Bearer token for /api/ws/stats, /metrics, /api/publish";
        "--admin-token-file" "<FILE>" - WSHUB_ADMIN_TOKEN_FILE,
            set!(admin_token: Some secret_file),
            "The same, read from a file";
        "--no-admin-ui" - - WSHUB_NO_ADMIN_UI,
            |s, f, v, _| {
                s.config.admin_ui = !boolean(f, &v)?;
                Ok(())
            },
            "Serve no dashboard: GET /admin and its stream answer 404";
        "--allow-anonymous" - - WSHUB_ALLOW_ANONYMOUS,
            set!(allow_anonymous: boolean),
            "With auth on, let clients without a token use public channels";
        "--allowed-origin" "<ORIGIN>" "any" WSHUB_ALLOWED_ORIGINS,
            origins,
            concat!("Browser origin allowed to connect; repeat for more (the variable: ",
                "comma-separated); others get 403");
    ]
    Limits: [
        "--max-connections" "<N>" "10000" WSHUB_MAX_CONNECTIONS,
            set!(max_connections: number),
            "Most WebSocket clients at once";
        "--max-connections-per-user" "<N>" "100" WSHUB_MAX_CONNECTIONS_PER_USER,
            set!(max_connections_per_user: number),
            "Most connections of one user";
        "--max-connections-per-ip" "<N>" "1000" WSHUB_MAX_CONNECTIONS_PER_IP,
            set!(max_connections_per_ip: number),
            "Most connections from one address, 0 for none";
        "--max-handshakes" "<N>" "256" WSHUB_MAX_HANDSHAKES,
            set!(max_handshakes: number),
            "Connections still sending their request, at once";
        "--max-handshakes-per-ip" "<N>" "32" WSHUB_MAX_HANDSHAKES_PER_IP,
            set!(max_handshakes_per_ip: number),
            "The same per address";
        "--trusted-proxy" "<ADDR>" "127.0.0.1, ::1" WSHUB_TRUSTED_PROXIES,
            proxies,
            concat!("A reverse proxy whose Forwarded/X-Forwarded-For names the client (itself exempt ",
                "from per-address limits); repeat for more (the variable: comma-separated)");
        "--max-threads" "<N>" "max-connections + max-handshakes, within what the kernel allows" WSHUB_MAX_THREADS,
            set!(max_threads: Some number),
            "Most connection threads (a reader per client, plus handshakes)";
        "--max-message-size" "<BYTES>" "65536" WSHUB_MAX_MESSAGE_SIZE,
            set!(max_message_size: number),
            "Largest client message";
        "--max-queue" "<N>" "4096" WSHUB_MAX_QUEUE,
            set!(max_queue: number),
            "Messages queued per client before it counts as too slow";
        "--max-queue-bytes" "<BYTES>" "8388608" WSHUB_MAX_QUEUE_BYTES,
            set!(max_queue_bytes: number),
            "Bytes queued per client before it counts as too slow";
        "--max-inbox-bytes" "<BYTES>" "33554432" WSHUB_MAX_INBOX_BYTES,
            set!(max_inbox_bytes: number),
            "Client messages waiting for the router, all clients together";
        "--max-subscriptions" "<N>" "128" WSHUB_MAX_SUBSCRIPTIONS,
            set!(max_subscriptions: number),
            "Channels and sessions per client";
        "--max-sessions-per-user" "<N>" "1000" WSHUB_MAX_SESSIONS_PER_USER,
            set!(max_sessions_per_user: number),
            "Sessions one user may own (auth on)";
        "--rate-limit" "<N>" "50" WSHUB_RATE_LIMIT,
            set!(rate_limit: number),
            "Messages per client per window, sustained; over it: rate_limited, 0 for no limit";
        "--rate-window" "<SECS>" "1" WSHUB_RATE_WINDOW,
            set!(rate_window: seconds),
            "The rate limit's window";
        "--rate-burst" "<N>" "200" WSHUB_RATE_BURST,
            set!(rate_burst: number),
            "Messages per client at once, before the rate applies";
        "--handshake-timeout" "<SECS>" "10" WSHUB_HANDSHAKE_TIMEOUT,
            set!(handshake_timeout: seconds),
            "Time to send a whole HTTP request";
        "--max-header-size" "<BYTES>" "8192" WSHUB_MAX_HEADER_SIZE,
            set!(max_header_size: number),
            "Largest HTTP request head";
        "--max-body-size" "<BYTES>" "1048576" WSHUB_MAX_BODY_SIZE,
            set!(max_body_size: number),
            "Largest POST /api/publish body";
        "--thread-stack-size" "<BYTES>" "65536" WSHUB_THREAD_STACK_SIZE,
            set!(thread_stack_size: number),
            "Stack of each client's reader thread";
        "--read-buffer-size" "<BYTES>" "4096" WSHUB_READ_BUFFER_SIZE,
            set!(read_buffer_size: number),
            "Each busy connection's read buffer (an idle one keeps 512 bytes)";
    ]
};

/// `--endpoint PATH=NAME` (repeatable) or `WSHUB_ENDPOINTS` (comma-separated).
fn endpoints(s: &mut Settings, f: &'static str, v: String, from_env: bool) -> Result<(), CliError> {
    let mut endpoints = Vec::new();
    for spec in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (path, name) = spec.split_once('=').ok_or_else(|| CliError::InvalidValue {
            flag: f,
            value: spec.to_owned(),
            expected: "PATH=ENVELOPE, like /agents=payload",
        })?;
        endpoints.push(wshub::Endpoint::new(path, envelope(f, name)?));
    }
    if from_env {
        s.endpoints_from_env = Some(endpoints);
    } else {
        s.endpoints_from_flags.extend(endpoints);
    }
    Ok(())
}

/// `--history-off PATTERN` (repeatable) or `WSHUB_HISTORY_OFF` (comma-separated).
fn history_off(
    s: &mut Settings,
    _: &'static str,
    v: String,
    from_env: bool,
) -> Result<(), CliError> {
    let patterns = v
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    if from_env {
        s.history_off_from_env = Some(patterns.collect());
    } else {
        s.history_off_from_flags.extend(patterns);
    }
    Ok(())
}

/// `--redis URL`; empty for none.
fn redis(s: &mut Settings, _: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.config.redis = Some(v).filter(|v| !v.is_empty());
    Ok(())
}

/// `--jwt-public-key [KID=]FILE` (repeatable) or `WSHUB_JWT_PUBLIC_KEYS`
/// (comma-separated).
fn public_keys(
    s: &mut Settings,
    f: &'static str,
    v: String,
    from_env: bool,
) -> Result<(), CliError> {
    let mut keys = Vec::new();
    for spec in v.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        keys.extend(key_file(f, spec)?);
    }
    if from_env {
        s.keys_from_env = Some(keys);
    } else {
        s.keys_from_flags.extend(keys);
    }
    Ok(())
}

/// `--jwks-url URL`; empty for none.
fn jwks_url(s: &mut Settings, _: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.config.jwks_url = Some(v).filter(|v| !v.is_empty());
    Ok(())
}

/// `--redis-ca FILE`; empty for none. The file is checked with the rest of
/// the configuration.
fn redis_ca(s: &mut Settings, _: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.config.redis_ca = Some(v).filter(|v| !v.is_empty()).map(PathBuf::from);
    Ok(())
}

/// `--jwks-ca FILE`; empty for none. The file is checked with the rest of
/// the settings.
fn jwks_ca(s: &mut Settings, _: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.config.jwks_ca = Some(v).filter(|v| !v.is_empty()).map(PathBuf::from);
    Ok(())
}

/// `--jwt-audience AUD` (repeatable, or comma-separated) or
/// `WSHUB_JWT_AUDIENCES` (comma-separated).
fn audiences(s: &mut Settings, _: &'static str, v: String, from_env: bool) -> Result<(), CliError> {
    let audiences = v
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    if from_env {
        s.audiences_from_env = Some(audiences.collect());
    } else {
        s.audiences_from_flags.extend(audiences);
    }
    Ok(())
}

/// `--jwt-issuer ISS`; empty for none.
fn jwt_issuer(s: &mut Settings, _: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.config.jwt_issuer = Some(v).filter(|v| !v.is_empty());
    Ok(())
}

/// `--log-level LEVEL`: the binary's own setting, not the hub's.
fn log_level(s: &mut Settings, f: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.log_level = Some(level(f, &v)?);
    Ok(())
}

/// `--drain-delay SECS`: the binary's own setting, not the hub's.
fn drain_delay(s: &mut Settings, f: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.drain_delay = Some(seconds_or_zero(f, &v)?);
    Ok(())
}

/// `--tokens FILE`.
fn tokens(s: &mut Settings, f: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.config.tokens = wshub::load_tokens(Path::new(&v)).map_err(|err| CliError::File {
        flag: f,
        reason: err.to_string(),
    })?;
    Ok(())
}

/// `--allowed-origin ORIGIN` (repeatable) or `WSHUB_ALLOWED_ORIGINS`
/// (comma-separated).
fn origins(s: &mut Settings, _: &'static str, v: String, from_env: bool) -> Result<(), CliError> {
    if from_env {
        s.origins_from_env = v
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect();
    } else {
        s.origins_from_flags.push(v);
    }
    Ok(())
}

/// `--trusted-proxy ADDR` (repeatable) or `WSHUB_TRUSTED_PROXIES`
/// (comma-separated; empty: none).
fn proxies(s: &mut Settings, f: &'static str, v: String, from_env: bool) -> Result<(), CliError> {
    let addrs = addresses(f, &v)?;
    if from_env {
        s.proxies_from_env = Some(addrs);
    } else {
        s.proxies_from_flags.extend(addrs);
    }
    Ok(())
}

/// The `--help` text, from [`FLAGS`].
pub fn help() -> String {
    const WIDTH: usize = 32;
    let mut out = String::from(
        "wshub: a real-time WebSocket hub\n\nUSAGE:\n    wshub [OPTIONS]\n\n\
         Every option can also be set with the environment variable shown; a flag\n\
         wins over its variable. Durations are in seconds (decimals allowed).\n",
    );
    for (section, title) in [
        (Section::Server, "SERVER:"),
        (
            Section::Auth,
            "AUTH (any of --tokens, --jwt-secret, --jwt-public-key or --jwks-url turns client auth on):",
        ),
        (Section::Limits, "LIMITS:"),
    ] {
        out.push_str(&format!("\n{title}\n"));
        for flag in FLAGS.iter().filter(|f| f.section == section) {
            let usage = match flag.value {
                Some(value) => format!("{} {value}", flag.name),
                None => flag.name.to_owned(),
            };
            let mut tail = format!("[env: {}]", flag.env);
            if let Some(default) = flag.default {
                tail.push_str(&format!(" [default: {default}]"));
            }
            out.push_str(&format!("    {usage:<WIDTH$}{}\n", flag.help));
            out.push_str(&format!("    {:<WIDTH$}{tail}\n", ""));
        }
    }
    out.push_str("\n    -h, --help                      Print this help\n");
    out.push_str("    -V, --version                   Print the version\n");
    out
}

/// Parses the arguments (without the program name) and the environment.
///
/// # Errors
///
/// A [`CliError`] naming the flag and what it expected.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Command, CliError> {
    let env = |name: &str| {
        env(name)
            .map(|value| {
                value
                    .into_string()
                    .map_err(|_| CliError::NotUnicode(format!("the variable {name}")))
            })
            .transpose()
    };
    let args = args
        .into_iter()
        .map(|arg| {
            arg.into_string().map_err(|bad| {
                CliError::NotUnicode(format!("the argument {}", bad.to_string_lossy()))
            })
        })
        .collect::<Result<Vec<String>, CliError>>()?;
    // The config file first, the environment over it, then the flags.
    let mut given: Vec<Given> = Vec::new();
    if let Some(path) = config_path(&args, env(CONFIG.env)?) {
        given.extend(config_file(&path)?);
    }
    for flag in FLAGS {
        if let Some(value) = env(flag.env)? {
            given.push((flag, Some(value), true));
        }
    }
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            _ => {}
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let flag = FLAGS
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| CliError::UnknownFlag(arg.clone()))?;
        let value = match (flag.value.is_some(), inline) {
            (true, Some(value)) => Some(value),
            (true, None) => Some(args.next().ok_or(CliError::MissingValue(flag.name))?),
            (false, Some(_)) => return Err(CliError::UnexpectedValue(flag.name)),
            (false, None) => None,
        };
        given.push((flag, value, false));
    }

    let check = given
        .iter()
        .rev()
        .find(|(flag, _, _)| flag.name == CHECK.name)
        .map(|(flag, value, _)| value.as_deref().map_or(Ok(true), |v| boolean(flag.name, v)))
        .transpose()?
        .unwrap_or(false);
    let mut settings = Settings::default();
    for (flag, value, from_env) in given {
        let value = value.unwrap_or_else(|| "true".to_owned());
        (flag.apply)(&mut settings, flag.name, value, from_env)?;
    }
    let Settings {
        mut config,
        log_level,
        drain_delay,
        origins_from_env,
        origins_from_flags,
        proxies_from_env,
        proxies_from_flags,
        endpoints_from_env,
        endpoints_from_flags,
        history_off_from_env,
        history_off_from_flags,
        keys_from_env,
        keys_from_flags,
        audiences_from_env,
        audiences_from_flags,
    } = settings;
    if !keys_from_flags.is_empty() {
        config.jwt_public_keys = keys_from_flags;
    } else if let Some(keys) = keys_from_env {
        config.jwt_public_keys = keys;
    }
    if !audiences_from_flags.is_empty() {
        config.jwt_audiences = audiences_from_flags;
    } else if let Some(audiences) = audiences_from_env {
        config.jwt_audiences = audiences;
    }
    if !history_off_from_flags.is_empty() {
        config.history_off = history_off_from_flags;
    } else if let Some(patterns) = history_off_from_env {
        config.history_off = patterns;
    }
    if !endpoints_from_flags.is_empty() {
        config.endpoints = endpoints_from_flags;
    } else if let Some(endpoints) = endpoints_from_env {
        config.endpoints = endpoints;
    }
    config.allowed_origins = if origins_from_flags.is_empty() {
        origins_from_env
    } else {
        origins_from_flags
    };
    if !proxies_from_flags.is_empty() {
        config.trusted_proxies = proxies_from_flags;
    } else if let Some(proxies) = proxies_from_env {
        config.trusted_proxies = proxies;
    }
    config
        .validate()
        .map_err(|err| CliError::Invalid(err.to_string()))?;
    let options = Box::new(Options {
        config,
        log_level: log_level.unwrap_or(LevelFilter::Info),
        drain_delay: drain_delay.unwrap_or(Duration::ZERO),
    });
    Ok(match check {
        true => Command::Check(options),
        false => Command::Run(options),
    })
}

/// A flag as given: its row, its value (none for a switch), and whether it
/// came from a variable (or the config file) rather than the command line.
type Given = (&'static Flag, Option<String>, bool);

/// The `--config` and `--check-config` rows of [`FLAGS`].
const CONFIG: &Flag = &FLAGS[0];
const CHECK: &Flag = &FLAGS[1];

/// The file named by the last `--config` flag, else by `WSHUB_CONFIG`.
fn config_path(args: &[String], from_env: Option<String>) -> Option<String> {
    let mut path = from_env.filter(|p| !p.is_empty());
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == CONFIG.name {
            path = args.next().cloned();
        } else if let Some(value) = arg.strip_prefix("--config=") {
            path = Some(value.to_owned());
        }
    }
    path
}

/// The settings of a `--config` file, each as its flag's value (given as
/// a variable would be: a list is comma-separated).
fn config_file(path: &str) -> Result<Vec<Given>, CliError> {
    let fail = |reason: String| CliError::File {
        flag: CONFIG.name,
        reason: format!("{path}: {reason}"),
    };
    let text = std::fs::read_to_string(path).map_err(|err| fail(err.to_string()))?;
    let entries = crate::config_file::read(&text).map_err(fail)?;
    entries
        .into_iter()
        .map(|entry| {
            let flag = FLAGS
                .iter()
                .find(|f| f.name.strip_prefix("--") == Some(entry.key.as_str()))
                .filter(|f| f.name != CONFIG.name && f.name != CHECK.name)
                .ok_or_else(|| {
                    fail(format!(
                        "line {}: unknown key {:?} (keys are the flags' names without --, see --help)",
                        entry.line, entry.key
                    ))
                })?;
            Ok((flag, Some(entry.value), true))
        })
        .collect()
}

/// The settings of `options` as `--check-config` prints them: secrets
/// (tokens, the admin token, the JWT secret, a Redis password) masked.
pub fn describe(options: &Options) -> String {
    let mut config = options.config.clone();
    config.redis = config.redis.as_deref().map(masked_url);
    format!(
        "log level: {}
drain delay: {:?}
{config:#?}
",
        options.log_level, options.drain_delay
    )
}

/// A URL with the password of its user part (`redis://:pw@host`) masked.
fn masked_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Comma-separated IP addresses (empty for none).
fn addresses(flag: &'static str, value: &str) -> Result<Vec<IpAddr>, CliError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| CliError::InvalidValue {
                flag,
                value: a.to_owned(),
                expected: "an IP address, like 10.0.0.5 or ::1",
            })
        })
        .collect()
}

fn secret(flag: &'static str, value: &str) -> Result<Secret, CliError> {
    if value.trim().is_empty() {
        return Err(CliError::InvalidValue {
            flag,
            value: value.to_owned(),
            expected: "a non-empty secret",
        });
    }
    Ok(Secret::new(value))
}

/// The keys of `[KID=]FILE`: a `KID=` before a file name (the part before
/// the first `=` holding no `/`) names the key's `kid`.
fn key_file(flag: &'static str, spec: &str) -> Result<Vec<wshub::JwtKey>, CliError> {
    let (kid, path) = match spec.split_once('=') {
        Some((kid, path)) if !kid.contains('/') => (Some(kid), path),
        _ => (None, spec),
    };
    let fail = |reason: String| CliError::File { flag, reason };
    if kid.is_some_and(str::is_empty) || path.is_empty() {
        return Err(CliError::InvalidValue {
            flag,
            value: spec.to_owned(),
            expected: "FILE or KID=FILE",
        });
    }
    let keys = wshub::JwtKey::load(Path::new(path)).map_err(|err| match err {
        wshub::Error::Config { reason, .. } => fail(reason),
        other => fail(other.to_string()),
    })?;
    match kid {
        None => Ok(keys),
        Some(kid) if keys.len() == 1 => Ok(keys.into_iter().map(|k| k.with_kid(kid)).collect()),
        Some(_) => Err(fail(format!(
            "{path} holds {} keys: KID= names one key",
            keys.len()
        ))),
    }
}

/// A secret read from a file, without its trailing newline.
fn secret_file(flag: &'static str, path: &str) -> Result<Secret, CliError> {
    let text = std::fs::read_to_string(path).map_err(|err| CliError::File {
        flag,
        reason: format!("{path}: {err}"),
    })?;
    let secret = text.trim_end_matches(['\r', '\n']);
    if secret.trim().is_empty() {
        return Err(CliError::File {
            flag,
            reason: format!("{path} is empty"),
        });
    }
    Ok(Secret::new(secret))
}

/// A file's path (read when the hub starts).
fn file(flag: &'static str, value: &str) -> Result<std::path::PathBuf, CliError> {
    if value.trim().is_empty() {
        return Err(CliError::InvalidValue {
            flag,
            value: value.to_owned(),
            expected: "a file's path",
        });
    }
    Ok(value.into())
}

fn number<T: std::str::FromStr>(flag: &'static str, value: &str) -> Result<T, CliError> {
    value.parse().map_err(|_| CliError::InvalidValue {
        flag,
        value: value.to_owned(),
        expected: "a whole number",
    })
}

fn seconds(flag: &'static str, value: &str) -> Result<Duration, CliError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0 * 365.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| CliError::InvalidValue {
            flag,
            value: value.to_owned(),
            expected: "a number of seconds above 0, like 30 or 0.5",
        })
}

fn seconds_or_zero(flag: &'static str, value: &str) -> Result<Duration, CliError> {
    match value.parse::<f64>() {
        Ok(0.0) => Ok(Duration::ZERO),
        _ => seconds(flag, value),
    }
}

fn envelope(flag: &'static str, value: &str) -> Result<wshub::Envelope, CliError> {
    value.parse().map_err(|_| CliError::InvalidValue {
        flag,
        value: value.to_owned(),
        expected: wshub::Envelope::NAMES,
    })
}

fn boolean(flag: &'static str, value: &str) -> Result<bool, CliError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(CliError::InvalidValue {
            flag,
            value: value.to_owned(),
            expected: "true or false",
        }),
    }
}

fn level(flag: &'static str, value: &str) -> Result<LevelFilter, CliError> {
    value.parse().map_err(|_| CliError::InvalidValue {
        flag,
        value: value.to_owned(),
        expected: "off, error, warn, info, debug or trace",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, CliError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(args.iter().map(OsString::from), move |name| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    fn options(args: &[&str], env: &[(&str, &str)]) -> Options {
        match run(args, env) {
            Ok(Command::Run(options)) => *options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn no_arguments_give_the_default_dev_server() {
        let o = options(&[], &[]);
        assert_eq!(o.config.host, "127.0.0.1");
        assert_eq!(o.config.port, 3000);
        assert_eq!(o.config.path, "/ws");
        assert_eq!(o.log_level, LevelFilter::Info);
        assert!(!o.config.allow_client_publish);
    }

    #[test]
    fn flags_take_values_with_a_space_or_an_equals_sign() {
        let o = options(
            &[
                "--port",
                "4000",
                "--host=0.0.0.0",
                "--heartbeat-interval",
                "0.5",
                "--client-timeout=2.25",
                "--max-queue",
                "10",
                "--allow-client-publish",
                "--log-level",
                "debug",
            ],
            &[],
        );
        assert_eq!(o.config.port, 4000);
        assert_eq!(o.config.host, "0.0.0.0");
        assert_eq!(o.config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(o.config.client_timeout, Duration::from_millis(2250));
        assert_eq!(o.config.max_queue, 10);
        assert!(o.config.allow_client_publish);
        assert_eq!(o.log_level, LevelFilter::Debug);
    }

    #[test]
    fn environment_variables_apply_and_flags_win_over_them() {
        let env = [
            ("WSHUB_PORT", "5000"),
            ("WSHUB_PATH", "/live"),
            ("WSHUB_ALLOW_CLIENT_PUBLISH", "1"),
        ];
        let o = options(&[], &env);
        assert_eq!(o.config.port, 5000);
        assert_eq!(o.config.path, "/live");
        assert!(o.config.allow_client_publish);
        assert_eq!(options(&["--port", "6000"], &env).config.port, 6000);
    }

    #[test]
    fn arguments_and_variables_that_are_not_utf8_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'-', b'-', 0xff]);
        let err = parse([bad], |_| None).unwrap_err();
        assert!(matches!(err, CliError::NotUnicode(_)), "{err}");
        let err = parse(Vec::<OsString>::new(), |name| {
            (name == "WSHUB_PORT").then(|| OsString::from_vec(vec![0xff]))
        })
        .unwrap_err();
        assert_eq!(err, CliError::NotUnicode("the variable WSHUB_PORT".into()));
    }

    #[test]
    fn the_envelope_help_names_every_envelope() {
        assert!(help().contains(wshub::Envelope::NAMES), "{}", help());
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(
            run(&["--port", "1", "--help"], &[]),
            Ok(Command::Help)
        ));
        assert!(matches!(run(&["-V"], &[]), Ok(Command::Version)));
    }

    /// A file under the temp directory, removed when dropped.
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> TempFile {
            let path =
                std::env::temp_dir().join(format!("wshub-cli-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn auth_flags_load_tokens_and_secrets_from_files() {
        let tokens = TempFile::new(
            "tokens.json",
            r#"{"t1": {"userId": "alice", "channels": ["private-a*"], "publish": true}, "t2": {"userId": "ops", "admin": true}}"#,
        );
        let secret = TempFile::new("secret", "file-secret\n");
        let admin = TempFile::new("admin", "file-admin\n");
        let o = options(
            &[
                "--tokens",
                tokens.path(),
                "--jwt-secret-file",
                secret.path(),
                "--admin-token-file",
                admin.path(),
                "--jwt-leeway",
                "0",
                "--allow-anonymous",
                "--no-admin-ui",
                "--rate-limit",
                "0",
                "--max-subscriptions=5",
                "--thread-stack-size",
                "131072",
                "--read-buffer-size=8192",
            ],
            &[],
        );
        let c = &o.config;
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[&Secret::new("t1")].user_id, "alice");
        assert!(c.tokens[&Secret::new("t2")].admin);
        assert_eq!(c.jwt_secret.as_ref().unwrap().expose(), "file-secret");
        assert_eq!(c.admin_token.as_ref().unwrap().expose(), "file-admin");
        assert_eq!(c.jwt_leeway, Duration::ZERO);
        assert!(c.allow_anonymous);
        assert!(!c.admin_ui, "--no-admin-ui");
        assert!(
            options(&[], &[]).config.admin_ui,
            "the dashboard is on by default"
        );
        assert_eq!(c.rate_limit, 0);
        assert_eq!(c.max_subscriptions, 5);
        assert_eq!(c.thread_stack_size, 131_072);
        assert_eq!(c.read_buffer_size, 8192);
    }

    #[test]
    fn identity_provider_flags_load_keys_and_check_the_jwks_url() {
        let ed = r#"{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
        let one = TempFile::new("ed.json", ed);
        let set = TempFile::new(
            "set.json",
            &format!(r#"{{"keys": [{ed}, {{"kty": "oct", "k": "AA"}}, {ed}]}}"#),
        );
        let o = options(
            &[
                "--jwt-public-key",
                &format!("main={}", one.path()),
                "--jwt-public-key",
                set.path(),
                "--jwks-url",
                "https://tenant.auth0.com/.well-known/jwks.json",
                "--jwt-audience",
                "wshub,chat",
                "--jwt-audience=api",
                "--jwt-issuer",
                "https://tenant.auth0.com/",
            ],
            &[("WSHUB_JWT_AUDIENCES", "ignored")],
        );
        let c = &o.config;
        let kids: Vec<_> = c.jwt_public_keys.iter().map(|k| k.kid()).collect();
        assert_eq!(kids, [Some("main"), None, None]);
        assert_eq!(c.jwt_audiences, ["wshub", "chat", "api"]);
        assert_eq!(c.jwt_issuer.as_deref(), Some("https://tenant.auth0.com/"));
        assert_eq!(
            c.jwks_url.as_deref(),
            Some("https://tenant.auth0.com/.well-known/jwks.json")
        );
        let o = options(
            &[],
            &[
                (
                    "WSHUB_JWT_PUBLIC_KEYS",
                    &format!("{}, k2={}", one.path(), one.path()),
                ),
                ("WSHUB_JWT_AUDIENCES", "a, b"),
            ],
        );
        let kids: Vec<_> = o.config.jwt_public_keys.iter().map(|k| k.kid()).collect();
        assert_eq!(kids, [None, Some("k2")]);
        assert_eq!(o.config.jwt_audiences, ["a", "b"]);

        let garbage = TempFile::new(
            "garbage.pem",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        for (args, expected) in [
            (
                vec!["--jwt-public-key", "/nonexistent/key.pem"],
                "/nonexistent/key.pem",
            ),
            (vec!["--jwt-public-key", garbage.path()], "unreadable"),
            (
                vec!["--jwt-public-key", &format!("k={}", set.path())],
                "holds 2 keys",
            ),
        ] {
            let err = run(&args, &[]).unwrap_err();
            assert!(
                matches!(
                    err,
                    CliError::File {
                        flag: "--jwt-public-key",
                        ..
                    }
                ),
                "{args:?}: {err}"
            );
            assert!(err.to_string().contains(expected), "{args:?}: {err}");
        }
        for url in ["http://idp.example.com/jwks", "not a url"] {
            let err = run(&["--jwks-url", url], &[]).unwrap_err();
            assert!(
                matches!(&err, CliError::Invalid(reason) if reason.contains("jwks_url")),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn tls_takes_a_certificate_and_its_key_together() {
        let o = options(
            &["--tls-cert", "/etc/wshub/fullchain.pem"],
            &[("WSHUB_TLS_KEY", "/etc/wshub/key.pem")],
        );
        assert_eq!(
            o.config.tls_cert.as_deref(),
            Some(Path::new("/etc/wshub/fullchain.pem"))
        );
        assert_eq!(
            o.config.tls_key.as_deref(),
            Some(Path::new("/etc/wshub/key.pem"))
        );
        for alone in [["--tls-cert", "c.pem"], ["--tls-key", "k.pem"]] {
            let err = run(&alone, &[]).unwrap_err();
            assert!(matches!(err, CliError::Invalid(_)), "{err}");
        }
        assert!(matches!(
            run(&["--tls-cert", "", "--tls-key", "k.pem"], &[]).unwrap_err(),
            CliError::InvalidValue {
                flag: "--tls-cert",
                ..
            }
        ));
    }

    #[test]
    fn origins_repeat_as_flags_or_come_comma_separated_from_the_environment() {
        let env = [(
            "WSHUB_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
        )];
        assert_eq!(
            options(&[], &env).config.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        let flags = [
            "--allowed-origin",
            "https://c.example",
            "--allowed-origin=https://*.d.example",
        ];
        assert_eq!(
            options(&flags, &env).config.allowed_origins,
            ["https://c.example", "https://*.d.example"]
        );
        assert!(matches!(
            run(&["--allowed-origin", "c.example"], &[]).unwrap_err(),
            CliError::Invalid(_)
        ));
    }

    #[test]
    fn trusted_proxies_repeat_or_come_from_the_environment() {
        let o = options(&["--trusted-proxy", "10.0.0.5", "--trusted-proxy=::1"], &[]);
        assert_eq!(
            o.config.trusted_proxies,
            [
                "10.0.0.5".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        let o = options(&[], &[("WSHUB_TRUSTED_PROXIES", "")]);
        assert!(o.config.trusted_proxies.is_empty(), "empty: trust no proxy");
        assert_eq!(
            options(&[], &[]).config.trusted_proxies.len(),
            2,
            "loopback by default"
        );
        assert!(matches!(
            run(&["--trusted-proxy", "nginx"], &[]).unwrap_err(),
            CliError::InvalidValue { .. }
        ));
        let o = options(
            &[
                "--max-connections-per-ip",
                "0",
                "--max-handshakes=64",
                "--max-threads",
                "500",
            ],
            &[],
        );
        assert_eq!(
            (
                o.config.max_connections_per_ip,
                o.config.max_handshakes,
                o.config.max_threads
            ),
            (0, 64, Some(500))
        );
    }

    #[test]
    fn missing_or_malformed_auth_files_are_refused() {
        let missing = run(&["--tokens", "/nonexistent/tokens.json"], &[]).unwrap_err();
        assert!(
            matches!(
                &missing,
                CliError::File {
                    flag: "--tokens",
                    ..
                }
            ),
            "{missing}"
        );
        assert!(missing.to_string().contains("/nonexistent/tokens.json"));
        for (name, contents) in [
            ("not-json", "{"),
            ("not-an-object", "[]"),
            ("no-user", r#"{"t": {}}"#),
            ("typo", r#"{"t": {"userId": "a", "chanels": []}}"#),
            (
                "bad-pattern",
                r#"{"t": {"userId": "a", "channels": ["no spaces"]}}"#,
            ),
        ] {
            let file = TempFile::new(name, contents);
            let err = run(&["--tokens", file.path()], &[]).unwrap_err();
            assert!(matches!(err, CliError::File { .. }), "{name}: {err}");
        }
        let empty = TempFile::new("empty-secret", "\n");
        assert!(matches!(
            run(&["--jwt-secret-file", empty.path()], &[]).unwrap_err(),
            CliError::File { .. }
        ));
        assert!(matches!(
            run(&["--jwt-secret", ""], &[]).unwrap_err(),
            CliError::InvalidValue { .. }
        ));
        assert!(matches!(
            run(&["--jwt-secret-file", "/nonexistent"], &[]).unwrap_err(),
            CliError::File { .. }
        ));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert_eq!(
            run(&["--nope"], &[]).unwrap_err(),
            CliError::UnknownFlag("--nope".into())
        );
        assert_eq!(
            run(&["--port"], &[]).unwrap_err(),
            CliError::MissingValue("--port")
        );
        assert!(matches!(
            run(&["--port", "http"], &[]).unwrap_err(),
            CliError::InvalidValue { flag: "--port", .. }
        ));
        assert!(matches!(
            run(&["--heartbeat-interval", "0"], &[]).unwrap_err(),
            CliError::InvalidValue {
                flag: "--heartbeat-interval",
                ..
            }
        ));
        assert!(matches!(
            run(&["--heartbeat-interval", "NaN"], &[]).unwrap_err(),
            CliError::InvalidValue { .. }
        ));
        assert_eq!(
            run(&["--allow-client-publish=yes"], &[]).unwrap_err(),
            CliError::UnexpectedValue("--allow-client-publish")
        );
        assert!(matches!(
            run(&["--max-connections", "0"], &[]).unwrap_err(),
            CliError::Invalid(_)
        ));
        assert!(matches!(
            run(&[], &[("WSHUB_PORT", "x")]).unwrap_err(),
            CliError::InvalidValue { .. }
        ));
        for err in [
            CliError::UnknownFlag("--x".into()),
            CliError::MissingValue("--port"),
        ] {
            assert!(!err.to_string().is_empty());
        }
    }
}
