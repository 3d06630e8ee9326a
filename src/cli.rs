//! The command line of the `wshub` binary: flags, `WSHUB_*` environment
//! variables and their defaults, turned into a [`Config`].
//!
//! Pure code (arguments and environment in, settings or an error out), run
//! once on the main thread.

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

/// One setting: its flag, its environment variable, whether it takes a value.
struct Flag {
    name: &'static str,
    env: &'static str,
    takes_value: bool,
}

const FLAGS: &[Flag] = &[
    Flag {
        name: "--host",
        env: "WSHUB_HOST",
        takes_value: true,
    },
    Flag {
        name: "--port",
        env: "WSHUB_PORT",
        takes_value: true,
    },
    Flag {
        name: "--path",
        env: "WSHUB_PATH",
        takes_value: true,
    },
    Flag {
        name: "--heartbeat-interval",
        env: "WSHUB_HEARTBEAT_INTERVAL",
        takes_value: true,
    },
    Flag {
        name: "--client-timeout",
        env: "WSHUB_CLIENT_TIMEOUT",
        takes_value: true,
    },
    Flag {
        name: "--max-connections",
        env: "WSHUB_MAX_CONNECTIONS",
        takes_value: true,
    },
    Flag {
        name: "--max-connections-per-user",
        env: "WSHUB_MAX_CONNECTIONS_PER_USER",
        takes_value: true,
    },
    Flag {
        name: "--max-connections-per-ip",
        env: "WSHUB_MAX_CONNECTIONS_PER_IP",
        takes_value: true,
    },
    Flag {
        name: "--max-handshakes",
        env: "WSHUB_MAX_HANDSHAKES",
        takes_value: true,
    },
    Flag {
        name: "--max-handshakes-per-ip",
        env: "WSHUB_MAX_HANDSHAKES_PER_IP",
        takes_value: true,
    },
    Flag {
        name: "--trusted-proxy",
        env: "WSHUB_TRUSTED_PROXIES",
        takes_value: true,
    },
    Flag {
        name: "--max-threads",
        env: "WSHUB_MAX_THREADS",
        takes_value: true,
    },
    Flag {
        name: "--max-message-size",
        env: "WSHUB_MAX_MESSAGE_SIZE",
        takes_value: true,
    },
    Flag {
        name: "--max-queue",
        env: "WSHUB_MAX_QUEUE",
        takes_value: true,
    },
    Flag {
        name: "--max-queue-bytes",
        env: "WSHUB_MAX_QUEUE_BYTES",
        takes_value: true,
    },
    Flag {
        name: "--max-subscriptions",
        env: "WSHUB_MAX_SUBSCRIPTIONS",
        takes_value: true,
    },
    Flag {
        name: "--max-sessions-per-user",
        env: "WSHUB_MAX_SESSIONS_PER_USER",
        takes_value: true,
    },
    Flag {
        name: "--rate-limit",
        env: "WSHUB_RATE_LIMIT",
        takes_value: true,
    },
    Flag {
        name: "--rate-window",
        env: "WSHUB_RATE_WINDOW",
        takes_value: true,
    },
    Flag {
        name: "--handshake-timeout",
        env: "WSHUB_HANDSHAKE_TIMEOUT",
        takes_value: true,
    },
    Flag {
        name: "--max-header-size",
        env: "WSHUB_MAX_HEADER_SIZE",
        takes_value: true,
    },
    Flag {
        name: "--max-body-size",
        env: "WSHUB_MAX_BODY_SIZE",
        takes_value: true,
    },
    Flag {
        name: "--thread-stack-size",
        env: "WSHUB_THREAD_STACK_SIZE",
        takes_value: true,
    },
    Flag {
        name: "--read-buffer-size",
        env: "WSHUB_READ_BUFFER_SIZE",
        takes_value: true,
    },
    Flag {
        name: "--presence-grace",
        env: "WSHUB_PRESENCE_GRACE",
        takes_value: true,
    },
    Flag {
        name: "--allow-client-publish",
        env: "WSHUB_ALLOW_CLIENT_PUBLISH",
        takes_value: false,
    },
    Flag {
        name: "--tokens",
        env: "WSHUB_TOKENS",
        takes_value: true,
    },
    Flag {
        name: "--jwt-secret",
        env: "WSHUB_JWT_SECRET",
        takes_value: true,
    },
    Flag {
        name: "--jwt-secret-file",
        env: "WSHUB_JWT_SECRET_FILE",
        takes_value: true,
    },
    Flag {
        name: "--jwt-leeway",
        env: "WSHUB_JWT_LEEWAY",
        takes_value: true,
    },
    Flag {
        name: "--admin-token",
        env: "WSHUB_ADMIN_TOKEN",
        takes_value: true,
    },
    Flag {
        name: "--admin-token-file",
        env: "WSHUB_ADMIN_TOKEN_FILE",
        takes_value: true,
    },
    Flag {
        name: "--allow-anonymous",
        env: "WSHUB_ALLOW_ANONYMOUS",
        takes_value: false,
    },
    Flag {
        name: "--allowed-origin",
        env: "WSHUB_ALLOWED_ORIGINS",
        takes_value: true,
    },
    Flag {
        name: "--log-level",
        env: "WSHUB_LOG_LEVEL",
        takes_value: true,
    },
];

pub const HELP: &str = "\
wshub: a real-time WebSocket hub

USAGE:
    wshub [OPTIONS]

Every option can also be set with the environment variable shown; a flag
wins over its variable. Durations are in seconds (decimals allowed).

SERVER:
    --host <ADDR>                   Interface to listen on [env: WSHUB_HOST] [default: 127.0.0.1]
    --port <PORT>                   TCP port, 0 for any free one [env: WSHUB_PORT] [default: 3000]
    --path <PATH>                   WebSocket endpoint (/ works too) [env: WSHUB_PATH] [default: /ws]
    --heartbeat-interval <SECS>     Protocol Ping period [env: WSHUB_HEARTBEAT_INTERVAL] [default: 30]
    --client-timeout <SECS>         Silence before a client is terminated [env: WSHUB_CLIENT_TIMEOUT] [default: 60]
    --allow-client-publish          Let clients publish to channels and sessions [env: WSHUB_ALLOW_CLIENT_PUBLISH]
    --presence-grace <SECS>         Wait before announcing a user offline; a reconnection cancels it
                                    [env: WSHUB_PRESENCE_GRACE] [default: 2]
    --log-level <LEVEL>             off, error, warn, info, debug or trace [env: WSHUB_LOG_LEVEL] [default: info]

AUTH (any of --tokens or --jwt-secret turns client auth on):
    --tokens <FILE>                 JSON file: {\"<token>\": {\"userId\", \"admin\"?, \"channels\"?, \"publish\"?}}
                                    [env: WSHUB_TOKENS]
    --jwt-secret <SECRET>           HS256 secret for JWTs [env: WSHUB_JWT_SECRET]
    --jwt-secret-file <FILE>        The same, read from a file (keeps it out of ps) [env: WSHUB_JWT_SECRET_FILE]
    --jwt-leeway <SECS>             Clock skew allowed on exp and nbf [env: WSHUB_JWT_LEEWAY] [default: 30]
    --admin-token <TOKEN>           Bearer token for /api/ws/stats, /metrics, /api/publish [env: WSHUB_ADMIN_TOKEN]
    --admin-token-file <FILE>       The same, read from a file [env: WSHUB_ADMIN_TOKEN_FILE]
    --allow-anonymous               With auth on, let clients without a token use public channels
                                    [env: WSHUB_ALLOW_ANONYMOUS]
    --allowed-origin <ORIGIN>       Browser origin allowed to connect; repeat for more; others get 403
                                    [env: WSHUB_ALLOWED_ORIGINS, comma-separated] [default: any]

LIMITS:
    --max-connections <N>           Most WebSocket clients at once [env: WSHUB_MAX_CONNECTIONS] [default: 10000]
    --max-connections-per-user <N>  Most connections of one user [env: WSHUB_MAX_CONNECTIONS_PER_USER] [default: 100]
    --max-connections-per-ip <N>    Most connections from one address, 0 for none [env: WSHUB_MAX_CONNECTIONS_PER_IP]
                                    [default: 1000]
    --max-handshakes <N>            Connections still sending their request, at once [env: WSHUB_MAX_HANDSHAKES]
                                    [default: 256]
    --max-handshakes-per-ip <N>     The same per address [env: WSHUB_MAX_HANDSHAKES_PER_IP] [default: 32]
    --trusted-proxy <ADDR>          A reverse proxy, exempt from per-address limits; repeat for more
                                    [env: WSHUB_TRUSTED_PROXIES, comma-separated] [default: 127.0.0.1, ::1]
    --max-threads <N>               Most connection and writer threads [env: WSHUB_MAX_THREADS]
                                    [default: what the kernel allows, at most 2 per client + handshakes]
    --max-message-size <BYTES>      Largest client message [env: WSHUB_MAX_MESSAGE_SIZE] [default: 65536]
    --max-queue <N>                 Messages queued per client before it counts as too slow
                                  [env: WSHUB_MAX_QUEUE] [default: 4096]
    --max-queue-bytes <BYTES>       Bytes queued per client before it counts as too slow
                                  [env: WSHUB_MAX_QUEUE_BYTES] [default: 8388608]
    --max-subscriptions <N>         Channels and sessions per client [env: WSHUB_MAX_SUBSCRIPTIONS] [default: 128]
    --max-sessions-per-user <N>     Sessions one user may own (auth on) [env: WSHUB_MAX_SESSIONS_PER_USER]
                                    [default: 1000]
    --rate-limit <N>                Messages per client per window, 0 for none [env: WSHUB_RATE_LIMIT] [default: 100]
    --rate-window <SECS>            The rate limit's window [env: WSHUB_RATE_WINDOW] [default: 60]
    --handshake-timeout <SECS>      Time to send a whole HTTP request [env: WSHUB_HANDSHAKE_TIMEOUT] [default: 10]
    --max-header-size <BYTES>       Largest HTTP request head [env: WSHUB_MAX_HEADER_SIZE] [default: 8192]
    --max-body-size <BYTES>         Largest POST /api/publish body [env: WSHUB_MAX_BODY_SIZE] [default: 1048576]
    --thread-stack-size <BYTES>     Stack of each connection's two threads [env: WSHUB_THREAD_STACK_SIZE]
                                    [default: 262144]
    --read-buffer-size <BYTES>      Each connection's read buffer [env: WSHUB_READ_BUFFER_SIZE] [default: 4096]

    -h, --help                      Print this help
    -V, --version                   Print the version
";

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
    let mut settings: Vec<(&'static Flag, Option<String>, bool)> = Vec::new();
    for flag in FLAGS {
        if let Some(value) = env(flag.env)? {
            settings.push((flag, Some(value), true));
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
        let value = match (flag.takes_value, inline) {
            (true, Some(value)) => Some(value),
            (true, None) => Some(args.next().ok_or(CliError::MissingValue(flag.name))?),
            (false, Some(_)) => return Err(CliError::UnexpectedValue(flag.name)),
            (false, None) => None,
        };
        settings.push((flag, value, false));
    }

    let mut config = Config::default();
    let mut log_level = LevelFilter::Info;
    let mut origins_from_env = Vec::new();
    let mut origins_from_flags = Vec::new();
    let mut proxies_from_env = None;
    let mut proxies_from_flags = Vec::new();
    for (flag, value, from_env) in settings {
        let value = value.unwrap_or_else(|| "true".to_owned());
        match flag.name {
            "--host" => config.host = value,
            "--port" => config.port = number(flag.name, &value)?,
            "--path" => config.path = value,
            "--heartbeat-interval" => config.heartbeat_interval = seconds(flag.name, &value)?,
            "--client-timeout" => config.client_timeout = seconds(flag.name, &value)?,
            "--max-connections" => config.max_connections = number(flag.name, &value)?,
            "--max-connections-per-ip" => {
                config.max_connections_per_ip = number(flag.name, &value)?
            }
            "--max-handshakes" => config.max_handshakes = number(flag.name, &value)?,
            "--max-handshakes-per-ip" => config.max_handshakes_per_ip = number(flag.name, &value)?,
            "--max-threads" => config.max_threads = Some(number(flag.name, &value)?),
            "--trusted-proxy" if from_env => proxies_from_env = Some(addresses(flag.name, &value)?),
            "--trusted-proxy" => proxies_from_flags.extend(addresses(flag.name, &value)?),
            "--max-connections-per-user" => {
                config.max_connections_per_user = number(flag.name, &value)?
            }
            "--max-message-size" => config.max_message_size = number(flag.name, &value)?,
            "--max-queue" => config.max_queue = number(flag.name, &value)?,
            "--max-queue-bytes" => config.max_queue_bytes = number(flag.name, &value)?,
            "--max-subscriptions" => config.max_subscriptions = number(flag.name, &value)?,
            "--max-sessions-per-user" => config.max_sessions_per_user = number(flag.name, &value)?,
            "--rate-limit" => config.rate_limit = number(flag.name, &value)?,
            "--rate-window" => config.rate_window = seconds(flag.name, &value)?,
            "--handshake-timeout" => config.handshake_timeout = seconds(flag.name, &value)?,
            "--max-header-size" => config.max_header_size = number(flag.name, &value)?,
            "--max-body-size" => config.max_body_size = number(flag.name, &value)?,
            "--thread-stack-size" => config.thread_stack_size = number(flag.name, &value)?,
            "--read-buffer-size" => config.read_buffer_size = number(flag.name, &value)?,
            "--allow-client-publish" => config.allow_client_publish = boolean(flag.name, &value)?,
            "--presence-grace" => config.presence_grace = seconds_or_zero(flag.name, &value)?,
            "--tokens" => {
                config.tokens =
                    wshub::load_tokens(Path::new(&value)).map_err(|err| CliError::File {
                        flag: flag.name,
                        reason: err.to_string(),
                    })?
            }
            "--jwt-secret" => config.jwt_secret = Some(secret(flag.name, value)?),
            "--jwt-secret-file" => config.jwt_secret = Some(secret_file(flag.name, &value)?),
            "--jwt-leeway" => config.jwt_leeway = seconds_or_zero(flag.name, &value)?,
            "--admin-token" => config.admin_token = Some(secret(flag.name, value)?),
            "--admin-token-file" => config.admin_token = Some(secret_file(flag.name, &value)?),
            "--allow-anonymous" => config.allow_anonymous = boolean(flag.name, &value)?,
            "--allowed-origin" if from_env => {
                origins_from_env = value
                    .split(',')
                    .map(|o| o.trim().to_owned())
                    .filter(|o| !o.is_empty())
                    .collect()
            }
            "--allowed-origin" => origins_from_flags.push(value),
            "--log-level" => log_level = level(flag.name, &value)?,
            _ => unreachable!("every flag in FLAGS has an arm"),
        }
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
    Ok(Command::Run(Box::new(Options { config, log_level })))
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

fn secret(flag: &'static str, value: String) -> Result<Secret, CliError> {
    if value.trim().is_empty() {
        return Err(CliError::InvalidValue {
            flag,
            value,
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
