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
use std::path::Path;
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
}

/// Settings for a run.
#[derive(Debug)]
pub struct Options {
    pub config: Config,
    pub log_level: LevelFilter,
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
    origins_from_env: Vec<String>,
    origins_from_flags: Vec<String>,
    proxies_from_env: Option<Vec<IpAddr>>,
    proxies_from_flags: Vec<IpAddr>,
    endpoints_from_env: Option<Vec<wshub::Endpoint>>,
    endpoints_from_flags: Vec<wshub::Endpoint>,
    history_off_from_env: Option<Vec<String>>,
    history_off_from_flags: Vec<String>,
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
        "--host" "<ADDR>" "127.0.0.1" WSHUB_HOST,
            set!(host),
            "Interface to listen on";
        "--port" "<PORT>" "3000" WSHUB_PORT,
            set!(port: number),
            "TCP port, 0 for any free one";
        "--path" "<PATH>" "/ws" WSHUB_PATH,
            set!(path),
            "WebSocket endpoint (/ works too)";
        "--heartbeat-interval" "<SECS>" "30" WSHUB_HEARTBEAT_INTERVAL,
            set!(heartbeat_interval: seconds),
            "Protocol Ping period";
        "--client-timeout" "<SECS>" "60" WSHUB_CLIENT_TIMEOUT,
            set!(client_timeout: seconds),
            "Silence before a client is terminated";
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
            concat!("A Redis shared with other hubs (redis://host:6379/0): together they ",
                "serve one set of clients");
        "--redis-prefix" "<PREFIX>" "wshub" WSHUB_REDIS_PREFIX,
            set!(redis_prefix),
            "The prefix of the hubs' keys and channels in Redis";
        "--redis-timeout" "<SECS>" "5" WSHUB_REDIS_TIMEOUT,
            set!(redis_timeout: seconds),
            "How long Redis may take to answer before it is taken for gone (a stall is a fault)";
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
        "--jwt-leeway" "<SECS>" "30" WSHUB_JWT_LEEWAY,
            set!(jwt_leeway: seconds_or_zero),
            "Clock skew allowed on exp and nbf";
        "--admin-token" "<TOKEN>" - WSHUB_ADMIN_TOKEN,
            set!(admin_token: Some secret),
            "Bearer token for /api/ws/stats, /metrics, /api/publish";
        "--admin-token-file" "<FILE>" - WSHUB_ADMIN_TOKEN_FILE,
            set!(admin_token: Some secret_file),
            "The same, read from a file";
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
            concat!("A reverse proxy, exempt from per-address limits; repeat for more (the ",
                "variable: comma-separated)");
        "--max-threads" "<N>" "what the kernel allows" WSHUB_MAX_THREADS,
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
        "--rate-limit" "<N>" "100" WSHUB_RATE_LIMIT,
            set!(rate_limit: number),
            "Messages per client per window, 0 for none";
        "--rate-window" "<SECS>" "60" WSHUB_RATE_WINDOW,
            set!(rate_window: seconds),
            "The rate limit's window";
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
            "Each connection's read buffer";
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

/// `--log-level LEVEL`: the binary's own setting, not the hub's.
fn log_level(s: &mut Settings, f: &'static str, v: String, _: bool) -> Result<(), CliError> {
    s.log_level = Some(level(f, &v)?);
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
            "AUTH (any of --tokens or --jwt-secret turns client auth on):",
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
    // The environment first, then the flags over it.
    let mut given: Vec<(&'static Flag, Option<String>, bool)> = Vec::new();
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

    let mut settings = Settings::default();
    for (flag, value, from_env) in given {
        let value = value.unwrap_or_else(|| "true".to_owned());
        (flag.apply)(&mut settings, flag.name, value, from_env)?;
    }
    let Settings {
        mut config,
        log_level,
        origins_from_env,
        origins_from_flags,
        proxies_from_env,
        proxies_from_flags,
        endpoints_from_env,
        endpoints_from_flags,
        history_off_from_env,
        history_off_from_flags,
    } = settings;
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
    Ok(Command::Run(Box::new(Options {
        config,
        log_level: log_level.unwrap_or(LevelFilter::Info),
    })))
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
        assert_eq!(c.rate_limit, 0);
        assert_eq!(c.max_subscriptions, 5);
        assert_eq!(c.thread_stack_size, 131_072);
        assert_eq!(c.read_buffer_size, 8192);
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
