//! The command line of the `wshub` binary: flags, `WSHUB_*` environment
//! variables and their defaults, turned into a [`Config`].
//!
//! Pure code (arguments and environment in, settings or an error out), run
//! once on the main thread.

use std::fmt;
use std::time::Duration;

use log::LevelFilter;
use wshub::Config;

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
        name: "--allow-client-publish",
        env: "WSHUB_ALLOW_CLIENT_PUBLISH",
        takes_value: false,
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

OPTIONS:
    --host <ADDR>                 Interface to listen on [env: WSHUB_HOST] [default: 127.0.0.1]
    --port <PORT>                 TCP port, 0 for any free one [env: WSHUB_PORT] [default: 3000]
    --path <PATH>                 WebSocket endpoint (/ works too) [env: WSHUB_PATH] [default: /ws]
    --heartbeat-interval <SECS>   Protocol Ping period [env: WSHUB_HEARTBEAT_INTERVAL] [default: 30]
    --client-timeout <SECS>       Silence before a client is terminated [env: WSHUB_CLIENT_TIMEOUT] [default: 60]
    --max-connections <N>         Most WebSocket clients at once [env: WSHUB_MAX_CONNECTIONS] [default: 10000]
    --max-message-size <BYTES>    Largest client message [env: WSHUB_MAX_MESSAGE_SIZE] [default: 65536]
    --max-queue <N>               Messages queued per client before it counts as too slow
                                  [env: WSHUB_MAX_QUEUE] [default: 4096]
    --allow-client-publish        Let clients publish to channels and sessions [env: WSHUB_ALLOW_CLIENT_PUBLISH]
    --log-level <LEVEL>           off, error, warn, info, debug or trace [env: WSHUB_LOG_LEVEL] [default: info]
    -h, --help                    Print this help
    -V, --version                 Print the version
";

/// Parses the arguments (without the program name) and the environment.
///
/// # Errors
///
/// A [`CliError`] naming the flag and what it expected.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, CliError> {
    // The environment first, then the flags over it.
    let mut settings: Vec<(&'static Flag, Option<String>)> = Vec::new();
    for flag in FLAGS {
        if let Some(value) = env(flag.env) {
            settings.push((flag, Some(value)));
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
        settings.push((flag, value));
    }

    let mut config = Config::default();
    let mut log_level = LevelFilter::Info;
    for (flag, value) in settings {
        let value = value.unwrap_or_else(|| "true".to_owned());
        match flag.name {
            "--host" => config.host = value,
            "--port" => config.port = number(flag.name, &value)?,
            "--path" => config.path = value,
            "--heartbeat-interval" => config.heartbeat_interval = seconds(flag.name, &value)?,
            "--client-timeout" => config.client_timeout = seconds(flag.name, &value)?,
            "--max-connections" => config.max_connections = number(flag.name, &value)?,
            "--max-message-size" => config.max_message_size = number(flag.name, &value)?,
            "--max-queue" => config.max_queue = number(flag.name, &value)?,
            "--allow-client-publish" => config.allow_client_publish = boolean(flag.name, &value)?,
            "--log-level" => log_level = level(flag.name, &value)?,
            _ => unreachable!("every flag in FLAGS has an arm"),
        }
    }
    config
        .validate()
        .map_err(|err| CliError::Invalid(err.to_string()))?;
    Ok(Command::Run(Box::new(Options { config, log_level })))
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
        parse(args.iter().map(|a| a.to_string()), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
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
    fn help_and_version_win() {
        assert!(matches!(
            run(&["--port", "1", "--help"], &[]),
            Ok(Command::Help)
        ));
        assert!(matches!(run(&["-V"], &[]), Ok(Command::Version)));
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
